/* Structures shared between the TCX fork programs (rtpfork.c) and the Go
 * engine (dataplane/ebpf). bpf2go generates the Go mirrors from these
 * definitions; any change here needs `make generate`. */
#ifndef RTPFORK_H
#define RTPFORK_H

#include <linux/types.h>

/* Directions, as dataplane.Direction. */
#define DIR_INBOUND 1
#define DIR_OUTBOUND 2

/* Modes, as dataplane.Mode. */
#define MODE_ACTIVE 1
#define MODE_INACTIVE 2

/* stream_value.flags */
#define STREAM_F_RESOLVED 1 /* ifindex and both MACs are valid */
#define STREAM_F_REMOTE 2   /* inbound: copy only what comes from rem_addr/rem_port */
#define STREAM_F_FORK 4     /* the entry has a fork (else only a relay) */

/* skb->mark of a copy while it is being cloned: the egress program passes
 * marked packets on untouched, so a copy is never forked again. */
#define FORK_MARK 0x52464b31 /* "RFK1" */

/* Key of the stream table: one media endpoint's RTP port and one direction.
 * The address is the platform's (destination on ingress, source on egress);
 * IPv4 uses the first four bytes and leaves the rest zero. */
struct stream_key {
	__u8 addr[16];
	__be16 port; /* RTP port, network byte order; RTCP is port+1 */
	__u8 dir;    /* DIR_INBOUND or DIR_OUTBOUND */
	__u8 family; /* 4 or 6 */
};

/* A joined endpoint's kernel relay, the relay part of its inbound stream
 * entry (stream_value.relay, with RELAY_F_ON): its inbound stream is
 * rewritten to leave from the other leg's local address towards the other
 * leg's remote and redirected to ifindex in the kernel. One map update
 * joins, unjoins or moves a relay. With RELAY_F_FOLLOW the destination is
 * the other leg's latched source once its latch_value has one. */
struct relay_value {
	__u32 slot;    /* index into the relay_stats map */
	__u32 ifindex; /* egress interface towards the other leg's remote */
	__u8 family;   /* 4 or 6, equal to the key's */
	__u8 flags;    /* RELAY_F_* */
	__u16 src_port; /* other leg's local RTP port, host byte order */
	__u16 dst_port; /* other leg's remote RTP port, host byte order */
	/* With RELAY_F_PASS_PT, RTP of this payload type goes on to the socket,
	 * whose engine relays it to the party and to a tap (RFC 4733 events). */
	__u8 pass_pt;
	__u8 pad;
	__u8 dst_mac[6]; /* next hop towards the other leg's remote */
	__u8 src_mac[6]; /* MAC of ifindex */
	__u8 src_addr[16];
	__u8 dst_addr[16];
	/* With RELAY_F_REMOTE, the only source relayed (this leg's signalled
	 * remote; RTCP from port+1); others go on to the socket, which drops
	 * them as the userspace engine does. */
	__u8 rem_addr[16];
	__u16 rem_port; /* host byte order */
	__u16 pad2;
};

/* relay_value.flags */
#define RELAY_F_RESOLVED 1 /* ifindex and both MACs are valid */
#define RELAY_F_REMOTE 2   /* relay only what comes from rem_addr/rem_port */
#define RELAY_F_FOLLOW 4   /* send to the other leg's latched source once it has one */
#define RELAY_F_PASS_PT 8  /* RTP of payload type pass_pt is not relayed here */
#define RELAY_F_ON 16      /* the entry has a relay */

/* Value of the stream table: where the copies of one direction go (with
 * STREAM_F_FORK) and, for an inbound key, the endpoint's kernel relay
 * (relay.flags has RELAY_F_ON): the ingress program finds both with one
 * lookup. The whole value is replaced by one map update, so a mute, a join
 * or an unjoin is atomic. */
struct stream_value {
	__u32 slot;    /* index into the counters map */
	__u32 ifindex; /* egress interface of the copy */
	__u8 mode;     /* MODE_ACTIVE or MODE_INACTIVE */
	__u8 family;   /* 4 or 6, equal to the key's */
	__u8 flags;    /* STREAM_F_* */
	__u8 pad;
	__u16 rec_port;   /* recorder RTP port, host byte order */
	__u16 src_port;   /* copy's source RTP port, host byte order */
	__u8 dst_mac[6];  /* next hop towards the recorder */
	__u8 src_mac[6];  /* MAC of ifindex */
	__u8 rec_addr[16];
	__u8 src_addr[16];
	/* With STREAM_F_REMOTE, the only source the media socket accepts
	 * (a signalled remote without latching); RTCP comes from port+1. */
	__u8 rem_addr[16];
	__u16 rem_port; /* host byte order */
	__u16 pad2;
	struct relay_value relay;
};

/* Guard and latch table, keyed like the stream table with DIR_INBOUND but by
 * the exact local port (RTP or RTCP, one entry each): which sources an
 * endpoint's socket accepts. The ingress program drops (TCX_DROP) RTP and
 * RTCP from any other source and counts it, so it reaches no socket, relay
 * or copy; it learns the latched source itself (symmetric RTP, RFC 4961
 * section 3) and reports it on the latch_events ring buffer. Go writes an
 * entry when an endpoint opens and rewrites it on SetRemote (which resets
 * latching); the program writes only state, seen, dropped and the learnt
 * fields. */
struct latch_value {
	__u32 state;   /* LATCH_PENDING, LATCH_BUSY or LATCH_LEARNT */
	__u32 seen;    /* media packets offered to the policy while pending */
	__u64 dropped; /* packets dropped by the guard */
	__u8 mode;     /* LATCH_FIXED, LATCH_ADDR, LATCH_NAT or LATCH_ANY */
	__u8 family;   /* 4 or 6, equal to the key's */
	__u16 rem_port; /* signalled source port of this socket, host byte order */
	__u32 limit;    /* LATCH_NAT: packets during which any source may latch */
	__u8 rem_addr[16]; /* signalled remote address */
	/* Learnt (LATCH_LEARNT): the source, and how to send back to it: the
	 * interface it came in on and the frame's MACs swapped. */
	__u8 lat_addr[16];
	__u16 lat_port; /* host byte order */
	__u8 lat_mac[6]; /* the frame's source MAC: the next hop back */
	__u8 own_mac[6]; /* the frame's destination MAC: ours */
	__u16 pad;
	__u32 ifindex;
};

/* latch_value.mode */
#define LATCH_FIXED 1 /* accept the signalled remote only (no Latch, or LatchOff) */
#define LATCH_ADDR 2  /* latch to a source with the signalled address */
#define LATCH_NAT 3   /* also to any source among the first limit packets */
#define LATCH_ANY 4   /* nothing signalled: the first source is the remote */

/* latch_value.state */
#define LATCH_PENDING 0
#define LATCH_BUSY 1 /* one CPU is writing the learnt fields */
#define LATCH_LEARNT 2

/* Record of the latch_events ring buffer: a socket latched. */
struct latch_event {
	struct stream_key key;
	__u8 addr[16];
	__u16 port; /* host byte order */
	__u16 pad;
};

/* Per-CPU counters of one relay, indexed by relay_value.slot; bytes are UDP
 * payload bytes. */
struct relay_counters {
	__u64 relayed_packets;
	__u64 relayed_bytes;
	__u64 failed_packets; /* next hop unresolved or rewrite failed: passed to the socket */
};

/* Per-CPU counters of one fork, indexed by stream_value.slot. Bytes are
 * UDP payload bytes, as in dataplane.ForkStats. */
struct fork_counters {
	__u64 copied_packets;
	__u64 copied_bytes;
	__u64 muted_packets;
	__u64 muted_bytes;
	__u64 failed_packets; /* active, but no copy: next hop unresolved or clone failed */
};

/* Per-CPU count of fork program runs that reached the stream table and of
 * those that finished. After a map write, the engine reads every CPU's
 * enter and waits until leave catches up: then no run that could have read
 * the old value is still going, so a mute is final when SetForkMode
 * returns. Copies (marked) never count, so runs on one CPU never nest. */
struct inflight_count {
	__u64 enter;
	__u64 leave;
};

/* Indexes of the per-CPU global counters: what the programs passed on
 * untouched, and why. */
enum stat_reason {
	STAT_MISS = 0,       /* UDP without a stream entry */
	STAT_NOT_IP,         /* neither IPv4 nor IPv6 (includes VLAN-tagged frames) */
	STAT_NOT_UDP,        /* other protocols and IPv6 extension headers */
	STAT_SHORT,          /* truncated headers or UDP length */
	STAT_FRAGMENT,       /* IPv4 fragments */
	STAT_IP_OPTIONS,     /* IPv4 header with options */
	STAT_GSO,            /* GSO or GRO-coalesced skb */
	STAT_LOOPED,         /* a copy seen again (marked) */
	STAT_NOT_RTP,        /* a forked stream's datagram that is not RTP or RTCP */
	STAT_VLAN,           /* VLAN tag in skb metadata: attach to the VLAN device */
	STAT_FOREIGN,        /* from a source the endpoint does not accept */
	STAT_GSO_EGRESS,     /* not passed over: UDP GSO skbs from the local stack, looked up as several datagrams */
	STAT_RELAYED,        /* not passed on: relayed in the kernel (TCX_REDIRECT) */
	STAT_GUARD,          /* not passed on: dropped by the guard (foreign source) */
	STAT_LATCHED,        /* a socket latched in the kernel */
	STAT_CSUM_HELPERS,   /* rewrites of CHECKSUM_PARTIAL or _COMPLETE skbs: UDP checksum by the helpers */
	STAT_MAX,
};

#endif
