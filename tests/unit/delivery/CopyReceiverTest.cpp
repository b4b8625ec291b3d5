// CopyReceiver's pure parts: endpoint syntax, formats, and the tally that
// `xtapctl receive` prints (per criterion, per sender, errors).
#include <doctest/doctest.h>

#include "TestPackets.h"
#include "delivery/CopyReceiver.h"
#include "delivery/Encapsulator.h"

using namespace xtap::delivery;
using namespace xtap::delivery::test;

TEST_CASE("endpoints: IPv4 ADDR:PORT and [IPv6]:PORT") {
    auto v4endpoint = parseEndpoint("198.18.20.1:30030");
    REQUIRE(v4endpoint);
    CHECK(v4endpoint->family == Family::V4);
    CHECK(v4endpoint->address == v4(198, 18, 20, 1));
    CHECK(v4endpoint->port == 30030);
    CHECK(formatEndpoint(*v4endpoint) == "198.18.20.1:30030");

    auto v6endpoint = parseEndpoint("[2001:db8:20::1]:40000");
    REQUIRE(v6endpoint);
    CHECK(v6endpoint->family == Family::V6);
    CHECK(v6endpoint->port == 40000);
    CHECK(formatEndpoint(*v6endpoint) == "[2001:db8:20::1]:40000");

    for (const char* bad :
         {"198.18.20.1", "198.18.20.1:", "198.18.20.1:0", "198.18.20.1:65536", "2001:db8::1:30030",
          "[2001:db8::1]", "[198.18.20.1]:1", "host:80", "198.18.20.1:80x", "[2001:db8::1]:-1"}) {
        CAPTURE(bad);
        CHECK_FALSE(parseEndpoint(bad));
    }
}

TEST_CASE("format names") {
    CHECK(parseFormat("flowtap") == Format::Flowtap);
    CHECK(parseFormat("jmirror") == Format::Jmirror);
    CHECK_FALSE(parseFormat("JMirror"));
    CHECK(name(Format::Jmirror) == "jmirror");
    CHECK(name(Format::Flowtap) == "flowtap");
}

TEST_CASE("tally: per criterion for JMirror and per sender for flowtap with errors apart") {
    const Endpoint appliance{Family::V4, v4(198, 18, 10, 1), 40001};
    const Endpoint other{Family::V4, v4(198, 18, 10, 2), 40001};
    std::array<uint8_t, 256> buffer{};
    auto payload = [&](const DeliveryParams& params, const Bytes& packet) {
        auto encapsulator = Encapsulator::create(params);
        REQUIRE(encapsulator.ok());
        auto written = encapsulator->encapsulate(packet, buffer);
        REQUIRE(written.ok());
        return Bytes(buffer.begin(), buffer.begin() + static_cast<long>(*written));
    };
    const Bytes jm_a = payload(jmirror(outer4(), 5, 9), kInner4);
    const Bytes jm_b = payload(jmirror(outer4(), 6, 9), kInner6);
    const Bytes ft = payload(flowtap(outer4()), kInner6);

    CopyTally tally;
    tally.record(appliance, decodePayload(jm_a));
    tally.record(appliance, decodePayload(jm_a));
    tally.record(appliance, decodePayload(jm_b));
    tally.record(appliance, decodePayload(ft));
    tally.record(other, decodePayload(ft));
    tally.record(other, decodePayload(ft));
    tally.record(appliance, decodePayload(Bytes{0xff, 0xff}));
    tally.record(appliance, decodePayload(ft, Format::Jmirror));  // wrong format

    CHECK(tally.datagrams == 8);
    CHECK(tally.copies == 6);
    CHECK(tally.inner_ipv4 == 2);
    CHECK(tally.inner_ipv6 == 4);
    CHECK(tally.original_bytes == 2 * kInner4.size() + 4 * kInner6.size());
    CHECK(tally.jmirror_by_ids.at({5, 9}) == 2);
    CHECK(tally.jmirror_by_ids.at({6, 9}) == 1);
    CHECK(tally.flowtap_by_sender.at(appliance) == 1);
    CHECK(tally.flowtap_by_sender.at(other) == 2);
    CHECK(tally.format_mismatches == 1);
    CHECK(tally.errors.at(DeliveryError::FormatMismatch) == 1);
    CHECK(tally.errors.at(DeliveryError::UnknownFormat) == 1);
    CHECK(tally.failures() == 2);
}
