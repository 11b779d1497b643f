package dataplane

import "errors"

var (
	// ErrNotSupported means this kernel, build or platform cannot provide an engine
	// or a feature; the caller may fall back to another engine.
	ErrNotSupported = errors.New("not supported")
	// ErrPortsExhausted means no RTP/RTCP port pair is free in the configured range.
	ErrPortsExhausted = errors.New("rtp port range exhausted")
	// ErrNotFound means the endpoint, join or fork named does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means the join or fork already exists.
	ErrExists = errors.New("already exists")
	// ErrClosed means the engine has been closed.
	ErrClosed = errors.New("engine closed")
	// ErrInvalid means an argument is out of range or inconsistent.
	ErrInvalid = errors.New("invalid argument")
	// ErrAuth is wrapped by a Cipher's Open when a packet fails
	// authentication (wrong keys, tampering).
	ErrAuth = errors.New("media authentication failed")
)
