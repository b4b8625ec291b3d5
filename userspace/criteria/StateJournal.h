// StateJournal: the write-ahead journal beside the state file (issue 6). Each
// change a DTCP reply acknowledges (a criterion added, refreshed or deleted, a
// Seq window moved) is one JSON line here, made durable before the reply
// leaves; the whole state file is rewritten only now and then (compaction), so
// an ADD costs one short line, not a save of every criterion.
//
//   {"journal": "xtap-state-journal", "gen": G}        first line
//   {"op": "put", "at_boottime_ns": T, "criterion": {...}}  as in the state file
//   {"op": "del", "user": "md1", "id": 7}
//   {"op": "seq", "user": "md1", "state": {...}}
//
// The state file names the generation of the journal that continues it
// (`saved.journal_gen`); a journal of another generation is already inside the
// state file (a crash between writing the state and starting the new journal)
// and is not applied. A torn last line was never acknowledged and is ignored.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <mutex>
#include <string>
#include <string_view>
#include <variant>

#include <nlohmann/json.hpp>

namespace xtap::criteria {

// --- pure ------------------------------------------------------------------------

std::string journalHeader(uint64_t gen);
std::string journalPut(const nlohmann::json& criterion, uint64_t at_boottime_ns);
std::string journalDelete(std::string_view user, uint32_t id);
std::string journalSeq(std::string_view user, const nlohmann::json& state);

struct JournalApplied {
    size_t records = 0;      // changes applied
    bool stale = false;      // another generation: nothing applied
    bool torn_tail = false;  // an incomplete last line, ignored
};

// Where a replay puts the journal's changes. A put's time left is already
// moved to the state file's save time.
struct JournalTarget {
    std::function<void(nlohmann::json criterion)> put;
    std::function<void(const std::string& user, uint32_t id)> del;
    std::function<void(const std::string& user, const nlohmann::json& state)> seq;
};

// Replays `journal` when its generation is `state_gen` (else `stale`), for a
// state file saved at `saved_boottime_ns`. parseStateFile uses it on the
// criteria as it streams them, never holding the store as one JSON document.
std::variant<JournalApplied, std::string> replayJournal(std::string_view journal,
                                                        std::optional<uint64_t> state_gen,
                                                        uint64_t saved_boottime_ns,
                                                        const JournalTarget& target);

// Applies `journal` to a parsed state file document (formatStateFile's JSON):
// criteria replaced or removed by (user, id), last_ids raised, Seq windows
// replaced; a put's time left is moved to the document's save time. An error
// (a damaged line that is not the last) names the line, never its content.
std::variant<JournalApplied, std::string> applyJournal(nlohmann::json& state,
                                                       std::string_view journal);

// --- the file ----------------------------------------------------------------------

// Appends lines with write(2) and makes them durable with sync(); thread-safe
// (session threads sync while the daemon appends). Throws std::system_error.
class StateJournal {
  public:
    explicit StateJournal(std::string path);  // opens (creates) it, mode 0600
    ~StateJournal();
    StateJournal(const StateJournal&) = delete;
    StateJournal& operator=(const StateJournal&) = delete;

    // Empties the journal and starts generation `gen`, durably.
    void reset(uint64_t gen);
    void append(std::string_view line);  // one record, without its newline
    void sync();                         // fdatasync when something is pending
    uint64_t bytes() const;
    const std::string& path() const { return path_; }

  private:
    void writeAll(std::string_view text);
    std::string path_;
    int fd_ = -1;
    mutable std::mutex mutex_;
    // One fdatasync at a time. Not mutex_: appends go on while the disk flushes.
    std::mutex sync_mutex_;
    uint64_t bytes_ = 0;
    uint64_t appended_ = 0;  // records appended, ever
    uint64_t synced_ = 0;    // of those, the ones known durable
};

}  // namespace xtap::criteria
