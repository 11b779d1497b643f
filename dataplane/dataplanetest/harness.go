package dataplanetest

import (
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/recfork/recfork/dataplane"
)

// Harness tells the suite how to reach one engine. The suite plays every remote
// party and the recorder with UDP sockets it gets from ListenPeer, and drives the
// engine only through the dataplane.Engine methods.
//
// Topology the suite assumes: the engine binds its endpoints on LocalIP; peer
// sockets bind on PeerIP; a datagram sent from a peer socket to an endpoint's
// local address reaches the engine, and a datagram the engine sends to a peer
// address reaches that peer socket with the engine's source address intact (no
// NAT). LocalIP and PeerIP may be equal (loopback) and must be the same family.
//
// Example, userspace engine on loopback:
//
//	dataplanetest.Run(t, dataplanetest.Harness{
//		NewEngine: func(t *testing.T) dataplane.Engine { e, _ := userspace.New(...); return e },
//		LocalIP:   netip.MustParseAddr("127.0.0.1"),
//		PeerIP:    netip.MustParseAddr("127.0.0.1"),
//	})
//
// Example, an engine in netns A with the peers in netns B behind a veth pair:
// NewEngine returns a wrapper whose OpenEndpoint runs inside A (testenv.Netns.Do),
// LocalIP/PeerIP are the veth addresses, and ListenPeer binds inside B.
type Harness struct {
	// NewEngine returns a fresh engine for one subtest. The suite calls Close
	// on it when the subtest ends (a harness may register more cleanup with
	// t.Cleanup, for example namespaces). Required.
	NewEngine func(t *testing.T) dataplane.Engine
	// LocalIP is the address the suite passes to OpenEndpoint. Required.
	LocalIP netip.Addr
	// PeerIP is where the remote parties and the recorder live: ListenPeer
	// binds on it, and the suite uses it in remote and recorder addresses.
	// Required.
	PeerIP netip.Addr
	// ListenPeer opens a UDP socket bound to PeerIP:port in the peers' place
	// (port 0 = any free port). The suite closes the socket itself; an error
	// (for example the port is taken) makes the suite try another port.
	// Nil means net.ListenUDP on PeerIP in the test's own network namespace.
	ListenPeer func(t *testing.T, port int) (*net.UDPConn, error)
	// ForeignIP is a second address on the peers' side, of the same family,
	// that the engine must treat as another host's: the guard and latch
	// policy cases send from it. Optional; without it those cases are not
	// run (Run logs which), so a harness that can give one should.
	ForeignIP netip.Addr
	// ListenForeign is ListenPeer for ForeignIP. Nil means net.ListenUDP on
	// ForeignIP in the test's own network namespace.
	ListenForeign func(t *testing.T, port int) (*net.UDPConn, error)
	// NewPolicyEngine returns a fresh engine whose Latch endpoints follow
	// policy p (dataplane.LatchPolicy). Optional; without it only the
	// default policy (LatchAddress, what NewEngine builds) is tested.
	NewPolicyEngine func(t *testing.T, p dataplane.LatchPolicy) dataplane.Engine
	// Timeout bounds every wait for a packet or a counter; exceeding it fails
	// the test. Zero means 10 seconds.
	Timeout time.Duration
}

func (h *Harness) check() error {
	switch {
	case h.NewEngine == nil:
		return errors.New("dataplanetest: Harness.NewEngine is nil")
	case !h.LocalIP.IsValid() || !h.PeerIP.IsValid():
		return errors.New("dataplanetest: Harness.LocalIP and PeerIP are required")
	case h.LocalIP.Unmap().Is4() != h.PeerIP.Unmap().Is4():
		return errors.New("dataplanetest: LocalIP and PeerIP must be the same family")
	case h.ForeignIP.IsValid() && (h.ForeignIP.Unmap().Is4() != h.PeerIP.Unmap().Is4() || h.ForeignIP == h.PeerIP):
		return errors.New("dataplanetest: ForeignIP must be another address of PeerIP's family")
	}
	return nil
}

func (h *Harness) listen(t *testing.T, port int) (*net.UDPConn, error) {
	if h.ListenPeer != nil {
		return h.ListenPeer(t, port)
	}
	network := "udp4"
	if !h.PeerIP.Unmap().Is4() {
		network = "udp6"
	}
	return net.ListenUDP(network, net.UDPAddrFromAddrPort(netip.AddrPortFrom(h.PeerIP, uint16(port))))
}

// foreign is the harness whose peers live on ForeignIP.
func (h Harness) foreign() Harness {
	h.PeerIP, h.ListenPeer = h.ForeignIP, h.ListenForeign
	return h
}

func (h *Harness) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return 10 * time.Second
}
