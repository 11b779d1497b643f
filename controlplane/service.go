package controlplane

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/recfork/recfork/ccxml"
	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/siprec"
	"github.com/recfork/recfork/siprec/srs"
)

// DefaultApp is the embedded CCXML document recforkd runs for each new call
// when no app is configured: accept, record both directions, bridge to the
// configured destination or echo, hang up cleanly.
//
//go:embed app/default.ccxml
var DefaultApp []byte

// DefaultAppName is the location the embedded app reports (session.uri).
const DefaultAppName = "embedded:default.ccxml"

// Service is the whole daemon assembled: media engine, built-in SRS (unless an
// external one is configured), SIPREC client, SIP call handling, the CCXML
// interpreter with one session per call, the admin API and the optional HTTP
// listener.
type Service struct {
	cfg       Config
	log       *slog.Logger
	engine    dataplane.Engine
	ownEngine bool
	srs       *srs.Server
	srsURI    string
	rec       *siprec.Client
	d         *Daemon
	interp    *ccxml.Interpreter
	plat      *platform
	app       atomic.Pointer[loadedApp]
	started   time.Time

	ctx    context.Context // sessions' lifetime
	cancel context.CancelFunc
	wg     sync.WaitGroup

	sessMu   sync.Mutex
	sessions map[string]*sessionEntry

	closeAdmin func()
	httpSrv    *http.Server
	httpLn     *limitedListener
	srsDone    chan error
}

// loadedApp is the compiled app for new calls and where it came from.
type loadedApp struct {
	doc  *ccxml.Document
	name string
}

type sessionEntry struct {
	s       *ccxml.Session
	uri     string
	mode    string
	started time.Time
}

// NewService assembles and starts everything; Run waits for the end and shuts
// down. On error, whatever was started is stopped again.
func NewService(ctx context.Context, cfg Config) (_ *Service, err error) {
	cfg, err = cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	svc := &Service{cfg: cfg, log: cfg.Logger, started: time.Now(), sessions: map[string]*sessionEntry{}}
	svc.ctx, svc.cancel = context.WithCancel(context.WithoutCancel(ctx))
	defer func() {
		if err != nil {
			svc.shutdown()
		}
	}()

	svc.engine = cfg.Engine
	if svc.engine == nil {
		svc.engine, err = newEngine(cfg)
		if err != nil {
			return nil, fmt.Errorf("start data plane: %w", err)
		}
		svc.ownEngine = true
	}
	svc.log.Info("data plane", "engine", svc.engine.Name(), "media_ip", cfg.MediaIP.String())

	ts, err := loadTLS(cfg)
	if err != nil {
		return nil, err
	}
	svc.srsURI = cfg.SRS
	if svc.srsURI == "" {
		svc.srs, err = srs.New(srs.Config{
			Listen:   netip.AddrPortFrom(cfg.MediaIP, 0).String(),
			Dir:      cfg.RecordingsDir,
			FileMode: cfg.RecordingsMode,
			Group:    cfg.RecordingsGroup,
			MediaIP:  cfg.MediaIP,
			Lenient:  true,
			Logger:   svc.log.With("component", "srs"),
			TLS:      ts.builtinSRS(cfg.MediaIP),
		})
		if err != nil {
			return nil, fmt.Errorf("start built-in srs: %w", err)
		}
		svc.srsDone = make(chan error, 1)
		go func() { svc.srsDone <- svc.srs.Run(svc.ctx) }()
		svc.srsURI = "sip:srs@" + svc.srs.Addr().String()
		if ts != nil {
			// With a certificate, recordings leave over TLS even to the
			// built-in SRS.
			svc.srsURI = "sips:srs@" + svc.srs.TLSAddr().String()
		}
		abs, _ := filepath.Abs(cfg.RecordingsDir)
		svc.log.Info("built-in srs", "uri", svc.srsURI, "dir", abs)
	}

	var dp atomic.Pointer[Daemon]
	ka := siprec.Keepalive{Interval: max(cfg.SRSKeepalive, 0), Failures: cfg.SRSKeepaliveFailures}
	svc.rec, err = siprec.New(siprec.Config{
		Engine:         svc.engine,
		MediaIP:        cfg.MediaIP,
		SRS:            []string{svc.srsURI},
		Keepalive:      ka,
		TLS:            ts.src(),
		DefaultProfile: siprec.Profile{Transport: cfg.SRSTransport, FailoverCodes: cfg.SRSFailoverCodes, SRTP: cfg.SRSSRTP},
		Logger:         svc.log.With("component", "siprec"),
		OnEvent: func(ev siprec.Event) {
			if d := dp.Load(); d != nil {
				d.onRecordEvent(ev)
			}
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start siprec client: %w", err)
	}

	dcfg := cfg
	dcfg.Engine = svc.engine
	svc.d, err = New(dcfg)
	if err != nil {
		return nil, err
	}
	dp.Store(svc.d)
	svc.d.SetRecorder(svc.rec)
	svc.plat = &platform{d: svc.d}

	svc.interp, err = ccxml.New(ccxml.Config{Logger: svc.log.With("component", "ccxml")})
	if err != nil {
		return nil, fmt.Errorf("start ccxml interpreter: %w", err)
	}
	if err := svc.Reload(); err != nil {
		return nil, err
	}
	svc.d.SetApp(svc)

	info := adminInfo{version: version(), srs: svc.srsURI, started: svc.started,
		app: svc.app.Load().name, sessions: svc.Sessions}
	svc.closeAdmin, err = svc.d.serveAdmin(svc.ctx, cfg.Admin, info)
	if err != nil {
		return nil, err
	}
	if cfg.HTTP != "" {
		if err := svc.serveHTTP(); err != nil {
			return nil, err
		}
	}
	return svc, nil
}

func version() string {
	if bi, ok := debug.ReadBuildInfo(); ok && bi.Main.Version != "" {
		return bi.Main.Version
	}
	return "(devel)"
}

// Daemon returns the SIP core (for tests and embedding).
func (svc *Service) Daemon() *Daemon { return svc.d }

// SRSURI is the URI the default app records to.
func (svc *Service) SRSURI() string { return svc.srsURI }

// SRS returns the built-in SRS, nil when an external one is configured.
func (svc *Service) SRS() *srs.Server { return svc.srs }

// Reload reads and compiles the app again (SIGHUP); calls in progress keep
// the document they started with. A document that does not compile leaves
// the running app in place.
func (svc *Service) Reload() error {
	name, src := DefaultAppName, DefaultApp
	if svc.cfg.App != "" {
		b, err := os.ReadFile(svc.cfg.App)
		if err != nil {
			return fmt.Errorf("load app: %w", err)
		}
		name, src = svc.cfg.App, b
	}
	doc, err := svc.interp.Compile(context.Background(), name, src)
	if err != nil {
		return fmt.Errorf("compile app %s: %w", name, err)
	}
	svc.app.Store(&loadedApp{doc: doc, name: name})
	svc.log.Info("app loaded", "app", name)
	return nil
}

// NewCall starts a CCXML session for a new inbound connection (App).
func (svc *Service) NewCall(c *Connection) error {
	app := svc.app.Load()
	_, err := svc.startSession(app.doc, app.name, ccxml.StartupNewCall, c)
	return err
}

// StartSession starts a session of an app without a call (createsession,
// startupmode external).
func (svc *Service) StartSession(uri string) (string, error) {
	// createsession loads only documents under the configured roots: an
	// HTTP client must not make the daemon read, or tell about, any file.
	uri, err := underRoots(uri, svc.cfg.sessionRoots())
	if err != nil {
		return "", err
	}
	if max := svc.cfg.Limits.MaxSessions; max > 0 && svc.externalSessions() >= max {
		svc.d.metrics.limited.WithLabelValues("sessions").Inc()
		return "", fmt.Errorf("%d sessions started over http are running: %w", max, ErrLimit)
	}
	doc, err := svc.interp.Load(svc.ctx, uri)
	if err != nil {
		return "", fmt.Errorf("load %s: %w", uri, err)
	}
	s, err := svc.startSession(doc, uri, ccxml.StartupExternal, nil)
	if err != nil {
		return "", err
	}
	return s.ID(), nil
}

func (svc *Service) startSession(doc *ccxml.Document, uri, mode string, c *Connection) (*ccxml.Session, error) {
	if svc.ctx.Err() != nil {
		return nil, ErrClosed
	}
	var log *slog.Logger
	s, err := svc.interp.NewSession(doc, svc.plat, ccxml.SessionOptions{
		ID:          newSessionID(),
		StartupMode: mode,
		URI:         uri,
		Values:      map[string]any{"srs": svc.srsURI, "destination": svc.cfg.Destination},
		Log: func(label, value string) {
			log.Info("ccxml log", "label", label, "value", value)
		},
	})
	if err != nil {
		return nil, fmt.Errorf("start ccxml session: %w", err)
	}
	log = svc.log.With("session_id", s.ID())
	if c != nil {
		c.SetSink(s.ID(), sessionSink{s})
		log = log.With("connection_id", c.ID, "call_id", c.CallID)
	}
	svc.sessMu.Lock()
	svc.sessions[s.ID()] = &sessionEntry{s: s, uri: uri, mode: mode, started: time.Now()}
	svc.sessMu.Unlock()
	svc.wg.Add(1)
	go func() {
		defer svc.wg.Done()
		err := func() (err error) {
			// The interpreter contains panics itself; this is the last line
			// so that nothing in a session can take the daemon down.
			defer func() {
				if r := recover(); r != nil {
					svc.d.metrics.panics.Inc()
					err = fmt.Errorf("ccxml session panic: %v", r)
				}
			}()
			return s.Run(svc.ctx)
		}()
		st := s.Status()
		if err != nil && !errors.Is(err, context.Canceled) {
			log.Warn("ccxml session ended", "reason", st.Reason, "event", st.Event, "detail", st.Detail, "err", err)
		} else {
			log.Info("ccxml session ended", "reason", st.Reason)
		}
		// A session that ends leaves no call behind (an unhandled
		// error.bvr.record ends the session, then the platform hangs up).
		svc.hangupSession(s.ID())
		svc.sessMu.Lock()
		delete(svc.sessions, s.ID())
		svc.sessMu.Unlock()
	}()
	return s, nil
}

func (svc *Service) hangupSession(id string) {
	var wg sync.WaitGroup
	for _, ci := range svc.d.sessionConnections(id) {
		c, err := svc.d.Connection(ci.ID)
		if err != nil {
			continue
		}
		c.SetSink(id, nil)
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 8*time.Second)
			defer cancel()
			_ = svc.d.hangup(ctx, c, "session ended")
		}()
	}
	wg.Wait()
}

// externalSessions counts the live sessions started without a call.
func (svc *Service) externalSessions() int {
	svc.sessMu.Lock()
	defer svc.sessMu.Unlock()
	n := 0
	for _, e := range svc.sessions {
		if e.mode == ccxml.StartupExternal {
			n++
		}
	}
	return n
}

// Sessions lists the running CCXML sessions.
func (svc *Service) Sessions() []SessionInfo {
	svc.sessMu.Lock()
	out := make([]SessionInfo, 0, len(svc.sessions))
	for id, e := range svc.sessions {
		out = append(out, SessionInfo{ID: id, URI: e.uri, StartupMode: e.mode, Started: e.started, Connections: []string{}})
	}
	svc.sessMu.Unlock()
	conns := svc.d.Connections()
	for i := range out {
		for _, c := range conns {
			if c.SessionID == out[i].ID {
				out[i].Connections = append(out[i].Connections, c.ID)
			}
		}
	}
	sortSessions(out)
	return out
}

// Run waits until ctx ends, then shuts down cleanly: every call gets its BYE,
// every recording its BYE to the SRS, sessions end, and the data plane is
// left empty.
func (svc *Service) Run(ctx context.Context) error {
	<-ctx.Done()
	svc.log.Info("shutting down")
	return svc.shutdown()
}

// Close shuts the service down without waiting for a context.
func (svc *Service) Close() error { return svc.shutdown() }

func (svc *Service) shutdown() error {
	var errs []error
	if svc.d != nil {
		// Calls first (BYE to callers and callees, recordings ended with
		// them), then the sessions, which have nothing left to control.
		errs = append(errs, svc.d.Close())
	}
	svc.cancel()
	svc.wg.Wait()
	if svc.interp != nil {
		errs = append(errs, svc.interp.Close())
	}
	if svc.rec != nil {
		errs = append(errs, svc.rec.Close())
	}
	if svc.srs != nil {
		errs = append(errs, svc.srs.Close())
		if svc.srsDone != nil {
			if err := <-svc.srsDone; err != nil && !errors.Is(err, context.Canceled) {
				errs = append(errs, err)
			}
			svc.srsDone = nil
		}
	}
	if svc.closeAdmin != nil {
		svc.closeAdmin()
		svc.closeAdmin = nil
	}
	if svc.httpSrv != nil {
		sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_ = svc.httpSrv.Shutdown(sctx)
		cancel()
		svc.httpSrv = nil
	}
	if svc.ownEngine && svc.engine != nil {
		errs = append(errs, svc.engine.Close())
		svc.engine = nil
	}
	return errors.Join(errs...)
}

// serveHTTP serves /metrics, and the CCXML basichttp and createsession
// processors (CCXML 1.0 Appendix K).
func (svc *Service) serveHTTP() error {
	ln, err := net.Listen("tcp", svc.cfg.HTTP)
	if err != nil {
		return fmt.Errorf("listen http %s: %w", svc.cfg.HTTP, err)
	}
	lim := svc.cfg.Limits
	limited := svc.d.metrics.limited
	reject := func() { limited.WithLabelValues("http_token").Inc() }
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(svc.d.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /basichttp", requireToken(svc.cfg.HTTPToken, reject, svc.basicHTTP))
	mux.HandleFunc("POST /createsession", requireToken(svc.cfg.HTTPToken, reject, svc.createSession))
	var h http.Handler = mux
	if lim.MaxHTTPBody > 0 {
		h = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			r.Body = http.MaxBytesReader(w, r.Body, lim.MaxHTTPBody)
			mux.ServeHTTP(w, r)
		})
	}
	svc.httpSrv = &http.Server{Handler: h,
		ReadHeaderTimeout: min(5*time.Second, lim.HTTPReadTimeout),
		ReadTimeout:       lim.HTTPReadTimeout,
		WriteTimeout:      2 * lim.HTTPReadTimeout,
		IdleTimeout:       6 * lim.HTTPReadTimeout,
		MaxHeaderBytes:    lim.MaxHTTPHeader,
		ErrorLog:          slog.NewLogLogger(svc.log.With("component", "http").Handler(), slog.LevelDebug),
	}
	svc.httpLn = newLimitedListener(ln, lim.MaxHTTPConns, 0, 0, 0, func(string) { limited.WithLabelValues("http_connections").Inc() })
	ln = svc.httpLn
	go func() { _ = svc.httpSrv.Serve(ln) }()
	svc.log.Info("http listening", "addr", ln.Addr().String())
	return nil
}

// HTTPAddr is the HTTP listener's address, empty without one.
func (svc *Service) HTTPAddr() string {
	if svc.httpLn == nil {
		return ""
	}
	return svc.httpLn.Addr().String()
}

// basicHTTP injects an event into a session: form fields sessionid, name and
// any others as the event's fields (Appendix K); 204 on success.
func (svc *Service) basicHTTP(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	id, name := r.PostForm.Get("sessionid"), r.PostForm.Get("name")
	if id == "" || name == "" {
		http.Error(w, "sessionid and name are required", http.StatusBadRequest)
		return
	}
	svc.sessMu.Lock()
	e := svc.sessions[id]
	svc.sessMu.Unlock()
	if e == nil {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	fields := map[string]any{"eventsource": r.PostForm.Get("eventsource"), "eventsourcetype": "basichttp"}
	for k, v := range r.PostForm {
		if k == "sessionid" || k == "name" || k == "eventsource" || len(v) == 0 {
			continue
		}
		fields[k] = v[0]
	}
	if err := e.s.Post(ccxml.Event{Name: name, Fields: fields}); err != nil {
		svc.log.Info("basichttp event refused", "session_id", id, "err", err)
		http.Error(w, "session does not take events", http.StatusServiceUnavailable)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// createSession starts a session of the document at form field uri (within
// the interpreter's allowed roots) and answers its id.
func (svc *Service) createSession(w http.ResponseWriter, r *http.Request) {
	if !parseForm(w, r) {
		return
	}
	uri := r.PostForm.Get("uri")
	if uri == "" {
		http.Error(w, "uri is required", http.StatusBadRequest)
		return
	}
	id, err := svc.StartSession(uri)
	switch {
	case errors.Is(err, ErrLimit):
		w.Header().Set("Retry-After", "10")
		http.Error(w, "too many sessions", http.StatusTooManyRequests)
		return
	case errors.Is(err, ErrNotAllowed):
		// The same answer whether the file exists or not.
		http.Error(w, "document not allowed", http.StatusForbidden)
		return
	case err != nil:
		svc.log.Info("createsession failed", "err", err)
		http.Error(w, "document could not be started", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	fmt.Fprintln(w, id)
}

// parseForm reads a form body; on error it answers with a fixed text (never
// the body or the parser's message, which may quote it) and returns false.
func parseForm(w http.ResponseWriter, r *http.Request) bool {
	err := r.ParseForm()
	if err == nil {
		return true
	}
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		http.Error(w, "request body too large", http.StatusRequestEntityTooLarge)
		return false
	}
	http.Error(w, "malformed form", http.StatusBadRequest)
	return false
}

// AdminSocket is the admin API's socket path ("-" when disabled).
func (svc *Service) AdminSocket() string { return svc.cfg.Admin }
