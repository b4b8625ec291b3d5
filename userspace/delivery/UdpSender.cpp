#include "delivery/UdpSender.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <stdexcept>
#include <string>
#include <system_error>

namespace xtap::delivery {

namespace {

constexpr int kSendBufferBytes = 1 << 20;

size_t addressBytes(Family family) {
    return family == Family::V4 ? 4 : 16;
}

bool sameAddress(Family family, const Address& a, const Address& b) {
    return std::memcmp(a.data(), b.data(), addressBytes(family)) == 0;
}

bool prefixContains(const CleartextPrefix& allowed, Family family, const Address& address) {
    if (allowed.family != family) {
        return false;
    }
    const unsigned len = std::min<unsigned>(allowed.prefix.len, dataplane::addressBits(family));
    for (unsigned bit = 0; bit < len; ++bit) {
        const uint8_t mask = static_cast<uint8_t>(0x80u >> (bit % 8));
        if ((allowed.prefix.addr[bit / 8] & mask) != (address[bit / 8] & mask)) {
            return false;
        }
    }
    return true;
}

std::string addressText(Family family, const Address& address) {
    char text[INET6_ADDRSTRLEN] = {};
    ::inet_ntop(family == Family::V4 ? AF_INET : AF_INET6, address.data(), text, sizeof text);
    return text;
}

socklen_t socketAddress(Family family, const Address& address, uint16_t port,
                        sockaddr_storage& out) {
    out = {};
    if (family == Family::V4) {
        auto* v4 = reinterpret_cast<sockaddr_in*>(&out);
        v4->sin_family = AF_INET;
        v4->sin_port = htons(port);
        std::memcpy(&v4->sin_addr, address.data(), 4);
        return sizeof(sockaddr_in);
    }
    auto* v6 = reinterpret_cast<sockaddr_in6*>(&out);
    v6->sin6_family = AF_INET6;
    v6->sin6_port = htons(port);
    std::memcpy(&v6->sin6_addr, address.data(), 16);
    return sizeof(sockaddr_in6);
}

void setOption(int fd, int level, int name, int value, const std::string& what) {
    if (::setsockopt(fd, level, name, &value, sizeof value) < 0) {
        throw std::system_error(errno, std::generic_category(), what);
    }
}

}  // namespace

UdpSender::UdpSender(TunnelOpen tunnel_open, UdpSenderOptions options)
    : tunnel_open_(std::move(tunnel_open)), options_(std::move(options)) {
    if (!tunnel_open_) {
        throw std::invalid_argument("UdpSender needs a tunnel gate");
    }
    options_.batch_messages = std::max<size_t>(options_.batch_messages, 1);
    arena_.resize(std::max(options_.batch_bytes, kMaxUdpLength));
    pending_.reserve(options_.batch_messages);
    messages_.reserve(options_.batch_messages);
    iovecs_.reserve(options_.batch_messages);
    run_.reserve(options_.batch_messages);
}

UdpSender::~UdpSender() {
    flush();
}

UdpSender::Destination* UdpSender::find(uint32_t cdest_id) {
    auto it = destinations_.find(cdest_id);
    return it == destinations_.end() ? nullptr : &it->second;
}

bool UdpSender::hasDestination(uint32_t cdest_id) const {
    return destinations_.contains(cdest_id);
}

const CdestCounters* UdpSender::counters(uint32_t cdest_id) const {
    auto it = destinations_.find(cdest_id);
    return it == destinations_.end() ? nullptr : &it->second.counters;
}

size_t UdpSender::openSocket(const OuterHeader& outer) {
    for (size_t i = 0; i < sockets_.size(); ++i) {
        const SenderSocket& s = sockets_[i];
        if (s.fd && s.family == outer.family && s.source_port == outer.source_port &&
            s.ttl == outer.ttl && sameAddress(outer.family, s.source, outer.source)) {
            return i;
        }
    }
    const bool v4 = outer.family == Family::V4;
    const std::string source =
        addressText(outer.family, outer.source) + " port " + std::to_string(outer.source_port);
    UniqueFd fd(::socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) {
        throw std::system_error(errno, std::generic_category(), "UDP socket for " + source);
    }
    if (v4) {
        setOption(fd.get(), IPPROTO_IP, IP_TTL, outer.ttl, "IP_TTL on " + source);
        // No DF and no PMTU refusal: a copy above ipsec0's MTU (1400) is
        // fragmented here, and a smaller MTU behind the far gateway fragments
        // it again instead of dropping it with an ICMP error.
        setOption(fd.get(), IPPROTO_IP, IP_MTU_DISCOVER, IP_PMTUDISC_DONT,
                  "IP_MTU_DISCOVER on " + source);
    } else {
        setOption(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, 1, "IPV6_V6ONLY on " + source);
        setOption(fd.get(), IPPROTO_IPV6, IPV6_UNICAST_HOPS, outer.ttl,
                  "IPV6_UNICAST_HOPS on " + source);
        // IPv6 keeps the default PMTU handling: the kernel fragments at the
        // source to the known path MTU (IPV6_DONTFRAG stays off).
    }
    if (outer.source_port != 0) {
        // Two Cdests may share a source port with different TTLs, each on
        // its own socket. Nothing is ever read from these sockets.
        setOption(fd.get(), SOL_SOCKET, SO_REUSEADDR, 1, "SO_REUSEADDR on " + source);
    }
    if (options_.socket_setup) options_.socket_setup(fd.get());
    // Absorbs bursts; the kernel caps it at wmem_max, which is fine.
    const int send_buffer = kSendBufferBytes;
    ::setsockopt(fd.get(), SOL_SOCKET, SO_SNDBUF, &send_buffer, sizeof send_buffer);

    sockaddr_storage local{};
    const socklen_t local_length =
        socketAddress(outer.family, outer.source, outer.source_port, local);
    if (::bind(fd.get(), reinterpret_cast<const sockaddr*>(&local), local_length) < 0) {
        const int err = errno;
        if (err == EADDRNOTAVAIL) {
            throw std::system_error(err, std::generic_category(),
                                    "Cdest source " + source +
                                        ": not an address of this host (it must be a local "
                                        "address inside the tunnel's local_ts)");
        }
        throw std::system_error(err, std::generic_category(), "bind to Cdest source " + source);
    }

    SenderSocket entry{outer.family, outer.source, outer.source_port, outer.ttl, std::move(fd), 0};
    for (size_t i = 0; i < sockets_.size(); ++i) {
        if (!sockets_[i].fd) {
            sockets_[i] = std::move(entry);
            return i;
        }
    }
    sockets_.push_back(std::move(entry));
    return sockets_.size() - 1;
}

void UdpSender::addDestination(uint32_t cdest_id, const OuterHeader& outer) {
    if (auto valid = validate(outer); !valid) {
        throw std::invalid_argument("Cdest " + std::to_string(cdest_id) + ": " +
                                    std::string(describe(valid.error())));
    }
    if (destinations_.contains(cdest_id)) {
        throw std::invalid_argument("Cdest " + std::to_string(cdest_id) + " already added");
    }
    Destination destination;
    destination.outer = outer;
    destination.socket = openSocket(outer);
    destination.address_length =
        socketAddress(outer.family, outer.destination, outer.destination_port, destination.address);
    destination.cleartext_allowed =
        std::any_of(options_.cleartext_allowed.begin(), options_.cleartext_allowed.end(),
                    [&](const CleartextPrefix& allowed) {
                        return prefixContains(allowed, outer.family, outer.destination);
                    });
    ++sockets_[destination.socket].users;
    destinations_.emplace(cdest_id, std::move(destination));
}

void UdpSender::removeDestination(uint32_t cdest_id) {
    flush();
    auto it = destinations_.find(cdest_id);
    if (it == destinations_.end()) {
        return;
    }
    SenderSocket& socket = sockets_[it->second.socket];
    if (--socket.users == 0) {
        socket.fd.reset();
    }
    destinations_.erase(it);
}

bool UdpSender::mayLeave(const Destination& destination) const {
    return destination.cleartext_allowed ||
           tunnel_open_(destination.outer.family, destination.outer.destination);
}

std::span<uint8_t> UdpSender::reserve(size_t length) {
    if (pending_.size() >= options_.batch_messages || arena_used_ + length > arena_.size()) {
        flush();
    }
    return std::span<uint8_t>(arena_).subspan(arena_used_, length);
}

SendOutcome UdpSender::send(uint32_t cdest_id, const Encapsulator& encapsulator,
                            std::span<const uint8_t> packet, uint64_t tag) {
    Destination* destination = find(cdest_id);
    if (!destination) {
        return SendOutcome::UnknownDestination;
    }
    const size_t length = encapsulator.payloadSize(packet.size());
    // The gate comes first: a copy for a closed tunnel costs no encapsulation
    // and no syscall.
    if (!mayLeave(*destination)) {
        destination->counters.addDrop(DropReason::TunnelDown, length);
        return SendOutcome::DroppedTunnelDown;
    }
    if (length > maxUdpPayload(destination->outer.family)) {
        destination->counters.addDrop(DropReason::SendError, length);
        return SendOutcome::EncapsulationFailed;
    }
    const std::span<uint8_t> slot = reserve(length);
    auto written = encapsulator.encapsulate(packet, slot);
    if (!written) {
        destination->counters.addDrop(DropReason::SendError, length);
        return SendOutcome::EncapsulationFailed;
    }
    pending_.push_back(Pending{cdest_id, arena_used_, *written, tag});
    arena_used_ += *written;
    if (pending_.size() >= options_.batch_messages) {
        flush();
    }
    return SendOutcome::Queued;
}

SendOutcome UdpSender::sendPayload(uint32_t cdest_id, std::span<const uint8_t> udp_payload) {
    Destination* destination = find(cdest_id);
    if (!destination) {
        return SendOutcome::UnknownDestination;
    }
    if (!mayLeave(*destination)) {
        destination->counters.addDrop(DropReason::TunnelDown, udp_payload.size());
        return SendOutcome::DroppedTunnelDown;
    }
    if (udp_payload.size() > maxUdpPayload(destination->outer.family)) {
        destination->counters.addDrop(DropReason::SendError, udp_payload.size());
        return SendOutcome::EncapsulationFailed;
    }
    const std::span<uint8_t> slot = reserve(udp_payload.size());
    std::copy(udp_payload.begin(), udp_payload.end(), slot.begin());
    pending_.push_back(Pending{cdest_id, arena_used_, udp_payload.size()});
    arena_used_ += udp_payload.size();
    if (pending_.size() >= options_.batch_messages) {
        flush();
    }
    return SendOutcome::Queued;
}

void UdpSender::countDrop(uint32_t cdest_id, DropReason reason, uint64_t payload_bytes) {
    if (Destination* destination = find(cdest_id)) {
        destination->counters.addDrop(reason, payload_bytes);
    }
}

size_t UdpSender::sendRun(size_t socket, std::span<const Pending> run) {
    SenderSocket& sender = sockets_[socket];
    // Group consecutive copies for one Cdest that have one size and lie end to
    // end in the arena: with UDP GSO a group is one message.
    groups_.clear();
    for (size_t i = 0; i < run.size();) {
        size_t end = i + 1;
        if (sender.gso && run[i].length <= kGsoMaxSegment) {
            while (end < run.size() && end - i < kGsoMaxSegments &&
                   (end - i + 1) * run[i].length <= kGsoMaxBytes &&
                   run[end].cdest_id == run[i].cdest_id && run[end].length == run[i].length &&
                   run[end].offset == run[end - 1].offset + run[end - 1].length)
                ++end;
        }
        groups_.push_back({i, end - i});
        i = end;
    }
    messages_.assign(groups_.size(), mmsghdr{});
    iovecs_.resize(groups_.size());
    controls_.assign(groups_.size(), GsoControl{});
    for (size_t g = 0; g < groups_.size(); ++g) {
        const Pending& first = run[groups_[g].first];
        Destination& destination = *find(first.cdest_id);
        iovecs_[g] = iovec{arena_.data() + first.offset, first.length * groups_[g].count};
        msghdr& header = messages_[g].msg_hdr;
        header.msg_name = &destination.address;
        header.msg_namelen = destination.address_length;
        header.msg_iov = &iovecs_[g];
        header.msg_iovlen = 1;
        if (groups_[g].count > 1) {
            header.msg_control = controls_[g].bytes;
            header.msg_controllen = sizeof controls_[g].bytes;
            cmsghdr* cmsg = CMSG_FIRSTHDR(&header);
            cmsg->cmsg_level = SOL_UDP;
            cmsg->cmsg_type = UDP_SEGMENT;
            cmsg->cmsg_len = CMSG_LEN(sizeof(uint16_t));
            const auto segment = static_cast<uint16_t>(first.length);
            std::memcpy(CMSG_DATA(cmsg), &segment, sizeof segment);
        }
    }
    size_t accepted = 0;
    size_t next = 0;
    while (next < groups_.size()) {
        const int sent = ::sendmmsg(sender.fd.get(), messages_.data() + next,
                                    static_cast<unsigned>(groups_.size() - next), 0);
        if (sent > 0) {
            for (size_t g = next; g < next + static_cast<size_t>(sent); ++g)
                for (size_t i = groups_[g].first; i < groups_[g].first + groups_[g].count; ++i)
                    find(run[i].cdest_id)->counters.addSent(run[i].length);
            for (size_t g = next; g < next + static_cast<size_t>(sent); ++g) {
                accepted += groups_[g].count;
                if (groups_[g].count > 1) gso_copies_ += groups_[g].count;
            }
            next += static_cast<size_t>(sent);
            continue;
        }
        const int err = errno;
        if (sent < 0 && err == EINTR) continue;
        const Group group = groups_[next];
        if (group.count > 1 &&
            (err == EIO || err == EINVAL || err == EMSGSIZE || err == EOPNOTSUPP)) {
            // The route cannot take GSO (an xfrm route, a device without
            // checksum offload, a smaller MTU): this socket sends one message
            // per copy from now on, starting with this group's.
            sender.gso = false;
            ++gso_fallbacks_;
            // The scratch arrays are rebuilt for the rest: nothing of this
            // call's is used after it.
            return accepted + sendRun(socket, run.subspan(group.first));
        }
        // The first message failed (EHOSTUNREACH from the unreachable route
        // while the tunnel route is gone, ...): count it, go on with the rest.
        for (size_t i = group.first; i < group.first + group.count; ++i)
            lateDrop(*find(run[i].cdest_id), run[i], DropReason::SendError);
        ++next;
    }
    return accepted;
}

void UdpSender::lateDrop(Destination& destination, const Pending& copy, DropReason reason) {
    destination.counters.addDrop(reason, copy.length);
    if (late_drop_) late_drop_(copy.tag, reason, copy.length);
}

size_t UdpSender::flush() {
    if (pending_.empty()) {
        return 0;
    }
    size_t accepted = 0;
    run_.clear();
    size_t run_socket = 0;
    for (const Pending& copy : pending_) {
        Destination& destination = *find(copy.cdest_id);
        // Asked again: the tunnel may have gone down since the copy was queued.
        if (!mayLeave(destination)) {
            lateDrop(destination, copy, DropReason::TunnelDown);
            continue;
        }
        if (!run_.empty() && destination.socket != run_socket) {
            accepted += sendRun(run_socket, run_);
            run_.clear();
        }
        run_socket = destination.socket;
        run_.push_back(copy);
    }
    if (!run_.empty()) {
        accepted += sendRun(run_socket, run_);
        run_.clear();
    }
    pending_.clear();
    arena_used_ = 0;
    return accepted;
}

}  // namespace xtap::delivery
