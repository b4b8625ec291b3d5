// Per content destination rate limit (dtcp.md §11, §14): a token bucket in
// bytes of UDP payload with priority shedding. Pure: the caller passes the
// time, so tests drive it with a made-up clock.
//
// Shedding: the bucket holds one second of the configured rate. The last
// quarter of it is reserved for the most important class (effective Priority
// 0 or 1, the DTCP default); a copy of any less important criterion is only
// admitted while more than that quarter would remain. So under overload the
// lower-importance copies (higher Priority value) go first, and the important
// ones keep flowing until the bucket is truly empty.
#pragma once

#include <chrono>
#include <cstdint>

#include "xtap_abi.h"  // the reserve rule, shared with the copy gate

namespace xtap::delivery {

class TokenBucket {
  public:
    using Clock = std::chrono::steady_clock;

    // Copies with a Priority at or below this use the reserve.
    static constexpr uint16_t kReservedPriority = XTAP_RESERVED_PRIORITY;
    static constexpr uint64_t kReserveDivisor = XTAP_RESERVE_DIVISOR;  // reserve = capacity / 4

    // bits_per_second 0 = unlimited: admit() always says yes.
    TokenBucket(uint64_t bits_per_second, Clock::time_point now);

    // True if a copy of `bytes` may go now; takes its tokens if so.
    bool admit(uint64_t bytes, uint16_t priority, Clock::time_point now);

    uint64_t capacityBytes() const { return capacity_; }
    uint64_t tokens() const { return tokens_; }
    bool unlimited() const { return rate_bytes_per_s_ == 0; }

  private:
    void refill(Clock::time_point now);

    uint64_t rate_bytes_per_s_;
    uint64_t capacity_;  // one second of rate
    uint64_t tokens_;
    Clock::time_point last_;
    uint64_t carry_ns_bytes_ = 0;  // remainder of rate * ns not yet a whole byte (in byte*ns)
};

// Average rate over a sliding window of whole seconds, to tell when a Cdest
// has stayed above its alert bandwidth (580, dtcp.md §14). Feed it every byte
// admitted; ask at each tick.
class RateWindow {
  public:
    static constexpr unsigned kSeconds = 10;

    void add(uint64_t bytes) { current_ += bytes; }
    // Called once a second: closes the current second.
    void closeSecond();
    // Average bits/s over the last kSeconds closed seconds; 0 until full.
    uint64_t averageBps() const;
    bool full() const { return filled_ >= kSeconds; }

  private:
    uint64_t seconds_[kSeconds]{};
    unsigned next_ = 0;
    unsigned filled_ = 0;
    uint64_t current_ = 0;
};

}  // namespace xtap::delivery
