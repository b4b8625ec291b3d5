// ParkedCopies: copies a copy thread read from its AF_XDP rings while the
// controller's lock was held elsewhere (the tick, a state save, a large LIST:
// tens of ms to a second at 100,000 criteria), kept in arrival order until the
// thread gets the lock. The rings go on draining meanwhile: a 2,048-entry ring
// overflows in 34 ms at 60,000 copies/s. Then they are handed on a slice at a
// time, the rings read between slices, and what the rings bring meanwhile goes
// behind them, so that one flow's copies stay in order. Bounded: once full,
// copies stay in the ring, which counts what it cannot hold as before.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <utility>
#include <vector>

#include "xtap_abi.h"

namespace xtap::dataplane {

class ParkedCopies {
  public:
    static constexpr size_t kDefaultMaxBytes = 16u << 20;  // per copy thread

    explicit ParkedCopies(size_t max_bytes = kDefaultMaxBytes) : max_bytes_(max_bytes) {}

    // Frame bytes and records of the copies still parked.
    size_t bytes() const {
        if (empty()) return 0;
        return bytes_.size() - entries_[head_].offset + size() * sizeof(Entry);
    }
    bool full() const { return bytes() >= max_bytes_; }
    bool empty() const { return head_ == entries_.size(); }
    size_t size() const { return entries_.size() - head_; }

    // Keeps a copy of the frame and of its metadata (null: it had none),
    // behind the ones parked before it.
    void park(std::span<const uint8_t> frame, const xtap_copy_meta* meta) {
        Entry e{bytes_.size(), frame.size(), meta != nullptr, {}};
        if (meta) e.meta = *meta;
        bytes_.insert(bytes_.end(), frame.begin(), frame.end());
        entries_.push_back(e);
    }

    // Hands the oldest `max` parked copies to fn(frame, meta) in arrival
    // order and forgets them; the caller reads its rings between two calls.
    // Returns how many it handed on.
    template <typename Fn>
    size_t drain(size_t max, Fn&& fn) {
        size_t n = 0;
        for (; n < max && !empty(); ++n, ++head_) {
            const Entry& e = entries_[head_];
            fn(std::span<const uint8_t>(bytes_.data() + e.offset, e.length),
               e.has_meta ? &e.meta : nullptr);
        }
        if (empty()) {
            forgetAll();
        } else if (head_ > entries_.size() / 2) {
            compact();  // what was handed on goes, once it is half the records
        }
        return n;
    }
    template <typename Fn>
    size_t drain(Fn&& fn) {
        return drain(SIZE_MAX, std::forward<Fn>(fn));
    }
    // For tests: what the buffers keep allocated.
    size_t capacity() const { return bytes_.capacity() + entries_.capacity() * sizeof(Entry); }

  private:
    struct Entry {
        size_t offset;
        size_t length;
        bool has_meta;
        xtap_copy_meta meta;
    };
    // Empty: a large buffer goes too, so one long wait does not stay resident.
    void forgetAll() {
        entries_.clear();
        bytes_.clear();
        head_ = 0;
        if (capacity() > max_bytes_ / 4) {
            std::vector<uint8_t>().swap(bytes_);
            std::vector<Entry>().swap(entries_);
        }
    }
    void compact() {
        const size_t first = entries_[head_].offset;
        bytes_.erase(bytes_.begin(), bytes_.begin() + static_cast<std::ptrdiff_t>(first));
        entries_.erase(entries_.begin(), entries_.begin() + static_cast<std::ptrdiff_t>(head_));
        for (Entry& e : entries_) e.offset -= first;
        head_ = 0;
    }

    size_t max_bytes_;
    std::vector<uint8_t> bytes_;
    std::vector<Entry> entries_;
    size_t head_ = 0;  // entries_ before it were handed on
};

}  // namespace xtap::dataplane
