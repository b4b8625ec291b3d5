// Text: ASCII helpers shared by the DTCP parser, decoder and serializer.
// DTCP names and keywords are ASCII and compared without regard to case.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace xtap::dtcp {

inline bool isWsp(char c) {
    return c == ' ' || c == '\t';
}
inline bool isDigit(char c) {
    return c >= '0' && c <= '9';
}

bool iequals(std::string_view a, std::string_view b);
bool istartsWith(std::string_view text, std::string_view prefix);
std::string toUpper(std::string_view text);

// Without leading and trailing spaces and tabs.
std::string_view trimWsp(std::string_view text);

// Entries of a comma list, each without surrounding whitespace. An empty text
// gives one empty entry, so that callers reject it like any empty entry.
std::vector<std::string_view> splitCommaList(std::string_view text);

// `text` in single quotes, as error details echo an offending item.
std::string quoted(std::string_view text);

}  // namespace xtap::dtcp
