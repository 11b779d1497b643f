package controlplane_test

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/srtp"
	"github.com/recfork/recfork/internal/testenv"
	"github.com/recfork/recfork/siprec/srs"
)

// TestSRTPCallInNamespaces is SRTP on calls end to end, with parts others
// wrote as the peers: sipp places a call whose INVITE offers only RTP/SAVP
// (a=crypto with a key the test made, after a suite recfork cannot use),
// the test streams a 440 Hz tone as SRTP with pion/srtp under that key, and
// recforkd (--call-srtp accept) echoes it, or bridges it to a sipp callee
// that recforkd's own RTP/SAVP offer reaches (the callee streams 1000 Hz
// back), and records the caller to `recforkctl srs` in another namespace.
// Checked: the answer's key is recfork's own; what the caller hears opens
// with it and is what was sent to recforkd (its echo, or the callee's
// media re-sealed); what the callee gets opens with the key recforkd
// offered it; the SRS's WAVs hold the tones (the copies were the decrypted
// RTP, and with --srs-srtp SRTP again under the SRS's keys, which the SRS
// authenticated); packets under a wrong key are counted as authentication
// failures and the call carries on; tshark, from the SDP it saw, decodes
// the call legs' media as SRTP, and no payload on the wire is a clear tone.
// A DTLS-SRTP offer from sipp gets 488 naming DTLS-SRTP. The eBPF engine
// must hand the SRTP endpoints to userspace.
func TestSRTPCallInNamespaces(t *testing.T) {
	testenv.Privileged(t)
	for _, bin := range []string{"sipp", "tshark"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, bin+" is not installed (.ci/run installs it)")
		}
	}
	recforkd, recforkctl := buildBinaries(t)
	for _, tc := range []srtpCallCase{
		{name: "userspace/echo", dataplane: "userspace", suite: srtp.SuiteSHA1_80},
		{name: "ebpf/echo", dataplane: "ebpf", suite: srtp.SuiteSHA1_80},
		{name: "ebpf/bridge/srs-srtp", dataplane: "ebpf", suite: srtp.SuiteSHA1_32, bridge: true, srsSRTP: true},
	} {
		t.Run(tc.name, func(t *testing.T) { testSRTPCall(t, recforkd, recforkctl, tc) })
	}
}

type srtpCallCase struct {
	name, dataplane, suite string
	bridge, srsSRTP        bool
}

const (
	srtpCallerPort = 7078
	srtpCalleePort = 7080
	srtpPackets    = 150
)

var (
	answerLogRE = regexp.MustCompile(`ANSWER port=(\d+) crypto=(.+?) END`)
	offerLogRE  = regexp.MustCompile(`OFFER port=(\d+) key=(\S+) END`)
)

// srtpMedia is one party's media socket in a namespace: it sends a tone as
// SRTP and opens and checks what it receives.
type srtpMedia struct {
	conn     *net.UDPConn
	dec      *srtp.Context
	mu       sync.Mutex
	ok, bad  int
	done     chan struct{}
	expected *sentLog
}

// sentLog is what was sent, by sequence number (relays keep it).
type sentLog struct {
	mu sync.Mutex
	m  map[uint16][]byte
}

func (s *sentLog) put(seq uint16, p []byte) { s.mu.Lock(); s.m[seq] = p; s.mu.Unlock() }
func (s *sentLog) get(seq uint16) []byte    { s.mu.Lock(); defer s.mu.Unlock(); return s.m[seq] }

func listenIn(t *testing.T, ns *testenv.Netns, port int) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	ns.MustDo(t, func() error {
		var err error
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(10, 201, 1, 1), Port: port})
		return err
	})
	t.Cleanup(func() { c.Close() })
	return c
}

// receive starts opening what arrives with key and matching it to sent.
func (m *srtpMedia) receive(t *testing.T, key srtp.Crypto, sent *sentLog) {
	var err error
	if m.dec, err = srtp.NewContext(key); err != nil {
		t.Fatal(err)
	}
	m.expected, m.done = sent, make(chan struct{})
	go func() {
		defer close(m.done)
		buf := make([]byte, 2048)
		for {
			n, err := m.conn.Read(buf)
			if err != nil {
				return
			}
			var h rtp.Header
			_, herr := h.Unmarshal(buf[:n])
			p, err := m.dec.Decrypt(nil, buf[:n])
			m.mu.Lock()
			if err == nil && herr == nil && len(p) > 12 && bytes.Equal(p[12:], m.expected.get(h.SequenceNumber)) {
				m.ok++
			} else {
				m.bad++
			}
			m.mu.Unlock()
		}
	}()
}

func (m *srtpMedia) counts() (ok, bad int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ok, m.bad
}

func (m *srtpMedia) stop() { m.conn.Close(); <-m.done }

// waitLog waits for a sipp -trace_logs line matching re in dir.
func waitLog(t *testing.T, dir, what string, re *regexp.Regexp) []string {
	t.Helper()
	var got []string
	waitFor(t, what, func() bool {
		logs, _ := filepath.Glob(filepath.Join(dir, "*_logs.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			if got = re.FindStringSubmatch(string(b)); got != nil {
				return true
			}
		}
		return false
	})
	return got
}

func startSipp(t *testing.T, cmd *exec.Cmd, logPath string) chan error {
	t.Helper()
	out, err := os.Create(logPath)
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
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return done
}

func waitSipp(t *testing.T, done chan error, what, logPath string) {
	t.Helper()
	select {
	case err := <-done:
		if err != nil {
			b, _ := os.ReadFile(logPath)
			t.Fatalf("%s failed: %v\n%s", what, err, tail(string(b), 30))
		}
	case <-time.After(60 * time.Second):
		t.Fatalf("%s did not end", what)
	}
}

func testSRTPCall(t *testing.T, recforkd, recforkctl string, tc srtpCallCase) {
	n := newInteropNet(t)
	capFile := filepath.Join(n.dir, "caller.pcap")
	tshark := n.caller.Exec("tshark", "-i", "any", "-f", "udp", "-w", capFile)
	tlog := filepath.Join(n.dir, "tshark.log")
	tf := startProc(t, tshark, tlog)
	waitFor(t, "tshark to capture", func() bool {
		b, _ := os.ReadFile(tlog)
		return strings.Contains(string(b), "Capturing on")
	})
	dir := filepath.Join(n.dir, "srs")
	startProc(t, n.srs.Exec(recforkctl, "srs", "--listen", "10.201.2.1:5080", "--dir", dir, "--rtp-ports", "40000-40999"),
		filepath.Join(n.dir, "srs.log"))
	waitFor(t, "the SRS to listen", func() bool {
		out, _ := n.srs.Exec("ss", "-lun", "sport", "= :5080").Output()
		return strings.Contains(string(out), "5080")
	})
	extra := []string{"--srs-keepalive", "0", "--call-srtp", "accept"}
	if tc.srsSRTP {
		extra = append(extra, "--srs-srtp")
	}
	if tc.bridge {
		extra = append(extra, "--destination", "sip:callee@10.201.1.1:5070")
	}
	admin := n.startRecforkd(t, recforkd, tc.dataplane, "sip:srs@10.201.2.1:5080", extra...)

	// DTLS-SRTP: refused with its reason (the scenario checks the Warning).
	if out, err := n.sipp(t, "srtp-dtls-refused.xml", "dtls").CombinedOutput(); err != nil {
		t.Fatalf("the DTLS-SRTP caller did not get its 488: %v\n%s", err, tail(string(out), 30))
	}

	sent := &sentLog{m: map[uint16][]byte{}}
	caller := &srtpMedia{conn: listenIn(t, n.caller, srtpCallerPort)}
	var callee *srtpMedia
	var calleeKey srtp.Crypto
	var calleeDone chan error
	calleeDir := filepath.Join(n.dir, "sipp-callee")
	if tc.bridge {
		callee = &srtpMedia{conn: listenIn(t, n.caller, srtpCalleePort)}
		var err error
		if calleeKey, err = srtp.NewCrypto(1, srtp.SuiteSHA1_80); err != nil {
			t.Fatal(err)
		}
		inline := strings.TrimPrefix(calleeKey.String(), "1 "+srtp.SuiteSHA1_80+" inline:")
		sf, _ := filepath.Abs(filepath.Join("testdata", "sipp", "srtp-callee.xml"))
		if err := os.MkdirAll(calleeDir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := n.caller.Exec("sipp", "-sf", sf, "-m", "1", "-i", "10.201.1.1", "-p", "5070", "-key", "ckey", inline,
			"-key", "mport", strconv.Itoa(srtpCalleePort), "-nostdin", "-timeout", "60s", "-timeout_error", "-trace_logs")
		cmd.Dir = calleeDir
		calleeDone = startSipp(t, cmd, filepath.Join(n.dir, "sipp-callee.log"))
		waitFor(t, "the sipp callee to listen", func() bool {
			out, _ := n.caller.Exec("ss", "-lun", "sport", "= :5070").Output()
			return strings.Contains(string(out), "5070")
		})
	}

	ours, err := srtp.NewCrypto(2, tc.suite)
	if err != nil {
		t.Fatal(err)
	}
	call := n.sipp(t, "srtp-caller.xml", "call", "-key", "crypto", ours.String(), "-key", "mport", strconv.Itoa(srtpCallerPort), "-trace_logs")
	callLog := filepath.Join(n.dir, "sipp-call.log")
	callDone := startSipp(t, call, callLog)

	answer := waitLog(t, call.Dir, "sipp to log the answer", answerLogRE)
	port, _ := strconv.Atoi(answer[1])
	theirs, err := srtp.ParseCrypto(answer[2])
	if err != nil {
		t.Fatalf("answer's a=crypto %q: %v", answer[2], err)
	}
	if theirs.Tag != 2 || theirs.Suite != tc.suite || bytes.Equal(theirs.Key, ours.Key) {
		t.Fatalf("answered %q: want tag 2, %s, recfork's own key", answer[2], tc.suite)
	}
	caller.receive(t, theirs, sent)
	platform := netip.AddrPortFrom(netip.MustParseAddr("10.201.1.2"), uint16(port))
	var calleePlatform netip.AddrPort
	calleePort := 0
	if tc.bridge {
		offer := waitLog(t, calleeDir, "the callee to log recforkd's offer", offerLogRE)
		calleePort, _ = strconv.Atoi(offer[1])
		offered, err := srtp.ParseCrypto("1 " + srtp.SuiteSHA1_80 + " inline:" + offer[2])
		if err != nil {
			t.Fatalf("recforkd's offered key %q: %v", offer[2], err)
		}
		if bytes.Equal(offered.Key, theirs.Key) || bytes.Equal(offered.Key, ours.Key) {
			t.Fatal("recforkd offered the callee a key of the caller's leg")
		}
		callee.receive(t, offered, sent)
		calleePlatform = netip.AddrPortFrom(netip.MustParseAddr("10.201.1.2"), uint16(calleePort))
	}
	conns := 1
	if tc.bridge {
		conns = 2
	}
	waitFor(t, "the app's join", func() bool {
		var cs []controlplane.ConnectionInfo
		adminGet(t, admin, "GET", "/v1/connections", &cs)
		if len(cs) != conns {
			return false
		}
		for _, c := range cs {
			if len(c.Joined) != 1 || c.State != controlplane.StateConnected {
				return false
			}
		}
		return true
	})

	enc, _ := srtp.NewContext(ours)
	var calleeEnc *srtp.Context
	if tc.bridge {
		calleeEnc, _ = srtp.NewContext(calleeKey)
	}
	tone440, tone1000 := ulawToneWAV(440, 4)[46:], ulawToneWAV(1000, 4)[46:]
	plain := map[string]bool{}
	tick := time.NewTicker(20 * time.Millisecond) // the media clock, not a wait
	for i := range srtpPackets {
		<-tick.C
		p := tone440[i*160 : (i+1)*160]
		plain[hex.EncodeToString(p[:24])] = true
		sent.put(uint16(1000+i), p)
		sendSRTP(t, caller.conn, enc, platform, uint16(1000+i), uint32(i*160), p)
		if tc.bridge {
			q := tone1000[i*160 : (i+1)*160]
			plain[hex.EncodeToString(q[:24])] = true
			sent.put(uint16(5000+i), q)
			sendSRTP(t, callee.conn, calleeEnc, calleePlatform, uint16(5000+i), uint32(i*160), q)
		}
	}
	// A wrong key: forged packets, counted, never relayed or recorded.
	wrong, _ := srtp.NewCrypto(2, tc.suite)
	wctx, _ := srtp.NewContext(wrong)
	for i := range 10 {
		<-tick.C
		sendSRTP(t, caller.conn, wctx, platform, uint16(2000+i), uint32((srtpPackets+i)*160), make([]byte, 160))
	}
	tick.Stop()
	var st dataplane.EngineStats
	waitFor(t, "the forged packets counted", func() bool {
		adminGet(t, admin, "GET", "/v1/stats", &st)
		return st.AuthFailures >= 10
	})
	if st.AuthFailures != 10 || st.SRTPEndpoints != conns {
		t.Fatalf("engine stats %+v: want exactly 10 auth failures and %d srtp endpoints", st, conns)
	}
	parties := []*srtpMedia{caller}
	if tc.bridge {
		parties = append(parties, callee)
	}
	for _, p := range parties {
		waitFor(t, "the media relayed to each party", func() bool {
			ok, _ := p.counts()
			return ok >= srtpPackets*9/10
		})
	}
	waitSipp(t, callDone, "the sipp call", callLog)
	if tc.bridge {
		waitSipp(t, calleeDone, "the sipp callee", filepath.Join(n.dir, "sipp-callee.log"))
	}
	for i, p := range parties {
		p.stop()
		if _, bad := p.counts(); bad != 0 {
			t.Errorf("party %d: %d packets did not open with its leg's key or were not what was sent", i, bad)
		}
	}

	var info srs.SessionInfo
	waitFor(t, "the SRS's session summary", func() bool {
		m, _ := filepath.Glob(filepath.Join(dir, "*", "session.json"))
		if len(m) != 1 {
			return false
		}
		b, err := os.ReadFile(m[0])
		return err == nil && json.Unmarshal(b, &info) == nil && info.State == srs.StateEnded
	})
	if len(info.Streams) != 2 {
		t.Fatalf("srs session %+v", info)
	}
	for i, s := range info.Streams {
		if s.AuthFailures != 0 || s.Packets < srtpPackets*9/10 {
			t.Errorf("srs stream %d: %d packets, %d auth failures", i, s.Packets, s.AuthFailures)
		}
	}
	wavs := wavReport(t, recforkctl, info.Streams[0].Path, info.Streams[1].Path)
	// The caller's recording: what it said, then what it heard.
	want := []float64{440, 440}
	if tc.bridge {
		want[1] = 1000
	}
	for i, w := range wavs {
		if math.Abs(w.ToneHz-want[i]) > 15 || w.Active < 2 {
			t.Errorf("recorded stream %d: %+v, want %.0f Hz for 2 s or more", i, w, want[i])
		}
	}

	b, _ := os.ReadFile(filepath.Join(n.dir, "recforkd.log"))
	if c := strings.Count(string(b), "call media uses srtp"); c != 1 {
		t.Errorf("recforkd logged srtp for %d answered calls, want 1", c)
	}
	if tc.dataplane == "ebpf" && strings.Count(string(b), "srtp endpoint: relays and forks in userspace") != conns {
		t.Errorf("the eBPF engine did not log handing each srtp endpoint (%d) to userspace", conns)
	}
	if tc.srsSRTP && strings.Count(string(b), "recording stream uses srtp") != 2 {
		t.Error("the recording streams did not go out as srtp")
	}

	_ = tshark.Process.Signal(os.Interrupt)
	_ = tshark.Wait()
	tf.Close()
	checkSRTPOnWire(t, capFile, srtpCallerPort, port, plain)
	if tc.bridge {
		checkSRTPOnWire(t, capFile, srtpCalleePort, calleePort, plain)
	}
}

func sendSRTP(t *testing.T, c *net.UDPConn, ctx *srtp.Context, dst netip.AddrPort, seq uint16, ts uint32, payload []byte) {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: ts, SSRC: 0xca11e5}, Payload: payload}
	clear, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	s, err := ctx.Encrypt(nil, clear)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.WriteToUDPAddrPort(s, dst); err != nil && !errors.Is(err, net.ErrClosed) {
		t.Fatal(err)
	}
}

// checkSRTPOnWire reads the caller's capture with tshark: the call leg's
// media both ways is decoded as SRTP (tshark follows the SDP it saw: an
// RTP/SAVP m-line sets the conversation up as SRTP, whose tag it shows as
// srtp.auth_tag), and decoded as plain RTP no payload is the clear tone.
func checkSRTPOnWire(t *testing.T, capFile string, partyPort, platPort int, plain map[string]bool) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", capFile, "-Y", "srtp.auth_tag", "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	dirs := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		dirs[l]++
	}
	toPlat, toCaller := strconv.Itoa(partyPort)+"\t"+strconv.Itoa(platPort), strconv.Itoa(platPort)+"\t"+strconv.Itoa(partyPort)
	if dirs[toPlat] < 100 || dirs[toCaller] < 100 {
		t.Fatalf("tshark decoded %d packets to the platform and %d back as SRTP, want 100 or more each:\n%s", dirs[toPlat], dirs[toCaller], tail(string(out), 10))
	}
	// What follows the RTP header, whichever way tshark labels it.
	out, err = exec.Command("tshark", "-r", capFile, "-d", "udp.port=="+strconv.Itoa(platPort)+",rtp", "-Y", "rtp",
		"-T", "fields", "-e", "udp.srcport", "-e", "rtp.payload", "-e", "srtp.enc_payload").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	seen := 0
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 2 {
			continue
		}
		payload := strings.ReplaceAll(strings.Join(f[1:], ""), ":", "")
		if len(payload) < 48 {
			continue
		}
		seen++
		for p := range plain {
			if strings.Contains(payload, p) {
				t.Fatalf("clear tone on the wire: %s", l)
			}
		}
	}
	if seen < 200 {
		t.Fatalf("tshark decoded only %d media packets on the call leg", seen)
	}
}

// sipp runs a scenario from testdata/sipp as a caller toward recforkd.
func (n *interopNet) sipp(t *testing.T, scenario, name string, extra ...string) *exec.Cmd {
	t.Helper()
	dir := filepath.Join(n.dir, "sipp-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	sf, err := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
	if err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-sf", sf, "-m", "1", "-l", "1", "-i", "10.201.1.1", "-s", "echo", "10.201.1.2:5060",
		"-nostdin", "-timeout", "60s", "-timeout_error"}, extra...)
	cmd := n.caller.Exec("sipp", args...)
	cmd.Dir = dir
	return cmd
}
