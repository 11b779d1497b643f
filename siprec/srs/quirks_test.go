package srs

import (
	"errors"
	"strings"
	"testing"
)

// rfc7866SDP is the SDP of RFC 7866 §8.1.1's example INVITE: LF line ends
// as printed in the RFC, and no line end after the last line, because the
// example puts the closing delimiter right after it.
const rfc7866SDP = "v=0\no=SRS 2890844526 2890844526 IN IP4 198.51.100.1\ns=-\n" +
	"c=IN IP4 198.51.100.1\nt=0 0\nm=audio 12240 RTP/AVP 0 4 8\na=sendonly\na=label:1"

// rfc7866Meta is the metadata of the same example, with a namespace prefix
// and an unknown extension element (##other in RFC 7865's schema).
const rfc7866Meta = `<?xml version="1.0" encoding="UTF-8"?>
<rec:recording xmlns:rec='urn:ietf:params:xml:ns:recording:1' xmlns:x='urn:example:x'>
<rec:datamode>complete</rec:datamode>
<x:vendor>acme</x:vendor>
<rec:session session_id="hVpd7YQgRW2nD22h7q60JQ=="><rec:sipSessionID>ab30317f1a784dc48ff824d0d3715d86;remote=47755a9de7794ba387653f2099600ef2</rec:sipSessionID></rec:session>
<rec:stream stream_id="UAAMm5GRQKSCMVvLyl4rFw==" session_id="hVpd7YQgRW2nD22h7q60JQ=="><rec:label>1</rec:label></rec:stream>
</rec:recording>`

// quirkCase is one accepted or refused body shape. Both parsers (this
// package's and siprec's) have a table built from the same shapes.
type quirkCase struct {
	name   string
	ct     string
	body   string
	code   int    // 0: accepted
	reason string // expected reason phrase on refusal
}

func quirkCases() []quirkCase {
	crlf := func(s string) string { return strings.ReplaceAll(s, "\n", "\r\n") }
	std := func(sdpPart, metaPart string) string {
		return "--foobar\r\nContent-Type: application/sdp\r\n\r\n" + sdpPart +
			"\r\n--foobar\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n" +
			metaPart + "\r\n--foobar--\r\n"
	}
	return []quirkCase{
		{"RFC 7866 example, no CRLF before boundary", "multipart/mixed;boundary=foobar", std(crlf(rfc7866SDP), crlf(rfc7866Meta)), 0, ""},
		{"LF-only everywhere", "multipart/mixed;boundary=foobar", strings.ReplaceAll(std(rfc7866SDP, rfc7866Meta), "\r\n", "\n"), 0, ""},
		{"quoted boundary", `multipart/mixed; boundary="foo bar:1"`,
			strings.ReplaceAll(std(crlf(rfc7866SDP), rfc7866Meta), "--foobar", "--foo bar:1"), 0, ""},
		{"preamble and epilogue", "multipart/mixed;boundary=foobar",
			"This is a preamble.\r\n" + std(crlf(rfc7866SDP)+"\r\n", rfc7866Meta) + "epilogue\r\n", 0, ""},
		{"metadata first", "multipart/mixed;boundary=foobar",
			"--foobar\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n" + rfc7866Meta +
				"\r\n--foobar\r\nContent-Type: application/sdp\r\n\r\n" + crlf(rfc7866SDP) + "\r\n--foobar--", 0, ""},
		{"disposition with parameters", "multipart/mixed;boundary=foobar",
			strings.Replace(std(crlf(rfc7866SDP), rfc7866Meta), "recording-session", "recording-session;handling=required", 1), 0, ""},
		{"legacy rs-metadata type", "multipart/mixed;boundary=foobar",
			strings.Replace(std(crlf(rfc7866SDP), rfc7866Meta), "rs-metadata+xml", "rs-metadata", 1), 0, ""},
		{"header names in any case", "Multipart/Mixed;Boundary=foobar",
			strings.NewReplacer("Content-Type", "CONTENT-type", "Content-Disposition", "content-DISPOSITION").Replace(std(crlf(rfc7866SDP), rfc7866Meta)), 0, ""},
		{"compact c: and l: part headers", "multipart/mixed;boundary=foobar",
			"--foobar\r\nc: application/sdp\r\nl: 150\r\n\r\n" + crlf(rfc7866SDP) +
				"\r\n--foobar\r\nc:application/rs-metadata+xml\r\nContent-Disposition:recording-session\r\n\r\n" + rfc7866Meta + "\r\n--foobar--", 0, ""},

		{"no metadata part", "multipart/mixed;boundary=foobar",
			"--foobar\r\nContent-Type: application/sdp\r\n\r\n" + crlf(rfc7866SDP) + "\r\n--foobar--\r\n", 400, "Missing Recording Metadata"},
		{"no SDP part", "multipart/mixed;boundary=foobar",
			"--foobar\r\nContent-Type: application/rs-metadata+xml\r\n\r\n" + rfc7866Meta + "\r\n--foobar--\r\n", 400, "Missing SDP Part"},
		{"no boundary parameter", "multipart/mixed", std(rfc7866SDP, rfc7866Meta), 400, "Malformed Multipart Body"},
		{"boundary never found", "multipart/mixed;boundary=other", std(rfc7866SDP, rfc7866Meta), 400, "Malformed Multipart Body"},
		{"malformed part content type", "multipart/mixed;boundary=foobar",
			strings.Replace(std(rfc7866SDP, rfc7866Meta), "application/sdp", "application/sdp;;=", 1), 400, "Malformed Multipart Body"},
		{"metadata not XML", "multipart/mixed;boundary=foobar", std(rfc7866SDP, "<recording><datamode>"), 400, "Malformed Recording Metadata"},
		{"SDP garbage", "multipart/mixed;boundary=foobar", std("hello world", rfc7866Meta), 400, "Malformed SDP"},
		{"bad message content type", "multipart/mixed;boundary=", std(rfc7866SDP, rfc7866Meta), 400, "Malformed Content-Type"},
	}
}

// TestBodyQuirks runs every shape through the INVITE intake as the server
// does it: split the body, then parse the SDP offer.
func TestBodyQuirks(t *testing.T) {
	for _, c := range quirkCases() {
		t.Run(c.name, func(t *testing.T) {
			code, reason, o := intake(c.ct, c.body)
			if code != c.code || (c.code != 0 && reason != c.reason) {
				t.Fatalf("got %d %q, want %d %q", code, reason, c.code, c.reason)
			}
			if c.code != 0 {
				return
			}
			if len(o.mlines) != 1 || o.mlines[0].port != 12240 || o.mlines[0].label != "1" || o.mlines[0].dir != dirSendOnly {
				t.Fatalf("offer read wrong: %+v", o.mlines)
			}
		})
	}
}

// intake mirrors the INVITE handler's body steps and returns the status
// code and reason it would answer with.
func intake(ct, body string) (int, string, *offer) {
	b, err := parseBody(ct, []byte(body), true)
	if err != nil {
		var be *BodyError
		if !errors.As(err, &be) {
			return 500, err.Error(), nil
		}
		return be.Code, be.Reason, nil
	}
	o, err := parseOffer(b.sdp)
	if err != nil {
		return 400, "Malformed SDP", nil
	}
	return 0, "", o
}
