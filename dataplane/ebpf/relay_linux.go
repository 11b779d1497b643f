//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"errors"
	"fmt"

	"net/netip"

	"github.com/recfork/recfork/dataplane"
)

// Kernel relay of joined endpoints. Media keeps every join (its sockets
// relay whatever reaches them); for a direction the kernel can carry, the
// from endpoint's inbound stream entry also gets a relay part (see
// streamEntry) and the ingress program redirects the packets before any
// socket sees them, so each packet is relayed exactly
// once, by one path. A packet the program passes on (not media, a foreign
// source, no next hop) reaches the socket and Media relays or drops it.

const (
	relayFlagRemote = 2 // RELAY_F_REMOTE
	relayPassPT     = 8 // RELAY_F_PASS_PT
)

// relayID is one direction of a join: what from receives leaves from to
// towards to's remote.
type relayID struct{ from, to dataplane.EndpointID }

type relay struct {
	key rtpforkStreamKey
	val rtpforkRelayValue
}

type relayCounts struct{ packets, bytes, failed uint64 }

func (e *Engine) relayCounters(slot uint32) (relayCounts, error) {
	var per []rtpforkRelayCounters
	if err := e.objs.RelayStats.Lookup(slot, &per); err != nil {
		return relayCounts{}, fmt.Errorf("read relay counters: %w", err)
	}
	var c relayCounts
	for _, p := range per {
		c.packets += p.RelayedPackets
		c.bytes += p.RelayedBytes
		c.failed += p.FailedPackets
	}
	return c, nil
}

// joinLocked records a join as Media applies it.
func (e *Engine) joinLocked(from, to dataplane.EndpointID, d dataplane.Duplex) {
	add := func(a, b dataplane.EndpointID) {
		if e.out[a] == nil {
			e.out[a] = make(map[dataplane.EndpointID]bool)
		}
		e.out[a][b] = true
		e.joinsOf.add(relayID{a, b})
	}
	add(from, to)
	if d == dataplane.Full {
		add(to, from)
	}
}

func (e *Engine) unjoinLocked(a, b dataplane.EndpointID) {
	delete(e.out[a], b)
	delete(e.out[b], a)
	// The reasons go with the join, or they would pile up call after call.
	for _, id := range []relayID{{a, b}, {b, a}} {
		e.joinsOf.remove(id)
		delete(e.relayWhy, id)
		delete(e.relayLogged, id)
	}
	if len(e.out[a]) == 0 {
		delete(e.out, a)
	}
	if len(e.out[b]) == 0 {
		delete(e.out, b)
	}
}

// forgetLocked drops every join of a closed endpoint.
func (e *Engine) forgetLocked(id dataplane.EndpointID) {
	for j := range e.joinsOf[id] {
		e.unjoinLocked(j.from, j.to)
	}
}

// pairIndex finds the joins or relays of an endpoint, either way, without a
// pass over all of them: the work a call's setup and teardown does stays the
// same however many other calls are up.
type pairIndex map[dataplane.EndpointID]map[relayID]struct{}

func (p pairIndex) add(id relayID) {
	for _, ep := range [2]dataplane.EndpointID{id.from, id.to} {
		if p[ep] == nil {
			p[ep] = make(map[relayID]struct{})
		}
		p[ep][id] = struct{}{}
	}
}

func (p pairIndex) remove(id relayID) {
	for _, ep := range [2]dataplane.EndpointID{id.from, id.to} {
		delete(p[ep], id)
		if len(p[ep]) == 0 {
			delete(p, ep)
		}
	}
}

// relayCandidatesLocked are the directions syncRelaysLocked looks at again:
// the joins and kernel relays from or to the endpoints in only, or all of
// them when only is empty.
func (e *Engine) relayCandidatesLocked(only []dataplane.EndpointID) map[relayID]struct{} {
	c := make(map[relayID]struct{})
	if len(only) == 0 {
		for from, tos := range e.out {
			for to := range tos {
				c[relayID{from, to}] = struct{}{}
			}
		}
		for id := range e.relays {
			c[id] = struct{}{}
		}
		return c
	}
	for _, o := range only {
		for id := range e.joinsOf[o] {
			c[id] = struct{}{}
		}
		for id := range e.relaysOf[o] {
			c[id] = struct{}{}
		}
	}
	return c
}

// relayValueLocked builds the relay entry of one direction, or says why the
// kernel cannot carry it.
func (e *Engine) relayValueLocked(id relayID) (rtpforkStreamKey, rtpforkRelayValue, error) {
	var v rtpforkRelayValue
	a, b := e.endpoints[id.from], e.endpoints[id.to]
	if a == nil || b == nil {
		return rtpforkStreamKey{}, v, fmt.Errorf("endpoint closed: %w", errKernelCannot)
	}
	al, bl := unmap(a.local), unmap(b.local)
	passPT, tapErr := e.tapsBesideLocked(id)
	switch {
	case e.cfg.UserspaceRelay:
		return rtpforkStreamKey{}, v, fmt.Errorf("Config.UserspaceRelay: %w", errKernelCannot)
	case tapErr != nil:
		return rtpforkStreamKey{}, v, tapErr
	case a.srtp || b.srtp:
		// Media opens and seals SRTP; the kernel would pass it unchanged.
		return rtpforkStreamKey{}, v, fmt.Errorf("endpoint uses srtp: %w", errKernelCannot)
	case al.Addr().IsLoopback() || bl.Addr().IsLoopback():
		return rtpforkStreamKey{}, v, fmt.Errorf("endpoint on loopback: %w", errKernelCannot)
	case !a.guarded || !b.guarded:
		return rtpforkStreamKey{}, v, fmt.Errorf("endpoint without a kernel guard: %w", errKernelCannot)
	case !a.remote.IsValid() || !b.remote.IsValid():
		return rtpforkStreamKey{}, v, fmt.Errorf("remote not known yet: %w", errKernelCannot)
	case al.Addr().Is4() != bl.Addr().Is4() || b.remote.Addr().Is4() != bl.Addr().Is4() || a.remote.Addr().Is4() != al.Addr().Is4():
		return rtpforkStreamKey{}, v, fmt.Errorf("legs differ in IP version: %w", errKernelCannot)
	}
	// A fork Media copies sees only what reaches its sockets.
	if f := e.forks[forkID{id.from, dataplane.Inbound}]; f != nil && f.media {
		return rtpforkStreamKey{}, v, fmt.Errorf("inbound fork copied in userspace: %w", errKernelCannot)
	}
	if f := e.forks[forkID{id.to, dataplane.Outbound}]; f != nil && f.media {
		return rtpforkStreamKey{}, v, fmt.Errorf("outbound fork copied in userspace: %w", errKernelCannot)
	}
	h, err := e.resolveIn(e.memo, b.remote.Addr(), bl.Addr())
	if err != nil {
		return rtpforkStreamKey{}, v, err
	}
	if !h.resolved {
		return rtpforkStreamKey{}, v, fmt.Errorf("next hop %s unresolved: %w", h.nexthop, errKernelCannot)
	}
	k := keyOf(al, dataplane.Inbound)
	v = rtpforkRelayValue{Ifindex: uint32(h.ifindex), Family: k.Family, Flags: flagResolved | relayFlagRemote,
		SrcPort: bl.Port(), DstPort: b.remote.Port(), DstMac: h.dst, SrcMac: h.src, RemPort: a.remote.Port()}
	copy(v.SrcAddr[:], bl.Addr().AsSlice())
	copy(v.DstAddr[:], b.remote.Addr().AsSlice())
	copy(v.RemAddr[:], a.remote.Addr().AsSlice())
	if b.latch && e.latchPolicy() != dataplane.LatchOff {
		// Until b latches, to its signalled remote; then where the
		// kernel learnt it, with no map write in between.
		v.Flags |= relayFollow
	}
	if passPT != 0 {
		v.PassPt, v.Flags = passPT, v.Flags|relayPassPT
	}
	return k, v, nil
}

// tapsBesideLocked checks that id.from relays to id.to and otherwise only
// to taps (EndpointConfig.TapPayloadType) of one payload type, and returns
// that type (0: no tap). The kernel then relays to id.to everything but
// that type's RTP, which goes on to the socket for Media to relay to id.to
// and to the taps: a tap never costs the party its kernel relay. A relay
// into a tap is always Media's.
func (e *Engine) tapsBesideLocked(id relayID) (uint8, error) {
	outs := e.out[id.from]
	if !outs[id.to] {
		return 0, fmt.Errorf("endpoint %d does not relay to %d: %w", id.from, id.to, errKernelCannot)
	}
	if b := e.endpoints[id.to]; b != nil && b.tapPT != 0 {
		return 0, fmt.Errorf("endpoint %d is a tap of payload type %d: %w", id.to, b.tapPT, errKernelCannot)
	}
	var pt uint8
	for to := range outs {
		if to == id.to {
			continue
		}
		t := e.endpoints[to]
		if t == nil || t.tapPT == 0 || (pt != 0 && t.tapPT != pt) {
			return 0, fmt.Errorf("endpoint %d relays to %d endpoints: %w", id.from, len(outs), errKernelCannot)
		}
		pt = t.tapPT
	}
	return pt, nil
}

// syncRelaysLocked makes the stream table's relay parts what the joins,
// endpoints and forks call for; with create false it only updates and
// deletes relays. A relay
// that starts while Media is already relaying the direction could overtake
// Media's packets still waiting in the neighbour queue, so new relays start
// only from Join and SetRemote, never from a late neighbour resolution.
// Entries are deleted first and the programs that could still see
// them waited for, so their counters are final when folded into the totals.
//
// With only given, just the directions from or to those endpoints are looked
// at again (each look resolves a next hop over rtnetlink); the rest stay as
// they are.
func (e *Engine) syncRelaysLocked(create bool, only ...dataplane.EndpointID) error {
	type want struct {
		key rtpforkStreamKey
		val rtpforkRelayValue
	}
	look := e.relayCandidatesLocked(only)
	wants := make(map[relayID]want)
	for id := range look {
		if !e.out[id.from][id.to] {
			continue
		}
		k, v, err := e.relayValueLocked(id)
		why := ""
		if err != nil {
			why = err.Error()
		}
		if e.relayWhy[id] != why || !e.relayLogged[id] {
			e.relayLogged[id] = true
			e.relayWhy[id] = why
			if err != nil {
				e.log.Info("join relayed in userspace", "from", uint64(id.from), "to", uint64(id.to), "reason", why)
			} else {
				e.log.Info("join relayed in the kernel", "from", uint64(id.from), "to", uint64(id.to))
			}
		}
		if err == nil {
			wants[id] = want{k, v}
		}
	}
	var errs []error
	var gone []relayID
	for id := range look {
		r, ok := e.relays[id]
		if !ok {
			continue
		}
		w, ok := wants[id]
		if ok && w.key == r.key {
			w.val.Slot = r.val.Slot
			if w.val != r.val {
				if err := e.putRelayLocked(r.key, &w.val); err != nil {
					errs = append(errs, fmt.Errorf("update relay %d to %d: %w", id.from, id.to, err))
				} else {
					r.val = w.val
				}
			}
			delete(wants, id)
			continue
		}
		if err := e.putRelayLocked(r.key, nil); err != nil {
			errs = append(errs, fmt.Errorf("delete relay %d to %d: %w", id.from, id.to, err))
		}
		gone = append(gone, id)
	}
	if len(gone) > 0 {
		serr := e.sync()
		for _, id := range gone {
			r := e.relays[id]
			delete(e.relays, id)
			e.relaysOf.remove(id)
			if c, err := e.relayCounters(r.val.Slot); err == nil {
				e.foldRelayLocked(id, c)
			}
			if serr == nil {
				e.freeSlots = append(e.freeSlots, r.val.Slot)
			}
		}
		if serr != nil {
			errs = append(errs, serr)
		}
	}
	for id, w := range wants {
		if !create {
			break
		}
		slot, err := e.allocSlot()
		if err != nil {
			errs = append(errs, fmt.Errorf("relay %d to %d: %w", id.from, id.to, err))
			continue
		}
		w.val.Slot = slot
		if err := e.objs.RelayStats.Put(slot, make([]rtpforkRelayCounters, e.ncpu)); err != nil {
			e.freeSlots = append(e.freeSlots, slot)
			errs = append(errs, fmt.Errorf("relay %d to %d: reset counters: %w", id.from, id.to, err))
			continue
		}
		if e.entries[w.key].relay != nil {
			// tapsBesideLocked leaves one kernel relay per endpoint.
			e.freeSlots = append(e.freeSlots, slot)
			errs = append(errs, fmt.Errorf("relay %d to %d: relay entry taken", id.from, id.to))
			continue
		}
		if err := e.putRelayLocked(w.key, &w.val); err != nil {
			e.freeSlots = append(e.freeSlots, slot)
			errs = append(errs, fmt.Errorf("relay %d to %d: write relay entry: %w", id.from, id.to, err))
			continue
		}
		e.relays[id] = &relay{key: w.key, val: w.val}
		e.relaysOf.add(id)
	}
	return errors.Join(errs...)
}

// warmRelays resolves the next hops a join will relay to, so that the
// neighbour entries exist before the relay starts (see syncRelaysLocked).
func (e *Engine) warmRelays(from, to dataplane.EndpointID, d dataplane.Duplex) {
	type leg struct{ remote, local netip.AddrPort }
	var legs []leg
	e.mu.Lock()
	for _, id := range []dataplane.EndpointID{to, from} {
		if ep := e.endpoints[id]; ep != nil && ep.remote.IsValid() {
			legs = append(legs, leg{ep.remote, unmap(ep.local)})
		}
		if d != dataplane.Full {
			break
		}
	}
	e.mu.Unlock()
	for _, l := range legs {
		if l.remote.Addr().Is4() == l.local.Addr().Is4() && !l.local.Addr().IsLoopback() {
			_, _ = e.resolveWait(l.remote.Addr(), l.local.Addr())
		}
	}
}

// foldRelayLocked keeps a removed relay's counts in its endpoints' totals.
func (e *Engine) foldRelayLocked(id relayID, c relayCounts) {
	e.goneRelayed += c.packets
	if _, ok := e.endpoints[id.from]; ok {
		s := e.relayGone[id.from]
		s.RxPackets += c.packets
		s.RxBytes += c.bytes
		s.Relayed += c.packets
		e.relayGone[id.from] = s
	}
	if _, ok := e.endpoints[id.to]; ok {
		s := e.relayGone[id.to]
		s.TxPackets += c.packets
		s.TxBytes += c.bytes
		e.relayGone[id.to] = s
	}
}

// addRelayStatsLocked adds the kernel's relay counts to Media's figures of
// one endpoint.
func (e *Engine) addRelayStatsLocked(id dataplane.EndpointID, s *dataplane.EndpointStats) {
	g := e.relayGone[id]
	s.RxPackets += g.RxPackets
	s.RxBytes += g.RxBytes
	s.Relayed += g.Relayed
	s.TxPackets += g.TxPackets
	s.TxBytes += g.TxBytes
	for rid := range e.relaysOf[id] {
		c, err := e.relayCounters(e.relays[rid].val.Slot)
		if err != nil {
			continue
		}
		if rid.from == id {
			s.RxPackets += c.packets
			s.RxBytes += c.bytes
			s.Relayed += c.packets
		}
		if rid.to == id {
			s.TxPackets += c.packets
			s.TxBytes += c.bytes
		}
	}
}

// kernelRelayedLocked totals every relay's packets since the engine started.
func (e *Engine) kernelRelayedLocked() uint64 {
	n := e.goneRelayed
	for _, r := range e.relays {
		if c, err := e.relayCounters(r.val.Slot); err == nil {
			n += c.packets
		}
	}
	return n
}

// RelayedInKernel reports whether the direction from -> to of a join is
// relayed by the BPF programs (false: by Media's sockets).
func (e *Engine) RelayedInKernel(from, to dataplane.EndpointID) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.relays[relayID{from, to}]
	return ok
}
