// Filter: one compiled rule of a DTCP criterion, as the data plane matches it.
// This is the semantic contract shared by the BPF classifier (through
// TupleSpace) and ReferenceMatcher; the differential test holds them to it.
#pragma once

#include <array>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace xtap::dataplane {

enum class Family : uint8_t { V4 = 4, V6 = 6 };

inline constexpr unsigned addressBits(Family f) {
    return f == Family::V4 ? 32 : 128;
}

// IPv4 addresses use the first 4 bytes; the remaining bytes are zero.
using Address = std::array<uint8_t, 16>;

struct Prefix {
    Address addr{};
    uint8_t len = 0;  // 0 = any address
    bool operator==(const Prefix&) const = default;
};

struct Range16 {
    uint16_t lo = 0;
    uint16_t hi = 0xffff;
    bool any() const { return lo == 0 && hi == 0xffff; }
    bool contains(uint16_t v) const { return lo <= v && v <= hi; }
    bool operator==(const Range16&) const = default;
};

inline constexpr uint8_t kProtoIcmp = 1;
inline constexpr uint8_t kProtoTcp = 6;
inline constexpr uint8_t kProtoUdp = 17;
inline constexpr uint8_t kProtoIcmpV6 = 58;
inline constexpr uint8_t kProtoSctp = 132;

inline constexpr bool hasPorts(uint8_t proto) {
    return proto == kProtoTcp || proto == kProtoUdp || proto == kProtoSctp;
}
inline constexpr bool isIcmp(uint8_t proto) {
    return proto == kProtoIcmp || proto == kProtoIcmpV6;
}

// Semantics: a packet of `family` matches when its source lies in `src`, its
// destination in `dst`, its protocol equals `proto` (if set), its ports (for
// TCP/UDP/SCTP) or ICMP type/code (for ICMP/ICMPv6) lie in the ranges, and it
// entered on `ifindex` (if non-zero) and the kernel's FIB routes it out of
// `oifindex` (if non-zero; an unrouted packet has egress 0). A constraint on ports or ICMP fields
// needs the L4 header: a non-first fragment matches such a filter only through the fragment table
// (its first fragment matched).
struct Filter {
    Family family = Family::V4;
    Prefix src;
    Prefix dst;
    std::optional<uint8_t> proto;  // nullopt = any protocol
    Range16 sport;                 // TCP/UDP/SCTP source port; ICMP type for ICMP
    Range16 dport;                 // destination port; ICMP code for ICMP
    uint32_t ifindex = 0;          // 0 = any input interface
    uint32_t oifindex = 0;         // 0 = any output interface

    bool needsL4() const { return !sport.any() || !dport.any(); }
    bool operator==(const Filter&) const = default;
};

// Empty string when the filter is well formed, else why not.
std::string validate(const Filter& f);

// A criterion as the data plane sees it: its filters, published and withdrawn
// as one.
struct FilterSet {
    std::vector<Filter> filters;
    uint16_t priority = 1;   // effective priority; higher value is shed first
    uint64_t expiry_ns = 0;  // CLOCK_BOOTTIME deadline; 0 = none
};

}  // namespace xtap::dataplane
