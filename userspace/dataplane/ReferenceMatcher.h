// ReferenceMatcher: the matching semantics of Filter.h written plainly, from
// the frame bytes up, without the BPF code's data structures (no masks, no
// hashes, no prefilter). The differential test runs the same packets through
// the loaded XDP program and through this and requires the same verdicts.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <span>
#include <tuple>
#include <vector>

#include "dataplane/Filter.h"

namespace xtap::dataplane {

// The fields of a frame that matching looks at.
struct PacketFields {
    Family family = Family::V4;
    Address src{};
    Address dst{};
    uint8_t proto = 0;
    bool l4_known = false;
    uint16_t sport = 0;  // ICMP type for ICMP
    uint16_t dport = 0;  // ICMP code for ICMP
    enum class Frag { None, First, Later } frag = Frag::None;
    uint32_t frag_id = 0;
    uint32_t l3_len = 0;
};

// Parse an Ethernet frame (up to two VLAN tags, IPv4 with options, IPv6 with
// up to 8 extension headers). nullopt when it is not IP or is malformed.
std::optional<PacketFields> parseFrame(std::span<const uint8_t> frame);

bool prefixContains(const Prefix& p, const Address& a);
// `oifindex`: the packet's egress interface by the route model, 0 = not forwarded.
bool filterMatches(const Filter& f, const PacketFields& p, uint32_t ifindex, uint32_t oifindex = 0);

// The interface the kernel's FIB forwards a packet out of when it entered on
// `ifindex`; 0 when it is not forwarded. Injected: the reference matcher knows
// no routing table, the test that drives it installs the same routes in the
// kernel the classifier asks.
using RouteModel = std::function<uint32_t(const PacketFields& p, uint32_t ifindex)>;

class ReferenceMatcher {
  public:
    void add(uint32_t slot, FilterSet set);
    void remove(uint32_t slot);
    // Without one, every packet is unrouted (egress 0).
    void setRoutes(RouteModel routes) { routes_ = std::move(routes); }

    // Slots selecting the frame, sorted. Tracks first fragments like the
    // classifier does, so call it in arrival order.
    std::vector<uint32_t> match(std::span<const uint8_t> frame, uint32_t ifindex, uint64_t now_ns);

    // A later fragment that came before its first and that a port- or
    // ICMP-scoped criterion could still select once the first fragment says
    // what its ports are: the classifier must hand it over as pending (it may
    // also flag more than these; holding too much costs only memory).
    bool mustHoldAsPending(std::span<const uint8_t> frame, uint32_t ifindex, uint64_t now_ns) const;

  private:
    using FragKey = std::tuple<uint8_t, uint8_t, uint32_t, Address, Address>;
    // A first fragment's criteria, good for its later fragments during the
    // fragment window (XTAP_FRAG_WINDOW_NS), as in the classifier.
    struct FirstFragment {
        std::set<uint32_t> slots;
        uint64_t seen_ns = 0;
    };
    const FirstFragment* firstFragment(const FragKey& key, uint64_t now_ns) const;

    uint32_t egressOf(const PacketFields& p, uint32_t ifindex) const {
        return routes_ ? routes_(p, ifindex) : 0;
    }

    RouteModel routes_;
    std::map<uint32_t, FilterSet> criteria_;
    std::map<FragKey, FirstFragment> frags_;
};

}  // namespace xtap::dataplane
