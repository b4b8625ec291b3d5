#include "Daemon.h"
#include "Continuity.h"
#include "StatusReport.h"
#include "AuditRecords.h"

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <netinet/in.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <strings.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <optional>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>
#include <string_view>
#include <thread>
#include <unordered_map>

#include "audit/AuditLog.h"
#include "control/ControlServer.h"
#include "control/Metrics.h"
#include "control/MetricsServer.h"
#include "criteria/CriteriaStore.h"
#include "criteria/StateJournal.h"
#include "dataplane/DataPlane.h"
#include "dataplane/FragmentReorderer.h"
#include "dataplane/ParkedCopies.h"
#include "dataplane/kernel/BpfMaps.h"
#include "dataplane/kernel/CopyPath.h"
#include "dataplane/kernel/Link.h"
#include "dataplane/kernel/Vrf.h"
#include "dataplane/kernel/XtapObject.h"
#include "delivery/Encapsulator.h"
#include "delivery/FanOut.h"
#include "delivery/Overload.h"
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
        std::chrono::duration_cast<std::chrono::milliseconds>(wall.time_since_epoch()).count() %
        1000);
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

// Per-copy lookups of a Cdest's sender id and encapsulator: hashed on the
// header fields themselves, nothing allocated per copy.
struct OuterHeaderHash {
    size_t operator()(const delivery::OuterHeader& o) const noexcept {
        std::array<char, 38> b{};
        b[0] = char(o.family);
        std::memcpy(&b[1], o.source.data(), 16);
        std::memcpy(&b[17], o.destination.data(), 16);
        std::memcpy(&b[33], &o.source_port, 2);
        std::memcpy(&b[35], &o.destination_port, 2);
        b[37] = char(o.ttl);
        return std::hash<std::string_view>{}(std::string_view(b.data(), b.size()));
    }
};
struct DeliveryParamsHash {
    size_t operator()(const delivery::DeliveryParams& p) const noexcept {
        const uint64_t ids = (uint64_t(p.encapsulation.intercept_id) << 32) ^
                             p.encapsulation.session_id ^ (uint64_t(p.encapsulation.format) << 62);
        return OuterHeaderHash{}(p.outer) ^ std::hash<uint64_t>{}(ids);
    }
};

kernel::XdpMode modeOf(config::XdpMode m) {
    switch (m) {
        case config::XdpMode::Native:
            return kernel::XdpMode::Native;
        case config::XdpMode::Generic:
            return kernel::XdpMode::Generic;
        case config::XdpMode::Auto:
            break;
    }
    return kernel::XdpMode::Auto;
}

// From this many criteria on, a LIST reads the counters of every slot in one
// batch rather than one system call per criterion it lists.
constexpr size_t kBatchedListCounters = 2048;

bool isList(std::string_view message) {
    return message.size() > 5 && strncasecmp(message.data(), "LIST ", 5) == 0;
}

}  // namespace

// Counters of every slot read at once for a pass over every criterion, under
// the controller's lock (BpfMaps::takeCounterSnapshot).
class CounterSnapshot {
  public:
    explicit CounterSnapshot(kernel::BpfMaps& maps) : maps_(maps) { maps_.takeCounterSnapshot(); }
    // A table read before the lock was taken; read afresh when it is stale.
    CounterSnapshot(kernel::BpfMaps& maps, std::optional<kernel::BpfMaps::CounterTable> table)
        : maps_(maps) {
        if (!table || !maps_.installCounterSnapshot(std::move(*table))) maps_.takeCounterSnapshot();
    }
    ~CounterSnapshot() { maps_.dropCounterSnapshot(); }
    CounterSnapshot(const CounterSnapshot&) = delete;
    CounterSnapshot& operator=(const CounterSnapshot&) = delete;

  private:
    kernel::BpfMaps& maps_;
};

struct Daemon::Impl : dtcp::DtcpEndpoint, dtcp::InterfaceResolver, dtcp::DestinationPolicy {
    config::Config cfg;
    std::string config_path;

    // Users, as the service and the SSH server see them.
    std::map<std::string, dtcp::UserContext, std::less<>> users;
    std::vector<std::pair<Family, Address>> own_addresses;

    // Data plane.
    std::unique_ptr<kernel::XtapObject> object;
    std::unique_ptr<kernel::BpfMaps> maps;
    std::array<uint64_t, XTAP_STAT_MAX> bpf_at_start{};  // see sinceStart()
    std::unique_ptr<dataplane::DataPlane> data_plane;
    std::unique_ptr<kernel::CopyPath> copy_path;
    std::map<std::string, uint32_t> transit_by_name;  // Linux name or alias -> ifindex

    // Control state: one lock for the store, the service and the shared part
    // of delivery (Cdest numbers, encapsulators, rate limits, labels).
    std::mutex lock;
    std::unique_ptr<criteria::CriteriaStore> store;
    std::unique_ptr<dtcp::DtcpService> service;
    std::map<uint64_t, dtcp::SeqWindow> seq_by_session;               // seq_reset_per_connection
    std::map<std::string, dtcp::SeqWindow, std::less<>> seq_by_user;  // otherwise
    std::unique_ptr<audit::AuditLog> audit;

    // Delivery.
    std::unique_ptr<ipsec::TunnelManager> tunnels;
    std::unique_ptr<ipsec::UnreachableRoutes> unreachable;
    // outer header -> Cdest number, the same in every lane's sender
    std::unordered_map<delivery::OuterHeader, uint32_t, OuterHeaderHash> cdest_ids;
    std::unordered_map<delivery::DeliveryParams, delivery::Encapsulator, DeliveryParamsHash>
        encapsulators;
    delivery::OverloadMonitor overload;  // per user Cdest rate limits, 580 and 598
    std::vector<std::string> user_index;
    CdestLabels cdest_labels;  // sender Cdest number -> (user, Cdest-ID)

    // A criterion a queued copy serves: its slot, checked again (user, ID)
    // before a drop at flush is charged to it.
    struct ServedCriterion {
        uint32_t slot = 0, user = 0, id = 0;
    };
    // The criteria each queued copy serves, indexed by its sender tag.
    struct QueuedCopy {
        size_t first = 0, count = 0, bytes = 0;
    };
    // One copy thread: its capture queue's sockets, its sender and scratch.
    // Lock order: a lane's mutex before `lock` (statusSnapshot takes every
    // lane's, then `lock`). A lane receives and encapsulates under both and
    // sends (sendmmsg, the bulk of the work) under its own only, so lanes and
    // the control plane overlap.
    struct CopyLane {
        uint32_t queue = 0;
        std::mutex mutex;
        std::unique_ptr<delivery::UdpSender> sender;
        dataplane::FragmentReorderer reorderer;
        std::vector<delivery::Match> matches;
        std::vector<uint32_t> match_slots;
        // Each match's criterion and its destination's Cdest-ID, for the rate limit.
        std::vector<std::pair<const criteria::Criterion*, const std::string*>> match_owners;
        std::vector<QueuedCopy> queued_served;
        std::vector<ServedCriterion> queued_criteria;
        std::vector<uint64_t> late_drops;  // tags dropped at flush, charged under `lock`
        delivery::FanOutPlan plan;
        std::chrono::steady_clock::time_point now{};  // taken once per received batch
        uint64_t boot_ns = 0;
        PumpCounters counters;           // the sender keeps sent and dropped, per Cdest
        dataplane::ParkedCopies parked;  // read while `lock` was taken by another thread
    };
    std::vector<std::unique_ptr<CopyLane>> lanes;
    TunnelBoard tunnel_board;
    const std::chrono::steady_clock::time_point started = std::chrono::steady_clock::now();

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
            c.delivery_format = u.delivery_format == config::DeliveryFormat::Jmirror
                                    ? delivery::Format::Jmirror
                                    : delivery::Format::Flowtap;
            for (const auto& [cdest, d] : u.destinations) {
                delivery::OuterHeader o;
                Family fd, fs;
                if (!parseAddress(d.address, fd, o.destination)) continue;
                o.family = fd;
                o.destination_port = d.port;
                if (!d.source_address.empty() && parseAddress(d.source_address, fs, o.source) &&
                    fs != fd)
                    continue;
                o.source_port = d.source_port;
                o.ttl = d.ttl;
                c.destinations[cdest] = o;
                overload.configure({name, cdest}, d.max_bandwidth_bps,
                                   std::chrono::steady_clock::now());
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
        opts.hook =
            cfg.dataplane.transit_hook == config::TransitHook::Xdp  ? kernel::TransitHook::Xdp
            : cfg.dataplane.transit_hook == config::TransitHook::Tc ? kernel::TransitHook::Tc
                                                                    : kernel::TransitHook::Auto;
        object = kernel::XtapObject::load(opts);
        spdlog::info("transit classifier hook: {}", kernel::toString(object->hook()));
        maps = std::make_unique<kernel::BpfMaps>(*object);
        // Criteria come back from the state file. On the maps an earlier xtapd
        // pinned (same boot), its criteria are taken over in place, so what
        // the classifier counted meanwhile stays counted; otherwise cleared.
        loadState();
        if (object->reusedPins() && saved_state && saved_state->same_boot) {
            data_plane =
                std::make_unique<dataplane::DataPlane>(*maps, opts.capacity, maps->readContents());
        } else {
            maps->clearCriteria();
            data_plane = std::make_unique<dataplane::DataPlane>(*maps, opts.capacity);
        }
        bpf_at_start = maps->readStats();
        // The copy gate: a deadline the copy threads keep moving on (pumpCopies),
        // from now, and the budget. Both replace what an earlier xtapd left.
        maps->setCopyDeadline(consumerTimeoutNs() ? bootNs() + consumerTimeoutNs() : 0);
        maps->setCopyBudget(cfg.dataplane.copy_budget_pps, cfg.dataplane.copy_budget_bps,
                            uint64_t{cfg.dataplane.copy_budget_burst_us} * 1000);
        maps->setEnabled(true);
        installExclusions();
        const auto& dp = cfg.dataplane;
        copy_path = std::make_unique<kernel::CopyPath>(
            *object, *maps,
            kernel::XskOptions{2 * dp.xsk_ring, 4096, dp.xsk_ring, dp.xsk_ring, dp.receive_batch},
            dp.copy_threads);
        for (const auto& itf : cfg.interfaces) {
            const auto& t = copy_path->attach(itf.name, modeOf(itf.xdp_mode));
            transit_by_name[itf.name] = t.ifindex;
            for (const auto& a : itf.alias) transit_by_name[a] = t.ifindex;
            spdlog::info("transit interface {} attached (classifier: {}), capture {}", t.name,
                         t.modeName(), t.capture);
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
                    s.certificates = ipsec::CertificateFiles{
                        t.certificate, t.private_key,
                        t.ca_certificate.empty() ? std::vector<std::string>{}
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
            tunnel_board.reset(tunnels->status());
            tunnels->setObserver([this](const ipsec::TunnelStatus& s) {
                tunnel_board.update(s);
                spdlog::info("tunnel {}: {}", s.name, ipsec::name(s.state));
                auditEvent({{"event", "tunnel"},
                            {"tunnel", s.name},
                            {"state", std::string(ipsec::name(s.state))}});
            });
        }
        auto gate = tunnels ? tunnels->sharedGate() : nullptr;
        for (uint32_t q = 0; q < copy_path->queues(); ++q) {
            auto lane = std::make_unique<CopyLane>();
            lane->queue = q;
            lane->sender = std::make_unique<delivery::UdpSender>(
                [gate](Family f, const Address& a) { return gate && gate->isOpenFor(f, a); }, so);
            // A queued copy dropped at flush is charged to the criteria it
            // served (chargeLateDrops), so LIST's dropped counters equal the
            // sender's.
            lane->sender->onLateDrop([l = lane.get()](uint64_t tag, delivery::DropReason, size_t) {
                l->late_drops.push_back(tag);
            });
            lanes.push_back(std::move(lane));
        }
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
            std::filesystem::permissions(
                key_path, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
        }
        audit = std::make_unique<audit::AuditLog>(cfg.audit_log, std::move(key));
        store = std::make_unique<criteria::CriteriaStore>(
            *data_plane, criteria::StoreLimits{cfg.dataplane.criteria});
        service = std::make_unique<dtcp::DtcpService>(*store, *this, *this);
        restoreState();
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
                case dtcp::SshLogLevel::Debug:
                    spdlog::debug("ssh: {}", line);
                    break;
                case dtcp::SshLogLevel::Info:
                    spdlog::info("ssh: {}", line);
                    break;
                case dtcp::SshLogLevel::Warning:
                    spdlog::warn("ssh: {}", line);
                    break;
                case dtcp::SshLogLevel::Error:
                    spdlog::error("ssh: {}", line);
                    break;
            }
        };
        ssh = std::make_unique<dtcp::SshServer>(sc, *this);
        ssh->start();
        for (const auto& a : ssh->boundAddresses())
            spdlog::info("DTCP over SSH listening on {}", a);
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

    // A record made durable by the next durability barrier (onMessagesHandled
    // or the tick), not by itself: the group commit of a burst of requests.
    void auditEventDeferred(json fields) {
        try {
            audit->appendDeferred(std::move(fields));
        } catch (const std::exception& e) {
            spdlog::critical("audit log write failed: {}", e.what());
            durability_failed = true;
        }
    }

    static const char* kindName(dtcp::AuditEvent::Kind k) {
        switch (k) {
            case dtcp::AuditEvent::Kind::Added:
                return "added";
            case dtcp::AuditEvent::Kind::Deleted:
                return "deleted";
            case dtcp::AuditEvent::Kind::Refreshed:
                return "refreshed";
            case dtcp::AuditEvent::Kind::TimedOut:
                return "timed-out";
            case dtcp::AuditEvent::Kind::CleartextDestination:
                return "cleartext-destination";
        }
        return "?";
    }

    // --- DtcpEndpoint (SSH session threads) -------------------------------------

    void onOpen(const dtcp::SessionInfo& info) override {
        auditEvent({{"event", "session-open"},
                    {"user", info.user},
                    {"auth", info.auth_method},
                    {"key", info.key_fingerprint},
                    {"peer", info.peer_address},
                    {"port", info.peer_port},
                    {"session", info.session_id}});
        sendOwedRestartNotice(info.user);
    }

    void onClose(const dtcp::SessionInfo& info, dtcp::ChannelCloseReason reason) override {
        {
            std::lock_guard g(lock);
            seq_by_session.erase(info.session_id);
        }
        auditEvent({{"event", "session-close"},
                    {"user", info.user},
                    {"session", info.session_id},
                    {"reason", std::string(dtcp::describe(reason))}});
    }

    std::vector<std::string> onMessage(const dtcp::SessionInfo& info,
                                       std::string_view bytes) override {
        std::lock_guard g(lock);
        const auto u = users.find(info.user);
        if (u == users.end()) return {};  // removed by a reload while connected
        const bool per_connection = cfg.users.at(info.user).seq_reset_per_connection;
        dtcp::SeqWindow& window =
            per_connection ? seq_by_session[info.session_id] : seq_by_user[info.user];
        const dtcp::SeqWindowState seq_before = window.state();
        std::optional<CounterSnapshot> counters;
        if (isList(bytes) && store->countOf(info.user) >= kBatchedListCounters)
            counters.emplace(*maps);
        auto result = service->handleMessage(bytes, u->second, window, info.peer_address, now());
        counters.reset();
        // Every change this reply acknowledges goes to the state journal, made
        // durable with the audit records in onMessagesHandled before the reply
        // leaves; the whole state file is rewritten only at compaction.
        journalChanges(result.audit);
        if (!per_connection && window.state() != seq_before)
            journalAppend(
                criteria::journalSeq(info.user, criteria::seqStateToJson(window.state())));
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
            if (e.kind == dtcp::AuditEvent::Kind::CleartextDestination)
                ids.back()["cdest_id"] = e.cdest_id;
            // The targets and destinations, for `xtapctl audit report`.
            if (e.kind == dtcp::AuditEvent::Kind::Added)
                if (const criteria::Criterion* c = store->find(e.criterion))
                    ids.back().update(addedCriterionAudit(*c));
        }
        rec["criteria"] = ids;
        auditEventDeferred(rec);
        return std::move(result).messages();
    }

    // The durability barrier: the audit records and journal lines of the
    // messages handled so far reach the disk before their replies are sent.
    void onMessagesHandled() override {
        audit->sync();
        if (journal) journal->sync();
        if (durability_failed.exchange(false))
            throw std::runtime_error("an audit record or journal line was not written");
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

    // A VRF-Name is a Linux VRF device; its transit members are the criterion's
    // input interfaces. Each VRF resolved is remembered with its members, so
    // tick() can republish its criteria when they change.
    mutable std::map<std::string, std::vector<uint32_t>, std::less<>> vrf_members_seen;

    std::optional<std::vector<uint32_t>> vrfMembers(std::string_view vrf_name) const override {
        std::optional<std::vector<uint32_t>> members;
        try {
            members = kernel::vrfMembers(std::string(vrf_name));
        } catch (const std::exception& e) {
            spdlog::error("cannot read VRF members: {}", e.what());
            return std::nullopt;
        }
        if (!members) return std::nullopt;
        std::vector<uint32_t> transit;
        for (uint32_t ifindex : *members)
            for (const auto& [name, t] : transit_by_name)
                if (t == ifindex) {
                    transit.push_back(ifindex);
                    break;
                }
        vrf_members_seen[std::string(vrf_name)] = transit;
        return transit;
    }

    // Interfaces joined or left a VRF (ip link set DEV master VRF): its
    // criteria follow. Called under the lock.
    void refreshVrfs(const dtcp::UserLookup& users_by_name) {
        std::vector<std::string> changed;
        const auto seen = vrf_members_seen;  // vrfMembers() updates the map
        for (const auto& [name, before] : seen) {
            const auto current = vrfMembers(name);
            if (current && !current->empty() && *current != before) changed.push_back(name);
        }
        for (const auto& name : changed) {
            const auto update = service->updateVrf(name, users_by_name);
            state_dirty = true;  // new slots: the journal does not carry them
            spdlog::info("VRF members changed: {} criteria republished, {} kept their filters",
                         update.republished, update.failed.size());
        }
    }

    bool isOwnAddress(Family family, const Address& address) const override {
        for (const auto& [f, a] : own_addresses)
            if (f == family &&
                std::memcmp(a.data(), address.data(), family == Family::V4 ? 4 : 16) == 0)
                return true;
        return false;
    }

    dtcp::DestinationRoute route(std::string_view,
                                 const delivery::OuterHeader& outer) const override {
        const std::string dst = formatAddress(outer.family, outer.destination);
        const std::string src = formatAddress(outer.family, outer.source);
        for (const auto& t : cfg.ipsec.tunnels)
            if (config::prefixListContains(t.remote_ts, dst) &&
                config::prefixListContains(t.local_ts, src))
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

    // Under the lock. One number per outer header, known to every lane's sender.
    uint32_t cdestIdFor(CopyLane& lane, const delivery::DeliveryParams& p) {
        auto it = cdest_ids.find(p.outer);
        const uint32_t id = it != cdest_ids.end() ? it->second : uint32_t(cdest_ids.size() + 1);
        if (!lane.sender->hasDestination(id)) lane.sender->addDestination(id, p.outer);
        if (it == cdest_ids.end()) cdest_ids.emplace(p.outer, id);
        return id;
    }

    const delivery::Encapsulator* encapsulatorFor(const delivery::DeliveryParams& p) {
        auto it = encapsulators.find(p);
        if (it == encapsulators.end()) {
            auto e = delivery::Encapsulator::create(p);
            if (!e) return nullptr;
            it = encapsulators.emplace(p, std::move(e.value())).first;
        }
        return &it->second;
    }

    // One copy, after the reorderer: to every distinct destination of its criteria.
    // Under the lock and the lane's mutex.
    void deliver(CopyLane& lane, std::span<const uint8_t> frame, std::span<const uint32_t> slots,
                 bool late) {
        auto& counters = lane.counters;
        auto& matches = lane.matches;
        auto& match_slots = lane.match_slots;
        auto& match_owners = lane.match_owners;
        auto& plan = lane.plan;
        auto& sender = lane.sender;
        ++counters.delivered;
        counters.late += late;
        const auto l3 = delivery::stripL2(frame);
        if (!l3) {
            ++counters.not_ip;
            return;
        }
        // The classifier could not count a fragment released late: count it here.
        if (late)
            for (uint32_t slot : slots) data_plane->countReleased(slot, 1, l3->bytes.size());
        matches.clear();
        match_slots.clear();
        match_owners.clear();
        for (uint32_t slot : slots) {
            const criteria::Criterion* c = store->findBySlot(slot);
            if (!c) continue;
            for (const auto& d : c->publication.destinations) {
                delivery::Match m;
                m.criterion = {userIndex(c->key.user), c->key.id};
                m.cdest_id = cdestIdFor(lane, d.params);
                cdest_labels.note(m.cdest_id, c->key.user, d.cdest_id);
                m.delivery = d.params;
                matches.push_back(m);
                match_slots.push_back(slot);
                match_owners.emplace_back(c, &d.cdest_id);
            }
        }
        if (matches.empty()) {
            ++counters.no_criterion;
            return;
        }
        delivery::planFanOut(matches, plan);
        for (const auto& send : plan.sends()) {
            ++counters.to_send;
            const auto& m = matches[send.first_match];
            // Rate limit: the first match's destination decides, at the most
            // important Priority the copy serves (shared copies are rare).
            uint16_t priority = UINT16_MAX;
            for (uint32_t idx : plan.served(send))
                priority =
                    std::min(priority, match_owners[idx].first->publication.effective_priority);
            const auto& [owner, label] = match_owners[send.first_match];
            if (!overload.admit({owner->key.user, *label}, owner->key.id, priority,
                                l3->bytes.size(), lane.now)) {
                sender->countDrop(m.cdest_id, delivery::DropReason::RateLimit, l3->bytes.size());
                for (uint32_t idx : plan.served(send))
                    store->addDropped(match_slots[idx], 1, l3->bytes.size());
                continue;
            }
            const auto* enc = encapsulatorFor(m.delivery);
            const uint64_t tag = lane.queued_served.size();
            lane.queued_served.push_back(
                {lane.queued_criteria.size(), plan.served(send).size(), l3->bytes.size()});
            for (uint32_t idx : plan.served(send))
                lane.queued_criteria.push_back({match_slots[idx], matches[idx].criterion.user,
                                                matches[idx].criterion.criterion});
            const auto outcome = enc ? sender->send(m.cdest_id, *enc, l3->bytes, tag)
                                     : delivery::SendOutcome::EncapsulationFailed;
            // Queued is not sent yet: the sender counts sent or dropped at flush.
            if (outcome == delivery::SendOutcome::Queued) {
                ++counters.encapsulated;
                continue;
            }
            // The sender counted its own refusals; one it never saw is counted here.
            if (!enc)
                sender->countDrop(m.cdest_id, delivery::DropReason::SendError, l3->bytes.size());
            for (uint32_t idx : plan.served(send))
                store->addDropped(match_slots[idx], 1, l3->bytes.size());
        }
    }

    // Under the lock and the lane's mutex: charge the copies the sender dropped
    // at flush to the criteria they served, if those still hold their slots.
    void chargeLateDrops(CopyLane& lane) {
        for (uint64_t tag : lane.late_drops) {
            if (tag >= lane.queued_served.size()) continue;
            const auto& q = lane.queued_served[tag];
            for (size_t i = q.first; i < q.first + q.count; ++i) {
                const auto& served = lane.queued_criteria[i];
                const criteria::Criterion* c = store->findBySlot(served.slot);
                if (c && c->key.id == served.id && userIndex(c->key.user) == served.user)
                    store->addDropped(served.slot, 1, q.bytes);
            }
        }
        lane.late_drops.clear();
        lane.queued_served.clear();  // nothing is queued after a flush
        lane.queued_criteria.clear();
    }

    uint64_t consumerTimeoutNs() const {
        return uint64_t{cfg.dataplane.consumer_timeout_ms} * 1'000'000;
    }

    // One copy thread: reads its queue of every capture interface.
    void pumpCopies(CopyLane& lane, const std::atomic<bool>& stop) {
        // Moves the copy gate's deadline on (xtap_abi.h): while any copy
        // thread runs its loop, copies are made. A tenth of the timeout
        // apart: the classifier reads that cache line on every copy.
        const uint64_t timeout_ns = consumerTimeoutNs();
        uint64_t gate_moved_at = 0;
        auto showLife = [&](uint64_t now) {
            if (timeout_ns == 0) return;
            if (now - gate_moved_at < timeout_ns / 10) return;
            maps->setCopyDeadline(now + timeout_ns);
            gate_moved_at = now;
        };
        auto receivers = copy_path->receivers(lane.queue);
        std::vector<pollfd> fds;
        for (auto* r : receivers) fds.push_back({r->fd(), POLLIN, 0});
        // A copy as the receive path takes it: counted as received when read
        // from the ring (parked or not), handled under `lock`.
        auto handle = [&](const kernel::CopiedFrame& f) {
            if (!f.meta) {
                ++lane.counters.no_metadata;
                return;
            }
            const uint32_t n = std::min<uint32_t>(f.meta->count, XTAP_MAX_MATCHES);
            lane.reorderer.onCopy(f.frame, std::span<const uint32_t>(f.meta->slots, n),
                                  f.meta->flags, lane.boot_ns,
                                  [&](std::span<const uint8_t> fr, std::span<const uint32_t> s,
                                      bool late) { deliver(lane, fr, s, late); });
        };
        auto onFrame = [&](const kernel::CopiedFrame& f) {
            ++lane.counters.received;
            handle(f);
        };
        auto park = [&](const kernel::CopiedFrame& f) {
            ++lane.counters.received;
            lane.parked.park(f.frame, f.meta);
        };
        const uint32_t batch = cfg.dataplane.receive_batch;
        // Everything the rings hold goes behind the parked copies (up to the bound).
        auto parkRings = [&] {
            for (auto* r : receivers)
                while (!lane.parked.full() && r->receive(park) >= batch) {
                }
        };
        auto handOn = [&](std::span<const uint8_t> frame, const xtap_copy_meta* meta) {
            handle(kernel::CopiedFrame{frame, meta});
        };
        // After a read that drained every ring (less than a batch from each),
        // the thread pauses for copy_coalesce_us instead of sleeping in poll()
        // until the next copy: the copies of that time are read, encapsulated
        // and sent as one batch, and the thread is not woken once per copy
        // (a wakeup costs more than the copy). It waits in poll() only when a
        // read found nothing.
        const auto coalesce = std::chrono::microseconds(cfg.dataplane.copy_coalesce_us);
        // While parking (or with copy_coalesce_us 0 and the lock busy): not a spin.
        constexpr auto kMinPause = std::chrono::microseconds(50);
        const size_t kParkedSlice = 4 * size_t{batch};
        enum class Next { Read, Pause, Wait } next = Next::Wait;
        while (!stop) {
            if (next == Next::Wait)
                ::poll(fds.data(), fds.size(), 100);
            else if (next == Next::Pause)
                std::this_thread::sleep_for(std::max(coalesce, kMinPause));
            // One clock reading per batch: the gate's deadline, the rate limit
            // and the fragment window need no finer grain than a batch takes.
            const uint64_t boot_now = bootNs();
            showLife(boot_now);
            size_t got = 0;
            bool full = false;
            std::lock_guard lane_guard(lane.mutex);
            {
                std::unique_lock g(lock, std::try_to_lock);
                if (!g.owns_lock()) {
                    // Another thread holds the lock: keep the rings draining
                    // into the parked copies, and come back for the lock soon.
                    parkRings();
                    next = Next::Pause;
                    continue;
                }
                lane.now = std::chrono::steady_clock::now();
                lane.boot_ns = boot_now;
                chargeLateDrops(lane);  // the last flush's, if the lock was busy then
                if (!lane.parked.empty()) {
                    // Copies go on in arrival order: while some are parked,
                    // what the rings bring goes behind them, and they are
                    // handed on a slice at a time with the rings read between
                    // slices (22,912 handed on at once took 0.33 s).
                    parkRings();
                    got += lane.parked.drain(kParkedSlice, handOn);
                    full = !lane.parked.empty();
                } else {
                    // One batch per socket, then send: the lock is held for
                    // encapsulation, and for a sendmmsg only when a batch
                    // fills the sender (fan-out to many Cdests).
                    for (auto* r : receivers) {
                        const size_t n = r->receive(onFrame);
                        got += n;
                        full |= n >= batch;
                    }
                }
                lane.reorderer.expire(lane.boot_ns);
            }
            lane.sender->flush();
            if (!lane.late_drops.empty()) {
                // The sender's drops are charged to their criteria under
                // `lock`: now if it is free, else first thing next batch. The
                // copy thread never waits for the lock.
                std::unique_lock g(lock, std::try_to_lock);
                if (g.owns_lock()) chargeLateDrops(lane);
            }
            if (got == 0)
                next = Next::Wait;
            else
                next = full || coalesce.count() == 0 ? Next::Read : Next::Pause;
        }
        // Stopping: what is parked still goes out.
        std::lock_guard lane_guard(lane.mutex);
        if (!lane.parked.empty()) {
            {
                std::lock_guard g(lock);
                lane.parked.drain(handOn);
            }
            lane.sender->flush();
            std::lock_guard g(lock);
            chargeLateDrops(lane);
        }
    }

    // --- continuity (issue 6): the state file, restore, 599, flush ------------------

    DaemonOptions options;
    std::optional<criteria::LoadedState> saved_state;  // read at start, restored in startControl
    std::string discarded_state;                       // why the state file was set aside
    bool state_dirty = false;  // a change the journal does not carry: compact soon
    // The write-ahead journal beside the state file, and the generation the
    // last compaction started (unique per save: a stale journal is told apart).
    std::unique_ptr<criteria::StateJournal> journal;
    uint64_t journal_gen = 0;
    uint64_t last_state_bytes = 0;
    std::atomic<bool> durability_failed{false};  // reported at the next barrier
    // Saves come at least kStateSaveDelay apart, and at least ten times as far
    // apart as the last one took: a large store costs at most ~10% of the lock.
    static constexpr auto kStateSaveDelay = std::chrono::milliseconds(200);
    static constexpr uint64_t kJournalMinCompact = 1 << 20;  // bytes
    std::chrono::steady_clock::time_point last_save = std::chrono::steady_clock::now();
    std::chrono::steady_clock::duration last_save_took{};
    // Users owed a 599 at their next connection, with its Alert-Info.
    // In the state file too: a second restart before the user connects keeps them.
    criteria::OwedNotices owed_restart_notice;

    std::string statePath() const { return cfg.state_dir + "/state.json"; }
    std::string journalPath() const { return cfg.state_dir + "/state.journal"; }

    // Under the lock. A failed write is reported at the barrier (the replies it
    // would acknowledge are not sent) and a compaction is due.
    void journalAppend(const std::string& line) {
        if (!journal) {
            state_dirty = true;
            return;
        }
        try {
            journal->append(line);
        } catch (const std::exception& e) {
            spdlog::critical("state journal write failed: {}", e.what());
            durability_failed = true;
            state_dirty = true;
        }
    }

    // A put of each criterion the events touched that still exists, else a del.
    void journalChanges(const std::vector<dtcp::AuditEvent>& events) {
        if (events.empty()) return;
        const auto instant = now();
        std::set<std::pair<std::string, uint32_t>> done;
        for (const auto& e : events) {
            if (!done.insert({e.criterion.user, e.criterion.id}).second) continue;
            if (const criteria::Criterion* c = store->find(e.criterion))
                journalAppend(
                    criteria::journalPut(store->criterionJson(*c, instant), instant.boottime_ns));
            else
                journalAppend(criteria::journalDelete(e.criterion.user, e.criterion.id));
        }
    }

    void oweRestartNoticeToAll(const std::string& alert_info) {
        for (const auto& [name, u] : cfg.users) owed_restart_notice.emplace(name, alert_info);
    }

    // Before anything is published. An unusable file stops the start unless the
    // operator said to discard it: intercepts are never dropped silently.
    void loadState() {
        const std::string path = statePath();
        std::string problem;
        try {
            const auto text = readStateFile(path);
            if (!text) {
                // Maps from an earlier run but no record of its criteria.
                if (object->reusedPins())
                    oweRestartNoticeToAll("xtapd restarted without its saved criteria");
                return;
            }
            // Changes acknowledged since the file was written (a crash). An
            // unreadable journal makes the state unusable: acknowledged changes
            // are never dropped silently.
            const auto journal_text = readStateFile(journalPath());
            auto parsed = criteria::parseStateFile(*text, stateClockNow(),
                                                   journal_text ? *journal_text : std::string());
            if (auto* state = std::get_if<criteria::LoadedState>(&parsed)) {
                if (state->journal.records)
                    spdlog::info("state journal: {} changes since the last save applied{}",
                                 state->journal.records,
                                 state->journal.torn_tail
                                     ? " (an unacknowledged torn last line ignored)"
                                     : "");
                saved_state = std::move(*state);
                return;
            }
            problem = std::get<std::string>(parsed);
        } catch (const std::system_error& e) {
            problem = e.what();
        }
        if (!options.discard_unusable_state)
            throw std::runtime_error(
                "state file " + path + " is unusable: " + problem +
                "; refusing to start, so that no intercept is dropped silently "
                "(xtapd --discard-state starts without criteria)");
        std::string aside = "(left in place)";
        try {
            aside = setStateFileAside(path, stateClockNow().unix_ms);
        } catch (const std::exception& e) {
            spdlog::error("{}", e.what());
        }
        spdlog::warn(
            "state file {} is unusable ({}); set aside as {}; starting WITHOUT criteria "
            "(--discard-state)",
            path, problem, aside);
        discarded_state = problem + "; set aside as " + aside;
        oweRestartNoticeToAll("xtapd restarted without its saved criteria");
    }

    // In startControl, with the store, the service and the audit log up.
    void restoreState() {
        if (!discarded_state.empty())
            auditEvent({{"event", "restart"}, {"state", "discarded"}, {"reason", discarded_state}});
        // Generations unique across runs: a journal left by another run never
        // matches the state file this run writes.
        journal_gen = static_cast<uint64_t>(std::chrono::system_clock::now().time_since_epoch() /
                                            std::chrono::nanoseconds(1));
        if (!saved_state) {
            saveState();  // the base the journal continues
            return;
        }
        const dtcp::UserLookup lookup = [this](std::string_view u) -> const dtcp::UserContext* {
            auto it = users.find(u);
            return it == users.end() ? nullptr : &it->second;
        };
        const auto report = service->restore(saved_state->snapshot, lookup, now());
        for (const auto& [user, state] : saved_state->snapshot.seq_states)
            seq_by_user[user] = dtcp::SeqWindow(state);
        // Still owed from an earlier run, to users still configured.
        for (const auto& [user, alert] : saved_state->owed)
            if (cfg.users.count(user)) owed_restart_notice.emplace(user, alert);
        for (const auto& d : report.dropped) {
            spdlog::warn("criterion {} of {} not restored: {}", d.key.id, d.key.user, d.reason);
            owed_restart_notice.emplace(d.key.user,
                                        "xtapd restarted without some of your criteria");
        }
        spdlog::info("{}", restartLogLine(*saved_state, report));
        auditEvent(restartRecord(*saved_state, report));
        saved_state.reset();
        saveState();
    }

    // Under the lock (or before the threads start). A failure is loud and
    // retried by the tick; the change itself stands.
    // Compaction: the whole state in a new file naming a new journal
    // generation, then the journal emptied for that generation. A crash in
    // between leaves a journal of the old generation, which the new file
    // already contains (StateJournal.h).
    void saveState() {
        criteria::SeqStates seq;
        for (const auto& [user, window] : seq_by_user) seq[user] = window.state();
        const auto started = std::chrono::steady_clock::now();
        const CounterSnapshot snapshot(*maps);
        try {
            const uint64_t gen = ++journal_gen;
            const std::string text = criteria::formatStateFile(*store, now(), seq, stateClockNow(),
                                                               gen, owed_restart_notice);
            writeStateFile(statePath(), text);
            last_state_bytes = text.size();
            if (!journal) journal = std::make_unique<criteria::StateJournal>(journalPath());
            journal->reset(gen);
            state_dirty = false;
            last_save = std::chrono::steady_clock::now();
            last_save_took = last_save - started;
        } catch (const std::exception& e) {
            state_dirty = true;
            spdlog::critical("state not saved, retried each second: {}", e.what());
        }
    }

    // From the main loop: the changes since the last save.
    // A compaction when the journal has grown past the state file (so replaying
    // it never costs more than reading the file) or a change it does not carry
    // is pending; spaced like any save.
    void saveIfDirty() {
        std::lock_guard g(lock);
        const auto spacing =
            std::max<std::chrono::steady_clock::duration>(kStateSaveDelay, 10 * last_save_took);
        const bool journal_long =
            journal && journal->bytes() > std::max<uint64_t>(kJournalMinCompact, last_state_bytes);
        if ((state_dirty || journal_long) &&
            std::chrono::steady_clock::now() - last_save >= spacing)
            saveState();
    }

    // xtapctl flush: the operator drops every criterion. Withdrawn, audited and
    // saved; every client that had criteria gets 599 now or at its next connection.
    size_t flushAll(const std::string& requested_by) {
        json ids = json::array();
        std::set<std::string> owners;
        {
            std::lock_guard g(lock);
            for (const auto& key : store->keys()) {
                store->remove(key);
                ids.push_back({{"user", key.user}, {"criteria_id", key.id}});
                owners.insert(key.user);
                owed_restart_notice[key.user] = "every criterion was flushed by the operator";
            }
            saveState();
        }
        spdlog::warn("flush by {}: {} criteria dropped", requested_by, ids.size());
        auditEvent({{"event", "flush"}, {"by", requested_by}, {"criteria", ids}});
        if (ssh)
            for (const auto& user : owners) sendOwedRestartNotice(user);
        return ids.size();
    }

    // 599 (dtcp.md §11) on the user's first connection after its criteria were
    // lost (or at once, to a user connected during a flush). Kept owed while
    // the user has no open DTCP channel.
    void sendOwedRestartNotice(const std::string& user) {
        std::string notice;
        {
            std::lock_guard g(lock);
            const auto owed = owed_restart_notice.find(user);
            const auto u = users.find(user);
            if (owed == owed_restart_notice.end() || u == users.end()) return;
            notice = dtcp::formatNotification(
                dtcp::restartNotification(service->notificationVersion(user), owed->second,
                                          now().local),
                u->second.hmac_key);
        }
        if (ssh->notifyUser(user, notice) == 0) return;  // still owed
        {
            std::lock_guard g(lock);
            owed_restart_notice.erase(user);
            state_dirty = true;  // the journal does not carry owed notices
        }
        auditEvent({{"event", "notification"}, {"user", user}, {"status", 599}});
    }

    // --- the tick -------------------------------------------------------------------

    // 580 and 598 (dtcp.md §14) to the user whose configured destination it is.
    void overloadNotices(std::vector<dtcp::UserNotification>& notes) {
        const auto t = overload.tick();
        const auto stamp = now().local;
        auto push = [&](const std::string& user, uint32_t id, const dtcp::Notification& n) {
            const auto u = users.find(user);
            if (u != users.end())
                notes.push_back({user, id, dtcp::formatNotification(n, u->second.hmac_key)});
        };
        for (const auto& a : t.alerts)
            push(a.key.user, 0,
                 dtcp::congestionNotification(service->notificationVersion(a.key.user),
                                              a.key.cdest_id, a.average_bps, a.alert_bps, a.max_bps,
                                              stamp));
        for (const auto& d : t.drops)
            push(d.key.user, d.criteria_id,
                 dtcp::duplicatesDroppedNotification(service->notificationVersion(d.key.user),
                                                     d.key.cdest_id, d.criteria_id, d.packets,
                                                     d.bytes, stamp));
    }

    void tick() {
        std::vector<dtcp::UserNotification> notes;
        // Every criterion's counters, read before the lock is taken: at 131,072
        // slots the read takes 30 to 50 ms, which the copy threads, waiting
        // for the lock, used to spend with their rings filling.
        auto counters = maps->readCounterTable();
        {
            std::lock_guard g(lock);
            const dtcp::UserLookup lookup = [this](std::string_view u) -> const dtcp::UserContext* {
                auto it = users.find(u);
                return it == users.end() ? nullptr : &it->second;
            };
            refreshVrfs(lookup);
            const CounterSnapshot snapshot(*maps, std::move(counters));
            auto r = service->tick(now(), lookup);
            notes = std::move(r.notifications);
            overloadNotices(notes);
            for (const auto& e : r.audit)
                auditEventDeferred({{"event", "criterion"},
                                    {"user", e.criterion.user},
                                    {"criteria_id", e.criterion.id},
                                    {"action", kindName(e.kind)}});
            journalChanges(r.audit);  // timeouts
            // A minute gone: the counters, for a restart after a reboot; spaced
            // like any save, so a large store costs a bounded share of the lock.
            const auto spacing = std::max<std::chrono::steady_clock::duration>(
                std::chrono::seconds(60), 10 * last_save_took);
            if (std::chrono::steady_clock::now() - last_save > spacing) saveState();
        }
        // The tick's own records and journal lines, before its notifications.
        try {
            onMessagesHandled();
        } catch (const std::exception& e) {
            spdlog::critical("tick changes not made durable: {}", e.what());
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

    // Taken under every lane's mutex and the lock (a lane holds its mutex from
    // receive to flush, so the senders' counters balance); formatting after.
    control::Status statusSnapshot() {
        std::vector<std::unique_lock<std::mutex>> lane_guards;
        for (auto& lane : lanes) lane_guards.emplace_back(lane->mutex);
        std::vector<control::ClientStatus> clients;
        std::lock_guard g(lock);
        for (const auto& [name, u] : users)
            clients.push_back({name, store->countOf(name), store->destinationCountOf(name)});
        auto capture = copy_path->captureCounters();
        const auto bpf = sinceStart(maps->readStats(), bpf_at_start);
        PumpCounters pump;
        std::map<uint32_t, delivery::CdestCounters> per_cdest;
        uint64_t sent_in_gso = 0, gso_fallbacks = 0;
        for (const auto& lane : lanes) {
            pump += lane->counters;
            for (const auto& [id, labels] : cdest_labels.all())
                if (const auto* c = lane->sender->counters(id)) per_cdest[id] += *c;
            sent_in_gso += lane->sender->gsoCopies();
            gso_fallbacks += lane->sender->gsoFallbacks();
        }
        return buildStatus({cfg,
                            uint64_t(std::chrono::duration_cast<std::chrono::seconds>(
                                         std::chrono::steady_clock::now() - started)
                                         .count()),
                            store->size(), std::move(clients), bpf, copy_path->interfaces(),
                            std::move(capture), tunnel_board.snapshot(), pump, std::move(per_cdest),
                            cdest_labels, sent_in_gso, gso_fallbacks});
    }

    // For the log at stop: the copy path's totals only (no user or Cdest names).
    json status() { return control::toJson(statusSnapshot())["counters"]; }

    std::unique_ptr<control::ControlServer> control_server;
    std::unique_ptr<control::MetricsServer> metrics_server;

    control::Response onControl(const control::Request& r) {
        if (r.command == control::Command::Status)
            return control::Response::success(control::toJson(statusSnapshot()));
        if (r.command == control::Command::Flush)
            return control::Response::success({{"flushed", flushAll("control socket")}});
        return control::Response::failure("unknown command");
    }

    void startObservability() {
        if (!cfg.control_socket.empty()) {
            control::ControlServerOptions o;
            o.path = cfg.control_socket;
            control_server = std::make_unique<control::ControlServer>(
                o, [this](const control::Request& r) { return onControl(r); },
                [](const std::string& line) { spdlog::warn("{}", line); });
            spdlog::info("control socket {}", o.path);
        }
        if (!cfg.metrics_listen.empty()) {
            control::MetricsServerOptions o;
            const auto colon = cfg.metrics_listen.rfind(':');
            o.address = cfg.metrics_listen.substr(0, colon);
            if (!o.address.empty() && o.address.front() == '[')
                o.address = o.address.substr(1, o.address.size() - 2);
            o.port = uint16_t(std::stoi(cfg.metrics_listen.substr(colon + 1)));
            // Metrics are not worth an intercept: without them xtapd still runs.
            try {
                metrics_server = std::make_unique<control::MetricsServer>(
                    o, [this] { return control::formatMetrics(statusSnapshot()); });
                spdlog::info("metrics on http://{}/metrics", cfg.metrics_listen);
            } catch (const std::exception& e) {
                spdlog::error("{}; running without metrics", e.what());
            }
        }
    }
};

Daemon::Daemon(config::Config config, std::string config_path, DaemonOptions options)
    : impl_(std::make_unique<Impl>()) {
    impl_->options = options;
    impl_->cfg = std::move(config);
    impl_->config_path = std::move(config_path);
    impl_->loadUsers();
    impl_->startDataPlane();
    impl_->startDelivery();
    impl_->startControl();
    impl_->auditEvent({{"event", "start"}, {"interfaces", impl_->cfg.interfaces.size()}});
    impl_->startSsh();
    impl_->startObservability();
}

Daemon::~Daemon() {
    if (!impl_) return;
    for (auto& lane : impl_->lanes) lane->sender->onLateDrop(nullptr);  // its members go first
    impl_->metrics_server.reset();
    impl_->control_server.reset();
    if (impl_->ssh) impl_->ssh->stop();
    if (impl_->copy_path) impl_->copy_path->detachAll();
    if (impl_->audit) impl_->auditEvent({{"event", "stop"}});
}

void Daemon::run(const std::atomic<bool>& stop, std::atomic<bool>& reload) {
    Impl& d = *impl_;
    std::vector<std::thread> pumps;
    for (auto& lane : d.lanes)
        pumps.emplace_back([&d, &stop, l = lane.get()] { d.pumpCopies(*l, stop); });
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
        d.saveIfDirty();
        if (std::chrono::steady_clock::now() >= next_tick) {
            d.tick();
            next_tick += std::chrono::seconds(1);
            if (watchdog) sd_notify(0, "WATCHDOG=1");
        }
    }
    sd_notify(0, "STOPPING=1");
    for (auto& t : pumps) t.join();
    {
        // A clean stop (SIGTERM, upgrade): the next start restores all of it.
        std::lock_guard g(d.lock);
        d.saveState();
    }
    if (tunnel_loop.joinable()) tunnel_loop.join();
    spdlog::info("stopping: {}", d.status().dump());
}

}  // namespace xtap::app
