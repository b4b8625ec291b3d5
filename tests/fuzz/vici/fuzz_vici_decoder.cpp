// libFuzzer entry point for the vici codec (what charon's socket hands xtapd):
// the input is read at once as a message, as a packet payload and as a byte
// stream cut two ways, and every decoded tree goes through the reply readers
// (command outcome, version, list-sa, up/down). Invariants:
//   - a message that decodes re-encodes to the same bytes, and back to the same tree;
//   - a packet that decodes re-encodes to the same payload;
//   - the reassembler yields the same packets and error however the stream is cut.
// Sanitizer reports and broken invariants (__builtin_trap) are findings.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "ipsec/ViciCommands.h"
#include "ipsec/ViciMessage.h"
#include "ipsec/ViciPacket.h"

namespace {

using namespace xtap::ipsec;

void require(bool condition) {
    if (!condition) __builtin_trap();
}

// Every reader on a decoded tree: each either reads it or says why not.
void readAll(const Section& section) {
    (void)readCommandOutcome(section);
    (void)readVersion(section);
    if (auto sas = readListSa(section)) {
        for (const IkeSaInfo& ike : sas.value()) require(!ike.name.empty());
    }
    (void)readUpDown(section);
}

void checkMessage(std::span<const uint8_t> bytes) {
    auto decoded = decodeMessage(bytes);
    if (!decoded) return;
    auto encoded = encodeMessage(decoded.value());
    require(encoded.ok());
    require(encoded.value() == Bytes(bytes.begin(), bytes.end()));
    auto again = decodeMessage(encoded.value());
    require(again.ok() && again.value() == decoded.value());
    readAll(decoded.value());
}

void checkPacket(std::span<const uint8_t> payload) {
    auto packet = decodePacket(payload);
    if (!packet) return;
    auto wire = encodePacket(packet.value());
    require(wire.ok());
    require(wire.value().size() == kLengthFieldSize + payload.size());
    require(std::equal(payload.begin(), payload.end(), wire.value().begin() + kLengthFieldSize));
    if (auto response = readResponse(packet.value())) readAll(response.value());
    if (auto event = readEvent(packet.value())) readAll(event.value().message);
    (void)readEventConfirm(packet.value());
}

struct StreamOutcome {
    std::vector<Packet> packets;
    std::optional<ViciErrc> error;
    size_t buffered = 0;
    bool operator==(const StreamOutcome&) const = default;
};

StreamOutcome reassemble(std::span<const uint8_t> stream, size_t chunk) {
    PacketReassembler reassembler;
    StreamOutcome out;
    for (size_t pos = 0; pos < stream.size(); pos += chunk) {
        reassembler.append(stream.subspan(pos, std::min(chunk, stream.size() - pos)));
        while (true) {
            auto next = reassembler.next();
            if (!next) {
                out.error = next.error().code;
                // An error is final.
                auto later = reassembler.next();
                require(!later && later.error().code == *out.error);
                return out;
            }
            if (!next.value()) break;
            out.packets.push_back(std::move(*next.value()));
        }
    }
    out.buffered = reassembler.buffered();
    return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::span<const uint8_t> input(data, size);
    checkMessage(input);
    checkPacket(input);
    const StreamOutcome whole = reassemble(input, input.size() + 1);
    const StreamOutcome chunked = reassemble(input, 3);
    require(whole == chunked);
    for (const Packet& packet : whole.packets) {
        auto wire = encodePacket(packet);
        require(wire.ok());
        checkPacket(std::span<const uint8_t>(wire.value()).subspan(kLengthFieldSize));
        if (carriesMessage(packet.type)) checkMessage(packet.message);
    }
    return 0;
}
