// SPDX-License-Identifier: (GPL-2.0-only OR MIT)
/* TCX fork programs of recfork: copy one direction of a media endpoint's RTP
 * and RTCP to a recorder, in the kernel.
 *
 * For each UDP packet that belongs to a forked stream the program rewrites
 * L2-L4 to the recorder with the checksum helpers, marks the skb, clones it
 * to the recorder's egress interface, restores the headers and the mark and
 * passes the original on with TCX_NEXT, so other TCX programs still run.
 * An inbound packet of an endpoint with a kernel relay is instead rewritten
 * to the other leg's remote and redirected (relay_stream); the stream entry
 * holds both, so one lookup finds them. Inbound RTP and
 * RTCP from a source an endpoint does not accept is dropped first (guard),
 * and latching is learnt there.
 * Everything it cannot handle is passed on untouched and counted.
 */
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_core_read.h>

#include "rtpfork.h"

/* The 6.1 UAPI headers predate TCX; these are the kernel's values. */
#define TCX_NEXT -1
#define TCX_DROP 2

#define L3_OFF ETH_HLEN
#define L4_OFF_V4 (L3_OFF + 20)
#define L4_OFF_V6 (L3_OFF + 40)
#define IP_MF 0x2000
#define IP_OFFSET 0x1fff
#define WRITE_NONE -2 /* write_hdr changed nothing */

char __license[] SEC("license") = "Dual MIT/GPL";

/* The max_entries of streams, latches, counters and relay_stats are what
 * the engine asks for when it knows no port range (every pair of the 16-bit
 * port space): it sizes them from the media port range when it loads the
 * programs (dataplane/ebpf/tables_linux.go). */

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct stream_key);
	__type(value, struct stream_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} streams SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 131072);
	__type(key, __u32);
	__type(value, struct fork_counters);
} counters SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 131072);
	__type(key, __u32);
	__type(value, struct relay_counters);
} relay_stats SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct inflight_count);
} inflight SEC(".maps");

/* Two entries (RTP, RTCP) per endpoint. */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 65536);
	__type(key, struct stream_key);
	__type(value, struct latch_value);
	__uint(map_flags, BPF_F_NO_PREALLOC);
} latches SEC(".maps");

/* Latch reports to Go; one per socket and SetRemote, so small. */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 256 * 1024);
} latch_events SEC(".maps");

/* Puts struct latch_event in the BTF, for bpf2go's Go mirror. */
const struct latch_event *unused_latch_event __attribute__((unused));

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, STAT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} stats SEC(".maps");

/* The L2-L4 fields a fork rewrites. addrs holds source then destination:
 * bytes 0-7 for IPv4, 0-31 for IPv6, in packet order so one csum_diff
 * covers both. ports are source then destination, network byte order. mid
 * is what lies between the MACs and the addresses, kept as it came: the
 * EtherType and the IPv4 header's first 12 bytes (its checksum last) or the
 * IPv6 header's first 8; write_hdr carries it and the UDP length over from
 * the header it replaces, so a header built from the other fields alone
 * can be written. check is the UDP checksum as it lies in the packet while
 * the header is there; write_hdr keeps it only where it computes it (see
 * WH_SW_CSUM). The fields are in the order that keeps addrs and ports
 * 4-byte aligned on the stack (the verifier's rule for a 32-bit load);
 * write_hdr lays them out in the frame's order. */
struct fork_hdr {
	__u8 macs[12]; /* destination then source, as in the frame */
	__u8 addrs[32]; /* 4-byte aligned, for csum_words */
	__be16 ports[2];
	__be16 ulen;
	__u16 check;
	__u8 mid[14];
} __attribute__((aligned(8)));

/* The frame's first bytes as write_hdr stores them, in one piece: MACs,
 * mid, addresses, ports, and with WH_SW_CSUM the UDP length and checksum
 * (38 or 42 bytes for IPv4, 58 or 62 for IPv6). */
struct hdr_bytes {
	__u8 b[64];
};

/* write_hdr's buffer, per CPU: the stack has no room for it. A run never
 * nests inside write_hdr (a copy's transmit, which runs the egress program,
 * comes after), so one per CPU is enough. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct hdr_bytes);
} hdr_scratch SEC(".maps");

/* hdr_scratch's one key, as a global: no stack slot at write_hdr's five inlined sites. */
const __u32 scratch_key = 0;

#define HDR4_LEN 38
#define HDR6_LEN 58
#define MID4_LEN 14
#define MID6_LEN 10
#define MID4_CSUM 12 /* the IPv4 header checksum's offset in mid */

/* write_hdr's flags. */
#define WH_V6 1      /* an IPv6 header (else IPv4) */
#define WH_SW_CSUM 2 /* the skb's UDP checksum is all in the packet: computed here */
#define WH_BACK 4    /* to is a header the packet had: its check is known */

/* The skb's checksum state (include/linux/skbuff.h), read through the
 * kernel's own struct: __sk_buff has no field for it. */
#define CHECKSUM_NONE 0
#define CHECKSUM_UNNECESSARY 1

struct sk_buff___rf {
	__u8 ip_summed : 2;
} __attribute__((preserve_access_index));

extern void *bpf_cast_to_kern_ctx(void *obj) __ksym;

static __always_inline void count(enum stat_reason reason)
{
	__u32 key = reason;
	__u64 *v = bpf_map_lookup_elem(&stats, &key);
	if (v)
		*v += 1;
}

/* csum_words returns the one's-complement difference (a 32-bit partial sum,
 * as bpf_csum_diff returns) between n 32-bit words from and to: the sum of
 * the new words and the complements of the old (RFC 1624). Computed here, it
 * saves a helper call per difference, six in a relay with both forks. Up to
 * two words (IPv4 addresses, ports); IPv6 addresses take bpf_csum_diff. */
static __always_inline __u32 csum_words(const __u32 *from, const __u32 *to, int n)
{
	__u64 sum = 0;
	int i;

	for (i = 0; i < 2; i++) {
		if (i < n) {
			sum += (__u32)~from[i];
			sum += to[i];
		}
	}
	sum = (sum & 0xffffffff) + (sum >> 32);
	sum = (sum & 0xffffffff) + (sum >> 32);
	return (__u32)sum;
}

/* csum_replace returns the IPv4 header checksum check (as it lies in the
 * packet) updated for a change whose one's-complement difference is diff
 * (RFC 1624 eqn. 3), as bpf_l3_csum_replace computes it. */
static __always_inline __u16 csum_replace(__u16 check, __u32 diff)
{
	__u32 sum = diff + (__u32)(__u16)~check;

	sum += sum < diff; /* end-around carry */
	sum = (sum & 0xffff) + (sum >> 16);
	sum = (sum & 0xffff) + (sum >> 16);
	return (__u16)~sum;
}

/* write_hdr turns the packet's header from into to, keeping every checksum
 * right, and sets to's mid (and its IPv4 checksum) and UDP length from
 * from's. The MACs, the IPv4 header (its checksum updated here: the
 * addresses' difference) and the ports go in with one store.
 *
 * The UDP checksum covers the addresses, as the pseudo-header (RFC 768; RFC
 * 8200 section 8.1), and the ports. Where the skb's checksum lies wholly in
 * the packet (CHECKSUM_NONE, or _UNNECESSARY: the NIC checked it), flags
 * has WH_SW_CSUM and the new checksum is computed here from both
 * differences (RFC 1624) and goes in with the same store; a header written
 * back (WH_BACK) gets the checksum it had. Otherwise the helpers update it:
 * a CHECKSUM_PARTIAL skb from the local stack holds only the pseudo-header's
 * sum there, which BPF_F_PSEUDO_HDR alone changes, and a CHECKSUM_COMPLETE
 * skb's csum must follow the field. An IPv4 UDP checksum of zero means
 * "none" (RFC 768) and stays zero; a computed zero goes out as 0xffff (RFC
 * 768; RFC 8200 section 8.1), as BPF_F_MARK_MANGLED_0 does. Inlined at
 * its five call sites: as a subprogram its call and return cost ~50 ns a
 * rewrite on a kernel with return thunks, more than its body; the program's
 * stack is then 440 of the verifier's 512 bytes. */
static __always_inline int write_hdr(struct __sk_buff *skb, int flags,
				struct fork_hdr *from, struct fork_hdr *to)
{
	struct hdr_bytes *h;
	__u32 diff, pdiff, sum;
	__u16 *check;
	int v6 = flags & WH_V6, sw = flags & WH_SW_CSUM, len;

	h = bpf_map_lookup_elem(&hdr_scratch, &scratch_key);
	if (!h)
		return WRITE_NONE;
	__builtin_memcpy(to->mid, from->mid, sizeof(to->mid));
	to->ulen = from->ulen;
	pdiff = csum_words((__u32 *)from->ports, (__u32 *)to->ports, 1);
	__builtin_memcpy(h->b, to->macs, 12);
	if (v6) {
		/* Eight words each: the helper, whose loop spills nothing. */
		diff = bpf_csum_diff((__be32 *)from->addrs, 32, (__be32 *)to->addrs, 32, 0);
		__builtin_memcpy(h->b + 12, to->mid, MID6_LEN);
		__builtin_memcpy(h->b + 12 + MID6_LEN, to->addrs, 32);
		len = HDR6_LEN;
	} else {
		diff = csum_words((__u32 *)from->addrs, (__u32 *)to->addrs, 2);
		check = (__u16 *)(to->mid + MID4_CSUM);
		*check = csum_replace(*check, diff);
		__builtin_memcpy(h->b + 12, to->mid, MID4_LEN);
		__builtin_memcpy(h->b + 12 + MID4_LEN, to->addrs, 8);
		len = HDR4_LEN;
	}
	__builtin_memcpy(h->b + len - 4, to->ports, 4);
	if (sw) {
		if (!(flags & WH_BACK)) {
			if (!v6 && !from->check) {
				to->check = 0;
			} else {
				sum = diff + pdiff;
				sum += sum < diff; /* end-around carry */
				to->check = csum_replace(from->check, sum) ?: 0xffff;
			}
		}
		__builtin_memcpy(h->b + len, &to->ulen, 2);
		__builtin_memcpy(h->b + len + 2, &to->check, 2);
		len += 4;
	}
	/* The first write makes the skb private (it may be a clone); only
	 * it can fail for want of memory, and then nothing has changed. */
	if (bpf_skb_store_bytes(skb, 0, h->b, len, 0))
		return WRITE_NONE;
	if (sw)
		return 0;
	count(STAT_CSUM_HELPERS);
	if (v6) {
		if (bpf_l4_csum_replace(skb, L4_OFF_V6 + 6, 0, diff, BPF_F_PSEUDO_HDR))
			return -1;
		return bpf_l4_csum_replace(skb, L4_OFF_V6 + 6, 0, pdiff, 0);
	}
	if (bpf_l4_csum_replace(skb, L4_OFF_V4 + 6, 0, diff, BPF_F_PSEUDO_HDR | BPF_F_MARK_MANGLED_0))
		return -1;
	return bpf_l4_csum_replace(skb, L4_OFF_V4 + 6, 0, pdiff, BPF_F_MARK_MANGLED_0);
}

/* sw_csum tells whether the skb's UDP checksum lies wholly in the packet
 * (write_hdr's WH_SW_CSUM). */
static __always_inline int sw_csum(struct __sk_buff *skb)
{
	struct sk_buff___rf *k = bpf_cast_to_kern_ctx(skb);
	__u32 summed = BPF_CORE_READ_BITFIELD(k, ip_summed);

	return summed == CHECKSUM_NONE || summed == CHECKSUM_UNNECESSARY ? WH_SW_CSUM : 0;
}

/* What classify found in a UDP payload (media_info bits 0-7); bits 8-15
 * hold the payload's second byte (RTP: marker and payload type). */
#define MEDIA_RTP 1  /* valid RTP, if it came to an RTP port */
#define MEDIA_RTCP 2 /* valid RTCP */

/* classify tells whether the UDP payload at off (plen bytes) is what the
 * media sockets accept, with the userspace engine's rules: version 2 (RFC
 * 3550 sections 5.1, 6.4.1; this also rejects STUN and DTLS, RFC 7983
 * section 7); a second byte of 192-223 is RTCP (RFC 5761 section 4) whose
 * first length must fit; anything else is RTP, never valid on the RTCP port
 * (is_media), whose CSRC list and extension must fit (RFC 3550 section
 * 5.3.1). A run classifies its packet once; the guard, both forks and the
 * relay ask is_media. The first bytes are read in place when they are in
 * the linear data (always, for the frames a NIC or veth hands over), else
 * copied out. */
static __always_inline __u32 classify(struct __sk_buff *skb, void *data, void *end, __u32 off,
				      __u32 plen)
{
	__u8 b[4];
	__u32 hl;
	__be16 ext;

	if (plen < 8)
		return 0;
	if (data + off + 4 <= end)
		__builtin_memcpy(b, data + off, 4);
	else if (bpf_skb_load_bytes(skb, off, b, 4))
		return 0;
	if ((b[0] >> 6) != 2)
		return 0;
	if (b[1] >= 192 && b[1] <= 223)
		return ((__u32)((b[2] << 8) | b[3]) + 1) * 4 <= plen ? MEDIA_RTCP : 0;
	if (plen < 12)
		return 0;
	hl = 12 + 4 * (b[0] & 0x0f);
	if (b[0] & 0x10) {
		if (hl + 4 > plen || bpf_skb_load_bytes(skb, off + hl + 2, &ext, 2))
			return 0;
		hl += 4 + 4 * (__u32)bpf_ntohs(ext);
	}
	return hl <= plen ? MEDIA_RTP | (__u32)b[1] << 8 : 0;
}

/* is_media reports whether a payload of class media is accepted on an RTP
 * (rtcp_port 0) or RTCP port. */
static __always_inline int is_media(__u32 media, int rtcp_port)
{
	return (media & MEDIA_RTCP) || (!rtcp_port && (media & MEDIA_RTP));
}

/* same_source reports whether the packet's source (the old header holds it
 * first) is addr:port. */
static __always_inline int same_source(struct fork_hdr *old, int v6, const __u8 *addr, __u16 port)
{
	int n = v6 ? 16 : 4, i, same = old->ports[0] == bpf_htons(port);

	for (i = 0; i < 16; i++)
		if (i < n && old->addrs[i] != addr[i])
			same = 0;
	return same;
}

static __always_inline int same_addr(struct fork_hdr *old, int v6, const __u8 *addr)
{
	int n = v6 ? 16 : 4, i, same = 1;

	for (i = 0; i < 16; i++)
		if (i < n && old->addrs[i] != addr[i])
			same = 0;
	return same;
}

/* SET_HDR fills the fields of h a rewrite sets from v, a stream_value or a
 * relay_value: the next hop's MAC and ours, v's source address and the
 * destination address in field dst, and the ports (host byte order). The
 * rest (mid, and for IPv4 the unused address bytes) write_hdr takes or
 * ignores. A macro rather than a function: through plain byte pointers
 * clang loses the fields' alignment and copies them a byte at a time. */
#define SET_HDR(h, v6, v, dst, sport, dport)                               \
	do {                                                                \
		__builtin_memcpy((h)->macs, (v)->dst_mac, 6);               \
		__builtin_memcpy((h)->macs + 6, (v)->src_mac, 6);           \
		if (v6) {                                                   \
			__builtin_memcpy((h)->addrs, (v)->src_addr, 16);    \
			__builtin_memcpy((h)->addrs + 16, (v)->dst, 16);    \
		} else {                                                    \
			__builtin_memcpy((h)->addrs, (v)->src_addr, 4);     \
			__builtin_memcpy((h)->addrs + 4, (v)->dst, 4);      \
		}                                                           \
		(h)->ports[0] = bpf_htons(sport);                           \
		(h)->ports[1] = bpf_htons(dport);                           \
	} while (0)

/* set_tx_hash gives an skb without a flow hash one of the stream's own, from
 * its header as it came, before the packet or a copy is transmitted: each
 * transmit on a multi-queue device picks its queue by the hash, and without
 * one the kernel runs the flow dissector on every packet and copy to make
 * it. A hash the NIC or the stack set is kept. */
static __always_inline void set_tx_hash(struct __sk_buff *skb, struct fork_hdr *old, int v6)
{
	__u32 h;

	if (skb->hash)
		return;
	h = ((__u32)old->ports[0] << 16 | old->ports[1]) ^
	    ((__u32)old->addrs[v6 ? 15 : 3] << 24 | (__u32)old->addrs[v6 ? 31 : 7] << 8);
	bpf_set_hash(skb, h | 1);
}

/* find_stream looks the stream of key up: the entry of its port, or for an
 * odd port without one, the RTP port's below it (RTCP travels on the RTP
 * port + 1 and follows its stream, RFC 3550 section 11), which sets *rtcp
 * and leaves key at the RTP port. */
static __always_inline struct stream_value *find_stream(struct stream_key *key, __u16 *rtcp)
{
	struct stream_value *v;
	__u16 port;

	*rtcp = 0;
	v = bpf_map_lookup_elem(&streams, key);
	if (v)
		return v;
	port = bpf_ntohs(key->port);
	if (!(port & 1))
		return 0;
	key->port = bpf_htons(port - 1);
	*rtcp = 1;
	return bpf_map_lookup_elem(&streams, key);
}

/* fork_stream copies or counts the packet for v, its stream's entry (the
 * RTCP port's with rtcp), if that has a fork. old is
 * the header as the packet came (for the source check), *cur the one it has
 * now. With restore the packet is left with *cur; without, a copied packet
 * keeps the copy's header, *cur becomes it and fork_stream returns 1: the
 * caller writes its next header over it (or the original back), which saves
 * a rewrite, and after a clone each rewrite costs a private copy of the
 * headers. The copy's header is built in *new, the caller's scratch (the
 * 512-byte stack holds three headers, not one per use). */
static __always_inline int fork_stream(struct __sk_buff *skb, struct stream_value *v, __u16 rtcp,
				       __u8 family, struct fork_hdr *old, struct fork_hdr *cur,
				       struct fork_hdr *new, int v6, int wh, __u32 media, __u32 payload,
				       __u32 segs, int guarded, int restore)
{
	struct fork_counters *c;
	__u32 mark;
	int ret;

	if (!v || !(v->flags & STREAM_F_FORK)) {
		count(STAT_MISS);
		return 0;
	}
	/* The media socket drops what does not come from its remote; so do
	 * the copies. The guard, where there is one, has decided already. */
	if (!guarded && (v->flags & STREAM_F_REMOTE) &&
	    !same_source(old, v6, v->rem_addr, v->rem_port + rtcp)) {
		count(STAT_FOREIGN);
		return 0;
	}
	if (!is_media(media, rtcp)) {
		count(STAT_NOT_RTP);
		return 0;
	}
	c = bpf_map_lookup_elem(&counters, &v->slot);
	if (!c)
		return 0;
	if (v->mode != MODE_ACTIVE) {
		c->muted_packets += segs;
		c->muted_bytes += payload;
		return 0;
	}
	if (!(v->flags & STREAM_F_RESOLVED) || v->family != family) {
		c->failed_packets += segs;
		return 0;
	}

	SET_HDR(new, v6, v, rec_addr, v->src_port + rtcp, v->rec_port + rtcp);

	ret = write_hdr(skb, wh, cur, new);
	if (ret == WRITE_NONE) {
		c->failed_packets += segs;
		return 0;
	}
	if (!ret) {
		set_tx_hash(skb, old, v6);
		mark = skb->mark;
		skb->mark = FORK_MARK;
		ret = bpf_clone_redirect(skb, v->ifindex, 0);
		skb->mark = mark;
	}
	if (ret || restore) {
		/* Restore, also after a failure half-way (which the offsets
		 * checked above rule out): the packet must go on exactly as
		 * it was. */
		write_hdr(skb, wh | WH_BACK, new, cur);
	} else {
		*cur = *new;
	}
	if (ret) {
		c->failed_packets += segs;
		return 0;
	}
	c->copied_packets += segs;
	c->copied_bytes += payload;
	return !restore;
}

/* Outcomes of guard. */
#define GUARD_NONE 0   /* no entry: the port is not an endpoint's */
#define GUARD_ACCEPT 1 /* the socket's source */
#define GUARD_DROP 2   /* foreign: dropped and counted */

/* guard applies an endpoint socket's source rule to a media packet, with the
 * userspace engine's rules (dataplane.LatchPolicy.MayLatch): a latched
 * socket accepts its latched source only; a pending one latches to the first
 * source its mode allows and refuses the others; LATCH_FIXED accepts the
 * signalled remote only. The first packet to latch wins the state with a
 * compare-and-swap; a packet racing it on another CPU while the learnt
 * fields are written is dropped. */
static __always_inline int guard(struct __sk_buff *skb, struct stream_key *key,
				 struct fork_hdr *old, int v6, __u32 media, __u32 payload)
{
	struct latch_event *ev;
	struct latch_value *v;
	__u32 n, state;
	int may = 0;

	v = bpf_map_lookup_elem(&latches, key);
	if (!v)
		return GUARD_NONE;
	/* Only RTP and RTCP are the guard's; the socket drops the rest. */
	if (!is_media(media, bpf_ntohs(key->port) & 1))
		return GUARD_NONE;
	state = v->state;
	if (state == LATCH_LEARNT) {
		if (same_source(old, v6, v->lat_addr, v->lat_port))
			return GUARD_ACCEPT;
		goto drop;
	}
	if (state != LATCH_PENDING)
		goto drop;
	switch (v->mode) {
	case LATCH_FIXED:
		if (same_source(old, v6, v->rem_addr, v->rem_port))
			return GUARD_ACCEPT;
		goto drop;
	case LATCH_ANY:
		may = 1;
		break;
	case LATCH_NAT:
	case LATCH_ADDR:
		/* Saturating, as the userspace engine counts. */
		n = v->seen;
		if (n != ~0U)
			n = __sync_fetch_and_add(&v->seen, 1) + 1;
		may = same_addr(old, v6, v->rem_addr) || (v->mode == LATCH_NAT && n <= v->limit);
		break;
	}
	if (!may)
		goto drop;
	if (__sync_val_compare_and_swap(&v->state, LATCH_PENDING, LATCH_BUSY) != LATCH_PENDING)
		goto drop;
	__builtin_memcpy(v->lat_addr, old->addrs, 16);
	if (!v6)
		__builtin_memset(v->lat_addr + 4, 0, 12);
	v->lat_port = bpf_ntohs(old->ports[0]);
	__builtin_memcpy(v->lat_mac, old->macs + 6, 6);
	__builtin_memcpy(v->own_mac, old->macs, 6);
	v->ifindex = skb->ifindex;
	/* Release: the fields above are visible before the state says so. */
	__sync_val_compare_and_swap(&v->state, LATCH_BUSY, LATCH_LEARNT);
	count(STAT_LATCHED);
	ev = bpf_ringbuf_reserve(&latch_events, sizeof(*ev), 0);
	if (ev) {
		ev->key = *key;
		__builtin_memcpy(ev->addr, v->lat_addr, 16);
		ev->port = v->lat_port;
		ev->pad = 0;
		bpf_ringbuf_submit(ev, 0);
	}
	return GUARD_ACCEPT;
drop:
	__sync_fetch_and_add(&v->dropped, 1);
	count(STAT_GUARD);
	return GUARD_DROP;
}

/* follow points a relay at the other leg's latched source, if it has one:
 * the socket's own entry, else (RTCP not seen yet) next to its latched RTP
 * (RFC 3550 section 11), as the userspace engine sends. */
static __always_inline int follow(struct relay_value *v, struct stream_key *key, __u16 rtcp,
				  struct fork_hdr *new, __u32 *ifindex)
{
	struct stream_key k = {};
	struct latch_value *l;
	__u16 add = 0;

	__builtin_memcpy(k.addr, v->src_addr, 16);
	k.port = bpf_htons(v->src_port + rtcp);
	k.dir = DIR_INBOUND;
	k.family = key->family;
	l = bpf_map_lookup_elem(&latches, &k);
	if ((!l || l->state != LATCH_LEARNT) && rtcp) {
		k.port = bpf_htons(v->src_port);
		l = bpf_map_lookup_elem(&latches, &k);
		add = 1;
	}
	if (!l || l->state != LATCH_LEARNT)
		return 0;
	__builtin_memcpy(new->macs, l->lat_mac, 6);
	__builtin_memcpy(new->macs + 6, l->own_mac, 6);
	if (key->family == 6)
		__builtin_memcpy(new->addrs + 16, l->lat_addr, 16);
	else
		__builtin_memcpy(new->addrs + 4, l->lat_addr, 4);
	new->ports[1] = bpf_htons(l->lat_port + add);
	*ifindex = l->ifindex;
	return 1;
}

/* relay_stream relays an inbound packet of a joined endpoint in the kernel,
 * if its stream entry sv (the RTCP port's with rtcp; key its key) has a
 * relay: it makes the other leg's outbound fork (this leg's inbound fork was made
 * before; a copy's headers are the recorder's whatever the packet's were),
 * rewrites L2-L4 to leave from the other leg's local address towards the
 * other leg's remote, marks the skb so the egress program does not fork it
 * a second time and redirects it. The packet's header is *cur (old as it
 * came); *dirty says whether it differs from old. It returns TCX_NEXT when
 * the packet goes on to the socket instead (no relay, not media, or no way
 * to send it), and the caller then writes old back if *dirty; TCX_DROP when
 * the relay's rewrite failed after the other leg's copy was made. */
static __always_inline int relay_stream(struct __sk_buff *skb, struct stream_value *sv, __u16 rtcp,
					struct stream_key *key, struct fork_hdr *old, struct fork_hdr *cur,
					struct fork_hdr *new, int *dirty, int v6, int wh, __u32 media,
					__u32 payload, int guarded)
{
	struct stream_key out = {};
	struct stream_value *ov;
	struct relay_value *v;
	struct relay_counters *c;
	__u16 ortcp;
	__u32 ifindex;
	int ret, copied;

	if (!sv || !(sv->relay.flags & RELAY_F_ON))
		return TCX_NEXT;
	v = &sv->relay;
	/* Injected media is never relayed: the guard dropped it already, or
	 * (no guard entry) a source other than the accepted remote goes on to
	 * the socket, which drops it and counts it. */
	if (!guarded && (v->flags & RELAY_F_REMOTE) &&
	    !same_source(old, v6, v->rem_addr, v->rem_port + rtcp))
		return TCX_NEXT;
	/* What the socket would drop (STUN, DTLS, garbage) is left to it. */
	if (!is_media(media, rtcp))
		return TCX_NEXT;
	/* A tapped leg's telephone-event packets go on to the socket: its
	 * engine relays them to this relay's party and to the tap, so each
	 * still leaves once towards the party. */
	if ((v->flags & RELAY_F_PASS_PT) && !rtcp) {
		if (((media >> 8) & 0x7f) == v->pass_pt)
			return TCX_NEXT;
	}
	c = bpf_map_lookup_elem(&relay_stats, &v->slot);
	if (!c)
		return TCX_NEXT;
	if (!(v->flags & RELAY_F_RESOLVED) || v->family != key->family) {
		c->failed_packets += 1;
		return TCX_NEXT;
	}

	/* The other leg's outbound fork first, keyed as the egress program
	 * keys it: by the relayed packet's source, the other leg's local
	 * address and port. Its copy's header is built in *new, which the
	 * relay's header then reuses. */
	if (v6)
		__builtin_memcpy(out.addr, v->src_addr, 16);
	else
		__builtin_memcpy(out.addr, v->src_addr, 4);
	out.port = bpf_htons(v->src_port + rtcp);
	out.dir = DIR_OUTBOUND;
	out.family = key->family;
	ov = find_stream(&out, &ortcp);
	copied = fork_stream(skb, ov, ortcp, out.family, old, cur, new, v6, wh, media, payload, 1, 1, 0);
	if (copied)
		*dirty = 1;

	/* From v, not out.port: fork_stream may have moved it to the RTP port. */
	SET_HDR(new, v6, v, dst_addr, v->src_port + rtcp, v->dst_port + rtcp);
	ifindex = v->ifindex;
	if (v->flags & RELAY_F_FOLLOW)
		follow(v, key, rtcp, new, &ifindex);

	ret = write_hdr(skb, wh, cur, new);
	if (ret) {
		if (ret != WRITE_NONE) {
			*cur = *new;
			*dirty = 1;
		}
		c->failed_packets += 1;
		/* No memory to make the headers private: with the other leg's
		 * copy already sent, the socket's relay would copy the packet
		 * a second time on its way out, so it is dropped instead. */
		return copied ? TCX_DROP : TCX_NEXT;
	}
	c->relayed_packets += 1;
	c->relayed_bytes += payload;
	count(STAT_RELAYED);
	set_tx_hash(skb, old, v6);
	skb->mark = FORK_MARK;
	return bpf_redirect(ifindex, 0);
}

static __always_inline int fork_packet(struct __sk_buff *skb, __u8 dir)
{
	struct stream_key key = {};
	struct stream_value *v;
	struct fork_hdr old = {}, cur, scratch;
	struct inflight_count *q;
	int ret = TCX_NEXT;
	struct udphdr *udp;
	void *data, *end;
	__u32 payload, segs, media, zero = 0;
	int v6, wh, hdr_len, guarded = GUARD_NONE, dirty;
	__u16 rtcp;

	if (skb->mark == FORK_MARK) {
		count(STAT_LOOPED);
		return TCX_NEXT;
	}
	/* A GSO skb carries several datagrams behind one header. On egress
	 * it is the stack's UDP GSO (UDP_SEGMENT, SKB_GSO_UDP_L4): the copy is
	 * rewritten like any packet and the recorder's interface segments it,
	 * each datagram getting the rewritten headers. On ingress it would be
	 * GRO's work, of a kind (fraglist or not) __sk_buff does not tell. */
	segs = 1;
	if (skb->gso_size) {
		if (dir != DIR_OUTBOUND || skb->gso_segs == 0) {
			count(STAT_GSO);
			return TCX_NEXT;
		}
		segs = skb->gso_segs;
		count(STAT_GSO_EGRESS);
	}
	/* A tag the NIC or the stack moved into metadata would go out with
	 * the copy on the recorder's interface; the fork belongs on the VLAN
	 * device, where packets carry no tag. */
	if (skb->vlan_present) {
		count(STAT_VLAN);
		return TCX_NEXT;
	}
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		v6 = 0;
		hdr_len = L4_OFF_V4 + sizeof(struct udphdr);
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		v6 = 1;
		hdr_len = L4_OFF_V6 + sizeof(struct udphdr);
	} else {
		count(STAT_NOT_IP);
		return TCX_NEXT;
	}

	data = (void *)(long)skb->data;
	end = (void *)(long)skb->data_end;
	if (data + hdr_len > end) {
		/* Headers may sit in paged data; pulling them in changes
		 * no byte of the packet. */
		if (skb->len < hdr_len || bpf_skb_pull_data(skb, hdr_len)) {
			count(STAT_SHORT);
			return TCX_NEXT;
		}
		data = (void *)(long)skb->data;
		end = (void *)(long)skb->data_end;
		if (data + hdr_len > end) {
			count(STAT_SHORT);
			return TCX_NEXT;
		}
	}

	if (v6) {
		struct ipv6hdr *ip6 = data + L3_OFF;

		if (ip6->nexthdr != IPPROTO_UDP) {
			count(STAT_NOT_UDP);
			return TCX_NEXT;
		}
		udp = data + L4_OFF_V6;
		__builtin_memcpy(old.mid, data + 12, MID6_LEN);
		__builtin_memcpy(old.addrs, &ip6->saddr, 32);
		__builtin_memcpy(key.addr, dir == DIR_INBOUND ? (void *)&ip6->daddr : (void *)&ip6->saddr, 16);
		key.family = 6;
	} else {
		struct iphdr *ip4 = data + L3_OFF;

		if (ip4->ihl != 5) {
			count(ip4->ihl < 5 ? STAT_SHORT : STAT_IP_OPTIONS);
			return TCX_NEXT;
		}
		if (ip4->frag_off & bpf_htons(IP_MF | IP_OFFSET)) {
			count(STAT_FRAGMENT);
			return TCX_NEXT;
		}
		if (ip4->protocol != IPPROTO_UDP) {
			count(STAT_NOT_UDP);
			return TCX_NEXT;
		}
		udp = data + L4_OFF_V4;
		__builtin_memcpy(old.mid, data + 12, MID4_LEN);
		__builtin_memcpy(old.addrs, &ip4->saddr, 8);
		__builtin_memcpy(key.addr, dir == DIR_INBOUND ? (void *)&ip4->daddr : (void *)&ip4->saddr, 4);
		key.family = 4;
	}
	payload = bpf_ntohs(udp->len);
	if (payload < sizeof(struct udphdr) || payload > skb->len - (hdr_len - sizeof(struct udphdr))) {
		count(STAT_SHORT);
		return TCX_NEXT;
	}
	payload -= sizeof(struct udphdr);
	__builtin_memcpy(old.macs, data, 12);
	old.ports[0] = udp->source;
	old.ports[1] = udp->dest;
	old.ulen = udp->len;
	old.check = udp->check;

	key.dir = dir;
	key.port = dir == DIR_INBOUND ? udp->dest : udp->source;
	q = bpf_map_lookup_elem(&inflight, &zero);
	if (!q)
		return TCX_NEXT;
	/* Fully ordered atomics (their results are used, so they are fetch
	 * operations): enter is visible before the table is read, and leave
	 * only after the run is done with what it read. */
	if (__sync_fetch_and_add(&q->enter, 1) == ~0ULL)
		return TCX_NEXT;
	media = classify(skb, data, end, hdr_len, payload);
	wh = (v6 ? WH_V6 : 0) | sw_csum(skb);
	if (dir == DIR_INBOUND) {
		guarded = guard(skb, &key, &old, v6, media, payload);
		if (guarded == GUARD_DROP) {
			ret = TCX_DROP;
			goto out;
		}
	}
	/* Inbound, the fork leaves its header in place for the relay to
	 * write over; a packet that goes on to the socket gets old back. */
	cur = old;
	v = find_stream(&key, &rtcp);
	dirty = fork_stream(skb, v, rtcp, key.family, &old, &cur, &scratch, v6, wh, media, payload,
			    segs, guarded, dir != DIR_INBOUND);
	if (dir == DIR_INBOUND) {
		ret = relay_stream(skb, v, rtcp, &key, &old, &cur, &scratch, &dirty, v6, wh, media,
				   payload, guarded);
		if (ret == TCX_NEXT && dirty)
			write_hdr(skb, wh | WH_BACK, &cur, &old);
	}
out:
	if (__sync_fetch_and_add(&q->leave, 1) == ~0ULL)
		count(STAT_MISS); /* never: keeps the fetch (ordered) form */
	return ret;
}

/* Inbound: remote party -> platform, keyed by the destination. */
SEC("tcx/ingress")
int rtpfork_ingress(struct __sk_buff *skb)
{
	return fork_packet(skb, DIR_INBOUND);
}

/* Outbound: platform -> remote party, keyed by the source. */
SEC("tcx/egress")
int rtpfork_egress(struct __sk_buff *skb)
{
	return fork_packet(skb, DIR_OUTBOUND);
}
