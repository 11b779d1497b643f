package controlplane

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"strings"
	"sync"
)

// The SIP stack below the handlers drops what it cannot parse without a
// word (UDP), cuts the connection (TCP), or answers a bare "400 Bad Request"
// for a request without Via or CSeq. The checks here run on the raw bytes
// before it: a request missing a mandatory header (RFC 3261 §8.1.1) or with
// a CSeq that does not parse (§20.16, §8.1.1.5) gets one 400 naming the
// fault, and never reaches the stack. Well-formed messages pass unchanged.

// rawFault is what rawCheck found wrong with a request head.
type rawFault struct {
	reason string
	// frameLost: the message's length is unknown (Content-Length does not
	// parse), so a stream cannot be read past it.
	frameLost bool
}

// rawHead is a parsed message head: the start line and the header lines.
type rawHead struct {
	start  string
	lines  []string // unfolded header lines, as received
	byName map[string][]int
}

// compact maps RFC 3261 §7.3.3 compact header names to full ones.
var compactNames = map[string]string{"v": "via", "f": "from", "t": "to", "i": "call-id", "l": "content-length", "m": "contact", "c": "content-type"}

func parseRawHead(head []byte) rawHead {
	text := strings.ReplaceAll(string(head), "\r\n", "\n")
	all := strings.Split(text, "\n")
	h := rawHead{start: strings.TrimSpace(all[0]), byName: map[string][]int{}}
	for _, l := range all[1:] {
		if l == "" {
			continue
		}
		if (l[0] == ' ' || l[0] == '\t') && len(h.lines) > 0 {
			h.lines[len(h.lines)-1] += " " + strings.TrimSpace(l) // §7.3.1 folding
			continue
		}
		h.lines = append(h.lines, strings.TrimRight(l, " \t"))
		name, _, _ := strings.Cut(l, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if full, ok := compactNames[name]; ok {
			name = full
		}
		h.byName[name] = append(h.byName[name], len(h.lines)-1)
	}
	return h
}

func (h rawHead) value(name string) (string, bool) {
	idx := h.byName[name]
	if len(idx) == 0 {
		return "", false
	}
	_, v, _ := strings.Cut(h.lines[idx[0]], ":")
	return strings.TrimSpace(v), true
}

// method is the request's method, "" for a response or a start line that
// is no request line.
func (h rawHead) method() string {
	parts := strings.Fields(h.start)
	if len(parts) != 3 || !strings.HasPrefix(parts[2], "SIP/") || strings.HasPrefix(parts[0], "SIP/") {
		return ""
	}
	return parts[0]
}

// rawCheck returns the fault of a request head, or nil. Responses and what
// is not SIP at all pass: the stack drops those, and a response to a
// response is never sent.
func rawCheck(h rawHead) *rawFault {
	m := h.method()
	if m == "" {
		return nil
	}
	if cl, ok := h.value("content-length"); ok {
		if n, err := strconv.Atoi(cl); err != nil || n < 0 {
			return &rawFault{reason: "Malformed Content-Length", frameLost: true}
		}
	}
	for _, name := range []struct{ key, label string }{{"via", "Via"}, {"call-id", "Call-ID"}, {"from", "From"}, {"to", "To"}, {"cseq", "CSeq"}} {
		if v, ok := h.value(name.key); !ok || v == "" {
			return &rawFault{reason: "Missing " + name.label}
		}
	}
	cseq, _ := h.value("cseq")
	num, cm, ok := strings.Cut(cseq, " ")
	cm = strings.TrimSpace(cm)
	n, err := strconv.ParseUint(num, 10, 32)
	// §8.1.1.5: the sequence number is below 2**31; the method is a token.
	if !ok || err != nil || n >= 1<<31 || cm == "" || strings.ContainsAny(cm, " \t") {
		return &rawFault{reason: "Malformed CSeq"}
	}
	if !strings.EqualFold(cm, m) {
		return &rawFault{reason: "CSeq Method Mismatch"}
	}
	return nil
}

// rawResponse builds the 400 for a refused request head (§8.2.6.2: Via,
// From, To, Call-ID and CSeq copied, a To tag added), or nil when none may
// be sent: to an ACK (§17.2.1), or when the answer would be larger than
// the request, so that a forged source can never be sent more bytes than
// the forger spent.
func rawResponse(h rawHead, reason string, reqLen int) []byte {
	if h.method() == "ACK" {
		return nil
	}
	var b bytes.Buffer
	b.WriteString("SIP/2.0 400 " + reason + "\r\n")
	for _, l := range h.lines {
		name, _, _ := strings.Cut(l, ":")
		name = strings.ToLower(strings.TrimSpace(name))
		if full, ok := compactNames[name]; ok {
			name = full
		}
		switch name {
		case "via", "from", "call-id", "cseq":
			b.WriteString(l + "\r\n")
		case "to":
			if !strings.Contains(strings.ToLower(l), ";tag=") {
				var t [6]byte
				_, _ = rand.Read(t[:])
				l += ";tag=" + hex.EncodeToString(t[:])
			}
			b.WriteString(l + "\r\n")
		}
	}
	b.WriteString("Content-Length: 0\r\n\r\n")
	if b.Len() > reqLen {
		return nil
	}
	return b.Bytes()
}

// headEnd finds the blank line ending a message head (CRLF CRLF, or LF LF
// from a lenient peer) and returns the head length and where the body
// starts, or -1.
func headEnd(b []byte) (int, int) {
	i := bytes.Index(b, []byte("\r\n\r\n"))
	j := bytes.Index(b, []byte("\n\n"))
	switch {
	case i < 0 && j < 0:
		return -1, -1
	case i >= 0 && (j < 0 || i+2 <= j):
		return i, i + 4
	default:
		return j, j + 2
	}
}

// checkedPacketConn runs rawCheck on each datagram read: a refused request
// is answered (to its source address, never a Via of the sender's choice)
// and not handed up.
type checkedPacketConn struct {
	net.PacketConn
	refused func(code int)
}

func (c *checkedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	for {
		n, from, err := c.PacketConn.ReadFrom(b)
		if err != nil || n == 0 {
			return n, from, err
		}
		end, _ := headEnd(b[:n])
		if end < 0 {
			end = n
		}
		h := parseRawHead(b[:end])
		f := rawCheck(h)
		if f == nil {
			return n, from, nil
		}
		if res := rawResponse(h, f.reason, n); res != nil {
			_, _ = c.PacketConn.WriteTo(res, from)
		}
		if c.refused != nil {
			c.refused(400)
		}
	}
}

// maxStreamHead bounds a message head on a stream; longer is no SIP this
// daemon serves, and the connection is closed.
const maxStreamHead = 64 << 10

// checkedConn frames SIP messages on a stream connection (RFC 3261 §18.3:
// head, blank line, Content-Length bytes of body) and runs rawCheck on each
// head. A refused request is answered on the connection and skipped with
// its body; when its length is unknown the connection is closed after the
// answer.
type checkedConn struct {
	net.Conn
	refused func(code int)

	mu      sync.Mutex
	in      []byte // read, not yet judged or passed
	out     []byte // judged, to hand up
	pass    int    // body bytes still to hand up unjudged
	skip    int    // body bytes of a refused request still to drop
	readErr error
	closing bool
	buf     []byte // read buffer, kept between reads
}

var errFrameLost = errors.New("sip stream framing lost")

func (c *checkedConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.buf == nil {
		c.buf = make([]byte, 16<<10)
	}
	for len(c.out) == 0 {
		if c.closing {
			return 0, errFrameLost
		}
		if c.readErr != nil && len(c.in) == 0 {
			return 0, c.readErr
		}
		if len(c.in) == 0 || !c.step() {
			if c.readErr != nil {
				// What is left can never complete: hand it up as is.
				c.out, c.in = c.in, nil
				if len(c.out) == 0 {
					return 0, c.readErr
				}
				break
			}
			n, err := c.Conn.Read(c.buf)
			c.in = append(c.in, c.buf[:n]...)
			c.readErr = err
		}
	}
	n := copy(b, c.out)
	c.out = c.out[n:]
	return n, nil
}

// step moves what it can from in to out; false means more bytes are needed.
func (c *checkedConn) step() bool {
	if c.skip > 0 {
		n := min(c.skip, len(c.in))
		c.in, c.skip = c.in[n:], c.skip-n
		return len(c.in) > 0 || c.skip == 0
	}
	if c.pass > 0 {
		n := min(c.pass, len(c.in))
		c.out = append(c.out, c.in[:n]...)
		c.in, c.pass = c.in[n:], c.pass-n
		return true
	}
	// Keepalive CRLFs (RFC 5626 §3.5.1) between messages pass through.
	if k := len(c.in) - len(bytes.TrimLeft(c.in, "\r\n")); k > 0 {
		c.out = append(c.out, c.in[:k]...)
		c.in = c.in[k:]
		return true
	}
	end, body := headEnd(c.in)
	if end < 0 {
		if len(c.in) > maxStreamHead {
			c.closing = true
			return true
		}
		return false
	}
	h := parseRawHead(c.in[:end])
	length := 0
	if cl, ok := h.value("content-length"); ok {
		length, _ = strconv.Atoi(cl)
	}
	if f := rawCheck(h); f != nil {
		if res := rawResponse(h, f.reason, body+max(length, 0)); res != nil {
			_, _ = c.Conn.Write(res)
		}
		if c.refused != nil {
			c.refused(400)
		}
		c.in = c.in[body:]
		if f.frameLost {
			c.closing = true
			return true
		}
		c.skip = length
		return true
	}
	c.out = append(c.out, c.in[:body]...)
	c.in = c.in[body:]
	c.pass = length
	return true
}

// checkedListener wraps each accepted connection in a checkedConn.
type checkedListener struct {
	net.Listener
	refused func(code int)
}

func (l checkedListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &checkedConn{Conn: c, refused: l.refused}, nil
}

// rawRefused counts a request the raw checks refused.
func (d *Daemon) rawRefused(code int) {
	d.metrics.malformed.WithLabelValues(strconv.Itoa(code)).Inc()
}
