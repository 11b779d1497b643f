// Package siprec is recfork's SIPREC client (SRC, RFC 7866): RFC 7865 metadata,
// the recording SDP, multipart bodies and the recording-session state machine
// with the bvr.record semantics, driving the SIP dialog with the recording server
// and the data plane through the dataplane contract.
//
// # Use
//
// The daemon creates one Client (New) with the data-plane engine, the media
// address of the recording legs and an OnEvent callback. For every bvr.record
// the CCXML document sends, it calls Record with the connection's Leg (call
// leg endpoint, negotiated codecs, participants) and the raw namelist fields;
// exactly one Event answers each resolved request. When the call ends it
// calls End; Status and Recordings feed the admin API.
//
// The SRC runs its own SIP user agent on Config.Listen (UDP and TCP on one
// port) rather than sharing the daemon's call UA: recording dialogs then
// never mix with call dialogs, and the SRS sends its in-dialog requests
// (BYE, re-INVITE, metadata requests) to the Contact of that UA.
package siprec
