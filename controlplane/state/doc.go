// Package state keeps, in Redis, the recording state a second recforkd node
// needs to take over a dead node's recordings; it is a control-plane helper
// below controlplane and above siprec.
//
// # What is kept, and why
//
// For every established recording session a node holds, one
// siprec.Snapshot: the SIPREC dialog with the SRS (Call-ID, both tags, our
// last CSeq, the route set, the remote target, the transport and the address
// the INVITE went to), the RFC 7865 metadata session id and participant ids,
// and each stream's label, stream id and mode. That is what a node that never
// saw the dialog needs to send a request the SRS accepts in it (RFC 3261
// §12.2.1.1), and to name the recording in the SRS's terms.
//
// What is not kept: the call's SIP dialog with the caller and the media
// endpoints. The RTP of a call is anchored on the node's own ports; when the
// node dies, the caller's media stops there and no other node can receive
// it. A takeover can therefore only end the recording properly (the SRS
// learns the recording ended, instead of waiting on silence), never continue
// it.
//
// # Keys
//
//	recfork:nodes                       set of node ids that have written state
//	recfork:node:{id}:alive             heartbeat, expires after HeartbeatTTL
//	recfork:node:{id}:recordings        hash: connection id -> Snapshot JSON, expires after TTL
//	recfork:node:{id}:claim             the standby that took the dead node over (SET NX)
//
// A node writes its hash on every recording change (start, mute, unmute,
// failover: each resolves with a bvr.record event), removes the field when
// the recording ends, and refreshes the heartbeat and both expiries every
// Heartbeat. A node whose heartbeat key expired is dead; the one standby that
// wins its claim ends each recording of its hash and removes the node.
//
// The store is off unless configured (recforkd --state-redis); a Redis that
// goes away never stops calls or recordings: writes fail, are logged and
// counted, and the next change writes again.
package state
