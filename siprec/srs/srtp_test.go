package srs

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/recfork/recfork/dataplane/srtp"
)

// savpOffer is an SDP offer of RTP/SAVP m-lines, one a=crypto each ("" for
// none).
func savpOffer(cryptos ...string) string {
	var b strings.Builder
	b.WriteString("v=0\r\no=src 42 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n")
	for i, c := range cryptos {
		b.WriteString("m=audio 30000 RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n")
		if c != "" {
			b.WriteString("a=crypto:" + c + "\r\n")
		}
		b.WriteString("a=label:" + string(rune('a'+i)) + "\r\na=sendonly\r\n")
	}
	return b.String()
}

// TestSRTPRecording offers SRTP streams (SDES, RFC 4568): the SRS answers
// RTP/SAVP with its own a=crypto of the same tag and suite, decrypts a
// stream sent with the offered key into the same WAV audio as RTP would
// give, counts every packet of a stream sent with other keys as an
// authentication failure (silence, no crash), and refuses an RTP/SAVP
// m-line without a usable a=crypto.
func TestSRTPRecording(t *testing.T) {
	srv, dir := startServer(t)
	ctx := waitCtx(t)
	src := newTestSRC(t, srv.Addr().String(), "TCP") // three m-lines and metadata exceed UDP
	good, _ := srtp.NewCrypto(1, srtp.SuiteSHA1_80)
	wrongOffered, _ := srtp.NewCrypto(7, srtp.SuiteSHA1_32)
	res := src.invite(ctx, "multipart/mixed;boundary="+testBoundary,
		multipartBody(savpOffer(good.String(), wrongOffered.String(), "1 AEAD_AES_256_GCM inline:x"), testMetadata("complete", "a", "b", "c")))
	if res.StatusCode != 200 {
		t.Fatalf("invite: %d %s", res.StatusCode, res.Reason)
	}
	ports, _ := answerPorts(t, res)
	ans := string(res.Body())
	if strings.Count(ans, "RTP/SAVP") != 3 || ports[2] != 0 || ports[0] == 0 || ports[1] == 0 {
		t.Fatalf("answer:\n%s", ans)
	}
	var answered []srtp.Crypto
	for line := range strings.Lines(ans) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "a=crypto:"); ok {
			c, err := srtp.ParseCrypto(v)
			if err != nil {
				t.Fatalf("answer crypto %q: %v", v, err)
			}
			answered = append(answered, c)
		}
	}
	if len(answered) != 2 || answered[0].Tag != 1 || answered[0].Suite != srtp.SuiteSHA1_80 ||
		answered[1].Tag != 7 || answered[1].Suite != srtp.SuiteSHA1_32 || string(answered[0].Key) == string(good.Key) {
		t.Fatalf("answered cryptos %+v", answered)
	}

	// Stream a: the offered key. Stream b: keys the SRS was never given.
	stranger, _ := srtp.NewCrypto(7, srtp.SuiteSHA1_32)
	sa, sb := newRTPSender(t, ports[0], 0xa, 440), newRTPSender(t, ports[1], 0xb, 440)
	ea, _ := srtp.NewContext(good)
	eb, _ := srtp.NewContext(stranger)
	const n = 50
	firstTS := sa.ts
	for range n {
		for _, x := range []struct {
			s *rtpSender
			c *srtp.Context
		}{{sa, ea}, {sb, eb}} {
			payload := tone(x.s.freq, int(x.s.ts), 160)
			p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: x.s.seq, Timestamp: x.s.ts, SSRC: x.s.ssrc}, Payload: payload}
			b, _ := p.Marshal()
			enc, err := x.c.Encrypt(nil, b)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := x.s.conn.Write(enc); err != nil {
				t.Fatal(err)
			}
			x.s.sent[x.s.ts] = payload
			x.s.seq++
			x.s.ts += 160
		}
	}
	sessionOf(t, ctx, srv, src.callID, func(si SessionInfo) bool {
		return si.Streams[0].Packets == n && si.Streams[1].AuthFailures == n
	})
	if res := src.bye(ctx); res.StatusCode != 200 {
		t.Fatalf("bye: %d", res.StatusCode)
	}
	si := sessionOf(t, ctx, srv, src.callID, func(si SessionInfo) bool { return si.State == StateEnded })
	if st := si.Streams[1]; st.Packets != 0 || st.AuthFailures != n || st.Samples != 0 {
		t.Fatalf("wrong-key stream %+v", st)
	}
	if st := si.Streams[0]; st.AuthFailures != 0 || st.Malformed != 0 {
		t.Fatalf("good stream %+v", st)
	}
	checkAudio(t, readWAV(t, filepath.Join(dir, si.ID, "stream0.wav")), si.Streams[0], sa, firstTS)
}

// FuzzSRTPIntake feeds arbitrary datagrams, and SRTP packets made with the
// stream's key, to an SRTP stream: every datagram is decrypted and recorded,
// or counted as an authentication failure or malformed; nothing crashes.
func FuzzSRTPIntake(f *testing.F) {
	c, _ := srtp.NewCrypto(1, srtp.SuiteSHA1_80)
	enc, _ := srtp.NewContext(c)
	p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1, Timestamp: 160, SSRC: 9}, Payload: make([]byte, 160)}
	clear, _ := p.Marshal()
	seed, _ := enc.Encrypt(nil, clear)
	f.Add(seed, false)
	f.Add(clear, false)
	f.Add(seed[:20], true)
	f.Add([]byte{0x80, 0, 0, 1}, true)
	f.Fuzz(func(t *testing.T, data []byte, encrypt bool) {
		dir := t.TempDir()
		srv := &Server{log: discardLogger(), cfg: Config{Dir: dir}}
		ss := &session{srv: srv, id: "fuzz", dir: dir, names: map[string]bool{}}
		w, err := createWAV(dir + "/s.wav")
		if err != nil {
			t.Fatal(err)
		}
		st := &stream{sess: ss, label: "1", mode: ModeRecvOnly, wav: w, codecs: map[uint8]codec{0: {"PCMU", 8000}}}
		st.mu.Lock()
		err = st.keyStream(mline{proto: "RTP/SAVP", crypto: &c})
		st.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		ctx, _ := srtp.NewContext(c)
		var pkt rtp.Packet
		at := time.Unix(1000, 0)
		n := 0
		for off := 0; off < len(data) && n < 32; n++ {
			size := min(len(data)-off, 12+int(data[off])%200)
			d := data[off : off+size]
			if encrypt {
				if e, err := ctx.Encrypt(nil, d); err == nil {
					d = e
				}
			}
			st.ingest(&pkt, d, at)
			at = at.Add(20 * time.Millisecond)
			off += size
		}
		if err := st.stop(); err != nil {
			t.Fatal(err)
		}
		si := st.info()
		if si.Packets+si.Malformed+si.AuthFailures != uint64(n) {
			t.Fatalf("%d datagrams, %d packets + %d malformed + %d auth failures", n, si.Packets, si.Malformed, si.AuthFailures)
		}
	})
}
