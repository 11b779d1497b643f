package srs

import (
	"path/filepath"
	"testing"

	"github.com/pion/rtp"
)

// TestMediaOverSocket sends A-law, a non-G.711 payload, a duplicate and a
// reordered pair over a real socket and checks counters and audio.
func TestMediaOverSocket(t *testing.T) {
	srv, dir := startServer(t)
	ctx := waitCtx(t)
	src := newTestSRC(t, srv.Addr().String(), "UDP")
	res := src.invite(ctx, "multipart/mixed;boundary="+testBoundary,
		multipartBody(src.sdpOffer([]string{"sendonly"}, []string{"x"}, nil), testMetadata("complete", "x")))
	if res.StatusCode != 200 {
		t.Fatalf("invite: %d", res.StatusCode)
	}
	ports, _ := answerPorts(t, res)
	snd := newRTPSender(t, ports[0], 0xabc, 0)
	payload := func(seq uint16) []byte {
		b := make([]byte, 160)
		for i := range b {
			b[i] = byte(seq)*7 + byte(i)
		}
		return b
	}
	send := func(seq uint16, pt uint8) {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0xabc}, Payload: payload(seq)}
		if pt == 101 {
			p.Payload = []byte{1, 0x0a, 0, 160} // an RFC 4733 event
		}
		b, _ := p.Marshal()
		if _, err := snd.conn.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	// Arrival order: 1 2 4 3 3 5(event) 6; every audio packet is A-law.
	for _, s := range []uint16{1, 2, 4, 3, 3} {
		send(s, 8)
	}
	send(5, 101)
	send(6, 8)
	waitPackets(t, ctx, srv, src.callID, 7)
	if res := src.bye(ctx); res.StatusCode != 200 {
		t.Fatalf("bye: %d", res.StatusCode)
	}
	si := sessionOf(t, ctx, srv, src.callID, func(si SessionInfo) bool { return si.State == StateEnded })
	st := si.Streams[0]
	if st.Packets != 7 || st.Duplicates != 1 || st.Lost != 0 || st.Undecoded != 1 || st.SSRC != 0xabc || st.FirstArrival.IsZero() || st.LastArrival.Before(st.FirstArrival) {
		t.Fatalf("stream %+v", st)
	}
	samples := readWAV(t, filepath.Join(dir, si.ID, "stream0.wav"))
	if want := st.StartOffset + 6*160; int64(len(samples)) != want {
		t.Fatalf("%d samples, want %d", len(samples), want)
	}
	for seq := uint16(1); seq <= 6; seq++ {
		base := st.StartOffset + int64(seq-1)*160
		for i, b := range payload(seq) {
			want := alawTable[b]
			if seq == 5 {
				want = 0 // the event packet leaves silence
			}
			if got := samples[base+int64(i)]; got != want {
				t.Fatalf("seq %d sample %d: %d, want %d", seq, i, got, want)
			}
		}
	}
}
