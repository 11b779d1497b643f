package ccxml_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/recfork/recfork/ccxml"
)

// recorder is a fake Platform for this layer's unit test: it records the
// requests the interpreter makes and answers nothing by itself.
type recorder struct {
	ccxml.Unsupported
	mu   sync.Mutex
	reqs []any
}

func (r *recorder) add(v any) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.reqs = append(r.reqs, v)
	return nil
}

func (r *recorder) Accept(_ context.Context, _ *ccxml.Session, q ccxml.AcceptRequest) error {
	return r.add(q)
}
func (r *recorder) CreateCall(_ context.Context, _ *ccxml.Session, q ccxml.CreateCallRequest) error {
	return r.add(q)
}
func (r *recorder) Join(_ context.Context, _ *ccxml.Session, q ccxml.JoinRequest) error {
	return r.add(q)
}
func (r *recorder) Redirect(_ context.Context, _ *ccxml.Session, q ccxml.RedirectRequest) error {
	return fmt.Errorf("redirect refused")
}
func (r *recorder) Send(_ context.Context, _ *ccxml.Session, q ccxml.SendRequest) error {
	return r.add(q)
}

// TestPlatformRequests checks what the interpreter hands a Platform:
// evaluated attributes, defaults, hints and namelists, the ids it chose, and
// the failure event it raises itself when a method returns an error.
func TestPlatformRequests(t *testing.T) {
	in, _ := ccxml.New(ccxml.Config{})
	d := mustCompile(t, in, `<ccxml version="1.0"><var name="out"/><var name="type" expr="'siprec'"/><eventprocessor>
<transition event="connection.alerting">
<accept hints="({ring: 2})"/>
<createcall dest="'sip:bob@127.0.0.1'" connectionid="out" callerid="'sip:me@127.0.0.1'" timeout="'1.5s'" aai="'x'"/>
<join id1="event$.connectionid" id2="out" duplex="'half'" dtmfclamp="true"/>
<send name="'bvr.record'" target="event$.connectionid" targettype="'connection'" namelist="type" hints="({h: 'v'})"/>
<redirect dest="'sip:carol@127.0.0.1'"/>
<log expr="out"/>
</transition>
<transition event="connection.redirect.failed"><log expr="'failed: ' + event$.reason"/></transition>
</eventprocessor></ccxml>`)
	p := &recorder{}
	logs := make(chan string, 4)
	s, _ := in.NewSession(d, p, ccxml.SessionOptions{Log: func(_, v string) { logs <- v }})
	_ = s.Post(ccxml.Event{Name: "connection.alerting", Fields: map[string]any{"connectionid": "c1"}})
	go func() { _ = s.Run(context.Background()) }()
	defer func() { _ = s.Kill(); <-s.Done() }()
	var out string
	for _, want := range []string{"", "failed: redirect refused"} {
		select {
		case l := <-logs:
			if want == "" {
				out = l
			} else if l != want {
				t.Fatalf("log %q, want %q", l, want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("timed out")
		}
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if len(p.reqs) != 4 {
		t.Fatalf("requests %+v", p.reqs)
	}
	acc := p.reqs[0].(ccxml.AcceptRequest)
	if acc.ConnectionID != "c1" || fmt.Sprint(acc.Hints) != "map[ring:2]" {
		t.Errorf("accept %+v", acc)
	}
	cc := p.reqs[1].(ccxml.CreateCallRequest)
	if cc.ConnectionID != out || cc.Dest != "sip:bob@127.0.0.1" || cc.CallerID != "sip:me@127.0.0.1" ||
		cc.Timeout != 1500*time.Millisecond || cc.AAI != "x" || cc.JoinDirection != "both" {
		t.Errorf("createcall %+v (variable holds %q)", cc, out)
	}
	j := p.reqs[2].(ccxml.JoinRequest)
	if j.ID1 != "c1" || j.ID2 != out || j.Duplex != "half" || !j.DTMFClamp {
		t.Errorf("join %+v", j)
	}
	sr := p.reqs[3].(ccxml.SendRequest)
	if sr.Target != "c1" || sr.TargetType != "connection" || sr.Name != "bvr.record" || sr.Fields["type"] != "siprec" ||
		sr.SendID == "" || fmt.Sprint(sr.Hints) != "map[h:v]" {
		t.Errorf("send %+v", sr)
	}
}
