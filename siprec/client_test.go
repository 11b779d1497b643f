package siprec

import (
	"context"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"
	"github.com/recfork/recfork/dataplane"
)

var lo = netip.MustParseAddr("127.0.0.1")

type harness struct {
	c      *Client
	eng    *fakeEngine
	j      *journal
	events chan Event
	leg    Leg
}

func testLeg() Leg {
	return Leg{ConnectionID: "conn1", Endpoint: 7, Connected: true,
		Codecs: []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}, {PayloadType: 101, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-16"}},
		Remote: Participant{AOR: "sip:alice@example.com", Name: "Alice"}, Local: Participant{AOR: "sip:ivr@platform.example"},
		CallID: "call-1@example.com", SessionID: "ab30317f1a784dc48ff824d0d3715d86"}
}

func newHarness(t *testing.T, mod ...func(*Config)) *harness {
	t.Helper()
	j := &journal{}
	h := &harness{eng: newFakeEngine(j), j: j, events: make(chan Event, 16), leg: testLeg()}
	h.eng.eps[7] = dataplane.EndpointInfo{ID: 7, Local: netip.AddrPortFrom(lo, 20000)}
	cfg := Config{Engine: h.eng, MediaIP: lo, OnEvent: func(e Event) { h.events <- e },
		Timeouts: Timeouts{Invite: 2 * time.Second, Bye: time.Second, GlareMin: 10 * time.Millisecond, GlareMax: 30 * time.Millisecond, Confirm: time.Second}}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	h.c = c
	var once sync.Once
	j.closeClient = func() {
		once.Do(func() {
			if err := c.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		})
	}
	t.Cleanup(func() {
		j.closeClient()
		eps, forks := h.eng.counts()
		if eps != 1 || forks != 0 {
			t.Errorf("after close: %d endpoints (want only the call leg's), %d forks; journal:\n%s", eps, forks, j)
		}
	})
	return h
}

func (h *harness) record(t *testing.T, uri, in, out string) {
	t.Helper()
	if err := h.c.Record(h.leg, Request{Type: "siprec", URI: uri, Inbound: in, Outbound: out}); err != nil {
		t.Fatal(err)
	}
}

func (h *harness) wait(t *testing.T) Event {
	t.Helper()
	select {
	case e := <-h.events:
		return e
	case <-time.After(15 * time.Second):
		t.Fatalf("no event; journal:\n%s", h.j)
	}
	return Event{}
}

func expect(t *testing.T, e Event, name, op, code string, in, out Mode) {
	t.Helper()
	if e.Name != name || e.Operation != op || e.Code() != code || e.Inbound != in || e.Outbound != out {
		t.Fatalf("event %+v, want name=%s op=%s code=%s in=%s out=%s", e, name, op, code, in, out)
	}
	if e.ConnectionID == "" || e.Type == "" {
		t.Fatalf("event %+v lacks connection id or type", e)
	}
}

func TestStartUpdateStop(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j)
	h.record(t, srs.uri(), "active", "active")
	inv := srs.waitInvite(t)
	e := h.wait(t)
	expect(t, e, EventUpdate, OpStart, "", ModeActive, ModeActive)
	if e.URI != srs.uri() {
		t.Errorf("event uri %q", e.URI)
	}

	req := inv.req
	if v := req.GetHeader("Require"); v == nil || v.Value() != "siprec" {
		t.Errorf("Require: %v", v)
	}
	if c := req.Contact(); c == nil || !c.Params.Has("+sip.src") {
		t.Errorf("Contact %v lacks +sip.src", c)
	}
	if v := req.GetHeader("Accept"); v == nil || !strings.Contains(v.Value(), MetadataRequest) || !strings.Contains(v.Value(), MetadataType) {
		t.Errorf("Accept: %v", v)
	}
	if len(inv.parts) != 2 || inv.parts[0].MediaType() != "application/sdp" || inv.parts[1].MediaType() != MetadataType ||
		inv.parts[1].Disposition != "recording-session" {
		t.Fatalf("parts %+v", inv.parts)
	}
	if len(inv.streams) != 2 || inv.streams[0].Dir != "sendonly" || inv.streams[1].Dir != "sendonly" ||
		inv.streams[0].Label == inv.streams[1].Label {
		t.Fatalf("streams %+v", inv.streams)
	}
	m := inv.meta
	if m.DataMode != DataComplete || len(m.Streams) != 2 || len(m.Participants) != 2 || len(m.ParticipantStreamAssocs) != 2 {
		t.Fatalf("metadata %+v", m)
	}
	for i, st := range m.Streams {
		if st.Label != inv.streams[i].Label {
			t.Errorf("metadata stream %d label %q, sdp %q", i, st.Label, inv.streams[i].Label)
		}
	}
	// The remote party sends the inbound stream; the platform the outbound.
	if a := m.ParticipantStreamAssocs[0]; len(a.Send) != 1 || a.Send[0] != m.Streams[0].ID || a.Recv[0] != m.Streams[1].ID {
		t.Errorf("remote assoc %+v", a)
	}
	for _, d := range []dataplane.Direction{dataplane.Inbound, dataplane.Outbound} {
		f, ok := h.eng.fork(7, d)
		if !ok || f.Mode != dataplane.Active || f.Recorder.Addr() != lo {
			t.Fatalf("%s fork %+v %v", d, f, ok)
		}
	}
	st, ok := h.c.Status("conn1")
	if !ok || st.State != StateRecording || len(st.Streams) != 2 || st.CallID == "" || st.SRS != srs.uri() {
		t.Fatalf("status %+v", st)
	}

	// Mute inbound, outbound omitted: PCI order, mute before the re-INVITE.
	h.record(t, srs.uri(), "inactive", "")
	inv2 := srs.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeInactive, ModeActive)
	if !inv2.reinv || inv2.streams[0].Dir != "inactive" || inv2.streams[1].Dir != "sendonly" {
		t.Fatalf("re-invite streams %+v", inv2.streams)
	}
	if mi, ri := h.j.index("engine: mode inbound inactive"), h.j.index("srs: invite reinvite=true"); mi < 0 || ri < 0 || mi > ri {
		t.Fatalf("mute must precede the re-INVITE; journal:\n%s", h.j)
	}
	if o, n := inv.req.Contact(), inv2.req.Contact(); o == nil || n == nil {
		t.Fatal("re-INVITE lacks Contact")
	}

	// Unmute with nochange: copies resume only after the SRS accepted.
	h.record(t, srs.uri(), "active", "nochange")
	srs.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeActive, ModeActive)
	lines := strings.Split(h.j.String(), "\n")
	last := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "srs: invite reinvite=true") {
			last = i
		}
	}
	if um := h.j.index("engine: mode inbound active"); um < last {
		t.Fatalf("unmute must follow the SRS's acceptance; journal:\n%s", h.j)
	}

	// Remove outbound: its m-line stays, port 0.
	h.record(t, srs.uri(), "", "none")
	inv4 := srs.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeActive, ModeNone)
	if len(inv4.streams) != 2 || inv4.streams[1].Port != 0 || inv4.streams[0].Port == 0 {
		t.Fatalf("streams %+v", inv4.streams)
	}
	if _, ok := h.eng.fork(7, dataplane.Outbound); ok {
		t.Fatal("outbound fork still there")
	}
	// Add it back: same position, a fresh port.
	h.record(t, srs.uri(), "", "inactive")
	inv5 := srs.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeActive, ModeInactive)
	if len(inv5.streams) != 2 || inv5.streams[1].Port == 0 || inv5.streams[1].Dir != "inactive" || inv5.streams[1].Label != inv.streams[1].Label {
		t.Fatalf("streams %+v", inv5.streams)
	}
	if f, ok := h.eng.fork(7, dataplane.Outbound); !ok || f.Mode != dataplane.Inactive {
		t.Fatalf("outbound fork %+v %v", f, ok)
	}

	// Both none: BYE.
	h.record(t, srs.uri(), "none", "none")
	srs.waitBye(t)
	expect(t, h.wait(t), EventUpdate, OpStop, "", ModeNone, ModeNone)
	if eps, forks := h.eng.counts(); eps != 1 || forks != 0 {
		t.Fatalf("after stop: %d endpoints, %d forks", eps, forks)
	}
	if _, ok := h.c.Status("conn1"); ok {
		t.Fatal("status after stop")
	}
}

func TestValidationReasons(t *testing.T) {
	h := newHarness(t)
	cases := []struct {
		name string
		leg  func(Leg) Leg
		req  Request
		code string
	}{
		{"bad type", nil, Request{Type: "SIPREC", URI: "sip:a@127.0.0.1", Inbound: "active"}, ReasonBadType},
		{"missing type", nil, Request{URI: "sip:a@127.0.0.1", Inbound: "active"}, ReasonBadType},
		{"bad uri", nil, Request{Type: "siprec", URI: "http://x", Inbound: "active"}, ReasonBadURI},
		{"empty uri", nil, Request{Type: "siprec", Inbound: "active"}, ReasonBadURI},
		{"sips without tls", nil, Request{Type: "siprec", URI: "sips:a@127.0.0.1", Inbound: "active"}, ReasonBadURI},
		{"bad inbound", nil, Request{Type: "siprec", URI: "sip:a@127.0.0.1", Inbound: "Active"}, ReasonBadMode},
		{"bad outbound", nil, Request{Type: "siprec", URI: "sip:a@127.0.0.1", Outbound: "mute"}, ReasonBadMode},
		{"no connection", func(l Leg) Leg { l.ConnectionID = ""; return l }, Request{Type: "siprec", URI: "sip:a@127.0.0.1", Inbound: "active"}, ReasonNoConnection},
		{"not connected", func(l Leg) Leg { l.Connected = false; return l }, Request{Type: "siprec", URI: "sip:a@127.0.0.1", Inbound: "active"}, ReasonConnectionState},
		{"no media", func(l Leg) Leg { l.Codecs = nil; return l }, Request{Type: "siprec", URI: "sip:a@127.0.0.1", Inbound: "active"}, ReasonConnectionState},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			leg := h.leg
			if tc.leg != nil {
				leg = tc.leg(leg)
			}
			if err := h.c.Record(leg, tc.req); err != nil {
				t.Fatal(err)
			}
			e := h.wait(t)
			if e.Name != EventError || e.Code() != tc.code || e.Inbound != ModeNone || e.Outbound != ModeNone || e.Operation != "" {
				t.Fatalf("event %+v, want %s", e, tc.code)
			}
			if e.Type != tc.req.Type || e.URI != tc.req.URI {
				t.Fatalf("event %+v does not echo the request", e)
			}
		})
	}
}

func TestSRSFailures(t *testing.T) {
	cases := []struct {
		name   string
		script []srsReply
		uri    func(srs *testSRS) string
		code   string
		detail string
	}{
		{"rejected 486", []srsReply{{code: 486}}, nil, ReasonSRSRejected, "486"},
		{"rejected after ringing", []srsReply{{ringing: true, code: 503}}, nil, ReasonSRSRejected, "503"},
		{"timeout silent", []srsReply{{silent: true}}, nil, ReasonSRSTimeout, ""},
		{"timeout after ringing", []srsReply{{silent: true, ringing: true}}, nil, ReasonSRSTimeout, ""},
		{"bad answer m-lines", []srsReply{{answer: func(o []sdpStream) []sdpStream { return o[:1] }}}, nil, ReasonSRSBadAnswer, "m-lines"},
		{"bad answer sendonly", []srsReply{{answer: func(o []sdpStream) []sdpStream {
			return []sdpStream{{Port: 40000, Dir: "sendonly"}, {Port: 40002, Dir: "recvonly"}}
		}}}, nil, ReasonSRSBadAnswer, "sendonly"},
		{"all refused", []srsReply{{answer: func(o []sdpStream) []sdpStream { return []sdpStream{{Port: 0}, {Port: 0}} }}}, nil, ReasonSRSRejected, "port 0"},
		{"unreachable tcp", nil, func(*testSRS) string { return "sip:srs@127.0.0.1:1;transport=tcp" }, ReasonSRSUnreachable, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, func(c *Config) { c.Timeouts.Invite = 400 * time.Millisecond })
			srs := newTestSRS(t, h.j, tc.script...)
			uri := srs.uri()
			if tc.uri != nil {
				uri = tc.uri(srs)
			}
			h.record(t, uri, "active", "active")
			e := h.wait(t)
			expect(t, e, EventError, "", tc.code, ModeNone, ModeNone)
			if !strings.Contains(e.Reason, tc.detail) {
				t.Errorf("reason %q lacks %q", e.Reason, tc.detail)
			}
			if eps, forks := h.eng.counts(); eps != 1 || forks != 0 {
				t.Fatalf("after failure: %d endpoints, %d forks; journal:\n%s", eps, forks, h.j)
			}
		})
	}
}

func TestOneStreamRefused(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j, srsReply{answer: func(o []sdpStream) []sdpStream {
		return []sdpStream{{Port: 40000, Dir: "recvonly"}, {Port: 0}}
	}})
	h.record(t, srs.uri(), "active", "active")
	e := h.wait(t)
	expect(t, e, EventError, "", ReasonSRSRejected, ModeActive, ModeNone)
	if !strings.Contains(e.Reason, "outbound") {
		t.Errorf("reason %q", e.Reason)
	}
}

func TestDataplaneFailure(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j)
	h.eng.mu.Lock()
	h.eng.failOpen = true
	h.eng.mu.Unlock()
	h.record(t, srs.uri(), "active", "none")
	expect(t, h.wait(t), EventError, "", ReasonDataplane, ModeNone, ModeNone)
}

func TestCoalescing(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j, srsReply{ringing: true})
	hold := make(chan struct{})
	// Hold the first answer until the second request has been merged.
	srs.mu.Lock()
	srs.script[0].answer = func(o []sdpStream) []sdpStream {
		<-hold
		return []sdpStream{{Port: 40000, Dir: "recvonly"}}
	}
	srs.mu.Unlock()
	h.record(t, srs.uri(), "active", "")
	srs.waitInvite(t)
	h.record(t, srs.uri(), "nochange", "active") // resolves against the pending target
	close(hold)
	inv := srs.waitInvite(t)
	e := h.wait(t)
	expect(t, e, EventUpdate, OpStart, "", ModeActive, ModeActive)
	if !inv.reinv || len(inv.streams) != 2 {
		t.Fatalf("second request should have become a re-INVITE adding outbound: %+v", inv.streams)
	}
	// Exactly one event: the next one belongs to the next request.
	h.record(t, srs.uri(), "", "")
	expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeActive, ModeActive)
}

func TestURIChange(t *testing.T) {
	h := newHarness(t)
	a := newTestSRS(t, h.j)
	b := newTestSRS(t, h.j)
	h.record(t, a.uri(), "active", "active")
	a.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpStart, "", ModeActive, ModeActive)
	h.record(t, b.uri(), "", "inactive")
	a.waitBye(t)
	inv := b.waitInvite(t)
	e := h.wait(t)
	expect(t, e, EventUpdate, OpRestart, "", ModeActive, ModeInactive)
	if inv.reinv || len(inv.streams) != 2 || inv.streams[1].Dir != "inactive" || e.URI != b.uri() {
		t.Fatalf("new session %+v event %+v", inv.streams, e)
	}
}

func TestGlare491(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j, srsReply{}, srsReply{code: 491}, srsReply{code: 491}, srsReply{})
	h.record(t, srs.uri(), "active", "active")
	srs.waitInvite(t)
	h.wait(t)
	h.record(t, srs.uri(), "inactive", "")
	for range 3 {
		srs.waitInvite(t)
	}
	expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeInactive, ModeActive)
}

func TestGlareGivesUp(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.Timeouts.GlareRetries = 1 })
	srs := newTestSRS(t, h.j, srsReply{}, srsReply{code: 491}, srsReply{code: 491})
	h.record(t, srs.uri(), "active", "active")
	h.wait(t)
	h.record(t, srs.uri(), "inactive", "")
	// The mute stays in force (PCI) although the SRS never accepted it.
	e := h.wait(t)
	expect(t, e, EventError, "", ReasonSRSRejected, ModeInactive, ModeActive)
	if f, _ := h.eng.fork(7, dataplane.Inbound); f.Mode != dataplane.Inactive {
		t.Fatalf("inbound fork %+v", f)
	}
}

func TestReinviteRejected(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j, srsReply{}, srsReply{code: 488})
	h.record(t, srs.uri(), "active", "none")
	h.wait(t)
	h.record(t, srs.uri(), "", "active")
	e := h.wait(t)
	expect(t, e, EventError, "", ReasonSRSRejected, ModeActive, ModeNone)
	// The session survives a rejected re-INVITE, with its m-lines as before.
	h.record(t, srs.uri(), "inactive", "")
	var inv srsInvite
	for range 3 { // the INVITE, the rejected re-INVITE, this one
		inv = srs.waitInvite(t)
	}
	expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeInactive, ModeNone)
	if len(inv.streams) != 1 {
		t.Fatalf("m-lines after a rejected offer: %+v", inv.streams)
	}
}

func TestSRSBye(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j)
	h.record(t, srs.uri(), "active", "active")
	h.wait(t)
	srs.bye(t)
	e := h.wait(t)
	expect(t, e, EventError, "", ReasonSRSEnded, ModeNone, ModeNone)
	if e.URI != srs.uri() {
		t.Errorf("uri %q", e.URI)
	}
	if eps, forks := h.eng.counts(); eps != 1 || forks != 0 {
		t.Fatalf("after srs bye: %d endpoints, %d forks", eps, forks)
	}
	// A new request starts a new session.
	h.record(t, srs.uri(), "active", "")
	expect(t, h.wait(t), EventUpdate, OpStart, "", ModeActive, ModeNone)
}

func TestEndTearsDown(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j, srsReply{}, srsReply{silent: true})
	h.record(t, srs.uri(), "active", "active")
	h.wait(t)
	h.record(t, srs.uri(), "inactive", "")
	srs.waitInvite(t)
	srs.waitInvite(t) // the re-INVITE is in flight, unanswered
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := h.c.End(ctx, "conn1"); err != nil {
		t.Fatal(err)
	}
	expect(t, h.wait(t), EventError, "", ReasonConnectionState, ModeNone, ModeNone)
	srs.waitBye(t)
	if eps, forks := h.eng.counts(); eps != 1 || forks != 0 {
		t.Fatalf("after end: %d endpoints, %d forks", eps, forks)
	}
	if err := h.c.End(ctx, "conn1"); err != ErrNoSession {
		t.Fatalf("second end: %v", err)
	}
}

func TestSRSReinviteAndMetadataRequest(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j)
	h.record(t, srs.uri(), "active", "active")
	srs.waitInvite(t)
	h.wait(t)
	// The SRS pauses the inbound stream ("not yet").
	offer, _ := sdpOffer{SessionID: 7, Version: 9, IP: lo, Codecs: []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}},
		Streams: []sdpStream{{Port: 40000, Dir: "inactive"}, {Port: 40002, Dir: "recvonly"}}}.marshal()
	res := srs.request(t, sip.INVITE, "application/sdp", offer)
	if res.StatusCode != 200 {
		t.Fatalf("re-invite answered %d", res.StatusCode)
	}
	_, ans, err := parseStreams(res.Body())
	if err != nil || len(ans) != 2 || ans[0].Dir != "inactive" || ans[1].Dir != "sendonly" {
		t.Fatalf("answer %+v %v", ans, err)
	}
	if f, _ := h.eng.fork(7, dataplane.Inbound); f.Mode != dataplane.Inactive {
		t.Fatalf("paused inbound fork %+v", f)
	}
	if st, _ := h.c.Status("conn1"); !st.Streams[0].Paused {
		t.Fatalf("status %+v", st)
	}
	// The SRS asks for metadata: a re-INVITE with a complete snapshot follows.
	res = srs.request(t, sip.UPDATE, MetadataRequest, nil)
	if res.StatusCode != 200 {
		t.Fatalf("update answered %d", res.StatusCode)
	}
	inv := srs.waitInvite(t)
	if !inv.reinv || inv.meta == nil || inv.meta.DataMode != DataComplete {
		t.Fatalf("snapshot re-invite %+v", inv)
	}
}

// TestBadInDialogBodies: an SRS re-INVITE or UPDATE whose body we cannot
// take is answered with a status and reason phrase naming the cause and a
// Warning with the detail; the recording goes on (a good re-INVITE after
// them is still answered 200).
func TestBadInDialogBodies(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j)
	h.record(t, srs.uri(), "active", "active")
	srs.waitInvite(t)
	h.wait(t)
	oneStream, _ := sdpOffer{SessionID: 7, Version: 9, IP: lo, Codecs: []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}},
		Streams: []sdpStream{{Port: 40000, Dir: "recvonly"}}}.marshal()
	for _, tc := range []struct {
		name         string
		method       sip.RequestMethod
		ctype        string
		body         string
		code         int
		phrase, warn string
	}{
		{"multipart without boundary", sip.INVITE, "multipart/mixed", "--x\r\n\r\nv=0\r\n--x--\r\n", 400, "Missing Multipart Boundary", "without boundary"},
		{"boundary never seen", sip.UPDATE, "multipart/mixed;boundary=abc", "--other\r\nContent-Type: text/plain\r\n\r\nhi\r\n--other--\r\n", 400, "Multipart Boundary Not Found", `boundary 'abc'`},
		{"bad content type", sip.UPDATE, "multipart/mixed;;;", "x", 400, "Malformed Content-Type", "content type"},
		{"sdp garbage", sip.INVITE, "application/sdp", "this is not sdp", 400, "Malformed SDP", "parse sdp"},
		{"bad connection address", sip.INVITE, "application/sdp", "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 not-an-address\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0\r\nm=audio 4002 RTP/AVP 0\r\n", 400, "Malformed SDP", "connection address"},
		{"m-line count changed", sip.INVITE, "application/sdp", string(oneStream), 488, "Not Acceptable Here", "1 m-lines for our 2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			res := srs.request(t, tc.method, tc.ctype, []byte(tc.body))
			if res.StatusCode != tc.code || res.Reason != tc.phrase {
				t.Fatalf("answered %d %q, want %d %q", res.StatusCode, res.Reason, tc.code, tc.phrase)
			}
			w := res.GetHeader("Warning")
			if w == nil || !strings.HasPrefix(w.Value(), `399 recfork "`) || !strings.Contains(w.Value(), tc.warn) {
				t.Fatalf("Warning %v, want 399 with %q", w, tc.warn)
			}
		})
	}
	good, _ := sdpOffer{SessionID: 7, Version: 10, IP: lo, Codecs: []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}},
		Streams: []sdpStream{{Port: 40000, Dir: "recvonly"}, {Port: 40002, Dir: "recvonly"}}}.marshal()
	if res := srs.request(t, sip.INVITE, "application/sdp", good); res.StatusCode != 200 {
		t.Fatalf("good re-INVITE after bad ones answered %d %s", res.StatusCode, res.Reason)
	}
}

func TestPartialMetadataProfile(t *testing.T) {
	h := newHarness(t, func(c *Config) { c.DefaultProfile = Profile{Metadata: MetadataPartial} })
	srs := newTestSRS(t, h.j)
	h.record(t, srs.uri(), "active", "none")
	srs.waitInvite(t)
	h.wait(t)
	h.record(t, srs.uri(), "", "active")
	inv := srs.waitInvite(t)
	h.wait(t)
	if inv.meta == nil || inv.meta.DataMode != DataPartial || len(inv.meta.Streams) != 1 || len(inv.meta.Participants) != 0 {
		t.Fatalf("partial metadata %+v", inv.meta)
	}
	h.record(t, srs.uri(), "inactive", "")
	inv = srs.waitInvite(t)
	h.wait(t)
	if inv.meta != nil || len(inv.parts) != 1 {
		t.Fatalf("a mute changes no metadata: %+v", inv.parts)
	}
	h.record(t, srs.uri(), "", "none")
	inv = srs.waitInvite(t)
	h.wait(t)
	m := inv.meta
	if m == nil || m.DataMode != DataPartial || len(m.Streams) != 0 || len(m.ParticipantStreamAssocs) != 2 ||
		len(m.ParticipantStreamAssocs[0].Send) != 1 || len(m.ParticipantStreamAssocs[0].Recv) != 0 {
		t.Fatalf("partial metadata of a removal %+v", m)
	}
}

func TestRedirect(t *testing.T) {
	h := newHarness(t)
	b := newTestSRS(t, h.j)
	a := newTestSRS(t, h.j, srsReply{code: 302, contact: "<" + b.uri() + ">"})
	h.record(t, a.uri(), "active", "")
	a.waitInvite(t)
	b.waitInvite(t)
	e := h.wait(t)
	expect(t, e, EventUpdate, OpStart, "", ModeActive, ModeNone)
	if e.URI != a.uri() {
		t.Errorf("event uri %q, want the requested one", e.URI)
	}
}

func TestTransports(t *testing.T) {
	for _, tc := range []struct{ param, want string }{{"", "TCP"}, {";transport=tcp", "TCP"}, {";transport=udp", "UDP"}} {
		t.Run(tc.want+tc.param, func(t *testing.T) {
			h := newHarness(t)
			srs := newTestSRS(t, h.j)
			uri := srs.uri() + tc.param
			h.record(t, uri, "active", "active")
			inv := srs.waitInvite(t)
			expect(t, h.wait(t), EventUpdate, OpStart, "", ModeActive, ModeActive)
			if inv.req.Transport() != tc.want {
				t.Fatalf("transport %s", inv.req.Transport())
			}
			// An SRS re-INVITE: the SRC answers, and retransmits its 200
			// over UDP until the ACK.
			offer, _ := sdpOffer{SessionID: 7, Version: 9, IP: lo, Codecs: []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}},
				Streams: []sdpStream{{Port: 40000, Dir: "recvonly"}, {Port: 40002, Dir: "recvonly"}}}.marshal()
			if res := srs.request(t, sip.INVITE, "application/sdp", offer); res.StatusCode != 200 {
				t.Fatalf("re-invite answered %d", res.StatusCode)
			}
			h.record(t, uri, "inactive", "")
			inv = srs.waitInvite(t)
			expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeInactive, ModeActive)
			if inv.req.Transport() != tc.want {
				t.Fatalf("re-invite transport %s", inv.req.Transport())
			}
			srs.bye(t)
			expect(t, h.wait(t), EventError, "", ReasonSRSEnded, ModeNone, ModeNone)
		})
	}
}

func TestUDPSizeRule(t *testing.T) {
	h := newHarness(t)
	s := newSession(h.c, h.leg)
	u := sip.Uri{Scheme: "sip", User: "srs", Host: "127.0.0.1", Port: 5060}
	small := s.buildInvite(u, "UDP", "application/sdp", make([]byte, 100))
	big := s.buildInvite(u, "UDP", "multipart/mixed;boundary=x", make([]byte, 1200))
	if tooLargeForUDP(len(small.String()), 1500) || !tooLargeForUDP(len(big.String()), 1500) {
		t.Fatalf("sizes %d and %d", len(small.String()), len(big.String()))
	}
	hops := func(u sip.Uri, large bool) []hop {
		t.Helper()
		hs, err := h.c.resolve(context.Background(), u, large)
		if err != nil {
			t.Fatal(err)
		}
		return hs
	}
	if hs := hops(u, false); len(hs) != 1 || hs[0].tport != "UDP" || hs[0].forced {
		t.Fatalf("small request: %+v", hs)
	}
	if hs := hops(u, true); len(hs) != 1 || hs[0].tport != "TCP" || hs[0].forced {
		t.Fatalf("large request: %+v", hs)
	}
	h.c.cfg.Profiles = map[string]Profile{"127.0.0.1:5060": {Transport: "tcp"}, "10.0.0.9": {Transport: "udp", Metadata: MetadataPartial}}
	if hs := hops(u, false); hs[0].tport != "TCP" || !hs[0].forced {
		t.Fatalf("profile by host:port: %+v", hs)
	}
	if p := h.c.profile(sip.Uri{Host: "10.0.0.9", Port: 5080}); p.Metadata != MetadataPartial {
		t.Fatalf("profile by host: %+v", p)
	}
	withParam := u
	withParam.UriParams = sip.HeaderParams{{K: "transport", V: "udp"}}
	if hs := hops(withParam, true); hs[0].tport != "UDP" || !hs[0].forced {
		t.Fatalf("uri parameter must win over the profile: %+v", hs)
	}
}

func TestNewValidates(t *testing.T) {
	eng := newFakeEngine(&journal{})
	cases := []struct {
		name string
		cfg  Config
	}{
		{"no engine", Config{MediaIP: lo, OnEvent: func(Event) {}}},
		{"no media ip", Config{Engine: eng, OnEvent: func(Event) {}}},
		{"no callback", Config{Engine: eng, MediaIP: lo}},
		{"bad transport", Config{Engine: eng, MediaIP: lo, OnEvent: func(Event) {}, DefaultProfile: Profile{Transport: "sctp"}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); err == nil {
				t.Fatal("New accepted an invalid config")
			}
		})
	}
}

// TestCloseReleases checks that a client leaves no goroutine, endpoint or
// fork behind, with a session live at Close.
func TestCloseReleases(t *testing.T) {
	j := &journal{}
	srs := newTestSRS(t, j)
	eng := newFakeEngine(j)
	eng.eps[7] = dataplane.EndpointInfo{ID: 7}
	base := runtime.NumGoroutine()
	events := make(chan Event, 4)
	c, err := New(Config{Engine: eng, MediaIP: lo, OnEvent: func(e Event) { events <- e },
		Timeouts: Timeouts{Invite: 2 * time.Second, Bye: time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Record(testLeg(), Request{Type: "siprec", URI: srs.uri(), Inbound: "active", Outbound: "active"}); err != nil {
		t.Fatal(err)
	}
	select {
	case e := <-events:
		if e.Name != EventUpdate {
			t.Fatalf("%+v", e)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no event")
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	srs.waitBye(t)
	if eps, forks := eng.counts(); eps != 1 || forks != 0 {
		t.Fatalf("after close: %d endpoints, %d forks", eps, forks)
	}
	if err := c.Record(testLeg(), Request{Type: "siprec"}); err != ErrClosed {
		t.Fatalf("record after close: %v", err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("%d goroutines after close, %d before:\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		runtime.Gosched()
		time.Sleep(10 * time.Millisecond) // polling the count; no event exists for it
	}
}

func TestRemoteCSeq(t *testing.T) {
	s := &session{}
	req := func(n uint32) *sip.Request {
		r := sip.NewRequest(sip.INVITE, sip.Uri{Scheme: "sip", Host: "127.0.0.1"})
		r.AppendHeader(&sip.CSeqHeader{SeqNo: n, MethodName: sip.INVITE})
		return r
	}
	// The SRS may start at 1 even though our own CSeq is far higher.
	for i, tc := range []struct {
		n  uint32
		ok bool
	}{{1, true}, {2, true}, {2, false}, {1, false}, {9, true}} {
		if got := s.remoteCSeqOK(req(tc.n)); got != tc.ok {
			t.Fatalf("step %d: CSeq %d ok=%v", i, tc.n, got)
		}
	}
	if s.remoteCSeqOK(sip.NewRequest(sip.INVITE, sip.Uri{})) {
		t.Fatal("request without CSeq accepted")
	}
}

// TestGlareFromSRS: while our re-INVITE is pending, an SRS re-INVITE gets 491
// (RFC 3261 §14.2), and ours still completes.
func TestGlareFromSRS(t *testing.T) {
	h := newHarness(t)
	hold := make(chan struct{})
	srs := newTestSRS(t, h.j, srsReply{}, srsReply{answer: func(o []sdpStream) []sdpStream {
		<-hold
		return []sdpStream{{Port: 40000, Dir: "recvonly"}, {Port: 40002, Dir: "recvonly"}}
	}})
	h.record(t, srs.uri(), "active", "active")
	srs.waitInvite(t)
	h.wait(t)
	h.record(t, srs.uri(), "inactive", "")
	srs.waitInvite(t) // ours, held
	offer, _ := sdpOffer{SessionID: 7, Version: 9, IP: lo, Codecs: []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}},
		Streams: []sdpStream{{Port: 40000, Dir: "recvonly"}, {Port: 40002, Dir: "recvonly"}}}.marshal()
	res := srs.request(t, sip.INVITE, "application/sdp", offer)
	close(hold)
	if res.StatusCode != 491 {
		t.Fatalf("crossing re-INVITE answered %d, want 491", res.StatusCode)
	}
	expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeInactive, ModeActive)
}

// TestOfferlessReinviteFromSRS: an SRS re-INVITE without SDP gets our offer in
// the 200, and the answer in the ACK takes effect.
func TestOfferlessReinviteFromSRS(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j)
	h.record(t, srs.uri(), "active", "active")
	srs.waitInvite(t)
	h.wait(t)
	ans, _ := sdpOffer{SessionID: 7, Version: 9, IP: lo, Codecs: []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}},
		Streams: []sdpStream{{Port: 40010, Dir: "recvonly"}, {Port: 40012, Dir: "inactive"}}}.marshal()
	res := srs.requestAck(t, sip.INVITE, "", nil, ans)
	_, offer, err := parseStreams(res.Body())
	if res.StatusCode != 200 || err != nil || len(offer) != 2 || offer[0].Dir != "sendonly" {
		t.Fatalf("answer %d %v %+v", res.StatusCode, err, offer)
	}
	// The ACK is processed asynchronously; wait for the moved fork.
	h.eng.waitFor(t, "inbound fork moved, outbound paused", func() bool {
		in, _ := h.eng.fork(7, dataplane.Inbound)
		out, _ := h.eng.fork(7, dataplane.Outbound)
		return in.Recorder.Port() == 40010 && out.Mode == dataplane.Inactive
	})
}

// TestRemovalRejected: a rejected removal leaves the direction muted (PCI) and
// in the session; the next offer still carries its m-line with a port.
func TestRemovalRejected(t *testing.T) {
	h := newHarness(t)
	srs := newTestSRS(t, h.j, srsReply{}, srsReply{code: 500}, srsReply{})
	h.record(t, srs.uri(), "active", "active")
	srs.waitInvite(t)
	h.wait(t)
	h.record(t, srs.uri(), "", "none")
	srs.waitInvite(t)
	expect(t, h.wait(t), EventError, "", ReasonSRSRejected, ModeActive, ModeInactive)
	h.record(t, srs.uri(), "inactive", "")
	inv := srs.waitInvite(t)
	expect(t, h.wait(t), EventUpdate, OpUpdate, "", ModeInactive, ModeInactive)
	if len(inv.streams) != 2 || inv.streams[1].Port == 0 || inv.streams[1].Dir != "inactive" {
		t.Fatalf("offer after a rejected removal: %+v", inv.streams)
	}
}
