// Randomized property test of the criteria compiler against an oracle written
// straight from dtcp.md §4 ("xtap behaviour"), sharing no code with the compiler:
// for random criteria and random packets, "the criterion matches" must equal
// "some compiled filter matches" (Filter.h semantics), at most one filter may
// match, the compiler must refuse exactly the criteria the rules refuse, and the
// number of filters must be the product of minimal covers.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "criteria/CriteriaCompiler.h"
#include "CriteriaTestSupport.h"

using namespace xtap::criteria;
using namespace xtap::criteria::test;
using xtap::dataplane::Family;
using xtap::dataplane::Filter;

namespace {

// Wider than any address; the oracle's own conversions (not PrefixCover's).
using Wide = unsigned __int128;

unsigned bitsOf(Family family) {
    return family == Family::V4 ? 32 : 128;
}
Wide topOf(Family family) {
    return family == Family::V4 ? Wide{0xffffffffu} : ~Wide{0};
}

Wide wideOf(const Address& address, Family family) {
    Wide value = 0;
    for (unsigned i = 0; i < bitsOf(family) / 8; ++i) value = value * 256 + address[i];
    return value;
}

Address addressOf(Wide value, Family family) {
    Address address{};
    for (int i = static_cast<int>(bitsOf(family) / 8) - 1; i >= 0; --i) {
        address[static_cast<unsigned>(i)] = static_cast<uint8_t>(value % 256);
        value /= 256;
    }
    return address;
}

// ---- The oracle: dtcp.md §4 -------------------------------------------------------

// A value matches a list when it matches a plain entry (none: `*`) and no negated one.
template <typename Entry, typename Contains>
bool listMatches(const std::vector<Entry>& entries, Contains&& contains) {
    bool plainSeen = false;
    bool plainMatched = false;
    for (const Entry& entry : entries) {
        if (entry.negated) {
            if (contains(entry)) return false;
        } else {
            plainSeen = true;
            plainMatched = plainMatched || contains(entry);
        }
    }
    return !plainSeen || plainMatched;
}

bool numberMatches(const std::vector<NumberEntry>& entries, uint64_t value) {
    // `n-*` is stored with hi = UINT64_MAX: value <= hi holds for any value.
    return listMatches(entries,
                       [value](const NumberEntry& e) { return e.lo <= value && value <= e.hi; });
}

bool addressMatches(const std::vector<AddressEntry>& entries, Family family, Wide value) {
    return listMatches(entries, [&](const AddressEntry& e) {
        return wideOf(e.lo, family) <= value && value <= wideOf(e.hi, family);
    });
}

// Membership of a list only changes at an entry's start or just past its end, so the
// segments between consecutive breakpoints are wholly in or out. The maximal runs of
// member segments are the set as disjoint ranges.
template <typename T, typename Member>
std::vector<std::pair<T, T>> memberRuns(std::vector<T> breakpoints, T top, Member&& member) {
    breakpoints.push_back(0);
    std::sort(breakpoints.begin(), breakpoints.end());
    breakpoints.erase(std::unique(breakpoints.begin(), breakpoints.end()), breakpoints.end());
    std::vector<std::pair<T, T>> runs;
    for (std::size_t i = 0; i < breakpoints.size(); ++i) {
        if (!member(breakpoints[i])) continue;
        const T end = i + 1 < breakpoints.size() ? T(breakpoints[i + 1] - 1) : top;
        if (!runs.empty() && runs.back().second + 1 == breakpoints[i]) {
            runs.back().second = end;
        } else {
            runs.emplace_back(breakpoints[i], end);
        }
    }
    return runs;
}

std::vector<std::pair<uint64_t, uint64_t>> numberRuns(const std::vector<NumberEntry>& entries,
                                                      uint64_t top) {
    std::vector<uint64_t> breakpoints;
    for (const NumberEntry& e : entries) {
        breakpoints.push_back(e.lo);
        if (e.hi < top) breakpoints.push_back(e.hi + 1);
    }
    return memberRuns(breakpoints, top, [&](uint64_t v) { return numberMatches(entries, v); });
}

std::vector<std::pair<Wide, Wide>> addressRuns(const std::vector<AddressEntry>& entries,
                                               Family family) {
    std::vector<Wide> breakpoints;
    for (const AddressEntry& e : entries) {
        breakpoints.push_back(wideOf(e.lo, family));
        const Wide hi = wideOf(e.hi, family);
        if (hi < topOf(family)) breakpoints.push_back(hi + 1);
    }
    return memberRuns(breakpoints, topOf(family),
                      [&](Wide v) { return addressMatches(entries, family, v); });
}

template <typename T>
bool isWhole(const std::vector<std::pair<T, T>>& runs, T top) {
    return runs.size() == 1 && runs[0].first == 0 && runs[0].second == top;
}

// What dtcp.md says about a criterion: refused, or the packets it matches.
struct Oracle {
    const MatchSpec& spec;
    bool portsConstrained = false;
    bool icmpConstrained = false;
    std::set<unsigned> protocols;  // protocols a matching packet may carry
    bool refused = false;
    uint64_t expectedFilters = 0;  // when accepted

    Oracle(const MatchSpec& s, const CompileLimits& limits) : spec(s) {
        const auto srcRuns = addressRuns(spec.src, spec.family);
        const auto dstRuns = addressRuns(spec.dst, spec.family);
        const auto sportRuns = numberRuns(spec.sport, 65535);
        const auto dportRuns = numberRuns(spec.dport, 65535);
        const auto typeRuns = numberRuns(spec.icmp_type, 255);
        const auto codeRuns = numberRuns(spec.icmp_code, 255);
        // Ports limit a criterion to TCP/UDP, ICMP fields to ICMP (1; 58 for IPv6).
        portsConstrained =
            !isWhole(sportRuns, uint64_t{65535}) || !isWhole(dportRuns, uint64_t{65535});
        icmpConstrained = !isWhole(typeRuns, uint64_t{255}) || !isWhole(codeRuns, uint64_t{255});
        const unsigned icmp = spec.family == Family::V4 ? 1 : 58;
        for (unsigned p = 0; p <= 255; ++p) {
            if (!numberMatches(spec.proto, p)) continue;
            if (portsConstrained && p != 6 && p != 17) continue;
            if (icmpConstrained && p != icmp) continue;
            protocols.insert(p);
        }
        const bool wide =
            isWhole(srcRuns, topOf(spec.family)) && isWhole(dstRuns, topOf(spec.family));
        refused = srcRuns.empty() || dstRuns.empty() || sportRuns.empty() || dportRuns.empty() ||
                  typeRuns.empty() || codeRuns.empty() || protocols.empty() ||
                  (portsConstrained && icmpConstrained) || (wide && !limits.allow_wide);
        if (refused) return;

        Wide count = 1;
        for (const auto* runs : {&srcRuns, &dstRuns}) {
            uint64_t prefixes = 0;
            for (const auto& [lo, hi] : *runs)
                prefixes += trieCoverCount(lo, hi, 0, bitsOf(spec.family));
            count *= prefixes;
        }
        count *= protocols.size() == 256 ? 1 : protocols.size();
        if (portsConstrained) count *= sportRuns.size() * dportRuns.size();
        if (icmpConstrained) count *= typeRuns.size() * codeRuns.size();
        const std::set<uint32_t> ifindexes(spec.input_ifindexes.begin(),
                                           spec.input_ifindexes.end());
        count *= std::max<std::size_t>(1, ifindexes.size());
        const std::set<uint32_t> oifindexes(spec.output_ifindexes.begin(),
                                            spec.output_ifindexes.end());
        count *= std::max<std::size_t>(1, oifindexes.size());
        refused = count > limits.max_filters;
        expectedFilters = static_cast<uint64_t>(count);
    }

    bool matches(const Packet& packet) const {
        if (packet.family != spec.family) return false;
        if (!addressMatches(spec.src, spec.family, wideOf(packet.src, spec.family))) return false;
        if (!addressMatches(spec.dst, spec.family, wideOf(packet.dst, spec.family))) return false;
        if (!protocols.count(packet.proto)) return false;
        if (portsConstrained && (!numberMatches(spec.sport, packet.sport) ||
                                 !numberMatches(spec.dport, packet.dport))) {
            return false;
        }
        if (icmpConstrained && (!numberMatches(spec.icmp_type, packet.icmp_type) ||
                                !numberMatches(spec.icmp_code, packet.icmp_code))) {
            return false;
        }
        const auto& ifs = spec.input_ifindexes;
        const auto& ofs = spec.output_ifindexes;
        return (ifs.empty() || std::find(ifs.begin(), ifs.end(), packet.ifindex) != ifs.end()) &&
               (ofs.empty() || std::find(ofs.begin(), ofs.end(), packet.oifindex) != ofs.end());
    }
};

// ---- Random criteria and packets -----------------------------------------------------

class Generator {
  public:
    explicit Generator(uint64_t seed) : rng_(seed) {}

    MatchSpec spec() {
        MatchSpec s;
        s.family = chance(2) ? Family::V4 : Family::V6;
        base_ = s.family == Family::V4 ? Wide{0xc0000200u} : Wide{0x20010db8u} << 96;
        s.src = addressList(s.family);
        s.dst = addressList(s.family);
        if (chance(2)) s.proto = numberList(255, {0, 1, 6, 17, 47, 58, 132, 255});
        if (chance(3)) {
            s.sport = numberList(65535, {0, 53, 80, 443, 1023, 1024, 65535});
            s.dport = numberList(65535, {0, 53, 80, 443, 1023, 1024, 65535});
        }
        if (chance(4)) {
            s.icmp_type = numberList(255, {0, 3, 8, 128, 255});
            s.icmp_code = numberList(255, {0, 1, 3, 255});
        }
        if (chance(4)) {
            s.input_ifindexes.resize(1 + below(3));
            for (auto& ifindex : s.input_ifindexes) ifindex = 1 + static_cast<uint32_t>(below(4));
        }
        if (chance(5)) {
            s.output_ifindexes.resize(1 + below(3));
            for (auto& ifindex : s.output_ifindexes) ifindex = 1 + static_cast<uint32_t>(below(4));
        }
        return s;
    }

    // Values near the criterion's boundaries, where an off-by-one would show.
    Packet packet(const MatchSpec& s) {
        Packet p;
        p.family = chance(12) ? (s.family == Family::V4 ? Family::V6 : Family::V4) : s.family;
        p.src = addressOf(addressNear(s.src, s.family), p.family);
        p.dst = addressOf(addressNear(s.dst, s.family), p.family);
        static constexpr uint8_t kProtocols[] = {0, 1, 6, 17, 47, 58, 132, 255};
        p.proto = chance(5) ? static_cast<uint8_t>(below(256)) : kProtocols[below(8)];
        p.sport = static_cast<uint16_t>(numberNear(s.sport, 65535));
        p.dport = static_cast<uint16_t>(numberNear(s.dport, 65535));
        p.icmp_type = static_cast<uint8_t>(numberNear(s.icmp_type, 255));
        p.icmp_code = static_cast<uint8_t>(numberNear(s.icmp_code, 255));
        p.ifindex = 1 + static_cast<uint32_t>(below(5));
        p.oifindex = static_cast<uint32_t>(below(6));  // 0: unrouted
        return p;
    }

  private:
    bool chance(uint64_t oneIn) { return below(oneIn) == 0; }
    uint64_t below(uint64_t n) { return rng_() % n; }

    Wide randomWide() { return (Wide{rng_()} << 64) | rng_(); }

    // Addresses mostly in a small window so that entries overlap, sometimes anywhere.
    Wide address(Family family) {
        if (chance(10)) return randomWide() & topOf(family);
        if (chance(20)) return chance(2) ? 0 : topOf(family);
        return base_ + below(64);
    }

    std::vector<AddressEntry> addressList(Family family) {
        std::vector<AddressEntry> entries(below(4));
        for (AddressEntry& e : entries) {
            e.negated = chance(3);
            Wide lo = address(family);
            Wide hi = lo;
            switch (below(5)) {
                case 0:
                    break;  // `a`
                case 1: {   // `a/len`
                    const unsigned hostBits =
                        static_cast<unsigned>(chance(4) ? below(bitsOf(family) + 1) : below(7));
                    const Wide mask = hostBits == 128 ? ~Wide{0} : (Wide{1} << hostBits) - 1;
                    lo &= ~mask;
                    hi = lo | mask;
                    break;
                }
                case 2:
                    hi = std::max(lo, address(family));
                    break;  // `a-b`
                case 3:
                    if (chance(2)) {
                        lo = 0;
                    } else {
                        hi = topOf(family);
                    }
                    break;  // `*-a`, `a-*`
                default:
                    lo = 0;
                    hi = topOf(family);
                    break;  // `*`
            }
            e.lo = addressOf(lo, family);
            e.hi = addressOf(hi, family);
        }
        return entries;
    }

    uint64_t number(uint64_t top, const std::vector<uint64_t>& favourites) {
        if (chance(3)) return below(top + 1);
        const uint64_t v = favourites[below(favourites.size())];
        return chance(3) ? std::min(top, v + below(3)) : v;
    }

    std::vector<NumberEntry> numberList(uint64_t top, const std::vector<uint64_t>& favourites) {
        std::vector<NumberEntry> entries(below(4));
        for (NumberEntry& e : entries) {
            e.negated = chance(3);
            const uint64_t a = number(top, favourites);
            switch (below(4)) {
                case 0:
                    e.lo = e.hi = a;
                    break;  // `n`
                case 1: {   // `n-m`
                    const uint64_t b = number(top, favourites);
                    e.lo = std::min(a, b);
                    e.hi = std::max(a, b);
                    break;
                }
                case 2:
                    if (chance(2)) {
                        e.lo = 0;
                        e.hi = a;
                    } else {
                        e.lo = a;
                    }
                    break;  // `*-n`, `n-*`
                default:
                    break;  // `*`: lo 0, hi UINT64_MAX
            }
        }
        return entries;
    }

    Wide addressNear(const std::vector<AddressEntry>& entries, Family family) {
        if (entries.empty() || chance(4)) return address(family);
        const AddressEntry& e = entries[below(entries.size())];
        const Wide edge = wideOf(chance(2) ? e.lo : e.hi, family);
        switch (below(3)) {
            case 0:
                return edge == 0 ? edge : edge - 1;
            case 1:
                return edge;
            default:
                return edge == topOf(family) ? edge : edge + 1;
        }
    }

    uint64_t numberNear(const std::vector<NumberEntry>& entries, uint64_t top) {
        if (entries.empty() || chance(4)) return below(top + 1);
        const NumberEntry& e = entries[below(entries.size())];
        const uint64_t edge = std::min(top, chance(2) ? e.lo : e.hi);
        switch (below(3)) {
            case 0:
                return edge == 0 ? edge : edge - 1;
            case 1:
                return edge;
            default:
                return edge == top ? edge : edge + 1;
        }
    }

    std::mt19937_64 rng_;
    Wide base_ = 0;
};

}  // namespace

TEST_CASE("CriteriaCompiler property: compiled filters match exactly the DTCP criterion") {
    Generator generate(20240501);
    int accepted = 0;
    int refused = 0;
    int overBudget = 0;
    long matchedPackets = 0;
    long missedPackets = 0;
    for (int iteration = 0; iteration < 5000; ++iteration) {
        CAPTURE(iteration);
        const MatchSpec spec = generate.spec();
        const CompileLimits limits{.max_filters = iteration % 3 ? 4096u : 64u,
                                   .allow_wide = iteration % 2 == 0};
        const Oracle oracle(spec, limits);
        const CompileResult result = compile(spec, limits);

        REQUIRE(result.ok() == !oracle.refused);
        if (!result.ok()) {
            ++refused;
            // The generator writes only well-formed values, so every refusal is 432.
            REQUIRE(result.error().status == CompileStatus::ImproperFilter);
            overBudget += result.error().reason.starts_with("more than");
            continue;
        }
        ++accepted;
        const std::vector<Filter>& filters = result.filters();
        REQUIRE(filters.size() == oracle.expectedFilters);
        REQUIRE(allValid(filters));
        if (filters.size() <= 512) REQUIRE(pairwiseDisjoint(filters));

        for (int i = 0; i < 60; ++i) {
            const Packet packet = generate.packet(spec);
            int matching = 0;
            for (const Filter& f : filters) matching += filterMatches(f, packet);
            REQUIRE(matching <= 1);  // disjoint: a packet is counted once
            REQUIRE((matching == 1) == oracle.matches(packet));
            (matching ? matchedPackets : missedPackets)++;
        }
    }
    // The generator must exercise both outcomes of every check, not just one.
    CHECK(accepted > 1500);
    CHECK(refused > 500);
    CHECK(overBudget > 50);
    CHECK(matchedPackets > 10000);
    CHECK(missedPackets > 10000);
}
