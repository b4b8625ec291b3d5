#include "dtcp/Hmac.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include <array>
#include <cstdint>
#include <optional>
#include <stdexcept>

namespace xtap::dtcp {

namespace {

constexpr size_t kSha1Bytes = 20;
using Digest = std::array<unsigned char, kSha1Bytes>;

Digest computeDigest(std::string_view key, std::string_view bytes) {
    // OpenSSL wants non-null pointers even for empty inputs.
    static constexpr unsigned char kEmpty = 0;
    const void* key_ptr = key.empty() ? static_cast<const void*>(&kEmpty) : key.data();
    const auto* data_ptr =
        bytes.empty() ? &kEmpty : reinterpret_cast<const unsigned char*>(bytes.data());
    Digest digest{};
    unsigned int length = 0;
    if (HMAC(EVP_sha1(), key_ptr, static_cast<int>(key.size()), data_ptr, bytes.size(),
             digest.data(), &length) == nullptr ||
        length != kSha1Bytes) {
        throw std::runtime_error("OpenSSL cannot compute HMAC-SHA1");
    }
    return digest;
}

std::optional<unsigned> hexDigit(char c) {
    if (c >= '0' && c <= '9') return static_cast<unsigned>(c - '0');
    if (c >= 'a' && c <= 'f') return static_cast<unsigned>(c - 'a' + 10);
    if (c >= 'A' && c <= 'F') return static_cast<unsigned>(c - 'A' + 10);
    return std::nullopt;
}

}  // namespace

std::string hmacSha1Hex(std::string_view key, std::string_view bytes) {
    static constexpr char kHex[] = "0123456789abcdef";
    const Digest digest = computeDigest(key, bytes);
    std::string hex;
    hex.reserve(2 * kSha1Bytes);
    for (unsigned char b : digest) {
        hex.push_back(kHex[b >> 4]);
        hex.push_back(kHex[b & 0x0f]);
    }
    return hex;
}

bool hmacSha1Matches(std::string_view key, std::string_view bytes, std::string_view hex) {
    if (hex.size() != 2 * kSha1Bytes) return false;
    Digest claimed{};
    for (size_t i = 0; i < kSha1Bytes; ++i) {
        const auto hi = hexDigit(hex[2 * i]);
        const auto lo = hexDigit(hex[2 * i + 1]);
        if (!hi || !lo) return false;
        claimed[i] = static_cast<unsigned char>((*hi << 4) | *lo);
    }
    const Digest actual = computeDigest(key, bytes);
    return CRYPTO_memcmp(claimed.data(), actual.data(), kSha1Bytes) == 0;
}

}  // namespace xtap::dtcp
