// AuditReport: the operator's record of every interception, built from the
// audit log's records (xtapctl audit report). Pure: records in, report out.
//
// An intercept starts at the `dtcp` record whose criteria list has the
// criterion with action "added", and ends at the first later record that ends
// it: a `dtcp` record (DELETE) or a `criterion` record (timed out) with any
// action other than added, refreshed or cleartext-destination; a `flush`
// record (the operator's xtapctl flush); or a `restart` record that did not
// restore it (not_restored, or the whole state discarded). xtapd restarts
// (`stop`, `start`, `restart` records) do not otherwise end an intercept
// (criteria are restored); they are listed on each intercept open across them,
// with the copies missed during the gap.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

namespace xtap::audit {

struct Intercept {
    std::string user;  // the DTCP client (SSH user) that owns the criterion
    uint32_t criteria_id = 0;

    std::string started;        // time of the ADD's record
    uint64_t started_line = 0;  // its line in the log (1-based)
    std::string key;            // SSH key fingerprint of the session that added it
    std::string peer;           // "address port" of that session
    bool recorded = false;      // the ADD record carries the criteria and Cdests
    std::vector<std::pair<std::string, std::string>> criteria;  // match fields as written
    std::vector<std::string> cdests;                            // "cd1 203.0.113.50:50000"
    bool is_static = false;

    std::string ended;  // "" while the intercept is open at the end of the log
    uint64_t ended_line = 0;
    std::string end_reason;  // deleted, timed-out, ...
    std::string ended_by;    // for a DELETE: "user key peer"
    uint64_t refreshes = 0;
    std::vector<std::string> interruptions;  // xtapd down while the intercept was open

    bool operator==(const Intercept&) const = default;
};

struct Report {
    uint64_t records = 0;
    std::vector<Intercept> intercepts;  // in order of their start
    std::vector<std::string> notes;     // records the report could not place
};

// `records[i]` is line i + 1 of the log.
Report buildReport(const std::vector<nlohmann::json>& records);

std::string formatReport(const Report& report);  // text, one block per intercept
nlohmann::json reportJson(const Report& report);

}  // namespace xtap::audit
