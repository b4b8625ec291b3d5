// Prefixes and addresses from their text, for the tunnel and gate tests.
#pragma once

#include <doctest/doctest.h>

#include "ipsec/TunnelManager.h"

namespace xtap::ipsec::test {

// The prefix `text` names; text that does not parse fails the test.
inline IpPrefix prefix(const char* text) {
    auto parsed = parseIpPrefix(text);
    REQUIRE_MESSAGE(parsed.has_value(), text);
    return *parsed;
}

inline Address address(const char* text) {
    return prefix(text).prefix.addr;
}

}  // namespace xtap::ipsec::test
