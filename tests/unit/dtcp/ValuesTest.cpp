#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "dtcp/Values.h"

namespace xtap::dtcp {
namespace {

using criteria::AddressEntry;
using criteria::NumberEntry;
using dataplane::Address;
using dataplane::Family;

Address v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return Address{a, b, c, d};
}

Address v6(std::string_view text) {
    const auto address = parseIpAddress(text);
    REQUIRE(address);
    REQUIRE(address->family == Family::V6);
    return address->bytes;
}

Address allOnes(Family family) {
    Address a{};
    for (unsigned i = 0; i < dataplane::addressBits(family) / 8; ++i) a[i] = 0xff;
    return a;
}

std::vector<AddressEntry> addresses(std::string_view text, Family family = Family::V4) {
    auto list = parseAddressList(text, family);
    REQUIRE_MESSAGE(list.ok(), (list.ok() ? "" : list.error().detail));
    return list.value();
}

std::vector<NumberEntry> numbers(std::string_view text, IntegerKind kind) {
    auto list = parseNumberList(text, kind);
    REQUIRE_MESSAGE(list.ok(), (list.ok() ? "" : list.error().detail));
    return list.value();
}

ValueProblem addressProblem(std::string_view text, Family family = Family::V4) {
    auto list = parseAddressList(text, family);
    REQUIRE_FALSE(list.ok());
    CHECK_FALSE(list.error().detail.empty());
    return list.error().problem;
}

ValueProblem numberProblem(std::string_view text, IntegerKind kind) {
    auto list = parseNumberList(text, kind);
    REQUIRE_FALSE(list.ok());
    return list.error().problem;
}

TEST_CASE("integers: digit counts and ranges of each kind") {
    struct Case {
        const char* text;
        IntegerKind kind;
        std::optional<uint64_t> value;
    };
    const Case cases[] = {
        {"0", IntegerKind::N8, 0},
        {"255", IntegerKind::N8, 255},
        {"007", IntegerKind::N8, 7},
        {"256", IntegerKind::N8, std::nullopt},
        {"0001", IntegerKind::N8, std::nullopt},  // 4 digits
        {"65535", IntegerKind::N16, 65535},
        {"65536", IntegerKind::N16, std::nullopt},
        {"000001", IntegerKind::N16, std::nullopt},
        {"4294967295", IntegerKind::N32, 4294967295ULL},
        {"4294967296", IntegerKind::N32, std::nullopt},
        {"00000000001", IntegerKind::N32, std::nullopt},
        {"18446744073709551615", IntegerKind::N64, 18446744073709551615ULL},
        {"18446744073709551616", IntegerKind::N64, std::nullopt},
        {"99999999999999999999", IntegerKind::N64, std::nullopt},
        {"000000000000000000001", IntegerKind::N64, std::nullopt},  // 21 digits
        {"86400", IntegerKind::DaySec, 86400},
        {"86401", IntegerKind::DaySec, std::nullopt},
        {"000600", IntegerKind::DaySec, std::nullopt},
        {"", IntegerKind::N32, std::nullopt},
        {"+1", IntegerKind::N32, std::nullopt},
        {"-1", IntegerKind::N32, std::nullopt},
        {" 1", IntegerKind::N32, std::nullopt},
        {"1 ", IntegerKind::N32, std::nullopt},
        {"0x10", IntegerKind::N32, std::nullopt},
        {"1e3", IntegerKind::N32, std::nullopt},
    };
    for (const Case& c : cases) {
        INFO(c.text);
        CHECK(parseInteger(c.text, c.kind) == c.value);
    }
    CHECK(maxDigits(IntegerKind::DaySec) == 5);
    CHECK(maxValue(IntegerKind::N16) == 65535);
}

TEST_CASE("IPv4 address entries become inclusive ranges") {
    CHECK(addresses("192.0.2.10") ==
          std::vector<AddressEntry>{{false, v4(192, 0, 2, 10), v4(192, 0, 2, 10)}});
    CHECK(addresses("192.0.2.0/24") ==
          std::vector<AddressEntry>{{false, v4(192, 0, 2, 0), v4(192, 0, 2, 255)}});
    // Host bits in a/len: the whole prefix.
    CHECK(addresses("192.0.2.77/24") ==
          std::vector<AddressEntry>{{false, v4(192, 0, 2, 0), v4(192, 0, 2, 255)}});
    CHECK(addresses("10.1.2.3/0") ==
          std::vector<AddressEntry>{{false, Address{}, allOnes(Family::V4)}});
    CHECK(addresses("10.1.2.3/32") ==
          std::vector<AddressEntry>{{false, v4(10, 1, 2, 3), v4(10, 1, 2, 3)}});
    CHECK(addresses("203.0.113.1-203.0.113.20") ==
          std::vector<AddressEntry>{{false, v4(203, 0, 113, 1), v4(203, 0, 113, 20)}});
    CHECK(addresses("203.0.113.1-203.0.113.1") ==
          std::vector<AddressEntry>{{false, v4(203, 0, 113, 1), v4(203, 0, 113, 1)}});
    CHECK(addresses("10.0.0.0-*") ==
          std::vector<AddressEntry>{{false, v4(10, 0, 0, 0), allOnes(Family::V4)}});
    CHECK(addresses("*-10.0.0.0") ==
          std::vector<AddressEntry>{{false, Address{}, v4(10, 0, 0, 0)}});
    CHECK(addresses("*") == std::vector<AddressEntry>{{false, Address{}, allOnes(Family::V4)}});
}

TEST_CASE("address lists: negation, whitespace after commas, negation-only lists") {
    const auto list = addresses("!198.51.100.7, 203.0.113.1-203.0.113.20");
    REQUIRE(list.size() == 2);
    CHECK(list[0] == AddressEntry{true, v4(198, 51, 100, 7), v4(198, 51, 100, 7)});
    CHECK(list[1] == AddressEntry{false, v4(203, 0, 113, 1), v4(203, 0, 113, 20)});
    CHECK(addresses("10.0.0.1,10.0.0.2 ,\t10.0.0.3").size() == 3);

    const auto negated = addresses("!10.0.0.0/8, !192.0.2.1");
    CHECK(negated.size() == 2);
    CHECK(negated[0].negated);
    CHECK(negated[1].negated);
    CHECK(addressListMatches(negated, v4(198, 51, 100, 1)));  // starts from `*`
    CHECK_FALSE(addressListMatches(negated, v4(10, 9, 9, 9)));
    CHECK_FALSE(addressListMatches(negated, v4(192, 0, 2, 1)));

    CHECK(addressListMatches(list, v4(203, 0, 113, 5)));
    CHECK_FALSE(addressListMatches(list, v4(198, 51, 100, 7)));
    CHECK_FALSE(addressListMatches(list, v4(203, 0, 113, 21)));
    CHECK(addressListMatches({}, v4(1, 2, 3, 4)));
}

TEST_CASE("IPv6 address entries") {
    CHECK(addresses("2001:db8:10::/48", Family::V6) ==
          std::vector<AddressEntry>{
              {false, v6("2001:db8:10::"), v6("2001:db8:10:ffff:ffff:ffff:ffff:ffff")}});
    CHECK(addresses("2001:db8::1/128", Family::V6) ==
          std::vector<AddressEntry>{{false, v6("2001:db8::1"), v6("2001:db8::1")}});
    CHECK(addresses("2001:db8::1/0", Family::V6) ==
          std::vector<AddressEntry>{{false, Address{}, allOnes(Family::V6)}});
    CHECK(addresses("2001:db8::1-2001:db8::ff", Family::V6) ==
          std::vector<AddressEntry>{{false, v6("2001:db8::1"), v6("2001:db8::ff")}});
    CHECK(addresses("*-::ffff", Family::V6) ==
          std::vector<AddressEntry>{{false, Address{}, v6("::ffff")}});
    CHECK(addresses("*", Family::V6) ==
          std::vector<AddressEntry>{{false, Address{}, allOnes(Family::V6)}});
    CHECK(addresses("!2001:db8::/32, ::ffff:192.0.2.1", Family::V6).size() == 2);
}

TEST_CASE("address list errors: syntax versus improper filter") {
    // Not the field's syntax, or a number out of range: 400.
    for (const char* text : {"", "192.0.2", "192.0.2.256", "host.example", "10.0.0.1,", ",10.0.0.1",
                             "10.0.0.1,,10.0.0.2", "!", "10.0.0.0/33", "10.0.0.0/", "10.0.0.0/-1",
                             "10.0.0.0/1-10.0.0.9", "10.0.0.1 - 10.0.0.2", "10.0.0.1-",
                             "! 10.0.0.1", "10.0.0.1 10.0.0.2"}) {
        INFO(text);
        CHECK(addressProblem(text) == ValueProblem::Syntax);
    }
    CHECK(addressProblem("2001:db8::/129", Family::V6) == ValueProblem::Syntax);
    // Well formed but no usable filter: 432.
    CHECK(addressProblem("10.0.0.9-10.0.0.1") == ValueProblem::Improper);
    CHECK(addressProblem("2001:db8::2-2001:db8::1", Family::V6) == ValueProblem::Improper);
    CHECK(addressProblem("2001:db8::1") == ValueProblem::Improper);
    CHECK(addressProblem("10.0.0.0/8, 2001:db8::/32") == ValueProblem::Improper);
    CHECK(addressProblem("192.0.2.1", Family::V6) == ValueProblem::Improper);
    CHECK(addressProblem("*-2001:db8::1") == ValueProblem::Improper);
    CHECK(addressProblem("!*") == ValueProblem::Improper);
    CHECK(addressProblem("!0.0.0.0/0") == ValueProblem::Improper);
}

TEST_CASE("numeric lists: n, n-m, n-*, *-n, * and negation") {
    CHECK(numbers("6", IntegerKind::N8) == std::vector<NumberEntry>{{false, 6, 6}});
    CHECK(numbers("6,17", IntegerKind::N8) ==
          std::vector<NumberEntry>{{false, 6, 6}, {false, 17, 17}});
    CHECK(numbers("1024-*", IntegerKind::N16) == std::vector<NumberEntry>{{false, 1024, 65535}});
    CHECK(numbers("*-1023", IntegerKind::N16) == std::vector<NumberEntry>{{false, 0, 1023}});
    CHECK(numbers("*", IntegerKind::N16) == std::vector<NumberEntry>{{false, 0, 65535}});
    CHECK(numbers("*", IntegerKind::N8) == std::vector<NumberEntry>{{false, 0, 255}});
    CHECK(numbers("80-80", IntegerKind::N16) == std::vector<NumberEntry>{{false, 80, 80}});
    CHECK(numbers("!22, 1-1024", IntegerKind::N16) ==
          std::vector<NumberEntry>{{true, 22, 22}, {false, 1, 1024}});
    CHECK(numbers("1-5,  7", IntegerKind::N32) ==
          std::vector<NumberEntry>{{false, 1, 5}, {false, 7, 7}});

    for (const char* text : {"", "65536", "000080", "-5", "5-", "a", "1,,2", "!", "1 -2", "0x50"}) {
        INFO(text);
        CHECK(numberProblem(text, IntegerKind::N16) == ValueProblem::Syntax);
    }
    CHECK(numberProblem("256", IntegerKind::N8) == ValueProblem::Syntax);
    CHECK(numberProblem("100-10", IntegerKind::N16) == ValueProblem::Improper);
    CHECK(numberProblem("!*", IntegerKind::N8) == ValueProblem::Improper);
    CHECK(numberProblem("!0-*", IntegerKind::N8) == ValueProblem::Improper);
}

TEST_CASE("numeric list semantics and constraint tests") {
    const auto not_ssh = numbers("!22", IntegerKind::N16);
    CHECK(numberListMatches(not_ssh, 80));
    CHECK_FALSE(numberListMatches(not_ssh, 22));
    const auto tcp_udp = numbers("6,17", IntegerKind::N8);
    CHECK(numberListMatches(tcp_udp, 17));
    CHECK_FALSE(numberListMatches(tcp_udp, 1));
    CHECK(numberListMatches({}, 99));

    CHECK_FALSE(constrainsNumbers({}, IntegerKind::N16));
    CHECK_FALSE(constrainsNumbers(numbers("*", IntegerKind::N16), IntegerKind::N16));
    CHECK_FALSE(constrainsNumbers(numbers("0-65535, 80", IntegerKind::N16), IntegerKind::N16));
    CHECK(constrainsNumbers(numbers("80", IntegerKind::N16), IntegerKind::N16));
    CHECK(constrainsNumbers(not_ssh, IntegerKind::N16));
    CHECK(constrainsNumbers(numbers("1-*", IntegerKind::N16), IntegerKind::N16));

    CHECK_FALSE(anchorsAddresses({}, Family::V4));
    CHECK_FALSE(anchorsAddresses(addresses("*"), Family::V4));
    CHECK_FALSE(anchorsAddresses(addresses("0.0.0.0/0"), Family::V4));
    CHECK_FALSE(anchorsAddresses(addresses("!10.0.0.1"), Family::V4));
    CHECK(anchorsAddresses(addresses("10.0.0.1"), Family::V4));
    CHECK(anchorsAddresses(addresses("0.0.0.0/1"), Family::V4));
    CHECK(anchorsAddresses(addresses("2001:db8::/32", Family::V6), Family::V6));
    CHECK_FALSE(anchorsAddresses(addresses("::/0", Family::V6), Family::V6));
}

TEST_CASE("IP addresses by inet_pton, both families") {
    const auto a4 = parseIpAddress("198.51.100.1");
    REQUIRE(a4);
    CHECK(a4->family == Family::V4);
    CHECK(a4->bytes == v4(198, 51, 100, 1));
    CHECK(formatIpAddress(*a4) == "198.51.100.1");
    const auto a6 = parseIpAddress("2001:DB8::1");
    REQUIRE(a6);
    CHECK(a6->family == Family::V6);
    CHECK(formatIpAddress(*a6) == "2001:db8::1");
    const std::string too_long(80, '1');
    for (std::string_view bad :
         {std::string_view(""), std::string_view("01.2.3.4"), std::string_view("1.2.3"),
          std::string_view("1.2.3.4 "), std::string_view("::g"), std::string_view(too_long)}) {
        INFO(bad);
        CHECK_FALSE(parseIpAddress(bad));
    }
}

TEST_CASE("identifiers: \\ddd escapes decode and encode") {
    CHECK(unescapeIdentifier("ft\\045user").value() == "ft-user");
    CHECK(unescapeIdentifier("a\\032b\\044c").value() == "a b,c");
    CHECK(unescapeIdentifier("\\000").value() == std::string(1, '\0'));
    CHECK(unescapeIdentifier("\\255").value() == "\xff");
    CHECK(unescapeIdentifier("plain").value() == "plain");
    for (const char* bad : {"\\256", "\\12", "x\\", "\\abc", "\\1a2", "\\\\"}) {
        INFO(bad);
        auto decoded = unescapeIdentifier(bad);
        CHECK_FALSE(decoded.ok());
    }
    CHECK(escapeIdentifier("a b,c:d\\e") == "a\\032b\\044c\\058d\\092e");
    CHECK(escapeIdentifier("cd1") == "cd1");
    const std::string awkward = std::string("x\x01y\xffz") + " ,:\\";
    CHECK(unescapeIdentifier(escapeIdentifier(awkward)).value() == awkward);
}

}  // namespace
}  // namespace xtap::dtcp
