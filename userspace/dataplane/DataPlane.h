// DataPlane: publishes and withdraws criteria (FilterSets) in the classifier's
// maps, atomically per criterion (platform.md §5):
//   take a slot, bump its generation, keep it disabled; write every rule
//   (a new mask: row first, then the count); enable with one 4-byte store.
// Withdraw: disable with one store, then remove the rules. Pure logic over a
// MapWriter; it keeps a shadow of every map so it never reads the kernel back.
#pragma once

#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <variant>
#include <vector>

#include "dataplane/Filter.h"
#include "dataplane/MapWriter.h"
#include "dataplane/TupleSpace.h"

namespace xtap::dataplane {

struct Capacity {
    uint32_t rules = XTAP_DEFAULT_RULES;
    uint32_t slots = XTAP_DEFAULT_SLOTS;
    uint32_t prefixes = XTAP_DEFAULT_PREFIXES;
};

// A published criterion: its slot and the generation its rules carry.
struct SlotRef {
    uint32_t slot = 0;
    uint32_t gen = 0;
    bool operator==(const SlotRef&) const = default;
};

struct PublishError {
    enum class Kind { InvalidFilter, NoSlot, RulesFull, MasksFull, SharedKeyFull, PrefixesFull };
    Kind kind;
    std::string detail;
};

using PublishResult = std::variant<SlotRef, PublishError>;

class DataPlane {
public:
    DataPlane(MapWriter& maps, Capacity capacity);

    PublishResult publish(const FilterSet& set);
    // Withdraw is idempotent; a stale SlotRef (already withdrawn) does nothing.
    void withdraw(SlotRef ref);
    void setExpiry(SlotRef ref, uint64_t expiry_ns);
    void setPriority(SlotRef ref, uint16_t priority);
    SlotCounters counters(SlotRef ref) const;
    bool isLive(SlotRef ref) const;

    size_t ruleCount() const { return rules_.size(); }
    size_t maskCount() const;
    size_t liveCount() const { return live_; }
    size_t anchorCount() const { return hashed_anchors_.size() + fallback_prefixes_.size(); }

private:
    using KeyBytes = std::array<uint8_t, sizeof(xtap_key)>;
    struct KeyHash {
        size_t operator()(const KeyBytes& k) const noexcept;
    };
    struct PrefixKey {
        Family family;
        Prefix prefix;
        auto operator<=>(const PrefixKey& o) const {
            if (family != o.family) return family <=> o.family;
            if (prefix.len != o.prefix.len) return prefix.len <=> o.prefix.len;
            return prefix.addr <=> o.prefix.addr;
        }
        bool operator==(const PrefixKey&) const = default;
    };
    // How one filter reaches the prefilter: through a hashed anchor, the LPM
    // fallback, or as an unanchored (wide) filter, for one mask row.
    struct AnchorUse {
        enum class Kind : uint8_t { Hashed, Fallback, Wide } kind;
        PrefixKey anchor;
        uint32_t row;
    };
    struct SlotRecord {
        uint32_t gen = 0;
        bool live = false;
        std::vector<KeyBytes> keys;
        std::vector<uint32_t> mask_rows;  // one per key, same order
        std::vector<AnchorUse> anchors;
    };
    using RowRefs = std::map<uint32_t, uint32_t>;  // mask row -> filters using it
    struct FamilyPrefilter {
        std::vector<uint8_t> hashed_lengths;  // at most XTAP_ANCHOR_LENS
        std::map<uint8_t, uint32_t> length_refs;
        RowRefs fallback_rows, wide_rows;
    };
    struct MaskRow {
        MaskSpec spec;
        uint32_t refs = 0;
    };

    static KeyBytes bytesOf(const xtap_key& k);
    int acquireMask(const MaskSpec& spec);  // row or -1
    void releaseMask(uint32_t row);
    void removeRef(const KeyBytes& key, uint32_t slot);
    void rollback(uint32_t slot, SlotRecord& rec);
    std::optional<std::string> addAnchor(const Filter& f, uint32_t row, SlotRecord& rec);
    void releaseAnchor(const AnchorUse& use);
    FamilyPrefilter& prefilterOf(Family f) { return prefilter_[f == Family::V4 ? 0 : 1]; }
    static xtap_maskset masksetOf(const RowRefs& rows);
    void writeLengths(Family f);

    MapWriter& maps_;
    Capacity capacity_;
    std::vector<SlotRecord> slots_;
    std::deque<uint32_t> free_slots_;  // FIFO: a freed slot is reused last
    std::unordered_map<KeyBytes, xtap_rule, KeyHash> rules_;
    std::array<std::optional<MaskRow>, XTAP_MAX_MASKS> masks_;
    uint32_t mask_count_ = 0;
    std::map<PrefixKey, RowRefs> hashed_anchors_;
    std::map<PrefixKey, uint32_t> fallback_prefixes_;
    std::array<FamilyPrefilter, 2> prefilter_;
    size_t live_ = 0;
};

}  // namespace xtap::dataplane
