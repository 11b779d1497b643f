package siprec

import (
	"testing"
	"time"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/userspace"
	"github.com/recfork/recfork/siprec/srs"
)

// TestSRTPRecordedAudio records a call leg with SRTP (the SRS's profile asks
// for it) through the real userspace engine to the built-in SRS: the offer
// is RTP/SAVP with a different a=crypto key per stream, the SRS decrypts
// both directions into WAV files holding exactly the audio sent, with no
// authentication failure, and the client counts its SRTP forks.
func TestSRTPRecordedAudio(t *testing.T) {
	eng, err := userspace.New(userspace.Config{PortRange: dataplane.PortRange{Min: 33000, Max: 33999}, Workers: 1})
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
	c, err := New(Config{Engine: eng, MediaIP: lo, OnEvent: func(e Event) { events <- e }, Logger: discardLogger(),
		DefaultProfile: Profile{SRTP: true, Transport: "tcp"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	leg := testLeg()
	leg.Endpoint = callEP.ID
	leg.Codecs = []Codec{{PayloadType: 0, Name: "PCMU", ClockRate: 8000}}
	uri := "sip:srs@" + s.Addr().String()
	record := func(in, out string) {
		t.Helper()
		if err := c.Record(leg, Request{Type: "siprec", URI: uri, Inbound: in, Outbound: out}); err != nil {
			t.Fatal(err)
		}
		select {
		case e := <-events:
			if e.Name != EventUpdate {
				t.Fatalf("event %+v", e)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
	}
	record("active", "active")
	if n := c.SRTPForks(); n != 2 {
		t.Fatalf("%d srtp forks, want 2", n)
	}
	inSrc := &rtpSource{conn: remote, to: callEP.Local, ssrc: 0x1111, seq: 65530, ts: 8000} // across a sequence wrap
	outSrc := &rtpSource{conn: other, to: otherEP.Local, ssrc: 0x2222, seq: 500, ts: 16000}
	const n = 25
	inSrc.send(t, n, 0x11)
	outSrc.send(t, n, 0x22)
	waitSRS(t, s, "both directions decrypted", func(ss []srs.SessionInfo) bool {
		return len(ss) == 1 && len(ss[0].Streams) == 2 && ss[0].Streams[0].Packets >= n && ss[0].Streams[1].Packets >= n
	})
	record("none", "none")
	ss := waitSRS(t, s, "the session to end", func(ss []srs.SessionInfo) bool {
		return len(ss) == 1 && ss[0].State == srs.StateEnded
	})
	noViolations(t, ss)
	for i, fill := range []byte{0x11, 0x22} {
		st := ss[0].Streams[i]
		if st.AuthFailures != 0 || st.Malformed != 0 || st.Packets != n {
			t.Fatalf("stream %d: %+v", i, st)
		}
		samples := wavSamples(t, st.Path)
		start := int(st.StartOffset)
		if len(samples) != start+n*160 {
			t.Fatalf("stream %d: %d samples, want %d", i, len(samples), start+n*160)
		}
		want := ulawSample(fill)
		for j := range n * 160 {
			if samples[start+j] != want {
				t.Fatalf("stream %d sample %d = %d, want %d", i, j, samples[start+j], want)
			}
		}
	}
}

// ulawSample is the linear value of a G.711 µ-law byte (ITU-T G.711).
func ulawSample(u byte) int16 {
	u = ^u
	t := (int16(u&0x0f) << 3) + 0x84
	t <<= (u & 0x70) >> 4
	if u&0x80 != 0 {
		return 0x84 - t
	}
	return t - 0x84
}
