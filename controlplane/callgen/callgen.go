package callgen

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/recfork/recfork/controlplane"
)

// Result is one call's outcome.
type Result struct {
	N          int     `json:"n"`
	CallID     string  `json:"call_id"`
	Status     int     `json:"status"`
	Error      string  `json:"error,omitempty"`
	Sent       uint64  `json:"rtp_sent"`
	Received   uint64  `json:"rtp_received"`
	HeardHz    float64 `json:"heard_hz"`
	HeardShare float64 `json:"heard_purity"`
	Seconds    float64 `json:"seconds"`
}

// media sends a tone to a peer and counts and keeps what it receives.
type media struct {
	conn     *net.UDPConn
	tone     toneGen
	sent     atomic.Uint64
	received atomic.Uint64
	mu       sync.Mutex
	heard    []int16 // the first seconds of what arrived, decoded
	done     chan struct{}
}

func newMedia(ip netip.Addr, freq float64) (*media, error) {
	// An even RTP port (RFC 3550 §11): try a few ephemeral ones.
	for i := 0; i < 50; i++ {
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, 0)))
		if err != nil {
			return nil, fmt.Errorf("open rtp socket: %w", err)
		}
		if c.LocalAddr().(*net.UDPAddr).Port%2 == 0 {
			m := &media{conn: c, tone: toneGen{freq: freq, level: 8000}, done: make(chan struct{})}
			go m.receive()
			return m, nil
		}
		c.Close()
	}
	return nil, errors.New("open rtp socket: no even port")
}

func (m *media) close() {
	m.conn.Close()
	<-m.done
}

func (m *media) local() netip.AddrPort {
	ap := m.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

func (m *media) receive() {
	defer close(m.done)
	buf := make([]byte, 1500)
	var p rtp.Packet
	for {
		n, err := m.conn.Read(buf)
		if err != nil {
			return
		}
		if p.Unmarshal(buf[:n]) != nil || p.PayloadType != 0 {
			continue
		}
		m.received.Add(1)
		m.mu.Lock()
		if len(m.heard) < 8000*4 {
			for _, b := range p.Payload {
				m.heard = append(m.heard, ULawToLinear(b))
			}
		}
		m.mu.Unlock()
	}
}

// send paces 20 ms PCMU packets of the tone to peer until ctx ends.
func (m *media) send(ctx context.Context, peer netip.AddrPort) {
	var b [4]byte
	_, _ = rand.Read(b[:])
	pkt := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: 0, SSRC: binary.BigEndian.Uint32(b[:]), Marker: true}}
	payload := make([]byte, 160)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	// Paced by the wall clock, not by ticks: on a loaded machine ticks come
	// late, and a sender that skipped them would compress its RTP timeline.
	start := time.Now()
	var n int64
	for {
		due := int64(time.Since(start)/(20*time.Millisecond)) + 1
		for ; n < due; n++ {
			m.tone.frameULaw(payload)
			pkt.Payload = payload
			if raw, err := pkt.Marshal(); err == nil {
				if _, err := m.conn.WriteToUDPAddrPort(raw, peer); err == nil {
					m.sent.Add(1)
				}
			}
			pkt.SequenceNumber++
			pkt.Timestamp += 160
			pkt.Marker = false
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

func (m *media) result(r *Result) {
	r.Sent, r.Received = m.sent.Load(), m.received.Load()
	m.mu.Lock()
	r.HeardHz, r.HeardShare = DominantFreq(m.heard, 8000)
	m.mu.Unlock()
}

// Endpoint is a small SIP user agent on UDP that places and answers calls.
type Endpoint struct {
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	conn   net.PacketConn
	addr   netip.AddrPort
	dcc    *sipgo.DialogClientCache
	dsc    *sipgo.DialogServerCache
	served chan struct{}

	answerTone atomic.Uint64 // float64 bits; zero refuses calls
	mu         sync.Mutex
	results    []Result
	calls      sync.WaitGroup
	ctx        context.Context
	cancel     context.CancelFunc
}

// NewEndpoint listens for SIP on the UDP address listen ("127.0.0.1:0").
func NewEndpoint(listen string) (*Endpoint, error) {
	pc, err := net.ListenPacket("udp", listen)
	if err != nil {
		return nil, fmt.Errorf("listen sip %s: %w", listen, err)
	}
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	addr := netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("recfork-callgen"))
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("new sip user agent: %w", err)
	}
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(quiet))
	if err != nil {
		pc.Close()
		ua.Close()
		return nil, fmt.Errorf("new sip server: %w", err)
	}
	cli, err := sipgo.NewClient(ua, sipgo.WithClientAddr(addr.String()), sipgo.WithClientLogger(quiet))
	if err != nil {
		pc.Close()
		ua.Close()
		return nil, fmt.Errorf("new sip client: %w", err)
	}
	contact := sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "callgen", Host: addr.Addr().String(), Port: int(addr.Port())}}
	e := &Endpoint{ua: ua, srv: srv, conn: pc, addr: addr, served: make(chan struct{}),
		dcc: sipgo.NewDialogClientCache(cli, contact), dsc: sipgo.NewDialogServerCache(cli, contact)}
	e.ctx, e.cancel = context.WithCancel(context.Background())
	srv.OnAck(func(req *sip.Request, tx sip.ServerTransaction) { _ = e.dsc.ReadAck(req, tx) })
	srv.OnBye(func(req *sip.Request, tx sip.ServerTransaction) {
		if err := e.dcc.ReadBye(req, tx); err == nil {
			return
		}
		if err := e.dsc.ReadBye(req, tx); err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		}
	})
	// Handlers are registered before serving starts (sipgo's handler map is
	// not safe to change while it serves); Answer only switches answering on.
	srv.OnInvite(func(req *sip.Request, tx sip.ServerTransaction) {
		freq := math.Float64frombits(e.answerTone.Load())
		if to := req.To(); freq == 0 || (to != nil && to.Params.Has("tag")) {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
			return
		}
		e.calls.Add(1)
		defer e.calls.Done()
		r := e.answer(req, tx, freq)
		e.mu.Lock()
		r.N = len(e.results) + 1
		e.results = append(e.results, r)
		e.mu.Unlock()
	})
	go func() { defer close(e.served); _ = srv.ServeUDP(pc) }()
	return e, nil
}

// Addr is the SIP address.
func (e *Endpoint) Addr() netip.AddrPort { return e.addr }

// Close hangs up calls being answered, stops the user agent and waits.
func (e *Endpoint) Close() {
	e.cancel()
	e.calls.Wait()
	e.ua.Close()
	e.conn.Close()
	<-e.served
}

// CallOptions shape one outbound call.
type CallOptions struct {
	// Tone is the frequency sent (Hz); zero means 440.
	Tone float64
	// Duration is how long media flows before the BYE; zero means 5 s.
	Duration time.Duration
	// OnConnected, if set, runs once the call is up, with its Call-ID.
	OnConnected func(callID string)
	// NoTelephoneEvent leaves RFC 4733 telephone-event out of the offer,
	// as a caller without DTMF in RTP would (recforkd then opens no DTMF
	// tap for the call).
	NoTelephoneEvent bool
}

// Call places one call to the SIP URI to, sends the tone for the duration,
// hangs up and reports. The far end hanging up early is an error.
func (e *Endpoint) Call(ctx context.Context, to string, o CallOptions) (r Result) {
	start := time.Now()
	defer func() { r.Seconds = time.Since(start).Seconds() }()
	if o.Tone == 0 {
		o.Tone = 440
	}
	if o.Duration == 0 {
		o.Duration = 5 * time.Second
	}
	var uri sip.Uri
	if err := sip.ParseUri(to, &uri); err != nil {
		r.Error = "bad uri: " + err.Error()
		return r
	}
	m, err := newMedia(e.addr.Addr(), o.Tone)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer m.close()
	ictx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	codecs := []controlplane.Codec{{PT: 0, Name: "PCMU", Rate: 8000}, {PT: 101, Name: "telephone-event", Rate: 8000, Fmtp: "0-16"}}
	if o.NoTelephoneEvent {
		codecs = codecs[:1]
	}
	dlg, err := e.dcc.Invite(ictx, uri, controlplane.AudioSDP(m.local(), codecs), sip.NewHeader("Content-Type", "application/sdp"))
	if err != nil {
		r.Error = "invite: " + err.Error()
		return r
	}
	defer dlg.Close()
	r.CallID = dlg.InviteRequest.CallID().Value()
	if err := dlg.WaitAnswer(ictx, sipgo.AnswerOptions{}); err != nil {
		var dr *sipgo.ErrDialogResponse
		if errors.As(err, &dr) {
			r.Status = dr.Res.StatusCode
		}
		r.Error = "answer: " + err.Error()
		return r
	}
	r.Status = dlg.InviteResponse.StatusCode
	ans, err := controlplane.ParseAudioSDP(dlg.InviteResponse.Body())
	if err != nil {
		r.Error = "answer sdp: " + err.Error()
		_ = dlg.Ack(ctx)
		_ = dlg.Bye(ctx)
		return r
	}
	if err := dlg.Ack(ctx); err != nil {
		r.Error = "ack: " + err.Error()
		return r
	}
	if o.OnConnected != nil {
		o.OnConnected(r.CallID)
	}
	mctx, mcancel := context.WithTimeout(ctx, o.Duration)
	defer mcancel()
	go func() {
		select {
		case <-dlg.Context().Done():
			mcancel()
		case <-mctx.Done():
		}
	}()
	m.send(mctx, ans.Remote)
	if dlg.Context().Err() == nil {
		bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Second)
		if err := dlg.Bye(bctx); err != nil {
			r.Error = "bye: " + err.Error()
		}
		bcancel()
	} else if time.Since(start) < o.Duration {
		r.Error = "far end hung up early"
	}
	m.result(&r)
	return r
}

// Answer makes the endpoint answer every INVITE with PCMU and play a tone of
// freq Hz until the caller hangs up (or Close). Results collects them.
func (e *Endpoint) Answer(freq float64) {
	e.answerTone.Store(math.Float64bits(freq))
}

// Results returns the answered calls that have ended.
func (e *Endpoint) Results() []Result {
	e.mu.Lock()
	defer e.mu.Unlock()
	return append([]Result{}, e.results...)
}

func (e *Endpoint) answer(req *sip.Request, tx sip.ServerTransaction, freq float64) Result {
	r := Result{CallID: req.CallID().Value()}
	off, err := controlplane.ParseAudioSDP(req.Body())
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
		r.Error = err.Error()
		return r
	}
	m, err := newMedia(e.addr.Addr(), freq)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Internal Error", nil))
		r.Error = err.Error()
		return r
	}
	defer m.close()
	dlg, err := e.dsc.ReadInvite(req, tx)
	if err != nil {
		r.Error = err.Error()
		return r
	}
	defer dlg.Close()
	if err := dlg.RespondSDP(controlplane.AudioSDP(m.local(), []controlplane.Codec{{PT: 0, Name: "PCMU", Rate: 8000}})); err != nil {
		r.Error = "answer: " + err.Error()
		return r
	}
	r.Status = 200
	mctx, cancel := context.WithCancel(e.ctx)
	defer cancel()
	go func() {
		select {
		case <-dlg.Context().Done():
			cancel()
		case <-mctx.Done():
		}
	}()
	m.send(mctx, off.Remote)
	if dlg.Context().Err() == nil {
		bctx, bcancel := context.WithTimeout(context.Background(), 5*time.Second)
		_ = dlg.Bye(bctx)
		bcancel()
	}
	m.result(&r)
	return r
}
