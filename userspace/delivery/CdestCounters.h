// Per content destination copy counters, kept per sender thread and merged
// for LIST replies, 598 notifications and metrics.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace xtap::delivery {

enum class DropReason : uint8_t {
    RingFull,    // the capture ring or send queue overflowed
    TunnelDown,  // no CHILD_SA covers the destination: the send gate is closed
    SendError,   // sendto failed (EHOSTUNREACH from the unreachable route, ...)
    RateLimit,   // above the destination's bandwidth limit
};

inline constexpr size_t kDropReasonCount = 4;

// "ring_full", "tunnel_down", "send_error", "rate_limit": metric label values.
std::string_view name(DropReason reason);

struct CdestCounters {
    uint64_t copies_sent = 0;
    uint64_t bytes_sent = 0;  // UDP payload bytes handed to the socket
    std::array<uint64_t, kDropReasonCount> drops{};
    uint64_t dropped_bytes = 0;  // UDP payload bytes of the dropped copies

    void addSent(uint64_t payload_bytes) {
        ++copies_sent;
        bytes_sent += payload_bytes;
    }
    void addDrop(DropReason reason, uint64_t payload_bytes) {
        ++drops[static_cast<size_t>(reason)];
        dropped_bytes += payload_bytes;
    }
    uint64_t dropped(DropReason reason) const { return drops[static_cast<size_t>(reason)]; }
    uint64_t droppedTotal() const;

    CdestCounters& operator+=(const CdestCounters& other);
    bool operator==(const CdestCounters&) const = default;
};

inline CdestCounters operator+(CdestCounters a, const CdestCounters& b) {
    return a += b;
}

}  // namespace xtap::delivery
