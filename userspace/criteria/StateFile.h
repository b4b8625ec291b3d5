// StateFile: the text of xtapd's state file (state_dir/state.json), which
// carries the criteria, their content destinations, the per-user Criteria-ID
// counters and Seq windows across a restart (issue 6, continuity).
//
//   {"format": "xtap-state", "version": 1,
//    "owed_notices": {"user": "Alert-Info", ...},   (only when some are owed)
//    "saved": {"unix_ms": ..., "boottime_ns": ..., "boot_id": "..."},
//    "store": <CriteriaStore::toJson>}
//
// Deadlines are saved as the time left at `saved`; on load the time since is
// taken off (CLOCK_BOOTTIME within one boot, wall time across a reboot), so a
// criterion whose deadline passed while xtapd was down loads as expired.
// Pure: the caller reads the clocks and does the file I/O.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <string_view>
#include <variant>

#include "criteria/CriteriaStore.h"
#include "criteria/StateJournal.h"

namespace xtap::criteria {

// When a state is saved or loaded, on the two clocks and which boot.
struct StateClock {
    uint64_t unix_ms = 0;
    uint64_t boottime_ns = 0;
    std::string boot_id;  // /proc/sys/kernel/random/boot_id
};

// The 599 notifications (dtcp.md §11) owed to users who have not connected
// since their criteria were lost: user -> Alert-Info. Kept in the file so a
// second restart before the user connects does not forget them.
using OwedNotices = std::map<std::string, std::string, std::less<>>;

// The file's text for `store` (toJson of the store and the Seq windows).
// `journal_gen` names the state journal that continues this file (StateJournal.h).
std::string formatStateFile(const CriteriaStore& store, const Instant& now, const SeqStates& seq,
                            const StateClock& clock, uint64_t journal_gen = 0,
                            const OwedNotices& owed = {});

struct LoadedState {
    StoreSnapshot snapshot;   // times already moved on to `now`
    uint64_t elapsed_ns = 0;  // since the save
    bool same_boot = false;   // the pinned maps can still hold its slots
    StateClock saved;
    JournalApplied journal;  // what the state journal added to the file
    OwedNotices owed;
};

// Parses and checks the file's text. The error names the JSON location and
// what is wrong with it (never a value: values may name targets).
// With `journal` (StateJournal.h), the changes acknowledged since the file was
// written are applied as the criteria are read (crash recovery).
std::variant<LoadedState, std::string> parseStateFile(std::string_view text, const StateClock& now,
                                                      std::string_view journal = {});

}  // namespace xtap::criteria
