// dp_harness: runs the real data plane (XDP classifier, tc clone, capture
// veth, AF_XDP) on given interfaces with criteria from a JSON file, writes
// every copy it receives to a pcap, and takes commands on stdin:
//   publish NAME FILE   publish the criterion in FILE (JSON) under NAME
//   withdraw NAME       withdraw it
//   pcap FILE           write the copies from now on to FILE
//   stats               print counters as one JSON line
//   quit                detach, write the final stats and exit
// Criterion JSON: {"filters":[{"family":4,"src":"198.18.1.2/32","dst":"0.0.0.0/0",
//   "proto":6,"sport":[0,65535],"dport":[80,80],"ifname":"r0","oifname":"r1"}],"expiry_s":3}
// (ifname: ingress interface; oifname: the FIB egress interface)
#include <arpa/inet.h>
#include <pcap/pcap.h>
#include <poll.h>
#include <sys/time.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "dataplane/DataPlane.h"
#include "dataplane/FragmentReorderer.h"
#include "dataplane/kernel/BpfMaps.h"
#include "dataplane/kernel/CopyPath.h"
#include "dataplane/kernel/XtapObject.h"

using namespace xtap;
using namespace xtap::dataplane;
using json = nlohmann::json;

namespace {

Prefix parsePrefix(const std::string& text, Family fam) {
    const auto slash = text.find('/');
    const std::string addr = text.substr(0, slash);
    Prefix p;
    const int af = fam == Family::V4 ? AF_INET : AF_INET6;
    if (inet_pton(af, addr.c_str(), p.addr.data()) != 1)
        throw std::runtime_error("bad address " + text);
    p.len = slash == std::string::npos ? uint8_t(addressBits(fam))
                                       : uint8_t(std::stoi(text.substr(slash + 1)));
    return p;
}

uint64_t bootNs() {
    timespec ts{};
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

FilterSet loadCriterion(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    const json j = json::parse(in);
    FilterSet set;
    for (const auto& jf : j.at("filters")) {
        Filter f;
        f.family = jf.value("family", 4) == 6 ? Family::V6 : Family::V4;
        f.src =
            parsePrefix(jf.value("src", f.family == Family::V4 ? "0.0.0.0/0" : "::/0"), f.family);
        f.dst =
            parsePrefix(jf.value("dst", f.family == Family::V4 ? "0.0.0.0/0" : "::/0"), f.family);
        if (jf.contains("proto")) f.proto = jf["proto"].get<uint8_t>();
        if (jf.contains("sport"))
            f.sport = {jf["sport"][0].get<uint16_t>(), jf["sport"][1].get<uint16_t>()};
        if (jf.contains("dport"))
            f.dport = {jf["dport"][0].get<uint16_t>(), jf["dport"][1].get<uint16_t>()};
        if (jf.contains("ifname")) f.ifindex = kernel::ifindexOf(jf["ifname"].get<std::string>());
        if (jf.contains("oifname"))
            f.oifindex = kernel::ifindexOf(jf["oifname"].get<std::string>());
        set.filters.push_back(f);
    }
    if (j.contains("expiry_s"))
        set.expiry_ns = bootNs() + uint64_t(j["expiry_s"].get<double>() * 1e9);
    set.priority = j.value("priority", 1);
    return set;
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"xtap data-plane harness (tests)"};
    std::vector<std::string> interfaces;
    std::string pcap_path;
    app.add_option("-i,--interface", interfaces, "transit interface, NAME or NAME:native|generic")
        ->required();
    app.add_option("-w,--pcap", pcap_path, "write received copies here")->required();
    CLI11_PARSE(app, argc, argv);

    try {
        kernel::LoadOptions opts;
        opts.capacity = {65536, 16384, 65536};
        auto obj = kernel::XtapObject::load(opts);
        kernel::BpfMaps maps(*obj);
        DataPlane dp(maps, opts.capacity);
        maps.setEnabled(true);
        kernel::CopyPath path(*obj, maps);
        json attached = json::array();
        for (const auto& spec : interfaces) {
            const auto colon = spec.find(':');
            const std::string name = spec.substr(0, colon);
            kernel::XdpMode mode = kernel::XdpMode::Auto;
            if (colon != std::string::npos) {
                const std::string m = spec.substr(colon + 1);
                mode = m == "native"    ? kernel::XdpMode::Native
                       : m == "generic" ? kernel::XdpMode::Generic
                                        : kernel::XdpMode::Auto;
            }
            const auto& t = path.attach(name, mode);
            attached.push_back({{"name", t.name},
                                {"mode", t.modeName()},
                                {"capture", t.capture},
                                {"gro_off", kernel::receiveOffloadsOff(t.name)}});
        }

        pcap_t* dead = pcap_open_dead(DLT_EN10MB, 65535);
        pcap_dumper_t* dumper = pcap_dump_open(dead, pcap_path.c_str());
        if (!dumper) throw std::runtime_error(std::string("pcap: ") + pcap_geterr(dead));

        std::map<std::string, SlotRef> criteria;
        std::map<uint32_t, std::string> by_slot;
        std::map<std::string, uint64_t> copies;  // per criterion, from the copies' metadata
        uint64_t frames = 0, frames_without_meta = 0, late = 0;
        FragmentReorderer reorderer;
        // Delivered copies (after the reorderer): to the pcap, counted per criterion.
        auto deliver = [&](std::span<const uint8_t> frame, std::span<const uint32_t> slots,
                           bool is_late) {
            ++frames;
            late += is_late;
            pcap_pkthdr h{};
            gettimeofday(&h.ts, nullptr);
            h.caplen = h.len = static_cast<uint32_t>(frame.size());
            pcap_dump(reinterpret_cast<u_char*>(dumper), &h, frame.data());
            for (uint32_t slot : slots) {
                auto it = by_slot.find(slot);
                if (it != by_slot.end()) ++copies[it->second];
            }
        };
        auto onFrame = [&](const kernel::CopiedFrame& f) {
            if (!f.meta) {
                ++frames_without_meta;
                return;
            }
            const uint32_t n = std::min<uint32_t>(f.meta->count, XTAP_MAX_MATCHES);
            reorderer.onCopy(f.frame, std::span<const uint32_t>(f.meta->slots, n), f.meta->flags,
                             bootNs(), deliver);
        };

        auto stats = [&] {
            json j;
            j["interfaces"] = attached;
            j["copies_received"] = frames;
            j["copies_late"] = late;
            j["copies_without_meta"] = frames_without_meta;
            j["reorder"] = {{"held", reorderer.stats().held},
                            {"released", reorderer.stats().released},
                            {"expired", reorderer.stats().expired},
                            {"overflow", reorderer.stats().overflow}};
            json per = json::object();
            for (const auto& [name, ref] : criteria) {
                const auto c = dp.counters(ref);
                per[name] = {{"packets", c.packets},
                             {"bytes", c.bytes},
                             {"copies", copies[name]},
                             {"live", dp.isLive(ref)}};
            }
            j["criteria"] = per;
            const auto s = maps.readStats();
            j["bpf"] = {{"prefilter_hit", s[XTAP_STAT_PREFILTER_HIT]},
                        {"matched", s[XTAP_STAT_MATCHED]},
                        {"marked", s[XTAP_STAT_MARKED]},
                        {"cloned", s[XTAP_STAT_CLONED]},
                        {"clone_failed", s[XTAP_STAT_CLONE_FAILED]},
                        {"capture_packets", s[XTAP_STAT_CAPTURE_PACKETS]},
                        {"capture_redirected", s[XTAP_STAT_CAPTURE_REDIRECTED]},
                        {"capture_nomatch", s[XTAP_STAT_CAPTURE_NOMATCH]},
                        {"frag_tracked", s[XTAP_STAT_FRAG_TRACKED]},
                        {"frag_matched", s[XTAP_STAT_FRAG_MATCHED]}};
            json xsk = json::object();
            auto ifs = path.interfaces();
            auto rx = path.receivers();
            for (size_t i = 0; i < rx.size(); ++i) {
                const auto st = rx[i]->stats();
                xsk[ifs[i].name] = {{"rx_dropped", st.rx_dropped},
                                    {"rx_ring_full", st.rx_ring_full},
                                    {"rx_fill_ring_empty", st.rx_fill_ring_empty_descs}};
            }
            j["xsk"] = xsk;
            return j;
        };

        std::cout << json{{"ready", true},
                          {"hook", kernel::toString(obj->hook())},
                          {"interfaces", attached}}
                         .dump()
                  << std::endl;
        std::string pending;
        bool running = true;
        while (running) {
            auto rx = path.receivers();
            std::vector<pollfd> fds{{STDIN_FILENO, POLLIN, 0}};
            for (auto* r : rx) fds.push_back({r->fd(), POLLIN, 0});
            ::poll(fds.data(), fds.size(), 100);
            for (auto* r : rx) {
                while (r->receive(onFrame) > 0) {
                }
            }
            reorderer.expire(bootNs());
            if (!(fds[0].revents & (POLLIN | POLLHUP))) continue;
            char buf[4096];
            const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
            if (n <= 0) break;
            pending.append(buf, size_t(n));
            size_t nl;
            while ((nl = pending.find('\n')) != std::string::npos) {
                std::istringstream line(pending.substr(0, nl));
                pending.erase(0, nl + 1);
                std::string cmd, name, file;
                line >> cmd >> name >> file;
                if (cmd == "publish") {
                    auto r = dp.publish(loadCriterion(file));
                    if (auto* ref = std::get_if<SlotRef>(&r)) {
                        criteria[name] = *ref;
                        by_slot[ref->slot] = name;
                        std::cout << json{{"published", name}, {"slot", ref->slot}}.dump()
                                  << std::endl;
                    } else {
                        std::cout << json{{"error", std::get<PublishError>(r).detail}}.dump()
                                  << std::endl;
                    }
                } else if (cmd == "withdraw") {
                    if (criteria.count(name)) dp.withdraw(criteria[name]);
                    std::cout << json{{"withdrawn", name}}.dump() << std::endl;
                } else if (cmd == "pcap") {
                    pcap_dump_close(dumper);
                    dumper = pcap_dump_open(dead, name.c_str());
                    if (!dumper)
                        throw std::runtime_error(std::string("pcap: ") + pcap_geterr(dead));
                    std::cout << json{{"pcap", name}}.dump() << std::endl;
                } else if (cmd == "stats") {
                    std::cout << stats().dump() << std::endl;
                } else if (cmd == "quit") {
                    running = false;
                }
            }
        }
        // Drain what is still in the rings, then report.
        for (auto* r : path.receivers()) {
            while (r->receive(onFrame) > 0) {
            }
        }
        const json final_stats = stats();
        path.detachAll();
        pcap_dump_close(dumper);
        pcap_close(dead);
        std::cout << final_stats.dump() << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "dp_harness: " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
