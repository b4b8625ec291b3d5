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

SEC("xdp")
int xtap_transit(struct xdp_md *ctx)
{
    void *data = (void *)(long)ctx->data;
    void *end = (void *)(long)ctx->data_end;
    struct xtap_pkt p = {};
    struct xtap_matches m;
    void *l3;

    if (parse_l3(data, end, &p, &l3) < 0) {
        stat_inc(XTAP_STAT_PARSE_SKIPPED);
        return XDP_PASS;
    }
    p.key.ifindex = ctx->ingress_ifindex;
    m.count = 0;
    m.truncated = 0;
    int pending = classify(ctx, &p, l3, end, &m, 1);
    if (pending < 0) {
        stat_inc(XTAP_STAT_PARSE_SKIPPED);
        return XDP_PASS;
    }
    if (!m.count && !pending)
        return XDP_PASS;

    if (m.count)
        stat_inc(XTAP_STAT_MATCHED);
    if (pending)
        stat_inc(XTAP_STAT_FRAG_PENDING);
    if (is_own_traffic(&p)) {
        stat_inc(XTAP_STAT_EXCLUDED);
        return XDP_PASS;
    }
    if (m.truncated)
        stat_inc(XTAP_STAT_TRUNCATED);
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

    __u32 ifindex = skb->ifindex;
    struct xtap_transit_if *t = bpf_map_lookup_elem(&transit_ifs, &ifindex);
    if (!t) {
        stat_inc(XTAP_STAT_CLONE_FAILED);
        return TC_ACT_OK;
    }
    if (bpf_clone_redirect(skb, t->capture_ifindex, 0) == 0)
        stat_inc(XTAP_STAT_CLONED);
    else
        stat_inc(XTAP_STAT_CLONE_FAILED);
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

SEC("xdp")
int xtap_capture(struct xdp_md *ctx)
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
    int pending = classify(ctx, &p, l3, end, mp, 0);
    if (pending <= 0 && !mp->count) {
        stat_inc(XTAP_STAT_CAPTURE_NOMATCH);
        return XDP_DROP;
    }

    if (bpf_xdp_adjust_meta(ctx, -(int)sizeof(struct xtap_copy_meta)) < 0) {
        stat_inc(XTAP_STAT_CAPTURE_META_FAILED);
        return XDP_DROP;
    }
    data = (void *)(long)ctx->data;
    struct xtap_copy_meta *meta = (void *)(long)ctx->data_meta;
    if ((void *)(meta + 1) > data) {
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

char LICENSE[] SEC("license") = "Dual BSD/GPL";
