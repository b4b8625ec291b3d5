// Hmac: the Authentication-Info value, RFC 2104 HMAC-SHA1 over the bytes of a
// message before its Authentication-Info line, as 40 hex digits (dtcp.md §8).
#pragma once

#include <string>
#include <string_view>

namespace xtap::dtcp {

// The key Juniper's clients and documentation use; xtap's per-user default.
inline constexpr std::string_view kDefaultHmacKey = "Juniper";

// 40 lowercase hex digits. Throws std::runtime_error only if OpenSSL cannot
// compute HMAC-SHA1 at all (no provider, out of memory).
std::string hmacSha1Hex(std::string_view key, std::string_view bytes);

// Whether `hex` (either case) is the HMAC of `bytes`; the digests are compared
// in constant time. Anything but 40 hex digits is a mismatch.
bool hmacSha1Matches(std::string_view key, std::string_view bytes, std::string_view hex);

}  // namespace xtap::dtcp
