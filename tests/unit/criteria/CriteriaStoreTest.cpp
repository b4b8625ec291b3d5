#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <map>
#include <string>
#include <vector>

#include "criteria/CriteriaCompiler.h"
#include "criteria/CriteriaStore.h"
#include "dataplane/DataPlane.h"
#include "dataplane/MemoryMaps.h"
#include "StoreTestSupport.h"

namespace xtap::criteria {
namespace {

using namespace test;
using dataplane::Family;
using nlohmann::json;

ContentDestination destination(const std::string& cdest, uint8_t last_octet) {
    ContentDestination d;
    d.cdest_id = cdest;
    d.params.outer.family = Family::V4;
    d.params.outer.source = dataplane::Address{198, 51, 100, 1};
    d.params.outer.source_port = 49153;
    d.params.outer.destination = dataplane::Address{203, 0, 113, last_octet};
    d.params.outer.destination_port = 50000;
    return d;
}

NewCriterion newCriterion(const std::string& user, const dtcp::AddRequest& r,
                          uint8_t destination_octet = 50) {
    const CompileResult compiled = compile(r.match);
    REQUIRE(compiled.ok());
    return NewCriterion{user, r, "192.0.2.77",
                        Publication{compiled.filters(),
                                    {destination(r.cdest_ids.front(), destination_octet)},
                                    static_cast<uint16_t>(r.priority)}};
}

struct StoreFixture {
    explicit StoreFixture(uint32_t slots = 32)
        : maps(slots), plane(maps, dataplane::Capacity{4096, slots, 4096}), store(plane, {slots}) {}

    uint32_t add(const std::string& user, const dtcp::AddRequest& r, const Instant& now,
                 UserQuota quota = {}, uint8_t destination_octet = 50) {
        const AddResult result = store.add(newCriterion(user, r, destination_octet), quota, now);
        REQUIRE_MESSAGE(std::holds_alternative<uint32_t>(result), "refused");
        return std::get<uint32_t>(result);
    }

    const Criterion& get(const std::string& user, uint32_t id) {
        const Criterion* c = store.find(CriterionKey{user, id});
        REQUIRE(c);
        return *c;
    }

    dataplane::MemoryMaps maps;
    dataplane::DataPlane plane;
    CriteriaStore store;
};

TEST_CASE("Criteria-IDs are per user, start at 1 and are never reused") {
    StoreFixture f;
    CHECK(f.store.nextCriteriaId("alice") == 1);
    CHECK(f.add("alice", request("192.0.2.1", idle(60)), at(1)) == 1);
    CHECK(f.add("alice", request("192.0.2.2", idle(60)), at(1)) == 2);
    CHECK(f.add("bob", request("192.0.2.3", idle(60)), at(1)) == 1);
    CHECK(f.store.remove(CriterionKey{"alice", 2}));
    CHECK_FALSE(f.store.remove(CriterionKey{"alice", 2}));
    CHECK(f.store.nextCriteriaId("alice") == 3);
    CHECK(f.add("alice", request("192.0.2.4", idle(60)), at(1)) == 3);
    CHECK(f.store.idsOf("alice") == std::vector<uint32_t>{1, 3});
    CHECK(f.store.idsOf("bob") == std::vector<uint32_t>{1});
    CHECK(f.store.size() == 3);
    // Owners never see each other's criteria by key.
    CHECK_FALSE(f.store.find(CriterionKey{"bob", 3}));
}

TEST_CASE("add publishes one FilterSet with priority and deadline; remove withdraws it") {
    StoreFixture f;
    dtcp::AddRequest r = request("192.0.2.0/30", total(90));
    const uint32_t id = f.add("alice", r, at(10));
    const Criterion& c = f.get("alice", id);
    CHECK(f.plane.isLive(c.slot));
    CHECK((f.maps.slot(c.slot.slot).state & XTAP_SLOT_ENABLED) != 0);
    CHECK(f.maps.slot(c.slot.slot).expiry_ns == 100 * kSecond);
    CHECK(f.maps.slot(c.slot.slot).priority == 1);
    CHECK(c.added == at(10).local);
    CHECK(c.last_refresh == at(10).local);
    CHECK(f.store.findBySlot(c.slot.slot) == &c);

    const dataplane::SlotRef slot = c.slot;
    CHECK(f.store.remove(CriterionKey{"alice", id}));
    CHECK_FALSE(f.plane.isLive(slot));
    CHECK((f.maps.slot(slot.slot).state & XTAP_SLOT_ENABLED) == 0);
    CHECK_FALSE(f.store.findBySlot(slot.slot));
    CHECK(f.plane.ruleCount() == 0);
}

TEST_CASE("equal destination lists are stored once, different ones apart") {
    StoreFixture f;
    const uint32_t a = f.add("alice", request("192.0.2.1", idle(60)), at(1));
    const uint32_t b = f.add("alice", request("192.0.2.2", idle(60)), at(1));
    const uint32_t other = f.add("alice", request("192.0.2.3", idle(60)), at(1), {}, 51);
    const uint32_t again = f.add("alice", request("192.0.2.4", idle(60)), at(1));
    const Destinations& first = f.get("alice", a).publication.destinations;
    CHECK(first.shares(f.get("alice", b).publication.destinations));
    CHECK(first.shares(f.get("alice", again).publication.destinations));
    CHECK_FALSE(first.shares(f.get("alice", other).publication.destinations));
    CHECK(f.get("alice", other).publication.destinations.front().params.outer.destination[3] == 51);
    // Removing one leaves the others' list whole.
    REQUIRE(f.store.remove(CriterionKey{"alice", a}));
    CHECK(f.get("alice", b).publication.destinations == Destinations{destination("cd1", 50)});
}

TEST_CASE("Static criteria get no data-plane deadline and never expire") {
    StoreFixture f;
    const uint32_t id = f.add("alice", request("192.0.2.1", total(5), true), at(0));
    const Criterion& c = f.get("alice", id);
    CHECK(f.maps.slot(c.slot.slot).expiry_ns == 0);
    const Lifetime life = f.store.lifetime(c, 100000 * kSecond);
    CHECK_FALSE(life.expired_by);
    CHECK_FALSE(life.remaining.any());
    CHECK_FALSE(f.store.refresh(c.key, idle(10), at(1)));
    CHECK(c.refresh_count == 0);
}

TEST_CASE("quotas: per user, global total, distinct destinations; refusals allocate nothing") {
    SUBCASE("user") {
        StoreFixture f;
        f.add("alice", request("192.0.2.1", idle(60)), at(0), {1, 16});
        const AddResult r =
            f.store.add(newCriterion("alice", request("192.0.2.2", idle(60))), {1, 16}, at(0));
        CHECK(std::get<AddRefusal>(r) == AddRefusal::UserCriteriaQuota);
        CHECK(f.store.nextCriteriaId("alice") == 2);
    }
    SUBCASE("total") {
        StoreFixture f(2);
        f.add("alice", request("192.0.2.1", idle(60)), at(0));
        f.add("bob", request("192.0.2.2", idle(60)), at(0));
        const AddResult r =
            f.store.add(newCriterion("carol", request("192.0.2.3", idle(60))), {}, at(0));
        CHECK(std::get<AddRefusal>(r) == AddRefusal::TotalCriteriaQuota);
        CHECK(f.plane.liveCount() == 2);
    }
    SUBCASE("destinations") {
        StoreFixture f;
        const UserQuota quota{100, 2};
        f.add("alice", request("192.0.2.1", idle(60)), at(0), quota, 50);
        f.add("alice", request("192.0.2.2", idle(60)), at(0), quota, 51);
        f.add("alice", request("192.0.2.3", idle(60)), at(0), quota, 51);  // known endpoint
        const AddResult r =
            f.store.add(newCriterion("alice", request("192.0.2.4", idle(60)), 52), quota, at(0));
        CHECK(std::get<AddRefusal>(r) == AddRefusal::DestinationQuota);
        CHECK(f.store.destinationCountOf("alice") == 2);
        // Another user's destinations are not counted against alice.
        f.add("bob", request("192.0.2.4", idle(60)), at(0), quota, 52);
        // An endpoint is freed when its last criterion goes, not before.
        CHECK(f.store.remove({"alice", 2}));
        CHECK(f.store.destinationCountOf("alice") == 2);
        CHECK(std::holds_alternative<AddRefusal>(
            f.store.add(newCriterion("alice", request("192.0.2.5", idle(60)), 52), quota, at(0))));
        CHECK(f.store.remove({"alice", 3}));
        CHECK(f.store.destinationCountOf("alice") == 1);
        f.add("alice", request("192.0.2.6", idle(60)), at(0), quota, 52);
        CHECK(f.store.destinationCountOf("alice") == 2);
    }
    SUBCASE("the data plane refuses the filters") {
        StoreFixture f;
        NewCriterion bad = newCriterion("alice", request("192.0.2.1", idle(60)));
        bad.publication.filters.clear();
        CHECK(std::get<AddRefusal>(f.store.add(bad, {}, at(0))) == AddRefusal::ClassifierRefused);
        CHECK(f.store.size() == 0);
        CHECK(f.store.nextCriteriaId("alice") == 1);
    }
}

TEST_CASE("lifetime: idle from observed counter changes, total, packets and bytes") {
    StoreFixture f;
    dtcp::Timeouts all;
    all.idle_seconds = 10;
    all.total_seconds = 100;
    all.packets = 50;
    all.bytes = 4000;
    const uint32_t id = f.add("alice", request("192.0.2.1", all), at(0));
    const Criterion& c = f.get("alice", id);

    Lifetime life = f.store.lifetime(c, 0);
    CHECK(life.remaining == all);
    CHECK_FALSE(life.expired_by);

    // Traffic seen at 8 s restarts the idle time.
    f.maps.addTraffic(c.slot.slot, 5, 500);
    f.store.observe(8 * kSecond);
    life = f.store.lifetime(c, 17 * kSecond);
    CHECK(life.remaining.idle_seconds == std::optional<uint32_t>(1));
    CHECK(life.remaining.total_seconds == std::optional<uint32_t>(83));
    CHECK(life.remaining.packets == std::optional<uint32_t>(45));
    CHECK(life.remaining.bytes == std::optional<uint64_t>(3500));
    CHECK_FALSE(life.expired_by);
    // Partial seconds round up: only a spent limit shows 0.
    CHECK(f.store.lifetime(c, 17 * kSecond + 1).remaining.idle_seconds ==
          std::optional<uint32_t>(1));
    CHECK(f.store.lifetime(c, 18 * kSecond).expired_by == TimeoutKind::Idle);

    // Observing without new traffic does not count as activity.
    f.store.observe(12 * kSecond);
    CHECK(f.store.lifetime(c, 18 * kSecond).expired_by == TimeoutKind::Idle);

    f.maps.addTraffic(c.slot.slot, 45, 100);
    f.store.observe(18 * kSecond);
    CHECK(f.store.lifetime(c, 18 * kSecond).expired_by == TimeoutKind::Packets);
    f.maps.addTraffic(c.slot.slot, 0, 3400);
    life = f.store.lifetime(c, 18 * kSecond);
    CHECK(life.remaining.bytes == std::optional<uint64_t>(0));
    CHECK(life.remaining.packets == std::optional<uint32_t>(0));

    StoreFixture g;
    const uint32_t t = g.add("alice", request("192.0.2.1", total(30)), at(0));
    CHECK_FALSE(g.store.lifetime(g.get("alice", t), 29 * kSecond).expired_by);
    CHECK(g.store.lifetime(g.get("alice", t), 30 * kSecond).expired_by == TimeoutKind::Total);
}

TEST_CASE("a stored request gives back the ADD as received, every field") {
    dtcp::AddRequest r = request("192.0.2.1", idle(30));
    r.match.src.push_back(test::addressEntry("192.0.2.9", Family::V4));
    r.match.dst = {test::addressEntry("198.51.100.0/24", Family::V4)};
    r.match.proto = {NumberEntry{false, 6, 6}, NumberEntry{true, 17, 17}};
    r.match.sport = {NumberEntry{false, 1024, 65535}};
    r.match.dport = {NumberEntry{false, 80, 80}, NumberEntry{false, 443, 443}};
    r.match.icmp_type = {NumberEntry{false, 8, 8}};
    r.match.icmp_code = {NumberEntry{true, 0, 0}};
    r.match.input_ifindexes = {3, 4};
    r.match.output_ifindexes = {7};
    r.match_text.push_back({"Dest-Port", "80,443"});
    r.match_text.push_back({"X-Empty", ""});
    r.match_text.push_back({"X-Bytes", std::string("a\0b\xff", 4)});
    r.send_async = true;
    r.priority = 5;

    const auto same = [](const dtcp::AddRequest& a, const dtcp::AddRequest& b) {
        CHECK(a.cdest_ids == b.cdest_ids);
        CHECK(a.match == b.match);
        CHECK(a.match_text == b.match_text);
        CHECK(a.timeouts == b.timeouts);
        CHECK(a.is_static == b.is_static);
        CHECK(a.send_async == b.send_async);
        CHECK(a.priority == b.priority);
        CHECK(a.delivery == b.delivery);
        CHECK(a.input_interfaces == b.input_interfaces);
        CHECK(a.output_interfaces == b.output_interfaces);
        CHECK(a.vrf_name == b.vrf_name);
        CHECK(a.md_intercept_id == b.md_intercept_id);
        CHECK(a.extension_text == b.extension_text);
    };
    // Without the rare fields, then with them.
    same(StoredRequest(r).toAddRequest(), r);
    CHECK(StoredRequest(r).match() == r.match);
    dtcp::DeliverySet set;
    set.dest_addresses = {dtcp::IpAddress{Family::V4, dataplane::Address{203, 0, 113, 5}}};
    set.dest_ports = {50000};
    set.source_address = dtcp::IpAddress{Family::V4, dataplane::Address{198, 51, 100, 1}};
    set.source_port = 49153;
    r.delivery = set;
    r.input_interfaces = {"ge-0/0/1.0"};
    r.output_interfaces = {"ge-0/0/2.0", "ge-0/0/3.0"};
    r.vrf_name = "blue";
    r.md_intercept_id = dtcp::MdInterceptId{"0x2a", 42};
    r.extension_text = {{"X-JTap-VRF-Name", "blue"}, {"X-MD-Intercept-Id", "0x2a"}};
    const StoredRequest stored(r);
    same(stored.toAddRequest(), r);
    CHECK(stored.vrfName() == r.vrf_name);
    CHECK(stored.extensionText() == r.extension_text);
    CHECK(StoredRequest().match() == MatchSpec{});
}

// The bandwidth window as it was kept per criterion (a time with every
// sample): the store's tick-numbered samples must give the same averages.
struct ReferenceWindow {
    std::vector<std::pair<uint64_t, uint64_t>> samples;  // (time, bytes), oldest first
    void add(uint64_t time_ns, uint64_t bytes, uint64_t window_ns) {
        samples.emplace_back(time_ns, bytes);
        size_t stale = 0;
        while (samples.size() - stale >= 2 && samples[stale + 1].first + window_ns <= time_ns)
            ++stale;
        samples.erase(samples.begin(), samples.begin() + static_cast<std::ptrdiff_t>(stale));
    }
    uint64_t average(uint64_t bytes_now, uint64_t now_ns, uint64_t window_ns) const {
        if (samples.empty()) return 0;
        auto reference = samples.front();
        for (const auto& s : samples) {
            if (s.first + window_ns > now_ns) break;
            reference = s;
        }
        if (now_ns <= reference.first || bytes_now < reference.second) return 0;
        const long double bits = static_cast<long double>(bytes_now - reference.second) * 8;
        return static_cast<uint64_t>(bits /
                                     (static_cast<long double>(now_ns - reference.first) / 1e9L));
    }
};

TEST_CASE("bandwidth window: the ADD and one sample a tick, one a window old kept") {
    constexpr uint64_t kWindow = CriteriaStore::kBandwidthWindowNs;
    StoreFixture f;
    std::map<uint32_t, ReferenceWindow> reference;
    const uint64_t ms = kSecond / 1000;
    uint64_t now = 5 * kSecond;
    auto add = [&](const std::string& source) {
        Instant when = at(0);
        when.boottime_ns = now;
        const uint32_t id = f.add("alice", request(source, {}, true), when);
        reference[id].samples.emplace_back(now, 0);  // the ADD
        return id;
    };
    auto check = [&](uint64_t at_ns) {
        for (const auto& [id, ref] : reference) {
            const Criterion& c = f.get("alice", id);
            const uint64_t bytes = f.store.matched(c).bytes;
            CAPTURE(id);
            CAPTURE(at_ns);
            CHECK(f.store.averageBandwidth(c, bytes, at_ns) == ref.average(bytes, at_ns, kWindow));
        }
    };
    const uint32_t first = add("192.0.2.1");
    check(now);
    // Ticks a second apart, a stall with catch-up ticks 100 ms apart, long
    // gaps; criteria added between ticks; traffic on some.
    const std::vector<uint64_t> steps = {1000, 1000,  1000, 1000, 3000, 100,  100,   100,
                                         1000, 1000,  1000, 1000, 1000, 1000, 1000,  1000,
                                         1000, 12000, 100,  1000, 1000, 1000, 1000,  1000,
                                         1000, 1000,  1000, 1000, 1000, 1000, 25000, 1000};
    uint32_t second = 0, third = 0;
    for (size_t i = 0; i < steps.size(); ++i) {
        now += steps[i] * ms;
        if (i == 2) second = add("192.0.2.2");
        if (i == 9) third = add("192.0.2.3");
        f.maps.addTraffic(f.get("alice", first).slot.slot, 1, 1000 * (i + 1));
        if (second && i % 3 == 0) f.maps.addTraffic(f.get("alice", second).slot.slot, 2, 700);
        check(now);
        f.store.observe(now);
        f.store.sampleBandwidth(now);
        for (auto& [id, ref] : reference) {
            ref.add(now, f.store.matched(f.get("alice", id)).bytes, kWindow);
        }
        // A LIST between ticks, and one much later.
        check(now + 400 * ms);
        check(now + 30 * kSecond);
    }
    CHECK(third != 0);
    // A criterion removed leaves the others' windows as they were.
    REQUIRE(f.store.remove(CriterionKey{"alice", second}));
    reference.erase(second);
    now += kSecond;
    f.store.sampleBandwidth(now);
    for (auto& [id, ref] : reference)
        ref.add(now, f.store.matched(f.get("alice", id)).bytes, kWindow);
    check(now + 2 * kSecond);
    // The window keeps a few samples a criterion, not one a tick since the ADD,
    // and one that matched nothing keeps none beside its first.
    CHECK(f.get("alice", first).byte_changes.size() <= kWindow / kSecond + 2);
    CHECK(f.get("alice", third).byte_changes.empty());
}

TEST_CASE("tick: one walk gives what observe, the lifetime check and sampleBandwidth give") {
    // Two stores tasked alike: one ticked by the three calls, one by tick().
    StoreFixture three, walk;
    std::vector<uint32_t> ids;
    for (StoreFixture* f : {&three, &walk}) {
        ids.clear();
        ids.push_back(f->add("alice", request("192.0.2.1", idle(3)), at(1)));
        ids.push_back(f->add("alice", request("192.0.2.2", total(6)), at(1)));
        ids.push_back(f->add("bob", request("192.0.2.3", {}, true), at(1)));
        dtcp::Timeouts packets;
        packets.packets = 20;
        ids.push_back(f->add("bob", request("192.0.2.4", packets), at(1)));
    }
    const std::vector<std::pair<std::string, size_t>> owners = {
        {"alice", 0}, {"alice", 1}, {"bob", 2}, {"bob", 3}};
    for (uint64_t second = 2; second <= 16; ++second) {
        const uint64_t now = second * kSecond;
        for (StoreFixture* f : {&three, &walk}) {
            // Traffic on the idle one until 6 s, on the others all along.
            for (const auto& [user, i] : owners) {
                const Criterion* c = f->store.find(CriterionKey{user, ids[i]});
                if (c && (i != 0 || second <= 6))
                    f->maps.addTraffic(c->slot.slot, 3, 300 * i + 100);
            }
        }
        three.store.observe(now);
        std::vector<CriterionKey> expired_three;
        three.store.forEach([&](const Criterion& c) {
            if (three.store.lifetime(c, now).expired_by) expired_three.push_back(c.key);
        });
        const std::vector<CriterionKey> expired_walk = walk.store.tick(now);
        CAPTURE(second);
        CHECK(expired_walk == expired_three);
        for (const CriterionKey& key : expired_three) {
            REQUIRE(three.store.remove(key));
            REQUIRE(walk.store.remove(key));
        }
        three.store.sampleBandwidth(now);
        for (const auto& [user, i] : owners) {
            const Criterion* a = three.store.find(CriterionKey{user, ids[i]});
            const Criterion* b = walk.store.find(CriterionKey{user, ids[i]});
            REQUIRE((a == nullptr) == (b == nullptr));
            if (!a) continue;
            CHECK(a->idle_deadline_ns == b->idle_deadline_ns);
            CHECK(a->last_seen_packets == b->last_seen_packets);
            for (const uint64_t at_ns : {now, now + kSecond / 2, now + 20 * kSecond}) {
                CHECK(three.store.averageBandwidth(*a, three.store.matched(*a).bytes, at_ns) ==
                      walk.store.averageBandwidth(*b, walk.store.matched(*b).bytes, at_ns));
            }
        }
    }
    // By then the idle one, the total one and the packets one have gone.
    CHECK(walk.store.size() == 1);
}

TEST_CASE("refresh replaces the given limits only and moves the data-plane deadline") {
    StoreFixture f;
    dtcp::Timeouts limits;
    limits.total_seconds = 60;
    limits.packets = 100;
    const uint32_t id = f.add("alice", request("192.0.2.1", limits), at(0));
    const Criterion& c = f.get("alice", id);
    f.maps.addTraffic(c.slot.slot, 80, 800);

    dtcp::Timeouts again;
    again.packets = 30;
    CHECK(f.store.refresh(c.key, again, at(40)));
    CHECK(c.refresh_count == 1);
    CHECK(c.last_refresh == at(40).local);
    CHECK(c.limits.packets == std::optional<uint32_t>(30));
    CHECK(c.limits.total_seconds == std::optional<uint32_t>(60));  // not given: kept
    Lifetime life = f.store.lifetime(c, 40 * kSecond);
    CHECK(life.remaining.packets == std::optional<uint32_t>(30));
    CHECK(life.remaining.total_seconds == std::optional<uint32_t>(20));
    CHECK(f.maps.slot(c.slot.slot).expiry_ns == 60 * kSecond);

    CHECK(f.store.refresh(c.key, total(60), at(50)));
    CHECK(f.maps.slot(c.slot.slot).expiry_ns == 110 * kSecond);
    CHECK(c.refresh_count == 2);
    CHECK(f.store.matched(c) == MatchCounters{80, 800});  // counters are not reset
    CHECK_FALSE(f.store.refresh(CriterionKey{"bob", id}, total(60), at(50)));
}

TEST_CASE("dropped copies are reported by slot; republish carries the counters over") {
    StoreFixture f;
    const uint32_t id = f.add("alice", request("192.0.2.1", idle(60)), at(0));
    const Criterion& c = f.get("alice", id);
    f.store.addDropped(c.slot.slot, 3, 4500);
    f.store.addDropped(9999, 1, 1);  // no criterion there: ignored
    CHECK(c.dropped == MatchCounters{3, 4500});
    f.maps.addTraffic(c.slot.slot, 4, 400);
    f.maps.addGated(c.slot.slot, 2, 200);  // not copied: the copy gate refused
    CHECK(f.store.counts(c).dropped == MatchCounters{5, 4700});
    f.store.observe(10 * kSecond);

    const dataplane::SlotRef old = c.slot;
    const CompileResult wider = compile(request("192.0.2.0/24", idle(60)).match);
    REQUIRE(wider.ok());
    CHECK(f.store.republish(c.key, wider.filters()));
    CHECK_FALSE(f.plane.isLive(old));
    CHECK(f.plane.isLive(c.slot));
    CHECK(c.publication.filters == wider.filters());
    CHECK(f.store.findBySlot(c.slot.slot) == &c);
    CHECK(f.store.matched(c) == MatchCounters{6, 600});
    CHECK(f.store.counts(c).dropped == MatchCounters{5, 4700});  // carried over once
    // The move itself is no activity: the idle time still runs from 10 s.
    f.store.observe(59 * kSecond);
    CHECK(f.store.lifetime(c, 59 * kSecond).remaining.idle_seconds == std::optional<uint32_t>(11));
    f.maps.addTraffic(c.slot.slot, 1, 100);
    CHECK(f.store.matched(c) == MatchCounters{7, 700});

    CHECK_FALSE(f.store.republish(c.key, {}));  // refused: the old filters stay
    CHECK(f.plane.isLive(c.slot));
}

TEST_CASE("JSON round trip: same IDs, requests, counters, remaining times and Seq states") {
    StoreFixture before;
    dtcp::Timeouts limits;
    limits.idle_seconds = 300;
    limits.total_seconds = 600;
    dtcp::AddRequest r = request("192.0.2.0/24", limits, false, "tap");
    r.match.proto = {NumberEntry{false, 6, 6}, NumberEntry{true, 7, 9}};
    r.match_text.push_back({"Protocol", "6"});
    r.send_async = true;
    r.priority = 4;
    r.delivery = dtcp::DeliverySet{{dtcp::IpAddress{Family::V4, {203, 0, 113, 50}}},
                                   {50000},
                                   dtcp::IpAddress{Family::V4, {198, 51, 100, 1}},
                                   49153,
                                   64};
    r.input_interfaces = {"ge-0/0/1.0"};
    r.output_interfaces = {"ge-0/0/2.0"};
    r.match.output_ifindexes = {8};
    r.md_intercept_id = dtcp::MdInterceptId{"4000000a", 10};
    r.extension_text = {{"X-JTap-Cdest-TTL", "64"}, {"X-MD-Intercept-Id", "4000000a"}};
    before.add("alice", r, at(0));
    before.add("alice", request("192.0.2.7", idle(60)), at(0));
    before.add("bob", request("2001:db8::/32", {}, true), at(0));
    REQUIRE(before.store.remove(CriterionKey{"alice", 2}));
    before.maps.addTraffic(before.get("alice", 1).slot.slot, 12, 1200);
    before.store.addDropped(before.get("alice", 1).slot.slot, 1, 100);
    before.store.observe(30 * kSecond);
    REQUIRE(before.store.refresh(CriterionKey{"alice", 1}, total(600), at(40)));

    SeqStates seqs;
    seqs["alice"].has_baseline = true;
    seqs["alice"].highest = 77;
    seqs["alice"].seen_below = {1, 2, 3, 0x8000000000000000ULL};
    const json saved = before.store.toJson(at(100), seqs);
    const auto parsed = CriteriaStore::parseJson(json::parse(saved.dump()));
    REQUIRE(std::holds_alternative<StoreSnapshot>(parsed));
    const StoreSnapshot& snapshot = std::get<StoreSnapshot>(parsed);
    CHECK(snapshot.seq_states == seqs);
    CHECK(snapshot.last_ids.at("alice") == 2);
    REQUIRE(snapshot.criteria.size() == 2);
    const SavedCriterion& s = snapshot.criteria.front();
    CHECK(s.request.match == r.match);
    CHECK(s.request.match_text == r.match_text);
    CHECK(s.request.delivery == r.delivery);
    CHECK(s.request.md_intercept_id == r.md_intercept_id);
    CHECK(s.request.input_interfaces == r.input_interfaces);
    CHECK(s.request.output_interfaces == r.output_interfaces);
    CHECK(s.request.extension_text == r.extension_text);
    CHECK(s.request.send_async);
    CHECK(s.request.priority == 4);
    CHECK(s.total_remaining_ns == std::optional<uint64_t>(540 * kSecond));
    CHECK(s.idle_remaining_ns == std::optional<uint64_t>(230 * kSecond));
    CHECK(s.matched == MatchCounters{12, 1200});
    CHECK(s.refresh_count == 1);

    // The rebuild here compiles the saved match and keeps the saved destinations.
    StoreFixture after;
    const Instant restart = at(7);  // a new boot: an unrelated CLOCK_BOOTTIME
    const RestoreReport report = after.store.restore(
        snapshot, restart, [](const SavedCriterion& c) -> std::variant<Publication, std::string> {
            const CompileResult compiled = compile(c.request.match);
            if (!compiled.ok()) return std::string("no longer compiles");
            return Publication{compiled.filters(), c.destinations, c.effective_priority};
        });
    CHECK(report.restored == 2);
    CHECK(report.dropped.empty());
    CHECK(after.plane.liveCount() == 2);
    const Criterion& a = after.get("alice", 1);
    const Criterion& b = before.get("alice", 1);
    CHECK(a.publication.filters == b.publication.filters);
    CHECK(a.publication.destinations == b.publication.destinations);
    CHECK(a.publication.effective_priority == b.publication.effective_priority);
    CHECK(after.store.matched(a) == MatchCounters{12, 1200});
    CHECK(a.dropped == MatchCounters{1, 100});
    CHECK(a.added == b.added);
    CHECK(a.last_refresh == at(40).local);
    CHECK(after.store.lifetime(a, restart.boottime_ns).remaining ==
          before.store.lifetime(b, 100 * kSecond).remaining);
    CHECK(after.maps.slot(a.slot.slot).expiry_ns == restart.boottime_ns + 540 * kSecond);
    CHECK(after.store.findBySlot(a.slot.slot) == &a);
    CHECK(after.get("bob", 1).isStatic());
    CHECK(after.store.nextCriteriaId("alice") == 3);
    CHECK(after.store.nextCriteriaId("bob") == 2);

    // Restoring the same snapshot again keeps what exists.
    const RestoreReport twice = after.store.restore(
        snapshot, restart, [](const SavedCriterion&) -> std::variant<Publication, std::string> {
            return std::string("not reached");
        });
    CHECK(twice.restored == 0);
    CHECK(twice.dropped.size() == 2);
    CHECK(after.store.size() == 2);
}

TEST_CASE("parseJson names the place of a malformed or foreign document") {
    StoreFixture f;
    f.add("alice", request("192.0.2.1", idle(60)), at(0));
    json good = f.store.toJson(at(1), {});

    auto errorOf = [](const json& document) {
        const auto parsed = CriteriaStore::parseJson(document);
        REQUIRE(std::holds_alternative<std::string>(parsed));
        return std::get<std::string>(parsed);
    };
    json foreign = good;
    foreign["format"] = "something-else";
    CHECK(errorOf(foreign).rfind("/format:", 0) == 0);

    json wide_priority = good;
    wide_priority["criteria"][0]["request"]["priority"] = 300;
    CHECK(errorOf(wide_priority).rfind("/criteria/0:", 0) == 0);

    json bad_address = good;
    bad_address["criteria"][0]["destinations"][0]["destination"] = "not-an-address";
    CHECK(errorOf(bad_address).rfind("/criteria/0:", 0) == 0);

    json negative = good;
    negative["last_ids"]["alice"] = -1;
    CHECK(errorOf(negative).rfind("/last_ids/alice:", 0) == 0);

    CHECK(errorOf(json::array()) == "/: not a JSON object");
}

}  // namespace
}  // namespace xtap::criteria
