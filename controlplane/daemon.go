package controlplane

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
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

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/siprec"
)

// App starts the call logic of new inbound calls: the daemon calls NewCall for
// each INVITE it can answer, before alerting, and the app must SetSink on the
// connection (its events go there) and return. A non-nil error answers the
// INVITE 500.
type App interface {
	NewCall(c *Connection) error
}

// Daemon is recforkd's core: it owns the SIP user agent for calls, the media
// engine, the connections and the recording client.
type Daemon struct {
	cfg    Config
	log    *slog.Logger
	engine dataplane.Engine

	ua      *sipgo.UserAgent
	server  *sipgo.Server
	client  *sipgo.Client
	dsc     *sipgo.DialogServerCache
	dcc     *sipgo.DialogClientCache
	contact sip.ContactHeader
	udp     net.PacketConn
	tcp     *limitedListener
	invites *inviteLimiter
	// maxCalls is Limits.MaxCalls fitted to the port range and fd limit.
	maxCalls int
	sipAddr  netip.AddrPort
	// tlsLn and tlsAddr are the SIP over TLS listener (tls.go); nil without.
	tlsLn   *limitedListener
	tlsAddr netip.AddrPort

	tap      *dtmfTap // nil when DTMF in RTP is disabled
	app      atomic.Pointer[App]
	recorder atomic.Pointer[Recorder]
	metrics  *metrics

	ctx    context.Context // the daemon's lifetime; ends at Close
	cancel context.CancelFunc
	wg     sync.WaitGroup // every goroutine the daemon starts
	nextID atomic.Uint64

	mu    sync.Mutex
	conns map[string]*Connection
	// byDialog finds the connection of an in-dialog request by its sipgo
	// dialog (a *sipgo.DialogServerSession or *sipgo.DialogClientSession).
	byDialog map[any]*Connection
	closing  bool
	// recWaiters are admin requests waiting for a connection's next
	// bvr.record outcome.
	recWaiters map[string][]chan siprec.Event

	drain drainState // drain.go
	state *stateSync // standby.go; nil unless Config.StateRedis
}

// New builds a daemon: it opens the SIP listeners (UDP and TCP on one port) and
// takes the media engine from cfg. Serving starts at once; Close stops it.
func New(cfg Config) (*Daemon, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Engine == nil {
		return nil, fmt.Errorf("new daemon: no media engine: %w", ErrBadConfig)
	}
	d := &Daemon{cfg: cfg, log: cfg.Logger, engine: cfg.Engine, conns: map[string]*Connection{}, byDialog: map[any]*Connection{}, metrics: newMetrics()}
	d.ctx, d.cancel = context.WithCancel(context.Background())
	d.invites = newInviteLimiter(cfg.Limits)
	var why string
	d.maxCalls, why = cfg.Limits.fitCalls(cfg.RTPPorts, nofileLimit())
	if why != "" {
		d.log.Warn("max calls lowered", "max_calls", d.maxCalls, "configured", cfg.Limits.MaxCalls, "reason", why)
	}
	d.metrics.reg.MustRegister(newEngineCollector(d.engine.Stats))
	d.metrics.reg.MustRegister(newSRSCollector(d))
	if !cfg.DisableDTMF {
		tap, err := newDTMFTap(cfg.MediaIP)
		if err != nil {
			d.cancel()
			return nil, err
		}
		d.tap = tap
	}
	if err := d.startSIP(); err != nil {
		d.cancel()
		if d.tap != nil {
			d.tap.close()
		}
		return nil, err
	}
	if err := d.startState(); err != nil {
		d.cancel()
		d.closeSIP()
		d.wg.Wait()
		if d.tap != nil {
			d.tap.close()
		}
		return nil, err
	}
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.watchMedia() }()
	return d, nil
}

// SIPAddr is the address SIP is served on (UDP and TCP).
func (d *Daemon) SIPAddr() netip.AddrPort { return d.sipAddr }

// Engine is the media engine.
func (d *Daemon) Engine() dataplane.Engine { return d.engine }

// SetApp sets the app for new inbound calls (calls in progress keep theirs).
func (d *Daemon) SetApp(a App) { d.app.Store(&a) }

// SetRecorder sets the recording back end used by Record.
func (d *Daemon) SetRecorder(r Recorder) { d.recorder.Store(&r) }

func (d *Daemon) startSIP() error {
	host, port, _ := net.SplitHostPort(d.cfg.Listen)
	ua, err := sipgo.NewUA(sipgo.WithUserAgent("recfork"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerUnhandledResponseHandler(d.onStrayResponse)))
	if err != nil {
		return fmt.Errorf("new sip user agent: %w", err)
	}
	d.ua = ua
	// UDP and TCP share one port: bind UDP first (port 0 picks one), then TCP
	// on the same number. A picked UDP port may be taken for TCP, so with
	// port 0 try again a few times.
	var (
		udp net.PacketConn
		tcp net.Listener
		la  *net.UDPAddr
	)
	for attempt := 0; ; attempt++ {
		udp, err = net.ListenPacket("udp", net.JoinHostPort(host, port))
		if err != nil {
			ua.Close()
			return fmt.Errorf("listen sip udp %s: %w", d.cfg.Listen, err)
		}
		la = udp.LocalAddr().(*net.UDPAddr)
		tcp, err = net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(la.Port)))
		if err == nil {
			break
		}
		udp.Close()
		if port != "0" || attempt == 20 {
			ua.Close()
			return fmt.Errorf("listen sip tcp %s: %w", d.cfg.Listen, err)
		}
	}
	lim := d.cfg.Limits
	d.udp = udp
	d.tcp = newLimitedListener(tcp, lim.MaxTCPConns, lim.MaxTCPConnsPerSource, lim.TCPFirstReadTimeout, lim.TCPIdleTimeout,
		func(limit string) { d.metrics.limited.WithLabelValues("sip_tcp_" + limit).Inc() })
	ap := la.AddrPort()
	d.sipAddr = netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	contactHost := d.sipAddr.Addr()
	if contactHost.IsUnspecified() {
		contactHost = d.cfg.MediaIP
	}
	d.server, err = sipgo.NewServer(ua, sipgo.WithServerLogger(d.log.With("component", "sip")))
	if err != nil {
		d.closeSIP()
		return fmt.Errorf("new sip server: %w", err)
	}
	d.client, err = sipgo.NewClient(ua, sipgo.WithClientHostname(contactHost.String()),
		sipgo.WithClientLogger(d.log.With("component", "sip")))
	if err != nil {
		d.closeSIP()
		return fmt.Errorf("new sip client: %w", err)
	}
	d.contact = sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "recfork", Host: contactHost.String(), Port: int(d.sipAddr.Port())}}
	d.dsc = sipgo.NewDialogServerCache(d.client, d.contact)
	d.dcc = sipgo.NewDialogClientCache(d.client, d.contact)
	d.server.OnInvite(d.guard(d.onInvite))
	d.server.OnAck(d.guard(d.onAck))
	d.server.OnBye(d.guard(d.onBye))
	d.server.OnCancel(d.guard(func(req *sip.Request, tx sip.ServerTransaction) {
		// sipgo answers a CANCEL matching a pending INVITE itself; one that
		// reaches us matched nothing (RFC 3261 §9.2).
		respond(tx, req, 481, "Call/Transaction Does Not Exist")
	}))
	d.server.OnOptions(d.guard(d.onOptions))
	d.server.OnUpdate(d.guard(d.onUpdate))
	d.server.OnInfo(d.guard(d.onInfo))
	d.server.OnNotify(d.guard(d.onNotify))
	d.server.OnNoRoute(d.guard(func(req *sip.Request, tx sip.ServerTransaction) {
		respond(tx, req, 405, "Method Not Allowed")
	}))
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		_ = d.server.ServeUDP(&checkedPacketConn{PacketConn: udp, refused: d.rawRefused})
	}()
	go func() {
		defer d.wg.Done()
		_ = d.server.ServeTCP(checkedListener{Listener: d.tcp, refused: d.rawRefused})
	}()
	d.log.Info("sip listening", "addr", d.sipAddr.String(), "transports", "udp,tcp")
	if err := d.startTLS(); err != nil {
		d.closeSIP()
		d.wg.Wait()
		return err
	}
	return nil
}

func (d *Daemon) closeSIP() {
	if d.udp != nil {
		d.udp.Close()
	}
	if d.tcp != nil {
		d.tcp.Close()
	}
	if d.tlsLn != nil {
		d.tlsLn.Close()
	}
	if d.ua != nil {
		d.ua.Close()
	}
}

// guard keeps a panic in one request's handling from taking the daemon down,
// and refuses requests no handler should see (checkRequest).
func (d *Daemon) guard(h sipgo.RequestHandler) sipgo.RequestHandler {
	return func(req *sip.Request, tx sip.ServerTransaction) {
		if code, reason := checkRequest(req); code != 0 {
			d.metrics.malformed.WithLabelValues(strconv.Itoa(code)).Inc()
			if req.Method != sip.ACK && req.Via() != nil {
				respond(tx, req, code, reason)
			}
			return
		}
		defer func() {
			if r := recover(); r != nil {
				d.metrics.panics.Inc()
				d.log.Error("sip handler panic", "method", string(req.Method), "panic", fmt.Sprint(r))
				respond(tx, req, 500, "Server Internal Error")
			}
		}()
		h(req, tx)
	}
}

func respond(tx sip.ServerTransaction, req *sip.Request, code int, reason string, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, nil)
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	_ = tx.Respond(res)
}

func (d *Daemon) newConnID() string {
	return "c" + strconv.FormatUint(d.nextID.Add(1), 10)
}

func randUint63() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 1
}

func (d *Daemon) newConnection(id, originator, callID, local, remote string) *Connection {
	c := &Connection{
		ID: id, CallID: callID, Originator: originator, LocalURI: local, RemoteURI: remote,
		Created: time.Now(), d: d,
		decide: make(chan decision, 1), acks: make(chan *sip.Request, 4), ended: make(chan struct{}),
		joins:   map[string]dataplane.Duplex{},
		sdpSess: randUint63(),
	}
	c.log = d.log.With("connection_id", id, "call_id", callID)
	return c
}

// register adds c to the table unless the daemon is closing.
func (d *Daemon) register(c *Connection) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closing {
		return ErrClosed
	}
	if _, dup := d.conns[c.ID]; dup {
		return fmt.Errorf("register connection %s: %w", c.ID, dataplane.ErrExists)
	}
	d.conns[c.ID] = c
	d.metrics.connections.Inc()
	return nil
}

// bindDialog indexes c by its sipgo dialog for in-dialog requests.
func (d *Daemon) bindDialog(c *Connection, dlg any) {
	d.mu.Lock()
	// A connection already released (a createcall canceled while its INVITE
	// left) must not leave an entry behind.
	if d.conns[c.ID] == c {
		d.byDialog[dlg] = c
	}
	d.mu.Unlock()
}

// Connection returns the connection with the given id.
func (d *Daemon) Connection(id string) (*Connection, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	c, ok := d.conns[id]
	if !ok {
		return nil, fmt.Errorf("connection %q: %w", id, ErrNoConnection)
	}
	return c, nil
}

// Connections returns a snapshot of every live connection, oldest first.
func (d *Daemon) Connections() []ConnectionInfo {
	d.mu.Lock()
	cs := make([]*Connection, 0, len(d.conns))
	for _, c := range d.conns {
		cs = append(cs, c)
	}
	d.mu.Unlock()
	out := make([]ConnectionInfo, 0, len(cs))
	names := endpointNames(cs)
	for _, c := range cs {
		ci := c.Info()
		if ci.Endpoint != 0 {
			if st, err := d.engine.EndpointStats(dataplane.EndpointID(ci.Endpoint)); err == nil {
				ci.Stats = &st
			}
		}
		ci.MediaPath = d.mediaPath(dataplane.EndpointID(ci.Endpoint), names)
		out = append(out, ci)
	}
	sortConns(out)
	return out
}

// sessionConnections is Connections for one CCXML session, without the
// media statistics and paths: a session's hangup and its new calls need only
// who is in it. (Connections asks the engine for every live connection's
// figures, which made each hangup cost in proportion to all the calls up.)
func (d *Daemon) sessionConnections(id string) []ConnectionInfo {
	d.mu.Lock()
	cs := make([]*Connection, 0, len(d.conns))
	for _, c := range d.conns {
		cs = append(cs, c)
	}
	d.mu.Unlock()
	var out []ConnectionInfo
	for _, c := range cs {
		c.mu.Lock()
		in := c.sessionID == id
		c.mu.Unlock()
		if in {
			out = append(out, c.Info())
		}
	}
	sortConns(out)
	return out
}

// end releases everything c holds, once: the recording (BYE to the SRS), the
// joins, the media endpoint and its table entry. The final state and event
// are the caller's.
func (c *Connection) end(state ConnState) {
	c.endOnce.Do(func() {
		d := c.d
		c.mu.Lock()
		c.state = state
		ep := c.ep
		joins := c.joins
		c.joins = map[string]dataplane.Duplex{}
		hadRec := c.rec != nil
		c.rec = nil
		cancelOut := c.cancelOut
		if c.seTimer != nil {
			c.seTimer.Stop()
			c.seTimer = nil
		}
		if c.refreshTimer != nil {
			c.refreshTimer.Stop()
			c.refreshTimer = nil
		}
		if c.refreshCancel != nil {
			c.refreshCancel()
		}
		c.over = true
		c.mu.Unlock()
		if cancelOut != nil {
			cancelOut()
		}
		// The media goes first: closing the endpoint removes its forks, so no
		// copy is still in flight when the recording's BYE reaches the SRS.
		d.stopDTMF(c)
		if ep != 0 {
			if err := d.engine.CloseEndpoint(ep); err != nil && !errors.Is(err, dataplane.ErrNotFound) {
				c.log.Warn("close media endpoint", "err", err)
			}
		}
		if hadRec {
			if r := d.recorder.Load(); r != nil {
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if err := (*r).End(ctx, c.ID); err != nil && !errors.Is(err, siprec.ErrNoSession) {
					c.log.Warn("end recording", "err", err)
				}
				cancel()
			}
		}
		for other := range joins {
			if oc, err := d.Connection(other); err == nil && oc != c {
				oc.mu.Lock()
				delete(oc.joins, c.ID)
				oc.mu.Unlock()
			}
		}
		c.mu.Lock()
		uas, uac := c.uas, c.uac
		c.mu.Unlock()
		d.mu.Lock()
		if d.conns[c.ID] == c {
			delete(d.conns, c.ID)
			d.metrics.connections.Dec()
		}
		if uas != nil {
			delete(d.byDialog, uas)
		}
		if uac != nil {
			delete(d.byDialog, uac)
		}
		d.mu.Unlock()
		close(c.ended)
		if hadRec {
			d.stateChanged(c.ID) // removes its shared state
		}
		c.log.Info("connection ended", "state", string(state))
	})
}

// Ended is closed when the connection has been released.
func (c *Connection) Ended() <-chan struct{} { return c.ended }

// Close ends every call (BYE to each party, BYE to each SRS), stops the SIP
// user agent and waits for the daemon's goroutines. It does not close an
// engine it was given.
func (d *Daemon) Close() error {
	d.mu.Lock()
	if d.closing {
		d.mu.Unlock()
		return nil
	}
	d.closing = true
	cs := make([]*Connection, 0, len(d.conns))
	for _, c := range d.conns {
		cs = append(cs, c)
	}
	d.mu.Unlock()
	var wg sync.WaitGroup
	for _, c := range cs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			_ = d.hangup(ctx, c, "shutdown")
		}()
	}
	wg.Wait()
	if err := d.stopState(); err != nil {
		d.log.Warn("shared state at shutdown", "err", err)
	}
	d.cancel()
	d.closeSIP()
	d.wg.Wait()
	if d.tap != nil {
		d.tap.close()
	}
	return nil
}
