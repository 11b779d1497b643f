// Package ebpf is the Linux data-plane engine: it loads recfork's committed BPF
// objects, attaches the TCX fork programs to the media interfaces and owns the
// per-stream map, so RTP copies to the recorder are made in the kernel and a
// mute is one map write. Media endpoints and joins are delegated to another
// dataplane.Engine (normally the userspace one). It is the only package that
// imports cilium/ebpf.
package ebpf
