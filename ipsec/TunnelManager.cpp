#include "ipsec/TunnelManager.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/socket.h>

#include <algorithm>
#include <charconv>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iterator>
#include <sstream>
#include <stdexcept>
#include <system_error>

#include "common/UniqueFd.h"

namespace xtap::ipsec {

namespace {

size_t addressBytes(Family family) {
    return family == Family::V4 ? 4 : 16;
}

int addressFamily(Family family) {
    return family == Family::V4 ? AF_INET : AF_INET6;
}

std::string_view trim(std::string_view text) {
    while (!text.empty() && (text.front() == ' ' || text.front() == '\t')) {
        text.remove_prefix(1);
    }
    while (!text.empty() && (text.back() == ' ' || text.back() == '\t')) {
        text.remove_suffix(1);
    }
    return text;
}

std::optional<std::pair<Family, Address>> parseAddress(std::string_view text) {
    const std::string copy(trim(text));
    Address address{};
    if (::inet_pton(AF_INET, copy.c_str(), address.data()) == 1) {
        return std::pair{Family::V4, address};
    }
    if (::inet_pton(AF_INET6, copy.c_str(), address.data()) == 1) {
        return std::pair{Family::V6, address};
    }
    return std::nullopt;
}

// Lexicographic comparison over the family's bytes: network order is big-endian.
int compareAddresses(Family family, const Address& a, const Address& b) {
    return std::memcmp(a.data(), b.data(), addressBytes(family));
}

AddressRange rangeOf(const IpPrefix& prefix) {
    AddressRange range{prefix.family, prefix.prefix.addr, prefix.prefix.addr};
    const size_t bytes = addressBytes(prefix.family);
    for (size_t bit = prefix.prefix.len; bit < bytes * 8; ++bit) {
        range.last[bit / 8] |= static_cast<uint8_t>(0x80u >> (bit % 8));
    }
    return range;
}

std::string readFile(const std::string& path, const std::string& what) {
    std::ifstream in(path, std::ios::binary);
    if (!in) {
        throw std::invalid_argument(what + ": cannot read " + path);
    }
    std::ostringstream bytes;
    bytes << in.rdbuf();
    if (bytes.str().empty()) {
        throw std::invalid_argument(what + ": " + path + " is empty");
    }
    return bytes.str();
}

// Child-state and IKE-state words of list-sas that mean "traffic flows".
bool childCarriesTraffic(std::string_view state) {
    return state == "INSTALLED" || state == "REKEYING";
}

bool ikeCarriesTraffic(std::string_view state) {
    return state == "ESTABLISHED" || state == "REKEYING";
}

}  // namespace

// --- address coverage ----------------------------------------------------------------------

std::optional<IpPrefix> parseIpPrefix(std::string_view text) {
    text = trim(text);
    const size_t slash = text.find('/');
    auto address = parseAddress(text.substr(0, slash));
    if (!address) {
        return std::nullopt;
    }
    IpPrefix prefix;
    prefix.family = address->first;
    prefix.prefix.addr = address->second;
    const unsigned max_len = dataplane::addressBits(prefix.family);
    unsigned len = max_len;
    if (slash != std::string_view::npos) {
        const std::string_view digits = text.substr(slash + 1);
        if (digits.empty() || digits.size() > 3 ||
            !std::all_of(digits.begin(), digits.end(),
                         [](char c) { return c >= '0' && c <= '9'; })) {
            return std::nullopt;
        }
        len = static_cast<unsigned>(std::stoul(std::string(digits)));
        if (len > max_len) {
            return std::nullopt;
        }
    }
    prefix.prefix.len = static_cast<uint8_t>(len);
    // Host bits below the length must be zero.
    for (unsigned bit = len; bit < max_len; ++bit) {
        if (prefix.prefix.addr[bit / 8] & (0x80u >> (bit % 8))) {
            return std::nullopt;
        }
    }
    return prefix;
}

std::string formatIpPrefix(const IpPrefix& prefix) {
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(addressFamily(prefix.family), prefix.prefix.addr.data(), text, sizeof text);
    return std::string(text) + "/" + std::to_string(prefix.prefix.len);
}

bool contains(const IpPrefix& prefix, Family family, const Address& address) {
    if (prefix.family != family) {
        return false;
    }
    const unsigned len = prefix.prefix.len;
    const unsigned whole = len / 8;
    if (std::memcmp(prefix.prefix.addr.data(), address.data(), whole) != 0) {
        return false;
    }
    if (len % 8 == 0) {
        return true;
    }
    const uint8_t mask = static_cast<uint8_t>(0xff00u >> (len % 8));
    return (prefix.prefix.addr[whole] & mask) == (address[whole] & mask);
}

bool contains(const IpPrefix& outer, const IpPrefix& inner) {
    return outer.family == inner.family && outer.prefix.len <= inner.prefix.len &&
           contains(outer, inner.family, inner.prefix.addr);
}

std::optional<AddressRange> parseTrafficSelector(std::string_view text) {
    text = trim(text);
    if (text.find('[') != std::string_view::npos) {
        return std::nullopt;
    }
    const size_t dots = text.find("..");
    if (dots != std::string_view::npos) {
        auto first = parseAddress(text.substr(0, dots));
        auto last = parseAddress(text.substr(dots + 2));
        if (!first || !last || first->first != last->first ||
            compareAddresses(first->first, first->second, last->second) > 0) {
            return std::nullopt;
        }
        return AddressRange{first->first, first->second, last->second};
    }
    auto prefix = parseIpPrefix(text);
    if (!prefix) {
        return std::nullopt;
    }
    return rangeOf(*prefix);
}

bool covers(const AddressRange& range, const IpPrefix& prefix) {
    if (range.family != prefix.family) {
        return false;
    }
    const AddressRange inner = rangeOf(prefix);
    return compareAddresses(range.family, range.first, inner.first) <= 0 &&
           compareAddresses(range.family, inner.last, range.last) <= 0;
}

// --- SendGate ---------------------------------------------------------------------------------

SendGate::SendGate(std::vector<GateEntry> entries)
    : entries_(std::move(entries)), open_(new std::atomic<bool>[entries_.size()]) {
    closeAll();
}

bool SendGate::isOpenFor(Family family, const Address& destination) const {
    for (size_t i = 0; i < entries_.size(); ++i) {
        if (contains(entries_[i].prefix, family, destination) && isOpen(i)) {
            return true;
        }
    }
    return false;
}

void SendGate::closeAll() {
    for (size_t i = 0; i < entries_.size(); ++i) {
        setOpen(i, false);
    }
}

// --- ChildSaTracker ----------------------------------------------------------------------------

ChildSaTracker::ChildSaTracker(std::vector<TrackedTunnel> tunnels) : tunnels_(std::move(tunnels)) {}

std::optional<size_t> ChildSaTracker::tunnelOf(std::string_view ike, std::string_view child) const {
    for (size_t i = 0; i < tunnels_.size(); ++i) {
        if (tunnels_[i].ike == ike && tunnels_[i].child == child) {
            return i;
        }
    }
    return std::nullopt;
}

void ChildSaTracker::addLive(size_t tunnel, const IkeSaInfo& ike, const ChildSaInfo& child) {
    if (dead_children_.contains(child.unique_id) || dead_ikes_.contains(ike.unique_id)) {
        return;
    }
    LiveChild live{tunnel, ike.unique_id, child.unique_id, {}};
    for (const std::string& selector : child.remote_ts) {
        if (auto range = parseTrafficSelector(selector)) {
            live.remote.push_back(*range);
        }
    }
    auto existing = std::find_if(live_.begin(), live_.end(), [&](const LiveChild& known) {
        return known.child_id == child.unique_id;
    });
    if (existing != live_.end()) {
        *existing = std::move(live);
    } else {
        live_.push_back(std::move(live));
    }
}

void ChildSaTracker::removeChild(const std::string& child_id) {
    std::erase_if(live_, [&](const LiveChild& live) { return live.child_id == child_id; });
}

bool ChildSaTracker::onChildUpDown(const UpDownEvent& event) {
    bool resync = false;
    for (const IkeSaInfo& ike : event.ike_sas) {
        for (const ChildSaInfo& child : ike.children) {
            const auto tunnel = tunnelOf(ike.name, child.name);
            if (!tunnel) {
                continue;
            }
            if (event.up) {
                addLive(*tunnel, ike, child);
            } else if (child.unique_id.empty()) {
                // Cannot tell which SA went down: assume every SA of the tunnel.
                std::erase_if(live_, [&](const LiveChild& live) { return live.tunnel == *tunnel; });
                resync = true;
            } else {
                removeChild(child.unique_id);
                dead_children_.insert(child.unique_id);
            }
        }
    }
    return resync;
}

bool ChildSaTracker::onIkeUpDown(const UpDownEvent& event) {
    bool ours = false;
    for (const IkeSaInfo& ike : event.ike_sas) {
        const bool tracked = std::any_of(tunnels_.begin(), tunnels_.end(),
                                         [&](const TrackedTunnel& t) { return t.ike == ike.name; });
        if (!tracked) {
            continue;
        }
        ours = true;
        if (event.up) {
            for (const ChildSaInfo& child : ike.children) {
                if (const auto tunnel = tunnelOf(ike.name, child.name);
                    tunnel && childCarriesTraffic(child.state)) {
                    addLive(*tunnel, ike, child);
                }
            }
            continue;
        }
        for (const ChildSaInfo& child : ike.children) {
            if (!child.unique_id.empty()) {
                dead_children_.insert(child.unique_id);
                removeChild(child.unique_id);
            }
        }
        if (ike.unique_id.empty()) {
            std::erase_if(live_, [&](const LiveChild& live) {
                return tunnels_[live.tunnel].ike == ike.name;
            });
        } else {
            dead_ikes_.insert(ike.unique_id);
            std::erase_if(live_,
                          [&](const LiveChild& live) { return live.ike_id == ike.unique_id; });
        }
    }
    // A snapshot confirms what the event could not list (children moved by
    // an IKE rekey the tracker has not heard of).
    return ours;
}

bool ChildSaTracker::onIkeRekey(const Section& event) {
    bool complete = true;
    for (const Entry& entry : event.entries) {
        const Section* ike = std::get_if<Section>(&entry.element);
        const Section* old_sa = ike ? ike->section("old") : nullptr;
        const Section* new_sa = ike ? ike->section("new") : nullptr;
        const std::string* old_id = old_sa ? old_sa->value("uniqueid") : nullptr;
        const std::string* new_id = new_sa ? new_sa->value("uniqueid") : nullptr;
        if (!old_id || !new_id) {
            complete = false;
            continue;
        }
        // The CHILD_SAs move to the new IKE_SA; the old one is going away.
        for (LiveChild& live : live_) {
            if (live.ike_id == *old_id) {
                live.ike_id = *new_id;
            }
        }
    }
    return !complete;
}

bool ChildSaTracker::onChildRekey(const Section& event) {
    bool complete = true;
    for (const Entry& entry : event.entries) {
        const Section* ike = std::get_if<Section>(&entry.element);
        const Section* children = ike ? ike->section("child-sas") : nullptr;
        const std::string* ike_id = ike ? ike->value("uniqueid") : nullptr;
        if (!children || !ike_id) {
            complete = false;
            continue;
        }
        for (const Entry& child_entry : children->entries) {
            const Section* pair = std::get_if<Section>(&child_entry.element);
            const Section* old_child = pair ? pair->section("old") : nullptr;
            const Section* new_child = pair ? pair->section("new") : nullptr;
            const std::string* old_id = old_child ? old_child->value("uniqueid") : nullptr;
            const std::string* new_id = new_child ? new_child->value("uniqueid") : nullptr;
            const std::string* child_name = new_child ? new_child->value("name") : nullptr;
            if (!old_id || !new_id || !child_name) {
                complete = false;
                continue;
            }
            // The replaced SA is deleted without a child-updown: retire it here.
            const bool was_live = std::any_of(live_.begin(), live_.end(), [&](const LiveChild& l) {
                return l.child_id == *old_id;
            });
            removeChild(*old_id);
            dead_children_.insert(*old_id);
            const auto tunnel = tunnelOf(entry.name, *child_name);
            if (!tunnel) {
                continue;
            }
            if (!was_live) {
                // Ours, but its predecessor was unknown here: a snapshot will tell.
                complete = false;
                continue;
            }
            IkeSaInfo ike_info;
            ike_info.name = entry.name;
            ike_info.unique_id = *ike_id;
            ChildSaInfo child_info;
            child_info.name = *child_name;
            child_info.unique_id = *new_id;
            if (const List* remote = new_child->list("remote-ts")) {
                child_info.remote_ts = *remote;
            }
            addLive(*tunnel, ike_info, child_info);
        }
    }
    return !complete;
}

void ChildSaTracker::onResync(const std::vector<IkeSaInfo>& snapshot) {
    live_.clear();
    for (const IkeSaInfo& ike : snapshot) {
        if (!ikeCarriesTraffic(ike.state)) {
            continue;
        }
        for (const ChildSaInfo& child : ike.children) {
            const auto tunnel = tunnelOf(ike.name, child.name);
            if (tunnel && childCarriesTraffic(child.state)) {
                addLive(*tunnel, ike, child);
            }
        }
    }
}

void ChildSaTracker::reset() {
    live_.clear();
    dead_children_.clear();
    dead_ikes_.clear();
}

bool ChildSaTracker::isUp(size_t tunnel) const {
    return std::any_of(live_.begin(), live_.end(),
                       [&](const LiveChild& live) { return live.tunnel == tunnel; });
}

bool ChildSaTracker::covers(size_t tunnel, const IpPrefix& prefix) const {
    return std::any_of(live_.begin(), live_.end(), [&](const LiveChild& live) {
        return live.tunnel == tunnel &&
               std::any_of(live.remote.begin(), live.remote.end(),
                           [&](const AddressRange& range) { return ipsec::covers(range, prefix); });
    });
}

std::vector<GateEntry> ChildSaTracker::gateEntries() const {
    std::vector<GateEntry> entries;
    for (size_t t = 0; t < tunnels_.size(); ++t) {
        for (const IpPrefix& prefix : tunnels_[t].protected_prefixes) {
            entries.push_back(GateEntry{prefix, t});
        }
    }
    return entries;
}

void ChildSaTracker::apply(SendGate& gate) const {
    for (size_t i = 0; i < gate.size(); ++i) {
        const GateEntry& entry = gate.entry(i);
        gate.setOpen(i, covers(entry.tunnel, entry.prefix));
    }
}

// --- Backoff ----------------------------------------------------------------------------------

Milliseconds Backoff::next() {
    current_ = current_ == Milliseconds::zero() ? initial_ : std::min(current_ * 2, max_);
    return current_;
}

// --- TunnelManager ------------------------------------------------------------------------------

std::string_view name(TunnelState state) {
    switch (state) {
        case TunnelState::Disconnected:
            return "disconnected";
        case TunnelState::Waiting:
            return "waiting";
        case TunnelState::Establishing:
            return "establishing";
        case TunnelState::Up:
            return "up";
    }
    return "unknown";
}

struct TunnelManager::Tunnel {
    TunnelSpec spec;
    std::vector<IpPrefix> prefixes;
    std::string private_key;  // file contents, loaded again after every reconnect
    std::string certificate;
    std::vector<std::string> ca_certificates;
    TunnelStatus status;
    Backoff backoff;
    bool loaded = false;
    Clock::time_point due{};  // Waiting: next initiation; Establishing: give up
};

struct TunnelManager::Session {
    ViciConnection commands;
    ViciConnection events;
};

namespace {

constexpr std::string_view kSubscriptions[] = {event::kIkeUpdown, event::kChildUpdown, "ike-rekey",
                                               "child-rekey"};

std::vector<TrackedTunnel> trackedTunnels(const std::vector<TunnelSpec>& specs) {
    std::vector<TrackedTunnel> tracked;
    for (const TunnelSpec& spec : specs) {
        TrackedTunnel tunnel{spec.name, spec.child_name.empty() ? spec.name : spec.child_name, {}};
        for (const std::string& text : spec.cdest_prefixes) {
            if (auto prefix = parseIpPrefix(text)) {
                tunnel.protected_prefixes.push_back(*prefix);
            }
        }
        tracked.push_back(std::move(tunnel));
    }
    return tracked;
}

void validateSpec(const TunnelSpec& spec, std::vector<std::string>& names) {
    const std::string what = "tunnel '" + spec.name + "'";
    auto require = [&](bool condition, const std::string& problem) {
        if (!condition) {
            throw std::invalid_argument(what + ": " + problem);
        }
    };
    require(isValidName(spec.name), "name must be 1-255 printable characters");
    require(spec.child_name.empty() || isValidName(spec.child_name), "invalid child name");
    require(std::find(names.begin(), names.end(), spec.name) == names.end(), "duplicate name");
    names.push_back(spec.name);
    require(!spec.local_addrs.empty() && !spec.remote_addrs.empty(),
            "local_addrs and remote_addrs are required");
    require(!spec.local_id.empty() && !spec.remote_id.empty(),
            "local_id and remote_id are required");
    require(spec.psk.empty() != !spec.certificates.has_value(),
            "exactly one of psk and certificates");
    require(!spec.local_ts.empty(), "local_ts is required (it must hold the Cdest sources)");
    require(!spec.remote_ts.empty(), "remote_ts is required");
    require(!spec.cdest_prefixes.empty(), "no cdest_prefixes: the tunnel would protect nothing");
    std::vector<AddressRange> remote;
    for (const std::string& selector : spec.remote_ts) {
        auto range = parseTrafficSelector(selector);
        require(range.has_value(), "remote_ts '" + selector +
                                       "' is not an address, prefix or range covering all traffic");
        remote.push_back(*range);
    }
    for (const std::string& text : spec.cdest_prefixes) {
        auto prefix = parseIpPrefix(text);
        require(prefix.has_value(), "cdest prefix '" + text + "' is not a prefix");
        require(std::any_of(remote.begin(), remote.end(),
                            [&](const AddressRange& range) { return covers(range, *prefix); }),
                "cdest prefix '" + text + "' lies outside remote_ts");
    }
    if (spec.certificates) {
        require(!spec.certificates->certificate.empty() && !spec.certificates->private_key.empty(),
                "certificate and private_key are required");
        require(!spec.certificates->ca_certificates.empty(),
                "a CA certificate is required to authenticate the peer");
    }
}

TunnelConfig connectionOf(const TunnelSpec& spec) {
    const std::string auth = spec.psk.empty() ? "pubkey" : "psk";
    TunnelConfig conn;
    conn.name = spec.name;
    conn.ike_version = 2;
    conn.local_addrs = spec.local_addrs;
    conn.remote_addrs = spec.remote_addrs;
    conn.proposals = spec.ike_proposals;
    conn.dpd_delay = spec.dpd_delay;
    conn.local = AuthConfig{auth, spec.local_id};
    conn.remote = AuthConfig{auth, spec.remote_id};
    ChildConfig child;
    child.name = spec.child_name.empty() ? spec.name : spec.child_name;
    child.mode = "tunnel";
    child.local_ts = spec.local_ts;
    child.remote_ts = spec.remote_ts;
    child.esp_proposals = spec.esp_proposals;
    // xtap initiates and re-initiates itself; charon only reports. "clear"
    // turns a dead peer into a down event rather than a silent retry.
    child.start_action = "none";
    child.dpd_action = "clear";
    conn.children.push_back(std::move(child));
    return conn;
}

ViciResult<Packet> credentialRequest(std::string_view command, Section message) {
    auto bytes = encodeMessage(message);
    if (!bytes) {
        return bytes.error();
    }
    return Packet{PacketType::CmdRequest, std::string(command), std::move(bytes).value()};
}

ViciResult<Packet> loadCertRequest(const std::string& data, bool authority) {
    Section message;
    message.addValue("type", "X509");
    message.addValue("flag", authority ? "CA" : "NONE");
    message.addValue("data", data);
    return credentialRequest("load-cert", std::move(message));
}

ViciResult<Packet> loadKeyRequest(const std::string& data) {
    Section message;
    message.addValue("type", "any");
    message.addValue("data", data);
    return credentialRequest("load-key", std::move(message));
}

}  // namespace

TunnelManager::TunnelManager(TunnelManagerConfig config)
    : config_(std::move(config)),
      tracker_([this] {
          std::vector<std::string> names;
          for (const TunnelSpec& spec : config_.tunnels) {
              validateSpec(spec, names);
          }
          return trackedTunnels(config_.tunnels);
      }()),
      gate_(std::make_shared<SendGate>(tracker_.gateEntries())),
      reconnect_backoff_(config_.reconnect_initial, config_.reconnect_max) {
    if (config_.tunnels.empty()) {
        throw std::invalid_argument("no tunnels configured");
    }
    for (size_t i = 0; i < config_.tunnels.size(); ++i) {
        Tunnel tunnel{config_.tunnels[i],
                      tracker_.tunnel(i).protected_prefixes,
                      {},
                      {},
                      {},
                      {},
                      Backoff(config_.retry_initial, config_.retry_max)};
        tunnel.status.name = tunnel.spec.name;
        if (const auto& files = tunnel.spec.certificates) {
            const std::string what = "tunnel '" + tunnel.spec.name + "'";
            tunnel.private_key = readFile(files->private_key, what);
            tunnel.certificate = readFile(files->certificate, what);
            for (const std::string& path : files->ca_certificates) {
                tunnel.ca_certificates.push_back(readFile(path, what));
            }
        }
        tunnels_.push_back(std::move(tunnel));
    }
    reconnect_at_ = Clock::now();
}

TunnelManager::~TunnelManager() {
    gate_->closeAll();
}

std::vector<IpPrefix> TunnelManager::protectedPrefixes() const {
    std::vector<IpPrefix> prefixes;
    for (const Tunnel& tunnel : tunnels_) {
        for (const IpPrefix& prefix : tunnel.prefixes) {
            if (std::find(prefixes.begin(), prefixes.end(), prefix) == prefixes.end()) {
                prefixes.push_back(prefix);
            }
        }
    }
    return prefixes;
}

int TunnelManager::eventFd() const {
    return session_ ? session_->events.fd() : -1;
}

bool TunnelManager::connected() const {
    return session_ != nullptr;
}

std::vector<TunnelStatus> TunnelManager::status() const {
    std::vector<TunnelStatus> out;
    for (const Tunnel& tunnel : tunnels_) {
        out.push_back(tunnel.status);
    }
    return out;
}

TunnelManager::Clock::time_point TunnelManager::nextDue() const {
    if (!session_) {
        return reconnect_at_;
    }
    Clock::time_point due = resync_requested_ ? Clock::now() : resync_at_;
    for (const Tunnel& tunnel : tunnels_) {
        if (tunnel.status.state == TunnelState::Waiting ||
            tunnel.status.state == TunnelState::Establishing) {
            due = std::min(due, tunnel.due);
        }
    }
    return due;
}

void TunnelManager::setState(Tunnel& tunnel, TunnelState state) {
    if (tunnel.status.state == state) {
        return;
    }
    if (state == TunnelState::Up) {
        ++tunnel.status.ups;
        tunnel.status.last_error.clear();
    } else if (tunnel.status.state == TunnelState::Up) {
        ++tunnel.status.downs;
    }
    spdlog::info("ipsec: tunnel {} {} -> {}", tunnel.spec.name, name(tunnel.status.state),
                 name(state));
    tunnel.status.state = state;
    if (observer_) {
        observer_(tunnel.status);
    }
}

void TunnelManager::disconnect(const std::string& why) {
    // Close first: nothing may be sent on the word of a charon that is gone.
    gate_->closeAll();
    tracker_.reset();
    session_.reset();
    reconnect_at_ = Clock::now() + reconnect_backoff_.next();
    spdlog::warn("ipsec: vici connection lost ({}); all tunnels closed", why);
    for (Tunnel& tunnel : tunnels_) {
        tunnel.loaded = false;
        setState(tunnel, TunnelState::Disconnected);
    }
}

void TunnelManager::failCommand(const ConnectionError& error, const std::string& what) {
    if (error.code == ConnectionErrc::Refused || error.code == ConnectionErrc::Protocol) {
        // The stream is still in step unless ViciConnection says otherwise.
        spdlog::warn("ipsec: {}: {}", what, error.message());
        return;
    }
    disconnect(what + ": " + error.message());
}

void TunnelManager::connect() {
    const auto timeout = config_.command_timeout;
    auto fail = [&](const ConnectionError& error) {
        reconnect_at_ = Clock::now() + reconnect_backoff_.next();
        spdlog::debug("ipsec: vici not ready: {}", error.message());
    };
    auto commands = ViciConnection::open(config_.vici_socket, timeout);
    if (!commands) {
        return fail(commands.error());
    }
    auto events = ViciConnection::open(config_.vici_socket, timeout);
    if (!events) {
        return fail(events.error());
    }
    // Subscribe before anything is loaded or listed, so no change between
    // the snapshot and the subscription can be missed.
    auto handler = [this](const EventMessage& message) { onEvent(message); };
    for (std::string_view event : kSubscriptions) {
        if (auto subscribed = events->subscribe(event, timeout, handler); !subscribed) {
            return fail(subscribed.error());
        }
    }
    auto version = commands->call(versionRequest(), timeout);
    if (!version) {
        return fail(version.error());
    }
    session_ =
        std::make_unique<Session>(Session{std::move(commands).value(), std::move(events).value()});
    reconnect_backoff_.reset();
    if (auto info = readVersion(*version)) {
        spdlog::info("ipsec: connected to {} {}", info->daemon, info->version);
    }
    const auto now = Clock::now();
    for (Tunnel& tunnel : tunnels_) {
        tunnel.backoff.reset();
        tunnel.due = now;
        setState(tunnel, TunnelState::Waiting);
    }
    resync_requested_ = true;
}

bool TunnelManager::loadTunnel(Tunnel& tunnel) {
    const std::string& name = tunnel.spec.name;
    std::vector<std::pair<std::string, ViciResult<Packet>>> requests;
    if (!tunnel.spec.psk.empty()) {
        SharedSecret secret;
        secret.id = "xtap-" + name;
        secret.data = tunnel.spec.psk;
        secret.owners = {tunnel.spec.local_id, tunnel.spec.remote_id};
        requests.emplace_back("load-shared", loadSharedRequest(secret));
    } else {
        requests.emplace_back("load-key", loadKeyRequest(tunnel.private_key));
        requests.emplace_back("load-cert", loadCertRequest(tunnel.certificate, false));
        for (const std::string& ca : tunnel.ca_certificates) {
            requests.emplace_back("load-cert (CA)", loadCertRequest(ca, true));
        }
    }
    requests.emplace_back("load-conn", loadConnRequest(connectionOf(tunnel.spec)));
    for (auto& [what, request] : requests) {
        if (!request) {
            tunnel.status.last_error = what + ": " + request.error().message();
            spdlog::error("ipsec: tunnel {}: {}", name, tunnel.status.last_error);
            return false;
        }
        auto response = session_->commands.call(*request, config_.command_timeout);
        if (!response) {
            tunnel.status.last_error = what + ": " + response.error().message();
            failCommand(response.error(), "tunnel " + name + ": " + what);
            return false;
        }
        auto outcome = readCommandOutcome(*response);
        if (!outcome || !outcome->success) {
            tunnel.status.last_error =
                what + ": " + (outcome ? outcome->errmsg : outcome.error().message());
            spdlog::error("ipsec: tunnel {}: {}", name, tunnel.status.last_error);
            return false;
        }
    }
    return true;
}

void TunnelManager::initiate(Tunnel& tunnel) {
    const auto now = Clock::now();
    if (!tunnel.loaded) {
        tunnel.loaded = loadTunnel(tunnel);
        if (!session_) {
            return;
        }
        if (!tunnel.loaded) {
            tunnel.due = now + tunnel.backoff.next();
            return;
        }
    }
    InitiateRequest request;
    request.child = tracker_.tunnel(static_cast<size_t>(&tunnel - tunnels_.data())).child;
    request.ike = tunnel.spec.name;
    // -1: charon queues the exchange and answers at once; child-updown tells
    // the outcome, so the loop never blocks on a slow or dead peer.
    request.timeout_ms = -1;
    auto packet = initiateRequest(request);
    if (!packet) {
        tunnel.status.last_error = packet.error().message();
        tunnel.due = now + tunnel.backoff.next();
        return;
    }
    auto response = session_->commands.call(*packet, config_.command_timeout);
    if (!response) {
        tunnel.status.last_error = "initiate: " + response.error().message();
        failCommand(response.error(), "tunnel " + tunnel.spec.name + ": initiate");
        if (session_) {
            tunnel.due = now + tunnel.backoff.next();
        }
        return;
    }
    ++tunnel.status.initiations;
    auto outcome = readCommandOutcome(*response);
    if (!outcome || !outcome->success) {
        tunnel.status.last_error =
            "initiate: " + (outcome ? outcome->errmsg : outcome.error().message());
        spdlog::warn("ipsec: tunnel {}: {}", tunnel.spec.name, tunnel.status.last_error);
        tunnel.due = now + tunnel.backoff.next();
        return;
    }
    tunnel.due = now + config_.establish_timeout;
    setState(tunnel, TunnelState::Establishing);
}

void TunnelManager::abandonEstablishment(Tunnel& tunnel) {
    tunnel.status.last_error = "not established within the timeout";
    spdlog::warn("ipsec: tunnel {}: {}", tunnel.spec.name, tunnel.status.last_error);
    // An IKE_SA still retransmitting its IKE_SA_INIT would pile up with the
    // next attempt's: end the unestablished ones of this connection.
    ListSasRequest list;
    list.ike = tunnel.spec.name;
    std::vector<IkeSaInfo> sas;
    auto packet = listSasRequest(list);
    if (packet) {
        auto collect = [&sas](const EventMessage& message) {
            if (message.name != event::kListSa) {
                return;
            }
            if (auto listed = readListSa(message.message)) {
                std::move(listed->begin(), listed->end(), std::back_inserter(sas));
            }
        };
        auto response = session_->commands.callStreaming(*packet, event::kListSa,
                                                         config_.command_timeout, collect);
        if (!response) {
            failCommand(response.error(), "tunnel " + tunnel.spec.name + ": list-sas");
            if (!session_) {
                return;
            }
        }
    }
    for (const IkeSaInfo& ike : sas) {
        uint32_t ike_id = 0;
        const auto [end, ec] = std::from_chars(ike.unique_id.data(),
                                               ike.unique_id.data() + ike.unique_id.size(), ike_id);
        if (ike.name != tunnel.spec.name || ikeCarriesTraffic(ike.state) || ec != std::errc{} ||
            end != ike.unique_id.data() + ike.unique_id.size()) {
            continue;
        }
        TerminateRequest terminate;
        terminate.ike_id = ike_id;
        terminate.force = true;
        terminate.timeout_ms = -1;
        if (auto request = terminateRequest(terminate)) {
            auto response = session_->commands.call(*request, config_.command_timeout);
            if (!response) {
                failCommand(response.error(), "tunnel " + tunnel.spec.name + ": terminate");
                if (!session_) {
                    return;
                }
            }
        }
    }
    tunnel.due = Clock::now() + tunnel.backoff.next();
    setState(tunnel, TunnelState::Waiting);
}

bool TunnelManager::resync() {
    std::vector<IkeSaInfo> snapshot;
    bool readable = true;
    auto collect = [&](const EventMessage& message) {
        if (message.name != event::kListSa) {
            return;
        }
        auto listed = readListSa(message.message);
        if (!listed) {
            readable = false;
            spdlog::warn("ipsec: unreadable list-sa event: {}", listed.error().message());
            return;
        }
        std::move(listed->begin(), listed->end(), std::back_inserter(snapshot));
    };
    auto packet = listSasRequest(ListSasRequest{});
    if (!packet) {
        return false;
    }
    auto response =
        session_->commands.callStreaming(*packet, event::kListSa, config_.command_timeout, collect);
    resync_at_ = Clock::now() + config_.resync_interval;
    resync_requested_ = false;
    if (!response) {
        failCommand(response.error(), "list-sas");
        return false;
    }
    if (!readable) {
        // Without a full picture nothing may stay open on a guess.
        tracker_.onResync({});
    } else {
        tracker_.onResync(snapshot);
    }
    tracker_.apply(*gate_);
    refreshStates();
    return true;
}

void TunnelManager::onEvent(const EventMessage& message) {
    bool resync = false;
    if (message.name == event::kChildUpdown || message.name == event::kIkeUpdown) {
        auto updown = readUpDown(message.message);
        if (!updown) {
            spdlog::warn("ipsec: unreadable {} event: {}", message.name, updown.error().message());
            resync = true;
        } else if (message.name == event::kChildUpdown) {
            resync = tracker_.onChildUpDown(*updown);
        } else {
            resync = tracker_.onIkeUpDown(*updown);
        }
    } else if (message.name == "ike-rekey") {
        resync = tracker_.onIkeRekey(message.message);
    } else if (message.name == "child-rekey") {
        resync = tracker_.onChildRekey(message.message);
    }
    resync_requested_ = resync_requested_ || resync;
    tracker_.apply(*gate_);
    refreshStates();
}

void TunnelManager::refreshStates() {
    if (!session_) {
        return;
    }
    const auto now = Clock::now();
    for (size_t i = 0; i < tunnels_.size(); ++i) {
        Tunnel& tunnel = tunnels_[i];
        const bool up = tracker_.isUp(i);
        if (up && tunnel.status.state != TunnelState::Up) {
            tunnel.backoff.reset();
            setState(tunnel, TunnelState::Up);
            for (const IpPrefix& prefix : tunnel.prefixes) {
                if (!tracker_.covers(i, prefix)) {
                    spdlog::warn(
                        "ipsec: tunnel {}: negotiated remote_ts leaves {} uncovered; "
                        "it stays closed",
                        tunnel.spec.name, formatIpPrefix(prefix));
                }
            }
        } else if (!up && tunnel.status.state == TunnelState::Up) {
            tunnel.due = now + tunnel.backoff.next();
            setState(tunnel, TunnelState::Waiting);
        }
    }
}

void TunnelManager::handleEvents() {
    if (!session_) {
        return;
    }
    auto read = session_->events.readEvents([this](const EventMessage& m) { onEvent(m); });
    if (!read) {
        disconnect(read.error().message());
    }
}

void TunnelManager::runDue() {
    if (!session_) {
        if (Clock::now() >= reconnect_at_) {
            connect();
        }
        if (!session_) {
            return;
        }
    }
    if (resync_requested_ || Clock::now() >= resync_at_) {
        if (!resync()) {
            return;
        }
    }
    for (Tunnel& tunnel : tunnels_) {
        if (!session_) {
            return;
        }
        if (Clock::now() < tunnel.due) {
            continue;
        }
        if (tunnel.status.state == TunnelState::Waiting) {
            initiate(tunnel);
        } else if (tunnel.status.state == TunnelState::Establishing) {
            abandonEstablishment(tunnel);
        }
    }
}

void TunnelManager::runOnce(Milliseconds max_wait) {
    const auto wait = std::clamp(std::chrono::duration_cast<Milliseconds>(nextDue() - Clock::now()),
                                 Milliseconds::zero(), max_wait);
    pollfd pfd{eventFd(), POLLIN, 0};
    const int ready = ::poll(&pfd, pfd.fd >= 0 ? 1 : 0, static_cast<int>(wait.count()));
    if (ready > 0) {
        handleEvents();
    }
    runDue();
}

void TunnelManager::shutdown() {
    gate_->closeAll();
    if (!session_) {
        return;
    }
    for (Tunnel& tunnel : tunnels_) {
        TerminateRequest terminate;
        terminate.ike = tunnel.spec.name;
        terminate.timeout_ms = -1;
        for (auto request : {terminateRequest(terminate), unloadConnRequest(tunnel.spec.name)}) {
            if (!request || !session_) {
                continue;
            }
            if (auto response = session_->commands.call(*request, config_.command_timeout);
                !response) {
                spdlog::warn("ipsec: shutdown of tunnel {}: {}", tunnel.spec.name,
                             response.error().message());
            }
        }
    }
    session_.reset();
    tracker_.reset();
    for (Tunnel& tunnel : tunnels_) {
        setState(tunnel, TunnelState::Disconnected);
    }
    // No reconnection after an orderly stop.
    reconnect_at_ = Clock::time_point::max();
}

// --- backup routes
// --------------------------------------------------------------------------------

namespace {

[[noreturn]] void routeFailure(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

// One rtnetlink route request (RTM_NEWROUTE / RTM_DELROUTE), in the style of
// dataplane/kernel/Link.cpp: built attribute by attribute, sent, ACK read.
class RouteRequest {
  public:
    RouteRequest(uint16_t type, uint16_t flags, const IpPrefix& prefix) {
        buffer_.resize(NLMSG_LENGTH(sizeof(rtmsg)));
        auto* header = reinterpret_cast<nlmsghdr*>(buffer_.data());
        header->nlmsg_type = type;
        header->nlmsg_flags = static_cast<uint16_t>(NLM_F_REQUEST | NLM_F_ACK | flags);
        header->nlmsg_seq = 1;
        auto* route = static_cast<rtmsg*>(NLMSG_DATA(header));
        route->rtm_family = static_cast<uint8_t>(addressFamily(prefix.family));
        route->rtm_dst_len = prefix.prefix.len;
        route->rtm_table = RT_TABLE_MAIN;
        route->rtm_protocol = kXtapRouteProtocol;
        route->rtm_type = RTN_UNREACHABLE;
        route->rtm_scope = type == RTM_DELROUTE ? RT_SCOPE_NOWHERE : RT_SCOPE_UNIVERSE;
        header->nlmsg_len = static_cast<uint32_t>(buffer_.size());
        put(RTA_DST, prefix.prefix.addr.data(), addressBytes(prefix.family));
    }

    // 0 or a positive errno.
    int transact() const {
        UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
        if (!fd) {
            return errno;
        }
        sockaddr_nl kernel{};
        kernel.nl_family = AF_NETLINK;
        if (::sendto(fd.get(), buffer_.data(), buffer_.size(), 0,
                     reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0) {
            return errno;
        }
        char reply[8192];
        const ssize_t n = ::recv(fd.get(), reply, sizeof reply, 0);
        if (n < 0) {
            return errno;
        }
        const auto* header = reinterpret_cast<const nlmsghdr*>(reply);
        if (!NLMSG_OK(header, static_cast<unsigned>(n)) || header->nlmsg_type != NLMSG_ERROR) {
            return EPROTO;
        }
        return -static_cast<const nlmsgerr*>(NLMSG_DATA(header))->error;
    }

  private:
    void put(uint16_t type, const void* data, size_t length) {
        const size_t offset = buffer_.size();
        buffer_.resize(offset + RTA_ALIGN(RTA_LENGTH(length)));
        auto* attribute = reinterpret_cast<rtattr*>(&buffer_[offset]);
        attribute->rta_type = type;
        attribute->rta_len = static_cast<uint16_t>(RTA_LENGTH(length));
        std::memcpy(RTA_DATA(attribute), data, length);
        reinterpret_cast<nlmsghdr*>(buffer_.data())->nlmsg_len =
            static_cast<uint32_t>(buffer_.size());
    }

    std::vector<uint8_t> buffer_;
};

struct MainRoute {
    IpPrefix prefix;
    uint8_t type = RTN_UNSPEC;
    uint8_t protocol = 0;
};

// Every main-table route of `family`, by an RTM_GETROUTE dump.
std::vector<MainRoute> dumpMainTable(Family family) {
    UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd) {
        routeFailure(errno, "open rtnetlink");
    }
    struct {
        nlmsghdr header;
        rtmsg route;
    } request{};
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(rtmsg));
    request.header.nlmsg_type = RTM_GETROUTE;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.header.nlmsg_seq = 1;
    request.route.rtm_family = static_cast<uint8_t>(addressFamily(family));
    sockaddr_nl kernel{};
    kernel.nl_family = AF_NETLINK;
    if (::sendto(fd.get(), &request, request.header.nlmsg_len, 0,
                 reinterpret_cast<const sockaddr*>(&kernel), sizeof kernel) < 0) {
        routeFailure(errno, "dump the main routing table");
    }
    std::vector<MainRoute> routes;
    std::vector<char> buffer(32768);
    for (;;) {
        const ssize_t n = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
        if (n < 0) {
            if (errno == EINTR) {
                continue;
            }
            routeFailure(errno, "dump the main routing table");
        }
        auto length = static_cast<unsigned>(n);
        for (auto* header = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(header, length);
             header = NLMSG_NEXT(header, length)) {
            if (header->nlmsg_type == NLMSG_DONE) {
                return routes;
            }
            if (header->nlmsg_type == NLMSG_ERROR) {
                routeFailure(-static_cast<nlmsgerr*>(NLMSG_DATA(header))->error,
                             "dump the main routing table");
            }
            if (header->nlmsg_type != RTM_NEWROUTE) {
                continue;
            }
            const auto* route = static_cast<const rtmsg*>(NLMSG_DATA(header));
            uint32_t table = route->rtm_table;
            MainRoute entry;
            entry.prefix.family = family;
            entry.prefix.prefix.len = route->rtm_dst_len;
            entry.type = route->rtm_type;
            entry.protocol = route->rtm_protocol;
            auto attributes_length = static_cast<unsigned>(RTM_PAYLOAD(header));
            for (auto* attribute = RTM_RTA(route); RTA_OK(attribute, attributes_length);
                 attribute = RTA_NEXT(attribute, attributes_length)) {
                if (attribute->rta_type == RTA_TABLE && RTA_PAYLOAD(attribute) >= sizeof table) {
                    std::memcpy(&table, RTA_DATA(attribute), sizeof table);
                } else if (attribute->rta_type == RTA_DST &&
                           RTA_PAYLOAD(attribute) == addressBytes(family)) {
                    std::memcpy(entry.prefix.prefix.addr.data(), RTA_DATA(attribute),
                                addressBytes(family));
                }
            }
            if (table == RT_TABLE_MAIN) {
                routes.push_back(entry);
            }
        }
    }
}

bool dropsPackets(uint8_t type) {
    return type == RTN_UNREACHABLE || type == RTN_BLACKHOLE || type == RTN_PROHIBIT;
}

}  // namespace

std::vector<IpPrefix> forwardingRoutesWithin(const IpPrefix& prefix) {
    std::vector<IpPrefix> found;
    for (const MainRoute& route : dumpMainTable(prefix.family)) {
        if (!dropsPackets(route.type) && contains(prefix, route.prefix)) {
            found.push_back(route.prefix);
        }
    }
    return found;
}

bool addUnreachableRoute(const IpPrefix& prefix) {
    const int err = RouteRequest(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_EXCL, prefix).transact();
    if (err == EEXIST) {
        return false;
    }
    if (err != 0) {
        routeFailure(err, "add unreachable route " + formatIpPrefix(prefix));
    }
    return true;
}

void removeUnreachableRoute(const IpPrefix& prefix) {
    const int err = RouteRequest(RTM_DELROUTE, 0, prefix).transact();
    if (err != 0 && err != ESRCH && err != ENOENT) {
        routeFailure(err, "remove unreachable route " + formatIpPrefix(prefix));
    }
}

UnreachableRoutes::UnreachableRoutes(std::vector<IpPrefix> prefixes) {
    for (const IpPrefix& prefix : prefixes) {
        const auto forwarding = forwardingRoutesWithin(prefix);
        if (!forwarding.empty()) {
            throw std::runtime_error("protected prefix " + formatIpPrefix(prefix) +
                                     ": the main table routes " + formatIpPrefix(forwarding[0]) +
                                     ", which would carry copies in clear while the tunnel is "
                                     "down");
        }
    }
    try {
        for (const IpPrefix& prefix : prefixes) {
            if (addUnreachableRoute(prefix)) {
                owned_.push_back(prefix);
                continue;
            }
            // Already there: adopt it only if an earlier xtap left it.
            for (const MainRoute& route : dumpMainTable(prefix.family)) {
                if (route.prefix == prefix && route.protocol == kXtapRouteProtocol &&
                    route.type == RTN_UNREACHABLE) {
                    owned_.push_back(prefix);
                }
            }
        }
    } catch (...) {
        for (const IpPrefix& prefix : owned_) {
            try {
                removeUnreachableRoute(prefix);
            } catch (const std::system_error&) {
                // The first error is the one to report.
            }
        }
        throw;
    }
}

UnreachableRoutes::~UnreachableRoutes() {
    if (keep_) {
        return;
    }
    for (const IpPrefix& prefix : owned_) {
        try {
            removeUnreachableRoute(prefix);
        } catch (const std::system_error& error) {
            spdlog::warn("ipsec: {}", error.what());
        }
    }
}

}  // namespace xtap::ipsec
