#include "criteria/StateFile.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include <nlohmann/json.hpp>

namespace xtap::criteria {

using nlohmann::json;

namespace {

constexpr std::string_view kFormat = "xtap-state";
constexpr int kVersion = 1;

uint64_t minus(uint64_t a, uint64_t b) {
    return a > b ? a - b : 0;
}

}  // namespace

std::string formatStateFile(const CriteriaStore& store, const Instant& now, const SeqStates& seq,
                            const StateClock& clock, uint64_t journal_gen,
                            const OwedNotices& owed) {
    const json saved{{"unix_ms", clock.unix_ms},
                     {"boottime_ns", clock.boottime_ns},
                     {"boot_id", clock.boot_id},
                     {"journal_gen", journal_gen}};
    // The dump of {"format", "owed_notices", "saved", "store", "version"}
    // (nlohmann sorts the keys), written piece by piece: the store as one JSON
    // value would cost ~13 KB a criterion. Compact: it is rewritten often.
    std::string text = "{\"format\":" + json(kFormat).dump();
    if (!owed.empty()) text += ",\"owed_notices\":" + json(owed).dump();
    text += ",\"saved\":" + saved.dump() + ",\"store\":";
    store.dumpJson(text, now, seq);
    text += ",\"version\":" + json(kVersion).dump() + "}\n";
    return text;
}

std::variant<LoadedState, std::string> parseStateFile(std::string_view text, const StateClock& now,
                                                      std::string_view journal) {
    // The criteria are read one at a time as the parser completes each and are
    // not kept as JSON values (~13 KB a criterion); the rest of the document is.
    // A criterion's error is reported where parseJson would have: after the
    // checks of everything else.
    std::vector<SavedCriterion> streamed;
    std::optional<std::string> criterion_error;
    std::string top_key, store_key;
    bool in_criteria = false;
    const json::parser_callback_t take = [&](int depth, json::parse_event_t event, json& parsed) {
        using E = json::parse_event_t;
        if (event == E::key && depth == 1) top_key = parsed.get<std::string>();
        if (event == E::key && depth == 2) store_key = parsed.get<std::string>();
        if (depth == 2 && top_key == "store" && store_key == "criteria") {
            if (event == E::array_start) in_criteria = true;
            if (event == E::array_end) in_criteria = false;
        }
        const bool element_done =
            event == E::value || event == E::object_end || event == E::array_end;
        if (!in_criteria || depth != 3 || !element_done) return true;
        if (criterion_error) return false;
        try {
            streamed.push_back(CriteriaStore::parseCriterionJson(parsed));
        } catch (const std::exception& e) {
            criterion_error =
                "/store/criteria/" + std::to_string(streamed.size()) + ": " + e.what();
        }
        return false;  // not kept in the document
    };
    json doc;
    try {
        doc = json::parse(text, take);
    } catch (const json::parse_error& e) {
        // nlohmann names the byte offset and the token class, not the content.
        return std::string("not valid JSON (") + e.what() + ")";
    }
    LoadedState loaded;
    std::string where = "/";
    try {
        if (!doc.is_object()) return std::string("/: not a JSON object");
        where = "/format";
        if (doc.at("format").get<std::string>() != kFormat)
            return where + ": not an xtap state file";
        where = "/version";
        if (!doc.at("version").is_number_integer()) return where + ": not an integer";
        if (doc.at("version").get<int>() != kVersion)
            return where + ": version " + std::to_string(doc.at("version").get<int>()) +
                   " is not supported (this xtapd reads " + std::to_string(kVersion) + ")";
        where = "/saved";
        const json& saved = doc.at("saved");
        if (!saved.at("unix_ms").is_number_unsigned() ||
            !saved.at("boottime_ns").is_number_unsigned())
            return where + ": times must be unsigned integers";
        loaded.saved.unix_ms = saved.at("unix_ms").get<uint64_t>();
        loaded.saved.boottime_ns = saved.at("boottime_ns").get<uint64_t>();
        loaded.saved.boot_id = saved.at("boot_id").get<std::string>();
        if (doc.contains("owed_notices")) {
            where = "/owed_notices";
            const json& owed = doc.at("owed_notices");
            if (!owed.is_object()) return where + ": not an object";
            for (const auto& [user, alert] : owed.items()) {
                if (!alert.is_string()) return where + ": values must be strings";
                loaded.owed.emplace(user, alert.get<std::string>());
            }
        }
    } catch (const std::exception& e) {
        return where + ": " + e.what();
    }
    if (!doc.contains("store")) return std::string("/store: missing");
    if (!journal.empty() && !criterion_error) {
        const json& saved = doc.at("saved");
        std::optional<uint64_t> gen;
        if (saved.contains("journal_gen") && saved.at("journal_gen").is_number_unsigned())
            gen = saved.at("journal_gen").get<uint64_t>();
        json& store = doc.at("store");
        std::map<CriterionKey, size_t> at;  // live entries of `streamed`
        for (size_t i = 0; i < streamed.size(); ++i) at[streamed[i].key] = i;
        std::vector<bool> removed(streamed.size(), false);
        const JournalTarget target{
            [&](json c) {
                SavedCriterion saved_criterion = CriteriaStore::parseCriterionJson(c);
                const CriterionKey key = saved_criterion.key;
                json& last_ids = store.at("last_ids");
                if (!last_ids.contains(key.user) || last_ids.at(key.user).get<uint32_t>() < key.id)
                    last_ids[key.user] = key.id;
                if (const auto it = at.find(key); it != at.end()) {
                    streamed[it->second] = std::move(saved_criterion);
                } else {
                    at[key] = streamed.size();
                    streamed.push_back(std::move(saved_criterion));
                    removed.push_back(false);
                }
            },
            [&](const std::string& user, uint32_t id) {
                if (const auto it = at.find(CriterionKey{user, id}); it != at.end()) {
                    removed[it->second] = true;
                    at.erase(it);
                }
            },
            [&](const std::string& user, const json& state) {
                store.at("seq_states")[user] = state;
            }};
        const auto replayed = replayJournal(journal, gen, loaded.saved.boottime_ns, target);
        if (const auto* error = std::get_if<std::string>(&replayed))
            return "state journal: " + *error;
        loaded.journal = std::get<JournalApplied>(replayed);
        std::vector<SavedCriterion> kept;
        kept.reserve(streamed.size());
        for (size_t i = 0; i < streamed.size(); ++i)
            if (!removed[i]) kept.push_back(std::move(streamed[i]));
        streamed = std::move(kept);
    }
    auto parsed = CriteriaStore::parseJson(doc.at("store"));
    if (auto* error = std::get_if<std::string>(&parsed)) return "/store" + *error;
    if (criterion_error) return *criterion_error;
    loaded.snapshot = std::move(std::get<StoreSnapshot>(parsed));
    loaded.snapshot.criteria = std::move(streamed);

    // Consistency: one entry per (user, ID), none above the user's ID counter
    // (else an ID could be handed out twice).
    std::set<CriterionKey> keys;
    std::set<std::pair<uint32_t, uint32_t>> slots;
    for (size_t i = 0; i < loaded.snapshot.criteria.size(); ++i) {
        const SavedCriterion& c = loaded.snapshot.criteria[i];
        const std::string at = "/store/criteria/" + std::to_string(i);
        if (!keys.insert(c.key).second)
            return at + ": a second criterion with the same user and ID";
        const auto last = loaded.snapshot.last_ids.find(c.key.user);
        if (last == loaded.snapshot.last_ids.end() || last->second < c.key.id)
            return at + ": ID above the user's last allocated ID";
        if (c.slot && !slots.insert({c.slot->slot, c.slot->gen}).second)
            return at + ": a second criterion in the same slot";
    }

    loaded.same_boot = !now.boot_id.empty() && now.boot_id == loaded.saved.boot_id;
    loaded.elapsed_ns = loaded.same_boot ? minus(now.boottime_ns, loaded.saved.boottime_ns)
                                         : minus(now.unix_ms, loaded.saved.unix_ms) * 1'000'000;
    for (SavedCriterion& c : loaded.snapshot.criteria) {
        if (c.total_remaining_ns)
            c.total_remaining_ns = minus(*c.total_remaining_ns, loaded.elapsed_ns);
        if (c.idle_remaining_ns)
            c.idle_remaining_ns = minus(*c.idle_remaining_ns, loaded.elapsed_ns);
        // Maps pinned on bpffs do not survive a reboot: nothing to take over.
        if (!loaded.same_boot) c.slot.reset();
    }
    return loaded;
}

}  // namespace xtap::criteria
