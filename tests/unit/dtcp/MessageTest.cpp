#include <doctest/doctest.h>

#include <string>

#include "dtcp/Message.h"
#include "DtcpTestSupport.h"

namespace xtap::dtcp {
namespace {

using namespace test;

TEST_CASE("a request parses into start line, fields in order and Authentication-Info") {
    const std::string wire = withAuthentication(kDeleteLines, kDeleteHmac);
    const Message m = parseOk(wire);
    REQUIRE(m.requestLine());
    CHECK(m.requestLine()->method == "DELETE");
    CHECK(m.requestLine()->version == kVersion08);
    REQUIRE(m.fields.size() == 4);
    CHECK(m.fields[0] == Field{"Csource-ID", "ftap1"});
    CHECK(m.fields[1] == Field{"Criteria-ID", "7"});
    CHECK(m.fields[2] == Field{"Flags", "STATIC"});
    CHECK(m.fields[3] == Field{"Seq", "103"});
    CHECK(m.authentication_info == std::string(kDeleteHmac));
    CHECK(m.signed_length == crlfLines(kDeleteLines).size());
}

TEST_CASE("a status line keeps code and reason text") {
    const Message m = parseOk(withAuthentication(kErrorReplyLines, kErrorReplyHmac));
    REQUIRE(m.statusLine());
    CHECK(m.statusLine()->version == kVersion07);
    CHECK(m.statusLine()->code == 431);
    CHECK(m.statusLine()->reason == "Unknown Criteria ID");
    CHECK(m.requestLine() == nullptr);

    const Message bare = parseOk("DTCP/0.8 200\r\n\r\n");
    CHECK(bare.statusLine()->code == 200);
    CHECK(bare.statusLine()->reason.empty());
}

TEST_CASE("bare LF lines parse like CRLF lines, and the signed part is the bytes as received") {
    const std::string lf = "NOOP DTCP/0.7\nCsource-ID: a\nSeq: 9\nAuthentication-Info: x\n\n";
    const Message m = parseOk(lf);
    CHECK(m.fields.size() == 2);
    CHECK(m.find("Seq")->value == "9");
    CHECK(m.signed_length == std::string("NOOP DTCP/0.7\nCsource-ID: a\nSeq: 9\n").size());
}

TEST_CASE("names are case-insensitive and the first of a repeated name counts") {
    const Message m = parseOk(
        "LIST DTCP/0.8\r\nCSOURCE-id: u\r\ncriteria-ID: 1\r\nCriteria-Id: 2\r\nSEQ: 4\r\n\r\n");
    REQUIRE(m.find("Csource-ID"));
    CHECK(m.find("Csource-ID")->value == "u");
    CHECK(m.find("CRITERIA-ID")->value == "1");
    CHECK(m.find("seq")->value == "4");
    CHECK(m.find("Cdest-ID") == nullptr);
    CHECK(m.fields.size() == 4);  // the repeat is kept for a faithful round trip
}

TEST_CASE("whitespace around the separator and at the line end is not part of a value") {
    const Message m = parseOk(
        "ADD DTCP/0.8  \r\nCdest-ID :cd1\r\nSource-Address:\t 192.0.2.1 \t\r\nX-Empty:\r\n\r\n");
    CHECK(m.requestLine()->version == kVersion08);
    CHECK(m.find("Cdest-ID")->value == "cd1");
    CHECK(m.find("Source-Address")->value == "192.0.2.1");
    CHECK(m.find("X-Empty")->value.empty());
}

TEST_CASE("fields after Authentication-Info are ignored and not signed") {
    const std::string covered = "NOOP DTCP/0.8\r\nCsource-ID: a\r\nSeq: 1\r\n";
    const Message m =
        parseOk(covered + "authentication-info: abc\r\nFlags: SendAsync\r\nno colon here\r\n\r\n");
    CHECK(m.authentication_info == std::string("abc"));
    CHECK(m.find("Flags") == nullptr);
    CHECK(m.signed_length == covered.size());
}

TEST_CASE(
    "the empty line ends the message, and without Authentication-Info all before it is signed") {
    const std::string covered = "NOOP DTCP/0.8\r\nSeq: 1\r\n";
    const Message m = parseOk(covered + "\r\nFlags: x\r\n");
    CHECK_FALSE(m.authentication_info);
    CHECK(m.find("Flags") == nullptr);
    CHECK(m.signed_length == covered.size());
    CHECK(parseOk(covered).signed_length == covered.size());
}

TEST_CASE("structure errors") {
    struct Case {
        const char* text;
        bool has_version;
    };
    const Case cases[] = {
        {"", false},
        {"\r\n\r\n", false},
        {"ADD\r\n\r\n", false},
        {"ADD DTCP\r\n\r\n", false},
        {"ADD DTCP/0\r\n\r\n", false},
        {"ADD DTCP/x.8\r\n\r\n", false},
        {"ADD DTCP/0.8 extra\r\n\r\n", false},
        {"ADD DTCP/1234.0\r\n\r\n", false},
        {" ADD DTCP/0.8\r\n\r\n", false},
        {"DTCP/0.8\r\n\r\n", true},
        {"DTCP/0.8 20 OK\r\n\r\n", true},
        {"DTCP/0.8 2000 OK\r\n\r\n", true},
        {"DTCP/0.8x 200 OK\r\n\r\n", false},
        {"ADD DTCP/0.7\r\nCsource-ID ftap1\r\n\r\n", true},
        {"ADD DTCP/0.7\r\n: value\r\n\r\n", true},
        {"ADD DTCP/0.7\r\n Seq: 1\r\n\r\n", true},
        {"ADD DTCP/0.7\r\nBad Name: 1\r\n\r\n", true},
    };
    for (const Case& c : cases) {
        INFO(c.text);
        auto parsed = parseMessage(c.text);
        REQUIRE_FALSE(parsed.ok());
        CHECK_FALSE(parsed.error().detail.empty());
        CHECK(parsed.error().version.has_value() == c.has_version);
    }
}

TEST_CASE("round trip: parse, format, parse gives the same message") {
    struct Wire {
        std::string text;
        std::string_view auth_name;
    };
    const Wire wires[] = {
        {withAuthentication(kJuniperDisableLines, kJuniperDisableHmac), kAuthenticationInfo},
        {withAuthentication(kAddV8Lines, kAddV8Hmac), kAuthenticationInfo},
        {withAuthentication(kAddV7Lines, kAddV7Hmac), kAuthenticationInfo},
        {withAuthentication(kAddV6Lines, kAddV6Hmac), kAuthenticationInfo},
        {withAuthentication(kDeleteLines, kDeleteHmac), kAuthenticationInfo},
        {withAuthentication(kErrorReplyLines, kErrorReplyHmac), kAuthenticationInfo},
        {withAuthentication(kTimeoutNotificationLines, kTimeoutNotificationHmac),
         kAuthenticationInfo},
        {withAuthentication(kAddV8ReplyLines, kAddV8ReplyHmac, kAuthenticationInfoUpper),
         kAuthenticationInfoUpper},
        {withAuthentication(kDeleteReplyLines, kDeleteReplyHmac, kAuthenticationInfoUpper),
         kAuthenticationInfoUpper},
    };
    for (const Wire& w : wires) {
        INFO(w.text);
        const Message first = parseOk(w.text);
        const std::string again = formatMessage(first, kKey, w.auth_name);
        // The vectors are CRLF and signed with the same key: identical bytes.
        CHECK(again == w.text);
        const Message second = parseOk(again);
        CHECK(second.start == first.start);
        CHECK(second.fields == first.fields);
        CHECK(second.authentication_info == first.authentication_info);
    }
}

TEST_CASE("round trip from LF input gives CRLF output with the same content") {
    const std::string lf =
        "REFRESH DTCP/0.6\nCsource-ID: a\\045b\nCriteria-ID: 1-5\nTimeout-Idle:  30 \nSeq: 2\n"
        "Authentication-Info: 0000\n\n";
    const Message first = parseOk(lf);
    const std::string crlf = formatMessage(first, "k");
    CHECK(crlf.find("\r\n") != std::string::npos);
    CHECK(crlf.find("Timeout-Idle: 30\r\n") != std::string::npos);
    const Message second = parseOk(crlf);
    CHECK(second.start == first.start);
    CHECK(second.fields == first.fields);
    CHECK(hmacSha1Matches("k", std::string_view(crlf).substr(0, second.signed_length),
                          *second.authentication_info));
}

TEST_CASE("MessageWriter signs exactly the lines it wrote") {
    MessageWriter writer(StatusLine{kVersion07, 431, "Unknown Criteria ID"});
    writer.add("Criteria-ID", "99").add("Timestamp", "2024-05-01 10:21:00.000").add("Seq", "104");
    CHECK(writer.signedBytes() == crlfLines(kErrorReplyLines));
    CHECK(writer.sign(kKey, kAuthenticationInfo) ==
          withAuthentication(kErrorReplyLines, kErrorReplyHmac));
}

TEST_CASE("start lines format as DTCP writes them") {
    CHECK(formatStartLine(RequestLine{"ADD", kVersion08}) == "ADD DTCP/0.8");
    CHECK(formatStartLine(StatusLine{kVersion06, 200, "OK"}) == "DTCP/0.6 200 OK");
    CHECK(formatStartLine(StatusLine{kVersion07, 5, ""}) == "DTCP/0.7 005");
}

}  // namespace
}  // namespace xtap::dtcp
