// Package ccxml is recfork's CCXML 1.0 interpreter: it parses and validates
// documents, runs one session per call with its own ECMAScript runtime and event
// queue, and talks to the outside world only through its Platform interface.
//
// # Using it
//
// A platform (recfork's controlplane, or the simulator in ccxml/sim) creates one
// Interpreter, loads documents with Interpreter.Load or Interpreter.Compile (each
// document and each of its scripts is compiled once and shared by every session
// that runs it), and starts a session per call:
//
//	s, err := in.NewSession(doc, platform, ccxml.SessionOptions{StartupMode: ccxml.StartupNewCall})
//	go s.Run(ctx)
//	s.Post(ccxml.Event{Name: "connection.alerting", Fields: map[string]any{"connectionid": id, ...}})
//
// Call-control elements (<accept>, <createcall>, <join>, ...) and <send> to a
// platform event processor (targettype 'connection', which carries bvr.record)
// become calls of Platform methods. A Platform method must not block: it starts
// the operation and returns; the outcome comes back later as an Event posted with
// Session.Post (connection.connected, conference.joined, bvr.record.update, ...).
// A method that returns an error makes the interpreter raise the element's
// failure event itself (see Platform).
//
// # Event handling (CCXML 1.0 section 9, the EHIA)
//
// Each session has one FIFO queue served by one goroutine. For each event the
// interpreter first updates the session's connection, conference and dialog
// objects from the event, then selects the first <transition> in document order
// whose state list contains the state variable's value (or has no state), whose
// event pattern matches and whose cond is true, and runs it to completion. Events
// raised meanwhile are queued.
//
// Event patterns: '*' matches any run of characters (zero or more), anywhere in
// the pattern; every other character matches itself, ASCII letters compared
// without regard to case. recfork treats event names as case-insensitive because
// CCXML platforms historically raised upper-case names (connection.CONNECTION_ALERTING)
// and the Recommendation's examples lower-case them; no implicit prefix matching
// is done ("error" does not match "error.semantic"; write "error.*").
//
// # Errors
//
// Following CCXML 1.0 section 9.1: an ECMAScript evaluation error in an
// element (an exception in an expression or script, <assign> or an id-receiving
// attribute naming an undeclared variable, assigning a session variable, a
// runaway script interrupted after Config.ScriptBudget, a call stack deeper
// than Config.MaxCallStackSize) stops the rest of the transition and raises
// error.semantic with "reason" and "tagname". An element whose attributes
// evaluated but which cannot be carried out (a bad delay value, <goto> of an
// unknown fetchid, <accept> with no connection) raises error.semantic too but
// the transition goes on; operations that fail later report through their own
// events (connection.accept.failed, error.connection, error.send.*, ...). An
// error.* event no transition handles, and ccxml.kill unhandled, end the
// session; ccxml.kill.unconditional always does and is never delivered. The
// parent of a session started by <createccxml> receives ccxml.exit.
//
// # Documents
//
// Validation follows the Recommendation's element table: required
// attributes, allowed children, expression attributes parsed as ECMAScript,
// id-receiving and namelist attributes checked as variable names; unknown
// elements in the CCXML namespace are errors, elements and attributes of other
// namespaces are ignored; the legacy <transition name="evt"> and <send data>
// are accepted. Every diagnostic has file, line and column. <script src> is
// fetched when the document loads and compiled into it; documents are compiled
// once (goja.Compile) and their programs shared by all sessions. <goto> gives
// the session a fresh ccxml scope; application variables are carried over
// as data (functions stored in application do not survive a <goto>).
// <move> needs a platform that implements Mover; otherwise it raises error.move.
//
// # Scopes
//
// The ccxml scope is the runtime's global object (top-level <var> and <script>),
// the application scope is the object `application` and the session scope the
// read-only object `session`; unqualified names that are not found in the
// ccxml scope are looked up in application and then session (they are the
// global object's prototype chain). Each transition runs as one compiled
// function, so a <var> inside a transition is local to it; event$ is a
// parameter of that function.
package ccxml
