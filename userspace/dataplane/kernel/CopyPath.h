// CopyPath: the transit interfaces and their capture veths (platform.md §2).
//
//   transit ifX  XDP xtap_transit (mark) + tc ingress xtap_clone, or with
//                the tc hook (XtapObject::hook) tc ingress xtap_transit_tc alone
//   capA <-veth-> capB   one pair per transit interface: capB's ifindex names ifX
//   capB         XDP xtap_capture (native) -> XSKMAP -> XskReceiver
//
// With `queues` > 1 the pair has that many queues: the clone's flow hash picks
// one, and each queue has its own AF_XDP socket, read by its own copy thread.
// Fragments of one datagram hash alike (addresses only), so one thread sees
// them all.
//
// Attach order builds the path from the socket outwards, so a mark is never
// made before something can take the copy; detach tears it down from the
// transit side first, so the original path is the first thing restored.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/kernel/Attachment.h"
#include "dataplane/kernel/BpfMaps.h"
#include "dataplane/kernel/Link.h"
#include "dataplane/kernel/XskReceiver.h"
#include "dataplane/kernel/XtapObject.h"

namespace xtap::dataplane::kernel {

struct TransitInterface {
    std::string name;
    uint32_t ifindex = 0;
    XdpMode mode = XdpMode::Auto;  // as attached: Native or Generic
    bool tc_hook = false;          // classified in tc, no XDP program (mode unused)
    const char* modeName() const { return tc_hook ? "tc" : toString(mode); }
    std::string capture;           // capB, where the AF_XDP socket sits
    uint32_t capture_ifindex = 0;
    uint32_t xsk_index = 0;             // queue q's socket sits at xsk_index + q
    uint32_t capture_peer_ifindex = 0;  // capA, where tc's clones enter the pair
};

// What one interface's capture pair lost before userspace saw a copy.
struct CaptureCounters {
    XskStats xsk;
    // capA's tx_dropped: the clone found capB's 256-entry veth ring full
    // (or capB down); the copy never reached the capture program.
    uint64_t veth_dropped = 0;
};

class CopyPath {
  public:
    // `queues`: capture queues (AF_XDP sockets) per interface, at least 1.
    CopyPath(const XtapObject& obj, BpfMaps& maps, XskOptions xsk = {}, uint32_t queues = 1);
    ~CopyPath();
    CopyPath(const CopyPath&) = delete;
    CopyPath& operator=(const CopyPath&) = delete;

    // Throws std::system_error naming the interface and step; on failure
    // nothing of the half-built path remains.
    const TransitInterface& attach(const std::string& ifname, XdpMode mode);
    void detach(const std::string& ifname);
    void detachAll();

    std::vector<TransitInterface> interfaces() const;
    uint32_t queues() const { return queues_; }
    // The receivers of capture queue `queue` on every interface, for the copy
    // thread that serves it.
    std::vector<XskReceiver*> receivers(uint32_t queue = 0);
    // One per interface, in interfaces() order; the sockets' figures summed.
    std::vector<CaptureCounters> captureCounters() const;

    static std::string captureNameFor(uint32_t transit_ifindex, char side);

  private:
    struct Attached;
    const XtapObject& obj_;
    BpfMaps& maps_;
    XskOptions xsk_;
    uint32_t queues_ = 1;
    std::map<std::string, std::unique_ptr<Attached>> attached_;
};

}  // namespace xtap::dataplane::kernel
