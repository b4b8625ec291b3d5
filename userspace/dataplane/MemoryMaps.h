// MemoryMaps: a MapWriter that keeps the classifier's maps in memory, for
// running the control path without privileges (unit tests, dry runs).
#pragma once

#include <array>
#include <map>
#include <cstring>
#include <tuple>
#include <vector>

#include "dataplane/DataPlane.h"
#include "dataplane/MapWriter.h"

namespace xtap::dataplane {

class MemoryMaps final : public MapWriter {
  public:
    explicit MemoryMaps(uint32_t slots = XTAP_DEFAULT_SLOTS,
                        uint32_t rule_capacity = XTAP_DEFAULT_RULES)
        : slots_(slots), counters_(slots), rule_capacity_(rule_capacity) {}

    void writeMask(uint32_t row, const xtap_mask& mask) override { masks_[row] = mask; }
    void deactivateMask(uint32_t row) override { masks_[row].active = 0; }
    void setMaskCount(uint32_t count) override { mask_count_ = count; }
    bool putRule(const xtap_key& key, const xtap_rule& rule) override {
        const auto k = bytes(key);
        if (!rules_.count(k) && rules_.size() >= rule_capacity_) return false;
        rules_[k] = rule;
        return true;
    }
    void deleteRule(const xtap_key& key) override { rules_.erase(bytes(key)); }
    void writeSlot(uint32_t slot, uint16_t priority, uint64_t expiry_ns) override {
        slots_[slot].priority = priority;
        slots_[slot].expiry_ns = expiry_ns;
    }
    void setSlotState(uint32_t slot, uint32_t state) override { slots_[slot].state = state; }
    void setSlotExpiry(uint32_t slot, uint64_t expiry_ns) override {
        slots_[slot].expiry_ns = expiry_ns;
    }
    void setSlotPriority(uint32_t slot, uint16_t priority) override {
        slots_[slot].priority = priority;
    }
    SlotCounters readCounters(uint32_t slot) const override { return counters_[slot]; }
    void zeroCounters(uint32_t slot) override { counters_[slot] = {}; }
    void addReleased(uint32_t slot, uint64_t packets, uint64_t bytes) override {
        addTraffic(slot, packets, bytes);
    }
    bool putAnchor(Family f, const Prefix& p, const xtap_maskset& m) override {
        anchors_[{f, p.len, p.addr}] = m;
        return true;
    }
    void deleteAnchor(Family f, const Prefix& p) override { anchors_.erase({f, p.len, p.addr}); }
    void setAnchorLengths(Family f, uint32_t packed) override {
        lengths_[f == Family::V4 ? 0 : 1] = packed;
    }
    bool addPrefix(Family f, const Prefix& p) override {
        prefixes_[{f, p.len, p.addr}] = 1;
        return true;
    }
    void removePrefix(Family f, const Prefix& p) override { prefixes_.erase({f, p.len, p.addr}); }
    void writeMaskSet(uint32_t row, const xtap_maskset& m) override { masksets_[row] = m; }
    void setFallback(Family f, bool on) override { fallback_[f == Family::V4 ? 0 : 1] = on; }
    void setWide(Family f, bool on) override { wide_[f == Family::V4 ? 0 : 1] = on; }
    void setEgress(bool on) override { egress_ = on; }

    // What a restarted controller reads back (DataPlane's restore constructor).
    MapContents contents() const {
        MapContents c;
        for (const auto& s : slots_) c.slot_states.push_back(s.state);
        for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row)
            if (masks_[row].active) c.masks[row] = masks_[row];
        for (const auto& [k, r] : rules_) {
            xtap_key key;
            std::memcpy(&key, k.data(), sizeof key);
            c.rules.push_back(key);
        }
        for (const auto& [k, m] : anchors_)
            c.anchors.push_back({std::get<0>(k), Prefix{std::get<2>(k), std::get<1>(k)}});
        for (const auto& [k, n] : prefixes_)
            c.prefixes.push_back({std::get<0>(k), Prefix{std::get<2>(k), std::get<1>(k)}});
        return c;
    }
    const std::map<std::array<uint8_t, sizeof(xtap_key)>, xtap_rule>& rules() const {
        return rules_;
    }
    const xtap_mask& mask(uint32_t row) const { return masks_[row]; }
    const xtap_maskset& maskSet(uint32_t row) const { return masksets_[row]; }
    uint32_t anchorLengths(Family f) const { return lengths_[f == Family::V4 ? 0 : 1]; }
    bool hasAnchor(Family f, const Prefix& p) const {
        return anchors_.count({f, p.len, p.addr}) > 0;
    }

    // Test hooks: what the data path would have counted.
    void addTraffic(uint32_t slot, uint64_t packets, uint64_t bytes) {
        counters_[slot].packets += packets;
        counters_[slot].bytes += bytes;
    }
    // Traffic the copy gate refused: matched, and counted as gated too.
    void addGated(uint32_t slot, uint64_t packets, uint64_t bytes) {
        addTraffic(slot, packets, bytes);
        counters_[slot].gated_packets += packets;
        counters_[slot].gated_bytes += bytes;
    }
    const xtap_slot& slot(uint32_t s) const { return slots_[s]; }
    size_t ruleCount() const { return rules_.size(); }
    size_t anchorCount() const { return anchors_.size() + prefixes_.size(); }
    uint32_t maskCount() const { return mask_count_; }
    bool egress() const { return egress_; }

  private:
    using Bytes = std::array<uint8_t, sizeof(xtap_key)>;
    using AnchorKey = std::tuple<Family, uint8_t, Address>;
    static Bytes bytes(const xtap_key& k) {
        Bytes b;
        std::memcpy(b.data(), &k, sizeof k);
        return b;
    }
    std::vector<xtap_slot> slots_;
    std::vector<SlotCounters> counters_;
    size_t rule_capacity_;
    std::map<Bytes, xtap_rule> rules_;
    std::array<xtap_mask, XTAP_MAX_MASKS> masks_{};
    uint32_t mask_count_ = 0;
    std::map<AnchorKey, xtap_maskset> anchors_;
    std::map<AnchorKey, int> prefixes_;
    std::array<xtap_maskset, XTAP_MASKSET_ROWS> masksets_{};
    std::array<uint32_t, 2> lengths_{}, fallback_{}, wide_{};
    bool egress_ = false;
};

}  // namespace xtap::dataplane
