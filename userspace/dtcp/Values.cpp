#include "dtcp/Values.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>

#include "dtcp/Text.h"

namespace xtap::dtcp {

using criteria::AddressEntry;
using criteria::NumberEntry;
using dataplane::Address;
using dataplane::Family;

namespace {

ValueError syntaxError(std::string detail) {
    return ValueError{ValueProblem::Syntax, std::move(detail)};
}
ValueError improper(std::string detail) {
    return ValueError{ValueProblem::Improper, std::move(detail)};
}

const char* familyName(Family family) {
    return family == Family::V4 ? "IPv4" : "IPv6";
}

size_t familyBytes(Family family) {
    return addressBits(family) / 8;
}

Address allOnes(Family family) {
    Address a{};
    std::fill_n(a.begin(), familyBytes(family), uint8_t{0xff});
    return a;
}

// The first `len` bits of `a` kept, the rest set to `fill` (0 or 1), within the family.
Address withHostBits(const Address& a, unsigned len, Family family, bool fill) {
    Address out{};
    const unsigned bits = addressBits(family);
    for (unsigned i = 0; i < bits; ++i) {
        const bool bit = i < len ? ((a[i / 8] >> (7 - i % 8)) & 1) : fill;
        if (bit) out[i / 8] = static_cast<uint8_t>(out[i / 8] | (0x80 >> (i % 8)));
    }
    return out;
}

// One address of the criterion's family, or why not.
Result<Address, ValueError> addressOfFamily(std::string_view text, Family family) {
    const auto address = parseIpAddress(text);
    if (!address) return fail(syntaxError(quoted(text) + " is not an IP address"));
    if (address->family != family) {
        return fail(improper(quoted(text) + " is not an " + familyName(family) + " address"));
    }
    return address->bytes;
}

// Splits `[!]body` and rejects empty entries.
Result<std::pair<bool, std::string_view>, ValueError> splitNegation(std::string_view entry) {
    const bool negated = !entry.empty() && entry.front() == '!';
    if (negated) entry.remove_prefix(1);
    if (entry.empty()) return fail(syntaxError("empty list entry"));
    return std::pair{negated, entry};
}

Result<AddressEntry, ValueError> parseAddressEntry(std::string_view text, Family family) {
    auto split = splitNegation(text);
    if (!split) return fail(std::move(split.error()));
    const auto [negated, body] = split.value();
    AddressEntry entry;
    entry.negated = negated;
    entry.lo = Address{};
    entry.hi = allOnes(family);

    const size_t dash = body.find('-');
    const size_t slash = body.find('/');
    if (dash != std::string_view::npos) {
        if (slash != std::string_view::npos) {
            return fail(syntaxError(quoted(body) + " mixes a range and a prefix length"));
        }
        const std::string_view from = body.substr(0, dash);
        const std::string_view to = body.substr(dash + 1);
        if (from != "*") {
            auto lo = addressOfFamily(from, family);
            if (!lo) return fail(std::move(lo.error()));
            entry.lo = lo.value();
        }
        if (to != "*") {
            auto hi = addressOfFamily(to, family);
            if (!hi) return fail(std::move(hi.error()));
            entry.hi = hi.value();
        }
        if (entry.lo > entry.hi) return fail(improper("range " + quoted(body) + " is reversed"));
    } else if (slash != std::string_view::npos) {
        auto base = addressOfFamily(body.substr(0, slash), family);
        if (!base) return fail(std::move(base.error()));
        const std::string_view length_text = body.substr(slash + 1);
        const auto length = parseInteger(length_text, IntegerKind::N8);
        if (!length || *length > addressBits(family)) {
            return fail(syntaxError(quoted(length_text) + " is no " + familyName(family) +
                                    " prefix length"));
        }
        const auto len = static_cast<unsigned>(*length);
        entry.lo = withHostBits(base.value(), len, family, false);
        entry.hi = withHostBits(base.value(), len, family, true);
    } else if (body != "*") {
        auto single = addressOfFamily(body, family);
        if (!single) return fail(std::move(single.error()));
        entry.lo = entry.hi = single.value();
    }
    if (negated && entry.lo == Address{} && entry.hi == allOnes(family)) {
        return fail(improper(quoted(text) + " excludes every address"));
    }
    return entry;
}

Result<uint64_t, ValueError> boundOf(std::string_view text, IntegerKind kind) {
    const auto value = parseInteger(text, kind);
    if (!value) return fail(syntaxError(quoted(text) + " is not a number in range"));
    return *value;
}

Result<NumberEntry, ValueError> parseNumberEntry(std::string_view text, IntegerKind kind) {
    auto split = splitNegation(text);
    if (!split) return fail(std::move(split.error()));
    const auto [negated, body] = split.value();
    NumberEntry entry;
    entry.negated = negated;
    entry.lo = 0;
    entry.hi = maxValue(kind);

    const size_t dash = body.find('-');
    if (dash != std::string_view::npos) {
        const std::string_view from = body.substr(0, dash);
        const std::string_view to = body.substr(dash + 1);
        if (from != "*") {
            auto lo = boundOf(from, kind);
            if (!lo) return fail(std::move(lo.error()));
            entry.lo = lo.value();
        }
        if (to != "*") {
            auto hi = boundOf(to, kind);
            if (!hi) return fail(std::move(hi.error()));
            entry.hi = hi.value();
        }
        if (entry.lo > entry.hi) return fail(improper("range " + quoted(body) + " is reversed"));
    } else if (body != "*") {
        auto single = boundOf(body, kind);
        if (!single) return fail(std::move(single.error()));
        entry.lo = entry.hi = single.value();
    }
    if (negated && entry.lo == 0 && entry.hi == maxValue(kind)) {
        return fail(improper(quoted(text) + " excludes every value"));
    }
    return entry;
}

template <typename Entry, typename ParseEntry>
Result<std::vector<Entry>, ValueError> parseList(std::string_view text, ParseEntry parse_entry) {
    std::vector<Entry> entries;
    for (std::string_view item : splitCommaList(text)) {
        auto entry = parse_entry(item);
        if (!entry) return fail(std::move(entry.error()));
        entries.push_back(entry.value());
    }
    return entries;
}

bool mustEscape(unsigned char c) {
    return c <= 0x20 || c >= 0x7f || c == '\\' || c == ',' || c == ':';
}

}  // namespace

uint64_t maxValue(IntegerKind kind) {
    switch (kind) {
        case IntegerKind::N8:
            return 255;
        case IntegerKind::N16:
            return 65535;
        case IntegerKind::N32:
            return 4294967295ULL;
        case IntegerKind::N64:
            return UINT64_MAX;
        case IntegerKind::DaySec:
            return 86400;
    }
    return 0;
}

unsigned maxDigits(IntegerKind kind) {
    switch (kind) {
        case IntegerKind::N8:
            return 3;
        case IntegerKind::N16:
            return 5;
        case IntegerKind::N32:
            return 10;
        case IntegerKind::N64:
            return 20;
        case IntegerKind::DaySec:
            return 5;
    }
    return 0;
}

std::optional<uint64_t> parseInteger(std::string_view text, IntegerKind kind) {
    if (text.empty() || text.size() > maxDigits(kind)) return std::nullopt;
    const uint64_t limit = maxValue(kind);
    uint64_t value = 0;
    for (char c : text) {
        if (!isDigit(c)) return std::nullopt;
        const auto digit = static_cast<uint64_t>(c - '0');
        if (value > (limit - digit) / 10) return std::nullopt;
        value = value * 10 + digit;
    }
    return value;
}

std::optional<IpAddress> parseIpAddress(std::string_view text) {
    // inet_pton needs a terminated string; nothing longer than this is an address.
    char buffer[64];
    if (text.empty() || text.size() >= sizeof buffer) return std::nullopt;
    std::memcpy(buffer, text.data(), text.size());
    buffer[text.size()] = '\0';
    IpAddress address;
    if (inet_pton(AF_INET, buffer, address.bytes.data()) == 1) {
        address.family = Family::V4;
        return address;
    }
    if (inet_pton(AF_INET6, buffer, address.bytes.data()) == 1) {
        address.family = Family::V6;
        return address;
    }
    return std::nullopt;
}

std::string formatIpAddress(const IpAddress& address) {
    char buffer[INET6_ADDRSTRLEN] = {};
    const int af = address.family == Family::V4 ? AF_INET : AF_INET6;
    if (inet_ntop(af, address.bytes.data(), buffer, sizeof buffer) == nullptr) return {};
    return buffer;
}

Result<std::vector<AddressEntry>, ValueError> parseAddressList(std::string_view text,
                                                               Family family) {
    return parseList<AddressEntry>(
        text, [family](std::string_view item) { return parseAddressEntry(item, family); });
}

Result<std::vector<NumberEntry>, ValueError> parseNumberList(std::string_view text,
                                                             IntegerKind kind) {
    return parseList<NumberEntry>(
        text, [kind](std::string_view item) { return parseNumberEntry(item, kind); });
}

bool numberListMatches(const std::vector<NumberEntry>& list, uint64_t value) {
    bool has_plain = false;
    bool in_plain = false;
    for (const NumberEntry& e : list) {
        const bool inside = e.lo <= value && value <= e.hi;
        if (e.negated) {
            if (inside) return false;
        } else {
            has_plain = true;
            in_plain = in_plain || inside;
        }
    }
    return !has_plain || in_plain;
}

bool addressListMatches(const std::vector<AddressEntry>& list, const Address& address) {
    bool has_plain = false;
    bool in_plain = false;
    for (const AddressEntry& e : list) {
        const bool inside = e.lo <= address && address <= e.hi;
        if (e.negated) {
            if (inside) return false;
        } else {
            has_plain = true;
            in_plain = in_plain || inside;
        }
    }
    return !has_plain || in_plain;
}

bool constrainsNumbers(const std::vector<NumberEntry>& list, IntegerKind kind) {
    if (list.empty()) return false;
    bool covers_all = false;
    for (const NumberEntry& e : list) {
        if (e.negated) return true;
        covers_all = covers_all || (e.lo == 0 && e.hi >= maxValue(kind));
    }
    return !covers_all;
}

bool anchorsAddresses(const std::vector<AddressEntry>& list, Family family) {
    const Address everything = allOnes(family);
    return std::any_of(list.begin(), list.end(), [&](const AddressEntry& e) {
        return !e.negated && !(e.lo == Address{} && e.hi == everything);
    });
}

Result<std::string, ValueError> unescapeIdentifier(std::string_view text) {
    std::string out;
    out.reserve(text.size());
    for (size_t i = 0; i < text.size(); ++i) {
        if (text[i] != '\\') {
            out.push_back(text[i]);
            continue;
        }
        const std::string_view digits = text.substr(i + 1, 3);
        const auto code = digits.size() == 3 ? parseInteger(digits, IntegerKind::N8) : std::nullopt;
        if (!code) {
            return fail(
                syntaxError("'\\' not followed by three digits up to 255 in " + quoted(text)));
        }
        out.push_back(static_cast<char>(*code));
        i += 3;
    }
    return out;
}

std::string escapeIdentifier(std::string_view identifier) {
    std::string out;
    out.reserve(identifier.size());
    for (char c : identifier) {
        const auto u = static_cast<unsigned char>(c);
        if (!mustEscape(u)) {
            out.push_back(c);
            continue;
        }
        char escaped[8];
        std::snprintf(escaped, sizeof escaped, "\\%03u", unsigned{u});
        out.append(escaped);
    }
    return out;
}

}  // namespace xtap::dtcp
