package perf

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// NG is a client of rtpengine's ng control protocol: each request is a cookie,
// a space and a bencoded dictionary, sent in one UDP datagram; the reply
// repeats the cookie.
type NG struct {
	conn *net.UDPConn
	buf  []byte
}

// ErrNG is wrapped when rtpengine answers with result "error".
var ErrNG = errors.New("rtpengine ng error")

// DialNG connects to an ng listener. Call it inside the namespace rtpengine
// listens in.
func DialNG(addr string) (*NG, error) {
	ua, err := net.ResolveUDPAddr("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("resolve ng address %s: %w", addr, err)
	}
	c, err := net.DialUDP("udp", nil, ua)
	if err != nil {
		return nil, fmt.Errorf("dial ng %s: %w", addr, err)
	}
	return &NG{conn: c, buf: make([]byte, 65536)}, nil
}

// Close closes the socket.
func (n *NG) Close() error { return n.conn.Close() }

// EncodeNG returns the datagram of one request.
func EncodeNG(cookie string, msg map[string]any) ([]byte, error) {
	body, err := BencodeMarshal(msg)
	if err != nil {
		return nil, err
	}
	return append([]byte(cookie+" "), body...), nil
}

// DecodeNG splits a reply into its cookie and dictionary.
func DecodeNG(b []byte) (string, map[string]any, error) {
	sp := strings.IndexByte(string(b), ' ')
	if sp < 1 {
		return "", nil, fmt.Errorf("ng reply without cookie: %w", ErrBencode)
	}
	v, err := BencodeUnmarshal(b[sp+1:])
	if err != nil {
		return "", nil, err
	}
	d, ok := v.(map[string]any)
	if !ok {
		return "", nil, fmt.Errorf("ng reply is not a dictionary: %w", ErrBencode)
	}
	return string(b[:sp]), d, nil
}

// Do sends one request and waits for its reply (retrying twice on timeout).
func (n *NG) Do(ctx context.Context, msg map[string]any) (map[string]any, error) {
	var c [8]byte
	_, _ = rand.Read(c[:])
	cookie := hex.EncodeToString(c[:])
	req, err := EncodeNG(cookie, msg)
	if err != nil {
		return nil, err
	}
	for try := 0; try < 3; try++ {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if _, err := n.conn.Write(req); err != nil {
			return nil, fmt.Errorf("send ng %v: %w", msg["command"], err)
		}
		deadline := time.Now().Add(2 * time.Second)
		if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
			deadline = d
		}
		_ = n.conn.SetReadDeadline(deadline)
		for {
			k, err := n.conn.Read(n.buf)
			if err != nil {
				var ne net.Error
				if errors.As(err, &ne) && ne.Timeout() {
					break
				}
				return nil, fmt.Errorf("read ng reply: %w", err)
			}
			ck, d, err := DecodeNG(n.buf[:k])
			if err != nil {
				return nil, err
			}
			if ck != cookie {
				continue // a late reply to an earlier try
			}
			if r, _ := d["result"].(string); r == "error" {
				reason, _ := d["error-reason"].(string)
				return d, fmt.Errorf("ng %v: %s: %w", msg["command"], reason, ErrNG)
			}
			return d, nil
		}
	}
	return nil, fmt.Errorf("ng %v: no reply: %w", msg["command"], context.DeadlineExceeded)
}

// SDPPort returns the port of the first m=audio line of an SDP body.
func SDPPort(sdp string) (int, error) {
	for _, line := range strings.Split(sdp, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "m=audio ") {
			continue
		}
		f := strings.Fields(line)
		var p int
		if len(f) < 2 {
			break
		}
		if _, err := fmt.Sscanf(f[1], "%d", &p); err != nil || p <= 0 || p > 65535 {
			return 0, fmt.Errorf("m=audio port %q: invalid", f[1])
		}
		return p, nil
	}
	return 0, errors.New("sdp has no m=audio line")
}

// AudioSDP returns a minimal PCMU SDP offering ip:port with the direction
// attribute dir ("sendrecv", "recvonly", ...).
func AudioSDP(ip string, port int, dir string) string {
	return "v=0\r\no=- 1 1 IN IP4 " + ip + "\r\ns=-\r\nc=IN IP4 " + ip + "\r\nt=0 0\r\n" +
		fmt.Sprintf("m=audio %d RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\na=%s\r\n", port, dir)
}
