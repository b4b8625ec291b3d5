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

struct LoadOptions {
    Capacity capacity;
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

    int transitProgFd() const;
    int cloneProgFd() const;
    int captureProgFd() const;
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
};

}  // namespace xtap::dataplane::kernel
