//go:build linux

package userspace

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/net/ipv4"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/dataplanetest"
)

// BenchmarkRelayCopy measures the engine relaying every packet of N streams to
// a joined endpoint and, with fork, copying it to a recorder, on loopback.
// Metrics:
//
//	pkts/s            ingress packets handled per second (each relayed, and copied with fork)
//	cpu-ns/pkt        CPU of the engine's worker threads per ingress packet; on
//	                  loopback it includes delivering the relay and the copy into
//	                  the receivers' sockets (that work lands in the sender's time)
//	proc-cpu-ns/pkt   getrusage of the whole process per packet: engine, the
//	                  sending and receiving test peers and the Go runtime
//
// The extra CPU per copied packet is cpu-ns/pkt of fork minus that of relay.
//
// burst is how many packets each stream sends back to back: 16 lets the
// engine batch and use UDP GSO per stream; 1 over many streams is closer to
// real calls (one 20 ms packet per stream at a time), where batches hold one
// packet per socket.
func BenchmarkRelayCopy(b *testing.B) {
	for _, sc := range []struct {
		streams, burst int
		gso            string // off, copies (the default) or all (GSORelays)
	}{
		{1, 16, "all"}, {64, 16, "all"}, {64, 16, "copies"}, {64, 16, "off"}, {256, 1, "copies"},
	} {
		for _, fork := range []bool{false, true} {
			what := "relay"
			if fork {
				what = "relay+fork"
			}
			name := fmt.Sprintf("streams=%d/burst=%d/gso=%s/%s", sc.streams, sc.burst, sc.gso, what)
			b.Run(name, func(b *testing.B) { benchRelayCopy(b, sc.streams, sc.burst, sc.gso, fork) })
		}
	}
}

func benchRelayCopy(b *testing.B, streams, burst int, gso string, fork bool) {
	e, err := New(Config{PortRange: testRange, SocketBuffer: 4 << 20, DisableGSO: gso == "off", GSORelays: gso == "all"})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close()
	sink := listenBench(b)
	rec := listenBench(b)
	sinkAddr := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	recAddr := rec.LocalAddr().(*net.UDPAddr).AddrPort()
	senders := make([]*net.UDPConn, streams)
	dsts := make([]*net.UDPAddr, streams)
	for i := range streams {
		senders[i] = listenBench(b)
		from := senders[i].LocalAddr().(*net.UDPAddr).AddrPort()
		a, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: from})
		if err != nil {
			b.Fatal(err)
		}
		bb, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4, Remote: sinkAddr})
		if err != nil {
			b.Fatal(err)
		}
		if err := e.Join(a.ID, bb.ID, dataplane.Full); err != nil {
			b.Fatal(err)
		}
		if fork {
			src, err := e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo4})
			if err != nil {
				b.Fatal(err)
			}
			if err := e.AddFork(a.ID, dataplane.Inbound, dataplane.ForkConfig{Recorder: recAddr, Source: src.ID}); err != nil {
				b.Fatal(err)
			}
		}
		dsts[i] = net.UDPAddrFromAddrPort(a.Local)
	}

	// Receivers count what arrives and wake the sender, which keeps at most
	// window packets in flight so no socket buffer overflows.
	var relays, copies atomic.Int64
	progress := make(chan struct{}, 1)
	stop := make(chan struct{})
	done := make(chan struct{}, 2)
	drain := func(c *net.UDPConn, n *atomic.Int64) {
		defer func() { done <- struct{}{} }()
		pc := ipv4.NewPacketConn(c)
		msgs := make([]ipv4.Message, 64)
		for i := range msgs {
			msgs[i].Buffers = [][]byte{make([]byte, 1500)}
		}
		for {
			k, err := pc.ReadBatch(msgs, 0)
			if err != nil {
				return // closed at the end
			}
			n.Add(int64(k))
			select {
			case progress <- struct{}{}:
			default:
			}
		}
	}
	go drain(sink, &relays)
	go drain(rec, &copies)
	defer func() {
		close(stop)
		sink.Close()
		rec.Close()
		<-done
		<-done
	}()

	const window = 512
	pkt := dataplanetest.RTPPacket(0xbe, 1)
	out := make([][]ipv4.Message, streams)
	for i := range streams {
		out[i] = make([]ipv4.Message, burst)
		for j := range out[i] {
			out[i][j] = ipv4.Message{Buffers: [][]byte{pkt}, Addr: dsts[i]}
		}
	}
	pcs := make([]*ipv4.PacketConn, streams)
	for i := range streams {
		pcs[i] = ipv4.NewPacketConn(senders[i])
	}
	tids := e.workerTIDs()

	b.ResetTimer()
	start := time.Now()
	cpu0, proc0 := threadsCPU(b, tids), procCPU()
	sent := 0
	for i := 0; sent < b.N; i = (i + 1) % streams {
		for int64(sent)-relays.Load() > window {
			select {
			case <-progress:
			case <-time.After(5 * time.Second):
				b.Fatalf("stalled: sent %d, relayed %d, copied %d, send errors %d", sent, relays.Load(), copies.Load(), e.SendErrors())
			}
		}
		k := min(burst, b.N-sent)
		n, err := pcs[i].WriteBatch(out[i][:k], 0)
		if err != nil {
			b.Fatal(err)
		}
		sent += n
	}
	for relays.Load() < int64(b.N) || (fork && copies.Load() < int64(b.N)) {
		select {
		case <-progress:
		case <-time.After(5 * time.Second):
			b.Fatalf("lost packets: sent %d, relayed %d, copied %d, send errors %d", sent, relays.Load(), copies.Load(), e.SendErrors())
		}
	}
	elapsed := time.Since(start)
	cpu, proc := threadsCPU(b, tids)-cpu0, procCPU()-proc0
	b.StopTimer()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "pkts/s")
	b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/pkt")
	b.ReportMetric(float64(proc.Nanoseconds())/float64(b.N), "proc-cpu-ns/pkt")
}

func listenBench(b *testing.B) *net.UDPConn {
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	_ = c.SetReadBuffer(8 << 20)
	_ = c.SetWriteBuffer(8 << 20)
	b.Cleanup(func() { c.Close() })
	return c
}

// workerTIDs waits until every worker has reported its thread.
func (e *Engine) workerTIDs() []int64 {
	var tids []int64
	for _, w := range e.workers {
		for w.tid.Load() == 0 {
			time.Sleep(time.Millisecond)
		}
		tids = append(tids, w.tid.Load())
	}
	return tids
}

// threadsCPU sums the on-CPU time of the given threads (schedstat, ns).
func threadsCPU(b *testing.B, tids []int64) time.Duration {
	var total time.Duration
	for _, tid := range tids {
		raw, err := os.ReadFile(fmt.Sprintf("/proc/self/task/%d/schedstat", tid))
		if err != nil {
			b.Fatalf("read schedstat of worker thread %d: %v", tid, err)
		}
		f := strings.Fields(string(raw))
		ns, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			b.Fatal(err)
		}
		total += time.Duration(ns)
	}
	return total
}

func procCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
