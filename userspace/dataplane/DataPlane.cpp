#include "dataplane/DataPlane.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <tuple>

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
    // An empty prefilter: no hashed lengths, nothing wide, no fallback.
    for (Family f : {Family::V4, Family::V6}) {
        writeLengths(f);
        maps_.setWide(f, false);
        maps_.setFallback(f, false);
    }
}

DataPlane::DataPlane(MapWriter& maps, Capacity capacity, MapContents previous)
    : maps_(maps), capacity_(capacity), slots_(capacity.slots), previous_(std::move(previous)) {
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
    // The classifier fills the egress field before it scans a row that compares it.
    if (spec.oifindex) maps_.setEgress(true);
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
    if (!previous_) maps_.deactivateMask(row);
    uint32_t count = mask_count_;
    while (count > 0 && !masks_[count - 1]) --count;
    if (count != mask_count_) {
        mask_count_ = count;
        if (!previous_) maps_.setMaskCount(count);
    }
    if (!previous_) maps_.setEgress(usesEgress());
}

bool DataPlane::usesEgress() const {
    return std::any_of(masks_.begin(), masks_.end(),
                       [](const auto& m) { return m && m->spec.oifindex; });
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
        if (!previous_) maps_.deleteRule(k);
        rules_.erase(it);
    } else if (!previous_) {
        maps_.putRule(k, r);
    }
}

void DataPlane::rollback(uint32_t slot, SlotRecord& rec) {
    for (const SlotRecord::Key& k : rec.keys) {
        removeRef(k.bytes, slot);
        releaseMask(k.mask_row);
    }
    for (auto it = rec.anchors.rbegin(); it != rec.anchors.rend(); ++it) releaseAnchor(*it);
    rec.keys.clear();
    rec.anchors.clear();
    rec.live = false;
    free_slots_.push_back(slot);
}

xtap_maskset DataPlane::masksetOf(const RowRefs& rows) {
    xtap_maskset m{};
    for (const auto& [row, refs] : rows) m.bits[row / 64] |= 1ull << (row % 64);
    return m;
}

void DataPlane::writeLengths(Family f) {
    uint32_t packed = 0xffffffffu;  // XTAP_ANCHOR_LEN_NONE in every byte
    const auto& lens = prefilterOf(f).hashed_lengths;
    for (size_t i = 0; i < lens.size(); ++i) {
        packed &= ~(0xffu << (8 * i));
        packed |= uint32_t(lens[i]) << (8 * i);
    }
    maps_.setAnchorLengths(f, packed);
}

std::optional<std::string> DataPlane::addAnchor(const Filter& f, uint32_t row, SlotRecord& rec) {
    auto& pf = prefilterOf(f.family);
    auto anchor = anchorOf(f);
    const bool v4 = f.family == Family::V4;
    if (!anchor) {
        if (pf.wide_rows[row]++ == 0 && !previous_) {
            maps_.writeMaskSet(v4 ? XTAP_MASKSET_WIDE4 : XTAP_MASKSET_WIDE6,
                               masksetOf(pf.wide_rows));
            maps_.setWide(f.family, true);
        }
        rec.anchors.push_back({AnchorUse::Kind::Wide, {f.family, {}}, row});
        return std::nullopt;
    }
    // IPv6 anchors longer than /64 are filed under their /64: one hashed
    // length serves hosts and subscriber /64s alike (two lookups a packet,
    // not four). Coarser is still correct: the prefilter only has to be a
    // superset; the rules decide.
    Prefix coarse = *anchor;
    if (f.family == Family::V6 && coarse.len > 64) {
        coarse.len = 64;
        std::fill(coarse.addr.begin() + 8, coarse.addr.end(), 0);
    }
    anchor = coarse;
    const PrefixKey key{f.family, *anchor};
    const bool hashed_length = std::find(pf.hashed_lengths.begin(), pf.hashed_lengths.end(),
                                         anchor->len) != pf.hashed_lengths.end();
    if (hashed_length || pf.hashed_lengths.size() < XTAP_ANCHOR_LENS) {
        auto [it, inserted] = hashed_anchors_.try_emplace(key);
        if (inserted && anchorCount() > capacity_.prefixes) {
            hashed_anchors_.erase(it);
            return "prefilter capacity reached";
        }
        const bool new_row = it->second[row]++ == 0;
        if (new_row && !previous_ && !maps_.putAnchor(f.family, *anchor, masksetOf(it->second))) {
            if (--it->second[row] == 0) it->second.erase(row);
            if (it->second.empty()) hashed_anchors_.erase(it);
            return "the kernel refused a prefilter entry (map full)";
        }
        if (pf.length_refs[anchor->len]++ == 0) {
            pf.hashed_lengths.push_back(anchor->len);
            if (!previous_) writeLengths(f.family);
        }
        rec.anchors.push_back({AnchorUse::Kind::Hashed, key, row});
        return std::nullopt;
    }
    // More distinct lengths than the hash stage takes: the LPM fallback.
    auto [it, inserted] = fallback_prefixes_.try_emplace(key, 0);
    if (inserted && (anchorCount() > capacity_.prefixes ||
                     (!previous_ && !maps_.addPrefix(f.family, *anchor)))) {
        fallback_prefixes_.erase(it);
        return "prefilter capacity reached";
    }
    ++it->second;
    if (pf.fallback_rows[row]++ == 0 && !previous_)
        maps_.writeMaskSet(v4 ? XTAP_MASKSET_FALLBACK4 : XTAP_MASKSET_FALLBACK6,
                           masksetOf(pf.fallback_rows));
    if (!previous_) maps_.setFallback(f.family, true);
    rec.anchors.push_back({AnchorUse::Kind::Fallback, key, row});
    return std::nullopt;
}

void DataPlane::releaseAnchor(const AnchorUse& use) {
    const Family fam = use.anchor.family;
    auto& pf = prefilterOf(fam);
    const bool v4 = fam == Family::V4;
    auto dropRow = [&](RowRefs& rows) {
        auto it = rows.find(use.row);
        if (it == rows.end() || --it->second > 0) return false;
        rows.erase(it);
        return true;
    };
    switch (use.kind) {
        case AnchorUse::Kind::Wide:
            if (dropRow(pf.wide_rows)) {
                if (previous_) return;
                if (pf.wide_rows.empty()) maps_.setWide(fam, false);
                maps_.writeMaskSet(v4 ? XTAP_MASKSET_WIDE4 : XTAP_MASKSET_WIDE6,
                                   masksetOf(pf.wide_rows));
            }
            return;
        case AnchorUse::Kind::Hashed: {
            auto it = hashed_anchors_.find(use.anchor);
            if (it == hashed_anchors_.end()) return;
            if (dropRow(it->second)) {
                if (it->second.empty()) {
                    if (!previous_) maps_.deleteAnchor(fam, use.anchor.prefix);
                    hashed_anchors_.erase(it);
                } else if (!previous_) {
                    maps_.putAnchor(fam, use.anchor.prefix, masksetOf(it->second));
                }
            }
            const uint8_t len = use.anchor.prefix.len;
            if (--pf.length_refs[len] == 0) {
                pf.length_refs.erase(len);
                pf.hashed_lengths.erase(
                    std::find(pf.hashed_lengths.begin(), pf.hashed_lengths.end(), len));
                if (!previous_) writeLengths(fam);
            }
            return;
        }
        case AnchorUse::Kind::Fallback: {
            auto it = fallback_prefixes_.find(use.anchor);
            if (it != fallback_prefixes_.end() && --it->second == 0) {
                if (!previous_) maps_.removePrefix(fam, use.anchor.prefix);
                fallback_prefixes_.erase(it);
            }
            if (dropRow(pf.fallback_rows) && !previous_) {
                if (pf.fallback_rows.empty()) maps_.setFallback(fam, false);
                maps_.writeMaskSet(v4 ? XTAP_MASKSET_FALLBACK4 : XTAP_MASKSET_FALLBACK6,
                                   masksetOf(pf.fallback_rows));
            }
            return;
        }
    }
}

std::optional<PublishError> DataPlane::expand(const FilterSet& set, std::vector<RuleEntry>& entries,
                                              std::vector<size_t>& filter_of) const {
    using Kind = PublishError::Kind;
    for (size_t i = 0; i < set.filters.size(); ++i) {
        const std::string why = validate(set.filters[i]);
        if (!why.empty())
            return PublishError{Kind::InvalidFilter, "filter " + std::to_string(i) + ": " + why};
        auto e = expandFilter(set.filters[i]);
        entries.insert(entries.end(), e.begin(), e.end());
        filter_of.insert(filter_of.end(), e.size(), i);
    }
    if (set.filters.empty()) return PublishError{Kind::InvalidFilter, "no filters"};
    return std::nullopt;
}

std::optional<PublishError> DataPlane::place(const FilterSet& set, std::vector<RuleEntry>& entries,
                                             const std::vector<size_t>& filter_of, uint32_t slot) {
    using Kind = PublishError::Kind;
    SlotRecord& rec = slots_[slot];
    const uint32_t gen = rec.gen;
    for (size_t ei = 0; ei < entries.size(); ++ei) {
        auto& e = entries[ei];
        const int row = previous_ ? adoptMask(e.mask) : acquireMask(e.mask);
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
            return PublishError{Kind::SharedKeyFull, "more than " +
                                                         std::to_string(XTAP_MAX_REFS_PER_RULE) +
                                                         " criteria share one masked key"};
        }
        r.refs[r.count++] = {slot, gen};
        rec.keys.push_back({kb, static_cast<uint32_t>(row)});
        // While restoring, the maps hold this rule already: finishRestore() writes it.
        if (!previous_ && !maps_.putRule(e.key, r)) {
            rollback(slot, rec);
            return PublishError{Kind::RulesFull, "the kernel refused a rule (map full)"};
        }
        // The prefilter learns the mask only once its rule is in place.
        if (auto err = addAnchor(set.filters[filter_of[ei]], row, rec)) {
            rollback(slot, rec);
            return PublishError{Kind::PrefixesFull, *err};
        }
    }
    rec.live = true;
    ++live_;
    return std::nullopt;
}

PublishResult DataPlane::publish(const FilterSet& set) {
    using Kind = PublishError::Kind;
    if (previous_) return PublishError{Kind::NoSlot, "restoring: publish after finishRestore()"};
    std::vector<RuleEntry> entries;
    std::vector<size_t> filter_of;  // entry -> index of its filter
    if (auto err = expand(set, entries, filter_of)) return *err;
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

    if (auto err = place(set, entries, filter_of, slot)) return *err;

    // The one store that makes the whole criterion visible.
    maps_.setSlotState(slot, gen << 1 | XTAP_SLOT_ENABLED);
    return SlotRef{slot, gen};
}

// --- restart ---------------------------------------------------------------------

int DataPlane::adoptMask(const MaskSpec& spec) {
    xtap_mask wanted = spec.toAbi();
    auto same = [&wanted](const xtap_mask& m) {
        xtap_mask held = m;
        held.active = wanted.active;
        return std::memcmp(&held, &wanted, sizeof held) == 0;
    };
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row) {
        if (masks_[row] && masks_[row]->spec == spec) {
            ++masks_[row]->refs;
            return static_cast<int>(row);
        }
    }
    // The row the previous controller wrote for it: its rules name that row.
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row) {
        if (!masks_[row] && previous_->masks[row] && same(*previous_->masks[row])) {
            masks_[row] = MaskRow{spec, 1};
            mask_count_ = std::max(mask_count_, row + 1);
            return static_cast<int>(row);
        }
    }
    // A row nobody uses: written now, harmless before its rules exist.
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row) {
        if (!masks_[row] && !previous_->masks[row]) {
            masks_[row] = MaskRow{spec, 1};
            if (spec.oifindex) maps_.setEgress(true);
            maps_.writeMask(row, wanted);
            mask_count_ = std::max(mask_count_, row + 1);
            return static_cast<int>(row);
        }
    }
    return -1;
}

PublishResult DataPlane::restore(const FilterSet& set, SlotRef ref) {
    using Kind = PublishError::Kind;
    const bool held = previous_ && ref.slot < slots_.size() &&
                      ref.slot < previous_->slot_states.size() && !slots_[ref.slot].live &&
                      previous_->slot_states[ref.slot] == (ref.gen << 1 | XTAP_SLOT_ENABLED);
    if (!held) return PublishError{Kind::NoSlot, "the maps do not hold this criterion"};
    std::vector<RuleEntry> entries;
    std::vector<size_t> filter_of;
    if (auto err = expand(set, entries, filter_of)) return *err;
    if (rules_.size() + entries.size() > capacity_.rules)
        return PublishError{Kind::RulesFull, "rule map capacity reached"};

    free_slots_.erase(std::find(free_slots_.begin(), free_slots_.end(), ref.slot));
    slots_[ref.slot].gen = ref.gen;
    // Priority and expiry as the caller has them now; state and counters stay.
    maps_.writeSlot(ref.slot, set.priority, set.expiry_ns);
    if (auto err = place(set, entries, filter_of, ref.slot)) return *err;
    return ref;
}

namespace {
// The prefilter key as the maps hold it: bytes past the length are zero.
std::pair<Family, Prefix> normalized(Family f, Prefix p) {
    const size_t size = f == Family::V4 ? 4 : 16;
    for (size_t i = 0; i < p.addr.size(); ++i) {
        const int bits = static_cast<int>(p.len) - static_cast<int>(i * 8);
        if (i >= size || bits <= 0) {
            p.addr[i] = 0;
        } else if (bits < 8) {
            p.addr[i] &= static_cast<uint8_t>(0xff00u >> bits);
        }
    }
    return {f, p};
}

struct PrefixLess {
    bool operator()(const std::pair<Family, Prefix>& a, const std::pair<Family, Prefix>& b) const {
        return std::tie(a.first, a.second.len, a.second.addr) <
               std::tie(b.first, b.second.len, b.second.addr);
    }
};
}  // namespace

void DataPlane::finishRestore() {
    if (!previous_) return;
    const MapContents prev = std::move(*previous_);
    previous_.reset();

    // New things first: rows, rules, slots, prefilter. Meanwhile the
    // classifier scans the rows of both controllers.
    uint32_t prev_count = 0;
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row)
        if (prev.masks[row]) prev_count = row + 1;
    maps_.setMaskCount(std::max(prev_count, mask_count_));
    bool prev_egress = false;
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row)
        prev_egress |= prev.masks[row] && prev.masks[row]->oifindex_mask != 0;
    maps_.setEgress(prev_egress || usesEgress());
    for (const auto& [kb, rule] : rules_) {
        xtap_key k;
        std::memcpy(&k, kb.data(), sizeof k);
        maps_.putRule(k, rule);
    }
    for (uint32_t s = 0; s < slots_.size(); ++s) {
        if (slots_[s].live) continue;
        const uint32_t state = s < prev.slot_states.size() ? prev.slot_states[s] : 0;
        // The next publish in this slot moves past the generation its old rules carried.
        slots_[s].gen = state >> 1;
        if (state & XTAP_SLOT_ENABLED) maps_.setSlotState(s, state & ~XTAP_SLOT_ENABLED);
    }
    for (const auto& [key, rows] : hashed_anchors_)
        maps_.putAnchor(key.family, key.prefix, masksetOf(rows));
    for (const auto& [key, refs] : fallback_prefixes_) maps_.addPrefix(key.family, key.prefix);
    for (Family f : {Family::V4, Family::V6}) {
        const bool v4 = f == Family::V4;
        const auto& pf = prefilterOf(f);
        maps_.writeMaskSet(v4 ? XTAP_MASKSET_WIDE4 : XTAP_MASKSET_WIDE6, masksetOf(pf.wide_rows));
        maps_.writeMaskSet(v4 ? XTAP_MASKSET_FALLBACK4 : XTAP_MASKSET_FALLBACK6,
                           masksetOf(pf.fallback_rows));
        maps_.setWide(f, !pf.wide_rows.empty());
        maps_.setFallback(f, !pf.fallback_rows.empty());
        writeLengths(f);
    }

    // Then whatever only the previous controller used.
    for (const xtap_key& k : prev.rules)
        if (!rules_.count(bytesOf(k))) maps_.deleteRule(k);
    std::set<std::pair<Family, Prefix>, PrefixLess> hashed, fallback;
    for (const auto& [key, rows] : hashed_anchors_)
        hashed.insert(normalized(key.family, key.prefix));
    for (const auto& [key, refs] : fallback_prefixes_)
        fallback.insert(normalized(key.family, key.prefix));
    for (const auto& [f, p] : prev.anchors)
        if (!hashed.count(normalized(f, p))) maps_.deleteAnchor(f, p);
    for (const auto& [f, p] : prev.prefixes)
        if (!fallback.count(normalized(f, p))) maps_.removePrefix(f, p);
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row)
        if (prev.masks[row] && !masks_[row]) maps_.deactivateMask(row);
    maps_.setMaskCount(mask_count_);
    maps_.setEgress(usesEgress());
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

void DataPlane::countReleased(uint32_t slot, uint64_t packets, uint64_t bytes) {
    if (slot < slots_.size() && slots_[slot].live) maps_.addReleased(slot, packets, bytes);
}

SlotCounters DataPlane::counters(SlotRef ref) const {
    if (!isLive(ref)) return {};
    return maps_.readCounters(ref.slot);
}

}  // namespace xtap::dataplane
