package ccxml

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/dop251/goja"
)

// args gives an element's evaluated attributes to its Go implementation.
type args struct {
	s    *Session
	n    *node
	call goja.FunctionCall
}

func (a args) val(attr string) (goja.Value, bool) {
	if !a.n.has(attr) {
		return nil, false
	}
	return a.call.Argument(argIndex(a.n.tag, attr)), true
}

func (a args) str(attr, def string) string {
	v, ok := a.val(attr)
	if !ok || goja.IsUndefined(v) || goja.IsNull(v) {
		return def
	}
	return v.String()
}

func (a args) export(attr string) any {
	v, ok := a.val(attr)
	if !ok {
		return nil
	}
	return v.Export()
}

func (a args) boolean(attr string) bool {
	v, ok := a.val(attr)
	return ok && v.ToBoolean()
}

func (a args) namelist() map[string]any {
	v := a.call.Argument(len(exprArgs[a.n.tag]) + 1)
	if goja.IsUndefined(v) {
		return map[string]any{}
	}
	m, _ := v.Export().(map[string]any)
	if m == nil {
		m = map[string]any{}
	}
	return m
}

// fail raises error.semantic for an element whose attributes evaluated but
// whose values it cannot carry out (a bad delay, an unknown fetchid). Per
// CCXML 1.0 section 9.1 such failures in the execution of an element do not
// end the transition; only ECMAScript evaluation errors do.
func (s *Session) fail(n *node, format string, a ...any) goja.Value {
	s.semantic(n, fmt.Sprintf(format, a...))
	return goja.Undefined()
}

// undeclared is __u: an attribute names a variable that does not exist, or a
// read-only session variable.
func (s *Session) undeclared(call goja.FunctionCall) goja.Value {
	idx := int(call.Argument(0).ToInteger())
	if idx < 0 || idx >= len(s.doc.nodes) {
		return goja.Undefined()
	}
	n := s.doc.nodes[idx]
	name := n.attrs["name"]
	for attr, spec := range schema[n.tag].attrs {
		if spec.kind == attrLHS && n.has(attr) {
			name = n.attrs[attr]
		}
	}
	// Assigning to a name that does not exist is an ECMAScript evaluation
	// error: the rest of the transition does not run (CCXML 1.0 section 9.1).
	reason := "assignment to undeclared variable " + name
	if call.Argument(1).ToInteger() == 1 {
		reason = "session variable " + name + " is read-only"
	}
	s.sem = &semErr{node: n, reason: reason}
	s.rt.Interrupt(s.sem)
	return goja.Undefined()
}

// native is __x, the one entry point of executable elements other than var,
// assign, script and if: its first argument is the element's index, then the
// element's expression attributes in exprArgs order, then the namelist object.
func (s *Session) native(call goja.FunctionCall) goja.Value {
	idx := int(call.Argument(0).ToInteger())
	if idx < 0 || idx >= len(s.doc.nodes) {
		return goja.Undefined()
	}
	n := s.doc.nodes[idx]
	a := args{s: s, n: n, call: call}
	switch n.tag {
	case "log":
		s.logLine(a.str("label", ""), a.str("expr", ""))
	case "exit":
		st := ExitStatus{Reason: "exit", Expr: a.export("expr"), Values: a.namelist()}
		s.end(st, nil)
		s.rt.Interrupt(nil)
	case "send":
		return s.send(a)
	case "cancel":
		s.cancel(a)
	case "fetch":
		return s.fetchElem(a)
	case "goto":
		id := a.str("fetchid", "")
		d, ok := s.fetched[id]
		if !ok {
			return s.fail(n, "goto: no fetched document with fetchid %q", id)
		}
		s.gotoDoc = d
		s.rt.Interrupt(nil)
	case "createccxml":
		return s.createCCXML(a)
	case "script":
		id := a.str("fetchid", "")
		prg, ok := s.scripts[id]
		if !ok {
			return s.fail(n, "script: no fetched script with fetchid %q", id)
		}
		if _, err := s.rt.RunProgram(prg); err != nil {
			// Rethrow: the exception (or interrupt) belongs to this element.
			panic(err)
		}
	case "move":
		s.move(a)
	case "dialogprepare", "dialogstart", "dialogterminate":
		return s.dialog(a)
	default:
		return s.callControl(a)
	}
	return goja.Undefined()
}

// knownEndpoint reports whether id is a connection or a conference of this
// session (the operands of <join>, <unjoin> and createcall's joinid).
func (s *Session) knownEndpoint(id string) bool {
	_, conn := s.conns[id]
	return conn || s.confs[id]
}

func (s *Session) logLine(label, value string) {
	if s.opts.Log != nil {
		s.opts.Log(label, value)
		return
	}
	s.in.log.Info("ccxml log", "session_id", s.id, "label", label, "value", value)
}

// connID is an element's connectionid, defaulting to the current event's
// (CCXML 1.0 section 10.2: "defaults to the id of the connection in the
// current event").
func (s *Session) connID(a args, attr string) (string, bool) {
	if id := a.str(attr, ""); id != "" {
		return id, true
	}
	if s.cur != nil {
		if id, ok := s.cur.Fields["connectionid"].(string); ok && id != "" {
			return id, true
		}
	}
	return "", false
}

var failureEvent = map[string]string{
	"accept": "connection.accept.failed", "reject": "connection.reject.failed",
	"redirect": "connection.redirect.failed", "merge": "connection.merge.failed",
	"createcall": "connection.failed", "disconnect": "error.connection",
	"join": "error.conference.join", "unjoin": "error.conference.unjoin",
	"createconference": "error.conference.create", "destroyconference": "error.conference.destroy",
	"dialogprepare": "error.dialog.notprepared", "dialogstart": "error.dialog.notstarted",
	"dialogterminate": "error.dialog",
}

func (s *Session) callControl(a args) goja.Value {
	n := a.n
	ctx := s.ctx
	var err error
	fields := map[string]any{}
	var ret goja.Value = goja.Undefined()
	// An element naming a connection, conference or dialog the session
	// does not have raises error.semantic and the transition goes on (CCXML
	// 1.0 section 9.1, as the working group answered on www-voice for
	// ISSUE-614, 2009-07-23).
	needConn := func(attr string) (string, bool) {
		id, ok := s.connID(a, attr)
		if !ok {
			s.fail(n, "<%s> has no %s and the current event names no connection", n.tag, attr)
			return "", false
		}
		fields["connectionid"] = id
		if _, known := s.conns[id]; !known {
			s.fail(n, "%s: unknown connection %s", attr, id)
			return "", false
		}
		return id, true
	}
	needIDs := func(attrs ...string) bool {
		for _, attr := range attrs {
			if id := a.str(attr, ""); !s.knownEndpoint(id) {
				s.fail(n, "%s: unknown connection or conference %q", attr, id)
				return false
			}
		}
		return true
	}
	switch n.tag {
	case "accept":
		id, ok := needConn("connectionid")
		if !ok {
			return ret
		}
		err = s.plat.Accept(ctx, s, AcceptRequest{ConnectionID: id, Hints: a.export("hints")})
	case "reject":
		id, ok := needConn("connectionid")
		if !ok {
			return ret
		}
		err = s.plat.Reject(ctx, s, RejectRequest{ConnectionID: id, Reason: a.str("reason", ""), Hints: a.export("hints")})
	case "redirect":
		id, ok := needConn("connectionid")
		if !ok {
			return ret
		}
		err = s.plat.Redirect(ctx, s, RedirectRequest{ConnectionID: id, Dest: a.str("dest", ""),
			Reason: a.str("reason", ""), Hints: a.export("hints")})
	case "disconnect":
		id, ok := needConn("connectionid")
		if !ok {
			return ret
		}
		err = s.plat.Disconnect(ctx, s, DisconnectRequest{ConnectionID: id, Reason: a.str("reason", ""), Hints: a.export("hints")})
	case "createcall":
		var timeout time.Duration
		if t := a.str("timeout", ""); t != "" {
			if timeout, err = ParseTime(t); err != nil {
				return s.fail(n, "timeout: %v", err)
			}
		}
		if a.str("joinid", "") != "" && !needIDs("joinid") {
			return ret
		}
		id := s.newSeq("c")
		dest := a.str("dest", "")
		o := s.rt.NewObject()
		_ = o.Set("connectionid", id)
		_ = o.Set("state", StateProgressing)
		_ = o.Set("remote", dest)
		_ = o.Set("originator", "local")
		s.conns[id] = o
		ro(s.connsObj, id, o)
		fields["connectionid"] = id
		ret = s.rt.ToValue(id)
		err = s.plat.CreateCall(ctx, s, CreateCallRequest{ConnectionID: id, Dest: dest, CallerID: a.str("callerid", ""),
			AAI: a.str("aai", ""), Timeout: timeout, JoinID: a.str("joinid", ""),
			JoinDirection: a.str("joindirection", "both"), Hints: a.export("hints")})
	case "join":
		r := JoinRequest{ID1: a.str("id1", ""), ID2: a.str("id2", ""), Duplex: a.str("duplex", "full"),
			DTMFClamp: a.boolean("dtmfclamp"), ToneClamp: a.boolean("toneclamp"), EnterTone: a.str("entertone", ""),
			ExitTone: a.str("exittone", ""), AutoInputGain: a.boolean("autoinputgain"),
			AutoOutputGain: a.boolean("autooutputgain"), Hints: a.export("hints")}
		if r.Duplex != "full" && r.Duplex != "half" {
			return s.fail(n, "duplex must be 'full' or 'half', got %q", r.Duplex)
		}
		if !needIDs("id1", "id2") {
			return ret
		}
		fields["id1"], fields["id2"] = r.ID1, r.ID2
		err = s.plat.Join(ctx, s, r)
	case "unjoin":
		r := UnjoinRequest{ID1: a.str("id1", ""), ID2: a.str("id2", ""), Hints: a.export("hints")}
		if !needIDs("id1", "id2") {
			return ret
		}
		fields["id1"], fields["id2"] = r.ID1, r.ID2
		err = s.plat.Unjoin(ctx, s, r)
	case "merge":
		r := MergeRequest{ConnectionID1: a.str("connectionid1", ""), ConnectionID2: a.str("connectionid2", ""), Hints: a.export("hints")}
		for _, attr := range []string{"connectionid1", "connectionid2"} {
			if _, known := s.conns[a.str(attr, "")]; !known {
				return s.fail(n, "%s: unknown connection %q", attr, a.str(attr, ""))
			}
		}
		fields["connectionid"] = r.ConnectionID1
		fields["connectionid1"], fields["connectionid2"] = r.ConnectionID1, r.ConnectionID2
		err = s.plat.Merge(ctx, s, r)
	case "createconference":
		id := s.newSeq("conf")
		fields["conferenceid"] = id
		ret = s.rt.ToValue(id)
		r := CreateConferenceRequest{ConferenceID: id, Name: a.str("confname", ""), Hints: a.export("hints")}
		if v, ok := a.val("reservedtalkers"); ok {
			r.ReservedTalkers = int(v.ToInteger())
		}
		if v, ok := a.val("reservedlisteners"); ok {
			r.ReservedListeners = int(v.ToInteger())
		}
		s.confs[id] = true
		err = s.plat.CreateConference(ctx, s, r)
		if err != nil {
			delete(s.confs, id)
		}
	case "destroyconference":
		id := a.str("conferenceid", "")
		if !s.confs[id] {
			return s.fail(n, "conferenceid: unknown conference %q", id)
		}
		fields["conferenceid"] = id
		err = s.plat.DestroyConference(ctx, s, DestroyConferenceRequest{ConferenceID: id, Hints: a.export("hints")})
	default:
		return s.fail(n, "element <%s> is not executable", n.tag)
	}
	if err != nil {
		fields["reason"] = err.Error()
		s.raise(failureEvent[n.tag], fields)
	}
	return ret
}

func (s *Session) dialog(a args) goja.Value {
	n := a.n
	var err error
	var ret goja.Value = goja.Undefined()
	fields := map[string]any{}
	switch n.tag {
	case "dialogprepare", "dialogstart":
		r := DialogRequest{Src: a.str("src", ""), Type: a.str("type", "application/voicexml+xml"),
			ConferenceID: a.str("conferenceid", ""), MediaDirection: a.str("mediadirection", "both"),
			Params: a.namelist(), Hints: a.export("hints")}
		if p := a.str("prepareddialogid", ""); p != "" {
			if !s.dialogs[p] {
				return s.fail(n, "prepareddialogid: unknown dialog %q", p)
			}
			r.DialogID, r.Prepared = p, true
		} else {
			r.DialogID = s.newSeq("d")
		}
		if r.ConferenceID != "" && !s.confs[r.ConferenceID] {
			return s.fail(n, "conferenceid: unknown conference %q", r.ConferenceID)
		}
		if r.ConferenceID == "" {
			r.ConnectionID, _ = s.connID(a, "connectionid")
			if _, known := s.conns[r.ConnectionID]; r.ConnectionID != "" && !known {
				return s.fail(n, "connectionid: unknown connection %q", r.ConnectionID)
			}
		}
		fields["dialogid"] = r.DialogID
		if r.ConnectionID != "" {
			fields["connectionid"] = r.ConnectionID
		}
		ret = s.rt.ToValue(r.DialogID)
		fresh := !s.dialogs[r.DialogID]
		s.dialogs[r.DialogID] = true
		if n.tag == "dialogprepare" {
			err = s.plat.DialogPrepare(s.ctx, s, r)
		} else {
			err = s.plat.DialogStart(s.ctx, s, r)
		}
		if err != nil && fresh {
			delete(s.dialogs, r.DialogID)
		}
	case "dialogterminate":
		id := a.str("dialogid", "")
		if !s.dialogs[id] {
			return s.fail(n, "dialogid: unknown dialog %q", id)
		}
		fields["dialogid"] = id
		err = s.plat.DialogTerminate(s.ctx, s, DialogTerminateRequest{DialogID: id, Immediate: a.boolean("immediate"), Hints: a.export("hints")})
	}
	if err != nil {
		fields["reason"] = err.Error()
		s.raise(failureEvent[n.tag], fields)
	}
	return ret
}

// send is <send> (CCXML 1.0 section 9.2.3): ccxml and basichttp targets are
// served here, every other targettype by the Platform.
func (s *Session) send(a args) goja.Value {
	n := a.n
	name := a.str("name", a.str("data", ""))
	if name == "" {
		return s.fail(n, "<send> needs a name")
	}
	target := a.str("target", "")
	ttype := a.str("targettype", "ccxml")
	var delay time.Duration
	if d := a.str("delay", ""); d != "" {
		var err error
		if delay, err = ParseTime(d); err != nil {
			return s.fail(n, "delay: %v", err)
		}
	}
	fields := a.namelist()
	// "name" and "eventid" in a namelist are the event's own and are ignored.
	delete(fields, "name")
	delete(fields, "eventid")
	hints := a.export("hints")
	sendid := s.newSeq("s")
	deliver := s.deliverer(ttype, target, name, sendid, fields, hints)
	if deliver == nil {
		s.raise("error.send.targettypeinvalid", map[string]any{"sendid": sendid,
			"reason": fmt.Sprintf("targettype %q is not supported", ttype)})
		return s.rt.ToValue(sendid)
	}
	if delay <= 0 {
		deliver()
		return s.rt.ToValue(sendid)
	}
	s.mu.Lock()
	if s.timers == nil {
		s.timers = make(map[string]*time.Timer)
	}
	s.timers[sendid] = time.AfterFunc(delay, func() {
		s.mu.Lock()
		delete(s.timers, sendid)
		s.mu.Unlock()
		// Delivery runs on the session goroutine: platforms are only ever
		// called from there.
		_ = s.enqueue(qitem{fn: deliver})
	})
	s.mu.Unlock()
	return s.rt.ToValue(sendid)
}

// deliverer returns what delivering one send does, or nil for a targettype
// nobody serves. For ccxml targets and platform event processors,
// send.successful is queued before the event is handed over and withdrawn
// if the hand-over fails: whatever the target does in reply (a bvr.record
// answer, an event the target session sends back) is queued after it, on
// every platform alike.
func (s *Session) deliverer(ttype, target, name, sendid string, fields map[string]any, hints any) func() {
	okEv := func() *bool { return s.reserve("send.successful", map[string]any{"sendid": sendid}) }
	failEv := func(ev, reason string) {
		s.raise(ev, map[string]any{"sendid": sendid, "reason": reason})
	}
	switch strings.ToLower(ttype) {
	case "ccxml":
		return func() {
			t, ok := s.in.Session(target)
			if !ok {
				failEv("error.send.targetunavailable", fmt.Sprintf("send to %s: %v", target, ErrNoSession))
				return
			}
			f := make(map[string]any, len(fields)+3)
			for k, v := range fields {
				f[k] = v
			}
			f["eventid"], f["eventsource"], f["eventsourcetype"] = sendid, s.id, "ccxml"
			void := okEv()
			if err := t.Post(Event{Name: name, Fields: f}); err != nil {
				*void = true
				failEv("error.send.targetunavailable", err.Error())
			}
		}
	case "basichttp":
		return func() {
			if !s.in.allowed(target) || !(strings.HasPrefix(target, "http://") || strings.HasPrefix(target, "https://")) {
				failEv("error.send.targetunavailable", "target "+target+" is not an allowed http(s) location")
				return
			}
			form := url.Values{}
			form.Set("sessionid", s.id)
			form.Set("name", name)
			form.Set("eventsource", s.id)
			for k, v := range fields {
				form.Set(k, fmt.Sprint(v))
			}
			started := s.in.spawn(s.ctx, func(ctx context.Context) {
				err := s.in.post(ctx, target, form)
				// The outcome is an asynchronous completion: it joins the
				// tail of the queue and is raised on the session goroutine.
				_ = s.enqueue(qitem{fn: func() {
					if err != nil {
						failEv("error.send.failed", err.Error())
						return
					}
					okEv()
				}})
			})
			if !started {
				failEv("error.send.failed", "interpreter closed")
			}
		}
	default:
		return func() {
			void := okEv()
			err := s.plat.Send(s.ctx, s, SendRequest{SendID: sendid, TargetType: ttype, Target: target, Name: name,
				Fields: fields, Hints: hints})
			if err != nil {
				*void = true
			}
			switch {
			case err == nil:
			case errors.Is(err, ErrTargetTypeInvalid):
				failEv("error.send.targettypeinvalid", err.Error())
			case errors.Is(err, ErrTargetUnavailable), errors.Is(err, ErrUnknownConnection):
				failEv("error.send.targetunavailable", err.Error())
			default:
				failEv("error.send.failed", err.Error())
			}
		}
	}
}

// post is a basichttp send (CCXML 1.0 Appendix K): a form POST, any 2xx is success.
func (in *Interpreter) post(ctx context.Context, target string, form url.Values) error {
	ctx, cancel := context.WithTimeout(ctx, in.cfg.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, target, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("basichttp send to %s: %w", target, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := in.client.Do(req)
	if err != nil {
		return fmt.Errorf("basichttp send to %s: %w", target, err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("basichttp send to %s: http status %s: %w", target, resp.Status, errSendFailed)
	}
	return nil
}

func (s *Session) cancel(a args) {
	id := a.str("sendid", "")
	s.mu.Lock()
	t, ok := s.timers[id]
	stopped := ok && t.Stop()
	delete(s.timers, id)
	s.mu.Unlock()
	if stopped {
		s.raise("cancel.successful", map[string]any{"sendid": id})
		return
	}
	s.raise("error.notallowed", map[string]any{"sendid": id, "reason": "no pending delayed send " + id})
}

func (s *Session) fetchOptions(a args) (fetchOpts, error) {
	o := fetchOpts{method: strings.ToUpper(a.str("method", "GET"))}
	if o.method != "GET" && o.method != "POST" {
		return o, fmt.Errorf("method must be get or post, got %q", o.method)
	}
	if t := a.str("timeout", ""); t != "" {
		d, err := ParseTime(t)
		if err != nil {
			return o, fmt.Errorf("timeout: %w", err)
		}
		o.timeout = d
	}
	if m := a.str("maxage", ""); m != "" {
		var secs int
		if _, err := fmt.Sscan(m, &secs); err != nil || secs < 0 {
			return o, fmt.Errorf("maxage must be a non-negative number of seconds, got %q", m)
		}
		o.maxAge, o.hasAge = time.Duration(secs)*time.Second, true
	}
	if nl := a.namelist(); len(nl) > 0 {
		o.form = url.Values{}
		for k, v := range nl {
			o.form.Set(k, fmt.Sprint(v))
		}
	}
	return o, nil
}

// fetchElem is <fetch>: the document is fetched and compiled off the session
// goroutine; fetch.done or error.fetch follows.
func (s *Session) fetchElem(a args) goja.Value {
	o, err := s.fetchOptions(a)
	if err != nil {
		return s.fail(a.n, "%v", err)
	}
	next, err := resolve(s.doc.uri, a.str("next", ""))
	if err != nil {
		return s.fail(a.n, "next: %v", err)
	}
	id := s.newSeq("f")
	ctx := s.ctx
	if typ := strings.ToLower(a.str("type", "application/ccxml+xml")); strings.Contains(typ, "script") {
		// A script for a later <script fetchid>: fetched and compiled once here.
		s.in.spawn(ctx, func(ctx context.Context) {
			var prg *goja.Program
			body, err := s.in.fetch(ctx, next, o)
			if err == nil {
				prg, err = goja.Compile(next, string(body), false)
			}
			_ = s.enqueue(qitem{fn: func() {
				if err != nil {
					s.raise("error.fetch", map[string]any{"fetchid": id, "uri": next, "reason": err.Error()})
					return
				}
				if s.scripts == nil {
					s.scripts = make(map[string]*goja.Program)
				}
				s.scripts[id] = prg
				s.raise("fetch.done", map[string]any{"fetchid": id, "uri": next})
			}})
		})
		return s.rt.ToValue(id)
	}
	s.in.spawn(ctx, func(ctx context.Context) {
		d, err := s.in.load(ctx, next, o)
		_ = s.enqueue(qitem{fn: func() {
			if err != nil {
				s.raise("error.fetch", map[string]any{"fetchid": id, "uri": next, "reason": err.Error()})
				return
			}
			if s.fetched == nil {
				s.fetched = make(map[string]*Document)
			}
			s.fetched[id] = d
			s.raise("fetch.done", map[string]any{"fetchid": id, "uri": next})
		}})
	})
	return s.rt.ToValue(id)
}

// createCCXML is <createccxml>: a new session, its own goroutine, the same
// platform; ccxml.created or error.createccxml follows in this session.
func (s *Session) createCCXML(a args) goja.Value {
	o, err := s.fetchOptions(a)
	if err != nil {
		return s.fail(a.n, "%v", err)
	}
	next, err := resolve(s.doc.uri, a.str("next", ""))
	if err != nil {
		return s.fail(a.n, "next: %v", err)
	}
	id := s.in.newID()
	in := s.in
	plat := s.plat
	values := map[string]any{}
	if p, ok := a.export("parameters").(map[string]any); ok {
		for k, v := range p {
			values[k] = v
		}
	}
	parent := s.id
	logf := s.opts.Log
	started := in.spawn(in.ctx, func(ctx context.Context) {
		fail := func(err error) {
			_ = s.Post(Event{Name: "error.createccxml", Fields: map[string]any{"sessionid": id, "reason": err.Error(),
				"eventsource": parent, "eventsourcetype": "ccxml"}})
		}
		d, err := in.load(ctx, next, o)
		if err != nil {
			fail(err)
			return
		}
		child, err := in.NewSession(d, plat, SessionOptions{ID: id, StartupMode: StartupCreateCCXML, ParentID: parent,
			Values: values, Log: logf})
		if err != nil {
			fail(err)
			return
		}
		if err := s.Post(Event{Name: "ccxml.created", Fields: map[string]any{"sessionid": id,
			"eventsource": id, "eventsourcetype": "ccxml"}}); err != nil {
			_ = child.Kill()
		}
		_ = child.Run(ctx)
	})
	if !started {
		s.raise("error.createccxml", map[string]any{"sessionid": id, "reason": "interpreter closed"})
	}
	return s.rt.ToValue(id)
}

// move is <move> (CCXML 1.0 section 9.2.x): an event source (a connection)
// and optionally the event being handled go to another session. Only a
// platform that implements Mover can re-route a connection's events, so
// without one the document gets error.move.
func (s *Session) move(a args) {
	target := a.str("sessionid", "")
	fields := map[string]any{"sessionid": target}
	var ev map[string]any
	if v, ok := a.val("event"); ok {
		ev, _ = v.Export().(map[string]any)
		if ev == nil {
			s.fail(a.n, "move: event is not an event object")
			return
		}
	}
	src := a.str("source", "")
	if src == "" && ev != nil {
		src, _ = ev["connectionid"].(string)
	}
	if src == "" {
		s.fail(a.n, "move needs source or an event with a connectionid")
		return
	}
	fields["sourceid"] = src
	failMove := func(reason string) {
		fields["reason"] = reason
		s.raise("error.move", fields)
	}
	t, ok := s.in.Session(target)
	if !ok || t == s {
		failMove("no other session " + target)
		return
	}
	conn, ok := s.conns[src]
	if !ok {
		s.fail(a.n, "source: unknown connection %q", src)
		return
	}
	m, ok := s.plat.(Mover)
	if !ok {
		failMove("the platform cannot move connections")
		return
	}
	if err := m.Move(s.ctx, s, t, src); err != nil {
		failMove(err.Error())
		return
	}
	data, _ := conn.Export().(map[string]any)
	delete(s.conns, src)
	_ = s.connsObj.Delete(src)
	// The target installs the connection object before any later event of
	// the connection reaches it, then gets the moved event, if any.
	_ = t.enqueue(qitem{fn: func() {
		o := t.rt.NewObject()
		for k, v := range data {
			_ = o.Set(k, t.toJS(v))
		}
		t.conns[src] = o
		ro(t.connsObj, src, o)
	}})
	if ev != nil {
		name, _ := ev["name"].(string)
		f := make(map[string]any, len(ev))
		for k, v := range ev {
			if k != "name" && k != "connection" {
				f[k] = v
			}
		}
		_ = t.Post(Event{Name: name, Fields: f})
	}
	s.raise("move.successful", fields)
}
