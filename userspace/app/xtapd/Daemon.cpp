#include "Daemon.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <thread>
#include <unordered_map>

#include "audit/AuditLog.h"
#include "criteria/CriteriaStore.h"
#include "dataplane/DataPlane.h"
#include "dataplane/FragmentReorderer.h"
#include "dataplane/kernel/BpfMaps.h"
#include "dataplane/kernel/CopyPath.h"
#include "dataplane/kernel/Link.h"
#include "dataplane/kernel/XtapObject.h"
#include "delivery/Encapsulator.h"
#include "delivery/FanOut.h"
#include "delivery/Frame.h"
#include "delivery/UdpSender.h"
#include "dtcp/DtcpService.h"
#include "dtcp/SshServer.h"
#include "ipsec/TunnelManager.h"

namespace xtap::app {

namespace kernel = dataplane::kernel;
using json = nlohmann::json;
using dataplane::Address;
using dataplane::Family;

namespace {

uint64_t bootNs() {
    timespec ts{};
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

criteria::Instant now() {
    criteria::Instant i;
    i.boottime_ns = bootNs();
    const auto wall = std::chrono::system_clock::now();
    const auto t = std::chrono::system_clock::to_time_t(wall);
    std::tm tm{};
    localtime_r(&t, &tm);  // DTCP timestamps are the server's local time
    i.local.year = uint16_t(tm.tm_year + 1900);
    i.local.month = uint8_t(tm.tm_mon + 1);
    i.local.day = uint8_t(tm.tm_mday);
    i.local.hour = uint8_t(tm.tm_hour);
    i.local.minute = uint8_t(tm.tm_min);
    i.local.second = uint8_t(tm.tm_sec);
    i.local.millisecond = uint16_t(
        std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count() % 1000);
    return i;
}

bool parseAddress(const std::string& text, Family& family, Address& out) {
    out = {};
    if (inet_pton(AF_INET, text.c_str(), out.data()) == 1) {
        family = Family::V4;
        return true;
    }
    if (inet_pton(AF_INET6, text.c_str(), out.data()) == 1) {
        family = Family::V6;
        return true;
    }
    return false;
}

std::string formatAddress(Family family, const Address& a) {
    char buf[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == Family::V4 ? AF_INET : AF_INET6, a.data(), buf, sizeof buf);
    return buf;
}

// Every address configured on this host (for own-address checks and exclusions).
std::vector<std::pair<Family, Address>> localAddresses() {
    std::vector<std::pair<Family, Address>> out;
    ifaddrs* list = nullptr;
    if (getifaddrs(&list) != 0) return out;
    for (ifaddrs* i = list; i; i = i->ifa_next) {
        if (!i->ifa_addr) continue;
        Address a{};
        if (i->ifa_addr->sa_family == AF_INET) {
            std::memcpy(a.data(), &reinterpret_cast<sockaddr_in*>(i->ifa_addr)->sin_addr, 4);
            out.emplace_back(Family::V4, a);
        } else if (i->ifa_addr->sa_family == AF_INET6) {
            std::memcpy(a.data(), &reinterpret_cast<sockaddr_in6*>(i->ifa_addr)->sin6_addr, 16);
            out.emplace_back(Family::V6, a);
        }
    }
    freeifaddrs(list);
    return out;
}

std::string outerKey(const delivery::DeliveryParams& p) {
    std::string k(reinterpret_cast<const char*>(&p.outer.family), 1);
    k.append(reinterpret_cast<const char*>(p.outer.source.data()), 16);
    k.append(reinterpret_cast<const char*>(p.outer.destination.data()), 16);
    k += std::to_string(p.outer.source_port) + ":" + std::to_string(p.outer.destination_port) + ":" +
         std::to_string(p.outer.ttl);
    return k;
}

std::string encapsulationKey(const delivery::DeliveryParams& p) {
    return outerKey(p) + "/" + std::to_string(int(p.encapsulation.format)) + "/" +
           std::to_string(p.encapsulation.intercept_id) + "/" + std::to_string(p.encapsulation.session_id);
}

kernel::XdpMode modeOf(config::XdpMode m) {
    switch (m) {
        case config::XdpMode::Native: return kernel::XdpMode::Native;
        case config::XdpMode::Generic: return kernel::XdpMode::Generic;
        case config::XdpMode::Auto: break;
    }
    return kernel::XdpMode::Auto;
}

}  // namespace

struct Daemon::Impl : dtcp::DtcpEndpoint, dtcp::InterfaceResolver, dtcp::DestinationPolicy {
    config::Config cfg;
    std::string config_path;

    // Users, as the service and the SSH server see them.
    std::map<std::string, dtcp::UserContext, std::less<>> users;
    std::vector<std::pair<Family, Address>> own_addresses;

    // Data plane.
    std::unique_ptr<kernel::XtapObject> object;
    std::unique_ptr<kernel::BpfMaps> maps;
    std::unique_ptr<dataplane::DataPlane> data_plane;
    std::unique_ptr<kernel::CopyPath> copy_path;
    std::map<std::string, uint32_t> transit_by_name;  // Linux name or alias -> ifindex

    // Control state: one lock for the store, the service and the sender.
    std::mutex lock;
    std::unique_ptr<criteria::CriteriaStore> store;
    std::unique_ptr<dtcp::DtcpService> service;
    std::map<uint64_t, dtcp::SeqWindow> seq_by_session;         // seq_reset_per_connection
    std::map<std::string, dtcp::SeqWindow, std::less<>> seq_by_user;  // otherwise
    std::unique_ptr<audit::AuditLog> audit;

    // Delivery.
    std::unique_ptr<ipsec::TunnelManager> tunnels;
    std::unique_ptr<ipsec::UnreachableRoutes> unreachable;
    std::unique_ptr<delivery::UdpSender> sender;
    std::unordered_map<std::string, uint32_t> cdest_ids;  // outer header -> sender id
    std::unordered_map<std::string, delivery::Encapsulator> encapsulators;
    dataplane::FragmentReorderer reorderer;
    std::vector<delivery::Match> matches;
    std::vector<uint32_t> match_slots;
    delivery::FanOutPlan plan;
    std::vector<std::string> user_index;
    struct Counters {
        uint64_t received = 0, delivered = 0, late = 0, no_criterion = 0, not_ip = 0;
        uint64_t sent = 0, dropped_tunnel = 0, dropped_other = 0;
    } counters;

    std::unique_ptr<dtcp::SshServer> ssh;

    // --- setup -----------------------------------------------------------------

    void loadUsers() {
        users.clear();
        for (const auto& [name, u] : cfg.users) {
            dtcp::UserContext c;
            c.name = name;
            c.hmac_key = u.hmac_key;
            c.max_criteria = u.max_criteria;
            c.max_content_destinations = u.max_content_destinations;
            c.minimum_priority = u.minimum_priority;
            c.allow_wide = u.allow_wide;
            c.delivery_format =
                u.delivery_format == config::DeliveryFormat::Jmirror ? delivery::Format::Jmirror : delivery::Format::Flowtap;
            for (const auto& [cdest, d] : u.destinations) {
                delivery::OuterHeader o;
                Family fd, fs;
                if (!parseAddress(d.address, fd, o.destination)) continue;
                o.family = fd;
                o.destination_port = d.port;
                if (!d.source_address.empty() && parseAddress(d.source_address, fs, o.source) && fs != fd) continue;
                o.source_port = d.source_port;
                o.ttl = d.ttl;
                c.destinations[cdest] = o;
            }
            users[name] = c;
        }
    }

    std::vector<dtcp::SshUser> sshUsers() const {
        std::vector<dtcp::SshUser> out;
        for (const auto& [name, u] : cfg.users)
            out.push_back({name, u.authorized_keys, u.password_hash, u.canTask()});
        return out;
    }

    void startDataPlane() {
        kernel::LoadOptions opts;
        opts.capacity = {cfg.dataplane.rules, cfg.dataplane.criteria, cfg.dataplane.anchors};
        opts.pin_dir = cfg.dataplane.pin_dir;
        object = kernel::XtapObject::load(opts);
        maps = std::make_unique<kernel::BpfMaps>(*object);
        // Criteria are restored from the state file, not from the maps.
        maps->clearCriteria();
        data_plane = std::make_unique<dataplane::DataPlane>(*maps, opts.capacity);
        maps->setEnabled(true);
        installExclusions();
        copy_path = std::make_unique<kernel::CopyPath>(*object, *maps);
        for (const auto& itf : cfg.interfaces) {
            const auto& t = copy_path->attach(itf.name, modeOf(itf.xdp_mode));
            transit_by_name[itf.name] = t.ifindex;
            for (const auto& a : itf.alias) transit_by_name[a] = t.ifindex;
            spdlog::info("transit interface {} attached ({} XDP), capture {}", t.name, kernel::toString(t.mode),
                         t.capture);
        }
    }

    // The appliance's own endpoints are never copied (no intercept loop).
    void installExclusions() {
        maps->clearExcludes();
        own_addresses = localAddresses();
        auto exclude = [&](Family f, const Address& a, uint8_t proto, uint16_t port) {
            xtap_exclude_key k{};
            k.family = static_cast<uint8_t>(f);
            k.proto = proto;
            k.port = port;
            std::memcpy(k.addr, a.data(), 16);
            maps->addExclude(k);
        };
        for (const auto& [f, a] : own_addresses) {
            for (const auto& l : cfg.dtcp.listen) exclude(f, a, 6, l.port);
            if (!cfg.ipsec.tunnels.empty()) {
                exclude(f, a, 17, 500);
                exclude(f, a, 17, 4500);
                exclude(f, a, 50, 0);
            }
        }
    }

    void startDelivery() {
        delivery::UdpSenderOptions so;
        for (const auto& p : cfg.delivery.cleartext_destinations) {
            auto parsed = ipsec::parseIpPrefix(p);
            if (parsed) so.cleartext_allowed.push_back({parsed->family, parsed->prefix});
        }
        if (!cfg.ipsec.tunnels.empty()) {
            ipsec::TunnelManagerConfig tc;
            tc.vici_socket = cfg.ipsec.vici_socket;
            for (const auto& t : cfg.ipsec.tunnels) {
                ipsec::TunnelSpec s;
                s.name = t.name;
                s.local_addrs = t.local_addrs;
                s.remote_addrs = t.remote_addrs;
                s.local_id = t.local_id;
                s.remote_id = t.remote_id;
                s.psk = t.psk;
                if (!t.psk_file.empty()) {
                    std::ifstream in(t.psk_file);
                    if (!in) throw std::runtime_error("cannot read psk_file of tunnel " + t.name);
                    std::getline(in, s.psk);
                }
                if (!t.certificate.empty())
                    s.certificates = ipsec::CertificateFiles{t.certificate, t.private_key,
                                                             t.ca_certificate.empty()
                                                                 ? std::vector<std::string>{}
                                                                 : std::vector<std::string>{t.ca_certificate}};
                s.ike_proposals = t.ike_proposals;
                s.esp_proposals = t.esp_proposals;
                s.local_ts = t.local_ts;
                s.remote_ts = t.remote_ts;
                s.cdest_prefixes = t.remote_ts;
                tc.tunnels.push_back(s);
            }
            tunnels = std::make_unique<ipsec::TunnelManager>(tc);
            // Fail closed even if xtapd or charon dies: no route but the tunnel's.
            unreachable = std::make_unique<ipsec::UnreachableRoutes>(tunnels->protectedPrefixes());
            unreachable->keep();
            tunnels->setObserver([this](const ipsec::TunnelStatus& s) {
                spdlog::info("tunnel {}: {}", s.name, ipsec::name(s.state));
                auditEvent({{"event", "tunnel"}, {"tunnel", s.name}, {"state", std::string(ipsec::name(s.state))}});
            });
        }
        auto gate = tunnels ? tunnels->sharedGate() : nullptr;
        sender = std::make_unique<delivery::UdpSender>(
            [gate](Family f, const Address& a) { return gate && gate->isOpenFor(f, a); }, so);
    }

    void startControl() {
        std::filesystem::create_directories(cfg.state_dir);
        std::filesystem::create_directories(std::filesystem::path(cfg.audit_log).parent_path());
        const std::string key_path = cfg.state_dir + "/audit_ed25519.pem";
        std::unique_ptr<audit::Ed25519Key> key;
        if (std::filesystem::exists(key_path)) {
            std::ifstream in(key_path);
            std::stringstream s;
            s << in.rdbuf();
            key = audit::Ed25519Key::fromPem(s.str());
        } else {
            key = audit::Ed25519Key::generate();
            std::ofstream out(key_path);
            out << key->privatePem();
            std::filesystem::permissions(key_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
        }
        audit = std::make_unique<audit::AuditLog>(cfg.audit_log, std::move(key));
        store = std::make_unique<criteria::CriteriaStore>(*data_plane,
                                                          criteria::StoreLimits{cfg.dataplane.criteria});
        service = std::make_unique<dtcp::DtcpService>(*store, *this, *this);
    }

    void startSsh() {
        dtcp::SshServerConfig sc;
        sc.listen.clear();
        for (const auto& l : cfg.dtcp.listen)
            sc.listen.push_back(l.address.find(':') != std::string::npos
                                    ? "[" + l.address + "]:" + std::to_string(l.port)
                                    : l.address + ":" + std::to_string(l.port));
        sc.host_key_file = cfg.dtcp.host_key;
        sc.users = sshUsers();
        sc.connection_limit = cfg.dtcp.connection_limit;
        sc.rate_limit = cfg.dtcp.rate_limit;
        sc.auth_timeout = std::chrono::seconds(cfg.dtcp.auth_timeout_s);
        sc.max_message_bytes = cfg.dtcp.max_message_bytes;
        sc.log = [](dtcp::SshLogLevel level, std::string_view line) {
            switch (level) {
                case dtcp::SshLogLevel::Debug: spdlog::debug("ssh: {}", line); break;
                case dtcp::SshLogLevel::Info: spdlog::info("ssh: {}", line); break;
                case dtcp::SshLogLevel::Warning: spdlog::warn("ssh: {}", line); break;
                case dtcp::SshLogLevel::Error: spdlog::error("ssh: {}", line); break;
            }
        };
        ssh = std::make_unique<dtcp::SshServer>(sc, *this);
        ssh->start();
        for (const auto& a : ssh->boundAddresses()) spdlog::info("DTCP over SSH listening on {}", a);
    }

    // --- audit -----------------------------------------------------------------

    void auditEvent(json fields) {
        try {
            audit->append(std::move(fields));
        } catch (const std::exception& e) {
            // An unaudited action must not pass unnoticed: loud, and counted.
            spdlog::critical("audit log write failed: {}", e.what());
        }
    }

    static const char* kindName(dtcp::AuditEvent::Kind k) {
        switch (k) {
            case dtcp::AuditEvent::Kind::Added: return "added";
            case dtcp::AuditEvent::Kind::Deleted: return "deleted";
            case dtcp::AuditEvent::Kind::Refreshed: return "refreshed";
            case dtcp::AuditEvent::Kind::TimedOut: return "timed-out";
            case dtcp::AuditEvent::Kind::CleartextDestination: return "cleartext-destination";
        }
        return "?";
    }

    // --- DtcpEndpoint (SSH session threads) -------------------------------------

    void onOpen(const dtcp::SessionInfo& info) override {
        auditEvent({{"event", "session-open"}, {"user", info.user}, {"auth", info.auth_method},
                    {"key", info.key_fingerprint}, {"peer", info.peer_address}, {"port", info.peer_port},
                    {"session", info.session_id}});
    }

    void onClose(const dtcp::SessionInfo& info, dtcp::ChannelCloseReason reason) override {
        {
            std::lock_guard g(lock);
            seq_by_session.erase(info.session_id);
        }
        auditEvent({{"event", "session-close"}, {"user", info.user}, {"session", info.session_id},
                    {"reason", std::string(dtcp::describe(reason))}});
    }

    std::vector<std::string> onMessage(const dtcp::SessionInfo& info, std::string_view bytes) override {
        std::lock_guard g(lock);
        const auto u = users.find(info.user);
        if (u == users.end()) return {};  // removed by a reload while connected
        const bool per_connection = cfg.users.at(info.user).seq_reset_per_connection;
        dtcp::SeqWindow& window = per_connection ? seq_by_session[info.session_id] : seq_by_user[info.user];
        auto result = service->handleMessage(bytes, u->second, window, info.peer_address, now());
        json rec = {{"event", "dtcp"},
                    {"user", info.user},
                    {"key", info.key_fingerprint},
                    {"peer", info.peer_address},
                    {"port", info.peer_port},
                    {"request_sha256", audit::sha256Hex(std::string(bytes))},
                    {"status", static_cast<int>(result.status)}};
        if (result.discard) {
            rec["discarded"] = static_cast<int>(dtcp::auditCode(result.discard->reason));
            rec["status"] = nullptr;
        }
        json ids = json::array();
        for (const auto& e : result.audit) {
            ids.push_back({{"criteria_id", e.criterion.id}, {"action", kindName(e.kind)}});
            if (e.kind == dtcp::AuditEvent::Kind::CleartextDestination) ids.back()["cdest_id"] = e.cdest_id;
        }
        rec["criteria"] = ids;
        auditEvent(rec);
        return result.messages();
    }

    // --- InterfaceResolver / DestinationPolicy ----------------------------------

    std::optional<uint32_t> transitInterface(std::string_view name) const override {
        auto it = transit_by_name.find(std::string(name));
        if (it != transit_by_name.end()) return it->second;
        // Junos writes unit 0 implicitly: ge-0/0/1 and ge-0/0/1.0 are one interface.
        const std::string n(name);
        if (n.size() > 2 && n.compare(n.size() - 2, 2, ".0") == 0) {
            it = transit_by_name.find(n.substr(0, n.size() - 2));
            if (it != transit_by_name.end()) return it->second;
        } else if ((it = transit_by_name.find(n + ".0")) != transit_by_name.end()) {
            return it->second;
        }
        return std::nullopt;
    }

    std::optional<std::vector<uint32_t>> vrfMembers(std::string_view) const override {
        return std::nullopt;  // VRF devices are not resolved yet: 901
    }

    bool isOwnAddress(Family family, const Address& address) const override {
        for (const auto& [f, a] : own_addresses)
            if (f == family && std::memcmp(a.data(), address.data(), family == Family::V4 ? 4 : 16) == 0)
                return true;
        return false;
    }

    dtcp::DestinationRoute route(std::string_view, const delivery::OuterHeader& outer) const override {
        const std::string dst = formatAddress(outer.family, outer.destination);
        const std::string src = formatAddress(outer.family, outer.source);
        for (const auto& t : cfg.ipsec.tunnels)
            if (config::prefixListContains(t.remote_ts, dst) && config::prefixListContains(t.local_ts, src))
                return dtcp::DestinationRoute::Tunnel;
        if (config::prefixListContains(cfg.delivery.cleartext_destinations, dst))
            return dtcp::DestinationRoute::Cleartext;
        return dtcp::DestinationRoute::Refused;
    }

    // --- the copy pump ------------------------------------------------------------

    uint32_t userIndex(const std::string& user) {
        for (size_t i = 0; i < user_index.size(); ++i)
            if (user_index[i] == user) return uint32_t(i);
        user_index.push_back(user);
        return uint32_t(user_index.size() - 1);
    }

    uint32_t cdestIdFor(const delivery::DeliveryParams& p) {
        const std::string key = outerKey(p);
        auto it = cdest_ids.find(key);
        if (it != cdest_ids.end()) return it->second;
        const uint32_t id = uint32_t(cdest_ids.size() + 1);
        sender->addDestination(id, p.outer);
        cdest_ids.emplace(key, id);
        return id;
    }

    const delivery::Encapsulator* encapsulatorFor(const delivery::DeliveryParams& p) {
        const std::string key = encapsulationKey(p);
        auto it = encapsulators.find(key);
        if (it == encapsulators.end()) {
            auto e = delivery::Encapsulator::create(p);
            if (!e) return nullptr;
            it = encapsulators.emplace(key, std::move(e.value())).first;
        }
        return &it->second;
    }

    // One copy, after the reorderer: to every distinct destination of its criteria.
    void deliver(std::span<const uint8_t> frame, std::span<const uint32_t> slots, bool late) {
        ++counters.delivered;
        counters.late += late;
        const auto l3 = delivery::stripL2(frame);
        if (!l3) {
            ++counters.not_ip;
            return;
        }
        matches.clear();
        match_slots.clear();
        for (uint32_t slot : slots) {
            const criteria::Criterion* c = store->findBySlot(slot);
            if (!c) continue;
            for (const auto& d : c->publication.destinations) {
                delivery::Match m;
                m.criterion = {userIndex(c->key.user), c->key.id};
                m.cdest_id = cdestIdFor(d.params);
                m.delivery = d.params;
                matches.push_back(m);
                match_slots.push_back(slot);
            }
        }
        if (matches.empty()) {
            ++counters.no_criterion;
            return;
        }
        delivery::planFanOut(matches, plan);
        for (const auto& send : plan.sends()) {
            const auto& m = matches[send.first_match];
            const auto* enc = encapsulatorFor(m.delivery);
            const auto outcome = enc ? sender->send(m.cdest_id, *enc, l3->bytes)
                                     : delivery::SendOutcome::EncapsulationFailed;
            if (outcome == delivery::SendOutcome::Queued) {
                ++counters.sent;
                continue;
            }
            outcome == delivery::SendOutcome::DroppedTunnelDown ? ++counters.dropped_tunnel : ++counters.dropped_other;
            for (uint32_t idx : plan.served(send)) store->addDropped(match_slots[idx], 1, l3->bytes.size());
        }
    }

    void pumpCopies(const std::atomic<bool>& stop) {
        auto receivers = copy_path->receivers();
        std::vector<pollfd> fds;
        for (auto* r : receivers) fds.push_back({r->fd(), POLLIN, 0});
        auto onFrame = [&](const kernel::CopiedFrame& f) {
            ++counters.received;
            if (!f.meta) return;
            const uint32_t n = std::min<uint32_t>(f.meta->count, XTAP_MAX_MATCHES);
            reorderer.onCopy(f.frame, std::span<const uint32_t>(f.meta->slots, n), f.meta->flags, bootNs(),
                             [this](std::span<const uint8_t> fr, std::span<const uint32_t> s, bool late) {
                                 deliver(fr, s, late);
                             });
        };
        while (!stop) {
            ::poll(fds.data(), fds.size(), 100);
            std::lock_guard g(lock);
            for (auto* r : receivers)
                while (r->receive(onFrame) > 0) {
                }
            sender->flush();
            reorderer.expire(bootNs());
        }
    }

    // --- the tick -------------------------------------------------------------------

    void tick() {
        std::vector<dtcp::UserNotification> notes;
        {
            std::lock_guard g(lock);
            auto r = service->tick(now(), [this](std::string_view u) -> const dtcp::UserContext* {
                auto it = users.find(u);
                return it == users.end() ? nullptr : &it->second;
            });
            notes = std::move(r.notifications);
            for (const auto& e : r.audit)
                auditEvent({{"event", "criterion"}, {"user", e.criterion.user}, {"criteria_id", e.criterion.id},
                            {"action", kindName(e.kind)}});
        }
        for (const auto& n : notes) ssh->notifyUser(n.user, n.message);
    }

    void reloadUsers() {
        std::ifstream in(config_path);
        std::stringstream s;
        s << in.rdbuf();
        auto r = config::parseConfig(s.str(), config_path);
        if (auto* e = std::get_if<config::ConfigError>(&r)) {
            spdlog::error("reload rejected, the running configuration stays: {}", e->message());
            auditEvent({{"event", "reload"}, {"result", "rejected"}, {"reason", e->message()}});
            return;
        }
        auto& next = std::get<config::Config>(r);
        {
            std::lock_guard g(lock);
            cfg.users = next.users;
            cfg.dtcp.connection_limit = next.dtcp.connection_limit;
            cfg.dtcp.rate_limit = next.dtcp.rate_limit;
            loadUsers();
        }
        ssh->setUsers(sshUsers());
        spdlog::info("configuration reloaded: {} users", cfg.users.size());
        auditEvent({{"event", "reload"}, {"result", "applied"}, {"users", cfg.users.size()}});
    }

    json status() {
        std::lock_guard g(lock);
        json j;
        const auto s = maps->readStats();
        j["matched"] = s[XTAP_STAT_MATCHED];
        j["cloned"] = s[XTAP_STAT_CLONED];
        j["received"] = counters.received;
        j["delivered"] = counters.delivered;
        j["sent"] = counters.sent;
        j["dropped_tunnel_down"] = counters.dropped_tunnel;
        j["dropped_other"] = counters.dropped_other;
        j["criteria"] = store->size();
        return j;
    }
};

Daemon::Daemon(config::Config config, std::string config_path) : impl_(std::make_unique<Impl>()) {
    impl_->cfg = std::move(config);
    impl_->config_path = std::move(config_path);
    impl_->loadUsers();
    impl_->startDataPlane();
    impl_->startDelivery();
    impl_->startControl();
    impl_->auditEvent({{"event", "start"}, {"interfaces", impl_->cfg.interfaces.size()}});
    impl_->startSsh();
}

Daemon::~Daemon() {
    if (!impl_) return;
    if (impl_->ssh) impl_->ssh->stop();
    if (impl_->copy_path) impl_->copy_path->detachAll();
    if (impl_->audit) impl_->auditEvent({{"event", "stop"}});
}

void Daemon::run(const std::atomic<bool>& stop, std::atomic<bool>& reload) {
    Impl& d = *impl_;
    std::thread pump([&] { d.pumpCopies(stop); });
    std::thread tunnel_loop;
    if (d.tunnels)
        tunnel_loop = std::thread([&] {
            while (!stop) d.tunnels->runOnce(std::chrono::milliseconds(200));
        });
    sd_notify(0, "READY=1\nSTATUS=intercepting");
    uint64_t watchdog_us = 0;
    const bool watchdog = sd_watchdog_enabled(0, &watchdog_us) > 0;
    auto next_tick = std::chrono::steady_clock::now();
    while (!stop) {
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
        if (reload.exchange(false)) d.reloadUsers();
        if (std::chrono::steady_clock::now() >= next_tick) {
            d.tick();
            next_tick += std::chrono::seconds(1);
            if (watchdog) sd_notify(0, "WATCHDOG=1");
        }
    }
    sd_notify(0, "STOPPING=1");
    pump.join();
    if (tunnel_loop.joinable()) tunnel_loop.join();
    spdlog::info("stopping: {}", d.status().dump());
}

}  // namespace xtap::app
