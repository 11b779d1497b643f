//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/recfork/recfork/dataplane"
)

// Guard and latching in the kernel. Every endpoint the programs can see (not
// on loopback) has two entries in the latch table, one per socket, that say
// which sources it accepts; the ingress program drops RTP and RTCP from any
// other source before a fork, relay or socket sees it, and learns the
// latched source itself. Media applies the same policy to what reaches its
// sockets, so both agree on every packet; a latch learnt in the kernel is
// also handed to Media (SetLatched), because the packets of a relay the
// kernel carries never reach it.

// Must be in sync with bpf/rtpfork.h.
const (
	latchFixed   = 1
	latchAddr    = 2
	latchNAT     = 3
	latchAny     = 4
	latchLearnt  = 2
	relayFollow  = 4
	statGuard    = 13
	statLatched  = 14
	statHelpers  = 15
	latchRingBuf = 256 * 1024
)

// latcher is what the eBPF engine needs of Media to keep latching in step:
// the userspace engine implements it.
type latcher interface {
	LatchPolicy() dataplane.LatchPolicy
	SetLatched(id dataplane.EndpointID, rtcp bool, src netip.AddrPort) error
}

// latchRef names one socket of an endpoint.
type latchRef struct {
	id   dataplane.EndpointID
	rtcp bool
}

func (e *Engine) latchPolicy() dataplane.LatchPolicy {
	if l, ok := e.media.(latcher); ok {
		return l.LatchPolicy()
	}
	return dataplane.LatchAddress
}

// latchKeys are the latch-table keys of an endpoint's RTP and RTCP sockets.
func latchKeys(local netip.AddrPort) [2]rtpforkStreamKey {
	k := keyOf(local, dataplane.Inbound)
	r := k
	r.Port = htons(local.Port() + 1)
	return [2]rtpforkStreamKey{k, r}
}

// latchValue is the entry that makes the kernel apply the policy to one
// socket of ep, as Media's accept does.
func (e *Engine) latchValue(ep *endpoint, rtcp bool) rtpforkLatchValue {
	k := keyOf(ep.local, dataplane.Inbound)
	v := rtpforkLatchValue{Family: k.Family, Limit: dataplane.NATLatchWindow}
	r := ep.remote
	p := e.latchPolicy()
	switch {
	case !r.IsValid():
		v.Mode = latchAny
	case !ep.latch || p == dataplane.LatchOff:
		v.Mode = latchFixed
	case p == dataplane.LatchNAT && dataplane.Unroutable(r.Addr()):
		v.Mode = latchNAT
	default:
		v.Mode = latchAddr
	}
	if r.IsValid() {
		copy(v.RemAddr[:], r.Addr().AsSlice())
		v.RemPort = r.Port()
		if rtcp {
			v.RemPort++
		}
	}
	return v
}

// writeLatchLocked (re)writes both entries of ep, which resets latching;
// what the old entries dropped is kept in ep.guardGone.
func (e *Engine) writeLatchLocked(id dataplane.EndpointID, ep *endpoint) error {
	if !ep.guarded {
		return nil
	}
	var errs []error
	for i, k := range ep.latchKeys {
		var old rtpforkLatchValue
		if err := e.objs.Latches.Lookup(&k, &old); err == nil {
			ep.guardGone += old.Dropped
		}
		v := e.latchValue(ep, i == 1)
		if err := e.objs.Latches.Put(&k, &v); err != nil {
			errs = append(errs, fmt.Errorf("endpoint %d: write latch entry: %w", id, err))
		}
	}
	return errors.Join(errs...)
}

// openLatchLocked guards a newly opened endpoint in the kernel.
func (e *Engine) openLatchLocked(id dataplane.EndpointID, ep *endpoint) error {
	if ep.local.Addr().Unmap().IsLoopback() || ep.srtp {
		// Loopback never crosses the media interfaces, and an SRTP
		// endpoint may latch only to a source whose packets authenticate,
		// which the kernel cannot check: Media alone decides.
		return nil
	}
	ep.guarded = true
	ep.latchKeys = latchKeys(unmap(ep.local))
	for _, k := range ep.latchKeys {
		e.latchIndex[k] = latchRef{id: id, rtcp: k.Port != ep.latchKeys[0].Port}
	}
	return e.writeLatchLocked(id, ep)
}

// closeLatchLocked removes an endpoint's entries.
func (e *Engine) closeLatchLocked(ep *endpoint) error {
	if !ep.guarded {
		return nil
	}
	var errs []error
	for _, k := range ep.latchKeys {
		delete(e.latchIndex, k)
		if err := e.objs.Latches.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete latch entry: %w", err))
		}
	}
	ep.guarded = false
	return errors.Join(errs...)
}

// latchState is what the kernel says of an endpoint: what its guard dropped
// and the RTP source it latched, if it has.
func (e *Engine) latchStateLocked(ep *endpoint) (dropped uint64, latched netip.AddrPort) {
	if !ep.guarded {
		return 0, netip.AddrPort{}
	}
	dropped = ep.guardGone
	for i, k := range ep.latchKeys {
		var v rtpforkLatchValue
		if err := e.objs.Latches.Lookup(&k, &v); err != nil {
			continue
		}
		dropped += v.Dropped
		if i == 0 && v.State == latchLearnt {
			latched = latchedAddr(v.Family, v.LatAddr, v.LatPort)
		}
	}
	return dropped, latched
}

func latchedAddr(family uint8, a [16]byte, port uint16) netip.AddrPort {
	if family == familyV4 {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), port)
	}
	return netip.AddrPortFrom(netip.AddrFrom16(a), port)
}

// readLatches hands every latch the programs report to Media, until the
// reader is closed.
func (e *Engine) readLatches(r *ringbuf.Reader) {
	for {
		rec, err := r.Read()
		if err != nil {
			if !errors.Is(err, ringbuf.ErrClosed) {
				e.log.Warn("latch events stopped", "err", err)
			}
			return
		}
		var ev rtpforkLatchEvent
		if _, err := binary.Decode(rec.RawSample, binary.NativeEndian, &ev); err != nil {
			continue
		}
		e.onLatch(ev)
	}
}

func (e *Engine) onLatch(ev rtpforkLatchEvent) {
	e.mu.Lock()
	defer e.mu.Unlock()
	ref, ok := e.latchIndex[ev.Key]
	if e.closed || !ok {
		return
	}
	// A SetRemote since resets latching: only a latch the table still
	// holds is the endpoint's.
	var v rtpforkLatchValue
	if err := e.objs.Latches.Lookup(&ev.Key, &v); err != nil || v.State != latchLearnt ||
		v.LatAddr != ev.Addr || v.LatPort != ev.Port {
		return
	}
	src := latchedAddr(v.Family, v.LatAddr, v.LatPort)
	e.log.Info("endpoint latched in the kernel", "endpoint", uint64(ref.id), "rtcp", ref.rtcp, "source", src.String())
	if l, ok := e.media.(latcher); ok {
		if err := l.SetLatched(ref.id, ref.rtcp, src); err != nil && !errors.Is(err, dataplane.ErrNotFound) {
			e.log.Warn("latch not handed to the media engine", "endpoint", uint64(ref.id), "err", err)
		}
	}
}
