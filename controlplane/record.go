package controlplane

import (
	"context"
	"fmt"
	"time"

	"github.com/recfork/recfork/dataplane"
	"github.com/recfork/recfork/siprec"
)

// Recorder is the SIPREC client as the daemon uses it; *siprec.Client is one.
type Recorder interface {
	Record(leg siprec.Leg, req siprec.Request) error
	End(ctx context.Context, connectionID string) error
	Status(connectionID string) (siprec.Status, bool)
	Recordings() []siprec.Status
}

// recording marks a connection that has asked for a recording, so that its end
// ends the recording too.
type recording struct{}

// leg describes c to the SIPREC client.
func (c *Connection) leg() siprec.Leg {
	c.mu.Lock()
	defer c.mu.Unlock()
	l := siprec.Leg{
		ConnectionID: c.ID,
		Endpoint:     c.ep,
		CallID:       c.CallID,
		Remote:       siprec.Participant{AOR: c.RemoteURI},
		Local:        siprec.Participant{AOR: c.LocalURI},
		Connected:    c.state == StateConnected,
	}
	if c.state == StateConnected {
		for _, k := range c.codecs {
			l.Codecs = append(l.Codecs, siprec.Codec{PayloadType: k.PT, Name: k.Name, ClockRate: uint32(k.Rate), Fmtp: k.Fmtp})
		}
	}
	return l
}

// Record hands a bvr.record request for a connection to the SIPREC client (and
// through it to the data plane). Exactly one bvr.record.update or
// error.bvr.record reaches the connection's owner per resolved request; an
// unknown connection is answered the same way (no-connection).
func (d *Daemon) Record(connID string, req siprec.Request) error {
	rp := d.recorder.Load()
	if rp == nil {
		return fmt.Errorf("record %s: no recording client: %w", connID, ErrNoRecording)
	}
	c, err := d.Connection(connID)
	if err != nil {
		// siprec answers no-connection itself when the leg has no id it
		// knows; give it the id so the event names the connection.
		return (*rp).Record(siprec.Leg{ConnectionID: connID}, req)
	}
	c.mu.Lock()
	if c.rec == nil {
		c.rec = &recording{}
	}
	c.mu.Unlock()
	d.metrics.recordRequests.Inc()
	return (*rp).Record(c.leg(), req)
}

// onRecordEvent routes a SIPREC client event to the connection's owner and to
// an admin request waiting for it.
func (d *Daemon) onRecordEvent(ev siprec.Event) {
	if ev.Name == siprec.EventError {
		d.metrics.recordErrors.WithLabelValues(ev.Code()).Inc()
	}
	d.mu.Lock()
	waiters := d.recWaiters[ev.ConnectionID]
	delete(d.recWaiters, ev.ConnectionID)
	c := d.conns[ev.ConnectionID]
	d.mu.Unlock()
	for _, w := range waiters {
		w <- ev
	}
	d.stateChanged(ev.ConnectionID)
	if c == nil {
		return
	}
	f := map[string]any{
		"connectionid": ev.ConnectionID,
		"type":         ev.Type,
		"uri":          ev.URI,
		"inbound":      string(ev.Inbound),
		"outbound":     string(ev.Outbound),
	}
	if ev.Tag != "" {
		// The <send>'s sendid, so the answer's eventid names the send it
		// answers, as for sends to ccxml targets (ccxml/doc.go) and as the
		// simulator does.
		f["eventid"] = ev.Tag
	}
	if ev.Name == siprec.EventUpdate {
		f["operation"] = ev.Operation
	} else {
		f["reason"] = ev.Reason
	}
	// recfork's fields beyond the BVR page: which SRS of a list holds the
	// recording, over which transport, and after a takeover where it came
	// from and why (siprec/doc.go, "SRS lists and failover").
	if ev.SRS != "" {
		f["srs"], f["transport"] = ev.SRS, ev.Transport
	}
	if ev.Previous != "" {
		f["previous"], f["cause"] = ev.Previous, ev.Cause
	}
	c.log.Info("recording event", "event", ev.Name, "inbound", string(ev.Inbound), "outbound", string(ev.Outbound),
		"operation", ev.Operation, "reason", ev.Reason, "srs", ev.SRS, "transport", ev.Transport, "previous", ev.Previous)
	c.emit(ev.Name, f)
}

// RecordControl mutes, unmutes or stops the recording of a connection from
// the admin API. It goes through the same SIPREC path as a document's
// bvr.record (mute: fork inactive first, then the a=inactive re-INVITE), and
// the document receives the resulting bvr.record.update or error.bvr.record
// like for its own request. dir is dataplane.Inbound, dataplane.Outbound or
// zero for both. It waits (bounded by ctx) for the request to resolve.
func (d *Daemon) RecordControl(ctx context.Context, connID string, action string, dir dataplane.Direction) (siprec.Event, error) {
	rp := d.recorder.Load()
	if rp == nil {
		return siprec.Event{}, fmt.Errorf("record %s %s: %w", action, connID, ErrNoRecording)
	}
	if _, err := d.Connection(connID); err != nil {
		return siprec.Event{}, err
	}
	st, ok := (*rp).Status(connID)
	if !ok {
		return siprec.Event{}, fmt.Errorf("record %s %s: %w", action, connID, ErrNoRecording)
	}
	var mode siprec.Mode
	switch action {
	case "mute":
		mode = siprec.ModeInactive
	case "unmute":
		mode = siprec.ModeActive
	case "stop":
		mode = siprec.ModeNone
	default:
		return siprec.Event{}, fmt.Errorf("record %s: unknown action %q: %w", connID, action, ErrBadConfig)
	}
	req := siprec.Request{Type: "siprec", URI: st.SRS, Inbound: string(siprec.ModeNoChange), Outbound: string(siprec.ModeNoChange)}
	if dir == 0 || dir == dataplane.Inbound {
		req.Inbound = string(mode)
	}
	if dir == 0 || dir == dataplane.Outbound {
		req.Outbound = string(mode)
	}
	w := make(chan siprec.Event, 1)
	d.mu.Lock()
	if d.recWaiters == nil {
		d.recWaiters = map[string][]chan siprec.Event{}
	}
	d.recWaiters[connID] = append(d.recWaiters[connID], w)
	d.mu.Unlock()
	if err := d.Record(connID, req); err != nil {
		return siprec.Event{}, err
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
	}
	select {
	case ev := <-w:
		return ev, nil
	case <-ctx.Done():
		return siprec.Event{}, fmt.Errorf("record %s %s: %w", action, connID, ctx.Err())
	}
}
