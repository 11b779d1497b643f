package siprec

import "errors"

var (
	// ErrClosed means the client has been closed.
	ErrClosed = errors.New("siprec client closed")
	// ErrInvalidConfig means a required Config field is missing or inconsistent.
	ErrInvalidConfig = errors.New("invalid siprec config")
	// ErrNoSession means the connection has no recording session.
	ErrNoSession = errors.New("no recording session")
	// ErrBadSDP means an SDP body could not be parsed or does not fit the offer.
	ErrBadSDP = errors.New("bad sdp")
	// ErrBadMetadata means a metadata document could not be parsed.
	ErrBadMetadata = errors.New("bad recording metadata")
	// ErrBadBody means a SIP message body (multipart or its parts) is malformed.
	ErrBadBody = errors.New("bad message body")
)
