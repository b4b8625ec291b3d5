#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "dtcp/Responses.h"
#include "dtcp/Text.h"
#include "DtcpTestSupport.h"

namespace xtap::dtcp {
namespace {

using namespace test;

const Timestamp kAddTime{2024, 5, 1, 10, 15, 30, 123};
const Timestamp kDeleteTime{2024, 5, 1, 10, 20, 0, 0};

bool signatureValid(std::string_view wire, std::string_view key = kKey) {
    const Message m = parseOk(wire);
    return m.authentication_info &&
           hmacSha1Matches(key, wire.substr(0, m.signed_length), *m.authentication_info);
}

TEST_CASE("the ADD and DELETE replies match the dtcp.md vectors byte for byte") {
    CHECK(formatResponse(addedResponse(kVersion08, 101, 7, kAddTime), kKey) ==
          withAuthentication(kAddV8ReplyLines, kAddV8ReplyHmac, kAuthenticationInfoUpper));
    CHECK(formatResponse(countResponse(kVersion08, 103, 1, kDeleteTime), kKey) ==
          withAuthentication(kDeleteReplyLines, kDeleteReplyHmac, kAuthenticationInfoUpper));
}

TEST_CASE("a reply round-trips through the parser") {
    const std::string wire = formatResponse(countResponse(kVersion07, 9, 0, kDeleteTime), kKey);
    const Message m = parseOk(wire);
    CHECK(m.statusLine()->version == kVersion07);
    CHECK(m.statusLine()->code == 200);
    CHECK(m.statusLine()->reason == "OK");
    CHECK(m.find("Seq")->value == "9");
    CHECK(m.find("Criteria-Count")->value == "0");
    CHECK(m.find("Timestamp")->value == "2024-05-01 10:20:00.000");
    CHECK(formatMessage(m, kKey, kAuthenticationInfoUpper) == wire);
}

TEST_CASE("a NOOP reply is a bare 200") {
    CHECK(formatResponse(okResponse(kVersion06, 4, kAddTime), kKey) ==
          signedMessage({"DTCP/0.6 200 OK", "SEQ: 4", "TIMESTAMP: 2024-05-01 10:15:30.123"}, kKey,
                        "\r\n", kAuthenticationInfoUpper));
}

TEST_CASE("error replies echo the offending field in the Junos shape") {
    const Timestamp t{2024, 5, 1, 10, 21, 0, 0};
    const std::string wire = formatResponse(
        errorResponse(kVersion07, 104, StatusCode::UnknownCriteriaId, "Criteria-ID", "99", t),
        kKey);
    CHECK(wire == signedMessage({"DTCP/0.7 431 Unknown Criteria ID", "SEQ: 104", "CRITERIA-ID: 99",
                                 "TIMESTAMP: 2024-05-01 10:21:00.000"},
                                kKey, "\r\n", kAuthenticationInfoUpper));

    // Same content as the draft-order vector, names compared without case.
    const Message ours = parseOk(wire);
    const Message draft = parseOk(withAuthentication(kErrorReplyLines, kErrorReplyHmac));
    CHECK(ours.start == draft.start);
    for (const Field& f : draft.fields) {
        INFO(f.name);
        REQUIRE(ours.find(f.name));
        CHECK(ours.find(f.name)->value == f.value);
    }
}

TEST_CASE("errors from the decoder: reply version, Seq and echo as decided there") {
    RequestError error;
    error.code = StatusCode::ImproperFilter;
    error.reply_version = kVersion08;
    error.seq = 77;
    error.item_name = "Source-Address";
    error.item_value = "2001:db8::1";
    CHECK(formatResponse(errorResponse(error, kAddTime), kKey) ==
          signedMessage({"DTCP/0.8 432 Improper Filter Specification", "SEQ: 77",
                         "SOURCE-ADDRESS: 2001:db8::1", "TIMESTAMP: 2024-05-01 10:15:30.123"},
                        kKey, "\r\n", kAuthenticationInfoUpper));

    RequestError version_error;
    version_error.code = StatusCode::VersionNotSupported;
    version_error.reply_version = kVersion06;
    version_error.seq = 1;
    CHECK(formatResponse(errorResponse(version_error, kAddTime), kKey) ==
          signedMessage({"DTCP/0.6 505 Version Not Supported", "SEQ: 1",
                         "TIMESTAMP: 2024-05-01 10:15:30.123"},
                        kKey, "\r\n", kAuthenticationInfoUpper));

    // An Authentication-Info line must stay the last one: never echoed.
    const std::string no_echo = formatResponse(
        errorResponse(kVersion08, 2, StatusCode::BadRequest, "authentication-info", "x", kAddTime),
        kKey);
    CHECK(no_echo == signedMessage({"DTCP/0.8 400 Bad Request", "SEQ: 2",
                                    "TIMESTAMP: 2024-05-01 10:15:30.123"},
                                   kKey, "\r\n", kAuthenticationInfoUpper));
    CHECK(signatureValid(no_echo));

    RequestError structure;  // no Seq could be read: none echoed
    structure.item_name = "Seq";
    structure.item_value = "abc";
    CHECK(formatResponse(errorResponse(structure, kAddTime), kKey) ==
          signedMessage(
              {"DTCP/0.7 400 Bad Request", "SEQ: abc", "TIMESTAMP: 2024-05-01 10:15:30.123"}, kKey,
              "\r\n", kAuthenticationInfoUpper));
}

ListEntry sampleEntry(uint32_t id) {
    ListEntry e;
    e.criteria_id = id;
    e.csource_id = "ms1";
    e.csource_address = "192.0.2.200";
    e.cdest_ids = {"cd1", "cd 2"};
    e.added = kAddTime;
    e.match_text = {{"Source-Address", "192.0.2.0/24"}, {"Protocol", "6,17"}};
    e.timeouts.idle_seconds = 600;
    e.timeouts.total_seconds = 86400;
    e.is_static = false;
    e.send_async = true;
    e.extension_text = {{"X-JTap-Cdest-TTL", "64"}};
    e.remaining.idle_seconds = 590;
    e.remaining.total_seconds = 86000;
    e.average_bandwidth_bps = 8000;
    e.matching_packets = 12;
    e.matching_bytes = 3400;
    e.num_refresh = 0;
    e.last_refresh = kAddTime;
    e.dropped_packets = 1;
    e.dropped_bytes = 60;
    return e;
}

TEST_CASE("LIST with Both: every entry in full, no empty lines between entries") {
    const std::vector<ListEntry> entries{sampleEntry(7), sampleEntry(9)};
    const std::string wire =
        formatResponse(listResponse(kVersion08, 20, entries, ListDetail::Both, kDeleteTime), kKey);
    std::vector<std::string> lines{"DTCP/0.8 200 OK", "SEQ: 20"};
    for (int n = 1; n <= 2; ++n) {
        const std::vector<std::string> entry = {"CRITERIA-COUNT: 2",
                                                "CRITERIA-NUM: " + std::to_string(n),
                                                "CSOURCE-ID: ms1",
                                                "CSOURCE-ADDRESS: 192.0.2.200",
                                                "CDEST-ID: cd1, cd\\0322",
                                                "CRITERIA-ID: " + std::string(n == 1 ? "7" : "9"),
                                                "TIMESTAMP: 2024-05-01 10:15:30.123",
                                                "SOURCE-ADDRESS: 192.0.2.0/24",
                                                "PROTOCOL: 6,17",
                                                "TIMEOUT-IDLE: 600",
                                                "TIMEOUT-TOTAL: 86400",
                                                "FLAGS: SENDASYNC",
                                                "X-JTAP-CDEST-TTL: 64",
                                                "REMAINING-IDLE: 590",
                                                "REMAINING-TOTAL: 86000",
                                                "AVERAGE-BANDWIDTH: 8000",
                                                "MATCHING-PACKETS: 12",
                                                "MATCHING-BYTES: 3400",
                                                "NUM-REFRESH: 0",
                                                "LAST-REFRESH: 2024-05-01 10:15:30.123",
                                                "X-XTAP-DROPPED-PACKETS: 1",
                                                "X-XTAP-DROPPED-BYTES: 60"};
        lines.insert(lines.end(), entry.begin(), entry.end());
    }
    lines.push_back("TIMESTAMP: 2024-05-01 10:20:00.000");
    CHECK(wire == signedMessage(lines, kKey, "\r\n", kAuthenticationInfoUpper));
    CHECK(wire.find("\r\n\r\n") == wire.size() - 4);  // the only empty line ends the message
    CHECK(signatureValid(wire));
}

TEST_CASE("LIST with Stats or Criteria shows only that part, and no match shows no entry") {
    const std::vector<ListEntry> one{sampleEntry(3)};
    const Message stats = parseOk(
        formatResponse(listResponse(kVersion07, 1, one, ListDetail::Stats, kDeleteTime), kKey));
    CHECK(stats.find("Matching-Packets"));
    CHECK(stats.find("Remaining-Idle"));
    CHECK(stats.find("Criteria-ID")->value == "3");
    CHECK_FALSE(stats.find("Source-Address"));
    CHECK_FALSE(stats.find("Timeout-Idle"));
    CHECK_FALSE(stats.find("Flags"));
    CHECK_FALSE(stats.find("X-JTap-Cdest-TTL"));

    const Message criteria = parseOk(
        formatResponse(listResponse(kVersion07, 1, one, ListDetail::Criteria, kDeleteTime), kKey));
    CHECK(criteria.find("Source-Address"));
    CHECK(criteria.find("Timeout-Total"));
    CHECK(criteria.find("X-JTap-Cdest-TTL"));
    CHECK_FALSE(criteria.find("Matching-Packets"));
    CHECK_FALSE(criteria.find("X-XTap-Dropped-Bytes"));

    ListEntry static_entry = sampleEntry(4);
    static_entry.is_static = true;
    static_entry.send_async = false;
    const Message flags = parseOk(formatResponse(
        listResponse(kVersion07, 1, {static_entry}, ListDetail::Criteria, kDeleteTime), kKey));
    CHECK(flags.find("Flags")->value == "STATIC");

    CHECK(formatResponse(listResponse(kVersion08, 5, {}, ListDetail::Both, kDeleteTime), kKey) ==
          formatResponse(okResponse(kVersion08, 5, kDeleteTime), kKey));
}

TEST_CASE("LIST written entry by entry is the same signed text as the whole response") {
    ListEntry static_entry = sampleEntry(4);
    static_entry.is_static = true;
    const std::vector<ListEntry> entries{sampleEntry(7), static_entry, sampleEntry(9)};
    for (const ListDetail detail : {ListDetail::Both, ListDetail::Stats, ListDetail::Criteria}) {
        for (const size_t count : {size_t{0}, size_t{1}, entries.size()}) {
            const std::vector<ListEntry> some(entries.begin(), entries.begin() + count);
            ListWriter writer(kVersion07, 42, some.size(), detail);
            for (const ListEntry& e : some) writer.add(e);
            CHECK(std::move(writer).finish(kDeleteTime, kKey) ==
                  formatResponse(listResponse(kVersion07, 42, some, detail, kDeleteTime), kKey));
        }
    }
}

TEST_CASE("the 390 notification: no Seq, same content as the dtcp.md vector, signed") {
    const Timestamp t{2024, 5, 1, 11, 0, 0, 0};
    Timeouts configured;
    configured.idle_seconds = 600;
    Timeouts remaining;
    remaining.idle_seconds = 0;
    const std::string wire = formatNotification(
        criterionTimeoutNotification(kVersion07, 12, configured, remaining, t), kKey);
    CHECK(wire == signedMessage({"DTCP/0.7 390 Criterion Timeout Delete", "CRITERIA-ID: 12",
                                 "TIMEOUT-IDLE: 600", "REMAINING-IDLE: 0",
                                 "TIMESTAMP: 2024-05-01 11:00:00.000"},
                                kKey, "\r\n", kAuthenticationInfoUpper));
    const Message ours = parseOk(wire);
    const Message vector =
        parseOk(withAuthentication(kTimeoutNotificationLines, kTimeoutNotificationHmac));
    CHECK(ours.start == vector.start);
    REQUIRE(ours.fields.size() == vector.fields.size());
    for (size_t i = 0; i < ours.fields.size(); ++i) {
        CHECK(iequals(ours.fields[i].name, vector.fields[i].name));
        CHECK(ours.fields[i].value == vector.fields[i].value);
    }
    CHECK_FALSE(ours.find("Seq"));

    Timeouts all{10, 20, 30, 40};
    const Message every = parseOk(formatNotification(
        criterionTimeoutNotification(kVersion08, 1, all, Timeouts{0, 5, 0, 0}, t), kKey));
    CHECK(every.fields.size() == 10);  // CRITERIA-ID, four pairs, TIMESTAMP
    CHECK(every.find("Remaining-Total")->value == "5");
    CHECK(every.find("Timeout-Bytes")->value == "40");
}

TEST_CASE("the other notifications: 130, 131, 580, 598, 599") {
    const Timestamp t{2024, 1, 2, 3, 4, 5, 6};
    struct Case {
        Notification notification;
        std::vector<std::string> lines;
    };
    const Case cases[] = {
        {seqRolloverNotification(kVersion07, t),
         {"DTCP/0.7 130 Seq Rollover", "TIMESTAMP: 2024-01-02 03:04:05.006"}},
        {noopNotification(kVersion08, t),
         {"DTCP/0.8 131 NoOp", "TIMESTAMP: 2024-01-02 03:04:05.006"}},
        {congestionNotification(kVersion07, "cd1", 9000000, 8000000, 10000000, t),
         {"DTCP/0.7 580 Congestion", "CDEST-ID: cd1", "AVERAGE-BANDWIDTH: 9000000",
          "ALERT-BANDWIDTH: 8000000", "MAX-BANDWIDTH: 10000000",
          "TIMESTAMP: 2024-01-02 03:04:05.006"}},
        {duplicatesDroppedNotification(kVersion07, "md:1", 5, 17, 4200, t),
         {"DTCP/0.7 598 Duplicates Dropped", "CDEST-ID: md\\0581", "CRITERIA-ID: 5",
          "X-XTAP-DROPPED-PACKETS: 17", "X-XTAP-DROPPED-BYTES: 4200",
          "TIMESTAMP: 2024-01-02 03:04:05.006"}},
        {restartNotification(kVersion06, "criteria lost", t),
         {"DTCP/0.6 599 Restart", "ALERT-INFO: criteria lost",
          "TIMESTAMP: 2024-01-02 03:04:05.006"}},
    };
    for (const Case& c : cases) {
        INFO(c.lines.front());
        const std::string wire = formatNotification(c.notification, "secret");
        CHECK(wire == signedMessage(c.lines, "secret", "\r\n", kAuthenticationInfoUpper));
        CHECK(signatureValid(wire, "secret"));
        CHECK_FALSE(parseOk(wire).find("Seq"));
    }
}

}  // namespace
}  // namespace xtap::dtcp
