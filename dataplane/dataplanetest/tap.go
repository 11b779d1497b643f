package dataplanetest

import (
	"errors"
	"testing"

	"github.com/recfork/recfork/dataplane"
)

// tapPT is the telephone-event payload type of the tap case (RFC 4733
// types are dynamic; 101 is what most phones offer).
const tapPT = 101

// events are RTP packets of the tap's payload type.
func events(ssrc uint32, first uint16, count int) [][]byte {
	out := RTPRange(ssrc, first, count)
	for _, b := range out {
		b[1] = tapPT
	}
	return out
}

// testTap: an endpoint joined to a party and half-joined to a tap
// (EndpointConfig.TapPayloadType) relays everything to the party and only
// the tap's payload type to the tap: no other RTP, no RTCP.
func testTap(t *testing.T, v *env) {
	if _, err := v.e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: v.h.LocalIP, TapPayloadType: 200}); !errors.Is(err, dataplane.ErrInvalid) {
		t.Fatalf("tap payload type 200: %v, want ErrInvalid", err)
	}
	p := v.pair(t, dataplane.Full)
	pt := v.party(t)
	tap, err := v.e.OpenEndpoint(dataplane.EndpointConfig{LocalIP: v.h.LocalIP, Remote: pt.Addr, TapPayloadType: tapPT})
	v.must(t, "open tap", err)
	v.must(t, "join tap", v.e.Join(p.a.ID, tap.ID, dataplane.Half))

	audio := RTPRange(0x7a, 1, 20)
	Send(t, p.pa.RTP, local(p.a), audio)
	Expect(t, p.pb.RTP, local(p.b), audio, v.timeout)
	ev := events(0x7a, 21, 3)
	Send(t, p.pa.RTP, local(p.a), ev)
	Expect(t, p.pb.RTP, local(p.b), ev, v.timeout)
	Expect(t, pt.RTP, local(tap), ev, v.timeout)
	rtcp := RTCPRange(0x7a, 1, 2)
	Send(t, p.pa.RTCP, rtcpOf(p.a.Local), rtcp)
	Expect(t, p.pb.RTCP, rtcpOf(p.b.Local), rtcp, v.timeout)
	more := RTPRange(0x7a, 24, 5)
	Send(t, p.pa.RTP, local(p.a), more)
	Expect(t, p.pb.RTP, local(p.b), more, v.timeout)
	ExpectNothingQueued(t, pt.RTP)
	ExpectNothingQueued(t, pt.RTCP)

	n := totalBytes(audio, ev, rtcp, more)
	v.waitEndpoint(t, p.a.ID, dataplane.EndpointStats{RxPackets: 30, RxBytes: n, Relayed: 30})
	v.waitEndpoint(t, p.b.ID, dataplane.EndpointStats{TxPackets: 30, TxBytes: n})
	v.waitEndpoint(t, tap.ID, dataplane.EndpointStats{TxPackets: 3, TxBytes: totalBytes(ev)})
}
