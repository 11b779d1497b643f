package controlplane_test

import (
	"encoding/binary"
	"errors"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/controlplane"
)

// rtpPacket is a PCMU packet whose payload is 160 bytes of fill.
func rtpPacket(ssrc uint32, seq uint16, fill byte) []byte {
	b := make([]byte, 12+160)
	b[0], b[1] = 0x80, 0
	binary.BigEndian.PutUint16(b[2:], seq)
	binary.BigEndian.PutUint32(b[4:], uint32(seq)*160)
	binary.BigEndian.PutUint32(b[8:], ssrc)
	for i := 12; i < len(b); i++ {
		b[i] = fill
	}
	return b
}

var mAudio = regexp.MustCompile(`(?m)^m=audio (\d+) `)

// TestHostileRTPInjectionBeforeCaller: another host sends RTP to a call's
// media port before the caller's first packet. It must not take the call's
// media: its packets are dropped and counted, never echoed to it and never
// recorded; the caller's media is echoed and recorded as if it were alone.
// (Before the latch policy, the first source was latched: the injector got
// the echo and owned both recorded streams.) 127.0.0.2 is another host to
// the engine: all of 127/8 is on lo. The eBPF engine's guard is the
// contract suite's (dataplane/dataplanetest), in network namespaces.
func TestHostileRTPInjectionBeforeCaller(t *testing.T) {
	// The real userspace engine, as recforkd builds it with its defaults.
	svc := startLimited(t, controlplane.Limits{}, func(c *controlplane.Config) {
		c.Engine, c.Dataplane = nil, controlplane.DataplaneUserspace
	})
	eng := svc.Daemon().Engine()
	listen := func(ip string) *net.UDPConn {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(ip)})
		if err != nil {
			t.Fatal(err)
		}
		_ = c.SetReadBuffer(1 << 20)
		t.Cleanup(func() { c.Close() })
		return c
	}
	media, injector := listen("127.0.0.1"), listen("127.0.0.2")

	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	const cid = "injected-call"
	mport := media.LocalAddr().(*net.UDPAddr).Port
	r.send(r.request("INVITE", cid, "", "application/sdp", sdpOffer(mport, "0"), 1))
	ok := r.expect(200)
	_, tag, _ := strings.Cut(headerLine(ok, "To"), "tag=")
	r.send(r.request("ACK", cid, tag, "", "", 1))
	m := mAudio.FindStringSubmatch(ok)
	if m == nil {
		t.Fatalf("200 without an audio m-line:\n%s", ok)
	}
	port, _ := strconv.Atoi(m[1])
	dst := &net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: port}

	// Both forks in place (the recording is answered) before any media,
	// so every accepted packet is copied.
	waitFor(t, "the recording's two forks", func() bool { return eng.Stats().Forks == 2 })
	conn := func() controlplane.ConnectionInfo {
		for _, c := range svc.Daemon().Connections() {
			if c.CallID == cid {
				return c
			}
		}
		t.Fatalf("no connection for %s", cid)
		return controlplane.ConnectionInfo{}
	}

	const injected, spoken = 50, 100
	for i := range injected {
		if _, err := injector.WriteToUDP(rtpPacket(0xbad, uint16(i), 0x80), dst); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the injected packets to be dropped", func() bool {
		s := conn().Stats
		return s != nil && s.Dropped == injected
	})
	for i := range spoken {
		if _, err := media.WriteToUDP(rtpPacket(0x600d, uint16(1000+i), 0x00), dst); err != nil {
			t.Fatal(err)
		}
	}
	// The echo is the caller's own packets, in full.
	buf := make([]byte, 2048)
	for i := range spoken {
		_ = media.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := media.Read(buf)
		if err != nil {
			t.Fatalf("echo packet %d: %v", i, err)
		}
		if n != 172 || binary.BigEndian.Uint32(buf[8:]) != 0x600d || buf[12] != 0x00 {
			t.Fatalf("echo packet %d is not the caller's: % x", i, buf[:min(n, 16)])
		}
	}
	_ = injector.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	if n, err := injector.Read(buf); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the injector received %d bytes (%v): media went to it", n, err)
	}
	if s := conn().Stats; s.RxPackets != spoken || s.Dropped != injected || s.Latched && s.Remote.Port() != uint16(mport) {
		t.Fatalf("endpoint stats %+v: want %d received from the caller, %d dropped", s, spoken, injected)
	}

	r.send(r.request("BYE", cid, tag, "", "", 2))
	r.expect(200)
	rec := waitOneRecording(t, svc)
	if len(rec.Streams) != 2 {
		t.Fatalf("%d recorded streams, want 2", len(rec.Streams))
	}
	for _, st := range rec.Streams {
		if st.Packets != spoken || st.SSRC != 0x600d || st.SSRCChanges != 0 {
			t.Errorf("stream %s: %d packets of SSRC %#x (%d SSRC changes), want %d of the caller's only",
				st.Label, st.Packets, st.SSRC, st.SSRCChanges, spoken)
		}
	}
	if t.Failed() {
		t.Logf("streams: %+v", rec.Streams)
	}
}
