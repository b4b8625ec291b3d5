#include "delivery/CopyReceiver.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <cstring>
#include <system_error>

#include "delivery/Encapsulator.h"

namespace xtap::delivery {

namespace {

constexpr size_t kBatch = 32;
constexpr size_t kDatagramBytes = kMaxUdpLength + 1;  // one more: a truncated read shows
constexpr size_t kControlBytes = CMSG_SPACE(sizeof(timespec));

std::optional<uint16_t> parsePort(std::string_view text) {
    unsigned port = 0;
    const auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), port);
    if (ec != std::errc{} || end != text.data() + text.size() || port == 0 || port > 65535) {
        return std::nullopt;
    }
    return static_cast<uint16_t>(port);
}

Endpoint endpointOf(const sockaddr_storage& address) {
    Endpoint endpoint;
    if (address.ss_family == AF_INET) {
        const auto& v4 = reinterpret_cast<const sockaddr_in&>(address);
        endpoint.family = Family::V4;
        std::memcpy(endpoint.address.data(), &v4.sin_addr, 4);
        endpoint.port = ntohs(v4.sin_port);
    } else {
        const auto& v6 = reinterpret_cast<const sockaddr_in6&>(address);
        endpoint.family = Family::V6;
        std::memcpy(endpoint.address.data(), &v6.sin6_addr, 16);
        endpoint.port = ntohs(v6.sin6_port);
    }
    return endpoint;
}

timespec receiveTime(msghdr& header) {
    for (cmsghdr* cmsg = CMSG_FIRSTHDR(&header); cmsg; cmsg = CMSG_NXTHDR(&header, cmsg)) {
        if (cmsg->cmsg_level == SOL_SOCKET && cmsg->cmsg_type == SCM_TIMESTAMPNS) {
            timespec when{};
            std::memcpy(&when, CMSG_DATA(cmsg), sizeof when);
            return when;
        }
    }
    timespec now{};
    ::clock_gettime(CLOCK_REALTIME, &now);
    return now;
}

}  // namespace

std::optional<Endpoint> parseEndpoint(std::string_view text) {
    Endpoint endpoint;
    std::string host;
    std::string_view port;
    if (text.starts_with('[')) {
        const size_t close = text.find("]:");
        if (close == std::string_view::npos) {
            return std::nullopt;
        }
        host = std::string(text.substr(1, close - 1));
        port = text.substr(close + 2);
        endpoint.family = Family::V6;
    } else {
        const size_t colon = text.rfind(':');
        if (colon == std::string_view::npos || text.find(':') != colon) {
            return std::nullopt;
        }
        host = std::string(text.substr(0, colon));
        port = text.substr(colon + 1);
        endpoint.family = Family::V4;
    }
    const int af = endpoint.family == Family::V4 ? AF_INET : AF_INET6;
    if (::inet_pton(af, host.c_str(), endpoint.address.data()) != 1) {
        return std::nullopt;
    }
    auto number = parsePort(port);
    if (!number) {
        return std::nullopt;
    }
    endpoint.port = *number;
    return endpoint;
}

std::string formatEndpoint(const Endpoint& endpoint) {
    char text[INET6_ADDRSTRLEN] = {};
    const bool v4 = endpoint.family == Family::V4;
    ::inet_ntop(v4 ? AF_INET : AF_INET6, endpoint.address.data(), text, sizeof text);
    return v4 ? std::string(text) + ":" + std::to_string(endpoint.port)
              : "[" + std::string(text) + "]:" + std::to_string(endpoint.port);
}

std::optional<Format> parseFormat(std::string_view text) {
    if (text == "flowtap") {
        return Format::Flowtap;
    }
    if (text == "jmirror") {
        return Format::Jmirror;
    }
    return std::nullopt;
}

std::string_view name(Format format) {
    return format == Format::Jmirror ? "jmirror" : "flowtap";
}

void CopyTally::record(const Endpoint& sender, const Result<DecodedCopy>& decoded) {
    ++datagrams;
    if (!decoded) {
        ++errors[decoded.error()];
        if (decoded.error() == DeliveryError::FormatMismatch) {
            ++format_mismatches;
        }
        return;
    }
    ++copies;
    original_bytes += decoded->packet.size();
    ++(decoded->family == Family::V4 ? inner_ipv4 : inner_ipv6);
    if (decoded->format == Format::Jmirror) {
        ++jmirror_by_ids[{decoded->intercept_id, decoded->session_id}];
    } else {
        ++flowtap_by_sender[sender];
    }
}

uint64_t CopyTally::failures() const {
    uint64_t total = 0;
    for (const auto& [error, count] : errors) {
        total += count;
    }
    return total;
}

CopyReceiver::CopyReceiver(const Endpoint& listen, std::optional<Format> expected,
                           int receive_buffer_bytes)
    : expected_(expected), buffers_(kBatch * (kDatagramBytes + kControlBytes)) {
    const bool v4 = listen.family == Family::V4;
    fd_.reset(::socket(v4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd_) {
        throw std::system_error(errno, std::generic_category(), "UDP socket");
    }
    const int on = 1;
    if (!v4 && ::setsockopt(fd_.get(), IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0) {
        throw std::system_error(errno, std::generic_category(), "IPV6_V6ONLY");
    }
    if (::setsockopt(fd_.get(), SOL_SOCKET, SO_TIMESTAMPNS, &on, sizeof on) < 0) {
        throw std::system_error(errno, std::generic_category(), "SO_TIMESTAMPNS");
    }
    // Bursts of copies outrun a small default buffer; FORCE (CAP_NET_ADMIN)
    // passes rmem_max, the plain option is the fallback.
    if (::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUFFORCE, &receive_buffer_bytes,
                     sizeof receive_buffer_bytes) < 0) {
        ::setsockopt(fd_.get(), SOL_SOCKET, SO_RCVBUF, &receive_buffer_bytes,
                     sizeof receive_buffer_bytes);
    }
    sockaddr_storage address{};
    socklen_t length = 0;
    if (v4) {
        auto* in = reinterpret_cast<sockaddr_in*>(&address);
        in->sin_family = AF_INET;
        in->sin_port = htons(listen.port);
        std::memcpy(&in->sin_addr, listen.address.data(), 4);
        length = sizeof(sockaddr_in);
    } else {
        auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons(listen.port);
        std::memcpy(&in6->sin6_addr, listen.address.data(), 16);
        length = sizeof(sockaddr_in6);
    }
    if (::bind(fd_.get(), reinterpret_cast<const sockaddr*>(&address), length) < 0) {
        throw std::system_error(errno, std::generic_category(),
                                "bind to " + formatEndpoint(listen));
    }
}

size_t CopyReceiver::receiveAvailable(const CopyHandler& on_copy, size_t max_datagrams) {
    std::array<mmsghdr, kBatch> messages{};
    std::array<iovec, kBatch> iovecs{};
    std::array<sockaddr_storage, kBatch> senders{};
    size_t taken = 0;
    while (taken < max_datagrams) {
        const size_t want = std::min(kBatch, max_datagrams - taken);
        for (size_t i = 0; i < want; ++i) {
            uint8_t* base = buffers_.data() + i * (kDatagramBytes + kControlBytes);
            iovecs[i] = iovec{base, kDatagramBytes};
            messages[i] = mmsghdr{};
            msghdr& header = messages[i].msg_hdr;
            header.msg_name = &senders[i];
            header.msg_namelen = sizeof senders[i];
            header.msg_iov = &iovecs[i];
            header.msg_iovlen = 1;
            header.msg_control = base + kDatagramBytes;
            header.msg_controllen = kControlBytes;
        }
        const int got = ::recvmmsg(fd_.get(), messages.data(), static_cast<unsigned>(want),
                                   MSG_DONTWAIT, nullptr);
        if (got < 0) {
            if (errno == EINTR) {
                continue;
            }
            if (errno == EAGAIN) {
                break;
            }
            throw std::system_error(errno, std::generic_category(), "receive copies");
        }
        for (size_t i = 0; i < static_cast<size_t>(got); ++i) {
            msghdr& header = messages[i].msg_hdr;
            const Endpoint sender = endpointOf(senders[i]);
            const size_t length = messages[i].msg_len;
            const std::span<const uint8_t> payload(static_cast<const uint8_t*>(iovecs[i].iov_base),
                                                   length);
            // A datagram above the UDP maximum cannot exist; MSG_TRUNC is kept
            // as a decoding failure rather than trusted.
            const Result<DecodedCopy> decoded =
                (header.msg_flags & MSG_TRUNC) ? Result<DecodedCopy>(DeliveryError::PacketTooLarge)
                                               : decodePayload(payload, expected_);
            tally_.record(sender, decoded);
            if (decoded && on_copy) {
                on_copy(ReceivedCopy{sender, receiveTime(header), *decoded});
            }
        }
        taken += static_cast<size_t>(got);
        if (static_cast<size_t>(got) < want) {
            break;
        }
    }
    return taken;
}

}  // namespace xtap::delivery
