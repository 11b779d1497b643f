package controlplane_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/internal/testenv"
	"github.com/recfork/recfork/siprec/srs"
)

// The end-to-end test: caller, platform and SRS each in their own network
// namespace, the platform hub-routed between the two. The caller is sipp
// (an independent SIP and RTP implementation) streaming a 440 Hz PCMU tone;
// the platform is the recforkd binary with the embedded default app (which
// echoes the caller, so both directions carry the tone); the SRS is the
// built-in one run as `recforkctl srs` in strict mode.

const sippScenario = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="recfork e2e caller">
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
  <recv response="200" rtd="true"/>
  <send><![CDATA[
ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
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
BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
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

// sippSRS is a strict scripted SRS: each <ereg check_it> fails the scenario
// (and sipp's exit status) when the SRC's message lacks what RFC 7866 and
// notes/BVR-RECORD.md require. It expects: the SIPREC INVITE, a re-INVITE
// muting inbound (a=inactive), one unmuting it (back to sendonly), the BYE.
const sippSRS = `<?xml version="1.0" encoding="ISO-8859-1" ?>
<!DOCTYPE scenario SYSTEM "sipp.dtd">
<scenario name="strict SRS">
  <recv request="INVITE">
    <action>
      <ereg regexp="siprec" search_in="hdr" header="Require:" check_it="true" assign_to="chk"/>
      <ereg regexp="\+sip\.src" search_in="hdr" header="Contact:" check_it="true" assign_to="chk"/>
      <ereg regexp="multipart/mixed" search_in="hdr" header="Content-Type:" check_it="true" assign_to="chk"/>
      <ereg regexp="Content-Type: application/rs-metadata\+xml" search_in="body" check_it="true" assign_to="chk"/>
      <ereg regexp="Content-Disposition: recording-session" search_in="body" check_it="true" assign_to="chk"/>
      <ereg regexp="m=audio [0-9]+ RTP/AVP 0[[:space:]]+a=rtpmap:0 PCMU/8000[[:space:]]+a=label:1[[:space:]]+a=sendonly" search_in="body" check_it="true" assign_to="chk"/>
      <ereg regexp="m=audio [0-9]+ RTP/AVP 0[[:space:]]+a=rtpmap:0 PCMU/8000[[:space:]]+a=label:2[[:space:]]+a=sendonly" search_in="body" check_it="true" assign_to="chk"/>
      <ereg regexp="urn:ietf:params:xml:ns:recording:1" search_in="body" check_it="true" assign_to="chk"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]SRS[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:srs@[local_ip]:[local_port]>;+sip.srs
Content-Type: application/sdp
Content-Length: [len]

v=0
o=srs 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=recvonly
a=label:1
m=audio [media_port+2] RTP/AVP 0
a=recvonly
a=label:2
]]></send>
  <recv request="ACK"/>
  <recv request="INVITE">
    <action>
      <ereg regexp="a=label:1[[:space:]]+a=inactive" search_in="body" check_it="true" assign_to="chk"/>
      <ereg regexp="a=label:2[[:space:]]+a=sendonly" search_in="body" check_it="true" assign_to="chk"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:srs@[local_ip]:[local_port]>;+sip.srs
Content-Type: application/sdp
Content-Length: [len]

v=0
o=srs 1 2 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=inactive
a=label:1
m=audio [media_port+2] RTP/AVP 0
a=recvonly
a=label:2
]]></send>
  <recv request="ACK"/>
  <recv request="INVITE">
    <action>
      <ereg regexp="a=label:1[[:space:]]+a=sendonly" search_in="body" check_it="true" assign_to="chk"/>
      <ereg regexp="a=label:2[[:space:]]+a=sendonly" search_in="body" check_it="true" assign_to="chk"/>
    </action>
  </recv>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:srs@[local_ip]:[local_port]>;+sip.srs
Content-Type: application/sdp
Content-Length: [len]

v=0
o=srs 1 3 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio [media_port] RTP/AVP 0
a=recvonly
a=label:1
m=audio [media_port+2] RTP/AVP 0
a=recvonly
a=label:2
]]></send>
  <recv request="ACK"/>
  <recv request="BYE"/>
  <send><![CDATA[
SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0
]]></send>
</scenario>
`

// ulawToneWAV is a µ-law WAV (format 7) of a tone, what sipp's rtp_stream plays.
func ulawToneWAV(freq float64, seconds int) []byte {
	n := 8000 * seconds
	data := make([]byte, n)
	for i := range data {
		data[i] = ulaw(int16(8000 * math.Sin(2*math.Pi*freq*float64(i)/8000)))
	}
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(4+26+8+n))
	b.WriteString("WAVEfmt ")
	_ = binary.Write(&b, binary.LittleEndian, []any{uint32(18), uint16(7), uint16(1), uint32(8000), uint32(8000), uint16(1), uint16(8), uint16(0)})
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(n))
	b.Write(data)
	return b.Bytes()
}

func ulaw(s int16) byte {
	x, sign := int(s), 0
	if x < 0 {
		x, sign = -x, 0x80
	}
	x = min(x, 32635) + 0x84
	exp := 7
	for mask := 0x4000; x&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	return ^byte(sign | exp<<4 | (x>>(exp+3))&0x0f)
}

// buildBinaries builds recforkd and recforkctl once for the e2e tests.
func buildBinaries(t *testing.T) (recforkd, recforkctl string) {
	t.Helper()
	dir := t.TempDir()
	out, err := exec.Command("go", "build", "-o", dir+"/", "../cmd/recforkd", "../cmd/recforkctl").CombinedOutput()
	if err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return filepath.Join(dir, "recforkd"), filepath.Join(dir, "recforkctl")
}

// startProc starts cmd with its output in a file and stops it (SIGTERM, then
// wait) when the test ends.
// wavInfo is one file of `recforkctl wav --json`.
type wavInfo struct {
	Active  float64 `json:"active_seconds"`
	Gap     float64 `json:"gap_seconds"`
	ToneHz  float64 `json:"tone_hz"`
	Seconds float64 `json:"seconds"`
}

// wavReport runs `recforkctl wav --json` on the files, one report each.
func wavReport(t *testing.T, recforkctl string, paths ...string) []wavInfo {
	t.Helper()
	out, err := exec.Command(recforkctl, append([]string{"wav", "--json"}, paths...)...).Output()
	if err != nil {
		t.Fatalf("recforkctl wav: %v", err)
	}
	var wavs []wavInfo
	if err := json.Unmarshal(out, &wavs); err != nil || len(wavs) != len(paths) {
		t.Fatalf("wav report %s: %v", out, err)
	}
	return wavs
}

func startProc(t *testing.T, cmd *exec.Cmd, logPath string) *os.File {
	t.Helper()
	f, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = f, f
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			_ = cmd.Process.Kill()
			<-done
			t.Errorf("%s did not stop on SIGINT", filepath.Base(cmd.Path))
		}
		f.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("%s:\n%s", logPath, tail(string(b), 40))
		}
	})
	return f
}

func tail(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func TestEndToEndInNamespaces(t *testing.T) {
	testenv.Privileged(t)
	if _, err := exec.LookPath("sipp"); err != nil {
		testenv.Unavailable(t, "sipp (Debian sip-tester) is not installed")
	}
	recforkd, recforkctl := buildBinaries(t)
	for _, dp := range []string{"userspace", "ebpf"} {
		t.Run(dp+"/built-in SRS", func(t *testing.T) { testEndToEnd(t, dp, srsBuiltIn, recforkd, recforkctl) })
		t.Run(dp+"/sipp SRS", func(t *testing.T) { testEndToEnd(t, dp, srsSipp, recforkd, recforkctl) })
		t.Run(dp+"/SRS down and a flood", func(t *testing.T) { testEndToEnd(t, dp, srsDown, recforkd, recforkctl) })
	}
}

// What plays the SRS in an end-to-end run.
const (
	srsBuiltIn = iota // `recforkctl srs`, strict
	srsSipp           // a scripted sipp SRS checking every message
	srsDown           // nothing: the recording fails, the call must not
)

func testEndToEnd(t *testing.T, dp string, srsKind int, recforkd, recforkctl string) {
	sippSRSMode := srsKind == srsSipp
	callerNS, platNS, srsNS := testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t)
	testenv.NewVeth(t, callerNS, platNS, "10.201.1.1/24", "10.201.1.2/24")
	testenv.NewVeth(t, srsNS, platNS, "10.201.2.1/24", "10.201.2.2/24")
	callerNS.MustIP(t, "route", "add", "default", "via", "10.201.1.2")
	srsNS.MustIP(t, "route", "add", "default", "via", "10.201.2.2")

	dir := t.TempDir()
	srsDir := filepath.Join(dir, "srs")
	var srsDone chan error
	if sippSRSMode {
		if err := os.MkdirAll(srsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(srsDir, "srs.xml"), []byte(sippSRS), 0o644); err != nil {
			t.Fatal(err)
		}
		cmd := srsNS.Exec("sipp", "-sf", "srs.xml", "-m", "1", "-i", "10.201.2.1", "-mi", "10.201.2.1", "-p", "5080",
			"-mp", "40000", "-t", "t1", "-nostdin", "-timeout", "60s", "-timeout_error", "-trace_err")
		cmd.Dir = srsDir
		out, err := os.Create(filepath.Join(dir, "sipp-srs.log"))
		if err != nil {
			t.Fatal(err)
		}
		defer out.Close()
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		srsDone = make(chan error, 1)
		go func() { srsDone <- cmd.Wait() }()
		t.Cleanup(func() {
			_ = cmd.Process.Kill()
			if t.Failed() {
				b, _ := os.ReadFile(filepath.Join(dir, "sipp-srs.log"))
				t.Logf("sipp SRS:\n%s", tail(string(b), 30))
			}
		})
		// sipp takes a moment to listen; the recording must not race it.
		waitFor(t, "the sipp SRS to listen", func() bool {
			out, _ := srsNS.Exec("ss", "-ltn", "sport", "= :5080").Output()
			return strings.Contains(string(out), ":5080")
		})
	} else if srsKind == srsBuiltIn {
		startProc(t, srsNS.Exec(recforkctl, "srs", "--listen", "10.201.2.1:5080", "--dir", srsDir), filepath.Join(dir, "srs.log"))
	}

	admin := filepath.Join(dir, "admin.sock")
	// The scripted sipp SRS knows only its scenario: no OPTIONS probes.
	keepalive := "10s"
	if sippSRSMode {
		keepalive = "0"
	}
	startProc(t, platNS.Exec(recforkd, "--listen", "10.201.1.2:5060", "--media-ip", "10.201.1.2",
		"--srs", "sip:srs@10.201.2.1:5080", "--srs-keepalive", keepalive, "--dataplane", dp, "--admin", admin,
		"--rtp-ports", "30000-30999", "--log-level", "debug"), filepath.Join(dir, "recforkd.log"))
	waitFor(t, "recforkd's admin API", func() bool {
		_, err := os.Stat(admin)
		return err == nil
	})

	sippDir := filepath.Join(dir, "sipp")
	if err := os.MkdirAll(sippDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(sippDir, "tone.wav"), ulawToneWAV(440, 5), 0o644); err != nil {
		t.Fatal(err)
	}
	callMS := 4000
	if srsKind == srsDown {
		// The refused TCP connection is retried over UDP (RFC 3261
		// §18.1.1), which an absent SRS leaves unanswered until the INVITE
		// timeout (8 s): the call outlasts it so the document hears.
		callMS = 12000
	}
	if err := os.WriteFile(filepath.Join(sippDir, "uac.xml"), fmt.Appendf(nil, sippScenario, callMS), 0o644); err != nil {
		t.Fatal(err)
	}
	sipp := callerNS.Exec("sipp", "-sf", "uac.xml", "-m", "1", "-l", "1", "-i", "10.201.1.1", "-mi", "10.201.1.1",
		"-s", "echo", "10.201.1.2:5060", "-nostdin", "-timeout", "30s", "-timeout_error")
	sipp.Dir = sippDir
	sippOut := filepath.Join(dir, "sipp.log")
	f, err := os.Create(sippOut)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sipp.Stdout, sipp.Stderr = f, f
	if err := sipp.Start(); err != nil {
		t.Fatal(err)
	}
	sippDone := make(chan error, 1)
	go func() { sippDone <- sipp.Wait() }()

	if srsKind == srsDown {
		// A flood of malformed SIP from the caller's side meanwhile.
		callerNS.MustDo(t, func() error {
			c, err := net.Dial("udp", "10.201.1.2:5060")
			if err != nil {
				return err
			}
			defer c.Close()
			for i := 0; i < 500; i++ {
				msg := []string{"INVITE sip:x SIP/2.0\r\n\r\n", "\x00\x01garbage", "SIP/2.0 200 OK\r\n\r\n",
					"INVITE sip:x@10.201.1.2 SIP/2.0\r\nVia: SIP/2.0/UDP 10.201.1.1:9;branch=z9hG4bKf" + fmt.Sprint(i) +
						"\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:x@y>\r\nCall-ID: flood" + fmt.Sprint(i) +
						"\r\nCSeq: 1 INVITE\r\nContact: <sip:a@10.201.1.1:9>\r\nContent-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n"}[i%4]
				if _, err := c.Write([]byte(msg)); err != nil {
					return err
				}
			}
			return nil
		})
		select {
		case err := <-sippDone:
			if err != nil {
				b, _ := os.ReadFile(sippOut)
				t.Fatalf("sipp with the SRS down: %v\n%s", err, tail(string(b), 30))
			}
		case <-time.After(40 * time.Second):
			_ = sipp.Process.Kill()
			t.Fatal("sipp did not finish")
		}
		var st dataplane.EngineStats
		waitFor(t, "an empty data plane", func() bool {
			adminGet(t, admin, "GET", "/v1/stats", &st)
			return st.Endpoints == 0 && st.Forks == 0 && st.Joins == 0
		})
		var recs []controlplane.RecordingInfo
		if adminGet(t, admin, "GET", "/v1/recordings", &recs); len(recs) != 0 {
			t.Fatalf("recordings with the SRS down: %+v", recs)
		}
		b, _ := os.ReadFile(filepath.Join(dir, "recforkd.log"))
		if !strings.Contains(string(b), "error.bvr.record") {
			t.Fatal("the document was not told that recording failed")
		}
		return
	}

	// The recording is up with both directions active.
	var recs []controlplane.RecordingInfo
	waitFor(t, "an active recording", func() bool {
		adminGet(t, admin, "GET", "/v1/recordings", &recs)
		return len(recs) == 1 && recs[0].Inbound == "active" && recs[0].Outbound == "active" &&
			len(recs[0].Streams) == 2 && recs[0].Streams[0].CopiedPackets > 10
	})
	id := recs[0].ConnectionID
	checkEchoPaths(t, admin, dp, id)

	// Mute the inbound direction mid-call: no copy leaves after the answer.
	var mute controlplane.RecordResult
	if code := adminGet(t, admin, "POST", "/v1/recordings/"+id+"/mute?direction=inbound", &mute); code != 200 || mute.Inbound != "inactive" {
		t.Fatalf("mute: %d %+v", code, mute)
	}
	var after []controlplane.RecordingInfo
	adminGet(t, admin, "GET", "/v1/recordings", &after)
	copiedAtMute := after[0].Streams[0].CopiedPackets
	waitFor(t, "muted packets to be counted", func() bool {
		adminGet(t, admin, "GET", "/v1/recordings", &after)
		return after[0].Streams[0].MutedPackets >= 25
	})
	if got := after[0].Streams[0].CopiedPackets; got != copiedAtMute {
		t.Fatalf("inbound copies went on while muted: %d then %d", copiedAtMute, got)
	}
	var unmute controlplane.RecordResult
	if code := adminGet(t, admin, "POST", "/v1/recordings/"+id+"/unmute?direction=inbound", &unmute); code != 200 || unmute.Inbound != "active" {
		t.Fatalf("unmute: %d %+v", code, unmute)
	}
	// With the built-in SRS, freeze the copies (both directions inactive)
	// once the inbound copies resumed, so the SRS's packet counts can be
	// compared exactly with the data plane's.
	var frozen []controlplane.RecordingInfo
	if srsKind == srsBuiltIn {
		waitFor(t, "inbound copies to resume", func() bool {
			adminGet(t, admin, "GET", "/v1/recordings", &frozen)
			return frozen[0].Streams[0].CopiedPackets >= copiedAtMute+50
		})
		var all controlplane.RecordResult
		if code := adminGet(t, admin, "POST", "/v1/recordings/"+id+"/mute", &all); code != 200 || all.Outbound != "inactive" {
			t.Fatalf("mute both: %d %+v", code, all)
		}
		adminGet(t, admin, "GET", "/v1/recordings", &frozen)
	}

	select {
	case err := <-sippDone:
		if err != nil {
			b, _ := os.ReadFile(sippOut)
			t.Fatalf("sipp: %v\n%s", err, tail(string(b), 30))
		}
	case <-time.After(40 * time.Second):
		_ = sipp.Process.Kill()
		t.Fatal("sipp did not finish")
	}

	// The caller's BYE ended the recording; nothing is left in the data plane.
	var conns []controlplane.ConnectionInfo
	waitFor(t, "the call to end", func() bool {
		adminGet(t, admin, "GET", "/v1/connections", &conns)
		return len(conns) == 0
	})
	var st dataplane.EngineStats
	waitFor(t, "an empty data plane", func() bool {
		adminGet(t, admin, "GET", "/v1/stats", &st)
		return st.Endpoints == 0 && st.Forks == 0 && st.Joins == 0
	})
	if st.Engine != dp {
		t.Fatalf("engine %q, want %q", st.Engine, dp)
	}
	if sippSRSMode {
		// The scripted SRS checked every message's shape; its exit status
		// says whether all of them held.
		select {
		case err := <-srsDone:
			if err != nil {
				b, _ := os.ReadFile(filepath.Join(dir, "sipp-srs.log"))
				errs, _ := filepath.Glob(filepath.Join(srsDir, "*errors.log"))
				for _, e := range errs {
					eb, _ := os.ReadFile(e)
					b = append(b, eb...)
				}
				t.Fatalf("the strict SRS scenario failed: %v\n%s", err, tail(string(b), 40))
			}
		case <-time.After(30 * time.Second):
			t.Fatal("the strict SRS scenario did not finish")
		}
		return
	}

	// The SRS's view: one session, ended by our BYE, two streams with audio,
	// no SIPREC rule broken; the inbound file has the muted window.
	var info srs.SessionInfo
	waitFor(t, "the SRS's session summary", func() bool {
		m, _ := filepath.Glob(filepath.Join(srsDir, "*", "session.json"))
		if len(m) != 1 {
			return false
		}
		b, err := os.ReadFile(m[0])
		return err == nil && json.Unmarshal(b, &info) == nil
	})
	if info.EndReason != srs.EndByeFromSRC || len(info.Streams) != 2 || len(info.Violations) != 0 {
		t.Fatalf("srs session: end %q, %d streams, violations %+v", info.EndReason, len(info.Streams), info.Violations)
	}
	for i, s := range info.Streams {
		if s.Packets < 40 {
			t.Errorf("stream %s: %d packets", s.Label, s.Packets)
		}
		// Exactly what the data plane copied arrived, per direction.
		if copied := frozen[0].Streams[i].CopiedPackets; s.Packets+s.RTCPPackets != copied {
			t.Errorf("stream %s (%s): the SRS got %d RTP + %d RTCP, the data plane copied %d",
				s.Label, frozen[0].Streams[i].Direction, s.Packets, s.RTCPPackets, copied)
		}
	}
	wavs := wavReport(t, recforkctl, info.Streams[0].Path, info.Streams[1].Path)
	for i, w := range wavs {
		if math.Abs(w.ToneHz-440) > 15 || w.Active < 0.8 {
			t.Errorf("stream %d: %+v", i, w)
		}
	}
	// Streams are in m-line order: inbound first (siprec's order).
	if wavs[0].Gap < 0.4 || wavs[1].Gap > 0.2 {
		t.Errorf("muted window: inbound gap %.2fs, outbound gap %.2fs", wavs[0].Gap, wavs[1].Gap)
	}
}

// checkEchoPaths checks the admin API's media paths of the echoed call id:
// under the eBPF engine the kernel relays it (both legs' remote signalled,
// Ethernet next hop, one target, the forks in the kernel too: the relay
// contract's conditions) and clones both directions' copies to the SRS in
// its own namespace; under the userspace engine everything is userspace.
func checkEchoPaths(t *testing.T, admin, dp, id string) {
	t.Helper()
	want, reason := dataplane.PathKernel, ""
	if dp == "userspace" {
		want, reason = dataplane.PathUserspace, "userspace engine"
	}
	var calls []controlplane.CallInfo
	adminGet(t, admin, "GET", "/v1/calls", &calls)
	if len(calls) != 1 || len(calls[0].Connections) != 1 || calls[0].Connections[0].MediaPath == nil {
		t.Fatalf("calls: %+v", calls)
	}
	mp := calls[0].Connections[0].MediaPath
	if mp.Relay != string(want) || mp.RelayReason != reason || len(mp.Relays) != 1 || mp.Relays[0].To != id || mp.Relays[0].Path != string(want) {
		t.Fatalf("%s engine: relay path %+v, want %s to itself (echo)", dp, mp, want)
	}
	if len(mp.Copies) != 2 {
		t.Fatalf("%s engine: copies %+v, want both directions", dp, mp.Copies)
	}
	for _, c := range mp.Copies {
		if c.Path != string(want) || c.Reason != reason {
			t.Fatalf("%s engine: %s copies on %s (%q), want %s", dp, c.Direction, c.Path, c.Reason, want)
		}
	}
	var recs []controlplane.RecordingInfo
	adminGet(t, admin, "GET", "/v1/recordings", &recs)
	for _, s := range recs[0].Streams {
		if s.Path != string(want) {
			t.Fatalf("%s engine: recording stream %s on path %q, want %s", dp, s.Direction, s.Path, want)
		}
	}
}
