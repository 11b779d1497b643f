package srs

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Config configures a Server. Zero values are documented per field.
type Config struct {
	// Listen is the SIP host:port served on both UDP and TCP. Port 0 picks a
	// free port (see Server.Addr). Empty means "127.0.0.1:0".
	Listen string
	// Dir is where session directories are created. Required. It is made
	// (with the directory mode below) when missing, else left as it is.
	Dir string
	// FileMode is the permission of every recording file; directories get
	// it plus search permission wherever it gives read (0640 makes 0750).
	// It is applied exactly, whatever the process umask. Zero means 0640:
	// the owner and the recordings group read, nobody else.
	FileMode fs.FileMode
	// Group, a group name or numeric id, owns the session directories and
	// files (the server must be a member, or root). Empty leaves the group
	// the kernel gives (the process's, or the directory's when setgid).
	Group string
	// MediaIP is the address RTP is received on and advertised in SDP.
	// Zero means the Listen host, which must then not be a wildcard.
	MediaIP netip.Addr
	// PortRange bounds the RTP ports (RTCP is RTP+1). Zero means 40000-49999.
	PortRange PortRange
	// Logger receives session events and violations. Nil discards them.
	Logger *slog.Logger
	// Lenient turns the test-oracle strictness off: SIPREC rule breaches are
	// then neither recorded in SessionInfo.Violations nor logged. The zero
	// value is strict.
	Lenient bool
	// TLS, when set, serves SIP over TLS too (sips: URIs); nil means UDP
	// and TCP only.
	TLS *TLS
	// OnSession, when set, is called once when a session starts and once
	// when it ends, from the goroutine that changed it; it must not block.
	OnSession func(SessionInfo)
}

// maxEnded bounds the ended sessions kept for Sessions.
const maxEnded = 1000

// Server is a SIPREC recording server (RFC 7866 §6.2, the SRS role).
type Server struct {
	cfg     Config
	log     *slog.Logger
	addr    netip.AddrPort
	mediaIP netip.Addr
	ports   *portAlloc
	store   storage

	ua     *sipgo.UserAgent
	sip    *sipgo.Server
	client *sipgo.Client
	udp    net.PacketConn
	tcp    net.Listener
	// tls is the TLS listener (Config.TLS), nil without.
	tls     net.Listener
	tlsAddr netip.AddrPort

	mu         sync.Mutex
	live       map[string]*session // by ID
	byDialog   map[string]*session
	ended      []*session
	rejections []Rejection
	closed     bool
	running    bool
	closing    chan struct{}
	serveDone  sync.WaitGroup
	handlers   sync.WaitGroup // SIP handlers and BYE senders in flight

	waiters  atomic.Int32
	notifyMu sync.Mutex
	notify   chan struct{}
}

// New validates cfg and binds the SIP sockets; Run serves them.
func New(cfg Config) (*Server, error) {
	if cfg.Dir == "" {
		return nil, fmt.Errorf("new srs: dir is required: %w", ErrConfig)
	}
	store, err := newStorage(cfg.FileMode, cfg.Group)
	if err != nil {
		return nil, fmt.Errorf("new srs: %w", err)
	}
	if err := store.mkdirAll(cfg.Dir); err != nil {
		return nil, fmt.Errorf("new srs: create dir: %w", err)
	}
	if cfg.Listen == "" {
		cfg.Listen = "127.0.0.1:0"
	}
	host, portStr, err := net.SplitHostPort(cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("new srs: listen %q: %w: %w", cfg.Listen, ErrConfig, err)
	}
	ip, err := netip.ParseAddr(host)
	if err != nil {
		return nil, fmt.Errorf("new srs: listen host %q is not an IP address: %w", host, ErrConfig)
	}
	port, err := strconv.ParseUint(portStr, 10, 16)
	if err != nil {
		return nil, fmt.Errorf("new srs: listen port %q: %w", portStr, ErrConfig)
	}
	media := cfg.MediaIP
	if !media.IsValid() {
		if ip.IsUnspecified() {
			return nil, fmt.Errorf("new srs: media ip needed when listening on %s: %w", ip, ErrConfig)
		}
		media = ip
	}
	if media.IsUnspecified() {
		return nil, fmt.Errorf("new srs: media ip %s is a wildcard: %w", media, ErrConfig)
	}
	ports, err := newPortAlloc(media, cfg.PortRange)
	if err != nil {
		return nil, fmt.Errorf("new srs: %w", err)
	}
	log := cfg.Logger
	if log == nil {
		log = discardLogger()
	}
	s := &Server{
		cfg: cfg, log: log, mediaIP: media, ports: ports, store: store,
		live: map[string]*session{}, byDialog: map[string]*session{},
		closing: make(chan struct{}), notify: make(chan struct{}),
	}
	if err := s.bind(ip, uint16(port)); err != nil {
		return nil, err
	}
	if cfg.TLS != nil {
		if err := s.bindTLS(); err != nil {
			s.udp.Close()
			s.tcp.Close()
			return nil, err
		}
	}
	if err := s.initSIP(); err != nil {
		s.udp.Close()
		s.tcp.Close()
		if s.tls != nil {
			s.tls.Close()
		}
		return nil, err
	}
	return s, nil
}

// bind opens UDP and TCP on the same port; with port 0 it retries until
// both transports get the same free port.
func (s *Server) bind(ip netip.Addr, port uint16) error {
	var lastErr error
	for range 20 {
		u, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, port)))
		if err != nil {
			return fmt.Errorf("listen sip udp %s: %w", netip.AddrPortFrom(ip, port), err)
		}
		got := u.LocalAddr().(*net.UDPAddr).AddrPort().Port()
		t, err := net.ListenTCP("tcp", net.TCPAddrFromAddrPort(netip.AddrPortFrom(ip, got)))
		if err != nil {
			u.Close()
			lastErr = err
			if port != 0 {
				break
			}
			continue
		}
		s.udp, s.tcp = u, t
		s.addr = netip.AddrPortFrom(ip, got)
		return nil
	}
	return fmt.Errorf("listen sip tcp on the udp port: %w", lastErr)
}

func (s *Server) initSIP() error {
	opts := []sipgo.UserAgentOption{sipgo.WithUserAgent("recfork-srs"), sipgo.WithUserAgentHostname(s.addr.Addr().String())}
	if dc := s.cfg.dialTLS(); dc != nil {
		opts = append(opts, sipgo.WithUserAgenTLSConfig(dc))
	}
	ua, err := sipgo.NewUA(opts...)
	if err != nil {
		return fmt.Errorf("new sip user agent: %w", err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(s.log))
	if err != nil {
		ua.Close()
		return fmt.Errorf("new sip server: %w", err)
	}
	client, err := sipgo.NewClient(ua, sipgo.WithClientLogger(s.log), sipgo.WithClientHostname(s.addr.Addr().String()))
	if err != nil {
		ua.Close()
		return fmt.Errorf("new sip client: %w", err)
	}
	s.ua, s.sip, s.client = ua, srv, client
	srv.OnInvite(s.tracked(s.onInvite))
	srv.OnAck(s.tracked(s.onAck))
	srv.OnBye(s.tracked(s.onBye))
	srv.OnOptions(s.tracked(s.onOptions))
	srv.OnCancel(s.tracked(s.onCancel))
	srv.OnUpdate(s.tracked(s.onUpdate))
	return nil
}

// tracked counts a handler in flight so Close can wait for it.
func (s *Server) tracked(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			if !req.IsAck() {
				_ = tx.Respond(sip.NewResponseFromRequest(req, 503, "Service Unavailable", nil))
			}
			return
		}
		s.handlers.Add(1)
		s.mu.Unlock()
		defer s.handlers.Done()
		h(req, tx)
	}
}

// Addr is the SIP address served on UDP and TCP.
func (s *Server) Addr() netip.AddrPort { return s.addr }

// Run serves SIP until ctx is done, then sends BYE to every live session
// (bounded by a few seconds) and closes the server. It returns nil after a
// cancelled ctx, ErrClosed if the server was closed first.
func (s *Server) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed || s.running {
		s.mu.Unlock()
		return ErrClosed
	}
	s.running = true
	s.serveDone.Add(2)
	s.mu.Unlock()
	go func() {
		defer s.serveDone.Done()
		_ = s.sip.ServeUDP(s.udp)
	}()
	go func() {
		defer s.serveDone.Done()
		_ = s.sip.ServeTCP(s.tcp)
	}()
	if s.tls != nil {
		s.serveDone.Add(1)
		go func() {
			defer s.serveDone.Done()
			_ = s.sip.ServeTLS(s.tls)
		}()
		s.log.Info("srs listening on tls", "addr", s.tlsAddr.String())
	}
	s.log.Info("srs listening", "addr", s.addr.String(), "media_ip", s.mediaIP.String(), "dir", s.cfg.Dir)
	select {
	case <-s.closing:
		return ErrClosed
	case <-ctx.Done():
	}
	byeCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), byeTimeout)
	defer cancel()
	var wg sync.WaitGroup
	for _, si := range s.liveSessions() {
		wg.Go(func() { _ = s.bye(byeCtx, si, EndShutdown) })
	}
	wg.Wait()
	return s.Close()
}

// Close stops serving, ends every session without signalling (files are
// finalised) and releases all sockets. It is safe to call more than once.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()

	s.udp.Close()
	s.tcp.Close()
	if s.tls != nil {
		s.tls.Close()
	}
	for _, ss := range s.liveSessions() {
		ss.end(EndShutdown)
	}
	s.handlers.Wait()
	err := s.ua.Close()
	s.serveDone.Wait()
	s.changed()
	if err != nil {
		return fmt.Errorf("close sip user agent: %w", err)
	}
	return nil
}

func (s *Server) liveSessions() []*session {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]*session, 0, len(s.live))
	for _, ss := range s.live {
		out = append(out, ss)
	}
	return out
}

// Sessions returns a snapshot of live sessions and the most recent ended
// ones, oldest first.
func (s *Server) Sessions() []SessionInfo {
	s.mu.Lock()
	all := append([]*session(nil), s.ended...)
	for _, ss := range s.live {
		all = append(all, ss)
	}
	s.mu.Unlock()
	out := make([]SessionInfo, 0, len(all))
	for _, ss := range all {
		out = append(out, ss.info())
	}
	slices.SortStableFunc(out, func(a, b SessionInfo) int { return a.Started.Compare(b.Started) })
	return out
}

// WaitFor blocks until cond holds for a snapshot of Sessions and returns
// that snapshot. cond is evaluated at once and after every change (session
// start, re-INVITE, end, RTP packet); it must not block. It fails with
// ctx's error, or ErrClosed once the server is closed and cond still fails.
func (s *Server) WaitFor(ctx context.Context, cond func([]SessionInfo) bool) ([]SessionInfo, error) {
	s.waiters.Add(1)
	defer s.waiters.Add(-1)
	for {
		s.notifyMu.Lock()
		ch := s.notify
		s.notifyMu.Unlock()
		snap := s.Sessions()
		if cond(snap) {
			return snap, nil
		}
		select {
		case <-s.closing:
			// One last look: the close itself may have been the change.
			if snap := s.Sessions(); cond(snap) {
				return snap, nil
			}
			return nil, ErrClosed
		default:
		}
		select {
		case <-ch:
		case <-s.closing:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

// changed wakes WaitFor callers; free when nobody waits.
func (s *Server) changed() {
	if s.waiters.Load() == 0 {
		return
	}
	s.notifyMu.Lock()
	close(s.notify)
	s.notify = make(chan struct{})
	s.notifyMu.Unlock()
}

// Bye ends a live session from the SRS side (RFC 3261 §15.1.1): the files
// are finalised whatever the SRC answers; the error reports a failed or
// refused BYE.
func (s *Server) Bye(ctx context.Context, sessionID string) error {
	s.mu.Lock()
	ss := s.live[sessionID]
	s.mu.Unlock()
	if ss == nil {
		return fmt.Errorf("bye %s: %w", sessionID, ErrNoSession)
	}
	return s.bye(ctx, ss, EndByeFromSRS)
}

// newSession registers a session and its directory. The caller fills the
// dialog fields before the session is visible to in-dialog requests. The
// directory name is newSessionID's, never the Call-ID: a caller must not be
// able to choose or predict where its data lands.
func (s *Server) newSession(callID string) (*session, error) {
	for range 8 {
		id, err := newSessionID(timeNow())
		if err != nil {
			return nil, fmt.Errorf("create session id: %w", err)
		}
		dir := filepath.Join(s.cfg.Dir, id)
		err = s.store.mkdir(dir)
		if errors.Is(err, os.ErrExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("create session dir: %w", err)
		}
		ss := &session{
			srv: s, id: id, callID: callID, dir: dir, state: StateActive,
			names: map[string]bool{}, done: make(chan struct{}),
			sdpSessID: rand.Uint64() >> 2, started: timeNow(),
			localCSeq: 1,
		}
		return ss, nil
	}
	return nil, fmt.Errorf("create session dir: %w", errTooManyCollisions)
}

// publish makes a set-up session reachable by ID and dialog.
func (s *Server) publish(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.live[ss.id] = ss
	s.byDialog[ss.key] = ss
	return true
}

func (s *Server) sessionEnded(ss *session, info SessionInfo) {
	s.mu.Lock()
	delete(s.live, ss.id)
	delete(s.byDialog, ss.key)
	s.ended = append(s.ended, ss)
	if len(s.ended) > maxEnded {
		s.ended = slices.Delete(s.ended, 0, len(s.ended)-maxEnded)
	}
	s.mu.Unlock()
	s.log.Info("recording session ended", "session_id", ss.id, "call_id", ss.callID, "reason", info.EndReason, "dir", ss.dir)
	if s.cfg.OnSession != nil {
		s.cfg.OnSession(info)
	}
	s.changed()
}

func (s *Server) dialog(key string) *session {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.byDialog[key]
}

func discardLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
