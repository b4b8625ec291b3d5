#include "criteria/CriteriaCompiler.h"

#include <algorithm>
#include <initializer_list>
#include <iterator>
#include <limits>
#include <optional>
#include <string>
#include <utility>

#include "criteria/PrefixCover.h"
#include "criteria/RangeSet.h"

namespace xtap::criteria {

using dataplane::Family;
using dataplane::Filter;
using dataplane::Prefix;
using dataplane::Range16;

namespace {

using AddressSet = RangeSet<Uint128>;
using NumberSet = RangeSet<uint64_t>;

constexpr uint64_t kMaxProtocol = 255;
constexpr uint64_t kMaxPort = 65535;
constexpr uint64_t kMaxIcmpField = 255;
// The parser stores the open end of `n-*` and `*` as this; it means "up to the
// field's maximum", whatever the field.
constexpr uint64_t kOpenEnd = std::numeric_limits<uint64_t>::max();

// A value or the error that stopped it.
template <typename T>
struct Checked {
    T value{};
    std::optional<CompileError> error;
};

CompileError improper(CriterionField field, std::string reason) {
    return {CompileStatus::ImproperFilter, field, std::move(reason)};
}

CompileError badRequest(CriterionField field, std::string reason) {
    return {CompileStatus::BadRequest, field, std::move(reason)};
}

uint64_t upperEnd(const NumberEntry& entry, uint64_t fieldMax) {
    return entry.hi == kOpenEnd ? fieldMax : entry.hi;
}

// dtcp.md §4: plain entries are a union (none means `*`), negated ones are removed.
template <typename T>
RangeSet<T> dtcpListSet(std::vector<Interval<T>> plain, std::vector<Interval<T>> negated, T max) {
    const RangeSet<T> base =
        plain.empty() ? RangeSet<T>::all(max) : RangeSet<T>::unionOf(std::move(plain));
    return base.minus(RangeSet<T>::unionOf(std::move(negated)));
}

// 400 checks: numbers wider than their field (N8, N16), before any 432 check.
std::optional<CompileError> checkWidths(const std::vector<NumberEntry>& entries, uint64_t fieldMax,
                                        CriterionField field) {
    for (const NumberEntry& entry : entries) {
        if (entry.lo > fieldMax || upperEnd(entry, fieldMax) > fieldMax) {
            return badRequest(field, "value above " + std::to_string(fieldMax));
        }
    }
    return std::nullopt;
}

Checked<NumberSet> numberSet(const std::vector<NumberEntry>& entries, uint64_t fieldMax,
                             CriterionField field) {
    std::vector<Interval<uint64_t>> plain;
    std::vector<Interval<uint64_t>> negated;
    for (const NumberEntry& entry : entries) {
        const uint64_t hi = upperEnd(entry, fieldMax);
        if (entry.lo > hi) return {{}, improper(field, "range ends below its start")};
        (entry.negated ? negated : plain).push_back({entry.lo, hi});
    }
    NumberSet set = dtcpListSet(std::move(plain), std::move(negated), fieldMax);
    if (set.empty()) return {{}, improper(field, "the negations exclude every value")};
    return {std::move(set), std::nullopt};
}

Checked<AddressSet> addressSet(const std::vector<AddressEntry>& entries, Family family,
                               CriterionField field) {
    std::vector<Interval<Uint128>> plain;
    std::vector<Interval<Uint128>> negated;
    for (const AddressEntry& entry : entries) {
        if (!fitsFamily(entry.lo, family) || !fitsFamily(entry.hi, family)) {
            return {{}, improper(field, "address of the other IP version")};
        }
        const Uint128 lo = toInteger(entry.lo, family);
        const Uint128 hi = toInteger(entry.hi, family);
        if (lo > hi) return {{}, improper(field, "range ends below its start")};
        (entry.negated ? negated : plain).push_back({lo, hi});
    }
    AddressSet set = dtcpListSet(std::move(plain), std::move(negated), maxAddress(family));
    if (set.empty()) return {{}, improper(field, "the negations exclude every address")};
    return {std::move(set), std::nullopt};
}

NumberSet valuesOf(std::initializer_list<uint64_t> values) {
    std::vector<Interval<uint64_t>> intervals;
    for (uint64_t v : values) intervals.push_back({v, v});
    return NumberSet::unionOf(std::move(intervals));
}

// Prefixes of the set's cover, counted only until the count passes `cap` (the cover of
// a long list could hold millions).
uint64_t cappedPrefixCount(const AddressSet& set, Family family, uint64_t cap) {
    uint64_t count = 0;
    for (const Interval<Uint128>& interval : set.intervals()) {
        count += prefixCount(interval.lo, interval.hi, family);
        if (count > cap) break;
    }
    return count;
}

uint64_t cappedValueCount(const NumberSet& set, uint64_t cap) {
    uint64_t count = 0;
    for (const Interval<uint64_t>& interval : set.intervals()) {
        count += interval.hi - interval.lo + 1;
        if (count > cap) break;
    }
    return count;
}

std::vector<Prefix> coverOf(const AddressSet& set, Family family) {
    std::vector<Prefix> prefixes;
    for (const Interval<Uint128>& interval : set.intervals()) {
        const std::vector<Prefix> cover = prefixCover(interval.lo, interval.hi, family);
        prefixes.insert(prefixes.end(), cover.begin(), cover.end());
    }
    return prefixes;
}

Range16 toRange16(const Interval<uint64_t>& interval) {
    return {static_cast<uint16_t>(interval.lo), static_cast<uint16_t>(interval.hi)};
}

// Every (first, second) pair of intervals: source x destination port, or type x code.
std::vector<std::pair<Range16, Range16>> rangePairs(const NumberSet& first,
                                                    const NumberSet& second) {
    std::vector<std::pair<Range16, Range16>> pairs;
    for (const Interval<uint64_t>& a : first.intervals()) {
        for (const Interval<uint64_t>& b : second.intervals()) {
            pairs.emplace_back(toRange16(a), toRange16(b));
        }
    }
    return pairs;
}

struct NumberField {
    const std::vector<NumberEntry>& entries;
    uint64_t max;
    CriterionField field;
};

// A criterion reduced to disjoint sets, checked field by field and as a whole.
struct CriterionSets {
    Family family = Family::V4;
    AddressSet src;
    AddressSet dst;
    NumberSet protocols;  // those a matching packet may carry
    bool anyProtocol = false;
    // Source and destination ports, or ICMP type and code; unset when neither is constrained.
    std::optional<std::pair<NumberSet, NumberSet>> l4;
    std::vector<uint32_t> ifindexes;   // sorted, distinct; empty = any
    std::vector<uint32_t> oifindexes;  // egress, likewise
};

Checked<CriterionSets> normalise(const MatchSpec& spec, bool allowWide) {
    CriterionSets sets;
    sets.family = spec.family;
    if (sets.family != Family::V4 && sets.family != Family::V6) {
        return {{}, badRequest(CriterionField::Criterion, "unknown address family")};
    }

    // 400 first: values out of range whatever the rest says.
    const NumberField numberFields[] = {
        {spec.proto, kMaxProtocol, CriterionField::Protocol},
        {spec.sport, kMaxPort, CriterionField::SourcePort},
        {spec.dport, kMaxPort, CriterionField::DestPort},
        {spec.icmp_type, kMaxIcmpField, CriterionField::IcmpType},
        {spec.icmp_code, kMaxIcmpField, CriterionField::IcmpCode},
    };
    for (const NumberField& f : numberFields) {
        if (auto error = checkWidths(f.entries, f.max, f.field)) return {{}, std::move(error)};
    }
    // Index 0 means "any interface" in a Filter; in a list it would widen the criterion.
    if (std::find(spec.input_ifindexes.begin(), spec.input_ifindexes.end(), 0u) !=
        spec.input_ifindexes.end()) {
        return {{}, badRequest(CriterionField::InputInterface, "interface index 0")};
    }
    if (std::find(spec.output_ifindexes.begin(), spec.output_ifindexes.end(), 0u) !=
        spec.output_ifindexes.end()) {
        return {{}, badRequest(CriterionField::OutputInterface, "interface index 0")};
    }

    // 432: each field on its own.
    Checked<AddressSet> src = addressSet(spec.src, sets.family, CriterionField::SourceAddress);
    if (src.error) return {{}, std::move(src.error)};
    Checked<AddressSet> dst = addressSet(spec.dst, sets.family, CriterionField::DestAddress);
    if (dst.error) return {{}, std::move(dst.error)};
    NumberSet numbers[std::size(numberFields)];
    for (std::size_t i = 0; i < std::size(numberFields); ++i) {
        Checked<NumberSet> set =
            numberSet(numberFields[i].entries, numberFields[i].max, numberFields[i].field);
        if (set.error) return {{}, std::move(set.error)};
        numbers[i] = std::move(set.value);
    }
    auto& [protocols, sourcePorts, destPorts, icmpTypes, icmpCodes] = numbers;

    // 432: the fields together. `*` (or any list that covers the whole field) is no
    // constraint, so `Source-Port: *` does not restrict a criterion to TCP/UDP.
    const bool portsConstrained = !sourcePorts.isAll(kMaxPort) || !destPorts.isAll(kMaxPort);
    const bool icmpConstrained = !icmpTypes.isAll(kMaxIcmpField) || !icmpCodes.isAll(kMaxIcmpField);
    if (portsConstrained && icmpConstrained) {
        return {{},
                improper(icmpTypes.isAll(kMaxIcmpField) ? CriterionField::IcmpCode
                                                        : CriterionField::IcmpType,
                         "port and ICMP constraints exclude each other")};
    }
    sets.protocols = protocols;
    if (portsConstrained) {
        // dtcp.md §4: ports limit a criterion to TCP and UDP.
        sets.protocols =
            protocols.intersect(valuesOf({dataplane::kProtoTcp, dataplane::kProtoUdp}));
        if (sets.protocols.empty()) {
            return {{},
                    improper(CriterionField::Protocol, "port constraints need protocol 6 or 17")};
        }
        sets.l4.emplace(std::move(sourcePorts), std::move(destPorts));
    } else if (icmpConstrained) {
        const bool v4 = sets.family == Family::V4;
        sets.protocols =
            protocols.intersect(valuesOf({v4 ? dataplane::kProtoIcmp : dataplane::kProtoIcmpV6}));
        if (sets.protocols.empty()) {
            return {{},
                    improper(CriterionField::Protocol, v4 ? "ICMP constraints need protocol 1"
                                                          : "ICMP constraints need protocol 58")};
        }
        sets.l4.emplace(std::move(icmpTypes), std::move(icmpCodes));
    }
    sets.anyProtocol = sets.protocols.isAll(kMaxProtocol);

    const Uint128 addressMax = maxAddress(sets.family);
    if (!allowWide && src.value.isAll(addressMax) && dst.value.isAll(addressMax)) {
        return {{}, improper(CriterionField::Criterion, "neither address is constrained")};
    }
    sets.src = std::move(src.value);
    sets.dst = std::move(dst.value);

    sets.ifindexes = spec.input_ifindexes;
    std::sort(sets.ifindexes.begin(), sets.ifindexes.end());
    sets.ifindexes.erase(std::unique(sets.ifindexes.begin(), sets.ifindexes.end()),
                         sets.ifindexes.end());
    sets.oifindexes = spec.output_ifindexes;
    std::sort(sets.oifindexes.begin(), sets.oifindexes.end());
    sets.oifindexes.erase(std::unique(sets.oifindexes.begin(), sets.oifindexes.end()),
                          sets.oifindexes.end());
    return {std::move(sets), std::nullopt};
}

// The number of filters, or budget + 1 and more once it is over the budget. Nothing is
// built: every factor is counted only up to the budget. Every factor is at least 1 (no
// set is empty), so once the running product passes the budget it stays above it, and
// the product of two numbers below 2^64 fits in 128 bits.
Uint128 cappedFilterCount(const CriterionSets& sets, uint64_t budget) {
    const uint64_t factors[] = {
        cappedPrefixCount(sets.src, sets.family, budget),
        cappedPrefixCount(sets.dst, sets.family, budget),
        sets.anyProtocol ? 1 : cappedValueCount(sets.protocols, budget),
        sets.l4 ? sets.l4->first.intervals().size() : 1,
        sets.l4 ? sets.l4->second.intervals().size() : 1,
        std::max<uint64_t>(1, sets.ifindexes.size()),
        std::max<uint64_t>(1, sets.oifindexes.size()),
    };
    Uint128 count = 1;
    for (uint64_t factor : factors) {
        count *= factor;
        if (count > budget) break;
    }
    return count;
}

// One filter per (source prefix, destination prefix, protocol, L4 range pair, input
// interface, output interface):
// each component is drawn from disjoint alternatives, so the filters are disjoint.
std::vector<Filter> filtersOf(const CriterionSets& sets, std::size_t count) {
    const std::vector<Prefix> srcPrefixes = coverOf(sets.src, sets.family);
    const std::vector<Prefix> dstPrefixes = coverOf(sets.dst, sets.family);
    std::vector<std::optional<uint8_t>> protocols;
    if (sets.anyProtocol) {
        protocols.push_back(std::nullopt);
    } else {
        for (const Interval<uint64_t>& interval : sets.protocols.intervals()) {
            for (uint64_t p = interval.lo; p <= interval.hi; ++p) {
                protocols.push_back(static_cast<uint8_t>(p));
            }
        }
    }
    // ICMP type and code travel in the port ranges; their `*` is 0-255, not 0-65535.
    const std::vector<std::pair<Range16, Range16>> l4Ranges =
        sets.l4 ? rangePairs(sets.l4->first, sets.l4->second)
                : std::vector<std::pair<Range16, Range16>>{{Range16{}, Range16{}}};
    const std::vector<uint32_t> ifindexes =
        sets.ifindexes.empty() ? std::vector<uint32_t>{0} : sets.ifindexes;
    const std::vector<uint32_t> oifindexes =
        sets.oifindexes.empty() ? std::vector<uint32_t>{0} : sets.oifindexes;

    std::vector<Filter> filters;
    filters.reserve(count);
    for (const Prefix& src : srcPrefixes) {
        for (const Prefix& dst : dstPrefixes) {
            for (const std::optional<uint8_t>& proto : protocols) {
                for (const auto& [first, second] : l4Ranges) {
                    for (uint32_t ifindex : ifindexes) {
                        for (uint32_t oifindex : oifindexes) {
                            filters.push_back(Filter{sets.family, src, dst, proto, first, second,
                                                     ifindex, oifindex});
                        }
                    }
                }
            }
        }
    }
    return filters;
}

}  // namespace

std::string_view dtcpName(CriterionField field) {
    switch (field) {
        case CriterionField::SourceAddress:
            return "Source-Address";
        case CriterionField::DestAddress:
            return "Dest-Address";
        case CriterionField::Protocol:
            return "Protocol";
        case CriterionField::SourcePort:
            return "Source-Port";
        case CriterionField::DestPort:
            return "Dest-Port";
        case CriterionField::IcmpType:
            return "ICMP-Type";
        case CriterionField::IcmpCode:
            return "ICMP-Code";
        case CriterionField::InputInterface:
            return "X-JTap-Input-Interface";
        case CriterionField::OutputInterface:
            return "X-JTap-Output-Interface";
        case CriterionField::Criterion:
            return "";
    }
    return "";
}

CompileResult compile(const MatchSpec& spec, const CompileLimits& limits) {
    Checked<CriterionSets> sets = normalise(spec, limits.allow_wide);
    if (sets.error) return std::move(*sets.error);
    const Uint128 count = cappedFilterCount(sets.value, limits.max_filters);
    if (count > limits.max_filters) {
        return improper(CriterionField::Criterion,
                        "more than " + std::to_string(limits.max_filters) + " filters");
    }
    return filtersOf(sets.value, static_cast<std::size_t>(count));
}

}  // namespace xtap::criteria
