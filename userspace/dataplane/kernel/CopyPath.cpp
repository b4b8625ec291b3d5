#include "dataplane/kernel/CopyPath.h"

#include <algorithm>
#include <system_error>

namespace xtap::dataplane::kernel {

// Members are destroyed in reverse order: transit XDP first, the veth last.
struct CopyPath::Attached {
    TransitInterface info;
    BpfMaps* maps = nullptr;
    std::unique_ptr<VethPair> veth;
    std::unique_ptr<XdpAttachment> capture_xdp;
    std::vector<std::unique_ptr<XskReceiver>> receivers;  // one per queue
    bool registered = false;
    std::unique_ptr<TcAttachment> clone_tc;
    std::unique_ptr<XdpAttachment> transit_xdp;

    ~Attached() {
        transit_xdp.reset();
        clone_tc.reset();
        if (registered) {
            maps->removeTransitInterface(info.ifindex);
            maps->removeCaptureInterface(info.capture_ifindex);
        }
        receivers.clear();
        capture_xdp.reset();
        veth.reset();
    }
};

CopyPath::CopyPath(const XtapObject& obj, BpfMaps& maps, XskOptions xsk, uint32_t queues)
    : obj_(obj), maps_(maps), xsk_(xsk), queues_(std::max<uint32_t>(queues, 1)) {
    xsk_.meta_in_frame = obj.copyMetaInFrame();
}

CopyPath::~CopyPath() {
    detachAll();
}

std::string CopyPath::captureNameFor(uint32_t transit_ifindex, char side) {
    return "xtcap" + std::to_string(transit_ifindex) + side;
}

const TransitInterface& CopyPath::attach(const std::string& ifname, XdpMode mode) {
    if (attached_.count(ifname))
        throw std::system_error(EEXIST, std::generic_category(), ifname + " is already attached");
    const uint32_t ifindex = ifindexOf(ifname);
    if (!ifindex)
        throw std::system_error(ENODEV, std::generic_category(), "transit interface " + ifname);

    auto a = std::make_unique<Attached>();
    a->maps = &maps_;
    a->info.name = ifname;
    a->info.ifindex = ifindex;

    disableReceiveOffloads(ifname);

    const std::string cap_a = captureNameFor(ifindex, 'a');
    const std::string cap_b = captureNameFor(ifindex, 'b');
    a->veth = std::make_unique<VethPair>(cap_a, cap_b, queues_);
    const uint32_t mtu = mtuOf(ifname);
    setMtu(cap_a, mtu);
    setMtu(cap_b, mtu);
    // No addresses, no IPv6 chatter (router solicitations, MLD) on the capture pair.
    disableIpv6(cap_a);
    disableIpv6(cap_b);
    setLinkUp(cap_b);
    setLinkUp(cap_a);
    a->info.capture = cap_b;
    a->info.capture_ifindex = ifindexOf(cap_b);
    a->info.capture_peer_ifindex = ifindexOf(cap_a);
    // The first run of `queues` XSKMAP slots no other interface uses.
    uint32_t xsk_index = 0;
    for (bool used = true; used;) {
        used = false;
        for (const auto& [n, other] : attached_)
            if (xsk_index < other->info.xsk_index + queues_ &&
                other->info.xsk_index < xsk_index + queues_) {
                used = true;
                xsk_index = other->info.xsk_index + queues_;
            }
    }
    a->info.xsk_index = xsk_index;

    a->capture_xdp = std::make_unique<XdpAttachment>(a->info.capture_ifindex, obj_.captureProgFd(),
                                                     XdpMode::Native);
    for (uint32_t q = 0; q < queues_; ++q)
        a->receivers.push_back(
            std::make_unique<XskReceiver>(cap_b, q, obj_.mapFd("xsks"), xsk_index + q, xsk_));
    maps_.setCaptureInterface(a->info.capture_ifindex, ifindex, xsk_index);
    maps_.setTransitInterface(ifindex, a->info.capture_peer_ifindex);
    a->registered = true;
    a->clone_tc = std::make_unique<TcAttachment>(ifindex, obj_.cloneProgFd());
    if (obj_.hook() == TransitHook::Xdp) {
        a->transit_xdp = std::make_unique<XdpAttachment>(ifindex, obj_.transitProgFd(), mode);
        a->info.mode = a->transit_xdp->mode();
    } else {
        a->info.tc_hook = true;  // tc classifies: no XDP program on the interface
        detachLeftoverXdp(ifindex, "xtap_transit");
    }

    auto& slot = attached_[ifname];
    slot = std::move(a);
    return slot->info;
}

void CopyPath::detach(const std::string& ifname) {
    attached_.erase(ifname);
}

void CopyPath::detachAll() {
    attached_.clear();
}

std::vector<TransitInterface> CopyPath::interfaces() const {
    std::vector<TransitInterface> out;
    for (const auto& [n, a] : attached_) out.push_back(a->info);
    return out;
}

std::vector<XskReceiver*> CopyPath::receivers(uint32_t queue) {
    std::vector<XskReceiver*> out;
    for (auto& [n, a] : attached_)
        if (queue < a->receivers.size()) out.push_back(a->receivers[queue].get());
    return out;
}

std::vector<CaptureCounters> CopyPath::captureCounters() const {
    std::vector<CaptureCounters> out;
    for (const auto& [n, a] : attached_) {
        CaptureCounters c;
        for (const auto& r : a->receivers) {
            const XskStats s = r->stats();
            c.xsk.rx_dropped += s.rx_dropped;
            c.xsk.rx_invalid_descs += s.rx_invalid_descs;
            c.xsk.rx_ring_full += s.rx_ring_full;
            c.xsk.rx_fill_ring_empty_descs += s.rx_fill_ring_empty_descs;
        }
        try {
            c.veth_dropped = linkCounters(a->info.capture_peer_ifindex).tx_dropped;
        } catch (const std::system_error&) {
            // The pair is ours and lives as long as the entry; a failed read
            // leaves the figure at 0 rather than failing the whole status.
        }
        out.push_back(c);
    }
    return out;
}

}  // namespace xtap::dataplane::kernel
