// Result<T>: a value or a DeliveryError. Errors are plain codes, not strings,
// because encapsulation and decoding run once per copied packet.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace xtap::delivery {

enum class DeliveryError : uint8_t {
    BufferTooSmall,        // the caller's output span cannot hold the result
    PacketTooLarge,        // the UDP datagram would exceed 65535 bytes
    NotIp,                 // first nibble is neither 4 nor 6
    TruncatedPacket,       // shorter than its IP header or its declared length
    BadIpHeader,           // IPv4 IHL below 5, or total length below the header
    LengthMismatch,        // declared IP length differs from the bytes carried
    TruncatedFrame,        // Ethernet or VLAN header cut short
    UnsupportedEthertype,  // neither IPv4 nor IPv6 after the tags
    TooManyVlanTags,       // more than two 802.1Q/802.1ad tags
    FamilyMismatch,        // EtherType and IP version nibble disagree
    UnknownFormat,         // neither an IP packet nor a version-0 JMirror header
    FormatMismatch,        // valid copy, but not in the format the caller expects
    InvalidFamily,         // outer family is neither V4 nor V6
    InvalidAddress,        // IPv4 address with non-zero bytes past the fourth
    InvalidPort,           // destination port 0
    InvalidTtl,            // TTL / hop limit 0: the copy would die at once
    InterceptIdTooWide,    // JMirror intercept ID above 30 bits
};

std::string_view describe(DeliveryError error);

template <class T>
class [[nodiscard]] Result {
    static_assert(!std::is_same_v<T, DeliveryError>);

  public:
    Result(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    Result(DeliveryError error) : state_(std::in_place_index<1>, error) {}

    bool ok() const { return state_.index() == 0; }
    explicit operator bool() const { return ok(); }

    // Preconditions: ok() for value(), !ok() for error().
    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    DeliveryError error() const { return std::get<1>(state_); }

    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

  private:
    std::variant<T, DeliveryError> state_;
};

template <>
class [[nodiscard]] Result<void> {
  public:
    Result() = default;
    Result(DeliveryError error) : error_(error) {}

    bool ok() const { return !error_.has_value(); }
    explicit operator bool() const { return ok(); }
    DeliveryError error() const { return *error_; }

  private:
    std::optional<DeliveryError> error_;
};

}  // namespace xtap::delivery
