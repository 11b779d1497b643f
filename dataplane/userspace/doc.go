// Package userspace is the portable data-plane engine: it owns the media sockets
// and relays and copies RTP in Go with recvmmsg/sendmmsg batches. It implements
// dataplane.Engine and is the fallback wherever BPF cannot load.
package userspace
