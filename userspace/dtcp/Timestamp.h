// Timestamp: the DTCP time format `YYYY-MM-DD HH:MM:SS.mmm`, server local time
// without a zone (dtcp.md §4). The pure code never reads a clock: callers pass
// broken-down times in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace xtap::dtcp {

struct Timestamp {
    uint16_t year = 1970;
    uint8_t month = 1;
    uint8_t day = 1;
    uint8_t hour = 0;
    uint8_t minute = 0;
    uint8_t second = 0;  // 60 allowed for a leap second
    uint16_t millisecond = 0;
    bool operator==(const Timestamp&) const = default;
};

std::string formatTimestamp(const Timestamp& t);

// Exactly `YYYY-MM-DD HH:MM:SS.mmm` with a real calendar date.
std::optional<Timestamp> parseTimestamp(std::string_view text);

}  // namespace xtap::dtcp
