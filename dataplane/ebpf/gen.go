package ebpf

// The fork programs are compiled from bpf/ with Debian's clang and libbpf-dev
// headers; the output (*_bpfel.go, *_bpfel.o) is committed so that building
// never needs clang. bpf2go strips DWARF and the compilation directory, so the
// output is byte-identical across runs and checkouts.
//go:generate go run github.com/cilium/ebpf/cmd/bpf2go -tags linux -target bpfel -type stream_key -type stream_value -type fork_counters -type inflight_count -type relay_value -type relay_counters -type latch_value -type latch_event -cflags "-mcpu=v3 -I/usr/include/x86_64-linux-gnu -Wall -Werror" rtpfork ../../bpf/rtpfork.c
