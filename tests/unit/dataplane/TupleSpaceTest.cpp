#include <doctest/doctest.h>

#include <cstring>

#include "dataplane/TupleSpace.h"

using namespace xtap::dataplane;

TEST_CASE("port ranges become minimal aligned blocks") {
    CHECK(rangeToBlocks({0, 65535}) == std::vector<Block16>{{0, 0}});
    CHECK(rangeToBlocks({443, 443}) == std::vector<Block16>{{443, 16}});
    CHECK(rangeToBlocks({1024, 65535}) ==
          std::vector<Block16>{{1024, 6}, {2048, 5}, {4096, 4}, {8192, 3}, {16384, 2}, {32768, 1}});
    CHECK(rangeToBlocks({1, 6}) == std::vector<Block16>{{1, 16}, {2, 15}, {4, 15}, {6, 16}});
    // Worst case: 30 blocks.
    CHECK(rangeToBlocks({1, 65534}).size() == 30);
}

TEST_CASE("every value of a range is covered by exactly one block") {
    for (Range16 r : {Range16{0, 0}, Range16{7, 900}, Range16{1000, 1023}, Range16{65000, 65535}}) {
        const auto blocks = rangeToBlocks(r);
        for (uint32_t v = 0; v <= 65535; v += 7) {
            int hits = 0;
            for (const auto& b : blocks) {
                const uint16_t mask = b.len == 0 ? 0 : uint16_t(0xffff0000u >> b.len);
                hits += (uint16_t(v) & mask) == b.value;
            }
            CHECK(hits == (r.contains(uint16_t(v)) ? 1 : 0));
        }
    }
}

TEST_CASE(
    "a filter expands to one masked key per block pair, under the mask the classifier applies") {
    Filter f;
    f.family = Family::V4;
    f.src = {{198, 18, 0, 0}, 16};
    f.proto = 6;
    f.sport = {1024, 2047};
    f.dport = {80, 81};
    const auto entries = expandFilter(f);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].mask.src_len == 16);
    CHECK(entries[0].mask.sport_len == 6);
    CHECK(entries[0].mask.dport_len == 15);
    // A packet inside the filter masks to the rule's key.
    xtap_key packet{};
    packet.family = 4;
    packet.proto = 6;
    packet.ifindex = 9;
    packet.sport = 1500;
    packet.dport = 81;
    packet.src[0] = 198;
    packet.src[1] = 18;
    packet.src[2] = 77;
    packet.src[3] = 1;
    packet.dst[0] = 1;
    const auto masked = applyMask(packet, entries[0].mask.toAbi(), 0);
    CHECK(std::memcmp(&masked, &entries[0].key, sizeof masked) == 0);
}

TEST_CASE("an output interface is compared exactly; without one the egress field is masked out") {
    Filter f;
    f.src = {{198, 18, 0, 1}, 32};
    f.oifindex = 12;
    const auto entries = expandFilter(f);
    REQUIRE(entries.size() == 1);
    CHECK(entries[0].mask.oifindex);
    CHECK(entries[0].mask.toAbi().oifindex_mask == 0xffffffffu);
    CHECK(entries[0].key.oifindex == 12);
    xtap_key packet{};
    packet.family = 4;
    packet.src[0] = 198;
    packet.src[1] = 18;
    packet.src[3] = 1;
    packet.oifindex = 12;
    auto masked = applyMask(packet, entries[0].mask.toAbi(), 0);
    CHECK(std::memcmp(&masked, &entries[0].key, sizeof masked) == 0);
    packet.oifindex = 13;
    masked = applyMask(packet, entries[0].mask.toAbi(), 0);
    CHECK(std::memcmp(&masked, &entries[0].key, sizeof masked) != 0);

    f.oifindex = 0;
    const auto plain = expandFilter(f);
    CHECK_FALSE(plain[0].mask.oifindex);
    CHECK(applyMask(packet, plain[0].mask.toAbi(), 0).oifindex == 0);
}

TEST_CASE("the anchor is the longer prefix, none for a wide filter") {
    Filter f;
    f.src = {{198, 18, 0, 0}, 16};
    f.dst = {{198, 19, 1, 1}, 32};
    CHECK(anchorOf(f)->len == 32);
    f.dst = {};
    CHECK(anchorOf(f)->len == 16);
    f.src = {};
    CHECK_FALSE(anchorOf(f).has_value());
}
