package controlplane

import (
	"strconv"

	"github.com/recfork/recfork/dataplane"
)

// MediaPathInfo says which path carries a connection's media, from the data
// plane's dataplane.PathReporter: the relay of what the connection receives
// toward the connections it is joined to, and the copies of its recorded
// directions. Paths are "kernel" (the eBPF programs), "userspace" (the
// engine's sockets in Go) or "none".
type MediaPathInfo struct {
	// Relay sums up Relays: none when not joined, kernel when the kernel
	// carries every relay, else userspace with RelayReason.
	Relay       string          `json:"relay"`
	RelayReason string          `json:"relay_reason,omitempty"`
	Relays      []RelayPathInfo `json:"relays,omitempty"`
	Copies      []CopyPathInfo  `json:"copies,omitempty"`
}

// RelayPathInfo is one relay: what the connection receives, sent out of To
// (a connection ID, "dtmf-tap:ID" for a connection's RFC 4733 tap, or
// "endpoint:N"; never with spaces, so tables stay columns).
type RelayPathInfo struct {
	To     string `json:"to"`
	Path   string `json:"path"`
	Reason string `json:"reason,omitempty"`
}

// CopyPathInfo is the path of one recorded direction's copies.
type CopyPathInfo struct {
	Direction string `json:"direction"`
	Path      string `json:"path"`
	Reason    string `json:"reason,omitempty"`
}

// endpointNames names the media endpoints of cs for MediaPathInfo.
func endpointNames(cs []*Connection) map[dataplane.EndpointID]string {
	names := make(map[dataplane.EndpointID]string, len(cs))
	for _, c := range cs {
		c.mu.Lock()
		if c.ep != 0 {
			names[c.ep] = c.ID
		}
		if c.tapEP != 0 {
			names[c.tapEP] = "dtmf-tap:" + c.ID
		}
		c.mu.Unlock()
	}
	return names
}

// mediaPath asks the engine for the paths of endpoint ep; nil when the
// engine cannot tell or the endpoint is gone.
func (d *Daemon) mediaPath(ep dataplane.EndpointID, names map[dataplane.EndpointID]string) *MediaPathInfo {
	pr, ok := d.engine.(dataplane.PathReporter)
	if !ok || ep == 0 {
		return nil
	}
	p, err := pr.MediaPaths(ep)
	if err != nil {
		return nil
	}
	relay, why := p.Relay()
	mi := &MediaPathInfo{Relay: string(relay), RelayReason: why}
	for _, r := range p.Relays {
		to, ok := names[r.To]
		if !ok {
			to = "endpoint:" + strconv.FormatUint(uint64(r.To), 10)
		}
		mi.Relays = append(mi.Relays, RelayPathInfo{To: to, Path: string(r.Path), Reason: r.Reason})
	}
	for _, f := range p.Forks {
		mi.Copies = append(mi.Copies, CopyPathInfo{Direction: f.Direction.String(), Path: string(f.Path), Reason: f.Reason})
	}
	return mi
}

// forkPath is the path of one fork's copies for StreamInfo.
func (d *Daemon) forkPath(ep dataplane.EndpointID, dir dataplane.Direction) (path, reason string) {
	pr, ok := d.engine.(dataplane.PathReporter)
	if !ok || ep == 0 {
		return "", ""
	}
	p, err := pr.MediaPaths(ep)
	if err != nil {
		return "", ""
	}
	f := p.Fork(dir)
	return string(f.Path), f.Reason
}
