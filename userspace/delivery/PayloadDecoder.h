// Receiver side (`xtapctl receive`, the test receiver): reads one UDP payload
// sent to a content destination back into the original packet. Rule of
// dtcp.md §12: a first nibble of 4 or 6 is a plain (flowtap) copy, anything
// else is an 8-byte JMirror header followed by the packet.
#pragma once

#include <cstdint>
#include <optional>
#include <span>

#include "delivery/DeliveryParams.h"
#include "delivery/Result.h"

namespace xtap::delivery {

struct DecodedCopy {
    Format format = Format::Flowtap;
    uint32_t intercept_id = 0;  // JMirror header fields; 0 for flowtap
    uint32_t session_id = 0;
    Family family = Family::V4;       // of the inner packet
    std::span<const uint8_t> packet;  // the original packet, viewing the payload
};

// With `expected` set, a valid copy in the other format is FormatMismatch.
// The inner packet must be IPv4 or IPv6 whose declared length equals the
// bytes that follow: a copy is the whole packet, never more or less.
Result<DecodedCopy> decodePayload(std::span<const uint8_t> udp_payload,
                                  std::optional<Format> expected = std::nullopt);

}  // namespace xtap::delivery
