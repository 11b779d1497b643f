package ebpf

import "errors"

// errKernelCannot marks a fork the TCX programs cannot carry (a loopback
// endpoint, a recorder on this host, a route over a non-Ethernet link); the
// engine hands such a fork to Media instead of failing it.
var errKernelCannot = errors.New("the kernel fork path cannot carry this stream")
