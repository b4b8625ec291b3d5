#include "config/Config.h"

#include <arpa/inet.h>

#include <algorithm>
#include <limits>
#include <nlohmann/json.hpp>
#include <set>

namespace xtap::config {

using json = nlohmann::json;

namespace {

struct Invalid {
    std::string pointer;
    std::string reason;
};

std::string escapePointer(const std::string& key) {
    std::string out;
    for (char c : key) {
        if (c == '~')
            out += "~0";
        else if (c == '/')
            out += "~1";
        else
            out += c;
    }
    return out;
}

// One JSON object being read: remembers which keys were consumed, so the
// rest can be reported as unknown.
class Object {
  public:
    Object(const json& j, std::string pointer) : j_(j), pointer_(std::move(pointer)) {
        if (!j_.is_object()) throw Invalid{pointer_, "must be an object"};
    }

    std::string at(const std::string& key) const { return pointer_ + "/" + escapePointer(key); }
    bool has(const std::string& key) {
        seen_.insert(key);
        return j_.contains(key);
    }
    const json& raw(const std::string& key) {
        seen_.insert(key);
        return j_.at(key);
    }

    template <typename T>
    void read(const std::string& key, T& out) {
        if (!has(key)) return;
        out = value<T>(j_.at(key), at(key));
    }

    template <typename T>
    void readList(const std::string& key, std::vector<T>& out) {
        if (!has(key)) return;
        const json& v = j_.at(key);
        if (!v.is_array()) throw Invalid{at(key), "must be a list"};
        out.clear();
        for (size_t i = 0; i < v.size(); ++i)
            out.push_back(value<T>(v[i], at(key) + "/" + std::to_string(i)));
    }

    void finish() const {
        for (auto it = j_.begin(); it != j_.end(); ++it)
            if (!seen_.count(it.key())) throw Invalid{at(it.key()), "unknown key"};
    }

    template <typename T>
    static T value(const json& v, const std::string& where) {
        if constexpr (std::is_same_v<T, std::string>) {
            if (!v.is_string()) throw Invalid{where, "must be a string"};
            return v.get<std::string>();
        } else if constexpr (std::is_same_v<T, bool>) {
            if (!v.is_boolean()) throw Invalid{where, "must be true or false"};
            return v.get<bool>();
        } else {
            if (!v.is_number_integer()) throw Invalid{where, "must be an integer"};
            const auto n = v.get<int64_t>();
            if (n < 0 || uint64_t(n) > std::numeric_limits<T>::max())
                throw Invalid{where, "must be between 0 and " +
                                         std::to_string(std::numeric_limits<T>::max())};
            return static_cast<T>(n);
        }
    }

  private:
    const json& j_;
    std::string pointer_;
    std::set<std::string> seen_;
};

// inet_pton reads up to a NUL: "1.2.3.4\u0000junk" must not pass as 1.2.3.4.
bool hasNul(const std::string& s) {
    return s.find('\0') != std::string::npos;
}

bool isAddress(const std::string& s) {
    unsigned char buf[16];
    if (hasNul(s)) return false;
    return inet_pton(AF_INET, s.c_str(), buf) == 1 || inet_pton(AF_INET6, s.c_str(), buf) == 1;
}

bool isPrefix(const std::string& s) {
    if (hasNul(s)) return false;
    const auto slash = s.find('/');
    const std::string addr = s.substr(0, slash);
    unsigned char buf[16];
    const bool v4 = inet_pton(AF_INET, addr.c_str(), buf) == 1;
    const bool v6 = !v4 && inet_pton(AF_INET6, addr.c_str(), buf) == 1;
    if (!v4 && !v6) return false;
    if (slash == std::string::npos) return true;
    const std::string len = s.substr(slash + 1);
    if (len.empty() || len.size() > 3 || !std::all_of(len.begin(), len.end(), ::isdigit))
        return false;
    return std::stoi(len) <= (v4 ? 32 : 128);
}

ListenAddress parseListen(const std::string& text, const std::string& where) {
    ListenAddress l;
    std::string host, port;
    if (!text.empty() && text[0] == '[') {
        const auto close = text.find(']');
        if (close == std::string::npos || close + 1 >= text.size() || text[close + 1] != ':')
            throw Invalid{where, "IPv6 listen addresses are written [addr]:port"};
        host = text.substr(1, close - 1);
        port = text.substr(close + 2);
    } else {
        const auto colon = text.rfind(':');
        if (colon == std::string::npos || text.find(':') != colon)
            throw Invalid{where, "must be addr:port (IPv6 as [addr]:port)"};
        host = text.substr(0, colon);
        port = text.substr(colon + 1);
    }
    if (!isAddress(host)) throw Invalid{where, "'" + host + "' is not a numeric IP address"};
    if (port.empty() || port.size() > 5 || !std::all_of(port.begin(), port.end(), ::isdigit) ||
        std::stoi(port) == 0 || std::stoi(port) > 65535)
        throw Invalid{where, "port must be 1-65535"};
    l.address = host;
    l.port = uint16_t(std::stoi(port));
    return l;
}

Destination parseDestination(const json& j, const std::string& where) {
    Object o(j, where);
    Destination d;
    o.read("address", d.address);
    o.read("port", d.port);
    o.read("source_address", d.source_address);
    o.read("source_port", d.source_port);
    o.read("ttl", d.ttl);
    o.read("max_bandwidth_bps", d.max_bandwidth_bps);
    o.finish();
    if (!isAddress(d.address)) throw Invalid{o.at("address"), "must be an IP address"};
    if (d.port == 0) throw Invalid{o.at("port"), "must be 1-65535"};
    if (!d.source_address.empty() && !isAddress(d.source_address))
        throw Invalid{o.at("source_address"), "must be an IP address"};
    if (d.ttl == 0) throw Invalid{o.at("ttl"), "must be 1-255"};
    // A bucket of one second must hold a full-size copy, or nothing ever passes.
    if (d.max_bandwidth_bps != 0 && d.max_bandwidth_bps < kMinBandwidthBps)
        throw Invalid{o.at("max_bandwidth_bps"),
                      "must be 0 (unlimited) or at least " + std::to_string(kMinBandwidthBps)};
    return d;
}

User parseUser(const json& j, const std::string& where) {
    Object o(j, where);
    User u;
    o.readList("authorized_keys", u.authorized_keys);
    o.read("password_hash", u.password_hash);
    o.read("hmac_key", u.hmac_key);
    o.read("max_criteria", u.max_criteria);
    o.read("max_content_destinations", u.max_content_destinations);
    o.read("minimum_priority", u.minimum_priority);
    o.read("allow_wide", u.allow_wide);
    o.read("seq_reset_per_connection", u.seq_reset_per_connection);
    o.readList("permissions", u.permissions);
    if (o.has("delivery_format")) {
        const auto f =
            Object::value<std::string>(o.raw("delivery_format"), o.at("delivery_format"));
        if (f == "flowtap")
            u.delivery_format = DeliveryFormat::Flowtap;
        else if (f == "jmirror")
            u.delivery_format = DeliveryFormat::Jmirror;
        else
            throw Invalid{o.at("delivery_format"), "must be flowtap or jmirror"};
    }
    if (o.has("destinations")) {
        const json& d = o.raw("destinations");
        if (!d.is_object())
            throw Invalid{o.at("destinations"), "must be an object keyed by Cdest-ID"};
        for (auto it = d.begin(); it != d.end(); ++it)
            u.destinations[it.key()] =
                parseDestination(it.value(), o.at("destinations") + "/" + escapePointer(it.key()));
    }
    o.finish();
    for (size_t i = 0; i < u.authorized_keys.size(); ++i) {
        const auto& k = u.authorized_keys[i];
        if (k.rfind("ssh-", 0) != 0 && k.rfind("ecdsa-", 0) != 0 && k.rfind("sk-", 0) != 0)
            throw Invalid{o.at("authorized_keys") + "/" + std::to_string(i),
                          "not an OpenSSH public key line"};
    }
    if (!u.password_hash.empty() && u.password_hash.rfind("$y$", 0) != 0 &&
        u.password_hash.rfind("$6$", 0) != 0)
        throw Invalid{
            o.at("password_hash"),
            "must be a crypt(3) hash ($y$ yescrypt or $6$ SHA-512), never a clear-text password"};
    if (u.authorized_keys.empty() && u.password_hash.empty())
        throw Invalid{where, "a user needs authorized_keys or a password_hash"};
    if (u.hmac_key.empty()) throw Invalid{o.at("hmac_key"), "must not be empty"};
    if (u.max_criteria == 0) throw Invalid{o.at("max_criteria"), "must be at least 1"};
    return u;
}

Tunnel parseTunnel(const json& j, const std::string& where) {
    Object o(j, where);
    Tunnel t;
    o.read("name", t.name);
    o.readList("local_addrs", t.local_addrs);
    o.readList("remote_addrs", t.remote_addrs);
    o.read("local_id", t.local_id);
    o.read("remote_id", t.remote_id);
    o.read("psk", t.psk);
    o.read("psk_file", t.psk_file);
    o.read("certificate", t.certificate);
    o.read("private_key", t.private_key);
    o.read("ca_certificate", t.ca_certificate);
    o.readList("ike_proposals", t.ike_proposals);
    o.readList("esp_proposals", t.esp_proposals);
    o.readList("local_ts", t.local_ts);
    o.readList("remote_ts", t.remote_ts);
    o.finish();
    if (t.name.empty()) throw Invalid{o.at("name"), "required"};
    if (t.remote_addrs.empty()) throw Invalid{o.at("remote_addrs"), "required"};
    for (const auto* list : {&t.local_addrs, &t.remote_addrs})
        for (size_t i = 0; i < list->size(); ++i)
            if (!isAddress((*list)[i]))
                throw Invalid{o.at(list == &t.local_addrs ? "local_addrs" : "remote_addrs") + "/" +
                                  std::to_string(i),
                              "must be an IP address"};
    for (const auto* list : {&t.local_ts, &t.remote_ts})
        for (size_t i = 0; i < list->size(); ++i)
            if (!isPrefix((*list)[i]))
                throw Invalid{
                    o.at(list == &t.local_ts ? "local_ts" : "remote_ts") + "/" + std::to_string(i),
                    "must be a prefix"};
    if (t.remote_ts.empty())
        throw Invalid{o.at("remote_ts"), "required: the content destinations it protects"};
    if (t.local_ts.empty())
        throw Invalid{o.at("local_ts"), "required: must hold the copies' source address"};
    const int auth = !t.psk.empty() + !t.psk_file.empty() + !t.certificate.empty();
    if (auth != 1) throw Invalid{where, "exactly one of psk, psk_file or certificate"};
    if (!t.certificate.empty() && t.private_key.empty())
        throw Invalid{o.at("private_key"), "required with certificate"};
    return t;
}

XdpMode parseXdpMode(const std::string& s, const std::string& where) {
    if (s == "auto") return XdpMode::Auto;
    if (s == "native") return XdpMode::Native;
    if (s == "generic") return XdpMode::Generic;
    throw Invalid{where, "must be auto, native or generic"};
}

Config parse(const json& doc) {
    Object root(doc, "");
    Config c;
    if (root.has("dtcp")) {
        Object d(root.raw("dtcp"), "/dtcp");
        std::vector<std::string> listen;
        d.readList("listen", listen);
        if (d.has("listen")) {
            if (listen.empty()) throw Invalid{d.at("listen"), "must name at least one address"};
            c.dtcp.listen.clear();
            for (size_t i = 0; i < listen.size(); ++i)
                c.dtcp.listen.push_back(
                    parseListen(listen[i], d.at("listen") + "/" + std::to_string(i)));
        }
        d.read("host_key", c.dtcp.host_key);
        d.read("connection_limit", c.dtcp.connection_limit);
        d.read("rate_limit", c.dtcp.rate_limit);
        d.read("auth_timeout_s", c.dtcp.auth_timeout_s);
        d.read("max_message_bytes", c.dtcp.max_message_bytes);
        d.finish();
        // Junos bounds both limits to 1-250.
        if (c.dtcp.connection_limit < 1 || c.dtcp.connection_limit > 250)
            throw Invalid{d.at("connection_limit"), "must be 1-250"};
        if (c.dtcp.rate_limit < 1 || c.dtcp.rate_limit > 250)
            throw Invalid{d.at("rate_limit"), "must be 1-250"};
        if (c.dtcp.auth_timeout_s < 1) throw Invalid{d.at("auth_timeout_s"), "must be at least 1"};
        if (c.dtcp.max_message_bytes < 1024 || c.dtcp.max_message_bytes > 1048576)
            throw Invalid{d.at("max_message_bytes"), "must be 1024-1048576"};
    }
    if (root.has("users")) {
        const json& u = root.raw("users");
        if (!u.is_object()) throw Invalid{"/users", "must be an object keyed by user name"};
        for (auto it = u.begin(); it != u.end(); ++it) {
            const std::string where = "/users/" + escapePointer(it.key());
            if (it.key().empty() || it.key().size() > 64)
                throw Invalid{where, "user names are 1-64 characters"};
            c.users[it.key()] = parseUser(it.value(), where);
        }
    }
    if (root.has("interfaces")) {
        const json& l = root.raw("interfaces");
        if (!l.is_array()) throw Invalid{"/interfaces", "must be a list"};
        std::set<std::string> names;
        for (size_t i = 0; i < l.size(); ++i) {
            Object o(l[i], "/interfaces/" + std::to_string(i));
            Interface itf;
            o.read("name", itf.name);
            if (o.has("alias")) {
                const json& a = o.raw("alias");
                if (a.is_string())
                    itf.alias = {a.get<std::string>()};
                else
                    o.readList("alias", itf.alias);
            }
            if (o.has("xdp_mode"))
                itf.xdp_mode =
                    parseXdpMode(Object::value<std::string>(o.raw("xdp_mode"), o.at("xdp_mode")),
                                 o.at("xdp_mode"));
            o.finish();
            if (itf.name.empty() || itf.name.size() > 15)
                throw Invalid{o.at("name"), "a Linux interface name (1-15 characters)"};
            if (!names.insert(itf.name).second) throw Invalid{o.at("name"), "listed twice"};
            c.interfaces.push_back(itf);
        }
    }
    if (root.has("ipsec")) {
        Object o(root.raw("ipsec"), "/ipsec");
        o.read("vici_socket", c.ipsec.vici_socket);
        if (o.has("tunnels")) {
            const json& l = o.raw("tunnels");
            if (!l.is_array()) throw Invalid{"/ipsec/tunnels", "must be a list"};
            for (size_t i = 0; i < l.size(); ++i)
                c.ipsec.tunnels.push_back(parseTunnel(l[i], "/ipsec/tunnels/" + std::to_string(i)));
        }
        o.finish();
        if (c.ipsec.vici_socket.rfind("unix://", 0) != 0)
            throw Invalid{o.at("vici_socket"), "must be unix://PATH"};
    }
    if (root.has("delivery")) {
        Object o(root.raw("delivery"), "/delivery");
        o.readList("cleartext_destinations", c.delivery.cleartext_destinations);
        o.finish();
        for (size_t i = 0; i < c.delivery.cleartext_destinations.size(); ++i)
            if (!isPrefix(c.delivery.cleartext_destinations[i]))
                throw Invalid{"/delivery/cleartext_destinations/" + std::to_string(i),
                              "must be a prefix"};
    }
    if (root.has("dataplane")) {
        Object o(root.raw("dataplane"), "/dataplane");
        o.read("criteria", c.dataplane.criteria);
        o.read("rules", c.dataplane.rules);
        o.read("anchors", c.dataplane.anchors);
        o.read("pin_dir", c.dataplane.pin_dir);
        o.read("xsk_ring", c.dataplane.xsk_ring);
        o.read("receive_batch", c.dataplane.receive_batch);
        o.read("copy_threads", c.dataplane.copy_threads);
        o.read("copy_coalesce_us", c.dataplane.copy_coalesce_us);
        o.read("consumer_timeout_ms", c.dataplane.consumer_timeout_ms);
        o.read("copy_budget_pps", c.dataplane.copy_budget_pps);
        o.read("copy_budget_bps", c.dataplane.copy_budget_bps);
        o.read("copy_budget_burst_us", c.dataplane.copy_budget_burst_us);
        if (o.has("transit_hook")) {
            const auto h = Object::value<std::string>(o.raw("transit_hook"), o.at("transit_hook"));
            if (h == "auto")
                c.dataplane.transit_hook = TransitHook::Auto;
            else if (h == "xdp")
                c.dataplane.transit_hook = TransitHook::Xdp;
            else if (h == "tc")
                c.dataplane.transit_hook = TransitHook::Tc;
            else
                throw Invalid{o.at("transit_hook"), "must be auto, xdp or tc"};
        }
        o.finish();
        if (c.dataplane.criteria < 1024) throw Invalid{o.at("criteria"), "must be at least 1024"};
        if (c.dataplane.rules < c.dataplane.criteria)
            throw Invalid{o.at("rules"), "must be at least dataplane.criteria"};
        if (c.dataplane.anchors < 1024) throw Invalid{o.at("anchors"), "must be at least 1024"};
        const uint32_t ring = c.dataplane.xsk_ring;
        if (ring < 256 || ring > 16384 || (ring & (ring - 1)))
            throw Invalid{o.at("xsk_ring"), "must be a power of two from 256 to 16384"};
        if (c.dataplane.receive_batch < 1 || c.dataplane.receive_batch > ring)
            throw Invalid{o.at("receive_batch"), "must be from 1 to dataplane.xsk_ring"};
        if (c.dataplane.copy_threads < 1 || c.dataplane.copy_threads > kMaxCopyThreads)
            throw Invalid{o.at("copy_threads"),
                          "must be from 1 to " + std::to_string(kMaxCopyThreads)};
        if (c.dataplane.copy_coalesce_us > kMaxCopyCoalesceUs)
            throw Invalid{o.at("copy_coalesce_us"),
                          "must be from 0 to " + std::to_string(kMaxCopyCoalesceUs)};
        const uint32_t timeout = c.dataplane.consumer_timeout_ms;
        if (timeout != 0 && (timeout < kMinConsumerTimeoutMs || timeout > kMaxConsumerTimeoutMs)) {
            const std::string range = std::to_string(kMinConsumerTimeoutMs) + " to " +
                                      std::to_string(kMaxConsumerTimeoutMs);
            throw Invalid{o.at("consumer_timeout_ms"), "must be 0 (no deadline) or from " + range};
        }
        if (c.dataplane.copy_budget_pps > kMaxCopyBudgetPps)
            throw Invalid{o.at("copy_budget_pps"),
                          "must be from 0 (no budget) to " + std::to_string(kMaxCopyBudgetPps)};
        if (c.dataplane.copy_budget_bps > kMaxCopyBudgetBps)
            throw Invalid{o.at("copy_budget_bps"),
                          "must be from 0 (no budget) to " + std::to_string(kMaxCopyBudgetBps)};
        if (c.dataplane.copy_budget_burst_us > kMaxCopyBudgetBurstUs)
            throw Invalid{o.at("copy_budget_burst_us"),
                          "must be from 0 to " + std::to_string(kMaxCopyBudgetBurstUs)};
    }
    root.read("state_dir", c.state_dir);
    root.read("audit_log", c.audit_log);
    root.read("control_socket", c.control_socket);
    if (root.has("metrics")) {
        Object o(root.raw("metrics"), "/metrics");
        o.read("listen", c.metrics_listen);
        o.finish();
        if (!c.metrics_listen.empty())
            parseListen(c.metrics_listen, "/metrics/listen");  // "" = off
    }
    root.finish();
    // Cross-checks.
    for (const auto& [name, user] : c.users) {
        for (const auto& [cdest, d] : user.destinations) {
            const std::string where =
                "/users/" + escapePointer(name) + "/destinations/" + escapePointer(cdest);
            bool protected_by_tunnel = false;
            for (const auto& t : c.ipsec.tunnels)
                protected_by_tunnel |= prefixListContains(t.remote_ts, d.address);
            if (!protected_by_tunnel &&
                !prefixListContains(c.delivery.cleartext_destinations, d.address))
                throw Invalid{
                    where + "/address",
                    "not inside any IPsec tunnel's remote_ts nor delivery.cleartext_destinations: "
                    "copies would leave in clear text"};
        }
    }
    for (const auto& i : c.interfaces)
        for (const auto& j : c.interfaces)
            if (&i != &j)
                for (const auto& a : i.alias)
                    if (std::find(j.alias.begin(), j.alias.end(), a) != j.alias.end())
                        throw Invalid{"/interfaces", "alias '" + a + "' names two interfaces"};
    return c;
}

}  // namespace

bool User::canTask() const {
    return std::find(permissions.begin(), permissions.end(), "flow-tap-operation") !=
           permissions.end();
}

std::string ConfigError::message() const {
    return file + ": " + (pointer.empty() ? std::string("(document)") : pointer) + ": " + reason;
}

ConfigResult parseConfig(const std::string& text, const std::string& file) {
    json doc;
    try {
        doc = json::parse(text);
    } catch (const json::exception& e) {  // parse_error, and out_of_range for a number like 1e999
        return ConfigError{file, "", std::string("not valid JSON: ") + e.what()};
    }
    try {
        return parse(doc);
    } catch (const Invalid& e) {
        return ConfigError{file, e.pointer, e.reason};
    }
}

bool prefixListContains(const std::vector<std::string>& prefixes, const std::string& address) {
    unsigned char a[16] = {};
    const bool v4 = inet_pton(AF_INET, address.c_str(), a) == 1;
    if (!v4 && inet_pton(AF_INET6, address.c_str(), a) != 1) return false;
    for (const auto& p : prefixes) {
        const auto slash = p.find('/');
        unsigned char net[16] = {};
        const std::string addr = p.substr(0, slash);
        const bool pv4 = inet_pton(AF_INET, addr.c_str(), net) == 1;
        if (pv4 != v4 || (!pv4 && inet_pton(AF_INET6, addr.c_str(), net) != 1)) continue;
        const int len =
            slash == std::string::npos ? (v4 ? 32 : 128) : std::stoi(p.substr(slash + 1));
        bool inside = true;
        for (int bit = 0; bit < len && inside; ++bit)
            inside = ((a[bit / 8] ^ net[bit / 8]) & (0x80 >> (bit % 8))) == 0;
        if (inside) return true;
    }
    return false;
}

}  // namespace xtap::config
