#include "dataplane/FragmentReorderer.h"

#include <algorithm>

#include "dataplane/ReferenceMatcher.h"
#include "xtap_abi.h"

namespace xtap::dataplane {

std::vector<uint32_t> FragmentReorderer::minus(const std::vector<uint32_t>& a,
                                               const std::vector<uint32_t>& b) {
    std::vector<uint32_t> out;
    for (uint32_t x : a)
        if (std::find(b.begin(), b.end(), x) == b.end()) out.push_back(x);
    return out;
}

void FragmentReorderer::onCopy(std::span<const uint8_t> frame, std::span<const uint32_t> slots,
                               uint16_t meta_flags, uint64_t now_ns, const Deliver& deliver) {
    const bool pending = meta_flags & XTAP_META_PENDING_FRAG;
    const auto fields = parseFrame(frame);
    if (!fields || fields->frag == PacketFields::Frag::None) {
        if (!slots.empty()) deliver(frame, slots, false);
        return;
    }
    const Key key{static_cast<uint8_t>(fields->family), fields->src, fields->dst, fields->frag_id};

    if (fields->frag == PacketFields::Frag::First) {
        if (!slots.empty()) deliver(frame, slots, false);
        std::vector<uint32_t> first(slots.begin(), slots.end());
        firsts_[key] = {first, now_ns};
        auto it = pending_.find(key);
        if (it == pending_.end()) return;
        for (auto& held : it->second) {
            const auto late = minus(first, held.delivered);
            if (!late.empty()) {
                deliver(held.frame, late, true);
                ++stats_.released;
            }
            --pending_count_;
            pending_bytes_ -= held.frame.size();
        }
        pending_.erase(it);
        return;
    }

    // A later fragment.
    if (!slots.empty()) deliver(frame, slots, false);
    if (!pending) return;
    std::vector<uint32_t> delivered(slots.begin(), slots.end());
    if (auto f = firsts_.find(key); f != firsts_.end() && now_ns - f->second.seen_ns < options_.window_ns) {
        // The first fragment's copy overtook this one on the way here.
        const auto late = minus(f->second.slots, delivered);
        if (!late.empty()) {
            deliver(frame, late, true);
            ++stats_.released;
        }
        return;
    }
    if (pending_count_ >= options_.max_pending || pending_bytes_ + frame.size() > options_.max_bytes) {
        ++stats_.overflow;
        return;
    }
    pending_[key].push_back({std::vector<uint8_t>(frame.begin(), frame.end()), delivered, now_ns});
    ++pending_count_;
    pending_bytes_ += frame.size();
    ++stats_.held;
}

void FragmentReorderer::expire(uint64_t now_ns) {
    for (auto it = pending_.begin(); it != pending_.end();) {
        auto& list = it->second;
        const auto old = std::remove_if(list.begin(), list.end(), [&](const Held& h) {
            if (now_ns - h.arrived_ns < options_.window_ns) return false;
            ++stats_.expired;
            --pending_count_;
            pending_bytes_ -= h.frame.size();
            return true;
        });
        list.erase(old, list.end());
        it = list.empty() ? pending_.erase(it) : std::next(it);
    }
    for (auto it = firsts_.begin(); it != firsts_.end();)
        it = now_ns - it->second.seen_ns >= options_.window_ns ? firsts_.erase(it) : std::next(it);
}

}  // namespace xtap::dataplane
