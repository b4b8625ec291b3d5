// libFuzzer entry point for the configuration loader (parseConfig): any bytes
// get either a Config or a ConfigError, never a crash or an escaped exception.
// Invariants:
//   - an error has a reason and a JSON pointer ("" or "/..."); when the text is
//     JSON, the pointer's parent exists in the document (the error points at the
//     key to fix, or at where a required key belongs);
//   - an accepted configuration holds the limits its validation promises, and
//     every address, prefix and listen address in it is what it says (no
//     trailing bytes after an embedded NUL that inet_pton would not see);
//   - the same text gives the same result.
// Sanitizer reports and broken invariants (__builtin_trap) are findings.
#include <arpa/inet.h>

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <variant>

#include "config/Config.h"

namespace {

using namespace xtap::config;

void require(bool condition) {
    if (!condition) __builtin_trap();
}

bool isNumericAddress(const std::string& s) {
    unsigned char buf[16];
    if (s.find('\0') != std::string::npos) return false;
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool isCleanPrefix(const std::string& p) {
    return p.find('\0') == std::string::npos && isNumericAddress(p.substr(0, p.find('/')));
}

void checkAccepted(const Config& c) {
    require(!c.dtcp.listen.empty());
    for (const ListenAddress& l : c.dtcp.listen) {
        require(isNumericAddress(l.address));
        require(l.port != 0);
    }
    require(c.dtcp.connection_limit >= 1 && c.dtcp.connection_limit <= 250);
    require(c.dtcp.rate_limit >= 1 && c.dtcp.rate_limit <= 250);
    require(c.dtcp.auth_timeout_s >= 1);
    require(c.dtcp.max_message_bytes >= 1024 && c.dtcp.max_message_bytes <= 1048576);
    for (const auto& [name, user] : c.users) {
        require(!name.empty() && name.size() <= 64);
        require(!user.hmac_key.empty());
        require(user.max_criteria >= 1);
        require(!user.authorized_keys.empty() || !user.password_hash.empty());
        for (const auto& [cdest, d] : user.destinations) {
            require(isNumericAddress(d.address));
            require(d.port != 0 && d.ttl != 0);
            require(d.source_address.empty() || isNumericAddress(d.source_address));
            // Copies never leave in clear text unless the operator listed the destination.
            bool covered = prefixListContains(c.delivery.cleartext_destinations, d.address);
            for (const Tunnel& t : c.ipsec.tunnels)
                covered = covered || prefixListContains(t.remote_ts, d.address);
            require(covered);
        }
    }
    for (const Interface& i : c.interfaces) require(!i.name.empty() && i.name.size() <= 15);
    for (const Tunnel& t : c.ipsec.tunnels) {
        require(!t.name.empty() && !t.remote_addrs.empty());
        for (const auto& a : t.local_addrs) require(isNumericAddress(a));
        for (const auto& a : t.remote_addrs) require(isNumericAddress(a));
        for (const auto& p : t.local_ts) require(isCleanPrefix(p));
        for (const auto& p : t.remote_ts) require(isCleanPrefix(p));
    }
    for (const auto& p : c.delivery.cleartext_destinations) require(isCleanPrefix(p));
    require(c.dataplane.criteria >= 1024 && c.dataplane.rules >= c.dataplane.criteria);
}

void checkRefused(const ConfigError& e, const std::string& text) {
    require(e.file == "fuzz.json");
    require(!e.reason.empty());
    require(e.pointer.empty() || e.pointer[0] == '/');
    require(e.message().starts_with("fuzz.json: "));
    const auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
    if (doc.is_discarded() || e.pointer.empty()) return;
    const nlohmann::json::json_pointer pointer(e.pointer);
    require(doc.contains(pointer.parent_pointer()));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string text(reinterpret_cast<const char*>(data), size);
    const ConfigResult result = parseConfig(text, "fuzz.json");
    if (const auto* config = std::get_if<Config>(&result)) {
        checkAccepted(*config);
    } else {
        checkRefused(std::get<ConfigError>(result), text);
    }
    const ConfigResult again = parseConfig(text, "fuzz.json");
    require(again.index() == result.index());
    if (const auto* e = std::get_if<ConfigError>(&again)) {
        require(e->pointer == std::get<ConfigError>(result).pointer);
        require(e->reason == std::get<ConfigError>(result).reason);
    }
    return 0;
}
