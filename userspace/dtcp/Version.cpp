#include "dtcp/Version.h"

#include "dtcp/Text.h"

namespace xtap::dtcp {

namespace {
// 1 to 3 decimal digits; larger numbers are no DTCP version.
std::optional<uint16_t> parseSmallNumber(std::string_view digits) {
    if (digits.empty() || digits.size() > 3) return std::nullopt;
    uint16_t value = 0;
    for (char c : digits) {
        if (!isDigit(c)) return std::nullopt;
        value = static_cast<uint16_t>(value * 10 + (c - '0'));
    }
    return value;
}
}  // namespace

bool isSupported(Version v) {
    return v >= kOldestSupportedVersion && v <= kNewestSupportedVersion;
}

Version replyVersionFor(Version requested) {
    if (requested > kNewestSupportedVersion) return kNewestSupportedVersion;
    if (requested < kOldestSupportedVersion) return kOldestSupportedVersion;
    return requested;
}

std::optional<Version> parseVersion(std::string_view text) {
    constexpr std::string_view kPrefix = "DTCP/";
    if (text.substr(0, kPrefix.size()) != kPrefix) return std::nullopt;
    text.remove_prefix(kPrefix.size());
    const size_t dot = text.find('.');
    if (dot == std::string_view::npos) return std::nullopt;
    const auto major = parseSmallNumber(text.substr(0, dot));
    const auto minor = parseSmallNumber(text.substr(dot + 1));
    if (!major || !minor) return std::nullopt;
    return Version{*major, *minor};
}

std::string formatVersion(Version v) {
    return "DTCP/" + std::to_string(v.major) + "." + std::to_string(v.minor);
}

}  // namespace xtap::dtcp
