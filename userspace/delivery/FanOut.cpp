#include "delivery/FanOut.h"

namespace xtap::delivery {

void planFanOut(std::span<const Match> matches, FanOutPlan& plan) {
    plan.sends_.clear();
    plan.served_.clear();
    plan.send_of_match_.clear();

    // A packet matches a handful of criteria, so a linear scan over the
    // distinct sends so far beats hashing.
    for (size_t i = 0; i < matches.size(); ++i) {
        uint32_t joined = static_cast<uint32_t>(plan.sends_.size());
        for (uint32_t s = 0; s < plan.sends_.size(); ++s) {
            if (sameCopy(matches[plan.sends_[s].first_match].delivery, matches[i].delivery)) {
                joined = s;
                break;
            }
        }
        if (joined == plan.sends_.size()) {
            plan.sends_.push_back(Send{static_cast<uint32_t>(i), 0, 0});
        }
        ++plan.sends_[joined].served_count;
        plan.send_of_match_.push_back(joined);
    }

    // Lay the served lists out back to back, each in input order.
    uint32_t offset = 0;
    for (Send& send : plan.sends_) {
        send.served_offset = offset;
        offset += send.served_count;
        send.served_count = 0;
    }
    plan.served_.resize(matches.size());
    for (size_t i = 0; i < matches.size(); ++i) {
        Send& send = plan.sends_[plan.send_of_match_[i]];
        plan.served_[send.served_offset + send.served_count++] = static_cast<uint32_t>(i);
    }
}

FanOutPlan planFanOut(std::span<const Match> matches) {
    FanOutPlan plan;
    planFanOut(matches, plan);
    return plan;
}

}  // namespace xtap::delivery
