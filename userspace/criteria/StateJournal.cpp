#include "criteria/StateJournal.h"

#include <algorithm>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <map>
#include <system_error>
#include <utility>

namespace xtap::criteria {

using nlohmann::json;

namespace {

constexpr std::string_view kJournalName = "xtap-state-journal";

[[noreturn]] void fail(int err, const std::string& what) {
    throw std::system_error(err, std::generic_category(), what);
}

std::string line(const json& record) {
    return record.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace

std::string journalHeader(uint64_t gen) {
    return line({{"journal", kJournalName}, {"gen", gen}});
}

std::string journalPut(const json& criterion, uint64_t at_boottime_ns) {
    return line({{"op", "put"}, {"at_boottime_ns", at_boottime_ns}, {"criterion", criterion}});
}

std::string journalDelete(std::string_view user, uint32_t id) {
    return line({{"op", "del"}, {"user", user}, {"id", id}});
}

std::string journalSeq(std::string_view user, const json& state) {
    return line({{"op", "seq"}, {"user", user}, {"state", state}});
}

std::variant<JournalApplied, std::string> replayJournal(std::string_view journal,
                                                        std::optional<uint64_t> state_gen,
                                                        uint64_t saved_boottime_ns,
                                                        const JournalTarget& target) {
    JournalApplied applied;
    size_t start = 0;
    size_t number = 0;
    while (start < journal.size()) {
        const size_t end = journal.find('\n', start);
        if (end == std::string_view::npos) {
            applied.torn_tail = true;  // written, never synced as a whole: not acknowledged
            break;
        }
        const std::string_view text = journal.substr(start, end - start);
        start = end + 1;
        ++number;
        const bool last = start >= journal.size();
        json r = json::parse(text, nullptr, false);
        if (r.is_discarded() || !r.is_object()) {
            if (last) {
                applied.torn_tail = true;
                break;
            }
            return "journal line " + std::to_string(number) + ": not a JSON record";
        }
        try {
            if (number == 1) {
                if (r.value("journal", "") != kJournalName)
                    return std::string("journal line 1: not an xtap state journal");
                if (!state_gen || r.at("gen").get<uint64_t>() != *state_gen) {
                    applied.stale = true;  // already inside the state file
                    return applied;
                }
                continue;
            }
            const std::string op = r.at("op").get<std::string>();
            if (op == "put") {
                json c = std::move(r.at("criterion"));
                // Time left was taken at the put; the state file's is at its save.
                const uint64_t at = r.at("at_boottime_ns").get<uint64_t>();
                for (const char* field : {"total_remaining_ns", "idle_remaining_ns"}) {
                    if (!c.contains(field)) continue;
                    const uint64_t left = c.at(field).get<uint64_t>();
                    if (at >= saved_boottime_ns) {
                        c[field] = left + (at - saved_boottime_ns);
                    } else {
                        const uint64_t back = saved_boottime_ns - at;
                        c[field] = left > back ? left - back : 0;
                    }
                }
                target.put(std::move(c));
            } else if (op == "del") {
                target.del(r.at("user").get<std::string>(), r.at("id").get<uint32_t>());
            } else if (op == "seq") {
                target.seq(r.at("user").get<std::string>(), r.at("state"));
            } else {
                return "journal line " + std::to_string(number) + ": unknown op";
            }
        } catch (const std::exception& e) {
            return "journal line " + std::to_string(number) + ": " + e.what();
        }
        ++applied.records;
    }
    return applied;
}

std::variant<JournalApplied, std::string> applyJournal(json& state, std::string_view journal) {
    try {
        const json& saved = state.at("saved");
        const std::optional<uint64_t> gen =
            saved.contains("journal_gen") ? std::optional(saved.at("journal_gen").get<uint64_t>())
                                          : std::nullopt;
        json& store = state.at("store");
        json& criteria = store.at("criteria");
        // (user, id) -> index in `criteria`; removals leave nulls, dropped at the end.
        std::map<std::pair<std::string, uint32_t>, size_t> where;
        for (size_t i = 0; i < criteria.size(); ++i)
            where[{criteria[i].at("user").get<std::string>(),
                   criteria[i].at("id").get<uint32_t>()}] = i;
        const JournalTarget target{
            [&](json c) {
                std::pair<std::string, uint32_t> key{c.at("user").get<std::string>(),
                                                     c.at("id").get<uint32_t>()};
                json& last_ids = store.at("last_ids");
                if (!last_ids.contains(key.first) ||
                    last_ids.at(key.first).get<uint32_t>() < key.second)
                    last_ids[key.first] = key.second;
                if (const auto it = where.find(key); it != where.end()) {
                    criteria[it->second] = std::move(c);
                } else {
                    where[key] = criteria.size();
                    criteria.push_back(std::move(c));
                }
            },
            [&](const std::string& user, uint32_t id) {
                if (const auto it = where.find({user, id}); it != where.end()) {
                    criteria[it->second] = nullptr;
                    where.erase(it);
                }
            },
            [&](const std::string& user, const json& s) { store.at("seq_states")[user] = s; }};
        auto result = replayJournal(journal, gen, saved.at("boottime_ns").get<uint64_t>(), target);
        json kept = json::array();
        for (auto& c : criteria)
            if (!c.is_null()) kept.push_back(std::move(c));
        criteria = std::move(kept);
        return result;
    } catch (const json::exception& e) {
        return std::string("journal: ") + e.what();
    }
}

StateJournal::StateJournal(std::string path) : path_(std::move(path)) {
    fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);
    if (fd_ < 0) fail(errno, "open state journal " + path_);
    ::fchmod(fd_, 0600);
    struct stat st {};
    if (::fstat(fd_, &st) == 0) bytes_ = static_cast<uint64_t>(st.st_size);
}

StateJournal::~StateJournal() {
    if (fd_ >= 0) ::close(fd_);
}

void StateJournal::writeAll(std::string_view text) {
    size_t off = 0;
    while (off < text.size()) {
        const ssize_t n = ::write(fd_, text.data() + off, text.size() - off);
        if (n < 0) {
            if (errno == EINTR) continue;
            fail(errno, "write state journal " + path_);
        }
        off += static_cast<size_t>(n);
    }
    bytes_ += text.size();
}

void StateJournal::reset(uint64_t gen) {
    std::lock_guard guard(mutex_);
    if (::ftruncate(fd_, 0) != 0) fail(errno, "truncate state journal " + path_);
    bytes_ = 0;
    writeAll(journalHeader(gen) + "\n");
    if (::fdatasync(fd_) != 0) fail(errno, "sync state journal " + path_);
    synced_ = appended_;
}

void StateJournal::append(std::string_view record) {
    std::string text(record);
    text += '\n';
    std::lock_guard guard(mutex_);
    writeAll(text);
    ++appended_;
}

// Every record appended before the call is durable on return. Records that
// other threads append during the fdatasync are not waited for.
void StateJournal::sync() {
    std::lock_guard flushing(sync_mutex_);
    uint64_t written = 0;
    {
        std::lock_guard guard(mutex_);
        if (synced_ == appended_) return;
        written = appended_;
    }
    if (::fdatasync(fd_) != 0) fail(errno, "sync state journal " + path_);
    std::lock_guard guard(mutex_);
    synced_ = std::max(synced_, written);
}

uint64_t StateJournal::bytes() const {
    std::lock_guard guard(mutex_);
    return bytes_;
}

}  // namespace xtap::criteria
