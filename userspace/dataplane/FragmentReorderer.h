// FragmentReorderer: delivers the later fragments that reached the
// classifier before their first fragment. The classifier copies such a
// fragment as pending (XTAP_META_PENDING_FRAG) when a port-scoped criterion
// could want it; this holds it until the first fragment's copy names the
// criteria of the datagram, then releases it to them, or drops it after the
// window. Pure: time is passed in.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <span>
#include <tuple>
#include <vector>

#include "dataplane/Filter.h"

namespace xtap::dataplane {

struct ReorderOptions {
    uint64_t window_ns = 2'000'000'000;  // how long a pending fragment waits
    size_t max_pending = 4096;           // bound on held copies ...
    size_t max_bytes = 8u << 20;         // ... and on their bytes
};

struct ReorderStats {
    uint64_t held = 0;      // pending copies buffered
    uint64_t released = 0;  // delivered once their first fragment came
    uint64_t expired = 0;   // never claimed within the window (not selected after all)
    uint64_t overflow = 0;  // refused: the buffer was full
};

class FragmentReorderer {
public:
    // frame, the criteria it goes to, and whether it is a late release.
    using Deliver = std::function<void(std::span<const uint8_t> frame,
                                       std::span<const uint32_t> slots, bool late)>;

    explicit FragmentReorderer(ReorderOptions options = {}) : options_(options) {}

    // Every copy from AF_XDP goes through here, in arrival order.
    void onCopy(std::span<const uint8_t> frame, std::span<const uint32_t> slots, uint16_t meta_flags,
                uint64_t now_ns, const Deliver& deliver);
    void expire(uint64_t now_ns);

    const ReorderStats& stats() const { return stats_; }
    size_t pendingCount() const { return pending_count_; }

private:
    using Key = std::tuple<uint8_t, Address, Address, uint32_t>;  // family, src, dst, id
    struct Held {
        std::vector<uint8_t> frame;
        std::vector<uint32_t> delivered;  // criteria it already went to (portless matches)
        uint64_t arrived_ns;
    };
    struct First {
        std::vector<uint32_t> slots;
        uint64_t seen_ns;
    };
    static std::vector<uint32_t> minus(const std::vector<uint32_t>& a, const std::vector<uint32_t>& b);

    ReorderOptions options_;
    ReorderStats stats_;
    std::map<Key, std::vector<Held>> pending_;
    std::map<Key, First> firsts_;
    size_t pending_count_ = 0;
    size_t pending_bytes_ = 0;
};

}  // namespace xtap::dataplane
