package controlplane

import (
	"context"
	"time"
)

// watchMedia ends established calls whose media stopped: no RTP or RTCP
// received (the endpoint's RxPackets unchanged) for Limits.MediaTimeout, or
// HoldTimeout while the call is on hold. A caller that vanished without a BYE
// (crash, NAT binding lost) would otherwise hold its ports, descriptors and
// recording forever. It reads the engine's per-endpoint counters through the
// dataplane.Engine contract, so it works the same with every engine.
func (d *Daemon) watchMedia() {
	media, hold := d.cfg.Limits.MediaTimeout, d.cfg.Limits.HoldTimeout
	if media < 0 && hold < 0 {
		return
	}
	shortest := media
	if shortest < 0 || (hold > 0 && hold < shortest) {
		shortest = hold
	}
	tick := min(max(shortest/4, 50*time.Millisecond), 5*time.Second)
	type seen struct {
		rx    uint64
		since time.Time
	}
	last := map[*Connection]seen{}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		select {
		case <-d.ctx.Done():
			return
		case now := <-t.C:
			d.mu.Lock()
			cs := make([]*Connection, 0, len(d.conns))
			for _, c := range d.conns {
				cs = append(cs, c)
			}
			d.mu.Unlock()
			alive := make(map[*Connection]bool, len(cs))
			for _, c := range cs {
				c.mu.Lock()
				ep, st, onHold := c.ep, c.state, c.hold
				c.mu.Unlock()
				if ep == 0 || st != StateConnected {
					continue
				}
				stats, err := d.engine.EndpointStats(ep)
				if err != nil {
					continue
				}
				alive[c] = true
				s, ok := last[c]
				if !ok || stats.RxPackets != s.rx {
					last[c] = seen{rx: stats.RxPackets, since: now}
					continue
				}
				limit, which := media, "media"
				if onHold {
					limit, which = hold, "hold"
				}
				if limit < 0 || now.Sub(s.since) < limit {
					continue
				}
				delete(last, c)
				d.metrics.mediaTimeouts.WithLabelValues(which).Inc()
				c.log.Info("no media; ending call", "timeout", which, "silent_s", int(now.Sub(s.since).Seconds()))
				d.wg.Add(1)
				go func() {
					defer d.wg.Done()
					ctx, cancel := context.WithTimeout(d.ctx, 8*time.Second)
					defer cancel()
					_ = d.hangup(ctx, c, which+" timeout")
				}()
			}
			for c := range last {
				if !alive[c] {
					delete(last, c)
				}
			}
		}
	}
}
