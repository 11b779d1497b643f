package srtp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtp"

	"github.com/recfork/recfork/dataplane"
)

func TestParseCrypto(t *testing.T) {
	const key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
	for _, tc := range []struct {
		name, in string
		suite    string
		tag      int
		err      bool
		mki      []byte
	}{
		{"rfc 4568 example", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^20|1:32", SuiteSHA1_80, 1, false, append(make([]byte, 31), 1)},
		{"mki without lifetime", "5 AES_CM_128_HMAC_SHA1_32 inline:" + key + "|258:2", SuiteSHA1_32, 5, false, []byte{1, 2}},
		{"mki too big for its length", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|300:1", "", 0, true, nil},
		{"mki length zero", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:0", "", 0, true, nil},
		{"two mkis", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|1:1|2:1", "", 0, true, nil},
		{"too many fields", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^20|1:1|x", "", 0, true, nil},
		{"plain 80", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key, SuiteSHA1_80, 1, false, nil},
		{"with prefix and lifetime", "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" + key + "|2^31", SuiteSHA1_32, 2, false, nil},
		{"session params ignored", "3 AES_CM_128_HMAC_SHA1_80 inline:" + key + " KDR=0 UNENCRYPTED_SRTCP", SuiteSHA1_80, 3, false, nil},
		{"lower-case suite", "1 aes_cm_128_hmac_sha1_80 inline:" + key, SuiteSHA1_80, 1, false, nil},
		{"gcm refused", "1 AEAD_AES_128_GCM inline:" + key, "", 0, true, nil},
		{"short key", "1 AES_CM_128_HMAC_SHA1_80 inline:QUJD", "", 0, true, nil},
		{"not inline", "1 AES_CM_128_HMAC_SHA1_80 uri:" + key, "", 0, true, nil},
		{"bad tag", "x AES_CM_128_HMAC_SHA1_80 inline:" + key, "", 0, true, nil},
		{"too few fields", "1 AES_CM_128_HMAC_SHA1_80", "", 0, true, nil},
		{"empty", "", "", 0, true, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := ParseCrypto(tc.in)
			if tc.err {
				if !errors.Is(err, ErrBadCrypto) {
					t.Fatalf("ParseCrypto(%q) = %+v, %v; want ErrBadCrypto", tc.in, c, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Suite != tc.suite || c.Tag != tc.tag || len(c.Key) != 16 || len(c.Salt) != 14 || !bytes.Equal(c.MKI, tc.mki) {
				t.Fatalf("got %+v", c)
			}
			back, err := ParseCrypto(c.String())
			if err != nil || !bytes.Equal(back.Key, c.Key) || !bytes.Equal(back.Salt, c.Salt) || back.Suite != c.Suite || !bytes.Equal(back.MKI, c.MKI) {
				t.Fatalf("round trip of %q: %+v, %v", c.String(), back, err)
			}
		})
	}
}

func FuzzParseCrypto(f *testing.F) {
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20")
	f.Add("a=crypto:9 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR;inline:x")
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:||||")
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|1:32")
	f.Add("2 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|18446744073709551615:8 KDR=0 WSH=64")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCrypto(s)
		if err != nil {
			return
		}
		back, err := ParseCrypto(c.String())
		if err != nil {
			t.Fatalf("our own %q does not parse: %v", c.String(), err)
		}
		if !bytes.Equal(back.MKI, c.MKI) {
			t.Fatalf("MKI % x of %q reads back as % x", c.MKI, c.String(), back.MKI)
		}
		if _, err := NewContext(c); err != nil {
			t.Fatalf("a parsed key cannot key a context: %v", err)
		}
	})
}

func rtpPacket(t testing.TB, ssrc uint32, seq uint16, payload []byte) []byte {
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: ssrc}, Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestContextRoundTrip encrypts with one context and decrypts with another
// keyed alike, for both suites; a context with other keys fails every packet
// with ErrAuth, and the ciphertext never carries the payload in clear.
func TestContextRoundTrip(t *testing.T) {
	for _, suite := range []string{SuiteSHA1_80, SuiteSHA1_32} {
		t.Run(suite, func(t *testing.T) {
			c, err := NewCrypto(1, suite)
			if err != nil {
				t.Fatal(err)
			}
			other, _ := NewCrypto(1, suite)
			enc, _ := NewContext(c)
			dec, _ := NewContext(c)
			wrong, _ := NewContext(other)
			payload := bytes.Repeat([]byte{0x55, 0xaa}, 80)
			tagLen := 10
			if suite == SuiteSHA1_32 {
				tagLen = 4
			}
			// Across a sequence wrap: the rollover counter moves on.
			for i := range 40 {
				seq := uint16(65520 + i)
				pkt := rtpPacket(t, 0x1234, seq, payload)
				s, err := enc.Encrypt(nil, pkt)
				if err != nil {
					t.Fatal(err)
				}
				if len(s) != len(pkt)+tagLen || bytes.Contains(s, payload[:16]) {
					t.Fatalf("srtp packet %d: %d bytes (clear %d), payload visible %v", i, len(s), len(pkt), bytes.Contains(s, payload[:16]))
				}
				got, err := dec.Decrypt(nil, s)
				if err != nil || !bytes.Equal(got, pkt) {
					t.Fatalf("decrypt %d: %v", i, err)
				}
				if _, err := wrong.Decrypt(nil, s); !errors.Is(err, ErrAuth) {
					t.Fatalf("wrong keys: %v, want ErrAuth", err)
				}
			}
		})
	}
}

// BenchmarkEncrypt is the SRTP cost of one recording copy (20 ms of G.711,
// 172 bytes of RTP), the per-packet price of an SRTP fork over a plain one.
func BenchmarkEncrypt(b *testing.B) {
	for _, suite := range []string{SuiteSHA1_80, SuiteSHA1_32} {
		b.Run(suite, func(b *testing.B) {
			c, _ := NewCrypto(1, suite)
			enc, _ := NewContext(c)
			pkt := rtpPacket(b, 0x1234, 1, make([]byte, 160))
			dst := make([]byte, 0, 1500)
			b.SetBytes(int64(len(pkt)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				pkt[2], pkt[3] = byte(i>>8), byte(i)
				if _, err := enc.Encrypt(dst, pkt); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// TestMKIAndEndpointCipher keys a peer with an MKI: its packets carry the
// MKI and open with the parsed key; a packet with another MKI or another key
// is an authentication failure (dataplane.ErrAuth); recfork's own side
// seals without MKI, and both RTP and RTCP round-trip.
func TestMKIAndEndpointCipher(t *testing.T) {
	peer, err := ParseCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20|7:4")
	if err != nil {
		t.Fatal(err)
	}
	own, _ := NewCrypto(1, SuiteSHA1_80)
	ec, err := NewEndpointCipher(peer, own)
	if err != nil {
		t.Fatal(err)
	}
	peerTx, _ := NewContext(peer)
	pkt := rtpPacket(t, 0x99, 1, bytes.Repeat([]byte{3}, 160))
	s, err := peerTx.Encrypt(nil, pkt)
	if err != nil {
		t.Fatal(err)
	}
	if len(s) != len(pkt)+4+10 || !bytes.Equal(s[len(s)-14:len(s)-10], []byte{0, 0, 0, 7}) {
		t.Fatalf("peer packet %d bytes, want the 4-byte MKI 7 before the tag", len(s))
	}
	got, err := ec.Open(s[:0], s, false)
	if err != nil || !bytes.Equal(got, pkt) {
		t.Fatalf("open with the peer's MKI key: %v", err)
	}
	other := peer
	other.MKI = []byte{0, 0, 0, 8}
	otherTx, _ := NewContext(other)
	s2, _ := otherTx.Encrypt(nil, rtpPacket(t, 0x99, 2, make([]byte, 160)))
	if _, err := ec.Open(nil, s2, false); !errors.Is(err, dataplane.ErrAuth) {
		t.Fatalf("unknown MKI: %v, want dataplane.ErrAuth", err)
	}
	sealed, err := ec.Seal(make([]byte, 0, 256), pkt, false)
	if err != nil || len(sealed) != len(pkt)+10 {
		t.Fatalf("seal: %d bytes, %v; want the tag only, no MKI", len(sealed), err)
	}
	ownRx, _ := NewContext(own)
	if back, err := ownRx.Decrypt(nil, sealed); err != nil || !bytes.Equal(back, pkt) {
		t.Fatalf("own key does not open what was sealed: %v", err)
	}
	// RTCP: a receiver report, sealed by the peer and opened; sealed by us.
	rr := []byte{0x80, 201, 0, 1, 0, 0, 0, 0x99}
	peerRR, err := peerTx.ctx.EncryptRTCP(nil, rr, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ec.Open(nil, peerRR, true); err != nil || !bytes.Equal(got, rr) {
		t.Fatalf("open srtcp: %v", err)
	}
	ourRR, err := ec.Seal(nil, rr, true)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := ownRx.ctx.DecryptRTCP(nil, ourRR, nil); err != nil || !bytes.Equal(got, rr) {
		t.Fatalf("own srtcp does not open: %v", err)
	}
}

func TestCryptoSupported(t *testing.T) {
	const key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
	for _, tc := range []struct {
		params string
		ok     bool
	}{
		{"", true},
		{" KDR=0", true},
		{" WSH=128", true},
		{" UNENCRYPTED_SRTP", false},
		{" UNAUTHENTICATED_SRTP", false},
		{" KDR=24", false},
	} {
		c, err := ParseCrypto("1 AES_CM_128_HMAC_SHA1_80 inline:" + key + tc.params)
		if err != nil {
			t.Fatal(err)
		}
		if c.Supported() != tc.ok {
			t.Errorf("%q: Supported = %v, want %v", tc.params, !tc.ok, tc.ok)
		}
	}
}

// BenchmarkEndpointRelay is the SRTP work of relaying one 20 ms G.711
// packet between two SRTP call legs (open with one leg's peer key, seal with
// the other leg's own key), plus the sending peer's own seal of a fresh
// packet each time, which the replay window needs: subtract
// BenchmarkEncrypt for recfork's share.
func BenchmarkEndpointRelay(b *testing.B) {
	for _, suite := range []string{SuiteSHA1_80, SuiteSHA1_32} {
		b.Run(suite, func(b *testing.B) {
			peer, _ := NewCrypto(1, suite)
			own, _ := NewCrypto(1, suite)
			in, _ := NewEndpointCipher(peer, own)
			out, _ := NewEndpointCipher(own, peer)
			peerTx, _ := NewContext(peer)
			clear := rtpPacket(b, 0x1234, 1, make([]byte, 160))
			wire, buf, sealed := make([]byte, 0, 1500), make([]byte, 0, 1500), make([]byte, 0, 1500)
			b.SetBytes(int64(len(clear)))
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				clear[2], clear[3] = byte(i>>8), byte(i)
				w, err := peerTx.Encrypt(wire, clear)
				if err != nil {
					b.Fatal(err)
				}
				p, err := in.Open(buf, w, false)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := out.Seal(sealed, p, false); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
