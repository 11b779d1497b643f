package controlplane

import (
	"bytes"
	"io"
	"net"
	"strings"
	"testing"
)

// FuzzRawCheck: any head is judged without panicking, and an answer is
// never larger than the request.
func FuzzRawCheck(f *testing.F) {
	f.Add([]byte("INVITE sip:x@h SIP/2.0\r\nVia: SIP/2.0/UDP h;branch=z9hG4bK1\r\nTo: <sip:x@h>\r\nFrom: <sip:y@h>;tag=1\r\nCall-ID: a\r\nCSeq: 1 INVITE\r\n\r\n"))
	f.Add([]byte("OPTIONS sip:x@h SIP/2.0\nv: SIP/2.0/TCP h\nt: <sip:x@h>\nf: <sip:y@h>\ni: a\nCSeq: 99999999999 OPTIONS\nl: x\n\n"))
	f.Add([]byte("SIP/2.0 200 OK\r\n\r\n"))
	f.Add([]byte("ACK sip:x SIP/2.0\r\n To: x\r\n\r\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		end, _ := headEnd(b)
		if end < 0 {
			end = len(b)
		}
		h := parseRawHead(b[:end])
		if fl := rawCheck(h); fl != nil {
			if res := rawResponse(h, fl.reason, len(b)); len(res) > len(b) {
				t.Fatalf("answer of %d bytes to a request of %d", len(res), len(b))
			}
		}
	})
}

// FuzzCheckedConn: whatever a peer writes, the framing reader returns
// without panicking, and what it hands up is a subsequence of what came.
func FuzzCheckedConn(f *testing.F) {
	good := "OPTIONS sip:x@h SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nTo: <sip:x@h>\r\nFrom: <sip:y@h>;tag=1\r\nCall-ID: a\r\nCSeq: 1 OPTIONS\r\nContent-Length: 3\r\n\r\nabc"
	f.Add([]byte(good + "\r\n\r\n" + strings.Replace(good, "CSeq: 1 OPTIONS", "CSeq: x", 1) + good))
	f.Add([]byte(strings.Replace(good, "Content-Length: 3", "Content-Length: -1", 1)))
	f.Fuzz(func(t *testing.T, b []byte) {
		a, z := net.Pipe()
		go func() {
			_, _ = a.Write(b)
			a.Close()
		}()
		go func() { _, _ = io.Copy(io.Discard, a) }()
		c := &checkedConn{Conn: z}
		got, _ := io.ReadAll(c)
		z.Close()
		if len(got) > len(b) {
			t.Fatalf("handed up %d bytes of %d", len(got), len(b))
		}
		// A response's head is never held back or changed.
		if _, body := headEnd(b); body > 0 && bytes.HasPrefix(b, []byte("SIP/")) && !bytes.HasPrefix(got, b[:body]) {
			t.Fatalf("a response head was changed: %q", got)
		}
	})
}
