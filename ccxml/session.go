package ccxml

import (
	"context"
	"fmt"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/dop251/goja"
)

// SessionOptions configures one session. The zero value is usable.
type SessionOptions struct {
	// ID is the session id (session.id). Empty: the interpreter makes one.
	ID string
	// StartupMode is session.startupmode: StartupNewCall for a session made
	// for an inbound call, StartupExternal (the default), StartupCreateCCXML.
	StartupMode string
	// ParentID is session.parentid; the parent receives ccxml.exit.
	ParentID string
	// URI is session.uri. Empty: the document's location.
	URI string
	// Values become session.values (read-only in the document).
	Values map[string]any
	// IOProcessors become session.ioprocessors (name to URI).
	IOProcessors map[string]string
	// Log receives each <log>: label ("" when absent) and value. Nil: the
	// interpreter's logger at Info level.
	Log func(label, value string)
	// Idle, when set, is called on the session's goroutine each time its
	// queue is empty after handling events (used by the simulator to notice
	// that a finished call left nothing to do).
	Idle func(s *Session)
	// Trace, when set, is called on the session's goroutine for every event
	// the session takes from its queue, once the transition is selected and
	// before it runs: the order in which a document hears its events. The interpreter also
	// logs each one at Debug level ("ccxml event").
	Trace func(TraceEntry)
}

// TraceEntry is one event as the session handled it.
type TraceEntry struct {
	Session string // session.id
	Event   string // event$.name
	EventID string // event$.eventid
	// Transition is where the selected <transition> is (file:line:col),
	// empty when none was selected.
	Transition string
	// Result is "handled", "dropped" (no transition), "ended" (an
	// unhandled error.* or ccxml.kill ended the session) or "killed"
	// (ccxml.kill.unconditional).
	Result string
}

// ExitStatus says how a session ended.
type ExitStatus struct {
	// Reason is "exit" (<exit>), "error" (an unhandled error.* event),
	// "kill" (ccxml.kill or ccxml.kill.unconditional), "canceled" (the Run
	// context ended) or "panic" (an internal failure, contained).
	Reason string
	// Event is the event that ended the session for "error" and "kill".
	Event string
	// Detail is that event's reason field, or the panic or context error.
	Detail string
	// Expr is the value of <exit expr>, exported (nil when absent).
	Expr any
	// Values holds <exit namelist> variables.
	Values map[string]any
}

type qitem struct {
	ev Event
	fn func() // runs on the session goroutine instead of dispatching an event
	// void, when set and true, makes the queue skip the item: a
	// send.successful queued before the platform was asked, withdrawn when
	// the platform refused. Only the session goroutine touches it.
	void *bool
}

// Session is one running CCXML session: a document, its ECMAScript runtime
// and its event queue, served by the goroutine that calls Run.
type Session struct {
	in   *Interpreter
	id   string
	plat Platform
	opts SessionOptions
	doc  *Document

	mu     sync.Mutex
	queue  []qitem
	head   int
	wake   chan struct{}
	closed bool
	done   chan struct{}
	status ExitStatus
	err    error
	timers map[string]*time.Timer // delayed sends by sendid
	seq    uint64

	// Owned by the Run goroutine.
	ctx      context.Context
	rt       *goja.Runtime
	fns      []goja.Callable
	conds    []goja.Callable
	sessObj  *goja.Object
	appObj   *goja.Object
	conns    map[string]*goja.Object
	connsObj *goja.Object
	confsObj *goja.Object
	dlgsObj  *goja.Object
	cur      *Event
	fetched  map[string]*Document
	scripts  map[string]*goja.Program // <fetch type="text/ecmascript"> results
	stop     *ExitStatus              // set by <exit>, a kill or an unhandled error
	gotoDoc  *Document
	watch    *time.Timer
	fired    chan struct{}
	ran      bool
	sem      *semErr
	// front collects the error.* events raised while the current item
	// runs; they go to the head of the queue, in the order raised, once
	// it is done (CCXML 1.0 section 9.5.2).
	front []qitem
	// confs and dialogs are the conference and dialog ids this session
	// created and has not seen destroyed or exited, for the unknown-id
	// check of <join>, <destroyconference>, <dialogterminate>, ...
	confs   map[string]bool
	dialogs map[string]bool
}

// NewSession creates a session for doc and registers it (so <send> can reach
// it); it starts handling events when Run is called, and only Run's end
// unregisters it, so every session made must be run (a session that is not
// wanted after all: Run it with a canceled context). Events may be posted
// before Run; ccxml.loaded always comes first.
func (in *Interpreter) NewSession(doc *Document, p Platform, opts SessionOptions) (*Session, error) {
	if doc == nil {
		return nil, fmt.Errorf("new ccxml session: nil document")
	}
	if p == nil {
		p = Unsupported{}
	}
	if opts.ID == "" {
		opts.ID = in.newID()
	}
	if opts.StartupMode == "" {
		opts.StartupMode = StartupExternal
	}
	if opts.URI == "" {
		opts.URI = doc.uri
	}
	s := &Session{in: in, id: opts.ID, plat: p, opts: opts, doc: doc,
		wake: make(chan struct{}, 1), done: make(chan struct{})}
	if err := in.register(s); err != nil {
		return nil, fmt.Errorf("new ccxml session: %w", err)
	}
	return s, nil
}

// ID returns session.id.
func (s *Session) ID() string { return s.id }

// Done is closed when the session has ended.
func (s *Session) Done() <-chan struct{} { return s.done }

// Status says how the session ended; valid once Done is closed.
func (s *Session) Status() ExitStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// Err is nil when the session ended by <exit> (or was never run to an end),
// and otherwise wraps ErrUnhandledError, ErrKilled or the context's error.
// Valid once Done is closed.
func (s *Session) Err() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}

// Post queues an event for the session. It is safe from any goroutine and
// never blocks; it fails once the session has ended or its queue is full.
func (s *Session) Post(ev Event) error {
	return s.enqueue(qitem{ev: ev})
}

// Kill ends the session as ccxml.kill.unconditional does.
func (s *Session) Kill() error {
	return s.Post(Event{Name: "ccxml.kill.unconditional"})
}

func (s *Session) enqueue(it qitem) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return fmt.Errorf("post %s to session %s: %w", it.ev.Name, s.id, ErrSessionClosed)
	}
	// A kill always gets in: it is how a stuck or flooded session is ended.
	if len(s.queue)-s.head >= s.in.cfg.MaxQueue && it.ev.Name != "ccxml.kill.unconditional" {
		s.mu.Unlock()
		return fmt.Errorf("post %s to session %s: queue full", it.ev.Name, s.id)
	}
	s.queue = append(s.queue, it)
	s.mu.Unlock()
	select {
	case s.wake <- struct{}{}:
	default:
	}
	return nil
}

// raise queues an event the interpreter itself generates for this session.
// It runs on the session goroutine only. An error.* event goes to the front
// of the queue once the current item (transition, delivery, completion) is
// done, in the order raised: "when an error occurs in a CCXML document, the
// corresponding error event is added to the front of the CCXML document's
// event queue", CCXML 1.0 section 9.5.2. Every other event goes to the tail.
func (s *Session) raise(name string, fields map[string]any) {
	it := s.own(name, fields)
	if isError(name) {
		s.front = append(s.front, it)
		return
	}
	_ = s.enqueue(it)
}

func (s *Session) own(name string, fields map[string]any) qitem {
	if fields == nil {
		fields = map[string]any{}
	}
	if _, ok := fields["eventsource"]; !ok {
		fields["eventsource"] = s.id
	}
	if _, ok := fields["eventsourcetype"]; !ok {
		fields["eventsourcetype"] = "ccxml"
	}
	return qitem{ev: Event{Name: name, Fields: fields}}
}

// reserve queues a non-error event at the tail now and returns the switch
// that withdraws it. <send> uses it for send.successful, so that the event
// is queued before the target can answer (the answer of a platform event
// processor, or an event the target session sends back, always comes after).
func (s *Session) reserve(name string, fields map[string]any) *bool {
	it := s.own(name, fields)
	void := new(bool)
	it.void = void
	_ = s.enqueue(it)
	return void
}

func isError(name string) bool {
	return len(name) > 6 && strings.EqualFold(name[:6], "error.")
}

// flushFront moves the errors the last item raised to the head of the queue.
func (s *Session) flushFront() {
	if len(s.front) == 0 {
		return
	}
	s.mu.Lock()
	if !s.closed {
		q := make([]qitem, 0, len(s.front)+len(s.queue)-s.head)
		q = append(q, s.front...)
		s.queue = append(q, s.queue[s.head:]...)
		s.head = 0
	}
	s.mu.Unlock()
	clear(s.front)
	s.front = s.front[:0]
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

func (s *Session) next() (qitem, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for {
		if s.head >= len(s.queue) {
			return qitem{}, false
		}
		it := s.queue[s.head]
		s.queue[s.head] = qitem{}
		s.head++
		if s.head == len(s.queue) {
			s.queue, s.head = s.queue[:0], 0
			if cap(s.queue) > 64 {
				s.queue = nil
			}
		}
		if it.void == nil || !*it.void {
			return it, true
		}
	}
}

func (s *Session) newSeq(kind string) string {
	s.mu.Lock()
	s.seq++
	n := s.seq
	s.mu.Unlock()
	return s.id + "." + kind + strconv.FormatUint(n, 10)
}

// Run runs the session until it ends: by <exit>, an unhandled error.* or
// ccxml.kill, or ctx. It returns Err. Run may be called once.
func (s *Session) Run(ctx context.Context) (err error) {
	s.mu.Lock()
	if s.ran {
		s.mu.Unlock()
		return fmt.Errorf("run session %s: already run", s.id)
	}
	s.ran = true
	s.mu.Unlock()
	// Operations the session started (fetches, sends) end with it.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	s.ctx = ctx
	defer s.finish()
	perr := s.protect(func() { s.start(s.doc) })
	// Errors of the document's initial scripts come right after
	// ccxml.loaded, which is always the first event.
	s.flushFront()
	s.pushLoaded()
	if perr != nil {
		return s.Err()
	}
	for s.stop == nil {
		it, ok := s.next()
		if !ok {
			if s.opts.Idle != nil {
				if s.protect(func() { s.opts.Idle(s) }) != nil {
					break
				}
				if _, more := s.peek(); more {
					continue
				}
			}
			select {
			case <-ctx.Done():
				s.stop = &ExitStatus{Reason: "canceled", Detail: ctx.Err().Error()}
				s.setErr(fmt.Errorf("run session %s: %w", s.id, ctx.Err()))
				continue
			case <-s.wake:
				continue
			}
		}
		if ctx.Err() != nil {
			s.stop = &ExitStatus{Reason: "canceled", Detail: ctx.Err().Error()}
			s.setErr(fmt.Errorf("run session %s: %w", s.id, ctx.Err()))
			break
		}
		if it.fn != nil {
			if s.protect(it.fn) != nil {
				break
			}
			s.flushFront()
			continue
		}
		if s.protect(func() { s.dispatch(it.ev) }) != nil {
			break
		}
		if s.gotoDoc != nil {
			// The old document's pending errors are not the new one's.
			clear(s.front)
			s.front = s.front[:0]
			d := s.gotoDoc
			s.gotoDoc = nil
			if s.protect(func() { s.start(d) }) != nil {
				break
			}
			s.flushFront()
			s.pushLoaded()
			continue
		}
		s.flushFront()
	}
	return s.Err()
}

// pushLoaded puts ccxml.loaded ahead of everything queued: a document's
// first event, at the start and after <goto>.
func (s *Session) pushLoaded() {
	loaded := qitem{ev: Event{Name: "ccxml.loaded", Fields: map[string]any{"sessionid": s.id, "parent": s.opts.ParentID,
		"eventsource": s.id, "eventsourcetype": "ccxml"}}}
	s.mu.Lock()
	s.queue = append([]qitem{loaded}, s.queue[s.head:]...)
	s.head = 0
	s.mu.Unlock()
}

func (s *Session) peek() (qitem, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.head >= len(s.queue) {
		return qitem{}, false
	}
	return s.queue[s.head], true
}

func (s *Session) setErr(err error) {
	s.mu.Lock()
	if s.err == nil {
		s.err = err
	}
	s.mu.Unlock()
}

// protect runs f, turning a panic into the end of this session only: one
// session's failure never touches another.
func (s *Session) protect(f func()) (perr error) {
	defer func() {
		if r := recover(); r != nil {
			s.in.log.Error("ccxml session panic", "session_id", s.id, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			perr = fmt.Errorf("session %s: internal failure: %v", s.id, r)
			s.stop = &ExitStatus{Reason: "panic", Detail: fmt.Sprint(r)}
			s.setErr(perr)
		}
	}()
	f()
	return nil
}

func (s *Session) finish() {
	s.mu.Lock()
	s.closed = true
	if s.stop != nil {
		s.status = *s.stop
	} else {
		s.status = ExitStatus{Reason: "canceled"}
	}
	for id, t := range s.timers {
		t.Stop()
		delete(s.timers, id)
	}
	s.queue, s.head = nil, 0
	st := s.status
	s.mu.Unlock()
	if s.watch != nil {
		s.watch.Stop()
	}
	s.in.unregister(s)
	if s.opts.ParentID != "" {
		if p, ok := s.in.Session(s.opts.ParentID); ok {
			f := map[string]any{"sessionid": s.id, "eventsource": s.id, "eventsourcetype": "ccxml",
				"reason": st.Reason}
			if st.Expr != nil {
				f["expr"] = st.Expr
			}
			// The <exit namelist> variables are both properties of the
			// event (as the Recommendation's ccxml.exit describes them)
			// and, for older documents, of event$.values.
			vals := map[string]any{}
			for k, v := range st.Values {
				vals[k] = v
				if _, taken := f[k]; !taken && k != "values" && k != "name" && k != "eventid" {
					f[k] = v
				}
			}
			f["values"] = vals
			_ = p.Post(Event{Name: "ccxml.exit", Fields: f})
		}
	}
	close(s.done)
}

// end records why the session stops; the loop stops after the current item.
func (s *Session) end(st ExitStatus, err error) {
	if s.stop != nil {
		return
	}
	s.stop = &st
	if err != nil {
		s.setErr(err)
	}
}
