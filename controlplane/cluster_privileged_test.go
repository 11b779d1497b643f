package controlplane_test

import (
	"encoding/csv"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/controlplane/state"
	"github.com/recfork/recfork/internal/testenv"
	"github.com/recfork/recfork/siprec/srs"
)

// The cluster tests: several recforkd nodes as a site runs them, with parts
// nobody here wrote in front and beside them, in network namespaces.
//
//   - Kamailio's dispatcher (testdata/kamailio/dispatcher.cfg: round robin,
//     OPTIONS probes every second) in front of three nodes; sipp places 300
//     calls in two runs of 150, each recorded at one built-in SRS. In the
//     first run a node is drained with recforkctl: its calls end normally,
//     the dispatcher sees its 503 probes and sends the rest to the other two,
//     and no call fails. In the second a node is killed: the dispatcher marks
//     it down after its probe interval and sends it nothing more; only the
//     calls it was carrying when it died may fail.
//   - With the shared state on (a real redis-server on a unix socket), a node
//     is killed mid-recording and a standby node ends its recording at the
//     SRS with a BYE in the stored dialog.
//
// The edge namespace holds sipp, Kamailio and the SRS (10.201.3.1); the
// nodes namespace holds the recforkd nodes, one address each.

const clusterEdge = "10.201.3.1"

// clusterCaller is sipp's caller through a proxy: the ACK and the BYE follow
// the Record-Route ([routes]) to the Contact ([next_url]), RFC 3261 §12.2.
const clusterCaller = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="recfork cluster caller">
  <send retrans="500"><![CDATA[
INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP[local_ip_type] [local_ip]
s=-
c=IN IP[media_ip_type] [media_ip]
t=0 0
m=audio [auto_media_port] RTP/AVP 0
a=rtpmap:0 PCMU/8000
]]></send>
  <recv response="100" optional="true"/>
  <recv response="180" optional="true"/>
  <recv response="200" rtd="true" rrs="true"/>
  <send><![CDATA[
ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0
]]></send>
  <nop><action><exec rtp_stream="tone.wav,-1,0"/></action></nop>
  <pause milliseconds="%d"/>
  <send retrans="500"><![CDATA[
BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
[routes]
From: sipp <sip:sipp@[local_ip]:[local_port]>;tag=[pid]SIPpTag00[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>[peer_tag_param]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: sip:sipp@[local_ip]:[local_port]
Max-Forwards: 70
Content-Length: 0
]]></send>
  <recv response="200" crlf="true"/>
</scenario>
`

type clusterNet struct {
	edge, nodes          *testenv.Netns
	nodesIf              string
	dir, srsDir          string
	recforkd, recforkctl string
}

type clusterNode struct {
	ip, admin, log string
	cmd            *exec.Cmd
}

func newClusterNet(t *testing.T, recforkd, recforkctl string, nodeIPs ...string) *clusterNet {
	n := &clusterNet{edge: testenv.NewNetns(t), nodes: testenv.NewNetns(t), dir: t.TempDir(), recforkd: recforkd, recforkctl: recforkctl}
	v := testenv.NewVeth(t, n.edge, n.nodes, clusterEdge+"/24", nodeIPs[0]+"/24")
	n.nodesIf = v.BName
	for _, ip := range nodeIPs[1:] {
		n.nodes.MustIP(t, "addr", "add", ip+"/24", "dev", n.nodesIf, "nodad")
	}
	// The one SRS every node records to.
	n.srsDir = filepath.Join(n.dir, "srs")
	startProc(t, n.edge.Exec(recforkctl, "srs", "--listen", clusterEdge+":5080", "--dir", n.srsDir, "--rtp-ports", "40000-49999"),
		filepath.Join(n.dir, "srs.log"))
	waitFor(t, "the SRS to listen", func() bool {
		out, _ := n.edge.Exec("ss", "-lun", "sport", "= :5080").Output()
		return strings.Contains(string(out), ":5080")
	})
	return n
}

func (n *clusterNet) startNode(t *testing.T, ip string, extra ...string) *clusterNode {
	sockDir, err := os.MkdirTemp("", "rfc")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	nd := &clusterNode{ip: ip, admin: filepath.Join(sockDir, "a.sock"), log: filepath.Join(n.dir, "recforkd-"+ip+".log")}
	args := append([]string{"--listen", ip + ":5060", "--media-ip", ip, "--srs", "sip:srs@" + clusterEdge + ":5080",
		"--dataplane", "userspace", "--dtmf=false", "--admin", nd.admin, "--rtp-ports", "30000-30999", "--recordings", filepath.Join(n.dir, "unused")}, extra...)
	nd.cmd = n.nodes.Exec(n.recforkd, args...)
	startProc(t, nd.cmd, nd.log)
	waitFor(t, "recforkd "+ip+"'s admin API", func() bool {
		_, err := os.Stat(nd.admin)
		return err == nil
	})
	return nd
}

func (nd *clusterNode) status(t *testing.T) controlplane.StatusInfo {
	t.Helper()
	var st controlplane.StatusInfo
	if code := adminGet(t, nd.admin, "GET", "/v1/status", &st); code != 200 {
		t.Fatalf("status of %s: %d", nd.ip, code)
	}
	return st
}

// sippRun is one sipp caller run and where its statistics go.
type sippRun struct {
	done  chan error
	stats string
	log   string
}

// call starts sipp placing calls calls of ms milliseconds at rate per
// second to target, from the edge namespace.
func (n *clusterNet) call(t *testing.T, name, target string, calls, rate, ms int) *sippRun {
	dir := filepath.Join(n.dir, "sipp-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tone.wav"), ulawToneWAV(440, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "uac.xml"), fmt.Appendf(nil, clusterCaller, ms), 0o644); err != nil {
		t.Fatal(err)
	}
	r := &sippRun{done: make(chan error, 1), stats: filepath.Join(dir, "stats.csv"), log: filepath.Join(dir, "sipp.log")}
	cmd := n.edge.Exec("sipp", "-sf", "uac.xml", "-m", strconv.Itoa(calls), "-r", strconv.Itoa(rate), "-l", "60",
		"-i", clusterEdge, "-p", "5061", "-mi", clusterEdge, "-mp", "6000", "-s", "echo", target,
		"-nostdin", "-timeout", "100s", "-trace_stat", "-stf", r.stats, "-fd", "1", "-trace_err")
	cmd.Dir = dir
	f, err := os.Create(r.log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { r.done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return r
}

// wait waits for sipp to finish and returns its successful and failed call
// counts, as sipp's own statistics say.
func (r *sippRun) wait(t *testing.T) (ok, failed int, exit error) {
	t.Helper()
	select {
	case exit = <-r.done:
	case <-time.After(150 * time.Second):
		t.Fatal("sipp did not finish")
	}
	f, err := os.Open(r.stats)
	if err != nil {
		t.Fatalf("sipp statistics: %v", err)
	}
	defer f.Close()
	cr := csv.NewReader(f)
	cr.Comma, cr.FieldsPerRecord, cr.LazyQuotes = ';', -1, true
	rows, err := cr.ReadAll()
	if err != nil || len(rows) < 2 {
		t.Fatalf("sipp statistics %s: %v (%d rows)", r.stats, err, len(rows))
	}
	head, last := rows[0], rows[len(rows)-1]
	col := func(name string) int {
		for i, h := range head {
			if h == name && i < len(last) {
				v, err := strconv.Atoi(last[i])
				if err != nil {
					t.Fatalf("sipp statistic %s = %q", name, last[i])
				}
				return v
			}
		}
		t.Fatalf("sipp statistics have no %s column", name)
		return 0
	}
	return col("SuccessfulCall(C)"), col("FailedCall(C)"), exit
}

func (r *sippRun) tail() string {
	b, _ := os.ReadFile(r.log)
	errs, _ := filepath.Glob(filepath.Join(filepath.Dir(r.log), "*errors.log"))
	for _, e := range errs {
		eb, _ := os.ReadFile(e)
		b = append(b, eb...)
	}
	return tail(string(b), 60)
}

// lines returns a log file's lines.
func lines(t *testing.T, path string) []string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Split(string(b), "\n")
}

func countLines(ls []string, subs ...string) int {
	n := 0
	for _, l := range ls {
		all := true
		for _, s := range subs {
			all = all && strings.Contains(l, s)
		}
		if all {
			n++
		}
	}
	return n
}

// indexOf is the index of the first line holding sub, -1 if none.
func indexOf(ls []string, sub string) int {
	for i, l := range ls {
		if strings.Contains(l, sub) {
			return i
		}
	}
	return -1
}

// downAt is the index of the first kamailio log line that takes node uri
// out of the dispatcher's set: its probe failed (dst-down) or an INVITE to
// it failed and the failure route marked it down; -1 if none.
func downAt(ls []string, uri string) int {
	a, b := indexOf(ls, "dispatcher: node down "+uri), indexOf(ls, "node "+uri+" failed")
	if a < 0 || (b >= 0 && b < a) {
		return b
	}
	return a
}

// srsSessions reads the SRS's finished sessions by their end reason.
func (n *clusterNet) srsSessions(t *testing.T) map[string][]srs.SessionInfo {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(n.srsDir, "*", "session.json"))
	out := map[string][]srs.SessionInfo{}
	for _, p := range m {
		b, err := os.ReadFile(p)
		if err != nil {
			continue
		}
		var si srs.SessionInfo
		if json.Unmarshal(b, &si) != nil {
			continue // being written
		}
		out[si.EndReason] = append(out[si.EndReason], si)
	}
	return out
}

func TestClusterBehindKamailioDispatcher(t *testing.T) {
	testenv.Privileged(t)
	for _, bin := range []string{"sipp", "kamailio"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, bin+" is not installed (.ci/run installs it)")
		}
	}
	recforkd, recforkctl := buildBinaries(t)
	ips := []string{"10.201.3.2", "10.201.3.3", "10.201.3.4"}
	n := newClusterNet(t, recforkd, recforkctl, ips...)
	var nodes []*clusterNode
	var list strings.Builder
	for _, ip := range ips {
		nodes = append(nodes, n.startNode(t, ip))
		fmt.Fprintf(&list, "1 sip:%s:5060\n", ip)
	}
	drained, killed, kept := nodes[0], nodes[1], nodes[2]
	dsList := filepath.Join(n.dir, "dispatcher.list")
	if err := os.WriteFile(dsList, []byte(list.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, err := filepath.Abs(filepath.Join("testdata", "kamailio", "dispatcher.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	klog := filepath.Join(n.dir, "kamailio.log")
	startProc(t, n.edge.Exec("kamailio", "-f", cfg, "-DD", "-E", "-w", n.dir, "-Y", n.dir,
		"-A", "LISTEN=udp:"+clusterEdge+":5060", "-A", `DS_LIST="`+dsList+`"`), klog)
	waitFor(t, "kamailio to listen", func() bool {
		out, _ := n.edge.Exec("ss", "-lun", "sport", "= :5060").Output()
		return strings.Contains(string(out), ":5060")
	})
	const perRun, rate, callMS = 150, 10, 2000
	proxy := clusterEdge + ":5060"
	nodeURI := func(nd *clusterNode) string { return "sip:" + nd.ip + ":5060" }

	// Run 1: drain a node mid-run.
	run1 := n.call(t, "drain", proxy, perRun, rate, callMS)
	waitFor(t, "calls on every node", func() bool {
		for _, nd := range nodes {
			if nd.status(t).Calls == 0 {
				return false
			}
		}
		return true
	})
	out, err := n.nodes.Exec(recforkctl, "drain", "--admin", drained.admin, "--json").Output()
	var di controlplane.DrainInfo
	if err != nil || json.Unmarshal(out, &di) != nil || !di.Draining {
		t.Fatalf("recforkctl drain: %v: %s", err, out)
	}
	waitFor(t, "the dispatcher to take the drained node out", func() bool {
		return downAt(lines(t, klog), nodeURI(drained)) >= 0
	})
	acceptedAtDown := countLines(lines(t, drained.log), "call alerting")
	waitFor(t, "the drained node's calls to end", func() bool { return drained.status(t).Calls == 0 })
	ok1, failed1, exit1 := run1.wait(t)
	if exit1 != nil || failed1 != 0 || ok1 != perRun {
		t.Fatalf("drain run: %d ok, %d failed, exit %v: no call may fail while a node drains\n%s", ok1, failed1, exit1, run1.tail())
	}
	if st := drained.status(t); !st.Draining || st.Calls != 0 {
		t.Fatalf("drained node status: %+v", st)
	}
	kl := lines(t, klog)
	down := downAt(kl, nodeURI(drained))
	if got := countLines(kl[down:], "INVITE", "to "+nodeURI(drained)); got != 0 {
		t.Fatalf("%d INVITEs went to the drained node after the dispatcher took it out", got)
	}
	if got := countLines(lines(t, drained.log), "call alerting"); got != acceptedAtDown {
		t.Fatalf("the drained node took %d new calls after it was taken out", got-acceptedAtDown)
	}
	for _, nd := range []*clusterNode{killed, kept} {
		if c := countLines(kl[down:], "new INVITE", "to "+nodeURI(nd)); c == 0 {
			t.Fatalf("no call went to %s after the drain", nd.ip)
		}
	}

	// Run 2: kill a node mid-run. Only the drained node's neighbours take
	// calls now.
	run2 := n.call(t, "kill", proxy, perRun, rate, callMS)
	waitFor(t, "calls on the node to kill", func() bool { return killed.status(t).Calls >= 3 })
	before := len(lines(t, klog))
	live := killed.status(t).Calls
	if err := killed.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	// Calls sent to the node between the count and the kill may fail too.
	racing := countLines(lines(t, klog)[before:], "INVITE", "to "+nodeURI(killed))
	waitFor(t, "the dispatcher to mark the killed node down", func() bool {
		return downAt(lines(t, klog), nodeURI(killed)) >= 0
	})
	ok2, failed2, _ := run2.wait(t)
	if ok2+failed2 != perRun || failed2 > live+racing {
		t.Fatalf("kill run: %d ok, %d failed; only the %d calls on the killed node (+%d racing the kill) may fail\n%s",
			ok2, failed2, live, racing, run2.tail())
	}
	t.Logf("kill run: %d ok, %d failed (the killed node held %d calls, %d more racing the kill)", ok2, failed2, live, racing)
	kl = lines(t, klog)
	down = downAt(kl, nodeURI(killed))
	if got := countLines(kl[down:], "INVITE", "to "+nodeURI(killed)); got != 0 {
		t.Fatalf("%d INVITEs went to the killed node after the dispatcher marked it down", got)
	}
	if got := countLines(kl[down:], "INVITE", "to "+nodeURI(drained)); got != 0 {
		t.Fatalf("%d INVITEs went to the drained node", got)
	}

	// Every call that succeeded was recorded at the SRS and its recording
	// ended by the node's BYE; the killed node's open recordings are the
	// only others (nobody ended them: no shared state in this test).
	want := ok1 + ok2
	var got map[string][]srs.SessionInfo
	waitFor(t, "every successful call's recording at the SRS", func() bool {
		got = n.srsSessions(t)
		return len(got[srs.EndByeFromSRC]) >= want
	})
	if len(got[srs.EndByeFromSRC]) != want || len(got) != 1 {
		counts := map[string]int{}
		for k, v := range got {
			counts[k] = len(v)
		}
		t.Fatalf("SRS sessions by end reason %v, want %d ended by the SRC", counts, want)
	}
	for _, si := range got[srs.EndByeFromSRC] {
		if len(si.Streams) != 2 || len(si.Violations) != 0 {
			t.Fatalf("SRS session %s: %d streams, violations %+v", si.ID, len(si.Streams), si.Violations)
		}
	}
	dirs, _ := filepath.Glob(filepath.Join(n.srsDir, "*", "metadata.xml"))
	if len(dirs) < want || len(dirs) > want+failed2 {
		t.Fatalf("%d recording sessions at the SRS for %d recorded calls and %d lost with the killed node", len(dirs), want, failed2)
	}
	if st := kept.status(t); st.Draining || st.Calls != 0 {
		t.Fatalf("the remaining node: %+v", st)
	}
}

func TestStandbyEndsDeadNodesRecordings(t *testing.T) {
	testenv.Privileged(t)
	for _, bin := range []string{"sipp", "redis-server", "redis-cli"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, bin+" is not installed (.ci/run installs it)")
		}
	}
	recforkd, recforkctl := buildBinaries(t)
	n := newClusterNet(t, recforkd, recforkctl, "10.201.3.2", "10.201.3.5")
	sockDir, err := os.MkdirTemp("", "rfr")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	redisSock := filepath.Join(sockDir, "redis.sock")
	startProc(t, exec.Command("redis-server", "--port", "0", "--unixsocket", redisSock, "--unixsocketperm", "700",
		"--save", "", "--appendonly", "no", "--dir", n.dir), filepath.Join(n.dir, "redis.log"))
	waitFor(t, "redis to answer", func() bool {
		out, _ := exec.Command("redis-cli", "-s", redisSock, "ping").Output()
		return strings.TrimSpace(string(out)) == "PONG"
	})
	common := []string{"--state-redis", redisSock, "--state-heartbeat", "200ms"}
	dead := n.startNode(t, "10.201.3.2", append(common, "--node-id", "a")...)
	standby := n.startNode(t, "10.201.3.5", append(common, "--node-id", "s", "--standby")...)

	// One long call to the node that will die, straight from sipp.
	run := n.call(t, "one", "10.201.3.2:5060", 1, 1, 60000)
	var recs []controlplane.RecordingInfo
	waitFor(t, "an active recording", func() bool {
		adminGet(t, dead.admin, "GET", "/v1/recordings", &recs)
		return len(recs) == 1 && recs[0].Inbound == "active" && len(recs[0].Streams) == 2 && recs[0].Streams[0].CopiedPackets > 10
	})
	var stored string
	waitFor(t, "the recording in redis", func() bool {
		out, _ := exec.Command("redis-cli", "-s", redisSock, "hget", "recfork:node:a:recordings", recs[0].ConnectionID).Output()
		stored = strings.TrimSpace(string(out))
		return stored != ""
	})
	snap, err := state.Decode([]byte(stored))
	if err != nil {
		t.Fatalf("stored snapshot %s: %v", stored, err)
	}
	if snap.CallID != recs[0].CallID || len(snap.Streams) != 2 || snap.MetadataSessionID == "" {
		t.Fatalf("stored snapshot %+v for recording %+v", snap, recs[0])
	}
	if err := dead.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}

	// The SRS learns the recording ended: a BYE in the stored dialog, from
	// the standby, for the session with the stored metadata session id.
	var got map[string][]srs.SessionInfo
	waitFor(t, "the SRS to see the recording end", func() bool {
		got = n.srsSessions(t)
		return len(got) > 0
	})
	ended := got[srs.EndByeFromSRC]
	if len(ended) != 1 || len(got) != 1 || ended[0].CallID != snap.CallID {
		t.Fatalf("SRS sessions %+v, want the stored dialog %s ended by BYE", got, snap.CallID)
	}
	if id := sessionIDOf(t, filepath.Join(ended[0].Dir, "metadata.xml")); id != snap.MetadataSessionID {
		t.Fatalf("metadata session id %q at the SRS, %q stored", id, snap.MetadataSessionID)
	}
	if !strings.Contains(ended[0].Remote, "10.201.3.2") {
		t.Logf("recording started from %s", ended[0].Remote)
	}
	// The SRS has the BYE before the standby has its answer and counts the
	// recording as ended: wait for the count, do not read it once.
	var st controlplane.StatusInfo
	waitFor(t, "the standby to count the recording it ended", func() bool {
		st = standby.status(t)
		return st.State != nil && st.State.TakenOver >= 1
	})
	if st.State.TakenOver != 1 || !st.State.Standby {
		t.Fatalf("standby status %+v", st.State)
	}
	waitFor(t, "the dead node's state to be removed", func() bool {
		out, _ := exec.Command("redis-cli", "-s", redisSock, "exists", "recfork:node:a:recordings").Output()
		return strings.TrimSpace(string(out)) == "0"
	})
	b, _ := os.ReadFile(standby.log)
	if !strings.Contains(string(b), "ended a dead node's recording at the srs") {
		t.Fatal("the standby did not log the takeover")
	}
	_ = run // the caller's call died with its node; sipp is stopped at cleanup
}
