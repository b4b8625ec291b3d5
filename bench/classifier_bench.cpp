// classifier_bench: ns/packet of the transit classifier under
// BPF_PROG_TEST_RUN (the XDP program, or with the tc hook the tc program),
// against a bare program of the same hook measured in the same run.
// Prints a table, optionally writes JSON. A benchmark, not a test: figures
// are medians of interleaved runs; the ratios are the robust part.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <variant>

#include "tests/support/BpfRig.h"
#include "tests/support/PacketBuilder.h"
#include "xdp_pass.skel.h"

using namespace xtap;
using namespace xtap::test;
using dataplane::Family;
using dataplane::Filter;
using json = nlohmann::json;

namespace {

Address v6addr(uint32_t hi, uint32_t lo) {
    Address a{0x20, 0x01, 0x0d, 0xb8};
    a[4] = uint8_t(hi >> 8);
    a[5] = uint8_t(hi);
    for (int i = 0; i < 4; ++i) a[12 + i] = uint8_t(lo >> (24 - 8 * i));
    return a;
}

// A realistic LI mix: mostly hosts, some subscriber prefixes, some port-scoped.
Filter filterNumber(uint32_t i) {
    Filter f;
    const bool v6 = i % 2;
    f.family = v6 ? Family::V6 : Family::V4;
    const uint32_t n = i / 2;
    // Hosts in 198.18.0.0/16 (v4 has room for 65,536 of them) and 2001:db8:1xx::/48.
    Address a = v6 ? v6addr(0x100 + (n >> 16), n & 0xffff) : v4(198, 18, uint8_t(n >> 8), uint8_t(n));
    const unsigned kind = i % 20;
    uint8_t len = v6 ? 128 : 32;
    if (kind == 3) {  // a subscriber prefix, each its own
        len = v6 ? 64 : 28;
        a = v6 ? v6addr(0x8000 + (n & 0x7fff), 0) : v4(198, 19, uint8_t(n >> 4), uint8_t(n << 4));
    }
    for (unsigned b = len; b < 128; ++b) a[b / 8] &= uint8_t(~(0x80 >> (b % 8)));
    (kind % 2 ? f.dst : f.src) = {a, len};
    if (kind == 5) {
        f.proto = 6;
        f.dport = {443, 443};
    }
    return f;
}

PacketSpec tcpPacket(Family fam, Address src, Address dst) {
    PacketSpec p;
    p.family = fam;
    p.src = src;
    p.dst = dst;
    p.proto = 6;
    p.sport = 40000;
    p.dport = 443;
    p.payload = 18;
    if (fam == Family::V6) p.v6_ext = {0, 60};  // hop-by-hop + destination options
    return p;
}

double median(std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

size_t mapMemory(int fd) {
    std::ifstream in("/proc/self/fdinfo/" + std::to_string(fd));
    std::string line;
    while (std::getline(in, line))
        if (line.rfind("memlock:", 0) == 0) return std::stoull(line.substr(8));
    return 0;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"xtap classifier benchmark (BPF_PROG_TEST_RUN)"};
    uint32_t repeat = 2000000;
    unsigned rounds = 5;
    std::string json_path;
    // Filters alternate IPv4/IPv6: 1 is one IPv4 filter, 2 adds the first IPv6
    // one, so each family's "1-filter cost" is measured with one filter of its own.
    std::vector<uint32_t> sizes{0, 1, 2, 1000, 100000};
    app.add_option("--repeat", repeat, "runs per measurement");
    app.add_option("--rounds", rounds, "interleaved rounds (median reported)");
    app.add_option("--sizes", sizes, "filter counts to measure");
    app.add_option("--json", json_path, "write the figures here");
    CLI11_PARSE(app, argc, argv);

    try {
        dataplane::Capacity cap;
        cap.rules = 262144;
        cap.slots = 131072;
        // One loaded object per filter count, maps of the same capacity in
        // each, measured round by round in turn: a slow spell of this shared
        // machine hits every size alike, and "x its 1-filter cost" compares
        // measurements taken seconds apart, not minutes.
        std::sort(sizes.begin(), sizes.end());
        sizes.erase(std::unique(sizes.begin(), sizes.end()), sizes.end());
        std::vector<std::unique_ptr<BpfRig>> rigs;
        for (size_t k = 0; k < sizes.size(); ++k) {
            rigs.push_back(std::make_unique<BpfRig>(1, cap, "xb" + std::to_string(k)));
            for (uint32_t i = 0; i < sizes[k]; ++i) {
                auto r = rigs.back()->dp().publish({{filterNumber(i)}});
                if (!std::holds_alternative<dataplane::SlotRef>(r))
                    throw std::runtime_error("publish: " +
                                             std::get<dataplane::PublishError>(r).detail);
            }
        }
        BpfRig& first = *rigs.front();
        xdp_pass* floor_skel = xdp_pass__open_and_load();
        if (!floor_skel) throw std::runtime_error("load xdp_pass");

        const auto miss4 = buildFrame(tcpPacket(Family::V4, v4(198, 18, 250, 1), v4(198, 19, 250, 2)));
        const auto miss6 = buildFrame(tcpPacket(Family::V6, v6addr(0xfff0, 1), v6addr(0xfff1, 2)));
        const auto hit4 = buildFrame(tcpPacket(Family::V4, v4(198, 18, 0, 0), v4(198, 19, 250, 2)));  // filter 0
        const auto hit6 = buildFrame(tcpPacket(Family::V6, v6addr(0xfff1, 2), v6addr(0x100, 0)));     // filter 1 (dst)
        struct Case { const char* name; const std::vector<uint8_t>* frame; uint32_t first_filter; };
        const Case cases[] = {{"miss_ipv4_tcp", &miss4, 1}, {"miss_ipv6_tcp_2ext", &miss6, 2},
                              {"match_ipv4", &hit4, 1}, {"match_ipv6", &hit6, 2}};

        // With the tc hook (a kernel without XDP metadata) the classifier is
        // the tc program, and its floor a bare tc program.
        const bool tc = first.tcHook();
        const int floor_fd =
            bpf_program__fd(tc ? floor_skel->progs.tc_pass : floor_skel->progs.xdp_pass);
        auto measureFloor = [&](const std::vector<uint8_t>& frame) {
            uint32_t ns = 0;
            if (tc) {
                BpfRig::testRunSkb(floor_fd, frame, first.transit(0), repeat, &ns);
            } else {
                std::vector<uint8_t> out;
                xdp_md ctx{};
                BpfRig::testRun(floor_fd, frame, first.transit(0), out, ctx, repeat, &ns);
            }
            return double(ns);
        };
        auto measure = [&](BpfRig& rig, const std::vector<uint8_t>& frame) {
            uint32_t ns = 0;
            rig.runTransitProgram(frame, 0, repeat, &ns);
            return double(ns);
        };

        // samples[k][name][round]
        std::vector<std::map<std::string, std::vector<double>>> samples(rigs.size());
        std::vector<double> floors;
        for (unsigned round = 0; round < rounds; ++round) {
            floors.push_back(measureFloor(miss4));
            for (size_t k = 0; k < rigs.size(); ++k) {
                BpfRig& rig = *rigs[k];
                for (const auto& c : cases) samples[k][c.name].push_back(measure(rig, *c.frame));
                // The fixed cost: parse to L3 and read the control row, then stop.
                rig.maps().setEnabled(false);
                samples[k]["kill_switch_ipv4"].push_back(measure(rig, miss4));
                rig.maps().setEnabled(true);
            }
        }
        // Ratios are medians over rounds of the ratio within the round.
        auto ratioMedian = [&](const std::vector<double>& a, const std::vector<double>& b) {
            std::vector<double> r;
            for (size_t i = 0; i < a.size() && i < b.size(); ++i)
                if (b[i] > 0) r.push_back(a[i] / b[i]);
            return r.empty() ? 0.0 : median(r);
        };

        json results = json::object();
        const char* hook = dataplane::kernel::toString(first.obj().hook());
        std::cout << "hook " << hook << ", repeat " << repeat << ", " << rounds
                  << " rounds, every filter count in every round; medians (ns/packet), ratios are "
                     "medians of per-round ratios\n";
        results["hook"] = hook;
        const double floor = median(floors);
        for (size_t k = 0; k < rigs.size(); ++k) {
            const uint32_t n = sizes[k];
            BpfRig& rig = *rigs[k];
            json row;
            row["floor_xdp_pass_ns"] = floor;
            std::cout << "\nfilters=" << n << " (masks " << rig.dp().maskCount() << ", rules "
                      << rig.dp().ruleCount() << ")\n";
            std::cout << (tc ? "  floor (bare tc program)    " : "  floor (bare XDP_PASS)      ")
                      << floor << " ns\n";
            const double parse_only = median(samples[k]["kill_switch_ipv4"]);
            row["kill_switch_ipv4_ns"] = parse_only;
            std::cout << "  kill switch (parse to L3)  " << parse_only << " ns  "
                      << ratioMedian(samples[k]["kill_switch_ipv4"], floors) << "x floor\n";
            for (const auto& c : cases) {
                const auto& mine = samples[k][c.name];
                const double m = median(mine), x_floor = ratioMedian(mine, floors);
                row[std::string(c.name) + "_ns"] = m;
                row[std::string(c.name) + "_x_floor"] = x_floor;
                std::cout << "  " << c.name << std::string(26 - std::string(c.name).size(), ' ')
                          << m << " ns  " << x_floor << "x floor";
                // Against the rig with this family's single filter, if measured.
                const auto one = std::find(sizes.begin(), sizes.end(), c.first_filter);
                if (n > c.first_filter && one != sizes.end()) {
                    const double x1 =
                        ratioMedian(mine, samples[size_t(one - sizes.begin())][c.name]);
                    row[std::string(c.name) + "_x_1filter"] = x1;
                    std::cout << "  " << x1 << "x its 1-filter cost";
                }
                std::cout << "\n";
            }
            row["masks"] = rig.dp().maskCount();
            row["rules"] = rig.dp().ruleCount();
            results[std::to_string(n)] = row;
        }
        BpfRig& rig = *rigs.back();  // the largest filter count: its map memory

        size_t total = 0;
        json mem = json::object();
        for (const char* m : {"rules", "slots", "slot_stats", "slot_released", "anchors4", "anchors6",
                              "anchor_bits", "prefix4", "prefix6", "masks", "masksets", "frags",
                              "frag_scratch", "control"}) {
            const size_t bytes = mapMemory(rig.obj().mapFd(m));
            mem[m] = bytes;
            total += bytes;
        }
        mem["total"] = total;
        results["map_memory_bytes"] = mem;
        std::cout << "\nmap memory (memlock, capacity " << cap.rules << " rules, " << cap.slots
                  << " slots, " << cap.prefixes << " prefixes): " << total / (1024.0 * 1024.0) << " MiB\n";
        for (const auto& [name, bytes] : mem.items())
            if (name != "total") std::cout << "  " << name << " " << bytes.get<size_t>() / 1024 << " KiB\n";
        results["repeat"] = repeat;
        results["rounds"] = rounds;
        xdp_pass__destroy(floor_skel);
        if (!json_path.empty()) std::ofstream(json_path) << results.dump(2) << "\n";
    } catch (const std::exception& e) {
        std::cerr << "classifier_bench: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
