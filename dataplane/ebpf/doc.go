// Package ebpf is the Linux data-plane engine: it loads recfork's committed BPF
// objects, attaches the TCX fork programs to the media interfaces and owns the
// per-stream map, so RTP copies to the recorder are made in the kernel and a
// mute is one map write. Media endpoints and joins are delegated to another
// dataplane.Engine (normally the userspace one), whose fork methods are never
// called, so no packet is copied twice. It is the only package that imports
// cilium/ebpf.
//
// A fork the TCX programs cannot carry (an endpoint on loopback, a recorder on
// this host, a route over a non-Ethernet link) is handed to Media, which then
// makes that fork's copies: every packet is still copied exactly once.
// The ingress program also guards every endpoint it can see: it applies the
// endpoint's source rule (signalled remote, latching under Media's
// dataplane.LatchPolicy) to each RTP and RTCP packet, drops and counts what
// another source sends before any fork, relay or socket sees it, learns a
// latch itself and reports it on a ring buffer, which the engine hands to
// Media (latch_linux.go). Inbound copies therefore carry the accepted
// source's packets only.
//
// Joins stay with Media too, but a direction the kernel can carry (both legs
// guarded with a known remote, not on loopback, the same IP version,
// no fork of Media's on the legs, a resolved next hop, and the receiving
// endpoint relaying to one endpoint only, besides taps of one payload type
// whose RTP the program passes on to Media) also gets a relay part in its
// inbound stream entry (one lookup finds fork and relay): the
// ingress program then rewrites the packet to the other leg (to where the
// kernel latched it, for a latching leg), makes the forks
// of both directions it feeds in the same run and redirects it, so it never
// reaches Media's socket and is relayed once. Join, Unjoin and SetRemote
// write one entry per direction; which path a direction takes is
// logged when it changes (RelayedInKernel reports it). Config.UserspaceRelay
// keeps every relay in Media.
//
// Everything the engine creates (TCX links, rtnetlink sockets) belongs to the
// network namespace of the thread that called New; later calls may come from
// any thread. Interfaces are attached by name in New; one deleted and created
// again is re-attached (an interface that did not exist at New is not
// added). Nothing is pinned: Close, or the end of the process, leaves no
// program, link or map behind.
//
// The C side is bpf/rtpfork.c; `make generate` rebuilds rtpfork_bpfel.{go,o}.
package ebpf
