// ParkedCopies: copies a copy thread read from its AF_XDP rings while the
// controller's lock was held elsewhere (the tick, a state save, a large LIST:
// tens of ms to a second at 100,000 criteria), kept in arrival order until the
// thread gets the lock. The rings go on draining meanwhile: a 2,048-entry ring
// overflows in 34 ms at 60,000 copies/s. Bounded: once full, copies stay in
// the ring, which counts what it cannot hold (xsk.rx_ring_full) as before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "xtap_abi.h"

namespace xtap::dataplane {

class ParkedCopies {
  public:
    static constexpr size_t kDefaultMaxBytes = 16u << 20;  // per copy thread

    explicit ParkedCopies(size_t max_bytes = kDefaultMaxBytes) : max_bytes_(max_bytes) {}

    // Frame bytes and their records together.
    size_t bytes() const { return bytes_.size() + entries_.size() * sizeof(Entry); }
    bool full() const { return bytes() >= max_bytes_; }
    bool empty() const { return entries_.empty(); }
    size_t size() const { return entries_.size(); }

    // Keeps a copy of the frame and of its metadata (null: it had none).
    void park(std::span<const uint8_t> frame, const xtap_copy_meta* meta) {
        Entry e{bytes_.size(), frame.size(), meta != nullptr, {}};
        if (meta) e.meta = *meta;
        bytes_.insert(bytes_.end(), frame.begin(), frame.end());
        entries_.push_back(e);
    }

    // Hands each parked copy to fn(frame, meta) in arrival order, then forgets
    // them, and a large buffer with them: one long wait stays not resident.
    template <typename Fn>
    void drain(Fn&& fn) {
        for (const Entry& e : entries_)
            fn(std::span<const uint8_t>(bytes_.data() + e.offset, e.length),
               e.has_meta ? &e.meta : nullptr);
        entries_.clear();
        bytes_.clear();
        if (bytes_.capacity() + entries_.capacity() * sizeof(Entry) > max_bytes_ / 4) {
            std::vector<uint8_t>().swap(bytes_);
            std::vector<Entry>().swap(entries_);
        }
    }
    // For tests: what drain() keeps allocated.
    size_t capacity() const { return bytes_.capacity() + entries_.capacity() * sizeof(Entry); }

  private:
    struct Entry {
        size_t offset;
        size_t length;
        bool has_meta;
        xtap_copy_meta meta;
    };
    size_t max_bytes_;
    std::vector<uint8_t> bytes_;
    std::vector<Entry> entries_;
};

}  // namespace xtap::dataplane
