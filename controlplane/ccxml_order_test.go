package controlplane_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/recfork/recfork/ccxml"
	"github.com/recfork/recfork/ccxml/sim"
	"github.com/recfork/recfork/controlplane"
	"github.com/recfork/recfork/controlplane/callgen"
	"github.com/recfork/recfork/dataplane"
)

// orderApp exercises every queue rule of CCXML 1.0 section 9.5.2 as recfork
// implements it (ccxml/doc.go): an ECMAScript error in ccxml.loaded is
// handled before the call's connection.alerting; an unknown connection id
// raises error.semantic at the front while the transition goes on; a send's
// send.successful comes before the connection processor's answer, whether
// that answer is immediate (bad-mode) or needs the SRS (start); a send to
// the session itself; the call's own events in between. Each answer's
// eventid is the sendid of the <send> it answers.
const orderApp = `<?xml version="1.0" encoding="UTF-8"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
<var name="type" expr="'siprec'"/>
<var name="uri" expr="session.values.srs"/>
<var name="inbound" expr="'loud'"/>
<var name="outbound" expr="'active'"/>
<var name="caller"/>
<var name="sid"/>
<var name="state" expr="'init'"/>
<eventprocessor statevariable="state">
<transition event="ccxml.loaded"><log expr="'loaded'"/><assign name="nosuch" expr="1"/><log expr="'FAIL: ran past the error'"/></transition>
<transition event="error.semantic"><log expr="'error.semantic ' + event$.tagname"/></transition>
<transition state="init" event="connection.alerting">
  <assign name="caller" expr="event$.connectionid"/>
  <log expr="'alerting ' + event$.connection.state + ' ' + (session.connections[caller] === event$.connection) + ' ' + event$.eventsourcetype + ' ' + (event$.eventsource == caller)"/>
  <disconnect connectionid="'nosuch'"/>
  <accept/>
  <assign name="state" expr="'answering'"/>
</transition>
<transition state="answering" event="connection.connected">
  <log expr="'connected ' + event$.connection.state + ' ' + event$.eventsourcetype + ' ' + (event$.eventsource == caller)"/>
  <send name="'bvr.record'" target="caller" targettype="'connection'" namelist="type uri inbound outbound" sendid="sid"/>
  <assign name="state" expr="'badmode'"/>
</transition>
<transition event="send.successful"><log expr="'send.successful'"/></transition>
<transition state="badmode" event="error.bvr.record">
  <log expr="'error.bvr.record ' + event$.reason.split(':')[0] + ' ' + event$.inbound + ' ' + event$.outbound + ' ' + (event$.eventid == sid)"/>
  <assign name="inbound" expr="'active'"/>
  <send name="'bvr.record'" target="caller" targettype="'connection'" namelist="type uri inbound outbound" sendid="sid"/>
  <assign name="state" expr="'recording'"/>
</transition>
<transition state="recording" event="bvr.record.update">
  <log expr="'bvr.record.update ' + event$.operation + ' ' + event$.inbound + ' ' + event$.outbound + ' ' + (event$.eventid == sid)"/>
  <send name="'user.next'" target="session.id"/>
  <assign name="state" expr="'next'"/>
</transition>
<transition state="next" event="user.next"><log expr="'user.next'"/><disconnect connectionid="caller"/><assign name="state" expr="'ending'"/></transition>
<transition state="ending" event="connection.disconnected"><log expr="'disconnected ' + event$.connection.state"/><exit/></transition>
<transition event="*"><log expr="'unexpected ' + event$.name + ' in state ' + state"/></transition>
</eventprocessor>
</ccxml>
`

// wantOrder is what the document must log, on any platform.
var wantOrder = []string{
	"loaded",
	"error.semantic assign",
	"alerting ALERTING true connection true",
	"error.semantic disconnect",
	"connected CONNECTED connection true",
	"send.successful",
	"error.bvr.record bad-mode none none true",
	"send.successful",
	"bvr.record.update start active active true",
	"send.successful",
	"user.next",
	"disconnected DISCONNECTED",
}

// recordLog keeps the records of interest of a logger tree: <log> output
// ("ccxml log") and the interpreter's event trace ("ccxml event").
type recordLog struct {
	mu    *sync.Mutex
	recs  *[]map[string]string
	attrs []slog.Attr
}

func newRecordLog() recordLog {
	return recordLog{mu: &sync.Mutex{}, recs: &[]map[string]string{}}
}

func (h recordLog) Enabled(context.Context, slog.Level) bool { return true }

func (h recordLog) Handle(_ context.Context, r slog.Record) error {
	if r.Message != "ccxml log" && r.Message != "ccxml event" {
		return nil
	}
	m := map[string]string{"msg": r.Message}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	*h.recs = append(*h.recs, m)
	h.mu.Unlock()
	return nil
}

func (h recordLog) WithAttrs(as []slog.Attr) slog.Handler {
	return recordLog{mu: h.mu, recs: h.recs, attrs: append(slices.Clone(h.attrs), as...)}
}

func (h recordLog) WithGroup(string) slog.Handler { return h }

func (h recordLog) records() []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return slices.Clone(*h.recs)
}

// traceLine is one event as a session handled it, platform-neutral.
func traceLine(event, transition, result string) string {
	return fmt.Sprintf("%s -> %s (%s)", event, transition, result)
}

// TestCCXMLEventOrderSimulatorAndDaemon runs one document through the
// simulator and through recforkd's service with a real SIP call over
// loopback sockets (callgen as the caller, the built-in SRS as recorder), and
// checks that both deliver the same events in the same order, to the same
// transitions.
func TestCCXMLEventOrderSimulatorAndDaemon(t *testing.T) {
	app := writeApp(t, orderApp)
	app, err := filepath.Abs(app)
	if err != nil {
		t.Fatal(err)
	}

	// recforkd: the service with its SIP stack, built-in SRS and a test
	// data plane; the interpreter logs its event trace at debug level.
	logs := newRecordLog()
	dir := t.TempDir()
	eng := newTestEngine()
	t.Cleanup(func() { eng.Close() })
	svc, err := controlplane.NewService(context.Background(), controlplane.Config{
		Listen:        "127.0.0.1:0",
		Engine:        eng,
		Admin:         filepath.Join(dir, "admin.sock"),
		RecordingsDir: filepath.Join(dir, "recordings"),
		App:           app,
		Logger:        slog.New(logs),
		RTPPorts:      dataplane.PortRange{Min: 32000, Max: 32999},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	caller, err := callgen.NewEndpoint("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	done := make(chan callgen.Result, 1)
	go func() {
		// The document hangs up; the caller's media would last longer.
		done <- caller.Call(context.Background(), "sip:order@"+svc.Daemon().SIPAddr().String(),
			callgen.CallOptions{Duration: 30 * time.Second})
	}()
	select {
	case r := <-done:
		if r.Status != 200 {
			t.Fatalf("call: %+v", r)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the call did not end")
	}
	waitFor(t, "the session to end", func() bool { return len(svc.Sessions()) == 0 })
	var daemonLog, daemonTrace []string
	for _, r := range logs.records() {
		switch r["msg"] {
		case "ccxml log":
			daemonLog = append(daemonLog, r["value"])
		case "ccxml event":
			daemonTrace = append(daemonTrace, traceLine(r["event"], r["transition"], r["result"]))
		}
	}

	// The simulator, same document, same file.
	in, err := ccxml.New(ccxml.Config{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	doc, err := in.Load(ctx, app)
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var simLog, simTrace []string
	res := sim.Run(ctx, in, doc, sim.RunOptions{From: "sip:alice@127.0.0.1", To: "sip:order@127.0.0.1",
		Values: map[string]any{"srs": svc.SRSURI()},
		Log: func(_, value string) {
			mu.Lock()
			simLog = append(simLog, value)
			mu.Unlock()
		},
		Trace: func(e ccxml.TraceEntry) {
			mu.Lock()
			simTrace = append(simTrace, traceLine(e.Event, e.Transition, e.Result))
			mu.Unlock()
		}})
	if res.Code != 0 {
		t.Fatalf("simulator: %+v", res)
	}
	mu.Lock()
	defer mu.Unlock()

	if !slices.Equal(simLog, wantOrder) {
		t.Errorf("simulator logged\n  %s\nwant\n  %s", strings.Join(simLog, "\n  "), strings.Join(wantOrder, "\n  "))
	}
	if !slices.Equal(daemonLog, wantOrder) {
		t.Errorf("recforkd logged\n  %s\nwant\n  %s", strings.Join(daemonLog, "\n  "), strings.Join(wantOrder, "\n  "))
	}
	t.Logf("recforkd trace:\n  %s", strings.Join(daemonTrace, "\n  "))
	if len(simTrace) == 0 || !slices.Equal(simTrace, daemonTrace) {
		t.Errorf("event traces differ:\nsimulator\n  %s\nrecforkd\n  %s", strings.Join(simTrace, "\n  "), strings.Join(daemonTrace, "\n  "))
	}
}
