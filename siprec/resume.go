package siprec

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Recording state another node can act on.
//
// A recording session is a SIP dialog between this SRC and an SRS (RFC 3261
// §12) plus RFC 7865 metadata. When the node holding it dies, the call's
// media dies with it (the RTP was anchored on that node's ports), but the
// SRS still holds an open recording session and would wait for media until
// its own timers give up. A second node that knows the dialog can end that
// session properly: a Snapshot is the least it needs, and EndSnapshot sends
// the BYE (RFC 7866 §6.1.3: the SRC ends the recording session with BYE) in
// the dead node's dialog.

// Snapshot is what a second node needs to act in a recording session it did
// not start: the dialog identifiers and routing (RFC 3261 §12.1.2), the
// metadata identifiers (RFC 7865 §6) and each stream's mode.
type Snapshot struct {
	ConnectionID string `json:"connection_id"`
	// RecordedCallID is the Call-ID of the recorded call (not of the
	// recording session).
	RecordedCallID string `json:"recorded_call_id,omitempty"`
	// SRS is the uri as requested; Active the SRS holding the dialog.
	SRS    string `json:"srs"`
	Active string `json:"active"`
	// Transport is "UDP" or "TCP"; Destination the address the dialog's
	// requests went to when there was no route set.
	Transport   string `json:"transport"`
	Destination string `json:"destination"`
	// ServerName is the name a TLS SRS's certificate must carry.
	ServerName string `json:"server_name,omitempty"`
	// The dialog: Call-ID, our (From) tag, the SRS's (To) tag, our last
	// CSeq, the route set from the 2xx's Record-Route (in the order requests
	// carry it) and the remote target (the SRS's Contact).
	CallID       string   `json:"call_id"`
	LocalURI     string   `json:"local_uri"`
	LocalTag     string   `json:"local_tag"`
	RemoteURI    string   `json:"remote_uri"`
	RemoteTag    string   `json:"remote_tag"`
	CSeq         uint32   `json:"cseq"`
	RouteSet     []string `json:"route_set,omitempty"`
	RemoteTarget string   `json:"remote_target"`
	// Metadata identifiers: the recording session and its participants.
	MetadataSessionID string           `json:"metadata_session_id"`
	Participants      []string         `json:"participant_ids"`
	Streams           []SnapshotStream `json:"streams"`
	Started           time.Time        `json:"started"`
}

// SnapshotStream is one recorded direction.
type SnapshotStream struct {
	Direction string `json:"direction"`
	Label     string `json:"label"`
	StreamID  string `json:"stream_id"`
	Mode      Mode   `json:"mode"`
}

// Snapshot returns the state of a connection's established recording
// session; false when it has none (not started, or ended).
func (c *Client) Snapshot(connectionID string) (Snapshot, bool) {
	c.mu.Lock()
	s := c.sessions[connectionID]
	c.mu.Unlock()
	if s == nil {
		return Snapshot{}, false
	}
	return s.dialogSnapshot()
}

func (s *session) dialogSnapshot() (Snapshot, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	dlg := s.dlg
	if dlg == nil || dlg.InviteResponse == nil || s.ending || s.gone {
		return Snapshot{}, false
	}
	from, to := dlg.InviteRequest.From(), dlg.InviteResponse.To()
	if from == nil || to == nil {
		return Snapshot{}, false
	}
	snap := Snapshot{
		ConnectionID: s.connID, RecordedCallID: s.leg.CallID, SRS: s.uri, Active: s.active.String(),
		Transport: s.via.tport, Destination: s.via.addr.String(), ServerName: s.via.name,
		CallID: s.callID, LocalURI: from.Address.String(), LocalTag: tagOf(from.Params),
		RemoteURI: to.Address.String(), RemoteTag: tagOf(to.Params), CSeq: dlg.CSEQ(),
		RemoteTarget:      s.remote.String(),
		MetadataSessionID: s.md.session, Participants: []string{s.md.remote, s.md.local},
		Streams: []SnapshotStream{}, Started: s.started,
	}
	// RFC 3261 §12.1.2: the route set is the 2xx's Record-Route in reverse.
	rr := dlg.InviteResponse.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		snap.RouteSet = append(snap.RouteSet, rr[i].Value())
	}
	for _, st := range s.streams {
		snap.Streams = append(snap.Streams, SnapshotStream{Direction: st.dir.String(), Label: st.label, StreamID: st.id, Mode: st.mode})
	}
	return snap, true
}

func tagOf(p sip.HeaderParams) string {
	if p == nil {
		return ""
	}
	v, _ := p.Get("tag")
	return v
}

// ErrBadSnapshot reports a Snapshot that cannot name a dialog.
var ErrBadSnapshot = errors.New("snapshot does not name a dialog")

// EndSnapshot ends, from this node, the recording session snap describes:
// a BYE in its dialog with the next CSeq, along its route set, with an RFC
// 3326 Reason saying why. The SRS learns that the recording ended; nothing
// else can be saved, the media having ended with the node that carried it.
// A 481 (the SRS no longer knows the dialog) counts as ended.
func (c *Client) EndSnapshot(ctx context.Context, snap Snapshot, reason string) error {
	req, err := byeFor(snap, c.contactFor(snap.Transport))
	if err != nil {
		return err
	}
	if reason != "" {
		req.AppendHeader(sip.NewHeader("Reason", `SIP;cause=200;text="`+strings.ReplaceAll(reason, `"`, "'")+`"`))
	}
	ctx, cancel := context.WithTimeout(ctx, c.to.Bye)
	defer cancel()
	cl, err := c.clientFor(hop{tport: req.Transport(), name: snap.ServerName})
	if err != nil {
		return fmt.Errorf("bye recording session %s: %w", snap.CallID, err)
	}
	res, err := cl.Do(ctx, req, sipgo.ClientRequestBuild)
	if err != nil {
		return fmt.Errorf("bye recording session %s: %w", snap.CallID, err)
	}
	if !res.IsSuccess() && res.StatusCode != 481 {
		return fmt.Errorf("bye recording session %s: %d %s", snap.CallID, res.StatusCode, res.Reason)
	}
	return nil
}

// byeFor builds the in-dialog BYE of snap (RFC 3261 §12.2.1.1).
func byeFor(snap Snapshot, contact sip.ContactHeader) (*sip.Request, error) {
	if snap.CallID == "" || snap.LocalTag == "" || snap.RemoteTag == "" || snap.RemoteTarget == "" {
		return nil, ErrBadSnapshot
	}
	var target, local, remote sip.Uri
	for _, p := range []struct {
		s string
		u *sip.Uri
	}{{snap.RemoteTarget, &target}, {snap.LocalURI, &local}, {snap.RemoteURI, &remote}} {
		if err := sip.ParseUri(strings.Trim(p.s, "<>"), p.u); err != nil {
			return nil, fmt.Errorf("snapshot uri %q: %v: %w", p.s, err, ErrBadSnapshot)
		}
	}
	req := sip.NewRequest(sip.BYE, target)
	tport := strings.ToUpper(snap.Transport)
	if tport != "TCP" && tport != "TLS" {
		tport = "UDP"
	}
	req.SetTransport(tport)
	from := &sip.FromHeader{Address: local, Params: sip.NewParams()}
	from.Params.Add("tag", snap.LocalTag)
	to := &sip.ToHeader{Address: remote, Params: sip.NewParams()}
	to.Params.Add("tag", snap.RemoteTag)
	cid := sip.CallIDHeader(snap.CallID)
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&cid)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: snap.CSeq + 1, MethodName: sip.BYE})
	req.AppendHeader(&mf)
	for _, r := range snap.RouteSet {
		req.AppendHeader(sip.NewHeader("Route", r))
	}
	req.AppendHeader(&contact)
	if len(snap.RouteSet) > 0 {
		var first sip.Uri
		if err := sip.ParseUri(strings.Trim(strings.SplitN(snap.RouteSet[0], ";", 2)[0], "<> "), &first); err == nil && !strings.Contains(snap.RouteSet[0], ";lr") {
			// A strict router (no ;lr) takes the request URI (§12.2.1.1).
			req.Recipient = first
		}
	} else if snap.Destination != "" && !strings.HasPrefix(snap.Destination, "invalid") {
		// Without a route set the SRS is reached where the INVITE went: the
		// remote target may name a host this node cannot resolve the same way.
		req.SetDestination(snap.Destination)
	}
	return req, nil
}
