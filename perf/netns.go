package perf

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

var nsSeq atomic.Uint32

// uniqueName returns a name unique to this process, at most 15 bytes (an
// interface name's limit).
func uniqueName(prefix string) string {
	return fmt.Sprintf("%s%d_%d", prefix, os.Getpid()%100000, nsSeq.Add(1))
}

// Netns is a throw-away network namespace of the suite. The suite keeps all of
// its traffic inside such namespaces (or on loopback).
type Netns struct {
	Name string
}

// NewNetns creates a namespace with loopback up. Close deletes it.
func NewNetns() (*Netns, error) {
	n := &Netns{Name: uniqueName("rfp")}
	if out, err := exec.Command("ip", "netns", "add", n.Name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %w: %s", n.Name, err, bytes.TrimSpace(out))
	}
	if _, err := n.IP("link", "set", "lo", "up"); err != nil {
		n.Close()
		return nil, err
	}
	return n, nil
}

// Close deletes the namespace and everything in it.
func (n *Netns) Close() error {
	if out, err := exec.Command("ip", "netns", "delete", n.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns delete %s: %w: %s", n.Name, err, bytes.TrimSpace(out))
	}
	return nil
}

// IP runs `ip -n NAME args...`.
func (n *Netns) IP(args ...string) ([]byte, error) {
	out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ip -n %s %v: %w: %s", n.Name, args, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// Command returns a command that runs inside the namespace.
func (n *Netns) Command(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Do runs fn on an OS thread switched into the namespace. Sockets, BPF links
// and interfaces looked up inside fn belong to the namespace; goroutines fn
// starts do not run in it.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked, so it dies with the goroutine instead
		// of going back to the scheduler inside a foreign namespace.
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + n.Name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", n.Name, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Pair is two namespaces joined by a veth pair: G holds the load generator,
// the callees and the recorder, M holds the media engine under test.
type Pair struct {
	G, M         *Netns
	GIf, MIf     string
	GAddr, MAddr net.IP
	GMAC, MMAC   net.HardwareAddr
	GIndex       int
	MIndex       int
}

// NewPair creates both namespaces and the veth pair with 10.77.0.1/24 on G's
// end and 10.77.0.2/24 on M's end. M's end gets GRO so that frames an XDP
// program transmits into the pair are accepted (veth drops XDP frames to a
// peer without XDP or GRO).
func NewPair() (p *Pair, err error) {
	p = &Pair{GIf: uniqueName("vg"), MIf: uniqueName("vm"),
		GAddr: net.IPv4(10, 77, 0, 1).To4(), MAddr: net.IPv4(10, 77, 0, 2).To4()}
	if p.G, err = NewNetns(); err != nil {
		return nil, err
	}
	if p.M, err = NewNetns(); err != nil {
		p.G.Close()
		return nil, err
	}
	defer func() {
		if err != nil {
			p.Close()
		}
	}()
	// One queue per CPU on both ends: an XDP frame goes to the peer's ring of
	// the sending CPU, and one shared 256-frame ring overflows when two CPUs
	// send at once.
	q := strconv.Itoa(runtime.NumCPU())
	if out, err := exec.Command("ip", "link", "add", p.GIf, "netns", p.G.Name, "numtxqueues", q, "numrxqueues", q, "type", "veth",
		"peer", "name", p.MIf, "netns", p.M.Name, "numtxqueues", q, "numrxqueues", q).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("create veth: %w: %s", err, bytes.TrimSpace(out))
	}
	for _, c := range [][]string{
		{p.G.Name, "addr", "add", "10.77.0.1/24", "dev", p.GIf},
		{p.M.Name, "addr", "add", "10.77.0.2/24", "dev", p.MIf},
		{p.G.Name, "link", "set", p.GIf, "up"},
		{p.M.Name, "link", "set", p.MIf, "up"},
	} {
		if out, err := exec.Command("ip", append([]string{"-n"}, c...)...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("ip -n %v: %w: %s", c, err, bytes.TrimSpace(out))
		}
	}
	if err := p.M.Do(func() error { return setGRO(p.MIf) }); err != nil {
		return nil, err
	}
	if err := p.G.Do(func() error { return setGRO(p.GIf) }); err != nil {
		return nil, err
	}
	if err := p.G.Do(func() error {
		ifi, err := net.InterfaceByName(p.GIf)
		if err != nil {
			return err
		}
		p.GMAC, p.GIndex = ifi.HardwareAddr, ifi.Index
		return nil
	}); err != nil {
		return nil, err
	}
	if err := p.M.Do(func() error {
		ifi, err := net.InterfaceByName(p.MIf)
		if err != nil {
			return err
		}
		p.MMAC, p.MIndex = ifi.HardwareAddr, ifi.Index
		return nil
	}); err != nil {
		return nil, err
	}
	// Static neighbours both ways: no ARP in the measured path.
	if _, err := p.G.IP("neigh", "replace", "10.77.0.2", "lladdr", p.MMAC.String(), "dev", p.GIf, "nud", "permanent"); err != nil {
		return nil, err
	}
	if _, err := p.M.IP("neigh", "replace", "10.77.0.1", "lladdr", p.GMAC.String(), "dev", p.MIf, "nud", "permanent"); err != nil {
		return nil, err
	}
	return p, nil
}

// Close deletes both namespaces (the veth pair goes with them).
func (p *Pair) Close() error {
	var first error
	for _, n := range []*Netns{p.G, p.M} {
		if n == nil {
			continue
		}
		if err := n.Close(); err != nil && first == nil {
			first = err
		}
	}
	return first
}
