#include "delivery/RateLimit.h"

#include <algorithm>

namespace xtap::delivery {

TokenBucket::TokenBucket(uint64_t bits_per_second, Clock::time_point now)
    : rate_bytes_per_s_(bits_per_second / 8),
      capacity_(rate_bytes_per_s_),
      tokens_(capacity_),
      last_(now) {}

void TokenBucket::refill(Clock::time_point now) {
    if (now <= last_) return;  // a clock that does not advance adds nothing
    const auto ns = std::chrono::duration_cast<std::chrono::nanoseconds>(now - last_).count();
    last_ = now;
    // More than a second idle fills the bucket anyway; this also bounds the product.
    if (ns >= 1'000'000'000) {
        tokens_ = capacity_;
        carry_ns_bytes_ = 0;
        return;
    }
    // 128 bits: any configured rate times up to a second of nanoseconds fits.
    const unsigned __int128 scaled =
        (unsigned __int128)rate_bytes_per_s_ * uint64_t(ns) + carry_ns_bytes_;
    carry_ns_bytes_ = uint64_t(scaled % 1'000'000'000);
    const uint64_t added = uint64_t(scaled / 1'000'000'000);  // < capacity_: less than a second
    tokens_ = std::min(capacity_, tokens_ + std::min(added, capacity_));
    if (tokens_ == capacity_) carry_ns_bytes_ = 0;
}

bool TokenBucket::admit(uint64_t bytes, uint16_t priority, Clock::time_point now) {
    if (unlimited()) return true;
    refill(now);
    const uint64_t floor = priority <= kReservedPriority ? 0 : capacity_ / kReserveDivisor;
    if (tokens_ < bytes || tokens_ - bytes < floor) return false;
    tokens_ -= bytes;
    return true;
}

void RateWindow::closeSecond() {
    seconds_[next_] = current_;
    next_ = (next_ + 1) % kSeconds;
    filled_ = std::min(filled_ + 1, kSeconds);
    current_ = 0;
}

uint64_t RateWindow::averageBps() const {
    if (!full()) return 0;
    uint64_t sum = 0;
    for (uint64_t s : seconds_) sum += s;
    return sum * 8 / kSeconds;
}

}  // namespace xtap::delivery
