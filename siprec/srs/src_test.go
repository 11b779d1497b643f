package srs

import (
	"context"
	"fmt"
	"math"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"
)

// testSRC is a minimal SIPREC client driven by the tests: one sipgo user
// agent, a manual dialog, and plain UDP sockets for RTP.
type testSRC struct {
	t         *testing.T
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	client    *sipgo.Client
	port      int
	transport string
	srsAddr   string
	udp       net.PacketConn
	tcp       net.Listener
	serve     sync.WaitGroup
	byes      chan *sip.Request
	updates   chan *sip.Request
	// snapshot answers an rs-metadata-request UPDATE from the SRS.
	snapshot string

	mu        sync.Mutex
	callID    string
	fromTag   string
	toTag     string
	cseq      uint32
	target    sip.Uri
	version   int
	noSrcTag  bool
	noRequire bool
}

func newTestSRC(t *testing.T, srsAddr, transport string) *testSRC {
	t.Helper()
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("test-src"))
	if err != nil {
		t.Fatal(err)
	}
	srv, err := sipgo.NewServer(ua)
	if err != nil {
		t.Fatal(err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"))
	if err != nil {
		t.Fatal(err)
	}
	c := &testSRC{t: t, ua: ua, srv: srv, client: client, transport: transport, srsAddr: srsAddr,
		byes: make(chan *sip.Request, 4), updates: make(chan *sip.Request, 4), callID: fmt.Sprintf("call-%d@test", time.Now().UnixNano()),
		fromTag: sip.GenerateTagN(10), cseq: 1, version: 1}
	// UDP and TCP share one port; the UDP port the kernel picks may be taken
	// for TCP (an ephemeral connection of another test), so try a few.
	var (
		u net.PacketConn
		l net.Listener
	)
	for attempt := 0; ; attempt++ {
		if u, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		c.port = u.LocalAddr().(*net.UDPAddr).Port
		if l, err = net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", c.port)); err == nil {
			break
		}
		u.Close()
		if attempt == 20 {
			t.Fatalf("no port free for both UDP and TCP: %v", err)
		}
	}
	c.udp, c.tcp = u, l
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		c.byes <- req
	})
	srv.OnUpdate(func(req *sip.Request, tx sip.ServerTransaction) {
		res := sip.NewResponseFromRequest(req, 200, "OK", []byte(c.snapshot))
		res.AppendHeader(sip.NewHeader("Content-Type", "application/rs-metadata+xml"))
		_ = tx.Respond(res)
		c.updates <- req
	})
	c.serve.Add(2)
	go func() { defer c.serve.Done(); _ = srv.ServeUDP(u) }()
	go func() { defer c.serve.Done(); _ = srv.ServeTCP(l) }()
	t.Cleanup(c.close)
	return c
}

func (c *testSRC) close() {
	c.udp.Close()
	c.tcp.Close()
	c.ua.Close()
	c.serve.Wait()
}

func (c *testSRC) srsURI() sip.Uri {
	host, port, _ := net.SplitHostPort(c.srsAddr)
	u := sip.Uri{Scheme: "sip", User: "srs", Host: host}
	fmt.Sscan(port, &u.Port)
	return u
}

// sdpOffer renders an offer with one audio m-line per direction.
func (c *testSRC) sdpOffer(dirs []string, labels []string, ports []int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "v=0\r\no=src 42 %d IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n", c.version)
	for i, d := range dirs {
		port := 30000 + 2*i
		if ports != nil {
			port = ports[i]
		}
		fmt.Fprintf(&b, "m=audio %d RTP/AVP 0 8 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:101 telephone-event/8000\r\na=label:%s\r\na=%s\r\n", port, labels[i], d)
	}
	return b.String()
}

func testMetadata(mode string, labels ...string) string {
	var b strings.Builder
	fmt.Fprintf(&b, `<?xml version="1.0" encoding="UTF-8"?>`+"\r\n"+`<recording xmlns="urn:ietf:params:xml:ns:recording:1"><datamode>%s</datamode>`, mode)
	b.WriteString(`<session session_id="c2Vzc2lvbjE="><sipSessionID>abc</sipSessionID></session>`)
	for i, l := range labels {
		fmt.Fprintf(&b, `<stream stream_id="c3RyZWFt%d" session_id="c2Vzc2lvbjE="><label>%s</label></stream>`, i, l)
	}
	b.WriteString(`</recording>`)
	return b.String()
}

const testBoundary = "recfork-boundary-1"

func multipartBody(sdpText, meta string) string {
	return "--" + testBoundary + "\r\nContent-Type: application/sdp\r\n\r\n" + sdpText +
		"\r\n--" + testBoundary + "\r\nContent-Type: application/rs-metadata+xml\r\nContent-Disposition: recording-session\r\n\r\n" + meta +
		"\r\n--" + testBoundary + "--\r\n"
}

// request sends one INVITE (initial when toTag is empty) and returns the
// final response, ACKing a 2xx.
func (c *testSRC) invite(ctx context.Context, contentType, body string, extra ...sip.Header) *sip.Response {
	c.t.Helper()
	c.mu.Lock()
	initial := c.toTag == ""
	target := c.srsURI()
	if !initial {
		target = c.target
	}
	req := sip.NewRequest(sip.INVITE, target)
	req.SetTransport(c.transport)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "src", Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", c.fromTag)
	to := &sip.ToHeader{Address: c.srsURI(), Params: sip.NewParams()}
	if !initial {
		to.Params.Add("tag", c.toTag)
	}
	callID := sip.CallIDHeader(c.callID)
	seq := c.cseq
	c.cseq++
	contact := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "src", Host: "127.0.0.1", Port: c.port}, Params: sip.NewParams()}
	if strings.EqualFold(c.transport, "tcp") {
		contact.Address.UriParams = sip.NewParams()
		contact.Address.UriParams.Add("transport", "tcp")
	}
	if !c.noSrcTag {
		contact.Params.Add("+sip.src", "")
	}
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.INVITE})
	req.AppendHeader(&maxFwd)
	req.AppendHeader(contact)
	if !c.noRequire {
		req.AppendHeader(sip.NewHeader("Require", "siprec"))
	}
	for _, h := range extra {
		req.AppendHeader(h)
	}
	if contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody([]byte(body))
	c.mu.Unlock()

	tx, err := c.client.TransactionRequest(ctx, req)
	if err != nil {
		c.t.Fatalf("send invite: %v", err)
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if res.IsSuccess() {
				c.ack(res, seq)
			}
			return res
		case <-tx.Done():
			c.t.Fatalf("invite transaction: %v", tx.Err())
		case <-ctx.Done():
			c.t.Fatalf("invite: %v", ctx.Err())
		}
	}
}

func (c *testSRC) ack(res *sip.Response, seq uint32) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.toTag = tagOf(res.To().Params)
	if ct := res.Contact(); ct != nil {
		c.target = *ct.Address.Clone()
	}
	ack := sip.NewRequest(sip.ACK, *c.target.Clone())
	ack.SetTransport(c.transport)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "src", Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", c.fromTag)
	to := res.To().AsFrom() // copy address and tag
	toH := &sip.ToHeader{DisplayName: to.DisplayName, Address: to.Address, Params: to.Params}
	callID := sip.CallIDHeader(c.callID)
	maxFwd := sip.MaxForwardsHeader(70)
	ack.AppendHeader(from)
	ack.AppendHeader(toH)
	ack.AppendHeader(&callID)
	ack.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.ACK})
	ack.AppendHeader(&maxFwd)
	ack.SetBody(nil)
	if err := c.client.WriteRequest(ack); err != nil {
		c.t.Fatalf("send ack: %v", err)
	}
}

func (c *testSRC) bye(ctx context.Context) *sip.Response {
	c.t.Helper()
	return c.request(ctx, sip.BYE, "", "")
}

// request sends an in-dialog request other than INVITE and ACK.
func (c *testSRC) request(ctx context.Context, method sip.RequestMethod, contentType, body string) *sip.Response {
	c.t.Helper()
	c.mu.Lock()
	req := sip.NewRequest(method, *c.target.Clone())
	req.SetTransport(c.transport)
	from := &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: "src", Host: "127.0.0.1"}, Params: sip.NewParams()}
	from.Params.Add("tag", c.fromTag)
	to := &sip.ToHeader{Address: c.srsURI(), Params: sip.NewParams()}
	to.Params.Add("tag", c.toTag)
	callID := sip.CallIDHeader(c.callID)
	maxFwd := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: c.cseq, MethodName: method})
	req.AppendHeader(&maxFwd)
	if contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody([]byte(body))
	c.cseq++
	c.mu.Unlock()
	res, err := c.client.Do(ctx, req)
	if err != nil {
		c.t.Fatalf("%s: %v", method, err)
	}
	return res
}

// answerPorts returns the RTP port per answered m-line.
func answerPorts(t *testing.T, res *sip.Response) ([]int, []string) {
	t.Helper()
	o, err := parseOffer(res.Body())
	if err != nil {
		t.Fatalf("parse answer: %v\n%s", err, res.Body())
	}
	var ports []int
	var dirs []string
	for _, m := range o.mlines {
		ports = append(ports, m.port)
		dirs = append(dirs, m.dir)
	}
	return ports, dirs
}

// ulawEncode is a straightforward G.711 µ-law compressor for test signals.
func ulawEncode(x int16) byte {
	const bias, clip = 0x84, 32635
	v := int32(x)
	sign := byte(0)
	if v < 0 {
		v = -v
		sign = 0x80
	}
	v = min(v, clip) + bias
	exp := byte(7)
	for mask := int32(0x4000); v&mask == 0 && exp > 0; mask >>= 1 {
		exp--
	}
	mant := byte(v>>(exp+3)) & 0x0f
	return ^(sign | exp<<4 | mant)
}

// tone returns n µ-law bytes of a sine at freq Hz starting at sample start.
func tone(freq float64, start, n int) []byte {
	out := make([]byte, n)
	for i := range out {
		out[i] = ulawEncode(int16(8000 * math.Sin(2*math.Pi*freq*float64(start+i)/8000)))
	}
	return out
}

// rtpSender sends 20 ms PCMU packets of a tone to one port.
type rtpSender struct {
	conn *net.UDPConn
	ssrc uint32
	seq  uint16
	ts   uint32
	freq float64
	sent map[uint32][]byte // timestamp -> payload, for checking the file
}

func newRTPSender(t *testing.T, port int, ssrc uint32, freq float64) *rtpSender {
	t.Helper()
	conn, err := net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rtpSender{conn: conn, ssrc: ssrc, seq: 1000, ts: 5000, freq: freq, sent: map[uint32][]byte{}}
}

func (s *rtpSender) send(t *testing.T, packets int) {
	t.Helper()
	for range packets {
		payload := tone(s.freq, int(s.ts), 160)
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: s.seq, Timestamp: s.ts, SSRC: s.ssrc}, Payload: payload}
		b, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := s.conn.Write(b); err != nil {
			t.Fatal(err)
		}
		s.sent[s.ts] = payload
		s.seq++
		s.ts += 160
	}
}

// skip advances the timestamp as a paused sender's clock does.
func (s *rtpSender) skip(samples uint32) { s.ts += samples }
