package perf

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/internal/testenv"
	"github.com/recfork/recfork/perf/xdpgen"
)

// TestGeneratorsReachSocketAndSink sends frames with each generator from the
// generator namespace to a UDP socket in the media namespace, echoes them to a
// callee port and a recorder port, and checks that the sink counts both. A
// kernel that refuses live-frames test runs must be named in a note and
// leave the AF_XDP generator in charge, which then carries the check.
func TestGeneratorsReachSocketAndSink(t *testing.T) {
	testenv.Privileged(t)
	for _, gen := range []string{"xdp", "xsk", "packet", "sendmmsg"} {
		t.Run(gen, func(t *testing.T) {
			p, err := NewPair()
			if err != nil {
				t.Fatal(err)
			}
			defer p.Close()
			objs, err := xdpgen.Load(CalleeBase, CalleeBase+2*MaxStreams, RecBase, RecBase+2*MaxStreams)
			if err != nil {
				t.Fatal(err)
			}
			defer objs.Close()
			var sink *xdpgen.Sink
			if err := p.G.Do(func() (err error) { sink, err = objs.AttachSink(p.GIndex); return err }); err != nil {
				t.Fatal(err)
			}
			defer sink.Close()
			var conn *net.UDPConn
			if err := p.M.Do(func() (err error) {
				conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: p.MAddr, Port: 20000})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			s, name, notes, err := openGenerator(objs, p, gen, callerPorts(3, true), []uint16{20000, 20000, 20000})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			switch {
			case name == Generators[gen] && len(notes) == 0:
			case gen == "xdp" && name == Generators["xsk"] && len(notes) == 1 && strings.Contains(notes[0], "live-frames generator unavailable ("):
				t.Logf("this kernel refuses live frames; checking the generator that replaces them: %s", notes[0])
			default:
				t.Fatalf("asked for %s, got %s with notes %q", gen, name, notes)
			}
			// The probe send of live frames already sent 16.
			if name == Generators["xdp"] {
				for i := 0; i < 16; i++ {
					_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
					if _, _, err := conn.ReadFromUDP(make([]byte, 2048)); err != nil {
						t.Fatalf("probe frame %d: %v", i, err)
					}
				}
			}
			const n = 30
			if err := p.G.Do(func() error { return s.Send(n) }); err != nil {
				t.Fatal(err)
			}
			buf := make([]byte, 2048)
			_, callee, rec := StreamPorts(0)
			for i := 0; i < n; i++ {
				_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
				k, from, err := conn.ReadFromUDP(buf)
				if err != nil {
					out, _ := p.M.Command("cat", "/proc/net/snmp").CombinedOutput()
					t.Fatalf("packet %d: %v\n%s", i, err, out)
				}
				if k != xdpgen.PayloadLen || from.Port < CallerBase || from.Port > CallerBase+4 {
					t.Fatalf("packet %d: %d bytes from %v", i, k, from)
				}
				for _, port := range []uint16{callee, rec} {
					if _, err := conn.WriteToUDP(buf[:k], &net.UDPAddr{IP: p.GAddr, Port: int(port)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			for {
				c, r, err := sink.Counts()
				if err != nil {
					t.Fatal(err)
				}
				if c == n && r == n {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("sink counted %d callee and %d recorder packets, want %d each", c, r, n)
				}
				time.Sleep(10 * time.Millisecond)
			}
		})
	}
}
