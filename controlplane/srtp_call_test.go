package controlplane_test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"

	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/dataplane/srtp"
)

// startSRTPService runs a service with its own userspace engine on
// loopback and SRTP on calls in mode.
func startSRTPService(t *testing.T, mode string) *controlplane.Service {
	t.Helper()
	dir := t.TempDir()
	svc, err := controlplane.NewService(context.Background(), controlplane.Config{
		Listen:        "127.0.0.1:0",
		Admin:         filepath.Join(dir, "admin.sock"),
		RecordingsDir: filepath.Join(dir, "recordings"),
		Logger:        testLogger(t),
		Dataplane:     "userspace",
		RTPPorts:      dataplane.PortRange{Min: 33000, Max: 33999},
		CallSRTP:      mode,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	return svc
}

func savpOffer(port int, attrs ...string) string {
	s := fmt.Sprintf("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/SAVP 0\r\na=rtpmap:0 PCMU/8000\r\n", port)
	for _, a := range attrs {
		s += "a=" + a + "\r\n"
	}
	return s
}

var (
	toTagRE  = regexp.MustCompile(`(?mi)^(?:To|t):.*;tag=([^;\s>]+)`)
	mAudioRE = regexp.MustCompile(`(?m)^m=audio (\d+) (\S+) `)
	warnRE   = regexp.MustCompile(`(?mi)^Warning: (.*)\r$`)
)

// TestSRTPCallRefusals sends offers recfork must refuse with 488 and a
// Warning naming the cause, over a real SIP socket, per --call-srtp mode.
func TestSRTPCallRefusals(t *testing.T) {
	key, _ := srtp.NewCrypto(1, srtp.SuiteSHA1_80)
	for _, tc := range []struct {
		name, mode, body, warning string
	}{
		{"dtls-srtp", controlplane.CallSRTPAccept,
			"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 UDP/TLS/RTP/SAVPF 0\r\na=fingerprint:sha-256 4A:AD:B9:B1:3F:82\r\na=setup:actpass\r\n",
			`302 recfork "DTLS-SRTP`},
		{"dtls-srtp while off", controlplane.CallSRTPOff,
			"v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 UDP/TLS/RTP/SAVP 0\r\na=fingerprint:sha-256 4A:AD\r\n",
			`302 recfork "DTLS-SRTP`},
		{"savp without crypto", controlplane.CallSRTPAccept, savpOffer(4000), `399 recfork "RTP/SAVP offered without a usable a=crypto`},
		{"savp with an unknown suite only", controlplane.CallSRTPRequire, savpOffer(4000, "crypto:1 AEAD_AES_256_GCM inline:"+strings.Repeat("A", 60)),
			`399 recfork "RTP/SAVP offered without a usable a=crypto`},
		{"savp while off", controlplane.CallSRTPOff, savpOffer(4000, "crypto:"+key.String()), `302 recfork "SRTP on calls is off`},
		{"avp while required", controlplane.CallSRTPRequire, sdpOffer(4000, "0"), `302 recfork "SRTP required`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			svc := startSRTPService(t, tc.mode)
			r := newRawSIP(t, svc.Daemon().SIPAddr().String())
			r.send(r.request("INVITE", "refuse-"+strings.ReplaceAll(tc.name, " ", "-"), "", "application/sdp", tc.body, 1))
			res := r.expect(488)
			m := warnRE.FindStringSubmatch(res)
			if m == nil || !strings.HasPrefix(m[1], tc.warning) {
				t.Fatalf("488 without the Warning %q:\n%s", tc.warning, res)
			}
			if n := len(svc.Daemon().Connections()); n != 0 {
				t.Fatalf("%d connections left after a refusal", n)
			}
		})
	}
}

// srtpPeer is a caller's media socket speaking SRTP with pion's contexts.
type srtpPeer struct {
	t    *testing.T
	conn *net.UDPConn
}

func newSRTPPeer(t *testing.T, ip string) *srtpPeer {
	c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(ip+":0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &srtpPeer{t: t, conn: c}
}

func (p *srtpPeer) port() int { return p.conn.LocalAddr().(*net.UDPAddr).Port }

// send seals an RTP packet of seq with ctx and sends it to dst; it returns
// the clear packet.
func (p *srtpPeer) send(ctx *srtp.Context, dst netip.AddrPort, seq uint16, payload []byte) []byte {
	p.t.Helper()
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x5eed}, Payload: payload}
	clear, err := pkt.Marshal()
	if err != nil {
		p.t.Fatal(err)
	}
	s, err := ctx.Encrypt(nil, clear)
	if err != nil {
		p.t.Fatal(err)
	}
	if _, err := p.conn.WriteToUDPAddrPort(s, dst); err != nil {
		p.t.Fatal(err)
	}
	return clear
}

func (p *srtpPeer) read() []byte {
	p.t.Helper()
	buf := make([]byte, 2048)
	_ = p.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, _, err := p.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		p.t.Fatalf("no media back: %v", err)
	}
	return buf[:n]
}

// answerKey reads the platform's media port and the one a=crypto of a 200.
func answerKey(t *testing.T, res string) (int, srtp.Crypto) {
	t.Helper()
	m := mAudioRE.FindStringSubmatch(res)
	if m == nil || m[2] != "RTP/SAVP" {
		t.Fatalf("answer is not RTP/SAVP:\n%s", res)
	}
	port, _ := strconv.Atoi(m[1])
	var keys []srtp.Crypto
	for _, line := range strings.Split(res, "\r\n") {
		if v, ok := strings.CutPrefix(line, "a=crypto:"); ok {
			c, err := srtp.ParseCrypto(v)
			if err != nil {
				t.Fatalf("answer's a=crypto %q: %v", v, err)
			}
			keys = append(keys, c)
		}
	}
	if len(keys) != 1 {
		t.Fatalf("answer has %d a=crypto lines, want 1:\n%s", len(keys), res)
	}
	return port, keys[0]
}

// TestSRTPCallEcho calls the default app (echo) with an RTP/SAVP offer of
// several a=crypto lines over real sockets: the answer takes the first
// usable one with recfork's own key, the echoed media opens with that key
// (and not with the caller's), and packets sealed with a wrong key are
// counted as authentication failures without ending anything.
func TestSRTPCallEcho(t *testing.T) {
	for _, suite := range []string{srtp.SuiteSHA1_80, srtp.SuiteSHA1_32} {
		t.Run(suite, func(t *testing.T) {
			svc := startSRTPService(t, controlplane.CallSRTPAccept)
			eng := svc.Daemon().Engine()
			media := newSRTPPeer(t, "127.0.0.1")
			ours, _ := srtp.NewCrypto(2, suite)
			r := newRawSIP(t, svc.Daemon().SIPAddr().String())
			body := savpOffer(media.port(), "crypto:1 AEAD_AES_256_GCM inline:"+strings.Repeat("B", 60), "crypto:"+ours.String(), "sendrecv")
			r.send(r.request("INVITE", "srtp-echo-"+suite, "", "application/sdp", body, 1))
			res := r.expect(200)
			port, theirs := answerKey(t, res)
			if theirs.Tag != 2 || theirs.Suite != suite || bytes.Equal(theirs.Key, ours.Key) {
				t.Fatalf("answer key %+v: want tag 2 %s with recfork's own key", theirs, suite)
			}
			tag := toTagRE.FindStringSubmatch(res)
			if tag == nil {
				t.Fatalf("200 without a To tag:\n%s", res)
			}
			r.send(r.request("ACK", "srtp-echo-"+suite, tag[1], "", "", 1))
			platform := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
			// What arrives before the app's join is not echoed.
			waitFor(t, "the echo join", func() bool {
				cs := svc.Daemon().Connections()
				return len(cs) == 1 && len(cs[0].Joined) == 1
			})

			enc, _ := srtp.NewContext(ours)
			dec, _ := srtp.NewContext(theirs)
			withOurs, _ := srtp.NewContext(ours)
			for i := range 20 {
				payload := bytes.Repeat([]byte{byte(0x20 + i)}, 160)
				clear := media.send(enc, platform, uint16(i+1), payload)
				got := media.read()
				if bytes.Contains(got, payload[:32]) {
					t.Fatalf("echo %d came back in clear", i)
				}
				back, err := dec.Decrypt(nil, got)
				if err != nil || !bytes.Equal(back[12:], clear[12:]) {
					t.Fatalf("echo %d does not open with the answered key: %v", i, err)
				}
				if _, err := withOurs.Decrypt(nil, got); err == nil {
					t.Fatalf("echo %d opens with the caller's own key", i)
				}
			}
			wrong, _ := srtp.NewCrypto(2, suite)
			wctx, _ := srtp.NewContext(wrong)
			before := eng.Stats().AuthFailures
			for i := range 5 {
				media.send(wctx, platform, uint16(100+i), make([]byte, 160))
			}
			// Then a good one: its echo means the five were judged.
			clear := media.send(enc, platform, 200, bytes.Repeat([]byte{0x77}, 160))
			if back, err := dec.Decrypt(nil, media.read()); err != nil || !bytes.Equal(back[12:], clear[12:]) {
				t.Fatalf("the call does not carry on after forged packets: %v", err)
			}
			st := eng.Stats()
			if st.AuthFailures-before != 5 || st.SRTPEndpoints != 1 {
				t.Fatalf("engine stats %+v: want 5 more auth failures and 1 srtp endpoint", st)
			}
			r.send(r.request("BYE", "srtp-echo-"+suite, tag[1], "", "", 2))
			r.expect(200)
			waitFor(t, "the srtp endpoint to close", func() bool { return eng.Stats().SRTPEndpoints == 0 })
		})
	}
}

// TestSRTPCallReinvite re-keys an SRTP call with a re-INVITE (RFC 4568
// §7.1.4): the answer keeps recfork's key for the same suite, media under
// the caller's new key is echoed and the old key's packets now fail; a
// re-offer of plain RTP on the SRTP call is refused with 488.
func TestSRTPCallReinvite(t *testing.T) {
	svc := startSRTPService(t, controlplane.CallSRTPAccept)
	eng := svc.Daemon().Engine()
	media := newSRTPPeer(t, "127.0.0.1")
	first, _ := srtp.NewCrypto(1, srtp.SuiteSHA1_80)
	r := newRawSIP(t, svc.Daemon().SIPAddr().String())
	const callID = "srtp-reinvite"
	r.send(r.request("INVITE", callID, "", "application/sdp", savpOffer(media.port(), "crypto:"+first.String()), 1))
	res := r.expect(200)
	port, theirs := answerKey(t, res)
	tag := toTagRE.FindStringSubmatch(res)
	if tag == nil {
		t.Fatalf("200 without a To tag:\n%s", res)
	}
	r.send(r.request("ACK", callID, tag[1], "", "", 1))
	waitFor(t, "the echo join", func() bool {
		cs := svc.Daemon().Connections()
		return len(cs) == 1 && len(cs[0].Joined) == 1
	})
	platform := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	dec, _ := srtp.NewContext(theirs)
	oldEnc, _ := srtp.NewContext(first)
	echo := func(enc *srtp.Context, seq uint16) {
		t.Helper()
		clear := media.send(enc, platform, seq, bytes.Repeat([]byte{byte(seq)}, 160))
		back, err := dec.Decrypt(nil, media.read())
		if err != nil || !bytes.Equal(back[12:], clear[12:]) {
			t.Fatalf("echo of %d: %v", seq, err)
		}
	}
	echo(oldEnc, 1)

	second, _ := srtp.NewCrypto(1, srtp.SuiteSHA1_80)
	r.send(r.request("INVITE", callID, tag[1], "application/sdp", savpOffer(media.port(), "crypto:"+second.String()), 2))
	res = r.expect(200)
	if _, again := answerKey(t, res); !bytes.Equal(again.Key, theirs.Key) {
		t.Fatal("recfork changed its key for the same suite")
	}
	r.send(r.request("ACK", callID, tag[1], "", "", 2))
	newEnc, _ := srtp.NewContext(second)
	before := eng.Stats().AuthFailures
	media.send(oldEnc, platform, 2, make([]byte, 160))
	echo(newEnc, 3)
	if d := eng.Stats().AuthFailures - before; d != 1 {
		t.Fatalf("%d auth failures for the old key's packet after the re-key, want 1", d)
	}

	r.send(r.request("INVITE", callID, tag[1], "application/sdp", sdpOffer(media.port(), "0"), 3))
	res = r.expect(488)
	if m := warnRE.FindStringSubmatch(res); m == nil || !strings.HasPrefix(m[1], `302 recfork "SRTP required`) {
		t.Fatalf("plain re-offer on an SRTP call:\n%s", res)
	}
	echo(newEnc, 4)
}
