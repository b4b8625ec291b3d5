#include <doctest/doctest.h>

#include <string>

#include "dtcp/Hmac.h"
#include "dtcp/Message.h"
#include "dtcp/Text.h"
#include "DtcpTestSupport.h"

namespace xtap::dtcp {
namespace {

using namespace test;

struct Vector {
    const char* name;
    const std::vector<std::string>* lines;
    std::string_view hmac;
};

const Vector kVectors[] = {
    {"Juniper DISABLE (documentation)", &kJuniperDisableLines, kJuniperDisableHmac},
    {"ADD 0.8", &kAddV8Lines, kAddV8Hmac},
    {"ADD 0.8 reply", &kAddV8ReplyLines, kAddV8ReplyHmac},
    {"DELETE", &kDeleteLines, kDeleteHmac},
    {"DELETE reply", &kDeleteReplyLines, kDeleteReplyHmac},
    {"ADD 0.7", &kAddV7Lines, kAddV7Hmac},
    {"ADD IPv6", &kAddV6Lines, kAddV6Hmac},
    {"431 error reply, draft order", &kErrorReplyLines, kErrorReplyHmac},
    {"390 notification", &kTimeoutNotificationLines, kTimeoutNotificationHmac},
};

TEST_CASE("HMAC-SHA1 reproduces every dtcp.md vector byte-exactly") {
    for (const Vector& v : kVectors) {
        INFO(v.name);
        CHECK(hmacSha1Hex(kKey, crlfLines(*v.lines)) == v.hmac);
    }
}

TEST_CASE("the HMAC of each vector covers exactly the bytes before Authentication-Info") {
    for (const Vector& v : kVectors) {
        INFO(v.name);
        const std::string wire = withAuthentication(*v.lines, v.hmac);
        auto parsed = parseMessage(wire);
        REQUIRE(parsed.ok());
        const Message& m = parsed.value();
        REQUIRE(m.authentication_info);
        CHECK(*m.authentication_info == v.hmac);
        CHECK(m.signed_length == crlfLines(*v.lines).size());
        CHECK(hmacSha1Matches(kKey, std::string_view(wire).substr(0, m.signed_length),
                              *m.authentication_info));
    }
}

TEST_CASE("verification accepts either case and rejects anything else") {
    const std::string bytes = crlfLines(kAddV8Lines);
    CHECK(hmacSha1Matches(kKey, bytes, kAddV8Hmac));
    CHECK(hmacSha1Matches(kKey, bytes, toUpper(kAddV8Hmac)));
    CHECK(hmacSha1Matches(kKey, bytes, "80134DD7b8633fd8813750c5c2628d17f71CE581"));

    std::string flipped(kAddV8Hmac);
    flipped[39] = flipped[39] == '1' ? '2' : '1';
    CHECK_FALSE(hmacSha1Matches(kKey, bytes, flipped));
    CHECK_FALSE(hmacSha1Matches(kKey, bytes, kAddV8Hmac.substr(0, 39)));
    CHECK_FALSE(hmacSha1Matches(kKey, bytes, std::string(kAddV8Hmac) + "0"));
    CHECK_FALSE(hmacSha1Matches(kKey, bytes, ""));
    std::string not_hex(kAddV8Hmac);
    not_hex[0] = 'g';
    CHECK_FALSE(hmacSha1Matches(kKey, bytes, not_hex));
    CHECK_FALSE(hmacSha1Matches("juniper", bytes, kAddV8Hmac));  // keys are case-sensitive
    CHECK_FALSE(hmacSha1Matches(kKey, bytes + " ", kAddV8Hmac));
}

TEST_CASE("HMAC output is 40 lowercase hex digits, also for empty key and data") {
    // RFC 2202 test case 2: key "Jefe".
    CHECK(hmacSha1Hex("Jefe", "what do ya want for nothing?") ==
          "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79");
    const std::string empty = hmacSha1Hex("", "");
    CHECK(empty == "fbdb1d1b18aa6c08324b7d64b71fb76370690e1d");
    CHECK(hmacSha1Matches("", "", empty));
}

}  // namespace
}  // namespace xtap::dtcp
