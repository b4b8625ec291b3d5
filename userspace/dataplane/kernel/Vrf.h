// Vrf: the members of a Linux VRF device, read over rtnetlink. A link belongs
// to a VRF when its IFLA_MASTER is the VRF device's ifindex.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace xtap::dataplane::kernel {

// The ifindexes of the links enslaved to the master device `master_name` of
// kind `kind` (IFLA_INFO_KIND: "vrf", "bridge", ...), in ifindex order;
// nullopt when no link of that name has that kind. Throws std::system_error
// when the links cannot be read.
std::optional<std::vector<uint32_t>> enslavedLinks(const std::string& master_name,
                                                   std::string_view kind);

// The members of the VRF device `vrf_name`: enslavedLinks(vrf_name, "vrf").
std::optional<std::vector<uint32_t>> vrfMembers(const std::string& vrf_name);

}  // namespace xtap::dataplane::kernel
