#include "dtcp/Timestamp.h"

#include <cstdio>

#include "dtcp/Text.h"

namespace xtap::dtcp {

namespace {

std::optional<unsigned> digitsAt(std::string_view text, size_t pos, size_t count) {
    unsigned value = 0;
    for (size_t i = pos; i < pos + count; ++i) {
        if (!isDigit(text[i])) return std::nullopt;
        value = value * 10 + static_cast<unsigned>(text[i] - '0');
    }
    return value;
}

bool isLeapYear(unsigned year) {
    return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
}

unsigned daysInMonth(unsigned year, unsigned month) {
    static constexpr unsigned kDays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    return month == 2 && isLeapYear(year) ? 29 : kDays[month - 1];
}

}  // namespace

std::string formatTimestamp(const Timestamp& t) {
    char text[40];
    std::snprintf(text, sizeof text, "%04u-%02u-%02u %02u:%02u:%02u.%03u", unsigned{t.year},
                  unsigned{t.month}, unsigned{t.day}, unsigned{t.hour}, unsigned{t.minute},
                  unsigned{t.second}, unsigned{t.millisecond});
    return text;
}

std::optional<Timestamp> parseTimestamp(std::string_view text) {
    // YYYY-MM-DD HH:MM:SS.mmm
    // 0123456789012345678901
    if (text.size() != 23 || text[4] != '-' || text[7] != '-' || text[10] != ' ' ||
        text[13] != ':' || text[16] != ':' || text[19] != '.') {
        return std::nullopt;
    }
    const auto year = digitsAt(text, 0, 4);
    const auto month = digitsAt(text, 5, 2);
    const auto day = digitsAt(text, 8, 2);
    const auto hour = digitsAt(text, 11, 2);
    const auto minute = digitsAt(text, 14, 2);
    const auto second = digitsAt(text, 17, 2);
    const auto millisecond = digitsAt(text, 20, 3);
    if (!year || !month || !day || !hour || !minute || !second || !millisecond) {
        return std::nullopt;
    }
    if (*month < 1 || *month > 12 || *day < 1 || *day > daysInMonth(*year, *month) || *hour > 23 ||
        *minute > 59 || *second > 60) {
        return std::nullopt;
    }
    return Timestamp{static_cast<uint16_t>(*year),       static_cast<uint8_t>(*month),
                     static_cast<uint8_t>(*day),         static_cast<uint8_t>(*hour),
                     static_cast<uint8_t>(*minute),      static_cast<uint8_t>(*second),
                     static_cast<uint16_t>(*millisecond)};
}

}  // namespace xtap::dtcp
