// Package siprec is recfork's SIPREC client (SRC, RFC 7866): RFC 7865 metadata,
// the recording SDP, multipart bodies and the recording-session state machine
// with the bvr.record semantics, driving the SIP dialog with the recording server
// and the data plane through the dataplane contract.
package siprec
