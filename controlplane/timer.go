package controlplane

import (
	"context"
	"errors"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028). When the caller supports timers and asks for a
// session interval, the refresher is the one the caller names: itself
// (refresher=uac, also when it names none) or recfork (refresher=uas). On a
// call recfork places, the INVITE says Supported: timer and the callee's 2xx
// decides (answeredTimer): recfork refreshes when it names the UAC. As
// the refresher recfork sends a refresh at half the interval (§10): an
// UPDATE (RFC 3311) when the caller's Allow lists it, else a re-INVITE with
// the description it last sent; refreshSession says what each answer does.
// Whoever refreshes, a session not refreshed in time is ended with BYE at
// expiry minus min(32 s, interval/3) (§10).

// minSE is the smallest interval recfork accepts (RFC 4028 §4: 90 s).
const minSE = 90

// headers is what the timer code reads of a request or a response.
type headers interface{ GetHeader(name string) sip.Header }

// sessionExpiresHeader returns a message's Session-Expires (or its compact
// form x), nil when absent.
func sessionExpiresHeader(m headers) sip.Header {
	if h := m.GetHeader("Session-Expires"); h != nil {
		return h
	}
	return m.GetHeader("x")
}

// seconds reads the delta-seconds value of a Session-Expires or Min-SE
// header (its parameters aside): 0 when absent or malformed.
func seconds(h sip.Header) int {
	if h == nil {
		return 0
	}
	v, _, _ := strings.Cut(h.Value(), ";")
	n, err := strconv.Atoi(strings.TrimSpace(v))
	if err != nil || n <= 0 {
		return 0
	}
	return n
}

// sessionExpires reads a message's session interval in seconds, 0 when
// absent or malformed.
func sessionExpires(m headers) int { return seconds(sessionExpiresHeader(m)) }

// supportsTimer reports whether the request lists "timer" in Supported or
// Require.
func supportsTimer(req *sip.Request) bool {
	for _, name := range []string{"Supported", "k", "Require"} {
		for _, h := range req.GetHeaders(name) {
			for _, opt := range strings.Split(h.Value(), ",") {
				if strings.EqualFold(strings.TrimSpace(opt), "timer") {
					return true
				}
			}
		}
	}
	return false
}

// Tests shorten the session timers with these (nanoseconds; 0 keeps the
// RFC's), atomically: a test changes them while calls run.
var testSessionWait, testRefreshAt atomic.Int64

// sessionTimerWait is how long after a refresh the call is ended: the
// interval less min(32 s, interval/3) (RFC 4028 §10).
func sessionTimerWait(interval int) time.Duration {
	if d := testSessionWait.Load(); d > 0 {
		return time.Duration(d)
	}
	d := time.Duration(interval) * time.Second
	return d - min(32*time.Second, d/3)
}

// armSessionTimer starts (or restarts) the session timer of c.
func (c *Connection) armSessionTimer(interval int) {
	if interval <= 0 {
		return
	}
	wait := sessionTimerWait(interval)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return
	}
	c.seInterval = interval
	if c.seTimer != nil {
		c.seTimer.Stop()
	}
	c.seTimer = time.AfterFunc(wait, func() {
		c.log.Info("session timer expired; ending call", "interval_s", interval)
		ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer cancel()
		_ = c.d.hangup(ctx, c, "session timer expired")
	})
}

// refreshSessionTimer restarts the timer after a refresh from the caller,
// with the interval the refresh asked for (or the current one), and takes
// the refresher it names (none: the role stays). It returns the interval
// and the refresher for the answer's Session-Expires.
func (c *Connection) refreshSessionTimer(req *sip.Request) (int, string) {
	c.mu.Lock()
	cur, ours := c.seInterval, c.refreshTimer != nil
	if req.GetHeader("Allow") != nil {
		c.refreshByUpdate = allowsUpdate(req)
	}
	c.mu.Unlock()
	n := sessionExpires(req)
	if n == 0 {
		n = cur
	}
	role := refresherOf(req)
	if role == "" {
		role = "uac"
		if ours {
			role = "uas"
		}
	}
	if n > 0 {
		c.armSessionTimer(n)
		if role == "uas" {
			c.armRefresh(n, sessionRefreshAt(n))
		} else {
			c.stopRefresh()
		}
	}
	return n, role
}

// refresherOf returns the refresher parameter of a message's Session-Expires
// ("uac", "uas"), or "" when it names none.
func refresherOf(m headers) string { return refresherParam(sessionExpiresHeader(m)) }

// refresherParam reads the refresher parameter of a Session-Expires header.
func refresherParam(h sip.Header) string {
	if h == nil {
		return ""
	}
	_, params, _ := strings.Cut(h.Value(), ";")
	for _, p := range strings.Split(params, ";") {
		k, v, _ := strings.Cut(p, "=")
		if strings.EqualFold(strings.TrimSpace(k), "refresher") {
			switch v = strings.ToLower(strings.TrimSpace(v)); v {
			case "uac", "uas":
				return v
			}
		}
	}
	return ""
}

// allowsUpdate reports whether a message's Allow lists UPDATE.
func allowsUpdate(m interface{ GetHeaders(string) []sip.Header }) bool {
	for _, h := range m.GetHeaders("Allow") {
		for _, m := range strings.Split(h.Value(), ",") {
			if strings.EqualFold(strings.TrimSpace(m), "UPDATE") {
				return true
			}
		}
	}
	return false
}

// sessionRefreshAt is when the refresher refreshes: at half the interval
// (RFC 4028 §10).
func sessionRefreshAt(interval int) time.Duration {
	if d := testRefreshAt.Load(); d > 0 {
		return time.Duration(d)
	}
	return time.Duration(interval) * time.Second / 2
}

// armRefresh schedules recfork's next refresh of c's session, after wait.
func (c *Connection) armRefresh(interval int, wait time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.over {
		return
	}
	if c.refreshTimer != nil {
		c.refreshTimer.Stop()
	}
	c.refreshTimer = time.AfterFunc(wait, func() { c.d.refreshSession(c, interval) })
}

// stopRefresh hands the refresher role back to the caller.
func (c *Connection) stopRefresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refreshTimer != nil {
		c.refreshTimer.Stop()
		c.refreshTimer = nil
	}
}

// inDialog is what a refresh needs of the call's sipgo dialog, ours as the
// callee (DialogServerSession) or as the caller (DialogClientSession).
type inDialog interface {
	Do(ctx context.Context, req *sip.Request) (*sip.Response, error)
	WriteRequest(req *sip.Request) error
}

// dialogLocked returns c's dialog, the remote target of requests in it and
// the INVITE that made it; dlg is nil when there is none. c.mu is held.
func (c *Connection) dialogLocked() (dlg inDialog, target sip.Uri, invite *sip.Request) {
	switch {
	case c.uas != nil && c.uas.InviteRequest.Contact() != nil:
		return c.uas, c.uas.InviteRequest.Contact().Address, c.uas.InviteRequest
	case c.uac != nil && c.uac.InviteResponse != nil && c.uac.InviteResponse.Contact() != nil:
		return c.uac, c.uac.InviteResponse.Contact().Address, c.uac.InviteRequest
	}
	return nil, sip.Uri{}, nil
}

// stopSessionTimer ends session expiry: the refresh's answer carried no
// Session-Expires (RFC 4028 §7.2).
func (c *Connection) stopSessionTimer() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seTimer != nil {
		c.seTimer.Stop()
		c.seTimer = nil
	}
	c.seInterval = 0
}

// cancelRefresh ends a refresh of ours in flight.
func (c *Connection) cancelRefresh() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.refreshCancel != nil {
		c.refreshCancel()
	}
}

// refreshSession sends one session refresh to the caller (recfork is the
// refresher) and acts on the answer: a 2xx re-arms both timers; 408, 481 or
// no answer end the call (RFC 4028 §10); 422 is retried at once with its
// larger Min-SE (§7.3), 405 or 501 to an UPDATE at once as a re-INVITE, 491 after
// up to 2 s (RFC 3261 §14.1), anything else at an eighth of the interval,
// which still comes before the session expires.
func (d *Daemon) refreshSession(c *Connection, interval int) {
	c.mu.Lock()
	dlg, target, invite := c.dialogLocked()
	byUpdate, sdp := c.refreshByUpdate, c.lastSDP
	if c.over || dlg == nil || c.state != StateConnected {
		c.mu.Unlock()
		return
	}
	method := sip.UPDATE
	if !byUpdate {
		method = sip.INVITE
		if c.callerInvite {
			// The caller's re-INVITE is in progress (RFC 3261 §14.1).
			c.mu.Unlock()
			c.armRefresh(interval, glareWait())
			return
		}
		c.refreshInvite = true
	}
	ctx, cancel := context.WithTimeout(context.Background(), 64*sip.T1)
	defer cancel()
	c.refreshCancel = cancel
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		c.refreshInvite, c.refreshCancel = false, nil
		c.mu.Unlock()
	}()

	req := sip.NewRequest(method, target)
	// In the refresh, recfork is the UAC and stays the refresher.
	req.AppendHeader(sip.NewHeader("Session-Expires", strconv.Itoa(interval)+";refresher=uac"))
	req.AppendHeader(sip.NewHeader("Min-SE", strconv.Itoa(minSE)))
	req.AppendHeader(sip.NewHeader("Supported", "timer"))
	if ch := d.tlsContact(invite); ch != nil {
		// A target refresh names our TLS contact on a TLS call (RFC 3261 §8.1.1.8).
		req.AppendHeader(ch)
	}
	if method == sip.INVITE {
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(sdp)
	}
	c.reqMu.Lock()
	res, err := dlg.Do(ctx, req)
	if err == nil && method == sip.INVITE && res.IsSuccess() {
		// The ACK of a 2xx is ours to send (RFC 3261 §13.2.2.4), again for
		// each retransmission of the 2xx (onStrayResponse).
		ack := sip.NewRequest(sip.ACK, req.Recipient)
		c.ackMu.Lock()
		if err = dlg.WriteRequest(ack); err == nil {
			c.refreshAck = ack
		}
		c.ackMu.Unlock()
	}
	c.reqMu.Unlock()
	if errors.Is(ctx.Err(), context.Canceled) {
		return // the call is being hung up
	}
	switch {
	case err != nil || res.StatusCode == 408 || res.StatusCode == 481:
		reason := "no answer"
		if err == nil {
			reason = strconv.Itoa(res.StatusCode)
		}
		c.log.Info("session refresh failed; ending call", "method", method, "reason", reason, "err", err)
		bctx, bcancel := context.WithTimeout(context.Background(), 8*time.Second)
		defer bcancel()
		_ = d.hangup(bctx, c, "session refresh failed")
	case res.IsSuccess():
		d.refreshAnswered(c, method, interval, res)
	case res.StatusCode == 422 && seconds(res.GetHeader("Min-SE")) > interval:
		c.armRefresh(seconds(res.GetHeader("Min-SE")), 0)
	case (res.StatusCode == 405 || res.StatusCode == 501) && method == sip.UPDATE:
		c.mu.Lock()
		c.refreshByUpdate = false
		c.mu.Unlock()
		c.armRefresh(interval, 0)
	case res.StatusCode == 491:
		c.armRefresh(interval, glareWait())
	default:
		c.log.Info("session refresh refused; trying again", "method", method, "status", res.StatusCode)
		c.armRefresh(interval, sessionRefreshAt(interval)/4)
	}
}

// answeredTimer starts the session timer a callee's 2xx to our INVITE
// negotiated (RFC 4028 §7.2): recfork refreshes when it names the UAC.
func (c *Connection) answeredTimer(res *sip.Response) {
	n, refresher := sessionExpires(res), refresherOf(res)
	if n == 0 {
		return
	}
	c.armSessionTimer(n)
	if refresher == "uac" {
		c.mu.Lock()
		c.refreshByUpdate = allowsUpdate(res)
		c.mu.Unlock()
		c.armRefresh(n, sessionRefreshAt(n))
	}
	c.log.Info("session timer", "interval_s", n, "refresher", refresher)
}

// refreshAnswered acts on the 2xx to our refresh.
func (d *Daemon) refreshAnswered(c *Connection, method sip.RequestMethod, interval int, res *sip.Response) {
	if method == sip.INVITE {
		// The caller answered our description again; take what changed.
		if o, err := d.answerIn(c, res.ContentType(), res.Body()); err != nil {
			c.log.Info("session refresh: unusable answer; media unchanged", "err", err)
		} else if err := d.applyOffer(c, o); err != nil {
			c.log.Warn("session refresh: apply the answer", "err", err)
		}
	}
	if sessionExpiresHeader(res) == nil {
		// RFC 4028 §7.2: no Session-Expires in the 2xx, no session timer.
		c.log.Info("session refresh answered without session timer; refreshing stops")
		c.stopRefresh()
		c.stopSessionTimer()
		return
	}
	n := interval
	if se := sessionExpires(res); se >= minSE {
		n = se
	}
	c.log.Debug("session refreshed", "method", method, "interval_s", n)
	c.armSessionTimer(n)
	if refresherOf(res) == "uas" {
		// The caller took the refresher role (RFC 4028 §7.2).
		c.stopRefresh()
	} else {
		c.armRefresh(n, sessionRefreshAt(n))
	}
}

// onStrayResponse gets the responses no transaction took. A 2xx to a
// refresh re-INVITE of ours is a retransmission (our ACK was lost, or the
// 2xx crossed it): it gets the same ACK again (RFC 3261 §13.2.2.4). Anything
// else is dropped.
func (d *Daemon) onStrayResponse(res *sip.Response) {
	cs, cid := res.CSeq(), res.CallID()
	if !res.IsSuccess() || cs == nil || cs.MethodName != sip.INVITE || cid == nil {
		return
	}
	d.mu.Lock()
	var c *Connection
	for _, x := range d.conns {
		if x.CallID == cid.Value() {
			c = x
			break
		}
	}
	d.mu.Unlock()
	if c == nil {
		return
	}
	c.ackMu.Lock()
	defer c.ackMu.Unlock()
	ack := c.refreshAck
	if ack == nil || ack.CSeq().SeqNo != cs.SeqNo {
		return
	}
	// As built the first time: no header is added again.
	if err := d.client.WriteRequest(ack, func(*sipgo.Client, *sip.Request) error { return nil }); err != nil {
		c.log.Info("ack of a retransmitted refresh 2xx", "err", err)
	}
}

// glareWait is RFC 3261 §14.1's wait before retrying an INVITE refused with
// 491 by the party that owns the Call-ID: up to 2 s (the caller owns it).
func glareWait() time.Duration {
	return time.Duration(rand.Int64N(int64(2 * time.Second)))
}
