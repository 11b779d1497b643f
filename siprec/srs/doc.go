// Package srs is a built-in SIPREC recording server (SRS): it accepts recording
// sessions over SIP (RFC 7866) and writes one WAV file per stream plus the
// latest metadata, for demos, tests and small deployments. It is strict
// enough to serve as a test oracle for recfork's SIPREC client: breaches of
// the SIPREC rules are recorded per session (SessionInfo.Violations).
//
// # Protocol
//
// The server listens on one port for UDP and TCP. It answers a SIPREC INVITE
// (Require: siprec, Contact with +sip.src, multipart/mixed body with an
// application/sdp part and an application/rs-metadata+xml part — the legacy
// application/rs-metadata is accepted — with Content-Disposition:
// recording-session, RFC 7866 §9) with 200 OK, a Contact carrying +sip.srs and an SDP
// answer. m-lines are answered by position (RFC 3264 §6) and keep their
// a=label: plain RTP/AVP audio offered sendonly is answered recvonly on the
// server's own RTP port (RTCP on RTP+1); inactive is answered inactive; port
// 0, other media or other profiles (SRTP) are answered with port 0.
// re-INVITEs follow the same rules; an m-line appended later is a new
// stream. The session ends with a BYE from the SRC, or from the SRS through
// Server.Bye.
//
// # Rejections
//
//	421 Extension Required (with Require: siprec)
//	    initial INVITE without the siprec option tag in Require: RFC 7866 §6.2
//	    makes such an INVITE an ordinary call, and this server only records
//	    (RFC 3261 §21.4.16).
//	400 Missing SIPREC Body            initial INVITE without a body
//	400 Missing Recording Metadata     application/sdp alone, or a multipart
//	                                   body without a metadata part
//	400 Missing SDP Part               multipart body without application/sdp
//	400 Missing SDP Offer              offerless re-INVITE (not supported)
//	400 Malformed Multipart Body       no boundary, broken parts
//	400 Malformed Recording Metadata   metadata that is not well-formed XML
//	400 Malformed SDP                  SDP that does not parse
//	400 Malformed Content-Type         Content-Type that does not parse
//	400 Multiple SDP Parts / Multiple Metadata Parts
//	400 Missing Contact                initial INVITE without Contact
//	415 Unsupported Media Type (with Accept)
//	    a body that is neither multipart/mixed nor application/sdp, or a
//	    part of another type marked handling=required (RFC 3261 §20.11)
//	488 Not Acceptable Here            initial offer with no recordable
//	                                   m-line (RTP/AVP audio with a port)
//	503 Service Unavailable            no free RTP port pair for any stream,
//	                                   or the server is closing
//	481 Call/Transaction Does Not Exist  in-dialog request for no session
//	500 (with Retry-After)             re-INVITE while another is unanswered
//	                                   (RFC 3261 §14.2), or CSeq out of order
//
// Server.Rejections lists the refused INVITEs with code, reason and detail.
// A rejected re-INVITE leaves the session as it was. A missing Require:
// siprec is a rejection, not a recorded violation (there is no session to
// record it in); the server log says why.
//
// # Metadata
//
// Metadata arrives in the INVITE, in re-INVITEs and in UPDATEs from the SRC
// (an rs-metadata body alone or a multipart body without SDP; SDP in an
// UPDATE gets 488). Server.RequestMetadata sends the SRC an UPDATE with
// application/rs-metadata-request (RFC 7866 §9.2) and stores the snapshot
// its 2xx carries. Every document is checked for well-formedness and stored
// as received; metadata.xml always holds the latest.
//
// # Strictness
//
// Unless Config.Lenient is set, every session lists the SIPREC rules its SRC
// broke (the Rule* constants): Contact without +sip.src, sendrecv or
// recvonly offered, fewer m-lines in a re-INVITE, a label changed at a
// position, a changed offer without a bumped o= version (or a lower one),
// a first metadata document that is not datamode complete or not in the
// RFC 7865 namespace, a metadata part without its Content-Disposition, and
// a 2xx never ACKed. Each is also logged at warn level.
//
// # Files
//
// No caller-chosen text ever becomes a path: each session gets a directory
// under Config.Dir named by the server, its start time in UTC and 64 random
// bits ("20261204T173512Z-9f86d081884c7d65"), which is also the session ID,
// and each stream file is named by its m-line position. The Call-ID and the
// labels are in session.json and SessionInfo, which map them to the files:
//
//	DIR/<session-id>/stream<N>.wav    one per recorded stream (N: the
//	                                  m-line position; a stream replaced at
//	                                  that position gets "-2"...)
//	DIR/<session-id>/metadata.xml     the latest metadata, as received
//	DIR/<session-id>/session.json     SessionInfo, written when it ends
//
// Files get Config.FileMode exactly (default 0640, whatever the umask) and
// directories the same with search permission (0750); Config.Group, when
// set, owns them. metadata.xml and session.json are replaced by rename, so
// a reader never sees half a document.
//
// WAV files are 16-bit PCM, mono, 8 kHz. G.711 µ-law (PT 0) and A-law (PT 8,
// or any payload type mapped to PCMU/8000 or PCMA/8000 by a=rtpmap) are
// decoded; other payloads are counted but write no audio. The header sizes
// are refreshed every second of audio and made exact when the stream ends.
//
// # Timeline
//
// Samples are placed by RTP timestamp relative to the stream's first
// packet, and that first packet by its arrival time relative to the
// session's first RTP packet of any stream. Gaps (loss, a paused stream, a
// stream that starts late) are silence, so all files of a session share one
// time axis. Sequence numbers and timestamps are unwrapped; duplicates and
// packets reordered within 100 sequence numbers are handled; a new SSRC, a
// sequence jump (over 3000 ahead or 100 behind) confirmed by the next packet
// (RFC 3550 §A.1), or a timestamp jump that arrival times contradict
// re-anchors the stream on arrival time, never over audio already written.
//
// # Accepted body shapes
//
// The INVITE (and re-INVITE, UPDATE) body is read liberally, because
// deployed SRCs send what RFC 7866 §8 prints: an SDP part whose last line
// has no CRLF before the delimiter, LF-only line ends, a quoted boundary,
// preamble and epilogue (RFC 2046 §5.1), the SDP and metadata parts in either
// order, Content-Disposition: recording-session with parameters, the legacy
// application/rs-metadata type besides application/rs-metadata+xml, part
// header names in any case, the compact c: and l: part headers (RFC 3261
// §7.3.3), and metadata with namespace prefixes and unknown elements
// (RFC 7865's ##other). SDP is normalised to CRLF lines before it is parsed.
// What is truly malformed is answered with a 400 whose reason phrase names
// the fault: "Malformed Content-Type", "Malformed Multipart Body" (no boundary,
// no part delimited by it, a bad part Content-Type), "Missing SDP Part",
// "Missing Recording Metadata", "Malformed Recording Metadata", "Malformed
// SDP"; the detail goes to the log. A part of unknown type is ignored unless
// it says handling=required (415).
package srs
