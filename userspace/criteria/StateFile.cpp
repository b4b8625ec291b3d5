#include "criteria/StateFile.h"

#include <algorithm>
#include <set>

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
                            const StateClock& clock) {
    const json doc{{"format", kFormat},
                   {"version", kVersion},
                   {"saved",
                    {{"unix_ms", clock.unix_ms},
                     {"boottime_ns", clock.boottime_ns},
                     {"boot_id", clock.boot_id}}},
                   {"store", store.toJson(now, seq)}};
    return doc.dump() + "\n";  // compact: it is rewritten often
}

std::variant<LoadedState, std::string> parseStateFile(std::string_view text,
                                                      const StateClock& now) {
    json doc;
    try {
        doc = json::parse(text);
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
    } catch (const std::exception& e) {
        return where + ": " + e.what();
    }
    if (!doc.contains("store")) return std::string("/store: missing");
    auto parsed = CriteriaStore::parseJson(doc.at("store"));
    if (auto* error = std::get_if<std::string>(&parsed)) return "/store" + *error;
    loaded.snapshot = std::move(std::get<StoreSnapshot>(parsed));

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
