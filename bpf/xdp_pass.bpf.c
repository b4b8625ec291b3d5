/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* The floor every classifier figure is measured against: a bare XDP_PASS. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>

SEC("xdp")
int xdp_pass(struct xdp_md *ctx)
{
    return XDP_PASS;
}

/* The floor of the tc hook (XtapObject's TransitHook::Tc): a tc program that
 * does nothing. */
SEC("tc")
int tc_pass(struct __sk_buff *skb)
{
    return 0; /* TC_ACT_OK */
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
