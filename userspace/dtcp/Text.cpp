#include "dtcp/Text.h"

namespace xtap::dtcp {

namespace {
char asciiLower(char c) {
    return (c >= 'A' && c <= 'Z') ? static_cast<char>(c - 'A' + 'a') : c;
}
char asciiUpper(char c) {
    return (c >= 'a' && c <= 'z') ? static_cast<char>(c - 'a' + 'A') : c;
}
}  // namespace

bool iequals(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
        if (asciiLower(a[i]) != asciiLower(b[i])) return false;
    }
    return true;
}

bool istartsWith(std::string_view text, std::string_view prefix) {
    return text.size() >= prefix.size() && iequals(text.substr(0, prefix.size()), prefix);
}

std::string toUpper(std::string_view text) {
    std::string out(text);
    for (char& c : out) c = asciiUpper(c);
    return out;
}

std::string_view trimWsp(std::string_view text) {
    while (!text.empty() && isWsp(text.front())) text.remove_prefix(1);
    while (!text.empty() && isWsp(text.back())) text.remove_suffix(1);
    return text;
}

std::vector<std::string_view> splitCommaList(std::string_view text) {
    std::vector<std::string_view> entries;
    size_t start = 0;
    while (true) {
        const size_t comma = text.find(',', start);
        if (comma == std::string_view::npos) {
            entries.push_back(trimWsp(text.substr(start)));
            return entries;
        }
        entries.push_back(trimWsp(text.substr(start, comma - start)));
        start = comma + 1;
    }
}

std::string quoted(std::string_view text) {
    return "'" + std::string(text) + "'";
}

}  // namespace xtap::dtcp
