// Fan-out of one captured packet to content destinations (dtcp.md §10): every
// matching criterion of every user gets its copy, but byte-identical copies
// (same outer header, format and header IDs; see sameCopy) go out once. Each
// send lists the matches it serves so every criterion still counts the packet.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "delivery/DeliveryParams.h"

namespace xtap::delivery {

// Criteria-IDs are allocated per user, so a criterion is (user, Criteria-ID).
struct CriterionRef {
    uint32_t user = 0;
    uint32_t criterion = 0;

    bool operator==(const CriterionRef&) const = default;
};

// One criterion's claim on one content destination for the current packet.
// A criterion with two destinations (DTCP allows two per ADD) appears twice.
struct Match {
    CriterionRef criterion;
    uint32_t cdest_id = 0;  // for per-Cdest counters; plays no part in deduplication
    DeliveryParams delivery;
};

struct Send {
    uint32_t first_match = 0;  // index of the first match with these bytes: send its delivery
    uint32_t served_offset = 0;
    uint32_t served_count = 0;
};

// The distinct sends for one packet, in order of first appearance. Reusing one
// plan across packets keeps its capacity, so steady state does not allocate.
class FanOutPlan {
  public:
    std::span<const Send> sends() const { return sends_; }
    // Indices into the matches that `send` serves, in input order.
    std::span<const uint32_t> served(const Send& send) const {
        return std::span<const uint32_t>(served_).subspan(send.served_offset, send.served_count);
    }

  private:
    friend void planFanOut(std::span<const Match> matches, FanOutPlan& plan);

    std::vector<Send> sends_;
    std::vector<uint32_t> served_;
    std::vector<uint32_t> send_of_match_;  // scratch: which send each match joined
};

void planFanOut(std::span<const Match> matches, FanOutPlan& plan);
FanOutPlan planFanOut(std::span<const Match> matches);

}  // namespace xtap::delivery
