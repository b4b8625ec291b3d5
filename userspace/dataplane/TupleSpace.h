// TupleSpace: how a Filter becomes entries of the classifier's maps.
// Port and ICMP ranges become aligned power-of-two blocks; each block pair is
// one masked key under one mask (OVS-style tuple-space search). Pure code.
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <vector>

#include "dataplane/Filter.h"
#include "xtap_abi.h"

namespace xtap::dataplane {

// The shape of a mask: which prefix lengths and fields a group of keys uses.
struct MaskSpec {
    Family family = Family::V4;
    uint8_t src_len = 0;
    uint8_t dst_len = 0;
    bool proto = false;     // protocol compared exactly
    bool ifindex = false;   // input interface compared exactly
    bool oifindex = false;  // output (FIB egress) interface compared exactly
    uint8_t sport_len = 0;  // leading bits of the 16-bit field compared
    uint8_t dport_len = 0;
    auto operator<=>(const MaskSpec&) const = default;

    xtap_mask toAbi() const;  // active = 1
};

// A block of 16-bit values: the `len` leading bits of `value`.
struct Block16 {
    uint16_t value = 0;
    uint8_t len = 0;
    bool operator==(const Block16&) const = default;
};

// Minimal list of aligned blocks whose union is [r.lo, r.hi].
std::vector<Block16> rangeToBlocks(Range16 r);

struct RuleEntry {
    MaskSpec mask;
    xtap_key key{};  // already masked; mask_id is set when the mask gets a row
};

// Every map entry the filter needs. Assumes validate(f) is empty.
std::vector<RuleEntry> expandFilter(const Filter& f);

// The prefix the prefilter must hold for this filter (the longer of source
// and destination), or nothing for a wide filter that anchors on no address.
std::optional<Prefix> anchorOf(const Filter& f);

// Apply a mask's fields to a packet key exactly as the BPF classifier does.
xtap_key applyMask(const xtap_key& packet, const xtap_mask& mask, uint8_t mask_id);

}  // namespace xtap::dataplane
