package controlplane

import "errors"

var (
	// ErrBadSDP means a session description could not be parsed or lacks what
	// a call needs (a connection address for the audio stream).
	ErrBadSDP = errors.New("bad sdp")
	// ErrNoCommonCodec means the peer offered no audio codec recfork relays
	// (PCMU or PCMA at 8000 Hz); the INVITE is answered 488.
	ErrNoCommonCodec = errors.New("no common codec")
	// ErrNoConnection means the connection named does not exist (any more).
	ErrNoConnection = errors.New("no such connection")
	// ErrConnectionState means the operation does not fit the connection's
	// state (accepting a connected call, joining one without media).
	ErrConnectionState = errors.New("wrong connection state")
	// ErrClosed means the daemon is shutting down.
	ErrClosed = errors.New("daemon closed")
	// ErrBadConfig means a configuration value is out of range.
	ErrBadConfig = errors.New("bad configuration")
	// ErrNoRecording means the connection has no recording to act on.
	ErrNoRecording = errors.New("no recording")
	// ErrNotAllowed means a document lies outside the createsession roots.
	ErrNotAllowed = errors.New("not allowed")
	// ErrUnsafeAdmin means the admin socket or its directory could be
	// another user's: wrong owner, or writable by others.
	ErrUnsafeAdmin = errors.New("unsafe admin socket")
	// ErrLimit means a configured limit (Limits) refused the request.
	ErrLimit = errors.New("limit reached")
)
