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
