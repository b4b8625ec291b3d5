// udp_count: counts the UDP datagrams (copies) arriving on one address and
// port for a bounded time, for the benchmarks. recvmmsg in batches; the kernel
// reports its own socket drops (SO_RXQ_OVFL) and they are printed beside the
// count. Prints one JSON line. After a read that drained the socket it pauses
// (--coalesce-us) rather than being woken per datagram, as a capture tool
// does (libpcap's TPACKET_V3 blocks): on veth the wakeup of the MD's reader
// runs in the sender's context, so a reader woken per copy would charge its
// wakeups to xtapd. With --gro the socket takes UDP GRO (UDP_GRO): a UDP GSO
// message crossing the veth stays one buffer to the reader, which counts its
// segments (length / segment size, rounded up), as a receiver on another host
// would get it from its NIC's GRO; without it the kernel segments each message
// on these same two vCPUs and charges that to the sender.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <array>
#include <chrono>
#include <cstring>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBatch = 64;
constexpr size_t kMaxDatagram = 4096;
constexpr size_t kMaxGroDatagram = 65536;  // a whole UDP GSO message

sockaddr_storage parseEndpoint(const std::string& text, socklen_t& len) {
    // ADDR:PORT for IPv4, [ADDR]:PORT for IPv6.
    const auto colon = text.rfind(':');
    if (colon == std::string::npos) throw std::runtime_error("expected ADDR:PORT, got " + text);
    std::string host = text.substr(0, colon);
    const int port = std::stoi(text.substr(colon + 1));
    sockaddr_storage ss{};
    if (host.size() > 1 && host.front() == '[') {
        host = host.substr(1, host.size() - 2);
        auto* a = reinterpret_cast<sockaddr_in6*>(&ss);
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(uint16_t(port));
        if (inet_pton(AF_INET6, host.c_str(), &a->sin6_addr) != 1)
            throw std::runtime_error("bad address " + host);
        len = sizeof(sockaddr_in6);
    } else {
        auto* a = reinterpret_cast<sockaddr_in*>(&ss);
        a->sin_family = AF_INET;
        a->sin_port = htons(uint16_t(port));
        if (inet_pton(AF_INET, host.c_str(), &a->sin_addr) != 1)
            throw std::runtime_error("bad address " + host);
        len = sizeof(sockaddr_in);
    }
    return ss;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"count UDP datagrams for a bounded time, for the benchmarks"};
    std::string listen;
    double duration = 10;
    unsigned coalesce_us = 200;
    bool gro = false;
    app.add_option("-l,--listen", listen, "ADDR:PORT or [ADDR]:PORT")->required();
    app.add_option("--duration", duration, "seconds to count")->check(CLI::Range(0.1, 3600.0));
    app.add_option("--coalesce-us", coalesce_us,
                   "pause after a read that drained the socket (0: block per datagram)")
        ->check(CLI::Range(0u, 10000u));
    app.add_flag("--gro", gro, "UDP GRO: count the segments of each coalesced datagram");
    CLI11_PARSE(app, argc, argv);

    int fd = -1;
    try {
        socklen_t len = 0;
        const sockaddr_storage addr = parseEndpoint(listen, len);
        fd = ::socket(addr.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket");
        const int rcvbuf = 32 << 20, one = 1;
        setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf,
                   sizeof rcvbuf);  // root; else capped, fine
        setsockopt(fd, SOL_SOCKET, SO_RXQ_OVFL, &one, sizeof one);
        if (gro && setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof one) < 0)
            throw std::system_error(errno, std::generic_category(), "UDP_GRO");
        timeval tv{0, 100000};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        if (::bind(fd, reinterpret_cast<const sockaddr*>(&addr), len) < 0)
            throw std::system_error(errno, std::generic_category(), "bind " + listen);
        std::cout << nlohmann::json{{"listening", listen}}.dump() << std::endl;

        const size_t buf_size = gro ? kMaxGroDatagram : kMaxDatagram;
        std::vector<uint8_t> buffer(kBatch * buf_size);
        std::vector<iovec> iovs(kBatch);
        constexpr size_t kControl = CMSG_SPACE(sizeof(uint32_t)) + CMSG_SPACE(sizeof(int));
        std::vector<std::array<uint8_t, kControl>> controls(kBatch);
        std::vector<mmsghdr> msgs(kBatch);
        uint64_t datagrams = 0, bytes = 0;
        uint32_t socket_drops = 0;
        const auto start = Clock::now();
        const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(duration));
        while (Clock::now() < deadline) {
            for (size_t i = 0; i < kBatch; ++i) {
                iovs[i] = {buffer.data() + i * buf_size, buf_size};
                msgs[i].msg_hdr = {};
                msgs[i].msg_hdr.msg_iov = &iovs[i];
                msgs[i].msg_hdr.msg_iovlen = 1;
                msgs[i].msg_hdr.msg_control = controls[i].data();
                msgs[i].msg_hdr.msg_controllen = controls[i].size();
            }
            const int n = ::recvmmsg(fd, msgs.data(), kBatch, MSG_WAITFORONE, nullptr);
            if (n <= 0) continue;  // timeout: look at the deadline again
            for (int i = 0; i < n; ++i) {
                int segment = 0;  // UDP GRO: the size of each coalesced datagram
                for (cmsghdr* c = CMSG_FIRSTHDR(&msgs[i].msg_hdr); c;
                     c = CMSG_NXTHDR(&msgs[i].msg_hdr, c)) {
                    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL)
                        std::memcpy(&socket_drops, CMSG_DATA(c), sizeof socket_drops);
                    if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO)
                        std::memcpy(&segment, CMSG_DATA(c), sizeof segment);
                }
                const uint64_t len = msgs[i].msg_len;
                datagrams += segment > 0 ? (len + uint64_t(segment) - 1) / uint64_t(segment) : 1;
                // Every copy's payload, whole: bytes count alike either way.
                bytes += len;
            }
            if (size_t(n) < kBatch && coalesce_us > 0)
                std::this_thread::sleep_for(std::chrono::microseconds(coalesce_us));
        }
        const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        std::cout << nlohmann::json{{"datagrams", datagrams},
                                    {"bytes", bytes},
                                    {"socket_drops", socket_drops},
                                    {"elapsed_s", elapsed}}
                         .dump()
                  << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "udp_count: " << e.what() << "\n";
        if (fd >= 0) ::close(fd);
        return 1;
    }
    ::close(fd);
    return 0;
}
