// MapWriter: the narrow interface through which DataPlane changes the
// classifier's maps. The kernel implementation (kernel/BpfMaps) is the only
// libbpf user; tests use an in-memory one, so the control logic runs without
// privileges (katran's injected adapter).
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/Filter.h"
#include "xtap_abi.h"

namespace xtap::dataplane {

struct SlotCounters {
    uint64_t packets = 0;
    uint64_t bytes = 0;
    // Of packets and bytes: not copied, the copy gate refused (xtap_abi.h).
    uint64_t gated_packets = 0;
    uint64_t gated_bytes = 0;
};

class MapWriter {
  public:
    virtual ~MapWriter() = default;

    // Masks: the row is written while inactive, then activated with one store.
    virtual void writeMask(uint32_t row, const xtap_mask& mask) = 0;
    virtual void deactivateMask(uint32_t row) = 0;
    virtual void setMaskCount(uint32_t count) = 0;

    // Rules: false when the kernel refused (map full).
    virtual bool putRule(const xtap_key& key, const xtap_rule& rule) = 0;
    virtual void deleteRule(const xtap_key& key) = 0;

    // Slots: writeSlot stores every field but `state`; setSlotState is the
    // single 4-byte store that publishes or withdraws a criterion.
    virtual void writeSlot(uint32_t slot, uint16_t priority, uint64_t expiry_ns) = 0;
    virtual void setSlotState(uint32_t slot, uint32_t state) = 0;
    virtual void setSlotExpiry(uint32_t slot, uint64_t expiry_ns) = 0;
    virtual void setSlotPriority(uint32_t slot, uint16_t priority) = 0;
    virtual SlotCounters readCounters(uint32_t slot) const = 0;
    virtual void zeroCounters(uint32_t slot) = 0;
    // Counts the data path could not make itself (later fragments released
    // by userspace after their first fragment): readCounters includes them.
    virtual void addReleased(uint32_t slot, uint64_t packets, uint64_t bytes) = 0;

    // Prefilter, first stage: hashed anchors and which lengths are hashed
    // (packed one per byte, XTAP_ANCHOR_LEN_NONE for unused bytes).
    virtual bool putAnchor(Family family, const Prefix& prefix, const xtap_maskset& masks) = 0;
    virtual void deleteAnchor(Family family, const Prefix& prefix) = 0;
    virtual void setAnchorLengths(Family family, uint32_t packed) = 0;
    // Second stage: the LPM fallback for other lengths, and unanchored filters.
    virtual bool addPrefix(Family family, const Prefix& prefix) = 0;
    virtual void removePrefix(Family family, const Prefix& prefix) = 0;
    virtual void writeMaskSet(uint32_t row, const xtap_maskset& masks) = 0;  // xtap_maskset_row
    virtual void setFallback(Family family, bool on) = 0;
    virtual void setWide(Family family, bool on) = 0;
    // Whether any active mask compares the egress interface (the classifier
    // then does one FIB lookup per prefilter hit).
    virtual void setEgress(bool on) = 0;
};

}  // namespace xtap::dataplane
