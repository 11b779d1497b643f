package dataplane

// Path names the code that carries a relay or a fork's copies.
type Path string

const (
	// PathKernel is the eBPF programs: packets are rewritten and redirected
	// or cloned before any socket sees them.
	PathKernel Path = "kernel"
	// PathUserspace is Go: the engine's sockets receive the packets and
	// sendmmsg relays or copies them.
	PathUserspace Path = "userspace"
	// PathNone means nothing is relayed (the endpoint is not joined) or
	// copied (no fork).
	PathNone Path = "none"
)

// PathReporter is implemented by an engine that carries media on more than one
// path (the eBPF engine: in the kernel where it can, else in userspace), so
// operators can see which one each endpoint got and why. An engine that does
// not implement it relays and copies everything in userspace.
type PathReporter interface {
	// MediaPaths reports how what endpoint id receives is relayed and how
	// its forks are copied; it fails with ErrNotFound for an unknown id.
	MediaPaths(id EndpointID) (MediaPaths, error)
}

// MediaPaths are the paths of one endpoint's media.
type MediaPaths struct {
	// Relays has one entry per endpoint that sends what this endpoint
	// receives (itself for echo), in EndpointID order; empty when it is not
	// joined.
	Relays []RelayPath
	// Forks has one entry per fork of the endpoint, inbound first.
	Forks []ForkPath
}

// RelayPath is the path of one direction of a join.
type RelayPath struct {
	// To is the endpoint the media leaves from.
	To   EndpointID
	Path Path
	// Reason says why the kernel does not carry it; empty on the kernel path.
	Reason string
}

// ForkPath is the path of one fork's copies.
type ForkPath struct {
	Direction Direction
	Path      Path
	// Reason says why the kernel does not make the copies, or what they
	// wait for; empty when there is nothing to say.
	Reason string
}

// Relay sums up the relays of p: PathNone without any, PathKernel when the
// kernel carries every one, else PathUserspace with the first userspace
// relay's reason.
func (p MediaPaths) Relay() (Path, string) {
	if len(p.Relays) == 0 {
		return PathNone, ""
	}
	for _, r := range p.Relays {
		if r.Path != PathKernel {
			return r.Path, r.Reason
		}
	}
	return PathKernel, ""
}

// Fork returns the path of the fork of direction d, PathNone without one.
func (p MediaPaths) Fork(d Direction) ForkPath {
	for _, f := range p.Forks {
		if f.Direction == d {
			return f
		}
	}
	return ForkPath{Direction: d, Path: PathNone}
}
