package userspace

import (
	"fmt"
	"log/slog"
	"runtime"

	"github.com/recfork/recfork/dataplane"
)

// Config configures an Engine.
type Config struct {
	// PortRange is where endpoints take their RTP/RTCP port pairs; zero means
	// dataplane.DefaultPortRange.
	PortRange dataplane.PortRange
	// Logger receives start-up, shutdown and error lines, never one per
	// packet; nil discards them.
	Logger *slog.Logger
	// Workers is the number of worker goroutines; zero means GOMAXPROCS.
	Workers int
	// Batch is the number of datagrams per recvmmsg and sendmmsg call; zero
	// means 64.
	Batch int
	// SocketBuffer sets SO_RCVBUF and SO_SNDBUF of every media socket, in
	// bytes; zero keeps the kernel default.
	SocketBuffer int
	// DisableGSO sends every datagram as its own message. By default (false)
	// consecutive equal-size copies from one socket to one recorder leave as
	// one UDP GSO message (UDP_SEGMENT, Linux 4.18+), which the kernel splits
	// into the same datagrams after traversing the stack once; the engine
	// falls back by itself where the kernel or a route refuses it.
	DisableGSO bool
	// GSORelays merges relayed datagrams (to an endpoint's remote) the same
	// way. Zero (false) sends relays one message each. The eBPF egress fork
	// copies the datagrams of a GSO packet one by one, so both engines run
	// with it set (controlplane.NewEngine sets it in every mode).
	GSORelays bool
	// LatchPolicy is which sources endpoints opened with Latch may latch to;
	// zero is dataplane.LatchAddress.
	LatchPolicy dataplane.LatchPolicy
}

// maxDatagram is the largest datagram relayed; longer ones are counted as
// dropped. RTP over UDP stays under the path MTU (RFC 8085 §3.2).
const maxDatagram = 2048

func (c Config) withDefaults() (Config, error) {
	if c.PortRange == (dataplane.PortRange{}) {
		c.PortRange = dataplane.DefaultPortRange
	}
	if err := c.PortRange.Validate(); err != nil {
		return c, fmt.Errorf("userspace config: %w", err)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Workers < 0 || c.Batch < 0 || c.SocketBuffer < 0 {
		return c, fmt.Errorf("userspace config: negative workers, batch or socket buffer: %w", dataplane.ErrInvalid)
	}
	if !c.LatchPolicy.Valid() {
		return c, fmt.Errorf("userspace config: %s: %w", c.LatchPolicy, dataplane.ErrInvalid)
	}
	if c.Workers == 0 {
		c.Workers = runtime.GOMAXPROCS(0)
	}
	if c.Batch == 0 {
		c.Batch = 64
	}
	if c.Batch > 1024 {
		return c, fmt.Errorf("userspace config: batch %d above 1024: %w", c.Batch, dataplane.ErrInvalid)
	}
	return c, nil
}
