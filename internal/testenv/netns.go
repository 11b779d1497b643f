package testenv

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

var seq atomic.Uint32

// UniqueName returns a short name unique to this process and call, usable as a
// namespace or interface name (at most 15 bytes).
func UniqueName(prefix string) string {
	if len(prefix) > 4 {
		prefix = prefix[:4]
	}
	return fmt.Sprintf("%s%d_%d", prefix, os.Getpid()%100000, seq.Add(1))
}

// Netns is a throw-away network namespace, deleted when the test ends.
type Netns struct {
	Name string
}

// NewNetns creates a network namespace with its loopback up and registers its
// deletion (and everything in it) with tb.Cleanup. It gates on Privileged.
func NewNetns(tb testing.TB) *Netns {
	tb.Helper()
	Privileged(tb)
	name := UniqueName("rf")
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		Unavailable(tb, fmt.Sprintf("ip netns add %s: %v: %s", name, err, bytes.TrimSpace(out)))
	}
	ns := &Netns{Name: name}
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns delete %s: %v: %s", name, err, bytes.TrimSpace(out))
		}
	})
	ns.MustIP(tb, "link", "set", "lo", "up")
	return ns
}

// IP runs `ip -n NAME args...` and returns its combined output.
func (n *Netns) IP(args ...string) ([]byte, error) {
	out, err := exec.Command("ip", append([]string{"-n", n.Name}, args...)...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("ip -n %s %v: %w: %s", n.Name, args, err, bytes.TrimSpace(out))
	}
	return out, nil
}

// MustIP is IP that fails the test on error.
func (n *Netns) MustIP(tb testing.TB, args ...string) []byte {
	tb.Helper()
	out, err := n.IP(args...)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// Exec runs a command inside the namespace (`ip netns exec`).
func (n *Netns) Exec(name string, args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Do runs fn on a goroutine whose OS thread is switched into the namespace, and
// returns fn's error. Sockets and BPF links created inside fn stay in the
// namespace after Do returns; goroutines started by fn do not run in it.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it ends with the goroutine rather than
		// return to the scheduler's pool inside a foreign namespace.
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

// MustDo is Do that fails the test on error.
func (n *Netns) MustDo(tb testing.TB, fn func() error) {
	tb.Helper()
	if err := n.Do(fn); err != nil {
		tb.Fatal(err)
	}
}

// Veth is one veth pair between two namespaces, with an address on each end.
type Veth struct {
	A, B         *Netns
	AName, BName string
	// AAddr and BAddr are the prefixes assigned, e.g. "10.1.2.1/24".
	AAddr, BAddr string
}

// NewVeth creates a veth pair with one end in a (named AName) and the other in b,
// assigns the addresses (CIDR form, IPv4 or IPv6; "" for none) and brings both
// ends up. The pair disappears with its namespaces.
func NewVeth(tb testing.TB, a, b *Netns, aAddr, bAddr string) *Veth {
	tb.Helper()
	v := &Veth{A: a, B: b, AName: UniqueName("va"), BName: UniqueName("vb"), AAddr: aAddr, BAddr: bAddr}
	if out, err := exec.Command("ip", "link", "add", v.AName, "netns", a.Name, "type", "veth",
		"peer", "name", v.BName, "netns", b.Name).CombinedOutput(); err != nil {
		tb.Fatalf("create veth %s/%s: %v: %s", v.AName, v.BName, err, bytes.TrimSpace(out))
	}
	for _, end := range []struct {
		ns         *Netns
		name, addr string
	}{{a, v.AName, aAddr}, {b, v.BName, bAddr}} {
		if end.addr != "" {
			end.ns.MustIP(tb, "addr", "add", end.addr, "dev", end.name, "nodad")
		}
		end.ns.MustIP(tb, "link", "set", end.name, "up")
	}
	return v
}
