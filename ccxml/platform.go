package ccxml

import (
	"context"
	"time"
)

// Platform carries out the operations a CCXML document asks for: call control,
// conferences, dialogs and sends to platform event processors. One Platform
// may serve many sessions; every method gets the session that asked.
//
// Methods are called on the session's goroutine and must not block on the
// network: start the operation, return nil, and later report the outcome with
// s.Post (connection.connected, connection.failed, conference.joined,
// dialog.started, bvr.record.update, error.bvr.record, ...). Events for a
// connection must carry "connectionid".
//
// A non-nil error means the operation could not even start; the interpreter
// then raises the element's failure event on the platform's behalf, with the
// error text as reason:
//
//	accept       connection.accept.failed      reject      connection.reject.failed
//	redirect     connection.redirect.failed    merge       connection.merge.failed
//	createcall   connection.failed             disconnect  error.connection
//	join         error.conference.join         unjoin      error.conference.unjoin
//	createconference error.conference.create   destroyconference error.conference.destroy
//	dialogprepare error.dialog.notprepared     dialogstart error.dialog.notstarted
//	dialogterminate error.dialog               send        error.send.targetunavailable
//	                                                       (error.send.targettypeinvalid for ErrTargetTypeInvalid)
//
// so a platform without dialogs simply returns ErrUnsupported (or embeds
// Unsupported) and the document sees error.dialog.notstarted.
type Platform interface {
	// Accept answers an alerting inbound connection (<accept>); success is
	// connection.connected.
	Accept(ctx context.Context, s *Session, r AcceptRequest) error
	// Reject refuses an alerting connection (<reject>); success is connection.failed.
	Reject(ctx context.Context, s *Session, r RejectRequest) error
	// Redirect sends a connection elsewhere (<redirect>); success is connection.redirected.
	Redirect(ctx context.Context, s *Session, r RedirectRequest) error
	// CreateCall places an outbound call (<createcall>) with the connection id
	// the interpreter chose; progress is connection.progressing, then
	// connection.connected or connection.failed.
	CreateCall(ctx context.Context, s *Session, r CreateCallRequest) error
	// Disconnect hangs a connection up (<disconnect>); success is connection.disconnected.
	Disconnect(ctx context.Context, s *Session, r DisconnectRequest) error
	// Join connects two connections or conferences (<join>); conference.joined.
	Join(ctx context.Context, s *Session, r JoinRequest) error
	// Unjoin separates them (<unjoin>); conference.unjoined.
	Unjoin(ctx context.Context, s *Session, r UnjoinRequest) error
	// Merge bridges two connections at the network and drops them from the
	// platform (<merge>); connection.merged for each.
	Merge(ctx context.Context, s *Session, r MergeRequest) error
	// CreateConference creates a mixer (<createconference>); conference.created.
	CreateConference(ctx context.Context, s *Session, r CreateConferenceRequest) error
	// DestroyConference removes it (<destroyconference>); conference.destroyed.
	DestroyConference(ctx context.Context, s *Session, r DestroyConferenceRequest) error
	// DialogPrepare prepares a dialog (<dialogprepare>); dialog.prepared.
	DialogPrepare(ctx context.Context, s *Session, r DialogRequest) error
	// DialogStart starts one (<dialogstart>); dialog.started, later dialog.exit.
	DialogStart(ctx context.Context, s *Session, r DialogRequest) error
	// DialogTerminate stops one (<dialogterminate>); dialog.exit.
	DialogTerminate(ctx context.Context, s *Session, r DialogTerminateRequest) error
	// Send hands an event to a platform event processor: every <send> whose
	// targettype is not 'ccxml' or 'basichttp' (the interpreter serves those
	// itself), notably targettype 'connection' with name 'bvr.record'. A nil
	// return makes the interpreter raise send.successful; the processor's own
	// answer (bvr.record.update / error.bvr.record) is posted later.
	Send(ctx context.Context, s *Session, r SendRequest) error
}

// Mover is implemented by a platform that can re-route a connection's events
// from one session to another (<move>). After Move returns nil, every later
// event of the connection must be posted to the target session. Without it,
// <move> raises error.move.
type Mover interface {
	Move(ctx context.Context, from, to *Session, connectionID string) error
}

// AcceptRequest is <accept>.
type AcceptRequest struct {
	ConnectionID string
	Hints        any // the hints expression's value, exported from ECMAScript; nil when absent
}

// RejectRequest is <reject>.
type RejectRequest struct {
	ConnectionID string
	Reason       string
	Hints        any
}

// RedirectRequest is <redirect>.
type RedirectRequest struct {
	ConnectionID string
	Dest         string
	Reason       string
	Hints        any
}

// CreateCallRequest is <createcall>. ConnectionID is chosen by the interpreter
// (and already stored in the document's variable); the platform must use it.
type CreateCallRequest struct {
	ConnectionID  string
	Dest          string
	CallerID      string
	AAI           string
	Timeout       time.Duration // zero: the platform's default
	JoinID        string        // connection or conference to join once connected, or ""
	JoinDirection string        // "both" (default), "calltransmit", "callreceive"
	Hints         any
}

// DisconnectRequest is <disconnect>.
type DisconnectRequest struct {
	ConnectionID string
	Reason       string
	Hints        any
}

// JoinRequest is <join>. ID1 and ID2 are connection or conference ids.
type JoinRequest struct {
	ID1, ID2       string
	Duplex         string // "full" (default) or "half"
	DTMFClamp      bool
	ToneClamp      bool
	EnterTone      string
	ExitTone       string
	AutoInputGain  bool
	AutoOutputGain bool
	Hints          any
}

// UnjoinRequest is <unjoin>.
type UnjoinRequest struct {
	ID1, ID2 string
	Hints    any
}

// MergeRequest is <merge>.
type MergeRequest struct {
	ConnectionID1, ConnectionID2 string
	Hints                        any
}

// CreateConferenceRequest is <createconference>; ConferenceID is chosen by the interpreter.
type CreateConferenceRequest struct {
	ConferenceID      string
	Name              string
	ReservedTalkers   int
	ReservedListeners int
	Hints             any
}

// DestroyConferenceRequest is <destroyconference>.
type DestroyConferenceRequest struct {
	ConferenceID string
	Hints        any
}

// DialogRequest is <dialogprepare> or <dialogstart>; DialogID is chosen by the
// interpreter (or is the prepared dialog's id).
type DialogRequest struct {
	DialogID       string
	Prepared       bool // dialogstart of a dialog already prepared
	Src            string
	Type           string
	ConnectionID   string
	ConferenceID   string
	MediaDirection string
	Params         map[string]any // the namelist
	Hints          any
}

// DialogTerminateRequest is <dialogterminate>.
type DialogTerminateRequest struct {
	DialogID  string
	Immediate bool
	Hints     any
}

// SendRequest is a <send> to a platform event processor.
type SendRequest struct {
	SendID     string         // also the eventid of what the processor delivers, per CCXML 10.x
	TargetType string         // e.g. "connection"
	Target     string         // e.g. a connection id
	Name       string         // e.g. "bvr.record"
	Fields     map[string]any // the namelist variables, exported from ECMAScript
	Hints      any
}

// Unsupported implements every Platform method by returning ErrUnsupported;
// embed it in a platform to leave out what it does not do (dialogs, say).
type Unsupported struct{}

func (Unsupported) Accept(context.Context, *Session, AcceptRequest) error { return ErrUnsupported }
func (Unsupported) Reject(context.Context, *Session, RejectRequest) error { return ErrUnsupported }
func (Unsupported) Redirect(context.Context, *Session, RedirectRequest) error {
	return ErrUnsupported
}
func (Unsupported) CreateCall(context.Context, *Session, CreateCallRequest) error {
	return ErrUnsupported
}
func (Unsupported) Disconnect(context.Context, *Session, DisconnectRequest) error {
	return ErrUnsupported
}
func (Unsupported) Join(context.Context, *Session, JoinRequest) error     { return ErrUnsupported }
func (Unsupported) Unjoin(context.Context, *Session, UnjoinRequest) error { return ErrUnsupported }
func (Unsupported) Merge(context.Context, *Session, MergeRequest) error   { return ErrUnsupported }
func (Unsupported) CreateConference(context.Context, *Session, CreateConferenceRequest) error {
	return ErrUnsupported
}
func (Unsupported) DestroyConference(context.Context, *Session, DestroyConferenceRequest) error {
	return ErrUnsupported
}
func (Unsupported) DialogPrepare(context.Context, *Session, DialogRequest) error {
	return ErrUnsupported
}
func (Unsupported) DialogStart(context.Context, *Session, DialogRequest) error {
	return ErrUnsupported
}
func (Unsupported) DialogTerminate(context.Context, *Session, DialogTerminateRequest) error {
	return ErrUnsupported
}
func (Unsupported) Send(context.Context, *Session, SendRequest) error { return ErrTargetTypeInvalid }

var _ Platform = Unsupported{}
