// XtapObject: the loaded xtap BPF object (bpftool skeleton), RAII. Maps are
// resized to the configured capacity before load and, with a pin directory,
// pinned there; an existing pin is reused, so a restarted controller finds
// the maps (criteria, counters) the programs kept using while it was away.
// Pins sit in pin_dir/abi-<XTAP_ABI_VERSION>: a new map layout never tries to
// reuse an old one.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/DataPlane.h"

struct xtap_bpf;  // bpftool skeleton
struct bpf_map;

namespace xtap::dataplane::kernel {

// Where a transit packet is classified (bpf/xtap.bpf.c):
//   Xdp  XDP classifies and marks the packet in its metadata; tc clones marked
//        packets; the capture program describes each copy in XDP metadata.
//   Tc   tc ingress classifies and clones; the capture program describes each
//        copy inside the frame. For kernels that refuse bpf_xdp_adjust_meta
//        to XDP programs (seen on a 6.18 build), where Xdp cannot load.
//   Auto Xdp where the kernel allows it, else Tc.
enum class TransitHook { Auto, Xdp, Tc };
const char* toString(TransitHook hook);
// Does this kernel let XDP programs call bpf_xdp_adjust_meta?
bool kernelHasXdpMetadata();

struct LoadOptions {
    Capacity capacity;
    TransitHook hook = TransitHook::Auto;
    uint32_t frag_entries = XTAP_DEFAULT_FRAGS;
    std::string pin_dir;  // empty: no pinning
};

class XtapObject {
  public:
    // Throws std::system_error naming what failed.
    static std::unique_ptr<XtapObject> load(const LoadOptions& options);
    ~XtapObject();
    XtapObject(const XtapObject&) = delete;
    XtapObject& operator=(const XtapObject&) = delete;

    // Xdp or Tc, as loaded.
    TransitHook hook() const { return hook_; }
    // The transit interface's XDP program (hook Xdp only; -1 with Tc).
    int transitProgFd() const;
    // Its tc ingress program: the clone of marked packets (Xdp), or the
    // classifier that clones (Tc).
    int cloneProgFd() const;
    int captureProgFd() const;
    // The capture program writes its xtap_copy_meta at the frame's start,
    // not in the XDP metadata area before it (hook Tc).
    bool copyMetaInFrame() const { return hook_ == TransitHook::Tc; }
    int mapFd(const char* name) const;
    bpf_map* map(const char* name) const;
    // True when the maps came from an existing pin (a restart).
    bool reusedPins() const { return reused_; }
    const LoadOptions& options() const { return options_; }
    static std::string abiPinDir(const std::string& pin_dir);

  private:
    XtapObject() = default;
    static void removeOtherAbiPins(const std::string& pin_dir,
                                   const std::vector<std::string>& map_names);
    ::xtap_bpf* skel_ = nullptr;
    LoadOptions options_;
    bool reused_ = false;
    TransitHook hook_ = TransitHook::Xdp;
};

}  // namespace xtap::dataplane::kernel
