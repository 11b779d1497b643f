package siprec

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/recfork/recfork/dataplane"
)

// journal is an ordered log shared by the fake engine and the test SRS, so a
// test can check what happened before what.
type journal struct {
	mu    sync.Mutex
	lines []string
	// closeClient closes the client under test; test SRSs call it before
	// they stop, so the client's closing BYEs still find them.
	closeClient func()
}

func (j *journal) add(format string, args ...any) {
	j.mu.Lock()
	j.lines = append(j.lines, fmt.Sprintf(format, args...))
	j.mu.Unlock()
}

func (j *journal) index(prefix string) int {
	j.mu.Lock()
	defer j.mu.Unlock()
	for i, l := range j.lines {
		if strings.HasPrefix(l, prefix) {
			return i
		}
	}
	return -1
}

func (j *journal) String() string {
	j.mu.Lock()
	defer j.mu.Unlock()
	return strings.Join(j.lines, "\n")
}

type forkKey struct {
	ep  dataplane.EndpointID
	dir dataplane.Direction
}

// fakeEngine implements dataplane.Engine's bookkeeping without sockets, for
// the unit tests of the state machine.
type fakeEngine struct {
	j        *journal
	mu       sync.Mutex
	next     dataplane.EndpointID
	port     uint16
	eps      map[dataplane.EndpointID]dataplane.EndpointInfo
	forks    map[forkKey]dataplane.ForkConfig
	failOpen bool
	changed  chan struct{} // signalled after every change
}

func (f *fakeEngine) signal() {
	select {
	case f.changed <- struct{}{}:
	default:
	}
}

// waitFor waits until cond holds, re-checking after every engine change.
func (f *fakeEngine) waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for !cond() {
		select {
		case <-f.changed:
		case <-deadline:
			t.Fatalf("engine never reached: %s; journal:\n%s", what, f.j)
		}
	}
}

func newFakeEngine(j *journal) *fakeEngine {
	return &fakeEngine{j: j, next: 100, port: 30000, eps: map[dataplane.EndpointID]dataplane.EndpointInfo{},
		forks: map[forkKey]dataplane.ForkConfig{}, changed: make(chan struct{}, 1)}
}

func (f *fakeEngine) Name() string { return "fake" }

func (f *fakeEngine) OpenEndpoint(cfg dataplane.EndpointConfig) (dataplane.EndpointInfo, error) {
	defer f.signal()
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.failOpen {
		return dataplane.EndpointInfo{}, dataplane.ErrPortsExhausted
	}
	f.next++
	f.port += 2
	info := dataplane.EndpointInfo{ID: f.next, Local: netip.AddrPortFrom(cfg.LocalIP, f.port), Remote: cfg.Remote}
	f.eps[info.ID] = info
	f.j.add("engine: open %d", info.ID)
	return info, nil
}

func (f *fakeEngine) SetRemote(id dataplane.EndpointID, remote netip.AddrPort) error {
	defer f.signal()
	f.mu.Lock()
	defer f.mu.Unlock()
	info, ok := f.eps[id]
	if !ok {
		return dataplane.ErrNotFound
	}
	info.Remote = remote
	f.eps[id] = info
	return nil
}

func (f *fakeEngine) CloseEndpoint(id dataplane.EndpointID) error {
	defer f.signal()
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.eps[id]; !ok {
		return dataplane.ErrNotFound
	}
	delete(f.eps, id)
	for k, v := range f.forks {
		if k.ep == id || v.Source == id {
			delete(f.forks, k)
		}
	}
	f.j.add("engine: close %d", id)
	return nil
}

func (f *fakeEngine) Join(from, to dataplane.EndpointID, d dataplane.Duplex) error { return nil }
func (f *fakeEngine) Unjoin(a, b dataplane.EndpointID) error                       { return nil }

func (f *fakeEngine) AddFork(ep dataplane.EndpointID, dir dataplane.Direction, cfg dataplane.ForkConfig) error {
	defer f.signal()
	f.mu.Lock()
	defer f.mu.Unlock()
	k := forkKey{ep, dir}
	if _, ok := f.forks[k]; ok {
		return dataplane.ErrExists
	}
	if _, ok := f.eps[cfg.Source]; !ok {
		return fmt.Errorf("fork source %d: %w", cfg.Source, dataplane.ErrNotFound)
	}
	if cfg.Mode == 0 {
		cfg.Mode = dataplane.Active
	}
	f.forks[k] = cfg
	f.j.add("engine: fork %s %s", dir, cfg.Mode)
	return nil
}

func (f *fakeEngine) SetForkMode(ep dataplane.EndpointID, dir dataplane.Direction, m dataplane.Mode) error {
	defer f.signal()
	f.mu.Lock()
	defer f.mu.Unlock()
	k := forkKey{ep, dir}
	cfg, ok := f.forks[k]
	if !ok {
		return dataplane.ErrNotFound
	}
	cfg.Mode = m
	f.forks[k] = cfg
	f.j.add("engine: mode %s %s", dir, m)
	return nil
}

func (f *fakeEngine) RemoveFork(ep dataplane.EndpointID, dir dataplane.Direction) error {
	defer f.signal()
	f.mu.Lock()
	defer f.mu.Unlock()
	k := forkKey{ep, dir}
	if _, ok := f.forks[k]; !ok {
		return dataplane.ErrNotFound
	}
	delete(f.forks, k)
	f.j.add("engine: unfork %s", dir)
	return nil
}

func (f *fakeEngine) EndpointStats(id dataplane.EndpointID) (dataplane.EndpointStats, error) {
	return dataplane.EndpointStats{}, nil
}
func (f *fakeEngine) ForkStats(ep dataplane.EndpointID, dir dataplane.Direction) (dataplane.ForkStats, error) {
	return dataplane.ForkStats{}, nil
}
func (f *fakeEngine) Stats() dataplane.EngineStats { return dataplane.EngineStats{Engine: "fake"} }
func (f *fakeEngine) Close() error                 { return nil }

// fork returns the fork of the call leg's direction, if any.
func (f *fakeEngine) fork(ep dataplane.EndpointID, dir dataplane.Direction) (dataplane.ForkConfig, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c, ok := f.forks[forkKey{ep, dir}]
	return c, ok
}

// counts returns the number of open endpoints and forks.
func (f *fakeEngine) counts() (int, int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return len(f.eps), len(f.forks)
}

// srsReply scripts the test SRS's answer to one INVITE or re-INVITE.
type srsReply struct {
	// code is the final status; 0 means 200.
	code int
	// ringing sends 180 first.
	ringing bool
	// silent never answers.
	silent bool
	// contact is the Contact of a 3xx.
	contact string
	// retryAfter, when set, is the Retry-After header of a failure.
	retryAfter string
	// answer rewrites the default answer streams (recvonly on every offered
	// m-line).
	answer func(offer []sdpStream) []sdpStream
}

// srsInvite is what the test SRS saw of one INVITE.
type srsInvite struct {
	req     *sip.Request
	reinv   bool
	streams []sdpStream
	meta    *Metadata
	parts   []Part
}

// testSRS is a small scripted SIPREC server on loopback built on sipgo.
type testSRS struct {
	t      *testing.T
	j      *journal
	addr   netip.AddrPort
	tcp    *net.TCPListener // closed by tests of a UDP-only SRS
	udp    *net.UDPConn
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	client *sipgo.Client
	cache  *sipgo.DialogServerCache
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	script  []srsReply
	invites []srsInvite
	dlg     *sipgo.DialogServerSession
	byes    int
	seen    chan srsInvite
	byeSeen chan struct{}
	dlgSig  chan struct{}
}

// dialog waits for the established dialog.
func (s *testSRS) dialog(t *testing.T) *sipgo.DialogServerSession {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for {
		s.mu.Lock()
		d := s.dlg
		s.mu.Unlock()
		if d != nil {
			return d
		}
		select {
		case <-s.dlgSig:
		case <-deadline:
			t.Fatalf("srs: no established dialog; journal:\n%s", s.j)
		}
	}
}

func newTestSRS(t *testing.T, j *journal, script ...srsReply) *testSRS {
	t.Helper()
	// UDP and TCP share one port; the UDP port the kernel picks may be taken
	// for TCP (an ephemeral connection of another test), so try a few.
	var (
		u    *net.UDPConn
		l    *net.TCPListener
		port int
		err  error
	)
	for attempt := 0; ; attempt++ {
		if u, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}); err != nil {
			t.Fatal(err)
		}
		port = u.LocalAddr().(*net.UDPAddr).Port
		if l, err = net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}); err == nil {
			break
		}
		u.Close()
		if attempt == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-srs"))
	if err != nil {
		t.Fatal(err)
	}
	srv, _ := sipgo.NewServer(ua)
	cl, _ := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	s := &testSRS{t: t, j: j, addr: netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)), tcp: l, udp: u, ua: ua, srv: srv, client: cl,
		script: script, seen: make(chan srsInvite, 32), byeSeen: make(chan struct{}, 8), dlgSig: make(chan struct{}, 1)}
	s.cache = sipgo.NewDialogServerCache(cl, sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "srs", Host: "127.0.0.1", Port: port},
		Params: sip.HeaderParams{{K: "+sip.srs"}}})
	s.ctx, s.cancel = context.WithCancel(context.Background())
	srv.OnInvite(s.onInvite)
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = s.cache.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := s.cache.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No Dialog", nil))
			return
		}
		s.mu.Lock()
		s.byes++
		s.mu.Unlock()
		j.add("srs: bye")
		s.byeSeen <- struct{}{}
	})
	s.wg.Add(2)
	go func() { defer s.wg.Done(); _ = srv.ServeUDP(u) }()
	go func() { defer s.wg.Done(); _ = srv.ServeTCP(l) }()
	t.Cleanup(func() {
		if j.closeClient != nil {
			j.closeClient()
		}
		s.cancel()
		ua.Close()
		u.Close()
		l.Close()
		s.wg.Wait()
	})
	return s
}

// kill makes the SRS vanish: nothing it had is answered any more.
func (s *testSRS) kill() {
	s.ua.Close()
	s.udp.Close()
	s.tcp.Close()
}

func (s *testSRS) uri() string { return "sip:srs@" + s.addr.String() }

func (s *testSRS) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	_, reinv := req.To().Params.Get("tag")
	inv := srsInvite{req: req.Clone(), reinv: reinv}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	parts, err := ParseBody(ct, req.Body())
	if err != nil {
		s.t.Errorf("srs: bad body: %v", err)
	}
	inv.parts = parts
	if p, ok := findPart(parts, "application/sdp"); ok {
		_, inv.streams, err = parseStreams(p.Body)
		if err != nil {
			s.t.Errorf("srs: bad sdp: %v", err)
		}
	}
	if p, ok := findPart(parts, MetadataType); ok {
		if inv.meta, err = ParseMetadata(p.Body); err != nil {
			s.t.Errorf("srs: bad metadata: %v", err)
		}
	}
	s.mu.Lock()
	var r srsReply
	if len(s.script) > 0 {
		r = s.script[0]
		s.script = s.script[1:]
	}
	s.invites = append(s.invites, inv)
	s.mu.Unlock()
	dirs := make([]string, 0, len(inv.streams))
	for _, st := range inv.streams {
		dirs = append(dirs, fmt.Sprintf("%d/%s", st.Port, st.Dir))
	}
	s.j.add("srs: invite reinvite=%v %s", reinv, strings.Join(dirs, " "))
	s.seen <- inv

	if r.silent {
		return
	}
	answer := make([]sdpStream, len(inv.streams))
	for i, st := range inv.streams {
		answer[i] = sdpStream{Port: 40000 + 2*i, Dir: "recvonly", Label: st.Label}
		if st.Port == 0 {
			answer[i].Port = 0
		}
	}
	if r.answer != nil {
		answer = r.answer(inv.streams)
	}
	ansBody, _ := sdpOffer{SessionID: 7, Version: uint64(len(s.invites)), IP: netip.MustParseAddr("127.0.0.1"),
		Codecs: []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}}, Streams: answer}.marshal()
	if reinv {
		dlg, err := s.cache.MatchDialogRequest(req)
		if err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "No Dialog", nil))
			return
		}
		code := r.code
		if code == 0 {
			code = 200
		}
		var body []byte
		if code == 200 {
			body = ansBody
		}
		res := sip.NewResponseFromRequest(req, code, "Scripted", body)
		if body != nil {
			res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		}
		res.AppendHeader(&sip.ContactHeader{Address: dlg.InviteResponse.Contact().Address})
		_ = tx.Respond(res)
		return
	}
	dlg, err := s.cache.ReadInvite(req, tx)
	if err != nil {
		s.t.Errorf("srs: read invite: %v", err)
		return
	}
	if r.ringing {
		_ = dlg.Respond(180, "Ringing", nil)
	}
	switch {
	case r.code >= 300 && r.code < 400:
		_ = dlg.Respond(r.code, "Moved", nil, sip.NewHeader("Contact", r.contact))
	case r.code >= 300 && r.retryAfter != "":
		_ = dlg.Respond(r.code, "Scripted", nil, sip.NewHeader("Retry-After", r.retryAfter))
	case r.code >= 300:
		_ = dlg.Respond(r.code, "Scripted", nil)
	default:
		// RespondSDP returns once the ACK arrived; only then may the test
		// use the dialog (sipgo writes it until then).
		if err := dlg.RespondSDP(ansBody); err != nil {
			s.j.add("srs: respond sdp: %v", err)
			return
		}
		s.mu.Lock()
		s.dlg = dlg
		s.mu.Unlock()
		select {
		case s.dlgSig <- struct{}{}:
		default:
		}
	}
}

// waitInvite waits for the next INVITE the SRS sees.
func (s *testSRS) waitInvite(t *testing.T) srsInvite {
	t.Helper()
	select {
	case inv := <-s.seen:
		return inv
	case <-time.After(10 * time.Second):
		t.Fatalf("srs saw no INVITE; journal:\n%s", s.j)
	}
	return srsInvite{}
}

func (s *testSRS) waitBye(t *testing.T) {
	t.Helper()
	select {
	case <-s.byeSeen:
	case <-time.After(10 * time.Second):
		t.Fatalf("srs saw no BYE; journal:\n%s", s.j)
	}
}

// bye sends a BYE from the SRS.
func (s *testSRS) bye(t *testing.T) {
	t.Helper()
	dlg := s.dialog(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := dlg.Bye(ctx); err != nil {
		t.Fatalf("srs bye: %v", err)
	}
}

// request sends an in-dialog request from the SRS and returns the response.
func (s *testSRS) request(t *testing.T, method sip.RequestMethod, ct string, body []byte) *sip.Response {
	t.Helper()
	return s.requestAck(t, method, ct, body, nil)
}

// requestAck is request with an answer in the ACK (for an offerless INVITE).
func (s *testSRS) requestAck(t *testing.T, method sip.RequestMethod, ct string, body, ackBody []byte) *sip.Response {
	t.Helper()
	dlg := s.dialog(t)
	req := sip.NewRequest(method, dlg.InviteRequest.Contact().Address)
	if ct != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", ct))
	}
	req.SetBody(body)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	res, err := dlg.Do(ctx, req)
	if err != nil {
		t.Fatalf("srs %s: %v", method, err)
	}
	if method == sip.INVITE && res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, dlg.InviteRequest.Contact().Address)
		if ackBody != nil {
			ack.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			ack.SetBody(ackBody)
		}
		if err := dlg.WriteRequest(ack); err != nil {
			t.Fatalf("srs ack: %v", err)
		}
	}
	return res
}

func netipPort(p uint16) netip.AddrPort { return netip.AddrPortFrom(lo, p) }

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }
