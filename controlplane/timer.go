package controlplane

import (
	"context"
	"strconv"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"
)

// Session timers (RFC 4028). recfork never refreshes itself: when the caller
// supports timers it is the refresher (refresher=uac); when no refresh (a
// re-INVITE or UPDATE) arrives in time, recfork ends the call with BYE
// (§10: at expiry minus min(32 s, interval/3)).

// minSE is the smallest interval recfork accepts (RFC 4028 §4: 90 s).
const minSE = 90

// sessionExpires reads Session-Expires (or its compact form x) from a request:
// the interval in seconds, 0 when absent or malformed.
func sessionExpires(req *sip.Request) int {
	h := req.GetHeader("Session-Expires")
	if h == nil {
		h = req.GetHeader("x")
	}
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

// sessionTimerWait is how long after a refresh the call is ended: the
// interval less min(32 s, interval/3) (RFC 4028 §10). Tests shorten it.
var sessionTimerWait = func(interval int) time.Duration {
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

// refreshSessionTimer restarts the timer after a refresh, with the interval
// the refresh asked for (or the current one).
func (c *Connection) refreshSessionTimer(req *sip.Request) int {
	c.mu.Lock()
	cur := c.seInterval
	c.mu.Unlock()
	n := sessionExpires(req)
	if n == 0 {
		n = cur
	}
	if n > 0 {
		c.armSessionTimer(n)
	}
	return n
}
