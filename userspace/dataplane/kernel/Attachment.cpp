#include "dataplane/kernel/Attachment.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <linux/if_link.h>

#include <unistd.h>

#include <cerrno>
#include <optional>
#include <system_error>

#include "dataplane/kernel/Link.h"

namespace xtap::dataplane::kernel {

namespace {
constexpr uint32_t kTcHandle = 0x7874;  // "xt"
constexpr uint32_t kTcPriority = 1;

uint32_t modeFlag(XdpMode m) {
    return m == XdpMode::Generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE;
}

std::string progName(int prog_fd) {
    bpf_prog_info info{};
    uint32_t len = sizeof info;
    if (bpf_obj_get_info_by_fd(prog_fd, &info, &len) != 0) return {};
    return info.name;
}

// A killed controller leaves its programs attached (they keep marking and
// counting). The one on `ifindex`, if it has our program's name: replaced in
// place, atomically, so the interface is never without a classifier. Returns
// the mode it ran in, or nothing when the program there is not ours.
std::optional<XdpMode> replaceLeftover(uint32_t ifindex, int prog_fd) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(static_cast<int>(ifindex), 0, &q) != 0) return std::nullopt;
    uint32_t old_id = 0;
    XdpMode mode = XdpMode::Native;
    if (q.attach_mode == XDP_ATTACHED_DRV) {
        old_id = q.drv_prog_id;
    } else if (q.attach_mode == XDP_ATTACHED_SKB) {
        old_id = q.skb_prog_id;
        mode = XdpMode::Generic;
    }
    if (old_id == 0) return std::nullopt;
    const int old_fd = bpf_prog_get_fd_by_id(old_id);
    if (old_fd < 0) return std::nullopt;
    std::optional<XdpMode> replaced;
    if (progName(old_fd) == progName(prog_fd)) {
        LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = old_fd);
        if (bpf_xdp_attach(static_cast<int>(ifindex), prog_fd, modeFlag(mode) | XDP_FLAGS_REPLACE, &opts) == 0)
            replaced = mode;
    }
    ::close(old_fd);
    return replaced;
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
    if (const auto leftover = replaceLeftover(ifindex, prog_fd)) {
        mode_ = *leftover;
        return;
    }
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

void detachLeftoverXdp(uint32_t ifindex, const std::string& prog_name) {
    LIBBPF_OPTS(bpf_xdp_query_opts, q);
    if (bpf_xdp_query(static_cast<int>(ifindex), 0, &q) != 0) return;
    const bool generic = q.attach_mode == XDP_ATTACHED_SKB;
    const uint32_t id = generic ? q.skb_prog_id : q.attach_mode == XDP_ATTACHED_DRV ? q.drv_prog_id : 0;
    if (id == 0) return;
    const int fd = bpf_prog_get_fd_by_id(id);
    if (fd < 0) return;
    if (progName(fd) == prog_name) {
        LIBBPF_OPTS(bpf_xdp_attach_opts, opts, .old_prog_fd = fd);
        const uint32_t flags = (generic ? XDP_FLAGS_SKB_MODE : XDP_FLAGS_DRV_MODE) | XDP_FLAGS_REPLACE;
        bpf_xdp_detach(static_cast<int>(ifindex), flags, &opts);
    }
    ::close(fd);
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
