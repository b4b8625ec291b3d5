// Version: the DTCP/x.y protocol version of a message (dtcp.md §3).
#pragma once

#include <compare>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xtap::dtcp {

struct Version {
    uint16_t major = 0;
    uint16_t minor = 0;
    auto operator<=>(const Version&) const = default;
};

inline constexpr Version kVersion06{0, 6};
inline constexpr Version kVersion07{0, 7};
inline constexpr Version kVersion08{0, 8};
inline constexpr Version kOldestSupportedVersion = kVersion06;
inline constexpr Version kNewestSupportedVersion = kVersion08;
// Notifications to a client that has not spoken yet go out in 0.7, as Junos does.
inline constexpr Version kDefaultNotificationVersion = kVersion07;

bool isSupported(Version v);

// The version a reply to a request of version `requested` is written in: the
// request's own when supported, else the newest (client newer than xtap) or the
// oldest (client older) supported one, as draft §6.7 asks for 505.
Version replyVersionFor(Version requested);

// "DTCP/x.y" with 1 to 3 digits on each side.
std::optional<Version> parseVersion(std::string_view text);
std::string formatVersion(Version v);

}  // namespace xtap::dtcp
