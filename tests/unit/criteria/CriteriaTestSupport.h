// Test helpers: MatchSpec entries from DTCP value text (dtcp.md §4), so the
// tests read like the criteria an MD sends, and prefixes back to text.
#pragma once

#include <arpa/inet.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "criteria/MatchSpec.h"
#include "criteria/PrefixCover.h"
#include "dataplane/Filter.h"
#include "tests/support/TrieCover.h"

namespace xtap::criteria::test {

using dataplane::Address;
using dataplane::Family;

inline std::string trimmed(std::string_view text) {
    const auto first = text.find_first_not_of(" \t");
    if (first == std::string_view::npos) return {};
    const auto last = text.find_last_not_of(" \t");
    return std::string(text.substr(first, last - first + 1));
}

inline std::vector<std::string> splitList(std::string_view list) {
    std::vector<std::string> items;
    std::size_t start = 0;
    while (true) {
        const auto comma = list.find(',', start);
        items.push_back(trimmed(list.substr(start, comma - start)));
        if (comma == std::string_view::npos) return items;
        start = comma + 1;
    }
}

inline Address parseAddress(const std::string& text, Family family) {
    Address address{};
    const int af = family == Family::V4 ? AF_INET : AF_INET6;
    if (inet_pton(af, text.c_str(), address.data()) != 1) {
        throw std::invalid_argument("bad address " + text);
    }
    return address;
}

inline Address familyMax(Family family) {
    Address address{};
    for (unsigned i = 0; i < dataplane::addressBits(family) / 8; ++i) address[i] = 0xff;
    return address;
}

// One address entry: `a`, `a/len`, `a-b`, `a-*`, `*-a`, `*`, optionally `!`-prefixed.
inline AddressEntry addressEntry(std::string text, Family family) {
    AddressEntry entry;
    if (!text.empty() && text[0] == '!') {
        entry.negated = true;
        text = trimmed(text.substr(1));
    }
    if (text == "*") {
        entry.lo = Address{};
        entry.hi = familyMax(family);
    } else if (const auto dash = text.find('-'); dash != std::string::npos) {
        const std::string lo = text.substr(0, dash);
        const std::string hi = text.substr(dash + 1);
        entry.lo = lo == "*" ? Address{} : parseAddress(lo, family);
        entry.hi = hi == "*" ? familyMax(family) : parseAddress(hi, family);
    } else if (const auto slash = text.find('/'); slash != std::string::npos) {
        const Address base = parseAddress(text.substr(0, slash), family);
        const unsigned len = static_cast<unsigned>(std::stoul(text.substr(slash + 1)));
        entry.lo = base;
        entry.hi = base;
        for (unsigned bit = len; bit < dataplane::addressBits(family); ++bit) {
            const auto mask = static_cast<uint8_t>(0x80u >> (bit % 8));
            entry.lo[bit / 8] &= static_cast<uint8_t>(~mask);
            entry.hi[bit / 8] |= mask;
        }
    } else {
        entry.lo = entry.hi = parseAddress(text, family);
    }
    return entry;
}

inline std::vector<AddressEntry> addresses(std::string_view list, Family family = Family::V4) {
    std::vector<AddressEntry> entries;
    for (const std::string& item : splitList(list)) entries.push_back(addressEntry(item, family));
    return entries;
}

// One numeric entry: `n`, `n-m`, `n-*`, `*-n`, `*`, optionally `!`-prefixed. The open
// upper end is stored as UINT64_MAX, as MatchSpec's default.
inline NumberEntry numberEntry(std::string text) {
    NumberEntry entry;
    if (!text.empty() && text[0] == '!') {
        entry.negated = true;
        text = trimmed(text.substr(1));
    }
    if (text == "*") return entry;
    if (const auto dash = text.find('-'); dash != std::string::npos) {
        const std::string lo = text.substr(0, dash);
        const std::string hi = text.substr(dash + 1);
        if (lo != "*") entry.lo = std::stoull(lo);
        if (hi != "*") entry.hi = std::stoull(hi);
    } else {
        entry.lo = entry.hi = std::stoull(text);
    }
    return entry;
}

inline std::vector<NumberEntry> numbers(std::string_view list) {
    std::vector<NumberEntry> entries;
    for (const std::string& item : splitList(list)) entries.push_back(numberEntry(item));
    return entries;
}

inline std::string addressText(const Address& address, Family family) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == Family::V4 ? AF_INET : AF_INET6, address.data(), text, sizeof text);
    return text;
}

inline std::string prefixText(const dataplane::Prefix& prefix, Family family) {
    return addressText(prefix.addr, family) + "/" + std::to_string(prefix.len);
}

inline std::vector<std::string> prefixTexts(const std::vector<dataplane::Prefix>& prefixes,
                                            Family family) {
    std::vector<std::string> texts;
    for (const auto& prefix : prefixes) texts.push_back(prefixText(prefix, family));
    return texts;
}

// A packet as the classifier sees it. The L4 fields that apply depend on `proto`.
struct Packet {
    Family family = Family::V4;
    Address src{};
    Address dst{};
    uint8_t proto = 0;
    uint16_t sport = 0;
    uint16_t dport = 0;
    uint8_t icmp_type = 0;
    uint8_t icmp_code = 0;
    uint32_t ifindex = 1;
    uint32_t oifindex = 0;  // FIB egress; 0 = not forwarded
};

// The first `prefix.len` bits of `address` equal the prefix's.
inline bool prefixContains(const dataplane::Prefix& prefix, const Address& address) {
    for (unsigned bit = 0; bit < prefix.len; ++bit) {
        const auto mask = static_cast<uint8_t>(0x80u >> (bit % 8));
        if ((prefix.addr[bit / 8] & mask) != (address[bit / 8] & mask)) return false;
    }
    return true;
}

// Filter semantics as Filter.h states them (an unfragmented packet).
inline bool filterMatches(const dataplane::Filter& filter, const Packet& packet) {
    if (filter.family != packet.family) return false;
    if (!prefixContains(filter.src, packet.src) || !prefixContains(filter.dst, packet.dst)) {
        return false;
    }
    if (filter.proto && *filter.proto != packet.proto) return false;
    if (filter.ifindex != 0 && filter.ifindex != packet.ifindex) return false;
    if (filter.oifindex != 0 && filter.oifindex != packet.oifindex) return false;
    if (dataplane::hasPorts(packet.proto)) {
        return filter.sport.contains(packet.sport) && filter.dport.contains(packet.dport);
    }
    if (dataplane::isIcmp(packet.proto)) {
        return filter.sport.contains(packet.icmp_type) && filter.dport.contains(packet.icmp_code);
    }
    return !filter.needsL4();  // no L4 fields to compare
}

inline bool prefixesOverlap(const dataplane::Prefix& a, const dataplane::Prefix& b) {
    return a.len <= b.len ? prefixContains(a, b.addr) : prefixContains(b, a.addr);
}

inline bool rangesOverlap(const dataplane::Range16& a, const dataplane::Range16& b) {
    return a.lo <= b.hi && b.lo <= a.hi;
}

// False only when no packet can match both: a structural disjointness proof. (A packet
// without L4 fields cannot match a filter whose ranges are not `any`, and two filters
// with disjoint ranges have at least one such range.)
inline bool filtersOverlap(const dataplane::Filter& a, const dataplane::Filter& b) {
    return a.family == b.family && prefixesOverlap(a.src, b.src) && prefixesOverlap(a.dst, b.dst) &&
           (!a.proto || !b.proto || *a.proto == *b.proto) && rangesOverlap(a.sport, b.sport) &&
           rangesOverlap(a.dport, b.dport) &&
           (a.ifindex == 0 || b.ifindex == 0 || a.ifindex == b.ifindex) &&
           (a.oifindex == 0 || b.oifindex == 0 || a.oifindex == b.oifindex);
}

// Every pair of filters is disjoint.
inline bool pairwiseDisjoint(const std::vector<dataplane::Filter>& filters) {
    for (std::size_t i = 0; i < filters.size(); ++i) {
        for (std::size_t j = i + 1; j < filters.size(); ++j) {
            if (filtersOverlap(filters[i], filters[j])) return false;
        }
    }
    return true;
}

inline bool allValid(const std::vector<dataplane::Filter>& filters) {
    for (const auto& filter : filters) {
        if (!dataplane::validate(filter).empty()) return false;
    }
    return true;
}

using xtap::test::trieCoverCount;

}  // namespace xtap::criteria::test
