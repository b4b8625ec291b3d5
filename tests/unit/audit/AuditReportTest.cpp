// buildReport: intercepts from audit records as xtapd writes them.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "audit/AuditReport.h"

using namespace xtap::audit;
using json = nlohmann::json;

namespace {

json added(uint32_t id, const std::string& time) {
    return {
        {"event", "dtcp"},
        {"time", time},
        {"user", "md1"},
        {"key", "SHA256:abc"},
        {"peer", "198.18.0.1"},
        {"port", 40000},
        {"status", 200},
        {"criteria",
         {{{"criteria_id", id},
           {"action", "added"},
           {"match", json::array({json::array({"Source-Address", "192.0.2.10"}),
                                  json::array({"Dest-Port", "80,443"})})},
           {"cdest",
            {{{"id", "cd1"}, {"address", "2001:db8::7"}, {"port", 50000}, {"cleartext", false}}}},
           {"static", false}}}}};
}

json clientAction(uint32_t id, const std::string& action, const std::string& time,
                  const std::string& user = "md1") {
    return {{"event", "dtcp"},      {"time", time},
            {"user", user},         {"key", "SHA256:def"},
            {"peer", "198.18.0.2"}, {"port", 40001},
            {"status", 200},        {"criteria", {{{"criteria_id", id}, {"action", action}}}}};
}

}  // namespace

TEST_CASE(
    "audit report: an intercept runs from its ADD to its DELETE, with criteria, Cdest and user") {
    const std::vector<json> records = {
        {{"event", "start"}, {"time", "T0"}},
        added(7, "T1"),
        clientAction(7, "refreshed", "T2"),
        clientAction(7, "deleted", "T3"),
    };
    const Report r = buildReport(records);
    CHECK(r.records == 4);
    REQUIRE(r.intercepts.size() == 1);
    const Intercept& i = r.intercepts[0];
    CHECK(i.user == "md1");
    CHECK(i.criteria_id == 7);
    CHECK(i.started == "T1");
    CHECK(i.started_line == 2);
    CHECK(i.key == "SHA256:abc");
    CHECK(i.peer == "198.18.0.1 40000");
    CHECK(i.recorded);
    CHECK(i.criteria == std::vector<std::pair<std::string, std::string>>{
                            {"Source-Address", "192.0.2.10"}, {"Dest-Port", "80,443"}});
    CHECK(i.cdests == std::vector<std::string>{"cd1 [2001:db8::7]:50000"});
    CHECK(i.refreshes == 1);
    CHECK(i.ended == "T3");
    CHECK(i.ended_line == 4);
    CHECK(i.end_reason == "deleted");
    CHECK(i.ended_by == "md1 SHA256:def 198.18.0.2 40001");
    CHECK(r.notes.empty());
    const std::string text = formatReport(r);
    CHECK(text.find("md1/7") != std::string::npos);
    CHECK(text.find("Source-Address: 192.0.2.10") != std::string::npos);
    CHECK(text.find("deleted by md1") != std::string::npos);
    CHECK(reportJson(r)["intercepts"][0]["end"] == "T3");
}

TEST_CASE("audit report: timeouts end intercepts, open ones stay open, restarts are gaps") {
    const std::vector<json> records = {
        {{"event", "start"}, {"time", "T0"}},
        added(1, "T1"),
        added(2, "T2"),
        {{"event", "stop"}, {"time", "T3"}},
        {{"event", "start"}, {"time", "T4"}},
        {{"event", "criterion"},
         {"time", "T5"},
         {"user", "md1"},
         {"criteria_id", 1},
         {"action", "timed-out"}},
        {{"event", "start"}, {"time", "T6"}},  // killed: no stop record
    };
    const Report r = buildReport(records);
    REQUIRE(r.intercepts.size() == 2);
    CHECK(r.intercepts[0].ended == "T5");
    CHECK(r.intercepts[0].end_reason == "timed-out");
    CHECK(r.intercepts[0].ended_by.empty());
    CHECK(r.intercepts[0].interruptions == std::vector<std::string>{"xtapd down from T3 to T4"});
    CHECK(r.intercepts[1].ended.empty());
    CHECK(r.intercepts[1].interruptions.size() == 2);
    CHECK(r.intercepts[1].interruptions[1].find("without a stop record") != std::string::npos);
    CHECK(formatReport(r).find("open at the end of the log") != std::string::npos);
}

TEST_CASE("audit report: same IDs of two users are two intercepts; strays become notes") {
    json other = added(1, "T2");
    other["user"] = "md2";
    const std::vector<json> records = {
        added(1, "T1"),
        other,
        clientAction(1, "deleted", "T3", "md2"),
        clientAction(9, "deleted", "T4"),  // never added in this log
        json::value_t::discarded,          // a line that was not JSON
        {{"event", "dtcp"},
         {"time", "T5"},
         {"user", "md1"},
         {"status", 400},
         {"criteria", json::array()}},
    };
    const Report r = buildReport(records);
    REQUIRE(r.intercepts.size() == 2);
    CHECK(r.intercepts[0].user == "md1");
    CHECK(r.intercepts[0].ended.empty());
    CHECK(r.intercepts[1].user == "md2");
    CHECK(r.intercepts[1].ended == "T3");
    REQUIRE(r.notes.size() == 1);
    CHECK(r.notes[0].find("record 4: md1/9 deleted but it was not open") == 0);
}

TEST_CASE("audit report: an ADD recorded without criteria (older xtapd) says so") {
    const json old = {{"event", "dtcp"},
                      {"time", "T1"},
                      {"user", "md1"},
                      {"criteria", {{{"criteria_id", 3}, {"action", "added"}}}}};
    const Report r = buildReport({old});
    REQUIRE(r.intercepts.size() == 1);
    CHECK_FALSE(r.intercepts[0].recorded);
    CHECK(formatReport(r).find("not in the log") != std::string::npos);
}

TEST_CASE("audit report: flush and restart records as xtapd writes them") {
    const std::vector<json> records = {
        added(1, "T1"),
        added(2, "T2"),
        added(3, "T3"),
        {{"event", "restart"},
         {"time", "T4"},
         {"not_restored",
          {{{"user", "md1"}, {"criteria_id", 2}, {"reason", "Cdest cd1 no longer configured"}}}},
         {"gap", {{{"user", "md1"}, {"criteria_id", 1}, {"packets", 5}, {"bytes", 420}}}}},
        {{"event", "flush"},
         {"time", "T5"},
         {"by", "uid 0"},
         {"criteria", {{{"user", "md1"}, {"criteria_id", 1}}}}},
        {{"event", "restart"}, {"time", "T6"}, {"state", "discarded"}, {"reason", "bad checksum"}},
    };
    const Report r = buildReport(records);
    REQUIRE(r.intercepts.size() == 3);
    CHECK(r.intercepts[0].interruptions ==
          std::vector<std::string>{
              "restart at T4: 5 packets (420 bytes) matched while xtapd was down, not copied"});
    CHECK(r.intercepts[0].ended == "T5");
    CHECK(r.intercepts[0].end_reason == "flushed by uid 0");
    CHECK(r.intercepts[1].ended == "T4");
    CHECK(r.intercepts[1].end_reason == "not restored at restart: Cdest cd1 no longer configured");
    CHECK(r.intercepts[2].ended == "T6");
    CHECK(r.intercepts[2].end_reason == "state discarded at restart: bad checksum");
    CHECK(r.notes.empty());
}
