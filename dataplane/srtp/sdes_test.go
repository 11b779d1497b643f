package srtp

import (
	"bytes"
	"errors"
	"testing"

	"github.com/pion/rtp"
)

func TestParseCrypto(t *testing.T) {
	const key = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
	for _, tc := range []struct {
		name, in string
		suite    string
		tag      int
		err      bool
	}{
		{"rfc 4568 example", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key + "|2^20|1:32", "", 0, true},
		{"plain 80", "1 AES_CM_128_HMAC_SHA1_80 inline:" + key, SuiteSHA1_80, 1, false},
		{"with prefix and lifetime", "a=crypto:2 AES_CM_128_HMAC_SHA1_32 inline:" + key + "|2^31", SuiteSHA1_32, 2, false},
		{"session params ignored", "3 AES_CM_128_HMAC_SHA1_80 inline:" + key + " KDR=0 UNENCRYPTED_SRTCP", SuiteSHA1_80, 3, false},
		{"lower-case suite", "1 aes_cm_128_hmac_sha1_80 inline:" + key, SuiteSHA1_80, 1, false},
		{"gcm refused", "1 AEAD_AES_128_GCM inline:" + key, "", 0, true},
		{"short key", "1 AES_CM_128_HMAC_SHA1_80 inline:QUJD", "", 0, true},
		{"not inline", "1 AES_CM_128_HMAC_SHA1_80 uri:" + key, "", 0, true},
		{"bad tag", "x AES_CM_128_HMAC_SHA1_80 inline:" + key, "", 0, true},
		{"too few fields", "1 AES_CM_128_HMAC_SHA1_80", "", 0, true},
		{"empty", "", "", 0, true},
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
			if c.Suite != tc.suite || c.Tag != tc.tag || len(c.Key) != 16 || len(c.Salt) != 14 {
				t.Fatalf("got %+v", c)
			}
			back, err := ParseCrypto(c.String())
			if err != nil || !bytes.Equal(back.Key, c.Key) || !bytes.Equal(back.Salt, c.Salt) || back.Suite != c.Suite {
				t.Fatalf("round trip of %q: %+v, %v", c.String(), back, err)
			}
		})
	}
}

func FuzzParseCrypto(f *testing.F) {
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR|2^20")
	f.Add("a=crypto:9 AES_CM_128_HMAC_SHA1_32 inline:PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR;inline:x")
	f.Add("1 AES_CM_128_HMAC_SHA1_80 inline:||||")
	f.Fuzz(func(t *testing.T, s string) {
		c, err := ParseCrypto(s)
		if err != nil {
			return
		}
		if _, err := ParseCrypto(c.String()); err != nil {
			t.Fatalf("our own %q does not parse: %v", c.String(), err)
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
