// Link: the few link operations the copy path needs, over rtnetlink and the
// ethtool ioctl (no shelling out to ip/ethtool): create a veth pair, bring a
// link up, set its MTU, turn GRO/LRO off, delete a link.
#pragma once

#include <cstdint>
#include <string>

namespace xtap::dataplane::kernel {

uint32_t ifindexOf(const std::string& name);  // 0 when absent
std::string ifnameOf(uint32_t ifindex);       // empty when absent
uint32_t mtuOf(const std::string& name);

// Each throws std::system_error naming the link and the operation.
// `queues` RX and TX queues on each end: the capture pair spreads copies
// over that many AF_XDP sockets (one per copy thread).
void createVethPair(const std::string& name, const std::string& peer, uint32_t queues = 1);
void deleteLink(const std::string& name);  // absent is fine
void setLinkUp(const std::string& name);
void setMtu(const std::string& name, uint32_t mtu);
void disableIpv6(const std::string& name);
// tc sees post-GRO skbs: a merged 64 KB TCP skb would not fit an AF_XDP frame.
void disableReceiveOffloads(const std::string& name);
bool receiveOffloadsOff(const std::string& name);

// A link's own packet counters (rtnetlink IFLA_STATS64).
struct LinkCounters {
    uint64_t rx_packets = 0;
    uint64_t tx_packets = 0;
    uint64_t rx_dropped = 0;
    uint64_t tx_dropped = 0;
};
// Throws std::system_error when the link is gone or netlink fails.
LinkCounters linkCounters(uint32_t ifindex);

// RAII veth pair: deleted (both ends) on destruction.
class VethPair {
  public:
    VethPair(std::string name, std::string peer, uint32_t queues = 1);
    ~VethPair();
    VethPair(const VethPair&) = delete;
    VethPair& operator=(const VethPair&) = delete;
    const std::string& name() const { return name_; }
    const std::string& peer() const { return peer_; }

  private:
    std::string name_, peer_;
};

}  // namespace xtap::dataplane::kernel
