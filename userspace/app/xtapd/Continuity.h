// Continuity: xtapd's state file on disk and the report of a restart's gap.
// The text and its checks are criteria::StateFile (pure, unit-tested); this
// is the file I/O (atomic replace, mode 0600) and the wording of the records.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "criteria/CriteriaStore.h"
#include "criteria/StateFile.h"

namespace xtap::app {

// The clocks and boot the state file is stamped with.
criteria::StateClock stateClockNow();

// The file's text, or nothing when there is no file. Throws std::system_error
// naming the file for any other failure (unreadable is not "no criteria").
std::optional<std::string> readStateFile(const std::string& path);

// Replaces `path` atomically: a temporary file in the same directory
// (mode 0600), written, fsync'ed, renamed over `path`, then the directory
// fsync'ed. Throws std::system_error naming the step; `path` is then unchanged.
void writeStateFile(const std::string& path, std::string_view text);

// Moves an unusable state file aside (kept as evidence) and returns its new name.
std::string setStateFileAside(const std::string& path, uint64_t unix_ms);

// What a restore found, for the audit log (Criteria-IDs and counts, never targets).
nlohmann::json restartRecord(const criteria::LoadedState& state,
                             const criteria::RestoreReport& report);
// The same for the ordinary log: counts only.
std::string restartLogLine(const criteria::LoadedState& state,
                           const criteria::RestoreReport& report);

}  // namespace xtap::app
