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
// the test streams a 440 Hz tone as SRTP with pion/srtp under that key,
// recforkd (--call-srtp accept) echoes it and records it to `recforkctl
// srs` in another namespace. Checked: the answer's key is recfork's own;
// the echo opens with it; the SRS's WAVs hold the tone (the copies were the
// decrypted RTP, and with --srs-srtp SRTP again under the SRS's keys, which
// the SRS authenticated); packets under a wrong key are counted as
// authentication failures and the call carries on; tshark, from the SDP it
// saw, decodes the call leg's media as SRTP, and no payload on the wire is
// the clear tone. A DTLS-SRTP offer from sipp gets 488 naming DTLS-SRTP.
// Once with the userspace engine, once with the eBPF engine, which must hand
// the SRTP endpoint to userspace.
func TestSRTPCallInNamespaces(t *testing.T) {
	testenv.Privileged(t)
	for _, bin := range []string{"sipp", "tshark"} {
		if _, err := exec.LookPath(bin); err != nil {
			testenv.Unavailable(t, bin+" is not installed (.ci/run installs it)")
		}
	}
	recforkd, recforkctl := buildBinaries(t)
	for _, tc := range []struct {
		name, dataplane, suite string
		srsSRTP                bool
	}{
		{"userspace", "userspace", srtp.SuiteSHA1_80, false},
		{"ebpf/srs-srtp", "ebpf", srtp.SuiteSHA1_32, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			testSRTPCall(t, recforkd, recforkctl, tc.dataplane, tc.suite, tc.srsSRTP)
		})
	}
}

const srtpCallerPort = 7078

var answerLogRE = regexp.MustCompile(`ANSWER port=(\d+) crypto=(.+?) END`)

func testSRTPCall(t *testing.T, recforkd, recforkctl, dp, suite string, srsSRTP bool) {
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
	if srsSRTP {
		extra = append(extra, "--srs-srtp")
	}
	admin := n.startRecforkd(t, recforkd, dp, "sip:srs@10.201.2.1:5080", extra...)

	// DTLS-SRTP: refused with its reason (the scenario checks the Warning).
	if out, err := n.sipp(t, "srtp-dtls-refused.xml", "dtls").CombinedOutput(); err != nil {
		t.Fatalf("the DTLS-SRTP caller did not get its 488: %v\n%s", err, tail(string(out), 30))
	}

	// The caller's media socket, in the caller's namespace.
	var media *net.UDPConn
	n.caller.MustDo(t, func() error {
		var err error
		media, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(10, 201, 1, 1), Port: srtpCallerPort})
		return err
	})
	defer media.Close()
	ours, err := srtp.NewCrypto(2, suite)
	if err != nil {
		t.Fatal(err)
	}
	call := n.sipp(t, "srtp-caller.xml", "call", "-key", "crypto", ours.String(), "-key", "mport", strconv.Itoa(srtpCallerPort), "-trace_logs")
	callLog := filepath.Join(n.dir, "srtp-caller.log")
	out, err := os.Create(callLog)
	if err != nil {
		t.Fatal(err)
	}
	defer out.Close()
	call.Stdout, call.Stderr = out, out
	if err := call.Start(); err != nil {
		t.Fatal(err)
	}
	callDone := make(chan error, 1)
	go func() { callDone <- call.Wait() }()
	t.Cleanup(func() { _ = call.Process.Kill() })

	// The answer as sipp saw it.
	var answer []string
	waitFor(t, "sipp to log the answer", func() bool {
		logs, _ := filepath.Glob(filepath.Join(call.Dir, "*_logs.log"))
		for _, l := range logs {
			b, _ := os.ReadFile(l)
			if answer = answerLogRE.FindStringSubmatch(string(b)); answer != nil {
				return true
			}
		}
		return false
	})
	port, _ := strconv.Atoi(answer[1])
	theirs, err := srtp.ParseCrypto(answer[2])
	if err != nil {
		t.Fatalf("answer's a=crypto %q: %v", answer[2], err)
	}
	if theirs.Tag != 2 || theirs.Suite != suite || bytes.Equal(theirs.Key, ours.Key) {
		t.Fatalf("answered %q: want tag 2, %s, recfork's own key", answer[2], suite)
	}
	var conns []controlplane.ConnectionInfo
	waitFor(t, "the echo join", func() bool {
		adminGet(t, admin, "GET", "/v1/connections", &conns)
		return len(conns) == 1 && len(conns[0].Joined) == 1
	})
	platform := netip.AddrPortFrom(netip.MustParseAddr("10.201.1.2"), uint16(port))

	// Echoes are read and opened as they come.
	dec, _ := srtp.NewContext(theirs)
	var mu sync.Mutex
	echoed, echoBad := 0, 0
	sent := map[uint16][]byte{}
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		buf := make([]byte, 2048)
		for {
			n, err := media.Read(buf)
			if err != nil {
				return
			}
			p, err := dec.Decrypt(nil, buf[:n])
			mu.Lock()
			var h rtp.Header
			if _, herr := h.Unmarshal(buf[:n]); err == nil && herr == nil && bytes.Equal(p[12:], sent[h.SequenceNumber]) {
				echoed++
			} else {
				echoBad++
			}
			mu.Unlock()
		}
	}()

	enc, _ := srtp.NewContext(ours)
	tone := ulawToneWAV(440, 4)[46:]
	plain := map[string]bool{}
	const packets = 150
	tick := time.NewTicker(20 * time.Millisecond) // the media clock, not a wait
	for i := range packets {
		<-tick.C
		payload := tone[i*160 : (i+1)*160]
		plain[hex.EncodeToString(payload[:24])] = true
		seq := uint16(1000 + i)
		mu.Lock()
		sent[seq] = payload
		mu.Unlock()
		sendSRTP(t, media, enc, platform, seq, uint32(i*160), payload)
	}
	// A wrong key: forged packets, counted, never relayed or recorded.
	wrong, _ := srtp.NewCrypto(2, suite)
	wctx, _ := srtp.NewContext(wrong)
	for i := range 10 {
		<-tick.C
		sendSRTP(t, media, wctx, platform, uint16(2000+i), uint32((packets+i)*160), make([]byte, 160))
	}
	tick.Stop()
	var st dataplane.EngineStats
	waitFor(t, "the forged packets counted", func() bool {
		adminGet(t, admin, "GET", "/v1/stats", &st)
		return st.AuthFailures >= 10
	})
	if st.AuthFailures != 10 || st.SRTPEndpoints != 1 {
		t.Fatalf("engine stats %+v: want exactly 10 auth failures and 1 srtp endpoint", st)
	}
	waitFor(t, "the echoes", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return echoed >= packets*9/10
	})

	select {
	case err := <-callDone:
		if err != nil {
			b, _ := os.ReadFile(callLog)
			t.Fatalf("the sipp call failed: %v\n%s", err, tail(string(b), 30))
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the sipp call did not end")
	}
	media.Close()
	<-readerDone
	mu.Lock()
	if echoBad != 0 {
		t.Errorf("%d echoes did not open with the answered key or were not what was sent", echoBad)
	}
	mu.Unlock()

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
		if s.AuthFailures != 0 || s.Packets < packets*9/10 {
			t.Errorf("srs stream %d: %d packets, %d auth failures", i, s.Packets, s.AuthFailures)
		}
	}
	wout, err := exec.Command(recforkctl, "wav", "--json", info.Streams[0].Path, info.Streams[1].Path).Output()
	if err != nil {
		t.Fatalf("recforkctl wav: %v", err)
	}
	var wavs []struct {
		Active float64 `json:"active_seconds"`
		ToneHz float64 `json:"tone_hz"`
	}
	if err := json.Unmarshal(wout, &wavs); err != nil || len(wavs) != 2 {
		t.Fatalf("wav report %s: %v", wout, err)
	}
	for i, w := range wavs {
		if math.Abs(w.ToneHz-440) > 15 || w.Active < 2 {
			t.Errorf("recorded stream %d: %+v, want 440 Hz for 2 s or more", i, w)
		}
	}

	b, _ := os.ReadFile(filepath.Join(n.dir, "recforkd.log"))
	if !strings.Contains(string(b), "call media uses srtp") {
		t.Error("recforkd did not log the call's srtp")
	}
	if dp == "ebpf" && !strings.Contains(string(b), "srtp endpoint: relays and forks in userspace") {
		t.Error("the eBPF engine did not log handing the srtp endpoint to userspace")
	}
	if srsSRTP && strings.Count(string(b), "recording stream uses srtp") != 2 {
		t.Error("the recording streams did not go out as srtp")
	}

	_ = tshark.Process.Signal(os.Interrupt)
	_ = tshark.Wait()
	tf.Close()
	checkSRTPOnWire(t, capFile, port, plain)
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
func checkSRTPOnWire(t *testing.T, capFile string, platPort int, plain map[string]bool) {
	t.Helper()
	out, err := exec.Command("tshark", "-r", capFile, "-Y", "srtp.auth_tag", "-T", "fields", "-e", "udp.srcport", "-e", "udp.dstport").Output()
	if err != nil {
		t.Fatalf("tshark: %v", err)
	}
	dirs := map[string]int{}
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		dirs[l]++
	}
	toPlat, toCaller := strconv.Itoa(srtpCallerPort)+"\t"+strconv.Itoa(platPort), strconv.Itoa(platPort)+"\t"+strconv.Itoa(srtpCallerPort)
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
