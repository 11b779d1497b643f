//go:build linux

package userspace

import (
	"cmp"
	"fmt"
	"slices"

	"github.com/recfork/recfork/dataplane"
)

var _ dataplane.PathReporter = (*Engine)(nil)

// pathReason is why nothing of this engine is in the kernel.
const pathReason = "userspace engine"

// MediaPaths implements dataplane.PathReporter: this engine relays and copies
// everything itself, so every relay and fork is on the userspace path.
func (e *Engine) MediaPaths(id dataplane.EndpointID) (dataplane.MediaPaths, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed {
		return dataplane.MediaPaths{}, dataplane.ErrClosed
	}
	ep, ok := e.eps[id]
	if !ok {
		return dataplane.MediaPaths{}, fmt.Errorf("media paths of endpoint %d: %w", id, dataplane.ErrNotFound)
	}
	var p dataplane.MediaPaths
	// targets and forks change only under e.mu (and every worker's lock).
	for _, t := range ep.targets {
		p.Relays = append(p.Relays, dataplane.RelayPath{To: t.id, Path: dataplane.PathUserspace, Reason: pathReason})
	}
	slices.SortFunc(p.Relays, func(a, b dataplane.RelayPath) int { return cmp.Compare(a.To, b.To) })
	for i, f := range ep.forks {
		if f != nil {
			p.Forks = append(p.Forks, dataplane.ForkPath{Direction: dataplane.Direction(i + 1), Path: dataplane.PathUserspace, Reason: pathReason})
		}
	}
	return p, nil
}
