// ViciResult<T>: a value or a ViciError. vici runs on the control path, so
// errors carry a readable detail (where, what) for logs and tests.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

namespace xtap::ipsec {

enum class ViciErrc : uint8_t {
    Truncated,           // an element or packet ends before its declared length
    UnknownElementType,  // element type byte outside 1-6
    UnbalancedSection,   // SECTION_END at the root, or a section left open
    NotAllowedInList,    // section, key/value or list started inside a list
    OutsideList,         // LIST_ITEM or LIST_END with no open list
    UnterminatedList,    // message ends inside a list
    DuplicateKey,        // a name used twice in one section
    InvalidName,         // empty, longer than 255 bytes, or not printable ASCII
    ValueTooLong,        // value above 65535 bytes
    TooDeep,             // sections nested deeper than kMaxSectionDepth
    Oversize,            // packet above 512 KiB
    EmptyPacket,         // length 0: not even a packet type
    UnknownPacketType,   // packet type byte outside 0-7
    TrailingBytes,       // bytes after a packet that carries no message
    InvalidPacket,       // a name or message on a packet type that has none
    UnexpectedPacket,    // a packet type the reader did not ask for
    UnknownCommand,      // CMD_UNKNOWN: charon has no such command
    UnknownEvent,        // EVENT_UNKNOWN: charon has no such event
    MissingKey,          // a typed reader needs a key the message lacks
    InvalidValue,        // a key holds a value the typed reader cannot use
    InvalidRequest,      // a typed request was given inconsistent input
};

std::string_view describe(ViciErrc code);

struct ViciError {
    ViciErrc code;
    std::string detail;

    std::string message() const;  // "<description>: <detail>"
};

template <class T>
class [[nodiscard]] ViciResult {
    static_assert(!std::is_same_v<T, ViciError>);

  public:
    ViciResult(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    ViciResult(ViciError error) : state_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return state_.index() == 0; }
    explicit operator bool() const { return ok(); }

    // Preconditions: ok() for value(), !ok() for error().
    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    const ViciError& error() const { return std::get<1>(state_); }

    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

  private:
    std::variant<T, ViciError> state_;
};

template <>
class [[nodiscard]] ViciResult<void> {
  public:
    ViciResult() = default;
    ViciResult(ViciError error) : error_(std::move(error)) {}

    bool ok() const { return !error_.has_value(); }
    explicit operator bool() const { return ok(); }
    const ViciError& error() const { return *error_; }

  private:
    std::optional<ViciError> error_;
};

inline ViciError viciError(ViciErrc code, std::string detail = {}) {
    return ViciError{code, std::move(detail)};
}

}  // namespace xtap::ipsec
