// UdpSender: sends encapsulated copies to content destinations through
// ordinary UDP sockets, batched with sendmmsg (platform.md §2, §9).
//
// No copy leaves in clear: before a copy takes any buffer space or syscall,
// the sender asks `TunnelOpen` (in xtapd the TunnelManager's SendGate)
// whether a CHILD_SA covering its destination is up, and asks again at flush
// time; a closed gate drops and counts the copy as tunnel_down. Only
// destinations inside the cleartext allow-list given at construction skip
// that check; the caller audits that list.
//
// One sender per thread; counters are per content destination (Cdest-ID) and
// merged by the caller. Sockets: one per (family, source address, source
// port, TTL), bound to the Cdest source, unconnected (a connect() would fail
// while the tunnel route is absent), TTL / hop limit set by IP_TTL /
// IPV6_UNICAST_HOPS, and never IP_PMTUDISC_DO / IPV6_DONTFRAG: copies larger
// than ipsec0's MTU must be fragmented by the kernel, not refused.
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <functional>
#include <span>
#include <unordered_map>
#include <vector>

#include "common/UniqueFd.h"
#include "delivery/CdestCounters.h"
#include "delivery/DeliveryParams.h"
#include "delivery/Encapsulator.h"

namespace xtap::delivery {

// True while a tunnel that covers `destination` is up. Called on the sender's
// thread, per copy: it must be cheap and thread-safe.
using TunnelOpen = std::function<bool(Family family, const Address& destination)>;

// A destination prefix copies may reach without a tunnel.
struct CleartextPrefix {
    Family family = Family::V4;
    dataplane::Prefix prefix;
};

struct UdpSenderOptions {
    size_t batch_messages = 64;       // copies per sendmmsg
    size_t batch_bytes = 256 * 1024;  // payload arena; at least one maximal UDP payload
    std::vector<CleartextPrefix> cleartext_allowed;  // audited by the caller; empty in production
    // Called with each new socket before it is bound (tests: make the kernel
    // refuse UDP GSO on it).
    std::function<void(int fd)> socket_setup;
};

enum class SendOutcome : uint8_t {
    Queued,               // will go out at the next flush (or already went)
    DroppedTunnelDown,    // gate closed: counted as tunnel_down, nothing sent
    UnknownDestination,   // no such Cdest-ID: nothing counted
    EncapsulationFailed,  // the copy would not fit a UDP datagram: counted as send_error
};

class UdpSender {
  public:
    UdpSender(TunnelOpen tunnel_open, UdpSenderOptions options = {});
    ~UdpSender();  // flushes
    UdpSender(const UdpSender&) = delete;
    UdpSender& operator=(const UdpSender&) = delete;

    // Opens (or shares) the socket for `outer`'s source. Throws
    // std::invalid_argument for an invalid header or a Cdest-ID in use, and
    // std::system_error when the socket cannot be made; a source address not
    // configured on this host is EADDRNOTAVAIL with a message that says so.
    void addDestination(uint32_t cdest_id, const OuterHeader& outer);
    // Flushes its queued copies first; keeps nothing of it, counters included.
    void removeDestination(uint32_t cdest_id);
    bool hasDestination(uint32_t cdest_id) const;

    // Queues one copy of `packet` to the Cdest, encapsulated by
    // `encapsulator` (whose params name this Cdest's outer header; the
    // socket comes from the Cdest). Flushes when the batch is full.
    SendOutcome send(uint32_t cdest_id, const Encapsulator& encapsulator,
                     std::span<const uint8_t> packet, uint64_t tag = 0);
    // The same for a payload the caller encapsulated itself.
    SendOutcome sendPayload(uint32_t cdest_id, std::span<const uint8_t> udp_payload);

    // Sends every queued copy; returns how many the kernel accepted.
    size_t flush();
    size_t queued() const { return pending_.size(); }

    // Told of a queued copy dropped at flush (tunnel closed meanwhile, send
    // error), with the tag given to send(): the caller charges its criteria.
    using LateDrop = std::function<void(uint64_t tag, DropReason reason, size_t payload_bytes)>;
    void onLateDrop(LateDrop callback) { late_drop_ = std::move(callback); }

    // Drops decided before the sender (ring_full, rate_limit).
    void countDrop(uint32_t cdest_id, DropReason reason, uint64_t payload_bytes);

    // Copies that left inside a UDP GSO message, and sockets that fell back
    // from UDP GSO to one message per copy.
    uint64_t gsoCopies() const { return gso_copies_; }
    uint64_t gsoFallbacks() const { return gso_fallbacks_; }

    // Null for an unknown Cdest-ID.
    const CdestCounters* counters(uint32_t cdest_id) const;

  private:
    struct Destination {
        OuterHeader outer;
        size_t socket = 0;
        bool cleartext_allowed = false;
        sockaddr_storage address{};
        socklen_t address_length = 0;
        CdestCounters counters;
    };
    struct SenderSocket {
        Family family = Family::V4;
        Address source{};
        uint16_t source_port = 0;
        uint8_t ttl = 0;
        UniqueFd fd;
        size_t users = 0;
        bool gso = true;  // cleared for good when the kernel refuses UDP_SEGMENT
    };
    struct Pending {
        uint32_t cdest_id = 0;
        size_t offset = 0;  // into arena_
        size_t length = 0;
        uint64_t tag = 0;
    };

    Destination* find(uint32_t cdest_id);
    bool mayLeave(const Destination& destination) const;
    // Arena space for `length` bytes, flushing first if the batch is full.
    std::span<uint8_t> reserve(size_t length);
    size_t openSocket(const OuterHeader& outer);
    // UDP GSO (UDP_SEGMENT): consecutive copies of one size for one Cdest go
    // out as one message, one trip through the stack, cut into datagrams at
    // the device. Only for segments that fit the IPv6 minimum MTU with their
    // headers, so no path MTU can refuse them.
    static constexpr size_t kGsoMaxSegment = 1280 - 40 - 8;
    static constexpr size_t kGsoMaxSegments = 64;  // UDP_MAX_SEGMENTS on older kernels
    static constexpr size_t kGsoMaxBytes = 65000;  // one UDP datagram's worth
    // sendmmsg of consecutive copies on one socket; returns how many went out.
    size_t sendRun(size_t socket, std::span<const Pending> run);

    void lateDrop(Destination& destination, const Pending& copy, DropReason reason);

    TunnelOpen tunnel_open_;
    LateDrop late_drop_;
    UdpSenderOptions options_;
    std::unordered_map<uint32_t, Destination> destinations_;
    std::vector<SenderSocket> sockets_;
    std::vector<uint8_t> arena_;
    size_t arena_used_ = 0;
    std::vector<Pending> pending_;
    // sendmmsg scratch, kept to avoid allocating per flush.
    std::vector<mmsghdr> messages_;
    std::vector<iovec> iovecs_;
    std::vector<Pending> run_;
    struct Group {
        size_t first = 0;  // into the run
        size_t count = 0;
    };
    struct GsoControl {
        alignas(cmsghdr) char bytes[CMSG_SPACE(sizeof(uint16_t))];
    };
    std::vector<Group> groups_;
    std::vector<GsoControl> controls_;
    uint64_t gso_copies_ = 0;
    uint64_t gso_fallbacks_ = 0;
};

}  // namespace xtap::delivery
