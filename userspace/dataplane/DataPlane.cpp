#include "dataplane/DataPlane.h"

#include <cstring>

namespace xtap::dataplane {

size_t DataPlane::KeyHash::operator()(const KeyBytes& k) const noexcept {
    uint64_t h = 1469598103934665603ull;  // FNV-1a
    for (uint8_t b : k) h = (h ^ b) * 1099511628211ull;
    return static_cast<size_t>(h);
}

DataPlane::KeyBytes DataPlane::bytesOf(const xtap_key& k) {
    KeyBytes b;
    std::memcpy(b.data(), &k, sizeof k);
    return b;
}

DataPlane::DataPlane(MapWriter& maps, Capacity capacity)
    : maps_(maps), capacity_(capacity), slots_(capacity.slots) {
    for (uint32_t s = 0; s < capacity.slots; ++s) free_slots_.push_back(s);
}

size_t DataPlane::maskCount() const {
    size_t n = 0;
    for (const auto& m : masks_) n += m.has_value();
    return n;
}

int DataPlane::acquireMask(const MaskSpec& spec) {
    int free_row = -1;
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row) {
        if (masks_[row] && masks_[row]->spec == spec) {
            ++masks_[row]->refs;
            return static_cast<int>(row);
        }
        if (!masks_[row] && free_row < 0) free_row = static_cast<int>(row);
    }
    if (free_row < 0) return -1;
    masks_[free_row] = MaskRow{spec, 1};
    maps_.writeMask(free_row, spec.toAbi());
    // The row is complete before the classifier may scan it.
    if (static_cast<uint32_t>(free_row) >= mask_count_) {
        mask_count_ = free_row + 1;
        maps_.setMaskCount(mask_count_);
    }
    return free_row;
}

void DataPlane::releaseMask(uint32_t row) {
    auto& m = masks_[row];
    if (!m || --m->refs > 0) return;
    m.reset();
    maps_.deactivateMask(row);
    uint32_t count = mask_count_;
    while (count > 0 && !masks_[count - 1]) --count;
    if (count != mask_count_) {
        mask_count_ = count;
        maps_.setMaskCount(count);
    }
}

void DataPlane::removeRef(const KeyBytes& key, uint32_t slot) {
    auto it = rules_.find(key);
    if (it == rules_.end()) return;
    xtap_rule& r = it->second;
    uint32_t out = 0;
    for (uint32_t i = 0; i < r.count; ++i) {
        if (r.refs[i].slot != slot) r.refs[out++] = r.refs[i];
    }
    for (uint32_t i = out; i < r.count; ++i) r.refs[i] = {};
    r.count = out;
    xtap_key k;
    std::memcpy(&k, key.data(), sizeof k);
    if (out == 0) {
        maps_.deleteRule(k);
        rules_.erase(it);
    } else {
        maps_.putRule(k, r);
    }
}

void DataPlane::rollback(uint32_t slot, SlotRecord& rec) {
    for (size_t i = 0; i < rec.keys.size(); ++i) {
        removeRef(rec.keys[i], slot);
        releaseMask(rec.mask_rows[i]);
    }
    for (const auto& a : rec.anchors) {
        auto it = prefix_refs_.find(a);
        if (it != prefix_refs_.end() && --it->second == 0) {
            maps_.removePrefix(a.family, a.prefix);
            prefix_refs_.erase(it);
        }
    }
    if (rec.wide) {
        wide_ -= rec.wide;
        maps_.setWideCount(wide_);
    }
    rec.keys.clear();
    rec.mask_rows.clear();
    rec.anchors.clear();
    rec.wide = 0;
    rec.live = false;
    free_slots_.push_back(slot);
}

PublishResult DataPlane::publish(const FilterSet& set) {
    using Kind = PublishError::Kind;
    std::vector<RuleEntry> entries;
    for (size_t i = 0; i < set.filters.size(); ++i) {
        const std::string why = validate(set.filters[i]);
        if (!why.empty())
            return PublishError{Kind::InvalidFilter, "filter " + std::to_string(i) + ": " + why};
        auto e = expandFilter(set.filters[i]);
        entries.insert(entries.end(), e.begin(), e.end());
    }
    if (set.filters.empty()) return PublishError{Kind::InvalidFilter, "no filters"};
    if (free_slots_.empty()) return PublishError{Kind::NoSlot, "every criterion slot is in use"};
    if (rules_.size() + entries.size() > capacity_.rules)
        return PublishError{Kind::RulesFull, "rule map capacity reached"};

    const uint32_t slot = free_slots_.front();
    free_slots_.pop_front();
    SlotRecord& rec = slots_[slot];
    rec.gen = (rec.gen + 1) & 0x7fffffffu;
    if (rec.gen == 0) rec.gen = 1;
    const uint32_t gen = rec.gen;

    // Disabled while its rules go in.
    maps_.setSlotState(slot, gen << 1);
    maps_.writeSlot(slot, set.priority, set.expiry_ns);
    maps_.zeroCounters(slot);

    for (auto& e : entries) {
        const int row = acquireMask(e.mask);
        if (row < 0) {
            rollback(slot, rec);
            return PublishError{Kind::MasksFull, "all tuple-space masks in use"};
        }
        e.key.mask_id = static_cast<uint8_t>(row);
        const KeyBytes kb = bytesOf(e.key);
        xtap_rule& r = rules_[kb];
        bool already = false;
        for (uint32_t i = 0; i < r.count; ++i) already |= r.refs[i].slot == slot;
        if (already) {  // two filters of this criterion share a key
            releaseMask(row);
            continue;
        }
        if (r.count >= XTAP_MAX_REFS_PER_RULE) {
            releaseMask(row);
            rollback(slot, rec);
            return PublishError{Kind::SharedKeyFull,
                                "more than " + std::to_string(XTAP_MAX_REFS_PER_RULE) +
                                    " criteria share one masked key"};
        }
        r.refs[r.count++] = {slot, gen};
        rec.keys.push_back(kb);
        rec.mask_rows.push_back(row);
        if (!maps_.putRule(e.key, r)) {
            rollback(slot, rec);
            return PublishError{Kind::RulesFull, "the kernel refused a rule (map full)"};
        }
    }

    for (const auto& f : set.filters) {
        const auto anchor = anchorOf(f);
        if (!anchor) {
            ++rec.wide;
            continue;
        }
        PrefixKey pk{f.family, *anchor};
        auto [it, inserted] = prefix_refs_.try_emplace(pk, 0);
        if (inserted) {
            if (prefix_refs_.size() > capacity_.prefixes || !maps_.addPrefix(f.family, *anchor)) {
                prefix_refs_.erase(it);
                rollback(slot, rec);
                return PublishError{Kind::PrefixesFull, "prefilter capacity reached"};
            }
        }
        ++it->second;
        rec.anchors.push_back(pk);
    }
    if (rec.wide) {
        wide_ += rec.wide;
        maps_.setWideCount(wide_);
    }

    // The one store that makes the whole criterion visible.
    maps_.setSlotState(slot, gen << 1 | XTAP_SLOT_ENABLED);
    rec.live = true;
    ++live_;
    return SlotRef{slot, gen};
}

bool DataPlane::isLive(SlotRef ref) const {
    return ref.slot < slots_.size() && slots_[ref.slot].live && slots_[ref.slot].gen == ref.gen;
}

void DataPlane::withdraw(SlotRef ref) {
    if (!isLive(ref)) return;
    SlotRecord& rec = slots_[ref.slot];
    // The one store that makes the whole criterion vanish.
    maps_.setSlotState(ref.slot, rec.gen << 1);
    --live_;
    rollback(ref.slot, rec);
}

void DataPlane::setExpiry(SlotRef ref, uint64_t expiry_ns) {
    if (isLive(ref)) maps_.setSlotExpiry(ref.slot, expiry_ns);
}

void DataPlane::setPriority(SlotRef ref, uint16_t priority) {
    if (isLive(ref)) maps_.setSlotPriority(ref.slot, priority);
}

SlotCounters DataPlane::counters(SlotRef ref) const {
    if (!isLive(ref)) return {};
    return maps_.readCounters(ref.slot);
}

}  // namespace xtap::dataplane
