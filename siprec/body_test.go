package siprec

import (
	"bytes"
	"encoding/binary"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite golden files")

// goldenSession builds a Client without sockets, with a fixed clock, ids and
// boundary, to render bodies deterministically.
func goldenSession(t testing.TB) *session {
	t.Helper()
	var n uint64
	c := &Client{cfg: Config{
		MediaIP: lo,
		Now:     func() time.Time { return time.Date(2026, 11, 25, 9, 30, 0, 0, time.UTC) },
		NewUUID: func() [16]byte {
			n++
			var u [16]byte
			binary.BigEndian.PutUint64(u[8:], n)
			u[0] = 0x5e
			return u
		},
	}, fixedBoundary: "recfork-golden-boundary"}
	c.log = discardLogger()
	c.to = Timeouts{}.withDefaults()
	return newSession(c, testLeg())
}

func TestGoldenInviteBody(t *testing.T) {
	s := goldenSession(t)
	s.started = s.c.cfg.Now()
	id := s.c.cfg.NewUUID()
	s.sdpID = binary.BigEndian.Uint64(id[:8]) >> 2
	s.sdpVer = 1
	s.md = mdIDs{session: s.newID(), remote: s.newID(), local: s.newID()}
	streams := []*stream{
		{dir: 1, label: "1", id: s.newID(), offered: "sendonly"},
		{dir: 2, label: "2", id: s.newID(), offered: "sendonly"},
	}
	streams[0].ep.ID, streams[0].ep.Local = 101, netipPort(30002)
	streams[1].ep.ID, streams[1].ep.Local = 102, netipPort(30004)
	body, ct, err := s.body(s.offerLocked(streams), s.metadataLocked(streams, DataComplete, nil))
	if err != nil {
		t.Fatal(err)
	}
	got := append([]byte("Content-Type: "+ct+"\r\n\r\n"), body...)
	path := filepath.Join("testdata", "invite_body.golden")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("INVITE body differs from %s:\n%s", path, got)
	}
	// The golden body must also read back as what it claims to be.
	parts, err := ParseBody(ct, body)
	if err != nil || len(parts) != 2 {
		t.Fatalf("parse: %v %d", err, len(parts))
	}
	if !bytes.Contains(body, []byte("Content-Type: application/sdp\r\n")) ||
		!bytes.Contains(body, []byte("Content-Disposition: recording-session\r\n")) {
		t.Fatal("part headers must be written Name: value")
	}
	if _, err := matchAnswer([]sdpStream{{Port: 30002}, {Port: 30004}}, parts[0].Body); err == nil {
		t.Fatal("our own sendonly offer is no valid answer")
	}
	m, err := ParseMetadata(parts[1].Body)
	if err != nil {
		t.Fatal(err)
	}
	if m.Sessions[0].StartTime != s.started || m.Sessions[0].SIPSessionIDs[0] != testLeg().SessionID {
		t.Fatalf("session %+v", m.Sessions[0])
	}
}

func TestMetadataElementOrder(t *testing.T) {
	s := goldenSession(t)
	s.started = s.c.cfg.Now()
	s.md = mdIDs{session: s.newID(), remote: s.newID(), local: s.newID()}
	streams := []*stream{{dir: 1, label: "10", id: s.newID(), offered: "sendonly"}}
	b := s.metadataLocked(streams, DataComplete, nil)
	order := []string{"<datamode>", "<session ", "<participant ", "<stream ", "<sessionrecordingassoc ",
		"<participantsessionassoc ", "<participantstreamassoc "}
	last := -1
	for _, tag := range order {
		i := bytes.Index(b, []byte(tag))
		if i < 0 || i < last {
			t.Fatalf("%s out of the RFC 7865 order in:\n%s", tag, b)
		}
		last = i
	}
}

func TestParseMetadata(t *testing.T) {
	cases := []struct {
		name, doc string
		ok        bool
		check     func(*testing.T, *Metadata)
	}{
		{"rfc-like with extensions", `<?xml version="1.0"?>
<recording xmlns='urn:ietf:params:xml:ns:recording:1' xmlns:x="urn:example:ext">
 <datamode>complete</datamode>
 <x:vendor>ignored</x:vendor>
 <group group_id="7+OTCyoxTmqmqyA/1weDAg=="><associate-time>2010-12-16T23:41:07Z</associate-time></group>
 <session session_id="hVpd7YQgRW2nD22h7q60JQ=="><sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</sipSessionID><group-ref>7+OTCyoxTmqmqyA/1weDAg==</group-ref><start-time>2010-12-16T23:41:07+01:00</start-time></session>
 <participant participant_id="srfBElmCRp2QB23b7Mpk0w=="><nameID aor="sip:bob@biloxi.com"><name xml:lang="it">Bob</name></nameID><x:extra/></participant>
 <stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><label>96</label></stream>
 <participantstreamassoc participant_id="srfBElmCRp2QB23b7Mpk0w=="><send>UAAMm5GRQKSCMVvLyl4rFw==</send></participantstreamassoc>
</recording>`, true, func(t *testing.T, m *Metadata) {
			if len(m.Sessions) != 1 || len(m.Participants) != 1 || m.Participants[0].Names[0].Name != "Bob" ||
				m.Streams[0].Label != "96" || m.ParticipantStreamAssocs[0].Send[0] != m.Streams[0].ID {
				t.Fatalf("%+v", m)
			}
			if m.Sessions[0].StartTime.UTC().Hour() != 22 {
				t.Fatalf("start %v", m.Sessions[0].StartTime)
			}
		}},
		{"partial without namespace", `<recording><datamode>partial</datamode></recording>`, true, nil},
		{"wrong namespace", `<recording xmlns="urn:other"><datamode>complete</datamode></recording>`, false, nil},
		{"wrong root", `<foo xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>complete</datamode></foo>`, false, nil},
		{"no datamode", `<recording xmlns='urn:ietf:params:xml:ns:recording:1'/>`, false, nil},
		{"bad datamode", `<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>full</datamode></recording>`, false, nil},
		{"bad time", `<recording><datamode>complete</datamode><session session_id="a"><start-time>yesterday</start-time></session></recording>`, false, nil},
		{"not xml", `<<<`, false, nil},
		{"empty", ``, false, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m, err := ParseMetadata([]byte(tc.doc))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err == nil && tc.check != nil {
				tc.check(t, m)
			}
		})
	}
}

func TestMetadataRoundTrip(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 6e6, time.UTC)
	m := &Metadata{DataMode: DataComplete,
		Sessions:                 []MDSession{{ID: "s", SIPSessionIDs: []string{"x"}, StartTime: at, StopTime: at.Add(time.Minute)}},
		Participants:             []MDParticipant{{ID: "p", Names: []MDNameID{{AOR: "sip:a@b", Name: "A & <B>"}}}},
		Streams:                  []MDStream{{ID: "st", SessionID: "s", Label: "1"}},
		SessionRecordingAssocs:   []MDAssoc{{SessionID: "s", AssociateTime: at}},
		ParticipantSessionAssocs: []MDAssoc{{SessionID: "s", ParticipantID: "p", AssociateTime: at, DisassociateTime: at}},
		ParticipantStreamAssocs:  []MDStreamAssoc{{ParticipantID: "p", Send: []string{"st"}}},
	}
	b, err := m.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	got, err := ParseMetadata(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Participants[0].Names[0].Name != "A & <B>" || !got.Sessions[0].StopTime.Equal(at.Add(time.Minute)) ||
		!got.ParticipantSessionAssocs[0].DisassociateTime.Equal(at) || got.Streams[0] != m.Streams[0] {
		t.Fatalf("round trip:\n%s\n%+v", b, got)
	}
	if _, err := (&Metadata{DataMode: "x"}).Marshal(); err == nil {
		t.Fatal("bad datamode marshalled")
	}
}

func TestParseBody(t *testing.T) {
	cases := []struct {
		name, ct, body string
		parts          int
		ok             bool
	}{
		{"sdp only", "application/sdp", "v=0\r\n", 1, true},
		{"multipart legacy metadata", "multipart/mixed;boundary=xyz",
			"--xyz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--xyz\r\nContent-Type: application/rs-metadata\r\nContent-Disposition: recording-session\r\n\r\n<recording/>\r\n--xyz--\r\n", 2, true},
		{"headers without space", "multipart/mixed; boundary=\"b\"",
			"--b\r\nContent-Type:application/sdp\r\n\r\nv=0\r\n--b--\r\n", 1, true},
		{"no boundary", "multipart/mixed", "--b\r\n", 0, false},
		{"no closing", "multipart/mixed;boundary=b", "--b\r\nContent-Type: a/b\r\n\r\nxx", 0, false},
		{"empty multipart", "multipart/mixed;boundary=b", "--b--\r\n", 0, false},
		{"bad content type", "a/b;;=", "x", 0, false},
		{"body without type", "", "x", 0, false},
		{"nothing", "", "", 0, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			parts, err := ParseBody(tc.ct, []byte(tc.body))
			if (err == nil) != tc.ok || len(parts) != tc.parts {
				t.Fatalf("parts=%d err=%v", len(parts), err)
			}
		})
	}
	parts, _ := ParseBody("multipart/mixed;boundary=xyz",
		[]byte("--xyz\r\nContent-Type: application/rs-metadata\r\n\r\n<r/>\r\n--xyz--\r\n"))
	if _, ok := findPart(parts, MetadataType, MetadataTypeLegacy); !ok {
		t.Fatal("legacy metadata type not found")
	}
}

func TestMatchAnswer(t *testing.T) {
	offer := []sdpStream{{Port: 30002, Dir: "sendonly"}, {Port: 0}, {Port: 30006, Dir: "inactive"}}
	sdpWith := func(mlines ...string) string {
		return "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" + strings.Join(mlines, "")
	}
	cases := []struct {
		name, body string
		ok         bool
	}{
		{"recvonly, port 0, inactive", sdpWith("m=audio 40000 RTP/AVP 0\r\na=recvonly\r\n", "m=audio 0 RTP/AVP 0\r\n", "m=audio 40004 RTP/AVP 0\r\na=inactive\r\n"), true},
		{"labels rewritten", sdpWith("m=audio 40000 RTP/AVP 0\r\na=label:zz\r\na=recvonly\r\n", "m=audio 0 RTP/AVP 0\r\n", "m=audio 40004 RTP/AVP 0\r\na=label:yy\r\na=recvonly\r\n"), true},
		{"refused", sdpWith("m=audio 0 RTP/AVP 0\r\n", "m=audio 0 RTP/AVP 0\r\n", "m=audio 0 RTP/AVP 0\r\n"), true},
		{"sendrecv tolerated", sdpWith("m=audio 40000 RTP/AVP 0\r\n", "m=audio 0 RTP/AVP 0\r\n", "m=audio 40004 RTP/AVP 0\r\n"), true},
		{"too few m-lines", sdpWith("m=audio 40000 RTP/AVP 0\r\na=recvonly\r\n"), false},
		{"sendonly answer", sdpWith("m=audio 40000 RTP/AVP 0\r\na=sendonly\r\n", "m=audio 0 RTP/AVP 0\r\n", "m=audio 40004 RTP/AVP 0\r\n"), false},
		{"video", sdpWith("m=video 40000 RTP/AVP 96\r\n", "m=audio 0 RTP/AVP 0\r\n", "m=audio 40004 RTP/AVP 0\r\n"), false},
		{"host name", "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nc=IN IP4 srs.example\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 1 RTP/AVP 0\r\n", false},
		{"no address", "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 1 RTP/AVP 0\r\nm=audio 0 RTP/AVP 0\r\nm=audio 1 RTP/AVP 0\r\n", false},
		{"garbage", "hello", false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ans, err := matchAnswer(offer, []byte(tc.body))
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err == nil && len(ans) != len(offer) {
				t.Fatalf("%d answers", len(ans))
			}
		})
	}
}

func TestCodecsFromSDP(t *testing.T) {
	body := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 0 RTP/AVP 9\r\n" +
		"m=audio 4000 RTP/AVP 8 101\r\na=rtpmap:101 telephone-event/8000\r\na=fmtp:101 0-15\r\na=sendrecv\r\n"
	got, err := CodecsFromSDP([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	want := []Codec{{PayloadType: 8, Name: "PCMA", ClockRate: 8000}, {PayloadType: 101, Name: "telephone-event", ClockRate: 8000, Fmtp: "0-15"}}
	if len(got) != 2 || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("codecs %+v", got)
	}
	for _, bad := range []string{"", "v=0\r\n", "v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 300\r\n",
		"v=0\r\no=- 1 1 IN IP4 h\r\ns=-\r\nt=0 0\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 opus\r\n"} {
		if _, err := CodecsFromSDP([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestOfferShape(t *testing.T) {
	o := sdpOffer{SessionID: 1, Version: 3, IP: lo, Codecs: testLeg().Codecs,
		Streams: []sdpStream{{Port: 30002, Label: "1", Dir: "inactive"}, {Port: 0, Label: "2", Dir: "sendonly"}}}
	b, err := o.marshal()
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"o=recfork 1 3 IN IP4 127.0.0.1", "m=audio 30002 RTP/AVP 0 101", "a=rtpmap:101 telephone-event/8000",
		"a=fmtp:101 0-16", "a=label:1", "m=audio 0 RTP/AVP 0 101", "a=label:2"} {
		if !bytes.Contains(b, []byte(want)) {
			t.Errorf("offer lacks %q:\n%s", want, b)
		}
	}
	_, st, err := parseStreams(b)
	if err != nil || st[0].Dir != "inactive" || st[1].Dir != "inactive" || st[1].Port != 0 {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := (sdpOffer{IP: lo}).marshal(); err == nil {
		t.Fatal("offer without codecs")
	}
}

func FuzzParseMetadata(f *testing.F) {
	f.Add([]byte(`<recording xmlns='urn:ietf:params:xml:ns:recording:1'><datamode>complete</datamode><session session_id="a"><start-time>2010-12-16T23:41:07Z</start-time></session></recording>`))
	f.Add([]byte(`<recording><datamode>partial</datamode><participantstreamassoc participant_id="p"><send>s</send></participantstreamassoc></recording>`))
	f.Add([]byte(`<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><recording>&a;</recording>`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMetadata(b)
		if err != nil {
			return
		}
		out, err := m.Marshal()
		if err != nil {
			t.Fatalf("parsed document does not marshal: %v", err)
		}
		if _, err := ParseMetadata(out); err != nil {
			t.Fatalf("marshalled document does not parse: %v\n%s", err, out)
		}
	})
}

func FuzzMatchAnswer(f *testing.F) {
	f.Add([]byte("v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=recvonly\r\nm=audio 0 RTP/AVP 0\r\n"))
	f.Add([]byte("v=0\r\no=- 1 1 IN IP6 ::1\r\ns=-\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\nc=IN IP6 ::1\r\na=inactive\r\nm=audio 1 RTP/AVP 0\r\nc=IN IP4 1.2.3.4\r\n"))
	f.Add([]byte("garbage"))
	offer := []sdpStream{{Port: 30002, Dir: "sendonly"}, {Port: 30004, Dir: "inactive"}}
	f.Fuzz(func(t *testing.T, b []byte) {
		ans, err := matchAnswer(offer, b)
		if err != nil {
			return
		}
		if len(ans) != len(offer) {
			t.Fatalf("%d answers for %d offers", len(ans), len(offer))
		}
		for _, a := range ans {
			if a.Port != 0 && !a.Addr.IsValid() {
				t.Fatalf("accepted stream without address: %+v", a)
			}
		}
		_, _ = CodecsFromSDP(b)
	})
}

func FuzzParseBody(f *testing.F) {
	f.Add("multipart/mixed;boundary=xyz", []byte("--xyz\r\nContent-Type: application/sdp\r\n\r\nv=0\r\n--xyz--\r\n"))
	f.Add("application/sdp", []byte("v=0"))
	f.Add("multipart/mixed;boundary=\"a b\"", []byte("--a b\r\n\r\n--a b--"))
	// One seed per accepted shape of TestBodyQuirks.
	f.Add("application/sdp", []byte(quirkSDP))
	f.Add("multipart/mixed;boundary=foobar", []byte("preamble\n--foobar\nc: application/sdp\nl: 9\n\n"+quirkSDP+
		"\n--foobar\nCONTENT-TYPE: application/rs-metadata\ncontent-disposition: recording-session;handling=required\n\n"+quirkMeta+"\n--foobar--\nepilogue"))
	f.Add(`multipart/mixed; boundary="foo bar:1"`, []byte("--foo bar:1\r\nContent-Type: application/rs-metadata+xml\r\n\r\n"+quirkMeta+
		"\r\n--foo bar:1\r\nContent-Type: application/sdp\r\n\r\n"+quirkSDP+"\r\n--foo bar:1--"))
	f.Fuzz(func(t *testing.T, ct string, b []byte) {
		parts, err := ParseBody(ct, b)
		if err != nil {
			return
		}
		if len(parts) > 17 {
			t.Fatalf("%d parts", len(parts))
		}
		// What we parse we can write again and read back the same way.
		if len(parts) > 0 && strings.HasPrefix(strings.ToLower(ct), "multipart/") {
			ct2, body2, err := writeMultipart("", parts...)
			if err != nil {
				return
			}
			again, err := ParseBody(ct2, body2)
			if err != nil || len(again) != len(parts) {
				t.Fatalf("rewrite: %v, %d vs %d parts", err, len(again), len(parts))
			}
		}
	})
}

// quirkSDP is an SRS answer shaped like RFC 7866 §8's examples: LF line
// ends as printed, and no line end after the last line.
const quirkSDP = "v=0\no=SRS 2890844526 2890844526 IN IP4 198.51.100.1\ns=-\n" +
	"c=IN IP4 198.51.100.1\nt=0 0\nm=audio 12240 RTP/AVP 0 4 8\na=recvonly\na=label:1"

const quirkMeta = `<?xml version="1.0" encoding="UTF-8"?>
<rec:recording xmlns:rec='urn:ietf:params:xml:ns:recording:1' xmlns:x='urn:example:x'>
<rec:datamode>complete</rec:datamode><x:vendor>acme</x:vendor>
</rec:recording>`

// TestBodyQuirks feeds the SRC's parsing of SRS answers and re-INVITEs one
// case per shape deployed SRSs send (RFC 2046 §5.1, RFC 7866 §8); the SRS
// has the same table in siprec/srs.
func TestBodyQuirks(t *testing.T) {
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	std := func(sdpPart, metaPart string) string {
		return "--foobar\r\nContent-Type: application/sdp\r\n\r\n" + sdpPart +
			"\r\n--foobar\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n" +
			metaPart + "\r\n--foobar--\r\n"
	}
	const mixed = "multipart/mixed;boundary=foobar"
	cases := []struct {
		name, ct, body string
		want           string // "" accepted, else a substring of the error
	}{
		{"plain SDP without final CRLF", "application/sdp", crlf(quirkSDP), ""},
		{"plain SDP LF-only", "application/sdp", quirkSDP + "\n", ""},
		{"RFC 7866 example, no CRLF before boundary", mixed, std(crlf(quirkSDP), crlf(quirkMeta)), ""},
		{"LF-only multipart", mixed, strings.ReplaceAll(std(quirkSDP, quirkMeta), "\r\n", "\n"), ""},
		{"quoted boundary", `multipart/mixed; boundary="foo bar:1"`, strings.ReplaceAll(std(crlf(quirkSDP), quirkMeta), "--foobar", "--foo bar:1"), ""},
		{"preamble and epilogue", mixed, "preamble\r\n" + std(crlf(quirkSDP)+"\r\n", quirkMeta) + "epilogue\r\n", ""},
		{"metadata first", mixed, "--foobar\r\nContent-Type: application/rs-metadata+xml\r\n\r\n" + quirkMeta +
			"\r\n--foobar\r\nContent-Type: application/sdp\r\n\r\n" + crlf(quirkSDP) + "\r\n--foobar--", ""},
		{"disposition with parameters", mixed, strings.Replace(std(crlf(quirkSDP), quirkMeta), "recording-session", "recording-session;handling=required", 1), ""},
		{"legacy rs-metadata type", mixed, strings.Replace(std(crlf(quirkSDP), quirkMeta), "rs-metadata+xml", "rs-metadata", 1), ""},
		{"header names in any case", "MULTIPART/Mixed;BOUNDARY=foobar", strings.NewReplacer("Content-Type", "content-TYPE", "Content-Disposition", "CONTENT-disposition").Replace(std(crlf(quirkSDP), quirkMeta)), ""},
		{"compact c: and l:", mixed, "--foobar\r\nc: application/sdp\r\nl: 140\r\n\r\n" + crlf(quirkSDP) +
			"\r\n--foobar\r\nc:application/rs-metadata+xml\r\n\r\n" + quirkMeta + "\r\n--foobar--", ""},

		{"boundary never found", "multipart/mixed;boundary=other", std(quirkSDP, quirkMeta), "no part delimited by boundary"},
		{"no boundary parameter", "multipart/mixed", std(quirkSDP, quirkMeta), "without boundary"},
		{"SDP garbage", mixed, std("hello", quirkMeta), "parse sdp"},
		{"no SDP part", mixed, "--foobar\r\nContent-Type: application/rs-metadata+xml\r\n\r\n" + quirkMeta + "\r\n--foobar--", "no sdp part"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			st, err := quirkIntake(tc.ct, []byte(tc.body))
			if tc.want != "" {
				if err == nil || !strings.Contains(err.Error(), tc.want) {
					t.Fatalf("err = %v, want %q", err, tc.want)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(st) != 1 || st[0].Port != 12240 || st[0].Dir != "recvonly" || st[0].Label != "1" ||
				st[0].Addr.String() != "198.51.100.1" {
				t.Fatalf("streams read wrong: %+v", st)
			}
		})
	}
}

// quirkIntake is what the SRC does with an answer or re-INVITE body: split
// it, take the SDP part, read its m-lines.
func quirkIntake(ct string, body []byte) ([]sdpStream, error) {
	parts, err := ParseBody(ct, body)
	if err != nil {
		return nil, err
	}
	p, ok := findPart(parts, "application/sdp")
	if !ok {
		return nil, errors.New("no sdp part")
	}
	_, st, err := parseStreams(p.Body)
	return st, err
}
