package siprec

import (
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Client is the SRC: it owns one recording session per recorded connection and
// the SIP user agent those sessions use. It is safe for concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger
	to  Timeouts

	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	udpClient *sipgo.Client // sends from the listening UDP socket
	tcpClient *sipgo.Client // dials from ephemeral ports
	udpConn   net.PacketConn
	tcpLn     net.Listener
	sipAddr   netip.AddrPort
	contact   sip.ContactHeader

	// TLS (Config.TLS): the listener, and one user agent per SRS host name.
	tlsLn      net.Listener
	tlsAddr    netip.AddrPort
	tlsMu      sync.Mutex
	tlsUAs     []*sipgo.UserAgent
	tlsClients map[string]*sipgo.Client

	serveWG sync.WaitGroup

	mu       sync.Mutex
	closed   bool
	sessions map[string]*session // by connection id
	byCallID map[string]*session // by the recording dialog's Call-ID

	srtpForks     atomic.Uint64
	health        *health
	events        *dispatcher
	fixedBoundary string
	wg            sync.WaitGroup // session workers
}

// New validates cfg, binds the SRC's SIP port (UDP and TCP) and starts serving
// it. Close releases everything.
func New(cfg Config) (*Client, error) {
	if cfg.Engine == nil {
		return nil, fmt.Errorf("new siprec client: Engine is required: %w", ErrInvalidConfig)
	}
	if !cfg.MediaIP.IsValid() {
		return nil, fmt.Errorf("new siprec client: MediaIP is required: %w", ErrInvalidConfig)
	}
	if cfg.OnEvent == nil {
		return nil, fmt.Errorf("new siprec client: OnEvent is required: %w", ErrInvalidConfig)
	}
	for k, p := range cfg.Profiles {
		if err := p.validate(); err != nil {
			return nil, fmt.Errorf("new siprec client: profile %q: %w", k, err)
		}
	}
	if err := cfg.DefaultProfile.validate(); err != nil {
		return nil, fmt.Errorf("new siprec client: default profile: %w", err)
	}
	if err := cfg.TLS.validate(); err != nil {
		return nil, fmt.Errorf("new siprec client: %w", err)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.NewUUID == nil {
		cfg.NewUUID = randomUUID
	}
	if cfg.UserAgent == "" {
		cfg.UserAgent = "recfork"
	}
	if cfg.FromUser == "" {
		cfg.FromUser = "recfork-src"
	}
	if cfg.Resolver == nil {
		cfg.Resolver = net.DefaultResolver
	}
	var configured []sip.Uri
	for _, v := range cfg.SRS {
		list, err := ParseSRSList(v)
		if err != nil {
			return nil, fmt.Errorf("new siprec client: srs: %v: %w", err, ErrInvalidConfig)
		}
		configured = append(configured, list...)
	}
	if cfg.Keepalive.Interval < 0 || cfg.Keepalive.Failures < 0 || cfg.Keepalive.Timeout < 0 {
		return nil, fmt.Errorf("new siprec client: negative keepalive setting: %w", ErrInvalidConfig)
	}
	listen := cfg.Listen
	if !listen.Addr().IsValid() {
		listen = netip.AddrPortFrom(cfg.MediaIP, listen.Port())
	}
	c := &Client{
		cfg:      cfg,
		log:      cfg.Logger,
		to:       cfg.Timeouts.withDefaults(),
		sessions: make(map[string]*session),
		byCallID: make(map[string]*session),
	}
	c.health = newHealth(c, cfg.Keepalive)
	if err := c.listen(listen); err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		if err := c.listenTLS(); err != nil {
			c.udpConn.Close()
			c.tcpLn.Close()
			return nil, err
		}
	}
	if err := c.startSIP(); err != nil {
		if c.ua != nil {
			c.ua.Close()
		}
		c.udpConn.Close()
		c.tcpLn.Close()
		if c.tlsLn != nil {
			c.tlsLn.Close()
		}
		c.serveWG.Wait()
		return nil, err
	}
	c.events = newDispatcher(cfg.OnEvent)
	c.health.configure(configured)
	c.health.run()
	return c, nil
}

// listen binds UDP and TCP on the same port; with port 0 it retries until a
// free port is free for both.
func (c *Client) listen(ap netip.AddrPort) error {
	var lastErr error
	for range 20 {
		u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(ap))
		if err != nil {
			return fmt.Errorf("listen sip udp %s: %w", ap, err)
		}
		port := u.LocalAddr().(*net.UDPAddr).Port
		t, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ap.Addr(), uint16(port))))
		if err != nil {
			u.Close()
			lastErr = err
			if ap.Port() != 0 {
				break
			}
			continue
		}
		c.udpConn, c.tcpLn = u, t
		c.sipAddr = netip.AddrPortFrom(ap.Addr(), uint16(port))
		return nil
	}
	return fmt.Errorf("listen sip tcp %s: %w", ap, lastErr)
}

func (c *Client) startSIP() error {
	host := c.cfg.ContactHost
	if host == "" {
		host = c.sipAddr.Addr().String()
	}
	ua, err := sipgo.NewUA(sipgo.WithUserAgent(c.cfg.UserAgent), sipgo.WithUserAgentHostname(host))
	if err != nil {
		return fmt.Errorf("new sip user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(c.log))
	if err != nil {
		ua.Close()
		return fmt.Errorf("new sip server: %w", err)
	}
	port := int(c.sipAddr.Port())
	udpCl, err := sipgo.NewClient(ua, sipgo.WithClientLogger(c.log), sipgo.WithClientHostname(host),
		sipgo.WithClientConnectionAddr(c.sipAddr.String()))
	if err != nil {
		ua.Close()
		return fmt.Errorf("new sip udp client: %w", err)
	}
	tcpCl, err := sipgo.NewClient(ua, sipgo.WithClientLogger(c.log), sipgo.WithClientHostname(host))
	if err != nil {
		ua.Close()
		return fmt.Errorf("new sip tcp client: %w", err)
	}
	c.ua, c.srv, c.udpClient, c.tcpClient = ua, srv, udpCl, tcpCl
	c.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: c.cfg.FromUser, Host: host, Port: port}}
	// RFC 7866 §6.1.1: the SRC's Contact carries the +sip.src feature tag.
	c.contact.Params = sip.NewParams()
	c.contact.Params.Add("+sip.src", "")

	c.handle(srv)

	c.serveWG.Add(2)
	go func() { defer c.serveWG.Done(); _ = srv.ServeUDP(c.udpConn) }()
	go func() { defer c.serveWG.Done(); _ = srv.ServeTCP(c.tcpLn) }()
	if c.tlsLn != nil {
		c.serveWG.Add(1)
		go func() { defer c.serveWG.Done(); _ = srv.ServeTLS(c.tlsLn) }()
	}
	// Requests over UDP must leave from the listening socket, which sipgo
	// knows only once ServeUDP has registered it.
	for deadline := time.Now().Add(5 * time.Second); ; {
		if conn, _ := ua.TransportLayer().GetConnection("udp", c.sipAddr.String()); conn != nil {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("serve sip udp %s: listener not registered", c.sipAddr)
		}
		time.Sleep(time.Millisecond)
	}
	return nil
}

// SIPAddr is the address the SRC's SIP user agent listens on (UDP and TCP).
func (c *Client) SIPAddr() netip.AddrPort { return c.sipAddr }

// Record hands one bvr.record request for leg to the client. It never blocks
// on the network: the outcome arrives later as exactly one Event through
// Config.OnEvent (a request merged into one in flight shares that request's
// event, see doc.go). It returns ErrClosed, and delivers no event, once the
// client is closed.
func (c *Client) Record(leg Leg, req Request) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return ErrClosed
	}
	in, reason := validate(leg, req, c.cfg.TLS != nil)
	if reason != "" {
		// Rejected before it could merge with anything: it resolves alone,
		// reporting the state in force.
		ev := Event{Name: EventError, ConnectionID: leg.ConnectionID, Type: req.Type, URI: req.URI, Tag: req.Tag,
			Inbound: ModeNone, Outbound: ModeNone, Reason: reason}
		if s := c.sessions[leg.ConnectionID]; s != nil && leg.ConnectionID != "" {
			s.fillInForce(&ev)
		}
		c.events.push(ev)
		return nil
	}
	s := c.sessions[leg.ConnectionID]
	if s != nil && s.submit(leg, in) {
		return nil
	}
	{
		s = newSession(c, leg)
		c.sessions[leg.ConnectionID] = s
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			s.run()
		}()
	}
	s.submit(leg, in)
	return nil
}

// boundary is the multipart boundary of the next body; empty picks a random
// one. Tests fix it for golden files.
func (c *Client) boundary() string { return c.fixedBoundary }

// End tears down the recording of a connection whose call ended: a request in
// flight resolves with an error (connection-state), the session's BYE is sent
// (bounded by Timeouts.Bye and ctx) and its forks and endpoints are removed.
// It returns when all that is done; ErrNoSession if nothing was recorded.
func (c *Client) End(ctx context.Context, connectionID string) error {
	c.mu.Lock()
	s := c.sessions[connectionID]
	c.mu.Unlock()
	if s == nil {
		return ErrNoSession
	}
	return s.end(ctx)
}

// Status returns the recording status of one connection.
func (c *Client) Status(connectionID string) (Status, bool) {
	c.mu.Lock()
	s := c.sessions[connectionID]
	c.mu.Unlock()
	if s == nil {
		return Status{}, false
	}
	st := s.status()
	return st, st.SRS != ""
}

// Recordings returns the status of every connection with a recording session.
func (c *Client) Recordings() []Status {
	c.mu.Lock()
	ss := make([]*session, 0, len(c.sessions))
	for _, s := range c.sessions {
		ss = append(ss, s)
	}
	c.mu.Unlock()
	out := make([]Status, 0, len(ss))
	for _, s := range ss {
		if st := s.status(); st.SRS != "" {
			out = append(out, st)
		}
	}
	return out
}

// Close ends every recording session (as End does, bounded by
// Timeouts.Bye), stops the SIP user agent and the event goroutine. Events of
// requests still open are delivered before it returns.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	ss := make([]*session, 0, len(c.sessions))
	for _, s := range c.sessions {
		ss = append(ss, s)
	}
	c.mu.Unlock()
	var wg sync.WaitGroup
	for _, s := range ss {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), c.to.Bye+time.Second)
			defer cancel()
			_ = s.end(ctx)
		}()
	}
	wg.Wait()
	c.wg.Wait()
	c.health.close()
	c.closeTLS()
	err := c.ua.Close()
	c.udpConn.Close()
	c.tcpLn.Close()
	if c.tlsLn != nil {
		c.tlsLn.Close()
	}
	c.serveWG.Wait()
	c.events.close()
	if err != nil {
		return fmt.Errorf("close sip user agent: %w", err)
	}
	return nil
}

// forget drops a finished session from the maps.
func (c *Client) forget(s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.sessions[s.connID] == s {
		delete(c.sessions, s.connID)
	}
	for k, v := range c.byCallID {
		if v == s {
			delete(c.byCallID, k)
		}
	}
}

func (c *Client) bindCallID(callID string, s *session) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if s == nil {
		delete(c.byCallID, callID)
		return
	}
	c.byCallID[callID] = s
}

func (c *Client) sessionByCallID(callID string) *session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.byCallID[callID]
}

func (c *Client) profile(u sip.Uri) Profile {
	if p, ok := c.cfg.Profiles[net.JoinHostPort(u.Host, strconv.Itoa(portOrDefault(u)))]; ok {
		return p
	}
	if p, ok := c.cfg.Profiles[u.Host]; ok {
		return p
	}
	return c.cfg.DefaultProfile
}

func portOrDefault(u sip.Uri) int {
	if u.Port != 0 {
		return u.Port
	}
	return 5060
}

func (p Profile) validate() error {
	switch p.Metadata {
	case MetadataComplete, MetadataPartial:
	default:
		return fmt.Errorf("metadata mode %d: %w", p.Metadata, ErrInvalidConfig)
	}
	switch p.Transport {
	case "", "udp", "tcp", "tls":
	default:
		return fmt.Errorf("transport %q: %w", p.Transport, ErrInvalidConfig)
	}
	return nil
}

func (t Timeouts) withDefaults() Timeouts {
	if t.Invite <= 0 {
		t.Invite = 8 * time.Second
	}
	if t.Bye <= 0 {
		t.Bye = 4 * time.Second
	}
	if t.GlareMin <= 0 && t.GlareMax <= 0 {
		t.GlareMin, t.GlareMax = 2100*time.Millisecond, 4*time.Second
	}
	if t.GlareMax < t.GlareMin {
		t.GlareMax = t.GlareMin
	}
	if t.GlareRetries <= 0 {
		t.GlareRetries = 3
	}
	if t.Confirm <= 0 {
		t.Confirm = 4 * time.Second
	}
	return t
}

func randomUUID() [16]byte {
	var u [16]byte
	if _, err := rand.Read(u[:]); err != nil {
		panic(fmt.Sprintf("crypto/rand: %v", err)) // never fails on Linux
	}
	u[6] = u[6]&0x0f | 0x40 // version 4
	u[8] = u[8]&0x3f | 0x80 // RFC 4122 variant
	return u
}

// dispatcher delivers events in order from one goroutine.
type dispatcher struct {
	mu    sync.Mutex
	queue []Event
	wake  chan struct{}
	done  chan struct{}
	stop  bool
}

func newDispatcher(fn func(Event)) *dispatcher {
	d := &dispatcher{wake: make(chan struct{}, 1), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		for {
			d.mu.Lock()
			q, stop := d.queue, d.stop
			d.queue = nil
			d.mu.Unlock()
			for _, ev := range q {
				fn(ev)
			}
			if len(q) == 0 {
				if stop {
					return
				}
				<-d.wake
			}
		}
	}()
	return d
}

func (d *dispatcher) push(ev Event) {
	d.mu.Lock()
	d.queue = append(d.queue, ev)
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// close delivers what is queued, then stops the goroutine.
func (d *dispatcher) close() {
	d.mu.Lock()
	d.stop = true
	d.mu.Unlock()
	select {
	case d.wake <- struct{}{}:
	default:
	}
	<-d.done
}
