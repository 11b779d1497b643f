// Package controlplane is the core of the recforkd daemon: the SIP user agent for
// calls, connections and their media endpoints, the ccxml.Platform that carries
// out call control, bvr.record handed to siprec and the data plane, the admin API
// and metrics.
//
// Service assembles the daemon (data plane, built-in SRS, SIPREC client, SIP,
// one CCXML session per call, admin API, HTTP); Daemon is the SIP core.
//
// # Calls
//
// An INVITE with an SDP offer becomes an ALERTING connection with a media
// endpoint, and a new session of the app gets connection.alerting. The answer
// carries the peer's first offered PCMU or PCMA codec plus telephone-event;
// no common codec is 488. The SDP may be the whole body or the
// application/sdp part of a multipart one (SIP-T/SIP-I gateways, RFC 3204); a
// body without SDP, or with a part marked handling=required beside it, is
// 415. An INVITE without a body is a delayed offer: the
// 200 offers PCMU, PCMA and telephone-event and the ACK's answer sets the
// codec and the media address; an ACK without a usable answer ends the call
// with a BYE. With CallSRTP require a delayed offer is 488 (the caller's
// offer must carry the keys). An offerless re-INVITE is answered the same
// way, the ACK's answer moving the media. CANCEL, remote BYE, re-INVITE and
// UPDATE (hold, a new media address, refresh) are handled; session timers
// (RFC 4028) are honoured with the refresher the caller names (itself when
// it names none; recfork refreshes by UPDATE, or by re-INVITE when the caller
// does not allow UPDATE, timer.go), and on calls recfork places with the
// refresher the callee's 2xx names, 422 below 90 s, and a BYE when no
// refresh comes in time or a refresh of ours gets 408 or 481; a caller's
// re-INVITE crossing our refresh re-INVITE gets 491. SRTP on calls (SDES; Config.CallSRTP)
// is srtpcall.go: RTP/SAVP answered with a key of recfork's own per leg,
// DTLS-SRTP refused with 488.
//
// # Hostile input
//
// Limits (limits.go) bound calls, INVITE rates, connections and sessions.
// Before the SIP stack sees a request, sipframe.go checks the raw bytes for
// the RFC 3261 §8.1.1 headers and a CSeq that parses, answering one 400
// naming the fault over UDP and TCP; sipcheck.go is the second line in the
// handlers (483 for Max-Forwards 0). reflect.go states how many datagrams
// one INVITE from an unverified UDP source can draw (12) and why.
//
// # Decided behaviour (CCXML platform)
//
//   - <reject reason>: a SIP status ("486", "486 Busy Here") or busy,
//     unavailable; anything else is 603 Decline.
//   - <join duplex="half">: id1 hears id2 (media flows from id2 to id1).
//     Joining a connection to itself echoes its audio (the data plane's
//     self-join). createcall's joindirection calltransmit: the joined party
//     hears the new call; callreceive: the new call hears it.
//   - An outbound call offers the codec of the connection it will be joined to
//     (the data plane relays without transcoding).
//   - connection.signal carries DTMF (event$.dtmf, one key per event) from
//     RFC 4733 telephone-events in the caller's RTP and from SIP INFO
//     (application/dtmf-relay, application/dtmf). The Engine contract has no
//     event tap, so RTP events are read from a private endpoint half-joined
//     to the connection (dtmf.go); Config.DisableDTMF (--dtmf=false) saves
//     its port pair and relay work on dense deployments.
//   - <merge connectionid1 connectionid2>: REFER with Replaces to the first
//     party (RFC 3515, RFC 3891); on a 2xx NOTIFY both calls are hung up with
//     connection.merged, else connection.merge.failed (merge.go).
//   - A session that ends (exit, an unhandled error.*, a contained panic)
//     leaves no call behind: its connections are hung up.
//
// # Recording from the CLI
//
// `recforkctl record mute|unmute|stop` goes through the same SIPREC client
// path as a document's bvr.record (mute: the fork goes inactive first, then
// the a=inactive re-INVITE leaves), using the recording's current SRS URI and
// "nochange" for the other direction. The call's CCXML session receives the
// resulting bvr.record.update (or error.bvr.record) exactly as for its own
// request, so the document always knows the state in force; the admin API
// answers the operator with the same event.
package controlplane
