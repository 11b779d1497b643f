// Package xdpgen holds the perf suite's BPF traffic programs: an XDP program
// that BPF_PROG_TEST_RUN drives in live-frames mode to send thousands of RTP
// streams into a veth pair at millions of packets per second, and a TCX sink
// that counts and drops the relayed packets and the recorder copies.
package xdpgen

//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -cc clang -cflags "-O2 -g -Wall -I/usr/include/x86_64-linux-gnu" -target bpfel gen gen.c
