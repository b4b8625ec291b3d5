#include "dataplane/kernel/BpfMaps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstring>
#include <system_error>

namespace xtap::dataplane::kernel {

namespace {

MappedRegion mapArray(const XtapObject& obj, const char* name) {
    bpf_map* m = obj.map(name);
    const size_t page = static_cast<size_t>(::sysconf(_SC_PAGESIZE));
    const size_t value = (bpf_map__value_size(m) + 7) & ~size_t(7);
    const size_t len = ((value * bpf_map__max_entries(m)) + page - 1) & ~(page - 1);
    void* addr = ::mmap(nullptr, len, PROT_READ | PROT_WRITE, MAP_SHARED, bpf_map__fd(m), 0);
    if (addr == MAP_FAILED)
        throw std::system_error(errno, std::generic_category(), std::string("mmap map ") + name);
    return MappedRegion(addr, len);
}

// One CPU's share of a slot's counters.
void add(SlotCounters& sum, const xtap_slot_stats& v) {
    sum.packets += v.packets;
    sum.bytes += v.bytes;
    sum.gated_packets += v.gated_packets;
    sum.gated_bytes += v.gated_bytes;
}

template <typename T, typename V>
void store(T& field, V value) {
    std::atomic_ref<T>(field).store(static_cast<T>(value), std::memory_order_release);
}

}  // namespace

BpfMaps::BpfMaps(const XtapObject& obj)
    : ncpus_(libbpf_num_possible_cpus()),
      slot_capacity_(obj.options().capacity.slots),
      rules_fd_(obj.mapFd("rules")),
      slot_stats_fd_(obj.mapFd("slot_stats")),
      prefix4_fd_(obj.mapFd("prefix4")),
      prefix6_fd_(obj.mapFd("prefix6")),
      anchors4_fd_(obj.mapFd("anchors4")),
      anchors6_fd_(obj.mapFd("anchors6")),
      excludes_fd_(obj.mapFd("excludes")),
      transit_fd_(obj.mapFd("transit_ifs")),
      capture_fd_(obj.mapFd("capture_ifs")),
      stats_fd_(obj.mapFd("stats")),
      frags_fd_(obj.mapFd("frags")),
      control_map_(mapArray(obj, "control")),
      copy_gate_map_(mapArray(obj, "copy_gate")),
      masks_map_(mapArray(obj, "masks")),
      slots_map_(mapArray(obj, "slots")),
      masksets_map_(mapArray(obj, "masksets")),
      anchor_bits_map_(mapArray(obj, "anchor_bits")),
      released_map_(mapArray(obj, "slot_released")),
      control_(control_map_.as<xtap_control>()),
      copy_gate_(copy_gate_map_.as<xtap_copy_gate>()),
      masksets_(masksets_map_.as<xtap_maskset>()),
      masks_(masks_map_.as<xtap_mask>()),
      slots_(slots_map_.as<xtap_slot>()),
      anchor_bits_(anchor_bits_map_.as<uint64_t>()),
      released_(released_map_.as<xtap_slot_released>()) {
    if (ncpus_ <= 0) throw std::system_error(-ncpus_, std::generic_category(), "possible CPUs");
    uint32_t log2_bits = 6;
    while ((1ull << log2_bits) < uint64_t(bpf_map__max_entries(obj.map("anchor_bits"))) * 64)
        ++log2_bits;
    anchor_hash_shift_ = 64 - log2_bits;
    // Anchors an earlier controller left in pinned maps keep their bits.
    auto adopt = [this](int fd, auto sample, Family family, size_t addr_len) {
        decltype(sample) k{}, next{};
        for (bool first = true; bpf_map_get_next_key(fd, first ? nullptr : &k, &next) == 0;
             first = false) {
            k = next;
            Prefix p;
            p.len = k.len;
            std::memcpy(p.addr.data(), k.addr, addr_len);
            const uint64_t bit = anchorBit(family, p);
            if (anchor_bit_refs_[bit]++ == 0) setAnchorBit(bit, true);
        }
    };
    adopt(anchors4_fd_, xtap_anchor4{}, Family::V4, 4);
    adopt(anchors6_fd_, xtap_anchor6{}, Family::V6, 16);
    store(control_->anchor_hash_shift, anchor_hash_shift_);
}

uint64_t BpfMaps::anchorBit(Family family, const Prefix& prefix) const {
    // The masked anchor as the classifier loads it: IPv4 as a 32-bit word,
    // IPv6 as the first 64 bits (anchors are at most /64), memory order.
    const unsigned width = family == Family::V4 ? 32 : 64;
    const unsigned len = std::min<unsigned>(prefix.len, width);
    uint8_t bytes[8] = {};
    for (unsigned i = 0; i < width / 8; ++i) {
        const int bits = static_cast<int>(len) - static_cast<int>(i * 8);
        bytes[i] = bits <= 0   ? 0
                   : bits >= 8 ? prefix.addr[i]
                               : prefix.addr[i] & uint8_t(0xff00u >> bits);
    }
    uint64_t masked = 0;
    if (family == Family::V4) {
        uint32_t w;
        std::memcpy(&w, bytes, 4);
        masked = w;
    } else {
        std::memcpy(&masked, bytes, 8);
    }
    const uint8_t fam = family == Family::V4 ? XTAP_FAMILY_IPV4 : XTAP_FAMILY_IPV6;
    return xtap_anchor_hash(masked, prefix.len, fam) >> anchor_hash_shift_;
}

void BpfMaps::setAnchorBit(uint64_t bit, bool on) {
    std::atomic_ref<uint64_t> word(anchor_bits_[bit / 64]);
    const uint64_t mask = 1ull << (bit % 64);
    if (on)
        word.fetch_or(mask, std::memory_order_release);
    else
        word.fetch_and(~mask, std::memory_order_release);
}

void BpfMaps::writeMask(uint32_t row, const xtap_mask& mask) {
    xtap_mask& dst = masks_[row];
    store(dst.active, 0u);
    xtap_mask copy = mask;
    copy.active = 0;
    std::memcpy(reinterpret_cast<uint8_t*>(&dst) + sizeof(dst.active),
                reinterpret_cast<const uint8_t*>(&copy) + sizeof(copy.active),
                sizeof(copy) - sizeof(copy.active));
    store(dst.active, 1u);
}

void BpfMaps::deactivateMask(uint32_t row) {
    store(masks_[row].active, 0u);
}

void BpfMaps::setMaskCount(uint32_t count) {
    store(control_->mask_count, count);
}

bool BpfMaps::putRule(const xtap_key& key, const xtap_rule& rule) {
    return bpf_map_update_elem(rules_fd_, &key, &rule, BPF_ANY) == 0;
}

void BpfMaps::deleteRule(const xtap_key& key) {
    bpf_map_delete_elem(rules_fd_, &key);
}

void BpfMaps::writeSlot(uint32_t slot, uint16_t priority, uint64_t expiry_ns) {
    store(slots_[slot].priority, priority);
    store(slots_[slot].flags, uint16_t{0});
    store(slots_[slot].expiry_ns, expiry_ns);
}

void BpfMaps::setSlotState(uint32_t slot, uint32_t state) {
    store(slots_[slot].state, state);
}

void BpfMaps::setSlotExpiry(uint32_t slot, uint64_t expiry_ns) {
    store(slots_[slot].expiry_ns, expiry_ns);
}

void BpfMaps::setSlotPriority(uint32_t slot, uint16_t priority) {
    store(slots_[slot].priority, priority);
}

bool BpfMaps::takeCounterSnapshot() {
    auto table = readCounterTable();
    if (!table) {
        snapshot_valid_ = false;  // readCounters goes on reading slot by slot
        return false;
    }
    return installCounterSnapshot(std::move(*table));
}

std::optional<BpfMaps::CounterTable> BpfMaps::readCounterTable() const {
    constexpr uint32_t kChunk = 4096;
    const size_t cpus = static_cast<size_t>(ncpus_);
    CounterTable table;
    table.zeroed_epoch = zeroed_epoch_.load(std::memory_order_acquire);
    table.slots.assign(slot_capacity_, SlotCounters{});
    std::vector<uint32_t> keys(kChunk);
    std::vector<xtap_slot_stats> values(kChunk * cpus);  // 32 bytes: already 8-aligned
    uint32_t in_batch = 0, out_batch = 0;
    bool first = true;
    for (;;) {
        uint32_t count = kChunk;
        const int err =
            bpf_map_lookup_batch(slot_stats_fd_, first ? nullptr : &in_batch, &out_batch,
                                 keys.data(), values.data(), &count, nullptr);
        first = false;
        if (err < 0 && err != -ENOENT) return std::nullopt;
        for (uint32_t i = 0; i < count; ++i) {
            if (keys[i] >= slot_capacity_) continue;
            SlotCounters& sum = table.slots[keys[i]];
            for (size_t c = 0; c < cpus; ++c) add(sum, values[i * cpus + c]);
        }
        if (err == -ENOENT || count == 0) break;  // the whole map was read
        in_batch = out_batch;
    }
    return table;
}

bool BpfMaps::installCounterSnapshot(CounterTable table) {
    if (table.zeroed_epoch != zeroed_epoch_.load(std::memory_order_acquire)) return false;
    snapshot_ = std::move(table.slots);
    snapshot_valid_ = true;
    return true;
}

SlotCounters BpfMaps::readCounters(uint32_t slot) const {
    SlotCounters sum;
    if (snapshot_valid_ && slot < snapshot_.size()) {
        sum = snapshot_[slot];
    } else {
        std::vector<xtap_slot_stats> per_cpu(static_cast<size_t>(ncpus_));
        if (bpf_map_lookup_elem(slot_stats_fd_, &slot, per_cpu.data()) != 0) return sum;
        for (const auto& c : per_cpu) add(sum, c);
    }
    if (slot < slot_capacity_) {
        sum.packets +=
            std::atomic_ref<__u64>(released_[slot].packets).load(std::memory_order_relaxed);
        sum.bytes += std::atomic_ref<__u64>(released_[slot].bytes).load(std::memory_order_relaxed);
    }
    return sum;
}

void BpfMaps::zeroCounters(uint32_t slot) {
    // Before and after the write: a table whose read began before the write
    // ended (it may hold the slot's old counts) carries an older epoch.
    zeroed_epoch_.fetch_add(1, std::memory_order_acq_rel);
    std::vector<xtap_slot_stats> zero(static_cast<size_t>(ncpus_));
    bpf_map_update_elem(slot_stats_fd_, &slot, zero.data(), BPF_ANY);
    zeroed_epoch_.fetch_add(1, std::memory_order_acq_rel);
    if (snapshot_valid_ && slot < snapshot_.size()) snapshot_[slot] = SlotCounters{};
    if (slot < slot_capacity_) {
        store(released_[slot].packets, uint64_t{0});
        store(released_[slot].bytes, uint64_t{0});
    }
}

void BpfMaps::addReleased(uint32_t slot, uint64_t packets, uint64_t bytes) {
    if (slot >= slot_capacity_) return;
    std::atomic_ref<__u64>(released_[slot].packets).fetch_add(packets, std::memory_order_relaxed);
    std::atomic_ref<__u64>(released_[slot].bytes).fetch_add(bytes, std::memory_order_relaxed);
}

bool BpfMaps::addPrefix(Family family, const Prefix& prefix) {
    const uint32_t one = 1;
    if (family == Family::V4) {
        xtap_lpm4 k{prefix.len, {}};
        std::memcpy(k.addr, prefix.addr.data(), 4);
        return bpf_map_update_elem(prefix4_fd_, &k, &one, BPF_ANY) == 0;
    }
    xtap_lpm6 k{prefix.len, {}};
    std::memcpy(k.addr, prefix.addr.data(), 16);
    return bpf_map_update_elem(prefix6_fd_, &k, &one, BPF_ANY) == 0;
}

void BpfMaps::removePrefix(Family family, const Prefix& prefix) {
    if (family == Family::V4) {
        xtap_lpm4 k{prefix.len, {}};
        std::memcpy(k.addr, prefix.addr.data(), 4);
        bpf_map_delete_elem(prefix4_fd_, &k);
        return;
    }
    xtap_lpm6 k{prefix.len, {}};
    std::memcpy(k.addr, prefix.addr.data(), 16);
    bpf_map_delete_elem(prefix6_fd_, &k);
}

namespace {
template <typename K>
K anchorKey(const Prefix& p, size_t addr_len) {
    K k{};
    k.len = p.len;
    std::memcpy(k.addr, p.addr.data(), addr_len);
    return k;
}
}  // namespace

bool BpfMaps::putAnchor(Family family, const Prefix& prefix, const xtap_maskset& masks) {
    const bool v4 = family == Family::V4;
    const int fd = v4 ? anchors4_fd_ : anchors6_fd_;
    const auto k4 = anchorKey<xtap_anchor4>(prefix, 4);
    const auto k6 = anchorKey<xtap_anchor6>(prefix, 16);
    const void* key = v4 ? static_cast<const void*>(&k4) : static_cast<const void*>(&k6);
    // The bit first: the bitmap never hides an anchor the hash holds.
    const uint64_t bit = anchorBit(family, prefix);
    const bool bit_was_set = anchor_bit_refs_.count(bit) > 0;
    if (!bit_was_set) setAnchorBit(bit, true);
    if (bpf_map_update_elem(fd, key, &masks, BPF_NOEXIST) == 0) {
        ++anchor_bit_refs_[bit];
        return true;
    }
    if (errno == EEXIST) return bpf_map_update_elem(fd, key, &masks, BPF_EXIST) == 0;
    if (!bit_was_set) setAnchorBit(bit, false);
    return false;
}

void BpfMaps::deleteAnchor(Family family, const Prefix& prefix) {
    const bool v4 = family == Family::V4;
    const auto k4 = anchorKey<xtap_anchor4>(prefix, 4);
    const auto k6 = anchorKey<xtap_anchor6>(prefix, 16);
    const void* key = v4 ? static_cast<const void*>(&k4) : static_cast<const void*>(&k6);
    if (bpf_map_delete_elem(v4 ? anchors4_fd_ : anchors6_fd_, key) != 0) return;
    // The bit last, and only when no other anchor shares it.
    auto it = anchor_bit_refs_.find(anchorBit(family, prefix));
    if (it != anchor_bit_refs_.end() && --it->second == 0) {
        setAnchorBit(it->first, false);
        anchor_bit_refs_.erase(it);
    }
}

void BpfMaps::setAnchorLengths(Family family, uint32_t packed) {
    store(control_->anchor_lens[family == Family::V4 ? 0 : 1], packed);
}

void BpfMaps::writeMaskSet(uint32_t row, const xtap_maskset& masks) {
    for (unsigned w = 0; w < XTAP_MAX_MASKS / 64; ++w) store(masksets_[row].bits[w], masks.bits[w]);
}

void BpfMaps::setFallback(Family family, bool on) {
    store(control_->fallback[family == Family::V4 ? 0 : 1], on ? 1u : 0u);
}

void BpfMaps::setWide(Family family, bool on) {
    store(control_->wide[family == Family::V4 ? 0 : 1], on ? 1u : 0u);
}

void BpfMaps::setEgress(bool on) {
    store(control_->egress, on ? 1u : 0u);
}

void BpfMaps::setEnabled(bool on) {
    store(control_->enabled, on ? 1u : 0u);
}

void BpfMaps::setCopyDeadline(uint64_t boot_ns) {
    store(copy_gate_->live_until_ns, boot_ns);
}

void BpfMaps::setCopyBudget(uint64_t copies_per_s, uint64_t bits_per_s, uint64_t burst_ns) {
    // Off while it changes; a new budget starts full (what the old one had
    // used up is forgotten).
    store(copy_gate_->interval_ns, 0);
    store(copy_gate_->ps_per_byte, 0);
    store(copy_gate_->burst_ns, burst_ns);
    store(copy_gate_->tat_ns, 0);
    store(copy_gate_->tat_bytes_ns, 0);
    if (bits_per_s)
        store(copy_gate_->ps_per_byte, std::max<uint64_t>(1, 8'000'000'000'000ull / bits_per_s));
    if (copies_per_s)
        store(copy_gate_->interval_ns, std::max<uint64_t>(1, 1'000'000'000ull / copies_per_s));
}

xtap_copy_gate BpfMaps::copyGate() const {
    xtap_copy_gate g;
    std::memcpy(&g, copy_gate_, sizeof g);  // a diagnostic snapshot
    return g;
}

void BpfMaps::addExclude(const xtap_exclude_key& key) {
    const uint8_t one = 1;
    if (bpf_map_update_elem(excludes_fd_, &key, &one, BPF_ANY) != 0)
        throw std::system_error(errno, std::generic_category(), "add exclusion");
    store(control_->excludes, 1u);
}

void BpfMaps::clearExcludes() {
    xtap_exclude_key key{};
    store(control_->excludes, 0u);
    while (bpf_map_get_next_key(excludes_fd_, nullptr, &key) == 0)
        bpf_map_delete_elem(excludes_fd_, &key);
}

void BpfMaps::setTransitInterface(uint32_t ifindex, uint32_t capture_ifindex) {
    xtap_transit_if v{capture_ifindex, 0};
    if (bpf_map_update_elem(transit_fd_, &ifindex, &v, BPF_ANY) != 0)
        throw std::system_error(errno, std::generic_category(), "register transit interface");
}

void BpfMaps::removeTransitInterface(uint32_t ifindex) {
    bpf_map_delete_elem(transit_fd_, &ifindex);
}

void BpfMaps::setCaptureInterface(uint32_t capture_ifindex, uint32_t transit_ifindex,
                                  uint32_t xsk_index) {
    xtap_capture_if v{transit_ifindex, xsk_index};
    if (bpf_map_update_elem(capture_fd_, &capture_ifindex, &v, BPF_ANY) != 0)
        throw std::system_error(errno, std::generic_category(), "register capture interface");
}

void BpfMaps::removeCaptureInterface(uint32_t capture_ifindex) {
    bpf_map_delete_elem(capture_fd_, &capture_ifindex);
}

std::array<uint64_t, XTAP_STAT_MAX> BpfMaps::readStats() const {
    std::array<uint64_t, XTAP_STAT_MAX> out{};
    std::vector<uint64_t> per_cpu(static_cast<size_t>(ncpus_));
    for (uint32_t i = 0; i < XTAP_STAT_MAX; ++i) {
        if (bpf_map_lookup_elem(stats_fd_, &i, per_cpu.data()) != 0) continue;
        for (uint64_t v : per_cpu) out[i] += v;
    }
    return out;
}

xtap_control BpfMaps::control() const {
    xtap_control c;
    std::memcpy(&c, control_, sizeof c);  // a diagnostic snapshot, fields read as they are
    return c;
}

MapContents BpfMaps::readContents() const {
    MapContents c;
    for (uint32_t s = 0; s < slot_capacity_; ++s)
        c.slot_states.push_back(
            std::atomic_ref<uint32_t>(slots_[s].state).load(std::memory_order_acquire));
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row)
        if (std::atomic_ref<uint32_t>(masks_[row].active).load(std::memory_order_acquire))
            c.masks[row] = masks_[row];
    auto keys = [](int fd, auto sample, auto push) {
        decltype(sample) k{}, next{};
        for (bool first = true; bpf_map_get_next_key(fd, first ? nullptr : &k, &next) == 0;
             first = false) {
            k = next;
            push(k);
        }
    };
    keys(rules_fd_, xtap_key{}, [&](const xtap_key& k) { c.rules.push_back(k); });
    auto prefix = [](uint32_t len, const uint8_t* addr, size_t n) {
        Prefix p;
        p.len = static_cast<uint8_t>(len);
        std::memcpy(p.addr.data(), addr, n);
        return p;
    };
    keys(anchors4_fd_, xtap_anchor4{}, [&](const xtap_anchor4& k) {
        c.anchors.push_back({Family::V4, prefix(k.len, k.addr, 4)});
    });
    keys(anchors6_fd_, xtap_anchor6{}, [&](const xtap_anchor6& k) {
        c.anchors.push_back({Family::V6, prefix(k.len, k.addr, 16)});
    });
    keys(prefix4_fd_, xtap_lpm4{}, [&](const xtap_lpm4& k) {
        c.prefixes.push_back({Family::V4, prefix(k.prefixlen, k.addr, 4)});
    });
    keys(prefix6_fd_, xtap_lpm6{}, [&](const xtap_lpm6& k) {
        c.prefixes.push_back({Family::V6, prefix(k.prefixlen, k.addr, 16)});
    });
    return c;
}

void BpfMaps::clearCriteria() {
    setMaskCount(0);
    for (Family f : {Family::V4, Family::V6}) {
        setAnchorLengths(f, 0xffffffffu);
        setFallback(f, false);
        setWide(f, false);
    }
    setEgress(false);
    for (uint32_t row = 0; row < XTAP_MASKSET_ROWS; ++row) writeMaskSet(row, {});
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row) deactivateMask(row);
    for (uint32_t s = 0; s < slot_capacity_; ++s) store(slots_[s].state, slots_[s].state & ~1u);
    auto clear = [](int fd, size_t key_size) {
        std::vector<uint8_t> key(key_size);
        while (bpf_map_get_next_key(fd, nullptr, key.data()) == 0)
            bpf_map_delete_elem(fd, key.data());
    };
    clear(rules_fd_, sizeof(xtap_key));
    clear(prefix4_fd_, sizeof(xtap_lpm4));
    clear(prefix6_fd_, sizeof(xtap_lpm6));
    clear(anchors4_fd_, sizeof(xtap_anchor4));
    clear(anchors6_fd_, sizeof(xtap_anchor6));
    for (const auto& [bit, refs] : anchor_bit_refs_) setAnchorBit(bit, false);
    anchor_bit_refs_.clear();
    clear(frags_fd_, sizeof(xtap_frag_key));
}

}  // namespace xtap::dataplane::kernel
