//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/recfork/recfork/dataplane"
)

var _ dataplane.PathReporter = (*Engine)(nil)

// MediaPaths implements dataplane.PathReporter: each direction of a join is
// on the kernel path while its stream entry has a relay part, else Media
// relays it for the reason the last relay sync found; each fork is a
// stream-table entry's fork part unless AddFork handed it to Media.
func (e *Engine) MediaPaths(id dataplane.EndpointID) (dataplane.MediaPaths, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return dataplane.MediaPaths{}, dataplane.ErrClosed
	}
	if _, ok := e.endpoints[id]; !ok {
		return dataplane.MediaPaths{}, fmt.Errorf("media paths of endpoint %d: %w", id, dataplane.ErrNotFound)
	}
	var p dataplane.MediaPaths
	for to := range e.out[id] {
		rid := relayID{id, to}
		r := dataplane.RelayPath{To: to, Path: dataplane.PathKernel}
		if _, ok := e.relays[rid]; !ok {
			r.Path = dataplane.PathUserspace
			r.Reason = operatorReason(e.relayWhy[rid])
			if r.Reason == "" {
				// The last sync found nothing against the kernel but
				// did not move a relay Media had already started
				// (syncRelaysLocked), or the table refused the entry.
				r.Reason = "started in userspace; moves to the kernel at the next join or remote change"
			}
		}
		p.Relays = append(p.Relays, r)
	}
	slices.SortFunc(p.Relays, func(a, b dataplane.RelayPath) int { return cmp.Compare(a.To, b.To) })
	for _, dir := range []dataplane.Direction{dataplane.Inbound, dataplane.Outbound} {
		f := e.forks[forkID{id, dir}]
		if f == nil {
			continue
		}
		fp := dataplane.ForkPath{Direction: dir, Path: dataplane.PathKernel}
		switch {
		case f.media:
			fp.Path, fp.Reason = dataplane.PathUserspace, operatorReason(f.why)
		case f.val.Flags&flagResolved == 0:
			fp.Reason = "next hop to the recorder unresolved; copies start when it resolves"
		}
		p.Forks = append(p.Forks, fp)
	}
	return p, nil
}

// operatorReason drops the sentinel's wording from a reason: the operator
// reads what stopped the kernel, not that it was stopped.
func operatorReason(why string) string {
	return strings.TrimSuffix(why, ": "+errKernelCannot.Error())
}
