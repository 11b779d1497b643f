// Package sim is a simulated ccxml.Platform: calls, conferences and a
// simulated SIPREC recording server (SRS) in memory, so CCXML documents can be
// run and tested offline (recforkctl ccxml run, the conformance corpus).
//
// It raises the events a real platform raises, in the same order: an inbound
// call is connection.alerting; accept, reject, redirect, disconnect,
// createcall, join, unjoin and merge succeed when the connections are in a
// state where a real SIP platform could carry them out, and fail with the
// Recommendation's failure events otherwise. bvr.record to a connection is
// answered as notes/BVR-RECORD.md specifies for an SRS that accepts
// everything: validation with reason codes, nochange/omitted resolution,
// start/update/restart/stop, and coalescing of requests made before the
// answer. The SRS answers when the session's queue drains (wire Idle into
// ccxml.SessionOptions.Idle), which is when a real one's 200 OK would arrive
// at the earliest. An outbound call (<createcall>) is answered unless the
// destination's user part is "busy" or "noanswer", which fail the call with
// that reason after connection.progressing. Dialogs are not supported: <dialogstart> gets
// error.dialog.notstarted.
package sim
