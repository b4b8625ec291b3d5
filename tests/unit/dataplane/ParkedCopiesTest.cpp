#include <doctest/doctest.h>

#include <cstdint>
#include <vector>

#include "dataplane/ParkedCopies.h"

namespace xtap::dataplane {
namespace {

xtap_copy_meta metaFor(uint32_t slot) {
    xtap_copy_meta m{};
    m.magic = 0x5854;
    m.count = 1;
    m.slots[0] = slot;
    return m;
}

TEST_CASE("parked copies come back in order, bytes and metadata as they were read") {
    ParkedCopies parked;
    CHECK(parked.empty());
    std::vector<uint8_t> frame;
    for (uint32_t i = 0; i < 100; ++i) {
        frame.assign(64 + i, static_cast<uint8_t>(i));  // lengths differ
        const xtap_copy_meta meta = metaFor(i);
        parked.park(frame, i % 7 == 3 ? nullptr : &meta);
        frame.assign(frame.size(), 0xff);  // the ring's frame is reused at once
    }
    CHECK(parked.size() == 100);
    uint32_t next = 0;
    parked.drain([&](std::span<const uint8_t> f, const xtap_copy_meta* meta) {
        CAPTURE(next);
        CHECK(f.size() == 64 + next);
        CHECK(f.front() == static_cast<uint8_t>(next));
        CHECK(f.back() == static_cast<uint8_t>(next));
        if (next % 7 == 3) {
            CHECK(meta == nullptr);
        } else {
            REQUIRE(meta != nullptr);
            CHECK(meta->slots[0] == next);
        }
        ++next;
    });
    CHECK(next == 100);
    CHECK(parked.empty());
    // Drained twice gives nothing more.
    CHECK(parked.drain([&](std::span<const uint8_t>, const xtap_copy_meta*) { FAIL("twice"); }) ==
          0);
}

TEST_CASE("parked copies handed on a slice at a time stay in arrival order") {
    ParkedCopies parked;
    uint32_t in = 0, out = 0;
    auto park = [&](size_t n) {
        for (size_t i = 0; i < n; ++i, ++in) {
            const std::vector<uint8_t> frame(60 + in % 50, static_cast<uint8_t>(in));
            const xtap_copy_meta meta = metaFor(in);
            parked.park(frame, &meta);
        }
    };
    auto check = [&](std::span<const uint8_t> f, const xtap_copy_meta* meta) {
        CAPTURE(out);
        REQUIRE(meta != nullptr);
        CHECK(meta->slots[0] == out);
        CHECK(f.size() == 60 + out % 50);
        CHECK(f.back() == static_cast<uint8_t>(out));
        ++out;
    };
    park(3000);
    // Slices handed on while more arrive behind them (compaction included).
    for (int round = 0; round < 20; ++round) {
        CHECK(parked.drain(128, check) == 128);
        park(37);
    }
    CHECK(parked.size() == 3000 + 20 * 37 - 20 * 128);
    CHECK(parked.drain(check) == 3000 + 20 * 37 - 20 * 128);
    CHECK(out == in);
    CHECK(parked.empty());
    CHECK(parked.bytes() == 0);
}

TEST_CASE("parked copies are bounded, and a large drained buffer is let go") {
    ParkedCopies parked(64 * 1024);
    const std::vector<uint8_t> frame(1514, 0x42);
    size_t parked_count = 0;
    while (!parked.full()) {
        parked.park(frame, nullptr);
        ++parked_count;
    }
    CHECK(parked_count > 10);
    CHECK(parked.bytes() >= 64 * 1024);
    CHECK(parked.bytes() < 64 * 1024 + 1514 + 256);  // full stops the next park
    size_t drained = 0;
    parked.drain([&](std::span<const uint8_t>, const xtap_copy_meta*) { ++drained; });
    CHECK(drained == parked_count);
    CHECK(parked.capacity() == 0);
    CHECK_FALSE(parked.full());
}

}  // namespace
}  // namespace xtap::dataplane
