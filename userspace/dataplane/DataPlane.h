// DataPlane: publishes and withdraws criteria (FilterSets) in the classifier's
// maps, atomically per criterion (platform.md §5):
//   take a slot, bump its generation, keep it disabled; write every rule
//   (a new mask: row first, then the count); enable with one 4-byte store.
// Withdraw: disable with one store, then remove the rules. Pure logic over a
// MapWriter; it keeps a shadow of every map so it never reads the kernel back.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <deque>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <utility>
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

// What the classifier's maps hold when a controller starts on maps pinned by an
// earlier one (a restart): read back once, so the DataPlane can adopt the
// criteria still published there instead of clearing them.
struct MapContents {
    std::vector<uint32_t> slot_states;                           // per slot: gen << 1 | enabled
    std::array<std::optional<xtap_mask>, XTAP_MAX_MASKS> masks;  // the active rows
    std::vector<xtap_key> rules;
    std::vector<std::pair<Family, Prefix>> anchors;   // hashed prefilter entries
    std::vector<std::pair<Family, Prefix>> prefixes;  // LPM fallback entries
};

class DataPlane {
  public:
    DataPlane(MapWriter& maps, Capacity capacity);
    // A restart: the maps still hold `previous`, and the classifier keeps
    // counting with it. Writes nothing until finishRestore(): call restore()
    // for every criterion to keep, then finishRestore(), then anything else.
    DataPlane(MapWriter& maps, Capacity capacity, MapContents previous);

    // Takes over the criterion published in `ref` by the previous controller:
    // same slot, same generation, counters untouched, so nothing the classifier
    // counted during the restart is lost. The rules are rebuilt from `set`
    // (which must be what was published). NoSlot when the maps do not hold
    // `ref` live (or this DataPlane is not restoring): publish() it instead,
    // after finishRestore().
    PublishResult restore(const FilterSet& set, SlotRef ref);
    // Writes what the restored criteria need and removes everything else the
    // previous controller left (withdrawn slots, stale rules and prefilter
    // entries), new entries first so the prefilter stays a superset throughout.
    void finishRestore();
    bool restoring() const { return previous_.has_value(); }

    PublishResult publish(const FilterSet& set);
    // Withdraw is idempotent; a stale SlotRef (already withdrawn) does nothing.
    void withdraw(SlotRef ref);
    void setExpiry(SlotRef ref, uint64_t expiry_ns);
    void setPriority(SlotRef ref, uint16_t priority);
    SlotCounters counters(SlotRef ref) const;
    // A later fragment released to the live criterion in `slot` after its
    // first fragment (the classifier could not count it when it passed):
    // counted with the criterion's own counters from now on.
    void countReleased(uint32_t slot, uint64_t packets, uint64_t bytes);
    bool isLive(SlotRef ref) const;

    size_t ruleCount() const { return rules_.size(); }
    size_t maskCount() const;
    // Whether a mask in use compares the egress interface (FIB lookup wanted).
    bool usesEgress() const;
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
        struct Key {
            KeyBytes bytes;
            uint32_t mask_row;
        };
        std::vector<Key> keys;  // one vector, not two: a block less per criterion
        std::vector<AnchorUse> anchors;
    };
    // Mask row -> filters using it. A sorted vector, not a std::map: there is
    // one per hashed anchor (about one per criterion) with few rows in each.
    class RowRefs {
      public:
        using Entry = std::pair<uint32_t, uint32_t>;
        using Iterator = std::vector<Entry>::iterator;
        uint32_t& operator[](uint32_t row) {  // a new row starts at 0
            auto it = lower(row);
            if (it == rows_.end() || it->first != row) it = rows_.insert(it, Entry{row, 0});
            return it->second;
        }
        Iterator find(uint32_t row) {
            auto it = lower(row);
            return it != rows_.end() && it->first == row ? it : rows_.end();
        }
        void erase(Iterator it) { rows_.erase(it); }
        void erase(uint32_t row) {
            if (auto it = find(row); it != rows_.end()) rows_.erase(it);
        }
        bool empty() const { return rows_.empty(); }
        Iterator end() { return rows_.end(); }
        std::vector<Entry>::const_iterator begin() const { return rows_.begin(); }
        std::vector<Entry>::const_iterator end() const { return rows_.end(); }

      private:
        Iterator lower(uint32_t row) {
            return std::lower_bound(rows_.begin(), rows_.end(), row,
                                    [](const Entry& e, uint32_t r) { return e.first < r; });
        }
        std::vector<Entry> rows_;
    };
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
    int adoptMask(const MaskSpec& spec);    // restore(): the previous row, or a free one
    std::optional<PublishError> expand(const FilterSet& set, std::vector<RuleEntry>& entries,
                                       std::vector<size_t>& filter_of) const;
    // Rules, masks and prefilter of `set` in `slot` (its generation set);
    // rolls back and frees the slot on failure.
    std::optional<PublishError> place(const FilterSet& set, std::vector<RuleEntry>& entries,
                                      const std::vector<size_t>& filter_of, uint32_t slot);
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
    std::optional<MapContents> previous_;  // while restoring: writes to the prefilter wait
};

}  // namespace xtap::dataplane
