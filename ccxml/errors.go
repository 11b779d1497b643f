package ccxml

import "errors"

var (
	// ErrUnsupported is returned by a Platform method for an operation the
	// platform does not carry out (dialogs on a recorder, for example). The
	// interpreter turns it into the element's failure event, e.g.
	// error.dialog.notstarted for <dialogstart>.
	ErrUnsupported = errors.New("operation not supported by this platform")
	// ErrTargetTypeInvalid is returned by Platform.Send for a targettype it has
	// no event processor for; it becomes error.send.targettypeinvalid.
	ErrTargetTypeInvalid = errors.New("invalid send target type")
	// ErrTargetUnavailable is returned by Platform.Send when the target (a
	// connection id, for example) does not exist; it becomes
	// error.send.targetunavailable.
	ErrTargetUnavailable = errors.New("send target unavailable")
	// ErrUnknownConnection is returned by a Platform method for a connection id
	// it does not know.
	ErrUnknownConnection = errors.New("unknown connection")

	// ErrUnhandledError is wrapped by Session.Err when an error.* event had no
	// transition and so ended the session.
	ErrUnhandledError = errors.New("unhandled error event")
	// ErrKilled is wrapped by Session.Err when ccxml.kill ended the session.
	ErrKilled = errors.New("session killed")
	// ErrSessionClosed is returned when posting to a session that has ended.
	ErrSessionClosed = errors.New("session has ended")
	// ErrNotAllowed is returned by a fetch outside the configured roots.
	ErrNotAllowed = errors.New("location not allowed")
	// ErrTooLarge is returned for a document or script over the size limit.
	ErrTooLarge = errors.New("document too large")
	// errSendFailed marks a basichttp send the server refused.
	errSendFailed = errors.New("send failed")
	// ErrNoSession is returned for a session id the interpreter does not know.
	ErrNoSession = errors.New("no such session")
)
