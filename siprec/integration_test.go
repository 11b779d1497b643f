package siprec

import (
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/userspace"
	"github.com/recfork/recfork/siprec/srs"
)

// rtpPacket builds a PCMU packet of 160 samples, all the byte fill.
func rtpPacket(ssrc uint32, seq uint16, ts uint32, fill byte) []byte {
	b := make([]byte, 12+160)
	b[0] = 0x80
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], ts)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	for i := 12; i < len(b); i++ {
		b[i] = fill
	}
	return b
}

type rtpSource struct {
	conn *net.UDPConn
	to   netip.AddrPort
	ssrc uint32
	seq  uint16
	ts   uint32
}

// send sends n consecutive packets.
func (r *rtpSource) send(t *testing.T, n int, fill byte) {
	t.Helper()
	for range n {
		if _, err := r.conn.WriteToUDPAddrPort(rtpPacket(r.ssrc, r.seq, r.ts, fill), r.to); err != nil {
			t.Fatal(err)
		}
		r.seq++
		r.ts += 160
	}
}

// relayed reads n datagrams from c.
func relayed(t *testing.T, c *net.UDPConn, n int) {
	t.Helper()
	buf := make([]byte, 2048)
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := c.Read(buf); err != nil {
			t.Fatalf("relayed packet %d of %d: %v", i+1, n, err)
		}
	}
}

func udpOnLoopback(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// wavSamples reads the 16-bit samples of a WAV file's data chunk.
func wavSamples(t *testing.T, path string) []int16 {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	for off := 12; off+8 <= len(b); {
		id, size := string(b[off:off+4]), int(binary.LittleEndian.Uint32(b[off+4:]))
		off += 8
		if id == "data" {
			if off+size > len(b) {
				t.Fatalf("%s: data chunk of %d bytes, file %d", path, size, len(b))
			}
			out := make([]int16, size/2)
			for i := range out {
				out[i] = int16(binary.LittleEndian.Uint16(b[off+2*i:]))
			}
			return out
		}
		off += size + size%2
	}
	t.Fatalf("%s: no data chunk", path)
	return nil
}

// TestRecordedAudio is the whole path on loopback: the real userspace engine
// relays a call between two legs, the client records the first leg to the
// built-in SRS, each direction's audio lands in its own file, and a mute
// leaves silence for its window and nothing else.
func TestRecordedAudio(t *testing.T) {
	eng, err := userspace.New(userspace.Config{PortRange: dataplane.PortRange{Min: 31000, Max: 31999}, Workers: 1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close() })
	s := builtinSRS(t)

	remote, other := udpOnLoopback(t), udpOnLoopback(t)
	callEP, err := eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo, Remote: addrOf(remote)})
	if err != nil {
		t.Fatal(err)
	}
	otherEP, err := eng.OpenEndpoint(dataplane.EndpointConfig{LocalIP: lo, Remote: addrOf(other)})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Join(callEP.ID, otherEP.ID, dataplane.Full); err != nil {
		t.Fatal(err)
	}

	events := make(chan Event, 4)
	c, err := New(Config{Engine: eng, MediaIP: lo, OnEvent: func(e Event) { events <- e }, Logger: discardLogger()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	leg := testLeg()
	leg.Endpoint = callEP.ID
	leg.Codecs = []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}}
	uri := "sip:srs@" + s.Addr().String()
	record := func(in, out string) Event {
		t.Helper()
		if err := c.Record(leg, Request{Type: "siprec", URI: uri, Inbound: in, Outbound: out}); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			if e.Name != EventUpdate {
				t.Fatalf("event %+v", e)
			}
			return e
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
		return Event{}
	}
	streamsHave := func(what string, in, out uint64) srs.SessionInfo {
		t.Helper()
		ss := waitSRS(t, s, what, func(ss []srs.SessionInfo) bool {
			return len(ss) == 1 && len(ss[0].Streams) == 2 && ss[0].Streams[0].Packets >= in && ss[0].Streams[1].Packets >= out
		})
		return ss[0]
	}

	record("active", "active")
	// Inbound: the remote party talks to the platform (into callEP); outbound:
	// the other leg's audio leaves callEP towards the remote party.
	inSrc := &rtpSource{conn: remote, to: callEP.Local, ssrc: 0x1111, seq: 100, ts: 8000}
	outSrc := &rtpSource{conn: other, to: otherEP.Local, ssrc: 0x2222, seq: 500, ts: 16000}
	const n = 25
	inSrc.send(t, n, 0x11)
	outSrc.send(t, n, 0x22)
	si := streamsHave("both directions' audio", n, n)
	if si.Streams[0].SSRC != 0x1111 || si.Streams[1].SSRC != 0x2222 {
		t.Fatalf("streams carry ssrc %#x and %#x, want inbound 0x1111 on label 1 and outbound 0x2222 on label 2",
			si.Streams[0].SSRC, si.Streams[1].SSRC)
	}

	relayed(t, other, n) // the first inbound packets, relayed to the other leg

	// Mute inbound. The muted packets are relayed to the other leg as
	// before: once they are there, the engine has decided not to copy them.
	record("inactive", "")
	inSrc.send(t, n, 0x33)
	relayed(t, other, n)
	fs, err := eng.ForkStats(callEP.ID, dataplane.Inbound)
	if err != nil || fs.MutedPackets != n || fs.CopiedPackets != n {
		t.Fatalf("inbound fork stats %+v %v, want %d copied and %d muted", fs, err, n, n)
	}
	record("active", "")
	inSrc.send(t, n, 0x44)
	si = streamsHave("inbound audio after unmute", 2*n, n)
	if si.Streams[0].Packets != 2*n {
		t.Fatalf("srs got %d inbound packets, want %d: muted ones leaked", si.Streams[0].Packets, 2*n)
	}
	record("none", "none")
	ss := waitSRS(t, s, "the session to end", func(ss []srs.SessionInfo) bool {
		return len(ss) == 1 && ss[0].State == srs.StateEnded
	})
	noViolations(t, ss)

	in := ss[0].Streams[0]
	samples := wavSamples(t, in.Path)
	start := int(in.StartOffset)
	if len(samples) != start+3*n*160 {
		t.Fatalf("inbound file has %d samples, want %d", len(samples), start+3*n*160)
	}
	for i := range 3 * n * 160 {
		v := samples[start+i]
		muted := i >= n*160 && i < 2*n*160
		if muted != (v == 0) {
			t.Fatalf("inbound sample %d = %d; the mute window [%d,%d) must be silence and nothing else", i, v, n*160, 2*n*160)
		}
	}
	if fs := eng.Stats(); fs.Forks != 0 {
		t.Fatalf("%d forks left after the recording ended", fs.Forks)
	}
}
