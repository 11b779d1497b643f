//go:build ignore

// The perf suite's traffic programs: an XDP program that turns
// BPF_PROG_TEST_RUN live frames into RTP streams (one frame per run, the
// streams in round robin), an XDP pass program (the test-run floor) and a TCX
// sink that counts and drops what the engines relay and copy back.

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

/* The 6.1 UAPI headers predate TCX. */
#define TCX_NEXT -1
#define TCX_DROP 2

#define HDR_LEN 42 /* ethernet + IPv4 without options + UDP */

/* Must be in sync with genStream in gen.go. Fields in network byte order. */
struct gen_stream {
	__u16 sport;
	__u16 dport;
	__u16 csum;
	__u16 pad;
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 65536);
	__type(key, __u32);
	__type(value, struct gen_stream);
} streams SEC(".maps");

/* Plain globals, set from Go before the run: a volatile const array may be
 * folded to zeros by clang 14. */
__u8 hdr_tmpl[48];
__u32 nstreams;
__u32 next_stream;

/* Sink port ranges, host byte order, half-open [lo, hi). */
__u32 callee_lo, callee_hi, rec_lo, rec_hi;

/* The sink's per-CPU slots: packets to the callees, packets to the
 * recorder, and bpf_ktime_get_ns() (CLOCK_MONOTONIC) when the last recorder
 * copy arrived on that CPU (the mute scenario's "last copy seen at the
 * recorder" is the latest of them). Per CPU, not a global: a global written
 * by every copy shares its cache line with the port ranges every run reads,
 * and the two CPUs' sinks would take the line from each other at every
 * copy, a cost of the harness that the engines under test would pay. */
#define SINK_CALLEE 0
#define SINK_REC 1
#define SINK_REC_NS 2

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 4);
	__type(key, __u32);
	__type(value, __u64);
} sink_counts SEC(".maps");

SEC("xdp")
int xdp_gen(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	if (data + HDR_LEN > end)
		return XDP_ABORTED;
	__u32 n = nstreams;
	if (n == 0)
		return XDP_DROP;
	__u32 i = next_stream;
	if (i >= n)
		i = 0;
	next_stream = i + 1;
	struct gen_stream *s = bpf_map_lookup_elem(&streams, &i);
	if (!s)
		return XDP_DROP;
	/* Live-frame pages are initialised once and then recycled: rewrite the
	 * whole header every run. */
	__builtin_memcpy(data, hdr_tmpl, HDR_LEN);
	struct udphdr *udp = data + sizeof(struct ethhdr) + sizeof(struct iphdr);
	udp->source = s->sport;
	udp->dest = s->dport;
	udp->check = s->csum;
	return XDP_TX;
}

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
	return XDP_PASS;
}

SEC("tc")
int tc_sink(struct __sk_buff *skb)
{
	void *data = (void *)(long)skb->data;
	void *end = (void *)(long)skb->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return TCX_NEXT;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl != 5)
		return TCX_NEXT;
	struct udphdr *udp = (void *)(ip + 1);
	if ((void *)(udp + 1) > end)
		return TCX_NEXT;
	__u32 port = bpf_ntohs(udp->dest);
	__u32 idx;
	if (port >= callee_lo && port < callee_hi)
		idx = SINK_CALLEE;
	else if (port >= rec_lo && port < rec_hi)
		idx = SINK_REC;
	else
		return TCX_NEXT;
	/* A sender using UDP GSO (the userspace engine does) hands veth one skb
	 * carrying several datagrams, and veth passes it on unsegmented: count
	 * the datagrams, not the skb. */
	__u32 segs = skb->gso_segs;
	if (segs == 0)
		segs = 1;
	__u64 *c = bpf_map_lookup_elem(&sink_counts, &idx);
	if (c)
		*c += segs;
	if (idx == SINK_REC) {
		idx = SINK_REC_NS;
		c = bpf_map_lookup_elem(&sink_counts, &idx);
		if (c)
			*c = bpf_ktime_get_ns();
	}
	return TCX_DROP;
}

char __license[] SEC("license") = "GPL";
