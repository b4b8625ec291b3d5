// The state file and the restart it serves: criteria taken over in their
// slots with the counts of the gap, deadlines that ran on while xtapd was
// down, and a clear error for a file that cannot be trusted.
#include <doctest/doctest.h>

#include <set>

#include <nlohmann/json.hpp>

#include <string>

#include "criteria/CriteriaCompiler.h"
#include "criteria/CriteriaStore.h"
#include "criteria/StateFile.h"
#include "dataplane/DataPlane.h"
#include "dataplane/MemoryMaps.h"
#include "StoreTestSupport.h"

namespace xtap::criteria {
namespace {

using namespace test;
using dataplane::Family;
using nlohmann::json;

StateClock clockAt(uint64_t seconds, std::string boot = "boot-1", uint64_t unix_s = 1'700'000'000) {
    return StateClock{(unix_s + seconds) * 1000, seconds * kSecond, std::move(boot)};
}

ContentDestination destination() {
    ContentDestination d;
    d.cdest_id = "cd1";
    d.params.outer.family = Family::V4;
    d.params.outer.source = dataplane::Address{198, 51, 100, 1};
    d.params.outer.destination = dataplane::Address{203, 0, 113, 50};
    d.params.outer.destination_port = 50000;
    return d;
}

Publication publicationOf(const dtcp::AddRequest& r) {
    const CompileResult compiled = compile(r.match);
    REQUIRE(compiled.ok());
    return Publication{compiled.filters(), {destination()}, 1};
}

std::variant<Publication, std::string> rebuild(const SavedCriterion& c) {
    return publicationOf(c.request);
}

const dataplane::Capacity kCapacity{4096, 32, 4096};

struct Before {
    Before() : plane(maps, kCapacity), store(plane, {32}) {}
    uint32_t add(const dtcp::AddRequest& r, const Instant& now) {
        const AddResult result =
            store.add(NewCriterion{"alice", r, "192.0.2.77", publicationOf(r)}, {}, now);
        REQUIRE(std::holds_alternative<uint32_t>(result));
        return std::get<uint32_t>(result);
    }
    dataplane::MemoryMaps maps;
    dataplane::DataPlane plane;
    CriteriaStore store;
};

TEST_CASE("a restart on the same maps keeps the slots, the gap's counts and the ID counter") {
    Before before;
    const uint32_t kept = before.add(request("198.18.2.2", total(600)), at(0));
    const uint32_t deleted = before.add(request("198.18.2.3", {}, true), at(0));
    REQUIRE(before.store.remove(CriterionKey{"alice", deleted}));
    const uint32_t fixed = before.add(request("198.18.2.4", {}, true), at(0));
    const dataplane::SlotRef slot = before.store.find(CriterionKey{"alice", kept})->slot;
    before.maps.addTraffic(slot.slot, 5, 500);
    SeqStates seq;
    seq["alice"].has_baseline = true;
    seq["alice"].highest = 41;
    const std::string text = formatStateFile(before.store, at(100), seq, clockAt(100));

    // xtapd is killed; the classifier counts 7 more packets; xtapd starts again 30 s later.
    before.maps.addTraffic(slot.slot, 7, 700);
    const auto loaded = parseStateFile(text, clockAt(130));
    REQUIRE(std::holds_alternative<LoadedState>(loaded));
    const LoadedState& state = std::get<LoadedState>(loaded);
    CHECK(state.same_boot);
    CHECK(state.elapsed_ns == 30 * kSecond);
    CHECK(state.snapshot.seq_states == seq);

    dataplane::DataPlane plane(before.maps, kCapacity, before.maps.contents());
    CriteriaStore store(plane, {32});
    const RestoreReport report = store.restore(state.snapshot, at(130), rebuild);
    CHECK(report.restored == 2);
    CHECK(report.dropped.empty());
    REQUIRE(report.resumed.size() == 2);
    CHECK_FALSE(plane.restoring());
    const Criterion* c = store.find(CriterionKey{"alice", kept});
    REQUIRE(c);
    CHECK(c->slot == slot);  // the same slot and generation
    CHECK(store.matched(*c) == MatchCounters{12, 1200});
    CHECK(report.resumed.front().during_gap == MatchCounters{7, 700});
    // 600 s from the ADD at 0: 470 s left at 130, also in the classifier.
    CHECK(store.lifetime(*c, 130 * kSecond).remaining.total_seconds ==
          std::optional<uint32_t>(470));
    CHECK(before.maps.slot(slot.slot).expiry_ns == 600 * kSecond);
    CHECK(store.find(CriterionKey{"alice", fixed})->isStatic());
    CHECK(store.nextCriteriaId("alice") == 4);  // 2 was deleted, never reused
}

TEST_CASE("copies the gate refused stay in a criterion's drops across restarts") {
    Before before;
    const uint32_t id = before.add(request("198.18.2.2", {}, true), at(0));
    const dataplane::SlotRef slot = before.store.find(CriterionKey{"alice", id})->slot;
    before.maps.addTraffic(slot.slot, 5, 500);
    before.maps.addGated(slot.slot, 2, 200);  // matched, not copied
    before.store.addDropped(slot.slot, 1, 100);
    {
        const auto counts = before.store.counts(*before.store.find(CriterionKey{"alice", id}));
        CHECK(counts.matched == MatchCounters{7, 700});
        CHECK(counts.dropped == MatchCounters{3, 300});
    }
    const std::string text = formatStateFile(before.store, at(100), {}, clockAt(100));
    // While xtapd is down the gate refuses 3 more (its deadline passed).
    before.maps.addGated(slot.slot, 3, 300);

    SUBCASE("same boot: the slot is taken over and its refusals count once") {
        const auto loaded = parseStateFile(text, clockAt(130));
        REQUIRE(std::holds_alternative<LoadedState>(loaded));
        dataplane::DataPlane plane(before.maps, kCapacity, before.maps.contents());
        CriteriaStore store(plane, {32});
        REQUIRE(store.restore(std::get<LoadedState>(loaded).snapshot, at(130), rebuild).restored ==
                1);
        const auto counts = store.counts(*store.find(CriterionKey{"alice", id}));
        CHECK(counts.matched == MatchCounters{10, 1000});
        CHECK(counts.dropped == MatchCounters{6, 600});
    }
    SUBCASE("a new boot: the saved drops (the old maps are gone), a fresh slot") {
        StateClock now{(1'700'000'000ULL + 150) * 1000, 5 * kSecond, "boot-2"};
        const auto loaded = parseStateFile(text, now);
        REQUIRE(std::holds_alternative<LoadedState>(loaded));
        dataplane::MemoryMaps fresh_maps(32);
        dataplane::DataPlane plane(fresh_maps, kCapacity);
        CriteriaStore store(plane, {32});
        REQUIRE(store.restore(std::get<LoadedState>(loaded).snapshot, at(5), rebuild).restored ==
                1);
        const Criterion& c = *store.find(CriterionKey{"alice", id});
        CHECK(store.counts(c).dropped == MatchCounters{3, 300});
        fresh_maps.addGated(c.slot.slot, 1, 100);
        CHECK(store.counts(c).dropped == MatchCounters{4, 400});
    }
}

TEST_CASE("the state journal's changes since the save are applied on load") {
    Before before;
    const uint32_t first = before.add(request("198.18.2.2", total(600)), at(0));
    const uint32_t second = before.add(request("198.18.2.3", {}, true), at(0));
    const std::string text = formatStateFile(before.store, at(100), {}, clockAt(100), 77);

    // After the save: a third criterion at 110 s (600 s total), the second deleted,
    // a Seq window moved; then xtapd is killed and starts at 130 s.
    const uint32_t third = before.add(request("198.18.2.4", total(600)), at(110));
    REQUIRE(before.store.remove(CriterionKey{"alice", second}));
    dtcp::SeqWindowState window;
    window.has_baseline = true;
    window.highest = 9;
    const Criterion* added = before.store.find(CriterionKey{"alice", third});
    REQUIRE(added);
    std::string journal = journalHeader(77) + "\n" +
                          journalPut(before.store.criterionJson(*added, at(110)), 110 * kSecond) +
                          "\n" + journalDelete("alice", second) + "\n" +
                          journalSeq("alice", seqStateToJson(window)) + "\n";

    SUBCASE("applied") {
        const auto loaded = parseStateFile(text, clockAt(130), journal + "{\"op\":\"del");
        REQUIRE(std::holds_alternative<LoadedState>(loaded));
        const LoadedState& state = std::get<LoadedState>(loaded);
        CHECK(state.journal.records == 3);
        CHECK(state.journal.torn_tail);  // never acknowledged: ignored
        std::set<uint32_t> ids;
        for (const auto& c : state.snapshot.criteria) ids.insert(c.key.id);
        CHECK(ids == std::set<uint32_t>{first, third});
        CHECK(state.snapshot.last_ids.at("alice") == third);
        CHECK(state.snapshot.seq_states.at("alice").highest == 9);
        for (const auto& c : state.snapshot.criteria)
            if (c.key.id == third)  // added at 110 with 600 s: 580 s left at 130
                CHECK(c.total_remaining_ns == std::optional<uint64_t>(580 * kSecond));
    }
    SUBCASE("a journal of another generation is already in the file") {
        const auto loaded = parseStateFile(
            text, clockAt(130), journalHeader(76) + "\n" + journalDelete("alice", first) + "\n");
        REQUIRE(std::holds_alternative<LoadedState>(loaded));
        CHECK(std::get<LoadedState>(loaded).journal.stale);
        CHECK(std::get<LoadedState>(loaded).snapshot.criteria.size() == 2);
    }
    SUBCASE("a damaged record before the last makes the state unusable") {
        const auto loaded =
            parseStateFile(text, clockAt(130), journalHeader(77) + "\n{damaged\n" + journal);
        REQUIRE(std::holds_alternative<std::string>(loaded));
        CHECK(std::get<std::string>(loaded).find("state journal: journal line 2") == 0);
    }
}

TEST_CASE("a deadline that passed while xtapd was down loads as expired") {
    Before before;
    const uint32_t id = before.add(request("198.18.2.2", total(60)), at(0));
    const std::string text = formatStateFile(before.store, at(10), {}, clockAt(10));
    const auto loaded = parseStateFile(text, clockAt(200));
    REQUIRE(std::holds_alternative<LoadedState>(loaded));
    dataplane::DataPlane plane(before.maps, kCapacity, before.maps.contents());
    CriteriaStore store(plane, {32});
    store.restore(std::get<LoadedState>(loaded).snapshot, at(200), rebuild);
    const Criterion* c = store.find(CriterionKey{"alice", id});
    REQUIRE(c);
    const Lifetime life = store.lifetime(*c, 200 * kSecond);
    CHECK(life.expired_by == std::optional<TimeoutKind>(TimeoutKind::Total));
}

TEST_CASE("after a reboot the wall clock measures the gap and no slot is taken over") {
    Before before;
    before.add(request("198.18.2.2", total(600)), at(0));
    const std::string text = formatStateFile(before.store, at(100), {}, clockAt(100, "boot-1"));
    // New boot: CLOCK_BOOTTIME restarted at 5 s, the wall clock moved 50 s.
    StateClock now{(1'700'000'000ULL + 150) * 1000, 5 * kSecond, "boot-2"};
    const auto loaded = parseStateFile(text, now);
    REQUIRE(std::holds_alternative<LoadedState>(loaded));
    const LoadedState& state = std::get<LoadedState>(loaded);
    CHECK_FALSE(state.same_boot);
    CHECK(state.elapsed_ns == 50 * kSecond);
    REQUIRE(state.snapshot.criteria.size() == 1);
    CHECK_FALSE(state.snapshot.criteria[0].slot.has_value());
    CHECK(state.snapshot.criteria[0].total_remaining_ns == std::optional<uint64_t>(450 * kSecond));

    dataplane::MemoryMaps fresh_maps(32);
    dataplane::DataPlane plane(fresh_maps, kCapacity);
    CriteriaStore store(plane, {32});
    const RestoreReport report = store.restore(state.snapshot, at(5), rebuild);
    CHECK(report.restored == 1);
    CHECK(report.resumed.empty());
    CHECK(store.matched(*store.find(CriterionKey{"alice", 1})).packets == 0);
}

TEST_CASE("a state file that cannot be trusted gets an error naming the place and the reason") {
    Before before;
    before.add(request("198.18.2.2", total(600)), at(0));
    const std::string good = formatStateFile(before.store, at(1), {}, clockAt(1));
    auto errorOf = [](const std::string& text) {
        const auto parsed = parseStateFile(text, clockAt(2));
        REQUIRE(std::holds_alternative<std::string>(parsed));
        return std::get<std::string>(parsed);
    };
    CHECK(errorOf(good.substr(0, good.size() / 2)).rfind("not valid JSON", 0) == 0);
    CHECK(errorOf("").rfind("not valid JSON", 0) == 0);
    CHECK(errorOf("[]") == "/: not a JSON object");

    json doc = json::parse(good);
    json other = doc;
    other["format"] = "xtap-criteria";
    CHECK(errorOf(other.dump()).rfind("/format:", 0) == 0);
    other = doc;
    other["version"] = 2;
    CHECK(errorOf(other.dump()) == "/version: version 2 is not supported (this xtapd reads 1)");
    other = doc;
    other.erase("saved");
    CHECK(errorOf(other.dump()).rfind("/saved:", 0) == 0);
    other = doc;
    other["store"]["criteria"][0]["request"]["priority"] = 300;
    CHECK(errorOf(other.dump()).rfind("/store/criteria/0:", 0) == 0);
    other = doc;
    other["store"]["criteria"].push_back(other["store"]["criteria"][0]);
    CHECK(errorOf(other.dump()) ==
          "/store/criteria/1: a second criterion with the same user and ID");
    other = doc;
    other["store"]["last_ids"]["alice"] = 0;
    CHECK(errorOf(other.dump()) == "/store/criteria/0: ID above the user's last allocated ID");
    other = doc;
    other["store"]["criteria"][0]["slot"]["counted"]["packets"] = 99;
    CHECK(errorOf(other.dump()).rfind("/store/criteria/0:", 0) == 0);
    other = doc;
    other["owed_notices"] = json::array();
    CHECK(errorOf(other.dump()) == "/owed_notices: not an object");
    other["owed_notices"] = {{"alice", 599}};
    CHECK(errorOf(other.dump()) == "/owed_notices: values must be strings");
    // No target in any error.
    for (const std::string& e : {errorOf(other.dump()), errorOf(good.substr(0, 80))})
        CHECK(e.find("198.18") == std::string::npos);
}

TEST_CASE("the state file written and read a criterion at a time is the whole document's JSON") {
    Before before;
    before.add(request("198.18.2.2", total(600)), at(0));
    before.add(request("198.18.2.3", {}, true), at(0));
    const AddResult bob =
        before.store.add(NewCriterion{"bob", request("198.18.2.4", total(60)), "192.0.2.78",
                                      publicationOf(request("198.18.2.4", total(60)))},
                         {}, at(0));
    REQUIRE(std::holds_alternative<uint32_t>(bob));
    SeqStates seq;
    seq["bob"].has_baseline = true;
    seq["bob"].highest = 7;
    const StateClock clock = clockAt(5);
    const std::string text = formatStateFile(before.store, at(5), seq, clock, 3);
    const json whole{{"format", "xtap-state"},
                     {"version", 1},
                     {"saved",
                      {{"unix_ms", clock.unix_ms},
                       {"boottime_ns", clock.boottime_ns},
                       {"boot_id", clock.boot_id},
                       {"journal_gen", 3}}},
                     {"store", before.store.toJson(at(5), seq)}};
    CHECK(text == whole.dump() + "\n");
    CriteriaStore empty(before.plane, {32});
    std::string none;
    empty.dumpJson(none, at(5), {});
    CHECK(none == empty.toJson(at(5), {}).dump());

    const auto loaded = parseStateFile(text, clockAt(6));
    REQUIRE(std::holds_alternative<LoadedState>(loaded));
    const StoreSnapshot& snapshot = std::get<LoadedState>(loaded).snapshot;
    const auto direct = CriteriaStore::parseJson(whole.at("store"));
    REQUIRE(std::holds_alternative<StoreSnapshot>(direct));
    REQUIRE(snapshot.criteria.size() == 3);
    for (size_t i = 0; i < 3; ++i) {
        CHECK(snapshot.criteria[i].key == std::get<StoreSnapshot>(direct).criteria[i].key);
        CHECK(snapshot.criteria[i].request.match_text ==
              std::get<StoreSnapshot>(direct).criteria[i].request.match_text);
    }
    CHECK(snapshot.last_ids == std::get<StoreSnapshot>(direct).last_ids);
    CHECK(snapshot.seq_states == seq);

    // A damaged later criterion is named by its own index.
    json doc = json::parse(text);
    doc["store"]["criteria"][2]["request"]["priority"] = 300;
    const auto damaged = parseStateFile(doc.dump(), clockAt(6));
    REQUIRE(std::holds_alternative<std::string>(damaged));
    CHECK(std::get<std::string>(damaged).rfind("/store/criteria/2:", 0) == 0);
}

TEST_CASE("599s still owed are kept in the state file, and only then") {
    Before before;
    before.add(request("198.18.2.2", total(600)), at(0));
    const std::string none = formatStateFile(before.store, at(1), {}, clockAt(1));
    CHECK(none.find("owed_notices") == std::string::npos);
    const auto plain = parseStateFile(none, clockAt(2));
    REQUIRE(std::holds_alternative<LoadedState>(plain));
    CHECK(std::get<LoadedState>(plain).owed.empty());

    const OwedNotices owed{{"alice", "xtapd restarted without its saved criteria"},
                           {"bob", "every criterion was flushed by the operator"}};
    const std::string text = formatStateFile(before.store, at(1), {}, clockAt(1), 5, owed);
    CHECK(json::parse(text).at("owed_notices") == json(owed));
    const auto loaded = parseStateFile(text, clockAt(2));
    REQUIRE(std::holds_alternative<LoadedState>(loaded));
    CHECK(std::get<LoadedState>(loaded).owed == owed);
    CHECK(std::get<LoadedState>(loaded).snapshot.criteria.size() == 1);
}

}  // namespace
}  // namespace xtap::criteria
