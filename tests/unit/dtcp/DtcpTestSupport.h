// Helpers for the DTCP unit tests: the reference messages of dtcp.md §8 and a
// way to build signed requests line by line.
#pragma once

#include <doctest/doctest.h>

#include <string>
#include <string_view>
#include <vector>

#include "dtcp/Hmac.h"
#include "dtcp/Message.h"

namespace xtap::dtcp::test {

inline constexpr std::string_view kKey = "Juniper";

// The lines joined with `eol`, then the Authentication-Info line over exactly
// those bytes and the empty line that ends the message.
inline std::string signedMessage(const std::vector<std::string>& lines, std::string_view key = kKey,
                                 std::string_view eol = "\r\n",
                                 std::string_view auth_name = "Authentication-Info") {
    std::string covered;
    for (const std::string& line : lines) {
        covered += line;
        covered += eol;
    }
    return covered + std::string(auth_name) + ": " + hmacSha1Hex(key, covered) + std::string(eol) +
           std::string(eol);
}

// Every line CRLF-terminated, as the §8 vectors are hashed.
inline std::string crlfLines(const std::vector<std::string>& lines) {
    std::string out;
    for (const std::string& line : lines) out += line + "\r\n";
    return out;
}

inline const std::vector<std::string> kJuniperDisableLines = {
    "DISABLE DTCP/0.8",        "Csource-ID: ft-user", "Criteria-ID: 8",
    "X-Drop-Policy: drop_pol", "Flags: STATIC",       "Seq: 1"};
inline constexpr std::string_view kJuniperDisableHmac = "963aa01c38c531f63fb410afd058c018be4d0230";

inline const std::vector<std::string> kAddV8Lines = {"ADD DTCP/0.8",
                                                     "Csource-ID: ftap1",
                                                     "Cdest-ID: cd1",
                                                     "Source-Address: 192.0.2.10",
                                                     "Dest-Address: *",
                                                     "Source-Port: *",
                                                     "Dest-Port: *",
                                                     "Protocol: *",
                                                     "Priority: 2",
                                                     "X-JTap-Cdest-Dest-Address: 203.0.113.50",
                                                     "X-JTap-Cdest-Dest-Port: 50000",
                                                     "X-JTap-Cdest-Source-Address: 198.51.100.1",
                                                     "X-JTap-Cdest-Source-Port: 49153",
                                                     "X-JTap-Cdest-TTL: 64",
                                                     "Flags: STATIC",
                                                     "Seq: 101"};
inline constexpr std::string_view kAddV8Hmac = "80134dd7b8633fd8813750c5c2628d17f71ce581";

inline const std::vector<std::string> kAddV8ReplyLines = {
    "DTCP/0.8 200 OK", "SEQ: 101", "CRITERIA-ID: 7", "TIMESTAMP: 2024-05-01 10:15:30.123"};
inline constexpr std::string_view kAddV8ReplyHmac = "e0d54d45dc01444db4053dd9185b78b675c61156";

inline const std::vector<std::string> kDeleteLines = {
    "DELETE DTCP/0.8", "Csource-ID: ftap1", "Criteria-ID: 7", "Flags: STATIC", "Seq: 103"};
inline constexpr std::string_view kDeleteHmac = "a42612f81f83515585a4050e230fa1ada4d382d6";

inline const std::vector<std::string> kDeleteReplyLines = {
    "DTCP/0.8 200 OK", "SEQ: 103", "CRITERIA-COUNT: 1", "TIMESTAMP: 2024-05-01 10:20:00.000"};
inline constexpr std::string_view kDeleteReplyHmac = "ece56d8850e5c264b54e98b51df0a9ef32f4b786";

inline const std::vector<std::string> kAddV7Lines = {
    "ADD DTCP/0.7",
    "Source-Address: 192.0.2.0/24",
    "Dest-Address: !198.51.100.7, 203.0.113.1-203.0.113.20",
    "Protocol: 6,17",
    "Dest-Port: 1024-*",
    "Timeout-Idle: 600",
    "Timeout-Total: 86400",
    "Action: Copy",
    "Priority: 1",
    "Flags: SendAsync",
    "Cdest-ID: cd1",
    "Csource-ID: ms1",
    "Seq: 5000"};
inline constexpr std::string_view kAddV7Hmac = "ea60ecc40e67fe71bc8a48386366bfc2f4c2704f";

// The first ADD with the IPv6 edits that §8 describes.
inline const std::vector<std::string> kAddV6Lines = {"ADD DTCP/0.8",
                                                     "Csource-ID: ftap1",
                                                     "Cdest-ID: cd1",
                                                     "Source-Address: 2001:db8:10::/48",
                                                     "Dest-Address: 2001:db8:20::1",
                                                     "Protocol: 6",
                                                     "Dest-Port: 443",
                                                     "Priority: 2",
                                                     "X-JTap-Input-Interface: ge-0/0/1.0",
                                                     "X-JTap-IP-Version: ipv6",
                                                     "X-JTap-Cdest-Dest-Address: 203.0.113.50",
                                                     "X-JTap-Cdest-Dest-Port: 50000",
                                                     "X-JTap-Cdest-Source-Address: 198.51.100.1",
                                                     "X-JTap-Cdest-Source-Port: 49153",
                                                     "Flags: STATIC",
                                                     "Seq: 102"};
inline constexpr std::string_view kAddV6Hmac = "f9fbfbdba3e4c40fe0b2ad0d737a0f7e2127a3e0";

inline const std::vector<std::string> kErrorReplyLines = {
    "DTCP/0.7 431 Unknown Criteria ID", "Criteria-ID: 99", "Timestamp: 2024-05-01 10:21:00.000",
    "Seq: 104"};
inline constexpr std::string_view kErrorReplyHmac = "824919b5f5ad2ef734d418ce1d1243a59f0ae607";

inline const std::vector<std::string> kTimeoutNotificationLines = {
    "DTCP/0.7 390 Criterion Timeout Delete", "Criteria-ID: 12", "Timeout-Idle: 600",
    "Remaining-Idle: 0", "Timestamp: 2024-05-01 11:00:00.000"};
inline constexpr std::string_view kTimeoutNotificationHmac =
    "6ab7e25d025e23bc9a0d8eadaf7fbe870c0e13f4";

// A full message as sent: the lines, the given Authentication-Info, the empty line.
inline std::string withAuthentication(const std::vector<std::string>& lines, std::string_view hmac,
                                      std::string_view auth_name = "Authentication-Info") {
    return crlfLines(lines) + std::string(auth_name) + ": " + std::string(hmac) + "\r\n\r\n";
}

// The X-JTap-Cdest-* set to 203.0.113.50:50000 from the appliance's address.
inline const std::vector<std::string> kCdestSet = {
    "X-JTap-Cdest-Dest-Address: 203.0.113.50", "X-JTap-Cdest-Dest-Port: 50000",
    "X-JTap-Cdest-Source-Address: 198.51.100.1", "X-JTap-Cdest-Source-Port: 49153"};

// The message `text` parses to; a parse error fails the test with its detail.
inline Message parseOk(std::string_view text) {
    auto parsed = parseMessage(text);
    REQUIRE_MESSAGE(parsed.ok(), (parsed.ok() ? "" : parsed.error().detail));
    return parsed.value();
}

}  // namespace xtap::dtcp::test
