#include <doctest/doctest.h>

#include <random>
#include <string>
#include <vector>

#include "criteria/PrefixCover.h"
#include "CriteriaTestSupport.h"
#include "dataplane/Filter.h"

using namespace xtap::criteria;
using namespace xtap::criteria::test;
using xtap::dataplane::Family;
using xtap::dataplane::Prefix;

namespace {

using Texts = std::vector<std::string>;

Uint128 v4(const char* text) {
    return toInteger(parseAddress(text, Family::V4), Family::V4);
}
Uint128 v6(const char* text) {
    return toInteger(parseAddress(text, Family::V6), Family::V6);
}

Texts cover(Uint128 lo, Uint128 hi, Family family) {
    return prefixTexts(prefixCover(lo, hi, family), family);
}

Uint128 lastOf(const Prefix& prefix, Family family) {
    const unsigned hostBits = xtap::dataplane::addressBits(family) - prefix.len;
    const Uint128 start = toInteger(prefix.addr, family);
    return start + (hostBits == 128 ? ~Uint128{0} : (Uint128{1} << hostBits) - 1);
}

// The cover is ascending, contiguous from lo to hi, each prefix valid for a Filter.
void checkExactCover(const std::vector<Prefix>& prefixes, Uint128 lo, Uint128 hi, Family family) {
    REQUIRE_FALSE(prefixes.empty());
    REQUIRE(toInteger(prefixes.front().addr, family) == lo);
    REQUIRE(lastOf(prefixes.back(), family) == hi);
    for (std::size_t i = 0; i < prefixes.size(); ++i) {
        xtap::dataplane::Filter filter;
        filter.family = family;
        filter.src = prefixes[i];
        REQUIRE(xtap::dataplane::validate(filter) == "");
        if (i > 0) {
            REQUIRE(toInteger(prefixes[i].addr, family) == lastOf(prefixes[i - 1], family) + 1);
        }
    }
}

}  // namespace

TEST_CASE("PrefixCover: address integers round-trip in network byte order") {
    CHECK(v4("192.0.2.1") == 0xc0000201u);
    CHECK(toAddress(0xc0000201u, Family::V4) == parseAddress("192.0.2.1", Family::V4));
    CHECK(v6("2001:db8::1") == ((Uint128{0x20010db8} << 96) | 1));
    CHECK(toAddress(v6("2001:db8::ff:1"), Family::V6) ==
          parseAddress("2001:db8::ff:1", Family::V6));
    CHECK(maxAddress(Family::V4) == 0xffffffffu);
    CHECK(maxAddress(Family::V6) == ~Uint128{0});
    CHECK(fitsFamily(parseAddress("203.0.113.9", Family::V4), Family::V4));
    CHECK_FALSE(fitsFamily(parseAddress("2001:db8::1", Family::V6), Family::V4));
    CHECK(fitsFamily(parseAddress("2001:db8::1", Family::V6), Family::V6));
}

TEST_CASE("PrefixCover: 203.0.113.1-203.0.113.20") {
    CHECK(cover(v4("203.0.113.1"), v4("203.0.113.20"), Family::V4) ==
          Texts{"203.0.113.1/32", "203.0.113.2/31", "203.0.113.4/30", "203.0.113.8/29",
                "203.0.113.16/30", "203.0.113.20/32"});
    CHECK(prefixCount(v4("203.0.113.1"), v4("203.0.113.20"), Family::V4) == 6);
}

TEST_CASE("PrefixCover: whole spaces are one zero-length prefix") {
    CHECK(cover(0, maxAddress(Family::V4), Family::V4) == Texts{"0.0.0.0/0"});
    CHECK(cover(0, maxAddress(Family::V6), Family::V6) == Texts{"::/0"});
    CHECK(prefixCount(0, maxAddress(Family::V6), Family::V6) == 1);
}

TEST_CASE("PrefixCover: single addresses and aligned blocks") {
    CHECK(cover(v4("198.51.100.7"), v4("198.51.100.7"), Family::V4) == Texts{"198.51.100.7/32"});
    CHECK(cover(v4("0.0.0.0"), v4("0.0.0.0"), Family::V4) == Texts{"0.0.0.0/32"});
    CHECK(cover(v4("255.255.255.255"), v4("255.255.255.255"), Family::V4) ==
          Texts{"255.255.255.255/32"});
    CHECK(cover(v6("2001:db8:20::1"), v6("2001:db8:20::1"), Family::V6) ==
          Texts{"2001:db8:20::1/128"});
    CHECK(cover(maxAddress(Family::V6), maxAddress(Family::V6), Family::V6) ==
          Texts{"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128"});
    CHECK(cover(v4("192.0.2.0"), v4("192.0.2.255"), Family::V4) == Texts{"192.0.2.0/24"});
    CHECK(cover(v6("2001:db8:10::"), v6("2001:db8:10:ffff:ffff:ffff:ffff:ffff"), Family::V6) ==
          Texts{"2001:db8:10::/48"});
    CHECK(cover(v4("128.0.0.0"), v4("255.255.255.255"), Family::V4) == Texts{"128.0.0.0/1"});
    CHECK(cover(v4("0.0.0.0"), v4("127.255.255.255"), Family::V4) == Texts{"0.0.0.0/1"});
}

TEST_CASE("PrefixCover: the worst ranges need 62 (IPv4) and 254 (IPv6) prefixes") {
    const auto worst4 = prefixCover(1, maxAddress(Family::V4) - 1, Family::V4);
    CHECK(worst4.size() == 62);
    CHECK(prefixCount(1, maxAddress(Family::V4) - 1, Family::V4) == 62);
    checkExactCover(worst4, 1, maxAddress(Family::V4) - 1, Family::V4);
    CHECK(prefixText(worst4.front(), Family::V4) == "0.0.0.1/32");
    CHECK(prefixText(worst4[31], Family::V4) == "128.0.0.0/2");
    CHECK(prefixText(worst4.back(), Family::V4) == "255.255.255.254/32");

    const auto worst6 = prefixCover(1, maxAddress(Family::V6) - 1, Family::V6);
    CHECK(worst6.size() == 254);
    CHECK(prefixCount(1, maxAddress(Family::V6) - 1, Family::V6) == 254);
    checkExactCover(worst6, 1, maxAddress(Family::V6) - 1, Family::V6);
    CHECK(prefixText(worst6.front(), Family::V6) == "::1/128");
    CHECK(prefixText(worst6.back(), Family::V6) == "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/128");
}

TEST_CASE("PrefixCover: random ranges give the trie's minimal exact cover") {
    std::mt19937_64 rng(0xc1d7);
    auto randomValue = [&rng](Family family) -> Uint128 {
        const Uint128 wide = (Uint128{rng()} << 64) | rng();
        const Uint128 value = family == Family::V4 ? wide & 0xffffffffu : wide;
        // Mostly values with long runs of 0s or 1s, where covers get interesting.
        switch (rng() % 4) {
            case 0:
                return value;
            case 1:
                return value & ~((Uint128{1} << (rng() % 32)) - 1);
            case 2:
                return value | ((Uint128{1} << (rng() % 32)) - 1);
            default:
                return value >> (rng() % 128);
        }
    };
    for (int iteration = 0; iteration < 4000; ++iteration) {
        const Family family = iteration % 2 ? Family::V6 : Family::V4;
        const unsigned bits = xtap::dataplane::addressBits(family);
        Uint128 lo = randomValue(family) & maxAddress(family);
        Uint128 hi = randomValue(family) & maxAddress(family);
        if (lo > hi) std::swap(lo, hi);
        const auto prefixes = prefixCover(lo, hi, family);
        checkExactCover(prefixes, lo, hi, family);
        REQUIRE(prefixes.size() == trieCoverCount(lo, hi, 0, bits));
        REQUIRE(prefixCount(lo, hi, family) == prefixes.size());
        REQUIRE(prefixes.size() <= 2 * bits - 2);
    }
}
