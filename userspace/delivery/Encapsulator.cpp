#include "delivery/Encapsulator.h"

#include <cstring>

namespace xtap::delivery {

namespace {

constexpr uint8_t kProtoUdp = 17;

void store16(std::span<uint8_t> out, size_t at, uint16_t value) {
    out[at] = static_cast<uint8_t>(value >> 8);
    out[at + 1] = static_cast<uint8_t>(value);
}

void store32(std::span<uint8_t> out, size_t at, uint32_t value) {
    store16(out, at, static_cast<uint16_t>(value >> 16));
    store16(out, at + 2, static_cast<uint16_t>(value));
}

// RFC 1071 sum of 16-bit big-endian words, an odd last byte padded with zero;
// folded at the end, so it can be chained across pseudo-header and data.
uint32_t sumWords(std::span<const uint8_t> bytes, uint32_t sum = 0) {
    size_t i = 0;
    for (; i + 1 < bytes.size(); i += 2) {
        sum += static_cast<uint32_t>(bytes[i] << 8 | bytes[i + 1]);
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if (i < bytes.size()) {
        sum += static_cast<uint32_t>(bytes[i] << 8);
    }
    return sum;
}

uint16_t finishChecksum(uint32_t sum) {
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<uint16_t>(~sum);
}

bool isIpVersion(std::span<const uint8_t> packet) {
    if (packet.empty()) {
        return false;
    }
    const unsigned version = packet[0] >> 4;
    return version == 4 || version == 6;
}

}  // namespace

Result<size_t> buildUdpDatagram(const OuterHeader& outer, std::span<const uint8_t> udp_payload,
                                std::span<uint8_t> out, const DatagramOptions& options) {
    if (auto valid = validate(outer); !valid) {
        return valid.error();
    }
    if (udp_payload.size() > maxUdpPayload(outer.family)) {
        return DeliveryError::PacketTooLarge;
    }
    const size_t ip_header =
        outer.family == Family::V4 ? kOuterIpv4HeaderSize : kOuterIpv6HeaderSize;
    const size_t udp_length = kUdpHeaderSize + udp_payload.size();
    const size_t total = ip_header + udp_length;
    if (out.size() < total) {
        return DeliveryError::BufferTooSmall;
    }
    // memmove: the payload may already sit at its final place in `out`.
    if (!udp_payload.empty()) {
        std::memmove(out.data() + ip_header + kUdpHeaderSize, udp_payload.data(),
                     udp_payload.size());
    }

    const size_t address_size = outer.family == Family::V4 ? 4 : 16;
    std::span<uint8_t> ip = out.first(ip_header);
    if (outer.family == Family::V4) {
        ip[0] = 0x45;  // version 4, 20-byte header
        ip[1] = 0;     // DSCP/ECN
        store16(ip, 2, static_cast<uint16_t>(total));
        store16(ip, 4, options.ipv4_identification);
        store16(ip, 6, 0);  // no DF: the tunnel fragments big copies (platform.md §9)
        ip[8] = outer.ttl;
        ip[9] = kProtoUdp;
        store16(ip, 10, 0);
        std::memcpy(ip.data() + 12, outer.source.data(), address_size);
        std::memcpy(ip.data() + 16, outer.destination.data(), address_size);
        store16(ip, 10, finishChecksum(sumWords(ip)));
    } else {
        store32(ip, 0, 0x60000000u);  // version 6, traffic class 0, flow label 0
        store16(ip, 4, static_cast<uint16_t>(udp_length));
        ip[6] = kProtoUdp;
        ip[7] = outer.ttl;
        std::memcpy(ip.data() + 8, outer.source.data(), address_size);
        std::memcpy(ip.data() + 24, outer.destination.data(), address_size);
    }

    std::span<uint8_t> udp = out.subspan(ip_header, udp_length);
    store16(udp, 0, outer.source_port);
    store16(udp, 2, outer.destination_port);
    store16(udp, 4, static_cast<uint16_t>(udp_length));
    store16(udp, 6, 0);
    if (outer.family == Family::V6 || options.ipv4_udp_checksum == Ipv4UdpChecksum::Compute) {
        // Pseudo-header: addresses, protocol, UDP length (same words for
        // IPv4 and IPv6, the IPv6 length being 32-bit with zero high half).
        uint32_t sum = sumWords(std::span<const uint8_t>(outer.source.data(), address_size));
        sum = sumWords(std::span<const uint8_t>(outer.destination.data(), address_size), sum);
        sum += kProtoUdp;
        sum += static_cast<uint32_t>(udp_length);
        uint16_t checksum = finishChecksum(sumWords(udp, sum));
        // 0 means "no checksum" in UDP; a computed 0 is sent as all ones.
        store16(udp, 6, checksum == 0 ? 0xffff : checksum);
    }
    return total;
}

Encapsulator::Encapsulator(const DeliveryParams& params) : params_(params) {
    if (params.encapsulation.format == Format::Jmirror) {
        // Bytes 0-3: 2-bit version 0 and the 30-bit intercept ID; 4-7: session ID.
        store32(jmirror_header_, 0, params.encapsulation.intercept_id & kMaxInterceptId);
        store32(jmirror_header_, 4, params.encapsulation.session_id);
        header_size_ = kJmirrorHeaderSize;
    }
}

Result<Encapsulator> Encapsulator::create(const DeliveryParams& params) {
    if (auto valid = validate(params); !valid) {
        return valid.error();
    }
    return Encapsulator(params);
}

Result<size_t> Encapsulator::encapsulate(std::span<const uint8_t> packet,
                                         std::span<uint8_t> out) const {
    if (!isIpVersion(packet)) {
        return DeliveryError::NotIp;
    }
    const size_t size = payloadSize(packet.size());
    if (size > maxUdpPayload(params_.outer.family)) {
        return DeliveryError::PacketTooLarge;
    }
    if (out.size() < size) {
        return DeliveryError::BufferTooSmall;
    }
    std::memcpy(out.data(), jmirror_header_.data(), header_size_);
    std::memcpy(out.data() + header_size_, packet.data(), packet.size());
    return size;
}

Result<size_t> Encapsulator::buildDatagram(std::span<const uint8_t> packet, std::span<uint8_t> out,
                                           const DatagramOptions& options) const {
    const size_t headers = outerHeaderSize(params_.outer.family);
    if (out.size() < headers) {
        return DeliveryError::BufferTooSmall;
    }
    auto payload = encapsulate(packet, out.subspan(headers));
    if (!payload) {
        return payload.error();
    }
    return buildUdpDatagram(params_.outer, out.subspan(headers, *payload), out, options);
}

}  // namespace xtap::delivery
