/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xtap_abi.h: the only header the BPF programs and the C++ controller share.
 *
 * Every struct here is a map key, a map value or the metadata a capture
 * program hands to AF_XDP. Fixed-width types only, explicit padding, and a
 * size assertion after each struct so a change on one side breaks the build
 * of the other. Fields ending in _be are in network byte order; everything
 * else is host order.
 */
#ifndef XTAP_ABI_H
#define XTAP_ABI_H

#include <linux/types.h>

#define XTAP_ABI_VERSION 4

/* Limits. The map capacities are defaults: the loader resizes maps before load. */
#define XTAP_MAX_MASKS 256         /* distinct tuple-space masks (mask_id is a u8) */
#define XTAP_MAX_REFS_PER_RULE 8   /* criteria sharing one masked key */
#define XTAP_MAX_MATCHES 16        /* criteria reported for one packet */
#define XTAP_DEFAULT_RULES 262144  /* hash entries (one filter is >= 1 entry) */
#define XTAP_DEFAULT_SLOTS 131072  /* criteria published at once */
#define XTAP_DEFAULT_PREFIXES 262144
#define XTAP_DEFAULT_FRAGS 16384
#define XTAP_DEFAULT_IFACES 256
#define XTAP_MAX_VLAN_DEPTH 2
#define XTAP_MAX_IPV6_EXT 8
#define XTAP_TC_PULL_LEN 512 /* tc hook: bytes made linear before parsing */
#define XTAP_FRAG_WINDOW_NS (30ULL * 1000 * 1000 * 1000)

#define XTAP_FAMILY_IPV4 4
#define XTAP_FAMILY_IPV6 6

#define XTAP_META_MAGIC 0x78746170U /* "xtap" */
#define XTAP_META_TRUNCATED 1U       /* more criteria matched than XTAP_MAX_MATCHES */
#define XTAP_META_PENDING_FRAG 2U    /* later fragment before its first: hold it, see classify.h */

#if defined(__cplusplus)
#define XTAP_ASSERT_SIZE(type, size) static_assert(sizeof(type) == (size), #type " size")
#else
#define XTAP_ASSERT_SIZE(type, size) _Static_assert(sizeof(type) == (size), #type " size")
#endif

/*
 * Classification key: built from a packet, then ANDed with a mask and looked
 * up in the rules hash. For ICMP/ICMPv6, sport carries the type and dport the
 * code (as in OVS), so one key shape serves every protocol.
 */
struct xtap_key {
    __u8 mask_id;
    __u8 family; /* XTAP_FAMILY_* */
    __u8 proto;
    __u8 pad;
    __u32 ifindex; /* ingress (transit) interface */
    __u16 sport;   /* host order; ICMP type */
    __u16 dport;   /* host order; ICMP code */
    __u8 src[16];  /* IPv4 in the first 4 bytes, rest zero */
    __u8 dst[16];
    /* Egress interface from a FIB lookup, 0 when unrouted; looked up only
     * when xtap_control.egress says a mask compares it, else left 0. */
    __u32 oifindex;
};
XTAP_ASSERT_SIZE(struct xtap_key, 48);

/* One tuple-space mask: which key bits a group of rules looks at. */
struct xtap_mask {
    __u32 active; /* 0: row unused, readers skip it */
    __u8 family;
    __u8 needs_l4; /* a port/ICMP constraint: skip packets with no L4 header */
    __u8 proto_mask;
    __u8 pad;
    __u32 ifindex_mask;
    __u16 sport_mask;
    __u16 dport_mask;
    __u8 src_mask[16];
    __u8 dst_mask[16];
    __u32 oifindex_mask;
    __u32 pad2; /* mmapped array rows are 8-byte strided */
};
XTAP_ASSERT_SIZE(struct xtap_mask, 56);

/* A criterion slot and the generation its rules were written for. */
struct xtap_ref {
    __u32 slot;
    __u32 gen;
};
XTAP_ASSERT_SIZE(struct xtap_ref, 8);

struct xtap_rule {
    __u32 count;
    __u32 pad;
    struct xtap_ref refs[XTAP_MAX_REFS_PER_RULE];
};
XTAP_ASSERT_SIZE(struct xtap_rule, 72);

/*
 * Per-criterion state, in an mmapable array: userspace flips `state` with a
 * single 4-byte store, which is what makes a criterion appear (or vanish) at
 * one instant.  state = generation << 1 | enabled.
 */
#define XTAP_SLOT_ENABLED 1U
struct xtap_slot {
    __u32 state;
    __u16 priority; /* effective; <= XTAP_RESERVED_PRIORITY may use the copy budget's reserve */
    __u16 flags;
    __u64 expiry_ns; /* CLOCK_BOOTTIME deadline; 0 = none */
};
XTAP_ASSERT_SIZE(struct xtap_slot, 16);

/* Per-criterion per-CPU counters. */
struct xtap_slot_stats {
    __u64 packets;
    __u64 bytes;
    /* Matched (and counted above) but not copied: the copy gate refused. */
    __u64 gated_packets;
    __u64 gated_bytes;
};
XTAP_ASSERT_SIZE(struct xtap_slot_stats, 32);

/*
 * Per-criterion counts that only userspace writes (it is their one writer, so
 * no per-CPU split): later fragments the classifier could not attribute when
 * they passed (they came before their first fragment) and that userspace
 * released to the criterion once the first fragment named it. A criterion's
 * counters are the sum of its slot_stats and this.
 */
struct xtap_slot_released {
    __u64 packets;
    __u64 bytes;
};
XTAP_ASSERT_SIZE(struct xtap_slot_released, 16);

/*
 * Prefilter, first stage: per family, up to XTAP_ANCHOR_LENS prefix lengths
 * whose anchors live in an exact-match hash (a /32 or /128 target is one hash
 * lookup per address, whatever the number of targets). Anchors of other
 * lengths go to an LPM trie, scanned only when it holds any.
 */
#define XTAP_ANCHOR_LENS 4
#define XTAP_ANCHOR_LEN_NONE 0xff
#define XTAP_FAMILY_INDEX(f) ((f) == XTAP_FAMILY_IPV4 ? 0 : 1)

/* Global knobs, in an mmapable one-row array written with single stores. */
struct xtap_control {
    __u32 mask_count;     /* rows [0, mask_count) of `masks` are scanned */
    __u32 enabled;        /* 0: classify nothing (global kill switch) */
    __u32 excludes;       /* entries in `excludes`: 0 skips the own-traffic check */
    __u32 anchor_lens[2]; /* per family: hashed anchor lengths, one per byte, 0xff = none */
    __u32 fallback[2];    /* per family: the LPM trie holds anchors */
    __u32 wide[2];        /* per family: filters with no address anchor exist */
    __u32 anchor_hash_shift; /* 64 - log2(bits in `anchor_bits`); 0: no bitmap, probe the hash */
    __u32 egress;            /* a published mask compares oifindex: do the FIB lookup */
};
XTAP_ASSERT_SIZE(struct xtap_control, 44);

/*
 * The copy gate (map `copy_gate`, one row), checked once a packet is selected,
 * before the XDP mark or the tc clone. A copy costs the router a clone, a veth
 * hop and two copies into AF_XDP whether or not anyone reads it: none is made
 * once the copy threads stopped consuming (a hung or killed controller), nor
 * beyond the copy budget the operator set, in copies and in bytes per second
 * (one GCRA each: a copy takes interval_ns, and its bytes times ps_per_byte,
 * of budget time; it is refused while either budget is more than burst_ns
 * ahead of the clock). Priority is honoured as in the per-Cdest rate limit
 * (userspace/delivery/RateLimit.h): the last quarter of the burst is kept for
 * copies that a criterion of effective Priority 1 or less (the DTCP default)
 * selected; a copy only less important criteria selected must leave it. So
 * under overload the less important copies go first. Userspace writes the
 * first four fields with single stores; tc moves the tat_* fields (userspace
 * zeroes them with a new budget), on a cache line of their own because every
 * admitted copy moves them.
 */
#define XTAP_RESERVED_PRIORITY 1 /* at or below: may use the whole burst */
#define XTAP_RESERVE_DIVISOR 4   /* the reserve: burst / 4 */
struct xtap_copy_gate {
    __u64 live_until_ns; /* CLOCK_BOOTTIME: no copy from then on; 0: no deadline */
    __u64 interval_ns;   /* budget time of one copy (1e9 / copies/s); 0: no copy budget */
    __u64 ps_per_byte;   /* budget time of one byte, in ps (8e12 / bits/s); 0: no byte budget */
    __u64 burst_ns;      /* how far either budget may run ahead of the clock */
    __u64 pad0[4];
    __u64 tat_ns;       /* when the copy budget is next free ("theoretical arrival time") */
    __u64 tat_bytes_ns; /* the same for the byte budget */
    __u64 pad1[6];
};
XTAP_ASSERT_SIZE(struct xtap_copy_gate, 128);

/*
 * Prefilter, stage zero: a one-bit-per-anchor bitmap (`anchor_bits`, an array
 * of u64 words) in front of the anchor hashes. A clear bit proves the anchor
 * absent, so a packet that is not a target costs a multiply and an inlined
 * array load per probe, not a hash-map lookup. Userspace sets an anchor's bit
 * before inserting the anchor and clears it (when no other anchor shares it)
 * after deleting it: the bitmap is always a superset. Both sides hash the
 * masked anchor exactly like this (multiplicative hashing, top bits).
 * IPv6 anchors are at most /64 (longer ones are filed under their /64).
 */
#define XTAP_ANCHOR_HASH_MUL 0x9E3779B97F4A7C15ULL
#define XTAP_ANCHOR_HASH_LEN 0xC2B2AE3D27D4EB4FULL
static inline __u64 xtap_anchor_hash(__u64 masked, __u8 len, __u8 family)
{
    return ((masked ^ ((__u64)len * XTAP_ANCHOR_HASH_LEN)) + family) * XTAP_ANCHOR_HASH_MUL;
}

/* A set of mask rows: which tuple-space masks a packet must look up. */
struct xtap_maskset {
    __u64 bits[XTAP_MAX_MASKS / 64];
};
XTAP_ASSERT_SIZE(struct xtap_maskset, 32);

/* Rows of the `masksets` array. */
enum xtap_maskset_row {
    XTAP_MASKSET_WIDE4 = 0, /* masks of unanchored IPv4 filters: every IPv4 packet */
    XTAP_MASKSET_WIDE6,
    XTAP_MASKSET_FALLBACK4, /* masks of filters anchored in the LPM trie */
    XTAP_MASKSET_FALLBACK6,
    XTAP_MASKSET_ROWS
};

/* Anchor hash keys: a prefix, its host bits zero. Value: struct xtap_maskset. */
struct xtap_anchor4 {
    __u8 len;
    __u8 pad[3];
    __u8 addr[4];
};
XTAP_ASSERT_SIZE(struct xtap_anchor4, 8);

struct xtap_anchor6 {
    __u8 len;
    __u8 pad[3];
    __u8 addr[16];
};
XTAP_ASSERT_SIZE(struct xtap_anchor6, 20);

/* Prefilter, second stage: anchors whose length is not hashed. */
struct xtap_lpm4 {
    __u32 prefixlen;
    __u8 addr[4];
};
XTAP_ASSERT_SIZE(struct xtap_lpm4, 8);

struct xtap_lpm6 {
    __u32 prefixlen;
    __u8 addr[16];
};
XTAP_ASSERT_SIZE(struct xtap_lpm6, 20);

/* Fragment tracking: the first fragment's matches, for the fragments after it. */
struct xtap_frag_key {
    __u8 family;
    __u8 proto;
    __u16 pad;
    __u32 id; /* IPv4: 16-bit id; IPv6: 32-bit identification */
    __u8 src[16];
    __u8 dst[16];
};
XTAP_ASSERT_SIZE(struct xtap_frag_key, 40);

/* The copy gate's verdict on a selected packet. A first fragment's is kept
 * in its fragment entry and holds for the rest of its datagram, so the MD
 * gets a datagram whole or not at all. */
#define XTAP_GATE_COPY 0
#define XTAP_GATE_NO_CONSUMER 1 /* no live copy thread */
#define XTAP_GATE_OVER_BUDGET 2

struct xtap_frag_val {
    __u64 time_ns;
    __u32 count;
    __u16 flags; /* XTAP_META_TRUNCATED: the first fragment matched more than it holds */
    __u16 gate;  /* XTAP_GATE_*: the copy gate's verdict on the first fragment */
    struct xtap_ref refs[XTAP_MAX_MATCHES];
};
XTAP_ASSERT_SIZE(struct xtap_frag_val, 144);

/*
 * Traffic of the appliance itself (its SSH/DTCP listener, IKE/ESP peers):
 * never copied. Keyed by the appliance's own address and port as the packet's
 * destination (what reaches a transit ingress is traffic *to* the appliance;
 * what it sends leaves by egress, which xtap never classifies). port 0 covers
 * every port (ESP, proto 50). Looked up only after a packet matched.
 */
struct xtap_exclude_key {
    __u8 family;
    __u8 proto;
    __u16 port; /* host order, 0 = any */
    __u8 addr[16];
};
XTAP_ASSERT_SIZE(struct xtap_exclude_key, 20);

/* Transit interface -> its capture veth (the tc program clones there). */
struct xtap_transit_if {
    __u32 capture_ifindex; /* cap0: egress side of the capture pair */
    __u32 flags;
};
XTAP_ASSERT_SIZE(struct xtap_transit_if, 8);

/* Capture veth peer (cap1) -> the transit interface it stands for. */
struct xtap_capture_if {
    __u32 transit_ifindex;
    __u32 xsk_index; /* XSKMAP slot of capture queue 0; queue q uses xsk_index + q */
};
XTAP_ASSERT_SIZE(struct xtap_capture_if, 8);

/*
 * Metadata in front of every frame the capture program redirects to AF_XDP.
 * Copy mode copies data_meta..data_end into the UMEM frame, so userspace reads
 * it at (frame data - sizeof(struct xtap_copy_meta)). xtap_capture_in_frame
 * (no XDP metadata on this kernel) puts it at the frame's start instead, with
 * the copied packet after it.
 */
struct xtap_copy_meta {
    __u32 magic;
    __u32 transit_ifindex;
    __u64 timestamp_ns; /* CLOCK_BOOTTIME when the capture program ran */
    __u16 count;
    __u16 flags;
    __u32 pad;
    __u32 slots[XTAP_MAX_MATCHES];
};
XTAP_ASSERT_SIZE(struct xtap_copy_meta, 88);

/* Transit-side mark: the only thing XDP tells the tc clone program. */
struct xtap_mark_meta {
    __u32 magic;
};
XTAP_ASSERT_SIZE(struct xtap_mark_meta, 4);

/* Global per-CPU counters, indexed by enum xtap_stat. */
enum xtap_stat {
    /* No per-packet "seen" counter: the interface's own counters give it, and
     * the miss path stays free of map writes. */
    XTAP_STAT_PARSE_SKIPPED = 0,   /* not IPv4/IPv6 or malformed: passed, unclassified */
    XTAP_STAT_PREFILTER_HIT,       /* an address is a target: masks scanned */
    XTAP_STAT_MATCHED,             /* at least one criterion matched */
    XTAP_STAT_EXCLUDED,            /* matched but the appliance's own traffic */
    XTAP_STAT_MARKED,              /* metadata mark written */
    XTAP_STAT_MARK_FAILED,         /* no headroom for the mark */
    XTAP_STAT_CLONED,              /* tc cloned to the capture veth */
    XTAP_STAT_CLONE_FAILED,
    XTAP_STAT_CAPTURE_PACKETS,     /* seen by the capture XDP program */
    XTAP_STAT_CAPTURE_NOMATCH,     /* re-derivation found nothing (withdrawn in between) */
    XTAP_STAT_CAPTURE_REDIRECTED,  /* handed to the XSKMAP */
    XTAP_STAT_CAPTURE_META_FAILED,
    XTAP_STAT_FRAG_TRACKED,        /* first fragments remembered */
    XTAP_STAT_FRAG_MATCHED,        /* later fragments matched through the table */
    XTAP_STAT_TRUNCATED,           /* more than XTAP_MAX_MATCHES criteria matched */
    XTAP_STAT_FRAG_PENDING,        /* later fragments copied before their first (held in userspace) */
    XTAP_STAT_CAPTURE_NO_SOCKET,   /* copy dropped: no AF_XDP socket (controller not running) */
    XTAP_STAT_GATE_NO_CONSUMER,    /* selected, not copied: the copy threads stopped moving the gate */
    XTAP_STAT_GATE_BUDGET,         /* selected, not copied: over the copy budget */
    XTAP_STAT_MAX
};

#endif /* XTAP_ABI_H */
