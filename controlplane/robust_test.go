package controlplane_test

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/controlplane/callgen"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/siprec/srs"
)

// rawSIP is a UDP socket that speaks SIP as text, for requests no well-behaved
// user agent would send.
type rawSIP struct {
	t    *testing.T
	conn *net.UDPConn
	to   string
	n    int
}

func newRawSIP(t *testing.T, to string) *rawSIP {
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawSIP{t: t, conn: c, to: to}
}

func (r *rawSIP) send(msg string) {
	r.t.Helper()
	ua, _ := net.ResolveUDPAddr("udp", r.to)
	if _, err := r.conn.WriteToUDP([]byte(msg), ua); err != nil {
		r.t.Fatal(err)
	}
}

// request builds a request; body "" means none.
func (r *rawSIP) request(method, callID, toTag, ctype, body string, cseq int) string {
	r.n++
	local := r.conn.LocalAddr().String()
	to := "<sip:x@" + r.to + ">"
	if toTag != "" {
		to += ";tag=" + toTag
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s sip:x@%s SIP/2.0\r\n", method, r.to)
	fmt.Fprintf(&b, "Via: SIP/2.0/UDP %s;branch=z9hG4bK-raw-%s-%d\r\n", local, callID, r.n)
	fmt.Fprintf(&b, "From: <sip:raw@%s>;tag=rawtag\r\nTo: %s\r\nCall-ID: %s\r\nCSeq: %d %s\r\n", local, to, callID, cseq, method)
	fmt.Fprintf(&b, "Contact: <sip:raw@%s>\r\nMax-Forwards: 70\r\n", local)
	if ctype != "" {
		fmt.Fprintf(&b, "Content-Type: %s\r\n", ctype)
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(body), body)
	return b.String()
}

// cancelFor builds the CANCEL of the INVITE numbered n (same branch).
func (r *rawSIP) cancelFor(callID string, n, cseq int) string {
	local := r.conn.LocalAddr().String()
	return fmt.Sprintf("CANCEL sip:x@%s SIP/2.0\r\nVia: SIP/2.0/UDP %s;branch=z9hG4bK-raw-%s-%d\r\n"+
		"From: <sip:raw@%s>;tag=rawtag\r\nTo: <sip:x@%s>\r\nCall-ID: %s\r\nCSeq: %d CANCEL\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
		r.to, local, callID, n, local, r.to, callID, cseq)
}

// expect reads responses until one has the status code (ignoring others),
// failing after a deadline.
func (r *rawSIP) expect(code int) string {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 65535)
	for {
		_ = r.conn.SetReadDeadline(deadline)
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			r.t.Fatalf("no %d response: %v", code, err)
		}
		msg := string(buf[:n])
		if strings.HasPrefix(msg, fmt.Sprintf("SIP/2.0 %d ", code)) {
			return msg
		}
	}
}

func sdpOffer(port int, pts string) string {
	return fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n", port, pts)
}

func TestBadRequestsAreAnsweredAndSurvived(t *testing.T) {
	// The flood below comes from the good caller's address: the INVITE rate
	// limits would rightly refuse its call (hostile_test.go tests them).
	svc, eng := startService(t, svcOpts{limits: controlplane.Limits{InviteRate: -1, InviteRatePerSource: -1}})
	addr := svc.Daemon().SIPAddr().String()
	cases := []struct {
		name string
		msg  func(r *rawSIP) string
		code int
	}{
		{"invite with a body that is not sdp", func(r *rawSIP) string {
			return r.request("INVITE", "textbody", "", "text/plain", "hello", 1)
		}, 415},
		{"invite with an isup part marked required", func(r *rawSIP) string {
			body := "--b1\r\nContent-Type: application/sdp\r\n\r\n" + sdpOffer(4000, "0") +
				"\r\n--b1\r\nContent-Type: application/isup;version=itu-t92+\r\nContent-Disposition: signal;handling=required\r\n\r\n\x01\x00" +
				"\r\n--b1--\r\n"
			return r.request("INVITE", "isuprequired", "", "multipart/mixed;boundary=b1", body, 1)
		}, 415},
		{"invite with no common codec", func(r *rawSIP) string {
			return r.request("INVITE", "g729", "", "application/sdp", sdpOffer(4000, "18"), 1)
		}, 488},
		{"invite with broken sdp", func(r *rawSIP) string {
			return r.request("INVITE", "badsdp", "", "application/sdp", "v=0\r\nthis is not sdp\r\n", 1)
		}, 488},
		{"bye of no dialog", func(r *rawSIP) string { return r.request("BYE", "nodialog", "sometag", "", "", 2) }, 481},
		{"re-invite of no dialog", func(r *rawSIP) string {
			return r.request("INVITE", "nodialog2", "sometag", "application/sdp", sdpOffer(4000, "0"), 2)
		}, 481},
		{"cancel of nothing", func(r *rawSIP) string { return r.cancelFor("nothing", 99, 1) }, 481},
		{"options", func(r *rawSIP) string { return r.request("OPTIONS", "opt", "", "", "", 1) }, 200},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			r := newRawSIP(t, addr)
			r.send(c.msg(r))
			res := r.expect(c.code)
			if c.code == 415 && !strings.Contains(headerLine(res, "Accept"), "application/sdp") {
				t.Fatalf("415 without Accept: application/sdp:\n%s", res)
			}
		})
	}
	// A flood of garbage and half-messages: no answer is owed, nothing may
	// break or leak.
	r := newRawSIP(t, addr)
	for i := 0; i < 300; i++ {
		switch i % 4 {
		case 0:
			r.send("INVITE sip:x SIP/2.0\r\n\r\n")
		case 1:
			r.send(strings.Repeat("\x00\xff", i))
		case 2:
			r.send(r.request("INVITE", fmt.Sprintf("flood%d", i), "", "application/sdp", "v=0\r\n", 1))
		default:
			r.send("SIP/2.0 200 OK\r\nCall-ID: x\r\n\r\n")
		}
	}
	// The daemon still answers a real call, and nothing leaked.
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	res := caller.Call(context.Background(), "sip:echo@"+addr, callgen.CallOptions{Duration: 300 * time.Millisecond})
	if res.Error != "" {
		t.Fatalf("call after the flood: %+v", res)
	}
	waitFor(t, "connections to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

const ringingApp = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
  <eventprocessor>
    <transition event="connection.alerting"><log expr="'ringing'"/></transition>
    <transition event="connection.failed"><exit/></transition>
  </eventprocessor>
</ccxml>`

const brokenApp = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
  <eventprocessor>
    <transition event="connection.alerting"><assign name="undeclared" expr="1"/></transition>
  </eventprocessor>
</ccxml>`

func writeApp(t *testing.T, src string) string {
	p := filepath.Join(t.TempDir(), "app.ccxml")
	if err := os.WriteFile(p, []byte(src), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestCancelBeforeAnswer(t *testing.T) {
	svc, eng := startService(t, svcOpts{app: writeApp(t, ringingApp)})
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	r.send(r.request("INVITE", "cancelme", "", "application/sdp", sdpOffer(4000, "0"), 1))
	r.expect(180)
	waitFor(t, "the connection to alert", func() bool { return len(svc.Daemon().Connections()) == 1 })
	r.send(r.cancelFor("cancelme", 1, 1))
	r.expect(487)
	waitFor(t, "the canceled connection to go", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "its endpoint to close", func() bool { return eng.Stats().Endpoints == 0 })
	waitFor(t, "its session to end", func() bool { return len(svc.Sessions()) == 0 })
}

func TestScriptErrorEndsCallNotDaemon(t *testing.T) {
	svc, eng := startService(t, svcOpts{app: writeApp(t, brokenApp)})
	addr := svc.Daemon().SIPAddr().String()
	for i := 0; i < 3; i++ {
		r := newRawSIP(t, addr)
		r.send(r.request("INVITE", fmt.Sprintf("broken%d", i), "", "application/sdp", sdpOffer(4000, "0"), 1))
		r.expect(503)
	}
	waitFor(t, "connections to go", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
	waitFor(t, "sessions to end", func() bool { return len(svc.Sessions()) == 0 })
}

func TestSRSDownCallContinues(t *testing.T) {
	// A port nothing listens on: the recording fails, the call does not.
	l, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	dead := l.LocalAddr().String()
	l.Close()
	svc, eng := startService(t, svcOpts{srs: "sip:srs@" + dead + ";transport=tcp"})
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	res := caller.Call(context.Background(), "sip:echo@"+svc.Daemon().SIPAddr().String(),
		callgen.CallOptions{Duration: 1500 * time.Millisecond})
	if res.Error != "" || res.Received == 0 {
		t.Fatalf("call with the SRS down: %+v", res)
	}
	if recs := svc.Daemon().Recordings(); len(recs) != 0 {
		t.Fatalf("recordings with the SRS down: %+v", recs)
	}
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

func TestBridgeToDestination(t *testing.T) {
	callee, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	callee.Answer(880)
	svc, eng := startService(t, svcOpts{destination: "sip:callee@" + callee.Addr().String()})
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	res := caller.Call(context.Background(), "sip:demo@"+svc.Daemon().SIPAddr().String(),
		callgen.CallOptions{Tone: 440, Duration: 1500 * time.Millisecond})
	if res.Error != "" || math.Abs(res.HeardHz-880) > 15 {
		t.Fatalf("caller: %+v", res)
	}
	waitFor(t, "the callee's leg to end", func() bool { return len(callee.Results()) == 1 })
	callee.Close()
	if cr := callee.Results()[0]; cr.Error != "" || math.Abs(cr.HeardHz-440) > 15 {
		t.Fatalf("callee: %+v", cr)
	}
	waitFor(t, "connections to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

func adminGet(t *testing.T, socket, method, path string, out any) int {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", socket)
	}}}
	req, _ := http.NewRequest(method, "http://recforkd"+path, nil)
	res, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if out != nil {
		if err := json.NewDecoder(res.Body).Decode(out); err != nil {
			t.Fatalf("decode %s: %v", path, err)
		}
	}
	return res.StatusCode
}

func TestMuteFromAdminAPI(t *testing.T) {
	svc, _ := startService(t, svcOpts{})
	socket := svc.AdminSocket()
	if fi, err := os.Stat(socket); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("admin socket %s: %v %v", socket, fi.Mode(), err)
	}
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	var wg sync.WaitGroup
	var mute, unmute controlplane.RecordResult
	var during []controlplane.RecordingInfo
	wg.Add(1)
	go func() {
		defer wg.Done()
		res := caller.Call(context.Background(), "sip:echo@"+svc.Daemon().SIPAddr().String(),
			callgen.CallOptions{Duration: 3 * time.Second, OnConnected: func(string) {
				go func() {
					defer wg.Done()
					var recs []controlplane.RecordingInfo
					waitFor(t, "the recording", func() bool {
						adminGet(t, socket, "GET", "/v1/recordings", &recs)
						return len(recs) == 1 && recs[0].Inbound == "active"
					})
					id := recs[0].ConnectionID
					if code := adminGet(t, socket, "POST", "/v1/recordings/"+id+"/mute?direction=inbound", &mute); code != 200 {
						t.Errorf("mute: %d %+v", code, mute)
					}
					waitFor(t, "muted packets", func() bool {
						adminGet(t, socket, "GET", "/v1/recordings", &during)
						return len(during) == 1 && len(during[0].Streams) == 2 && during[0].Streams[0].MutedPackets > 5
					})
					if code := adminGet(t, socket, "POST", "/v1/recordings/"+id+"/unmute?direction=inbound", &unmute); code != 200 {
						t.Errorf("unmute: %d %+v", code, unmute)
					}
				}()
			}})
		if res.Error != "" {
			t.Errorf("call: %+v", res)
		}
	}()
	wg.Add(1) // the OnConnected goroutine
	wg.Wait()
	if mute.Event != "bvr.record.update" || mute.Inbound != "inactive" || mute.Outbound != "active" {
		t.Fatalf("mute answered %+v", mute)
	}
	if unmute.Event != "bvr.record.update" || unmute.Inbound != "active" {
		t.Fatalf("unmute answered %+v", unmute)
	}
	for _, p := range []string{"/v1/recordings/nope/mute", "/v1/recordings/c1/bogus"} {
		var e map[string]string
		if code := adminGet(t, socket, "POST", p, &e); code < 400 || e["error"] == "" {
			t.Errorf("POST %s: %d %v", p, code, e)
		}
	}
	var st controlplane.StatusInfo
	if adminGet(t, socket, "GET", "/v1/status", &st) != 200 || st.Engine != "test" || st.SIP == "" {
		t.Fatalf("status %+v", st)
	}
}

func TestSRSByeMidCallKeepsCall(t *testing.T) {
	svc, eng := startService(t, svcOpts{})
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	byeDone := make(chan error, 1)
	res := caller.Call(context.Background(), "sip:echo@"+svc.Daemon().SIPAddr().String(), callgen.CallOptions{
		Duration: 2500 * time.Millisecond,
		OnConnected: func(string) {
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				defer cancel()
				ss, err := svc.SRS().WaitFor(ctx, func(ss []srs.SessionInfo) bool { return len(ss) == 1 })
				if err != nil {
					byeDone <- err
					return
				}
				byeDone <- svc.SRS().Bye(ctx, ss[0].ID)
			}()
		},
	})
	if err := <-byeDone; err != nil {
		t.Fatalf("srs bye: %v", err)
	}
	if res.Error != "" || res.Received == 0 {
		t.Fatalf("the call did not survive the SRS's BYE: %+v", res)
	}
	waitFor(t, "no recording", func() bool { return len(svc.Daemon().Recordings()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

const busyApp = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
  <eventprocessor>
    <transition event="connection.alerting"><reject connectionid="event$.connectionid" reason="'486'"/></transition>
    <transition event="connection.failed"><exit/></transition>
  </eventprocessor>
</ccxml>`

func TestReloadSwitchesAppForNewCalls(t *testing.T) {
	app := writeApp(t, busyApp)
	svc, _ := startService(t, svcOpts{app: app})
	addr := svc.Daemon().SIPAddr().String()
	r := newRawSIP(t, addr)
	r.send(r.request("INVITE", "busy1", "", "application/sdp", sdpOffer(4000, "0"), 1))
	r.expect(486)

	// A broken document does not replace the running one.
	if err := os.WriteFile(app, []byte("<ccxml"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := svc.Reload(); err == nil {
		t.Fatal("a broken app was accepted")
	}
	r.send(r.request("INVITE", "busy2", "", "application/sdp", sdpOffer(4000, "0"), 1))
	r.expect(486)

	if err := os.WriteFile(app, controlplane.DefaultApp, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := svc.Reload(); err != nil {
		t.Fatal(err)
	}
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	if res := caller.Call(context.Background(), "sip:echo@"+addr, callgen.CallOptions{Duration: 300 * time.Millisecond}); res.Error != "" {
		t.Fatalf("call after reload: %+v", res)
	}
}

func TestMetricsAndBasicHTTP(t *testing.T) {
	dir := t.TempDir()
	eng := newTestEngine()
	defer eng.Close()
	svc, err := controlplane.NewService(context.Background(), controlplane.Config{
		Listen: "127.0.0.1:0", Engine: eng, Admin: "-", RecordingsDir: filepath.Join(dir, "rec"),
		HTTP: "127.0.0.1:0", Logger: testLogger(t), App: writeApp(t, ringingApp),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	r.send(r.request("INVITE", "metrics", "", "application/sdp", sdpOffer(4000, "0"), 1))
	r.expect(180)
	var sessions []controlplane.SessionInfo
	waitFor(t, "the session", func() bool { sessions = svc.Sessions(); return len(sessions) == 1 })

	base := "http://" + svc.HTTPAddr()
	res, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	for _, want := range []string{"recfork_sip_invites_total 1", "recfork_connections 1", `recfork_dataplane_endpoints{engine="test"} 1`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	// basichttp: an event into the session; the ringing app ends on
	// connection.failed, so injecting one ends the session.
	form := url.Values{"sessionid": {sessions[0].ID}, "name": {"connection.failed"}, "connectionid": {"none"}}
	res, err = http.PostForm(base+"/basichttp", form)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("basichttp: %d", res.StatusCode)
	}
	waitFor(t, "the session to end on the injected event", func() bool { return len(svc.Sessions()) == 0 })
	// Its call is hung up with it.
	r.expect(503)
	for _, bad := range []url.Values{{"name": {"x"}}, {"sessionid": {"nope"}, "name": {"x"}}} {
		res, err := http.PostForm(base+"/basichttp", bad)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		if res.StatusCode < 400 {
			t.Errorf("basichttp %v: %d", bad, res.StatusCode)
		}
	}
}

func headerLine(msg, name string) string {
	for _, l := range strings.Split(msg, "\r\n") {
		if k, v, ok := strings.Cut(l, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
	}
	return ""
}

func withHeaders(msg string, hdrs ...string) string {
	return strings.Replace(msg, "Max-Forwards: 70\r\n", "Max-Forwards: 70\r\n"+strings.Join(hdrs, "\r\n")+"\r\n", 1)
}

// TestReInviteHoldAndSessionTimer drives one dialog by hand: a session timer
// negotiated on the INVITE, hold by re-INVITE (RFC 3264 §8.4), a too-short
// refresh refused with 422, and the caller's BYE.
func TestReInviteHoldAndSessionTimer(t *testing.T) {
	svc, eng := startService(t, svcOpts{})
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	const cid = "hold-dialog"
	r.send(withHeaders(r.request("INVITE", cid, "", "application/sdp", sdpOffer(4000, "0"), 1),
		"Supported: timer", "Session-Expires: 120;refresher=uac"))
	ok := r.expect(200)
	if se := headerLine(ok, "Session-Expires"); !strings.HasPrefix(se, "120") || !strings.Contains(se, "refresher=uac") {
		t.Fatalf("200 Session-Expires %q", se)
	}
	if !strings.Contains(headerLine(ok, "Require"), "timer") {
		t.Fatalf("200 lacks Require: timer:\n%s", ok)
	}
	to := headerLine(ok, "To")
	_, tag, found := strings.Cut(to, "tag=")
	if !found {
		t.Fatalf("no To tag in %q", to)
	}
	r.send(r.request("ACK", cid, tag, "", "", 1))
	waitFor(t, "the call to connect", func() bool {
		cs := svc.Daemon().Connections()
		return len(cs) == 1 && cs[0].State == controlplane.StateConnected
	})

	hold := strings.Replace(sdpOffer(4000, "0"), "o=- 1 1", "o=- 1 2", 1) + "a=sendonly\r\n"
	r.send(r.request("INVITE", cid, tag, "application/sdp", hold, 2))
	ans := r.expect(200)
	if !strings.Contains(ans, "a=recvonly") {
		t.Fatalf("hold answer is not recvonly:\n%s", ans)
	}
	r.send(r.request("ACK", cid, tag, "", "", 2))
	waitFor(t, "the connection to be on hold", func() bool {
		cs := svc.Daemon().Connections()
		return len(cs) == 1 && cs[0].Hold
	})

	// An offerless re-INVITE: our 200 offers, the ACK answers (RFC 3264 §4)
	// with a new address, which takes the call off hold.
	r.send(r.request("INVITE", cid, tag, "", "", 3))
	if off := r.expect(200); !strings.Contains(off, "m=audio ") || !strings.Contains(off, "a=sendrecv") {
		t.Fatalf("200 to an offerless re-INVITE carries no sendrecv offer:\n%s", off)
	}
	r.send(r.request("ACK", cid, tag, "application/sdp", strings.Replace(sdpOffer(4010, "0"), "o=- 1 1", "o=- 1 3", 1), 3))
	waitFor(t, "the ack's answer to move the media", func() bool {
		cs := svc.Daemon().Connections()
		return len(cs) == 1 && !cs[0].Hold && cs[0].MediaPeer == "127.0.0.1:4010"
	})

	// An UPDATE whose offer has no codec we relay, or whose body has no
	// SDP, changes nothing.
	r.send(r.request("UPDATE", cid, tag, "application/sdp", strings.Replace(sdpOffer(4012, "18"), "o=- 1 1", "o=- 1 4", 1), 4))
	r.expect(488)
	r.send(r.request("UPDATE", cid, tag, "text/plain", "hello", 5))
	if res := r.expect(415); !strings.Contains(headerLine(res, "Accept"), "application/sdp") {
		t.Fatalf("415 without Accept: application/sdp:\n%s", res)
	}
	if cs := svc.Daemon().Connections(); len(cs) != 1 || cs[0].MediaPeer != "127.0.0.1:4010" {
		t.Fatalf("refused UPDATEs moved the media: %+v", cs)
	}

	r.send(withHeaders(r.request("INVITE", "short-timer", "", "application/sdp", sdpOffer(4002, "0"), 1),
		"Supported: timer", "Session-Expires: 30"))
	if tooSmall := r.expect(422); headerLine(tooSmall, "Min-SE") != "90" {
		t.Fatalf("422 without Min-SE 90:\n%s", tooSmall)
	}

	r.hangUp(t, svc, eng, cid, tag, 6)
}

// hangUp sends the caller's BYE and waits for the call and its media to be
// gone.
func (r *rawSIP) hangUp(t *testing.T, svc *controlplane.Service, eng dataplane.Engine, cid, tag string, cseq int) {
	t.Helper()
	r.send(r.request("BYE", cid, tag, "", "", cseq))
	r.expect(200)
	waitFor(t, "the call to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

// TestMultipartOfferFromGateway is an INVITE shaped as SIP-T/SIP-I gateways
// send it (RFC 3204 §3): multipart/mixed with the SDP offer beside an ISUP
// part. The call is answered from the SDP part.
func TestMultipartOfferFromGateway(t *testing.T) {
	svc, eng := startService(t, svcOpts{})
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	const cid = "sip-i-call"
	body := "--unique-boundary-1\r\nContent-Type: application/sdp\r\n\r\n" + sdpOffer(4020, "8 0") +
		"\r\n--unique-boundary-1\r\nContent-Type: application/isup;version=itu-t92+;base=itu-t92+\r\n" +
		"Content-Disposition: signal;handling=optional\r\n\r\n\x01\x00\x49\x00\x00\x03\x02\x00\x07\x04\x10\x00\x33\x63\x21\x43\x00" +
		"\r\n--unique-boundary-1--\r\n"
	r.send(withHeaders(r.request("INVITE", cid, "", "multipart/mixed;boundary=unique-boundary-1", body, 1), "MIME-Version: 1.0"))
	ok := r.expect(200)
	if !strings.Contains(ok, "RTP/AVP 8") {
		t.Fatalf("answer does not take PCMA from the sdp part:\n%s", ok)
	}
	_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
	r.send(r.request("ACK", cid, tag, "", "", 1))
	waitFor(t, "the call to connect toward the sdp part's address", func() bool {
		cs := svc.Daemon().Connections()
		return len(cs) == 1 && cs[0].State == controlplane.StateConnected && cs[0].MediaPeer == "127.0.0.1:4020" && cs[0].Codec == "PCMA"
	})
	r.hangUp(t, svc, eng, cid, tag, 2)
}

// TestShutdownEndsCallsAndRecordings is what SIGTERM does: every call gets
// its BYE, every recording its BYE to the SRS, and the engine is left empty.
func TestShutdownEndsCallsAndRecordings(t *testing.T) {
	svc, eng := startService(t, svcOpts{})
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	closed := make(chan error, 1)
	res := caller.Call(context.Background(), "sip:echo@"+svc.Daemon().SIPAddr().String(), callgen.CallOptions{
		Duration: 30 * time.Second,
		OnConnected: func(string) {
			go func() {
				waitFor(t, "the recording", func() bool {
					recs := svc.Daemon().Recordings()
					return len(recs) == 1 && recs[0].Inbound == "active"
				})
				closed <- svc.Close()
			}()
		},
	})
	if err := <-closed; err != nil {
		t.Fatalf("close: %v", err)
	}
	if res.Error != "far end hung up early" {
		t.Fatalf("the caller did not get a BYE: %+v", res)
	}
	ss := svc.SRS().Sessions()
	if len(ss) != 1 || ss[0].EndReason != srs.EndByeFromSRC {
		t.Fatalf("srs sessions after shutdown: %+v", ss)
	}
	if st := eng.Stats(); st.Endpoints != 0 || st.Forks != 0 || st.Joins != 0 {
		t.Fatalf("left in the engine: %+v", st)
	}
}

const redirectApp = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
  <eventprocessor>
    <transition event="connection.alerting">
      <redirect connectionid="event$.connectionid" dest="'sip:elsewhere@192.0.2.7'"/>
    </transition>
    <transition event="connection.redirected"><exit/></transition>
  </eventprocessor>
</ccxml>`

func TestRedirect(t *testing.T) {
	svc, eng := startService(t, svcOpts{app: writeApp(t, redirectApp)})
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	r.send(r.request("INVITE", "redirect-me", "", "application/sdp", sdpOffer(4000, "0"), 1))
	res := r.expect(302)
	if c := headerLine(res, "Contact"); !strings.Contains(c, "sip:elsewhere@192.0.2.7") {
		t.Fatalf("302 Contact %q", c)
	}
	waitFor(t, "the session to end", func() bool { return len(svc.Sessions()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

// TestDestinationRefusesHangsUpCaller: the default app disconnects the caller
// when its call to the destination fails.
func TestDestinationRefusesHangsUpCaller(t *testing.T) {
	refuser, err := callgen.NewEndpoint("127.0.0.1:0") // answers nothing: 488
	if err != nil {
		t.Fatal(err)
	}
	defer refuser.Close()
	svc, eng := startService(t, svcOpts{destination: "sip:nobody@" + refuser.Addr().String()})
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	res := caller.Call(context.Background(), "sip:demo@"+svc.Daemon().SIPAddr().String(),
		callgen.CallOptions{Duration: 20 * time.Second})
	if res.Error != "far end hung up early" || res.Seconds > 15 {
		t.Fatalf("caller: %+v", res)
	}
	waitFor(t, "connections to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

// TestStopRecordingKeepsCall: both directions none ends the recording session
// (BYE to the SRS) while the call goes on.
func TestStopRecordingKeepsCall(t *testing.T) {
	svc, _ := startService(t, svcOpts{})
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	stopped := make(chan controlplane.RecordResult, 1)
	res := caller.Call(context.Background(), "sip:echo@"+svc.Daemon().SIPAddr().String(), callgen.CallOptions{
		Duration: 2 * time.Second,
		OnConnected: func(string) {
			go func() {
				var id string
				waitFor(t, "the recording", func() bool {
					recs := svc.Daemon().Recordings()
					if len(recs) == 1 && recs[0].Inbound == "active" {
						id = recs[0].ConnectionID
						return true
					}
					return false
				})
				ev, err := svc.Daemon().RecordControl(context.Background(), id, "stop", 0)
				if err != nil {
					t.Errorf("stop: %v", err)
				}
				stopped <- controlplane.RecordResult{Event: ev.Name, Inbound: string(ev.Inbound), Outbound: string(ev.Outbound), Operation: ev.Operation}
			}()
		},
	})
	st := <-stopped
	if st.Event != "bvr.record.update" || st.Operation != "stop" || st.Inbound != "none" || st.Outbound != "none" {
		t.Fatalf("stop answered %+v", st)
	}
	ss := svc.SRS().Sessions()
	if len(ss) != 1 || ss[0].EndReason != srs.EndByeFromSRC {
		t.Fatalf("srs session after stop: %+v", ss)
	}
	if res.Error != "" || res.Received == 0 {
		t.Fatalf("the call did not go on after the recording stopped: %+v", res)
	}
}

// TestConcurrentCallsReturnEverything: many calls at once under the userspace
// engine; afterwards every port pair is free again and goroutines are back.
func TestConcurrentCallsReturnEverything(t *testing.T) {
	svc, eng := startService(t, svcOpts{dataplane: "userspace"})
	freeBefore := eng.Stats().PortsFree
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	const n = 12
	var wg sync.WaitGroup
	results := make([]callgen.Result, n)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = caller.Call(context.Background(), "sip:echo@"+svc.Daemon().SIPAddr().String(),
				callgen.CallOptions{Duration: 800 * time.Millisecond})
		}()
	}
	wg.Wait()
	for i, r := range results {
		if r.Error != "" || r.Received == 0 {
			t.Errorf("call %d: %+v", i, r)
		}
	}
	waitFor(t, "every port pair back", func() bool {
		st := eng.Stats()
		return st.Endpoints == 0 && st.Forks == 0 && st.Joins == 0 && st.PortsFree == freeBefore
	})
	waitFor(t, "every recording to end", func() bool {
		for _, s := range svc.SRS().Sessions() {
			if s.Ended.IsZero() {
				return false
			}
		}
		return len(svc.SRS().Sessions()) == n
	})
}

// expectRequest reads until a request with the method arrives and answers it
// 200 OK, returning it.
func (r *rawSIP) expectRequest(method string) string {
	r.t.Helper()
	msg, from := r.awaitRequest(method)
	r.respondTo(msg, from, "200 OK", "", "")
	return msg
}

// awaitRequest reads until a request of method arrives and returns it and
// its source, unanswered.
func (r *rawSIP) awaitRequest(method string) (string, *net.UDPAddr) {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 65535)
	for {
		_ = r.conn.SetReadDeadline(deadline)
		n, from, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			r.t.Fatalf("no %s: %v", method, err)
		}
		if msg := string(buf[:n]); strings.HasPrefix(msg, method+" ") {
			return msg, from
		}
	}
}

// respondTo answers a request with status (e.g. "200 OK"), extra header
// lines (CRLF-terminated) and an SDP body ("" for none).
func (r *rawSIP) respondTo(msg string, to *net.UDPAddr, status, extra, sdp string) {
	var b strings.Builder
	b.WriteString("SIP/2.0 " + status + "\r\n")
	for _, h := range []string{"Via", "From", "To", "Call-ID", "CSeq"} {
		fmt.Fprintf(&b, "%s: %s\r\n", h, headerLine(msg, h))
	}
	b.WriteString(extra)
	if sdp != "" {
		b.WriteString("Content-Type: application/sdp\r\n")
	}
	fmt.Fprintf(&b, "Content-Length: %d\r\n\r\n%s", len(sdp), sdp)
	_, _ = r.conn.WriteToUDP([]byte(b.String()), to)
}

// TestSessionTimerExpiryEndsCall: with no refresh, recfork sends BYE.
func TestSessionTimerExpiryEndsCall(t *testing.T) {
	defer controlplane.SetSessionTimerWait(300 * time.Millisecond)()
	svc, eng := startService(t, svcOpts{})
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	const cid = "timer-expiry"
	r.send(withHeaders(r.request("INVITE", cid, "", "application/sdp", sdpOffer(4000, "0"), 1),
		"Supported: timer", "Session-Expires: 90"))
	ok := r.expect(200)
	_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
	r.send(r.request("ACK", cid, tag, "", "", 1))
	bye := r.expectRequest("BYE")
	if headerLine(bye, "Call-ID") != cid {
		t.Fatalf("BYE for another call:\n%s", bye)
	}
	waitFor(t, "the call to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

// expectFinal reads until a final response (2xx-6xx) arrives and returns it.
func (r *rawSIP) expectFinal() string {
	r.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	buf := make([]byte, 65535)
	for {
		_ = r.conn.SetReadDeadline(deadline)
		n, _, err := r.conn.ReadFromUDP(buf)
		if err != nil {
			r.t.Fatalf("no final response: %v", err)
		}
		msg := string(buf[:n])
		if strings.HasPrefix(msg, "SIP/2.0 ") && !strings.HasPrefix(msg, "SIP/2.0 1") && strings.Contains(headerLine(msg, "CSeq"), "INVITE") {
			return msg
		}
	}
}

// TestCancelRacesAnswer sends CANCEL right behind INVITEs the app accepts at
// once: whichever wins, nothing may leak.
func TestCancelRacesAnswer(t *testing.T) {
	svc, eng := startService(t, svcOpts{})
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	for i := 0; i < 15; i++ {
		cid := fmt.Sprintf("race%d", i)
		r.send(r.request("INVITE", cid, "", "application/sdp", sdpOffer(4000, "0"), 1))
		n := r.n
		r.send(r.cancelFor(cid, n, 1))
		final := r.expectFinal()
		_, tag, _ := strings.Cut(headerLine(final, "To"), "tag=")
		r.send(r.request("ACK", cid, tag, "", "", 1))
		if strings.HasPrefix(final, "SIP/2.0 200 ") {
			r.send(r.request("BYE", cid, tag, "", "", 2))
		}
	}
	waitFor(t, "every connection to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "every endpoint to close", func() bool { return eng.Stats().Endpoints == 0 })
	waitFor(t, "every session to end", func() bool { return len(svc.Sessions()) == 0 })
}

const dtmfApp = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
  <eventprocessor>
    <transition event="connection.alerting"><accept connectionid="event$.connectionid"/></transition>
    <transition event="connection.signal" cond="event$.dtmf == '5'">
      <disconnect connectionid="event$.connectionid"/>
    </transition>
    <transition event="connection.disconnected"><exit/></transition>
  </eventprocessor>
</ccxml>`

// TestDTMFInfoSignal: DTMF by SIP INFO reaches the document as
// connection.signal with the key in event$.dtmf.
func TestDTMFInfoSignal(t *testing.T) {
	svc, eng := startService(t, svcOpts{app: writeApp(t, dtmfApp)})
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	const cid = "dtmf-call"
	r.send(r.request("INVITE", cid, "", "application/sdp", sdpOffer(4000, "0 101")+"a=rtpmap:101 telephone-event/8000\r\n", 1))
	ok := r.expect(200)
	_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
	r.send(r.request("ACK", cid, tag, "", "", 1))
	waitFor(t, "the call to connect", func() bool {
		cs := svc.Daemon().Connections()
		return len(cs) == 1 && cs[0].State == controlplane.StateConnected
	})
	r.send(r.request("INFO", cid, tag, "application/dtmf-relay", "Signal=4\r\nDuration=160\r\n", 2))
	r.expect(200)
	r.send(r.request("INFO", cid, tag, "application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", 3))
	r.expectRequest("BYE")
	waitFor(t, "the call to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

const idleApp = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
  <eventprocessor>
    <transition event="demo.stop"><exit/></transition>
  </eventprocessor>
</ccxml>`

func TestCreateSessionOverHTTP(t *testing.T) {
	dir := t.TempDir()
	eng := newTestEngine()
	defer eng.Close()
	svc, err := controlplane.NewService(context.Background(), controlplane.Config{
		Listen: "127.0.0.1:0", Engine: eng, Admin: "-", RecordingsDir: filepath.Join(dir, "rec"),
		HTTP: "127.0.0.1:0", Logger: testLogger(t), SessionRoots: []string{dir},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer svc.Close()
	base := "http://" + svc.HTTPAddr()
	appPath := filepath.Join(dir, "idle.ccxml")
	if err := os.WriteFile(appPath, []byte(idleApp), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err := http.PostForm(base+"/createsession", url.Values{"uri": {appPath}})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(res.Body)
	res.Body.Close()
	id := strings.TrimSpace(string(body))
	if res.StatusCode != 200 || id == "" {
		t.Fatalf("createsession: %d %q", res.StatusCode, body)
	}
	ss := svc.Sessions()
	if len(ss) != 1 || ss[0].ID != id || ss[0].StartupMode != "external" {
		t.Fatalf("sessions %+v", ss)
	}
	res, err = http.PostForm(base+"/basichttp", url.Values{"sessionid": {id}, "name": {"demo.stop"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	waitFor(t, "the session to exit", func() bool { return len(svc.Sessions()) == 0 })
	res, err = http.PostForm(base+"/createsession", url.Values{"uri": {filepath.Join(dir, "missing.ccxml")}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	// A missing document and one outside the roots get the same answer:
	// createsession does not tell which files exist.
	if res.StatusCode != http.StatusForbidden {
		t.Fatalf("createsession of a missing document: %d", res.StatusCode)
	}
}

// telephoneEvent is an RFC 4733 packet (PT 101) for key ev.
func telephoneEvent(seq uint16, ts uint32, ev byte, end bool) []byte {
	b := make([]byte, 16)
	b[0], b[1] = 0x80, 101
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], 0x1234)
	b[12] = ev
	b[13] = 10
	if end {
		b[13] |= 0x80
	}
	binary.BigEndian.PutUint16(b[14:], 800)
	return b
}

// TestDTMFInRTP: RFC 4733 events in the caller's RTP reach the document as
// connection.signal, one per event however often its packets repeat.
func TestDTMFInRTP(t *testing.T) {
	for _, dp := range []string{"", "userspace"} {
		t.Run("engine "+dp, func(t *testing.T) {
			svc, eng := startService(t, svcOpts{app: writeApp(t, dtmfApp), dataplane: dp})
			media, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				t.Fatal(err)
			}
			defer media.Close()
			r := newRawSIP(t, svc.Daemon().SIPAddr().String())
			cid := "dtmf-rtp-" + dp
			port := media.LocalAddr().(*net.UDPAddr).Port
			r.send(r.request("INVITE", cid, "", "application/sdp", sdpOffer(port, "0 101")+"a=rtpmap:101 telephone-event/8000\r\n", 1))
			ok := r.expect(200)
			_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
			r.send(r.request("ACK", cid, tag, "", "", 1))
			ans, err := controlplane.ParseAudioSDP([]byte(ok[strings.Index(ok, "\r\n\r\n")+4:]))
			if err != nil {
				t.Fatal(err)
			}
			dst := net.UDPAddrFromAddrPort(ans.Remote)
			waitFor(t, "the tap", func() bool { return eng.Stats().Joins >= 1 }) // the tap
			var seq uint16
			send := func(ts uint32, ev byte) {
				for i := 0; i < 4; i++ { // start, continuation, three ends
					seq++
					if _, err := media.WriteToUDP(telephoneEvent(seq, ts, ev, i >= 1), dst); err != nil {
						t.Fatal(err)
					}
				}
			}
			send(1000, 4) // '4': the app ignores it
			send(2000, 5) // '5': the app hangs up
			r.expectRequest("BYE")
			waitFor(t, "the call to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
			waitFor(t, "endpoints to close", func() bool { st := eng.Stats(); return st.Endpoints == 0 && st.Joins == 0 })
		})
	}
}

// TestCallOverTCP: the SIP port serves TCP as well as UDP.
func TestCallOverTCP(t *testing.T) {
	svc, eng := startService(t, svcOpts{})
	addr := svc.Daemon().SIPAddr().String()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	msg := func(method, tag string, cseq int, body string) string {
		to := "<sip:x@" + addr + ">"
		if tag != "" {
			to += ";tag=" + tag
		}
		ctype := ""
		if body != "" {
			ctype = "Content-Type: application/sdp\r\n"
		}
		return fmt.Sprintf("%s sip:x@%s;transport=tcp SIP/2.0\r\nVia: SIP/2.0/TCP %s;branch=z9hG4bK-tcp-%d\r\n"+
			"From: <sip:t@%s>;tag=tcptag\r\nTo: %s\r\nCall-ID: tcp-call\r\nCSeq: %d %s\r\n"+
			"Contact: <sip:t@%s;transport=tcp>\r\nMax-Forwards: 70\r\n%sContent-Length: %d\r\n\r\n%s",
			method, addr, local, cseq*10+len(method), local, to, cseq, method, local, ctype, len(body), body)
	}
	if _, err := conn.Write([]byte(msg("INVITE", "", 1, sdpOffer(4000, "0")))); err != nil {
		t.Fatal(err)
	}
	_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	var got strings.Builder
	buf := make([]byte, 8192)
	for !strings.Contains(got.String(), "SIP/2.0 200 OK") || !strings.Contains(got.String()[strings.Index(got.String(), "SIP/2.0 200 OK"):], "m=audio") {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("no 200 over TCP: %v\n%s", err, got.String())
		}
		got.Write(buf[:n])
	}
	ok := got.String()[strings.Index(got.String(), "SIP/2.0 200 OK"):]
	_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
	if _, err := conn.Write([]byte(msg("ACK", tag, 1, ""))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the call to connect", func() bool {
		cs := svc.Daemon().Connections()
		return len(cs) == 1 && cs[0].State == controlplane.StateConnected
	})
	if _, err := conn.Write([]byte(msg("BYE", tag, 2, ""))); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the call to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

const mergeApp = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
  <var name="caller" expr="''"/>
  <var name="callee" expr="''"/>
  <var name="merged" expr="0"/>
  <eventprocessor>
    <transition event="connection.alerting">
      <assign name="caller" expr="event$.connectionid"/>
      <accept connectionid="caller"/>
    </transition>
    <transition event="connection.connected" cond="event$.connectionid == caller">
      <createcall dest="session.values.destination" connectionid="callee"/>
    </transition>
    <transition event="connection.connected">
      <merge connectionid1="caller" connectionid2="callee"/>
    </transition>
    <transition event="connection.merged">
      <assign name="merged" expr="merged + 1"/>
      <if cond="merged == 2"><exit/></if>
    </transition>
    <transition event="connection.merge.failed"><log expr="'merge failed: ' + event$.reason"/></transition>
  </eventprocessor>
</ccxml>`

// TestMergeByRefer: <merge> asks the first party to take over the second
// call (REFER with Replaces); on the NOTIFY's 200 both calls leave the
// platform with connection.merged.
func TestMergeByRefer(t *testing.T) {
	callee, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	callee.Answer(880)
	defer callee.Close()
	svc, eng := startService(t, svcOpts{app: writeApp(t, mergeApp), destination: "sip:callee@" + callee.Addr().String()})
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	const cid = "merge-me"
	r.send(r.request("INVITE", cid, "", "application/sdp", sdpOffer(4000, "0"), 1))
	ok := r.expect(200)
	_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
	r.send(r.request("ACK", cid, tag, "", "", 1))
	refer := r.expectRequest("REFER")
	referTo := headerLine(refer, "Refer-To")
	if !strings.Contains(referTo, "?Replaces=") || !strings.Contains(referTo, "callgen@") {
		t.Fatalf("Refer-To %q", referTo)
	}
	r.send(withHeaders(r.request("NOTIFY", cid, tag, "message/sipfrag", "SIP/2.0 200 OK\r\n", 2),
		"Event: refer", "Subscription-State: terminated;reason=noresource"))
	r.expect(200)
	r.expectRequest("BYE")
	waitFor(t, "the callee's call to end", func() bool { return len(callee.Results()) == 1 })
	waitFor(t, "both connections to go", func() bool { return len(svc.Daemon().Connections()) == 0 })
	waitFor(t, "the session to exit on two connection.merged", func() bool { return len(svc.Sessions()) == 0 })
	waitFor(t, "endpoints to close", func() bool { return eng.Stats().Endpoints == 0 })
}

const unjoinApp = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
  <var name="caller" expr="''"/>
  <eventprocessor>
    <transition event="connection.alerting">
      <assign name="caller" expr="event$.connectionid"/>
      <accept connectionid="caller"/>
    </transition>
    <transition event="connection.connected"><join id1="caller" id2="caller"/></transition>
    <transition event="connection.signal"><unjoin id1="caller" id2="caller"/></transition>
    <transition event="conference.unjoined"><disconnect connectionid="caller"/></transition>
    <transition event="connection.disconnected"><exit/></transition>
  </eventprocessor>
</ccxml>`

// TestJoinUnjoin: <join> of a connection to itself echoes; <unjoin> removes
// the relay and reports conference.unjoined.
func TestJoinUnjoin(t *testing.T) {
	svc, eng := startService(t, svcOpts{app: writeApp(t, unjoinApp)})
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	const cid = "unjoin-call"
	r.send(r.request("INVITE", cid, "", "application/sdp", sdpOffer(4000, "0"), 1))
	ok := r.expect(200)
	_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
	r.send(r.request("ACK", cid, tag, "", "", 1))
	waitFor(t, "the echo join", func() bool {
		cs := svc.Daemon().Connections()
		return len(cs) == 1 && len(cs[0].Joined) == 1 && eng.Stats().Joins == 1
	})
	r.send(r.request("INFO", cid, tag, "application/dtmf-relay", "Signal=1\r\nDuration=100\r\n", 2))
	r.expect(200)
	r.expectRequest("BYE")
	waitFor(t, "the call to end", func() bool { return len(svc.Daemon().Connections()) == 0 })
	if st := eng.Stats(); st.Joins != 0 || st.Endpoints != 0 {
		t.Fatalf("left: %+v", st)
	}
}

// TestPortsExhausted: with one port pair the first call takes it (its
// recording fails for lack of ports, the call does not); a second call is
// refused 503; afterwards the pair is free again.
func TestPortsExhausted(t *testing.T) {
	svc, eng := startService(t, svcOpts{dataplane: "userspace", ports: dataplane.PortRange{Min: 35000, Max: 35001}})
	if free := eng.Stats().PortsFree; free != 1 {
		t.Fatalf("ports free %d", free)
	}
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	addr := svc.Daemon().SIPAddr().String()
	second := make(chan string, 1)
	res := caller.Call(context.Background(), "sip:echo@"+addr, callgen.CallOptions{
		Duration: time.Second,
		OnConnected: func(string) {
			r := newRawSIP(t, addr)
			r.send(r.request("INVITE", "no-ports", "", "application/sdp", sdpOffer(4000, "0"), 1))
			second <- r.expectFinal()
			// The refused call is released at once, not after its ACK.
			waitFor(t, "the refused connection to go", func() bool { return len(svc.Daemon().Connections()) == 1 })
		},
	})
	if res.Error != "" || res.Received == 0 {
		t.Fatalf("first call: %+v", res)
	}
	if got := <-second; !strings.HasPrefix(got, "SIP/2.0 503 ") {
		t.Fatalf("second call answered %q", strings.SplitN(got, "\r\n", 2)[0])
	}
	waitFor(t, "the pair to be free again", func() bool { st := eng.Stats(); return st.PortsFree == 1 && st.Endpoints == 0 })
}
