// xtapctl receive: acts as a content destination. Receives copies on a UDP
// address, decodes flowtap and JMirror (dtcp.md §12), writes the original
// packets to a pcap (LINKTYPE_RAW: IPv4 and IPv6 exactly as they were), and
// prints counts per criterion: JMirror by (intercept ID, session ID), flowtap
// (no ID on the wire) by sender. Undecodable datagrams, including copies in
// the wrong format under --expect-format, are counted and fail the command.
#include <pcap/pcap.h>
#include <poll.h>
#include <signal.h>
#include <sys/signalfd.h>

#include <chrono>
#include <cstdio>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <system_error>

#include "Commands.h"
#include "common/UniqueFd.h"
#include "delivery/CopyReceiver.h"

namespace xtap::ctl {

namespace {

using delivery::CopyReceiver;
using delivery::CopyTally;
using delivery::Endpoint;
using delivery::Format;

struct ReceiveOptions {
    std::string listen;
    std::string pcap_path;
    std::string expect_format;
    uint64_t count = 0;     // 0: no limit
    double duration = 0.0;  // seconds; 0: no limit
    bool json = false;
};

struct PcapCloser {
    void operator()(pcap_t* handle) const { pcap_close(handle); }
    void operator()(pcap_dumper_t* dumper) const { pcap_dump_close(dumper); }
};

// A pcap file of raw IP packets (DLT_RAW, written as LINKTYPE_RAW).
class RawPcapWriter {
  public:
    explicit RawPcapWriter(const std::string& path)
        : handle_(pcap_open_dead(DLT_RAW, 65535)),
          dumper_(handle_ ? pcap_dump_open(handle_.get(), path.c_str()) : nullptr) {
        if (!dumper_) {
            throw std::runtime_error("cannot write " + path + ": " +
                                     (handle_ ? pcap_geterr(handle_.get()) : "pcap_open_dead"));
        }
    }

    void write(const timespec& when, std::span<const uint8_t> packet) {
        pcap_pkthdr header{};
        header.ts.tv_sec = when.tv_sec;
        header.ts.tv_usec = static_cast<suseconds_t>(when.tv_nsec / 1000);
        header.caplen = static_cast<bpf_u_int32>(packet.size());
        header.len = static_cast<bpf_u_int32>(packet.size());
        pcap_dump(reinterpret_cast<u_char*>(dumper_.get()), &header, packet.data());
    }

    void flush() { pcap_dump_flush(dumper_.get()); }

  private:
    std::unique_ptr<pcap_t, PcapCloser> handle_;
    std::unique_ptr<pcap_dumper_t, PcapCloser> dumper_;
};

// SIGINT/SIGTERM as a readable fd, so the loop ends cleanly (pcap flushed,
// summary printed) without a signal handler writing global state.
UniqueFd stopSignals() {
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &signals, nullptr) < 0) {
        throw std::system_error(errno, std::generic_category(), "block SIGINT/SIGTERM");
    }
    UniqueFd fd(signalfd(-1, &signals, SFD_CLOEXEC | SFD_NONBLOCK));
    if (!fd) {
        throw std::system_error(errno, std::generic_category(), "signalfd");
    }
    return fd;
}

nlohmann::json summaryJson(const CopyTally& tally) {
    nlohmann::json out;
    out["datagrams"] = tally.datagrams;
    out["copies"] = tally.copies;
    out["ipv4"] = tally.inner_ipv4;
    out["ipv6"] = tally.inner_ipv6;
    out["original_bytes"] = tally.original_bytes;
    out["format_mismatches"] = tally.format_mismatches;
    out["failures"] = tally.failures();
    out["errors"] = nlohmann::json::object();
    for (const auto& [error, count] : tally.errors) {
        out["errors"][std::string(delivery::describe(error))] = count;
    }
    out["jmirror"] = nlohmann::json::array();
    for (const auto& [ids, count] : tally.jmirror_by_ids) {
        out["jmirror"].push_back(
            {{"intercept_id", ids.first}, {"session_id", ids.second}, {"copies", count}});
    }
    out["flowtap"] = nlohmann::json::array();
    for (const auto& [sender, count] : tally.flowtap_by_sender) {
        out["flowtap"].push_back({{"sender", delivery::formatEndpoint(sender)}, {"copies", count}});
    }
    return out;
}

void printSummary(const CopyTally& tally) {
    std::cout << "received " << tally.datagrams << " datagrams: " << tally.copies
              << " copies (inner IPv4 " << tally.inner_ipv4 << ", IPv6 " << tally.inner_ipv6 << ", "
              << tally.original_bytes << " original bytes), " << tally.failures()
              << " not decoded\n";
    for (const auto& [ids, count] : tally.jmirror_by_ids) {
        std::cout << "  jmirror intercept " << ids.first << " session " << ids.second << ": "
                  << count << "\n";
    }
    for (const auto& [sender, count] : tally.flowtap_by_sender) {
        std::cout << "  flowtap from " << delivery::formatEndpoint(sender) << ": " << count << "\n";
    }
    for (const auto& [error, count] : tally.errors) {
        std::cout << "  error " << delivery::describe(error) << ": " << count << "\n";
    }
}

int runReceive(const ReceiveOptions& options) {
    const auto listen = delivery::parseEndpoint(options.listen);
    if (!listen) {
        std::cerr << "receive: --listen wants ADDR:PORT or [IPv6]:PORT, got '" << options.listen
                  << "'\n";
        return kSetupError;
    }
    std::optional<Format> expected;
    if (!options.expect_format.empty()) {
        expected = delivery::parseFormat(options.expect_format);
    }
    try {
        UniqueFd stop = stopSignals();
        CopyReceiver receiver(*listen, expected);
        std::optional<RawPcapWriter> pcap;
        if (!options.pcap_path.empty()) {
            pcap.emplace(options.pcap_path);
        }
        std::cerr << "receive: listening on " << delivery::formatEndpoint(*listen) << std::endl;

        using Clock = std::chrono::steady_clock;
        const std::optional<Clock::time_point> deadline =
            options.duration > 0
                ? std::optional(Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                                   std::chrono::duration<double>(options.duration)))
                : std::nullopt;
        auto write = [&pcap](const delivery::ReceivedCopy& copy) {
            if (pcap) {
                pcap->write(copy.received, copy.copy.packet);
            }
        };
        for (;;) {
            const uint64_t taken = receiver.tally().datagrams;
            if (options.count && taken >= options.count) {
                break;
            }
            int wait_ms = 1000;
            if (deadline) {
                const auto left =
                    std::chrono::duration_cast<std::chrono::milliseconds>(*deadline - Clock::now());
                if (left.count() <= 0) {
                    break;
                }
                wait_ms = static_cast<int>(std::min<int64_t>(left.count(), wait_ms));
            }
            pollfd fds[2] = {{receiver.fd(), POLLIN, 0}, {stop.get(), POLLIN, 0}};
            if (::poll(fds, 2, wait_ms) < 0 && errno != EINTR) {
                throw std::system_error(errno, std::generic_category(), "poll");
            }
            if (fds[1].revents) {
                break;
            }
            if (fds[0].revents) {
                const size_t limit = options.count ? options.count - taken : SIZE_MAX;
                receiver.receiveAvailable(write, limit);
                if (pcap) {
                    pcap->flush();
                }
            }
        }
        const CopyTally& tally = receiver.tally();
        if (options.json) {
            std::cout << summaryJson(tally).dump() << std::endl;
        } else {
            printSummary(tally);
        }
        if (tally.format_mismatches) {
            std::cerr << "receive: " << tally.format_mismatches << " copies not in the expected "
                      << options.expect_format << " format\n";
        }
        return tally.failures() ? kCheckFailed : kOk;
    } catch (const std::exception& error) {
        std::cerr << "receive: " << error.what() << "\n";
        return kSetupError;
    }
}

}  // namespace

void registerReceiveCommand(CLI::App& app, int& exit_code) {
    auto options = std::make_shared<ReceiveOptions>();
    CLI::App* command = app.add_subcommand(
        "receive", "act as a content destination: receive copies, write the originals to a pcap");
    command->add_option("--listen", options->listen, "ADDR:PORT or [IPv6]:PORT")->required();
    command->add_option("--pcap", options->pcap_path, "write the original packets here (raw IP)");
    command
        ->add_option("--expect-format", options->expect_format,
                     "flowtap or jmirror: copies in the other format are errors")
        ->check(CLI::IsMember({"flowtap", "jmirror"}));
    command->add_option("--count", options->count, "stop after N datagrams");
    command->add_option("--duration", options->duration, "stop after S seconds");
    command->add_flag("--json", options->json, "print the summary as one JSON object");
    command->callback([options, &exit_code] { exit_code = runReceive(*options); });
}

}  // namespace xtap::ctl
