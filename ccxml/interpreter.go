package ccxml

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures an Interpreter. The zero value is usable.
type Config struct {
	// Logger receives the interpreter's own records and, when a session has
	// no SessionOptions.Log, its <log> output. Nil: slog.Default().
	Logger *slog.Logger
	// ScriptBudget bounds one run of ECMAScript (a transition, a cond, the
	// document's initial scripts); a run over budget is interrupted and
	// raises error.semantic. Zero: 1 s.
	ScriptBudget time.Duration
	// MaxCallStackSize bounds ECMAScript call depth (a deeper call throws a
	// RangeError, which becomes error.semantic). Zero: 512.
	MaxCallStackSize int
	// MaxDocumentSize bounds a document or script in bytes. Zero: 1 MiB.
	MaxDocumentSize int64
	// MaxQueue bounds a session's event queue; Post fails beyond it. Zero: 10000.
	MaxQueue int
	// AllowedRoots lists where documents and scripts may be loaded from
	// (<fetch>, <goto>, <createccxml>, <script src>, basichttp targets): local
	// directories (absolute paths) and http:// or https:// URL prefixes. A
	// location under none of them fails with ErrNotAllowed. Empty: local
	// files anywhere, no HTTP.
	AllowedRoots []string
	// FetchTimeout bounds one fetch when the document gives no timeout. Zero: 10 s.
	FetchTimeout time.Duration
	// HTTPClient performs HTTP fetches and basichttp sends. Nil: a client
	// with no redirects to hosts outside AllowedRoots.
	HTTPClient *http.Client
}

// Interpreter compiles documents and runs sessions. It is safe for
// concurrent use.
type Interpreter struct {
	cfg    Config
	log    *slog.Logger
	prefix string
	seq    atomic.Uint64
	client *http.Client

	mu       sync.Mutex
	sessions map[string]*Session
	cache    map[string]*cacheEntry
	ctx      context.Context // for sessions started by createccxml
	cancel   context.CancelFunc
	wg       sync.WaitGroup // goroutines the interpreter starts
	closed   bool
}

type cacheEntry struct {
	doc     *Document
	expires time.Time
	// For local files: the document is reused while the file is unchanged.
	modTime time.Time
	size    int64
}

// New returns an Interpreter.
func New(cfg Config) (*Interpreter, error) {
	if cfg.ScriptBudget < 0 || cfg.FetchTimeout < 0 || cfg.MaxDocumentSize < 0 || cfg.MaxQueue < 0 || cfg.MaxCallStackSize < 0 {
		return nil, fmt.Errorf("new ccxml interpreter: negative limit in config")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ScriptBudget == 0 {
		cfg.ScriptBudget = time.Second
	}
	if cfg.MaxCallStackSize == 0 {
		cfg.MaxCallStackSize = 512
	}
	if cfg.MaxDocumentSize == 0 {
		cfg.MaxDocumentSize = 1 << 20
	}
	if cfg.MaxQueue == 0 {
		cfg.MaxQueue = 10000
	}
	if cfg.FetchTimeout == 0 {
		cfg.FetchTimeout = 10 * time.Second
	}
	for _, r := range cfg.AllowedRoots {
		if err := checkRoot(r); err != nil {
			return nil, fmt.Errorf("new ccxml interpreter: %w", err)
		}
	}
	var rnd [4]byte
	_, _ = rand.Read(rnd[:])
	in := &Interpreter{cfg: cfg, log: cfg.Logger, prefix: hex.EncodeToString(rnd[:]),
		sessions: make(map[string]*Session), cache: make(map[string]*cacheEntry)}
	in.client = cfg.HTTPClient
	if in.client == nil {
		in.client = &http.Client{CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 5 {
				return fmt.Errorf("follow redirect: too many")
			}
			if !in.allowed(req.URL.String()) {
				return fmt.Errorf("follow redirect to %s: %w", req.URL, ErrNotAllowed)
			}
			return nil
		}}
	}
	in.ctx, in.cancel = context.WithCancel(context.Background())
	return in, nil
}

// Close ends the sessions the interpreter started itself (<createccxml>,
// the createsession processor), cancels its fetches and basichttp sends, and
// waits for those goroutines. Sessions the caller runs end with their own
// contexts.
func (in *Interpreter) Close() error {
	in.mu.Lock()
	in.closed = true
	in.mu.Unlock()
	in.cancel()
	in.wg.Wait()
	return nil
}

// spawn runs f on a goroutine the interpreter owns; f's context ends with
// parent or with Close, whichever comes first. It reports false (and runs
// nothing) once the interpreter is closed.
func (in *Interpreter) spawn(parent context.Context, f func(ctx context.Context)) bool {
	in.mu.Lock()
	if in.closed {
		in.mu.Unlock()
		return false
	}
	in.wg.Add(1)
	in.mu.Unlock()
	ctx, cancel := context.WithCancel(parent)
	stop := context.AfterFunc(in.ctx, cancel)
	go func() {
		defer in.wg.Done()
		defer cancel()
		defer stop()
		f(ctx)
	}()
	return true
}

func (in *Interpreter) newID() string {
	return in.prefix + "-" + strconv.FormatUint(in.seq.Add(1), 10)
}

// Session returns the running session with that id.
func (in *Interpreter) Session(id string) (*Session, bool) {
	in.mu.Lock()
	defer in.mu.Unlock()
	s, ok := in.sessions[id]
	return s, ok
}

// Sessions returns the number of sessions registered (created and not ended).
func (in *Interpreter) Sessions() int {
	in.mu.Lock()
	defer in.mu.Unlock()
	return len(in.sessions)
}

func (in *Interpreter) register(s *Session) error {
	in.mu.Lock()
	defer in.mu.Unlock()
	if _, dup := in.sessions[s.id]; dup {
		return fmt.Errorf("register session %s: duplicate id", s.id)
	}
	in.sessions[s.id] = s
	return nil
}

func (in *Interpreter) unregister(s *Session) {
	in.mu.Lock()
	if in.sessions[s.id] == s {
		delete(in.sessions, s.id)
	}
	in.mu.Unlock()
}

// Compile validates and compiles a document given as bytes; name is its
// location (file path or URL), used in diagnostics and to resolve relative
// <script src>. An invalid document yields a Diagnostics error.
func (in *Interpreter) Compile(ctx context.Context, name string, src []byte) (*Document, error) {
	if int64(len(src)) > in.cfg.MaxDocumentSize {
		return nil, Diagnostics{{File: name, Line: 1, Col: 1, Msg: fmt.Sprintf("document is %d bytes, over the %d-byte limit", len(src), in.cfg.MaxDocumentSize)}}
	}
	root, diags := parseDoc(name, src)
	if len(diags) > 0 {
		return nil, diags
	}
	// External scripts are fetched once, when the document is loaded (CCXML
	// 1.0 section 8.2.2), and compiled into the document's programs.
	var walk func(n *node)
	walk = func(n *node) {
		if n.tag == "script" {
			if src, ok := n.attrs["src"]; ok {
				timeout := in.cfg.FetchTimeout
				if t, ok := n.attrs["timeout"]; ok {
					timeout, _ = ParseTime(t)
				}
				uri, err := resolve(name, src)
				var body []byte
				if err == nil {
					body, err = in.fetch(ctx, uri, fetchOpts{timeout: timeout})
				}
				switch {
				case err != nil:
					diags = append(diags, Diagnostic{File: name, Line: n.line, Col: n.col, Msg: fmt.Sprintf("<script> src: %v", err)})
				case scriptSyntax(uri, string(body)) != nil:
					diags = append(diags, *scriptSyntax(uri, string(body)))
				default:
					n.text = string(body)
				}
			}
		}
		for _, k := range n.kids {
			walk(k)
		}
	}
	walk(root)
	if len(diags) > 0 {
		return nil, diags
	}
	return build(name, root)
}

// Load fetches (from a file path, file: URL or http(s) URL within
// AllowedRoots), validates and compiles a document. Documents are cached by
// location: an HTTP document's cache lifetime follows its Cache-Control
// max-age (none: not cached); a local file's compiled document is reused
// while the file's size and modification time are unchanged.
func (in *Interpreter) Load(ctx context.Context, uri string) (*Document, error) {
	return in.load(ctx, uri, fetchOpts{})
}

func (in *Interpreter) load(ctx context.Context, uri string, o fetchOpts) (*Document, error) {
	in.mu.Lock()
	ce, ok := in.cache[uri]
	in.mu.Unlock()
	if local := strings.TrimPrefix(uri, "file://"); !strings.HasPrefix(local, "http://") && !strings.HasPrefix(local, "https://") {
		// Local documents are compiled once and reused until the file changes.
		if !in.allowed(local) {
			return nil, fmt.Errorf("load %s: %w", uri, ErrNotAllowed)
		}
		fi, err := os.Stat(local)
		if err != nil {
			return nil, fmt.Errorf("load %s: %w", uri, err)
		}
		if ok && ce.modTime.Equal(fi.ModTime()) && ce.size == fi.Size() {
			return ce.doc, nil
		}
		doc, err := in.loadFresh(ctx, uri, &o)
		if err != nil {
			return nil, err
		}
		in.mu.Lock()
		in.cache[uri] = &cacheEntry{doc: doc, modTime: fi.ModTime(), size: fi.Size()}
		in.mu.Unlock()
		return doc, nil
	}
	if ok && time.Now().Before(ce.expires) && !(o.hasAge && o.maxAge == 0) && o.method != "POST" && len(o.form) == 0 {
		return ce.doc, nil
	}
	doc, err := in.loadFresh(ctx, uri, &o)
	if err != nil {
		return nil, err
	}
	if o.gotAge > 0 {
		in.mu.Lock()
		in.cache[uri] = &cacheEntry{doc: doc, expires: time.Now().Add(o.gotAge)}
		in.mu.Unlock()
	}
	return doc, nil
}

func (in *Interpreter) loadFresh(ctx context.Context, uri string, o *fetchOpts) (*Document, error) {
	if o.timeout == 0 {
		o.timeout = in.cfg.FetchTimeout
	}
	o.wantAge = true
	body, err := in.fetchWithAge(ctx, uri, o)
	if err != nil {
		return nil, fmt.Errorf("load %s: %w", uri, err)
	}
	return in.Compile(ctx, uri, body)
}
