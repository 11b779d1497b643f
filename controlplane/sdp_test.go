package controlplane

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

const offerPCMU = "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\n" +
	"m=audio 4000 RTP/AVP 18 0 101\r\na=rtpmap:18 G729/8000\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"

func TestParseAndNegotiate(t *testing.T) {
	cases := []struct {
		name      string
		sdp       string
		wantErr   error
		wantCodec string
		wantDTMF  bool
		remote    string
		hold      bool
	}{
		{"pcmu with dtmf", offerPCMU, nil, "PCMU", true, "192.0.2.1:4000", false},
		{"pcma by rtpmap", strings.Replace(offerPCMU, "18 0 101", "96", 1) + "a=rtpmap:96 PCMA/8000\r\n", nil, "PCMA", false, "192.0.2.1:4000", false},
		{"no common codec", strings.Replace(offerPCMU, "18 0 101", "18", 1), ErrNoCommonCodec, "", false, "", false},
		{"wideband pcmu refused", strings.Replace(offerPCMU, "18 0 101", "97", 1) + "a=rtpmap:97 PCMU/16000\r\n", ErrNoCommonCodec, "", false, "", false},
		{"hold sendonly", strings.Replace(offerPCMU, "a=sendrecv", "a=sendonly", 1), nil, "PCMU", true, "192.0.2.1:4000", true},
		{"hold 0.0.0.0", strings.ReplaceAll(offerPCMU, "IN IP4 192.0.2.1\r\nt", "IN IP4 0.0.0.0\r\nt"), nil, "PCMU", true, "0.0.0.0:4000", true},
		{"ipv6", strings.ReplaceAll(offerPCMU, "IN IP4 192.0.2.1", "IN IP6 2001:db8::1"), nil, "PCMU", true, "[2001:db8::1]:4000", false},
		{"no audio", "v=0\r\no=- 1 1 IN IP4 192.0.2.1\r\ns=-\r\nc=IN IP4 192.0.2.1\r\nt=0 0\r\nm=video 4000 RTP/AVP 96\r\n", ErrNoCommonCodec, "", false, "", false},
		{"no connection", strings.Replace(offerPCMU, "c=IN IP4 192.0.2.1\r\n", "", 1), ErrBadSDP, "", false, "", false},
		{"garbage", "hello", ErrBadSDP, "", false, "", false},
		{"empty", "", ErrBadSDP, "", false, "", false},
		{"bad address", strings.ReplaceAll(offerPCMU, "IN IP4 192.0.2.1\r\nt", "IN IP4 999.1.1.1\r\nt"), ErrBadSDP, "", false, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			off, err := ParseAudioSDP([]byte(c.sdp))
			var codecs []Codec
			if err == nil {
				codecs, err = negotiate(off.Codecs)
			}
			if c.wantErr != nil {
				if !errors.Is(err, c.wantErr) {
					t.Fatalf("err %v, want %v", err, c.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if codecs[0].Name != c.wantCodec || (len(codecs) == 2) != c.wantDTMF {
				t.Fatalf("codecs %+v", codecs)
			}
			if off.Remote.String() != c.remote || off.OnHold() != c.hold {
				t.Fatalf("remote %s hold %v", off.Remote, off.OnHold())
			}
		})
	}
}

func TestAnswerKeepsMLineCount(t *testing.T) {
	two := offerPCMU + "m=video 5000 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\n"
	off, err := ParseAudioSDP([]byte(two))
	if err != nil {
		t.Fatal(err)
	}
	codecs, _ := negotiate(off.Codecs)
	ans := localSDP{SessionID: 1, Version: 2, Local: netip.MustParseAddrPort("127.0.0.1:20000"), Codecs: codecs,
		Dir: answerDir(off.Dir), Index: off.Index, Lines: off.Lines, Media: off.Media}.marshal()
	back, err := ParseAudioSDP(ans)
	if err != nil {
		t.Fatalf("our answer does not parse: %v\n%s", err, ans)
	}
	if back.Lines != 2 || !strings.Contains(string(ans), "m=video 0 RTP/AVP") || back.Remote.Port() != 20000 {
		t.Fatalf("answer:\n%s", ans)
	}
	if back.Codecs[0].Name != "PCMU" || back.Codecs[0].PT != 0 || back.Codecs[1].PT != 101 {
		t.Fatalf("answer codecs %+v", back.Codecs)
	}
}

func TestAnswerDir(t *testing.T) {
	for in, want := range map[MediaDir]MediaDir{DirSendRecv: DirSendRecv, DirSendOnly: DirRecvOnly, DirRecvOnly: DirSendOnly, DirInactive: DirInactive} {
		if got := answerDir(in); got != want {
			t.Errorf("answerDir(%s) = %s, want %s", in, got, want)
		}
	}
}

func FuzzParseAudioSDP(f *testing.F) {
	f.Add([]byte(offerPCMU))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 0 RTP/AVP\r\n"))
	f.Add([]byte("v=0\r\nm=audio 99999 RTP/AVP 0\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		off, err := ParseAudioSDP(b)
		if err != nil {
			return
		}
		if codecs, err := negotiate(off.Codecs); err == nil {
			// Whatever we accept, our answer to it must parse again.
			ans := localSDP{Local: netip.MustParseAddrPort("127.0.0.1:20000"), Codecs: codecs, Dir: answerDir(off.Dir),
				Index: off.Index, Lines: off.Lines, Media: off.Media}.marshal()
			if _, err := ParseAudioSDP(ans); err != nil {
				t.Fatalf("answer to an accepted offer does not parse: %v\n%s", err, ans)
			}
		}
	})
}
