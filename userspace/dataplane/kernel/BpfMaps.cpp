#include "dataplane/kernel/BpfMaps.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
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
      masks_map_(mapArray(obj, "masks")),
      slots_map_(mapArray(obj, "slots")),
      masksets_map_(mapArray(obj, "masksets")),
      control_(control_map_.as<xtap_control>()),
      masksets_(masksets_map_.as<xtap_maskset>()),
      masks_(masks_map_.as<xtap_mask>()),
      slots_(slots_map_.as<xtap_slot>()) {
    if (ncpus_ <= 0) throw std::system_error(-ncpus_, std::generic_category(), "possible CPUs");
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

void BpfMaps::deactivateMask(uint32_t row) { store(masks_[row].active, 0u); }

void BpfMaps::setMaskCount(uint32_t count) { store(control_->mask_count, count); }

bool BpfMaps::putRule(const xtap_key& key, const xtap_rule& rule) {
    return bpf_map_update_elem(rules_fd_, &key, &rule, BPF_ANY) == 0;
}

void BpfMaps::deleteRule(const xtap_key& key) { bpf_map_delete_elem(rules_fd_, &key); }

void BpfMaps::writeSlot(uint32_t slot, uint16_t priority, uint64_t expiry_ns) {
    store(slots_[slot].priority, priority);
    store(slots_[slot].flags, uint16_t{0});
    store(slots_[slot].expiry_ns, expiry_ns);
}

void BpfMaps::setSlotState(uint32_t slot, uint32_t state) { store(slots_[slot].state, state); }

void BpfMaps::setSlotExpiry(uint32_t slot, uint64_t expiry_ns) {
    store(slots_[slot].expiry_ns, expiry_ns);
}

void BpfMaps::setSlotPriority(uint32_t slot, uint16_t priority) {
    store(slots_[slot].priority, priority);
}

SlotCounters BpfMaps::readCounters(uint32_t slot) const {
    std::vector<xtap_slot_stats> per_cpu(static_cast<size_t>(ncpus_));
    SlotCounters sum;
    if (bpf_map_lookup_elem(slot_stats_fd_, &slot, per_cpu.data()) != 0) return sum;
    for (const auto& c : per_cpu) {
        sum.packets += c.packets;
        sum.bytes += c.bytes;
        sum.shed += c.shed;
    }
    return sum;
}

void BpfMaps::zeroCounters(uint32_t slot) {
    std::vector<xtap_slot_stats> zero(static_cast<size_t>(ncpus_));
    bpf_map_update_elem(slot_stats_fd_, &slot, zero.data(), BPF_ANY);
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
    if (family == Family::V4) {
        const auto k = anchorKey<xtap_anchor4>(prefix, 4);
        return bpf_map_update_elem(anchors4_fd_, &k, &masks, BPF_ANY) == 0;
    }
    const auto k = anchorKey<xtap_anchor6>(prefix, 16);
    return bpf_map_update_elem(anchors6_fd_, &k, &masks, BPF_ANY) == 0;
}

void BpfMaps::deleteAnchor(Family family, const Prefix& prefix) {
    if (family == Family::V4) {
        const auto k = anchorKey<xtap_anchor4>(prefix, 4);
        bpf_map_delete_elem(anchors4_fd_, &k);
        return;
    }
    const auto k = anchorKey<xtap_anchor6>(prefix, 16);
    bpf_map_delete_elem(anchors6_fd_, &k);
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

void BpfMaps::setEnabled(bool on) { store(control_->enabled, on ? 1u : 0u); }

void BpfMaps::setShedThreshold(uint32_t threshold) { store(control_->shed_threshold, threshold); }

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

void BpfMaps::removeTransitInterface(uint32_t ifindex) { bpf_map_delete_elem(transit_fd_, &ifindex); }

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

void BpfMaps::clearCriteria() {
    setMaskCount(0);
    for (Family f : {Family::V4, Family::V6}) {
        setAnchorLengths(f, 0xffffffffu);
        setFallback(f, false);
        setWide(f, false);
    }
    for (uint32_t row = 0; row < XTAP_MASKSET_ROWS; ++row) writeMaskSet(row, {});
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row) deactivateMask(row);
    for (uint32_t s = 0; s < slot_capacity_; ++s) store(slots_[s].state, slots_[s].state & ~1u);
    auto clear = [](int fd, size_t key_size) {
        std::vector<uint8_t> key(key_size);
        while (bpf_map_get_next_key(fd, nullptr, key.data()) == 0) bpf_map_delete_elem(fd, key.data());
    };
    clear(rules_fd_, sizeof(xtap_key));
    clear(prefix4_fd_, sizeof(xtap_lpm4));
    clear(prefix6_fd_, sizeof(xtap_lpm6));
    clear(anchors4_fd_, sizeof(xtap_anchor4));
    clear(anchors6_fd_, sizeof(xtap_anchor6));
    clear(frags_fd_, sizeof(xtap_frag_key));
}

}  // namespace xtap::dataplane::kernel
