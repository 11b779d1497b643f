package controlplane_test

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/internal/testenv"
	"github.com/recfork/recfork/siprec/srs"
)

// The SIPREC interop tests: recforkd (the SRC) against recording servers and
// proxies nobody here wrote, in network namespaces, under both engines.
//
//   - a UDP-only sipp SRS (testdata/sipp/srs-udp.xml): the ~3 kB INVITE is
//     refused on TCP and goes over UDP, fragmented by IP (tshark checks);
//   - Kamailio Record-Routing in front of a sipp SRS
//     (testdata/kamailio/srs-proxy.cfg, testdata/sipp/srs-proxied.xml): the
//     ACK, the mute re-INVITE and the BYE follow the route set;
//   - two built-in SRSs, the first killed mid-call: the OPTIONS keepalive
//     moves the recording to the second, which records the rest of the tone.
func TestSRSInteropInNamespaces(t *testing.T) {
	testenv.Privileged(t)
	for _, bin := range []string{"sipp", "tshark", "kamailio"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, bin+" is not installed (.ci/run installs it)")
		}
	}
	recforkd, recforkctl := buildBinaries(t)
	for _, dp := range []string{"userspace", "ebpf"} {
		t.Run(dp+"/UDP-only sipp SRS", func(t *testing.T) { testUDPOnlySRS(t, dp, recforkd) })
		t.Run(dp+"/Kamailio in front of the SRS", func(t *testing.T) { testProxiedSRS(t, dp, recforkd) })
		t.Run(dp+"/failover to the second SRS", func(t *testing.T) { testSRSFailover(t, dp, recforkd, recforkctl) })
	}
}

// interopNet is the caller, the platform and the SRS host, each in its own
// namespace, the platform routing between the two others.
type interopNet struct {
	caller, plat, srs *testenv.Netns
	srsIf             string // the SRS host's interface
	dir               string
}

func newInteropNet(t *testing.T) *interopNet {
	n := &interopNet{caller: testenv.NewNetns(t), plat: testenv.NewNetns(t), srs: testenv.NewNetns(t), dir: t.TempDir()}
	testenv.NewVeth(t, n.caller, n.plat, "10.201.1.1/24", "10.201.1.2/24")
	v := testenv.NewVeth(t, n.srs, n.plat, "10.201.2.1/24", "10.201.2.2/24")
	n.srsIf = v.AName
	n.caller.MustIP(t, "route", "add", "default", "via", "10.201.1.2")
	n.srs.MustIP(t, "route", "add", "default", "via", "10.201.2.2")
	return n
}

// startRecforkd runs recforkd on the platform, recording to srsList; it
// returns the admin socket.
func (n *interopNet) startRecforkd(t *testing.T, recforkd, dp, srsList string, extra ...string) string {
	// A unix socket path must stay short (108 bytes); test names are long.
	sockDir, err := os.MkdirTemp("", "rfi")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	admin := filepath.Join(sockDir, "a.sock")
	args := append([]string{"--listen", "10.201.1.2:5060", "--media-ip", "10.201.1.2", "--srs", srsList,
		"--dataplane", dp, "--admin", admin, "--rtp-ports", "30000-30999", "--log-level", "debug"}, extra...)
	startProc(t, n.plat.Exec(recforkd, args...), filepath.Join(n.dir, "recforkd.log"))
	waitFor(t, "recforkd's admin API", func() bool {
		_, err := os.Stat(admin)
		return err == nil
	})
	return admin
}

// startSippSRS runs a sipp SRS scenario from testdata on the SRS host.
func (n *interopNet) startSippSRS(t *testing.T, scenario, transport string) chan error {
	dir := filepath.Join(n.dir, "sipp-srs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sf, err := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	cmd := n.srs.Exec("sipp", "-sf", sf, "-m", "1", "-i", "10.201.2.1", "-mi", "10.201.2.1", "-p", "5080",
		"-mp", "40000", "-t", transport, "-nostdin", "-timeout", "60s", "-timeout_error", "-trace_err")
	cmd.Dir = dir
	out, err := os.Create(filepath.Join(n.dir, "sipp-srs.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { out.Close() })
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
		}
	})
	ssArg := "-lun"
	if transport == "t1" {
		ssArg = "-ltn"
	}
	waitFor(t, "the sipp SRS to listen", func() bool {
		out, _ := n.srs.Exec("ss", ssArg, "sport", "= :5080").Output()
		return strings.Contains(string(out), "5080")
	})
	return done
}

// waitSippSRS waits for a sipp SRS scenario to pass.
func (n *interopNet) waitSippSRS(t *testing.T, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			b, _ := os.ReadFile(filepath.Join(n.dir, "sipp-srs.log"))
			errs, _ := filepath.Glob(filepath.Join(n.dir, "sipp-srs", "*errors.log"))
			for _, e := range errs {
				eb, _ := os.ReadFile(e)
				b = append(b, eb...)
			}
			t.Fatalf("the sipp SRS scenario failed: %v\n%s", err, tail(string(b), 40))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the sipp SRS scenario did not finish")
	}
}

// call places one sipp call streaming a 440 Hz tone for ms milliseconds to
// the platform's default app (echo); the returned channel gets sipp's exit.
func (n *interopNet) call(t *testing.T, ms int) chan error {
	dir := filepath.Join(n.dir, "caller")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "tone.wav"), ulawToneWAV(440, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "uac.xml"), fmt.Appendf(nil, sippScenario, ms), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := n.caller.Exec("sipp", "-sf", "uac.xml", "-m", "1", "-l", "1", "-i", "10.201.1.1", "-mi", "10.201.1.1",
		"-s", "echo", "10.201.1.2:5060", "-nostdin", "-timeout", "60s", "-timeout_error")
	cmd.Dir = dir
	return startSipp(t, cmd, filepath.Join(n.dir, "caller.log"))
}

func (n *interopNet) waitCall(t *testing.T, done chan error) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			b, _ := os.ReadFile(filepath.Join(n.dir, "caller.log"))
			t.Fatalf("the caller failed (the call must survive whatever the SRS does): %v\n%s", err, tail(string(b), 30))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the caller did not finish")
	}
}

// recording waits for the one recording to satisfy cond and returns it.
func recording(t *testing.T, admin, what string, cond func(controlplane.RecordingInfo) bool) controlplane.RecordingInfo {
	t.Helper()
	var recs []controlplane.RecordingInfo
	waitFor(t, what, func() bool {
		adminGet(t, admin, "GET", "/v1/recordings", &recs)
		return len(recs) == 1 && cond(recs[0])
	})
	return recs[0]
}

func testUDPOnlySRS(t *testing.T, dp, recforkd string) {
	n := newInteropNet(t)
	capFile := filepath.Join(n.dir, "srs.pcap")
	// Capture on the SRS host: what arrived there, and how.
	tshark := n.srs.Exec("tshark", "-i", n.srsIf, "-f", "udp or tcp", "-w", capFile)
	tlog := filepath.Join(n.dir, "tshark.log")
	tf := startProc(t, tshark, tlog)
	waitFor(t, "tshark to capture", func() bool {
		b, _ := os.ReadFile(tlog)
		return strings.Contains(string(b), "Capturing on")
	})
	srsDone := n.startSippSRS(t, "srs-udp.xml", "u1")
	// No transport parameter: RFC 3261 §18.1.1 picks TCP for the large
	// INVITE, the SRS refuses TCP, the SRC sends it over UDP.
	admin := n.startRecforkd(t, recforkd, dp, "sip:srs@10.201.2.1:5080", "--srs-keepalive", "0")
	callDone := n.call(t, 3000)
	rec := recording(t, admin, "an active recording over UDP", func(r controlplane.RecordingInfo) bool {
		return r.Inbound == "active" && r.Outbound == "active" && len(r.Streams) == 2 && r.Streams[0].CopiedPackets > 10
	})
	if rec.Transport != "udp" || rec.Active != "sip:srs@10.201.2.1:5080" || rec.Remote != "10.201.2.1:5080" {
		t.Fatalf("recording %+v", rec)
	}
	n.waitCall(t, callDone)
	n.waitSippSRS(t, srsDone)
	_ = tshark.Process.Signal(os.Interrupt)
	_ = tshark.Wait()
	tf.Close()

	// tshark, not our parser, says the INVITE crossed as fragmented UDP and
	// that no SIP crossed over TCP beyond the refused connection.
	out, err := exec.Command("tshark", "-r", capFile, "-Y", `sip.Method == "INVITE" && udp`,
		"-T", "fields", "-e", "ip.fragment.count", "-e", "udp.length", "-e", "sip.Require").CombinedOutput()
	if err != nil {
		t.Fatalf("tshark: %v\n%s", err, out)
	}
	var fragmented bool
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(line, "\t")
		if len(f) < 3 {
			continue
		}
		frags, _ := strconv.Atoi(f[0])
		size, _ := strconv.Atoi(f[1])
		if frags >= 2 && size > 1500 && strings.Contains(f[2], "siprec") {
			fragmented = true
		}
	}
	if !fragmented {
		t.Fatalf("no fragmented SIPREC INVITE over UDP in the capture:\n%s", out)
	}
	out, _ = exec.Command("tshark", "-r", capFile, "-Y", "tcp.flags.reset == 1 && tcp.srcport == 5080", "-T", "fields", "-e", "tcp.srcport").Output()
	if !strings.Contains(string(out), "5080") {
		t.Fatalf("the SRS host never refused the TCP connection: the fallback was not exercised")
	}
	b, _ := os.ReadFile(filepath.Join(n.dir, "recforkd.log"))
	if !strings.Contains(string(b), "sending over udp") || !strings.Contains(string(b), "transport=udp") {
		t.Fatalf("recforkd's log does not say the transport it used")
	}
}

func testProxiedSRS(t *testing.T, dp, recforkd string) {
	n := newInteropNet(t)
	cfg, err := filepath.Abs(filepath.Join("testdata", "kamailio", "srs-proxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	srsDone := n.startSippSRS(t, "srs-proxied.xml", "u1")
	klog := filepath.Join(n.dir, "kamailio.log")
	startProc(t, n.srs.Exec("kamailio", "-f", cfg, "-DD", "-E", "-w", n.dir, "-Y", n.dir,
		"-A", `SRS_ADDR="sip:10.201.2.1:5080;transport=udp"`), klog)
	waitFor(t, "kamailio to listen", func() bool {
		out, _ := n.srs.Exec("ss", "-ltn", "sport", "= :5070").Output()
		return strings.Contains(string(out), "5070")
	})
	// The SRS is known by the proxy's address only.
	admin := n.startRecforkd(t, recforkd, dp, "sip:srs@10.201.2.1:5070")
	callDone := n.call(t, 4000)
	rec := recording(t, admin, "an active recording through the proxy", func(r controlplane.RecordingInfo) bool {
		return r.Inbound == "active" && len(r.Streams) == 2 && r.Streams[0].CopiedPackets > 10
	})
	var res controlplane.RecordResult
	if code := adminGet(t, admin, "POST", "/v1/recordings/"+rec.ConnectionID+"/mute?direction=inbound", &res); code != 200 || res.Inbound != "inactive" {
		t.Fatalf("mute through the proxy: %d %+v", code, res)
	}
	n.waitCall(t, callDone)
	n.waitSippSRS(t, srsDone)
	b, _ := os.ReadFile(klog)
	for _, m := range []string{"new INVITE", "loose-routed ACK", "loose-routed INVITE", "loose-routed BYE"} {
		if !strings.Contains(string(b), m) {
			t.Errorf("kamailio did not log %q:\n%s", m, tail(string(b), 30))
		}
	}
	if strings.Contains(string(b), "without a route set") {
		t.Errorf("an in-dialog request reached the proxy without its route set")
	}
}

func testSRSFailover(t *testing.T, dp, recforkd, recforkctl string) {
	n := newInteropNet(t)
	// Two built-in SRSs on the SRS host; the first is killed mid-call.
	dirA, dirB := filepath.Join(n.dir, "srs-a"), filepath.Join(n.dir, "srs-b")
	a := n.srs.Exec(recforkctl, "srs", "--listen", "10.201.2.1:5080", "--dir", dirA, "--rtp-ports", "40000-40999")
	startProc(t, a, filepath.Join(n.dir, "srs-a.log"))
	startProc(t, n.srs.Exec(recforkctl, "srs", "--listen", "10.201.2.1:5082", "--dir", dirB, "--rtp-ports", "41000-41999"),
		filepath.Join(n.dir, "srs-b.log"))
	for _, p := range []string{"5080", "5082"} {
		waitFor(t, "an SRS on "+p, func() bool {
			out, _ := n.srs.Exec("ss", "-lun", "sport", "= :"+p).Output()
			return strings.Contains(string(out), p)
		})
	}
	const list = "sip:srs@10.201.2.1:5080,sip:srs@10.201.2.1:5082"
	admin := n.startRecforkd(t, recforkd, dp, list, "--srs-keepalive", "500ms", "--srs-keepalive-failures", "2")
	callDone := n.call(t, 9000)
	first := recording(t, admin, "a recording at the first SRS", func(r controlplane.RecordingInfo) bool {
		return r.Active == "sip:srs@10.201.2.1:5080" && len(r.Streams) == 2 && r.Streams[0].CopiedPackets > 25
	})
	if err := a.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	moved := recording(t, admin, "the recording to move to the second SRS", func(r controlplane.RecordingInfo) bool {
		return r.Active == "sip:srs@10.201.2.1:5082" && r.Failovers == 1 && len(r.Streams) == 2
	})
	if moved.SRS != list || moved.Inbound != "active" || moved.Outbound != "active" {
		t.Fatalf("after failover %+v", moved)
	}
	for _, s := range moved.Streams {
		if !strings.HasPrefix(s.Recorder, "10.201.2.1:41") {
			t.Fatalf("copies still go to %s after the failover", s.Recorder)
		}
	}
	var st controlplane.StatusInfo
	adminGet(t, admin, "GET", "/v1/status", &st)
	var downSeen bool
	for _, s := range st.SRSs {
		if s.URI == "sip:srs@10.201.2.1:5080" && !s.Up && s.Configured {
			downSeen = true
		}
	}
	if !downSeen {
		t.Fatalf("status does not show the dead SRS down: %+v", st.SRSs)
	}
	n.waitCall(t, callDone)

	// The second SRS recorded the rest of the call: one session, ended by
	// our BYE, tone in both directions, the same Communication Session as
	// the first SRS was told of.
	var info srs.SessionInfo
	waitFor(t, "the second SRS's session summary", func() bool {
		m, _ := filepath.Glob(filepath.Join(dirB, "*", "session.json"))
		if len(m) != 1 {
			return false
		}
		b, err := os.ReadFile(m[0])
		return err == nil && json.Unmarshal(b, &info) == nil
	})
	if info.EndReason != srs.EndByeFromSRC || len(info.Streams) != 2 || len(info.Violations) != 0 {
		t.Fatalf("second srs: end %q, %d streams, violations %+v", info.EndReason, len(info.Streams), info.Violations)
	}
	mdA, _ := filepath.Glob(filepath.Join(dirA, "*", "metadata.xml"))
	mdB, _ := filepath.Glob(filepath.Join(dirB, "*", "metadata.xml"))
	if len(mdA) != 1 || len(mdB) != 1 {
		t.Fatalf("metadata files: %v %v", mdA, mdB)
	}
	if sa, sb := sessionIDOf(t, mdA[0]), sessionIDOf(t, mdB[0]); sa == "" || sa != sb {
		t.Fatalf("metadata session id %q at the first SRS, %q at the second", sa, sb)
	}
	wavs := wavReport(t, recforkctl, info.Streams[0].Path, info.Streams[1].Path)
	for i, w := range wavs {
		if math.Abs(w.ToneHz-440) > 15 || w.Active < 2 {
			t.Errorf("second SRS stream %d: %+v (first SRS had %d packets copied)", i, w, first.Streams[i].CopiedPackets)
		}
	}
	b, _ := os.ReadFile(filepath.Join(n.dir, "recforkd.log"))
	if !strings.Contains(string(b), "operation=failover") {
		t.Fatalf("the document was not told of the failover (bvr.record.update operation=failover)")
	}
}

// sessionIDOf reads the session id of a metadata file.
func sessionIDOf(t *testing.T, path string) string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	i := strings.Index(s, "<session session_id=\"")
	if i < 0 {
		return ""
	}
	s = s[i+len("<session session_id=\""):]
	return s[:strings.IndexByte(s, '"')]
}
