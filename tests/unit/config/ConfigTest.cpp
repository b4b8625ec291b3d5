#include <doctest/doctest.h>

#include <fstream>
#include <sstream>
#include <variant>

#include "config/Config.h"

using namespace xtap::config;

namespace {

std::string exampleText() {
    std::ifstream in(XTAP_SOURCE_DIR "/deploy/xtap.example.json");
    REQUIRE(in.good());
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
}

const char* kMinimal = R"({"users":{"md1":{"authorized_keys":["ssh-ed25519 AAAA md1"]}}})";

}  // namespace

TEST_CASE("the example config parses, with every documented key") {
    const auto r = parseConfig(exampleText(), "xtap.example.json");
    REQUIRE_MESSAGE(
        std::holds_alternative<Config>(r),
        (std::holds_alternative<ConfigError>(r) ? std::get<ConfigError>(r).message() : ""));
    const auto& c = std::get<Config>(r);
    CHECK(c.dtcp.listen.size() == 2);
    CHECK(c.dtcp.listen[1].address == "::");
    CHECK(c.dtcp.listen[1].port == 32001);
    CHECK(c.users.at("md1").delivery_format == DeliveryFormat::Jmirror);
    CHECK(c.users.at("md1").canTask());
    CHECK(c.interfaces[0].alias.size() == 2);
    CHECK(c.interfaces[1].alias == std::vector<std::string>{"ge-0/0/2.0"});
    CHECK(c.ipsec.tunnels[0].remote_ts == std::vector<std::string>{"198.18.20.0/24"});
}

TEST_CASE("defaults are Junos's") {
    const auto c = std::get<Config>(parseConfig(kMinimal, "f"));
    CHECK(c.dtcp.connection_limit == 75);
    CHECK(c.dtcp.rate_limit == 150);
    CHECK(c.dtcp.listen[0].port == 32001);
    CHECK(c.users.at("md1").hmac_key == "Juniper");
    CHECK(c.users.at("md1").max_criteria == 3000);
    CHECK(c.delivery.cleartext_destinations.empty());
    CHECK(c.dataplane.xsk_ring == 2048);
    CHECK(c.dataplane.receive_batch == 64);
    CHECK(c.dataplane.copy_threads == 1);
    CHECK(c.dataplane.copy_coalesce_us == 200);
    CHECK(c.dataplane.transit_hook == TransitHook::Auto);
    CHECK(c.dataplane.consumer_timeout_ms == 1000);
    CHECK(c.dataplane.copy_budget_pps == 0);
    CHECK(c.dataplane.copy_budget_bps == 0);
    CHECK(c.dataplane.copy_budget_burst_us == 5000);
}

TEST_CASE("dataplane: the copy gate's deadline and budget; 0 turns each off") {
    const auto c = std::get<Config>(
        parseConfig(R"({"dataplane":{"consumer_timeout_ms":0,"copy_budget_pps":250000,)"
                    R"("copy_budget_bps":600000000,"copy_budget_burst_us":0}})",
                    "f"));
    CHECK(c.dataplane.consumer_timeout_ms == 0);
    CHECK(c.dataplane.copy_budget_pps == 250000);
    CHECK(c.dataplane.copy_budget_bps == 600000000);
    CHECK(c.dataplane.copy_budget_burst_us == 0);
    CHECK(std::get<Config>(parseConfig(R"({"dataplane":{"consumer_timeout_ms":250}})", "f"))
              .dataplane.consumer_timeout_ms == 250);
}

TEST_CASE("dataplane.copy_coalesce_us: 0 turns the pause off, 1000 is the longest") {
    auto coalesceOf = [](const char* v) {
        const std::string text = std::string(R"({"dataplane":{"copy_coalesce_us":)") + v + "}}";
        return std::get<Config>(parseConfig(text, "f")).dataplane.copy_coalesce_us;
    };
    CHECK(coalesceOf("0") == 0);
    CHECK(coalesceOf("1000") == 1000);
}

TEST_CASE("dataplane.transit_hook names where transit packets are classified") {
    auto hookOf = [](const char* v) {
        const std::string text = std::string(R"({"dataplane":{"transit_hook":")") + v + "\"}}";
        return std::get<Config>(parseConfig(text, "f")).dataplane.transit_hook;
    };
    CHECK(hookOf("auto") == TransitHook::Auto);
    CHECK(hookOf("xdp") == TransitHook::Xdp);
    CHECK(hookOf("tc") == TransitHook::Tc);
}

TEST_CASE("every broken config is rejected with the file, the key's JSON pointer and the reason") {
    struct Case {
        const char* text;
        const char* pointer;
        const char* reason_part;
    };
    const Case cases[] = {
        {"{", "", "not valid JSON"},
        {"[]", "", "must be an object"},
        {R"({"dtcp":{"listen":["1.2.3.4"]}})", "/dtcp/listen/0", "addr:port"},
        {R"({"dtcp":{"listen":["[::1]32001"]}})", "/dtcp/listen/0", "[addr]:port"},
        {R"({"dtcp":{"listen":["host.example:32001"]}})", "/dtcp/listen/0", "numeric"},
        {R"({"dtcp":{"listen":["1.2.3.4:0"]}})", "/dtcp/listen/0", "1-65535"},
        {R"({"dtcp":{"connection_limit":0}})", "/dtcp/connection_limit", "1-250"},
        {R"({"dtcp":{"rate_limit":"150"}})", "/dtcp/rate_limit", "integer"},
        {R"({"dtcp":{"conection_limit":5}})", "/dtcp/conection_limit", "unknown key"},
        {R"({"userz":{}})", "/userz", "unknown key"},
        {R"({"users":{"md1":{}}})", "/users/md1", "authorized_keys or a password_hash"},
        {R"({"users":{"md1":{"password_hash":"secret"}}})", "/users/md1/password_hash",
         "never a clear-text"},
        {R"({"users":{"md1":{"authorized_keys":["AAAA"]}}})", "/users/md1/authorized_keys/0",
         "OpenSSH"},
        {R"({"users":{"md1":{"authorized_keys":["ssh-ed25519 A"],"delivery_format":"pcap"}}})",
         "/users/md1/delivery_format", "flowtap or jmirror"},
        {R"({"users":{"md1":{"authorized_keys":["ssh-ed25519 A"],"max_criteria":-1}}})",
         "/users/md1/max_criteria", "between"},
        {R"({"users":{"a/b":{"authorized_keys":["ssh-ed25519 A"],"hmac_key":""}}})",
         "/users/a~1b/hmac_key", "empty"},
        {R"({"users":{"md1":{"authorized_keys":["ssh-ed25519 A"],"destinations":{"cd1":{"address":"198.18.20.2","port":5}}}}})",
         "/users/md1/destinations/cd1/address", "clear text"},
        {R"({"users":{"md1":{"authorized_keys":["ssh-ed25519 A"],"destinations":{"cd1":{"address":"198.18.20.2","port":5,"max_bandwidth_bps":800}}}}})",
         "/users/md1/destinations/cd1/max_bandwidth_bps", "at least 16000"},
        {R"({"interfaces":[{"name":"eth1"},{"name":"eth1"}]})", "/interfaces/1/name", "twice"},
        {R"({"interfaces":[{"name":"eth1","xdp_mode":"fast"}]})", "/interfaces/0/xdp_mode",
         "native"},
        {R"({"interfaces":[{"name":"eth1","alias":"ge-0/0/1"},{"name":"eth2","alias":"ge-0/0/1"}]})",
         "/interfaces", "names two"},
        {R"({"ipsec":{"vici_socket":"/run/charon.vici"}})", "/ipsec/vici_socket", "unix://"},
        {R"({"ipsec":{"tunnels":[{"name":"t","remote_addrs":["198.18.0.2"],"local_ts":["198.18.10.1/32"],"remote_ts":["198.18.20.0/33"],"psk":"x"}]}})",
         "/ipsec/tunnels/0/remote_ts/0", "prefix"},
        {R"({"ipsec":{"tunnels":[{"name":"t","remote_addrs":["198.18.0.2"],"local_ts":["198.18.10.1/32"],"remote_ts":["198.18.20.0/24"]}]}})",
         "/ipsec/tunnels/0", "exactly one"},
        {R"({"delivery":{"cleartext_destinations":["everything"]}})",
         "/delivery/cleartext_destinations/0", "prefix"},
        {R"({"dataplane":{"criteria":10}})", "/dataplane/criteria", "1024"},
        {R"({"dataplane":{"xsk_ring":3000}})", "/dataplane/xsk_ring", "power of two"},
        {R"({"dataplane":{"xsk_ring":32768}})", "/dataplane/xsk_ring", "16384"},
        {R"({"dataplane":{"xsk_ring":512,"receive_batch":1024}})", "/dataplane/receive_batch",
         "xsk_ring"},
        {R"({"dataplane":{"copy_threads":0}})", "/dataplane/copy_threads", "1 to 16"},
        {R"({"dataplane":{"copy_threads":17}})", "/dataplane/copy_threads", "1 to 16"},
        {R"({"dataplane":{"copy_coalesce_us":1001}})", "/dataplane/copy_coalesce_us", "0 to 1000"},
        {R"({"dataplane":{"copy_coalesce_us":-1}})", "/dataplane/copy_coalesce_us", ""},
        {R"({"dataplane":{"consumer_timeout_ms":100}})", "/dataplane/consumer_timeout_ms",
         "0 (no deadline) or from 250 to 60000"},
        {R"({"dataplane":{"consumer_timeout_ms":60001}})", "/dataplane/consumer_timeout_ms",
         "250 to 60000"},
        {R"({"dataplane":{"copy_budget_pps":-5}})", "/dataplane/copy_budget_pps", ""},
        {R"({"dataplane":{"copy_budget_bps":10000000000001}})", "/dataplane/copy_budget_bps",
         "0 (no budget) to 10000000000000"},
        {R"({"dataplane":{"copy_budget_burst_us":1000001}})", "/dataplane/copy_budget_burst_us",
         "0 to 1000000"},
        {R"({"dataplane":{"transit_hook":"XDP"}})", "/dataplane/transit_hook", "auto, xdp or tc"},
        {R"({"dataplane":{"transit_hook":1}})", "/dataplane/transit_hook", ""},
        {R"({"metrics":{"listen":"localhost"}})", "/metrics/listen", "addr:port"},
    };
    for (const auto& c : cases) {
        CAPTURE(c.text);
        const auto r = parseConfig(c.text, "/etc/xtap/xtap.json");
        REQUIRE(std::holds_alternative<ConfigError>(r));
        const auto& e = std::get<ConfigError>(r);
        CHECK(e.file == "/etc/xtap/xtap.json");
        CHECK(e.pointer == c.pointer);
        CHECK_MESSAGE(e.reason.find(c.reason_part) != std::string::npos, e.reason);
        CHECK(e.message().rfind("/etc/xtap/xtap.json: ", 0) == 0);
    }
}

TEST_CASE("a destination inside a tunnel's remote selectors or the cleartext list is accepted") {
    const char* in_tunnel = R"({
      "users":{"md1":{"authorized_keys":["ssh-ed25519 A"],"destinations":{"cd1":{"address":"2001:db8:20::2","port":5}}}},
      "ipsec":{"tunnels":[{"name":"t","remote_addrs":["2001:db8::2"],"local_ts":["2001:db8:10::1/128"],
                           "remote_ts":["2001:db8:20::/48"],"psk":"x"}]}})";
    CHECK(std::holds_alternative<Config>(parseConfig(in_tunnel, "f")));
    const char* cleartext = R"({
      "users":{"md1":{"authorized_keys":["ssh-ed25519 A"],"destinations":{"cd1":{"address":"198.18.20.2","port":5,"max_bandwidth_bps":1000000}}}},
      "delivery":{"cleartext_destinations":["198.18.20.0/24"]}})";
    const auto r = parseConfig(cleartext, "f");
    REQUIRE(std::holds_alternative<Config>(r));
    CHECK(std::get<Config>(r).users.at("md1").destinations.at("cd1").max_bandwidth_bps == 1000000);
}

TEST_CASE("prefix lists") {
    CHECK(prefixListContains({"198.18.0.0/15"}, "198.19.255.255"));
    CHECK_FALSE(prefixListContains({"198.18.0.0/15"}, "198.20.0.0"));
    CHECK(prefixListContains({"2001:db8::/32"}, "2001:db8:ffff::1"));
    CHECK_FALSE(prefixListContains({"2001:db8::/32"}, "198.18.0.1"));
    CHECK(prefixListContains({"0.0.0.0/0"}, "203.0.113.9"));
    CHECK(prefixListContains({"198.18.0.7"}, "198.18.0.7"));
}
