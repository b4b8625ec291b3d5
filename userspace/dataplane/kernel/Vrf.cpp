#include "dataplane/kernel/Vrf.h"

#include <linux/if_link.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string_view>
#include <system_error>

#include "common/UniqueFd.h"

namespace xtap::dataplane::kernel {

namespace {

struct LinkInfo {
    uint32_t ifindex = 0;
    uint32_t master = 0;
    std::string name;
    std::string kind;  // IFLA_INFO_KIND: "vrf", "veth", ...
};

[[noreturn]] void fail(int err) {
    throw std::system_error(err, std::generic_category(), "read the links over rtnetlink");
}

std::string attrString(const rtattr* a) {
    const char* p = static_cast<const char*>(RTA_DATA(a));
    return std::string(p, strnlen(p, RTA_PAYLOAD(a)));
}

LinkInfo parseLink(const nlmsghdr* h) {
    const auto* ifi = static_cast<const ifinfomsg*>(NLMSG_DATA(h));
    LinkInfo link;
    link.ifindex = static_cast<uint32_t>(ifi->ifi_index);
    int len = static_cast<int>(IFLA_PAYLOAD(h));
    for (const rtattr* a = IFLA_RTA(ifi); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
        if (a->rta_type == IFLA_IFNAME) {
            link.name = attrString(a);
        } else if (a->rta_type == IFLA_MASTER && RTA_PAYLOAD(a) >= sizeof(uint32_t)) {
            std::memcpy(&link.master, RTA_DATA(a), sizeof(uint32_t));
        } else if (a->rta_type == IFLA_LINKINFO) {
            int inner = static_cast<int>(RTA_PAYLOAD(a));
            for (const rtattr* i = static_cast<const rtattr*>(RTA_DATA(a)); RTA_OK(i, inner);
                 i = RTA_NEXT(i, inner)) {
                if (i->rta_type == IFLA_INFO_KIND) link.kind = attrString(i);
            }
        }
    }
    return link;
}

// Every link of this network namespace (one RTM_GETLINK dump).
std::vector<LinkInfo> dumpLinks() {
    UniqueFd fd(::socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE));
    if (!fd) fail(errno);
    struct {
        nlmsghdr header;
        ifinfomsg ifi;
    } request{};
    request.header.nlmsg_len = NLMSG_LENGTH(sizeof(ifinfomsg));
    request.header.nlmsg_type = RTM_GETLINK;
    request.header.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
    request.header.nlmsg_seq = 1;
    request.ifi.ifi_family = AF_UNSPEC;
    sockaddr_nl kernel_address{};
    kernel_address.nl_family = AF_NETLINK;
    if (::sendto(fd.get(), &request, request.header.nlmsg_len, 0,
                 reinterpret_cast<const sockaddr*>(&kernel_address), sizeof kernel_address) < 0)
        fail(errno);
    std::vector<LinkInfo> links;
    std::vector<char> buffer(32768);
    // A dump ends with NLMSG_DONE; a bounded number of reads guards against a
    // kernel that never sends it.
    for (int reads = 0; reads < 100000; ++reads) {
        const ssize_t n = ::recv(fd.get(), buffer.data(), buffer.size(), 0);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail(errno);
        }
        unsigned remaining = static_cast<unsigned>(n);
        for (auto* h = reinterpret_cast<nlmsghdr*>(buffer.data()); NLMSG_OK(h, remaining);
             h = NLMSG_NEXT(h, remaining)) {
            if (h->nlmsg_type == NLMSG_DONE) return links;
            if (h->nlmsg_type == NLMSG_ERROR) {
                const int err = -static_cast<const nlmsgerr*>(NLMSG_DATA(h))->error;
                fail(err ? err : EPROTO);
            }
            if (h->nlmsg_type == RTM_NEWLINK) links.push_back(parseLink(h));
        }
    }
    fail(EPROTO);
}

}  // namespace

std::optional<std::vector<uint32_t>> enslavedLinks(const std::string& master_name,
                                                   std::string_view kind) {
    const std::vector<LinkInfo> links = dumpLinks();
    const auto master = std::find_if(links.begin(), links.end(), [&](const LinkInfo& l) {
        return l.name == master_name && l.kind == kind;
    });
    if (master == links.end()) return std::nullopt;
    std::vector<uint32_t> members;
    for (const LinkInfo& l : links)
        if (l.master == master->ifindex) members.push_back(l.ifindex);
    std::sort(members.begin(), members.end());
    return members;
}

std::optional<std::vector<uint32_t>> vrfMembers(const std::string& vrf_name) {
    return enslavedLinks(vrf_name, "vrf");
}

}  // namespace xtap::dataplane::kernel
