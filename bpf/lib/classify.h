/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* classify.h: prefilter + tuple-space search -> the criterion slots a packet
 * matches. Every matching criterion is collected (no early exit): two
 * agencies intercepting the same target both get the packet. */
#ifndef XTAP_CLASSIFY_H
#define XTAP_CLASSIFY_H

#include "maps.h"
#include "parse.h"

#ifndef READ_ONCE
#define READ_ONCE(x) (*(volatile typeof(x) *)&(x))
#endif
#ifndef WRITE_ONCE
#define WRITE_ONCE(x, v) (*(volatile typeof(x) *)&(x) = (v))
#endif

/* xtap_matches.first_gate of a packet that is not a later fragment whose
 * first fragment was seen: the gate judges it on its own. */
#define XTAP_GATE_UNJUDGED 0xffff

struct xtap_matches {
    __u32 count;
    __u16 truncated;
    __u16 first_gate; /* XTAP_GATE_* on this later fragment's first, or XTAP_GATE_UNJUDGED */
    struct xtap_ref refs[XTAP_MAX_MATCHES];
};

struct classify_ctx {
    struct xtap_pkt *pkt;
    struct xtap_matches *m;
    struct xtap_maskset want; /* masks the prefilter says could match */
    __u64 now;
    __u32 count; /* bump per-criterion counters (transit side only) */
    __u32 skipped_l4; /* a wanted mask needs ports this packet does not carry */
};

static __always_inline void stat_inc(__u32 idx)
{
    __u64 *v = bpf_map_lookup_elem(&stats, &idx);
    if (v)
        *v += 1;
}

/* Is the slot live for this generation? Returns its state or NULL. */
static __always_inline struct xtap_slot *classify_live_slot(struct xtap_ref *ref, __u64 now)
{
    __u32 slot_id = ref->slot;
    struct xtap_slot *s = bpf_map_lookup_elem(&slots, &slot_id);
    if (!s)
        return 0;
    __u32 state = READ_ONCE(s->state);
    if (!(state & XTAP_SLOT_ENABLED) || (state >> 1) != ref->gen)
        return 0;
    __u64 expiry = READ_ONCE(s->expiry_ns);
    if (expiry) {
        if (!now) /* the clock is read only for criteria with a deadline */
            now = bpf_ktime_get_boot_ns();
        if (now >= expiry)
            return 0;
    }
    return s;
}

/*
 * Add one rule reference to the matches if its criterion is live, counting
 * the packet for it once. A global (noinline) function: the verifier checks
 * it once, not once per call site and loop iteration, which keeps the mask
 * loop within the verifier's budget. Arguments are scalars plus the matches
 * buffer because a global function cannot follow pointers stored in memory.
 */
#define XTAP_ADD_COUNT (1ULL << 63)
__attribute__((noinline)) int classify_add(struct xtap_matches *m, __u32 slot_id, __u32 gen,
                                           __u64 now, __u64 opts)
{
    if (!m)
        return 0;
    struct xtap_ref ref = {.slot = slot_id, .gen = gen};
    struct xtap_slot *s = classify_live_slot(&ref, now);
    if (!s)
        return 0;
    __u32 n = m->count;
    for (__u32 i = 0; i < XTAP_MAX_MATCHES; i++) {
        if (i >= n)
            break;
        if (m->refs[i].slot == slot_id)
            return 0; /* a second filter of the same criterion */
    }
    if (opts & XTAP_ADD_COUNT) {
        struct xtap_slot_stats *st = bpf_map_lookup_elem(&slot_stats, &slot_id);
        if (st) {
            st->packets += 1;
            st->bytes += (__u32)opts;
        }
    }
    if (n >= XTAP_MAX_MATCHES) {
        m->truncated = 1;
        return 0;
    }
    m->refs[n & (XTAP_MAX_MATCHES - 1)] = ref;
    m->count = n + 1;
    return 0;
}

static __always_inline void classify_ref(struct classify_ctx *c, struct xtap_ref *ref)
{
    __u64 opts = c->pkt->l3_len;
    if (c->count)
        opts |= XTAP_ADD_COUNT;
    classify_add(c->m, ref->slot, ref->gen, c->now, opts);
}

static long classify_mask_cb(__u32 i, void *data)
{
    struct classify_ctx *c = data;
    struct xtap_pkt *p = c->pkt;
    struct xtap_mask *mk = bpf_map_lookup_elem(&masks, &i);
    if (!mk)
        return 1;
    if (!(c->want.bits[(i / 64) & 3] & (1ULL << (i % 64))))
        return 0;
    if (!READ_ONCE(mk->active) || mk->family != p->key.family)
        return 0;
    if (mk->needs_l4 && !p->l4_known) {
        c->skipped_l4 = 1;
        return 0;
    }

    struct xtap_key k;
    k.mask_id = i;
    k.family = p->key.family;
    k.proto = p->key.proto & mk->proto_mask;
    k.pad = 0;
    k.ifindex = p->key.ifindex & mk->ifindex_mask;
    k.oifindex = p->key.oifindex & mk->oifindex_mask;
    k.sport = p->key.sport & mk->sport_mask;
    k.dport = p->key.dport & mk->dport_mask;
#pragma unroll
    for (int b = 0; b < 16; b += 4) {
        *(__u32 *)&k.src[b] = *(__u32 *)&p->key.src[b] & *(__u32 *)&mk->src_mask[b];
        *(__u32 *)&k.dst[b] = *(__u32 *)&p->key.dst[b] & *(__u32 *)&mk->dst_mask[b];
    }

    struct xtap_rule *r = bpf_map_lookup_elem(&rules, &k);
    if (!r)
        return 0;
    __u32 n = r->count;
    for (__u32 j = 0; j < XTAP_MAX_REFS_PER_RULE; j++) {
        if (j >= n)
            break;
        struct xtap_ref ref = r->refs[j];
        classify_ref(c, &ref);
    }
    return 0;
}

static __always_inline void maskset_or(struct xtap_maskset *acc, struct xtap_maskset *v)
{
    acc->bits[0] |= v->bits[0];
    acc->bits[1] |= v->bits[1];
    acc->bits[2] |= v->bits[2];
    acc->bits[3] |= v->bits[3];
}

static __always_inline void maskset_or_row(struct xtap_maskset *acc, __u32 row)
{
    struct xtap_maskset *v = bpf_map_lookup_elem(&masksets, &row);
    if (v)
        maskset_or(acc, v);
}

/* Leading `len` bits of a 32-bit network-order word. */
static __always_inline __u32 prefix_word(__u32 word_be, int len)
{
    if (len <= 0)
        return 0;
    if (len >= 32)
        return word_be;
    return word_be & bpf_htonl(~0U << (32 - len));
}

/* Leading `len` bits of a 64-bit network-order double word. */
static __always_inline __u64 prefix_dword(__u64 dword_be, int len)
{
    if (len <= 0)
        return 0;
    if (len >= 64)
        return dword_be;
    return dword_be & bpf_cpu_to_be64(~0ULL << (64 - len));
}

/* Stage zero: 0 when the anchor bitmap proves the anchor absent. */
static __always_inline int anchor_maybe(__u64 masked, __u8 len, __u8 family, __u32 shift)
{
    if (!shift)
        return 1;
    __u64 bit = xtap_anchor_hash(masked, len, family) >> (shift & 63);
    __u32 word = bit >> 6;
    __u64 *w = bpf_map_lookup_elem(&anchor_bits, &word);
    if (!w)
        return 1;
    return (*w >> (bit & 63)) & 1;
}

/* One hashed anchor length, one address: the key is shared by every probe
 * (one stack slot, not one per unrolled call). */
static __always_inline void anchor4_probe(struct xtap_anchor4 *k, __u32 addr_be, __u8 len,
                                          __u32 shift, struct xtap_maskset *acc)
{
    __u32 masked = prefix_word(addr_be, len);
    if (!anchor_maybe(masked, len, XTAP_FAMILY_IPV4, shift))
        return;
    k->len = len;
    *(__u32 *)k->addr = masked;
    struct xtap_maskset *v = bpf_map_lookup_elem(&anchors4, k);
    if (v)
        maskset_or(acc, v);
}

static __always_inline void anchor6_probe(struct xtap_anchor6 *k, __u8 *addr, __u8 len,
                                          __u32 shift, struct xtap_maskset *acc)
{
    if (len > 64) /* never hashed (filed under the /64); kept correct anyway */
        shift = 0;
    /* The first 64 bits in memory order (little-endian BPF), from two aligned words. */
    __u64 first = (__u64) * (__u32 *)&addr[4] << 32 | *(__u32 *)&addr[0];
    __u64 hi = prefix_dword(first, len);
    if (!anchor_maybe(hi, len, XTAP_FAMILY_IPV6, shift))
        return;
    k->len = len;
    *(__u32 *)&k->addr[0] = (__u32)hi;
    *(__u32 *)&k->addr[4] = (__u32)(hi >> 32);
    *(__u32 *)&k->addr[8] = prefix_word(*(__u32 *)&addr[8], len - 64);
    *(__u32 *)&k->addr[12] = prefix_word(*(__u32 *)&addr[12], len - 96);
    struct xtap_maskset *v = bpf_map_lookup_elem(&anchors6, k);
    if (v)
        maskset_or(acc, v);
}

/* Fallback stage: is the source or the destination inside a trie prefix? */
#define XTAP_LPM_EITHER(map, key_type, alen, p)                                                    \
    ({                                                                                             \
        key_type l_ = {.prefixlen = (alen) * 8};                                                   \
        __builtin_memcpy(l_.addr, (p)->key.src, (alen));                                           \
        int hit_ = bpf_map_lookup_elem(&(map), &l_) != 0;                                          \
        if (!hit_) {                                                                               \
            __builtin_memcpy(l_.addr, (p)->key.dst, (alen));                                       \
            hit_ = bpf_map_lookup_elem(&(map), &l_) != 0;                                          \
        }                                                                                          \
        hit_;                                                                                      \
    })

/*
 * The masks this packet could match, from its addresses only: hashed anchors
 * (behind the bitmap), the LPM fallback, the unanchored (wide) masks. Empty
 * for a packet that is no target.
 */
static __always_inline void prefilter(struct xtap_pkt *p, struct xtap_control *ctl,
                                      struct xtap_maskset *acc)
{
    const int v4 = p->key.family == XTAP_FAMILY_IPV4;
    const int fi = v4 ? 0 : 1;
    __u32 lens = READ_ONCE(ctl->anchor_lens[fi]);
    __u32 shift = READ_ONCE(ctl->anchor_hash_shift);
    if (v4) {
        struct xtap_anchor4 k = {};
#pragma unroll
        for (int i = 0; i < XTAP_ANCHOR_LENS; i++) {
            __u8 len = (lens >> (8 * i)) & 0xff;
            if (len == XTAP_ANCHOR_LEN_NONE)
                break;
            anchor4_probe(&k, *(__u32 *)p->key.src, len, shift, acc);
            anchor4_probe(&k, *(__u32 *)p->key.dst, len, shift, acc);
        }
    } else {
        struct xtap_anchor6 k = {};
#pragma unroll
        for (int i = 0; i < XTAP_ANCHOR_LENS; i++) {
            __u8 len = (lens >> (8 * i)) & 0xff;
            if (len == XTAP_ANCHOR_LEN_NONE)
                break;
            anchor6_probe(&k, p->key.src, len, shift, acc);
            anchor6_probe(&k, p->key.dst, len, shift, acc);
        }
    }
    if (READ_ONCE(ctl->fallback[fi])) {
        int hit = v4 ? XTAP_LPM_EITHER(prefix4, struct xtap_lpm4, 4, p)
                     : XTAP_LPM_EITHER(prefix6, struct xtap_lpm6, 16, p);
        if (hit)
            maskset_or_row(acc, v4 ? XTAP_MASKSET_FALLBACK4 : XTAP_MASKSET_FALLBACK6);
    }
    if (READ_ONCE(ctl->wide[fi]))
        maskset_or_row(acc, v4 ? XTAP_MASKSET_WIDE4 : XTAP_MASKSET_WIDE6);
}

/*
 * The interface the kernel would forward the packet out of: a normal FIB
 * lookup (not BPF_FIB_LOOKUP_DIRECT, so policy rules and VRFs apply) as if it
 * arrived on its transit interface. 0 when it is not forwarded (local, no
 * route, blackhole, forwarding off). NO_NEIGH still names the egress.
 */
static __always_inline __u32 egress_ifindex(void *ctx, struct xtap_pkt *p)
{
    __u32 zero = 0;
    struct bpf_fib_lookup *f = bpf_map_lookup_elem(&fib_scratch, &zero);
    if (!f)
        return 0;
    __builtin_memset(f, 0, sizeof(*f));
    f->ifindex = p->key.ifindex;
    f->l4_protocol = p->key.proto;
    if (p->l4_known && (p->key.proto == 6 || p->key.proto == 17 || p->key.proto == 132)) {
        f->sport = bpf_htons(p->key.sport);
        f->dport = bpf_htons(p->key.dport);
    }
    if (p->key.family == XTAP_FAMILY_IPV4) {
        f->family = 2; /* AF_INET */
        f->ipv4_src = *(__u32 *)p->key.src;
        f->ipv4_dst = *(__u32 *)p->key.dst;
    } else {
        f->family = 10; /* AF_INET6 */
        __builtin_memcpy(f->ipv6_src, p->key.src, 16);
        __builtin_memcpy(f->ipv6_dst, p->key.dst, 16);
    }
    long rc = bpf_fib_lookup(ctx, f, sizeof(*f), 0);
    if (rc == BPF_FIB_LKUP_RET_SUCCESS || rc == BPF_FIB_LKUP_RET_NO_NEIGH)
        return f->ifindex;
    return 0;
}

static __always_inline void frag_key_of(struct xtap_pkt *p, struct xtap_frag_key *fk)
{
    fk->family = p->key.family;
    fk->proto = p->key.proto;
    fk->pad = 0;
    fk->id = p->frag_id;
    __builtin_memcpy(fk->src, p->key.src, 16);
    __builtin_memcpy(fk->dst, p->key.dst, 16);
}

/*
 * Collect every live criterion that selects the packet into *m. ctx is the
 * program's context (XDP or tc), for the FIB lookup. p holds what parse_l3
 * read; l3/end let this finish parsing once the prefilter says the packet may
 * be a target (a non-target is never parsed past its addresses).
 * count != 0 on the transit side: bump per-criterion counters and remember
 * first fragments. The capture side re-derives with count == 0.
 * Returns -1 (malformed past L3), 0, or 1 (a pending later fragment, below).
 */
static __always_inline int classify(void *ctx, struct xtap_pkt *p, void *l3, void *end,
                                    struct xtap_matches *m, int count)
{
    int tracked = 0; /* a later fragment whose first fragment was seen */
    __u32 zero = 0;
    struct xtap_control *ctl = bpf_map_lookup_elem(&control, &zero);
    if (!ctl || !READ_ONCE(ctl->enabled))
        return 0;

    struct classify_ctx c = {
        .pkt = p,
        .m = m,
    };

    /*
     * The prefilter names the masks that could match; none: not a target.
     * It looks at addresses only, so it also covers later fragments: their
     * first fragment, with the same addresses, could only have matched
     * through an anchor that is still there while its criterion is live.
     */
    prefilter(p, ctl, &c.want);
    if (!(c.want.bits[0] | c.want.bits[1] | c.want.bits[2] | c.want.bits[3]))
        return 0;
    if (parse_rest(l3, end, p) < 0)
        return -1;
    if (count)
        stat_inc(XTAP_STAT_PREFILTER_HIT);
    c.count = count;
    /* Past the prefilter only, and only while some mask compares it. */
    if (READ_ONCE(ctl->egress))
        p->key.oifindex = egress_ifindex(ctx, p);

    if (p->frag == XTAP_FRAG_LATER) {
        c.now = bpf_ktime_get_boot_ns();
        struct xtap_frag_key fk;
        frag_key_of(p, &fk);
        struct xtap_frag_val *fv = bpf_map_lookup_elem(&frags, &fk);
        if (fv && c.now - fv->time_ns < XTAP_FRAG_WINDOW_NS) {
            tracked = 1;
            __u32 n = fv->count;
            for (__u32 j = 0; j < XTAP_MAX_MATCHES; j++) {
                if (j >= n)
                    break;
                struct xtap_ref ref = fv->refs[j];
                classify_ref(&c, &ref);
            }
            if (fv->flags & XTAP_META_TRUNCATED)
                m->truncated = 1;
            m->first_gate = fv->gate;
            if (count)
                stat_inc(XTAP_STAT_FRAG_MATCHED);
        }
    }

    __u32 nmasks = READ_ONCE(ctl->mask_count);
    if (nmasks > XTAP_MAX_MASKS)
        nmasks = XTAP_MAX_MASKS;
    bpf_loop(nmasks, classify_mask_cb, &c, 0);

    if (count && p->frag == XTAP_FRAG_FIRST && m->count) {
        struct xtap_frag_val *fv = bpf_map_lookup_elem(&frag_scratch, &zero);
        if (fv) {
            struct xtap_frag_key fk;
            frag_key_of(p, &fk);
            fv->time_ns = bpf_ktime_get_boot_ns();
            fv->count = m->count;
            fv->flags = m->truncated ? XTAP_META_TRUNCATED : 0;
            fv->gate = XTAP_GATE_COPY; /* until the gate says otherwise */
            __builtin_memcpy(fv->refs, m->refs, sizeof(fv->refs));
            bpf_map_update_elem(&frags, &fk, fv, BPF_ANY);
            stat_inc(XTAP_STAT_FRAG_TRACKED);
        }
    }
    /*
     * A later fragment that came before its first: its ports are unknown, and
     * a port-scoped criterion on its addresses may still want it. It is
     * copied as pending; userspace holds it until the first fragment says
     * which criteria it belongs to (or drops it after a short window).
     */
    return p->frag == XTAP_FRAG_LATER && !tracked && c.skipped_l4;
}

#endif /* XTAP_CLASSIFY_H */
