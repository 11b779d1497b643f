package siprec

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math/rand/v2"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/srtp"
)

// intent is a validated request: concrete URI, modes possibly "" (nochange).
type intent struct {
	typ, uri string
	tag      string
	list     []sip.Uri
	in, out  Mode
}

// target is a state to reach: both modes concrete.
type target struct {
	uri     string
	list    []sip.Uri // uri parsed: the SRSs in order
	in, out Mode
}

func (t target) none() bool { return t.in == ModeNone && t.out == ModeNone }

func (t target) same(o target) bool { return t.uri == o.uri && t.in == o.in && t.out == o.out }

// batch is the set of coalesced requests that will resolve with one event.
type batch struct {
	startURI string // "" when no session existed when the batch opened
	lastType string
	lastURI  string
	lastTag  string
	// previous and cause are set when the batch's session moved to another
	// SRS of the list on the way (the one in use stopped answering).
	previous, cause string
}

// stream is one m-line of the recording session: one recorded direction.
type stream struct {
	dir   dataplane.Direction
	label string
	id    string // metadata stream_id
	ep    dataplane.EndpointInfo
	// mode is the mode in force; ModeNone once removed (port 0 m-line).
	mode     Mode
	forked   bool
	forkMode dataplane.Mode
	recorder netip.AddrPort
	paused   bool // the SRS answered inactive
	offered  string
}

// opError is a failed step, with its bvr.record reason code.
type opError struct {
	code, detail string
	// next reports that another hop or SRS may take the request (transport
	// error, timeout, a FailoverCodes answer); retryAfter is a 503's.
	next       bool
	retryAfter time.Duration
}

func (e *opError) Error() string { return e.code + ": " + e.detail }

func opErr(code, format string, args ...any) *opError {
	return &opError{code: code, detail: fmt.Sprintf(format, args...)}
}

// session is the recording of one connection. One worker goroutine (run)
// owns every outgoing SIP request and every data-plane change; Record only
// merges into the target under mu, and the SIP handlers only flag things and
// answer the SRS's in-dialog requests.
type session struct {
	c      *Client
	connID string
	log    *slog.Logger

	kick chan struct{}
	done chan struct{}

	// gate is held for the length of any INVITE transaction on the dialog,
	// ours or the SRS's, so that a crossing re-INVITE gets 491 (RFC 3261 §14.2).
	gate  inviteGate
	ackCh chan *sip.Request

	mu       sync.Mutex
	leg      Leg
	b        *batch
	tgt      target
	uri      string // in force, as requested; "" without session
	list     []sip.Uri
	active   sip.Uri // the SRS holding the dialog (list entry or 3xx target)
	entry    string  // srsKey of the list entry active came from
	via      hop     // where the INVITE went
	streams  []*stream
	dlg      *sipgo.DialogClientSession
	remote   sip.Uri // the SRS's Contact (remote target)
	callID   string
	tport    string
	sdpID    uint64
	sdpVer   uint64
	started  time.Time
	state    State
	cancelOp context.CancelFunc
	ending   bool
	srsEnded bool
	snapshot bool
	gone     bool
	// lost is set when the SRS in use went away (keepalive): the cause of
	// the takeover the worker does next.
	lost      string
	failovers int
	// left are the SRSs (srsKey) this session's takeovers left: never
	// tried again by a takeover, so two SRSs that each end every session
	// cannot pass a recording back and forth. A new request clears it.
	left map[string]bool
	// remoteCSeq is the CSeq of the SRS's last in-dialog request.
	remoteCSeq uint32
	md         mdIDs
	// srtp is set when the session records with SRTP (srtp.go); relays and
	// cryptos are then each recording leg's relay and a=crypto value.
	srtp    bool
	relays  map[dataplane.EndpointID]*srtp.Relay
	cryptos map[dataplane.EndpointID]string
}

type mdIDs struct {
	session, remote, local string
}

func newSession(c *Client, leg Leg) *session {
	return &session{
		c: c, connID: leg.ConnectionID, leg: leg,
		log:   c.log.With("connection_id", leg.ConnectionID),
		kick:  make(chan struct{}, 1),
		done:  make(chan struct{}),
		ackCh: make(chan *sip.Request, 1),
		tgt:   target{in: ModeNone, out: ModeNone},
	}
}

// validate checks a request's fields (BVR-RECORD.md: values are case-sensitive).
func validate(leg Leg, req Request, tlsOn bool) (intent, string) {
	if req.Type != "siprec" {
		return intent{}, fmt.Sprintf("%s: type %q is not siprec", ReasonBadType, req.Type)
	}
	list, err := ParseSRSList(req.URI)
	if err != nil {
		return intent{}, fmt.Sprintf("%s: %v", ReasonBadURI, err)
	}
	for _, u := range list {
		if u.Scheme == "sips" && !tlsOn {
			return intent{}, fmt.Sprintf("%s: %q: sips needs TLS, which is not configured", ReasonBadURI, u.String())
		}
		if tp, _ := u.UriParams.Get("transport"); strings.EqualFold(tp, "tls") && !tlsOn {
			return intent{}, fmt.Sprintf("%s: %q: transport=tls needs TLS, which is not configured", ReasonBadURI, u.String())
		}
	}
	in := intent{typ: req.Type, uri: req.URI, tag: req.Tag, list: list}
	for _, f := range []struct {
		name string
		v    string
		dst  *Mode
	}{{"inbound", req.Inbound, &in.in}, {"outbound", req.Outbound, &in.out}} {
		switch Mode(f.v) {
		case "", ModeNoChange:
		case ModeActive, ModeInactive, ModeNone:
			*f.dst = Mode(f.v)
		default:
			return intent{}, fmt.Sprintf("%s: %s %q", ReasonBadMode, f.name, f.v)
		}
	}
	if leg.ConnectionID == "" || (leg.CallID == "" && leg.Endpoint == 0 && !leg.Connected) {
		return intent{}, ReasonNoConnection + ": no connection id"
	}
	if !leg.Connected {
		return intent{}, ReasonConnectionState + ": connection not connected"
	}
	if leg.Endpoint == 0 || len(leg.Codecs) == 0 {
		return intent{}, ReasonConnectionState + ": connection has no media yet"
	}
	return in, ""
}

// submit merges a validated request into the session's target. It returns
// false if the session is finishing; the caller then starts a new one.
func (s *session) submit(leg Leg, in intent) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gone || s.ending {
		return false
	}
	s.leg = leg
	base := s.inForceLocked()
	if s.b != nil {
		base = s.tgt // nochange resolves against the pending target
	} else {
		s.b = &batch{startURI: s.uri}
	}
	t := target{uri: in.uri, list: in.list, in: base.in, out: base.out}
	if in.in != "" {
		t.in = in.in
	}
	if in.out != "" {
		t.out = in.out
	}
	s.tgt = t
	s.b.lastType, s.b.lastURI, s.b.lastTag = in.typ, in.uri, in.tag
	s.poke()
	return true
}

func (s *session) poke() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// inForceLocked is the state in force.
func (s *session) inForceLocked() target {
	t := target{uri: s.uri, list: s.list, in: ModeNone, out: ModeNone}
	for _, st := range s.streams {
		if st.mode == ModeNone {
			continue
		}
		if st.dir == dataplane.Inbound {
			t.in = st.mode
		} else {
			t.out = st.mode
		}
	}
	return t
}

func (s *session) reachedLocked(t target) bool {
	cur := s.inForceLocked()
	if t.none() {
		return s.dlg == nil
	}
	return s.dlg != nil && cur.uri == t.uri && cur.in == t.in && cur.out == t.out
}

func (s *session) fillInForce(ev *Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	cur := s.inForceLocked()
	ev.Inbound, ev.Outbound = cur.in, cur.out
}

// emitLocked resolves the open batch.
func (s *session) emitLocked(name, reason string) {
	b := s.b
	s.b = nil
	cur := s.inForceLocked()
	ev := Event{Name: name, ConnectionID: s.connID, Type: b.lastType, URI: b.lastURI, Tag: b.lastTag,
		Inbound: cur.in, Outbound: cur.out, Previous: b.previous, Cause: b.cause}
	s.fillSRSLocked(&ev)
	if name == EventUpdate {
		switch {
		case s.dlg == nil:
			ev.Operation = OpStop
		case b.startURI == "":
			ev.Operation = OpStart
		case b.startURI != s.uri:
			ev.Operation = OpRestart
		default:
			ev.Operation = OpUpdate
		}
	} else {
		ev.Reason = reason
		s.tgt = cur
	}
	s.c.events.push(ev)
}

// run is the session's worker.
func (s *session) run() {
	defer close(s.done)
	defer s.closeRelays()
	for {
		<-s.kick
		for {
			more, exit := s.iterate()
			if exit {
				return
			}
			if !more {
				break
			}
		}
	}
}

// iterate does one unit of work; more reports whether to look again at once.
func (s *session) iterate() (more, exit bool) {
	s.mu.Lock()
	switch {
	case s.ending:
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), s.c.to.Bye)
		s.hangup(ctx, true)
		cancel()
		s.mu.Lock()
		if s.b != nil {
			s.emitLocked(EventError, ReasonConnectionState+": the call ended")
		}
		s.gone = true
		s.mu.Unlock()
		s.c.forget(s)
		return false, true
	case s.srsEnded:
		s.srsEnded = false
		s.mu.Unlock()
		s.takeover(ReasonSRSEnded + ": the SRS sent BYE")
		return true, false
	case s.lost != "":
		cause := s.lost
		s.lost = ""
		if s.dlg == nil {
			s.mu.Unlock()
			return true, false
		}
		s.mu.Unlock()
		s.takeover(cause)
		return true, false
	case s.b != nil:
		t := s.tgt
		if s.reachedLocked(t) {
			s.emitLocked(EventUpdate, "")
			s.mu.Unlock()
			return true, false
		}
		ctx, cancel := context.WithCancel(context.Background())
		s.cancelOp = cancel
		s.mu.Unlock()
		err := s.step(ctx, t)
		cancel()
		s.mu.Lock()
		s.cancelOp = nil
		if s.ending || s.srsEnded || s.lost != "" {
			s.mu.Unlock()
			return true, false
		}
		if err == nil && s.tgt.same(t) && !s.reachedLocked(t) {
			err = opErr(ReasonSRSRejected, "requested state not reached")
		}
		if err != nil {
			var oe *opError
			if !errors.As(err, &oe) {
				oe = opErr(ReasonDataplane, "%v", err)
			}
			s.log.Info("recording request failed", "reason", oe.Error(), "srs", t.uri)
			s.emitLocked(EventError, oe.Error())
		}
		s.mu.Unlock()
		return true, false
	case s.snapshot && s.dlg != nil:
		s.snapshot = false
		t := s.inForceLocked()
		ctx, cancel := context.WithCancel(context.Background())
		s.cancelOp = cancel
		s.mu.Unlock()
		if err := s.update(ctx, t, true); err != nil {
			s.log.Warn("metadata snapshot to srs failed", "err", err)
		}
		cancel()
		s.mu.Lock()
		s.cancelOp = nil
		s.mu.Unlock()
		return true, false
	case s.dlg == nil:
		// Idle without a recording: drop the session so it holds nothing.
		s.gone = true
		s.mu.Unlock()
		s.c.forget(s)
		return false, true
	}
	s.mu.Unlock()
	return false, false
}

// end is Client.End for this session.
func (s *session) end(ctx context.Context) error {
	s.mu.Lock()
	if !s.gone {
		s.ending = true
		if s.cancelOp != nil {
			s.cancelOp()
		}
	}
	s.mu.Unlock()
	s.poke()
	select {
	case <-s.done:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("end recording of %s: %w", s.connID, ctx.Err())
	}
}

// srsBye is called when the SRS ended the dialog.
func (s *session) srsBye() {
	s.mu.Lock()
	s.srsEnded = true
	if s.cancelOp != nil {
		s.cancelOp()
	}
	s.mu.Unlock()
	s.poke()
}

// step takes one run toward t.
func (s *session) step(ctx context.Context, t target) error {
	s.mu.Lock()
	has, uri := s.dlg != nil, s.uri
	s.mu.Unlock()
	if has && uri != t.uri {
		// A different SRS: end the old session first (BVR-RECORD.md).
		bctx, cancel := context.WithTimeout(ctx, s.c.to.Bye)
		s.hangup(bctx, true)
		cancel()
		has = false
	}
	if t.none() {
		if has {
			bctx, cancel := context.WithTimeout(ctx, s.c.to.Bye)
			s.hangup(bctx, true)
			cancel()
		}
		return nil
	}
	if !has {
		s.mu.Lock()
		s.left = nil
		s.mu.Unlock()
		return s.start(ctx, t, nil)
	}
	s.mu.Lock()
	entry, prev := s.entry, s.active.String()
	s.mu.Unlock()
	err := s.update(ctx, t, false)
	s.mu.Lock()
	gone := s.dlg == nil
	s.mu.Unlock()
	if err == nil || !gone || len(t.list) < 2 || ctx.Err() != nil || t.none() {
		return err
	}
	// The dialog died under the re-INVITE (no answer, 408, 481): the
	// request goes to the next SRS of the list instead (takeover).
	s.log.Warn("srs stopped answering in the dialog, moving the recording", "srs", prev, "reason", err.Error())
	if serr := s.start(ctx, t, s.leave(entry)); serr != nil {
		return err
	}
	s.mu.Lock()
	s.failovers++
	if s.b != nil {
		s.b.previous, s.b.cause = prev, err.Error()
	}
	s.mu.Unlock()
	return nil
}

// takeover moves the recording to the next SRS of the list after the one in
// use went away (BYE, keepalive): its forks and endpoints are removed at
// once, so no copy goes to it any more, then a new session with the same
// metadata session id opens to the next usable SRS in the modes in force.
// The document hears of it with an unsolicited bvr.record.update
// (operation failover); with no SRS left it gets error.bvr.record
// srs-ended, as with a single SRS.
func (s *session) takeover(cause string) {
	s.mu.Lock()
	cur := s.inForceLocked()
	prevKey, prev := s.entry, s.active.String()
	s.mu.Unlock()
	// No BYE: the SRS ended the dialog itself or no longer answers.
	s.hangup(context.Background(), false)
	if len(cur.list) > 1 && !cur.none() {
		ctx, cancel := context.WithCancel(context.Background())
		s.mu.Lock()
		s.cancelOp = cancel
		s.mu.Unlock()
		err := s.start(ctx, cur, s.leave(prevKey))
		cancel()
		s.mu.Lock()
		s.cancelOp = nil
		if s.ending {
			s.mu.Unlock()
			return
		}
		if err == nil {
			s.failovers++
			now := s.inForceLocked()
			ev := Event{Name: EventUpdate, ConnectionID: s.connID, Type: "siprec", URI: cur.uri,
				Inbound: now.in, Outbound: now.out, Operation: OpFailover, Previous: prev, Cause: cause}
			s.fillSRSLocked(&ev)
			s.c.events.push(ev)
			s.mu.Unlock()
			s.log.Warn("recording moved to the next srs", "from", prev, "to", ev.SRS, "cause", cause)
			return
		}
		s.mu.Unlock()
		cause += "; no other SRS took the recording: " + err.Error()
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b != nil {
		s.emitLocked(EventError, cause)
		return
	}
	s.c.events.push(Event{Name: EventError, ConnectionID: s.connID, Type: "siprec", URI: cur.uri,
		Inbound: ModeNone, Outbound: ModeNone, Reason: cause, Previous: prev})
	s.tgt = s.inForceLocked()
}

// leave adds key to the SRSs takeovers left and returns the set.
func (s *session) leave(key string) map[string]bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.left == nil {
		s.left = map[string]bool{}
	}
	s.left[key] = true
	return maps.Clone(s.left)
}

// srsLost is called when the SRS with key was marked down: if this session
// records to it, the worker takes the recording over.
func (s *session) srsLost(key, cause string) {
	s.mu.Lock()
	if s.dlg == nil || s.entry != key || s.gone || s.ending {
		s.mu.Unlock()
		return
	}
	s.lost = cause
	if s.cancelOp != nil {
		s.cancelOp()
	}
	s.mu.Unlock()
	s.poke()
}

// fillSRSLocked names the SRS holding the session in ev.
func (s *session) fillSRSLocked(ev *Event) {
	if s.dlg != nil {
		ev.SRS, ev.Transport = s.active.String(), strings.ToLower(s.via.tport)
	}
}

// hangup removes every fork and recording endpoint, then sends BYE (if asked
// and a dialog exists). Copies stop before the BYE leaves, so none is in
// flight when the SRS closes its streams. It never fails: the data plane must
// end clean.
func (s *session) hangup(ctx context.Context, bye bool) {
	s.mu.Lock()
	dlg, streams, callID := s.dlg, s.streams, s.callID
	s.state = StateStopping
	s.mu.Unlock()
	for _, st := range streams {
		s.dropStream(st)
	}
	if dlg != nil && bye {
		s.gate.lock()
		if err := dlg.Bye(ctx); err != nil {
			s.log.Info("bye to srs failed", "err", err, "call_id", callID)
		}
		s.gate.unlock()
	}
	if dlg != nil {
		dlg.Close()
	}
	s.mu.Lock()
	s.dlg, s.streams, s.uri, s.list, s.callID, s.remoteCSeq = nil, nil, "", nil, "", 0
	s.active, s.entry, s.via = sip.Uri{}, "", hop{}
	s.state = ""
	s.mu.Unlock()
	if callID != "" {
		s.c.bindCallID(callID, nil)
	}
}

// dropStream removes a stream's fork and endpoint.
func (s *session) dropStream(st *stream) {
	eng := s.c.cfg.Engine
	s.mu.Lock()
	leg := s.leg.Endpoint
	forked, ep := st.forked, st.ep.ID
	st.forked, st.ep, st.mode, st.recorder, st.paused = false, dataplane.EndpointInfo{}, ModeNone, netip.AddrPort{}, false
	s.mu.Unlock()
	if forked {
		if err := eng.RemoveFork(leg, st.dir); err != nil && !errors.Is(err, dataplane.ErrNotFound) {
			s.log.Warn("remove fork", "err", err, "direction", st.dir.String())
		}
	}
	if ep != 0 {
		if err := eng.CloseEndpoint(ep); err != nil && !errors.Is(err, dataplane.ErrNotFound) {
			s.log.Warn("close recording endpoint", "err", err)
		}
		s.closeRelay(ep)
	}
}

func modeOf(t target, d dataplane.Direction) Mode {
	if d == dataplane.Inbound {
		return t.in
	}
	return t.out
}

func (s *session) newID() string { return EncodeID(s.c.cfg.NewUUID()) }

// start opens the recording session to the SRSs of t, never to avoid.
func (s *session) start(ctx context.Context, t target, avoid map[string]bool) error {
	eng := s.c.cfg.Engine
	var streams []*stream
	for _, d := range []dataplane.Direction{dataplane.Inbound, dataplane.Outbound} {
		m := modeOf(t, d)
		if m == ModeNone {
			continue
		}
		info, err := eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: s.c.cfg.MediaIP})
		if err != nil {
			for _, st := range streams {
				_ = eng.CloseEndpoint(st.ep.ID)
			}
			return opErr(ReasonDataplane, "open recording endpoint: %v", err)
		}
		streams = append(streams, &stream{dir: d, label: strconv.Itoa(len(streams) + 1), id: s.newID(), ep: info, mode: ModeNone, offered: offeredDir(m)})
	}
	closeAll := func() {
		for _, st := range streams {
			_ = eng.CloseEndpoint(st.ep.ID)
		}
	}
	s.mu.Lock()
	if s.md.session == "" {
		s.md = mdIDs{session: s.newID(), remote: s.newID(), local: s.newID()}
	}
	id := s.c.cfg.NewUUID()
	s.sdpID = binary.BigEndian.Uint64(id[:8]) >> 2 // fits NTP-style o= ids
	s.sdpVer = 1
	s.started = s.c.cfg.Now()
	s.state = StateStarting
	s.srtp = s.c.wantsSRTP(t.list)
	leg := s.leg
	offer := s.offerLocked(streams)
	meta := s.metadataLocked(streams, DataComplete, nil)
	s.mu.Unlock()

	body, ct, err := s.body(offer, meta)
	if err != nil {
		closeAll()
		return opErr(ReasonDataplane, "build invite body: %v", err)
	}
	a, oe := s.invite(ctx, t, ct, body, avoid)
	res, dlg, callID := a.res, a.dlg, a.callID
	if oe != nil {
		closeAll()
		s.mu.Lock()
		s.state = ""
		s.mu.Unlock()
		return oe
	}
	s.mu.Lock()
	s.dlg, s.uri, s.list, s.callID, s.streams = dlg, t.uri, t.list, callID, streams
	s.active, s.entry, s.via = a.took, srsKey(a.entry), a.via
	if c := res.Contact(); c != nil {
		s.remote = *c.Address.Clone()
	} else {
		s.remote = *a.took.Clone()
	}
	s.state = StateRecording
	s.mu.Unlock()

	ans, err := answerSDP(res)
	if err == nil {
		_, err = matchAnswer(offer.Streams, ans)
	}
	if err != nil {
		bctx, cancel := context.WithTimeout(ctx, s.c.to.Bye)
		s.hangup(bctx, true)
		cancel()
		return opErr(ReasonSRSBadAnswer, "%v", err)
	}
	_, as, _ := parseStreams(ans)
	refused := 0
	for i, st := range streams {
		if as[i].Port == 0 {
			refused++
			s.dropStream(st)
			continue
		}
		if err := s.applyStream(st, modeOf(t, st.dir), as[i], leg.Endpoint); err != nil {
			bctx, cancel := context.WithTimeout(ctx, s.c.to.Bye)
			s.hangup(bctx, true)
			cancel()
			return opErr(ReasonDataplane, "%v", err)
		}
	}
	if refused == len(streams) {
		bctx, cancel := context.WithTimeout(ctx, s.c.to.Bye)
		s.hangup(bctx, true)
		cancel()
		return opErr(ReasonSRSRejected, "every stream refused (port 0)")
	}
	if refused > 0 {
		return opErr(ReasonSRSRejected, "%s", refusedDetail(streams, as))
	}
	s.log.Info("recording session started", "srs", a.took.String(), "transport", strings.ToLower(a.via.tport),
		"addr", a.via.addr.String(), "call_id", callID)
	return nil
}

func refusedDetail(streams []*stream, as []sdpStream) string {
	var ds []string
	for i, st := range streams {
		if i < len(as) && as[i].Port == 0 && st.offered != "" {
			ds = append(ds, st.dir.String())
		}
	}
	return strings.Join(ds, " and ") + " stream refused (port 0)"
}

func offeredDir(m Mode) string {
	switch m {
	case ModeActive:
		return "sendonly"
	case ModeInactive:
		return "inactive"
	}
	return ""
}

// applyStream makes the data plane match an accepted m-line: the fork exists,
// copies to the answered address, and copies only if the direction is active
// and the SRS did not answer inactive. Unmuting happens here, after the SRS
// accepted (BVR-RECORD.md, PCI-safe order).
func (s *session) applyStream(st *stream, want Mode, ans sdpStream, legEP dataplane.EndpointID) error {
	eng := s.c.cfg.Engine
	rec := netip.AddrPortFrom(ans.Addr, uint16(ans.Port))
	paused := ans.Dir == "inactive"
	fm := dataplane.Inactive
	if want == ModeActive && !paused {
		fm = dataplane.Active
	}
	s.mu.Lock()
	forked, oldRec, oldMode, src := st.forked, st.recorder, st.forkMode, st.ep.ID
	if r := s.relays[src]; r != nil {
		// SRTP: the data plane forks the clear copies to the relay,
		// which sends them on, encrypted, to the SRS.
		r.SetDestination(rec)
		rec = r.In()
	}
	s.mu.Unlock()
	switch {
	case forked && oldRec != rec:
		if err := eng.RemoveFork(legEP, st.dir); err != nil && !errors.Is(err, dataplane.ErrNotFound) {
			return fmt.Errorf("move %s fork: %w", st.dir, err)
		}
		forked = false
		fallthrough
	case !forked:
		if err := eng.SetRemote(src, rec); err != nil {
			return fmt.Errorf("set recording endpoint remote: %w", err)
		}
		if err := eng.AddFork(legEP, st.dir, dataplane.ForkConfig{Recorder: rec, Source: src, Mode: fm}); err != nil {
			return fmt.Errorf("add %s fork: %w", st.dir, err)
		}
	case oldMode != fm:
		if err := eng.SetForkMode(legEP, st.dir, fm); err != nil {
			return fmt.Errorf("set %s fork %s: %w", st.dir, fm, err)
		}
	}
	s.mu.Lock()
	st.forked, st.recorder, st.forkMode, st.paused, st.mode = true, rec, fm, paused, want
	s.mu.Unlock()
	return nil
}

// update re-INVITEs the session toward t (same SRS). With snapshot it sends
// complete metadata whatever the profile says (RFC 7866 §6.1.2 answer to an
// rs-metadata-request).
func (s *session) update(ctx context.Context, t target, snapshot bool) error {
	eng := s.c.cfg.Engine
	s.mu.Lock()
	s.state = StateUpdating
	legEP := s.leg.Endpoint
	streams := append([]*stream(nil), s.streams...)
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		if s.dlg != nil {
			s.state = StateRecording
		}
		s.mu.Unlock()
	}()

	type change struct {
		st      *stream
		opened  bool // a new endpoint was opened for this offer
		added   bool // the m-line is new (appended)
		oldEP   dataplane.EndpointInfo
		oldOffr string
	}
	var changes []change
	rollback := func() {
		for _, ch := range changes {
			if ch.opened {
				_ = eng.CloseEndpoint(ch.st.ep.ID)
				s.mu.Lock()
				ch.st.ep, ch.st.offered = ch.oldEP, ch.oldOffr
				s.mu.Unlock()
			}
		}
		s.mu.Lock()
		n := 0
		for _, st := range s.streams {
			keep := true
			for _, ch := range changes {
				if ch.added && ch.st == st {
					keep = false
				}
			}
			if keep {
				s.streams[n] = st
				n++
			}
		}
		s.streams = s.streams[:n]
		// The next offer describes the state in force: the old one, except
		// for mutes already applied (PCI).
		for _, st := range s.streams {
			if st.ep.ID != 0 {
				st.offered = offeredDir(st.mode)
			}
		}
		s.mu.Unlock()
	}
	for _, d := range []dataplane.Direction{dataplane.Inbound, dataplane.Outbound} {
		want := modeOf(t, d)
		var st *stream
		for _, x := range streams {
			if x.dir == d {
				st = x
			}
		}
		if want == ModeNone || (st != nil && st.ep.ID != 0) {
			continue
		}
		info, err := eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: s.c.cfg.MediaIP})
		if err != nil {
			rollback()
			return opErr(ReasonDataplane, "open recording endpoint: %v", err)
		}
		if st == nil {
			// A direction never recorded in this session: a new m-line at
			// the end, every earlier m-line keeps its place (RFC 3264 §8).
			st = &stream{dir: d, label: s.nextLabel(streams), id: s.newID(), mode: ModeNone}
			s.mu.Lock()
			s.streams = append(s.streams, st)
			s.mu.Unlock()
			streams = append(streams, st)
			changes = append(changes, change{st: st, opened: true, added: true})
		} else {
			changes = append(changes, change{st: st, opened: true, oldOffr: st.offered})
		}
		s.mu.Lock()
		st.ep = info
		s.mu.Unlock()
	}
	// PCI-safe: stop copying before the SRS hears about the mute.
	for _, st := range streams {
		want := modeOf(t, st.dir)
		s.mu.Lock()
		mute := st.forked && st.forkMode == dataplane.Active && want != ModeActive
		s.mu.Unlock()
		if !mute {
			continue
		}
		if err := eng.SetForkMode(legEP, st.dir, dataplane.Inactive); err != nil {
			rollback()
			return opErr(ReasonDataplane, "mute %s: %v", st.dir, err)
		}
		s.mu.Lock()
		st.forkMode = dataplane.Inactive
		if st.mode == ModeActive {
			st.mode = ModeInactive // in force now, whatever the SRS answers
		}
		s.mu.Unlock()
	}
	s.mu.Lock()
	for _, st := range streams {
		st.offered = offeredDir(modeOf(t, st.dir))
	}
	s.sdpVer++
	offer := s.offerLocked(streams)
	var meta []byte
	mode := s.c.profile(s.active).Metadata
	if snapshot || mode == MetadataComplete {
		meta = s.metadataLocked(streams, DataComplete, nil)
	} else if changed := s.changedStreamsLocked(streams, t); len(changed) > 0 {
		meta = s.metadataLocked(streams, DataPartial, changed)
	}
	s.mu.Unlock()
	body, ct, err := s.body(offer, meta)
	if err != nil {
		rollback()
		return opErr(ReasonDataplane, "build re-invite body: %v", err)
	}
	res, oe, fatal := s.reinvite(ctx, ct, body)
	if oe != nil {
		rollback()
		if fatal {
			// RFC 3261 §14.1: a 408 or 481 to a re-INVITE (or no answer at
			// all) ends the dialog.
			bctx, cancel := context.WithTimeout(context.Background(), s.c.to.Bye)
			s.hangup(bctx, true)
			cancel()
		}
		return oe
	}
	ans, err := answerSDP(res)
	if err == nil {
		_, err = matchAnswer(offer.Streams, ans)
	}
	if err != nil {
		bctx, cancel := context.WithTimeout(context.Background(), s.c.to.Bye)
		s.hangup(bctx, true)
		cancel()
		return opErr(ReasonSRSBadAnswer, "%v", err)
	}
	_, as, _ := parseStreams(ans)
	var refused []string
	for i, st := range streams {
		want := modeOf(t, st.dir)
		if want == ModeNone {
			s.dropStream(st)
			continue
		}
		if as[i].Port == 0 {
			refused = append(refused, st.dir.String())
			s.dropStream(st)
			continue
		}
		if err := s.applyStream(st, want, as[i], legEP); err != nil {
			return opErr(ReasonDataplane, "%v", err)
		}
	}
	if len(refused) > 0 {
		return opErr(ReasonSRSRejected, "%s stream refused (port 0)", strings.Join(refused, " and "))
	}
	return nil
}

// nextLabel picks a label not used yet: one more than the largest numeric
// label (labels may be any token; we only write numbers).
func (s *session) nextLabel(streams []*stream) string {
	max := 0
	for _, st := range streams {
		if n, err := strconv.Atoi(st.label); err == nil && n > max {
			max = n
		}
	}
	return strconv.Itoa(max + 1)
}

// changedStreamsLocked lists the streams whose presence changes with t.
func (s *session) changedStreamsLocked(streams []*stream, t target) map[*stream]bool {
	out := map[*stream]bool{}
	for _, st := range streams {
		was := st.mode != ModeNone
		will := modeOf(t, st.dir) != ModeNone
		if was != will {
			out[st] = true
		}
	}
	return out
}

func (s *session) offerLocked(streams []*stream) sdpOffer {
	o := sdpOffer{SessionID: s.sdpID, Version: s.sdpVer, IP: s.c.cfg.MediaIP, Codecs: s.leg.Codecs}
	for _, st := range streams {
		ss := sdpStream{Label: st.label, Dir: st.offered}
		if st.ep.ID != 0 && st.offered != "" {
			ss.Port = int(st.ep.Local.Port())
			if s.srtp {
				// Never in clear: a stream without its relay is refused.
				ss.Port = 0
				if r, err := s.relayLocked(st); err != nil {
					s.log.Error("srtp relay", "err", err, "direction", st.dir.String())
				} else {
					ss.Port, ss.Crypto = int(r.Out().Port()), s.cryptos[st.ep.ID]
				}
			}
		}
		o.Streams = append(o.Streams, ss)
	}
	return o
}

// metadataLocked builds the metadata (RFC 7865): one session, the remote party
// and the platform as participants, one stream per recorded m-line. The
// inbound stream is sent by the remote party and received by the platform,
// the outbound one the reverse.
func (s *session) metadataLocked(streams []*stream, mode string, only map[*stream]bool) []byte {
	leg := s.leg
	m := &Metadata{DataMode: mode}
	sess := MDSession{ID: s.md.session, StartTime: s.started}
	if leg.SessionID != "" {
		sess.SIPSessionIDs = append(sess.SIPSessionIDs, leg.SessionID)
	}
	if mode == DataComplete {
		m.Sessions = []MDSession{sess}
		m.Participants = []MDParticipant{participant(s.md.remote, leg.Remote), participant(s.md.local, leg.Local)}
		m.SessionRecordingAssocs = []MDAssoc{{SessionID: s.md.session, AssociateTime: s.started}}
		m.ParticipantSessionAssocs = []MDAssoc{
			{ParticipantID: s.md.remote, SessionID: s.md.session, AssociateTime: s.started},
			{ParticipantID: s.md.local, SessionID: s.md.session, AssociateTime: s.started},
		}
	}
	remote := MDStreamAssoc{ParticipantID: s.md.remote}
	local := MDStreamAssoc{ParticipantID: s.md.local}
	for _, st := range streams {
		if st.offered == "" {
			continue // removed: no longer part of the recording
		}
		if only == nil || only[st] {
			m.Streams = append(m.Streams, MDStream{ID: st.id, SessionID: s.md.session, Label: st.label})
		}
		// The associations always list every live stream, so a partial
		// update that removes one says so by its absence.
		if st.dir == dataplane.Inbound {
			remote.Send = append(remote.Send, st.id)
			local.Recv = append(local.Recv, st.id)
		} else {
			local.Send = append(local.Send, st.id)
			remote.Recv = append(remote.Recv, st.id)
		}
	}
	m.ParticipantStreamAssocs = []MDStreamAssoc{remote, local}
	b, err := m.Marshal()
	if err != nil {
		s.log.Error("marshal metadata", "err", err)
		return nil
	}
	return b
}

// body builds the request body: multipart SDP + metadata, or SDP alone.
func (s *session) body(o sdpOffer, meta []byte) ([]byte, string, error) {
	sdpBody, err := o.marshal()
	if err != nil {
		return nil, "", err
	}
	if meta == nil {
		return sdpBody, "application/sdp", nil
	}
	ct, b, err := writeMultipart(s.c.boundary(),
		Part{ContentType: "application/sdp", Body: sdpBody},
		Part{ContentType: MetadataType, Disposition: "recording-session", Body: meta})
	if err != nil {
		return nil, "", err
	}
	return b, ct, nil
}

// answerSDP extracts the SDP of a response.
func answerSDP(res *sip.Response) ([]byte, error) {
	ct := ""
	if h := res.ContentType(); h != nil {
		ct = h.Value()
	}
	parts, err := ParseBody(ct, res.Body())
	if err != nil {
		return nil, err
	}
	p, ok := findPart(parts, "application/sdp")
	if !ok {
		return nil, fmt.Errorf("answer without sdp: %w", ErrBadSDP)
	}
	return p.Body, nil
}

func (s *session) status() Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dlg == nil && s.state == "" {
		return Status{ConnectionID: s.connID}
	}
	cur := s.inForceLocked()
	st := Status{ConnectionID: s.connID, SRS: s.uri, State: s.state, Inbound: cur.in, Outbound: cur.out,
		CallID: s.callID, Since: s.started, Failovers: s.failovers}
	if s.dlg != nil {
		st.Active, st.Transport, st.Remote = s.active.String(), strings.ToLower(s.via.tport), s.via.addr
	}
	if st.SRS == "" {
		st.SRS = s.tgt.uri
	}
	for _, x := range s.streams {
		st.Streams = append(st.Streams, StreamStatus{Direction: x.dir, Label: x.label, Mode: x.mode,
			Source: x.ep.ID, SourceLocal: x.ep.Local, Recorder: x.recorder, Paused: x.paused})
	}
	return st
}

// glareWait is the RFC 3261 §14.1 back-off before retrying after 491.
func (s *session) glareWait() time.Duration {
	lo, hi := s.c.to.GlareMin, s.c.to.GlareMax
	if hi <= lo {
		return lo
	}
	return lo + time.Duration(rand.Int64N(int64(hi-lo)))
}

func participant(id string, p Participant) MDParticipant {
	mp := MDParticipant{ID: id}
	if p.AOR != "" {
		mp.Names = []MDNameID{{AOR: p.AOR, Name: p.Name}}
	}
	return mp
}
