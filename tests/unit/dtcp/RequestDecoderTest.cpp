#include <doctest/doctest.h>

#include <cctype>
#include <string>
#include <vector>

#include "dtcp/RequestDecoder.h"
#include "DtcpTestSupport.h"

namespace xtap::dtcp {
namespace {

using namespace test;
using criteria::AddressEntry;
using criteria::NumberEntry;
using dataplane::Address;
using dataplane::Family;

constexpr std::string_view kUser = "ms1";

// A signed request from `kUser`: start line, Csource-ID, `fields`, Seq.
std::string request(const std::string& start, const std::vector<std::string>& fields,
                    uint64_t seq = 1) {
    std::vector<std::string> lines{start, "Csource-ID: " + std::string(kUser)};
    lines.insert(lines.end(), fields.begin(), fields.end());
    lines.push_back("Seq: " + std::to_string(seq));
    return signedMessage(lines);
}

DecodeOutcome decode(std::string_view bytes, SeqWindow& window, const DecodePolicy& policy = {},
                     std::string_view user = kUser) {
    return decodeRequest(bytes, user, kKey, window, policy);
}

DecodeOutcome decodeFresh(std::string_view bytes, const DecodePolicy& policy = {},
                          std::string_view user = kUser) {
    SeqWindow window;
    return decode(bytes, window, policy, user);
}

std::string describeOutcome(const DecodeOutcome& outcome) {
    if (const auto* e = std::get_if<RequestError>(&outcome)) {
        return "error " + std::to_string(codeNumber(e->code)) + " " + e->item_name + ": " +
               e->item_value + " (" + e->detail + ")";
    }
    if (const auto* d = std::get_if<Discard>(&outcome)) return "discard: " + d->detail;
    return "decoded";
}

DecodedRequest decoded(const DecodeOutcome& outcome) {
    REQUIRE_MESSAGE(std::holds_alternative<DecodedRequest>(outcome), describeOutcome(outcome));
    return std::get<DecodedRequest>(outcome);
}

RequestError requestError(const DecodeOutcome& outcome) {
    REQUIRE_MESSAGE(std::holds_alternative<RequestError>(outcome), describeOutcome(outcome));
    return std::get<RequestError>(outcome);
}

Discard discarded(const DecodeOutcome& outcome) {
    REQUIRE_MESSAGE(std::holds_alternative<Discard>(outcome), describeOutcome(outcome));
    return std::get<Discard>(outcome);
}

template <typename T>
T body(const DecodeOutcome& outcome) {
    const DecodedRequest d = decoded(outcome);
    REQUIRE(std::holds_alternative<T>(d.body));
    return std::get<T>(d.body);
}

Address v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return Address{a, b, c, d};
}
const Address kAllV4{0xff, 0xff, 0xff, 0xff};

IpAddress ip(std::string_view text) {
    const auto address = parseIpAddress(text);
    REQUIRE(address);
    return *address;
}

// --- the reference requests ------------------------------------------------------

TEST_CASE("the Juniper ADD (0.8) decodes field by field") {
    SeqWindow window;
    const auto outcome = decode(withAuthentication(kAddV8Lines, kAddV8Hmac), window, {}, "ftap1");
    const DecodedRequest d = decoded(outcome);
    CHECK(d.version == kVersion08);
    CHECK(d.seq == 101);
    CHECK(d.seq_verdict == SeqVerdict::Baseline);
    CHECK(d.csource_id == "ftap1");
    CHECK(window.state().highest == 101);

    const auto add = body<AddRequest>(outcome);
    CHECK(add.cdest_ids == std::vector<std::string>{"cd1"});
    CHECK(add.match.family == Family::V4);
    CHECK(add.match.src ==
          std::vector<AddressEntry>{{false, v4(192, 0, 2, 10), v4(192, 0, 2, 10)}});
    CHECK(add.match.dst == std::vector<AddressEntry>{{false, Address{}, kAllV4}});
    CHECK(add.match.sport == std::vector<NumberEntry>{{false, 0, 65535}});
    CHECK(add.match.dport == std::vector<NumberEntry>{{false, 0, 65535}});
    CHECK(add.match.proto == std::vector<NumberEntry>{{false, 0, 255}});
    CHECK(add.match.icmp_type.empty());
    CHECK(add.match.input_ifindexes.empty());
    CHECK(add.priority == 2);
    CHECK(add.is_static);
    CHECK_FALSE(add.send_async);
    CHECK_FALSE(add.timeouts.any());
    REQUIRE(add.delivery);
    CHECK(add.delivery->dest_addresses == std::vector<IpAddress>{ip("203.0.113.50")});
    CHECK(add.delivery->dest_ports == std::vector<uint16_t>{50000});
    CHECK(add.delivery->source_address == ip("198.51.100.1"));
    CHECK(add.delivery->source_port == 49153);
    CHECK(add.delivery->ttl == 64);
    CHECK(add.match_text == std::vector<Field>{{"Source-Address", "192.0.2.10"},
                                               {"Dest-Address", "*"},
                                               {"Protocol", "*"},
                                               {"Source-Port", "*"},
                                               {"Dest-Port", "*"}});
    CHECK(add.extension_text == std::vector<Field>{{"X-JTap-Cdest-Dest-Address", "203.0.113.50"},
                                                   {"X-JTap-Cdest-Dest-Port", "50000"},
                                                   {"X-JTap-Cdest-Source-Address", "198.51.100.1"},
                                                   {"X-JTap-Cdest-Source-Port", "49153"},
                                                   {"X-JTap-Cdest-TTL", "64"}});
}

TEST_CASE("the draft-style ADD (0.7) decodes lists, ranges, negation and timeouts") {
    const auto outcome = decodeFresh(withAuthentication(kAddV7Lines, kAddV7Hmac));
    const DecodedRequest d = decoded(outcome);
    CHECK(d.version == kVersion07);
    CHECK(d.seq == 5000);
    const auto add = body<AddRequest>(outcome);
    CHECK(add.match.src ==
          std::vector<AddressEntry>{{false, v4(192, 0, 2, 0), v4(192, 0, 2, 255)}});
    CHECK(add.match.dst ==
          std::vector<AddressEntry>{{true, v4(198, 51, 100, 7), v4(198, 51, 100, 7)},
                                    {false, v4(203, 0, 113, 1), v4(203, 0, 113, 20)}});
    CHECK(add.match.proto == std::vector<NumberEntry>{{false, 6, 6}, {false, 17, 17}});
    CHECK(add.match.dport == std::vector<NumberEntry>{{false, 1024, 65535}});
    CHECK(add.match.sport.empty());
    CHECK(add.timeouts == Timeouts{600, 86400, std::nullopt, std::nullopt});
    CHECK(add.send_async);
    CHECK_FALSE(add.is_static);
    CHECK(add.priority == 1);
    CHECK_FALSE(add.delivery);
    CHECK(add.cdest_ids == std::vector<std::string>{"cd1"});
}

TEST_CASE("the IPv6 ADD decodes into an IPv6 criterion with IPv4 delivery") {
    const auto outcome = decodeFresh(withAuthentication(kAddV6Lines, kAddV6Hmac), {}, "ftap1");
    const auto add = body<AddRequest>(outcome);
    CHECK(add.match.family == Family::V6);
    REQUIRE(add.match.src.size() == 1);
    CHECK(add.match.src[0].lo == ip("2001:db8:10::").bytes);
    CHECK(add.match.src[0].hi == ip("2001:db8:10:ffff:ffff:ffff:ffff:ffff").bytes);
    CHECK(add.match.dst == std::vector<AddressEntry>{
                               {false, ip("2001:db8:20::1").bytes, ip("2001:db8:20::1").bytes}});
    CHECK(add.match.proto == std::vector<NumberEntry>{{false, 6, 6}});
    CHECK(add.match.dport == std::vector<NumberEntry>{{false, 443, 443}});
    CHECK(add.input_interfaces == std::vector<std::string>{"ge-0/0/1.0"});
    REQUIRE(add.delivery);
    CHECK(add.delivery->ttl == 255);  // no TTL line: the default
    CHECK(add.delivery->source_address.family == Family::V4);
}

TEST_CASE("the Juniper DELETE decodes into a single-ID selection with Static") {
    const auto outcome = decodeFresh(withAuthentication(kDeleteLines, kDeleteHmac), {}, "ftap1");
    const auto del = body<DeleteRequest>(outcome);
    CHECK(del.include_static);
    const auto* ids = std::get_if<CriteriaIdSelection>(&del.selection);
    REQUIRE(ids);
    CHECK(ids->single() == 7u);
    CHECK(ids->contains(7));
    CHECK_FALSE(ids->contains(8));
}

TEST_CASE("Juniper's radius-flow-tap DISABLE is authentic, and answered 501 as dtcp.md decides") {
    SeqWindow window;
    const auto outcome = decode(withAuthentication(kJuniperDisableLines, kJuniperDisableHmac),
                                window, {}, "ft-user");
    const RequestError e = requestError(outcome);
    CHECK(e.code == StatusCode::NotImplemented);
    CHECK(e.reply_version == kVersion08);
    CHECK(e.seq == 1u);
    CHECK(e.seq_verdict == SeqVerdict::Baseline);
    CHECK(window.state().highest == 1);
}

// --- every status-code path of step (4) ------------------------------------------

struct StatusCase {
    const char* description;
    std::string start;
    std::vector<std::string> fields;
    StatusCode code;
    std::string item_name;
    std::string item_value;
};

const std::vector<std::string> kAddBase = {"Cdest-ID: cd1", "Source-Address: 192.0.2.1",
                                           "Flags: Static"};

std::vector<std::string> addWith(std::vector<std::string> extra) {
    std::vector<std::string> fields = kAddBase;
    fields.insert(fields.end(), extra.begin(), extra.end());
    return fields;
}

std::vector<std::string> cdestSetWith(std::vector<std::string> changes, const char* drop = "") {
    std::vector<std::string> fields;
    for (const std::string& line : kCdestSet) {
        const std::string name = line.substr(0, line.find(':'));
        if (name == drop) continue;
        bool replaced = false;
        for (const std::string& c : changes) {
            if (c.substr(0, c.find(':')) == name) {
                fields.push_back(c);
                replaced = true;
            }
        }
        if (!replaced) fields.push_back(line);
    }
    for (const std::string& c : changes) {
        if (c.rfind("X-JTap-Cdest-TTL", 0) == 0 || c.rfind("Cdest-ID", 0) == 0) fields.push_back(c);
    }
    return fields;
}

std::vector<std::string> concat(std::vector<std::string> a, const std::vector<std::string>& b) {
    a.insert(a.end(), b.begin(), b.end());
    return a;
}

const std::vector<StatusCase> kStatusCases = {
    // 501: methods and features xtap does not implement.
    {"unknown method", "FOO DTCP/0.8", {}, StatusCode::NotImplemented, "", ""},
    {"radius-flow-tap ENABLE", "ENABLE DTCP/0.8", {}, StatusCode::NotImplemented, "", ""},
    {"radius-flow-tap DISABLE",
     "DISABLE DTCP/0.8",
     {"Criteria-ID: 8"},
     StatusCode::NotImplemented,
     "",
     ""},
    {"X-UserName trigger in ADD", "ADD DTCP/0.8", addWith({"X-UserName: alice"}),
     StatusCode::NotImplemented, "X-UserName", "alice"},
    {"X-Interface-Id trigger in DELETE",
     "DELETE DTCP/0.8",
     {"Criteria-ID: 1", "X-Interface-Id: 7"},
     StatusCode::NotImplemented,
     "X-Interface-Id",
     "7"},
    {"X-Act-Sess-Id trigger", "ADD DTCP/0.7", addWith({"x-act-sess-id: 42"}),
     StatusCode::NotImplemented, "x-act-sess-id", "42"},
    {"X-IP-Addr trigger", "ADD DTCP/0.7", addWith({"X-IP-Addr: 192.0.2.9"}),
     StatusCode::NotImplemented, "X-IP-Addr", "192.0.2.9"},
    {"X-Drop-Policy in NOOP",
     "NOOP DTCP/0.7",
     {"X-Drop-Policy: p"},
     StatusCode::NotImplemented,
     "X-Drop-Policy",
     "p"},
    {"ccc filter family", "ADD DTCP/0.8", addWith({"X-JTap-Filter-Family: ccc"}),
     StatusCode::NotImplemented, "X-JTap-Filter-Family", "ccc"},
    {"Action Redirect", "ADD DTCP/0.8", addWith({"Action: Redirect"}), StatusCode::NotImplemented,
     "Action", "Redirect"},
    {"Action Block", "ADD DTCP/0.8", addWith({"Action: block"}), StatusCode::NotImplemented,
     "Action", "block"},
    {"501 before a parameter error",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "Priority: 0", "Action: Block"},
     StatusCode::NotImplemented,
     "Action",
     "Block"},

    // 400: fields a method does not take.
    {"misspelt match field", "ADD DTCP/0.8", addWith({"Source-Adress: 10.0.0.1"}),
     StatusCode::BadRequest, "Source-Adress", "10.0.0.1"},
    {"match field in DELETE",
     "DELETE DTCP/0.8",
     {"Criteria-ID: 1", "Source-Address: 10.0.0.1"},
     StatusCode::BadRequest,
     "Source-Address",
     "10.0.0.1"},
    {"Criteria-ID in ADD", "ADD DTCP/0.8", addWith({"Criteria-ID: 3"}), StatusCode::BadRequest,
     "Criteria-ID", "3"},
    {"Criteria-ID in NOOP",
     "NOOP DTCP/0.8",
     {"Criteria-ID: 3"},
     StatusCode::BadRequest,
     "Criteria-ID",
     "3"},
    {"unknown filter family", "ADD DTCP/0.8", addWith({"X-JTap-Filter-Family: inet"}),
     StatusCode::BadRequest, "X-JTap-Filter-Family", "inet"},
    {"unknown action", "ADD DTCP/0.8", addWith({"Action: Mirror"}), StatusCode::BadRequest,
     "Action", "Mirror"},

    // ADD: Cdest-ID.
    {"ADD without Cdest-ID",
     "ADD DTCP/0.8",
     {"Source-Address: 192.0.2.1", "Flags: Static"},
     StatusCode::BadRequest,
     "Cdest-ID",
     ""},
    {"three Cdest-IDs",
     "ADD DTCP/0.8",
     {"Cdest-ID: a, b, c", "Source-Address: 192.0.2.1", "Flags: Static"},
     StatusCode::BadRequest,
     "Cdest-ID",
     "a, b, c"},
    {"empty Cdest-ID entry",
     "ADD DTCP/0.8",
     {"Cdest-ID: a,", "Source-Address: 192.0.2.1", "Flags: Static"},
     StatusCode::BadRequest,
     "Cdest-ID",
     "a,"},
    {"bad escape in Cdest-ID",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd\\9", "Source-Address: 192.0.2.1", "Flags: Static"},
     StatusCode::BadRequest,
     "Cdest-ID",
     "cd\\9"},

    // ADD: match fields.
    {"unknown IP version", "ADD DTCP/0.8", addWith({"X-JTap-IP-Version: ipv5"}),
     StatusCode::BadRequest, "X-JTap-IP-Version", "ipv5"},
    {"address syntax",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "Source-Address: 192.0.2.300", "Flags: Static"},
     StatusCode::BadRequest,
     "Source-Address",
     "192.0.2.300"},
    {"prefix length out of range",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "Source-Address: 192.0.2.0/33", "Flags: Static"},
     StatusCode::BadRequest,
     "Source-Address",
     "192.0.2.0/33"},
    {"IPv6 address in an ipv4 criterion",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "Source-Address: 2001:db8::1", "Flags: Static"},
     StatusCode::ImproperFilter,
     "Source-Address",
     "2001:db8::1"},
    {"IPv4 address in an ipv6 criterion",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "X-JTap-IP-Version: IPv6", "Dest-Address: 2001:db8::/32, 192.0.2.1",
      "Flags: Static"},
     StatusCode::ImproperFilter,
     "Dest-Address",
     "2001:db8::/32, 192.0.2.1"},
    {"reversed address range", "ADD DTCP/0.8", addWith({"Dest-Address: 10.0.0.9-10.0.0.1"}),
     StatusCode::ImproperFilter, "Dest-Address", "10.0.0.9-10.0.0.1"},
    {"protocol out of range", "ADD DTCP/0.8", addWith({"Protocol: 256"}), StatusCode::BadRequest,
     "Protocol", "256"},
    {"port out of range", "ADD DTCP/0.8", addWith({"Dest-Port: 70000"}), StatusCode::BadRequest,
     "Dest-Port", "70000"},
    {"reversed port range", "ADD DTCP/0.8", addWith({"Source-Port: 90-80"}),
     StatusCode::ImproperFilter, "Source-Port", "90-80"},
    {"ICMP type with too many digits", "ADD DTCP/0.8", addWith({"ICMP-Type: 0008"}),
     StatusCode::BadRequest, "ICMP-Type", "0008"},
    {"ports with ICMP only", "ADD DTCP/0.8", addWith({"Protocol: 1", "Dest-Port: 80"}),
     StatusCode::ImproperFilter, "Dest-Port", "80"},
    {"ports with TCP and UDP excluded", "ADD DTCP/0.8",
     addWith({"Protocol: !6, !17", "Source-Port: 53"}), StatusCode::ImproperFilter, "Source-Port",
     "53"},
    {"ICMP type with TCP only", "ADD DTCP/0.8", addWith({"Protocol: 6", "ICMP-Type: 8"}),
     StatusCode::ImproperFilter, "ICMP-Type", "8"},
    {"ICMPv4 code in an ipv6 criterion",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "X-JTap-IP-Version: ipv6", "Source-Address: 2001:db8::1", "Protocol: 1",
      "ICMP-Code: 0", "Flags: Static"},
     StatusCode::ImproperFilter,
     "ICMP-Code",
     "0"},
    {"ports and ICMP together", "ADD DTCP/0.8", addWith({"Dest-Port: 80", "ICMP-Type: 8"}),
     StatusCode::ImproperFilter, "ICMP-Type", "8"},
    {"no address constraint",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "Dest-Port: 80", "Flags: Static"},
     StatusCode::ImproperFilter,
     "Source-Address",
     ""},
    {"only wildcard and negated addresses",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "Source-Address: *", "Dest-Address: !192.0.2.1", "Flags: Static"},
     StatusCode::ImproperFilter,
     "Source-Address",
     "*"},

    // ADD: interfaces and VRF.
    {"nine input interfaces", "ADD DTCP/0.8",
     addWith({"X-JTap-Input-Interface: a,b,c,d,e,f,g,h,i"}), StatusCode::BadRequest,
     "X-JTap-Input-Interface", "a,b,c,d,e,f,g,h,i"},
    {"empty output interface", "ADD DTCP/0.8", addWith({"X-JTap-Output-Interface: ge-0/0/1,"}),
     StatusCode::BadRequest, "X-JTap-Output-Interface", "ge-0/0/1,"},
    {"VRF with interface selectors", "ADD DTCP/0.8",
     addWith({"X-JTap-Input-Interface: eth1", "X-JTap-VRF-Name: blue"}), StatusCode::ImproperFilter,
     "X-JTap-VRF-Name", "blue"},
    {"VRF name with a space", "ADD DTCP/0.8", addWith({"X-JTap-VRF-Name: blue red"}),
     StatusCode::BadRequest, "X-JTap-VRF-Name", "blue red"},

    // ADD: priority and flags.
    {"priority 0", "ADD DTCP/0.8", addWith({"Priority: 0"}), StatusCode::BadRequest, "Priority",
     "0"},
    {"priority 256", "ADD DTCP/0.8", addWith({"Priority: 256"}), StatusCode::BadRequest, "Priority",
     "256"},
    {"LIST flag in ADD",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "Source-Address: 192.0.2.1", "Flags: Static, Both"},
     StatusCode::BadRequest,
     "Flags",
     "Static, Both"},
    {"unknown flag",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "Source-Address: 192.0.2.1", "Flags: Sticky"},
     StatusCode::BadRequest,
     "Flags",
     "Sticky"},

    // ADD: lifetime.
    {"no lifetime",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "Source-Address: 192.0.2.1"},
     StatusCode::ImproperTimeout,
     "",
     ""},
    {"all timeouts zero",
     "ADD DTCP/0.8",
     {"Cdest-ID: cd1", "Source-Address: 192.0.2.1", "Timeout-Total: 0", "Timeout-Bytes: 0"},
     StatusCode::ImproperTimeout,
     "Timeout-Total",
     "0"},
    {"DAYSEC above a day", "ADD DTCP/0.8", addWith({"Timeout-Idle: 86401"}), StatusCode::BadRequest,
     "Timeout-Idle", "86401"},
    {"N32 packets overflow", "ADD DTCP/0.8", addWith({"Timeout-Packets: 4294967296"}),
     StatusCode::BadRequest, "Timeout-Packets", "4294967296"},

    // ADD: the X-JTap-Cdest-* set.
    {"set without source port", "ADD DTCP/0.8",
     concat(kAddBase, cdestSetWith({}, "X-JTap-Cdest-Source-Port")), StatusCode::JTapFailure,
     "X-JTap-Cdest-Source-Port", ""},
    {"set without destination address", "ADD DTCP/0.8",
     concat(kAddBase, cdestSetWith({}, "X-JTap-Cdest-Dest-Address")), StatusCode::JTapFailure,
     "X-JTap-Cdest-Dest-Address", ""},
    {"TTL alone", "ADD DTCP/0.8", addWith({"X-JTap-Cdest-TTL: 9"}), StatusCode::JTapFailure,
     "X-JTap-Cdest-Dest-Address", ""},
    {"three destination addresses", "ADD DTCP/0.8",
     concat(kAddBase,
            cdestSetWith({"X-JTap-Cdest-Dest-Address: 203.0.113.1, 203.0.113.2, 203.0.113.3"})),
     StatusCode::BadRequest, "X-JTap-Cdest-Dest-Address", "203.0.113.1, 203.0.113.2, 203.0.113.3"},
    {"two Cdest-IDs, one destination", "ADD DTCP/0.8",
     concat({"Cdest-ID: cd1, cd2", "Source-Address: 192.0.2.1", "Flags: Static"},
            cdestSetWith({"X-JTap-Cdest-Dest-Port: 50000, 50001"})),
     StatusCode::ImproperFilter, "X-JTap-Cdest-Dest-Address", "203.0.113.50"},
    {"destination port 0", "ADD DTCP/0.8",
     concat(kAddBase, cdestSetWith({"X-JTap-Cdest-Dest-Port: 0"})), StatusCode::BadRequest,
     "X-JTap-Cdest-Dest-Port", "0"},
    {"destination is no address", "ADD DTCP/0.8",
     concat(kAddBase, cdestSetWith({"X-JTap-Cdest-Dest-Address: md.example"})),
     StatusCode::BadRequest, "X-JTap-Cdest-Dest-Address", "md.example"},
    {"outer families differ", "ADD DTCP/0.8",
     concat(kAddBase, cdestSetWith({"X-JTap-Cdest-Source-Address: 2001:db8::1"})),
     StatusCode::ImproperFilter, "X-JTap-Cdest-Source-Address", "2001:db8::1"},
    {"TTL 0", "ADD DTCP/0.8", concat(kAddBase, cdestSetWith({"X-JTap-Cdest-TTL: 0"})),
     StatusCode::BadRequest, "X-JTap-Cdest-TTL", "0"},
    {"intercept ID not hex", "ADD DTCP/0.8", addWith({"X-MD-Intercept-Id: 12xz"}),
     StatusCode::BadRequest, "X-MD-Intercept-Id", "12xz"},
    {"intercept ID too long", "ADD DTCP/0.8",
     addWith({"X-MD-Intercept-Id: " + std::string(33, 'a')}), StatusCode::BadRequest,
     "X-MD-Intercept-Id", std::string(33, 'a')},

    // DELETE, REFRESH, LIST, NOOP.
    {"DELETE with both selections",
     "DELETE DTCP/0.8",
     {"Criteria-ID: 1", "Cdest-ID: cd1"},
     StatusCode::BadRequest,
     "Cdest-ID",
     "cd1"},
    {"DELETE without selection",
     "DELETE DTCP/0.8",
     {"Flags: Static"},
     StatusCode::BadRequest,
     "Criteria-ID",
     ""},
    {"DELETE with two Cdest-IDs",
     "DELETE DTCP/0.8",
     {"Cdest-ID: cd1, cd2"},
     StatusCode::BadRequest,
     "Cdest-ID",
     "cd1, cd2"},
    {"DELETE with a bad ID",
     "DELETE DTCP/0.8",
     {"Criteria-ID: seven"},
     StatusCode::BadRequest,
     "Criteria-ID",
     "seven"},
    {"DELETE with a reversed ID range",
     "DELETE DTCP/0.8",
     {"Criteria-ID: 9-3"},
     StatusCode::BadRequest,
     "Criteria-ID",
     "9-3"},
    {"DELETE with SendAsync",
     "DELETE DTCP/0.8",
     {"Criteria-ID: 1", "Flags: SendAsync"},
     StatusCode::BadRequest,
     "Flags",
     "SendAsync"},
    {"REFRESH without timeout",
     "REFRESH DTCP/0.8",
     {"Criteria-ID: 1"},
     StatusCode::ImproperTimeout,
     "",
     ""},
    {"REFRESH with a zero timeout",
     "REFRESH DTCP/0.8",
     {"Criteria-ID: 1", "Timeout-Total: 0"},
     StatusCode::ImproperTimeout,
     "Timeout-Total",
     "0"},
    {"REFRESH without selection",
     "REFRESH DTCP/0.8",
     {"Timeout-Idle: 5"},
     StatusCode::BadRequest,
     "Criteria-ID",
     ""},
    {"LIST with Static",
     "LIST DTCP/0.8",
     {"Flags: Static"},
     StatusCode::BadRequest,
     "Flags",
     "Static"},
    {"LIST with both selections",
     "LIST DTCP/0.8",
     {"Cdest-ID: cd1", "Criteria-ID: *"},
     StatusCode::BadRequest,
     "Cdest-ID",
     "cd1"},
    {"NOOP with Static",
     "NOOP DTCP/0.8",
     {"Flags: Static"},
     StatusCode::BadRequest,
     "Flags",
     "Static"},
};

TEST_CASE("table: each bad request gets its status code and echoes the offending field") {
    for (const StatusCase& c : kStatusCases) {
        INFO(c.description);
        SeqWindow window;
        const auto outcome = decode(request(c.start, c.fields, 77), window);
        const RequestError e = requestError(outcome);
        CHECK(codeNumber(e.code) == codeNumber(c.code));
        CHECK(e.item_name == c.item_name);
        CHECK(e.item_value == c.item_value);
        CHECK_FALSE(e.detail.empty());
        CHECK(e.seq == 77u);
        CHECK(e.reply_version == parseVersion(c.start.substr(c.start.find(' ') + 1)));
        CHECK(window.state().highest == 77);  // authentic: the Seq is used up
    }
}

// --- valid variants ----------------------------------------------------------------

TEST_CASE("ADD variants that are valid") {
    SUBCASE("Action Copy in any case, timeouts, SendAsync, two destinations") {
        const auto outcome = decodeFresh(request(
            "ADD DTCP/0.8",
            concat({"Cdest-ID: cd1, c\\100\\050", "Dest-Address: 198.51.100.0/24", "Action: COPY",
                    "Timeout-Packets: 1000", "Timeout-Bytes: 18446744073709551615",
                    "Timeout-Idle: 0", "Flags: sendasync", "Priority: 255",
                    "X-MD-Intercept-Id: 001122334455667788", "X-JTap-Output-Interface: eth1,eth2"},
                   cdestSetWith({"X-JTap-Cdest-Dest-Address: 203.0.113.50, 203.0.113.51",
                                 "X-JTap-Cdest-Dest-Port: 50000,50001"}))));
        const auto add = body<AddRequest>(outcome);
        CHECK(add.cdest_ids == std::vector<std::string>{"cd1", "cd2"});
        CHECK(add.timeouts == Timeouts{std::nullopt, std::nullopt, 1000u, UINT64_MAX});
        CHECK(add.send_async);
        CHECK(add.priority == 255);
        REQUIRE(add.md_intercept_id);
        CHECK(add.md_intercept_id->hex == "001122334455667788");
        CHECK(add.md_intercept_id->low30 == (0x55667788u & 0x3fffffffu));
        CHECK(add.output_interfaces == std::vector<std::string>{"eth1", "eth2"});
        REQUIRE(add.delivery);
        CHECK(add.delivery->dest_ports == std::vector<uint16_t>{50000, 50001});
    }
    SUBCASE("ICMP with protocol 1, ICMPv6 with 58, ports with a negated protocol list") {
        CHECK(std::holds_alternative<DecodedRequest>(decodeFresh(
            request("ADD DTCP/0.8", addWith({"Protocol: 1", "ICMP-Type: 8", "ICMP-Code: 0"})))));
        CHECK(std::holds_alternative<DecodedRequest>(decodeFresh(request(
            "ADD DTCP/0.8", {"Cdest-ID: cd1", "X-JTap-IP-Version: ipv6", "Protocol: 58",
                             "ICMP-Type: 128", "Dest-Address: 2001:db8::1", "Flags: Static"}))));
        CHECK(std::holds_alternative<DecodedRequest>(
            decodeFresh(request("ADD DTCP/0.8", addWith({"Protocol: !6", "Dest-Port: 53"})))));
        CHECK(std::holds_alternative<DecodedRequest>(decodeFresh(
            request("ADD DTCP/0.8", addWith({"Source-Port: *", "ICMP-Type: *", "Protocol: 1"})))));
    }
    SUBCASE("a wide criterion when the user's policy allows it") {
        const std::string wide =
            request("ADD DTCP/0.8", {"Cdest-ID: cd1", "Dest-Port: 80", "Flags: Static"});
        CHECK(std::holds_alternative<RequestError>(decodeFresh(wide)));
        const auto add = body<AddRequest>(decodeFresh(wide, DecodePolicy{true}));
        CHECK(add.match.src.empty());
        CHECK(add.match.dst.empty());
    }
    SUBCASE("VRF name, unknown X- fields are ignored but echoed when X-JTap") {
        const auto add = body<AddRequest>(decodeFresh(
            request("ADD DTCP/0.8", addWith({"X-JTap-VRF-Name: blue", "X-Vendor-Thing: 1",
                                             "X-JTap-Future: yes", "X-JTap-Future: no"}))));
        CHECK(add.vrf_name == std::string("blue"));
        CHECK(add.extension_text ==
              std::vector<Field>{{"X-JTap-VRF-Name", "blue"}, {"X-JTap-Future", "yes"}});
    }
    SUBCASE("Static with timeouts keeps both; Static decides") {
        const auto add =
            body<AddRequest>(decodeFresh(request("ADD DTCP/0.8", addWith({"Timeout-Total: 60"}))));
        CHECK(add.is_static);
        CHECK(add.timeouts.total_seconds == 60u);
    }
}

TEST_CASE("DELETE, REFRESH, LIST and NOOP variants that are valid") {
    SUBCASE("DELETE by Cdest-ID, by list and range, without Static") {
        const auto by_cdest =
            body<DeleteRequest>(decodeFresh(request("DELETE DTCP/0.7", {"Cdest-ID: md\\0451"})));
        CHECK_FALSE(by_cdest.include_static);
        CHECK(std::get<CdestSelection>(by_cdest.selection).cdest_id == "md-1");

        const auto by_range = body<DeleteRequest>(
            decodeFresh(request("DELETE DTCP/0.8", {"CRITERIA-ID: 1-5, 9, !3"})));
        const auto& ids = std::get<CriteriaIdSelection>(by_range.selection);
        CHECK_FALSE(ids.single());
        CHECK(ids.contains(2));
        CHECK(ids.contains(9));
        CHECK_FALSE(ids.contains(3));
        CHECK_FALSE(ids.contains(6));
    }
    SUBCASE("REFRESH replaces timeouts; Static is accepted and has no effect") {
        const auto refresh = body<RefreshRequest>(decodeFresh(
            request("REFRESH DTCP/0.8", {"Criteria-ID: *", "Timeout-Idle: 30", "Flags: STATIC"})));
        CHECK(refresh.timeouts == Timeouts{30u, std::nullopt, std::nullopt, std::nullopt});
        const auto& ids = std::get<CriteriaIdSelection>(refresh.selection);
        CHECK(ids.contains(0));
        CHECK(ids.contains(4294967295u));
    }
    SUBCASE("LIST flags: none is Both; Stats, Criteria, Both, and Stats+Criteria") {
        struct FlagCase {
            const char* flags;
            ListDetail detail;
        };
        for (const FlagCase& c :
             {FlagCase{"", ListDetail::Both}, FlagCase{"Stats", ListDetail::Stats},
              FlagCase{"criteria", ListDetail::Criteria}, FlagCase{"BOTH", ListDetail::Both},
              FlagCase{"Stats, Criteria", ListDetail::Both}}) {
            INFO(c.flags);
            std::vector<std::string> fields{"Cdest-ID: md1"};
            if (*c.flags) fields.push_back(std::string("Flags: ") + c.flags);
            const auto list = body<ListRequest>(decodeFresh(request("LIST DTCP/0.7", fields)));
            CHECK(list.detail == c.detail);
            REQUIRE(list.selection);
            CHECK(std::get<CdestSelection>(*list.selection).cdest_id == "md1");
        }
        const auto all = body<ListRequest>(decodeFresh(request("LIST DTCP/0.7", {})));
        CHECK_FALSE(all.selection);
    }
    SUBCASE("NOOP, with and without SendAsync; lowercase methods") {
        CHECK(body<NoopRequest>(decodeFresh(request("NOOP DTCP/0.6", {"Flags: SendAsync"})))
                  .send_async);
        CHECK_FALSE(body<NoopRequest>(decodeFresh(request("noop DTCP/0.6", {}))).send_async);
    }
}

TEST_CASE("repeated names: the first counts, and after Authentication-Info nothing counts") {
    const auto add = body<AddRequest>(
        decodeFresh(request("ADD DTCP/0.8", addWith({"Priority: 3", "PRIORITY: 0"}))));
    CHECK(add.priority == 3);

    std::string wire = request("NOOP DTCP/0.8", {});
    wire.resize(wire.size() - 2);  // drop the empty line, append fields after the signature
    wire += "Flags: Bogus\r\nX-UserName: x\r\n\r\n";
    CHECK_FALSE(body<NoopRequest>(decodeFresh(wire)).send_async);
}

TEST_CASE("bare LF requests are authentic when signed as received") {
    const std::string lf =
        signedMessage({"NOOP DTCP/0.8", "Csource-ID: ms1", "Seq: 4"}, kKey, "\n");
    const DecodedRequest d = decoded(decodeFresh(lf));
    CHECK(d.seq == 4);
}

// --- steps (1) to (3) and their order ---------------------------------------------

TEST_CASE("step 1: structure errors get 400 before any authentication") {
    struct Case {
        const char* description;
        std::string text;
        std::string item_name;
        std::optional<uint64_t> seq;
        Version reply_version;
    };
    const Case cases[] = {
        {"no Csource-ID", signedMessage({"NOOP DTCP/0.8", "Seq: 1"}), "Csource-ID", std::nullopt,
         kVersion08},
        {"empty Csource-ID", signedMessage({"NOOP DTCP/0.8", "Csource-ID:", "Seq: 1"}),
         "Csource-ID", std::nullopt, kVersion08},
        {"no Seq", signedMessage({"NOOP DTCP/0.6", "Csource-ID: ms1"}), "Seq", std::nullopt,
         kVersion06},
        {"Seq not N64", signedMessage({"NOOP DTCP/0.7", "Csource-ID: ms1", "Seq: 1x"}), "Seq",
         std::nullopt, kVersion07},
        {"Seq with 21 digits",
         signedMessage({"NOOP DTCP/0.7", "Csource-ID: ms1", "Seq: 000000000000000000001"}), "Seq",
         std::nullopt, kVersion07},
        {"no Authentication-Info",
         crlfLines({"NOOP DTCP/0.7", "Csource-ID: ms1", "Seq: 3"}) + "\r\n", "", 3u, kVersion07},
        {"line without a colon", "NOOP DTCP/0.8\r\nCsource-ID ms1\r\n\r\n", "", std::nullopt,
         kVersion08},
        {"bad start line", "NOOP\r\nCsource-ID: ms1\r\n\r\n", "", std::nullopt, kVersion07},
        {"a status line", signedMessage({"DTCP/0.8 200 OK", "Csource-ID: ms1", "Seq: 1"}), "",
         std::nullopt, kVersion08},
        {"unsupported version and bad structure", "NOOP DTCP/0.9\r\nSeq 1\r\n\r\n", "",
         std::nullopt, kVersion08},
    };
    for (const Case& c : cases) {
        INFO(c.description);
        SeqWindow window;
        const RequestError e = requestError(decode(c.text, window));
        CHECK(e.code == StatusCode::BadRequest);
        CHECK(e.item_name == c.item_name);
        CHECK(e.seq == c.seq);
        CHECK(e.reply_version == c.reply_version);
        CHECK_FALSE(e.seq_verdict);
        CHECK_FALSE(window.state().has_baseline);
    }
}

TEST_CASE("step 2: bad HMAC, wrong Csource-ID and rejected Seq are discarded silently") {
    SUBCASE("bad HMAC, and the window does not move") {
        SeqWindow window;
        std::string wire = request("NOOP DTCP/0.8", {}, 10);
        const auto at = wire.find("Authentication-Info: ") + 21;
        wire[at] = wire[at] == 'a' ? 'b' : 'a';
        const Discard d = discarded(decode(wire, window));
        CHECK(d.reason == DiscardReason::BadAuthentication);
        CHECK(auditCode(d.reason) == StatusCode::BadAuthentication);
        CHECK(d.csource_id == "ms1");
        CHECK(d.seq == 10u);
        CHECK_FALSE(window.state().has_baseline);
        CHECK(std::holds_alternative<DecodedRequest>(
            decode(request("NOOP DTCP/0.8", {}, 10), window)));
    }
    SUBCASE("wrong key, malformed or upper-case Authentication-Info") {
        SeqWindow window;
        CHECK(
            discarded(decodeRequest(request("NOOP DTCP/0.8", {}), kUser, "other", window)).reason ==
            DiscardReason::BadAuthentication);
        const std::string covered = crlfLines({"NOOP DTCP/0.8", "Csource-ID: ms1", "Seq: 2"});
        CHECK(discarded(decode(covered + "Authentication-Info: zz\r\n\r\n", window)).reason ==
              DiscardReason::BadAuthentication);
        std::string upper = hmacSha1Hex(kKey, covered);
        for (char& ch : upper) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
        CHECK(std::holds_alternative<DecodedRequest>(
            decode(covered + "Authentication-Info: " + upper + "\r\n\r\n", window)));
    }
    SUBCASE("Csource-ID other than the SSH user, even when authentic") {
        SeqWindow window;
        const Discard d = discarded(decode(request("NOOP DTCP/0.8", {}), window, {}, "ms2"));
        CHECK(d.reason == DiscardReason::CsourceMismatch);
        CHECK(auditCode(d.reason) == StatusCode::UnknownControlSource);
        CHECK_FALSE(window.state().has_baseline);
    }
    SUBCASE("Csource-ID with escapes is compared after decoding") {
        const std::string wire =
            signedMessage({"NOOP DTCP/0.8", "Csource-ID: ft\\045user", "Seq: 1"});
        CHECK(decoded(decodeFresh(wire, {}, "ft-user")).csource_id == "ft-user");
        const std::string bad =
            signedMessage({"NOOP DTCP/0.8", "Csource-ID: ft\\45user", "Seq: 1"});
        CHECK(discarded(decodeFresh(bad, {}, "ft-user")).reason == DiscardReason::CsourceMismatch);
    }
    SUBCASE("replays and out-of-window Seqs") {
        SeqWindow window;
        const std::string first = request("NOOP DTCP/0.8", {}, 500);
        CHECK(std::holds_alternative<DecodedRequest>(decode(first, window)));
        const Discard replay = discarded(decode(first, window));
        CHECK(replay.reason == DiscardReason::SeqRejected);
        CHECK(replay.seq_verdict == SeqVerdict::Replayed);
        CHECK(auditCode(replay.reason) == StatusCode::BadSequence);
        CHECK(discarded(decode(request("NOOP DTCP/0.8", {}, 757), window)).seq_verdict ==
              SeqVerdict::TooFarAhead);
        CHECK(discarded(decode(request("NOOP DTCP/0.8", {}, 243), window)).seq_verdict ==
              SeqVerdict::TooOld);
        CHECK(decoded(decode(request("NOOP DTCP/0.8", {}, 499), window)).seq_verdict ==
              SeqVerdict::Late);
        CHECK(decoded(decode(request("NOOP DTCP/0.8", {}, 756), window)).seq_verdict ==
              SeqVerdict::Advanced);
    }
    SUBCASE("an error reply uses up the Seq: its replay is discarded") {
        SeqWindow window;
        const std::string bad = request("ADD DTCP/0.8", {"Priority: 0"}, 8);
        CHECK(requestError(decode(bad, window)).code == StatusCode::BadRequest);
        CHECK(discarded(decode(bad, window)).reason == DiscardReason::SeqRejected);
    }
    SUBCASE("a rollover is reported for the 130 notification") {
        SeqWindow window(SeqWindowState{true, UINT64_MAX - 1, {}});
        CHECK(decoded(decode(request("NOOP DTCP/0.8", {}, 3), window)).seq_verdict ==
              SeqVerdict::Wrapped);
    }
}

TEST_CASE("step 3: unsupported versions get 505 in 0.8 (newer) or 0.6 (older)") {
    struct Case {
        const char* version;
        Version reply;
    };
    for (const Case& c :
         {Case{"0.9", kVersion08}, Case{"1.0", kVersion08}, Case{"0.10", kVersion08},
          Case{"0.5", kVersion06}, Case{"0.0", kVersion06}}) {
        INFO(c.version);
        SeqWindow window;
        const RequestError e =
            requestError(decode(request(std::string("FOO DTCP/") + c.version, {}, 12), window));
        CHECK(e.code == StatusCode::VersionNotSupported);
        CHECK(e.reply_version == c.reply);
        CHECK(e.seq == 12u);
        CHECK(window.state().highest == 12);
    }
    for (const char* version : {"0.6", "0.7", "0.8"}) {
        INFO(version);
        const DecodedRequest d =
            decoded(decodeFresh(request(std::string("NOOP DTCP/") + version, {})));
        CHECK(formatVersion(d.version) == std::string("DTCP/") + version);
    }
}

TEST_CASE("check order: structure, then authenticity, then version, then method") {
    // Bad HMAC beats an unsupported version and an unknown method.
    std::string wire = request("FOO DTCP/2.0", {}, 1);
    wire[wire.find("Authentication-Info: ") + 21] ^= 1;
    CHECK(discarded(decodeFresh(wire)).reason == DiscardReason::BadAuthentication);
    // Wrong user beats a version error.
    CHECK(discarded(decodeFresh(request("ADD DTCP/0.9", {}), {}, "someone")).reason ==
          DiscardReason::CsourceMismatch);
    // Version beats method and parameters.
    CHECK(requestError(decodeFresh(request("ENABLE DTCP/0.4", {"Priority: 0"}))).code ==
          StatusCode::VersionNotSupported);
    // Method beats parameters.
    CHECK(requestError(decodeFresh(request("BLOCK DTCP/0.8", {"Priority: 0"}))).code ==
          StatusCode::NotImplemented);
}

}  // namespace
}  // namespace xtap::dtcp
