package siprec

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/recfork/recfork/dataplane"
)

// acceptValue is what the SRC accepts in bodies (RFC 7866 §6.1.1, BVR-RECORD.md).
const acceptValue = "application/sdp, application/rs-metadata+xml, application/rs-metadata-request"

// attempt is the outcome of one INVITE toward one SRS.
type attempt struct {
	res    *sip.Response
	dlg    *sipgo.DialogClientSession
	callID string
	// took is the URI that accepted (the list entry, or a 3xx's target),
	// entry the list entry it came from, via the hop the INVITE used.
	took, entry sip.Uri
	via         hop
}

// invite sends the initial INVITE to the SRSs of t in order (doc.go, "SRS
// lists and failover"): usable SRSs first, avoid (an SRS a takeover leaves)
// never (the SRSs a takeover left). Each SRS is resolved to its hops (RFC 3263); a transport error, a
// timeout or an answer in the profile's FailoverCodes moves on to the next
// hop, then the next SRS. Redirects are followed up to three times (RFC 3261
// §8.1.3.4).
func (s *session) invite(ctx context.Context, t target, ct string, body []byte, avoid map[string]bool) (attempt, *opError) {
	cands := s.c.health.order(t.list, avoid)
	if len(cands) == 0 {
		return attempt{}, opErr(ReasonSRSUnreachable, "no other SRS in %q", t.uri)
	}
	var last *opError
	tried := 0
	for _, entry := range cands {
		dest := *entry.Clone()
		for hop := 0; ; hop++ {
			a, oe, redirect := s.inviteURI(ctx, dest, ct, body)
			tried++
			if oe == nil {
				a.entry = entry
				s.c.health.ok(entry)
				return a, nil
			}
			if redirect != nil && hop < 3 {
				s.log.Info("srs redirected the recording session", "to", redirect.String())
				dest = *redirect
				continue
			}
			last = oe
			break
		}
		if !last.next || ctx.Err() != nil {
			return attempt{}, last
		}
		s.c.health.failed(entry, last.Error(), last.retryAfter, false)
		if len(cands) > 1 {
			s.log.Warn("srs failed, trying the next", "srs", entry.String(), "reason", last.Error())
		}
	}
	if len(cands) > 1 {
		last = opErr(last.code, "every SRS of the list failed, last: %s", last.detail)
	}
	return attempt{}, last
}

// inviteURI tries the hops of one SRS URI in order.
func (s *session) inviteURI(ctx context.Context, dest sip.Uri, ct string, body []byte) (attempt, *opError, *sip.Uri) {
	large := tooLargeForUDP(len(s.buildInvite(dest, "UDP", ct, body).String()), pathMTU)
	rctx, cancel := context.WithTimeout(ctx, s.c.to.Invite)
	hops, err := s.c.resolve(rctx, dest, large)
	cancel()
	if err != nil {
		oe := opErr(ReasonSRSUnreachable, "%s: %v", dest.String(), err)
		oe.next = true
		return attempt{}, oe, nil
	}
	var last *opError
	for _, h := range hops {
		a, oe, redirect := s.inviteHop(ctx, dest, h, ct, body)
		if oe == nil || redirect != nil || !oe.next || ctx.Err() != nil {
			return a, oe, redirect
		}
		last = oe
		if len(hops) > 1 {
			s.log.Info("srs address failed, trying the next", "srs", dest.String(), "via", h.String(), "reason", oe.Error())
		}
	}
	return attempt{}, last, nil
}

// inviteHop sends the INVITE over one hop. A large request over TCP that
// meets a refused or reset connection is sent again over UDP to the same
// address, as one attempt (RFC 3261 §18.1.1), unless the transport was
// forced.
func (s *session) inviteHop(ctx context.Context, dest sip.Uri, h hop, ct string, body []byte) (attempt, *opError, *sip.Uri) {
	a, oe, redirect, refused := s.inviteOnce(ctx, dest, h, ct, body)
	if refused && h.tport == "TCP" && !h.forced {
		s.log.Info("tcp to srs refused, sending over udp (RFC 3261 §18.1.1)", "srs", dest.String(), "addr", h.addr.String(), "reason", oe.Error())
		h.tport = "UDP"
		a, oe, redirect, _ = s.inviteOnce(ctx, dest, h, ct, body)
	}
	return a, oe, redirect
}

// failoverCode reports whether a final answer moves on to the next SRS.
func (c *Client) failoverCode(u sip.Uri, code int) bool {
	codes := c.profile(u).FailoverCodes
	if codes == nil {
		codes = []int{408, 480, 500, 503}
	}
	return slices.Contains(codes, code)
}

// inviteOnce sends the INVITE over one hop and waits for its final answer.
// refused reports a TCP connection refused or reset.
func (s *session) inviteOnce(ctx context.Context, dest sip.Uri, h hop, ct string, body []byte) (a attempt, oe *opError, redirect *sip.Uri, refused bool) {
	cl, err := s.c.clientFor(h)
	if err != nil {
		return attempt{}, opErr(ReasonSRSUnreachable, "%s via %s: %v", dest.String(), h, err), nil, false
	}
	req := s.buildInvite(dest, h.tport, ct, body)
	req.SetDestination(h.addr.String())
	callID := req.CallID().Value()
	ch := *req.Contact()

	s.c.bindCallID(callID, s)
	fail := func(oe *opError) (attempt, *opError, *sip.Uri, bool) {
		s.c.bindCallID(callID, nil)
		return attempt{}, oe, nil, false
	}
	s.gate.lock()
	defer s.gate.unlock()
	ua := sipgo.DialogUA{Client: cl, ContactHDR: ch}
	wctx0, cancel0 := context.WithTimeout(ctx, s.c.to.Invite)
	type written struct {
		dlg *sipgo.DialogClientSession
		err error
	}
	wch := make(chan written, 1)
	go func() {
		d, err := ua.WriteInvite(wctx0, req)
		wch <- written{d, err}
	}()
	var dlg *sipgo.DialogClientSession
	select {
	case w := <-wch:
		dlg, err = w.dlg, w.err
	case <-wctx0.Done():
		// Never wait on the transport past the deadline or the call.
		err = wctx0.Err()
		go func() {
			if w := <-wch; w.dlg != nil {
				w.dlg.Close()
			}
		}()
	}
	cancel0()
	if err != nil && ctx.Err() != nil {
		return fail(opErr(ReasonConnectionState, "request abandoned: %v", ctx.Err()))
	}
	if err != nil {
		if h.tport == "TLS" {
			// The handshake's reason (an unknown authority, a name that
			// does not match) is what an operator needs to fix it.
			s.log.Warn("tls to srs failed", "srs", dest.String(), "addr", h.addr.String(), "reason", err.Error())
		}
		oe := opErr(ReasonSRSUnreachable, "%s via %s: %v", dest.String(), h, err)
		oe.next = true
		a, oe, r, _ := fail(oe)
		return a, oe, r, refusedOrReset(err)
	}
	var provisional atomic.Bool
	wctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	timer := time.AfterFunc(s.c.to.Invite, func() {
		// sipgo only sends CANCEL once a provisional arrived; before that a
		// plain cancel would wait for Timer B (SIPGO.md), so force the exit.
		if provisional.Load() {
			cancel(context.DeadlineExceeded)
		} else {
			cancel(sipgo.WaitAnswerForceCancelErr)
		}
	})
	defer timer.Stop()
	// The same when the request is abandoned (the call ended): without a
	// provisional, sipgo would wait for Timer B before giving up.
	stopAbandon := context.AfterFunc(ctx, func() {
		if provisional.Load() {
			cancel(ctx.Err())
		} else {
			cancel(sipgo.WaitAnswerForceCancelErr)
		}
	})
	defer stopAbandon()
	waitErr := make(chan error, 1)
	go func() {
		waitErr <- dlg.WaitAnswer(wctx, sipgo.AnswerOptions{OnResponse: func(r *sip.Response) error {
			if r.IsProvisional() {
				provisional.Store(true)
			}
			return nil
		}})
	}()
	select {
	case err = <-waitErr:
	case <-wctx.Done():
		// sipgo may keep waiting on an unanswered UDP transaction past
		// its context: give it a moment, then end the dialog ourselves.
		select {
		case err = <-waitErr:
		case <-time.After(time.Second):
			dlg.Close()
			err = context.Cause(wctx)
		}
	}
	if err != nil {
		dlg.Close()
		var de *sipgo.ErrDialogResponse
		switch {
		case errors.As(err, &de):
			r := de.Res
			if r.StatusCode >= 300 && r.StatusCode < 400 {
				if c := r.Contact(); c != nil {
					u := c.Address.Clone()
					s.c.bindCallID(callID, nil)
					return attempt{}, opErr(ReasonSRSRejected, "%d %s", r.StatusCode, r.Reason), u, false
				}
			}
			oe := opErr(ReasonSRSRejected, "%d %s", r.StatusCode, r.Reason)
			oe.next = s.c.failoverCode(dest, r.StatusCode)
			if r.StatusCode == 503 {
				oe.retryAfter = retryAfterOf(r)
			}
			return fail(oe)
		case ctx.Err() != nil:
			return fail(opErr(ReasonConnectionState, "request abandoned: %v", ctx.Err()))
		case errors.Is(context.Cause(wctx), context.DeadlineExceeded), errors.Is(context.Cause(wctx), sipgo.WaitAnswerForceCancelErr),
			errors.Is(err, sip.ErrTransactionTimeout):
			oe := opErr(ReasonSRSTimeout, "no final answer from %s via %s within %s", dest.String(), h, s.c.to.Invite)
			oe.next = true
			return fail(oe)
		default:
			oe := opErr(ReasonSRSUnreachable, "%s via %s: %v", dest.String(), h, err)
			oe.next = true
			a, oe, r, _ := fail(oe)
			return a, oe, r, refusedOrReset(err)
		}
	}
	res := dlg.InviteResponse
	if err := dlg.Ack(ctx); err != nil {
		dlg.Close()
		return fail(opErr(ReasonSRSUnreachable, "ack to %s via %s: %v", dest.String(), h, err))
	}
	s.mu.Lock()
	s.tport = h.tport
	s.mu.Unlock()
	return attempt{res: res, dlg: dlg, callID: callID, took: dest, via: h}, nil, nil, false
}

// reinvite sends a re-INVITE in the dialog, retrying after 491 with the
// RFC 3261 §14.1 back-off. fatal reports that the dialog must end.
func (s *session) reinvite(ctx context.Context, ct string, body []byte) (res *sip.Response, oe *opError, fatal bool) {
	for attempt := 0; ; attempt++ {
		res, oe, fatal, glare := s.reinviteOnce(ctx, ct, body)
		if !glare {
			return res, oe, fatal
		}
		if attempt >= s.c.to.GlareRetries {
			return nil, opErr(ReasonSRSRejected, "491 Request Pending %d times", attempt+1), false
		}
		select {
		case <-time.After(s.glareWait()):
		case <-ctx.Done():
			return nil, opErr(ReasonConnectionState, "request abandoned"), false
		}
	}
}

func (s *session) reinviteOnce(ctx context.Context, ct string, body []byte) (*sip.Response, *opError, bool, bool) {
	s.gate.lock()
	defer s.gate.unlock()
	s.mu.Lock()
	dlg, remote, tport := s.dlg, *s.remote.Clone(), s.tport
	s.mu.Unlock()
	if dlg == nil {
		return nil, opErr(ReasonSRSEnded, "recording session gone"), false, false
	}
	req := sip.NewRequest(sip.INVITE, remote)
	req.AppendHeader(sip.NewHeader("Accept", acceptValue))
	req.AppendHeader(sip.NewHeader("Content-Type", ct))
	ch := s.c.contactFor(tport)
	req.AppendHeader(&ch)
	req.SetBody(body)
	tctx, cancel := context.WithTimeout(ctx, s.c.to.Invite)
	defer cancel()
	tx, err := dlg.TransactionRequest(tctx, req)
	if err != nil {
		return nil, opErr(ReasonSRSUnreachable, "re-invite: %v", err), true, false
	}
	for {
		select {
		case r := <-tx.Responses():
			if r.IsProvisional() {
				continue
			}
			if r.IsSuccess() {
				ack := sip.NewRequest(sip.ACK, remote)
				if err := dlg.WriteRequest(ack); err != nil {
					tx.Terminate()
					return nil, opErr(ReasonSRSUnreachable, "ack re-invite: %v", err), true, false
				}
				// The 200 may be retransmitted if our ACK is lost (UDP):
				// answer every copy with the same ACK (RFC 3261 §13.2.2.4).
				tmpl := ack.Clone()
				tx.OnRetransmission(func(rr *sip.Response) {
					if rr.IsSuccess() {
						_ = dlg.UA.Client.WriteRequest(tmpl.Clone(), func(*sipgo.Client, *sip.Request) error { return nil })
					}
				})
				return r, nil, false, false
			}
			tx.Terminate()
			if r.StatusCode == 491 {
				return nil, nil, false, true
			}
			fatal := r.StatusCode == 408 || r.StatusCode == 481
			return nil, opErr(ReasonSRSRejected, "%d %s", r.StatusCode, r.Reason), fatal, false
		case <-tx.Done():
			if errors.Is(tx.Err(), sip.ErrTransactionTimeout) {
				return nil, opErr(ReasonSRSTimeout, "no answer to re-invite"), true, false
			}
			return nil, opErr(ReasonSRSUnreachable, "re-invite: %v", tx.Err()), true, false
		case <-tctx.Done():
			tx.Terminate()
			if ctx.Err() != nil {
				return nil, opErr(ReasonConnectionState, "request abandoned"), false, false
			}
			return nil, opErr(ReasonSRSTimeout, "no final answer to re-invite within %s", s.c.to.Invite), true, false
		}
	}
}

// contactFor returns our Contact with the transport parameter when not UDP.
func (c *Client) contactFor(tport string) sip.ContactHeader {
	if tport == "TLS" {
		return c.tlsContact()
	}
	h := sip.ContactHeader{Address: *c.contact.Address.Clone(), Params: c.contact.Params.Clone()}
	if tport == "TCP" {
		h.Address.UriParams = sip.NewParams()
		h.Address.UriParams.Add("transport", "tcp")
	}
	return h
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, body []byte, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}

func callIDOf(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

// onBye handles a BYE from the SRS: the recording ended on its side.
func (c *Client) onBye(req *sip.Request, tx sip.ServerTransaction) {
	s := c.sessionByCallID(callIDOf(req))
	if s == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	respond(tx, req, 200, "OK", nil)
	// The Call-ID is bound from the INVITE until our own teardown, so this
	// also catches a BYE racing our handling of the 200.
	s.log.Info("srs ended the recording session", "call_id", callIDOf(req))
	s.srsBye()
}

// onAck takes the ACK of a 200 we sent to an SRS re-INVITE.
func (c *Client) onAck(req *sip.Request, tx sip.ServerTransaction) {
	if s := c.sessionByCallID(callIDOf(req)); s != nil {
		select {
		case s.ackCh <- req:
		default:
		}
	}
}

// onInvite handles re-INVITEs from the SRS; a new INVITE is refused: the SRC
// never receives recording sessions.
func (c *Client) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	s := c.sessionByCallID(callIDOf(req))
	if s == nil || req.To() == nil || func() bool { _, ok := req.To().Params.Get("tag"); return !ok }() {
		respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	s.answerReinvite(req, tx)
}

// onUpdate takes an UPDATE (RFC 3311) from the SRS, typically carrying an
// rs-metadata-request.
func (c *Client) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	s := c.sessionByCallID(callIDOf(req))
	if s == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	parts, err := ParseBody(contentType(req), req.Body())
	if err != nil {
		rejectBody(tx, req, err)
		return
	}
	if _, ok := findPart(parts, "application/sdp"); ok {
		// Session changes come by re-INVITE here; keep the session as it is.
		respond(tx, req, 488, "Not Acceptable Here", nil)
		return
	}
	if !s.remoteCSeqOK(req) {
		respond(tx, req, 500, "Server Internal Error", nil, sip.NewHeader("Retry-After", "1"))
		return
	}
	respond(tx, req, 200, "OK", nil)
	if _, ok := findPart(parts, MetadataRequest); ok {
		s.requestSnapshot()
	}
}

func (c *Client) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	respond(tx, req, 200, "OK", nil, sip.NewHeader("Accept", acceptValue),
		sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"), sip.NewHeader("Supported", "siprec"))
}

func (c *Client) onNoRoute(req *sip.Request, tx sip.ServerTransaction) {
	if req.IsAck() {
		return
	}
	respond(tx, req, 405, "Method Not Allowed", nil, sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"))
}

// rejectBody answers a request whose body we cannot take. The status and
// phrase name the cause (400 for a malformed body or SDP, 413 for one too
// large, 488 for an SDP we read but cannot answer, RFC 3261 §21.4), and a
// Warning (§20.43, code 399) carries the detail for the SRS's engineer.
func rejectBody(tx sip.ServerTransaction, req *sip.Request, err error) {
	code, phrase := 488, "Not Acceptable Here"
	var f *bodyFault
	switch {
	case errors.As(err, &f):
		code, phrase = f.code, f.phrase
	case errors.Is(err, ErrBadBody):
		code, phrase = 400, "Bad Body"
	}
	respond(tx, req, code, phrase, nil, sip.NewHeader("Warning", warning(err)))
}

// warning is a Warning header value (RFC 3261 §20.43) with code 399: the
// text is a quoted-string, so quotes, backslashes and control characters of
// the detail (which may quote the peer's own bytes) are replaced, and it is
// kept short.
func warning(err error) string {
	var b strings.Builder
	b.WriteString(`399 recfork "`)
	for i, r := range err.Error() {
		if i >= 200 {
			b.WriteString("...")
			break
		}
		if r < 0x20 || r == 0x7f || r == '"' || r == '\\' {
			r = '\''
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String()
}

func contentType(req *sip.Request) string {
	if h := req.ContentType(); h != nil {
		return h.Value()
	}
	return ""
}

func (s *session) requestSnapshot() {
	s.mu.Lock()
	s.snapshot = true
	s.mu.Unlock()
	s.poke()
}

// answerReinvite answers an SRS re-INVITE (RFC 7866 §7.1.2): 491 while our own
// INVITE transaction is pending, 500 while the SRS's previous one is
// unanswered (RFC 3261 §14.2); otherwise it accepts the SRS's view of each
// m-line (recvonly: send; inactive: pause; port 0: stop) and answers with our
// m-lines in the same order.
func (s *session) answerReinvite(req *sip.Request, tx sip.ServerTransaction) {
	switch s.gate.enterSRS(s.c.to.Confirm) {
	case gateFree:
	case gateOurs:
		respond(tx, req, 491, "Request Pending", nil)
		return
	default:
		respond(tx, req, 500, "Server Internal Error", nil, sip.NewHeader("Retry-After", "1"))
		return
	}
	defer s.gate.unlock()
	tx = answeringTx{tx, &s.gate}
	s.mu.Lock()
	dlg := s.dlg
	s.mu.Unlock()
	if dlg == nil {
		respond(tx, req, 481, "Call/Transaction Does Not Exist", nil)
		return
	}
	if !s.remoteCSeqOK(req) {
		// RFC 3261 §12.2.2: a lower CSeq than the last request is out of order.
		respond(tx, req, 500, "Server Internal Error", nil, sip.NewHeader("Retry-After", "1"))
		return
	}
	parts, err := ParseBody(contentType(req), req.Body())
	if err != nil {
		rejectBody(tx, req, err)
		return
	}
	_, wantSnapshot := findPart(parts, MetadataRequest)
	sdpPart, hasSDP := findPart(parts, "application/sdp")
	var offer []sdpStream
	if hasSDP {
		_, offer, err = parseStreams(sdpPart.Body)
		if err != nil {
			rejectBody(tx, req, err)
			return
		}
	}
	s.mu.Lock()
	streams := append([]*stream(nil), s.streams...)
	legEP := s.leg.Endpoint
	if hasSDP && len(offer) != len(streams) {
		s.mu.Unlock()
		// RFC 3264 §8: m-lines are never removed; a different count is no
		// offer we can answer.
		rejectBody(tx, req, fmt.Errorf("re-INVITE has %d m-lines for our %d: %w", len(offer), len(streams), ErrBadSDP))
		return
	}
	s.sdpVer++
	ans := s.offerLocked(streams)
	s.mu.Unlock()
	if hasSDP {
		for i, st := range streams {
			if st.ep.ID == 0 {
				continue
			}
			if s.applySRSView(st, offer[i], legEP) {
				ans.Streams[i].Dir = "inactive"
			}
		}
	}
	body, err := ans.marshal()
	if err != nil {
		respond(tx, req, 500, "Server Internal Error", nil)
		return
	}
	s.mu.Lock()
	tport := s.tport
	s.mu.Unlock()
	ch := s.c.contactFor(tport)
	res := sip.NewResponseFromRequest(req, 200, "OK", body)
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(&ch)
	select {
	case <-s.ackCh: // drop a stale ACK
	default:
	}
	if err := tx.Respond(res); err != nil {
		s.log.Info("answer srs re-invite", "err", err)
		return
	}
	// sipgo does not retransmit a 200 on UDP (SIPGO.md): do it until the
	// ACK (RFC 3261 §13.3.1.4: T1 doubling up to T2).
	deadline := time.NewTimer(s.c.to.Confirm)
	defer deadline.Stop()
	interval := sip.T1
	for {
		select {
		case ack := <-s.ackCh:
			if !hasSDP {
				// Our 200 was the offer; the ACK carries the SRS's answer
				// (RFC 3264 §4, RFC 3261 §13.2.1).
				s.applyAckAnswer(ack, ans.Streams, streams, legEP)
			}
			if wantSnapshot {
				s.requestSnapshot()
			}
			return
		case <-deadline.C:
			s.log.Info("no ack for our 200 to the srs re-invite")
			return
		case <-time.After(interval):
			if !sip.IsReliable(req.Transport()) {
				_ = s.c.srv.WriteResponse(res)
			}
			interval = min(interval*2, sip.T2)
		}
	}
}

// buildInvite builds the initial INVITE (RFC 7866 §6.1.1).
func (s *session) buildInvite(dest sip.Uri, tport, ct string, body []byte) *sip.Request {
	req := sip.NewRequest(sip.INVITE, dest)
	req.SetTransport(tport)
	cid := sip.CallIDHeader(EncodeID(randomUUID())[:22] + "@recfork")
	req.AppendHeader(&cid)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: s.c.cfg.FromUser, Host: s.c.contact.Address.Host}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: dest.User, Host: dest.Host, Port: dest.Port}})
	// The SRS must understand siprec; we accept metadata requests.
	req.AppendHeader(sip.NewHeader("Require", "siprec"))
	req.AppendHeader(sip.NewHeader("Accept", acceptValue))
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"))
	req.AppendHeader(sip.NewHeader("Content-Type", ct))
	ch := s.c.contactFor(tport)
	req.AppendHeader(&ch)
	req.SetBody(body)
	return req
}

// remoteCSeqOK tracks the SRS's CSeq in the dialog. The SRS numbers its own
// requests independently of ours (RFC 3261 §12.2.1.1), so the first one sets
// the base; later ones must increase.
func (s *session) remoteCSeqOK(req *sip.Request) bool {
	h := req.CSeq()
	if h == nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.remoteCSeq != 0 && h.SeqNo <= s.remoteCSeq {
		return false
	}
	s.remoteCSeq = h.SeqNo
	return true
}

// applySRSView applies the SRS's view of one of our m-lines (from its offer
// or its answer): recvonly or sendrecv means send, anything else (inactive,
// sendonly, port 0) means no copies for now. It reports whether the stream
// is paused.
func (s *session) applySRSView(st *stream, o sdpStream, legEP dataplane.EndpointID) bool {
	paused := o.Port == 0 || o.Dir == "sendonly" || o.Dir == "inactive"
	if paused {
		o.Dir = "inactive"
		if o.Port == 0 {
			s.mu.Lock()
			forked, rec := st.forked, st.recorder
			s.mu.Unlock()
			if !forked {
				return true
			}
			o.Port, o.Addr = int(rec.Port()), rec.Addr()
		}
	}
	s.mu.Lock()
	mode := st.mode
	s.mu.Unlock()
	if err := s.applyStream(st, mode, o, legEP); err != nil {
		s.log.Warn("apply srs session change", "err", err)
	}
	return paused
}

// applyAckAnswer applies the answer an ACK carries to our offer in a 200.
func (s *session) applyAckAnswer(ack *sip.Request, offer []sdpStream, streams []*stream, legEP dataplane.EndpointID) {
	parts, err := ParseBody(contentType(ack), ack.Body())
	if err != nil {
		s.log.Info("srs ack body", "err", err)
		return
	}
	p, ok := findPart(parts, "application/sdp")
	if !ok {
		return
	}
	as, err := matchAnswer(offer, p.Body)
	if err != nil {
		s.log.Info("srs answer in ack", "err", err)
		return
	}
	for i, st := range streams {
		if st.ep.ID != 0 && offer[i].Port != 0 {
			s.applySRSView(st, as[i], legEP)
		}
	}
}
