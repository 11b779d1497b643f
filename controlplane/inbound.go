package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/siprec"
)

// admitInvite applies the call and INVITE rate limits to a new INVITE and
// returns the limit that refuses it, or "".
func (d *Daemon) admitInvite(req *sip.Request) string {
	if d.maxCalls > 0 {
		d.mu.Lock()
		n := len(d.conns)
		d.mu.Unlock()
		if n >= d.maxCalls {
			return "calls"
		}
	}
	ok, limit := d.invites.allow(sourceAddr(req.Source()), time.Now())
	if !ok {
		return limit
	}
	return ""
}

func hasToTag(req *sip.Request) bool {
	to := req.To()
	return to != nil && to.Params != nil && to.Params.Has("tag")
}

// onInvite handles a new INVITE (a call) or a re-INVITE inside a dialog.
// For a new call the handler stays until the final response: sipgo ends an
// unanswered INVITE transaction when its handler returns (notes/SIPGO.md).
func (d *Daemon) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if hasToTag(req) {
		d.onReInvite(req, tx)
		return
	}
	d.metrics.invites.Inc()
	callID := ""
	if h := req.CallID(); h != nil {
		callID = h.Value()
	}
	log := d.log.With("call_id", callID)
	d.mu.Lock()
	closing := d.closing
	d.mu.Unlock()
	if closing {
		respond(tx, req, 503, "Service Unavailable")
		return
	}
	if d.refuseDraining(req, tx) {
		return
	}
	if limit := d.admitInvite(req); limit != "" {
		// RFC 3261 §21.5.4: 503 with Retry-After tells a well-behaved
		// client when to try again; the cause is logged at debug only, so
		// a flood cannot flood the log.
		d.metrics.limited.WithLabelValues(limit).Inc()
		d.metrics.rejected.WithLabelValues("503").Inc()
		log.Debug("invite refused by limit", "limit", limit, "source", req.Source())
		respond(tx, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", "5"),
			sip.NewHeader("Warning", `399 recfork "limit `+limit+`"`))
		return
	}
	// An INVITE without a body is a delayed offer (RFC 3261 §13.2.1): our
	// offer goes in the 200 and the caller's answer comes in the ACK.
	lateOffer := len(bytes.TrimSpace(req.Body())) == 0
	var off MediaOffer
	var codecs []Codec
	switch {
	case lateOffer && d.cfg.CallSRTP == CallSRTPRequire:
		d.metrics.rejected.WithLabelValues("488").Inc()
		respond(tx, req, 488, "Not Acceptable Here", sip.NewHeader("Warning", `399 recfork "SRTP is required: offer RTP/SAVP in the INVITE"`))
		return
	case lateOffer:
		off = MediaOffer{Dir: DirSendRecv, Proto: protoAVP}
		codecs = slices.Clone(defaultCodecs)
	default:
		sdpBody, ok := offerBody(req.ContentType(), req.Body())
		if !ok {
			// RFC 3261 §21.4.13: a body without SDP is 415, naming what we take.
			d.metrics.rejected.WithLabelValues("415").Inc()
			respond(tx, req, 415, "Unsupported Media Type", sip.NewHeader("Accept", acceptBodies))
			return
		}
		var err error
		if off, err = parseSDPSRTP(sdpBody, d.cfg.CallSRTP); err != nil {
			log.Info("invite refused", "err", err)
			d.metrics.rejected.WithLabelValues("488").Inc()
			respond(tx, req, 488, "Not Acceptable Here", offerWarning(err))
			return
		}
		if codecs, err = negotiate(off.Codecs); err != nil {
			d.metrics.rejected.WithLabelValues("488").Inc()
			respond(tx, req, 488, "Not Acceptable Here", sip.NewHeader("Warning", `305 recfork "no common codec"`))
			return
		}
	}
	if se := sessionExpires(req); se > 0 && se < minSE {
		// RFC 4028 §8.1: too short an interval is refused with our minimum.
		respond(tx, req, 422, "Session Interval Too Small", sip.NewHeader("Min-SE", strconv.Itoa(minSE)))
		return
	}
	appP := d.app.Load()
	if appP == nil {
		respond(tx, req, 503, "Service Unavailable")
		return
	}
	dlg, err := d.dsc.ReadInvite(req, tx)
	if err != nil {
		log.Info("invite refused", "err", err)
		respond(tx, req, 400, "Bad Request")
		return
	}
	defer func() {
		// Whatever happens, the dialog leaves sipgo's cache when the call ends.
		if s := dlg.LoadState(); s == sip.DialogStateEnded {
			dlg.Close()
		}
	}()
	c := d.newConnection(d.newConnID(), "remote", callID, req.Recipient.String(), req.From().Address.String())
	c.uas = dlg
	c.state = StateAlerting
	c.codecs = codecs
	// refuse releases c and answers at once; the transaction absorbs the
	// caller's ACK (the dialog's Respond would wait for it).
	refuse := func(code int, reason string, hdrs ...sip.Header) {
		c.end(StateFailed)
		res := sip.NewResponseFromRequest(dlg.InviteRequest, code, reason, nil)
		for _, h := range hdrs {
			res.AppendHeader(h)
		}
		_ = tx.Respond(res)
		dlg.Close()
	}
	if err := d.register(c); err != nil {
		refuse(503, "Service Unavailable")
		return
	}
	d.bindDialog(c, dlg)
	epCfg := dataplane.EndpointConfig{LocalIP: d.cfg.MediaIP, Latch: true}
	if off.Proto == protoSAVP {
		leg, err := answerSRTP(off.Crypto)
		if err != nil {
			c.log.Warn("srtp keys", "err", err)
			refuse(500, "Server Internal Error")
			return
		}
		c.mu.Lock()
		c.srtp = leg
		c.mu.Unlock()
		epCfg.Cipher = leg.cipher
		c.log.Info("call media uses srtp", "suite", leg.local[0].Suite, "offered", len(off.Crypto))
	}
	info, err := d.engine.OpenEndpoint(epCfg)
	if err != nil {
		cause := mediaCause(err)
		c.log.Warn("open media endpoint", "cause", cause, "err", err)
		d.metrics.rejected.WithLabelValues("503").Inc()
		refuse(503, "Service Unavailable", sip.NewHeader("Retry-After", "5"), sip.NewHeader("Warning", `399 recfork "`+cause+`"`))
		return
	}
	c.mu.Lock()
	c.ep, c.local = info.ID, info.Local
	c.mu.Unlock()
	// With a delayed offer the remote comes with the ACK's answer (or is
	// latched first).
	switch {
	case lateOffer:
	case !off.OnHold() && off.Remote.Port() != 0:
		if err := d.engine.SetRemote(info.ID, off.Remote); err != nil {
			c.log.Warn("set media remote", "err", err)
		} else {
			c.mu.Lock()
			c.remote = off.Remote
			c.mu.Unlock()
		}
	default:
		c.mu.Lock()
		c.hold = true
		c.mu.Unlock()
	}
	if err := (*appP).NewCall(c); err != nil {
		c.log.Warn("start call app", "err", err)
		refuse(500, "Server Internal Error")
		return
	}
	_ = dlg.Respond(180, "Ringing", nil)
	c.log.Info("call alerting", "from", c.RemoteURI, "to", c.LocalURI, "codec", codecs[0].Name, "media", info.Local.String())
	c.emit("connection.alerting", c.eventFields(nil))

	timer := time.NewTimer(d.cfg.AlertTimeout)
	defer timer.Stop()
	select {
	case dec := <-c.decide:
		if lateOffer {
			d.carryOut(c, dlg, tx, dec, nil)
		} else {
			d.carryOut(c, dlg, tx, dec, &off)
		}
	case <-dlg.Context().Done():
		// CANCEL (sipgo answered 200 and 487) or the transaction died.
		reason := "cancel"
		if !errors.Is(context.Cause(dlg.Context()), sip.ErrTransactionCanceled) {
			reason = "transaction ended"
		}
		c.log.Info("call canceled before answer", "reason", reason)
		c.end(StateFailed)
		c.emit("connection.failed", c.eventFields(map[string]any{"reason": reason}))
		dlg.Close()
	case <-timer.C:
		refuse(480, "Temporarily Unavailable")
		c.emit("connection.failed", c.eventFields(map[string]any{"reason": "timeout"}))
	case <-d.ctx.Done():
		refuse(503, "Service Unavailable")
		c.emit("connection.failed", c.eventFields(map[string]any{"reason": "shutdown"}))
	}
}

// carryOut answers an alerting call as the app decided.
// A nil off is a delayed offer: the 200 carries our offer and the ACK the
// answer.
func (d *Daemon) carryOut(c *Connection, dlg *sipgo.DialogServerSession, tx sip.ServerTransaction, dec decision, off *MediaOffer) {
	// A failure response goes straight to the transaction, which absorbs the
	// caller's ACK itself; the dialog's own Respond would hold this handler
	// (and the outcome event) until that ACK.
	final := func(code int, reason string, hdrs ...sip.Header) error {
		res := sip.NewResponseFromRequest(dlg.InviteRequest, code, reason, nil)
		for _, h := range hdrs {
			res.AppendHeader(h)
		}
		return tx.Respond(res)
	}
	switch dec.kind {
	case "accept":
		dir := DirSendRecv
		if off != nil {
			dir = answerDir(off.Dir)
		}
		answer := c.localSDP(dir, off)
		res := sip.NewSDPResponseFromRequest(dlg.InviteRequest, answer)
		se, refresher := 0, "uac"
		if supportsTimer(dlg.InviteRequest) {
			if se = sessionExpires(dlg.InviteRequest); se > 0 {
				// RFC 4028 §9: the caller may name the refresher; when it
				// names none, it refreshes.
				if refresherOf(dlg.InviteRequest) == "uas" {
					refresher = "uas"
				}
				res.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(se)+";refresher="+refresher))
				res.AppendHeader(sip.NewHeader("Require", "timer"))
			}
		}
		res.AppendHeader(sip.NewHeader("Supported", "timer"))
		if ch := d.tlsContact(dlg.InviteRequest); ch != nil {
			res.AppendHeader(ch)
		}
		if err := dlg.WriteResponse(res); err != nil {
			// CANCEL raced our 200, or no ACK came: the call is gone.
			if cause := answerCause(err); cause != "" {
				c.log.Warn("call refused: answer not sent", "cause", cause, "err", err)
			} else {
				c.log.Info("answer failed", "err", err)
			}
			c.end(StateFailed)
			c.emit("connection.accept.failed", c.eventFields(map[string]any{"reason": err.Error()}))
			c.emit("connection.failed", c.eventFields(map[string]any{"reason": "accept failed"}))
			// No BYE to an unverified UDP source (reflect.go).
			if dlg.LoadState() >= sip.DialogStateEstablished && byeWithoutAck(dlg.InviteRequest) {
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
				_ = dlg.Bye(ctx)
				cancel()
			}
			dlg.Close()
			return
		}
		if dlg.Context().Err() != nil {
			// A BYE arrived while we waited for the ACK.
			return
		}
		if off == nil {
			if err := d.takeAckAnswer(c, dlg.InviteRequest.CSeq().SeqNo); err != nil {
				// RFC 3261 §13.2.1: the ACK must answer the offer in our 200;
				// without a usable answer there is no media to run.
				c.log.Info("call ended: no usable answer in the ack", "err", err)
				c.end(StateFailed)
				c.emit("connection.failed", c.eventFields(map[string]any{"reason": "no answer in ack"}))
				ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
				_ = dlg.Bye(ctx)
				cancel()
				dlg.Close()
				return
			}
		}
		c.setState(StateConnected)
		d.startDTMF(c)
		c.armSessionTimer(se)
		if se > 0 && refresher == "uas" {
			c.mu.Lock()
			c.refreshByUpdate = allowsUpdate(dlg.InviteRequest)
			c.mu.Unlock()
			c.armRefresh(se, sessionRefreshAt(se))
		}
		d.metrics.answered.Inc()
		c.log.Info("call connected", "session_expires_s", se, "refresher", refresher)
		c.emit("connection.connected", c.eventFields(nil))
	case "reject":
		code := dec.code
		if code < 400 || code > 699 {
			code = 603
		}
		c.end(StateFailed)
		_ = final(code, dec.reason)
		d.metrics.rejected.WithLabelValues(fmt.Sprint(code)).Inc()
		c.emit("connection.failed", c.eventFields(map[string]any{"reason": "rejected"}))
		dlg.Close()
	case "redirect":
		code := dec.code
		if code < 300 || code > 399 {
			code = 302
		}
		c.end(StateDisconnected)
		err := final(code, dec.reason, sip.NewHeader("Contact", "<"+dec.dest+">"))
		if err != nil {
			c.emit("connection.redirect.failed", c.eventFields(map[string]any{"reason": err.Error()}))
		} else {
			c.emit("connection.redirected", c.eventFields(map[string]any{"reason": dec.reason}))
		}
		dlg.Close()
	}
}

// eventFields are the fields every connection event carries.
func (c *Connection) eventFields(extra map[string]any) map[string]any {
	c.mu.Lock()
	f := map[string]any{
		"connectionid": c.ID,
		"local":        c.LocalURI,
		"remote":       c.RemoteURI,
		"originator":   c.Originator,
		"protocol":     map[string]any{"name": "sip", "version": "2.0", "sip": map[string]any{"callid": c.CallID}},
	}
	c.mu.Unlock()
	for k, v := range extra {
		f[k] = v
	}
	return f
}

// findDialogConn returns the connection of an in-dialog request, if any.
func (d *Daemon) findDialogConn(req *sip.Request) *Connection {
	var key any
	if s, err := d.dsc.MatchDialogRequest(req); err == nil {
		key = s
	} else if s, err := d.dcc.MatchRequestDialog(req); err == nil {
		key = s
	} else {
		return nil
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.byDialog[key]
}

// takeAckAnswer applies the answer in the ACK to a delayed-offer INVITE: our
// 200 offered defaultCodecs, which are all the formats parseSDP knows, so the
// codecs narrow to the answer's first, and the media goes to its address.
func (d *Daemon) takeAckAnswer(c *Connection, cseq uint32) error {
	ack := c.ackFor(cseq)
	if ack == nil {
		return errors.New("the ack was not seen")
	}
	o, err := d.answerIn(c, ack.ContentType(), ack.Body())
	if err != nil {
		return err
	}
	codecs, err := negotiate(o.Codecs)
	if err != nil {
		return err
	}
	if err := d.applyOffer(c, o); err != nil {
		return err
	}
	c.log.Info("delayed offer answered in the ack", "codec", codecs[0].Name, "remote", o.Remote.String(), "hold", o.OnHold())
	return nil
}

// answerIn reads the SDP answer to an offer of ours in a message body: an
// ACK after our offer in a 200, or the 200 to our re-INVITE. A body without
// Content-Type is read as SDP.
func (d *Daemon) answerIn(c *Connection, ct *sip.ContentTypeHeader, body []byte) (MediaOffer, error) {
	if len(bytes.TrimSpace(body)) == 0 {
		return MediaOffer{}, fmt.Errorf("no answer: empty body: %w", ErrBadSDP)
	}
	sdp, ok := offerBody(ct, body)
	if !ok && ct == nil {
		sdp, ok = body, true
	}
	if !ok {
		return MediaOffer{}, fmt.Errorf("no answer: no application/sdp in %s: %w", ct.Value(), ErrBadSDP)
	}
	return d.parseReoffer(c, sdp)
}

// acceptBodies is the Accept of a 415: the bodies offerBody reads.
const acceptBodies = "application/sdp, multipart/mixed"

// offerBody returns the SDP in a message body: the whole body when it is
// application/sdp, or the application/sdp part of a multipart one (SIP-T and
// SIP-I gateways send ISUP beside it, RFC 3204); ok is false when there is
// none, or when another part is marked handling=required (RFC 3261 §20.11:
// a part we must understand and do not).
func offerBody(ct *sip.ContentTypeHeader, body []byte) (sdp []byte, ok bool) {
	if isSDP(ct) {
		return body, true
	}
	if ct == nil {
		return nil, false
	}
	parts, err := siprec.ParseBody(ct.Value(), body)
	if err != nil {
		return nil, false
	}
	for _, p := range parts {
		if p.MediaType() != "application/sdp" && handlingRequired(p.Disposition) {
			return nil, false
		}
	}
	for _, p := range parts {
		if p.MediaType() == "application/sdp" {
			return p.Body, true
		}
	}
	return nil, false
}

// handlingRequired reports whether a Content-Disposition says
// handling=required. RFC 3261 §20.11 would assume it when the parameter is
// missing, but gateways often send ISUP without a Content-Disposition; only
// an explicit one refuses the offer.
func handlingRequired(disposition string) bool {
	_, params, _ := strings.Cut(disposition, ";")
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "handling") && strings.EqualFold(strings.TrimSpace(v), "required") {
			return true
		}
	}
	return false
}

// isSDP reports whether a Content-Type is application/sdp.
func isSDP(ct *sip.ContentTypeHeader) bool {
	if ct == nil {
		return false
	}
	mt, _, _ := strings.Cut(ct.Value(), ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/sdp")
}

func (d *Daemon) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if c := d.findDialogConn(req); c != nil {
		c.matchACK(req)
	}
	// The first ACK confirms the UAS dialog (RespondSDP waits for it).
	_ = d.dsc.ReadAck(req, tx)
}

func (d *Daemon) onBye(req *sip.Request, tx sip.ServerTransaction) {
	c := d.findDialogConn(req)
	if c == nil {
		d.metrics.unknownDialog.Inc()
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	c.mu.Lock()
	uas, uac := c.uas, c.uac
	c.mu.Unlock()
	var err error
	if uas != nil {
		err = uas.ReadBye(req, tx)
	} else {
		err = uac.ReadBye(req, tx)
	}
	if err != nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	c.log.Info("remote hangup")
	wasConnected := c.State() == StateConnected
	c.end(StateDisconnected)
	if wasConnected {
		c.emit("connection.disconnected", c.eventFields(map[string]any{"reason": "hangup", "trigger": "remote"}))
	} else {
		c.emit("connection.failed", c.eventFields(map[string]any{"reason": "hangup"}))
	}
}

// onReInvite answers an offer inside an established dialog: hold and resume
// (RFC 3264 §8.4), a new media address, or a session refresh (RFC 4028).
func (d *Daemon) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	c := d.findDialogConn(req)
	if c == nil {
		d.metrics.unknownDialog.Inc()
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	if c.State() != StateConnected {
		// RFC 3261 §14.2: a re-INVITE before the first transaction finished.
		respond(tx, req, 491, "Request Pending")
		return
	}
	c.mu.Lock()
	if c.refreshInvite {
		// Our refresh re-INVITE is pending (RFC 3261 §14.2).
		c.mu.Unlock()
		respond(tx, req, 491, "Request Pending")
		return
	}
	c.callerInvite = true
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.callerInvite = false
		c.mu.Unlock()
	}()
	c.mu.Lock()
	uas, uac := c.uas, c.uac
	c.mu.Unlock()
	var dlgErr error
	if uas != nil {
		dlgErr = uas.ReadRequest(req, tx)
	} else {
		dlgErr = uac.ReadRequest(req, tx)
	}
	if dlgErr != nil {
		respond(tx, req, 500, "Server Internal Error", sip.NewHeader("Retry-After", "1"))
		return
	}
	off, ok := d.takeReoffer(c, req, tx)
	if !ok {
		return
	}
	dir := DirSendRecv
	if off != nil {
		dir = answerDir(off.Dir)
	}
	body := c.localSDP(dir, off)
	res := sip.NewSDPResponseFromRequest(req, body)
	if ch := d.tlsContact(req); ch != nil {
		res.AppendHeader(ch)
	} else {
		res.AppendHeader(sip.HeaderClone(&d.contact))
	}
	if n, role := c.refreshSessionTimer(req); n > 0 {
		res.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(n)+";refresher="+role))
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
	if err := tx.Respond(res); err != nil {
		return
	}
	// The 200 to a re-INVITE is ours to retransmit until the ACK arrives
	// (RFC 3261 §13.3.1.4; sipgo does not, notes/SIPGO.md).
	cseq := req.CSeq().SeqNo
	t1 := sip.T1
	deadline := time.NewTimer(64 * sip.T1)
	defer deadline.Stop()
	for {
		select {
		case ack := <-c.acks:
			if ack.CSeq().SeqNo != cseq {
				continue
			}
			if off == nil {
				// Our 200 was the offer; the ACK carries the answer (RFC
				// 3264 §4). One we cannot use leaves the media as it was.
				if o, err := d.answerIn(c, ack.ContentType(), ack.Body()); err != nil {
					c.log.Info("re-invite: no usable answer in the ack; media unchanged", "err", err)
				} else if err := d.applyOffer(c, o); err != nil {
					c.log.Warn("re-invite: apply the ack's answer", "err", err)
				} else {
					off = &o
				}
			}
			c.log.Info("re-invite answered", "hold", off != nil && off.OnHold())
			return
		case <-time.After(t1):
			if req.Transport() == "UDP" || strings.EqualFold(req.Transport(), "udp") {
				_ = tx.Respond(res)
			}
			t1 = min(2*t1, sip.T2)
		case <-deadline.C:
			c.log.Warn("no ACK to re-INVITE answer; ending call")
			ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
			_ = d.hangup(ctx, c, "no ack")
			cancel()
			return
		case <-c.ended:
			return
		}
	}
}

// takeReoffer reads and applies the offer of a re-INVITE or UPDATE: nil
// when the request has no body. When it cannot, it answers the request (415
// for a body without SDP, 488 for an offer we cannot take, 500 when the
// media cannot follow) and ok is false.
func (d *Daemon) takeReoffer(c *Connection, req *sip.Request, tx sip.ServerTransaction) (off *MediaOffer, ok bool) {
	if len(bytes.TrimSpace(req.Body())) == 0 {
		return nil, true
	}
	sdpBody, found := offerBody(req.ContentType(), req.Body())
	if !found {
		respond(tx, req, 415, "Unsupported Media Type", sip.NewHeader("Accept", acceptBodies))
		return nil, false
	}
	o, err := d.parseReoffer(c, sdpBody)
	if err == nil {
		_, err = negotiate(o.Codecs)
	}
	if err != nil {
		respond(tx, req, 488, "Not Acceptable Here", offerWarning(err))
		return nil, false
	}
	if err := d.applyOffer(c, o); err != nil {
		respond(tx, req, 500, "Server Internal Error")
		return nil, false
	}
	return &o, true
}

// parseReoffer reads an offer inside a dialog. The endpoint's transport
// cannot change under a call: an SRTP leg takes RTP/SAVP only, a plain one
// RTP/AVP only.
func (d *Daemon) parseReoffer(c *Connection, body []byte) (MediaOffer, error) {
	if c.SRTP() {
		return parseSDPSRTP(body, CallSRTPRequire)
	}
	return parseSDP(body)
}

// applyOffer points the media endpoint at a re-offer's address, or holds,
// and takes an SRTP re-offer's keys.
func (d *Daemon) applyOffer(c *Connection, o MediaOffer) error {
	codecs, _ := negotiate(o.Codecs)
	c.mu.Lock()
	if c.srtp != nil && o.Proto == protoSAVP {
		if err := c.srtp.reoffer(o.Crypto); err != nil {
			c.mu.Unlock()
			return err
		}
	}
	ep := c.ep
	hold := o.OnHold()
	c.hold = hold
	if len(codecs) > 0 {
		c.codecs = codecs
	}
	same := c.remote == o.Remote
	c.mu.Unlock()
	if hold || same || o.Remote.Port() == 0 || ep == 0 {
		return nil
	}
	if err := d.engine.SetRemote(ep, o.Remote); err != nil {
		return fmt.Errorf("set media remote %s: %w", o.Remote, err)
	}
	c.mu.Lock()
	c.remote = o.Remote
	c.mu.Unlock()
	return nil
}

// onUpdate answers UPDATE (RFC 3311), used for session refreshes (RFC 4028).
func (d *Daemon) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	c := d.findDialogConn(req)
	if c == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	o, ok := d.takeReoffer(c, req, tx)
	if !ok {
		return
	}
	res := sip.NewResponseFromRequest(req, 200, "OK", nil)
	if o != nil {
		res = sip.NewSDPResponseFromRequest(req, c.localSDP(answerDir(o.Dir), o))
	}
	if n, role := c.refreshSessionTimer(req); n > 0 {
		res.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(n)+";refresher="+role))
		res.AppendHeader(sip.NewHeader("Require", "timer"))
	}
	_ = tx.Respond(res)
}

// onInfo turns SIP INFO DTMF (application/dtmf-relay, application/dtmf) into
// connection.signal; RFC 4733 events in RTP need the data plane to surface
// them, which the Engine contract does not do yet.
func (d *Daemon) onInfo(req *sip.Request, tx sip.ServerTransaction) {
	c := d.findDialogConn(req)
	if c == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
		return
	}
	digit := parseDTMFInfo(req)
	respond(tx, req, 200, "OK")
	if digit != "" {
		c.emit("connection.signal", c.eventFields(map[string]any{"dtmf": digit}))
	}
}

func parseDTMFInfo(req *sip.Request) string {
	ct := req.ContentType()
	if ct == nil {
		return ""
	}
	body := strings.TrimSpace(string(req.Body()))
	switch strings.ToLower(strings.TrimSpace(strings.Split(ct.Value(), ";")[0])) {
	case "application/dtmf":
		if len(body) == 1 && strings.ContainsAny(body, "0123456789*#ABCDabcd") {
			return strings.ToUpper(body)
		}
	case "application/dtmf-relay":
		for _, line := range strings.Split(body, "\n") {
			k, v, ok := strings.Cut(line, "=")
			if ok && strings.EqualFold(strings.TrimSpace(k), "signal") {
				v = strings.TrimSpace(v)
				if len(v) == 1 && strings.ContainsAny(v, "0123456789*#ABCDabcd") {
					return strings.ToUpper(v)
				}
			}
		}
	}
	return ""
}
