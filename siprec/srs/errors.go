package srs

import "errors"

var (
	// ErrConfig reports an unusable Config.
	ErrConfig = errors.New("invalid srs config")
	// ErrNoSession reports a session ID the server does not know or has ended.
	ErrNoSession = errors.New("no such recording session")
	// ErrClosed reports use of a closed server.
	ErrClosed = errors.New("srs closed")
	// ErrNoPorts reports an exhausted RTP port range.
	ErrNoPorts = errors.New("no free rtp port pair in range")
	// ErrWAVRange reports a sample position outside what a WAV file can hold.
	ErrWAVRange = errors.New("sample position outside wav range")
	// ErrBody reports a SIPREC body that cannot be used; the wrapping
	// *BodyError carries the SIP status code and reason phrase.
	ErrBody = errors.New("unusable siprec body")
	// ErrByeRefused reports a non-2xx final response to the SRS's BYE.
	ErrByeRefused = errors.New("bye refused")
	// ErrRequestRefused reports a non-2xx final response to another
	// request from the SRS (the UPDATE of RequestMetadata).
	ErrRequestRefused = errors.New("request refused")
)

// BodyError is a rejected INVITE body: Code and Reason are sent in the SIP
// response (RFC 3261 §21.4), Detail is for logs.
type BodyError struct {
	Code   int
	Reason string
	Detail string
}

func (e *BodyError) Error() string {
	if e.Detail == "" {
		return e.Reason
	}
	return e.Reason + ": " + e.Detail
}

func (e *BodyError) Unwrap() error { return ErrBody }
