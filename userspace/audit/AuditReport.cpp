#include "audit/AuditReport.h"

#include <map>
#include <optional>
#include <sstream>
#include <tuple>

namespace xtap::audit {

using json = nlohmann::json;

namespace {

std::string stringAt(const json& j, const char* name) {
    const auto it = j.find(name);
    if (it == j.end()) return {};
    if (it->is_string()) return it->get<std::string>();
    if (it->is_null()) return {};
    return it->dump();
}

std::optional<uint32_t> idOf(const json& j) {
    const auto it = j.find("criteria_id");
    if (it == j.end() || !it->is_number_integer()) return std::nullopt;
    const auto id = it->get<int64_t>();
    if (id < 0 || id > int64_t{UINT32_MAX}) return std::nullopt;
    return static_cast<uint32_t>(id);
}

bool keepsOpen(const std::string& action) {
    return action == "added" || action == "refreshed" || action == "cleartext-destination";
}

std::string cdestText(const json& c) {
    if (c.is_string()) return c.get<std::string>();
    std::string text = stringAt(c, "id");
    const std::string address = stringAt(c, "address");
    if (!address.empty()) {
        text += " " + (address.find(':') != std::string::npos ? "[" + address + "]" : address);
        if (c.contains("port")) text += ":" + stringAt(c, "port");
    }
    if (c.value("cleartext", false)) text += " (cleartext)";
    return text;
}

void readAdded(const json& entry, Intercept& intercept) {
    if (const auto m = entry.find("match"); m != entry.end() && m->is_array()) {
        intercept.recorded = true;
        for (const json& field : *m) {
            if (field.is_array() && field.size() == 2)
                intercept.criteria.emplace_back(
                    field[0].is_string() ? field[0].get<std::string>() : field[0].dump(),
                    field[1].is_string() ? field[1].get<std::string>() : field[1].dump());
        }
    }
    if (const auto c = entry.find("cdest"); c != entry.end() && c->is_array()) {
        for (const json& cdest : *c) intercept.cdests.push_back(cdestText(cdest));
    }
    intercept.is_static = entry.value("static", false);
}

std::string who(const json& record) {
    std::string text = stringAt(record, "user");
    for (const char* name : {"key", "peer", "port"}) {
        const std::string part = stringAt(record, name);
        if (!part.empty()) text += " " + part;
    }
    return text;
}

}  // namespace

Report buildReport(const std::vector<json>& records) {
    Report report;
    report.records = records.size();
    std::map<std::tuple<std::string, uint32_t>, size_t> open;  // (user, id) -> intercept
    std::string stopped;  // time of a stop record not yet followed by a start
    bool started_once = false;

    auto note = [&](uint64_t line, const std::string& text) {
        report.notes.push_back("record " + std::to_string(line) + ": " + text);
    };
    auto end = [&](const std::string& user, uint32_t id, const std::string& action,
                   const json& record, uint64_t line, bool by_client) {
        const auto it = open.find({user, id});
        if (it == open.end()) {
            note(line, user + "/" + std::to_string(id) + " " + action + " but it was not open");
            return;
        }
        Intercept& intercept = report.intercepts[it->second];
        intercept.ended = stringAt(record, "time");
        intercept.ended_line = line;
        intercept.end_reason = action;
        if (by_client) intercept.ended_by = who(record);
        open.erase(it);
    };

    for (size_t i = 0; i < records.size(); ++i) {
        const json& record = records[i];
        const uint64_t line = i + 1;
        if (!record.is_object()) continue;
        const std::string event = stringAt(record, "event");
        const std::string time = stringAt(record, "time");

        if (event == "stop") {
            stopped = time;
        } else if (event == "start") {
            if (started_once) {
                const std::string gap =
                    stopped.empty() ? "restarted at " + time + " without a stop record (crash)"
                                    : "xtapd down from " + stopped + " to " + time;
                for (const auto& [key, index] : open)
                    report.intercepts[index].interruptions.push_back(gap);
            }
            started_once = true;
            stopped.clear();
        } else if (event == "dtcp") {
            const auto criteria = record.find("criteria");
            if (criteria == record.end() || !criteria->is_array()) continue;
            const std::string user = stringAt(record, "user");
            for (const json& entry : *criteria) {
                if (!entry.is_object()) continue;
                const auto id = idOf(entry);
                const std::string action = stringAt(entry, "action");
                if (!id) {
                    note(line, "a criterion without a Criteria-ID");
                    continue;
                }
                if (action == "added") {
                    if (open.count({user, *id})) {
                        note(line, user + "/" + std::to_string(*id) + " added again while open");
                        continue;
                    }
                    Intercept intercept;
                    intercept.user = user;
                    intercept.criteria_id = *id;
                    intercept.started = time;
                    intercept.started_line = line;
                    intercept.key = stringAt(record, "key");
                    intercept.peer = stringAt(record, "peer");
                    if (record.contains("port")) intercept.peer += " " + stringAt(record, "port");
                    readAdded(entry, intercept);
                    open[{user, *id}] = report.intercepts.size();
                    report.intercepts.push_back(std::move(intercept));
                } else if (action == "refreshed") {
                    if (const auto it = open.find({user, *id}); it != open.end())
                        ++report.intercepts[it->second].refreshes;
                } else if (!keepsOpen(action)) {
                    end(user, *id, action, record, line, true);
                }
            }
        } else if (event == "flush") {  // the operator's xtapctl flush
            const auto criteria = record.find("criteria");
            if (criteria == record.end() || !criteria->is_array()) continue;
            for (const json& entry : *criteria) {
                if (const auto id = entry.is_object() ? idOf(entry) : std::nullopt)
                    end(stringAt(entry, "user"), *id, "flushed by " + stringAt(record, "by"),
                        record, line, false);
            }
        } else if (event == "restart") {  // xtapd restored (or could not restore) its criteria
            if (stringAt(record, "state") == "discarded") {
                std::vector<std::tuple<std::string, uint32_t>> all;
                for (const auto& [key, index] : open) all.push_back(key);
                for (const auto& [user, id] : all)
                    end(user, id, "state discarded at restart: " + stringAt(record, "reason"),
                        record, line, false);
            }
            if (const auto dropped = record.find("not_restored");
                dropped != record.end() && dropped->is_array()) {
                for (const json& entry : *dropped) {
                    if (const auto id = entry.is_object() ? idOf(entry) : std::nullopt)
                        end(stringAt(entry, "user"), *id,
                            "not restored at restart: " + stringAt(entry, "reason"), record, line,
                            false);
                }
            }
            if (const auto gap = record.find("gap"); gap != record.end() && gap->is_array()) {
                for (const json& entry : *gap) {
                    const auto id = entry.is_object() ? idOf(entry) : std::nullopt;
                    if (!id) continue;
                    if (const auto it = open.find({stringAt(entry, "user"), *id}); it != open.end())
                        report.intercepts[it->second].interruptions.push_back(
                            "restart at " + time + ": " + stringAt(entry, "packets") +
                            " packets (" + stringAt(entry, "bytes") +
                            " bytes) matched while xtapd was down, not copied");
                }
            }
        } else if (event == "criterion") {
            const auto id = idOf(record);
            const std::string action = stringAt(record, "action");
            if (!id) {
                note(line, "a criterion record without a Criteria-ID");
            } else if (!keepsOpen(action)) {
                end(stringAt(record, "user"), *id, action, record, line, false);
            }
        }
    }
    return report;
}

std::string formatReport(const Report& report) {
    std::ostringstream out;
    size_t open = 0;
    for (const Intercept& i : report.intercepts) open += i.ended.empty() ? 1 : 0;
    out << report.intercepts.size() << " intercept(s), " << open
        << " open at the end of the log, from " << report.records << " record(s)\n";
    for (const Intercept& i : report.intercepts) {
        out << "\n" << i.user << "/" << i.criteria_id << "\n";
        out << "  start:    " << i.started << " (record " << i.started_line << ")\n";
        if (i.ended.empty()) {
            out << "  end:      open at the end of the log\n";
        } else {
            out << "  end:      " << i.ended << " (record " << i.ended_line << ", " << i.end_reason;
            if (!i.ended_by.empty()) out << " by " << i.ended_by;
            out << ")\n";
        }
        if (!i.recorded) {
            out << "  criteria: (not in the log: written by an xtapd that did not record them)\n";
        } else {
            out << "  criteria:";
            if (i.criteria.empty()) out << " (none)";
            for (size_t n = 0; n < i.criteria.size(); ++n)
                out << (n ? "\n            " : " ") << i.criteria[n].first << ": "
                    << i.criteria[n].second;
            out << "\n";
        }
        out << "  cdest:   ";
        if (i.cdests.empty()) out << " (not recorded)";
        for (const std::string& c : i.cdests) out << " " << c;
        out << "\n";
        out << "  user:     " << i.user;
        if (!i.key.empty()) out << ", key " << i.key;
        if (!i.peer.empty()) out << ", from " << i.peer;
        out << "\n";
        if (i.is_static) out << "  static:   yes\n";
        if (i.refreshes) out << "  refreshed " << i.refreshes << " time(s)\n";
        for (const std::string& gap : i.interruptions) out << "  gap:      " << gap << "\n";
    }
    if (!report.notes.empty()) {
        out << "\nnotes:\n";
        for (const std::string& n : report.notes) out << "  " << n << "\n";
    }
    return out.str();
}

json reportJson(const Report& report) {
    json intercepts = json::array();
    for (const Intercept& i : report.intercepts) {
        json criteria = json::array();
        for (const auto& [name, value] : i.criteria) criteria.push_back(json::array({name, value}));
        intercepts.push_back({{"user", i.user},
                              {"criteria_id", i.criteria_id},
                              {"start", i.started},
                              {"start_record", i.started_line},
                              {"end", i.ended.empty() ? json(nullptr) : json(i.ended)},
                              {"end_record", i.ended_line ? json(i.ended_line) : json(nullptr)},
                              {"end_reason", i.end_reason},
                              {"ended_by", i.ended_by},
                              {"key", i.key},
                              {"peer", i.peer},
                              {"criteria", i.recorded ? criteria : json(nullptr)},
                              {"cdest", i.cdests},
                              {"static", i.is_static},
                              {"refreshes", i.refreshes},
                              {"gaps", i.interruptions}});
    }
    return {{"records", report.records}, {"intercepts", intercepts}, {"notes", report.notes}};
}

}  // namespace xtap::audit
