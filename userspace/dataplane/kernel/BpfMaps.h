// BpfMaps: MapWriter over the loaded object's maps, plus the knobs and
// tables the controller sets directly (interfaces, exclusions, kill switch).
// The mmapable arrays (control, masks, slots) are written with single aligned
// stores, which is what the classifier's atomicity rests on.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <optional>
#include <unordered_map>
#include <vector>

#include "common/UniqueFd.h"
#include "dataplane/DataPlane.h"
#include "dataplane/MapWriter.h"
#include "dataplane/kernel/XtapObject.h"

namespace xtap::dataplane::kernel {

class BpfMaps final : public MapWriter {
  public:
    explicit BpfMaps(const XtapObject& obj);

    void writeMask(uint32_t row, const xtap_mask& mask) override;
    void deactivateMask(uint32_t row) override;
    void setMaskCount(uint32_t count) override;
    bool putRule(const xtap_key& key, const xtap_rule& rule) override;
    void deleteRule(const xtap_key& key) override;
    void writeSlot(uint32_t slot, uint16_t priority, uint64_t expiry_ns) override;
    void setSlotState(uint32_t slot, uint32_t state) override;
    void setSlotExpiry(uint32_t slot, uint64_t expiry_ns) override;
    void setSlotPriority(uint32_t slot, uint16_t priority) override;
    SlotCounters readCounters(uint32_t slot) const override;
    void zeroCounters(uint32_t slot) override;
    void addReleased(uint32_t slot, uint64_t packets, uint64_t bytes) override;
    bool putAnchor(Family family, const Prefix& prefix, const xtap_maskset& masks) override;
    void deleteAnchor(Family family, const Prefix& prefix) override;
    void setAnchorLengths(Family family, uint32_t packed) override;
    bool addPrefix(Family family, const Prefix& prefix) override;
    void removePrefix(Family family, const Prefix& prefix) override;
    void writeMaskSet(uint32_t row, const xtap_maskset& masks) override;
    void setFallback(Family family, bool on) override;
    void setWide(Family family, bool on) override;
    void setEgress(bool on) override;

    void setEnabled(bool on);
    // The copy gate (xtap_abi.h): no copy from `boot_ns` (CLOCK_BOOTTIME) on
    // unless it is moved again; 0 takes the deadline away.
    void setCopyDeadline(uint64_t boot_ns);
    // At most `copies_per_s` copies and `bits_per_s` bits of copied IP
    // packets a second, either budget running at most `burst_ns` ahead of the
    // clock (GCRA: 1 + burst / interval copies at once); 0 = no such budget.
    void setCopyBudget(uint64_t copies_per_s, uint64_t bits_per_s, uint64_t burst_ns);
    xtap_copy_gate copyGate() const;
    void addExclude(const xtap_exclude_key& key);
    void clearExcludes();
    void setTransitInterface(uint32_t ifindex, uint32_t capture_ifindex);
    void removeTransitInterface(uint32_t ifindex);
    void setCaptureInterface(uint32_t capture_ifindex, uint32_t transit_ifindex,
                             uint32_t xsk_index);
    void removeCaptureInterface(uint32_t capture_ifindex);
    std::array<uint64_t, XTAP_STAT_MAX> readStats() const;
    // Reads every slot's per-CPU counters in a few batched syscalls; until
    // dropCounterSnapshot(), readCounters answers from it (the released
    // counts stay live). For a pass over every criterion (the tick, a save):
    // one syscall per criterion was O(criteria) syscalls a second. Not
    // thread-safe: the caller holds the controller's lock across the pass.
    bool takeCounterSnapshot();  // false: the batch read failed, slot-by-slot reads go on
    // The same in two steps, so that the read (tens of ms at 131,072 slots)
    // needs no lock: readCounterTable() is safe beside the maps' other users;
    // installCounterSnapshot(), under the lock, refuses a table read before a
    // slot's counters were zeroed (a slot published afresh would get its
    // previous criterion's counts).
    struct CounterTable {
        std::vector<SlotCounters> slots;
        uint64_t zeroed_epoch = 0;
    };
    std::optional<CounterTable> readCounterTable() const;  // nullopt: the batch read failed
    bool installCounterSnapshot(CounterTable table);
    // Frees it too: 32 B a slot (4.2 MB at 131,072 slots) held only during the pass.
    void dropCounterSnapshot() {
        snapshot_valid_ = false;
        snapshot_ = {};
    }
    xtap_control control() const;

    // What an earlier controller left in pinned maps (a restart), for
    // DataPlane's restore constructor.
    MapContents readContents() const;

    // A fresh start: forget every criterion the maps hold (a restart that does
    // not restore them, or an explicit flush).
    void clearCriteria();

  private:
    // The anchor bitmap (xtap_abi.h, stage zero): bit of an anchor, and set or
    // clear it; anchor_bit_refs_ counts the anchors sharing each set bit.
    uint64_t anchorBit(Family family, const Prefix& prefix) const;
    void setAnchorBit(uint64_t bit, bool on);

    int ncpus_;
    uint32_t slot_capacity_;
    std::vector<SlotCounters> snapshot_;  // per slot, without the released counts
    bool snapshot_valid_ = false;
    std::atomic<uint64_t> zeroed_epoch_{0};  // moved on twice by each zeroCounters()
    int rules_fd_, slot_stats_fd_, prefix4_fd_, prefix6_fd_, anchors4_fd_, anchors6_fd_,
        excludes_fd_;
    int transit_fd_, capture_fd_, stats_fd_, frags_fd_;
    MappedRegion control_map_, copy_gate_map_, masks_map_, slots_map_, masksets_map_,
        anchor_bits_map_, released_map_;
    xtap_control* control_;
    xtap_copy_gate* copy_gate_;
    xtap_maskset* masksets_;
    xtap_mask* masks_;
    xtap_slot* slots_;
    uint64_t* anchor_bits_;
    xtap_slot_released* released_;
    uint32_t anchor_hash_shift_;
    std::unordered_map<uint64_t, uint32_t> anchor_bit_refs_;
};

}  // namespace xtap::dataplane::kernel
