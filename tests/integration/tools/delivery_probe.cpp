// delivery_probe: the delivery half of xtapd for the IPsec integration test.
// Runs the real TunnelManager (vici, events, re-initiation, charon restarts)
// on its own thread, installs the backup unreachable routes, and streams
// synthetic copies through the real UdpSender, gated per copy by the
// TunnelManager's SendGate. Inner packets alternate IPv4/IPv6 with sizes
// 64..1500 bytes; each carries a marker and its sequence number, so the test
// can look for them on the wire and match them at the receiver.
//
// Output: JSON lines on stdout, each with "t_ms" (since start) and "event":
//   routes  the prefixes given unreachable routes
//   tunnel  a tunnel changed state (name, state, offered so far)
//   ready   every Cdest's gate is open (or --wait-up 0); sending starts
//   stats   per-Cdest counters every --stats-ms
//   final   the same after the last flush, plus "offered"
// --offered-pcap writes every offered original (raw IP), sent or dropped.
//
// Config (JSON):
//   {"vici": "unix:///run/a/charon.vici", "retry_initial_ms": 200, ...,
//    "tunnels": [{"name", "local_addrs", "remote_addrs", "local_id", "remote_id",
//                 "psk" | "certificates": {"certificate", "private_key", "ca_certificates"},
//                 "ike_proposals", "esp_proposals", "local_ts", "remote_ts",
//                 "cdest_prefixes", "dpd_delay"}],
//    "cdests": [{"id", "source", "source_port", "destination", "port", "ttl",
//                "format": "flowtap"|"jmirror", "intercept_id", "session_id"}],
//    "cleartext_allowed": ["prefix", ...]}
#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <sys/time.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <iostream>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "delivery/Encapsulator.h"
#include "delivery/UdpSender.h"
#include "ipsec/TunnelManager.h"

using namespace xtap;
using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

namespace {

// Marker and sequence number fill exactly the 16 payload bytes of the
// smallest original (64-byte IPv6: 40 IPv6 + 8 UDP + 16).
constexpr char kMarker[] = "XTAPCOPY";  // 8 bytes; never expected on the outer link
constexpr size_t kMarkerSize = sizeof kMarker - 1;
constexpr size_t kMinInner = 64;
constexpr size_t kMaxInner = 1500;

struct CdestSpec {
    uint32_t id = 0;
    delivery::DeliveryParams params;
};

struct ProbeConfig {
    ipsec::TunnelManagerConfig manager;
    std::vector<CdestSpec> cdests;
    std::vector<delivery::CleartextPrefix> cleartext_allowed;
};

delivery::Address parseAddress(const std::string& text, delivery::Family& family) {
    delivery::Address address{};
    if (inet_pton(AF_INET, text.c_str(), address.data()) == 1) {
        family = delivery::Family::V4;
    } else if (inet_pton(AF_INET6, text.c_str(), address.data()) == 1) {
        family = delivery::Family::V6;
    } else {
        throw std::invalid_argument("not an address: " + text);
    }
    return address;
}

std::vector<std::string> strings(const json& object, const char* key) {
    return object.contains(key) ? object.at(key).get<std::vector<std::string>>()
                                : std::vector<std::string>{};
}

ProbeConfig loadConfig(const std::string& path) {
    std::ifstream in(path);
    if (!in) {
        throw std::invalid_argument("cannot read " + path);
    }
    const json doc = json::parse(in);
    ProbeConfig config;
    auto& manager = config.manager;
    manager.vici_socket = doc.at("vici").get<std::string>();
    auto millis = [&](const char* key, std::chrono::milliseconds& out) {
        if (doc.contains(key)) {
            out = std::chrono::milliseconds(doc.at(key).get<int64_t>());
        }
    };
    millis("command_timeout_ms", manager.command_timeout);
    millis("establish_timeout_ms", manager.establish_timeout);
    millis("retry_initial_ms", manager.retry_initial);
    millis("retry_max_ms", manager.retry_max);
    millis("reconnect_initial_ms", manager.reconnect_initial);
    millis("reconnect_max_ms", manager.reconnect_max);
    millis("resync_interval_ms", manager.resync_interval);
    for (const json& t : doc.at("tunnels")) {
        ipsec::TunnelSpec spec;
        spec.name = t.at("name").get<std::string>();
        spec.child_name = t.value("child_name", "");
        spec.local_addrs = strings(t, "local_addrs");
        spec.remote_addrs = strings(t, "remote_addrs");
        spec.local_id = t.value("local_id", "");
        spec.remote_id = t.value("remote_id", "");
        spec.psk = t.value("psk", "");
        if (t.contains("certificates")) {
            const json& c = t.at("certificates");
            spec.certificates = ipsec::CertificateFiles{c.at("certificate").get<std::string>(),
                                                        c.at("private_key").get<std::string>(),
                                                        strings(c, "ca_certificates")};
        }
        spec.ike_proposals = strings(t, "ike_proposals");
        spec.esp_proposals = strings(t, "esp_proposals");
        spec.local_ts = strings(t, "local_ts");
        spec.remote_ts = strings(t, "remote_ts");
        spec.cdest_prefixes = strings(t, "cdest_prefixes");
        spec.dpd_delay = t.value("dpd_delay", spec.dpd_delay);
        manager.tunnels.push_back(std::move(spec));
    }
    for (const json& c : doc.at("cdests")) {
        CdestSpec cdest;
        cdest.id = c.at("id").get<uint32_t>();
        auto& outer = cdest.params.outer;
        delivery::Family destination_family{};
        outer.source = parseAddress(c.at("source").get<std::string>(), outer.family);
        outer.destination =
            parseAddress(c.at("destination").get<std::string>(), destination_family);
        if (destination_family != outer.family) {
            throw std::invalid_argument("cdest " + std::to_string(cdest.id) + ": mixed families");
        }
        outer.source_port = c.value("source_port", uint16_t{0});
        outer.destination_port = c.at("port").get<uint16_t>();
        outer.ttl = c.value("ttl", delivery::kDefaultTtl);
        auto& encapsulation = cdest.params.encapsulation;
        encapsulation.format = c.value("format", "flowtap") == "jmirror"
                                   ? delivery::Format::Jmirror
                                   : delivery::Format::Flowtap;
        encapsulation.intercept_id = c.value("intercept_id", 0u);
        encapsulation.session_id = c.value("session_id", 0u);
        config.cdests.push_back(cdest);
    }
    for (const std::string& text : strings(doc, "cleartext_allowed")) {
        auto prefix = ipsec::parseIpPrefix(text);
        if (!prefix) {
            throw std::invalid_argument("cleartext_allowed: not a prefix: " + text);
        }
        config.cleartext_allowed.push_back(
            delivery::CleartextPrefix{prefix->family, prefix->prefix});
    }
    return config;
}

void store16(uint8_t* at, uint16_t value) {
    at[0] = static_cast<uint8_t>(value >> 8);
    at[1] = static_cast<uint8_t>(value);
}

uint16_t ipv4HeaderChecksum(const uint8_t* header) {
    uint32_t sum = 0;
    for (size_t i = 0; i < 20; i += 2) {
        sum += static_cast<uint32_t>(header[i] << 8 | header[i + 1]);
    }
    while (sum >> 16) {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    return static_cast<uint16_t>(~sum);
}

// A synthetic original: IPv4 (no options, so tshark decodes it) or IPv6, UDP
// 1000 -> 2000 between documentation-range hosts, payload = marker, sequence
// number, then a pattern. UDP checksum 0 (IPv4) / left as zero (a copy is
// forwarded as received, whatever its checksums).
std::vector<uint8_t> syntheticPacket(uint64_t seq, bool ipv6, size_t size) {
    static_assert(kMinInner >= 40 + 8 + kMarkerSize + 8);
    std::vector<uint8_t> packet(size, 0);
    size_t l4 = 0;
    if (!ipv6) {
        uint8_t* ip = packet.data();
        ip[0] = 0x45;
        store16(ip + 2, static_cast<uint16_t>(size));
        store16(ip + 4, static_cast<uint16_t>(seq));
        ip[8] = 64;
        ip[9] = 17;
        const uint8_t source[4] = {198, 18, 100, 1};
        const uint8_t destination[4] = {198, 18, 101, 1};
        std::memcpy(ip + 12, source, 4);
        std::memcpy(ip + 16, destination, 4);
        store16(ip + 10, ipv4HeaderChecksum(ip));
        l4 = 20;
    } else {
        uint8_t* ip = packet.data();
        ip[0] = 0x60;
        store16(ip + 4, static_cast<uint16_t>(size - 40));
        ip[6] = 17;
        ip[7] = 64;
        const uint8_t source[16] = {0x20, 0x01, 0x0d, 0xb8, 0x01, 0x00, 0, 0,
                                    0,    0,    0,    0,    0,    0,    0, 1};
        uint8_t destination[16];
        std::memcpy(destination, source, 16);
        destination[5] = 0x01;
        std::memcpy(ip + 8, source, 16);
        std::memcpy(ip + 24, destination, 16);
        l4 = 40;
    }
    store16(packet.data() + l4, 1000);
    store16(packet.data() + l4 + 2, 2000);
    store16(packet.data() + l4 + 4, static_cast<uint16_t>(size - l4));
    uint8_t* payload = packet.data() + l4 + 8;
    std::memcpy(payload, kMarker, kMarkerSize);
    for (size_t i = 0; i < 8; ++i) {
        payload[kMarkerSize + i] = static_cast<uint8_t>(seq >> (56 - 8 * i));
    }
    for (size_t i = l4 + 8 + kMarkerSize + 8; i < size; ++i) {
        packet[i] = static_cast<uint8_t>(seq + i);
    }
    return packet;
}

class OfferedPcap {
  public:
    explicit OfferedPcap(const std::string& path)
        : handle_(pcap_open_dead(DLT_RAW, 65535), pcap_close),
          dumper_(pcap_dump_open(handle_.get(), path.c_str()), pcap_dump_close) {
        if (!dumper_) {
            throw std::runtime_error("cannot write " + path);
        }
    }
    void write(const std::vector<uint8_t>& packet) {
        pcap_pkthdr header{};
        gettimeofday(&header.ts, nullptr);
        header.caplen = header.len = static_cast<bpf_u_int32>(packet.size());
        pcap_dump(reinterpret_cast<u_char*>(dumper_.get()), &header, packet.data());
    }

  private:
    std::unique_ptr<pcap_t, decltype(&pcap_close)> handle_;
    std::unique_ptr<pcap_dumper_t, decltype(&pcap_dump_close)> dumper_;
};

class Output {
  public:
    explicit Output(Clock::time_point start) : start_(start) {}
    void line(json object) {
        object["t_ms"] =
            std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - start_).count();
        std::lock_guard lock(mutex_);
        std::cout << object.dump() << std::endl;
    }

  private:
    Clock::time_point start_;
    std::mutex mutex_;
};

json countersJson(const ProbeConfig& config, const delivery::UdpSender& sender,
                  const ipsec::SendGate& gate) {
    json cdests = json::array();
    for (const CdestSpec& cdest : config.cdests) {
        const delivery::CdestCounters* c = sender.counters(cdest.id);
        json entry{{"id", cdest.id},
                   {"gate_open",
                    gate.isOpenFor(cdest.params.outer.family, cdest.params.outer.destination)},
                   {"sent", c->copies_sent},
                   {"bytes", c->bytes_sent},
                   {"dropped_bytes", c->dropped_bytes}};
        for (auto reason : {delivery::DropReason::RingFull, delivery::DropReason::TunnelDown,
                            delivery::DropReason::SendError, delivery::DropReason::RateLimit}) {
            entry[std::string(delivery::name(reason))] = c->dropped(reason);
        }
        cdests.push_back(entry);
    }
    return cdests;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"delivery_probe: TunnelManager + UdpSender streaming synthetic copies"};
    std::string config_path;
    std::string offered_pcap_path;
    uint64_t count = 1000;
    double rate = 500;
    double wait_up = 30;
    int stats_ms = 250;
    int linger_ms = 500;
    bool install_routes = false;
    app.add_option("--config", config_path, "probe JSON config")->required();
    app.add_option("--count", count, "copies to offer");
    app.add_option("--rate", rate, "copies per second");
    app.add_option(
        "--wait-up", wait_up,
        "seconds to wait for every gate to open first; 0: send at once, gates as they are");
    app.add_option("--offered-pcap", offered_pcap_path, "write every offered original here");
    app.add_option("--stats-ms", stats_ms, "stats line period");
    app.add_option("--linger-ms", linger_ms, "keep the tunnels followed this long after the end");
    app.add_flag("--routes", install_routes, "install the backup unreachable routes");
    CLI11_PARSE(app, argc, argv);

    const auto start = Clock::now();
    Output out(start);
    try {
        ProbeConfig config = loadConfig(config_path);
        ipsec::TunnelManager manager(config.manager);
        std::optional<ipsec::UnreachableRoutes> routes;
        if (install_routes) {
            routes.emplace(manager.protectedPrefixes());
            json installed = json::array();
            for (const auto& prefix : manager.protectedPrefixes()) {
                installed.push_back(ipsec::formatIpPrefix(prefix));
            }
            out.line({{"event", "routes"}, {"prefixes", installed}});
        }

        std::atomic<uint64_t> offered{0};
        manager.setObserver([&](const ipsec::TunnelStatus& status) {
            out.line({{"event", "tunnel"},
                      {"name", status.name},
                      {"state", std::string(ipsec::name(status.state))},
                      {"initiations", status.initiations},
                      {"ups", status.ups},
                      {"downs", status.downs},
                      {"offered", offered.load()},
                      {"error", status.last_error}});
        });
        std::shared_ptr<const ipsec::SendGate> gate = manager.sharedGate();
        std::atomic<bool> stop{false};
        std::thread control([&] {
            while (!stop.load()) {
                manager.runOnce(std::chrono::milliseconds(50));
            }
        });

        delivery::UdpSenderOptions options;
        options.cleartext_allowed = config.cleartext_allowed;
        delivery::UdpSender sender(
            [gate](delivery::Family family, const delivery::Address& destination) {
                return gate->isOpenFor(family, destination);
            },
            options);
        std::vector<delivery::Encapsulator> encapsulators;
        for (const CdestSpec& cdest : config.cdests) {
            sender.addDestination(cdest.id, cdest.params.outer);
            auto encapsulator = delivery::Encapsulator::create(cdest.params);
            if (!encapsulator) {
                throw std::invalid_argument("cdest " + std::to_string(cdest.id) + ": " +
                                            std::string(delivery::describe(encapsulator.error())));
            }
            encapsulators.push_back(*encapsulator);
        }
        std::optional<OfferedPcap> offered_pcap;
        if (!offered_pcap_path.empty()) {
            offered_pcap.emplace(offered_pcap_path);
        }

        auto all_open = [&] {
            for (const CdestSpec& cdest : config.cdests) {
                if (!gate->isOpenFor(cdest.params.outer.family, cdest.params.outer.destination)) {
                    return false;
                }
            }
            return true;
        };
        const auto up_deadline = start + std::chrono::duration_cast<Clock::duration>(
                                             std::chrono::duration<double>(wait_up));
        while (!all_open() && Clock::now() < up_deadline) {
            std::this_thread::sleep_for(std::chrono::milliseconds(10));
        }
        if (wait_up > 0 && !all_open()) {
            out.line({{"event", "error"}, {"error", "gates not open within --wait-up"}});
            stop = true;
            control.join();
            return 3;
        }
        out.line({{"event", "ready"}});

        // Bursts every 5 ms, flushed at the end of each: batching as in
        // xtapd, pacing so the test measures the gate, not charon's CPU.
        const auto tick = std::chrono::milliseconds(5);
        const double per_tick = std::max(1.0, rate * 0.005);
        auto next_tick = Clock::now();
        auto next_stats = Clock::now();
        double credit = 0;
        uint64_t seq = 0;
        while (seq < count) {
            credit += per_tick;
            while (credit >= 1 && seq < count) {
                credit -= 1;
                const size_t which = seq % config.cdests.size();
                const bool ipv6 = (seq / config.cdests.size()) % 2 == 1;
                const size_t size = kMinInner + (seq * 37) % (kMaxInner - kMinInner + 1);
                const std::vector<uint8_t> packet = syntheticPacket(seq, ipv6, size);
                if (offered_pcap) {
                    offered_pcap->write(packet);
                }
                sender.send(config.cdests[which].id, encapsulators[which], packet);
                offered.store(++seq);
            }
            sender.flush();
            if (Clock::now() >= next_stats) {
                out.line({{"event", "stats"},
                          {"offered", seq},
                          {"cdests", countersJson(config, sender, *gate)}});
                next_stats += std::chrono::milliseconds(stats_ms);
            }
            next_tick += tick;
            std::this_thread::sleep_until(next_tick);
        }
        sender.flush();
        std::this_thread::sleep_for(std::chrono::milliseconds(linger_ms));
        stop = true;
        control.join();
        json tunnels = json::array();
        for (const auto& status : manager.status()) {
            tunnels.push_back({{"name", status.name},
                               {"state", std::string(ipsec::name(status.state))},
                               {"initiations", status.initiations},
                               {"ups", status.ups},
                               {"downs", status.downs}});
        }
        out.line({{"event", "final"},
                  {"offered", seq},
                  {"cdests", countersJson(config, sender, *gate)},
                  {"tunnels", tunnels}});
        return 0;
    } catch (const std::exception& error) {
        out.line({{"event", "error"}, {"error", error.what()}});
        return 2;
    }
}
