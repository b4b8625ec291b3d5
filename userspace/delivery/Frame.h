// From a captured Ethernet frame to the L3 packet xtap copies (dtcp.md §12:
// "L2 header and VLAN tags removed", the IP packet otherwise unmodified).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

#include "delivery/DeliveryParams.h"
#include "delivery/Result.h"

namespace xtap::delivery {

inline constexpr uint16_t kEthertypeIpv4 = 0x0800;
inline constexpr uint16_t kEthertypeIpv6 = 0x86dd;
inline constexpr uint16_t kEthertypeVlan = 0x8100;  // 802.1Q C-tag
inline constexpr uint16_t kEthertypeQinQ = 0x88a8;  // 802.1ad S-tag
inline constexpr size_t kEthernetHeaderSize = 14;
inline constexpr size_t kVlanTagSize = 4;
inline constexpr size_t kMaxVlanTags = 2;
inline constexpr size_t kIpv4MinHeaderSize = 20;
inline constexpr size_t kIpv6HeaderSize = 40;

struct L3Packet {
    Family family = Family::V4;
    std::span<const uint8_t> bytes;  // views the caller's buffer
};

// Checks the IP header of `bytes` (version, minimum size, IPv4 IHL, declared
// length within the bytes) and returns the packet cut to its declared length,
// which drops Ethernet padding after short packets. An IPv6 payload length of
// 0 with a hop-by-hop header may be a jumbogram: then all bytes are kept.
Result<L3Packet> parseIpPacket(std::span<const uint8_t> bytes);

// Ethernet II with zero, one or two VLAN tags (0x8100 or 0x88a8, any order)
// followed by IPv4 or IPv6; the EtherType must agree with the version nibble.
Result<L3Packet> stripL2(std::span<const uint8_t> frame);

}  // namespace xtap::delivery
