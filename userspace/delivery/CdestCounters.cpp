#include "delivery/CdestCounters.h"

#include <numeric>

namespace xtap::delivery {

std::string_view name(DropReason reason) {
    switch (reason) {
        case DropReason::RingFull:
            return "ring_full";
        case DropReason::TunnelDown:
            return "tunnel_down";
        case DropReason::SendError:
            return "send_error";
        case DropReason::RateLimit:
            return "rate_limit";
    }
    return "unknown";
}

uint64_t CdestCounters::droppedTotal() const {
    return std::accumulate(drops.begin(), drops.end(), uint64_t{0});
}

CdestCounters& CdestCounters::operator+=(const CdestCounters& other) {
    copies_sent += other.copies_sent;
    bytes_sent += other.bytes_sent;
    for (size_t i = 0; i < kDropReasonCount; ++i) {
        drops[i] += other.drops[i];
    }
    dropped_bytes += other.dropped_bytes;
    return *this;
}

}  // namespace xtap::delivery
