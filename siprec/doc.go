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
// (BYE, re-INVITE, UPDATE with a metadata request) to the Contact of that UA.
//
// # Data plane
//
// For each recorded direction the client opens a recording-leg endpoint on
// the engine; its local port is the m-line's port and the copies' source
// (ForkConfig.Source). Once the SRS answered, it forks the call leg's
// endpoint for that direction to the SRS's answered address. Muting is
// SetForkMode(Inactive) and happens before the a=inactive re-INVITE leaves;
// unmuting happens after the SRS accepted the a=sendonly re-INVITE. A
// direction the SRS answers a=inactive ("not yet") gets an inactive fork until
// the SRS asks for media in a re-INVITE of its own.
//
// # Requests from the SRS
//
// An SRS re-INVITE gets 491 while our own INVITE transaction is pending and
// 500 (Retry-After) while its previous one is unanswered (RFC 3261 §14.2);
// one sent right after our final response to the previous waits for that
// transaction to finish. Otherwise each of our m-lines follows the SRS's view:
// recvonly (or sendrecv) means copy, inactive, sendonly or port 0 mean no
// copies for now; a new SRS address moves the fork. A re-INVITE without SDP
// gets our offer in the 200 and its answer is taken from the ACK. Our 200 is
// retransmitted over UDP until the ACK (RFC 3261 §13.3.1.4). The SRS's CSeq
// is tracked on its own numbering. A BYE ends the session (srs-ended).
//
// # Decided parts of the contract (notes/BVR-RECORD.md)
//
// These rows are recfork's own choices where the BVR page's tables were lost:
//
//   - type must be exactly "siprec" (bad-type). uri must be a sip: URI with a
//     host, or a sips: URI; sips: (and ;transport=tls) is refused with
//     bad-uri unless Config.TLS is set. Modes
//     are exactly active, inactive, none, nochange or omitted (empty); other
//     values, upper case included, are bad-mode.
//   - An invalid request (bad-type, bad-uri, bad-mode, no-connection,
//     connection-state) resolves at once with its own error event and does
//     not merge into a request in flight; its inbound/outbound report the
//     state in force.
//   - A valid request arriving while another is in flight is merged: nochange
//     resolves against the pending target, the batch resolves with one event
//     whose type and uri are those of its last request.
//   - operation: start (no session before the batch, one after), stop (no
//     session after; also for none/none when nothing was recording), restart
//     (a different SRS URI than before the batch), update (anything else).
//   - On error, inbound and outbound report the state in force. A mute stays
//     in force even when the SRS then rejects the re-INVITE (PCI: copies stop
//     first); a failed re-INVITE otherwise leaves the session as it was
//     (RFC 3261 §14.1), except 408, 481 or no answer, which end it (BYE).
//   - The SRS refusing some streams (port 0) is srs-rejected, with the other
//     directions in force; refusing every stream ends the session.
//   - The SRS ending the session (BYE) produces an error.bvr.record with
//     reason srs-ended and both directions none, whether or not a request
//     was in flight; the next bvr.record starts a new session.
//   - The call ending (Client.End) resolves a request in flight with
//     connection-state.
//   - A new URI with nochange or omitted directions carries the old
//     session's modes over to the new session.
//   - 3xx answers are followed (up to three hops); the event reports the URI
//     as requested.
//   - A 491 to a re-INVITE is retried after Timeouts.GlareMin..GlareMax
//     (RFC 3261 §14.1), at most Timeouts.GlareRetries times, then srs-rejected.
//   - uri may name several SRSs separated by commas; see "SRS lists and
//     failover". Events keep the uri as requested and name the SRS that
//     holds the recording in their srs field.
//
// # Transports (RFC 3261 §18.1.1, RFC 3263)
//
// An SRS URI with a ;transport= parameter, or a Profile.Transport, forces
// that transport: "tcp" never falls back; "udp" sends even a large INVITE
// over UDP, fragmented by IP as SBCs do. Otherwise a request within 200
// bytes of a 1500-byte MTU (an INVITE with complete metadata is ~3 kB) goes
// over TCP, and over UDP to the same address when the TCP connection is
// refused or reset; smaller requests go over UDP. The retry is part of the
// same attempt: the document hears one answer. In-dialog requests keep the
// dialog's transport.
//
// TLS (RFC 3261 §26, Config.TLS): a sips: URI, ;transport=tls or a "tls"
// Profile.Transport sends the session over TLS only (no fallback), to port
// 5061 by default and by SRV _sips._tcp. sipgo does the TLS; it checks a
// certificate against the destination it is given, which is an address the
// SRC resolved, so each SRS host name gets its own user agent whose TLS
// configuration names the URI's host (RFC 5922 §7). A failed handshake is
// srs-unreachable with the TLS reason. Our Contact is then a sips: URI on the
// SRC's own TLS listener (Client.TLSAddr), where the SRS's BYE and re-INVITEs
// arrive. The SRC always presents Config.TLS.Certificates as its client
// certificate, so an SRS may require mutual TLS; an SRS that refuses that
// certificate does so, under TLS 1.3, with an alert after the handshake, once
// the INVITE is written, and sipgo does not fail the transaction on the
// closed connection: the document hears srs-timeout "via tls:" (or
// srs-unreachable, a broken pipe, when the alert came before the write), and
// the SRS's log has the reason.
//
// sipgo guards every UDP write with one process-wide limit
// (sip.UDPMTUSize); it is a guard, not a policy, so this package raises it at
// init to the largest UDP payload and makes the §18.1.1 choice itself before
// sending. The daemon's call UA shares the raised guard: a large response
// over UDP leaves fragmented instead of silently not at all.
//
// A host name is resolved by the SRC itself (Config.Resolver): a numeric
// host or an explicit port is used as it is; else SRV records _sip._tcp and
// _sip._udp (only the forced transport's when one is forced) in priority and
// weight order; else A/AAAA on port 5060. NAPTR is not looked up (neither
// the Go resolver nor sipgo support it). Each resolved address is a hop; a
// transport error, a timeout or a FailoverCodes answer tries the next hop.
// The transport used is logged, shown in Status (Transport, Remote), in the
// admin API's recordings and in the metric recfork_recordings_by_transport.
//
// # SRS lists and failover
//
// The uri field (and the daemon's --srs) may hold several SIP URIs separated
// by commas: "sip:a@10.0.0.1, sip:b@srs.example.com". A request tries them in
// order, SRSs currently marked down last. It moves to the next one on a
// transport error, a timeout (Timeouts.Invite per attempt), or a final
// answer in Profile.FailoverCodes (default 408, 480, 500, 503; add 6xx codes
// to fail over on them). A 503 with Retry-After keeps that SRS at the end of
// the order until it passes. Other answers (486, 488, 4xx) resolve the
// request. The document receives one bvr.record.update naming the SRS that
// took it (srs, transport), or one error.bvr.record with the last reason.
//
// Keepalive: the SRSs of Config.SRS are probed with OPTIONS every
// Keepalive.Interval (the daemon's default 10 s), over TCP then UDP unless
// the transport is forced; any final answer but 503 means alive. After
// Keepalive.Failures probes in a row fail (default 2), the SRS is marked
// down: new requests try it last, and SRSs that failed a request are probed
// too until they answer again. Status and metrics show each SRS's state.
//
// Takeover: when the SRS in use sends BYE, stops answering a re-INVITE
// (timeout, 408, 481), or is marked down by the keepalive, and the list has
// another SRS, the session's forks and endpoints are removed at once (no
// copy goes to the lost SRS from then on), and a new session opens to the
// next usable SRS with the same metadata session id, in the modes in force.
// The document gets an unsolicited bvr.record.update with operation
// "failover", srs (the new SRS), previous and cause; a request in flight
// resolves on the new session (its event carries previous and cause). An
// SRS a session left is not tried again by that session's takeovers (no
// ping-pong); with no SRS left the document gets error.bvr.record srs-ended,
// as with a single SRS. Copies go to a dead SRS at most for the detection
// time: Interval x Failures + 2 x the probe timeout (2 s), 24 s with the
// daemon's defaults, or Timeouts.Invite when a re-INVITE finds it dead first.
//
// # Reason codes
//
// Every error event's reason is "code: detail"; Event.Code returns the code.
//
//	bad-type          type is not "siprec"
//	bad-uri           uri is not a usable sip: URI
//	bad-mode          inbound or outbound is not a known mode
//	no-connection     the connection does not exist
//	connection-state  not connected, no media yet, or the call ended meanwhile
//	srs-rejected      the SRS answered with a failure (e.g. "486 Busy Here"),
//	                  refused streams, or kept answering 491
//	srs-timeout       no final answer within Timeouts.Invite
//	srs-unreachable   the request could not be sent (no route, refused TCP
//	                  with the transport forced, a name that does not resolve)
//	srs-bad-answer    the answer's SDP does not fit the offer (m-line count,
//	                  direction, address); the session is ended
//	srs-ended         the SRS ended the session mid-call (BYE, or lost to the
//	                  keepalive) and no other SRS of the list took it over
//	dataplane         the engine could not open an endpoint or fork
//
// # Metadata
//
// The INVITE carries complete metadata (RFC 7865): one session (with the
// call's Session-ID as sipSessionID when known), the remote party and the
// platform as participants, one stream per m-line whose label is the SDP
// label, and participantstreamassoc tying the inbound stream to the remote
// party's send and the outbound stream to the platform's send. Re-INVITEs
// carry complete metadata by default; Profile.Metadata = MetadataPartial sends
// only changed streams (and no metadata part when only a mode changed). An
// application/rs-metadata-request from the SRS (in a re-INVITE or an UPDATE)
// is answered by a re-INVITE with a complete snapshot.
//
// # Accepted body shapes
//
// The SRC reads SRS answers and re-INVITEs liberally (RFC 2046 §5.1,
// RFC 7866 §8): an SDP part or body whose last line has no CRLF (as in RFC
// 7866's own examples, where the delimiter follows the last SDP line), LF-only
// line ends, a quoted boundary, preamble and epilogue, parts in any order,
// Content-Disposition with parameters (recording-session;handling=required),
// application/rs-metadata besides application/rs-metadata+xml, part header
// names in any case and the compact c: (Content-Type) and l: (Content-Length)
// forms. SDP is normalised to CRLF lines before pion/sdp reads it. A body
// that is truly malformed yields an error wrapping ErrBadBody or ErrBadSDP
// that says why (e.g. "no part delimited by boundary"). What the SRC sends
// stays strict: CRLF everywhere, "Name: value" part headers, a token boundary.
package siprec
