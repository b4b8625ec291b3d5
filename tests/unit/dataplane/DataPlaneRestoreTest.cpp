// A restarted controller takes over the criteria an earlier one left in the
// pinned maps: same slots, same generations, counters untouched.
#include <doctest/doctest.h>

#include <variant>

#include "dataplane/DataPlane.h"
#include "dataplane/MemoryMaps.h"
#include "DataPlaneTestSupport.h"

using namespace xtap::dataplane;
using namespace xtap::test;

namespace {

Filter source(uint8_t a, uint8_t b, uint8_t len) {
    return v4Source(198, 18, a, b, len);
}

Filter tcpPorts(uint8_t b) {
    Filter f = source(0, b, 32);
    f.proto = 6;
    f.dport = {1024, 65535};
    return f;
}

Filter v6host() {
    Filter f;
    f.family = Family::V6;
    f.dst = {{0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7}, 128};
    return f;
}

// Every rule names only live slots of `dp`.
void checkRulesLive(const MemoryMaps& maps, const DataPlane& dp) {
    for (const auto& [key, rule] : maps.rules()) {
        for (uint32_t i = 0; i < rule.count; ++i)
            CHECK(dp.isLive(SlotRef{rule.refs[i].slot, rule.refs[i].gen}));
    }
}

}  // namespace

TEST_CASE("restore takes over live slots in place; finishRestore sweeps what was not restored") {
    MemoryMaps maps(16);
    const Capacity capacity{1024, 16, 1024};
    const FilterSet a{{source(0, 1, 32)}, 1, 0};
    const FilterSet b{{tcpPorts(2), v6host()}, 3, 5'000'000'000};
    const FilterSet gone{{source(1, 0, 24), tcpPorts(9)}, 1, 0};
    SlotRef ra, rb, rgone, rdead;
    size_t rules_ab = 0, anchors_ab = 0;
    {
        DataPlane before(maps, capacity);
        rdead = ok(before.publish({{source(0, 3, 32)}, 1, 0}));
        before.withdraw(rdead);
        ra = ok(before.publish(a));
        rb = ok(before.publish(b));
        rules_ab = maps.ruleCount();
        anchors_ab = maps.anchorCount();
        rgone = ok(before.publish(gone));  // deleted while the controller was down
        maps.addTraffic(ra.slot, 10, 1000);
        maps.addTraffic(rb.slot, 4, 400);
    }  // killed: the maps stay as they were

    DataPlane after(maps, capacity, maps.contents());
    CHECK(after.restoring());
    // Nothing changes while restoring: the classifier keeps counting.
    const size_t rules_before = maps.ruleCount();
    CHECK(ok(after.restore(a, ra)) == ra);
    CHECK(ok(after.restore(b, rb)) == rb);
    CHECK(maps.ruleCount() == rules_before);
    CHECK((maps.slot(rgone.slot).state & XTAP_SLOT_ENABLED) != 0);
    // Only a slot held live with that generation can be taken over.
    CHECK(std::get<PublishError>(after.restore(gone, SlotRef{rgone.slot, rgone.gen + 1})).kind ==
          PublishError::Kind::NoSlot);
    CHECK(std::get<PublishError>(after.restore(a, ra)).kind == PublishError::Kind::NoSlot);
    CHECK(std::get<PublishError>(after.publish(a)).kind == PublishError::Kind::NoSlot);

    after.finishRestore();
    CHECK_FALSE(after.restoring());
    CHECK(after.liveCount() == 2);
    CHECK(after.isLive(ra));
    CHECK(after.isLive(rb));
    CHECK(after.counters(ra).packets == 10);  // never zeroed
    CHECK(after.counters(rb).bytes == 400);
    CHECK(maps.slot(ra.slot).state == (ra.gen << 1 | XTAP_SLOT_ENABLED));
    CHECK(maps.slot(rb.slot).expiry_ns == 5'000'000'000);
    CHECK(maps.slot(rgone.slot).state == rgone.gen << 1);  // withdrawn
    CHECK(maps.ruleCount() == rules_ab);
    CHECK(maps.anchorCount() == anchors_ab);
    checkRulesLive(maps, after);

    // Afterwards it is an ordinary DataPlane: a new criterion in the swept
    // slot carries a new generation, and withdrawing cleans everything.
    SlotRef fresh{};
    for (int i = 0; i < 16 && fresh.slot != rgone.slot; ++i) {
        fresh = ok(after.publish({{source(2, uint8_t(i), 32)}, 1, 0}));
        if (fresh.slot != rgone.slot) after.withdraw(fresh);
    }
    REQUIRE(fresh.slot == rgone.slot);
    CHECK(fresh.gen != rgone.gen);
    CHECK(after.counters(fresh).packets == 0);
    after.withdraw(fresh);
    after.withdraw(ra);
    after.withdraw(rb);
    CHECK(maps.ruleCount() == 0);
    CHECK(maps.anchorCount() == 0);
    CHECK(maps.maskCount() == 0);
}

TEST_CASE("restored filters that changed (an interface renumbered) get fresh rows; stale rows go") {
    MemoryMaps maps(8);
    const Capacity capacity{1024, 8, 1024};
    SlotRef ra;
    {
        DataPlane before(maps, capacity);
        ra = ok(before.publish({{source(0, 1, 32)}, 1, 0}));
        ok(before.publish({{tcpPorts(4)}, 1, 0}));  // more mask rows, not restored
    }
    const uint32_t rows_before = maps.maskCount();
    CHECK(rows_before > 1);
    Filter changed = source(0, 1, 32);
    changed.ifindex = 7;
    DataPlane after(maps, capacity, maps.contents());
    CHECK(ok(after.restore({{changed}, 1, 0}, ra)) == ra);
    after.finishRestore();
    CHECK(after.maskCount() == 1);
    CHECK(maps.ruleCount() == 1);
    checkRulesLive(maps, after);
    uint32_t active = 0;
    for (uint32_t row = 0; row < XTAP_MAX_MASKS; ++row) active += maps.mask(row).active;
    CHECK(active == 1);
    after.withdraw(ra);
    CHECK(maps.ruleCount() == 0);
    CHECK(maps.anchorCount() == 0);
}

TEST_CASE("finishRestore with nothing restored leaves empty maps") {
    MemoryMaps maps(8);
    const Capacity capacity{1024, 8, 1024};
    {
        DataPlane before(maps, capacity);
        ok(before.publish({{source(0, 1, 32), v6host()}, 1, 0}));
        ok(before.publish({{source(1, 0, 24)}, 1, 0}));
    }
    DataPlane after(maps, capacity, maps.contents());
    after.finishRestore();
    CHECK(maps.ruleCount() == 0);
    CHECK(maps.anchorCount() == 0);
    CHECK(maps.maskCount() == 0);
    for (uint32_t s = 0; s < 8; ++s) CHECK((maps.slot(s).state & XTAP_SLOT_ENABLED) == 0);
}
