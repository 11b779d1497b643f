package sim

import (
	"context"
	"errors"

	"github.com/recfork/recfork/ccxml"
)

// RunOptions configures Run.
type RunOptions struct {
	// From and To, when From is non-empty, deliver one inbound call.
	From, To string
	// Log receives each <log>.
	Log func(label, value string)
	// Platform configures the simulated platform.
	Platform Config
	// Values become session.values (recforkd gives its sessions "srs" and
	// "destination" there).
	Values map[string]any
	// Trace, when set, receives every event the session handles, in order
	// (ccxml.SessionOptions.Trace).
	Trace func(ccxml.TraceEntry)
}

// Result is how a simulated run ended.
type Result struct {
	// Code is 0 when the session ended with <exit> or after its last
	// connection was gone, 1 on an unhandled error (or kill, or internal
	// failure), 2 when ctx ended first (timeout).
	Code   int
	Status ccxml.ExitStatus
	Err    error
	// Gone is true when the run ended because the last connection was gone.
	Gone bool
}

// Run runs doc against a fresh simulated platform until the session exits,
// its last connection is gone, or ctx ends.
func Run(ctx context.Context, in *ccxml.Interpreter, doc *ccxml.Document, o RunOptions) Result {
	p, _ := New(o.Platform)
	gone := false
	opts := ccxml.SessionOptions{Log: o.Log, StartupMode: ccxml.StartupExternal, Values: o.Values, Trace: o.Trace}
	if o.From != "" {
		opts.StartupMode = ccxml.StartupNewCall
	}
	opts.Idle = func(s *ccxml.Session) {
		if p.Idle(s) {
			return
		}
		if !gone && p.Seen() > 0 && p.Live() == 0 {
			gone = true
			_ = s.Kill()
		}
	}
	s, err := in.NewSession(doc, p, opts)
	if err != nil {
		return Result{Code: 1, Err: err}
	}
	if o.From != "" {
		if _, err := p.Call(s, o.From, o.To); err != nil {
			return Result{Code: 1, Err: err}
		}
	}
	err = s.Run(ctx)
	p.Hangup(s)
	st := s.Status()
	r := Result{Status: st, Err: err, Gone: gone}
	switch {
	case st.Reason == "exit":
		r.Code = 0
	case gone && st.Reason == "kill":
		r.Code, r.Err = 0, nil
	case st.Reason == "canceled" && errors.Is(err, context.DeadlineExceeded):
		r.Code = 2
	default:
		r.Code = 1
	}
	return r
}
