// TunnelManager: keeps xtap's IPsec tunnels to the content destinations up
// through charon's vici interface and tells the sender, per copy, whether the
// tunnel that protects its destination is up (platform.md §8-§10).
//
// Never in clear (platform.md §9): with kernel-libipsec no kernel policy
// holds copies back when a CHILD_SA is down, so xtap layers three guards:
//   1. UnreachableRoutes: an `unreachable` route in the main table for every
//      protected prefix, so a copy that misses the tunnel route fails in
//      sendto() instead of leaving in clear;
//   2. SendGate: the sender sends only while a CHILD_SA whose negotiated
//      remote_ts covers the destination is up; closed at start, on down, on
//      vici disconnect and on charon restart;
//   3. UdpSender binds to a source inside local_ts.
//
// Pure parts (address coverage, SendGate, ChildSaTracker, Backoff) are apart
// from the I/O (TunnelManager, UnreachableRoutes) so they test without charon.
#pragma once

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/Filter.h"
#include "ipsec/ViciCommands.h"
#include "ipsec/ViciConnection.h"

namespace xtap::ipsec {

using dataplane::Address;
using dataplane::Family;
using Milliseconds = std::chrono::milliseconds;

// --- address coverage (pure) -------------------------------------------------------

// An IPv4 or IPv6 prefix; host bits are zero. IPv4 uses the first four bytes
// of the address (dataplane's convention).
struct IpPrefix {
    Family family = Family::V4;
    dataplane::Prefix prefix;

    bool operator==(const IpPrefix&) const = default;
};

// "198.18.20.0/24", "2001:db8:20::/64", or a bare address (a host prefix).
// Host bits set below the length are refused, not masked: a typo in a
// protected prefix must not silently protect something else.
std::optional<IpPrefix> parseIpPrefix(std::string_view text);
std::string formatIpPrefix(const IpPrefix& prefix);

bool contains(const IpPrefix& prefix, Family family, const Address& address);
bool contains(const IpPrefix& outer, const IpPrefix& inner);

// An inclusive address interval of one family.
struct AddressRange {
    Family family = Family::V4;
    Address first{};
    Address last{};

    bool operator==(const AddressRange&) const = default;
};

// A traffic selector as charon writes it (swanctl.conf local_ts/remote_ts,
// list-sas local-ts/remote-ts): a prefix, a bare address or "first..last".
// nullopt for a selector restricted to a protocol or ports ("[udp/4500]"):
// it does not carry every copy to its addresses, so it covers nothing; also
// for "dynamic" and anything unparsable.
std::optional<AddressRange> parseTrafficSelector(std::string_view text);

bool covers(const AddressRange& range, const IpPrefix& prefix);

// --- SendGate (pure, thread-safe) ------------------------------------------------

// One protected content-destination prefix and the tunnel that carries it.
struct GateEntry {
    IpPrefix prefix;
    size_t tunnel = 0;
};

// address -> protecting tunnel -> up? Read per copy by sender threads without
// locks; written only by the thread that runs the TunnelManager. Every entry
// starts closed.
class SendGate {
  public:
    explicit SendGate(std::vector<GateEntry> entries);

    // True when some entry whose prefix contains `destination` is open.
    bool isOpenFor(Family family, const Address& destination) const;

    size_t size() const { return entries_.size(); }
    const GateEntry& entry(size_t index) const { return entries_[index]; }
    bool isOpen(size_t index) const { return open_[index].load(std::memory_order_acquire); }

    void setOpen(size_t index, bool open) { open_[index].store(open, std::memory_order_release); }
    void closeAll();

  private:
    std::vector<GateEntry> entries_;
    std::unique_ptr<std::atomic<bool>[]> open_;
};

// --- CHILD_SA tracking (pure) ------------------------------------------------------

// What the tracker needs of a tunnel: how charon names it in events and the
// prefixes it must cover.
struct TrackedTunnel {
    std::string ike;    // IKE connection name (the IKE_SA section name in events)
    std::string child;  // CHILD_SA config name (the inner "name" key)
    std::vector<IpPrefix> protected_prefixes;
};

// Follows which CHILD_SAs of xtap's tunnels are up, from child-updown and
// ike-updown events and from list-sas snapshots, and derives the gate. Rules:
//   - an SA is live from its up event (or an INSTALLED/REKEYING snapshot entry
//     under an ESTABLISHED/REKEYING IKE_SA) until its down event;
//   - a unique id seen going down never counts as up again: a snapshot taken
//     before the down event cannot reopen it;
//   - an IKE_SA down drops every CHILD_SA under it, listed or not (ike-rekey
//     moves the children to the new IKE_SA's id first), and asks for a
//     list-sas resync, which settles anything an event could not say;
//   - a protected prefix is open when a live CHILD_SA's negotiated remote_ts
//     covers all of it (a narrowed selector leaves it closed).
class ChildSaTracker {
  public:
    explicit ChildSaTracker(std::vector<TrackedTunnel> tunnels);

    // Each returns true when a list-sas resync should follow (the event
    // could not say everything, e.g. an IKE_SA went down or was rekeyed).
    bool onChildUpDown(const UpDownEvent& event);
    bool onIkeUpDown(const UpDownEvent& event);
    // ike-rekey moves the CHILD_SAs to the new IKE_SA; child-rekey replaces
    // an SA by its successor, and the old one goes without a child-updown.
    bool onIkeRekey(const Section& event);
    bool onChildRekey(const Section& event);
    void onResync(const std::vector<IkeSaInfo>& snapshot);
    // vici is gone: nothing is known to be up. Forgets the dead ids too,
    // since a restarted charon counts unique ids from 1 again.
    void reset();

    size_t tunnelCount() const { return tunnels_.size(); }
    const TrackedTunnel& tunnel(size_t index) const { return tunnels_[index]; }
    bool isUp(size_t tunnel) const;
    bool covers(size_t tunnel, const IpPrefix& prefix) const;

    // One entry per (tunnel, protected prefix), tunnels in order.
    std::vector<GateEntry> gateEntries() const;
    // Opens and closes every entry of a gate built from gateEntries().
    void apply(SendGate& gate) const;

  private:
    struct LiveChild {
        size_t tunnel = 0;
        std::string ike_id;
        std::string child_id;
        std::vector<AddressRange> remote;
    };

    std::optional<size_t> tunnelOf(std::string_view ike, std::string_view child) const;
    void addLive(size_t tunnel, const IkeSaInfo& ike, const ChildSaInfo& child);
    void removeChild(const std::string& child_id);

    std::vector<TrackedTunnel> tunnels_;
    std::vector<LiveChild> live_;
    std::set<std::string> dead_children_;
    std::set<std::string> dead_ikes_;
};

// --- retry pacing (pure) ------------------------------------------------------------

// initial, 2x, 4x, ... up to max; reset() after a success.
class Backoff {
  public:
    Backoff(Milliseconds initial, Milliseconds max) : initial_(initial), max_(max) {}
    Milliseconds next();
    void reset() { current_ = Milliseconds::zero(); }

  private:
    Milliseconds initial_;
    Milliseconds max_;
    Milliseconds current_{0};
};

// --- configuration --------------------------------------------------------------------

struct CertificateFiles {
    std::string certificate;                   // local end-entity certificate, PEM or DER
    std::string private_key;                   // its private key, PEM or DER
    std::vector<std::string> ca_certificates;  // trusted to authenticate the peer
};

// One tunnel to a content-destination network. Strings are swanctl.conf
// values. Authentication: `psk` when set (loaded with load-shared for the
// two identities), else `certificates` (the local certificate must carry
// local_id as subject or subjectAltName; charon finds it by that id).
struct TunnelSpec {
    std::string name;        // IKE connection name in charon
    std::string child_name;  // CHILD_SA config name; empty = `name`
    std::vector<std::string> local_addrs;
    std::vector<std::string> remote_addrs;
    std::string local_id;
    std::string remote_id;
    std::string psk;
    std::optional<CertificateFiles> certificates;
    std::vector<std::string> ike_proposals;  // empty = charon's defaults
    std::vector<std::string> esp_proposals;
    std::vector<std::string> local_ts;   // must contain the Cdest source addresses
    std::vector<std::string> remote_ts;  // must cover cdest_prefixes
    std::vector<std::string> cdest_prefixes;
    std::string dpd_delay = "10s";  // a dead peer must show up as a down event
};

struct TunnelManagerConfig {
    std::string vici_socket = "unix:///var/run/charon.vici";
    std::vector<TunnelSpec> tunnels;
    Milliseconds command_timeout{5000};
    // An initiated tunnel not up by then is abandoned and initiated again.
    Milliseconds establish_timeout{15000};
    Milliseconds retry_initial{500};
    Milliseconds retry_max{30000};
    Milliseconds reconnect_initial{200};
    Milliseconds reconnect_max{
        1000};  // a unix-socket connect is cheap; drops last until it succeeds
    // list-sas now and then, in case an event was missed.
    Milliseconds resync_interval{10000};
};

// --- TunnelManager (I/O) ----------------------------------------------------------------

enum class TunnelState : uint8_t {
    Disconnected,  // no vici connection: charon down or restarting
    Waiting,       // down; initiates again when its backoff expires
    Establishing,  // initiated, waiting for child-updown
    Up,            // a CHILD_SA is installed
};

std::string_view name(TunnelState state);

struct TunnelStatus {
    std::string name;
    TunnelState state = TunnelState::Disconnected;
    uint64_t initiations = 0;
    uint64_t ups = 0;
    uint64_t downs = 0;
    std::string last_error;  // charon's or the connection's words; no addresses of targets
};

// Called on the manager's thread whenever a tunnel changes state.
using TunnelObserver = std::function<void(const TunnelStatus&)>;

// Runs on one thread (a poll loop): connects to vici (retrying), loads
// secrets, certificates and connections, initiates, follows events,
// re-initiates dropped tunnels with backoff, and after a vici disconnect
// closes every gate entry, reconnects, reloads and initiates again. Only
// gate() may be read from other threads.
class TunnelManager {
  public:
    using Clock = std::chrono::steady_clock;

    // Validates the configuration and reads certificate files; throws
    // std::invalid_argument naming the tunnel and the problem.
    explicit TunnelManager(TunnelManagerConfig config);
    ~TunnelManager();
    TunnelManager(const TunnelManager&) = delete;
    TunnelManager& operator=(const TunnelManager&) = delete;

    const SendGate& gate() const { return *gate_; }
    std::shared_ptr<const SendGate> sharedGate() const { return gate_; }
    bool isOpenFor(Family family, const Address& destination) const {
        return gate_->isOpenFor(family, destination);
    }
    // Every cdest prefix of every tunnel: what UnreachableRoutes must cover.
    std::vector<IpPrefix> protectedPrefixes() const;

    void setObserver(TunnelObserver observer) { observer_ = std::move(observer); }

    // Poll-loop integration: watch eventFd() (-1 while disconnected) for
    // POLLIN and call handleEvents(); call runDue() at nextDue().
    int eventFd() const;
    Clock::time_point nextDue() const;
    void handleEvents();
    void runDue();
    // Convenience: one poll of at most `max_wait`, then whatever is due.
    void runOnce(Milliseconds max_wait);

    bool connected() const;
    std::vector<TunnelStatus> status() const;

    // Orderly stop: terminates xtap's IKE_SAs and unloads its connections.
    // Closes the gate first. Not needed before destruction (a restarted
    // xtapd adopts the SAs charon still holds).
    void shutdown();

  private:
    struct Tunnel;
    struct Session;

    void connect();
    void disconnect(const std::string& why);
    bool loadTunnel(Tunnel& tunnel);
    void initiate(Tunnel& tunnel);
    void abandonEstablishment(Tunnel& tunnel);
    bool resync();
    void onEvent(const EventMessage& event);
    void refreshStates();
    void setState(Tunnel& tunnel, TunnelState state);
    void failCommand(const ConnectionError& error, const std::string& what);

    TunnelManagerConfig config_;
    std::vector<Tunnel> tunnels_;
    ChildSaTracker tracker_;
    std::shared_ptr<SendGate> gate_;
    std::unique_ptr<Session> session_;  // both vici connections; null while disconnected
    Backoff reconnect_backoff_;
    Clock::time_point reconnect_at_{};
    Clock::time_point resync_at_{};
    bool resync_requested_ = false;
    TunnelObserver observer_;
};

// --- backup routes (I/O, rtnetlink) -----------------------------------------------------

// Protocol number tagging xtap's routes (rtm_protocol; iproute2 shows it as a
// number), so removal never touches a route someone else installed.
inline constexpr uint8_t kXtapRouteProtocol = 0xf8;

// Mitigation (1) of platform.md §9: `unreachable <prefix>` in the main table
// for every protected prefix, IPv4 and IPv6, over rtnetlink. While the CHILD_SA
// is up its table-220 route (rule 220, before main) wins; without it sendto()
// fails with EHOSTUNREACH/ENETUNREACH and the copy is counted, not sent in
// clear. Installation refuses (std::runtime_error) when the main table already
// forwards the prefix or a part of it, since that route would carry copies in
// clear whenever the tunnel is down. Routes it added are removed on
// destruction unless keep() was called; an unreachable route already there is
// left alone (and adopted if it carries kXtapRouteProtocol).
class UnreachableRoutes {
  public:
    explicit UnreachableRoutes(std::vector<IpPrefix> prefixes);
    ~UnreachableRoutes();
    UnreachableRoutes(const UnreachableRoutes&) = delete;
    UnreachableRoutes& operator=(const UnreachableRoutes&) = delete;

    const std::vector<IpPrefix>& owned() const { return owned_; }
    // Leave the routes in place after destruction (fail closed across restarts).
    void keep() { keep_ = true; }

  private:
    std::vector<IpPrefix> owned_;
    bool keep_ = false;
};

// The single-route operations UnreachableRoutes is made of. Each throws
// std::system_error naming the prefix and the operation.
// Returns false when an unreachable route for exactly `prefix` already existed.
bool addUnreachableRoute(const IpPrefix& prefix);
void removeUnreachableRoute(const IpPrefix& prefix);  // absent is fine
// Main-table routes inside `prefix` (equal or longer) that forward packets,
// i.e. any type but unreachable, blackhole and prohibit.
std::vector<IpPrefix> forwardingRoutesWithin(const IpPrefix& prefix);

}  // namespace xtap::ipsec
