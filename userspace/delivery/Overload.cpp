#include "delivery/Overload.h"

namespace xtap::delivery {

void OverloadMonitor::configure(const OverloadKey& key, uint64_t max_bps,
                                TokenBucket::Clock::time_point now) {
    if (max_bps == 0) {
        limits_.erase(key);
        return;
    }
    auto it = limits_.find(key);
    if (it != limits_.end() && it->second.max_bps == max_bps) return;
    if (it != limits_.end()) limits_.erase(it);
    limits_.emplace(key, Limit{max_bps, TokenBucket(max_bps, now), {}, kAlertRepeatSeconds, {}});
}

bool OverloadMonitor::admit(const OverloadKey& key, uint32_t criteria_id, uint16_t priority,
                            uint64_t bytes, TokenBucket::Clock::time_point now) {
    auto it = limits_.find(key);
    if (it == limits_.end()) return true;
    Limit& l = it->second;
    // The offered load, admitted or not, is what the 580 average measures.
    l.window.add(bytes);
    if (l.bucket.admit(bytes, priority, now)) return true;
    DropReport& d = l.drops[criteria_id];
    d.key = key;
    d.criteria_id = criteria_id;
    ++d.packets;
    d.bytes += bytes;
    return false;
}

OverloadTick OverloadMonitor::tick() {
    OverloadTick out;
    const bool report = ++since_report_ >= kDropReportSeconds;
    if (report) since_report_ = 0;
    for (auto& [key, l] : limits_) {
        l.window.closeSecond();
        if (l.quiet_seconds < kAlertRepeatSeconds) ++l.quiet_seconds;
        const uint64_t alert_bps =
            l.max_bps / 100 * kAlertPercent + l.max_bps % 100 * kAlertPercent / 100;
        const uint64_t average = l.window.averageBps();
        if (l.window.full() && average > alert_bps && l.quiet_seconds >= kAlertRepeatSeconds) {
            out.alerts.push_back({key, average, alert_bps, l.max_bps});
            l.quiet_seconds = 0;
        }
        if (report) {
            for (auto& [id, d] : l.drops) out.drops.push_back(d);
            l.drops.clear();
        }
    }
    return out;
}

}  // namespace xtap::delivery
