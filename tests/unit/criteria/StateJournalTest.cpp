// The state journal's records and their application to a state document.
#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "criteria/StateJournal.h"
#include "tests/support/TempDir.h"

using namespace xtap::criteria;
using nlohmann::json;

namespace {

json criterion(const std::string& user, uint32_t id, int refreshes = 0) {
    return {{"user", user},
            {"id", id},
            {"refresh_count", refreshes},
            {"total_remaining_ns", 10'000},
            {"idle_remaining_ns", 5'000}};
}

// A state document as formatStateFile writes it, saved at boottime 1000, gen 7.
json stateDocument() {
    return {
        {"format", "xtap-state"},
        {"version", 1},
        {"saved", {{"unix_ms", 1}, {"boottime_ns", 1000}, {"boot_id", "b"}, {"journal_gen", 7}}},
        {"store",
         {{"format", "xtap-criteria"},
          {"version", 1},
          {"last_ids", {{"md1", 2}}},
          {"seq_states", json::object()},
          {"criteria", json::array({criterion("md1", 1), criterion("md1", 2)})}}}};
}

std::string journalOf(std::initializer_list<std::string> lines) {
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    return text;
}

const json* find(const json& doc, const std::string& user, uint32_t id) {
    for (const auto& c : doc["store"]["criteria"])
        if (c["user"] == user && c["id"] == id) return &c;
    return nullptr;
}

}  // namespace

TEST_CASE("state journal: puts, deletes and Seq windows apply in order") {
    json doc = stateDocument();
    const std::string journal =
        journalOf({journalHeader(7), journalPut(criterion("md1", 3), 1500),
                   journalPut(criterion("md1", 1, 4), 1200), journalDelete("md1", 2),
                   journalPut(criterion("md2", 9), 2000), journalDelete("md2", 9),
                   journalSeq("md1", {{"next", 42}})});
    const auto r = applyJournal(doc, journal);
    REQUIRE(std::holds_alternative<JournalApplied>(r));
    CHECK(std::get<JournalApplied>(r).records == 6);
    CHECK_FALSE(std::get<JournalApplied>(r).stale);
    CHECK(doc["store"]["criteria"].size() == 2);
    CHECK(find(doc, "md1", 2) == nullptr);
    CHECK(find(doc, "md2", 9) == nullptr);
    REQUIRE(find(doc, "md1", 1));
    CHECK((*find(doc, "md1", 1))["refresh_count"] == 4);
    REQUIRE(find(doc, "md1", 3));
    // Put at 1500 with 10,000 left: at the document's save (1000), 10,500 left.
    CHECK((*find(doc, "md1", 3))["total_remaining_ns"] == 10'500);
    CHECK((*find(doc, "md1", 3))["idle_remaining_ns"] == 5'500);
    // An ID added and deleted is still used up.
    CHECK(doc["store"]["last_ids"]["md1"] == 3);
    CHECK(doc["store"]["last_ids"]["md2"] == 9);
    CHECK(doc["store"]["seq_states"]["md1"]["next"] == 42);
}

TEST_CASE("state journal: another generation is already in the state file") {
    json doc = stateDocument();
    const json before = doc;
    const auto r = applyJournal(doc, journalOf({journalHeader(6), journalDelete("md1", 1)}));
    REQUIRE(std::holds_alternative<JournalApplied>(r));
    CHECK(std::get<JournalApplied>(r).stale);
    CHECK(doc == before);
}

TEST_CASE("state journal: a torn last line is ignored, a damaged middle line is an error") {
    json doc = stateDocument();
    const std::string whole = journalOf({journalHeader(7), journalDelete("md1", 1)});
    SUBCASE("no newline at the end") {
        const auto r = applyJournal(doc, whole + journalDelete("md1", 2).substr(0, 10));
        REQUIRE(std::holds_alternative<JournalApplied>(r));
        CHECK(std::get<JournalApplied>(r).torn_tail);
        CHECK(std::get<JournalApplied>(r).records == 1);
        CHECK(find(doc, "md1", 2) != nullptr);
    }
    SUBCASE("a damaged line in the middle") {
        const auto r = applyJournal(doc, whole + "{not json\n" + journalDelete("md1", 2) + "\n");
        REQUIRE(std::holds_alternative<std::string>(r));
        CHECK(std::get<std::string>(r).find("line 3") != std::string::npos);
    }
    SUBCASE("an empty journal changes nothing") {
        const json before = doc;
        CHECK(std::get<JournalApplied>(applyJournal(doc, "")).records == 0);
        CHECK(doc == before);
    }
}

TEST_CASE("state journal file: reset starts a generation, append and sync add lines") {
    const xtap::test::TempDir dir;
    const std::string path = (dir.path / "state.journal").string();
    {
        StateJournal j(path);
        j.append(journalDelete("md1", 1));
        j.reset(11);
        j.append(journalDelete("md1", 2));
        j.sync();
        CHECK(j.bytes() == std::filesystem::file_size(path));
    }
    std::ifstream in(path);
    std::stringstream text;
    text << in.rdbuf();
    CHECK(text.str() == journalHeader(11) + "\n" + journalDelete("md1", 2) + "\n");
    CHECK((std::filesystem::status(path).permissions() & std::filesystem::perms::others_read) ==
          std::filesystem::perms::none);
}
