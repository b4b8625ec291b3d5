#include "dataplane/kernel/XtapObject.h"

#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include <unistd.h>
#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <filesystem>
#include <system_error>
#include <vector>

#include "xtap_abi.h"
#include "xtap_bpf.skel.h"

namespace xtap::dataplane::kernel {

namespace {
// libbpf returns -errno from some calls and errno from others.
[[noreturn]] void failLibbpf(int err, const std::string& what) {
    throw std::system_error(err < 0 ? -err : err, std::generic_category(), what);
}
}  // namespace

const char* toString(TransitHook hook) {
    switch (hook) {
        case TransitHook::Auto:
            return "auto";
        case TransitHook::Xdp:
            return "xdp";
        case TransitHook::Tc:
            return "tc";
    }
    return "?";
}

// Loads `r2 = -4; call bpf_xdp_adjust_meta; return XDP_PASS`. Not
// libbpf_probe_bpf_helper: it takes any refusal other than "unknown func" for
// support, and this kernel says "program of this type cannot use helper".
bool kernelHasXdpMetadata() {
    const bpf_insn insns[] = {
        {.code = BPF_ALU64 | BPF_MOV | BPF_K,
         .dst_reg = BPF_REG_2,
         .src_reg = 0,
         .off = 0,
         .imm = -4},
        {.code = BPF_JMP | BPF_CALL,
         .dst_reg = 0,
         .src_reg = 0,
         .off = 0,
         .imm = BPF_FUNC_xdp_adjust_meta},
        {.code = BPF_ALU64 | BPF_MOV | BPF_K,
         .dst_reg = BPF_REG_0,
         .src_reg = 0,
         .off = 0,
         .imm = XDP_PASS},
        {.code = BPF_JMP | BPF_EXIT, .dst_reg = 0, .src_reg = 0, .off = 0, .imm = 0},
    };
    const int fd = bpf_prog_load(BPF_PROG_TYPE_XDP, "xtap_meta_probe", "GPL", insns,
                                 sizeof insns / sizeof insns[0], nullptr);
    if (fd < 0) return false;
    ::close(fd);
    return true;
}

std::unique_ptr<XtapObject> XtapObject::load(const LoadOptions& options) {
    std::unique_ptr<XtapObject> obj(new XtapObject());
    obj->options_ = options;
    obj->skel_ = xtap_bpf__open();
    if (!obj->skel_) failLibbpf(errno, "open the xtap BPF object");

    auto* s = obj->skel_;
    const bool metadata = kernelHasXdpMetadata();
    if (options.hook == TransitHook::Xdp && !metadata)
        failLibbpf(EOPNOTSUPP,
                   "transit hook xdp: this kernel refuses bpf_xdp_adjust_meta to XDP programs "
                   "(use the tc hook)");
    obj->hook_ = options.hook == TransitHook::Auto ? (metadata ? TransitHook::Xdp : TransitHook::Tc)
                                                   : options.hook;
    // Only one hook's programs are loaded: the other's may not even pass the
    // verifier on this kernel.
    const bool xdp = obj->hook_ == TransitHook::Xdp;
    bpf_program__set_autoload(s->progs.xtap_transit, xdp);
    bpf_program__set_autoload(s->progs.xtap_clone, xdp);
    bpf_program__set_autoload(s->progs.xtap_capture, xdp);
    bpf_program__set_autoload(s->progs.xtap_transit_tc, !xdp);
    bpf_program__set_autoload(s->progs.xtap_capture_in_frame, !xdp);
    auto resize = [&](bpf_map* m, uint32_t n, const char* name) {
        if (int err = bpf_map__set_max_entries(m, n))
            failLibbpf(err, std::string("resize map ") + name);
    };
    resize(s->maps.rules, options.capacity.rules, "rules");
    resize(s->maps.slots, options.capacity.slots, "slots");
    resize(s->maps.slot_stats, options.capacity.slots, "slot_stats");
    resize(s->maps.slot_released, options.capacity.slots, "slot_released");
    resize(s->maps.prefix4, options.capacity.prefixes, "prefix4");
    resize(s->maps.prefix6, options.capacity.prefixes, "prefix6");
    resize(s->maps.anchors4, options.capacity.prefixes, "anchors4");
    resize(s->maps.anchors6, options.capacity.prefixes, "anchors6");
    // The anchor bitmap: 32 bits per anchor, a power of two (BpfMaps hashes into it).
    uint32_t bitmap_words = 1;
    while (bitmap_words < options.capacity.prefixes / 2 && bitmap_words < (1u << 24))
        bitmap_words <<= 1;
    resize(s->maps.anchor_bits, bitmap_words, "anchor_bits");
    resize(s->maps.frags, options.frag_entries, "frags");

    // Pins live under an ABI-versioned directory: a controller whose map
    // layout changed starts on fresh maps (and restores its criteria from the
    // state file) instead of failing on pins it cannot reuse.
    const std::string pin_dir =
        options.pin_dir.empty() ? std::string() : abiPinDir(options.pin_dir);
    std::vector<std::string> map_names;
    if (!pin_dir.empty()) {
        std::error_code ec;
        std::filesystem::create_directories(pin_dir, ec);
        if (ec) failLibbpf(ec.value(), "create pin directory " + pin_dir);
        ::chmod(options.pin_dir.c_str(), 0700);
        ::chmod(pin_dir.c_str(), 0700);
        bpf_map* m = nullptr;
        bpf_object__for_each_map(m, s->obj) {
            const std::string name = bpf_map__name(m);
            if (name.find('.') != std::string::npos) continue;  // .rodata etc.
            map_names.push_back(name);
            const std::string path = pin_dir + "/" + name;
            obj->reused_ |= std::filesystem::exists(path);
            if (int err = bpf_map__set_pin_path(m, path.c_str()))
                failLibbpf(err, "pin path " + path);
        }
    }

    if (int err = xtap_bpf__load(s))
        failLibbpf(err, "load the xtap BPF object (verifier or map reuse)");
    if (!pin_dir.empty()) removeOtherAbiPins(options.pin_dir, map_names);
    return obj;
}

std::string XtapObject::abiPinDir(const std::string& pin_dir) {
    return pin_dir + "/abi-" + std::to_string(XTAP_ABI_VERSION);
}

// Maps of an older layout are no longer used by anything once ours are
// loaded (attaching replaces the old programs); unpinning frees them. Only
// what xtap pinned is touched: other abi-N directories, and the map names
// pinned directly in pin_dir before pins were versioned.
void XtapObject::removeOtherAbiPins(const std::string& pin_dir,
                                    const std::vector<std::string>& map_names) {
    std::error_code ec;
    const std::string ours = std::filesystem::path(abiPinDir(pin_dir)).filename();
    for (const auto& entry : std::filesystem::directory_iterator(pin_dir, ec)) {
        const std::string name = entry.path().filename();
        const bool old_abi = name.rfind("abi-", 0) == 0 && name != ours && entry.is_directory(ec);
        const bool unversioned =
            std::find(map_names.begin(), map_names.end(), name) != map_names.end();
        if (old_abi || unversioned) std::filesystem::remove_all(entry.path(), ec);
    }
}

XtapObject::~XtapObject() {
    if (skel_) xtap_bpf__destroy(skel_);
}

int XtapObject::transitProgFd() const {
    return hook_ == TransitHook::Xdp ? bpf_program__fd(skel_->progs.xtap_transit) : -1;
}
int XtapObject::cloneProgFd() const {
    return bpf_program__fd(hook_ == TransitHook::Xdp ? skel_->progs.xtap_clone
                                                     : skel_->progs.xtap_transit_tc);
}
int XtapObject::captureProgFd() const {
    return bpf_program__fd(hook_ == TransitHook::Xdp ? skel_->progs.xtap_capture
                                                     : skel_->progs.xtap_capture_in_frame);
}

bpf_map* XtapObject::map(const char* name) const {
    bpf_map* m = bpf_object__find_map_by_name(skel_->obj, name);
    if (!m) throw std::system_error(ENOENT, std::generic_category(), std::string("map ") + name);
    return m;
}

int XtapObject::mapFd(const char* name) const {
    return bpf_map__fd(map(name));
}

}  // namespace xtap::dataplane::kernel
