package sim

import (
	"context"
	"fmt"
	"strings"

	"github.com/recfork/recfork/ccxml"
)

// Send is the platform's event processors: targettype 'connection' serves
// bvr.record (notes/BVR-RECORD.md).
func (p *Platform) Send(_ context.Context, s *ccxml.Session, r ccxml.SendRequest) error {
	if r.TargetType != "connection" {
		return fmt.Errorf("send to targettype %q: %w", r.TargetType, ccxml.ErrTargetTypeInvalid)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.conns[r.Target]
	if !ok {
		return fmt.Errorf("send %s to connection %s: %w", r.Name, r.Target, ccxml.ErrTargetUnavailable)
	}
	if r.Name != "bvr.record" {
		return fmt.Errorf("send %s to connection %s: the connection processor has no such event", r.Name, r.Target)
	}
	p.record(s, c, r)
	return nil
}

var modes = map[string]bool{"active": true, "inactive": true, "none": true, "nochange": true}

func field(f map[string]any, k string) (string, bool, bool) {
	v, present := f[k]
	if !present || v == nil {
		return "", false, true
	}
	str, ok := v.(string)
	return str, true, ok
}

// record takes one bvr.record request: validation errors are answered on
// their own; a valid request is merged into the connection's pending one.
func (p *Platform) record(s *ccxml.Session, c *conn, r ccxml.SendRequest) {
	typ, _, typOK := field(r.Fields, "type")
	uri, _, uriOK := field(r.Fields, "uri")
	in, _, inOK := field(r.Fields, "inbound")
	out, _, outOK := field(r.Fields, "outbound")
	base := c.rec
	if c.pending != nil {
		base = *c.pending
	}
	if !base.running && c.pending == nil {
		base.inbound, base.outbound = "none", "none"
	}
	fail := func(reason string) {
		in, out := c.rec.inbound, c.rec.outbound
		if in == "" {
			in, out = "none", "none"
		}
		post(s, "error.bvr.record", map[string]any{"connectionid": c.id, "type": typ, "uri": uri,
			"inbound": in, "outbound": out, "reason": reason, "eventid": r.SendID})
	}
	switch {
	case !typOK || typ != "siprec":
		fail(fmt.Sprintf("bad-type: type must be 'siprec', got %q", typ))
		return
	case !uriOK || !(strings.HasPrefix(uri, "sip:") || strings.HasPrefix(uri, "sips:")) || len(uri) < 6:
		fail(fmt.Sprintf("bad-uri: %q is not a sip: or sips: URI", uri))
		return
	case !inOK || (in != "" && !modes[in]):
		fail(fmt.Sprintf("bad-mode: inbound %q", in))
		return
	case !outOK || (out != "" && !modes[out]):
		fail(fmt.Sprintf("bad-mode: outbound %q", out))
		return
	case !live(c.state):
		fail("no-connection: connection " + c.id + " has ended")
		return
	case c.state != ccxml.StateConnected || !c.hadMedia:
		fail("connection-state: connection " + c.id + " is " + c.state + ", not connected with media")
		return
	}
	if in == "" || in == "nochange" {
		in = base.inbound
	}
	if out == "" || out == "nochange" {
		out = base.outbound
	}
	target := record{uri: uri, inbound: in, outbound: out, reqType: typ, reqURI: uri, sendid: r.SendID}
	if c.pending == nil {
		p.pending = append(p.pending, c)
	}
	c.pending = &target
}

// Idle answers the pending bvr.record requests: exactly one
// bvr.record.update (or error.bvr.record) per connection, describing the
// final state of all requests merged since the last answer. Wire it into
// ccxml.SessionOptions.Idle. It reports whether it posted anything.
func (p *Platform) Idle(*ccxml.Session) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	posted := false
	for _, c := range p.pending {
		// Answers go to the connection's session, which may be another
		// than the idle one (after <move>, or for a <createccxml> child).
		s := c.session
		t := *c.pending
		c.pending = nil
		posted = true
		if !live(c.state) {
			in, out := c.rec.inbound, c.rec.outbound
			if in == "" {
				in, out = "none", "none"
			}
			post(s, "error.bvr.record", map[string]any{"connectionid": c.id, "type": t.reqType, "uri": t.uri,
				"inbound": in, "outbound": out, "reason": "no-connection: the call ended before the SRS answered",
				"eventid": t.sendid})
			continue
		}
		stop := t.inbound == "none" && t.outbound == "none"
		if p.c.RejectRecordURI != "" && t.uri == p.c.RejectRecordURI && !stop {
			in, out := c.rec.inbound, c.rec.outbound
			if !c.rec.running {
				in, out = "none", "none"
			}
			post(s, "error.bvr.record", map[string]any{"connectionid": c.id, "type": t.reqType, "uri": t.uri,
				"inbound": in, "outbound": out, "reason": "srs-rejected: 486 Busy Here", "eventid": t.sendid})
			continue
		}
		var op string
		switch {
		case stop:
			op = "stop"
		case !c.rec.running:
			op = "start"
		case c.rec.uri != t.uri:
			op = "restart"
		default:
			op = "update"
		}
		c.rec = record{uri: t.uri, inbound: t.inbound, outbound: t.outbound, running: !stop}
		if stop {
			c.rec = record{inbound: "none", outbound: "none"}
		}
		post(s, "bvr.record.update", map[string]any{"connectionid": c.id, "type": t.reqType, "uri": t.uri,
			"inbound": t.inbound, "outbound": t.outbound, "operation": op, "eventid": t.sendid})
	}
	p.pending = p.pending[:0]
	return posted
}

// Recording returns the recording state in force on a connection: the SRS
// URI (empty when none runs) and the two directions' modes.
func (p *Platform) Recording(connectionID string) (uri, inbound, outbound string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.conns[connectionID]
	if !ok || !c.rec.running {
		return "", "none", "none"
	}
	return c.rec.uri, c.rec.inbound, c.rec.outbound
}
