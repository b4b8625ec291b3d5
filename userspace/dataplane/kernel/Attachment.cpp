#include "dataplane/kernel/Attachment.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <cerrno>
#include <system_error>

#include "dataplane/kernel/Link.h"

namespace xtap::dataplane::kernel {

namespace {
constexpr uint32_t kTcHandle = 0x7874;  // "xt"
constexpr uint32_t kTcPriority = 1;

uint32_t modeFlag(XdpMode m) {
    return m == XdpMode::Generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
}
}  // namespace

const char* toString(XdpMode mode) {
    switch (mode) {
        case XdpMode::Native: return "native";
        case XdpMode::Generic: return "generic";
        case XdpMode::Auto: return "auto";
    }
    return "?";
}

XdpAttachment::XdpAttachment(uint32_t ifindex, int prog_fd, XdpMode mode)
    : ifindex_(ifindex), prog_fd_(prog_fd), mode_(mode) {
    const uint32_t noexist = XDP_FLAGS_UPDATE_IF_NOEXIST;
    const std::string name = ifnameOf(ifindex);
    int err = 0;
    if (mode == XdpMode::Native || mode == XdpMode::Auto) {
        err = bpf_xdp_attach(static_cast<int>(ifindex), prog_fd, noexist | XDP_FLAGS_DRV_MODE, nullptr);
        if (!err) {
            mode_ = XdpMode::Native;
            return;
        }
        if (mode == XdpMode::Native || err == -EBUSY || err == -EEXIST)
            throw std::system_error(-err, std::generic_category(),
                                    "attach XDP (native) to " + name);
    }
    err = bpf_xdp_attach(static_cast<int>(ifindex), prog_fd, noexist | XDP_FLAGS_SKB_MODE, nullptr);
    if (err)
        throw std::system_error(-err, std::generic_category(), "attach XDP (generic) to " + name);
    mode_ = XdpMode::Generic;
}

XdpAttachment::~XdpAttachment() {
    // Only our own program: old_prog_fd makes the kernel check it.
    LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = prog_fd_);
    bpf_xdp_detach(static_cast<int>(ifindex_), modeFlag(mode_) | XDP_FLAGS_REPLACE, &opts);
}

TcAttachment::TcAttachment(uint32_t ifindex, int prog_fd) : ifindex_(ifindex) {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex), .attach_point = BPF_TC_INGRESS);
    int err = bpf_tc_hook_create(&hook);
    if (err && err != -EEXIST)
        throw std::system_error(-err, std::generic_category(), "create clsact on " + ifnameOf(ifindex));
    LIBBPF_OPTS(bpf_tc_opts, opts, .prog_fd = prog_fd, .flags = BPF_TC_F_REPLACE,
                .handle = kTcHandle, .priority = kTcPriority);
    err = bpf_tc_attach(&hook, &opts);
    if (err)
        throw std::system_error(-err, std::generic_category(), "attach tc to " + ifnameOf(ifindex));
}

TcAttachment::~TcAttachment() {
    LIBBPF_OPTS(bpf_tc_hook, hook, .ifindex = static_cast<int>(ifindex_), .attach_point = BPF_TC_INGRESS);
    LIBBPF_OPTS(bpf_tc_opts, opts, .handle = kTcHandle, .priority = kTcPriority);
    bpf_tc_detach(&hook, &opts);
}

}  // namespace xtap::dataplane::kernel
