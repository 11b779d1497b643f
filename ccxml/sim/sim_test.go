package sim_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/recfork/recfork/ccxml"
	"github.com/recfork/recfork/ccxml/sim"
)

const recordDoc = `<?xml version="1.0"?>
<ccxml version="1.0" xmlns="http://www.w3.org/2002/09/ccxml">
<var name="type" expr="'siprec'"/>
<var name="uri" expr="'sip:busy-srs@127.0.0.1'"/>
<var name="inbound" expr="'active'"/>
<eventprocessor>
<transition event="connection.alerting"><accept/></transition>
<transition event="connection.connected"><send name="'bvr.record'" target="event$.connectionid" targettype="'connection'" namelist="type uri inbound"/></transition>
<transition event="send.successful"/>
<transition event="error.bvr.record"><log label="'error'" expr="event$.reason + ' ' + event$.inbound + '/' + event$.outbound"/><disconnect/></transition>
<transition event="bvr.record.update"><log label="'update'" expr="event$.operation + ' ' + event$.inbound + '/' + event$.outbound"/><disconnect/></transition>
</eventprocessor>
</ccxml>`

func TestRecordOutcomes(t *testing.T) {
	cases := []struct {
		name   string
		reject string
		want   string
	}{
		{"srs accepts", "", "update: start active/none"},
		{"srs rejects", "sip:busy-srs@127.0.0.1", "error: srs-rejected: 486 Busy Here none/none"},
	}
	in, err := ccxml.New(ccxml.Config{})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := in.Compile(context.Background(), "record.ccxml", []byte(recordDoc))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var lines []string
			res := sim.Run(ctx, in, doc, sim.RunOptions{From: "sip:a@127.0.0.1", To: "sip:b@127.0.0.1",
				Platform: sim.Config{RejectRecordURI: c.reject},
				Log:      func(l, v string) { lines = append(lines, l+": "+v) }})
			if res.Code != 0 || !res.Gone {
				t.Fatalf("result %+v", res)
			}
			if got := strings.Join(lines, "\n"); got != c.want {
				t.Fatalf("log %q, want %q", got, c.want)
			}
		})
	}
}

func TestPlatformStateChecks(t *testing.T) {
	p, _ := sim.New(sim.Config{})
	in, _ := ccxml.New(ccxml.Config{})
	doc, _ := in.Compile(context.Background(), "x.ccxml", []byte(`<ccxml version="1.0"/>`))
	s, _ := in.NewSession(doc, p, ccxml.SessionOptions{})
	id, err := p.Call(s, "sip:a@127.0.0.1", "sip:b@127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := p.Disconnect(ctx, s, ccxml.DisconnectRequest{ConnectionID: id}); err == nil {
		t.Fatal("disconnect of an alerting call succeeded")
	}
	if err := p.Accept(ctx, s, ccxml.AcceptRequest{ConnectionID: id}); err != nil {
		t.Fatal(err)
	}
	if err := p.Accept(ctx, s, ccxml.AcceptRequest{ConnectionID: id}); err == nil {
		t.Fatal("second accept succeeded")
	}
	if err := p.Send(ctx, s, ccxml.SendRequest{TargetType: "dialog", Target: id, Name: "x"}); err == nil {
		t.Fatal("send to an unknown processor succeeded")
	}
	if err := p.DialogStart(ctx, s, ccxml.DialogRequest{DialogID: "d"}); err == nil {
		t.Fatal("dialogs are not supported, yet DialogStart succeeded")
	}
	if p.Live() != 1 || p.Seen() != 1 {
		t.Fatalf("live %d seen %d", p.Live(), p.Seen())
	}
	p.Hangup(s)
	if p.Live() != 0 {
		t.Fatal("hangup left a live connection")
	}
	_ = s.Kill()
	_ = s.Run(ctx)
}
