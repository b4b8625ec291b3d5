#include <doctest/doctest.h>

#include <chrono>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "criteria/CriteriaCompiler.h"
#include "criteria/PrefixCover.h"
#include "CriteriaTestSupport.h"

using namespace xtap::criteria;
using namespace xtap::criteria::test;
using xtap::dataplane::Family;
using xtap::dataplane::Filter;
using xtap::dataplane::Range16;

namespace {

constexpr CompileStatus k400 = CompileStatus::BadRequest;
constexpr CompileStatus k432 = CompileStatus::ImproperFilter;

// A V4 criterion with both addresses given as DTCP text.
MatchSpec v4Spec(std::string_view src, std::string_view dst) {
    MatchSpec spec;
    spec.src = addresses(src, Family::V4);
    spec.dst = addresses(dst, Family::V4);
    return spec;
}

// A V4 criterion anchored on one source host, to test the other fields alone.
MatchSpec anchored() {
    return v4Spec("192.0.2.10", "*");
}

std::vector<Filter> compiled(const MatchSpec& spec, const CompileLimits& limits = {}) {
    const CompileResult result = compile(spec, limits);
    if (!result.ok()) {
        FAIL_CHECK("unexpected error: ", result.error().reason);
        return {};
    }
    CHECK(allValid(result.filters()));
    CHECK(pairwiseDisjoint(result.filters()));
    return result.filters();
}

CompileError failed(const MatchSpec& spec, const CompileLimits& limits = {}) {
    const CompileResult result = compile(spec, limits);
    REQUIRE_FALSE(result.ok());
    return result.error();
}

Filter filter(Family family, std::string_view src, std::string_view dst,
              std::optional<uint8_t> proto = std::nullopt, Range16 sport = {}, Range16 dport = {},
              uint32_t ifindex = 0) {
    auto prefixOf = [family](std::string_view text) {
        const AddressEntry entry = addressEntry(std::string(text), family);
        const auto cover =
            prefixCover(toInteger(entry.lo, family), toInteger(entry.hi, family), family);
        REQUIRE(cover.size() == 1);
        return cover.front();
    };
    return Filter{family, prefixOf(src), prefixOf(dst), proto, sport, dport, ifindex};
}

// The filters' protocols, kAnyProtocol for nullopt.
constexpr int kAnyProtocol = -1;
std::set<int> protocolsOf(const std::vector<Filter>& filters) {
    std::set<int> protocols;
    for (const Filter& f : filters) protocols.insert(f.proto ? int{*f.proto} : kAnyProtocol);
    return protocols;
}

}  // namespace

TEST_CASE("CriteriaCompiler: dtcp.md §8 first ADD: one host, every other field `*`") {
    MatchSpec spec = v4Spec("192.0.2.10", "*");
    spec.sport = numbers("*");
    spec.dport = numbers("*");
    spec.proto = numbers("*");
    CHECK(compiled(spec) == std::vector<Filter>{filter(Family::V4, "192.0.2.10", "0.0.0.0/0")});
}

TEST_CASE(
    "CriteriaCompiler: dtcp.md §8 0.7 ADD: list with negation, two protocols, open port range") {
    MatchSpec spec = v4Spec("192.0.2.0/24", "!198.51.100.7, 203.0.113.1-203.0.113.20");
    spec.proto = numbers("6,17");
    spec.dport = numbers("1024-*");
    std::vector<Filter> expected;
    for (const char* dst : {"203.0.113.1/32", "203.0.113.2/31", "203.0.113.4/30", "203.0.113.8/29",
                            "203.0.113.16/30", "203.0.113.20/32"}) {
        for (uint8_t proto : {6, 17}) {
            expected.push_back(
                filter(Family::V4, "192.0.2.0/24", dst, proto, Range16{}, Range16{1024, 65535}));
        }
    }
    CHECK(compiled(spec) == expected);
}

TEST_CASE("CriteriaCompiler: dtcp.md §8 IPv6 ADD on one input interface") {
    MatchSpec spec;
    spec.family = Family::V6;
    spec.src = addresses("2001:db8:10::/48", Family::V6);
    spec.dst = addresses("2001:db8:20::1", Family::V6);
    spec.proto = numbers("6");
    spec.dport = numbers("443");
    spec.input_ifindexes = {7};
    CHECK(compiled(spec) ==
          std::vector<Filter>{filter(Family::V6, "2001:db8:10::/48", "2001:db8:20::1", 6, Range16{},
                                     Range16{443, 443}, 7)});
}

TEST_CASE("CriteriaCompiler: ports without a protocol mean TCP and UDP") {
    MatchSpec spec = anchored();
    spec.dport = numbers("53");
    const auto filters = compiled(spec);
    CHECK(filters ==
          std::vector<Filter>{filter(Family::V4, "192.0.2.10", "0.0.0.0/0", 6, {}, {53, 53}),
                              filter(Family::V4, "192.0.2.10", "0.0.0.0/0", 17, {}, {53, 53})});
}

TEST_CASE("CriteriaCompiler: ports keep only TCP and UDP of the protocol set") {
    MatchSpec spec = anchored();
    spec.sport = numbers("1-1023");
    spec.proto = numbers("1, 6, 132");
    CHECK(protocolsOf(compiled(spec)) == std::set<int>{6});
    spec.proto = numbers("!17");
    CHECK(protocolsOf(compiled(spec)) == std::set<int>{6});
}

TEST_CASE("CriteriaCompiler: ports with a protocol set lacking 6 and 17 → 432") {
    MatchSpec spec = anchored();
    spec.dport = numbers("80");
    for (const char* protocols : {"1", "132", "47, 50-51", "!6, !17"}) {
        CAPTURE(protocols);
        spec.proto = numbers(protocols);
        const CompileError error = failed(spec);
        CHECK(error.status == k432);
        CHECK(error.field == CriterionField::Protocol);
    }
}

TEST_CASE("CriteriaCompiler: `*` and full-width port lists are no port constraint") {
    MatchSpec spec = anchored();
    spec.proto = numbers("47");
    spec.sport = numbers("*");
    spec.dport = numbers("0-1023, 1024-*");
    CHECK(compiled(spec) == std::vector<Filter>{filter(Family::V4, "192.0.2.10", "0.0.0.0/0", 47)});
}

TEST_CASE("CriteriaCompiler: ICMP fields select ICMP (1) or ICMPv6 (58)") {
    MatchSpec spec = anchored();
    spec.icmp_type = numbers("8");
    CHECK(compiled(spec) ==
          std::vector<Filter>{filter(Family::V4, "192.0.2.10", "0.0.0.0/0", 1, {8, 8}, {0, 255})});
    spec.icmp_type = {};
    spec.icmp_code = numbers("!0");
    CHECK(compiled(spec) == std::vector<Filter>{filter(Family::V4, "192.0.2.10", "0.0.0.0/0", 1,
                                                       {0, 255}, {1, 255})});

    MatchSpec v6;
    v6.family = Family::V6;
    v6.dst = addresses("2001:db8::/32", Family::V6);
    v6.icmp_type = numbers("128-129");
    v6.proto = numbers("*");
    CHECK(compiled(v6) == std::vector<Filter>{filter(Family::V6, "::/0", "2001:db8::/32", 58,
                                                     {128, 129}, {0, 255})});
}

TEST_CASE("CriteriaCompiler: ICMP fields without the family's ICMP protocol → 432") {
    MatchSpec spec = anchored();
    spec.icmp_type = numbers("8");
    spec.proto = numbers("6, 58");
    CHECK(failed(spec) ==
          CompileError{k432, CriterionField::Protocol, "ICMP constraints need protocol 1"});

    MatchSpec v6;
    v6.family = Family::V6;
    v6.src = addresses("2001:db8::1", Family::V6);
    v6.icmp_code = numbers("0");
    v6.proto = numbers("1");
    CHECK(failed(v6) ==
          CompileError{k432, CriterionField::Protocol, "ICMP constraints need protocol 58"});
}

TEST_CASE("CriteriaCompiler: ports and ICMP fields together → 432") {
    MatchSpec spec = anchored();
    spec.dport = numbers("80");
    spec.icmp_type = numbers("8");
    CHECK(failed(spec).status == k432);
    CHECK(failed(spec).field == CriterionField::IcmpType);
    spec.icmp_type = {};
    spec.icmp_code = numbers("3");
    CHECK(failed(spec).field == CriterionField::IcmpCode);

    // `Dest-Port: *` constrains nothing, so it does not clash.
    spec.dport = numbers("*");
    CHECK(compiled(spec).size() == 1);
}

TEST_CASE("CriteriaCompiler: a protocol set covering 0-255 is any protocol") {
    MatchSpec spec = anchored();
    for (const char* protocols : {"*", "0-255", "0-100, 101-*", "*-6, 6-255"}) {
        CAPTURE(protocols);
        spec.proto = numbers(protocols);
        CHECK(protocolsOf(compiled(spec)) == std::set<int>{kAnyProtocol});
    }
}

TEST_CASE("CriteriaCompiler: other protocol sets give one filter per protocol") {
    MatchSpec spec = anchored();
    spec.proto = numbers("!6");
    const auto filters = compiled(spec);
    CHECK(filters.size() == 255);
    CHECK(protocolsOf(filters).count(6) == 0);
    CHECK(protocolsOf(filters).count(kAnyProtocol) == 0);

    spec.proto = numbers("50-51, 17, 6, 17");
    CHECK(protocolsOf(compiled(spec)) == std::set<int>{6, 17, 50, 51});
}

TEST_CASE("CriteriaCompiler: negation-only address lists start from `*`") {
    const auto filters = compiled(v4Spec("192.0.2.1", "!198.51.100.7"));
    CHECK(filters.size() == 32);  // all 2^32 addresses but one: one prefix per length 1..32
    const Packet excluded{Family::V4, parseAddress("192.0.2.1", Family::V4),
                          parseAddress("198.51.100.7", Family::V4)};
    Packet neighbour = excluded;
    neighbour.dst = parseAddress("198.51.100.6", Family::V4);
    int excludedMatches = 0;
    int neighbourMatches = 0;
    for (const Filter& f : filters) {
        excludedMatches += filterMatches(f, excluded);
        neighbourMatches += filterMatches(f, neighbour);
    }
    CHECK(excludedMatches == 0);
    CHECK(neighbourMatches == 1);

    // Several negations and an IPv6 one.
    CHECK(compiled(v4Spec("!0.0.0.0/1, !192.0.0.0/2", "192.0.2.1")) ==
          std::vector<Filter>{filter(Family::V4, "128.0.0.0/2", "192.0.2.1")});
    MatchSpec v6;
    v6.family = Family::V6;
    v6.src = addresses("!::/1", Family::V6);
    CHECK(compiled(v6) == std::vector<Filter>{filter(Family::V6, "8000::/1", "::/0")});
}

// An empty set would compile to no filters: a criterion that can never match. The MD
// gets a Criteria-ID for it and would believe it intercepts; 432 tells it instead.
TEST_CASE("CriteriaCompiler: negations that remove every value → 432 on that field") {
    CHECK(failed(v4Spec("192.0.2.1", "198.51.100.7, !198.51.100.0/24")) ==
          CompileError{k432, CriterionField::DestAddress, "the negations exclude every address"});
    CHECK(failed(v4Spec("!*", "192.0.2.1")).field == CriterionField::SourceAddress);

    MatchSpec spec = anchored();
    spec.proto = numbers("6, !0-10");
    CHECK(failed(spec) ==
          CompileError{k432, CriterionField::Protocol, "the negations exclude every value"});
    spec.proto = {};
    spec.sport = numbers("!*");
    CHECK(failed(spec).field == CriterionField::SourcePort);
    spec.sport = {};
    spec.icmp_code = numbers("!0-*");
    CHECK(failed(spec).field == CriterionField::IcmpCode);
}

TEST_CASE("CriteriaCompiler: no constraint on either address → 432 unless wide is allowed") {
    for (const auto& [src, dst] : std::vector<std::pair<const char*, const char*>>{
             {"*", "*"}, {"0.0.0.0/0", "*-*"}, {"0.0.0.0-127.255.255.255, 128.0.0.0-*", "*"}}) {
        CAPTURE(src);
        MatchSpec spec = v4Spec(src, dst);
        spec.proto = numbers("6");
        spec.dport = numbers("80");
        CHECK(failed(spec) ==
              CompileError{k432, CriterionField::Criterion, "neither address is constrained"});
        CHECK(compiled(spec, CompileLimits{.allow_wide = true}) ==
              std::vector<Filter>{filter(Family::V4, "0.0.0.0/0", "0.0.0.0/0", 6, {}, {80, 80})});
    }
    MatchSpec missing;  // no address parameters at all
    missing.family = Family::V6;
    CHECK(failed(missing).status == k432);
    CHECK(compiled(missing, CompileLimits{.allow_wide = true}).size() == 1);

    // Any address set short of everything is a constraint, even a negation.
    CHECK(compiled(v4Spec("*", "!203.0.113.9")).size() == 32);
}

TEST_CASE("CriteriaCompiler: numbers above the field's width → 400") {
    struct Case {
        const char* text;
        std::vector<NumberEntry> MatchSpec::*member;
        CriterionField field;
    };
    const Case cases[] = {
        {"256", &MatchSpec::proto, CriterionField::Protocol},
        {"300-*", &MatchSpec::proto, CriterionField::Protocol},
        {"!6-256", &MatchSpec::proto, CriterionField::Protocol},
        {"65536", &MatchSpec::sport, CriterionField::SourcePort},
        {"80, 1-70000", &MatchSpec::dport, CriterionField::DestPort},
        {"256", &MatchSpec::icmp_type, CriterionField::IcmpType},
        {"0-300", &MatchSpec::icmp_code, CriterionField::IcmpCode},
    };
    for (const Case& c : cases) {
        CAPTURE(c.text);
        MatchSpec spec = anchored();
        spec.*c.member = numbers(c.text);
        const CompileError error = failed(spec);
        CHECK(error.status == k400);
        CHECK(error.field == c.field);
    }
    // The open end of `n-*` is the field's maximum, whatever the field.
    MatchSpec spec = anchored();
    spec.dport = numbers("65535-*");
    CHECK(compiled(spec).front().dport == Range16{65535, 65535});
    spec.dport = {};
    spec.icmp_type = numbers("255-*");
    CHECK(compiled(spec).front().sport == Range16{255, 255});
}

TEST_CASE("CriteriaCompiler: 400 wins over a 432 in another field") {
    MatchSpec spec = v4Spec("!*", "192.0.2.1");
    spec.dport = numbers("99999");
    CHECK(failed(spec).status == k400);
    CHECK(failed(spec).field == CriterionField::DestPort);
}

TEST_CASE("CriteriaCompiler: reversed ranges → 432") {
    CHECK(failed(v4Spec("203.0.113.20-203.0.113.1", "*")) ==
          CompileError{k432, CriterionField::SourceAddress, "range ends below its start"});
    MatchSpec spec = anchored();
    spec.dport = numbers("90-80");
    CHECK(failed(spec) ==
          CompileError{k432, CriterionField::DestPort, "range ends below its start"});
}

TEST_CASE("CriteriaCompiler: addresses of the other IP version → 432") {
    MatchSpec spec = anchored();
    spec.dst = {AddressEntry{false, parseAddress("2001:db8::1", Family::V6),
                             parseAddress("2001:db8::1", Family::V6)}};
    CHECK(failed(spec) ==
          CompileError{k432, CriterionField::DestAddress, "address of the other IP version"});
}

TEST_CASE("CriteriaCompiler: one filter per distinct input interface") {
    MatchSpec spec = anchored();
    spec.dport = numbers("80, 443");
    spec.input_ifindexes = {5, 3, 5};
    const auto filters = compiled(spec);
    CHECK(filters.size() == 2 * 2 * 2);  // protocols x port ranges x interfaces
    std::set<uint32_t> ifindexes;
    for (const Filter& f : filters) ifindexes.insert(f.ifindex);
    CHECK(ifindexes == std::set<uint32_t>{3, 5});

    spec.input_ifindexes = {4, 0};
    CHECK(failed(spec) == CompileError{k400, CriterionField::InputInterface, "interface index 0"});
}

TEST_CASE("CriteriaCompiler: one filter per input x distinct output interface") {
    MatchSpec spec = anchored();
    spec.proto = numbers("6");
    spec.input_ifindexes = {3};
    spec.output_ifindexes = {9, 7, 9};
    const auto filters = compiled(spec);
    CHECK(filters.size() == 2);
    std::set<uint32_t> egress;
    for (const Filter& f : filters) {
        CHECK(f.ifindex == 3);
        egress.insert(f.oifindex);
    }
    CHECK(egress == std::set<uint32_t>{7, 9});

    spec.input_ifindexes = {1, 2};
    spec.output_ifindexes = {4, 5, 6};
    CHECK(compiled(spec).size() == 2 * 3);
    CHECK(failed(spec, CompileLimits{.max_filters = 5}).field == CriterionField::Criterion);

    spec.output_ifindexes = {4, 0};
    CHECK(failed(spec) == CompileError{k400, CriterionField::OutputInterface, "interface index 0"});
}

TEST_CASE("CriteriaCompiler: the filter budget counts the whole product") {
    // 6 destination prefixes x 2 protocols x 2 source-port ranges x 3 interfaces = 72.
    MatchSpec spec = v4Spec("192.0.2.0/24", "203.0.113.1-203.0.113.20");
    spec.sport = numbers("!1024-2047");
    spec.proto = numbers("6, 17");
    spec.input_ifindexes = {1, 2, 3};
    CHECK(compiled(spec, CompileLimits{.max_filters = 72}).size() == 72);
    CHECK(failed(spec, CompileLimits{.max_filters = 71}) ==
          CompileError{k432, CriterionField::Criterion, "more than 71 filters"});
    CHECK(failed(spec, CompileLimits{.max_filters = 0}).status == k432);
}

TEST_CASE("CriteriaCompiler: huge lists are refused before anything is built") {
    using Clock = std::chrono::steady_clock;
    const auto start = Clock::now();

    // 10,000 separate IPv6 ranges of 254 prefixes each, on both sides: 6.45e12 filters.
    MatchSpec v6;
    v6.family = Family::V6;
    for (uint64_t i = 0; i < 10000; ++i) {
        const Uint128 base = Uint128{i + 1} << 100;
        for (auto* list : {&v6.src, &v6.dst}) {
            list->push_back(AddressEntry{false, toAddress(base + 1, Family::V6),
                                         toAddress(base + (Uint128{1} << 99) - 2, Family::V6)});
        }
    }
    CHECK(failed(v6).field == CriterionField::Criterion);

    // 10,000 negations: the complement has 10,001 ranges.
    MatchSpec negations = v4Spec("*", "198.51.100.1");
    negations.src.clear();
    for (uint32_t i = 0; i < 10000; ++i) {
        const Uint128 address = 0x0a000000u + 2 * i;  // 10.0.0.0, 10.0.0.2, ...
        negations.src.push_back(
            AddressEntry{true, toAddress(address, Family::V4), toAddress(address, Family::V4)});
    }
    CHECK(failed(negations).field == CriterionField::Criterion);

    // 10,000 even ports on each side: 10^8 port pairs.
    MatchSpec ports = anchored();
    for (uint64_t port = 0; port < 20000; port += 2) {
        ports.sport.push_back(NumberEntry{false, port, port});
        ports.dport.push_back(NumberEntry{false, port, port});
    }
    CHECK(failed(ports).field == CriterionField::Criterion);

    // 10,000 adjacent hosts merge into ranges before prefixes are counted.
    MatchSpec adjacent = v4Spec("*", "198.51.100.1");
    adjacent.src.clear();
    for (uint32_t i = 0; i < 10000; ++i) {
        const Uint128 address = 0x0a000000u + i;
        adjacent.src.push_back(
            AddressEntry{false, toAddress(address, Family::V4), toAddress(address, Family::V4)});
    }
    // 10.0.0.0 - 10.0.39.15: 10.0.0.0/19, 10.0.32.0/22, 10.0.36.0/23, 10.0.38.0/24, 10.0.39.0/28.
    CHECK(compiled(adjacent).size() == 5);

    // Milliseconds in practice; the bound only catches work that grows with the product.
    CHECK(Clock::now() - start < std::chrono::seconds(5));
}

TEST_CASE("CriteriaCompiler: DTCP parameter names of the fields") {
    CHECK(dtcpName(CriterionField::SourceAddress) == "Source-Address");
    CHECK(dtcpName(CriterionField::DestAddress) == "Dest-Address");
    CHECK(dtcpName(CriterionField::Protocol) == "Protocol");
    CHECK(dtcpName(CriterionField::SourcePort) == "Source-Port");
    CHECK(dtcpName(CriterionField::DestPort) == "Dest-Port");
    CHECK(dtcpName(CriterionField::IcmpType) == "ICMP-Type");
    CHECK(dtcpName(CriterionField::IcmpCode) == "ICMP-Code");
    CHECK(dtcpName(CriterionField::InputInterface) == "X-JTap-Input-Interface");
    CHECK(dtcpName(CriterionField::OutputInterface) == "X-JTap-Output-Interface");
    CHECK(dtcpName(CriterionField::Criterion).empty());
}
