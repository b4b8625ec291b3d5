#include "ipsec/ViciPacket.h"

namespace xtap::ipsec {

namespace {

constexpr uint8_t kLastPacketType = static_cast<uint8_t>(PacketType::Event);
// Compact the buffer once this many consumed bytes sit in front of it.
constexpr size_t kCompactThreshold = 64 * 1024;

}  // namespace

bool carriesName(PacketType type) {
    return type == PacketType::CmdRequest || type == PacketType::EventRegister ||
           type == PacketType::EventUnregister || type == PacketType::Event;
}

bool carriesMessage(PacketType type) {
    return type == PacketType::CmdRequest || type == PacketType::CmdResponse ||
           type == PacketType::Event;
}

ViciResult<Bytes> encodePacket(const Packet& packet) {
    if (static_cast<uint8_t>(packet.type) > kLastPacketType) {
        return viciError(ViciErrc::UnknownPacketType,
                         std::to_string(static_cast<unsigned>(packet.type)));
    }
    if (carriesName(packet.type)) {
        if (!isValidName(packet.name)) {
            return viciError(ViciErrc::InvalidName, "packet name '" + packet.name + "'");
        }
    } else if (!packet.name.empty()) {
        return viciError(ViciErrc::InvalidPacket, "this packet type has no name");
    }
    if (!carriesMessage(packet.type) && !packet.message.empty()) {
        return viciError(ViciErrc::InvalidPacket, "this packet type has no message");
    }
    const size_t name_size = carriesName(packet.type) ? 1 + packet.name.size() : 0;
    const size_t payload = 1 + name_size + packet.message.size();
    if (payload > kMaxPacketSize) {
        return viciError(ViciErrc::Oversize, std::to_string(payload) + " bytes");
    }
    Bytes out;
    out.reserve(kLengthFieldSize + payload);
    for (int shift = 24; shift >= 0; shift -= 8) {
        out.push_back(static_cast<uint8_t>(payload >> shift));
    }
    out.push_back(static_cast<uint8_t>(packet.type));
    if (carriesName(packet.type)) {
        out.push_back(static_cast<uint8_t>(packet.name.size()));
        out.insert(out.end(), packet.name.begin(), packet.name.end());
    }
    out.insert(out.end(), packet.message.begin(), packet.message.end());
    return out;
}

ViciResult<Packet> decodePacket(std::span<const uint8_t> payload) {
    if (payload.empty()) {
        return viciError(ViciErrc::EmptyPacket);
    }
    if (payload.size() > kMaxPacketSize) {
        return viciError(ViciErrc::Oversize, std::to_string(payload.size()) + " bytes");
    }
    if (payload[0] > kLastPacketType) {
        return viciError(ViciErrc::UnknownPacketType, std::to_string(payload[0]));
    }
    Packet packet;
    packet.type = static_cast<PacketType>(payload[0]);
    size_t pos = 1;
    if (carriesName(packet.type)) {
        if (pos >= payload.size() || payload.size() - pos - 1 < payload[pos]) {
            return viciError(ViciErrc::Truncated, "packet name");
        }
        const size_t size = payload[pos++];
        packet.name.assign(payload.begin() + pos, payload.begin() + pos + size);
        pos += size;
        if (!isValidName(packet.name)) {
            return viciError(ViciErrc::InvalidName, "packet name '" + packet.name + "'");
        }
    }
    if (carriesMessage(packet.type)) {
        packet.message.assign(payload.begin() + pos, payload.end());
    } else if (pos != payload.size()) {
        return viciError(ViciErrc::TrailingBytes,
                         std::to_string(payload.size() - pos) + " byte(s) after the packet");
    }
    return packet;
}

void PacketReassembler::append(std::span<const uint8_t> chunk) {
    if (failure_) {
        return;
    }
    if (start_ >= kCompactThreshold) {
        buffer_.erase(buffer_.begin(), buffer_.begin() + static_cast<ptrdiff_t>(start_));
        start_ = 0;
    }
    buffer_.insert(buffer_.end(), chunk.begin(), chunk.end());
}

ViciResult<std::optional<Packet>> PacketReassembler::next() {
    if (failure_) {
        return *failure_;
    }
    if (buffered() < kLengthFieldSize) {
        return std::optional<Packet>{};
    }
    const uint8_t* head = buffer_.data() + start_;
    const size_t length = static_cast<size_t>(head[0]) << 24 | static_cast<size_t>(head[1]) << 16 |
                          static_cast<size_t>(head[2]) << 8 | head[3];
    // Judge the length before its payload arrives: a bad one would otherwise
    // make us buffer up to 4 GiB.
    if (length == 0) {
        failure_ = viciError(ViciErrc::EmptyPacket, "length field 0");
    } else if (length > kMaxPacketSize) {
        failure_ = viciError(ViciErrc::Oversize, "length field " + std::to_string(length));
    }
    if (failure_) {
        buffer_.clear();
        start_ = 0;
        return *failure_;
    }
    if (buffered() < kLengthFieldSize + length) {
        return std::optional<Packet>{};
    }
    auto packet = decodePacket(std::span<const uint8_t>(head + kLengthFieldSize, length));
    if (!packet) {
        failure_ = packet.error();
        buffer_.clear();
        start_ = 0;
        return *failure_;
    }
    start_ += kLengthFieldSize + length;
    if (start_ == buffer_.size()) {
        buffer_.clear();
        start_ = 0;
    }
    return std::optional<Packet>(std::move(packet).value());
}

}  // namespace xtap::ipsec
