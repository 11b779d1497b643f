package srs

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

var timeNow = time.Now

const (
	// byeTimeout bounds the BYEs sent when Run's context ends.
	byeTimeout = 3 * time.Second
	// ackOrderWait bounds how long a re-INVITE waits for the ACK of the
	// previous 2xx: sipgo hands each message to its own goroutine, so an ACK
	// sent just before a re-INVITE is often processed after it.
	ackOrderWait = 2 * time.Second
	allowMethods = "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE"
)

func dialogKey(callID, localTag, remoteTag string) string {
	return callID + "\x00" + localTag + "\x00" + remoteTag
}

func tagOf(p sip.HeaderParams) string {
	v, _ := p.Get("tag")
	return v
}

// hasOptionTag reports whether a Require/Supported-style header lists tag.
func hasOptionTag(req *sip.Request, header, tag string) bool {
	for _, h := range req.GetHeaders(header) {
		for v := range strings.SplitSeq(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(v), tag) {
				return true
			}
		}
	}
	return false
}

// hasSrcFeature reports the +sip.src Contact feature tag (RFC 7866 §6.1.1),
// accepting the bare "src" some vendors send.
func hasSrcFeature(c *sip.ContactHeader) bool {
	for _, kv := range c.Params {
		if strings.EqualFold(kv.K, "+sip.src") || strings.EqualFold(kv.K, "src") {
			return true
		}
	}
	return false
}

func (s *Server) respond(req *sip.Request, tx sip.ServerTransaction, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		s.log.Warn("send sip response", "code", code, "call_id", callIDOf(req), "error", err)
	}
}

func callIDOf(req *sip.Request) string {
	if h := req.CallID(); h != nil {
		return h.Value()
	}
	return ""
}

func (s *Server) reject(req *sip.Request, tx sip.ServerTransaction, err error) {
	var be *BodyError
	if !errors.As(err, &be) {
		be = &BodyError{Code: 500, Reason: "Server Internal Error", Detail: err.Error()}
	}
	s.noteRejection(req, be.Code, be.Reason, be.Detail)
	var hdrs []sip.Header
	if be.Code == 415 {
		hdrs = append(hdrs, sip.NewHeader("Accept", acceptTypes))
	}
	s.respond(req, tx, be.Code, be.Reason, hdrs...)
}

// contact is the SRS's Contact: its SIP address with the +sip.srs feature
// tag (RFC 7866 §6.1.2), over the transport the request came on.
func (s *Server) contact(transport string) *sip.ContactHeader {
	c := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "srs", Host: s.addr.Addr().String(), Port: int(s.addr.Port())}}
	switch {
	case strings.EqualFold(transport, "tcp"):
		c.Address.UriParams = sip.NewParams()
		c.Address.UriParams.Add("transport", "tcp")
	case strings.EqualFold(transport, "tls") && s.tls != nil:
		// RFC 3261 §8.1.1.8: over TLS the Contact is a sips: URI, on the
		// TLS port; ;transport=tls because sipgo peers pick the transport
		// from the parameter, not the scheme.
		c.Address.Scheme = "sips"
		c.Address.Port = int(s.tlsAddr.Port())
		c.Address.UriParams = sip.NewParams()
		c.Address.UriParams.Add("transport", "tls")
	}
	c.Params = sip.NewParams()
	c.Params.Add("+sip.srs", "")
	return c
}

func (s *Server) answerResponse(req *sip.Request, answer []byte) *sip.Response {
	res := sip.NewResponseFromRequest(req, 200, "OK", answer)
	res.AppendHeader(s.contact(req.Transport()))
	res.AppendHeader(sip.NewHeader("Content-Type", typeSDP))
	res.AppendHeader(sip.NewHeader("Allow", allowMethods))
	res.AppendHeader(sip.NewHeader("Supported", "siprec"))
	return res
}

func (s *Server) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	if req.To() == nil || req.From() == nil || req.CallID() == nil || req.CSeq() == nil {
		s.respond(req, tx, 400, "Missing Dialog Headers")
		return
	}
	if tagOf(req.To().Params) != "" {
		s.onReInvite(req, tx)
		return
	}
	// RFC 7866 §6.2: only an INVITE with the siprec option tag is a
	// recording session. This server records and does nothing else, so it
	// says what it needs (RFC 3261 §21.4.16, 421 with Require).
	if !hasOptionTag(req, "Require", "siprec") {
		s.noteRejection(req, 421, "Extension Required", "no siprec option tag in Require")
		s.respond(req, tx, 421, "Extension Required", sip.NewHeader("Require", "siprec"))
		return
	}
	contact := req.Contact()
	if contact == nil {
		s.reject(req, tx, bodyErr(400, "Missing Contact", ""))
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	body, err := parseBody(ct, req.Body(), true)
	if err != nil {
		s.reject(req, tx, err)
		return
	}
	o, err := parseOffer(body.sdp)
	if err != nil {
		s.reject(req, tx, bodyErr(400, "Malformed SDP", err.Error()))
		return
	}
	callID := callIDOf(req)
	ss, err := s.newSession(callID)
	if err != nil {
		s.reject(req, tx, err)
		return
	}

	ss.mu.Lock()
	answer, err := ss.applyOffer(o, true)
	if err != nil {
		ss.mu.Unlock()
		ss.discard()
		s.reject(req, tx, err)
		return
	}
	if !hasSrcFeature(contact) {
		ss.violate(RuleNoSrcFeature, "Contact "+contact.Value())
	}
	if !body.dispositionOK {
		ss.violate(RuleMetadataDisposition, "metadata part without Content-Disposition: recording-session")
	}
	if err := ss.setMetadata(body.metadata); err != nil {
		s.log.Error("store metadata", "session_id", ss.id, "error", err)
	}
	res := s.answerResponse(req, answer)
	ss.localTag = tagOf(res.To().Params)
	ss.remoteTag = tagOf(req.From().Params)
	ss.key = dialogKey(callID, ss.localTag, ss.remoteTag)
	ss.transport = strings.ToUpper(req.Transport())
	ss.remote = req.Source()
	ss.remoteTarget = *contact.Address.Clone()
	for _, h := range req.GetHeaders("Record-Route") {
		ss.routes = append(ss.routes, h.Value())
	}
	ss.inviteFrom = *req.From()
	ss.inviteTo = *req.To()
	ss.remoteCSeq = req.CSeq().SeqNo
	aw := &ackWait{cseq: req.CSeq().SeqNo, ch: make(chan struct{})}
	ss.pendingAck = aw
	ss.mu.Unlock()

	if !s.publish(ss) {
		ss.end(EndShutdown)
		s.respond(req, tx, 503, "Service Unavailable")
		return
	}
	info := ss.info()
	s.log.Info("recording session started", "session_id", ss.id, "call_id", callID, "transport", ss.transport,
		"labels", strings.Join(info.Labels, ","), "dir", ss.dir)
	if s.cfg.OnSession != nil {
		s.cfg.OnSession(info)
	}
	s.changed()
	if !s.respondUntilAck(ss, tx, res, aw) {
		// RFC 3261 §13.3.1.4: a 2xx never ACKed ends the session with a BYE.
		ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
		defer cancel()
		_ = s.bye(ctx, ss, EndNoAck)
	}
}

// respondUntilAck sends a 2xx and, on unreliable transports, retransmits
// it (T1 doubling to T2, RFC 3261 §13.3.1.4) until the ACK arrives; sipgo
// does not retransmit a 2xx itself. It reports false when 64*T1 pass
// without an ACK.
func (s *Server) respondUntilAck(ss *session, tx sip.ServerTransaction, res *sip.Response, aw *ackWait) bool {
	if err := tx.Respond(res); err != nil {
		s.log.Warn("send 2xx", "session_id", ss.id, "error", err)
	}
	reliable := sip.IsReliable(res.Transport())
	interval := sip.T1
	retx := time.NewTimer(interval)
	defer retx.Stop()
	deadline := time.NewTimer(64 * sip.T1)
	defer deadline.Stop()
	for {
		select {
		case <-aw.ch:
			return true
		case <-s.closing:
			return true
		case <-retx.C:
			if !reliable {
				if err := tx.Respond(res); err != nil {
					s.log.Debug("retransmit 2xx", "session_id", ss.id, "error", err)
				}
			}
			interval = min(2*interval, sip.T2)
			retx.Reset(interval)
		case <-deadline.C:
			ss.mu.Lock()
			if ss.pendingAck == aw {
				ss.pendingAck = nil
			}
			ss.violate(RuleNoAck, fmt.Sprintf("CSeq %d", aw.cseq))
			ss.mu.Unlock()
			return false
		}
	}
}

func (s *Server) onReInvite(req *sip.Request, tx sip.ServerTransaction) {
	callID := callIDOf(req)
	ss := s.dialog(dialogKey(callID, tagOf(req.To().Params), tagOf(req.From().Params)))
	if ss == nil {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	cseq := req.CSeq().SeqNo
	ss.mu.Lock()
	switch {
	case ss.state != StateActive:
		ss.mu.Unlock()
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	case ss.inviteBusy:
		// RFC 3261 §14.2: an INVITE while another is unanswered gets 500
		// with a Retry-After of 0 to 10 s.
		ss.mu.Unlock()
		s.respond(req, tx, 500, "Server Internal Error", sip.NewHeader("Retry-After", strconv.Itoa(rand.IntN(11))))
		return
	case cseq <= ss.remoteCSeq:
		// RFC 3261 §12.2.2: a lower CSeq is out of order.
		ss.mu.Unlock()
		s.respond(req, tx, 500, "CSeq Out Of Order")
		return
	}
	ss.inviteBusy = true
	pending := ss.pendingAck
	ss.mu.Unlock()
	busy := true
	defer func() {
		if busy {
			ss.mu.Lock()
			ss.inviteBusy = false
			ss.mu.Unlock()
		}
	}()

	if pending != nil {
		t := time.NewTimer(ackOrderWait)
		select {
		case <-pending.ch:
		case <-t.C:
		case <-s.closing:
		}
		t.Stop()
	}

	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	body, err := parseBody(ct, req.Body(), false)
	if err != nil {
		s.reject(req, tx, err)
		return
	}
	o, err := parseOffer(body.sdp)
	if err != nil {
		s.reject(req, tx, bodyErr(400, "Malformed SDP", err.Error()))
		return
	}
	ss.mu.Lock()
	if ss.state != StateActive {
		ss.mu.Unlock()
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	ss.remoteCSeq = cseq
	if c := req.Contact(); c != nil {
		ss.remoteTarget = *c.Address.Clone() // target refresh, RFC 3261 §12.2.2
	}
	answer, err := ss.applyOffer(o, false)
	if err != nil {
		ss.mu.Unlock()
		s.reject(req, tx, err)
		return
	}
	if body.metadata != nil {
		if !body.dispositionOK {
			ss.violate(RuleMetadataDisposition, "metadata part without Content-Disposition: recording-session")
		}
		if err := ss.setMetadata(body.metadata); err != nil {
			s.log.Error("store metadata", "session_id", ss.id, "error", err)
		}
	}
	res := s.answerResponse(req, answer)
	aw := &ackWait{cseq: cseq, ch: make(chan struct{})}
	ss.pendingAck = aw
	ss.inviteBusy = false
	busy = false
	ss.mu.Unlock()
	s.log.Info("recording session updated", "session_id", ss.id, "call_id", callID)
	s.changed()
	s.respondUntilAck(ss, tx, res, aw)
}

func (s *Server) onAck(req *sip.Request, _ sip.ServerTransaction) {
	if req.To() == nil || req.From() == nil || req.CSeq() == nil {
		return
	}
	ss := s.dialog(dialogKey(callIDOf(req), tagOf(req.To().Params), tagOf(req.From().Params)))
	if ss == nil {
		return
	}
	ss.mu.Lock()
	if pa := ss.pendingAck; pa != nil && pa.cseq == req.CSeq().SeqNo {
		close(pa.ch)
		ss.pendingAck = nil
	}
	ss.mu.Unlock()
}

func (s *Server) onBye(req *sip.Request, tx sip.ServerTransaction) {
	if req.To() == nil || req.From() == nil {
		s.respond(req, tx, 400, "Missing Dialog Headers")
		return
	}
	ss := s.dialog(dialogKey(callIDOf(req), tagOf(req.To().Params), tagOf(req.From().Params)))
	if ss == nil {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	// Finalise before answering so that whoever sees the 200 finds the
	// files complete.
	ss.end(EndByeFromSRC)
	s.respond(req, tx, 200, "OK")
}

func (s *Server) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	s.respond(req, tx, 200, "OK",
		sip.NewHeader("Allow", allowMethods),
		sip.NewHeader("Accept", acceptTypes),
		sip.NewHeader("Supported", "siprec"))
}

// onCancel sees only CANCELs that matched no pending INVITE (sipgo answers
// the others itself).
func (s *Server) onCancel(req *sip.Request, tx sip.ServerTransaction) {
	s.respond(req, tx, 481, "Call/Transaction Does Not Exist")
}

// bye ends ss from the SRS side: the files are final before the BYE leaves.
func (s *Server) bye(ctx context.Context, ss *session, reason string) error {
	ss.mu.Lock()
	if ss.state != StateActive {
		ss.mu.Unlock()
		return fmt.Errorf("bye %s: %w", ss.id, ErrNoSession)
	}
	ss.mu.Unlock()
	// RFC 3261 §15: no BYE before the ACK of our 2xx (or its timeout).
	s.waitAck(ctx, ss)
	ss.mu.Lock()
	req := ss.newRequest(sip.BYE)
	ss.mu.Unlock()

	ss.end(reason)

	res, err := s.send(ctx, req)
	if err != nil {
		return fmt.Errorf("bye %s: %w", ss.id, err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("bye %s: %d %s: %w", ss.id, res.StatusCode, res.Reason, ErrByeRefused)
	}
	return nil
}

// waitAck waits (bounded by ctx) for the ACK of a 2xx the session still
// expects, so requests from the SRS follow the dialog's confirmation.
func (s *Server) waitAck(ctx context.Context, ss *session) {
	ss.mu.Lock()
	pending := ss.pendingAck
	ss.mu.Unlock()
	if pending == nil {
		return
	}
	select {
	case <-pending.ch:
	case <-ctx.Done():
	case <-s.closing:
	}
}

// newRequest builds an in-dialog request from the SRS (RFC 3261 §12.2.1.1).
// Callers hold ss.mu.
func (ss *session) newRequest(method sip.RequestMethod) *sip.Request {
	ss.localCSeq++
	req := sip.NewRequest(method, *ss.remoteTarget.Clone())
	from := &sip.FromHeader{DisplayName: ss.inviteTo.DisplayName, Address: *ss.inviteTo.Address.Clone(), Params: sip.NewParams()}
	from.Params.Add("tag", ss.localTag)
	to := &sip.ToHeader{DisplayName: ss.inviteFrom.DisplayName, Address: *ss.inviteFrom.Address.Clone(), Params: sip.NewParams()}
	to.Params.Add("tag", ss.remoteTag)
	callID := sip.CallIDHeader(ss.callID)
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: ss.localCSeq, MethodName: method})
	req.AppendHeader(&maxFwd)
	// RFC 3261 §12.1.1: the UAS's route set is the Record-Route, in order.
	for _, r := range ss.routes {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	req.SetTransport(ss.transport)
	if rr := req.Route(); rr != nil {
		req.SetDestination(rr.Address.HostPort())
	}
	req.SetBody(nil)
	return req
}

// send runs one client transaction to its final response.
func (s *Server) send(ctx context.Context, req *sip.Request) (*sip.Response, error) {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil, ErrClosed
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()
	tx, err := s.client.TransactionRequest(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("send %s: %w", req.Method, err)
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			return nil, fmt.Errorf("%s transaction: %w", req.Method, tx.Err())
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// RequestMetadata asks the SRC of a live session for a complete metadata
// snapshot with an UPDATE carrying application/rs-metadata-request (RFC 7866
// §9.2). A snapshot in the 2xx is stored like any metadata and returned;
// an SRC may instead send it in a later request, then the result is nil.
func (s *Server) RequestMetadata(ctx context.Context, sessionID string) ([]byte, error) {
	s.mu.Lock()
	ss := s.live[sessionID]
	s.mu.Unlock()
	if ss == nil {
		return nil, fmt.Errorf("request metadata %s: %w", sessionID, ErrNoSession)
	}
	s.waitAck(ctx, ss)
	ss.mu.Lock()
	if ss.state != StateActive {
		ss.mu.Unlock()
		return nil, fmt.Errorf("request metadata %s: %w", sessionID, ErrNoSession)
	}
	req := ss.newRequest(sip.UPDATE)
	req.AppendHeader(s.contact(ss.transport)) // UPDATE refreshes the target (RFC 3311 §5.1)
	req.AppendHeader(sip.NewHeader("Content-Type", typeMetadataRequest))
	req.SetBody(nil)
	ss.mu.Unlock()
	res, err := s.send(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("request metadata %s: %w", sessionID, err)
	}
	if !res.IsSuccess() {
		return nil, fmt.Errorf("request metadata %s: %d %s: %w", sessionID, res.StatusCode, res.Reason, ErrRequestRefused)
	}
	ct := ""
	if h := res.ContentType(); h != nil {
		ct = h.Value()
	}
	meta, dispOK, err := parseMetadataBody(ct, res.Body())
	if err != nil || meta == nil {
		return nil, err
	}
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.state != StateActive {
		return meta, nil
	}
	if !dispOK {
		ss.violate(RuleMetadataDisposition, "metadata in the UPDATE answer without Content-Disposition: recording-session")
	}
	if err := ss.setMetadata(meta); err != nil {
		return nil, fmt.Errorf("request metadata %s: %w", sessionID, err)
	}
	s.changed()
	return meta, nil
}

// onUpdate takes metadata updates the SRC sends in an UPDATE (RFC 7866
// §9.1 allows UPDATE or re-INVITE). SDP in an UPDATE is not supported.
func (s *Server) onUpdate(req *sip.Request, tx sip.ServerTransaction) {
	if req.To() == nil || req.From() == nil || req.CSeq() == nil {
		s.respond(req, tx, 400, "Missing Dialog Headers")
		return
	}
	ss := s.dialog(dialogKey(callIDOf(req), tagOf(req.To().Params), tagOf(req.From().Params)))
	if ss == nil {
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = h.Value()
	}
	meta, dispOK, err := parseMetadataBody(ct, req.Body())
	if err != nil {
		s.reject(req, tx, err)
		return
	}
	ss.mu.Lock()
	if ss.state != StateActive {
		ss.mu.Unlock()
		s.respond(req, tx, 481, "Call/Transaction Does Not Exist")
		return
	}
	if c := req.Contact(); c != nil {
		ss.remoteTarget = *c.Address.Clone()
	}
	if meta != nil {
		if !dispOK {
			ss.violate(RuleMetadataDisposition, "metadata in UPDATE without Content-Disposition: recording-session")
		}
		if err := ss.setMetadata(meta); err != nil {
			s.log.Error("store metadata", "session_id", ss.id, "error", err)
		}
	}
	ss.mu.Unlock()
	s.changed()
	s.respond(req, tx, 200, "OK", s.contact(req.Transport()))
}

// Rejection is a request (INVITE or UPDATE) the server refused, kept for
// tests to read.
type Rejection struct {
	Time     time.Time
	Method   string
	CallID   string
	ReInvite bool // true for an in-dialog request
	Code     int
	Reason   string
	Detail   string
}

// maxRejections bounds the list Rejections returns.
const maxRejections = 1000

// noteRejection logs and keeps a rejection before the response goes out, so
// a caller that saw the response finds it in Rejections.
func (s *Server) noteRejection(req *sip.Request, code int, reason, detail string) {
	r := Rejection{Time: timeNow(), Method: string(req.Method), CallID: callIDOf(req), Code: code, Reason: reason, Detail: detail}
	if to := req.To(); to != nil && tagOf(to.Params) != "" {
		r.ReInvite = true
	}
	s.log.Info("siprec request rejected", "method", r.Method, "call_id", r.CallID, "in_dialog", r.ReInvite, "code", code, "reason", reason, "detail", detail)
	s.mu.Lock()
	s.rejections = append(s.rejections, r)
	if len(s.rejections) > maxRejections {
		s.rejections = s.rejections[len(s.rejections)-maxRejections:]
	}
	s.mu.Unlock()
	s.changed()
}

// Rejections returns the requests refused so far (the latest 1000), oldest
// first.
func (s *Server) Rejections() []Rejection {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Rejection(nil), s.rejections...)
}
