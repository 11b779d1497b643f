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
// Each session has one queue served by one goroutine. For each event the
// interpreter first updates the session's connection, conference and dialog
// objects from the event, then selects the first <transition> in document
// order whose state list contains the state variable's value (or has no
// state), whose event pattern matches and whose cond is true, and runs it to
// completion. The rules below are what recfork does; each names its source,
// and "recfork" marks a choice where the Recommendation is silent. Every rule
// has a document in testdata/conformance that fails when it is broken.
//
// Queue order:
//   - ccxml.loaded is a document's first event, at the start and after
//     <goto> (section 9.4.1).
//   - Every error.* event the interpreter raises while an item runs (a
//     transition, the errors of a platform method that refused, a delayed
//     send's delivery, a fetch completion) goes to the FRONT of the queue,
//     in the order raised, once that item is done; so the document handles
//     its own errors before any event that was already waiting. Source:
//     section 9.5.2, "the corresponding error event is added to the front of
//     the CCXML document's event queue ... immediately after the current
//     event" (error-front-of-queue, error-order-multiple, error-front-nested).
//     An error raised by the document's initial scripts comes right after
//     ccxml.loaded.
//   - Everything else goes to the tail: send.successful, cancel.successful,
//     move.successful, the connection.*.failed events, and every event a
//     Platform posts with Session.Post, errors included (error.bvr.record,
//     an asynchronous error.conference.join): those are asynchronous
//     completions, not errors of the transition.
//   - send.successful for a ccxml target or a platform event processor is
//     queued before the event is handed over (and withdrawn if the hand-over
//     fails), so it always precedes the target's answer, whether the answer
//     is immediate or takes a network round trip (recfork; this is what makes
//     the simulator and recforkd agree).
//
// Transition selection (section 9.2 and the <transition> element):
//   - state is a space-separated list of literal values compared with the
//     state variable (statevariable, else state$, initially undefined: a
//     transition with a state list never matches an undefined state).
//   - Event patterns: '*' matches any run of characters (zero or more),
//     anywhere in the pattern; every other character matches itself, ASCII
//     letters compared without regard to case (recfork: platforms
//     historically raised upper-case names such as connection.CONNECTION_ALERTING).
//     No implicit dot-prefix matching is done (recfork): "error" does not
//     match "error.semantic"; write "error.*". An absent event attribute
//     matches every event (transition-prefix, transition-wildcard).
//   - A cond that throws raises error.semantic (tagname "transition"); that
//     transition is not selected and selection goes on in document order
//     (recfork; transition-cond-error).
//   - The first match in document order wins (transition-order).
//   - An unmatched event is dropped, except error.* and ccxml.kill, which end
//     the session; ccxml.kill.unconditional always ends it and is never
//     delivered (section 9.2).
//
// # Errors
//
// Which errors stop a transition (section 9.1 as amended by the working
// group's answers on www-voice to ISSUE-235, 2007-12-13, and ISSUE-614,
// 2009-07-23): an ECMAScript evaluation error in an element (an exception in
// an expression or script, <assign> or an id-receiving attribute naming an
// undeclared variable, a namelist naming one, assigning a session variable,
// a runaway script interrupted after Config.ScriptBudget, a call stack deeper
// than Config.MaxCallStackSize) raises error.semantic for that element and
// the rest of the transition does not run. An element that names a
// connection, conference or dialog the session does not have (<accept>,
// <reject>, <redirect>, <disconnect>, <merge>, <join>, <unjoin>, createcall's
// joinid, <destroyconference>, <dialogstart prepareddialogid>,
// <dialogterminate>, <move source>) raises error.semantic and the transition
// goes on; so does an element whose attributes evaluated to values it cannot
// carry out (a bad delay or duplex, <goto> of an unknown fetchid, <accept>
// with no connection). An operation the platform refuses or that fails later
// reports through its own event and never stops the transition
// (connection.accept.failed, error.conference.join, error.send.*, ...; see
// Platform).
//
// What error events carry: every event has name, eventid, eventsource and
// eventsourcetype; events the interpreter raises have eventsource session.id
// and eventsourcetype "ccxml". error.semantic: reason (ending with the
// element's file:line:col) and tagname. error.send.*, error.notallowed:
// sendid, reason. error.fetch: fetchid, uri, reason. error.createccxml:
// sessionid, reason. error.move: sessionid, sourceid, reason.
// error.conference.*: id1 and id2 or conferenceid, reason. error.connection
// and connection.*.failed: connectionid, reason. error.dialog.*: dialogid,
// reason.
//
// # Events and objects
//
//   - An event a platform posts with a connectionid and no eventsource has
//     eventsource the connection id and eventsourcetype "connection"
//     (recfork); event$.connection is session.connections[connectionid],
//     already updated: ALERTING at connection.alerting, CONNECTED at
//     connection.connected, and so on (see Event). A connection stays in
//     session.connections with its final state after it ends (recfork;
//     connection-states). <createcall> makes its connection, PROGRESSING,
//     before it returns (createcall-states).
//   - <send namelist> copies the variables' values when the send executes,
//     also for a delayed send (send-namelist-snapshot); "name" and "eventid"
//     in a namelist are the event's own and are ignored; the sendid is the
//     delivered event's eventid for ccxml targets. The text is silent on
//     answers from a connection's processor; recfork gives the
//     bvr.record.update or error.bvr.record answering a <send> that send's
//     sendid as eventid (simulator and recforkd alike).
//   - <cancel> of a send that is not pending (unknown, or already
//     delivered) raises error.notallowed (cancel-expired, cancel-notallowed).
//   - <exit> ends the session at once: nothing after it runs, queued events
//     are dropped. The parent of a session started by <createccxml> receives
//     ccxml.exit with sessionid, expr, reason ("exit", "error", "kill",
//     "canceled"), the namelist variables as properties and, for older
//     documents, also in event$.values; also when the child ended on an
//     unhandled error (createccxml, createccxml-child-error).
//
// SessionOptions.Trace, recforkctl ccxml run --trace, and the interpreter's
// Debug-level "ccxml event" log record show the order in which a session
// handled its events and the transition each went to. Lint reports likely
// bvr.record mistakes (recforkctl ccxml check prints them as warnings).
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
