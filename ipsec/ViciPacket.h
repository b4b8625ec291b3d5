// vici transport and packet layers (strongSwan vici README, platform.md §8):
// each packet travels as a 4-byte big-endian length and that many payload
// bytes (at most 512 KiB); payload byte 0 is the packet type, then a name
// (8-bit length) and/or a message, depending on the type. Pure: the socket
// side feeds bytes in and writes encoded packets out.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>

#include "ipsec/ViciMessage.h"
#include "ipsec/ViciResult.h"

namespace xtap::ipsec {

enum class PacketType : uint8_t {
    CmdRequest = 0,       // name, message
    CmdResponse = 1,      // message
    CmdUnknown = 2,       // -
    EventRegister = 3,    // name
    EventUnregister = 4,  // name
    EventConfirm = 5,     // -
    EventUnknown = 6,     // -
    Event = 7,            // name, message
};

inline constexpr size_t kLengthFieldSize = 4;
inline constexpr size_t kMaxPacketSize = 512 * 1024;  // payload bytes, length field excluded

bool carriesName(PacketType type);
bool carriesMessage(PacketType type);

struct Packet {
    PacketType type = PacketType::CmdRequest;
    std::string name;  // only for types that carry one
    Bytes message;     // an encoded message (see decodeMessage); only for types that carry one

    bool operator==(const Packet&) const = default;
};

// The bytes to write to the socket, length field included. A name or message
// on a type that has none is an error rather than silently dropped.
ViciResult<Bytes> encodePacket(const Packet& packet);

// One payload, length field already removed.
ViciResult<Packet> decodePacket(std::span<const uint8_t> payload);

// Takes whatever the socket returned, in chunks of any size, and hands back
// complete packets in order. An error is final: after a bad length the stream
// cannot be resynchronised, so every later next() returns the same error and
// the connection must be dropped.
class PacketReassembler {
  public:
    void append(std::span<const uint8_t> chunk);

    // A packet, nullopt while the next one is incomplete, or the error.
    ViciResult<std::optional<Packet>> next();

    size_t buffered() const { return buffer_.size() - start_; }

  private:
    Bytes buffer_;
    size_t start_ = 0;  // first unconsumed byte in buffer_
    std::optional<ViciError> failure_;
};

}  // namespace xtap::ipsec
