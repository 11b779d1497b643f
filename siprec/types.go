package siprec

import (
	"log/slog"
	"net/netip"
	"time"

	"github.com/recfork/recfork/dataplane"
)

// Event names of the bvr.record answer (notes/BVR-RECORD.md).
const (
	// EventUpdate reports that a request (or a coalesced batch) reached its state.
	EventUpdate = "bvr.record.update"
	// EventError reports that the requested state could not be reached, or that
	// the SRS ended the recording on its own (reason srs-ended).
	EventError = "error.bvr.record"
)

// Operations carried by EventUpdate (decided, see doc.go).
const (
	OpStart   = "start"   // no recording before, one now
	OpUpdate  = "update"  // same SRS, some direction changed (or nothing did)
	OpRestart = "restart" // a different SRS URI: old session ended, new one started
	OpStop    = "stop"    // no recording session any more
	// OpFailover is an unsolicited bvr.record.update: the SRS in use went
	// away mid-call (BYE, no answer, keepalive) and the next SRS of the
	// list took the recording over (doc.go, "SRS lists and failover").
	OpFailover = "failover"
)

// Reason codes carried by EventError, before the ": detail" (decided, see doc.go).
const (
	ReasonBadType         = "bad-type"
	ReasonBadURI          = "bad-uri"
	ReasonBadMode         = "bad-mode"
	ReasonNoConnection    = "no-connection"
	ReasonConnectionState = "connection-state"
	ReasonSRSRejected     = "srs-rejected"
	ReasonSRSTimeout      = "srs-timeout"
	ReasonSRSUnreachable  = "srs-unreachable"
	ReasonSRSBadAnswer    = "srs-bad-answer"
	ReasonSRSEnded        = "srs-ended"
	ReasonDataplane       = "dataplane"
)

// Mode is the state of one recorded direction as bvr.record names it.
type Mode string

// Modes. ModeNoChange (and an omitted field) are only valid in a Request; an
// Event or a Status never carries them.
const (
	ModeActive   Mode = "active"
	ModeInactive Mode = "inactive"
	ModeNone     Mode = "none"
	ModeNoChange Mode = "nochange"
)

// Request is one bvr.record as the document sent it: the raw namelist fields.
// An empty string means the field was omitted. Values are case-sensitive.
type Request struct {
	// Type must be "siprec".
	Type string
	// URI is the SRS's sip: URI, or several separated by commas, tried in
	// order (doc.go, "SRS lists and failover"); a ";transport=tcp|udp"
	// parameter forces the transport (else the SRS's Profile, else RFC 3261
	// §18.1.1 decides).
	URI string
	// Inbound and Outbound are "active", "inactive", "none", "nochange" or
	// empty (omitted, same as "nochange").
	Inbound, Outbound string
	// Tag is opaque to the client and comes back in the Event that resolves
	// the request (for a coalesced batch, its last request's Tag): recforkd
	// puts the CCXML sendid here so the answer's eventid names the <send>.
	Tag string
}

// Event is the answer to a resolved request, or an unsolicited srs-ended error.
// Exactly one Event is delivered per resolved request (a coalesced batch of
// requests resolves once).
type Event struct {
	// Name is EventUpdate or EventError.
	Name         string
	ConnectionID string
	// Type and URI are as requested (for a batch: as in its last request). An
	// unsolicited srs-ended event carries the URI of the session that ended.
	Type, URI string
	// Inbound and Outbound are the state in force when the event is sent:
	// "active", "inactive" or "none", never "nochange".
	Inbound, Outbound Mode
	// Tag is the Tag of the request the event resolves; empty on events no
	// request asked for (failover, srs-ended).
	Tag string
	// Operation is set on EventUpdate only: OpStart, OpUpdate, OpRestart, OpStop.
	Operation string
	// Reason is set on EventError only: a reason code, then ": " and a
	// human-readable detail, e.g. "srs-rejected: 486 Busy Here".
	Reason string
	// SRS is the URI of the SRS that holds the recording after the event
	// (one entry of a list, or where a 3xx led); empty without a session.
	// Transport is the transport its INVITE went over: "udp", "tcp" or "tls".
	SRS, Transport string
	// Previous and Cause are set when the recording moved to another SRS of
	// the list because the one in use went away: which SRS it left and why
	// (e.g. "srs-ended: the SRS sent BYE").
	Previous, Cause string
}

// Code returns the reason code of an error event (Reason up to the first ':').
func (e Event) Code() string {
	for i := 0; i < len(e.Reason); i++ {
		if e.Reason[i] == ':' {
			return e.Reason[:i]
		}
	}
	return e.Reason
}

// Codec is one payload format of the call leg's negotiated SDP, copied into the
// recording SDP so the SRS decodes the copies as the call's own media.
type Codec struct {
	// PayloadType is the RTP payload type the call uses (0-127).
	PayloadType uint8
	// Name is the rtpmap encoding name, e.g. "PCMU", "opus", "telephone-event".
	Name string
	// ClockRate is the rtpmap clock rate, e.g. 8000.
	ClockRate uint32
	// Channels is the rtpmap channel count; zero means it is not written.
	Channels uint16
	// Fmtp is the a=fmtp parameter string without the payload type, e.g. "0-16".
	Fmtp string
}

// Participant is one party of the recorded call (RFC 7865 §6.5).
type Participant struct {
	// AOR is the party's address of record, e.g. "sip:alice@example.com".
	AOR string
	// Name is the display name; may be empty.
	Name string
}

// Leg describes the recorded call leg (a CCXML connection) to the client.
// A Leg with nothing but ConnectionID set (no CallID, no Endpoint, not
// Connected) stands for a connection the daemon does not know: the request
// fails with no-connection, naming that id.
type Leg struct {
	// ConnectionID is the CCXML connection id; required (else no-connection).
	ConnectionID string
	// Endpoint is the call leg's media endpoint on Config.Engine; zero means
	// the connection has no media yet (connection-state).
	Endpoint dataplane.EndpointID
	// Codecs are the call's negotiated payload formats, first the one in use,
	// telephone-event included; empty means no media yet (connection-state).
	// See CodecsFromSDP.
	Codecs []Codec
	// Remote is the remote party (the caller or callee), Local the platform side.
	Remote, Local Participant
	// CallID is the call leg's SIP Call-ID, SessionID its RFC 7989 Session-ID
	// (may be empty); both go into the metadata's <session>.
	CallID, SessionID string
	// Connected reports whether the connection is connected; a Record on a leg
	// that is not yet (or no longer) connected fails with connection-state.
	Connected bool
}

// MetadataMode chooses how metadata changes are sent in re-INVITEs.
type MetadataMode uint8

const (
	// MetadataComplete sends a complete snapshot in every re-INVITE; the zero
	// value because most SRSs only understand complete metadata.
	MetadataComplete MetadataMode = iota
	// MetadataPartial sends only the elements that changed (RFC 7865 §5).
	MetadataPartial
)

// Profile holds per-SRS settings.
type Profile struct {
	// Metadata picks complete (zero, default) or partial updates.
	Metadata MetadataMode
	// Transport is "udp", "tcp" or "tls" (a ;transport= parameter in the URI
	// wins; a sips: URI is always TLS).
	// Empty means UDP when the request fits, else TCP, and UDP again when
	// the TCP connection is refused or reset (RFC 3261 §18.1.1; an INVITE
	// with complete metadata is ~3 kB). A forced "udp" sends large requests
	// over UDP, fragmented by IP, as SBCs do. TLS needs Config.TLS (else
	// sips: URIs are refused with bad-uri).
	Transport string
	// SRTP sends the recording streams as SRTP (SDES, RFC 4568,
	// AES_CM_128_HMAC_SHA1_80, own keys per stream); false means RTP unless
	// the SRS URI is sips:, which always gets SRTP.
	SRTP bool
	// FailoverCodes are the final answers to an INVITE after which the next
	// SRS of the list is tried; nil means 408, 480, 500 and 503. Add 600-class
	// codes (600, 603, 604, 606) to fail over on them too. Transport errors
	// and timeouts always fail over.
	FailoverCodes []int
}

// Keepalive configures the OPTIONS probes of the SRSs (RFC 3261 §11).
type Keepalive struct {
	// Interval between two probes of each SRS; zero means no probes (an SRS
	// that failed is then never marked down, only skipped for a Retry-After).
	Interval time.Duration
	// Failures is how many probes in a row must go unanswered (or be
	// answered 503) before the SRS is marked down; zero means 2.
	Failures int
	// Timeout bounds one probe; zero means 2 s, or Interval if shorter.
	Timeout time.Duration
}

// Timeouts bound the client's SIP transactions; zero values pick the defaults.
type Timeouts struct {
	// Invite bounds an INVITE or re-INVITE from sending to its final response
	// (CANCEL is sent at the deadline once a provisional arrived). Default 8 s.
	Invite time.Duration
	// Bye bounds a BYE. Default 4 s.
	Bye time.Duration
	// GlareMin and GlareMax bound the random back-off before a re-INVITE is
	// retried after 491 (RFC 3261 §14.1: the Call-ID owner waits 2.1-4 s, the
	// defaults). GlareRetries caps the retries; default 3.
	GlareMin, GlareMax time.Duration
	GlareRetries       int
	// Confirm bounds the wait for the ACK to a 200 we sent to the SRS's
	// re-INVITE, retransmitting the 200 meanwhile (RFC 3261 §13.3.1.4).
	// Default 4 s.
	Confirm time.Duration
}

// Config configures a Client.
type Config struct {
	// Engine is the data plane; required. The client opens one recording-leg
	// endpoint per recorded direction on it and forks the call leg's endpoint.
	Engine dataplane.Engine
	// MediaIP is the local address of the recording legs' endpoints (the
	// address in the recording SDP's c= line); required.
	MediaIP netip.Addr
	// Listen is the address of the SRC's own SIP user agent, served on UDP and
	// TCP on the same port. The recording sessions are separate from the
	// calls, so the SRC does not share the daemon's call UA: it binds its own
	// port (the SRS sends its BYEs and re-INVITEs there). A zero port picks a
	// free one (see Client.SIPAddr); a zero address means MediaIP with a free
	// port.
	Listen netip.AddrPort
	// ContactHost is the host written in Contact and Via; empty means the
	// Listen address.
	ContactHost string
	// UserAgent is the User-Agent header; empty means "recfork".
	UserAgent string
	// FromUser is the user part of the From URI of recording sessions; empty
	// means "recfork-src".
	FromUser string
	// Profiles maps an SRS (the URI's "host:port", or "host" for any port) to
	// its settings; an SRS not listed gets DefaultProfile.
	Profiles       map[string]Profile
	DefaultProfile Profile
	// Timeouts bound the SIP transactions; zero values pick the defaults.
	Timeouts Timeouts
	// SRS lists the recording servers the daemon is configured with; they
	// are probed with OPTIONS from the start (Keepalive). SRSs named only by
	// a request are probed once they have failed, until they answer again.
	SRS []string
	// Keepalive configures the OPTIONS probes; the zero value probes nothing.
	Keepalive Keepalive
	// TLS turns on SIP over TLS toward SRSs (sips: URIs, ;transport=tls);
	// nil means none: sips: URIs are refused with bad-uri.
	TLS *TLSConfig
	// Resolver resolves SRS host names (RFC 3263: SRV, then A/AAAA); nil
	// means net.DefaultResolver.
	Resolver Resolver
	// OnEvent receives every Event, in order, from one goroutine owned by the
	// client; it is never called from inside Record or End. It should hand
	// the event over and return quickly. Required.
	OnEvent func(Event)
	// Logger receives the client's logs; nil means slog.Default().
	Logger *slog.Logger
	// Now is the clock for metadata times; nil means time.Now. Tests inject
	// a fixed clock for golden files.
	Now func() time.Time
	// NewUUID returns a fresh 128-bit UUID for metadata ids; nil means random
	// version-4 UUIDs. Tests inject a sequence for golden files.
	NewUUID func() [16]byte
}

// State is the state of a recording session as the admin API shows it.
type State string

const (
	// StateStarting: the first INVITE is in flight.
	StateStarting State = "starting"
	// StateRecording: the session is established and idle.
	StateRecording State = "recording"
	// StateUpdating: a re-INVITE or a restart is in flight.
	StateUpdating State = "updating"
	// StateStopping: the BYE is in flight.
	StateStopping State = "stopping"
)

// Status is a snapshot of one connection's recording for the admin API.
type Status struct {
	ConnectionID string
	// SRS is the uri of the recording as requested (one URI or a list).
	SRS string
	// Active is the SRS that holds the session (an entry of the list, or
	// where a 3xx led), Transport the transport of its dialog ("udp" or
	// "tcp") and Remote the address its INVITE was sent to.
	Active, Transport string
	Remote            netip.AddrPort
	// Failovers counts the times the recording moved to another SRS.
	Failovers int
	// State is the session's state.
	State State
	// Inbound and Outbound are the modes in force.
	Inbound, Outbound Mode
	// CallID is the SIP Call-ID of the recording session (not of the call).
	CallID string
	// Since is when the recording session was established.
	Since time.Time
	// Streams describe the recorded directions, in m-line order.
	Streams []StreamStatus
}

// StreamStatus describes one recorded direction (one m-line).
type StreamStatus struct {
	Direction dataplane.Direction
	// Label is the m-line's a=label.
	Label string
	// Mode is the direction's mode in force.
	Mode Mode
	// Source is the recording-leg endpoint the copies leave from and its local
	// RTP address (the port in the SDP offer).
	Source      dataplane.EndpointID
	SourceLocal netip.AddrPort
	// Recorder is the SRS's RTP address from its answer; zero while refused.
	Recorder netip.AddrPort
	// Paused is true while the SRS answered this stream inactive ("not yet"):
	// the fork exists but copies nothing until the SRS asks for media.
	Paused bool
}
