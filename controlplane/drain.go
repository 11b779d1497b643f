package controlplane

import (
	"context"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Draining takes a node out of a pool without cutting anyone off: new calls
// are refused with 503 and Retry-After (RFC 3261 §21.5.4), OPTIONS probes
// are answered 503 so a dispatcher (Kamailio's dispatcher module probes with
// OPTIONS) stops choosing the node, and every call and recording in progress
// keeps running until it ends. Close, or the end of a drain grace period,
// ends what is left with BYE to both parties and to the SRS.

// drainRetryAfter is the Retry-After of answers given while draining: long
// enough that a client goes to another node rather than back to this one.
const drainRetryAfter = "30"

// drainState is the daemon's drain flag and when it was set.
type drainState struct {
	mu    sync.Mutex
	on    bool
	since time.Time
}

// DrainInfo is the drain state the admin API reports.
type DrainInfo struct {
	Draining bool      `json:"draining"`
	Since    time.Time `json:"since,omitzero"`
	// Calls and Recordings are what is left running on the node.
	Calls      int `json:"calls"`
	Recordings int `json:"recordings"`
}

// Drain stops taking new calls; calls and recordings in progress go on.
func (d *Daemon) Drain() {
	d.drain.mu.Lock()
	defer d.drain.mu.Unlock()
	if d.drain.on {
		return
	}
	d.drain.on, d.drain.since = true, time.Now()
	d.log.Info("draining: new calls are refused with 503", "calls_left", d.liveConns())
}

// Undrain takes new calls again.
func (d *Daemon) Undrain() {
	d.drain.mu.Lock()
	defer d.drain.mu.Unlock()
	if !d.drain.on {
		return
	}
	d.drain.on, d.drain.since = false, time.Time{}
	d.log.Info("drain ended: new calls are taken again")
}

// DrainInfo reports whether the daemon is draining and what it still holds.
func (d *Daemon) DrainInfo() DrainInfo {
	d.drain.mu.Lock()
	di := DrainInfo{Draining: d.drain.on, Since: d.drain.since}
	d.drain.mu.Unlock()
	di.Calls, di.Recordings = len(d.Calls()), len(d.Recordings())
	return di
}

// Draining reports whether new calls are refused.
func (d *Daemon) Draining() bool {
	d.drain.mu.Lock()
	defer d.drain.mu.Unlock()
	return d.drain.on
}

func (d *Daemon) liveConns() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.conns)
}

// WaitIdle waits until no connection is left, or ctx ends (its error then).
// It waits on the connections' end, not on a clock.
func (d *Daemon) WaitIdle(ctx context.Context) error {
	for {
		d.mu.Lock()
		var c *Connection
		for _, x := range d.conns {
			c = x
			break
		}
		d.mu.Unlock()
		if c == nil {
			return nil
		}
		select {
		case <-c.Ended():
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// refuseDraining answers a new INVITE 503 while draining and reports
// whether it did.
func (d *Daemon) refuseDraining(req *sip.Request, tx sip.ServerTransaction) bool {
	if !d.Draining() {
		return false
	}
	d.metrics.limited.WithLabelValues("draining").Inc()
	d.metrics.rejected.WithLabelValues("503").Inc()
	respond(tx, req, 503, "Service Unavailable", sip.NewHeader("Retry-After", drainRetryAfter),
		sip.NewHeader("Warning", `399 recfork "draining"`))
	return true
}

// overloaded names the limit a new INVITE would meet now, without charging
// the INVITE rate buckets: an OPTIONS probe is not a call.
func (d *Daemon) overloaded() string {
	if d.maxCalls > 0 && d.liveConns() >= d.maxCalls {
		return "calls"
	}
	if d.invites.exhausted(time.Now()) {
		return "invite_rate"
	}
	return ""
}

// exhausted reports whether the overall INVITE bucket would refuse an INVITE
// at now, leaving the bucket as it is.
func (il *inviteLimiter) exhausted(now time.Time) bool {
	il.mu.Lock()
	defer il.mu.Unlock()
	b := il.all
	if b.rate <= 0 || b.last.IsZero() {
		return false
	}
	return min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate) < 1
}

// onOptions answers an OPTIONS probe (RFC 3261 §11): 200 with what we take
// when new calls are welcome, 503 with Retry-After while draining or over a
// limit, so a dispatcher probing with OPTIONS routes around the node. The
// 503 still carries Allow, as §11.2 lets any answer do.
func (d *Daemon) onOptions(req *sip.Request, tx sip.ServerTransaction) {
	code, reason := 200, "OK"
	var hdrs []sip.Header
	switch {
	case d.Draining():
		code, reason = 503, "Service Unavailable"
		hdrs = append(hdrs, sip.NewHeader("Retry-After", drainRetryAfter), sip.NewHeader("Warning", `399 recfork "draining"`))
	default:
		if limit := d.overloaded(); limit != "" {
			code, reason = 503, "Service Unavailable"
			hdrs = append(hdrs, sip.NewHeader("Retry-After", "5"), sip.NewHeader("Warning", `399 recfork "limit `+limit+`"`))
		}
	}
	hdrs = append(hdrs,
		sip.NewHeader("Allow", "INVITE, ACK, BYE, CANCEL, OPTIONS, UPDATE, INFO, NOTIFY"),
		sip.NewHeader("Accept", "application/sdp"),
		// RFC 4028 session timers are the one extension calls get.
		sip.NewHeader("Supported", "timer"))
	respond(tx, req, code, reason, hdrs...)
}

// Drain stops new calls and waits up to grace for the calls in progress to
// end on their own; the caller then shuts down, which ends the rest with
// BYE to both parties and to the SRS. It returns early when ctx ends.
func (svc *Service) Drain(ctx context.Context, grace time.Duration) {
	svc.d.Drain()
	gctx, cancel := context.WithTimeout(ctx, grace)
	defer cancel()
	if err := svc.d.WaitIdle(gctx); err != nil {
		svc.log.Info("drain grace over", "calls_left", svc.d.liveConns(), "grace", grace.String())
		return
	}
	svc.log.Info("drained: no call left")
}
