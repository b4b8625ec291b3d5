#include "delivery/Frame.h"

namespace xtap::delivery {

namespace {

constexpr uint8_t kIpv6HopByHop = 0;

uint16_t load16(std::span<const uint8_t> bytes, size_t at) {
    return static_cast<uint16_t>(bytes[at] << 8 | bytes[at + 1]);
}

}  // namespace

Result<L3Packet> parseIpPacket(std::span<const uint8_t> bytes) {
    if (bytes.empty()) {
        return DeliveryError::TruncatedPacket;
    }
    const unsigned version = bytes[0] >> 4;
    if (version == 4) {
        if (bytes.size() < kIpv4MinHeaderSize) {
            return DeliveryError::TruncatedPacket;
        }
        const size_t header = (bytes[0] & 0x0fu) * 4u;
        const size_t total = load16(bytes, 2);
        if (header < kIpv4MinHeaderSize || total < header) {
            return DeliveryError::BadIpHeader;
        }
        if (total > bytes.size()) {
            return DeliveryError::TruncatedPacket;
        }
        return L3Packet{Family::V4, bytes.first(total)};
    }
    if (version == 6) {
        if (bytes.size() < kIpv6HeaderSize) {
            return DeliveryError::TruncatedPacket;
        }
        const size_t payload = load16(bytes, 4);
        if (payload == 0 && bytes[6] == kIpv6HopByHop) {
            return L3Packet{Family::V6, bytes};
        }
        const size_t total = kIpv6HeaderSize + payload;
        if (total > bytes.size()) {
            return DeliveryError::TruncatedPacket;
        }
        return L3Packet{Family::V6, bytes.first(total)};
    }
    return DeliveryError::NotIp;
}

Result<L3Packet> stripL2(std::span<const uint8_t> frame) {
    if (frame.size() < kEthernetHeaderSize) {
        return DeliveryError::TruncatedFrame;
    }
    size_t offset = kEthernetHeaderSize - 2;  // the EtherType field
    uint16_t ethertype = load16(frame, offset);
    size_t tags = 0;
    while (ethertype == kEthertypeVlan || ethertype == kEthertypeQinQ) {
        if (++tags > kMaxVlanTags) {
            return DeliveryError::TooManyVlanTags;
        }
        offset += kVlanTagSize;
        if (frame.size() < offset + 2) {
            return DeliveryError::TruncatedFrame;
        }
        ethertype = load16(frame, offset);
    }
    Family family;
    if (ethertype == kEthertypeIpv4) {
        family = Family::V4;
    } else if (ethertype == kEthertypeIpv6) {
        family = Family::V6;
    } else {
        return DeliveryError::UnsupportedEthertype;
    }
    auto packet = parseIpPacket(frame.subspan(offset + 2));
    if (!packet) {
        return packet.error() == DeliveryError::NotIp ? DeliveryError::FamilyMismatch
                                                      : packet.error();
    }
    if (packet->family != family) {
        return DeliveryError::FamilyMismatch;
    }
    return packet;
}

}  // namespace xtap::delivery
