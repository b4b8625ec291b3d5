#include <doctest/doctest.h>

#include "dataplane/FragmentReorderer.h"
#include "tests/support/PacketBuilder.h"
#include "xtap_abi.h"

using namespace xtap;
using namespace xtap::dataplane;
using test::PacketSpec;

namespace {

struct Delivered {
    std::vector<uint8_t> frame;
    std::vector<uint32_t> slots;
    bool late;
};

struct Sink {
    std::vector<Delivered> got;
    FragmentReorderer::Deliver fn() {
        return [this](std::span<const uint8_t> f, std::span<const uint32_t> s, bool late) {
            got.push_back({{f.begin(), f.end()}, {s.begin(), s.end()}, late});
        };
    }
};

PacketSpec udpFrag(PacketSpec::Frag frag, uint32_t id = 7) {
    PacketSpec p;
    p.src = test::v4(198, 18, 1, 2);
    p.dst = test::v4(198, 18, 2, 2);
    p.proto = 17;
    p.sport = 5000;
    p.dport = 53;
    p.frag = frag;
    p.frag_id = id;
    return p;
}

}  // namespace

TEST_CASE("a later fragment held as pending goes to its first fragment's criteria") {
    FragmentReorderer r;
    Sink sink;
    const auto later = test::buildFrame(udpFrag(PacketSpec::Frag::Later));
    const auto first = test::buildFrame(udpFrag(PacketSpec::Frag::First));
    const std::vector<uint32_t> none, crit{4, 9};
    r.onCopy(later, none, XTAP_META_PENDING_FRAG, 1000, sink.fn());
    CHECK(sink.got.empty());
    CHECK(r.pendingCount() == 1);
    r.onCopy(first, crit, 0, 2000, sink.fn());
    REQUIRE(sink.got.size() == 2);
    CHECK(sink.got[0].frame == first);
    CHECK_FALSE(sink.got[0].late);
    CHECK(sink.got[1].frame == later);
    CHECK(sink.got[1].slots == crit);
    CHECK(sink.got[1].late);
    CHECK(r.pendingCount() == 0);
    CHECK(r.stats().released == 1);
}

TEST_CASE("criteria that already took the fragment do not get it twice") {
    FragmentReorderer r;
    Sink sink;
    const std::vector<uint32_t> portless{4}, crit{4, 9};
    r.onCopy(test::buildFrame(udpFrag(PacketSpec::Frag::Later)), portless, XTAP_META_PENDING_FRAG, 0, sink.fn());
    REQUIRE(sink.got.size() == 1);
    r.onCopy(test::buildFrame(udpFrag(PacketSpec::Frag::First)), crit, 0, 10, sink.fn());
    REQUIRE(sink.got.size() == 3);
    CHECK(sink.got[2].slots == std::vector<uint32_t>{9});
}

TEST_CASE("an unclaimed pending fragment expires; another datagram's first does not claim it") {
    FragmentReorderer r({1000, 16, 1 << 20});
    Sink sink;
    r.onCopy(test::buildFrame(udpFrag(PacketSpec::Frag::Later, 7)), {}, XTAP_META_PENDING_FRAG, 0, sink.fn());
    const std::vector<uint32_t> crit{1};
    r.onCopy(test::buildFrame(udpFrag(PacketSpec::Frag::First, 8)), crit, 0, 10, sink.fn());
    CHECK(sink.got.size() == 1);
    r.expire(999);
    CHECK(r.pendingCount() == 1);
    r.expire(1000);
    CHECK(r.pendingCount() == 0);
    CHECK(r.stats().expired == 1);
}

TEST_CASE("a pending fragment whose first was already seen is delivered at once") {
    FragmentReorderer r;
    Sink sink;
    const std::vector<uint32_t> crit{3};
    r.onCopy(test::buildFrame(udpFrag(PacketSpec::Frag::First)), crit, 0, 0, sink.fn());
    r.onCopy(test::buildFrame(udpFrag(PacketSpec::Frag::Later)), {}, XTAP_META_PENDING_FRAG, 5, sink.fn());
    REQUIRE(sink.got.size() == 2);
    CHECK(sink.got[1].late);
}

TEST_CASE("the buffer is bounded") {
    FragmentReorderer r({1000000, 2, 1 << 20});
    Sink sink;
    for (uint32_t id = 0; id < 5; ++id)
        r.onCopy(test::buildFrame(udpFrag(PacketSpec::Frag::Later, id)), {}, XTAP_META_PENDING_FRAG, 0, sink.fn());
    CHECK(r.pendingCount() == 2);
    CHECK(r.stats().overflow == 3);
}
