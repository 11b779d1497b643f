package srs

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/pion/rtp"
)

const bodyOffer = "v=0\r\no=src 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
	"m=audio 30000 RTP/AVP 0 96\r\na=rtpmap:96 PCMA/8000\r\na=label:1\r\na=sendonly\r\n" +
	"m=audio 30002 RTP/AVP 8\r\na=label:2\r\na=inactive\r\n" +
	"m=audio 0 RTP/AVP 0\r\na=label:3\r\n" +
	"m=audio 30006 RTP/SAVP 0\r\na=label:4\r\na=sendonly\r\n"

func TestParseBody(t *testing.T) {
	meta := testMetadata("complete", "1")
	cases := []struct {
		name     string
		ct, body string
		initial  bool
		code     int // 0: accepted
		metaType string
		dispOK   bool
	}{
		{"standard", "multipart/mixed;boundary=" + testBoundary, multipartBody(bodyOffer, meta), true, 0, typeMetadata, true},
		{"legacy type, no disposition", "multipart/mixed; boundary=\"q\"",
			"--q\r\nContent-Type: application/sdp\r\n\r\n" + bodyOffer + "\r\n--q\r\nContent-Type: application/rs-metadata\r\n\r\n" + meta + "\r\n--q--\r\n", true, 0, typeMetadataLegacy, false},
		{"LF only and preamble", "multipart/mixed;boundary=z",
			"preamble\n--z\nContent-Type: application/rs-metadata+xml\nContent-Disposition: recording-session\n\n" + meta + "\n--z\nContent-Type: application/sdp\n\n" + bodyOffer + "\n--z--\n", true, 0, typeMetadata, true},
		{"unknown optional part ignored", "multipart/mixed;boundary=z",
			"--z\r\nContent-Type: text/plain\r\n\r\nhi\r\n" +
				"--z\r\nContent-Type: application/sdp\r\n\r\n" + bodyOffer + "\r\n--z\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n" + meta + "\r\n--z--\r\n", true, 0, typeMetadata, true},
		{"required unknown part", "multipart/mixed;boundary=z",
			"--z\r\nContent-Type: application/x-foo\r\nContent-Disposition: render;handling=required\r\n\r\nhi\r\n--z--\r\n", true, 415, "", false},
		{"re-INVITE sdp only", "application/sdp", bodyOffer, false, 0, "", false},
		{"initial sdp only", "application/sdp", bodyOffer, true, 400, "", false},
		{"empty", "", "", true, 400, "", false},
		{"offerless re-INVITE", "", "", false, 400, "", false},
		{"bad content type", "multipart/", "x", true, 400, "", false},
		{"json", "application/json", "{}", true, 415, "", false},
		{"two sdp parts", "multipart/mixed;boundary=z",
			"--z\r\nContent-Type: application/sdp\r\n\r\n" + bodyOffer + "\r\n--z\r\nContent-Type: application/sdp\r\n\r\n" + bodyOffer + "\r\n--z--\r\n", true, 400, "", false},
		{"truncated", "multipart/mixed;boundary=" + testBoundary, multipartBody(bodyOffer, meta)[:200], true, 400, "", false},
		{"two roots", "multipart/mixed;boundary=" + testBoundary, multipartBody(bodyOffer, "<a/><b/>"), true, 400, "", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, err := parseBody(c.ct, []byte(c.body), c.initial)
			if c.code != 0 {
				var be *BodyError
				if !errors.As(err, &be) || be.Code != c.code || !errors.Is(err, ErrBody) {
					t.Fatalf("got %v, want code %d", err, c.code)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(b.sdp) != bodyOffer {
				t.Fatalf("sdp part %q", b.sdp)
			}
			if c.initial && (string(b.metadata) != meta || b.metadataType != c.metaType || b.dispositionOK != c.dispOK) {
				t.Fatalf("metadata %q type %q disposition %v", b.metadata, b.metadataType, b.dispositionOK)
			}
		})
	}
}

func TestInspectMetadata(t *testing.T) {
	m, err := inspectMetadata([]byte(testMetadata("partial", "10", "20")))
	if err != nil {
		t.Fatal(err)
	}
	if m.root.Space != recordingNS || m.root.Local != "recording" || m.dataMode != "partial" || strings.Join(m.labels, ",") != "10,20" {
		t.Fatalf("%+v", m)
	}
	for _, bad := range []string{"", "text", "<a>", "<a></b>", "<a/>junk"} {
		if _, err := inspectMetadata([]byte(bad)); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestOfferAndAnswer(t *testing.T) {
	o, err := parseOffer([]byte(bodyOffer))
	if err != nil {
		t.Fatal(err)
	}
	if len(o.mlines) != 4 || o.version != 1 {
		t.Fatalf("%+v", o)
	}
	wantDirs := []string{dirSendOnly, dirInactive, dirSendRecv, dirSendOnly}
	wantRec := []bool{true, true, false, false}
	for i, m := range o.mlines {
		if m.dir != wantDirs[i] || m.recordable() != wantRec[i] || m.label != []string{"1", "2", "3", "4"}[i] {
			t.Errorf("m-line %d: %+v", i, m)
		}
	}
	if c := o.mlines[0].rtpmap[96]; c.name != "PCMA" || c.rate != 8000 {
		t.Fatalf("dynamic PT 96 mapped to %+v", c)
	}
	ans := buildAnswer(7, 3, netip.MustParseAddr("127.0.0.1"), []answerLine{
		{m: o.mlines[0], port: 40000, dir: dirRecvOnly},
		{m: o.mlines[1], port: 40002, dir: dirInactive},
		{m: o.mlines[2]},
		{m: o.mlines[3]},
	})
	back, err := parseOffer(ans)
	if err != nil {
		t.Fatalf("answer does not parse: %v\n%s", err, ans)
	}
	wantPorts := []int{40000, 40002, 0, 0}
	wantAns := []string{dirRecvOnly, dirInactive, dirSendRecv, dirSendRecv}
	for i, m := range back.mlines {
		if m.port != wantPorts[i] || m.dir != wantAns[i] || m.label != o.mlines[i].label {
			t.Errorf("answer m-line %d: %+v\n%s", i, m, ans)
		}
	}
	if !strings.Contains(string(ans), "o=recfork-srs 7 3 IN IP4 127.0.0.1\r\n") || !strings.Contains(string(ans), "m=audio 0 RTP/SAVP 0\r\n") {
		t.Fatalf("answer:\n%s", ans)
	}
	v6 := buildAnswer(1, 1, netip.MustParseAddr("::1"), nil)
	if !strings.Contains(string(v6), "c=IN IP6 ::1") {
		t.Fatalf("v6 answer:\n%s", v6)
	}
}

// FuzzSIPRECBody feeds arbitrary content types and bodies through the whole
// INVITE intake: multipart split, metadata check, SDP parse and answer.
func FuzzSIPRECBody(f *testing.F) {
	meta := testMetadata("complete", "1")
	f.Add("multipart/mixed;boundary="+testBoundary, multipartBody(bodyOffer, meta), true)
	f.Add("application/sdp", bodyOffer, false)
	f.Add("multipart/mixed;boundary=z", "--z\nContent-Type: application/sdp\n\nv=0\n--z--", true)
	f.Add("multipart/mixed;boundary=z", "--z\r\nContent-Type: application/rs-metadata\r\n\r\n<recording/>\r\n--z--\r\n", true)
	f.Add("application/sdp", "v=0\r\nm=audio 99999 RTP/AVP x\r\n", false)
	for _, c := range quirkCases() {
		f.Add(c.ct, c.body, true)
	}
	f.Fuzz(func(t *testing.T, ct, body string, initial bool) {
		if _, _, err := parseMetadataBody(ct, []byte(body)); err != nil {
			var be *BodyError
			if !errors.As(err, &be) || be.Code < 400 || be.Code > 499 {
				t.Fatalf("bad UPDATE rejection %v", err)
			}
		}
		b, err := parseBody(ct, []byte(body), initial)
		if err != nil {
			var be *BodyError
			if !errors.As(err, &be) || be.Code < 400 || be.Code > 499 || be.Reason == "" {
				t.Fatalf("bad rejection %v", err)
			}
			return
		}
		o, err := parseOffer(b.sdp)
		if err != nil {
			return
		}
		lines := make([]answerLine, len(o.mlines))
		for i, m := range o.mlines {
			lines[i] = answerLine{m: m, dir: dirRecvOnly}
			if m.recordable() {
				lines[i].port = 40000
			}
		}
		// Our answer must be SDP we can read back, whatever came in.
		ans := buildAnswer(1, 1, netip.MustParseAddr("127.0.0.1"), lines)
		back, err := parseOffer(ans)
		if err != nil {
			t.Fatalf("answer does not parse: %v\n%s", err, ans)
		}
		if len(back.mlines) != len(o.mlines) {
			t.Fatalf("answer has %d m-lines for %d offered", len(back.mlines), len(o.mlines))
		}
	})
}

// FuzzRTPIntake feeds arbitrary datagrams to a stream: nothing may panic,
// every datagram is counted, and the file stays a valid WAV.
func FuzzRTPIntake(f *testing.F) {
	p := rtp.Packet{Header: rtp.Header{Version: 2, SequenceNumber: 1, Timestamp: 160, SSRC: 9}, Payload: make([]byte, 160)}
	seed, _ := p.Marshal()
	f.Add(seed, uint16(20))
	f.Add([]byte{0x80, 0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00, 0, 0, 0, 1, 0xd5, 0x55}, uint16(0))
	f.Add([]byte{0xa0, 0x00, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 1, 2, 3, 200}, uint16(5))
	f.Add([]byte{0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 1, 1, 2, 3, 4}, uint16(1))
	f.Fuzz(func(t *testing.T, data []byte, stepMS uint16) {
		dir := t.TempDir()
		srv := &Server{log: discardLogger(), cfg: Config{Dir: dir}}
		ss := &session{srv: srv, id: "fuzz", dir: dir, names: map[string]bool{}}
		w, err := createWAV(dir + "/s.wav")
		if err != nil {
			t.Fatal(err)
		}
		st := &stream{sess: ss, label: "1", mode: ModeRecvOnly, wav: w,
			codecs: map[uint8]codec{0: {"PCMU", 8000}, 8: {"PCMA", 8000}}}
		var pkt rtp.Packet
		at := time.Unix(1000, 0)
		// Split the input into datagrams of varying sizes, re-using the
		// first header with mutated fields to get many plausible packets.
		n := 0
		for off := 0; off < len(data) && n < 64; n++ {
			size := min(len(data)-off, 12+int(data[off])%200)
			st.ingest(&pkt, data[off:off+size], at)
			at = at.Add(time.Duration(stepMS%200) * time.Millisecond)
			off += size
		}
		if err := st.stop(); err != nil {
			t.Fatal(err)
		}
		si := st.info()
		if si.Packets+si.Malformed != uint64(n) {
			t.Fatalf("%d datagrams, %d packets + %d malformed", n, si.Packets, si.Malformed)
		}
		checkWAVHeader(t, dir+"/s.wav")
	})
}

// FuzzSDPOffer parses arbitrary SDP offers and answers them; the answer
// must parse back with one m-line per offered m-line.
func FuzzSDPOffer(f *testing.F) {
	f.Add(bodyOffer)
	f.Add("v=0\r\no=- 1 2 IN IP6 ::1\r\ns=-\r\nt=0 0\r\na=inactive\r\nm=audio 1 RTP/AVP 0\r\n")
	f.Add("v=0\r\no=- 1 2 IN IP4 1.2.3.4\r\ns=-\r\nt=0 0\r\nm=video 0 RTP/AVP 96\r\na=rtpmap:96 H264/90000\r\na=label:x y\r\n")
	f.Fuzz(func(t *testing.T, sdpText string) {
		o, err := parseOffer([]byte(sdpText))
		if err != nil {
			return
		}
		lines := make([]answerLine, len(o.mlines))
		for i, m := range o.mlines {
			lines[i] = answerLine{m: m, dir: dirRecvOnly}
			if m.recordable() {
				lines[i].port = 40000
			}
		}
		ans := buildAnswer(1, 1, netip.MustParseAddr("127.0.0.1"), lines)
		back, err := parseOffer(ans)
		if err != nil {
			t.Fatalf("answer does not parse: %v\n%s", err, ans)
		}
		if len(back.mlines) != len(o.mlines) {
			t.Fatalf("answer has %d m-lines for %d offered\n%s", len(back.mlines), len(o.mlines), ans)
		}
	})
}

// checkWAVHeader checks the header sizes against the file size without
// reading the samples.
func checkWAVHeader(t *testing.T, path string) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := make([]byte, wavHeaderSize)
	if _, err := f.ReadAt(h, 0); err != nil {
		t.Fatal(err)
	}
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	data := binary.LittleEndian.Uint32(h[40:])
	if int64(data) != fi.Size()-wavHeaderSize || binary.LittleEndian.Uint32(h[4:]) != 36+data {
		t.Fatalf("header sizes riff=%d data=%d, file %d bytes", binary.LittleEndian.Uint32(h[4:]), data, fi.Size())
	}
}
