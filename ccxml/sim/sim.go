package sim

import (
	"context"
	"fmt"
	"maps"
	"strings"
	"sync"

	"github.com/recfork/recfork/ccxml"
)

// Config configures a Platform. The zero value is usable.
type Config struct {
	// RejectRecordURI, when non-empty, makes the simulated SRS at that URI
	// answer 486 Busy Here (error.bvr.record with srs-rejected), to test a
	// document's error path.
	RejectRecordURI string
	// DTMF holds keys the caller of an inbound call presses once it is
	// connected: one connection.signal per key, with the key in "dtmf" (the
	// BVR convention).
	DTMF string
}

type conn struct {
	id       string
	session  *ccxml.Session
	state    string
	local    string
	remote   string
	rec      record
	pending  *record // merged request awaiting the SRS's answer
	joined   map[string]bool
	hadMedia bool
}

type record struct {
	uri               string
	inbound, outbound string // active | inactive | none
	running           bool
	// of the pending request
	reqType, reqURI string
	sendid          string
}

// Platform is the simulated platform. It is safe for concurrent use.
type Platform struct {
	cfg ccxml.Unsupported // dialogs: unsupported
	c   Config

	mu      sync.Mutex
	conns   map[string]*conn
	confs   map[string]bool
	seen    int
	seq     int
	pending []*conn
}

var (
	_ ccxml.Platform = (*Platform)(nil)
	_ ccxml.Mover    = (*Platform)(nil)
)

// New returns a simulated platform.
func New(cfg Config) (*Platform, error) {
	return &Platform{c: cfg, conns: make(map[string]*conn), confs: make(map[string]bool)}, nil
}

func protocol() map[string]any {
	return map[string]any{"name": "sip", "version": "2.0"}
}

// Call delivers an inbound call with media to the session: the connection is
// ALERTING and the session gets connection.alerting.
func (p *Platform) Call(s *ccxml.Session, from, to string) (string, error) {
	p.mu.Lock()
	p.seq++
	id := fmt.Sprintf("sim-in-%d", p.seq)
	p.conns[id] = &conn{id: id, session: s, state: ccxml.StateAlerting, local: to, remote: from, hadMedia: true}
	p.seen++
	p.mu.Unlock()
	err := s.Post(ccxml.Event{Name: "connection.alerting", Fields: map[string]any{
		"connectionid": id, "local": to, "remote": from, "originator": "remote", "protocol": protocol(),
		"eventsource": id, "eventsourcetype": "connection"}})
	if err != nil {
		return "", fmt.Errorf("deliver call: %w", err)
	}
	return id, nil
}

// Live is the number of connections not yet ended.
func (p *Platform) Live() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, c := range p.conns {
		if live(c.state) {
			n++
		}
	}
	return n
}

// Seen is the number of connections ever created.
func (p *Platform) Seen() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.seen
}

// Hangup ends every live connection of the session, as callers do when the
// session ends (or as the platform does for an unhandled error).
func (p *Platform) Hangup(s *ccxml.Session) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if c.session == s && live(c.state) {
			c.state = ccxml.StateDisconnected
		}
	}
}

func live(state string) bool {
	return state == ccxml.StateAlerting || state == ccxml.StateProgressing || state == ccxml.StateConnected
}

func post(s *ccxml.Session, name string, f map[string]any) {
	if id, ok := f["connectionid"].(string); ok {
		if _, set := f["eventsource"]; !set {
			f["eventsource"] = id
			f["eventsourcetype"] = "connection"
		}
	}
	_ = s.Post(ccxml.Event{Name: name, Fields: f})
}

func (p *Platform) get(id string) (*conn, error) {
	c, ok := p.conns[id]
	if !ok {
		return nil, fmt.Errorf("connection %s: %w", id, ccxml.ErrUnknownConnection)
	}
	return c, nil
}

// Accept answers an alerting call.
func (p *Platform) Accept(_ context.Context, s *ccxml.Session, r ccxml.AcceptRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.get(r.ConnectionID)
	if err != nil {
		return err
	}
	if c.state != ccxml.StateAlerting {
		return fmt.Errorf("accept connection %s: state is %s, not ALERTING", c.id, c.state)
	}
	c.state = ccxml.StateConnected
	post(s, "connection.connected", map[string]any{"connectionid": c.id})
	for _, k := range p.c.DTMF {
		post(s, "connection.signal", map[string]any{"connectionid": c.id, "dtmf": string(k)})
	}
	return nil
}

// Reject refuses an alerting call.
func (p *Platform) Reject(_ context.Context, s *ccxml.Session, r ccxml.RejectRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.get(r.ConnectionID)
	if err != nil {
		return err
	}
	if c.state != ccxml.StateAlerting {
		return fmt.Errorf("reject connection %s: state is %s, not ALERTING", c.id, c.state)
	}
	c.state = ccxml.StateFailed
	reason := r.Reason
	if reason == "" {
		reason = "rejected"
	}
	post(s, "connection.failed", map[string]any{"connectionid": c.id, "reason": reason})
	return nil
}

// Redirect sends an alerting or connected call elsewhere.
func (p *Platform) Redirect(_ context.Context, s *ccxml.Session, r ccxml.RedirectRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.get(r.ConnectionID)
	if err != nil {
		return err
	}
	if c.state != ccxml.StateAlerting && c.state != ccxml.StateConnected {
		return fmt.Errorf("redirect connection %s: state is %s", c.id, c.state)
	}
	if !strings.HasPrefix(r.Dest, "sip:") && !strings.HasPrefix(r.Dest, "sips:") && !strings.HasPrefix(r.Dest, "tel:") {
		return fmt.Errorf("redirect connection %s: dest %q is not a sip, sips or tel URI", c.id, r.Dest)
	}
	c.state = ccxml.StateDisconnected
	post(s, "connection.redirected", map[string]any{"connectionid": c.id, "reason": r.Reason})
	return nil
}

// CreateCall places an outbound call that the far end answers.
func (p *Platform) CreateCall(_ context.Context, s *ccxml.Session, r ccxml.CreateCallRequest) error {
	if !strings.HasPrefix(r.Dest, "sip:") && !strings.HasPrefix(r.Dest, "sips:") && !strings.HasPrefix(r.Dest, "tel:") {
		return fmt.Errorf("createcall: dest %q is not a sip, sips or tel URI", r.Dest)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	local := r.CallerID
	if local == "" {
		local = "sip:recfork@127.0.0.1"
	}
	c := &conn{id: r.ConnectionID, session: s, state: ccxml.StateConnected, local: local, remote: r.Dest, hadMedia: true}
	p.conns[c.id] = c
	p.seen++
	base := map[string]any{"connectionid": c.id, "local": local, "remote": r.Dest, "originator": "local", "protocol": protocol()}
	post(s, "connection.progressing", maps.Clone(base))
	// The far end answers, unless its user part says otherwise: "busy" is
	// 486 Busy Here, "noanswer" a timeout (408), as a real callee could.
	if reason := failingCallee(r.Dest); reason != "" {
		c.state = ccxml.StateFailed
		f := maps.Clone(base)
		f["reason"] = reason
		post(s, "connection.failed", f)
		return nil
	}
	post(s, "connection.connected", maps.Clone(base))
	if r.JoinID != "" {
		p.joinLocked(s, c.id, r.JoinID)
	}
	return nil
}

func failingCallee(dest string) string {
	user := dest[strings.IndexByte(dest, ':')+1:]
	if i := strings.IndexAny(user, "@;"); i >= 0 {
		user = user[:i]
	}
	switch user {
	case "busy":
		return "busy"
	case "noanswer":
		return "noanswer"
	}
	return ""
}

// Disconnect hangs up a connected or progressing call.
func (p *Platform) Disconnect(_ context.Context, s *ccxml.Session, r ccxml.DisconnectRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.get(r.ConnectionID)
	if err != nil {
		return err
	}
	if c.state != ccxml.StateConnected && c.state != ccxml.StateProgressing {
		return fmt.Errorf("disconnect connection %s: state is %s", c.id, c.state)
	}
	c.state = ccxml.StateDisconnected
	c.rec = record{} // the recording ends with the call
	reason := r.Reason
	if reason == "" {
		reason = "normal"
	}
	post(s, "connection.disconnected", map[string]any{"connectionid": c.id, "reason": reason, "trigger": "local"})
	return nil
}

func (p *Platform) endpoint(id string) bool {
	if c, ok := p.conns[id]; ok {
		return c.state == ccxml.StateConnected
	}
	return p.confs[id]
}

func (p *Platform) joinLocked(s *ccxml.Session, id1, id2 string) {
	for _, pair := range [][2]string{{id1, id2}, {id2, id1}} {
		if c, ok := p.conns[pair[0]]; ok {
			if c.joined == nil {
				c.joined = map[string]bool{}
			}
			c.joined[pair[1]] = true
		}
	}
	post(s, "conference.joined", map[string]any{"id1": id1, "id2": id2})
}

// Join connects two connected calls or conferences.
func (p *Platform) Join(_ context.Context, s *ccxml.Session, r ccxml.JoinRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if r.ID1 == r.ID2 || !p.endpoint(r.ID1) || !p.endpoint(r.ID2) {
		return fmt.Errorf("join %s and %s: both must be connected calls or conferences", r.ID1, r.ID2)
	}
	p.joinLocked(s, r.ID1, r.ID2)
	return nil
}

// Unjoin separates two joined endpoints.
func (p *Platform) Unjoin(_ context.Context, s *ccxml.Session, r ccxml.UnjoinRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	joined := false
	for _, pair := range [][2]string{{r.ID1, r.ID2}, {r.ID2, r.ID1}} {
		if c, ok := p.conns[pair[0]]; ok && c.joined[pair[1]] {
			delete(c.joined, pair[1])
			joined = true
		}
	}
	if !joined {
		return fmt.Errorf("unjoin %s and %s: not joined", r.ID1, r.ID2)
	}
	post(s, "conference.unjoined", map[string]any{"id1": r.ID1, "id2": r.ID2})
	return nil
}

// Merge bridges two connected calls and drops them from the platform.
func (p *Platform) Merge(_ context.Context, s *ccxml.Session, r ccxml.MergeRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c1, ok1 := p.conns[r.ConnectionID1]
	c2, ok2 := p.conns[r.ConnectionID2]
	if !ok1 || !ok2 || c1 == c2 || c1.state != ccxml.StateConnected || c2.state != ccxml.StateConnected {
		return fmt.Errorf("merge %s and %s: both must be distinct connected calls", r.ConnectionID1, r.ConnectionID2)
	}
	c1.state, c2.state = ccxml.StateDisconnected, ccxml.StateDisconnected
	post(s, "connection.merged", map[string]any{"connectionid": c1.id, "mergeid": c2.id})
	post(s, "connection.merged", map[string]any{"connectionid": c2.id, "mergeid": c1.id})
	return nil
}

// CreateConference creates a mixer.
func (p *Platform) CreateConference(_ context.Context, s *ccxml.Session, r ccxml.CreateConferenceRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.confs[r.ConferenceID] = true
	post(s, "conference.created", map[string]any{"conferenceid": r.ConferenceID})
	return nil
}

// DestroyConference removes a mixer.
func (p *Platform) DestroyConference(_ context.Context, s *ccxml.Session, r ccxml.DestroyConferenceRequest) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if !p.confs[r.ConferenceID] {
		return fmt.Errorf("destroy conference %s: no such conference", r.ConferenceID)
	}
	delete(p.confs, r.ConferenceID)
	post(s, "conference.destroyed", map[string]any{"conferenceid": r.ConferenceID})
	return nil
}

// DialogPrepare is not supported.
func (p *Platform) DialogPrepare(ctx context.Context, s *ccxml.Session, r ccxml.DialogRequest) error {
	return p.cfg.DialogPrepare(ctx, s, r)
}

// DialogStart is not supported.
func (p *Platform) DialogStart(ctx context.Context, s *ccxml.Session, r ccxml.DialogRequest) error {
	return p.cfg.DialogStart(ctx, s, r)
}

// DialogTerminate is not supported.
func (p *Platform) DialogTerminate(ctx context.Context, s *ccxml.Session, r ccxml.DialogTerminateRequest) error {
	return p.cfg.DialogTerminate(ctx, s, r)
}

// Move re-routes a connection's events to another session (<move>).
func (p *Platform) Move(_ context.Context, from, to *ccxml.Session, connectionID string) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, err := p.get(connectionID)
	if err != nil {
		return err
	}
	if c.session != from {
		return fmt.Errorf("move connection %s: it belongs to another session", connectionID)
	}
	c.session = to
	return nil
}
