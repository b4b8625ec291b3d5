#include <doctest/doctest.h>

#include <array>
#include <string>

#include "delivery/Encapsulator.h"
#include "TestPackets.h"

using namespace xtap::delivery;
using namespace xtap::delivery::test;

namespace {

// Outer headers worked out independently of Encapsulator (RFC 768/791/8200
// layouts, RFC 1071 sums); the tests also re-check every checksum with
// onesSum(). Outer: 198.18.10.1:40000 -> 198.18.20.5:30030 or
// [2001:db8:a::1]:40000 -> [2001:db8:b::5]:30030, TTL/hop limit 255, ID 0.
struct GoldenCase {
    std::string name;
    OuterHeader outer;
    const Bytes* inner;
    Format format;
    Bytes ip_header;
    Bytes udp_header;
};

// clang-format off
const std::vector<GoldenCase> kGolden = {
    {"flowtap IPv4 in IPv4", outer4(), &kInner4, Format::Flowtap,
     {0x45, 0x00, 0x00, 0x3b, 0x00, 0x00, 0x00, 0x00, 0xff, 0x11, 0x11, 0x87,
      0xc6, 0x12, 0x0a, 0x01, 0xc6, 0x12, 0x14, 0x05},
     {0x9c, 0x40, 0x75, 0x4e, 0x00, 0x27, 0x30, 0x3a}},
    {"jmirror IPv4 in IPv4", outer4(), &kInner4, Format::Jmirror,
     {0x45, 0x00, 0x00, 0x43, 0x00, 0x00, 0x00, 0x00, 0xff, 0x11, 0x11, 0x7f,
      0xc6, 0x12, 0x0a, 0x01, 0xc6, 0x12, 0x14, 0x05},
     {0x9c, 0x40, 0x75, 0x4e, 0x00, 0x2f, 0x77, 0xac}},
    {"flowtap IPv6 in IPv4", outer4(), &kInner6, Format::Flowtap,
     {0x45, 0x00, 0x00, 0x4f, 0x00, 0x00, 0x00, 0x00, 0xff, 0x11, 0x11, 0x73,
      0xc6, 0x12, 0x0a, 0x01, 0xc6, 0x12, 0x14, 0x05},
     {0x9c, 0x40, 0x75, 0x4e, 0x00, 0x3b, 0xd2, 0x8e}},
    {"jmirror IPv6 in IPv4", outer4(), &kInner6, Format::Jmirror,
     {0x45, 0x00, 0x00, 0x57, 0x00, 0x00, 0x00, 0x00, 0xff, 0x11, 0x11, 0x6b,
      0xc6, 0x12, 0x0a, 0x01, 0xc6, 0x12, 0x14, 0x05},
     {0x9c, 0x40, 0x75, 0x4e, 0x00, 0x43, 0x1a, 0x01}},
    {"flowtap IPv4 in IPv6", outer6(), &kInner4, Format::Flowtap,
     {0x60, 0x00, 0x00, 0x00, 0x00, 0x27, 0x11, 0xff,
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05},
     {0x9c, 0x40, 0x75, 0x4e, 0x00, 0x27, 0x7e, 0xd8}},
    {"jmirror IPv4 in IPv6", outer6(), &kInner4, Format::Jmirror,
     {0x60, 0x00, 0x00, 0x00, 0x00, 0x2f, 0x11, 0xff,
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05},
     {0x9c, 0x40, 0x75, 0x4e, 0x00, 0x2f, 0xc6, 0x4a}},
    {"flowtap IPv6 in IPv6", outer6(), &kInner6, Format::Flowtap,
     {0x60, 0x00, 0x00, 0x00, 0x00, 0x3b, 0x11, 0xff,
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05},
     {0x9c, 0x40, 0x75, 0x4e, 0x00, 0x3b, 0x21, 0x2d}},
    {"jmirror IPv6 in IPv6", outer6(), &kInner6, Format::Jmirror,
     {0x60, 0x00, 0x00, 0x00, 0x00, 0x43, 0x11, 0xff,
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0a, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
      0x20, 0x01, 0x0d, 0xb8, 0x00, 0x0b, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x05},
     {0x9c, 0x40, 0x75, 0x4e, 0x00, 0x43, 0x68, 0x9f}},
};
// clang-format on

DeliveryParams paramsFor(const GoldenCase& c) {
    return c.format == Format::Flowtap ? flowtap(c.outer) : jmirror(c.outer);
}

Encapsulator make(const DeliveryParams& params) {
    auto created = Encapsulator::create(params);
    REQUIRE(created.ok());
    return std::move(created).value();
}

Bytes build(const Encapsulator& encapsulator, std::span<const uint8_t> packet,
            const DatagramOptions& options = {}) {
    Bytes out(2048, 0xaa);
    auto size = encapsulator.buildDatagram(packet, out, options);
    REQUIRE(size.ok());
    out.resize(*size);
    return out;
}

}  // namespace

TEST_CASE("UDP payload: flowtap is the packet itself, jmirror prefixes the 8-byte header") {
    for (const GoldenCase& c : kGolden) {
        CAPTURE(c.name);
        const Encapsulator encapsulator = make(paramsFor(c));
        Bytes out(256, 0xaa);
        auto size = encapsulator.encapsulate(*c.inner, out);
        REQUIRE(size.ok());
        out.resize(*size);
        const Bytes expected =
            c.format == Format::Flowtap ? *c.inner : concat({kJmirrorHeader, *c.inner});
        CHECK(out == expected);
        CHECK(encapsulator.payloadSize(c.inner->size()) == expected.size());
    }
}

TEST_CASE("outer datagram: golden bytes for every format and family combination") {
    for (const GoldenCase& c : kGolden) {
        CAPTURE(c.name);
        const Bytes datagram = build(make(paramsFor(c)), *c.inner);
        const Bytes jm = c.format == Format::Jmirror ? kJmirrorHeader : Bytes{};
        CHECK(datagram == concat({c.ip_header, c.udp_header, jm, *c.inner}));
        CHECK(datagram.size() == outerHeaderSize(c.outer.family) + jm.size() + c.inner->size());
        if (c.outer.family == Family::V4) {
            CHECK(ipv4HeaderChecksumOk(datagram));
        }
        CHECK(udpChecksumOk(datagram));
    }
}

TEST_CASE("jmirror over IPv4 can send UDP checksum 0, as Junos does") {
    DatagramOptions options;
    options.ipv4_udp_checksum = Ipv4UdpChecksum::Zero;
    const Bytes datagram = build(make(jmirror(outer4())), kInner4, options);
    const GoldenCase& golden = kGolden[1];
    REQUIRE(golden.name == "jmirror IPv4 in IPv4");
    Bytes udp_zero = golden.udp_header;
    udp_zero[6] = 0;
    udp_zero[7] = 0;
    CHECK(datagram == concat({golden.ip_header, udp_zero, kJmirrorHeader, kInner4}));
    CHECK(ipv4HeaderChecksumOk(datagram));
}

TEST_CASE("IPv6 keeps its mandatory UDP checksum even when asked for zero") {
    DatagramOptions options;
    options.ipv4_udp_checksum = Ipv4UdpChecksum::Zero;
    const Bytes datagram = build(make(jmirror(outer6())), kInner6, options);
    CHECK(datagram == build(make(jmirror(outer6())), kInner6));
    CHECK(udpChecksumOk(datagram));
}

TEST_CASE("IPv4 identification goes in the header and the checksum follows it") {
    DatagramOptions options;
    options.ipv4_identification = 0xbeef;
    const Bytes datagram = build(make(flowtap(outer4())), kInner4, options);
    CHECK(datagram[4] == 0xbe);
    CHECK(datagram[5] == 0xef);
    CHECK(datagram[6] == 0x00);  // flags: no DF, the tunnel may fragment
    CHECK(ipv4HeaderChecksumOk(datagram));
    CHECK(udpChecksumOk(datagram));
}

TEST_CASE("outer TTL / hop limit comes from the parameters") {
    OuterHeader outer = outer4();
    outer.ttl = 7;
    CHECK(build(make(flowtap(outer)), kInner4)[8] == 7);
    outer = outer6();
    outer.ttl = 9;
    CHECK(build(make(flowtap(outer)), kInner4)[7] == 9);
}

TEST_CASE("a computed UDP checksum of 0 is sent as 0xffff") {
    // Pick the payload's last word so the one's-complement sum is 0xffff.
    Bytes payload = {0x45, 0x00, 0x12, 0x34, 0x00, 0x00};
    Bytes out(64);
    auto size = buildUdpDatagram(outer4(), payload, out);
    REQUIRE(size.ok());
    out.resize(*size);
    out[26] = out[27] = 0;  // sum with the checksum field zeroed
    Bytes pseudo(out.begin() + 12, out.begin() + 20);
    pseudo.insert(pseudo.end(), {0, 17, out[24], out[25]});
    pseudo.insert(pseudo.end(), out.begin() + 20, out.end());
    const uint16_t partial = onesSum(pseudo);
    const uint16_t fill = static_cast<uint16_t>(0xffff - partial);
    payload[4] = static_cast<uint8_t>(fill >> 8);
    payload[5] = static_cast<uint8_t>(fill);

    Bytes datagram(64);
    size = buildUdpDatagram(outer4(), payload, datagram);
    REQUIRE(size.ok());
    datagram.resize(*size);
    CHECK(datagram[26] == 0xff);
    CHECK(datagram[27] == 0xff);
    CHECK(udpChecksumOk(datagram));
}

TEST_CASE("jmirror header: version 0, 30-bit intercept ID, 32-bit session ID, big-endian") {
    const Encapsulator encapsulator = make(jmirror(outer4(), kMaxInterceptId, 0x01020304));
    Bytes out(64);
    auto size = encapsulator.encapsulate(kInner4, out);
    REQUIRE(size.ok());
    CHECK(encapsulator.headerSize() == 8);
    CHECK(Bytes(out.begin(), out.begin() + 8) ==
          Bytes{0x3f, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03, 0x04});
}

TEST_CASE("encapsulate refuses what it cannot copy") {
    const Encapsulator flow = make(flowtap(outer4()));
    const Encapsulator jm = make(jmirror(outer4()));
    Bytes out(128);

    SUBCASE("output buffer one byte short") {
        CHECK(flow.encapsulate(kInner4, std::span(out).first(kInner4.size() - 1)).error() ==
              DeliveryError::BufferTooSmall);
        CHECK(jm.encapsulate(kInner4, std::span(out).first(kInner4.size() + 7)).error() ==
              DeliveryError::BufferTooSmall);
        CHECK(jm.encapsulate(kInner4, std::span(out).first(kInner4.size() + 8)).ok());
        CHECK(flow.buildDatagram(kInner4, std::span(out).first(28 + kInner4.size() - 1)).error() ==
              DeliveryError::BufferTooSmall);
        CHECK(flow.buildDatagram(kInner4, std::span(out).first(10)).error() ==
              DeliveryError::BufferTooSmall);
    }
    SUBCASE("not an IP packet") {
        Bytes not_ip = kInner4;
        not_ip[0] = 0x55;
        CHECK(flow.encapsulate(not_ip, out).error() == DeliveryError::NotIp);
        CHECK(flow.encapsulate({}, out).error() == DeliveryError::NotIp);
    }
    SUBCASE("larger than a UDP datagram of the outer family can carry") {
        Bytes big(maxUdpPayload(Family::V4) + 1, 0);
        big[0] = 0x45;
        Bytes huge(70000);
        CHECK(flow.encapsulate(big, huge).error() == DeliveryError::PacketTooLarge);
        big.pop_back();
        CHECK(flow.encapsulate(big, huge).ok());
        // The JMirror header counts against the limit too.
        CHECK(jm.encapsulate(big, huge).error() == DeliveryError::PacketTooLarge);
        // IPv6 outer carries 20 bytes more.
        CHECK(make(flowtap(outer6()))
                  .encapsulate(Bytes(maxUdpPayload(Family::V4) + 20, 0x60), huge)
                  .ok());
        CHECK(make(flowtap(outer6())).buildDatagram(big, huge).ok());
    }
}

TEST_CASE("create validates the delivery parameters once") {
    CHECK(Encapsulator::create(flowtap(outer4())).ok());
    CHECK(Encapsulator::create(jmirror(outer6(), kMaxInterceptId)).ok());

    DeliveryParams p = jmirror(outer4(), kMaxInterceptId + 1);
    CHECK(Encapsulator::create(p).error() == DeliveryError::InterceptIdTooWide);
    // Flowtap carries no IDs, so their width does not matter.
    p.encapsulation.format = Format::Flowtap;
    CHECK(Encapsulator::create(p).ok());

    p = flowtap(outer4());
    p.outer.destination[4] = 1;
    CHECK(Encapsulator::create(p).error() == DeliveryError::InvalidAddress);
    p = flowtap(outer4());
    p.outer.source[15] = 1;
    CHECK(Encapsulator::create(p).error() == DeliveryError::InvalidAddress);
    p = flowtap(outer4());
    p.outer.destination_port = 0;
    CHECK(Encapsulator::create(p).error() == DeliveryError::InvalidPort);
    p = flowtap(outer6());
    p.outer.ttl = 0;
    CHECK(Encapsulator::create(p).error() == DeliveryError::InvalidTtl);
    p = flowtap(outer4());
    p.outer.family = static_cast<Family>(5);
    CHECK(Encapsulator::create(p).error() == DeliveryError::InvalidFamily);
    p = flowtap(outer4());
    p.outer.source_port = 0;  // legal in UDP
    CHECK(Encapsulator::create(p).ok());
}

TEST_CASE("buildUdpDatagram checks its outer header too") {
    OuterHeader outer = outer4();
    outer.destination_port = 0;
    Bytes out(64);
    CHECK(buildUdpDatagram(outer, kInner4, out).error() == DeliveryError::InvalidPort);
    CHECK(buildUdpDatagram(outer4(), Bytes(maxUdpPayload(Family::V4) + 1), out).error() ==
          DeliveryError::PacketTooLarge);
}

TEST_CASE("every delivery error has a description") {
    for (int e = 0; e <= static_cast<int>(DeliveryError::InterceptIdTooWide); ++e) {
        CHECK(describe(static_cast<DeliveryError>(e)) != "unknown delivery error");
    }
}
