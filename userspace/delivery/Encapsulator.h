// Encapsulator: turns an original L3 packet into the UDP payload a content
// destination receives (dtcp.md §12), into a caller buffer, without
// allocating. buildDatagram() adds the outer IP and UDP headers for tests,
// benchmarks and the test receiver; production sends the payload through a
// UDP socket and lets the kernel write those headers.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <span>

#include "delivery/DeliveryParams.h"
#include "delivery/Result.h"

namespace xtap::delivery {

inline constexpr size_t kJmirrorHeaderSize = 8;
inline constexpr size_t kUdpHeaderSize = 8;
inline constexpr size_t kOuterIpv4HeaderSize = 20;
inline constexpr size_t kOuterIpv6HeaderSize = 40;
inline constexpr size_t kMaxUdpLength = 65535;

// Junos sends JMirror over IPv4 with UDP checksum 0. IPv6 always gets a
// checksum (RFC 8200 makes it mandatory), whatever this says.
enum class Ipv4UdpChecksum : uint8_t { Compute, Zero };

struct DatagramOptions {
    Ipv4UdpChecksum ipv4_udp_checksum = Ipv4UdpChecksum::Compute;
    uint16_t ipv4_identification = 0;
};

inline constexpr size_t outerHeaderSize(Family family) {
    return (family == Family::V4 ? kOuterIpv4HeaderSize : kOuterIpv6HeaderSize) + kUdpHeaderSize;
}

// Largest UDP payload the outer family can carry (16-bit UDP length, and
// the 16-bit total length on IPv4).
inline constexpr size_t maxUdpPayload(Family family) {
    return family == Family::V4 ? kMaxUdpLength - kOuterIpv4HeaderSize - kUdpHeaderSize
                                : kMaxUdpLength - kUdpHeaderSize;
}

// Writes the outer IP header (IPv4 with header checksum, or IPv6), the UDP
// header and `udp_payload` into `out`; returns the datagram size.
Result<size_t> buildUdpDatagram(const OuterHeader& outer, std::span<const uint8_t> udp_payload,
                                std::span<uint8_t> out, const DatagramOptions& options = {});

class Encapsulator {
  public:
    // Validates once so the per-packet calls need not.
    static Result<Encapsulator> create(const DeliveryParams& params);

    const DeliveryParams& params() const { return params_; }
    size_t headerSize() const { return header_size_; }
    size_t payloadSize(size_t packet_size) const { return header_size_ + packet_size; }

    // UDP payload for `packet` (IPv4 or IPv6 bytes, copied unchanged; only the
    // version nibble is checked) into `out`; returns the bytes written.
    Result<size_t> encapsulate(std::span<const uint8_t> packet, std::span<uint8_t> out) const;

    // The whole outer datagram: IP header, UDP header, then encapsulate().
    Result<size_t> buildDatagram(std::span<const uint8_t> packet, std::span<uint8_t> out,
                                 const DatagramOptions& options = {}) const;

  private:
    explicit Encapsulator(const DeliveryParams& params);

    DeliveryParams params_;
    std::array<uint8_t, kJmirrorHeaderSize> jmirror_header_{};
    size_t header_size_ = 0;
};

}  // namespace xtap::delivery
