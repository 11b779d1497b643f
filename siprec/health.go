package siprec

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// SRSState is what the client knows of one SRS's health, for the admin API
// and the metrics.
type SRSState struct {
	// URI is the SRS as configured or requested (without parameters other
	// than transport).
	URI string
	// Up is false while the SRS is skipped: its probes failed Keepalive.Failures
	// times in a row, a request to it failed (with keepalive on), or it
	// answered 503 with a Retry-After that has not passed.
	Up bool
	// Configured reports whether the SRS comes from Config.SRS (probed
	// always) rather than from a request (probed only while down).
	Configured bool
	// Failures is the count of failed probes or requests in a row.
	Failures int
	// RetryAfter is when a 503's Retry-After ends; zero if none.
	RetryAfter time.Time
	// LastError says why the SRS last failed; LastProbe is when it was last
	// probed, LastOK when it last answered.
	LastError         string
	LastProbe, LastOK time.Time
	// Probes and ProbeFailures count the OPTIONS sent and those that failed.
	Probes, ProbeFailures uint64
}

type srsEntry struct {
	u sip.Uri
	SRSState
}

// health is the client's table of SRS states and its OPTIONS prober.
type health struct {
	c  *Client
	ka Keepalive

	mu      sync.Mutex
	entries map[string]*srsEntry
	stop    chan struct{}
	wg      sync.WaitGroup
}

func newHealth(c *Client, ka Keepalive) *health {
	if ka.Failures <= 0 {
		ka.Failures = 2
	}
	if ka.Timeout <= 0 {
		ka.Timeout = 2 * time.Second
		if ka.Interval > 0 && ka.Interval < ka.Timeout {
			ka.Timeout = ka.Interval
		}
	}
	return &health{c: c, ka: ka, entries: map[string]*srsEntry{}, stop: make(chan struct{})}
}

// configure adds the configured SRSs.
func (h *health) configure(uris []sip.Uri) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, u := range uris {
		e := h.entryLocked(u)
		e.Configured = true
	}
}

func (h *health) entryLocked(u sip.Uri) *srsEntry {
	k := srsKey(u)
	e := h.entries[k]
	if e == nil {
		e = &srsEntry{u: *u.Clone(), SRSState: SRSState{URI: k, Up: true}}
		h.entries[k] = e
	}
	return e
}

// usable reports whether u may be tried now: up and past any Retry-After.
func (h *health) usable(u sip.Uri, now time.Time) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	e := h.entries[srsKey(u)]
	if e == nil {
		return true
	}
	return e.Up && !now.Before(e.RetryAfter)
}

// order returns list with the usable SRSs first, each group in list order,
// and without those in avoid (the SRSs takeovers left).
func (h *health) order(list []sip.Uri, avoid map[string]bool) []sip.Uri {
	now := time.Now()
	var good, bad []sip.Uri
	for _, u := range list {
		if avoid[srsKey(u)] {
			continue
		}
		if h.usable(u, now) {
			good = append(good, u)
		} else {
			bad = append(bad, u)
		}
	}
	return append(good, bad...)
}

// ok records that u answered.
func (h *health) ok(u sip.Uri) {
	h.mu.Lock()
	e := h.entryLocked(u)
	was := e.Up
	e.Up, e.Failures, e.LastError, e.LastOK = true, 0, "", time.Now()
	if !e.Configured && h.ka.Interval > 0 {
		// A request-only SRS is probed only while down: done.
		delete(h.entries, e.URI)
	}
	h.mu.Unlock()
	if !was {
		h.c.log.Info("srs is answering again", "srs", e.URI)
	}
}

// failed records a failed request or probe to u; retryAfter is a 503's
// Retry-After (zero if none). probe reports an OPTIONS probe, which marks
// the SRS down only after Keepalive.Failures in a row; a failed request
// marks it down at once when probes will tell when it is back.
func (h *health) failed(u sip.Uri, why string, retryAfter time.Duration, probe bool) {
	h.mu.Lock()
	e := h.entryLocked(u)
	e.Failures++
	e.LastError = why
	if retryAfter > 0 {
		e.RetryAfter = time.Now().Add(retryAfter)
	}
	was := e.Up
	switch {
	case h.ka.Interval <= 0:
		// Nothing would ever mark it up again: only Retry-After skips it.
	case probe && e.Failures >= h.ka.Failures, !probe:
		e.Up = false
	}
	down := was && !e.Up
	key := e.URI
	h.mu.Unlock()
	if down {
		h.c.log.Warn("srs marked down", "srs", key, "err", why)
		if probe {
			// Only probes move established sessions: a request that failed
			// (say a 503 to a new INVITE) says nothing of existing dialogs.
			h.c.srsDown(key, why)
		}
	}
}

// states returns the table, sorted by URI.
func (h *health) states() []SRSState {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]SRSState, 0, len(h.entries))
	for _, e := range h.entries {
		out = append(out, e.SRSState)
	}
	slices.SortFunc(out, func(a, b SRSState) int { return strings.Compare(a.URI, b.URI) })
	return out
}

// run probes every configured SRS, and every SRS marked down, each
// Interval, until close.
func (h *health) run() {
	if h.ka.Interval <= 0 {
		return
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		t := time.NewTicker(h.ka.Interval)
		defer t.Stop()
		for {
			h.probeAll()
			select {
			case <-h.stop:
				return
			case <-t.C:
			}
		}
	}()
}

func (h *health) close() {
	close(h.stop)
	h.wg.Wait()
}

func (h *health) probeAll() {
	h.mu.Lock()
	var us []sip.Uri
	for _, e := range h.entries {
		if e.Configured || !e.Up {
			us = append(us, e.u)
		}
	}
	h.mu.Unlock()
	var wg sync.WaitGroup
	for _, u := range us {
		wg.Add(1)
		go func() {
			defer wg.Done()
			h.probe(u)
		}()
	}
	wg.Wait()
}

// probe sends one OPTIONS to u. Any final answer but 503 means the SRS is
// alive (RFC 3261 §11: OPTIONS is answered as an INVITE would be, and a
// 4xx still proves a server listens). Without a forced transport it tries
// TCP, then UDP, each bounded by Keepalive.Timeout, so that neither a
// UDP-only nor a TCP-only SRS is taken for dead.
func (h *health) probe(u sip.Uri) {
	h.mu.Lock()
	e := h.entryLocked(u)
	e.LastProbe = time.Now()
	e.Probes++
	h.mu.Unlock()
	code, retryAfter, err := h.options(u)
	switch {
	case err != nil:
		h.countProbeFailure(u)
		h.failed(u, "options: "+err.Error(), 0, true)
	case code == 503:
		h.countProbeFailure(u)
		h.failed(u, "options: 503", retryAfter, true)
	default:
		h.ok(u)
	}
}

func (h *health) options(u sip.Uri) (int, time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), h.ka.Timeout)
	defer cancel()
	go func() {
		select {
		case <-h.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	hops, err := h.c.resolve(ctx, u, true)
	if err != nil {
		return 0, 0, err
	}
	hp := hops[0]
	tports := []string{hp.tport}
	if !hp.forced {
		tports = []string{"TCP", "UDP"}
	}
	for i, tp := range tports {
		actx, acancel := context.WithTimeout(context.Background(), h.ka.Timeout)
		go func() {
			select {
			case <-h.stop:
				acancel()
			case <-actx.Done():
			}
		}()
		code, ra, aerr := h.c.options(actx, u, hop{tport: tp, addr: hp.addr, name: hp.name})
		acancel()
		if aerr == nil {
			return code, ra, nil
		}
		err = aerr
		if i == 0 && len(tports) > 1 {
			err = fmt.Errorf("%s: %w", strings.ToLower(tp), aerr)
		}
	}
	return 0, 0, err
}

func (h *health) countProbeFailure(u sip.Uri) {
	h.mu.Lock()
	h.entryLocked(u).ProbeFailures++
	h.mu.Unlock()
}

// options sends an OPTIONS to u over h and returns the final answer's code
// and Retry-After.
func (c *Client) options(ctx context.Context, u sip.Uri, h hop) (int, time.Duration, error) {
	req := sip.NewRequest(sip.OPTIONS, *u.Clone())
	req.SetTransport(h.tport)
	req.SetDestination(h.addr.String())
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: c.cfg.FromUser, Host: c.contact.Address.Host}}
	from.Params = sip.NewParams()
	from.Params.Add("tag", sip.GenerateTagN(16))
	req.AppendHeader(from)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: u.User, Host: u.Host, Port: u.Port}})
	req.AppendHeader(sip.NewHeader("Accept", acceptValue))
	ch := c.contactFor(h.tport)
	req.AppendHeader(&ch)
	cl, err := c.clientFor(h)
	if err != nil {
		return 0, 0, err
	}
	res, err := cl.Do(ctx, req, sipgo.ClientRequestBuild)
	if err != nil {
		return 0, 0, err
	}
	return res.StatusCode, retryAfterOf(res), nil
}

// retryAfterOf reads a Retry-After header's seconds (RFC 3261 §20.33).
func retryAfterOf(res *sip.Response) time.Duration {
	h := res.GetHeader("Retry-After")
	if h == nil {
		return 0
	}
	v := strings.TrimSpace(h.Value())
	if i := strings.IndexAny(v, " ;("); i >= 0 {
		v = v[:i]
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(min(n, 3600)) * time.Second
}

// srsDown hands the takeover to every session recording to key.
func (c *Client) srsDown(key, why string) {
	c.mu.Lock()
	ss := make([]*session, 0, len(c.sessions))
	for _, s := range c.sessions {
		ss = append(ss, s)
	}
	c.mu.Unlock()
	for _, s := range ss {
		s.srsLost(key, "srs-ended: "+why)
	}
}

// SRSHealth returns the state of every SRS the client knows.
func (c *Client) SRSHealth() []SRSState { return c.health.states() }
