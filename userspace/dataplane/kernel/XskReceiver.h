// XskReceiver: one AF_XDP socket (RX only, copy mode, need-wakeup) on a
// capture interface's queue, with its own UMEM. Frames arrive with the
// capture program's metadata in front (struct xtap_copy_meta).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <span>
#include <string>

#include "xtap_abi.h"

struct xsk_socket;
struct xsk_umem;

namespace xtap::dataplane::kernel {

struct XskOptions {
    uint32_t frames = 4096;
    uint32_t frame_size = 4096;
    uint32_t rx_ring = 2048;
    uint32_t fill_ring = 2048;
    uint32_t batch = 64;  // frames handed up per receive()
    // The capture program put xtap_copy_meta at the frame's start, the copy
    // after it (XtapObject::copyMetaInFrame), not in front of the frame.
    bool meta_in_frame = false;
};

struct CopiedFrame {
    std::span<const uint8_t> frame;  // the L2 frame as cloned
    const xtap_copy_meta* meta;      // nullptr if the frame carried none
};

struct XskStats {
    uint64_t rx_dropped = 0;
    uint64_t rx_invalid_descs = 0;
    uint64_t rx_ring_full = 0;
    uint64_t rx_fill_ring_empty_descs = 0;
};

class XskReceiver {
  public:
    // Binds to ifname/queue and installs the socket at xskmap[xsk_index].
    XskReceiver(const std::string& ifname, uint32_t queue, int xskmap_fd, uint32_t xsk_index,
                XskOptions options = {});
    ~XskReceiver();
    XskReceiver(const XskReceiver&) = delete;
    XskReceiver& operator=(const XskReceiver&) = delete;

    int fd() const;
    // Hands up to max_batch (0: options' batch) received frames to fn, then
    // recycles them.
    size_t receive(const std::function<void(const CopiedFrame&)>& fn, uint32_t max_batch = 0);
    XskStats stats() const;

  private:
    struct Rings;
    void refill();
    std::unique_ptr<Rings> rings_;
    void* area_ = nullptr;
    size_t area_len_ = 0;
    xsk_umem* umem_ = nullptr;
    xsk_socket* xsk_ = nullptr;
    XskOptions options_;
};

}  // namespace xtap::dataplane::kernel
