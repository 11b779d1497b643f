//go:build linux && (386 || amd64 || arm || arm64 || loong64 || mips64le || mipsle || ppc64le || riscv64)

package ebpf

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/recfork/recfork/dataplane"
)

// TestMediaPaths: MediaPaths tells, per endpoint, the path each relay and
// fork took and why not the kernel, in the same terms as the kernel relays:
// a join of two endpoints with signalled remotes on the media interface is
// kernel both ways; an endpoint relaying to two endpoints, a fork to a
// recorder on this host and a relay that depends on such a fork are
// userspace with their reasons; an endpoint that is not joined relays
// nothing; after Unjoin the reasons are forgotten.
func TestMediaPaths(t *testing.T) {
	tp := newTopology(t, families[0], viaSame)
	e := newEngine(t, tp.eng, tp.ifaces)
	pa, pb, pc := listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP), listenPair(t, tp.remote, tp.remoteIP)
	rec := listenPair(t, tp.rec, tp.recIP)
	a := openEndpoint(t, tp.eng, e, tp.engIP, pa.addr)
	b := openEndpoint(t, tp.eng, e, tp.engIP, pb.addr)
	c := openEndpoint(t, tp.eng, e, tp.engIP, pc.addr)
	src := openEndpoint(t, tp.eng, e, tp.engIP, netip.AddrPort{})
	do := func(fn func() error) { t.Helper(); tp.eng.MustDo(t, fn) }

	type relay struct {
		to     dataplane.EndpointID
		path   dataplane.Path
		reason string // a part of the reason; "" wants none
	}
	type fork struct {
		dir    dataplane.Direction
		path   dataplane.Path
		reason string
	}
	check := func(step string, id dataplane.EndpointID, relays []relay, forks []fork) {
		t.Helper()
		p, err := e.MediaPaths(id)
		if err != nil {
			t.Fatalf("%s: MediaPaths(%d): %v", step, id, err)
		}
		if len(p.Relays) != len(relays) || len(p.Forks) != len(forks) {
			t.Fatalf("%s: endpoint %d paths %+v, want relays %+v forks %+v", step, id, p, relays, forks)
		}
		for i, w := range relays {
			g := p.Relays[i]
			if g.To != w.to || g.Path != w.path || (w.reason == "") != (g.Reason == "") || !strings.Contains(g.Reason, w.reason) {
				t.Fatalf("%s: endpoint %d relay %d: %+v, want %+v", step, id, i, g, w)
			}
		}
		for i, w := range forks {
			g := p.Forks[i]
			if g.Direction != w.dir || g.Path != w.path || (w.reason == "") != (g.Reason == "") || !strings.Contains(g.Reason, w.reason) {
				t.Fatalf("%s: endpoint %d fork %d: %+v, want %+v", step, id, i, g, w)
			}
		}
	}
	kernel, user := dataplane.PathKernel, dataplane.PathUserspace

	do(func() error {
		if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: rec.addr, Source: src.ID}); err != nil {
			return err
		}
		return e.Join(a.ID, b.ID, dataplane.Full)
	})
	check("full join", a.ID, []relay{{b.ID, kernel, ""}}, []fork{{dataplane.Inbound, kernel, ""}})
	check("full join", b.ID, []relay{{a.ID, kernel, ""}}, nil)
	check("full join", c.ID, nil, nil)
	if p, _ := e.MediaPaths(c.ID); p.Fork(dataplane.Outbound).Path != dataplane.PathNone {
		t.Fatalf("an endpoint without forks: %+v", p.Fork(dataplane.Outbound))
	}
	if r, why := (dataplane.MediaPaths{}).Relay(); r != dataplane.PathNone || why != "" {
		t.Fatalf("no relays sum up as %s %q", r, why)
	}

	// A second listener of a's media: the kernel relays to one endpoint only.
	do(func() error { return e.Join(a.ID, c.ID, dataplane.Half) })
	check("a to two endpoints", a.ID, []relay{{b.ID, user, "relays to 2 endpoints"}, {c.ID, user, "relays to 2 endpoints"}},
		[]fork{{dataplane.Inbound, kernel, ""}})
	check("a to two endpoints", b.ID, []relay{{a.ID, kernel, ""}}, nil)
	if p, _ := e.MediaPaths(a.ID); func() bool { r, why := p.Relay(); return r != user || !strings.Contains(why, "2 endpoints") }() {
		t.Fatalf("summary of a's relays: %+v", p)
	}
	if p, _ := e.MediaPaths(a.ID); strings.Contains(p.Relays[0].Reason, errKernelCannot.Error()) {
		t.Fatalf("reason keeps the sentinel's text: %q", p.Relays[0].Reason)
	}
	do(func() error { return e.Unjoin(a.ID, c.ID) })
	check("back to one", a.ID, []relay{{b.ID, kernel, ""}}, []fork{{dataplane.Inbound, kernel, ""}})

	// A recorder on this host cannot get the kernel's clones; b's inbound
	// fork is then Media's, and so must be the relay of what b receives.
	local := netip.AddrPortFrom(tp.engIP, 40000)
	do(func() error {
		return e.AddFork(b.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: local, Source: src.ID})
	})
	check("local recorder", b.ID, []relay{{a.ID, user, "inbound fork copied in userspace"}},
		[]fork{{dataplane.Inbound, user, "on this host"}})
	check("local recorder", a.ID, []relay{{b.ID, kernel, ""}}, []fork{{dataplane.Inbound, kernel, ""}})

	do(func() error { return e.Unjoin(a.ID, b.ID) })
	check("unjoined", a.ID, nil, []fork{{dataplane.Inbound, kernel, ""}})
	e.mu.Lock()
	left := len(e.relayWhy) + len(e.relayLogged)
	e.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d relay reasons left after every Unjoin", left)
	}
	if _, err := e.MediaPaths(9999); !errors.Is(err, dataplane.ErrNotFound) {
		t.Fatalf("MediaPaths of an unknown endpoint: %v", err)
	}
}
