package controlplane

import (
	"context"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/recfork/recfork/dataplane"
)

// ConnState is a CCXML connection state (CCXML 1.0 §10.2.1); the values are the
// strings the Recommendation's Connection constants compare equal to.
type ConnState string

// The connection states.
const (
	StateAlerting     ConnState = "ALERTING"
	StateProgressing  ConnState = "PROGRESSING"
	StateConnected    ConnState = "CONNECTED"
	StateFailed       ConnState = "FAILED"
	StateDisconnected ConnState = "DISCONNECTED"
	StateError        ConnState = "ERROR"
)

// Event is something that happened to a connection, delivered to the
// connection's owner (its CCXML session). Fields follow CCXML's event fields
// (reason, trigger, ...).
type Event struct {
	Name         string
	ConnectionID string
	Fields       map[string]any
}

// EventSink receives a connection's events. Deliver must not block: the SIP
// stack calls it from its own goroutines.
type EventSink interface {
	Deliver(ev Event)
}

// EventSinkFunc adapts a function to EventSink.
type EventSinkFunc func(Event)

// Deliver calls f.
func (f EventSinkFunc) Deliver(ev Event) { f(ev) }

// decision is the app's answer to an alerting inbound call.
type decision struct {
	kind   string // "accept", "reject", "redirect"
	code   int
	reason string
	dest   string
}

// Connection is one SIP dialog plus its media endpoint.
type Connection struct {
	ID         string
	CallID     string
	Originator string // "remote" (inbound) or "local" (createcall)
	LocalURI   string
	RemoteURI  string
	Created    time.Time

	d   *Daemon
	log *slog.Logger

	// decide carries the app's decision for an alerting inbound call.
	decide chan decision
	// acks carries the ACKs to our 200s (an offer in a 200 is answered in
	// its ACK, RFC 3264 §4).
	acks chan *sip.Request
	// ended is closed when the connection is cleaned up.
	ended     chan struct{}
	endOnce   sync.Once
	cancelOut context.CancelFunc // ends a pending createcall

	// reqMu serialises our own in-dialog requests: sipgo stamps CSeq at send
	// time (notes/SIPGO.md).
	reqMu sync.Mutex

	mu        sync.Mutex
	state     ConnState
	sink      EventSink
	sessionID string
	ep        dataplane.EndpointID
	local     netip.AddrPort
	remote    netip.AddrPort
	codecs    []Codec
	hold      bool
	sdpSess   uint64
	sdpVer    uint64
	uas       *sipgo.DialogServerSession
	uac       *sipgo.DialogClientSession
	joins     map[string]dataplane.Duplex
	connected time.Time
	rec       *recording
	// seTimer ends the call when the session is not refreshed in time (RFC
	// 4028 §10). When the caller asked recfork to refresh (refresher=uas),
	// refreshTimer sends the next refresh: an UPDATE when the caller allows
	// it, else a re-INVITE with lastSDP, the description last sent.
	seTimer         *time.Timer
	seInterval      int
	refreshTimer    *time.Timer
	refreshByUpdate bool
	lastSDP         []byte
	// refreshCancel ends our refresh in flight (hangup, end); refreshInvite
	// is set while it is a re-INVITE and callerInvite while the caller's
	// re-INVITE awaits its ACK: either refuses the other (RFC 3261 §14).
	refreshCancel context.CancelFunc
	refreshInvite bool
	callerInvite  bool
	// refreshAck is the ACK of our last refresh re-INVITE, sent again for
	// each retransmission of its 2xx (RFC 3261 §13.2.2.4). ackMu guards it
	// and its sending: a retransmission may arrive while it is first sent.
	ackMu      sync.Mutex
	refreshAck *sip.Request
	// over is set, under mu, when the connection ended: no timer is armed
	// after it.
	over bool
	// tapEP is the private endpoint that receives c's RTP for RFC 4733
	// DTMF (dtmf.go); tapPort is its local port.
	tapEP   dataplane.EndpointID
	tapPort uint16
	// notify carries the status codes of REFER NOTIFYs during a merge.
	notify chan int
	// srtp is the leg's SRTP state (srtpcall.go); nil for plain RTP.
	srtp *legSRTP
}

// ConnectionInfo is a snapshot of a connection for the admin API and the app.
type ConnectionInfo struct {
	ID         string                   `json:"id"`
	CallID     string                   `json:"call_id"`
	SessionID  string                   `json:"session_id,omitempty"`
	State      ConnState                `json:"state"`
	Originator string                   `json:"originator"`
	Local      string                   `json:"local"`
	Remote     string                   `json:"remote"`
	MediaLocal string                   `json:"media_local,omitempty"`
	MediaPeer  string                   `json:"media_remote,omitempty"`
	Codec      string                   `json:"codec,omitempty"`
	Hold       bool                     `json:"hold,omitempty"`
	Joined     []string                 `json:"joined,omitempty"`
	Created    time.Time                `json:"created"`
	Connected  time.Time                `json:"connected,omitzero"`
	Endpoint   uint64                   `json:"endpoint,omitempty"`
	Recording  bool                     `json:"recording"`
	Stats      *dataplane.EndpointStats `json:"stats,omitempty"`
	// MediaPath is which path carries the media (admin_paths.go).
	MediaPath *MediaPathInfo `json:"media_path,omitempty"`
}

// Info returns a snapshot of c.
func (c *Connection) Info() ConnectionInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	ci := ConnectionInfo{
		ID: c.ID, CallID: c.CallID, SessionID: c.sessionID, State: c.state,
		Originator: c.Originator, Local: c.LocalURI, Remote: c.RemoteURI,
		Hold: c.hold, Created: c.Created, Connected: c.connected,
		Endpoint: uint64(c.ep), Recording: c.rec != nil,
	}
	if c.local.IsValid() {
		ci.MediaLocal = c.local.String()
	}
	if c.remote.IsValid() {
		ci.MediaPeer = c.remote.String()
	}
	if len(c.codecs) > 0 {
		ci.Codec = c.codecs[0].Name
	}
	for id := range c.joins {
		ci.Joined = append(ci.Joined, id)
	}
	return ci
}

// State returns the connection's state.
func (c *Connection) State() ConnState {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.state
}

// Endpoint returns the media endpoint, zero if none.
func (c *Connection) Endpoint() dataplane.EndpointID {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ep
}

// Codecs returns the negotiated formats (audio first).
func (c *Connection) Codecs() []Codec {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]Codec(nil), c.codecs...)
}

// SetSink sets where c's events go and the owning CCXML session's id.
func (c *Connection) SetSink(sessionID string, s EventSink) {
	c.mu.Lock()
	c.sink, c.sessionID = s, sessionID
	c.mu.Unlock()
}

// emit delivers an event to the connection's owner.
func (c *Connection) emit(name string, fields map[string]any) {
	c.mu.Lock()
	s := c.sink
	c.mu.Unlock()
	if fields == nil {
		fields = map[string]any{}
	}
	c.log.Debug("connection event", "event", name)
	if s != nil {
		s.Deliver(Event{Name: name, ConnectionID: c.ID, Fields: fields})
	}
}

func (c *Connection) setState(s ConnState) {
	c.mu.Lock()
	c.state = s
	if s == StateConnected && c.connected.IsZero() {
		c.connected = time.Now()
	}
	c.mu.Unlock()
}

// localSDP builds the platform's SDP for c with the given direction and a
// bumped o= version (RFC 3264 §8).
func (c *Connection) localSDP(dir MediaDir, off *MediaOffer) []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.sdpVer++
	l := localSDP{SessionID: c.sdpSess, Version: c.sdpVer, Local: c.local, Codecs: c.codecs, Dir: dir}
	if off != nil {
		l.Index, l.Lines, l.Media = off.Index, off.Lines, off.Media
	}
	if c.srtp != nil {
		l.Proto, l.Crypto = protoSAVP, c.srtp.cryptoLines()
	}
	c.lastSDP = l.marshal()
	return c.lastSDP
}

// SRTP reports whether the connection's media is SRTP.
func (c *Connection) SRTP() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.srtp != nil
}

// matchACK hands an in-dialog ACK to the 200 waiting for it.
func (c *Connection) matchACK(req *sip.Request) {
	if req.CSeq() != nil {
		select {
		case c.acks <- req:
		default:
		}
	}
}

// ackFor returns the ACK with the given CSeq number already handed over, or
// nil; ACKs of other transactions are dropped.
func (c *Connection) ackFor(cseq uint32) *sip.Request {
	for {
		select {
		case ack := <-c.acks:
			if ack.CSeq().SeqNo == cseq {
				return ack
			}
		default:
			return nil
		}
	}
}
