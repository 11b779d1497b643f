//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"errors"

	"github.com/cilium/ebpf"
)

const (
	streamFlagFork = 4  // STREAM_F_FORK
	relayFlagOn    = 16 // RELAY_F_ON
)

// streamEntry is what the engine has written to the stream table for one
// key: a fork of the key's direction and, for an inbound key, the
// endpoint's kernel relay. Both share one value (struct stream_value and
// its relay part) so that the ingress program finds them with one lookup,
// and every change of either is still one map update: a mute, a join, an
// unjoin or a new next hop replaces the whole value at once.
type streamEntry struct {
	fork  *rtpforkStreamValue // nil: no fork
	relay *rtpforkRelayValue  // nil: no relay
}

// putForkLocked writes k's entry with fork as its fork part (nil: none)
// and its relay part as it is.
func (e *Engine) putForkLocked(k rtpforkStreamKey, fork *rtpforkStreamValue) error {
	ent := e.entries[k]
	ent.fork = fork
	return e.writeEntryLocked(k, ent)
}

// putRelayLocked writes k's entry with relay as its relay part (nil: none)
// and its fork part as it is.
func (e *Engine) putRelayLocked(k rtpforkStreamKey, relay *rtpforkRelayValue) error {
	ent := e.entries[k]
	ent.relay = relay
	return e.writeEntryLocked(k, ent)
}

// writeEntryLocked makes k's entry in the stream table ent, with one
// update, or one delete when ent has neither part.
func (e *Engine) writeEntryLocked(k rtpforkStreamKey, ent streamEntry) error {
	if ent.fork == nil && ent.relay == nil {
		if err := e.objs.Streams.Delete(&k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
		delete(e.entries, k)
		return nil
	}
	var v rtpforkStreamValue
	if ent.fork != nil {
		f := *ent.fork
		ent.fork = &f
		v = f
		v.Flags |= streamFlagFork
	}
	v.Relay = rtpforkRelayValue{}
	if ent.relay != nil {
		r := *ent.relay
		ent.relay = &r
		v.Relay = r
		v.Relay.Flags |= relayFlagOn
	}
	if err := e.objs.Streams.Put(&k, &v); err != nil {
		return err
	}
	e.entries[k] = ent
	return nil
}
