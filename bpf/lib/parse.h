/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* parse.h: cursor parsers from the Ethernet header to the L4 ports.
 * Every loop has a constant bound; every read is bounds-checked. */
#ifndef XTAP_PARSE_H
#define XTAP_PARSE_H

#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_helpers.h>
#include "xtap_abi.h"

#define XTAP_ETH_P_8021Q 0x8100
#define XTAP_ETH_P_8021AD 0x88A8

#define XTAP_FRAG_NONE 0
#define XTAP_FRAG_FIRST 1 /* offset 0, more fragments follow: has the L4 header */
#define XTAP_FRAG_LATER 2 /* offset > 0: no L4 header */

/* What the classifier needs from one packet. */
struct xtap_pkt {
    struct xtap_key key; /* mask_id 0; ifindex filled by the caller */
    __u8 l4_known;       /* sport/dport (or ICMP type/code) were read */
    __u8 frag;           /* XTAP_FRAG_* */
    __u16 pad;
    __u32 frag_id;
    __u32 l3_len; /* bytes from the IP header to the end of the frame */
};

struct xtap_vlan_hdr {
    __be16 tci;
    __be16 proto;
};

struct xtap_ip6_ext {
    __u8 nexthdr;
    __u8 hdrlen;
};

struct xtap_ip6_frag {
    __u8 nexthdr;
    __u8 reserved;
    __be16 frag_off; /* offset << 3 | M */
    __be32 id;
};

static __always_inline int parse_l4(void *pos, void *end, __u8 proto, struct xtap_pkt *p)
{
    __u8 *l4 = pos;
    switch (proto) {
    case IPPROTO_TCP:
    case IPPROTO_UDP:
    case IPPROTO_SCTP:
        if ((void *)(l4 + 4) > end)
            return 0;
        p->key.sport = ((__u16)l4[0] << 8) | l4[1];
        p->key.dport = ((__u16)l4[2] << 8) | l4[3];
        p->l4_known = 1;
        break;
    case IPPROTO_ICMP:
    case IPPROTO_ICMPV6:
        if ((void *)(l4 + 2) > end)
            return 0;
        p->key.sport = l4[0]; /* type */
        p->key.dport = l4[1]; /* code */
        p->l4_known = 1;
        break;
    default:
        break;
    }
    return 0;
}

/*
 * Parsing runs in two stages so that a packet which is no target costs as
 * little as possible: parse_l3 reads what the prefilter needs (family,
 * addresses), parse_rest the rest (fragment, IPv6 extension headers, L4), only
 * for packets the prefilter lets through.
 */
static __always_inline int parse_ipv4_l3(void *pos, void *end, struct xtap_pkt *p)
{
    struct iphdr *ip = pos;
    if ((void *)(ip + 1) > end)
        return -1;
    if (ip->version != 4 || ip->ihl < 5)
        return -1;
    p->key.family = XTAP_FAMILY_IPV4;
    p->key.proto = ip->protocol;
    __builtin_memcpy(p->key.src, &ip->saddr, 4);
    __builtin_memcpy(p->key.dst, &ip->daddr, 4);
    p->l3_len = end - pos;
    return 0;
}

static __always_inline int parse_ipv4_rest(void *pos, void *end, struct xtap_pkt *p)
{
    struct iphdr *ip = pos;
    if ((void *)(ip + 1) > end)
        return -1;
    void *l4 = pos + ip->ihl * 4;
    if (l4 > end)
        return -1;

    __u16 frag_off = bpf_ntohs(ip->frag_off);
    __u16 offset = frag_off & 0x1fff;
    if (offset) {
        p->frag = XTAP_FRAG_LATER;
    } else if (frag_off & 0x2000) {
        p->frag = XTAP_FRAG_FIRST;
    }
    if (p->frag)
        p->frag_id = bpf_ntohs(ip->id);
    if (p->frag == XTAP_FRAG_LATER)
        return 0;
    return parse_l4(l4, end, ip->protocol, p);
}

static __always_inline int ipv6_is_ext(__u8 nh)
{
    return nh == IPPROTO_HOPOPTS || nh == IPPROTO_ROUTING || nh == IPPROTO_FRAGMENT ||
           nh == IPPROTO_DSTOPTS || nh == IPPROTO_AH;
}

static __always_inline int parse_ipv6_l3(void *pos, void *end, struct xtap_pkt *p)
{
    struct ipv6hdr *ip6 = pos;
    if ((void *)(ip6 + 1) > end)
        return -1;
    if (ip6->version != 6)
        return -1;
    p->key.family = XTAP_FAMILY_IPV6;
    __builtin_memcpy(p->key.src, &ip6->saddr, 16);
    __builtin_memcpy(p->key.dst, &ip6->daddr, 16);
    p->l3_len = end - pos;
    return 0;
}

static __always_inline int parse_ipv6_rest(void *pos, void *end, struct xtap_pkt *p)
{
    struct ipv6hdr *ip6 = pos;
    if ((void *)(ip6 + 1) > end)
        return -1;
    __u8 nh = ip6->nexthdr;
    void *cur = ip6 + 1;
#pragma unroll
    for (int i = 0; i < XTAP_MAX_IPV6_EXT; i++) {
        if (!ipv6_is_ext(nh))
            break;
        struct xtap_ip6_ext *ext = cur;
        if ((void *)(ext + 1) > end)
            return -1;
        if (nh == IPPROTO_FRAGMENT) {
            struct xtap_ip6_frag *fh = cur;
            if ((void *)(fh + 1) > end)
                return -1;
            __u16 fo = bpf_ntohs(fh->frag_off);
            p->frag_id = bpf_ntohl(fh->id);
            if (fo & 0xfff8)
                p->frag = XTAP_FRAG_LATER;
            else if (fo & 1)
                p->frag = XTAP_FRAG_FIRST;
            nh = fh->nexthdr;
            cur += sizeof(*fh);
            if (p->frag == XTAP_FRAG_LATER) {
                p->key.proto = nh;
                return 0;
            }
            continue;
        }
        __u32 len = nh == IPPROTO_AH ? ((__u32)ext->hdrlen + 2) * 4 : ((__u32)ext->hdrlen + 1) * 8;
        nh = ext->nexthdr;
        cur += len;
    }
    /* Still an extension header after the bound: classify on addresses only. */
    if (ipv6_is_ext(nh)) {
        p->key.proto = nh;
        return 0;
    }
    p->key.proto = nh;
    return parse_l4(cur, end, nh, p);
}

/* Stage one. 0: family and addresses in p, *l3 at the IP header; -1: not IP
 * or malformed, leave it alone. */
static __always_inline int parse_l3(void *data, void *end, struct xtap_pkt *p, void **l3)
{
    struct ethhdr *eth = data;
    if ((void *)(eth + 1) > end)
        return -1;
    __u16 proto = bpf_ntohs(eth->h_proto);
    void *pos = eth + 1;

#pragma unroll
    for (int i = 0; i < XTAP_MAX_VLAN_DEPTH; i++) {
        if (proto != XTAP_ETH_P_8021Q && proto != XTAP_ETH_P_8021AD)
            break;
        struct xtap_vlan_hdr *vh = pos;
        if ((void *)(vh + 1) > end)
            return -1;
        proto = bpf_ntohs(vh->proto);
        pos = vh + 1;
    }

    *l3 = pos;
    if (proto == ETH_P_IP)
        return parse_ipv4_l3(pos, end, p);
    if (proto == ETH_P_IPV6)
        return parse_ipv6_l3(pos, end, p);
    return -1;
}

/* Stage two, after parse_l3 succeeded. 0: p complete; -1: malformed. */
static __always_inline int parse_rest(void *l3, void *end, struct xtap_pkt *p)
{
    if (p->key.family == XTAP_FAMILY_IPV4)
        return parse_ipv4_rest(l3, end, p);
    return parse_ipv6_rest(l3, end, p);
}

#endif /* XTAP_PARSE_H */
