#include "dataplane/kernel/Link.h"

#include <net/if.h>  // before the linux/ headers, which defer to it

#include <linux/ethtool.h>
#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/veth.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fcntl.h>

#include <cerrno>
#include <cstring>
#include <system_error>
#include <vector>

#include "common/UniqueFd.h"

namespace xtap::dataplane::kernel {

namespace {

[[noreturn]] void fail(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

// A netlink request built attribute by attribute; nests patch their length.
class NlRequest {
  public:
    NlRequest(uint16_t type, uint16_t flags) {
        buf_.resize(NLMSG_LENGTH(sizeof(ifinfomsg)));
        auto* h = header();
        h->nlmsg_type = type;
        h->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
        h->nlmsg_seq = 1;
        h->nlmsg_len = static_cast<uint32_t>(buf_.size());
    }
    ifinfomsg* ifi() { return static_cast<ifinfomsg*>(NLMSG_DATA(header())); }
    void put(uint16_t type, const void* data, size_t len) {
        const size_t off = buf_.size();
        buf_.resize(off + RTA_ALIGN(RTA_LENGTH(len)));
        auto* rta = reinterpret_cast<rtattr*>(&buf_[off]);
        rta->rta_type = type;
        rta->rta_len = static_cast<uint16_t>(RTA_LENGTH(len));
        if (len) std::memcpy(RTA_DATA(rta), data, len);
        header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
    }
    void putString(uint16_t type, const std::string& s) { put(type, s.c_str(), s.size() + 1); }
    size_t begin(uint16_t type) {
        const size_t off = buf_.size();
        put(type, nullptr, 0);
        return off;
    }
    void end(size_t off) {
        reinterpret_cast<rtattr*>(&buf_[off])->rta_len = static_cast<uint16_t>(buf_.size() - off);
    }
    void reserve(size_t len) {  // raw struct inside a nest (VETH_INFO_PEER's ifinfomsg)
        buf_.resize(buf_.size() + NLMSG_ALIGN(len));
        header()->nlmsg_len = static_cast<uint32_t>(buf_.size());
    }
    // Sends and waits for the ACK; returns 0 or a positive errno.
    int transact() {
        UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
        if (!fd) return errno;
        sockaddr_nl sa{};
        sa.nl_family = AF_NETLINK;
        if (::sendto(fd.get(), buf_.data(), buf_.size(), 0, reinterpret_cast<sockaddr*>(&sa),
                     sizeof sa) < 0)
            return errno;
        char reply[8192];
        const ssize_t n = ::recv(fd.get(), reply, sizeof reply, 0);
        if (n < 0) return errno;
        auto* h = reinterpret_cast<nlmsghdr*>(reply);
        if (!NLMSG_OK(h, static_cast<unsigned>(n)) || h->nlmsg_type != NLMSG_ERROR) return EPROTO;
        return -static_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
    }

  private:
    nlmsghdr* header() { return reinterpret_cast<nlmsghdr*>(buf_.data()); }
    std::vector<uint8_t> buf_;
};

int ethtoolIoctl(const std::string& name, void* cmd) {
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    if (!fd) return errno;
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    ifr.ifr_data = static_cast<char*>(cmd);
    return ::ioctl(fd.get(), SIOCETHTOOL, &ifr) < 0 ? errno : 0;
}

}  // namespace

uint32_t ifindexOf(const std::string& name) {
    return ::if_nametoindex(name.c_str());
}

std::string ifnameOf(uint32_t ifindex) {
    char buf[IF_NAMESIZE] = {};
    return ::if_indextoname(ifindex, buf) ? std::string(buf) : std::string();
}

uint32_t mtuOf(const std::string& name) {
    UniqueFd fd(::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    ifreq ifr{};
    std::strncpy(ifr.ifr_name, name.c_str(), IFNAMSIZ - 1);
    if (!fd || ::ioctl(fd.get(), SIOCGIFMTU, &ifr) < 0) fail(errno, "read MTU of " + name);
    return static_cast<uint32_t>(ifr.ifr_mtu);
}

void createVethPair(const std::string& name, const std::string& peer, uint32_t queues) {
    NlRequest req(RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
    req.ifi()->ifi_family = AF_UNSPEC;
    req.putString(IFLA_IFNAME, name);
    req.put(IFLA_NUM_TX_QUEUES, &queues, sizeof queues);
    req.put(IFLA_NUM_RX_QUEUES, &queues, sizeof queues);
    const size_t linkinfo = req.begin(IFLA_LINKINFO);
    req.putString(IFLA_INFO_KIND, "veth");
    const size_t data = req.begin(IFLA_INFO_DATA);
    const size_t peer_nest = req.begin(VETH_INFO_PEER);
    req.reserve(sizeof(ifinfomsg));
    req.putString(IFLA_IFNAME, peer);
    req.put(IFLA_NUM_TX_QUEUES, &queues, sizeof queues);
    req.put(IFLA_NUM_RX_QUEUES, &queues, sizeof queues);
    req.end(peer_nest);
    req.end(data);
    req.end(linkinfo);
    if (int err = req.transact()) fail(err, "create veth pair " + name + "/" + peer);
}

void deleteLink(const std::string& name) {
    const uint32_t ifindex = ifindexOf(name);
    if (!ifindex) return;
    NlRequest req(RTM_DELLINK, 0);
    req.ifi()->ifi_index = static_cast<int>(ifindex);
    if (int err = req.transact(); err && err != ENODEV) fail(err, "delete link " + name);
}

void setLinkUp(const std::string& name) {
    const uint32_t ifindex = ifindexOf(name);
    if (!ifindex) fail(ENODEV, "bring up " + name);
    NlRequest req(RTM_NEWLINK, 0);
    req.ifi()->ifi_index = static_cast<int>(ifindex);
    req.ifi()->ifi_flags = IFF_UP;
    req.ifi()->ifi_change = IFF_UP;
    if (int err = req.transact()) fail(err, "bring up " + name);
}

void setMtu(const std::string& name, uint32_t mtu) {
    const uint32_t ifindex = ifindexOf(name);
    if (!ifindex) fail(ENODEV, "set MTU of " + name);
    NlRequest req(RTM_NEWLINK, 0);
    req.ifi()->ifi_index = static_cast<int>(ifindex);
    req.put(IFLA_MTU, &mtu, sizeof mtu);
    if (int err = req.transact()) fail(err, "set MTU of " + name);
}

void disableIpv6(const std::string& name) {
    const std::string path = "/proc/sys/net/ipv6/conf/" + name + "/disable_ipv6";
    UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CLOEXEC));
    if (!fd) {
        if (errno == ENOENT) return;  // IPv6 not in this kernel
        fail(errno, "disable IPv6 on " + name);
    }
    if (::write(fd.get(), "1", 1) != 1) fail(errno, "disable IPv6 on " + name);
}

void disableReceiveOffloads(const std::string& name) {
    ethtool_value gro{ETHTOOL_SGRO, 0};
    if (int err = ethtoolIoctl(name, &gro); err && err != EOPNOTSUPP)
        fail(err, "turn GRO off on " + name);
    ethtool_value flags{ETHTOOL_GFLAGS, 0};
    if (ethtoolIoctl(name, &flags) == 0 && (flags.data & ETH_FLAG_LRO)) {
        flags.cmd = ETHTOOL_SFLAGS;
        flags.data &= ~ETH_FLAG_LRO;
        if (int err = ethtoolIoctl(name, &flags)) fail(err, "turn LRO off on " + name);
    }
}

bool receiveOffloadsOff(const std::string& name) {
    ethtool_value gro{ETHTOOL_GGRO, 0};
    if (ethtoolIoctl(name, &gro) == 0 && gro.data) return false;
    ethtool_value flags{ETHTOOL_GFLAGS, 0};
    if (ethtoolIoctl(name, &flags) == 0 && (flags.data & ETH_FLAG_LRO)) return false;
    return true;
}

LinkCounters linkCounters(uint32_t ifindex) {
    const std::string what = "read counters of link " + std::to_string(ifindex);
    UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd) fail(errno, what);
    struct {
        nlmsghdr h;
        ifinfomsg ifi;
    } req{};
    req.h.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
    req.h.nlmsg_type = RTM_GETLINK;
    req.h.nlmsg_flags = NLM_F_REQUEST;
    req.h.nlmsg_seq = 1;
    req.ifi.ifi_family = AF_UNSPEC;
    req.ifi.ifi_index = static_cast<int>(ifindex);
    sockaddr_nl sa{};
    sa.nl_family = AF_NETLINK;
    if (::sendto(fd.get(), &req, req.h.nlmsg_len, 0, reinterpret_cast<sockaddr*>(&sa), sizeof sa) <
        0)
        fail(errno, what);
    alignas(nlmsghdr) char reply[32768];
    const ssize_t n = ::recv(fd.get(), reply, sizeof reply, 0);
    if (n < 0) fail(errno, what);
    auto* h = reinterpret_cast<nlmsghdr*>(reply);
    if (!NLMSG_OK(h, static_cast<unsigned>(n))) fail(EPROTO, what);
    if (h->nlmsg_type == NLMSG_ERROR) fail(-static_cast<nlmsgerr*>(NLMSG_DATA(h))->error, what);
    if (h->nlmsg_type != RTM_NEWLINK) fail(EPROTO, what);
    auto* ifi = static_cast<ifinfomsg*>(NLMSG_DATA(h));
    int len = static_cast<int>(IFLA_PAYLOAD(h));
    for (auto* rta = IFLA_RTA(ifi); RTA_OK(rta, len); rta = RTA_NEXT(rta, len)) {
        if (rta->rta_type != IFLA_STATS64 || RTA_PAYLOAD(rta) < sizeof(rtnl_link_stats64)) continue;
        rtnl_link_stats64 st;
        std::memcpy(&st, RTA_DATA(rta), sizeof st);  // RTA data is only 4-byte aligned
        return {st.rx_packets, st.tx_packets, st.rx_dropped, st.tx_dropped};
    }
    fail(EPROTO, what + ": no IFLA_STATS64");
}

VethPair::VethPair(std::string name, std::string peer, uint32_t queues)
    : name_(std::move(name)), peer_(std::move(peer)) {
    deleteLink(name_);  // a leftover from a crashed run
    createVethPair(name_, peer_, queues);
}

VethPair::~VethPair() {
    try {
        deleteLink(name_);
    } catch (const std::exception&) {
        // Nothing to do in a destructor; the link dies with its namespace.
    }
}

}  // namespace xtap::dataplane::kernel
