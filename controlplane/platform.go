package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/recfork/recfork/ccxml"
	"github.com/recfork/recfork/siprec"
)

// platform carries out CCXML call control on the daemon (ccxml.Platform).
// Every method starts the operation and returns; outcomes arrive as events.
type platform struct {
	ccxml.Unsupported
	d *Daemon
}

var _ ccxml.Platform = (*platform)(nil)

// sessionSink posts a connection's events to its CCXML session.
type sessionSink struct{ s *ccxml.Session }

func (k sessionSink) Deliver(ev Event) {
	f := make(map[string]any, len(ev.Fields)+1)
	for k, v := range ev.Fields {
		f[k] = v
	}
	f["connectionid"] = ev.ConnectionID
	// A session that has ended no longer takes events; its connections are
	// hung up by the session's owner.
	_ = k.s.Post(ccxml.Event{Name: ev.Name, Fields: f})
}

func (p *platform) conn(id string) (*Connection, error) {
	c, err := p.d.Connection(id)
	if err != nil {
		return nil, fmt.Errorf("%w: %s", ccxml.ErrUnknownConnection, id)
	}
	return c, nil
}

func (p *platform) Accept(_ context.Context, _ *ccxml.Session, r ccxml.AcceptRequest) error {
	if _, err := p.conn(r.ConnectionID); err != nil {
		return err
	}
	return p.d.Accept(r.ConnectionID)
}

// rejectCode reads a SIP status from <reject reason>: "486", "486 Busy Here"
// or a word (busy, decline, unavailable); anything else is 603.
func rejectCode(reason string) (int, string) {
	reason = strings.TrimSpace(reason)
	num, text, _ := strings.Cut(reason, " ")
	if n, err := strconv.Atoi(num); err == nil && n >= 400 && n <= 699 {
		if text == "" {
			text = "Rejected"
		}
		return n, text
	}
	switch strings.ToLower(reason) {
	case "busy":
		return 486, "Busy Here"
	case "unavailable":
		return 480, "Temporarily Unavailable"
	}
	return 603, "Decline"
}

func (p *platform) Reject(_ context.Context, _ *ccxml.Session, r ccxml.RejectRequest) error {
	if _, err := p.conn(r.ConnectionID); err != nil {
		return err
	}
	code, text := rejectCode(r.Reason)
	return p.d.Reject(r.ConnectionID, code, text)
}

func (p *platform) Redirect(_ context.Context, _ *ccxml.Session, r ccxml.RedirectRequest) error {
	if _, err := p.conn(r.ConnectionID); err != nil {
		return err
	}
	code := 302
	if n, err := strconv.Atoi(strings.TrimSpace(r.Reason)); err == nil && n >= 300 && n <= 399 {
		code = n
	}
	return p.d.Redirect(r.ConnectionID, r.Dest, code)
}

func (p *platform) Disconnect(_ context.Context, _ *ccxml.Session, r ccxml.DisconnectRequest) error {
	if _, err := p.conn(r.ConnectionID); err != nil {
		return err
	}
	reason := r.Reason
	if reason == "" {
		reason = "disconnect"
	}
	return p.d.Disconnect(r.ConnectionID, reason)
}

func (p *platform) CreateCall(_ context.Context, s *ccxml.Session, r ccxml.CreateCallRequest) error {
	o := CallOptions{ID: r.ConnectionID, From: r.CallerID, Timeout: r.Timeout, Sink: sessionSink{s}, SessionID: s.ID()}
	// The data plane relays without transcoding: offer the codec of the
	// connection this call will be joined to, else of the session's call,
	// and SRTP when that one is SRTP (it opens and re-seals per leg).
	join := r.JoinID
	for _, ci := range p.d.sessionConnections(s.ID()) {
		if (join == "" || ci.ID == join) && ci.State == StateConnected {
			if c, err := p.d.Connection(ci.ID); err == nil {
				if cs := c.Codecs(); len(cs) > 0 {
					o.Codecs = cs
					o.SRTP = c.SRTP()
					break
				}
			}
		}
	}
	if join != "" {
		duplex := "full"
		if r.JoinDirection == "callreceive" || r.JoinDirection == "calltransmit" {
			duplex = "half"
		}
		o.OnConnected = func(c *Connection) {
			// Half duplex: id1 hears id2. calltransmit: the joined party
			// hears the new call; callreceive: the new call hears it.
			id1, id2 := join, c.ID
			if r.JoinDirection == "callreceive" {
				id1, id2 = c.ID, join
			}
			if err := p.d.Join(id1, id2, duplex); err != nil {
				_ = s.Post(ccxml.Event{Name: "error.conference.join", Fields: map[string]any{"id1": id1, "id2": id2, "reason": err.Error()}})
				return
			}
			_ = s.Post(ccxml.Event{Name: "conference.joined", Fields: map[string]any{"id1": id1, "id2": id2}})
		}
	}
	_, err := p.d.CreateCall(r.Dest, o)
	return err
}

func (p *platform) Merge(_ context.Context, _ *ccxml.Session, r ccxml.MergeRequest) error {
	return p.d.Merge(r.ConnectionID1, r.ConnectionID2)
}

func (p *platform) Join(_ context.Context, s *ccxml.Session, r ccxml.JoinRequest) error {
	if err := p.d.Join(r.ID1, r.ID2, r.Duplex); err != nil {
		return err
	}
	_ = s.Post(ccxml.Event{Name: "conference.joined", Fields: map[string]any{"id1": r.ID1, "id2": r.ID2}})
	return nil
}

func (p *platform) Unjoin(_ context.Context, s *ccxml.Session, r ccxml.UnjoinRequest) error {
	if err := p.d.Unjoin(r.ID1, r.ID2); err != nil {
		return err
	}
	_ = s.Post(ccxml.Event{Name: "conference.unjoined", Fields: map[string]any{"id1": r.ID1, "id2": r.ID2}})
	return nil
}

// Send serves targettype 'connection': bvr.record goes to the SIPREC client,
// whose bvr.record.update or error.bvr.record reaches the session through the
// connection's sink.
func (p *platform) Send(_ context.Context, s *ccxml.Session, r ccxml.SendRequest) error {
	if r.TargetType != "connection" {
		return ccxml.ErrTargetTypeInvalid
	}
	if r.Name != "bvr.record" {
		return fmt.Errorf("send %q to a connection: only bvr.record is served: %w", r.Name, ccxml.ErrTargetUnavailable)
	}
	str := func(k string) string {
		switch v := r.Fields[k].(type) {
		case nil:
			return ""
		case string:
			return v
		default:
			return fmt.Sprint(v)
		}
	}
	req := siprec.Request{Type: str("type"), URI: str("uri"), Inbound: str("inbound"), Outbound: str("outbound"), Tag: r.SendID}
	if _, err := p.d.Connection(r.Target); err != nil {
		// No connection, no recording client to answer for it: the
		// document still gets its one error.bvr.record.
		_ = s.Post(ccxml.Event{Name: siprec.EventError, Fields: map[string]any{
			"connectionid": r.Target, "type": req.Type, "uri": req.URI,
			"inbound": string(siprec.ModeNone), "outbound": string(siprec.ModeNone),
			"reason": siprec.ReasonNoConnection + ": " + r.Target, "eventid": r.SendID}})
		return nil
	}
	err := p.d.Record(r.Target, req)
	if errors.Is(err, ErrNoRecording) {
		return fmt.Errorf("bvr.record: %v: %w", err, ccxml.ErrTargetUnavailable)
	}
	return err
}
