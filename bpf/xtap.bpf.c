/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/*
 * xtap.bpf.c: the whole data path, one object, shared maps.
 *
 *   xtap_transit  XDP on each transit interface: parse, classify, count; on a
 *                 match write a 4-byte mark into the metadata; always XDP_PASS.
 *   xtap_clone    tc ingress on each transit interface: a marked skb is cloned
 *                 to the interface's capture veth; the original goes on.
 *   xtap_capture  XDP on the capture veth's peer: re-derive the matches (the
 *                 metadata does not survive the veth hop), describe them in
 *                 metadata and redirect the copy into the AF_XDP socket.
 *
 * Where the kernel refuses bpf_xdp_adjust_meta to XDP programs, userspace
 * loads xtap_transit_tc (tc classifies and clones) and xtap_capture_in_frame
 * (the description goes in front of the copy) instead of those three.
 *
 * Nothing here ever drops or alters a transit packet.
 */
#include <linux/bpf.h>
#include <linux/pkt_cls.h>
#include <bpf/bpf_helpers.h>

#include "xtap_abi.h"
#include "maps.h"
#include "parse.h"
#include "classify.h"

/* Traffic to the appliance itself (DTCP/SSH, IKE, ESP): never copied. */
static __always_inline int is_own_traffic(struct xtap_pkt *p)
{
    __u32 zero = 0;
    struct xtap_control *ctl = bpf_map_lookup_elem(&control, &zero);
    if (!ctl || !READ_ONCE(ctl->excludes))
        return 0;
    struct xtap_exclude_key k = {.family = p->key.family, .proto = p->key.proto};
    __builtin_memcpy(k.addr, p->key.dst, 16);
    if (p->l4_known) {
        k.port = p->key.dport;
        if (bpf_map_lookup_elem(&excludes, &k))
            return 1;
    }
    k.port = 0;
    return bpf_map_lookup_elem(&excludes, &k) != 0;
}

/* One GCRA budget (struct xtap_copy_gate): is it at most burst ahead of now? */
static __always_inline int budget_has_room(__u64 *tat, __u64 now, __u64 burst)
{
    __u64 t = READ_ONCE(*tat);
    return t <= now || t - now <= burst;
}

/* Both budgets that are set (interval, ps_per_byte not 0) have room. */
static __always_inline int budgets_have_room(struct xtap_copy_gate *g, __u64 now, __u64 burst,
                                             __u64 interval, __u64 ps_per_byte)
{
    return (!interval || budget_has_room(&g->tat_ns, now, burst)) &&
           (!ps_per_byte || budget_has_room(&g->tat_bytes_ns, now, burst));
}

/* Take `cost` ns of budget. CPUs race here: the add is atomic, the restart
 * after an idle spell is not (a race there admits a copy or two more). */
static __always_inline void budget_take(__u64 *tat, __u64 now, __u64 cost)
{
    if (READ_ONCE(*tat) < now)
        WRITE_ONCE(*tat, now + cost);
    else
        __sync_fetch_and_add(tat, cost);
}

/* Does a criterion of effective priority XTAP_RESERVED_PRIORITY or less want
 * the copy? Asked only for a copy that needs the budget's reserve. */
static __always_inline int copy_is_important(const struct xtap_matches *m)
{
    __u32 n = m->count;
    for (__u32 i = 0; i < XTAP_MAX_MATCHES; i++) {
        if (i >= n)
            break;
        __u32 slot = m->refs[i].slot;
        struct xtap_slot *s = bpf_map_lookup_elem(&slots, &slot);
        if (s && s->priority <= XTAP_RESERVED_PRIORITY)
            return 1;
    }
    return 0;
}

/* The copy gate (struct xtap_copy_gate): may a copy of l3_len bytes for the
 * criteria in `m` be made now? XTAP_GATE_*, counted when refused. */
static __always_inline int copy_gate_verdict(const struct xtap_matches *m, __u32 l3_len)
{
    /* A later fragment whose first fragment was refused: refused alike. */
    if (m->first_gate == XTAP_GATE_NO_CONSUMER) {
        stat_inc(XTAP_STAT_GATE_NO_CONSUMER);
        return XTAP_GATE_NO_CONSUMER;
    }
    if (m->first_gate == XTAP_GATE_OVER_BUDGET) {
        stat_inc(XTAP_STAT_GATE_BUDGET);
        return XTAP_GATE_OVER_BUDGET;
    }
    __u32 zero = 0;
    struct xtap_copy_gate *g = bpf_map_lookup_elem(&copy_gate, &zero);
    if (!g)
        return XTAP_GATE_COPY;
    __u64 live_until = READ_ONCE(g->live_until_ns);
    __u64 interval = READ_ONCE(g->interval_ns);
    __u64 ps_per_byte = READ_ONCE(g->ps_per_byte);
    if (!live_until && !interval && !ps_per_byte)
        return XTAP_GATE_COPY;
    __u64 now = bpf_ktime_get_boot_ns();
    if (live_until && now >= live_until) {
        stat_inc(XTAP_STAT_GATE_NO_CONSUMER);
        return XTAP_GATE_NO_CONSUMER;
    }
    if (!interval && !ps_per_byte)
        return XTAP_GATE_COPY;
    /* The rest of an admitted datagram is charged even past the burst (the
     * budget pays it back before it admits more). The deadline above still
     * holds for it: nobody would read it. */
    if (m->first_gate != XTAP_GATE_COPY) {
        __u64 burst = READ_ONCE(g->burst_ns);
        /* Outside the reserve every copy is admitted alike; only a copy that
         * needs the reserve pays for the priority lookups. */
        __u64 shared = burst - burst / XTAP_RESERVE_DIVISOR;
        if (!budgets_have_room(g, now, shared, interval, ps_per_byte) &&
            !(copy_is_important(m) && budgets_have_room(g, now, burst, interval, ps_per_byte))) {
            stat_inc(XTAP_STAT_GATE_BUDGET);
            return XTAP_GATE_OVER_BUDGET;
        }
    }
    if (interval)
        budget_take(&g->tat_ns, now, interval);
    if (ps_per_byte)
        budget_take(&g->tat_bytes_ns, now, (__u64)l3_len * ps_per_byte / 1000);
    return XTAP_GATE_COPY;
}

/* What the gate refused, per criterion: LIST shows it in the criterion's
 * dropped counts. Only the refused packets pay for these lookups. */
static __always_inline void gate_charge(const struct xtap_matches *m, __u32 l3_len)
{
    __u32 n = m->count;
    for (__u32 i = 0; i < XTAP_MAX_MATCHES; i++) {
        if (i >= n)
            break;
        __u32 slot = m->refs[i].slot;
        struct xtap_slot_stats *st = bpf_map_lookup_elem(&slot_stats, &slot);
        if (st) {
            st->gated_packets += 1;
            st->gated_bytes += l3_len;
        }
    }
}

/* The gate refused a first fragment: its entry in the fragment table (the
 * classifier made it) says so, and why, to the fragments after it. */
static __always_inline void datagram_gated(struct xtap_pkt *p, __u16 verdict)
{
    struct xtap_frag_key fk;
    frag_key_of(p, &fk);
    struct xtap_frag_val *fv = bpf_map_lookup_elem(&frags, &fk);
    if (fv)
        fv->gate = verdict;
}

/*
 * The gate for a selected packet: 1 to copy it; 0 when refused, charged to its
 * criteria. A global (noinline) function: its frame is not the transit
 * program's, whose stack the classifier's call chain has nearly filled.
 */
__attribute__((noinline)) int copy_gate_decide(struct xtap_matches *m, struct xtap_pkt *p)
{
    if (!m || !p)
        return 1;
    int verdict = copy_gate_verdict(m, p->l3_len);
    if (verdict == XTAP_GATE_COPY)
        return 1;
    gate_charge(m, p->l3_len);
    if (p->frag == XTAP_FRAG_FIRST)
        datagram_gated(p, verdict);
    return 0;
}

/*
 * The transit decision, shared by both hooks: parse, classify, count, ask the
 * copy gate. 1 when the packet is to be copied. wire_len: the packet's whole
 * length when the hook sees only part of it in [data, end) (a tc skb's linear
 * area), else 0.
 */
static __always_inline int transit_select(void *ctx, void *data, void *end, __u32 ifindex,
                                          __u32 wire_len)
{
    struct xtap_pkt p = {};
    struct xtap_matches m;
    void *l3;

    if (parse_l3(data, end, &p, &l3) < 0) {
        stat_inc(XTAP_STAT_PARSE_SKIPPED);
        return 0;
    }
    p.key.ifindex = ifindex;
    if (wire_len)
        p.l3_len = wire_len - (__u32)(l3 - data);
    m.count = 0;
    m.truncated = 0;
    m.first_gate = XTAP_GATE_UNJUDGED;
    int pending = classify(ctx, &p, l3, end, &m, 1);
    if (pending < 0) {
        stat_inc(XTAP_STAT_PARSE_SKIPPED);
        return 0;
    }
    if (!m.count && !pending)
        return 0;

    if (m.count)
        stat_inc(XTAP_STAT_MATCHED);
    if (pending)
        stat_inc(XTAP_STAT_FRAG_PENDING);
    if (is_own_traffic(&p)) {
        stat_inc(XTAP_STAT_EXCLUDED);
        return 0;
    }
    if (m.truncated)
        stat_inc(XTAP_STAT_TRUNCATED);
    /* Checked here, before the XDP mark or the tc clone: a refused packet
     * costs the hook nothing more, and its criteria are known. */
    return copy_gate_decide(&m, &p);
}

/* Clone a selected skb to its interface's capture veth; the original goes on. */
static __always_inline void clone_to_capture(struct __sk_buff *skb, __u32 ifindex)
{
    struct xtap_transit_if *t = bpf_map_lookup_elem(&transit_ifs, &ifindex);
    if (!t) {
        stat_inc(XTAP_STAT_CLONE_FAILED);
        return;
    }
    if (bpf_clone_redirect(skb, t->capture_ifindex, 0) == 0)
        stat_inc(XTAP_STAT_CLONED);
    else
        stat_inc(XTAP_STAT_CLONE_FAILED);
}

SEC("xdp")
int xtap_transit(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;

    if (!transit_select(ctx, data, end, ctx->ingress_ifindex, 0))
        return XDP_PASS;
    if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct xtap_mark_meta)) < 0) {
        stat_inc(XTAP_STAT_MARK_FAILED);
        return XDP_PASS;
    }
    data = (void *)(long)ctx->data;
    struct xtap_mark_meta *mark = (void *)(long)ctx->data_meta;
    if ((void *)(mark + 1) > data) {
        stat_inc(XTAP_STAT_MARK_FAILED);
        return XDP_PASS;
    }
    mark->magic = XTAP_META_MAGIC;
    stat_inc(XTAP_STAT_MARKED);
    return XDP_PASS;
}

SEC("tc")
int xtap_clone(struct __sk_buff *skb)
{
    void *data = (void *)(long)skb->data;
    struct xtap_mark_meta *mark = (void *)(long)skb->data_meta;
    if ((void *)(mark + 1) > data || mark->magic != XTAP_META_MAGIC)
        return TC_ACT_OK;
    clone_to_capture(skb, skb->ifindex);
    return TC_ACT_OK;
}

/*
 * The tc hook (TransitHook::Tc in userspace), for kernels that refuse
 * bpf_xdp_adjust_meta to XDP programs, where XDP cannot tell tc which packets
 * it selected: tc ingress classifies and clones in one program, and no XDP
 * program runs on the transit interface. Same classifier, maps and counters.
 */
SEC("tc")
int xtap_transit_tc(struct __sk_buff *skb)
{
    __u32 ifindex = skb->ingress_ifindex;
    __u32 len = skb->len;
    void *data = (void *)(long)skb->data;
    void *end = (void *)(long)skb->data_end;
    __u64 linear = end - data;
    /* Headers outside the linear area would make the packet unparsable: make
     * them linear (the bytes stay as they are). */
    if (linear < len && linear < XTAP_TC_PULL_LEN) {
        bpf_skb_pull_data(skb, len < XTAP_TC_PULL_LEN ? len : XTAP_TC_PULL_LEN);
        data = (void *)(long)skb->data;
        end = (void *)(long)skb->data_end;
    }

    if (!transit_select(skb, data, end, ifindex, len))
        return TC_ACT_OK;
    stat_inc(XTAP_STAT_MARKED);
    clone_to_capture(skb, ifindex);
    return TC_ACT_OK;
}

/* The capture program's matches: off the stack, which the FIB lookup's
 * pointer and the larger key left too small (copies only, never the miss path). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct xtap_matches);
} capture_matches SEC(".maps");

/*
 * Room for the copy's description, ending where the copied packet starts: in
 * the XDP metadata area (bpf_xdp_adjust_meta), or with in_frame (a constant)
 * inside the frame (bpf_xdp_adjust_head: the copy is ours), for kernels that
 * refuse bpf_xdp_adjust_meta. NULL when the kernel gives no room.
 */
static __always_inline struct xtap_copy_meta *copy_meta_room(struct xdp_md *ctx, const int in_frame)
{
    const int delta = -(int)sizeof(struct xtap_copy_meta);
    if ((in_frame ? bpf_xdp_adjust_head(ctx, delta) : bpf_xdp_adjust_meta(ctx, delta)) < 0)
        return 0;
    struct xtap_copy_meta *meta = (void *)(long)(in_frame ? ctx->data : ctx->data_meta);
    void *limit = (void *)(long)(in_frame ? ctx->data_end : ctx->data);
    if ((void *)(meta + 1) > limit)
        return 0;
    return meta;
}

/*
 * The capture program's body; in_frame: where the description goes (above).
 */
static __always_inline int capture(struct xdp_md *ctx, const int in_frame)
{
    __u32 ifindex = ctx->ingress_ifindex;
    __u32 zero = 0;
    struct xtap_pkt p = {};

    stat_inc(XTAP_STAT_CAPTURE_PACKETS);
    struct xtap_capture_if *cif = bpf_map_lookup_elem(&capture_ifs, &ifindex);
    if (!cif)
        return XDP_DROP;
    __u32 xsk_index = cif->xsk_index;
    __u32 transit_ifindex = cif->transit_ifindex;
    struct xtap_matches *mp = bpf_map_lookup_elem(&capture_matches, &zero);
    if (!mp)
        return XDP_DROP;

    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    void *l3;
    if (parse_l3(data, end, &p, &l3) < 0) {
        stat_inc(XTAP_STAT_CAPTURE_NOMATCH);
        return XDP_DROP;
    }
    p.key.ifindex = transit_ifindex;
    mp->count = 0;
    mp->truncated = 0;
    mp->first_gate = XTAP_GATE_UNJUDGED;
    int pending = classify(ctx, &p, l3, end, mp, 0);
    if (pending <= 0 && !mp->count) {
        stat_inc(XTAP_STAT_CAPTURE_NOMATCH);
        return XDP_DROP;
    }

    struct xtap_copy_meta *meta = copy_meta_room(ctx, in_frame);
    if (!meta) {
        stat_inc(XTAP_STAT_CAPTURE_META_FAILED);
        return XDP_DROP;
    }
    meta->magic = XTAP_META_MAGIC;
    meta->transit_ifindex = transit_ifindex;
    meta->timestamp_ns = bpf_ktime_get_boot_ns();
    __u32 n = mp->count;
    meta->count = n;
    meta->flags = (mp->truncated ? XTAP_META_TRUNCATED : 0) | (pending > 0 ? XTAP_META_PENDING_FRAG : 0);
    meta->pad = 0;
#pragma unroll
    for (__u32 i = 0; i < XTAP_MAX_MATCHES; i++)
        meta->slots[i] = i < n ? mp->refs[i].slot : 0;

    /* One socket per capture queue, in consecutive slots from xsk_index (the
     * veth has exactly as many queues as userspace bound sockets). No socket
     * (controller gone): the copy is dropped here, counted; the original was
     * never involved. */
    long action = bpf_redirect_map(&xsks, xsk_index + ctx->rx_queue_index, XDP_DROP);
    stat_inc(action == XDP_REDIRECT ? XTAP_STAT_CAPTURE_REDIRECTED : XTAP_STAT_CAPTURE_NO_SOCKET);
    return action;
}

SEC("xdp")
int xtap_capture(struct xdp_md *ctx)
{
    return capture(ctx, 0);
}

SEC("xdp")
int xtap_capture_in_frame(struct xdp_md *ctx)
{
    return capture(ctx, 1);
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
