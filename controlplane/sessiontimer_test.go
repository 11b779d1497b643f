package controlplane_test

import (
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/controlplane/callgen"
	"github.com/recfork/recfork/internal/testenv"
)

// TestSessionRefreshWithSipp: a sipp caller names recfork the session
// refresher (RFC 4028 §9, Session-Expires refresher=uas). Each scenario
// checks what recforkd sends: the 200's refresher=uas, then refreshes by
// UPDATE when the caller allows it (three, each naming recfork refresher)
// or by re-INVITE with an SDP when it does not (ACKed), and a BYE when a
// refresh is answered 481 (§10). The refresh comes 1 s after the last; with
// the UPDATE and re-INVITE callers the session would expire 2.5 s after the
// last refresh, so only refreshes (the third UPDATE comes at 3 s) keep the
// calls up until sipp hangs up (an unexpected BYE fails its scenario); with
// the 481 caller it would expire after 20 s, so the BYE sipp waits for is
// the answer to the 481.
func TestSessionRefreshWithSipp(t *testing.T) {
	if _, err := exec.LookPath("sipp"); err != nil {
		testenv.Unavailable(t, "sipp (Debian sip-tester) is not installed")
	}
	defer controlplane.SetSessionRefreshAt(time.Second)()
	svc, eng := startService(t, svcOpts{})
	addr := svc.Daemon().SIPAddr().String()
	for _, tc := range []struct {
		scenario string
		expiry   time.Duration
	}{
		{"session-refresh-update.xml", 2500 * time.Millisecond},
		{"session-refresh-reinvite.xml", 2500 * time.Millisecond},
		{"session-refresh-481.xml", 20 * time.Second},
	} {
		scenario := tc.scenario
		t.Run(scenario, func(t *testing.T) {
			defer controlplane.SetSessionTimerWait(tc.expiry)()
			sf, err := filepath.Abs(filepath.Join("testdata", "sipp", scenario))
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			cmd := exec.Command("sipp", "-sf", sf, "-m", "1", "-l", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1",
				"-s", "echo", addr, "-nostdin", "-timeout", "15s", "-timeout_error", "-trace_err")
			cmd.Dir = dir
			logPath := filepath.Join(dir, "sipp.log")
			done := startSipp(t, cmd, logPath)
			t.Cleanup(func() {
				if t.Failed() {
					errs, _ := filepath.Glob(filepath.Join(dir, "*_errors.log"))
					for _, e := range errs {
						b, _ := os.ReadFile(e)
						t.Logf("%s:\n%s", filepath.Base(e), tail(string(b), 40))
					}
				}
			})
			waitSipp(t, done, "sipp "+scenario, logPath)
			waitFor(t, "the call to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
		})
	}
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

// TestRefreshGlare: recfork's refresh re-INVITE and the caller's re-INVITE
// cross. While ours is pending the caller's gets 491 (RFC 3261 §14.2); the
// answer to ours, which moves the caller's media, is applied and ACKed with
// the re-INVITE's CSeq, and ACKed again when the 2xx comes again.
func TestRefreshGlare(t *testing.T) {
	defer controlplane.SetSessionRefreshAt(200 * time.Millisecond)()
	defer controlplane.SetSessionTimerWait(20 * time.Second)()
	svc, eng := startService(t, svcOpts{})
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	const cid = "refresh-glare"
	// No Allow: recfork refreshes by re-INVITE.
	r.send(withHeaders(r.request("INVITE", cid, "", "application/sdp", sdpOffer(4000, "0"), 1),
		"Supported: timer", "Session-Expires: 90;refresher=uas"))
	ok := r.expect(200)
	if se := headerLine(ok, "Session-Expires"); se != "90;refresher=uas" {
		t.Fatalf("200 Session-Expires %q, want 90;refresher=uas", se)
	}
	_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
	r.send(r.request("ACK", cid, tag, "", "", 1))

	refresh, from := r.awaitRequest("INVITE")
	if se := headerLine(refresh, "Session-Expires"); se != "90;refresher=uac" || !strings.Contains(refresh, "m=audio ") {
		t.Fatalf("refresh re-INVITE without Session-Expires 90;refresher=uac or SDP:\n%s", refresh)
	}
	r.send(r.request("INVITE", cid, tag, "application/sdp", strings.Replace(sdpOffer(4000, "0"), "o=- 1 1", "o=- 1 2", 1), 2))
	r.expect(491)

	moved := strings.Replace(sdpOffer(4040, "0"), "o=- 1 1", "o=- 1 3", 1)
	r.respondTo(refresh, from, "200 OK", "Session-Expires: 90;refresher=uac\r\nRequire: timer\r\n", moved)
	ack, _ := r.awaitRequest("ACK")
	if got, want := headerLine(ack, "CSeq"), strings.Replace(headerLine(refresh, "CSeq"), "INVITE", "ACK", 1); got != want {
		t.Fatalf("ACK CSeq %q, want %q", got, want)
	}
	// As if the ACK were lost: the 2xx again draws the same ACK (RFC 3261
	// §13.2.2.4).
	r.respondTo(refresh, from, "200 OK", "Session-Expires: 90;refresher=uac\r\nRequire: timer\r\n", moved)
	if again, _ := r.awaitRequest("ACK"); headerLine(again, "CSeq") != headerLine(ack, "CSeq") || headerLine(again, "Via") != headerLine(ack, "Via") {
		t.Fatalf("ACK of the retransmitted 2xx:\n%s\nwant as the first:\n%s", again, ack)
	}
	waitFor(t, "the refresh answer to move the media", func() bool {
		cs := svc.Daemon().Connections()
		return len(cs) == 1 && cs[0].MediaPeer == "127.0.0.1:4040"
	})
	r.hangUp(t, svc, eng, cid, tag, 3)
}

// TestSessionRefreshAsCaller: recfork bridges a call to a sipp callee whose
// 200 makes recfork, the UAC, the refresher. The refresh comes 1 s after the
// last and the session would expire 2.5 s after it, while the call lasts
// 4 s: recfork must send UPDATEs (the callee allows UPDATE), which the
// callee checks and the test counts in sipp's message trace.
func TestSessionRefreshAsCaller(t *testing.T) {
	if _, err := exec.LookPath("sipp"); err != nil {
		testenv.Unavailable(t, "sipp (Debian sip-tester) is not installed")
	}
	defer controlplane.SetSessionRefreshAt(time.Second)()
	defer controlplane.SetSessionTimerWait(2500 * time.Millisecond)()
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	port := l.LocalAddr().(*net.UDPAddr).Port
	l.Close()
	sf, err := filepath.Abs(filepath.Join("testdata", "sipp", "session-refresh-callee.xml"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	cmd := exec.Command("sipp", "-sf", sf, "-m", "1", "-i", "127.0.0.1", "-mi", "127.0.0.1", "-p", strconv.Itoa(port),
		"-nostdin", "-timeout", "30s", "-timeout_error", "-trace_msg", "-trace_err")
	cmd.Dir = dir
	logPath := filepath.Join(dir, "sipp.log")
	done := startSipp(t, cmd, logPath)

	svc, eng := startService(t, svcOpts{destination: "sip:callee@127.0.0.1:" + strconv.Itoa(port)})
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	res := caller.Call(context.Background(), "sip:demo@"+svc.Daemon().SIPAddr().String(),
		callgen.CallOptions{Tone: 440, Duration: 4 * time.Second})
	if res.Error != "" || res.Status != 200 {
		t.Fatalf("caller: %+v", res)
	}
	waitSipp(t, done, "the sipp callee", logPath)
	msgs, _ := filepath.Glob(filepath.Join(dir, "*_messages.log"))
	updates := 0
	for _, m := range msgs {
		b, _ := os.ReadFile(m)
		updates += strings.Count(string(b), "\nUPDATE sip:")
	}
	if updates < 2 {
		t.Fatalf("the callee got %d UPDATEs, want 2 or more over a 4 s call refreshed every second", updates)
	}
	waitFor(t, "connections to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}
