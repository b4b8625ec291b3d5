// BpfRig: the real xtap object loaded in a private network namespace, with
// BPF_PROG_TEST_RUN wrappers that say what the transit and capture programs
// did with a frame. For the BPF tests and the classifier benchmark.
#pragma once

#include <bpf/bpf.h>
#include <linux/if_link.h>
#include <sched.h>
#include <time.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <stdexcept>
#include <string>
#include <system_error>
#include <utility>
#include <vector>

#include "dataplane/DataPlane.h"
#include "dataplane/kernel/BpfMaps.h"
#include "dataplane/kernel/Link.h"
#include "dataplane/kernel/XtapObject.h"

namespace xtap::test {

namespace kernel = dataplane::kernel;

struct RunResult {
    int action = -1;
    bool passed = false;          // transit: the original goes on (XDP_PASS, TC_ACT_OK)
    bool marked = false;          // transit: selected (mark written, or tc's MARKED count)
    std::vector<uint32_t> slots;  // capture: slots in the copy metadata, sorted
    uint16_t meta_flags = 0;
};

inline uint64_t bootNs() {
    timespec ts{};
    clock_gettime(CLOCK_BOOTTIME, &ts);
    return uint64_t(ts.tv_sec) * 1000000000ull + uint64_t(ts.tv_nsec);
}

// Enter a fresh network namespace once per process: veths created by the
// tests never touch the host's.
inline void enterPrivateNetns() {
    static bool done = false;
    if (done) return;
    if (::unshare(CLONE_NEWNET) != 0)
        throw std::system_error(errno, std::generic_category(),
                                "unshare(CLONE_NEWNET): the BPF tests need root");
    kernel::setLinkUp("lo");
    done = true;
}

class BpfRig {
public:
    // `transits` transit interfaces, each with a capture interface mapped to
    // it, named `prefix`t0, `prefix`c0, ...: rigs with different prefixes
    // live side by side (the classifier benchmark interleaves them).
    explicit BpfRig(unsigned transits = 3, dataplane::Capacity cap = {},
                    std::string prefix = "xt")
        : prefix_(std::move(prefix)) {
        enterPrivateNetns();
        kernel::LoadOptions opts;
        opts.capacity = cap;
        obj_ = kernel::XtapObject::load(opts);
        maps_ = std::make_unique<kernel::BpfMaps>(*obj_);
        dp_ = std::make_unique<dataplane::DataPlane>(*maps_, cap);
        maps_->setEnabled(true);
        for (unsigned i = 0; i < transits; ++i) {
            const std::string t = prefix_ + "t" + std::to_string(i);
            const std::string c = prefix_ + "c" + std::to_string(i);
            kernel::deleteLink(t);
            kernel::deleteLink(c);
            kernel::createVethPair(t, c);
            kernel::setLinkUp(t);
            kernel::setLinkUp(c);
            const uint32_t ti = kernel::ifindexOf(t), ci = kernel::ifindexOf(c);
            transit_.push_back(ti);
            capture_.push_back(ci);
            maps_->setCaptureInterface(ci, ti, 0);
        }
    }
    ~BpfRig() {
        for (unsigned i = 0; i < transit_.size(); ++i)
            kernel::deleteLink(prefix_ + "t" + std::to_string(i));
    }

    dataplane::DataPlane& dp() { return *dp_; }
    kernel::BpfMaps& maps() { return *maps_; }
    kernel::XtapObject& obj() { return *obj_; }
    uint32_t transit(unsigned i) const { return transit_.at(i); }
    uint32_t capture(unsigned i) const { return capture_.at(i); }
    size_t transits() const { return transit_.size(); }

    // One run of a program over the frame, as if received on ifindex.
    static int testRun(int prog_fd, const std::vector<uint8_t>& frame, uint32_t ifindex,
                       std::vector<uint8_t>& out, xdp_md& ctx_out, uint32_t repeat = 1,
                       uint32_t* duration = nullptr) {
        xdp_md ctx_in{};
        ctx_in.data_end = static_cast<uint32_t>(frame.size());
        ctx_in.ingress_ifindex = ifindex;
        out.assign(frame.size() + 256, 0);
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(),
                    .data_out = out.data(), .data_size_in = static_cast<uint32_t>(frame.size()),
                    .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx_in,
                    .ctx_out = &ctx_out, .ctx_size_in = sizeof ctx_in,
                    .ctx_size_out = sizeof ctx_out, .repeat = static_cast<int>(repeat));
        if (int err = bpf_prog_test_run_opts(prog_fd, &o))
            throw std::system_error(-err, std::generic_category(), "BPF_PROG_TEST_RUN");
        out.resize(o.data_size_out);
        if (duration) *duration = o.duration;
        return static_cast<int>(o.retval);
    }

    // Transit program: did it mark the frame?
    // The tc programs' BPF_PROG_TEST_RUN: the frame as an skb that arrived on `ifindex`.
    static int testRunSkb(int prog_fd, const std::vector<uint8_t>& frame, uint32_t ifindex,
                          uint32_t repeat = 1, uint32_t* duration = nullptr) {
        __sk_buff ctx_in{};
        ctx_in.ifindex = ifindex;
        ctx_in.ingress_ifindex = ifindex;
        std::vector<uint8_t> out(frame.size() + 256, 0);
        LIBBPF_OPTS(bpf_test_run_opts, o, .data_in = frame.data(), .data_out = out.data(),
                    .data_size_in = static_cast<uint32_t>(frame.size()),
                    .data_size_out = static_cast<uint32_t>(out.size()), .ctx_in = &ctx_in,
                    .ctx_size_in = sizeof ctx_in, .repeat = static_cast<int>(repeat));
        if (int err = bpf_prog_test_run_opts(prog_fd, &o))
            throw std::system_error(-err, std::generic_category(), "BPF_PROG_TEST_RUN (tc)");
        if (duration) *duration = o.duration;
        return static_cast<int>(o.retval);
    }

    bool tcHook() const { return obj_->hook() == kernel::TransitHook::Tc; }

    // One run of the transit classifier (the XDP program, or with the tc hook
    // the tc program) over `frame` as if it arrived on transit `iface`.
    // `repeat` runs for timing; `duration` gets the kernel's ns per run.
    int runTransitProgram(const std::vector<uint8_t>& frame, unsigned iface, uint32_t repeat = 1,
                          uint32_t* duration = nullptr) {
        if (tcHook())
            return testRunSkb(obj_->cloneProgFd(), frame, transit_.at(iface), repeat, duration);
        std::vector<uint8_t> out;
        xdp_md ctx_out{};
        return testRun(obj_->transitProgFd(), frame, transit_.at(iface), out, ctx_out, repeat,
                       duration);
    }

    RunResult runTransit(const std::vector<uint8_t>& frame, unsigned iface) {
        RunResult r;
        if (tcHook()) {
            // tc selects and clones in one step; the MARKED counter says it
            // selected (the rig registers no capture veth to clone to).
            const uint64_t before = maps_->readStats()[XTAP_STAT_MARKED];
            r.action = runTransitProgram(frame, iface);
            r.marked = maps_->readStats()[XTAP_STAT_MARKED] != before;
            r.passed = r.action == 0;  // TC_ACT_OK
            return r;
        }
        std::vector<uint8_t> out;
        xdp_md ctx_out{};
        r.action = testRun(obj_->transitProgFd(), frame, transit_.at(iface), out, ctx_out);
        r.passed = r.action == XDP_PASS;
        const uint32_t metalen = ctx_out.data;  // data_out starts at data_meta
        if (metalen == sizeof(xtap_mark_meta)) {
            xtap_mark_meta m;
            std::memcpy(&m, out.data(), sizeof m);
            r.marked = m.magic == XTAP_META_MAGIC;
        }
        return r;
    }

    RunResult runCapture(const std::vector<uint8_t>& frame, unsigned iface) {
        std::vector<uint8_t> out;
        xdp_md ctx_out{};
        RunResult r;
        r.action = testRun(obj_->captureProgFd(), frame, capture_.at(iface), out, ctx_out);
        // In the metadata area (data_out starts at data_meta), or with the tc
        // hook at the start of the frame, the copied frame after it.
        const bool in_frame = obj_->copyMetaInFrame();
        const bool described = in_frame ? out.size() >= sizeof(xtap_copy_meta) + frame.size()
                                        : ctx_out.data == sizeof(xtap_copy_meta);
        if (described) {
            xtap_copy_meta m;
            std::memcpy(&m, out.data(), sizeof m);
            if (m.magic == XTAP_META_MAGIC) {
                r.slots.assign(m.slots, m.slots + std::min<uint32_t>(m.count, XTAP_MAX_MATCHES));
                r.meta_flags = m.flags;
                std::sort(r.slots.begin(), r.slots.end());
            }
        }
        return r;
    }

private:
    std::string prefix_;
    std::unique_ptr<kernel::XtapObject> obj_;
    std::unique_ptr<kernel::BpfMaps> maps_;
    std::unique_ptr<dataplane::DataPlane> dp_;
    std::vector<uint32_t> transit_, capture_;
};

}  // namespace xtap::test
