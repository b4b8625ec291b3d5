// Address coverage and SendGate: the pure half of "never in clear".
#include <doctest/doctest.h>

#include <thread>

#include "ipsec/TunnelManager.h"
#include "AddressText.h"

using namespace xtap::ipsec;
using namespace xtap::ipsec::test;

namespace {

AddressRange selector(const char* text) {
    auto parsed = parseTrafficSelector(text);
    REQUIRE_MESSAGE(parsed.has_value(), text);
    return *parsed;
}

}  // namespace

TEST_CASE("prefixes parse strictly and print back") {
    CHECK(formatIpPrefix(prefix("198.18.20.0/24")) == "198.18.20.0/24");
    CHECK(formatIpPrefix(prefix("2001:db8:20::/64")) == "2001:db8:20::/64");
    CHECK(formatIpPrefix(prefix("198.18.20.1")) == "198.18.20.1/32");
    CHECK(formatIpPrefix(prefix("2001:db8::1")) == "2001:db8::1/128");
    CHECK(formatIpPrefix(prefix("0.0.0.0/0")) == "0.0.0.0/0");
    CHECK(prefix("198.18.20.0/24").family == Family::V4);
    CHECK(prefix("::/0").family == Family::V6);
    // Host bits set: a typo must not protect a different network.
    CHECK_FALSE(parseIpPrefix("198.18.20.1/24"));
    CHECK_FALSE(parseIpPrefix("2001:db8::1/64"));
    CHECK_FALSE(parseIpPrefix("198.18.20.0/33"));
    CHECK_FALSE(parseIpPrefix("2001:db8::/129"));
    CHECK_FALSE(parseIpPrefix("198.18.20.0/"));
    CHECK_FALSE(parseIpPrefix("198.18.20.0/2x"));
    CHECK_FALSE(parseIpPrefix("dynamic"));
    CHECK_FALSE(parseIpPrefix(""));
}

TEST_CASE("prefix containment at bit granularity") {
    const IpPrefix net = prefix("198.18.20.0/23");
    CHECK(contains(net, Family::V4, address("198.18.20.0")));
    CHECK(contains(net, Family::V4, address("198.18.21.255")));
    CHECK_FALSE(contains(net, Family::V4, address("198.18.22.0")));
    CHECK_FALSE(contains(net, Family::V4, address("198.18.19.255")));
    // The same bytes in the other family are a different address.
    CHECK_FALSE(contains(net, Family::V6, address("198.18.20.1")));
    CHECK(contains(prefix("0.0.0.0/0"), Family::V4, address("203.0.113.9")));
    CHECK(contains(prefix("2001:db8:20::/45"), Family::V6, address("2001:db8:27::1")));
    CHECK_FALSE(contains(prefix("2001:db8:20::/45"), Family::V6, address("2001:db8:28::1")));
    CHECK(contains(prefix("2001:db8:20::/61"), Family::V6, address("2001:db8:20:7::1")));
    CHECK_FALSE(contains(prefix("2001:db8:20::/61"), Family::V6, address("2001:db8:20:8::1")));

    CHECK(contains(prefix("198.18.0.0/15"), prefix("198.18.20.0/24")));
    CHECK(contains(prefix("198.18.20.0/24"), prefix("198.18.20.0/24")));
    CHECK_FALSE(contains(prefix("198.18.20.0/24"), prefix("198.18.0.0/15")));
    CHECK_FALSE(contains(prefix("198.18.20.0/24"), prefix("2001:db8::/32")));
}

TEST_CASE("traffic selectors as charon writes them") {
    CHECK(selector("198.18.20.0/24") ==
          AddressRange{Family::V4, address("198.18.20.0"), address("198.18.20.255")});
    CHECK(selector("198.18.20.7") ==
          AddressRange{Family::V4, address("198.18.20.7"), address("198.18.20.7")});
    CHECK(selector("198.18.20.10..198.18.20.20") ==
          AddressRange{Family::V4, address("198.18.20.10"), address("198.18.20.20")});
    CHECK(selector("2001:db8:20::/64").last == address("2001:db8:20:0:ffff:ffff:ffff:ffff"));
    // Restricted to a protocol or ports: it does not carry every copy.
    CHECK_FALSE(parseTrafficSelector("198.18.20.0/24[udp]"));
    CHECK_FALSE(parseTrafficSelector("198.18.20.0/24[udp/30030]"));
    CHECK_FALSE(parseTrafficSelector("dynamic"));
    CHECK_FALSE(parseTrafficSelector("198.18.20.20..198.18.20.10"));  // reversed
    CHECK_FALSE(parseTrafficSelector("198.18.20.1..2001:db8::1"));    // mixed
}

TEST_CASE("a selector covers a prefix only when it holds all of it") {
    CHECK(covers(selector("198.18.20.0/24"), prefix("198.18.20.0/24")));
    CHECK(covers(selector("198.18.0.0/15"), prefix("198.18.20.0/24")));
    CHECK(covers(selector("198.18.20.0/24"), prefix("198.18.20.1")));
    CHECK_FALSE(covers(selector("198.18.20.0/25"), prefix("198.18.20.0/24")));  // narrowed
    CHECK(covers(selector("198.18.20.0..198.18.20.255"), prefix("198.18.20.0/24")));
    CHECK_FALSE(covers(selector("198.18.20.1..198.18.20.255"), prefix("198.18.20.0/24")));
    CHECK_FALSE(covers(selector("198.18.20.0/24"), prefix("2001:db8::/64")));
    CHECK(covers(selector("2001:db8:20::/48"), prefix("2001:db8:20:5::/64")));
}

TEST_CASE("SendGate starts closed and opens per entry") {
    SendGate gate({GateEntry{prefix("198.18.20.0/24"), 0}, GateEntry{prefix("2001:db8:20::/64"), 0},
                   GateEntry{prefix("198.18.30.0/24"), 1}});
    const Address v4 = address("198.18.20.5");
    const Address v6 = address("2001:db8:20::5");
    const Address other = address("198.18.30.5");
    CHECK_FALSE(gate.isOpenFor(Family::V4, v4));
    CHECK_FALSE(gate.isOpenFor(Family::V6, v6));
    CHECK_FALSE(gate.isOpenFor(Family::V4, other));

    gate.setOpen(0, true);
    CHECK(gate.isOpenFor(Family::V4, v4));
    CHECK_FALSE(gate.isOpenFor(Family::V6, v6));
    CHECK_FALSE(gate.isOpenFor(Family::V4, other));
    // Not protected at all: never open.
    CHECK_FALSE(gate.isOpenFor(Family::V4, address("203.0.113.1")));
    // IPv4 bytes read as IPv6 are not covered by an IPv4 entry.
    CHECK_FALSE(gate.isOpenFor(Family::V6, v4));

    gate.setOpen(1, true);
    gate.setOpen(2, true);
    CHECK(gate.isOpenFor(Family::V6, v6));
    CHECK(gate.isOpenFor(Family::V4, other));
    gate.closeAll();
    CHECK_FALSE(gate.isOpenFor(Family::V4, v4));
    CHECK_FALSE(gate.isOpenFor(Family::V6, v6));
    CHECK_FALSE(gate.isOpenFor(Family::V4, other));
}

TEST_CASE("overlapping entries: open when any covering tunnel is up") {
    SendGate gate({GateEntry{prefix("198.18.0.0/16"), 0}, GateEntry{prefix("198.18.20.0/24"), 1}});
    const Address inner = address("198.18.20.5");
    const Address outer = address("198.18.40.5");
    gate.setOpen(0, true);
    CHECK(gate.isOpenFor(Family::V4, inner));
    CHECK(gate.isOpenFor(Family::V4, outer));
    gate.setOpen(0, false);
    gate.setOpen(1, true);
    CHECK(gate.isOpenFor(Family::V4, inner));
    CHECK_FALSE(gate.isOpenFor(Family::V4, outer));
}

TEST_CASE("a closed gate is seen by another thread") {
    SendGate gate({GateEntry{prefix("198.18.20.0/24"), 0}});
    gate.setOpen(0, true);
    std::thread closer([&] { gate.closeAll(); });
    closer.join();
    CHECK_FALSE(gate.isOpenFor(Family::V4, address("198.18.20.5")));
}

TEST_CASE("Backoff doubles up to its cap and restarts after reset") {
    using std::chrono::milliseconds;
    Backoff backoff(milliseconds(200), milliseconds(1000));
    CHECK(backoff.next() == milliseconds(200));
    CHECK(backoff.next() == milliseconds(400));
    CHECK(backoff.next() == milliseconds(800));
    CHECK(backoff.next() == milliseconds(1000));
    CHECK(backoff.next() == milliseconds(1000));
    backoff.reset();
    CHECK(backoff.next() == milliseconds(200));
}
