#include <doctest/doctest.h>

#include "delivery/Frame.h"
#include "TestPackets.h"

using namespace xtap::delivery;
using namespace xtap::delivery::test;

namespace {

const Bytes kMacs = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01, 0x02, 0x00, 0x00, 0x00, 0x00, 0x02};

Bytes frame(std::initializer_list<uint16_t> ethertypes, const Bytes& packet) {
    Bytes out = kMacs;
    uint16_t tci = 100;
    for (auto it = ethertypes.begin(); it != ethertypes.end(); ++it) {
        out.push_back(static_cast<uint8_t>(*it >> 8));
        out.push_back(static_cast<uint8_t>(*it));
        if (std::next(it) != ethertypes.end()) {  // a tag: its TCI follows
            out.push_back(static_cast<uint8_t>(tci >> 8));
            out.push_back(static_cast<uint8_t>(tci++));
        }
    }
    out.insert(out.end(), packet.begin(), packet.end());
    return out;
}

struct TagCase {
    const char* name;
    std::initializer_list<uint16_t> ethertypes;
    size_t l3_offset;
};

}  // namespace

TEST_CASE("stripL2 finds the L3 packet behind 0, 1 or 2 VLAN tags") {
    const TagCase cases[] = {
        {"untagged IPv4", {kEthertypeIpv4}, 14},
        {"802.1Q IPv4", {kEthertypeVlan, kEthertypeIpv4}, 18},
        {"QinQ IPv4", {kEthertypeQinQ, kEthertypeVlan, kEthertypeIpv4}, 22},
        {"double 802.1Q IPv4", {kEthertypeVlan, kEthertypeVlan, kEthertypeIpv4}, 22},
        {"untagged IPv6", {kEthertypeIpv6}, 14},
        {"802.1ad IPv6", {kEthertypeQinQ, kEthertypeIpv6}, 18},
        {"QinQ IPv6", {kEthertypeQinQ, kEthertypeVlan, kEthertypeIpv6}, 22},
    };
    for (const TagCase& c : cases) {
        CAPTURE(c.name);
        const bool is_v6 = *(c.ethertypes.end() - 1) == kEthertypeIpv6;
        const Bytes& packet = is_v6 ? kInner6 : kInner4;
        const Bytes bytes = frame(c.ethertypes, packet);
        auto l3 = stripL2(bytes);
        REQUIRE(l3.ok());
        CHECK(l3->family == (is_v6 ? Family::V6 : Family::V4));
        CHECK(Bytes(l3->bytes.begin(), l3->bytes.end()) == packet);
        CHECK(l3->bytes.data() == bytes.data() + c.l3_offset);  // a view, not a copy
    }
}

TEST_CASE("stripL2 drops Ethernet padding after a short packet") {
    Bytes bytes = frame({kEthertypeIpv4}, kInner4);
    bytes.resize(60, 0);  // minimum frame without FCS
    auto l3 = stripL2(bytes);
    REQUIRE(l3.ok());
    CHECK(l3->bytes.size() == kInner4.size());

    bytes = frame({kEthertypeVlan, kEthertypeIpv6}, kInner6);
    bytes.insert(bytes.end(), 4, 0xee);  // trailing FCS-like bytes
    l3 = stripL2(bytes);
    REQUIRE(l3.ok());
    CHECK(Bytes(l3->bytes.begin(), l3->bytes.end()) == kInner6);
}

TEST_CASE("stripL2 rejects frames it cannot strip") {
    SUBCASE("shorter than an Ethernet header") {
        CHECK(stripL2(Bytes(13, 0)).error() == DeliveryError::TruncatedFrame);
        CHECK(stripL2({}).error() == DeliveryError::TruncatedFrame);
    }
    SUBCASE("VLAN tag cut short") {
        Bytes bytes = frame({kEthertypeVlan, kEthertypeIpv4}, {});
        bytes.resize(16);  // TCI present, inner EtherType missing
        CHECK(stripL2(bytes).error() == DeliveryError::TruncatedFrame);
    }
    SUBCASE("three tags") {
        CHECK(stripL2(
                  frame({kEthertypeQinQ, kEthertypeVlan, kEthertypeVlan, kEthertypeIpv4}, kInner4))
                  .error() == DeliveryError::TooManyVlanTags);
    }
    SUBCASE("not IP") {
        CHECK(stripL2(frame({0x0806}, Bytes(28, 0))).error() ==
              DeliveryError::UnsupportedEthertype);
        CHECK(stripL2(frame({kEthertypeVlan, 0x8847}, kInner4)).error() ==
              DeliveryError::UnsupportedEthertype);
    }
    SUBCASE("EtherType and version nibble disagree") {
        CHECK(stripL2(frame({kEthertypeIpv4}, kInner6)).error() == DeliveryError::FamilyMismatch);
        CHECK(stripL2(frame({kEthertypeIpv6}, kInner4)).error() == DeliveryError::FamilyMismatch);
        Bytes garbage = kInner4;
        garbage[0] = 0x15;
        CHECK(stripL2(frame({kEthertypeIpv4}, garbage)).error() == DeliveryError::FamilyMismatch);
    }
    SUBCASE("no IP header after the EtherType") {
        CHECK(stripL2(frame({kEthertypeIpv4}, {})).error() == DeliveryError::TruncatedPacket);
        CHECK(stripL2(frame({kEthertypeIpv6}, Bytes(kInner6.begin(), kInner6.begin() + 39)))
                  .error() == DeliveryError::TruncatedPacket);
    }
    SUBCASE("packet shorter than its declared length") {
        Bytes cut(kInner4.begin(), kInner4.end() - 1);
        CHECK(stripL2(frame({kEthertypeIpv4}, cut)).error() == DeliveryError::TruncatedPacket);
        Bytes cut6(kInner6.begin(), kInner6.end() - 1);
        CHECK(stripL2(frame({kEthertypeIpv6}, cut6)).error() == DeliveryError::TruncatedPacket);
    }
    SUBCASE("malformed IPv4 header") {
        Bytes bad = kInner4;
        bad[0] = 0x44;  // IHL 4
        CHECK(stripL2(frame({kEthertypeIpv4}, bad)).error() == DeliveryError::BadIpHeader);
        bad = kInner4;
        bad[2] = 0;
        bad[3] = 19;  // total length below the header
        CHECK(stripL2(frame({kEthertypeIpv4}, bad)).error() == DeliveryError::BadIpHeader);
    }
}

TEST_CASE("parseIpPacket honours IPv4 options and IPv6 jumbograms") {
    // IHL 6: one 4-byte option word (NOPs) before the payload.
    Bytes with_options = {0x46, 0,  0, 28, 0, 0, 0, 0, 64, 17, 0, 0, 10, 0,   0,
                          1,    10, 0, 0,  2, 1, 1, 1, 1,  0,  0, 0, 0,  0xff};
    auto packet = parseIpPacket(with_options);
    REQUIRE(packet.ok());
    CHECK(packet->bytes.size() == 28);

    Bytes jumbo = kInner6;
    jumbo[4] = jumbo[5] = 0;
    jumbo[6] = 0;  // hop-by-hop: the real length sits in a Jumbo Payload option
    packet = parseIpPacket(jumbo);
    REQUIRE(packet.ok());
    CHECK(packet->bytes.size() == jumbo.size());

    Bytes empty_payload = kInner6;
    empty_payload[4] = empty_payload[5] = 0;  // next header UDP, no payload: 40 bytes
    packet = parseIpPacket(empty_payload);
    REQUIRE(packet.ok());
    CHECK(packet->bytes.size() == 40);

    CHECK(parseIpPacket(Bytes{0x50, 0, 0, 0}).error() == DeliveryError::NotIp);
}
