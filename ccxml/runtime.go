package ccxml

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/dop251/goja"
)

type semErr struct {
	node   *node
	reason string
}

// start gives the session a fresh runtime for document d (at the start and
// after <goto>): the session and application objects (application values
// survive a <goto>), the connection objects, then the document's top-level
// <var> and <script> in document order.
func (s *Session) start(d *Document) {
	var appVals, connVals map[string]any
	if s.rt != nil {
		appVals, _ = s.appObj.Export().(map[string]any)
		connVals = make(map[string]any, len(s.conns))
		for id, o := range s.conns {
			connVals[id] = o.Export()
		}
	}
	s.doc = d
	rt := goja.New()
	rt.SetMaxCallStackSize(s.in.cfg.MaxCallStackSize)
	s.rt = rt
	s.fns = make([]goja.Callable, len(d.trans))
	s.conds = make([]goja.Callable, len(d.trans))
	s.conns = make(map[string]*goja.Object)
	if s.confs == nil {
		// Conferences and dialogs outlive a <goto>, like connections.
		s.confs, s.dialogs = make(map[string]bool), make(map[string]bool)
	}
	if s.watch != nil {
		s.watch.Stop()
	}
	s.fired = make(chan struct{}, 1)
	fired := s.fired
	s.watch = time.AfterFunc(time.Hour, func() {
		rt.Interrupt(errBudget)
		fired <- struct{}{}
	})
	s.watch.Stop()

	g := rt.GlobalObject()
	sess := rt.NewObject()
	ro(sess, "id", rt.ToValue(s.id))
	ro(sess, "uri", rt.ToValue(s.opts.URI))
	ro(sess, "startupmode", rt.ToValue(s.opts.StartupMode))
	ro(sess, "parentid", rt.ToValue(s.opts.ParentID))
	s.connsObj = rt.NewObject()
	s.confsObj = rt.NewObject()
	s.dlgsObj = rt.NewObject()
	ro(sess, "connections", s.connsObj)
	ro(sess, "conferences", s.confsObj)
	ro(sess, "dialogs", s.dlgsObj)
	iop := rt.NewObject()
	for k, v := range s.opts.IOProcessors {
		ro(iop, k, rt.ToValue(v))
	}
	ro(sess, "ioprocessors", iop)
	vals := rt.NewObject()
	for k, v := range s.opts.Values {
		ro(vals, k, s.toJS(v))
	}
	ro(sess, "values", vals)
	s.sessObj = sess
	s.appObj = rt.NewObject()
	for k, v := range appVals {
		_ = s.appObj.Set(k, s.toJS(v))
	}
	ro(g, "session", sess)
	ro(g, "application", s.appObj)
	ro(g, "ccxml", g)
	// Unqualified names not found in the ccxml scope are looked up in the
	// application scope (CCXML 1.0 section 8.1).
	_ = g.SetPrototype(s.appObj)
	cc := rt.NewObject()
	for _, st := range []string{StateAlerting, StateProgressing, StateConnected, StateFailed, StateDisconnected, StateError} {
		ro(cc, st, rt.ToValue(st))
	}
	ro(g, "Connection", cc)
	ro(g, "__x", rt.ToValue(s.native))
	ro(g, "__u", rt.ToValue(s.undeclared))
	for id, v := range connVals {
		if m, ok := v.(map[string]any); ok {
			o := rt.NewObject()
			for k, fv := range m {
				_ = o.Set(k, s.toJS(fv))
			}
			s.conns[id] = o
			ro(s.connsObj, id, o)
		}
	}
	if d.init != nil {
		err := s.guard(func() error { _, err := rt.RunProgram(d.init); return err })
		s.jsError(err, d.nodes[0], d.initName)
	}
}

func ro(o *goja.Object, k string, v goja.Value) {
	_ = o.DefineDataProperty(k, v, goja.FLAG_FALSE, goja.FLAG_TRUE, goja.FLAG_TRUE)
}

var errBudget = errors.New("script budget exceeded")

// guard runs f under the session's script budget (CCXML leaves runaway
// scripts to the platform; recfork interrupts them and raises error.semantic).
func (s *Session) guard(f func() error) error {
	s.watch.Reset(s.in.cfg.ScriptBudget)
	err := f()
	if !s.watch.Stop() {
		<-s.fired
	}
	s.rt.ClearInterrupt()
	return err
}

// jsError turns the outcome of a script run into events: flow control
// (<exit>, <goto>) is not an error; a semantic error raised by an element, an
// exception or an interrupted runaway script raises error.semantic with the
// element's tagname (CCXML 1.0 section 9.4, error.semantic).
func (s *Session) jsError(err error, fallback *node, prog string) {
	if err == nil {
		return
	}
	if s.stop != nil || s.gotoDoc != nil {
		return
	}
	if s.sem != nil {
		se := s.sem
		s.sem = nil
		s.semantic(se.node, se.reason)
		return
	}
	n := fallback
	at := func(frames []goja.StackFrame) {
		if e := s.doc.elementAt(frames, prog); e != nil {
			n = e
		}
	}
	var ie *goja.InterruptedError
	var so *goja.StackOverflowError
	var ex *goja.Exception
	switch {
	case errors.As(err, &ie):
		at(ie.Stack())
		s.semantic(n, fmt.Sprintf("script exceeded its budget of %v", s.in.cfg.ScriptBudget))
	case errors.As(err, &so):
		at(so.Stack())
		s.semantic(n, fmt.Sprintf("call stack exceeds %d frames", s.in.cfg.MaxCallStackSize))
	case errors.As(err, &ex):
		at(ex.Stack())
		reason := "exception"
		if v := ex.Value(); v != nil {
			reason = v.String()
		}
		s.semantic(n, reason)
	default:
		s.semantic(n, err.Error())
	}
}

// semantic raises error.semantic for element n: tagname is the element's
// name, and reason ends with the element's position so a document's author
// can find it.
func (s *Session) semantic(n *node, reason string) {
	s.raise("error.semantic", map[string]any{"tagname": n.tag,
		"reason": fmt.Sprintf("%s (%s:%d:%d)", reason, n.file, n.line, n.col)})
}

// toJS converts Go values from events into plain ECMAScript values, so
// documents can enumerate and stringify them.
func (s *Session) toJS(v any) goja.Value {
	switch x := v.(type) {
	case nil:
		return goja.Null()
	case goja.Value:
		return x
	case map[string]any:
		o := s.rt.NewObject()
		for k, fv := range x {
			_ = o.Set(k, s.toJS(fv))
		}
		return o
	case map[string]string:
		o := s.rt.NewObject()
		for k, fv := range x {
			_ = o.Set(k, fv)
		}
		return o
	case []any:
		vs := make([]any, len(x))
		for i, e := range x {
			vs[i] = s.toJS(e)
		}
		return s.rt.NewArray(vs...)
	case []string:
		vs := make([]any, len(x))
		for i, e := range x {
			vs[i] = e
		}
		return s.rt.NewArray(vs...)
	default:
		return s.rt.ToValue(v)
	}
}

var stateByEvent = map[string]string{
	"connection.alerting":     StateAlerting,
	"connection.progressing":  StateProgressing,
	"connection.connected":    StateConnected,
	"connection.failed":       StateFailed,
	"connection.disconnected": StateDisconnected,
	"connection.redirected":   StateDisconnected,
	"connection.merged":       StateDisconnected,
	"error.connection":        StateError,
}

var connFields = []string{"local", "remote", "protocol", "aai", "originator", "substate", "endpoint",
	"redirect", "dialogid", "input", "outputs"}

// updateObjects is the first step of the EHIA: the session's connection,
// conference and dialog objects reflect the event before any transition is
// selected (CCXML 1.0 section 9.3).
func (s *Session) updateObjects(ev Event, lname string) *goja.Object {
	switch {
	case strings.HasPrefix(lname, "conference."):
		id, _ := ev.Fields["conferenceid"].(string)
		if id == "" {
			return nil
		}
		switch lname {
		case "conference.created":
			o := s.rt.NewObject()
			_ = o.Set("conferenceid", id)
			ro(s.confsObj, id, o)
			s.confs[id] = true
		case "conference.destroyed":
			_ = s.confsObj.Delete(id)
			delete(s.confs, id)
		}
		return nil
	case strings.HasPrefix(lname, "dialog."):
		id, _ := ev.Fields["dialogid"].(string)
		if id == "" {
			return nil
		}
		switch lname {
		case "dialog.prepared", "dialog.started":
			o := s.rt.NewObject()
			_ = o.Set("dialogid", id)
			for _, k := range []string{"connectionid", "conferenceid", "type", "src"} {
				if v, ok := ev.Fields[k]; ok {
					_ = o.Set(k, s.toJS(v))
				}
			}
			ro(s.dlgsObj, id, o)
			s.dialogs[id] = true
		case "dialog.exit":
			_ = s.dlgsObj.Delete(id)
			delete(s.dialogs, id)
		}
		return nil
	}
	state, isState := stateByEvent[lname]
	if !isState && !strings.HasPrefix(lname, "connection.") {
		return nil
	}
	cid, _ := ev.Fields["connectionid"].(string)
	if cid == "" {
		return nil
	}
	o := s.conns[cid]
	if o == nil {
		if !isState {
			return nil
		}
		o = s.rt.NewObject()
		_ = o.Set("connectionid", cid)
		s.conns[cid] = o
		ro(s.connsObj, cid, o)
	}
	if isState {
		_ = o.Set("state", state)
	}
	for _, k := range connFields {
		if v, ok := ev.Fields[k]; ok {
			_ = o.Set(k, s.toJS(v))
		}
	}
	return o
}

// dispatch runs the EHIA for one event.
func (s *Session) dispatch(ev Event) {
	if ev.Fields == nil {
		ev.Fields = map[string]any{}
	}
	if _, ok := ev.Fields["eventid"]; !ok {
		ev.Fields["eventid"] = s.newSeq("e")
	}
	// An event a platform posts about a connection comes from that
	// connection: its eventsource is the connection id and its
	// eventsourcetype "connection", unless the platform said otherwise.
	_, hasSrc := ev.Fields["eventsource"]
	_, hasType := ev.Fields["eventsourcetype"]
	if cid, ok := ev.Fields["connectionid"].(string); ok && cid != "" && !hasSrc && !hasType {
		ev.Fields["eventsource"], ev.Fields["eventsourcetype"] = cid, "connection"
		hasSrc, hasType = true, true
	}
	if !hasType {
		ev.Fields["eventsourcetype"] = "platform"
	}
	if !hasSrc {
		ev.Fields["eventsource"] = ""
	}
	lname := strings.ToLower(ev.Name)
	if lname == "ccxml.kill.unconditional" {
		s.trace(ev, nil, "killed")
		s.end(ExitStatus{Reason: "kill", Event: ev.Name}, fmt.Errorf("session %s: %w", s.id, ErrKilled))
		return
	}
	conn := s.updateObjects(ev, lname)
	evObj := s.rt.NewObject()
	_ = evObj.Set("name", ev.Name)
	for k, v := range ev.Fields {
		if k != "name" {
			_ = evObj.Set(k, s.toJS(v))
		}
	}
	if conn != nil {
		_ = evObj.Set("connection", conn)
	}
	s.cur = &ev
	defer func() { s.cur = nil }()
	state := ""
	stateSet := false
	for i, t := range s.doc.trans {
		if len(t.states) > 0 {
			if !stateSet {
				stateSet = true
				if v := s.rt.GlobalObject().Get(s.doc.statevar); v != nil && !goja.IsUndefined(v) && !goja.IsNull(v) {
					state = v.String()
				} else {
					state = "\x00undefined"
				}
			}
			match := false
			for _, st := range t.states {
				if st == state {
					match = true
					break
				}
			}
			if !match {
				continue
			}
		}
		if !MatchEvent(t.event, ev.Name) {
			continue
		}
		if t.cond != nil {
			ok, err := s.cond(i, evObj)
			if err != nil {
				s.jsError(err, t.node, "")
				continue
			}
			if !ok {
				continue
			}
		}
		s.trace(ev, t.node, "handled")
		s.runTransition(i, evObj)
		return
	}
	// Unhandled: error.* and ccxml.kill end the session (CCXML 1.0 section 9.3).
	switch {
	case strings.HasPrefix(lname, "error."), lname == "ccxml.kill":
		s.trace(ev, nil, "ended")
	default:
		s.trace(ev, nil, "dropped")
	}
	switch {
	case strings.HasPrefix(lname, "error."):
		reason, _ := ev.Fields["reason"].(string)
		s.end(ExitStatus{Reason: "error", Event: ev.Name, Detail: reason},
			fmt.Errorf("session %s: %s (%s): %w", s.id, ev.Name, reason, ErrUnhandledError))
	case lname == "ccxml.kill":
		s.end(ExitStatus{Reason: "kill", Event: ev.Name}, fmt.Errorf("session %s: %w", s.id, ErrKilled))
	}
}

// trace reports one handled event to SessionOptions.Trace and the debug log.
func (s *Session) trace(ev Event, t *node, result string) {
	debug := s.in.log.Enabled(context.Background(), slog.LevelDebug)
	if s.opts.Trace == nil && !debug {
		return
	}
	e := TraceEntry{Session: s.id, Event: ev.Name, Result: result}
	e.EventID, _ = ev.Fields["eventid"].(string)
	if t != nil {
		e.Transition = fmt.Sprintf("%s:%d:%d", t.file, t.line, t.col)
	}
	if debug {
		s.in.log.Debug("ccxml event", "session_id", s.id, "event", e.Event, "event_id", e.EventID,
			"transition", e.Transition, "result", e.Result)
	}
	if s.opts.Trace != nil {
		s.opts.Trace(e)
	}
}

func (s *Session) function(p *goja.Program) (goja.Callable, error) {
	var fn goja.Callable
	err := s.guard(func() error {
		v, err := s.rt.RunProgram(p)
		if err != nil {
			return err
		}
		f, ok := goja.AssertFunction(v)
		if !ok {
			return fmt.Errorf("compiled transition is not a function")
		}
		fn = f
		return nil
	})
	return fn, err
}

func (s *Session) cond(i int, evObj *goja.Object) (bool, error) {
	fn := s.conds[i]
	if fn == nil {
		var err error
		if fn, err = s.function(s.doc.trans[i].cond); err != nil {
			return false, err
		}
		s.conds[i] = fn
	}
	var res bool
	err := s.guard(func() error {
		v, err := fn(goja.Undefined(), evObj, evObj)
		if err == nil {
			res = v.ToBoolean()
		}
		return err
	})
	return res, err
}

func (s *Session) runTransition(i int, evObj *goja.Object) {
	t := s.doc.trans[i]
	fn := s.fns[i]
	if fn == nil {
		var err error
		if fn, err = s.function(t.body); err != nil {
			s.jsError(err, t.node, "")
			return
		}
		s.fns[i] = fn
	}
	err := s.guard(func() error { _, err := fn(goja.Undefined(), evObj, evObj); return err })
	s.jsError(err, t.node, t.bname)
}
