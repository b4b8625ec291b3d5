// Packets and addresses shared by the delivery tests, and an independent
// one's-complement checksum so the tests do not trust the code under test.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "delivery/DeliveryParams.h"

namespace xtap::delivery::test {

using Bytes = std::vector<uint8_t>;

inline Bytes concat(std::initializer_list<std::span<const uint8_t>> parts) {
    Bytes out;
    for (auto part : parts) {
        out.insert(out.end(), part.begin(), part.end());
    }
    return out;
}

// 192.0.2.1:1234 -> 198.51.100.2:5678 UDP "hi!", TTL 64, DF, valid checksums.
inline const Bytes kInner4 = {0x45, 0x00, 0x00, 0x1f, 0x1c, 0x46, 0x40, 0x00, 0x40, 0x11, 0x32,
                              0x51, 0xc0, 0x00, 0x02, 0x01, 0xc6, 0x33, 0x64, 0x02, 0x04, 0xd2,
                              0x16, 0x2e, 0x00, 0x0b, 0x6f, 0x37, 0x68, 0x69, 0x21};

// [2001:db8::1]:1234 -> [2001:db8::2]:5678 UDP "hi!", hop limit 64.
inline const Bytes kInner6 = {0x60, 0x00, 0x00, 0x00, 0x00, 0x0b, 0x11, 0x40, 0x20, 0x01, 0x0d,
                              0xb8, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
                              0x00, 0x01, 0x20, 0x01, 0x0d, 0xb8, 0x00, 0x00, 0x00, 0x00, 0x00,
                              0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x02, 0x04, 0xd2, 0x16, 0x2e,
                              0x00, 0x0b, 0xff, 0xf9, 0x68, 0x69, 0x21};

inline Address v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    Address out{};
    out[0] = a;
    out[1] = b;
    out[2] = c;
    out[3] = d;
    return out;
}

// 2001:db8:<net>::<host>
inline Address v6(uint8_t net, uint8_t host) {
    Address out{};
    out[0] = 0x20;
    out[1] = 0x01;
    out[2] = 0x0d;
    out[3] = 0xb8;
    out[5] = net;
    out[15] = host;
    return out;
}

// 198.18.10.1:40000 -> 198.18.20.5:30030, TTL 255.
inline OuterHeader outer4() {
    return OuterHeader{Family::V4, v4(198, 18, 10, 1), 40000, v4(198, 18, 20, 5), 30030, 255};
}

// [2001:db8:a::1]:40000 -> [2001:db8:b::5]:30030, hop limit 255.
inline OuterHeader outer6() {
    return OuterHeader{Family::V6, v6(0x0a, 1), 40000, v6(0x0b, 5), 30030, 255};
}

inline constexpr uint32_t kInterceptId = 0x2bcdef12;
inline constexpr uint32_t kSessionId = 0xdeadbeef;

// The JMirror header (version 0) of kInterceptId and kSessionId.
inline const Bytes kJmirrorHeader = {0x2b, 0xcd, 0xef, 0x12, 0xde, 0xad, 0xbe, 0xef};

inline DeliveryParams flowtap(const OuterHeader& outer) {
    return DeliveryParams{outer, Encapsulation{Format::Flowtap, 0, 0}};
}

inline DeliveryParams jmirror(const OuterHeader& outer, uint32_t intercept = kInterceptId,
                              uint32_t session = kSessionId) {
    return DeliveryParams{outer, Encapsulation{Format::Jmirror, intercept, session}};
}

// One's-complement sum of big-endian 16-bit words (RFC 1071), folded.
inline uint16_t onesSum(std::span<const uint8_t> bytes) {
    uint64_t sum = 0;
    for (size_t i = 0; i < bytes.size(); i += 2) {
        sum += static_cast<uint64_t>(bytes[i]) << 8;
        if (i + 1 < bytes.size()) {
            sum += bytes[i + 1];
        }
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<uint16_t>(sum);
}

// A correct header or segment (checksum included) sums to 0xffff.
inline bool ipv4HeaderChecksumOk(std::span<const uint8_t> datagram) {
    return onesSum(datagram.first(20)) == 0xffff;
}

// Checks the UDP checksum of a whole outer datagram against its pseudo-header.
inline bool udpChecksumOk(std::span<const uint8_t> datagram) {
    const bool is_v4 = datagram[0] >> 4 == 4;
    const size_t ip_header = is_v4 ? 20 : 40;
    std::span<const uint8_t> udp = datagram.subspan(ip_header);
    Bytes pseudo;
    if (is_v4) {
        pseudo.assign(datagram.begin() + 12, datagram.begin() + 20);
        pseudo.insert(pseudo.end(), {0, 17, udp[4], udp[5]});
    } else {
        pseudo.assign(datagram.begin() + 8, datagram.begin() + 40);
        pseudo.insert(pseudo.end(), {0, 0, udp[4], udp[5], 0, 0, 0, 17});
    }
    pseudo.insert(pseudo.end(), udp.begin(), udp.end());
    return onesSum(pseudo) == 0xffff;
}

}  // namespace xtap::delivery::test
