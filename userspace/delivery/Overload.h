// Overload handling per user content destination (dtcp.md §11, §14): the
// rate limit with priority shedding (TokenBucket), the 580 soft-limit alert
// (10 s average above alert = 80% of max) and the periodic 598 report of
// copies dropped per Cdest and criterion. Pure: the caller passes the time,
// calls tick() once a second and formats what it returns. Never 680.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "delivery/RateLimit.h"

namespace xtap::delivery {

// A configured destination is the user's: (user, Cdest-ID).
struct OverloadKey {
    std::string user;
    std::string cdest_id;
    auto operator<=>(const OverloadKey&) const = default;
};

struct CongestionAlert {  // 580, to `key.user`
    OverloadKey key;
    uint64_t average_bps = 0;
    uint64_t alert_bps = 0;
    uint64_t max_bps = 0;
};

struct DropReport {  // 598, to `key.user`
    OverloadKey key;
    uint32_t criteria_id = 0;
    uint64_t packets = 0;
    uint64_t bytes = 0;
};

struct OverloadTick {
    std::vector<CongestionAlert> alerts;
    std::vector<DropReport> drops;
};

class OverloadMonitor {
  public:
    static constexpr uint64_t kAlertPercent = 80;
    static constexpr unsigned kAlertRepeatSeconds = 10;  // at most one 580 per Cdest per window
    static constexpr unsigned kDropReportSeconds = 10;   // 598 period

    // Sets (or, with 0, removes) the limit of one destination. Keeps the
    // bucket's state when the rate is unchanged.
    void configure(const OverloadKey& key, uint64_t max_bps, TokenBucket::Clock::time_point now);

    // True if a copy of `bytes` for criterion `criteria_id` (effective
    // `priority`) may go to `key` now. A refusal is counted for the next 598.
    // Unconfigured destinations are unlimited.
    bool admit(const OverloadKey& key, uint32_t criteria_id, uint16_t priority, uint64_t bytes,
               TokenBucket::Clock::time_point now);

    // Once a second: closes the rate windows; returns the 580s due and, every
    // kDropReportSeconds, the 598s for drops since the last report.
    OverloadTick tick();

  private:
    struct Limit {
        uint64_t max_bps;
        TokenBucket bucket;
        RateWindow window;
        unsigned quiet_seconds = kAlertRepeatSeconds;  // since the last 580
        std::map<uint32_t, DropReport> drops;          // by Criteria-ID, since the last 598
    };
    std::map<OverloadKey, Limit> limits_;
    unsigned since_report_ = 0;
};

}  // namespace xtap::delivery
