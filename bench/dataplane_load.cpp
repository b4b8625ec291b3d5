// dataplane_load: holds one configuration of the transit benchmark ready and
// attaches it on command, so the benchmark can interleave configurations
// without reloading 100,000 criteria for every window.
//   dataplane_load --criteria N    the xtap data plane (classifier, tc clone,
//                                  capture veth, AF_XDP) with N criteria that
//                                  the benchmark flow does not match
//   dataplane_load --floor         a bare XDP_PASS program instead (or with
//                                  `tc`, a bare tc program at tc ingress)
// Commands on stdin, one JSON line answered for each:
//   attach IFNAME native|generic|tc   detach   stats   quit
// `tc` is xtap's tc hook (a kernel without XDP metadata, see XtapObject); on
// such a kernel xtap attaches only as `tc`, the bare floor in every mode.
// Criteria: a lawful-intercept mix (hosts, subscriber prefixes, port-scoped),
// half IPv4 in 198.19.0.0/16, half IPv6 in 2001:db8:100::/40; the benchmark
// flow runs from 198.18.1.0/24 to 198.18.2.0/24 (2001:db8:1::/64 to :2::/64).
#include <poll.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <variant>

#include "dataplane/DataPlane.h"
#include "dataplane/kernel/Attachment.h"
#include "dataplane/kernel/BpfMaps.h"
#include "dataplane/kernel/CopyPath.h"
#include "dataplane/kernel/Link.h"
#include "dataplane/kernel/XtapObject.h"
#include "xdp_pass.skel.h"

using namespace xtap::dataplane;
using json = nlohmann::json;

namespace {

Address v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    return Address{a, b, c, d};
}

Address v6(uint32_t hi, uint32_t lo) {
    Address a{0x20, 0x01, 0x0d, 0xb8};
    a[4] = uint8_t(hi >> 8);
    a[5] = uint8_t(hi);
    for (int i = 0; i < 4; ++i) a[12 + i] = uint8_t(lo >> (24 - 8 * i));
    return a;
}

Filter criterionNumber(uint32_t i) {
    Filter f;
    const bool is_v6 = i % 2;
    f.family = is_v6 ? Family::V6 : Family::V4;
    const uint32_t n = i / 2;
    Address a =
        is_v6 ? v6(0x100 + (n >> 16), n & 0xffff) : v4(198, 19, uint8_t(n >> 8), uint8_t(n));
    uint8_t len = is_v6 ? 128 : 32;
    const unsigned kind = i % 20;
    if (kind == 3) {  // a subscriber prefix
        len = is_v6 ? 64 : 28;
        if (is_v6) a = v6(0x8000 + (n & 0x7fff), 0);
    }
    for (unsigned b = len; b < 128; ++b) a[b / 8] &= uint8_t(~(0x80 >> (b % 8)));
    (kind % 2 ? f.dst : f.src) = {a, len};
    if (kind == 5) {
        f.proto = 6;
        f.dport = {443, 443};
    }
    return f;
}

kernel::XdpMode parseMode(const std::string& m) {
    if (m == "native") return kernel::XdpMode::Native;
    if (m == "generic") return kernel::XdpMode::Generic;
    throw std::runtime_error("mode must be native, generic or tc, not " + m);
}

// The bare floor, attached to at most one interface: XDP_PASS in XDP, or
// TC_ACT_OK at tc ingress (the floor of xtap's tc hook).
class Floor {
  public:
    Floor() : skel_(xdp_pass__open_and_load()) {
        if (!skel_) throw std::runtime_error("cannot load xdp_pass");
    }
    ~Floor() {
        attachment_.reset();
        xdp_pass__destroy(skel_);
    }
    Floor(const Floor&) = delete;
    Floor& operator=(const Floor&) = delete;
    std::string attach(const std::string& ifname, const std::string& mode) {
        const uint32_t ifindex = kernel::ifindexOf(ifname);
        if (ifindex == 0) throw std::runtime_error("no interface " + ifname);
        if (mode == "tc") {
            tc_ = std::make_unique<kernel::TcAttachment>(ifindex,
                                                         bpf_program__fd(skel_->progs.tc_pass));
            return "tc";
        }
        attachment_ = std::make_unique<kernel::XdpAttachment>(
            ifindex, bpf_program__fd(skel_->progs.xdp_pass), parseMode(mode));
        return kernel::toString(attachment_->mode());
    }
    void detach() {
        attachment_.reset();
        tc_.reset();
    }

  private:
    xdp_pass* skel_;
    std::unique_ptr<kernel::XdpAttachment> attachment_;
    std::unique_ptr<kernel::TcAttachment> tc_;
};

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"holds one transit-benchmark configuration and attaches it on command"};
    uint32_t criteria = 0;
    bool floor = false;
    app.add_option("--criteria", criteria, "criteria to publish (xtap)");
    app.add_flag("--floor", floor, "a bare XDP_PASS instead of xtap");
    CLI11_PARSE(app, argc, argv);

    try {
        std::unique_ptr<Floor> bare;
        std::unique_ptr<kernel::XtapObject> obj;
        std::unique_ptr<kernel::BpfMaps> maps;
        std::unique_ptr<DataPlane> dp;
        std::unique_ptr<kernel::CopyPath> path;
        double publish_s = 0;
        if (floor) {
            bare = std::make_unique<Floor>();
        } else {
            kernel::LoadOptions opts;
            opts.capacity.slots = std::max<uint32_t>(1024, criteria + criteria / 4);
            opts.capacity.rules = std::max<uint32_t>(4096, 2 * criteria);
            opts.capacity.prefixes = std::max<uint32_t>(4096, 2 * criteria);
            obj = kernel::XtapObject::load(opts);
            maps = std::make_unique<kernel::BpfMaps>(*obj);
            dp = std::make_unique<DataPlane>(*maps, opts.capacity);
            maps->setEnabled(true);
            const auto start = std::chrono::steady_clock::now();
            for (uint32_t i = 0; i < criteria; ++i) {
                auto r = dp->publish({{criterionNumber(i)}});
                if (!std::holds_alternative<SlotRef>(r))
                    throw std::runtime_error("publish " + std::to_string(i) + ": " +
                                             std::get<PublishError>(r).detail);
            }
            publish_s =
                std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
            path = std::make_unique<kernel::CopyPath>(*obj, *maps);
        }
        std::cout << json{{"ready", true},
                          {"criteria", criteria},
                          {"floor", floor},
                          {"hook", obj ? kernel::toString(obj->hook()) : "none"},
                          {"publish_s", publish_s}}
                         .dump()
                  << std::endl;

        uint64_t copies = 0;
        std::string attached;
        std::string pending;
        bool running = true;
        while (running) {
            std::vector<pollfd> fds{{STDIN_FILENO, POLLIN, 0}};
            std::vector<kernel::XskReceiver*> rx;
            if (path) rx = path->receivers();
            for (auto* r : rx) fds.push_back({r->fd(), POLLIN, 0});
            ::poll(fds.data(), fds.size(), 100);
            for (auto* r : rx)  // the flow matches nothing; drained all the same
                while (r->receive([&](const kernel::CopiedFrame&) { ++copies; }) > 0) {
                }
            if (!(fds[0].revents & (POLLIN | POLLHUP))) continue;
            char buf[1024];
            const ssize_t n = ::read(STDIN_FILENO, buf, sizeof buf);
            if (n <= 0) break;
            pending.append(buf, size_t(n));
            size_t nl;
            while ((nl = pending.find('\n')) != std::string::npos) {
                std::istringstream line(pending.substr(0, nl));
                pending.erase(0, nl + 1);
                std::string cmd, ifname, mode;
                line >> cmd >> ifname >> mode;
                try {
                    if (cmd == "attach") {
                        if (!attached.empty())
                            throw std::runtime_error("already attached to " + attached);
                        std::string got;
                        if (bare) {
                            got = bare->attach(ifname, mode);
                        } else {
                            // xtap's hook is the kernel's: XDP metadata or not.
                            const bool tc = obj->hook() == kernel::TransitHook::Tc;
                            if ((mode == "tc") != tc)
                                throw std::runtime_error(std::string("this kernel runs xtap's ") +
                                                         kernel::toString(obj->hook()) +
                                                         " hook, not " + mode);
                            got = path->attach(ifname, tc ? kernel::XdpMode::Auto : parseMode(mode))
                                      .modeName();
                        }
                        attached = ifname;
                        std::cout << json{{"attached", ifname}, {"mode", got}}.dump() << std::endl;
                    } else if (cmd == "detach") {
                        if (bare) bare->detach();
                        if (path) path->detachAll();
                        std::cout << json{{"detached", attached}}.dump() << std::endl;
                        attached.clear();
                    } else if (cmd == "stats") {
                        json j{{"copies", copies}};
                        if (maps) {
                            const auto s = maps->readStats();
                            j["prefilter_hit"] = s[XTAP_STAT_PREFILTER_HIT];
                            j["matched"] = s[XTAP_STAT_MATCHED];
                        }
                        std::cout << j.dump() << std::endl;
                    } else if (cmd == "quit") {
                        running = false;
                    } else if (!cmd.empty()) {
                        throw std::runtime_error("unknown command " + cmd);
                    }
                } catch (const std::exception& e) {
                    std::cout << json{{"error", e.what()}}.dump() << std::endl;
                }
            }
        }
        if (bare) bare->detach();
        if (path) path->detachAll();
    } catch (const std::exception& e) {
        std::cerr << "dataplane_load: " << e.what() << "\n";
        return 1;
    }
    return 0;
}
