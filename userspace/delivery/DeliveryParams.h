// What a content destination (Cdest) asks of each copy: the outer IP/UDP
// header xtap sends it in, and the encapsulation inside (dtcp.md §12).
#pragma once

#include <cstdint>

#include "dataplane/Filter.h"
#include "delivery/Result.h"

namespace xtap::delivery {

using dataplane::Address;
using dataplane::Family;

inline constexpr uint8_t kDefaultTtl = 255;
inline constexpr uint32_t kMaxInterceptId = (1u << 30) - 1;
inline constexpr uint16_t kJmirrorDefaultPort = 30030;  // Wireshark's jmirror port

// The outer header fields xtap controls (X-JTap-Cdest-*). IPv4 addresses use
// the first four bytes of Address, the rest stay zero (as in dataplane).
struct OuterHeader {
    Family family = Family::V4;
    Address source{};
    uint16_t source_port = 0;  // 0 is legal in a UDP header; the kernel may also pick one
    Address destination{};
    uint16_t destination_port = 0;
    uint8_t ttl = kDefaultTtl;  // hop limit on IPv6

    bool operator==(const OuterHeader&) const = default;
};

enum class Format : uint8_t {
    Flowtap,  // the original packet as the whole UDP payload (xtap default)
    Jmirror,  // 8-byte JMirror header, then the original packet
};

struct Encapsulation {
    Format format = Format::Flowtap;
    uint32_t intercept_id = 0;  // JMirror only, 30 bits
    uint32_t session_id = 0;    // JMirror only

    bool operator==(const Encapsulation&) const = default;
};

struct DeliveryParams {
    OuterHeader outer;
    Encapsulation encapsulation;

    bool operator==(const DeliveryParams&) const = default;
};

Result<void> validate(const OuterHeader& outer);
Result<void> validate(const Encapsulation& encapsulation);
Result<void> validate(const DeliveryParams& params);

// True when both produce the same bytes on the wire for any packet: same
// outer header and, for JMirror, the same header IDs. Flowtap carries no IDs,
// so they are ignored there. Only the family's address bytes count.
bool sameCopy(const DeliveryParams& a, const DeliveryParams& b);

}  // namespace xtap::delivery
