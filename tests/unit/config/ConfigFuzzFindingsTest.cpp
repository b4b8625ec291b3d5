// Inputs the config_loader fuzz target (tests/fuzz/config) found, each kept
// as a test so the fix stays.
#include <doctest/doctest.h>

#include <string>
#include <variant>

#include "config/Config.h"

using namespace xtap::config;

TEST_CASE("fuzz: a number too large for a double is a JSON error, not an escaped exception") {
    // nlohmann throws out_of_range (406), not parse_error, for 1e51615: it used
    // to escape parseConfig and abort xtapd --check-config.
    const auto r = parseConfig(R"({"dtcp":{"connectiomit":-1,"ra&te_limit":1e51615}})", "x.json");
    REQUIRE(std::holds_alternative<ConfigError>(r));
    const auto& e = std::get<ConfigError>(r);
    CHECK(e.pointer.empty());
    CHECK(e.reason.find("not valid JSON") == 0);
    CHECK(e.message().find("x.json: (document): not valid JSON") == 0);
}

TEST_CASE("fuzz: an address with a NUL inside is not the address before the NUL") {
    // inet_pton stops at the NUL, so "198.18.0.1\u0000x" passed as 198.18.0.1 and
    // the junk after it stayed in the configuration.
    const char* cases[][2] = {
        {R"({"dtcp":{"listen":["198.18.0.1\u0000x:32001"]}})", "/dtcp/listen/0"},
        {R"({"delivery":{"cleartext_destinations":["198.18.0.0\u0000x/15"]}})",
         "/delivery/cleartext_destinations/0"},
        {R"({"ipsec":{"tunnels":[{"name":"t","remote_addrs":["198.18.0.2\u0000"],"local_ts":["198.18.10.1/32"],"remote_ts":["198.18.20.0/24"],"psk":"x"}]}})",
         "/ipsec/tunnels/0/remote_addrs/0"},
    };
    for (const auto& [text, pointer] : cases) {
        INFO(text);
        const auto r = parseConfig(text, "x.json");
        REQUIRE(std::holds_alternative<ConfigError>(r));
        CHECK(std::get<ConfigError>(r).pointer == pointer);
    }
}
