#include <doctest/doctest.h>

#include <variant>

#include "dataplane/DataPlane.h"
#include "dataplane/MemoryMaps.h"
#include "DataPlaneTestSupport.h"

using namespace xtap::dataplane;
using namespace xtap::test;

namespace {

Filter host(uint8_t last, uint8_t len = 32) {
    return v4Source(198, 18, 0, last, len);
}

}  // namespace

TEST_CASE("publish enables a criterion only after all its rules, withdraw disables it first") {
    MemoryMaps maps(16);
    DataPlane dp(maps, {1024, 16, 1024});
    Filter ports = host(1);
    ports.proto = 6;
    ports.dport = {1024, 65535};
    const SlotRef ref = ok(dp.publish({{ports, host(2)}}));
    CHECK((maps.slot(ref.slot).state & XTAP_SLOT_ENABLED) != 0);
    CHECK((maps.slot(ref.slot).state >> 1) == ref.gen);
    CHECK(maps.ruleCount() == 7);
    dp.withdraw(ref);
    CHECK((maps.slot(ref.slot).state & XTAP_SLOT_ENABLED) == 0);
    CHECK(maps.ruleCount() == 0);
    CHECK(maps.anchorCount() == 0);
    CHECK(maps.maskCount() == 0);
    dp.withdraw(ref);  // idempotent
}

TEST_CASE("the FIB lookup flag is on exactly while a mask compares the egress interface") {
    MemoryMaps maps(16);
    DataPlane dp(maps, {1024, 16, 1024});
    const SlotRef plain = ok(dp.publish({{host(1)}}));
    CHECK_FALSE(maps.egress());
    Filter out = host(2);
    out.oifindex = 7;
    Filter out2 = host(3);
    out2.oifindex = 8;  // same mask as `out`
    const SlotRef a = ok(dp.publish({{out}}));
    const SlotRef b = ok(dp.publish({{out2}}));
    CHECK(maps.egress());
    CHECK(dp.usesEgress());
    CHECK(dp.maskCount() == 2);
    dp.withdraw(a);
    CHECK(maps.egress());  // b still uses the mask
    dp.withdraw(b);
    CHECK_FALSE(maps.egress());
    CHECK(dp.maskCount() == 1);
    dp.withdraw(plain);
    CHECK_FALSE(maps.egress());
}

TEST_CASE("a slot comes back with a new generation, and only after the others were used") {
    MemoryMaps maps(2);
    DataPlane dp(maps, {1024, 2, 1024});
    const SlotRef a = ok(dp.publish({{host(1)}}));
    dp.withdraw(a);
    const SlotRef b = ok(dp.publish({{host(2)}}));
    CHECK(b.slot != a.slot);  // FIFO: the freed slot waits
    const SlotRef c = ok(dp.publish({{host(3)}}));
    CHECK(c.slot == a.slot);
    CHECK(c.gen != a.gen);
    CHECK_FALSE(dp.isLive(a));
    CHECK(std::get<PublishError>(dp.publish({{host(4)}})).kind == PublishError::Kind::NoSlot);
}

TEST_CASE("a failed publish leaves nothing behind") {
    MemoryMaps maps(64, 3);  // the kernel map takes 3 rules
    DataPlane dp(maps, {1024, 64, 1024});
    Filter ports = host(1);
    ports.proto = 6;
    ports.dport = {1024, 65535};  // six rules
    const auto r = dp.publish({{ports}});
    REQUIRE(std::holds_alternative<PublishError>(r));
    CHECK(maps.ruleCount() == 0);
    CHECK(maps.anchorCount() == 0);
    CHECK(dp.ruleCount() == 0);
    CHECK(dp.maskCount() == 0);
    ok(dp.publish({{host(5)}}));
}

TEST_CASE("more than eight criteria on one masked key are refused whole") {
    MemoryMaps maps(64);
    DataPlane dp(maps, {1024, 64, 1024});
    for (int i = 0; i < XTAP_MAX_REFS_PER_RULE; ++i) ok(dp.publish({{host(9)}}));
    const auto r = dp.publish({{host(8), host(9)}});
    REQUIRE(std::holds_alternative<PublishError>(r));
    CHECK(std::get<PublishError>(r).kind == PublishError::Kind::SharedKeyFull);
    CHECK(dp.ruleCount() == 1);  // host(8)'s rule was rolled back
}

TEST_CASE("anchor lengths beyond the hashed four go to the LPM fallback and come back out") {
    MemoryMaps maps(64);
    DataPlane dp(maps, {1024, 64, 1024});
    std::vector<SlotRef> refs;
    for (uint8_t len : {32, 24, 16, 8, 12, 20}) refs.push_back(ok(dp.publish({{host(1, len)}})));
    CHECK(dp.anchorCount() == 6);
    for (auto r : refs) dp.withdraw(r);
    CHECK(dp.anchorCount() == 0);
    CHECK(maps.anchorCount() == 0);
}

TEST_CASE("invalid filters are refused with the reason") {
    MemoryMaps maps(4);
    DataPlane dp(maps, {16, 4, 16});
    Filter f = host(1);
    f.dport = {80, 80};  // ports without a protocol
    const auto r = dp.publish({{f}});
    REQUIRE(std::holds_alternative<PublishError>(r));
    CHECK(std::get<PublishError>(r).detail.find("protocol") != std::string::npos);
    CHECK(std::holds_alternative<PublishError>(dp.publish({{}})));
}

TEST_CASE("late-released fragments count with their criterion, only while it is live") {
    MemoryMaps maps(1);
    DataPlane dp(maps, {1024, 1, 1024});
    const SlotRef ref = ok(dp.publish({{host(1)}}));
    maps.addTraffic(ref.slot, 1, 1500);  // what the classifier counted itself
    dp.countReleased(ref.slot, 1, 520);
    CHECK(dp.counters(ref).packets == 2);
    CHECK(dp.counters(ref).bytes == 2020);
    dp.withdraw(ref);
    dp.countReleased(ref.slot, 1, 520);  // too late: nobody owns the slot
    const SlotRef next = ok(dp.publish({{host(2)}}));
    REQUIRE(next.slot == ref.slot);
    CHECK(dp.counters(next).packets == 0);  // the reused slot starts from zero
    dp.countReleased(99, 1, 1);             // out of range: ignored
}
