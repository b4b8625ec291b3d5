#include "delivery/PayloadDecoder.h"

#include "delivery/Encapsulator.h"
#include "delivery/Frame.h"

namespace xtap::delivery {

namespace {

uint32_t load32(std::span<const uint8_t> bytes, size_t at) {
    return static_cast<uint32_t>(bytes[at]) << 24 | static_cast<uint32_t>(bytes[at + 1]) << 16 |
           static_cast<uint32_t>(bytes[at + 2]) << 8 | static_cast<uint32_t>(bytes[at + 3]);
}

bool startsWithIpVersion(std::span<const uint8_t> bytes) {
    return !bytes.empty() && (bytes[0] >> 4 == 4 || bytes[0] >> 4 == 6);
}

}  // namespace

Result<DecodedCopy> decodePayload(std::span<const uint8_t> udp_payload,
                                  std::optional<Format> expected) {
    DecodedCopy copy;
    std::span<const uint8_t> inner = udp_payload;
    if (!startsWithIpVersion(udp_payload)) {
        // A JMirror header has version 0 in its top two bits, so its first
        // nibble is 0-3 and never collides with an IP version.
        if (udp_payload.size() < kJmirrorHeaderSize) {
            return DeliveryError::UnknownFormat;
        }
        const uint32_t word0 = load32(udp_payload, 0);
        if (word0 >> 30 != 0) {
            return DeliveryError::UnknownFormat;
        }
        copy.format = Format::Jmirror;
        copy.intercept_id = word0 & kMaxInterceptId;
        copy.session_id = load32(udp_payload, 4);
        inner = udp_payload.subspan(kJmirrorHeaderSize);
        if (!startsWithIpVersion(inner)) {
            return inner.empty() ? DeliveryError::TruncatedPacket : DeliveryError::NotIp;
        }
    }
    if (expected && *expected != copy.format) {
        return DeliveryError::FormatMismatch;
    }
    auto packet = parseIpPacket(inner);
    if (!packet) {
        return packet.error();
    }
    if (packet->bytes.size() != inner.size()) {
        return DeliveryError::LengthMismatch;
    }
    copy.family = packet->family;
    copy.packet = packet->bytes;
    return copy;
}

}  // namespace xtap::delivery
