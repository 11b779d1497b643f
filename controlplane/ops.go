package controlplane

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/recfork/recfork/dataplane"
)

// Accept answers an alerting inbound connection; connection.connected follows.
func (d *Daemon) Accept(id string) error {
	return d.decide(id, decision{kind: "accept"})
}

// Reject refuses an alerting connection with a 4xx-6xx code (zero: 603);
// connection.failed follows.
func (d *Daemon) Reject(id string, code int, reason string) error {
	if reason == "" {
		reason = "Decline"
	}
	return d.decide(id, decision{kind: "reject", code: code, reason: reason})
}

// Redirect answers an alerting connection with a 3xx (zero: 302) to dest;
// connection.redirected follows.
func (d *Daemon) Redirect(id, dest string, code int) error {
	var u sip.Uri
	if err := sip.ParseUri(strings.Trim(dest, "<>"), &u); err != nil {
		return fmt.Errorf("redirect %s to %q: %v: %w", id, dest, err, ErrConnectionState)
	}
	return d.decide(id, decision{kind: "redirect", code: code, reason: "Moved Temporarily", dest: strings.Trim(dest, "<>")})
}

func (d *Daemon) decide(id string, dec decision) error {
	c, err := d.Connection(id)
	if err != nil {
		return err
	}
	if c.Originator != "remote" || c.State() != StateAlerting {
		return fmt.Errorf("%s connection %s: %s: %w", dec.kind, id, c.State(), ErrConnectionState)
	}
	select {
	case c.decide <- dec:
		return nil
	default:
		return fmt.Errorf("%s connection %s: already decided: %w", dec.kind, id, ErrConnectionState)
	}
}

// Disconnect hangs a connection up: BYE when connected, CANCEL while an
// outbound call is pending, 480 while an inbound call alerts.
// connection.disconnected (or connection.failed) follows.
func (d *Daemon) Disconnect(id, reason string) error {
	c, err := d.Connection(id)
	if err != nil {
		return err
	}
	switch c.State() {
	case StateAlerting:
		return d.decide(id, decision{kind: "reject", code: 480, reason: "Temporarily Unavailable"})
	case StateProgressing:
		c.mu.Lock()
		cancel := c.cancelOut
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		return nil
	}
	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		ctx, cancel := context.WithTimeout(d.ctx, 8*time.Second)
		defer cancel()
		_ = d.hangup(ctx, c, reason)
	}()
	return nil
}

// hangup sends BYE on a connected connection and releases it.
func (d *Daemon) hangup(ctx context.Context, c *Connection, reason string) error {
	return d.hangupAs(ctx, c, reason, "connection.disconnected")
}

// hangupAs is hangup with the event the owner gets once the call is released
// (connection.merged after a merge).
func (d *Daemon) hangupAs(ctx context.Context, c *Connection, reason, event string) error {
	state := c.State()
	switch state {
	case StateAlerting:
		select {
		case c.decide <- decision{kind: "reject", code: 503, reason: "Service Unavailable"}:
		default:
		}
		return nil
	case StateProgressing:
		c.mu.Lock()
		cancel := c.cancelOut
		c.mu.Unlock()
		if cancel != nil {
			cancel()
		}
		select {
		case <-c.ended:
		case <-ctx.Done():
		}
		return nil
	case StateConnected:
	default:
		c.end(state)
		return nil
	}
	c.cancelRefresh() // a refresh in flight would hold reqMu for up to 64*T1
	c.reqMu.Lock()
	c.mu.Lock()
	uas, uac := c.uas, c.uac
	c.mu.Unlock()
	var err error
	if uas != nil {
		err = uas.Bye(ctx)
		uas.Close()
	} else if uac != nil {
		err = uac.Bye(ctx)
		uac.Close()
	}
	c.reqMu.Unlock()
	if err != nil {
		c.log.Info("bye", "err", err)
	}
	select {
	case <-c.ended:
		return err // a crossing remote BYE ended it first
	default:
	}
	c.end(StateDisconnected)
	c.log.Info("local hangup", "reason", reason)
	c.emit(event, c.eventFields(map[string]any{"reason": reason, "trigger": "local"}))
	return err
}

// CallOptions shape an outbound call.
type CallOptions struct {
	// ID is the connection id to use (CCXML chooses it); empty means the
	// daemon picks one.
	ID string
	// From is the caller id (a SIP URI); empty means sip:recfork@<our address>.
	From string
	// Timeout bounds the call's setup; zero means 30 s. At the deadline a
	// CANCEL is sent and connection.failed (reason timeout) follows.
	Timeout time.Duration
	// Codecs are offered in this order; empty means PCMU, PCMA and
	// telephone-event. A call to be joined to another one offers that one's
	// codec, since the data plane relays without transcoding.
	Codecs []Codec
	// SRTP offers RTP/SAVP with recfork's own SDES keys (srtpcall.go); a
	// call to be joined to an SRTP call sets it. With CallSRTPRequire every
	// call offers SRTP.
	SRTP bool
	// Sink receives the connection's events; SessionID names its owner.
	Sink      EventSink
	SessionID string
	// OnConnected runs once the call is connected, before
	// connection.connected is delivered (createcall's joinid).
	OnConnected func(c *Connection)
}

// CreateCall places an outbound call to dest (a SIP URI). It returns the new
// connection at once; connection.progressing (for each provisional answer),
// then connection.connected or connection.failed follow.
func (d *Daemon) CreateCall(dest string, o CallOptions) (*Connection, error) {
	var u sip.Uri
	if err := sip.ParseUri(strings.Trim(dest, "<>"), &u); err != nil {
		return nil, fmt.Errorf("create call to %q: %w", dest, err)
	}
	if u.Scheme != "sip" {
		return nil, fmt.Errorf("create call to %q: only sip: URIs are supported: %w", dest, ErrBadConfig)
	}
	id := o.ID
	if id == "" {
		id = d.newConnID()
	}
	from := o.From
	if from == "" {
		from = "sip:recfork@" + d.sipAddr.String()
	}
	var fromURI sip.Uri
	if err := sip.ParseUri(strings.Trim(from, "<>"), &fromURI); err != nil {
		return nil, fmt.Errorf("create call from %q: %w", from, err)
	}
	codecs := o.Codecs
	if len(codecs) == 0 {
		codecs = defaultCodecs
	}
	timeout := o.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Second
	}
	callID := newCallID()
	c := d.newConnection(id, "local", callID, from, u.String())
	c.state = StateProgressing
	c.codecs = codecs
	c.sink, c.sessionID = o.Sink, o.SessionID
	if err := d.register(c); err != nil {
		return nil, err
	}
	epCfg := dataplane.EndpointConfig{LocalIP: d.cfg.MediaIP, Latch: true}
	if o.SRTP || d.cfg.CallSRTP == CallSRTPRequire {
		leg, err := offerSRTP()
		if err != nil {
			c.end(StateFailed)
			return nil, fmt.Errorf("create call: %w", err)
		}
		c.mu.Lock()
		c.srtp = leg
		c.mu.Unlock()
		epCfg.Cipher = leg.cipher
	}
	info, err := d.engine.OpenEndpoint(epCfg)
	if err != nil {
		c.end(StateFailed)
		return nil, fmt.Errorf("create call: open media endpoint: %w", err)
	}
	ctx, cancel := context.WithTimeout(d.ctx, timeout)
	c.mu.Lock()
	c.ep, c.local = info.ID, info.Local
	c.cancelOut = cancel
	c.mu.Unlock()

	req := sip.NewRequest(sip.INVITE, u)
	fromParams := sip.NewParams()
	fromParams.Add("tag", newTag())
	req.AppendHeader(&sip.FromHeader{Address: fromURI, Params: fromParams})
	req.AppendHeader(&sip.ToHeader{Address: u, Params: sip.NewParams()})
	cid := sip.CallIDHeader(callID)
	req.AppendHeader(&cid)
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO"))
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	if tr, ok := u.UriParams.Get("transport"); ok && tr != "" {
		req.SetTransport(strings.ToUpper(tr))
	}
	req.SetBody(c.localSDP(DirSendRecv, nil))

	d.wg.Add(1)
	go func() {
		defer d.wg.Done()
		defer cancel()
		d.runOutbound(ctx, c, req, o.OnConnected)
	}()
	return c, nil
}

func (d *Daemon) runOutbound(ctx context.Context, c *Connection, req *sip.Request, onConnected func(*Connection)) {
	fail := func(reason string, code int) {
		c.end(StateFailed)
		f := map[string]any{"reason": reason}
		if code != 0 {
			f["code"] = code
		}
		c.log.Info("outbound call failed", "reason", reason, "code", code)
		c.emit("connection.failed", c.eventFields(f))
	}
	dlg, err := d.dcc.WriteInvite(ctx, req)
	if err != nil {
		fail("unreachable: "+err.Error(), 0)
		return
	}
	c.mu.Lock()
	c.uac = dlg
	c.mu.Unlock()
	d.bindDialog(c, dlg)
	c.log.Info("calling", "to", c.RemoteURI)
	err = dlg.WaitAnswer(ctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.IsProvisional() && res.StatusCode != 100 {
			c.emit("connection.progressing", c.eventFields(map[string]any{"code": res.StatusCode, "reason": res.Reason}))
		}
		return nil
	}})
	if err != nil {
		var dr *sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &dr):
			fail(outboundReason(dr.Res.StatusCode), dr.Res.StatusCode)
		case ctx.Err() != nil && d.ctx.Err() == nil && errors.Is(ctx.Err(), context.DeadlineExceeded):
			fail("timeout", 0)
		case ctx.Err() != nil:
			fail("canceled", 0)
		default:
			fail("error: "+err.Error(), 0)
		}
		dlg.Close()
		return
	}
	res := dlg.InviteResponse
	ackAndBye := func(reason string) {
		_ = dlg.Ack(context.Background())
		bctx, bcancel := context.WithTimeout(context.Background(), 4*time.Second)
		_ = dlg.Bye(bctx)
		bcancel()
		fail(reason, 0)
	}
	var off MediaOffer
	if c.SRTP() {
		off, err = parseSDPSRTP(res.Body(), CallSRTPRequire)
		if err == nil {
			c.mu.Lock()
			err = c.srtp.accept(off.Crypto)
			c.mu.Unlock()
		}
		if err != nil {
			c.log.Info("srtp answer refused", "err", err)
			ackAndBye("no common srtp")
			return
		}
	} else if off, err = parseSDP(res.Body()); err != nil {
		ackAndBye("bad answer sdp")
		return
	}
	codecs, err := negotiate(off.Codecs)
	if err != nil {
		ackAndBye("no common codec")
		return
	}
	if err := dlg.Ack(ctx); err != nil {
		fail("ack: "+err.Error(), 0)
		dlg.Close()
		return
	}
	c.mu.Lock()
	c.codecs = codecs
	ep := c.ep
	c.mu.Unlock()
	if !off.OnHold() && off.Remote.Port() != 0 {
		if err := d.engine.SetRemote(ep, off.Remote); err == nil {
			c.mu.Lock()
			c.remote = off.Remote
			c.mu.Unlock()
		}
	}
	select {
	case <-c.ended:
		return
	default:
	}
	c.mu.Lock()
	c.cancelOut = nil
	c.mu.Unlock()
	c.setState(StateConnected)
	d.startDTMF(c)
	c.answeredTimer(res)
	d.metrics.answered.Inc()
	c.log.Info("outbound call connected", "codec", codecs[0].Name)
	if onConnected != nil {
		onConnected(c)
	}
	c.emit("connection.connected", c.eventFields(nil))
}

// outboundReason maps a final failure status to connection.failed's reason.
func outboundReason(code int) string {
	switch {
	case code == 486 || code == 600:
		return "busy"
	case code == 408 || code == 480:
		return "noanswer"
	case code == 404 || code == 604:
		return "unknown"
	case code == 487:
		return "canceled"
	case code >= 300 && code < 400:
		return "redirected"
	}
	return "rejected"
}

// Join relays media between two connected connections (id1 == id2 echoes).
// Duplex "half" relays id2's audio to id1 only (id1 hears id2, CCXML 1.0
// §10.4.3); anything else is full duplex.
func (d *Daemon) Join(id1, id2, duplex string) error {
	c1, err := d.Connection(id1)
	if err != nil {
		return err
	}
	c2, err := d.Connection(id2)
	if err != nil {
		return err
	}
	ep1, ep2 := c1.Endpoint(), c2.Endpoint()
	if ep1 == 0 || ep2 == 0 || c1.State() != StateConnected || c2.State() != StateConnected {
		return fmt.Errorf("join %s %s: both must be connected with media: %w", id1, id2, ErrConnectionState)
	}
	dup := dataplane.Full
	from, to := ep1, ep2
	if duplex == "half" {
		dup = dataplane.Half
		from, to = ep2, ep1
	}
	if err := d.engine.Join(from, to, dup); err != nil {
		return fmt.Errorf("join %s %s: %w", id1, id2, err)
	}
	c1.mu.Lock()
	c1.joins[id2] = dup
	c1.mu.Unlock()
	if c2 != c1 {
		c2.mu.Lock()
		c2.joins[id1] = dup
		c2.mu.Unlock()
	}
	d.log.Info("joined", "id1", id1, "id2", id2, "duplex", dup.String())
	return nil
}

// Unjoin stops the relay between two connections.
func (d *Daemon) Unjoin(id1, id2 string) error {
	c1, err := d.Connection(id1)
	if err != nil {
		return err
	}
	c2, err := d.Connection(id2)
	if err != nil {
		return err
	}
	if err := d.engine.Unjoin(c1.Endpoint(), c2.Endpoint()); err != nil {
		return fmt.Errorf("unjoin %s %s: %w", id1, id2, err)
	}
	c1.mu.Lock()
	delete(c1.joins, id2)
	c1.mu.Unlock()
	c2.mu.Lock()
	delete(c2.joins, id1)
	c2.mu.Unlock()
	return nil
}
