package ccxml

// Event is one CCXML event: a name and its fields. Fields hold plain Go values
// (string, bool, numbers, []any, map[string]any, nil) that become properties of
// event$. The interpreter fills name, eventid (when absent), eventsource and
// eventsourcetype; platforms set the fields the Recommendation lists for the
// event, notably "connectionid" for connection events.
//
// For connection.* events the interpreter keeps session.connections[connectionid]
// up to date before selecting a transition: the state follows from the event name
// (connection.alerting: ALERTING, connection.progressing: PROGRESSING,
// connection.connected: CONNECTED, connection.failed: FAILED,
// connection.disconnected and connection.redirected and connection.merged:
// DISCONNECTED, error.connection: ERROR), and these fields, when present, are
// copied onto the connection object: local, remote, protocol, aai, originator,
// substate, endpoint, redirect, dialogid, input, outputs. event$.connection is
// then that object. conference.created / conference.destroyed and
// dialog.started / dialog.exit maintain session.conferences and session.dialogs
// the same way ("conferenceid", "dialogid").
type Event struct {
	Name   string
	Fields map[string]any
}

// Connection states as the document sees them (connection.state); the
// Connection object in ECMAScript carries constants with these same values.
const (
	StateAlerting     = "ALERTING"
	StateProgressing  = "PROGRESSING"
	StateConnected    = "CONNECTED"
	StateFailed       = "FAILED"
	StateDisconnected = "DISCONNECTED"
	StateError        = "ERROR"
)

// Startup modes (session.startupmode).
const (
	StartupNewCall     = "newcall"
	StartupExternal    = "external"
	StartupCreateCCXML = "createccxml"
)

// MatchEvent reports whether the event name matches a <transition> event
// pattern: '*' matches zero or more characters, other characters match
// themselves with ASCII case folded. An empty pattern matches every event (a
// transition without an event attribute handles anything).
func MatchEvent(pattern, name string) bool {
	if pattern == "" {
		return true
	}
	// Iterative wildcard match with one backtrack point: linear in practice
	// and never exponential, whatever the pattern.
	p, n := 0, 0
	star, mark := -1, 0
	for n < len(name) {
		switch {
		case p < len(pattern) && pattern[p] == '*':
			star, mark = p, n
			p++
		case p < len(pattern) && foldEq(pattern[p], name[n]):
			p++
			n++
		case star >= 0:
			p = star + 1
			mark++
			n = mark
		default:
			return false
		}
	}
	for p < len(pattern) && pattern[p] == '*' {
		p++
	}
	return p == len(pattern)
}

func foldEq(a, b byte) bool {
	if a == b {
		return true
	}
	if 'A' <= a && a <= 'Z' {
		a += 'a' - 'A'
	}
	if 'A' <= b && b <= 'Z' {
		b += 'a' - 'A'
	}
	return a == b
}
