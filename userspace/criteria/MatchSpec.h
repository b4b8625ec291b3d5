// MatchSpec: the match part of a DTCP criterion as the MD wrote it, after
// parsing and before compilation into data-plane filters. Lists, ranges,
// wildcards and negations are kept as written; CriteriaCompiler removes them.
#pragma once

#include <cstdint>
#include <limits>
#include <vector>

#include "dataplane/Filter.h"

namespace xtap::criteria {

// One entry of an address list: `a`, `a/len`, `a-b`, `a-*`, `*-a` or `*`,
// stored as an inclusive range [lo, hi] of the criterion's family.
struct AddressEntry {
    bool negated = false;
    dataplane::Address lo{};
    dataplane::Address hi{};
    bool operator==(const AddressEntry&) const = default;
};

// One entry of a numeric list: `n`, `n-m`, `n-*`, `*-n` or `*`, inclusive.
struct NumberEntry {
    bool negated = false;
    uint64_t lo = 0;
    uint64_t hi = std::numeric_limits<uint64_t>::max();
    bool operator==(const NumberEntry&) const = default;
};

// DTCP semantics (dtcp.md §4): a value matches when it matches at least one
// plain entry (a list of only negated entries starts from `*`) and no negated
// entry. An empty list is `*`.
struct MatchSpec {
    dataplane::Family family = dataplane::Family::V4;
    std::vector<AddressEntry> src;
    std::vector<AddressEntry> dst;
    std::vector<NumberEntry> proto;
    std::vector<NumberEntry> sport;
    std::vector<NumberEntry> dport;
    std::vector<NumberEntry> icmp_type;
    std::vector<NumberEntry> icmp_code;
    std::vector<uint32_t> input_ifindexes;   // empty = any input interface
    std::vector<uint32_t> output_ifindexes;  // empty = any output (FIB egress) interface
    bool operator==(const MatchSpec&) const = default;
};

}  // namespace xtap::criteria
