package controlplane

import (
	"bytes"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/recfork/recfork/dataplane/srtp"
)

const (
	sdesKey1 = "PS1uQCVeeCFCanVmcjkpPywjNWhcYD0mXXtxaVBR"
	sdesKey2 = "YUJDZGVmZ2hpSktMbW9QUXJzVFVWd3l6MTIzNDU2"
	sdpHead  = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n"
)

func savpLine(port string, cryptos ...string) string {
	s := "m=audio " + port + " RTP/SAVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n"
	for _, c := range cryptos {
		s += "a=crypto:" + c + "\r\n"
	}
	return s
}

const avpLine = "m=audio 4000 RTP/AVP 0\r\na=sendrecv\r\n"

// TestSRTPOfferAnswer is the SDP side of SRTP on calls, per --call-srtp
// mode: which m-line is taken, which a=crypto is chosen (the first one
// recfork can key, in the peer's order: unknown suites, bad keys and
// unsupported session parameters skipped; lifetimes and MKIs accepted), and
// the reason an offer is refused.
func TestSRTPOfferAnswer(t *testing.T) {
	for _, tc := range []struct {
		name, mode, sdp string
		err             error
		index           int
		proto           string
		tag             int
		suite           string
	}{
		{"one _80", CallSRTPAccept, sdpHead + savpLine("4000", "1 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey1), nil, 0, protoSAVP, 1, srtp.SuiteSHA1_80},
		{"one _32", CallSRTPRequire, sdpHead + savpLine("4000", "7 AES_CM_128_HMAC_SHA1_32 inline:"+sdesKey1), nil, 0, protoSAVP, 7, srtp.SuiteSHA1_32},
		{"several lines, peer's order", CallSRTPAccept, sdpHead + savpLine("4000",
			"1 AES_CM_128_HMAC_SHA1_32 inline:"+sdesKey1, "2 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey2), nil, 0, protoSAVP, 1, srtp.SuiteSHA1_32},
		{"unknown suites skipped", CallSRTPAccept, sdpHead + savpLine("4000",
			"1 AEAD_AES_256_GCM inline:"+sdesKey1, "2 AES_256_CM_HMAC_SHA1_80 inline:"+sdesKey1, "3 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey2), nil, 0, protoSAVP, 3, srtp.SuiteSHA1_80},
		{"bad key skipped", CallSRTPAccept, sdpHead + savpLine("4000",
			"1 AES_CM_128_HMAC_SHA1_80 inline:QUJD", "2 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey2), nil, 0, protoSAVP, 2, srtp.SuiteSHA1_80},
		{"unsupported session parameter skipped", CallSRTPAccept, sdpHead + savpLine("4000",
			"1 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey1+" UNENCRYPTED_SRTP", "2 AES_CM_128_HMAC_SHA1_32 inline:"+sdesKey2+" KDR=0"), nil, 0, protoSAVP, 2, srtp.SuiteSHA1_32},
		{"lifetime and mki accepted", CallSRTPAccept, sdpHead + savpLine("4000", "1 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey1+"|2^20|1:4"), nil, 0, protoSAVP, 1, srtp.SuiteSHA1_80},
		{"lifetime as a number", CallSRTPAccept, sdpHead + savpLine("4000", "1 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey1+"|1048576"), nil, 0, protoSAVP, 1, srtp.SuiteSHA1_80},
		{"savp preferred over avp", CallSRTPAccept, sdpHead + avpLine + savpLine("4002", "1 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey1), nil, 1, protoSAVP, 1, srtp.SuiteSHA1_80},
		{"avp when savp has no usable key", CallSRTPAccept, sdpHead + savpLine("4002", "1 AEAD_AES_128_GCM inline:"+sdesKey1) + avpLine, nil, 1, protoAVP, 0, ""},
		{"plain call when accepting", CallSRTPAccept, sdpHead + avpLine, nil, 0, protoAVP, 0, ""},
		{"off takes avp beside savp", CallSRTPOff, sdpHead + avpLine + savpLine("4002", "1 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey1), nil, 0, protoAVP, 0, ""},

		{"off refuses savp only", CallSRTPOff, sdpHead + savpLine("4000", "1 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey1), errSRTPOff, 0, "", 0, ""},
		{"require refuses avp", CallSRTPRequire, sdpHead + avpLine, errSRTPRequired, 0, "", 0, ""},
		{"savp without crypto", CallSRTPAccept, sdpHead + savpLine("4000"), errNoCrypto, 0, "", 0, ""},
		{"savp without crypto, off", CallSRTPOff, sdpHead + savpLine("4000"), errNoCrypto, 0, "", 0, ""},
		{"savp with only unknown suites", CallSRTPRequire, sdpHead + savpLine("4000", "1 AEAD_AES_256_GCM inline:"+sdesKey1), errNoCrypto, 0, "", 0, ""},
		{"require, savp without crypto beside avp", CallSRTPRequire, sdpHead + avpLine + savpLine("4002"), errNoCrypto, 0, "", 0, ""},
		{"dtls savpf", CallSRTPAccept, sdpHead + "m=audio 4000 UDP/TLS/RTP/SAVPF 0\r\na=fingerprint:sha-256 AB:CD\r\na=setup:actpass\r\n", errDTLSSRTP, 0, "", 0, ""},
		{"dtls savp, off", CallSRTPOff, sdpHead + "m=audio 4000 UDP/TLS/RTP/SAVP 0\r\na=fingerprint:sha-256 AB:CD\r\n", errDTLSSRTP, 0, "", 0, ""},
		{"dtls under rtp/savp", CallSRTPRequire, sdpHead + "a=fingerprint:sha-256 AB:CD\r\n" + savpLine("4000"), errDTLSSRTP, 0, "", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			off, err := parseSDPSRTP([]byte(tc.sdp), tc.mode)
			if tc.err != nil {
				if !errors.Is(err, tc.err) || !errors.Is(err, ErrNoCommonCodec) {
					t.Fatalf("err %v, want %v (and ErrNoCommonCodec)", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if off.Index != tc.index || off.Proto != tc.proto {
				t.Fatalf("took m-line %d %s, want %d %s", off.Index, off.Proto, tc.index, tc.proto)
			}
			if tc.proto == protoAVP {
				if len(off.Crypto) != 0 {
					t.Fatalf("plain stream with keys %+v", off.Crypto)
				}
				return
			}
			leg, err := answerSRTP(off.Crypto)
			if err != nil {
				t.Fatal(err)
			}
			own := leg.local[0]
			if own.Tag != tc.tag || own.Suite != tc.suite || leg.remote.Tag != tc.tag {
				t.Fatalf("answered tag %d %s, want %d %s", own.Tag, own.Suite, tc.tag, tc.suite)
			}
			if bytes.Equal(own.Key, leg.remote.Key) || len(own.MKI) != 0 {
				t.Fatal("the answer echoes the peer's key or carries an MKI")
			}
			codecs, err := negotiate(off.Codecs)
			if err != nil {
				t.Fatal(err)
			}
			ans := localSDP{SessionID: 1, Version: 1, Local: netip.MustParseAddrPort("127.0.0.1:20000"), Codecs: codecs,
				Dir: answerDir(off.Dir), Index: off.Index, Lines: off.Lines, Media: off.Media,
				Proto: protoSAVP, Crypto: leg.cryptoLines()}.marshal()
			if n := strings.Count(string(ans), "a=crypto:"); n != 1 {
				t.Fatalf("answer has %d a=crypto lines, want 1:\n%s", n, ans)
			}
			// The answer as the peer reads it: our key, its tag and suite.
			back, err := parseSDPSRTP(ans, CallSRTPRequire)
			if err != nil {
				t.Fatalf("our answer does not parse: %v\n%s", err, ans)
			}
			if back.Index != tc.index || len(back.Crypto) != 1 || !bytes.Equal(back.Crypto[0].Key, own.Key) || back.Crypto[0].Tag != tc.tag {
				t.Fatalf("answer:\n%s", ans)
			}
		})
	}
}

// TestSRTPOfferWarnings checks the 488 Warning of each refusal names its
// cause (RFC 3261 §20.43: 302 for a transport recfork does not speak).
func TestSRTPOfferWarnings(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{errDTLSSRTP, `302 recfork "DTLS-SRTP (UDP/TLS/RTP/SAVP, a=fingerprint) is not supported`},
		{errNoCrypto, `399 recfork "RTP/SAVP offered without a usable a=crypto`},
		{errSRTPOff, `302 recfork "SRTP on calls is off`},
		{errSRTPRequired, `302 recfork "SRTP required`},
	} {
		h := offerWarning(tc.err)
		if !strings.HasPrefix(h.Value(), tc.want) || strings.Contains(h.Value(), ErrNoCommonCodec.Error()) {
			t.Errorf("Warning %q, want it to start %q", h.Value(), tc.want)
		}
	}
}

// TestSRTPOutboundOfferAndAnswer: recfork's own offer has a key per suite;
// the peer's answer picks one by tag, and only an answer matching a tag and
// suite of the offer is taken.
func TestSRTPOutboundOfferAndAnswer(t *testing.T) {
	leg, err := offerSRTP()
	if err != nil {
		t.Fatal(err)
	}
	offer := localSDP{Local: netip.MustParseAddrPort("127.0.0.1:20000"), Codecs: defaultCodecs, Dir: DirSendRecv,
		Proto: protoSAVP, Crypto: leg.cryptoLines()}.marshal()
	off, err := parseSDPSRTP(offer, CallSRTPRequire)
	if err != nil || len(off.Crypto) != 2 || off.Crypto[0].Suite != srtp.SuiteSHA1_80 || off.Crypto[1].Suite != srtp.SuiteSHA1_32 {
		t.Fatalf("offer %v:\n%s", err, offer)
	}
	if bytes.Equal(off.Crypto[0].Key, off.Crypto[1].Key) {
		t.Fatal("one key for both suites")
	}
	peer, _ := srtp.NewCrypto(2, srtp.SuiteSHA1_32)
	wrongTag, _ := srtp.NewCrypto(9, srtp.SuiteSHA1_32)
	if err := leg.accept([]srtp.Crypto{wrongTag}); !errors.Is(err, ErrNoCommonCodec) {
		t.Fatalf("answer with a tag never offered: %v", err)
	}
	if err := leg.accept([]srtp.Crypto{peer}); err != nil {
		t.Fatal(err)
	}
	if len(leg.local) != 1 || leg.local[0].Tag != 2 || leg.local[0].Suite != srtp.SuiteSHA1_32 {
		t.Fatalf("kept %+v, want our tag-2 _32 key", leg.local)
	}
	// A re-offer with a new key of the same suite keeps ours; another suite
	// gets a new one of ours.
	ours := leg.local[0].Key
	next, _ := srtp.NewCrypto(2, srtp.SuiteSHA1_32)
	if err := leg.reoffer([]srtp.Crypto{next}); err != nil || !bytes.Equal(leg.local[0].Key, ours) || !bytes.Equal(leg.remote.Key, next.Key) {
		t.Fatalf("re-offer, same suite: %v", err)
	}
	other, _ := srtp.NewCrypto(1, srtp.SuiteSHA1_80)
	if err := leg.reoffer([]srtp.Crypto{other}); err != nil || bytes.Equal(leg.local[0].Key, ours) || leg.local[0].Suite != srtp.SuiteSHA1_80 {
		t.Fatalf("re-offer, other suite: %v", err)
	}
}

func FuzzParseSRTPOffer(f *testing.F) {
	f.Add([]byte(sdpHead+savpLine("4000", "1 AES_CM_128_HMAC_SHA1_80 inline:"+sdesKey1+"|2^20|1:4")), uint8(1))
	f.Add([]byte(sdpHead+avpLine+savpLine("4002", "x", "1 AES_CM_128_HMAC_SHA1_32 inline:"+sdesKey2+" KDR=0")), uint8(2))
	f.Add([]byte(sdpHead+"m=audio 4000 UDP/TLS/RTP/SAVPF 0\r\na=fingerprint:sha-256 AB\r\n"), uint8(0))
	modes := []string{CallSRTPOff, CallSRTPAccept, CallSRTPRequire}
	f.Fuzz(func(t *testing.T, b []byte, m uint8) {
		mode := modes[int(m)%len(modes)]
		off, err := parseSDPSRTP(b, mode)
		if err != nil {
			return
		}
		codecs, err := negotiate(off.Codecs)
		if err != nil {
			return
		}
		l := localSDP{Local: netip.MustParseAddrPort("127.0.0.1:20000"), Codecs: codecs, Dir: answerDir(off.Dir),
			Index: off.Index, Lines: off.Lines, Media: off.Media}
		want := CallSRTPOff
		if off.Proto == protoSAVP {
			leg, err := answerSRTP(off.Crypto)
			if err != nil {
				t.Fatalf("accepted srtp offer cannot be keyed: %v", err)
			}
			l.Proto, l.Crypto, want = protoSAVP, leg.cryptoLines(), CallSRTPRequire
		}
		if _, err := parseSDPSRTP(l.marshal(), want); err != nil {
			t.Fatalf("answer to an accepted offer does not parse: %v\n%s", err, l.marshal())
		}
	})
}
