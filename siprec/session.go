package siprec

import (
	"context"
	"errors"

	"github.com/emiago/sipgo/sip"
)

// session is the recording of one connection (implementation in progress).
type session struct {
	c      *Client
	connID string
}

type intent struct {
	typ, uri string
	in, out  Mode
}

func newSession(c *Client, leg Leg) *session { return &session{c: c, connID: leg.ConnectionID} }
func (s *session) run()                      {}
func (s *session) submit(leg Leg, in intent) {
	s.c.events.push(Event{Name: EventError, ConnectionID: s.connID, Type: in.typ, URI: in.uri,
		Inbound: ModeNone, Outbound: ModeNone, Reason: ReasonDataplane + ": not implemented yet"})
}
func (s *session) fillInForce(ev *Event)         {}
func (s *session) end(ctx context.Context) error { s.c.forget(s); return nil }
func (s *session) status() Status                { return Status{} }
func validate(leg Leg, req Request) (intent, string) {
	return intent{typ: req.Type, uri: req.URI}, ""
}

var errTODO = errors.New("todo")

func (c *Client) onBye(req *sip.Request, tx sip.ServerTransaction)     { reply(tx, req, 481) }
func (c *Client) onInvite(req *sip.Request, tx sip.ServerTransaction)  { reply(tx, req, 481) }
func (c *Client) onAck(req *sip.Request, tx sip.ServerTransaction)     {}
func (c *Client) onUpdate(req *sip.Request, tx sip.ServerTransaction)  { reply(tx, req, 481) }
func (c *Client) onOptions(req *sip.Request, tx sip.ServerTransaction) { reply(tx, req, 200) }
func (c *Client) onNoRoute(req *sip.Request, tx sip.ServerTransaction) { reply(tx, req, 405) }
func reply(tx sip.ServerTransaction, req *sip.Request, code int) {
	_ = tx.Respond(sip.NewResponseFromRequest(req, code, "", nil))
}
