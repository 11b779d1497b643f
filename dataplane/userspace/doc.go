// Package userspace is the portable data-plane engine: it owns the media sockets
// and relays and copies RTP in Go with recvmmsg/sendmmsg batches. It implements
// dataplane.Engine and is the fallback wherever BPF cannot load.
//
// # Threads
//
// The engine runs a fixed pool of worker goroutines (Config.Workers, default
// GOMAXPROCS), each with its own epoll instance. Every endpoint's RTP and RTCP
// sockets are non-blocking and registered with one worker, chosen round robin,
// so 10,000 calls cost 20,000 file descriptors but no goroutine, stack or buffer
// each. A worker waits in epoll_wait, then for each ready socket reads up to
// Config.Batch datagrams with one recvmmsg, decides per packet what to relay
// and copy, and sends the results with one sendmmsg per outgoing socket,
// straight from the receive buffers: a packet is never copied in memory,
// parsed beyond its fixed header, or logged. Each worker's buffers and message
// vectors are allocated once, so the hot path does not allocate.
//
// Why epoll workers and not a goroutine per socket: a goroutine blocked in
// recvmmsg per socket needs its own receive buffers (a batch of 2 KiB slots)
// and stack, 20,000 of them at 10,000 calls, and each packet then costs a
// netpoller wake-up and a goroutine switch. A few workers that own their
// buffers serve any number of sockets per wake-up. recvmmsg and sendmmsg are
// called directly on the non-blocking descriptors; epoll_wait is the only call
// that blocks, on a thread each worker keeps.
//
// Consecutive equal-size copies that leave one socket for one recorder in the
// same wake-up (a burst of one stream) go out as a single UDP GSO message that
// the kernel splits again, unless Config.DisableGSO. Relays are merged only
// with Config.GSORelays, because an eBPF egress fork skips GSO packets.
//
// # Consistency with the control plane
//
// Each worker holds its mutex from the moment epoll_wait returns until the last
// sendmmsg of that wake-up has returned. Control operations that change routing
// (joins, forks, remotes, closing endpoints) take every worker's mutex, so the
// data path reads routing as plain fields and never sees half an update, and a
// socket is closed only when no worker can still be using it.
//
// A fork's mode is an atomic value that workers load per packet, right before
// they queue its copy. SetForkMode stores the new mode and then takes and
// releases each worker's mutex once. That is the barrier the contract needs:
// any batch that loaded the old mode was started before the store and holds its
// worker's mutex until its copies are sent, so when SetForkMode has acquired
// every mutex, all such copies have left, and every later batch loads the new
// mode. Nothing else waits on a mode change, and no socket changes.
//
// Stats take the same barrier, so counters read after a peer has received a
// packet already include it.
//
// # Ports
//
// Endpoints take an even RTP port and the next odd RTCP port from one port
// range shared by all local addresses. A pair that another process holds is
// skipped; ErrPortsExhausted means no pair could be bound.
package userspace
