// flowgen: one UDP flow at the highest rate the sender can make, for the
// benchmarks. Prebuilt Ethernet frames go out through an AF_PACKET socket with
// sendmmsg (qdisc bypassed), one thread per vCPU, each pinned to its CPU and
// using its own source port (or --flows ports in all, in turn). Bounded by
// --duration; --pps caps the total rate.
// Prints one JSON line: frames sent, send errors, elapsed seconds.
#include <arpa/inet.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <netinet/ip.h>
#include <netinet/ip6.h>
#include <netinet/udp.h>
#include <sched.h>
#include <sys/socket.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <array>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
constexpr size_t kBatch = 64;

struct FlowSpec {
    std::array<uint8_t, 6> src_mac{}, dst_mac{};
    int family = AF_INET;
    std::array<uint8_t, 16> src{}, dst{};
    uint16_t sport = 40000, dport = 9;
    size_t frame_size = 64;  // Ethernet header included, FCS not
};

std::array<uint8_t, 6> parseMac(const std::string& text) {
    std::array<uint8_t, 6> mac{};
    unsigned b[6];
    if (std::sscanf(text.c_str(), "%x:%x:%x:%x:%x:%x", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5]) !=
        6)
        throw std::runtime_error("bad MAC address " + text);
    for (int i = 0; i < 6; ++i) mac[i] = uint8_t(b[i]);
    return mac;
}

int parseAddress(const std::string& text, std::array<uint8_t, 16>& out) {
    if (inet_pton(AF_INET, text.c_str(), out.data()) == 1) return AF_INET;
    if (inet_pton(AF_INET6, text.c_str(), out.data()) == 1) return AF_INET6;
    throw std::runtime_error("bad IP address " + text);
}

uint32_t sum16(const uint8_t* p, size_t n, uint32_t acc = 0) {
    for (size_t i = 0; i + 1 < n; i += 2) acc += uint32_t(p[i]) << 8 | p[i + 1];
    if (n % 2) acc += uint32_t(p[n - 1]) << 8;
    return acc;
}

uint16_t fold(uint32_t acc) {
    while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
    return uint16_t(~acc);
}

std::vector<uint8_t> buildFrame(const FlowSpec& f) {
    const size_t ip_header = f.family == AF_INET ? sizeof(iphdr) : sizeof(ip6_hdr);
    const size_t min_size = sizeof(ether_header) + ip_header + sizeof(udphdr);
    if (f.frame_size < std::max<size_t>(min_size, 60) || f.frame_size > 1514)
        throw std::runtime_error("frame size must be between " +
                                 std::to_string(std::max<size_t>(min_size, 60)) + " and 1514");
    std::vector<uint8_t> frame(f.frame_size, 0);
    auto* eth = reinterpret_cast<ether_header*>(frame.data());
    std::memcpy(eth->ether_dhost, f.dst_mac.data(), 6);
    std::memcpy(eth->ether_shost, f.src_mac.data(), 6);
    eth->ether_type = htons(f.family == AF_INET ? ETHERTYPE_IP : ETHERTYPE_IPV6);
    uint8_t* l3 = frame.data() + sizeof(ether_header);
    const size_t ip_len = f.frame_size - sizeof(ether_header);
    const size_t udp_len = ip_len - ip_header;
    auto* udp = reinterpret_cast<udphdr*>(l3 + ip_header);
    udp->source = htons(f.sport);
    udp->dest = htons(f.dport);
    udp->len = htons(uint16_t(udp_len));
    // The IP headers are built aligned and copied in: l3 is 14 bytes into the
    // frame, off the 4-byte alignment iphdr and ip6_hdr need (UBSan).
    if (f.family == AF_INET) {
        iphdr ip{};
        ip.version = 4;
        ip.ihl = 5;
        ip.tot_len = htons(uint16_t(ip_len));
        ip.ttl = 64;
        ip.protocol = IPPROTO_UDP;
        std::memcpy(&ip.saddr, f.src.data(), 4);
        std::memcpy(&ip.daddr, f.dst.data(), 4);
        ip.check = htons(fold(sum16(reinterpret_cast<const uint8_t*>(&ip), sizeof ip)));
        std::memcpy(l3, &ip, sizeof ip);
        // UDP checksum 0: none, allowed over IPv4.
    } else {
        ip6_hdr ip{};
        ip.ip6_flow = htonl(6u << 28);
        ip.ip6_plen = htons(uint16_t(udp_len));
        ip.ip6_nxt = IPPROTO_UDP;
        ip.ip6_hlim = 64;
        std::memcpy(&ip.ip6_src, f.src.data(), 16);
        std::memcpy(&ip.ip6_dst, f.dst.data(), 16);
        std::memcpy(l3, &ip, sizeof ip);
        uint32_t acc = sum16(f.src.data(), 16);
        acc = sum16(f.dst.data(), 16, acc);
        acc += uint32_t(udp_len) + IPPROTO_UDP;
        acc = sum16(reinterpret_cast<uint8_t*>(udp), udp_len, acc);
        const uint16_t c = fold(acc);
        udp->check = htons(c == 0 ? 0xffff : c);
    }
    return frame;
}

struct Fd {
    int fd;
    explicit Fd(int f) : fd(f) {
        if (fd < 0) throw std::system_error(errno, std::generic_category(), "socket(AF_PACKET)");
    }
    ~Fd() { ::close(fd); }
    Fd(const Fd&) = delete;
    Fd& operator=(const Fd&) = delete;
};

struct ThreadResult {
    uint64_t sent = 0;
    uint64_t errors = 0;
};

// One sender: its own socket, its own frames (`flows` source ports from
// spec.sport, taken in turn), pinned to one CPU.
void sendLoop(const FlowSpec& spec, unsigned flows, int ifindex, unsigned cpu,
              Clock::time_point deadline, double pps, ThreadResult& result) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    sched_setaffinity(0, sizeof set, &set);  // best effort: a cpuset may forbid it

    Fd sock(::socket(AF_PACKET, SOCK_RAW, 0));  // protocol 0: send only, never receives
    const int one = 1;
    setsockopt(sock.fd, SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof one);
    sockaddr_ll addr{};
    addr.sll_family = AF_PACKET;
    addr.sll_ifindex = ifindex;
    addr.sll_halen = 6;
    std::memcpy(addr.sll_addr, spec.dst_mac.data(), 6);

    std::vector<std::vector<uint8_t>> frames;
    for (unsigned k = 0; k < flows; ++k) {
        FlowSpec f = spec;
        f.sport = uint16_t(spec.sport + k);
        frames.push_back(buildFrame(f));
    }
    std::vector<iovec> iovs;
    for (auto& frame : frames) iovs.push_back({frame.data(), frame.size()});
    std::vector<mmsghdr> msgs(kBatch);
    for (size_t i = 0; i < msgs.size(); ++i) {
        auto& m = msgs[i];
        m.msg_hdr = {};
        m.msg_hdr.msg_name = &addr;
        m.msg_hdr.msg_namelen = sizeof addr;
        m.msg_hdr.msg_iov = &iovs[i % iovs.size()];
        m.msg_hdr.msg_iovlen = 1;
    }
    // A paced batch holds at most 1 ms of the rate: a slow flow goes out
    // packet by packet, not as a 64-frame train every 64 ms, so two paced
    // flows interleave as the tests that race them assume.
    const unsigned batch =
        pps > 0 ? unsigned(std::clamp(pps / 1000.0, 1.0, double(kBatch))) : unsigned(kBatch);
    const auto start = Clock::now();
    while (true) {
        const auto now = Clock::now();
        if (now >= deadline) break;
        if (pps > 0) {  // pace: never ahead of pps * elapsed
            const double allowed = pps * std::chrono::duration<double>(now - start).count();
            if (double(result.sent + result.errors) >= allowed) {
                std::this_thread::sleep_for(std::chrono::microseconds(50));
                continue;
            }
        }
        const int n = ::sendmmsg(sock.fd, msgs.data(), batch, 0);
        if (n < 0) {
            ++result.errors;  // ENOBUFS and the like: the path is full
            continue;
        }
        result.sent += unsigned(n);
    }
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"UDP flow generator (AF_PACKET, sendmmsg), for the benchmarks"};
    std::string ifname, dst_mac, src, dst;
    double duration = 10, pps = 0;
    unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    FlowSpec spec;
    app.add_option("-i,--interface", ifname, "send on this interface")->required();
    app.add_option("--dst-mac", dst_mac, "next hop's MAC address")->required();
    app.add_option("--src", src, "source IPv4 or IPv6 address")->required();
    app.add_option("--dst", dst, "destination address, same family")->required();
    unsigned flows = 0;
    app.add_option("--sport", spec.sport,
                   "source port of thread 0 (thread t uses sport + t, or its --flows ports)");
    app.add_option("--flows", flows,
                   "flows (source ports) in all, shared out among the threads (default: one "
                   "per thread)")
        ->check(CLI::Range(1, 4096));
    app.add_option("--dport", spec.dport, "destination port");
    app.add_option("--size", spec.frame_size,
                   "frame size in bytes, Ethernet header included (60..1514)");
    app.add_option("--duration", duration, "seconds to send")->check(CLI::Range(0.1, 600.0));
    app.add_option("--threads", threads, "sending threads (default: one per vCPU)")
        ->check(CLI::Range(1, 256));
    app.add_option("--pps", pps, "total rate cap in packets/s (default: as fast as possible)");
    CLI11_PARSE(app, argc, argv);

    try {
        const int ifindex = int(if_nametoindex(ifname.c_str()));
        if (ifindex == 0) throw std::runtime_error("no interface " + ifname);
        spec.dst_mac = parseMac(dst_mac);
        {
            std::ifstream in("/sys/class/net/" + ifname + "/address");
            std::string mac;
            in >> mac;
            spec.src_mac = parseMac(mac);
        }
        spec.family = parseAddress(src, spec.src);
        if (parseAddress(dst, spec.dst) != spec.family)
            throw std::runtime_error("--src and --dst differ in family");
        buildFrame(spec);  // validate before starting threads

        std::vector<ThreadResult> results(threads);
        std::vector<std::thread> workers;
        const auto start = Clock::now();
        const auto deadline = start + std::chrono::duration_cast<Clock::duration>(
                                          std::chrono::duration<double>(duration));
        const unsigned cpus = std::max(1u, std::thread::hardware_concurrency());
        const unsigned per_thread = std::max(1u, flows / threads);
        for (unsigned t = 0; t < threads; ++t) {
            FlowSpec s = spec;
            s.sport = uint16_t(spec.sport + t * per_thread);
            workers.emplace_back(
                [s, per_thread, ifindex, t, cpus, deadline, rate = pps / threads, &r = results[t]] {
                    try {
                        sendLoop(s, per_thread, ifindex, t % cpus, deadline, rate, r);
                    } catch (const std::exception& e) {
                        std::cerr << "flowgen: " << e.what() << "\n";
                        r.errors = ~0ull;
                    }
                });
        }
        for (auto& w : workers) w.join();
        const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();
        uint64_t sent = 0, errors = 0;
        for (const auto& r : results) {
            if (r.errors == ~0ull) return 1;
            sent += r.sent;
            errors += r.errors;
        }
        std::cout << nlohmann::json{{"sent", sent},
                                    {"send_errors", errors},
                                    {"elapsed_s", elapsed},
                                    {"threads", threads},
                                    {"frame_size", spec.frame_size}}
                         .dump()
                  << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "flowgen: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
