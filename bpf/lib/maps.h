/* SPDX-License-Identifier: (GPL-2.0 OR BSD-2-Clause) */
/* maps.h: every map of the xtap object, definitions only (sizes are defaults;
 * the loader resizes them before load). */
#ifndef XTAP_MAPS_H
#define XTAP_MAPS_H

#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "xtap_abi.h"

/* Global knobs; mmapable so userspace flips single words. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct xtap_control);
} control SEC(".maps");

/* The copy gate (struct xtap_copy_gate); mmapable like `control`, but apart
 * from it: the budget is written on every copy, `control` read on every packet. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct xtap_copy_gate);
} copy_gate SEC(".maps");

/* Tuple-space masks; rows [0, control.mask_count) are scanned. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, XTAP_MAX_MASKS);
    __type(key, __u32);
    __type(value, struct xtap_mask);
} masks SEC(".maps");

/* Masked key -> the criterion slots whose filters produced it. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XTAP_DEFAULT_RULES);
    __type(key, struct xtap_key);
    __type(value, struct xtap_rule);
} rules SEC(".maps");

/* Per-criterion state: generation, enabled, priority, deadline. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, XTAP_DEFAULT_SLOTS);
    __type(key, __u32);
    __type(value, struct xtap_slot);
} slots SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, XTAP_DEFAULT_SLOTS);
    __type(key, __u32);
    __type(value, struct xtap_slot_stats);
} slot_stats SEC(".maps");

/* Written by userspace only (see struct xtap_slot_released); no program reads it. */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, XTAP_DEFAULT_SLOTS);
    __type(key, __u32);
    __type(value, struct xtap_slot_released);
} slot_released SEC(".maps");

/* Prefilter, stage zero: one bit per hashed anchor (see xtap_anchor_hash). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, XTAP_DEFAULT_PREFIXES / 2); /* 32 bits per anchor */
    __type(key, __u32);
    __type(value, __u64);
} anchor_bits SEC(".maps");

/* Prefilter: hashed anchors (exact prefix -> masks to scan), per family. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XTAP_DEFAULT_PREFIXES);
    __type(key, struct xtap_anchor4);
    __type(value, struct xtap_maskset);
} anchors4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XTAP_DEFAULT_PREFIXES);
    __type(key, struct xtap_anchor6);
    __type(value, struct xtap_maskset);
} anchors6 SEC(".maps");

/* Wide and fallback mask sets (enum xtap_maskset_row). */
struct {
    __uint(type, BPF_MAP_TYPE_ARRAY);
    __uint(map_flags, BPF_F_MMAPABLE);
    __uint(max_entries, XTAP_MASKSET_ROWS);
    __type(key, __u32);
    __type(value, struct xtap_maskset);
} masksets SEC(".maps");

/* Prefilter fallback: anchors of lengths that are not hashed, per family. */
struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, XTAP_DEFAULT_PREFIXES);
    __type(key, struct xtap_lpm4);
    __type(value, __u32);
} prefix4 SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_LPM_TRIE);
    __uint(map_flags, BPF_F_NO_PREALLOC);
    __uint(max_entries, XTAP_DEFAULT_PREFIXES);
    __type(key, struct xtap_lpm6);
    __type(value, __u32);
} prefix6 SEC(".maps");

/* First fragments that matched, for the later fragments of the same datagram. */
struct {
    __uint(type, BPF_MAP_TYPE_LRU_HASH);
    __uint(max_entries, XTAP_DEFAULT_FRAGS);
    __type(key, struct xtap_frag_key);
    __type(value, struct xtap_frag_val);
} frags SEC(".maps");

/* Per-CPU scratch for values too large for the 512-byte BPF stack. */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct xtap_frag_val);
} frag_scratch SEC(".maps");

/* Per-CPU scratch for the FIB lookup's parameters (64 bytes the stack lacks). */
struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, 1);
    __type(key, __u32);
    __type(value, struct bpf_fib_lookup);
} fib_scratch SEC(".maps");

/* The appliance's own endpoints: never copied. */
struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, 1024);
    __type(key, struct xtap_exclude_key);
    __type(value, __u8);
} excludes SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XTAP_DEFAULT_IFACES);
    __type(key, __u32); /* transit ifindex */
    __type(value, struct xtap_transit_if);
} transit_ifs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_HASH);
    __uint(max_entries, XTAP_DEFAULT_IFACES);
    __type(key, __u32); /* capture (cap1) ifindex */
    __type(value, struct xtap_capture_if);
} capture_ifs SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_XSKMAP);
    __uint(max_entries, XTAP_DEFAULT_IFACES);
    __type(key, __u32);
    __type(value, __u32);
} xsks SEC(".maps");

struct {
    __uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
    __uint(max_entries, XTAP_STAT_MAX);
    __type(key, __u32);
    __type(value, __u64);
} stats SEC(".maps");

#endif /* XTAP_MAPS_H */
