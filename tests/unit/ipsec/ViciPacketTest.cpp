#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ipsec/ViciPacket.h"

using namespace xtap::ipsec;

namespace {

Bytes frame(const Packet& packet) {
    auto encoded = encodePacket(packet);
    REQUIRE(encoded.ok());
    return *encoded;
}

std::vector<Packet> samplePackets() {
    return {
        Packet{PacketType::CmdRequest, "version", {}},
        Packet{PacketType::CmdRequest, "list-sas", {3, 1, 'k', 0, 1, 'v'}},
        Packet{PacketType::CmdResponse,
               "",
               {3, 7, 's', 'u', 'c', 'c', 'e', 's', 's', 0, 3, 'y', 'e', 's'}},
        Packet{PacketType::CmdResponse, "", {}},
        Packet{PacketType::CmdUnknown, "", {}},
        Packet{PacketType::EventRegister, "child-updown", {}},
        Packet{PacketType::EventUnregister, "ike-updown", {}},
        Packet{PacketType::EventConfirm, "", {}},
        Packet{PacketType::EventUnknown, "", {}},
        Packet{PacketType::Event, "child-updown", {3, 2, 'u', 'p', 0, 3, 'y', 'e', 's'}},
    };
}

}  // namespace

TEST_CASE("packet golden bytes") {
    // platform.md §8: "00 00 00 09 00 07 "version"" asks the version.
    CHECK(frame(Packet{PacketType::CmdRequest, "version", {}}) ==
          Bytes{0, 0, 0, 9, 0, 7, 'v', 'e', 'r', 's', 'i', 'o', 'n'});
    CHECK(frame(Packet{PacketType::EventRegister, "child-updown", {}}) ==
          Bytes{0, 0, 0, 14, 3, 12, 'c', 'h', 'i', 'l', 'd', '-', 'u', 'p', 'd', 'o', 'w', 'n'});
    CHECK(frame(Packet{PacketType::EventConfirm, "", {}}) == Bytes{0, 0, 0, 1, 5});
    CHECK(frame(Packet{PacketType::CmdResponse, "", {3, 1, 'k', 0, 0}}) ==
          Bytes{0, 0, 0, 6, 1, 3, 1, 'k', 0, 0});
    CHECK(frame(Packet{PacketType::Event, "e", {6}}) == Bytes{0, 0, 0, 4, 7, 1, 'e', 6});
}

TEST_CASE("every packet type round-trips") {
    for (const Packet& packet : samplePackets()) {
        CAPTURE(static_cast<int>(packet.type));
        const Bytes bytes = frame(packet);
        auto decoded = decodePacket(std::span<const uint8_t>(bytes).subspan(kLengthFieldSize));
        REQUIRE(decoded.ok());
        CHECK(*decoded == packet);
    }
}

TEST_CASE("which packet types carry a name and a message") {
    CHECK(carriesName(PacketType::CmdRequest));
    CHECK(carriesMessage(PacketType::CmdRequest));
    CHECK_FALSE(carriesName(PacketType::CmdResponse));
    CHECK(carriesMessage(PacketType::CmdResponse));
    CHECK(carriesName(PacketType::EventRegister));
    CHECK_FALSE(carriesMessage(PacketType::EventRegister));
    CHECK(carriesName(PacketType::Event));
    CHECK(carriesMessage(PacketType::Event));
    for (PacketType t :
         {PacketType::CmdUnknown, PacketType::EventConfirm, PacketType::EventUnknown}) {
        CHECK_FALSE(carriesName(t));
        CHECK_FALSE(carriesMessage(t));
    }
}

TEST_CASE("decodePacket rejects malformed payloads") {
    struct Case {
        const char* name;
        Bytes payload;
        ViciErrc expected;
    };
    const Case cases[] = {
        {"empty", {}, ViciErrc::EmptyPacket},
        {"type 8", {8}, ViciErrc::UnknownPacketType},
        {"type 255", {255, 0}, ViciErrc::UnknownPacketType},
        {"request without name length", {0}, ViciErrc::Truncated},
        {"request name cut", {0, 7, 'v', 'e', 'r'}, ViciErrc::Truncated},
        {"event name cut", {7, 3, 'a'}, ViciErrc::Truncated},
        {"empty request name", {0, 0}, ViciErrc::InvalidName},
        {"control character in name", {3, 2, 'a', 0x00}, ViciErrc::InvalidName},
        {"bytes after EVENT_CONFIRM", {5, 0}, ViciErrc::TrailingBytes},
        {"bytes after CMD_UNKNOWN", {2, 1, 2}, ViciErrc::TrailingBytes},
        {"bytes after EVENT_REGISTER name", {3, 1, 'e', 3}, ViciErrc::TrailingBytes},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        auto decoded = decodePacket(c.payload);
        REQUIRE_FALSE(decoded.ok());
        CHECK(decoded.error().code == c.expected);
    }
    auto oversize = decodePacket(Bytes(kMaxPacketSize + 1, 1));
    REQUIRE_FALSE(oversize.ok());
    CHECK(oversize.error().code == ViciErrc::Oversize);
}

TEST_CASE("encodePacket refuses what the wire cannot say") {
    struct Case {
        const char* name;
        Packet packet;
        ViciErrc expected;
    };
    const Case cases[] = {
        {"request without name", Packet{PacketType::CmdRequest, "", {}}, ViciErrc::InvalidName},
        {"name of 256 bytes", Packet{PacketType::Event, std::string(256, 'e'), {}},
         ViciErrc::InvalidName},
        {"name on a response", Packet{PacketType::CmdResponse, "x", {}}, ViciErrc::InvalidPacket},
        {"message on a registration", Packet{PacketType::EventRegister, "e", {6}},
         ViciErrc::InvalidPacket},
        {"message on a confirmation", Packet{PacketType::EventConfirm, "", {6}},
         ViciErrc::InvalidPacket},
        {"unknown type", Packet{static_cast<PacketType>(9), "", {}}, ViciErrc::UnknownPacketType},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        auto encoded = encodePacket(c.packet);
        REQUIRE_FALSE(encoded.ok());
        CHECK(encoded.error().code == c.expected);
    }
}

TEST_CASE("512 KiB is the largest payload, both ways") {
    // CMD_RESPONSE: 1 type byte + message.
    Packet largest{PacketType::CmdResponse, "", Bytes(kMaxPacketSize - 1, 6)};
    auto encoded = encodePacket(largest);
    REQUIRE(encoded.ok());
    CHECK(encoded->size() == kLengthFieldSize + kMaxPacketSize);
    CHECK(Bytes(encoded->begin(), encoded->begin() + 4) == Bytes{0x00, 0x08, 0x00, 0x00});

    PacketReassembler reassembler;
    reassembler.append(*encoded);
    auto next = reassembler.next();
    REQUIRE(next.ok());
    REQUIRE(next->has_value());
    CHECK(**next == largest);

    largest.message.push_back(6);
    auto too_big = encodePacket(largest);
    REQUIRE_FALSE(too_big.ok());
    CHECK(too_big.error().code == ViciErrc::Oversize);
}

TEST_CASE("reassembler: packets come out whole whatever the chunking") {
    Bytes stream;
    for (const Packet& packet : samplePackets()) {
        const Bytes bytes = frame(packet);
        stream.insert(stream.end(), bytes.begin(), bytes.end());
    }
    for (size_t chunk : {size_t{1}, size_t{2}, size_t{3}, size_t{5}, size_t{13}, stream.size()}) {
        CAPTURE(chunk);
        PacketReassembler reassembler;
        std::vector<Packet> out;
        for (size_t at = 0; at < stream.size(); at += chunk) {
            const size_t size = std::min(chunk, stream.size() - at);
            reassembler.append(std::span<const uint8_t>(stream).subspan(at, size));
            while (true) {
                auto next = reassembler.next();
                REQUIRE(next.ok());
                if (!next->has_value()) {
                    break;
                }
                out.push_back(std::move(**next));
            }
        }
        CHECK(out == samplePackets());
        CHECK(reassembler.buffered() == 0);
    }
}

TEST_CASE("reassembler: waits for the rest of a packet") {
    const Bytes bytes = frame(Packet{PacketType::CmdRequest, "version", {}});
    PacketReassembler reassembler;
    reassembler.append(std::span<const uint8_t>(bytes).first(3));
    auto next = reassembler.next();
    REQUIRE(next.ok());
    CHECK_FALSE(next->has_value());
    reassembler.append(std::span<const uint8_t>(bytes).subspan(3, 5));
    next = reassembler.next();
    REQUIRE(next.ok());
    CHECK_FALSE(next->has_value());
    CHECK(reassembler.buffered() == 8);
    reassembler.append(std::span<const uint8_t>(bytes).subspan(8));
    next = reassembler.next();
    REQUIRE(next.ok());
    REQUIRE(next->has_value());
    CHECK((*next)->name == "version");
    next = reassembler.next();
    REQUIRE(next.ok());
    CHECK_FALSE(next->has_value());
}

TEST_CASE("reassembler: a bad length fails at once and for good") {
    SUBCASE("oversize length, judged before the payload arrives") {
        PacketReassembler reassembler;
        reassembler.append(Bytes{0x00, 0x08, 0x00, 0x01});  // 512 KiB + 1
        auto next = reassembler.next();
        REQUIRE_FALSE(next.ok());
        CHECK(next.error().code == ViciErrc::Oversize);
        // Valid data afterwards does not revive the stream.
        reassembler.append(frame(Packet{PacketType::EventConfirm, "", {}}));
        next = reassembler.next();
        REQUIRE_FALSE(next.ok());
        CHECK(next.error().code == ViciErrc::Oversize);
        CHECK(reassembler.buffered() == 0);
    }
    SUBCASE("4 GiB length") {
        PacketReassembler reassembler;
        reassembler.append(Bytes{0xff, 0xff, 0xff, 0xff});
        auto next = reassembler.next();
        REQUIRE_FALSE(next.ok());
        CHECK(next.error().code == ViciErrc::Oversize);
    }
    SUBCASE("zero length") {
        PacketReassembler reassembler;
        reassembler.append(Bytes{0, 0, 0, 0, 0, 0, 0, 1, 5});
        auto next = reassembler.next();
        REQUIRE_FALSE(next.ok());
        CHECK(next.error().code == ViciErrc::EmptyPacket);
    }
    SUBCASE("framed packet with an unknown type") {
        PacketReassembler reassembler;
        reassembler.append(frame(Packet{PacketType::EventConfirm, "", {}}));
        reassembler.append(Bytes{0, 0, 0, 1, 9});
        auto first = reassembler.next();
        REQUIRE(first.ok());
        REQUIRE(first->has_value());
        CHECK((*first)->type == PacketType::EventConfirm);
        auto second = reassembler.next();
        REQUIRE_FALSE(second.ok());
        CHECK(second.error().code == ViciErrc::UnknownPacketType);
        CHECK(reassembler.buffered() == 0);  // dropped, not retried
        reassembler.append(frame(Packet{PacketType::EventConfirm, "", {}}));
        CHECK(reassembler.buffered() == 0);
        auto third = reassembler.next();
        REQUIRE_FALSE(third.ok());
        CHECK(third.error().code == ViciErrc::UnknownPacketType);
    }
}

TEST_CASE("reassembler: stays correct while it compacts consumed bytes") {
    // Chunks that never align with packets keep a partial packet queued, so
    // the consumed prefix grows past the compaction threshold many times.
    Bytes stream;
    for (int i = 0; i < 500; ++i) {
        Packet packet{PacketType::Event, "log", Bytes(1000, 6)};
        packet.message[0] = static_cast<uint8_t>(i);
        const Bytes bytes = frame(packet);
        stream.insert(stream.end(), bytes.begin(), bytes.end());
    }
    PacketReassembler reassembler;
    int seen = 0;
    for (size_t at = 0; at < stream.size(); at += 1500) {
        reassembler.append(std::span<const uint8_t>(stream).subspan(
            at, std::min<size_t>(1500, stream.size() - at)));
        while (true) {
            auto next = reassembler.next();
            REQUIRE(next.ok());
            if (!next->has_value()) {
                break;
            }
            CHECK((*next)->message.size() == 1000);
            CHECK((*next)->message[0] == static_cast<uint8_t>(seen));
            ++seen;
        }
    }
    CHECK(seen == 500);
    CHECK(reassembler.buffered() == 0);
}
