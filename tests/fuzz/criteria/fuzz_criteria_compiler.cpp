// libFuzzer entry point for the criteria compiler: the input's first byte
// picks the options, the rest are the match lines of a DTCP ADD request. The
// request is signed and decoded as xtapd decodes it; an ADD that decodes is
// compiled, and the filters are held to dtcp.md §4 by an oracle that shares no
// code with the compiler (the property test's rules, restated):
//   - the compiler refuses exactly what the rules refuse (432, over budget);
//   - every filter is well formed and of the criterion's family;
//   - for packets at the boundaries of every entry, "the criterion matches"
//     equals "some filter matches" under ReferenceMatcher's filterMatches, and
//     at most one filter matches (the filters are disjoint);
//   - compiling twice gives the same filters.
// Sanitizer reports and broken invariants (__builtin_trap) are findings.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <variant>
#include <vector>

#include "criteria/CriteriaCompiler.h"
#include "dataplane/Filter.h"
#include "dataplane/ReferenceMatcher.h"
#include "dtcp/Hmac.h"
#include "dtcp/RequestDecoder.h"
#include "tests/support/TrieCover.h"

namespace {

using namespace xtap;
using criteria::AddressEntry;
using criteria::MatchSpec;
using criteria::NumberEntry;
using dataplane::Address;
using dataplane::Family;
using dataplane::Filter;
using dataplane::PacketFields;
using test::trieCoverCount;

using Wide = unsigned __int128;

constexpr std::string_view kKey = "Juniper";

void require(bool condition) {
    if (!condition) __builtin_trap();
}

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
    return listMatches(entries,
                       [value](const NumberEntry& e) { return e.lo <= value && value <= e.hi; });
}

bool addressMatches(const std::vector<AddressEntry>& entries, Family family, Wide value) {
    return listMatches(entries, [&](const AddressEntry& e) {
        return wideOf(e.lo, family) <= value && value <= wideOf(e.hi, family);
    });
}

// Maximal runs of member values: membership changes only at an entry's start or
// just past its end.
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

struct Oracle {
    const MatchSpec& spec;
    bool portsConstrained = false;
    bool icmpConstrained = false;
    std::set<unsigned> protocols;
    bool refused = false;
    Wide expectedFilters = 0;

    Oracle(const MatchSpec& s, const criteria::CompileLimits& limits) : spec(s) {
        const auto srcRuns = addressRuns(spec.src, spec.family);
        const auto dstRuns = addressRuns(spec.dst, spec.family);
        const auto sportRuns = numberRuns(spec.sport, 65535);
        const auto dportRuns = numberRuns(spec.dport, 65535);
        const auto typeRuns = numberRuns(spec.icmp_type, 255);
        const auto codeRuns = numberRuns(spec.icmp_code, 255);
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
            Wide prefixes = 0;
            for (const auto& [lo, hi] : *runs)
                prefixes += trieCoverCount(lo, hi, 0, bitsOf(spec.family));
            // Saturate: a product above the budget only has to stay above it.
            count = std::min<Wide>(count * prefixes, Wide{1} << 80);
        }
        count *= protocols.size() == 256 ? 1 : protocols.size();
        if (portsConstrained) count *= sportRuns.size() * dportRuns.size();
        if (icmpConstrained) count *= typeRuns.size() * codeRuns.size();
        const std::set<uint32_t> ifindexes(spec.input_ifindexes.begin(),
                                           spec.input_ifindexes.end());
        count *= std::max<std::size_t>(1, ifindexes.size());
        refused = count > limits.max_filters;
        expectedFilters = count;
    }

    bool matches(const PacketFields& packet, uint32_t ifindex) const {
        if (packet.family != spec.family) return false;
        if (!addressMatches(spec.src, spec.family, wideOf(packet.src, spec.family))) return false;
        if (!addressMatches(spec.dst, spec.family, wideOf(packet.dst, spec.family))) return false;
        if (!protocols.count(packet.proto)) return false;
        if (portsConstrained && (!numberMatches(spec.sport, packet.sport) ||
                                 !numberMatches(spec.dport, packet.dport))) {
            return false;
        }
        if (icmpConstrained && (!numberMatches(spec.icmp_type, packet.sport) ||
                                !numberMatches(spec.icmp_code, packet.dport))) {
            return false;
        }
        const auto& ifs = spec.input_ifindexes;
        return ifs.empty() || std::find(ifs.begin(), ifs.end(), ifindex) != ifs.end();
    }
};

// ---- Boundary packets --------------------------------------------------------------

template <typename T>
void addNear(std::vector<T>& out, T lo, T hi, T top) {
    out.push_back(lo);
    out.push_back(hi > top ? top : hi);
    if (lo > 0) out.push_back(lo - 1);
    if (hi < top) out.push_back(hi + 1);
}

std::vector<Wide> addressCandidates(const std::vector<AddressEntry>& entries, Family family) {
    std::vector<Wide> out{0, topOf(family)};
    for (const AddressEntry& e : entries) {
        addNear(out, wideOf(e.lo, family), wideOf(e.hi, family), topOf(family));
    }
    return out;
}

std::vector<uint64_t> numberCandidates(const std::vector<NumberEntry>& entries, uint64_t top,
                                       std::initializer_list<uint64_t> extra) {
    std::vector<uint64_t> out(extra);
    for (const NumberEntry& e : entries) addNear(out, std::min(e.lo, top), e.hi, top);
    return out;
}

// A deterministic walk over the candidate lists, seeded by the input.
struct Picker {
    uint64_t state;
    template <typename T>
    const T& pick(const std::vector<T>& values) {
        state = state * 6364136223846793005ULL + 1442695040888963407ULL;
        return values[(state >> 33) % values.size()];
    }
};

void checkFilters(const MatchSpec& spec, const criteria::CompileLimits& limits,
                  std::string_view input) {
    const criteria::CompileResult result = criteria::compile(spec, limits);
    const Oracle oracle(spec, limits);
    require(result.ok() == !oracle.refused);
    if (!result.ok()) {
        const auto status = result.error().status;
        require(status == criteria::CompileStatus::ImproperFilter ||
                status == criteria::CompileStatus::BadRequest);
        return;
    }
    const std::vector<Filter>& filters = result.filters();
    require(!filters.empty());
    require(filters.size() <= limits.max_filters);
    require(Wide{filters.size()} == oracle.expectedFilters);
    for (const Filter& f : filters) {
        require(f.family == spec.family);
        require(dataplane::validate(f).empty());
    }
    const criteria::CompileResult again = criteria::compile(spec, limits);
    require(again.ok() && again.filters() == filters);

    const auto srcs = addressCandidates(spec.src, spec.family);
    const auto dsts = addressCandidates(spec.dst, spec.family);
    const auto protos = numberCandidates(spec.proto, 255, {0, 1, 6, 17, 58, 132, 255});
    std::vector<uint64_t> firsts = numberCandidates(spec.sport, 65535, {0, 65535});
    std::vector<uint64_t> seconds = numberCandidates(spec.dport, 65535, {0, 65535});
    const auto types = numberCandidates(spec.icmp_type, 255, {0, 255});
    const auto codes = numberCandidates(spec.icmp_code, 255, {0, 255});
    firsts.insert(firsts.end(), types.begin(), types.end());
    seconds.insert(seconds.end(), codes.begin(), codes.end());
    const std::vector<uint32_t> ifindexes{1, 2, 3, 4, 5};

    Picker picker{0x9e3779b97f4a7c15ULL ^ input.size()};
    for (char c : input) picker.state = picker.state * 31 + static_cast<uint8_t>(c);
    // Enough packets to reach every boundary of a short list; bounded for long ones.
    const std::size_t samples = std::min<std::size_t>(256, 16 + 2 * (srcs.size() + dsts.size()));
    for (std::size_t i = 0; i < samples; ++i) {
        PacketFields p;
        p.family = spec.family;
        p.src = addressOf(picker.pick(srcs), spec.family);
        p.dst = addressOf(picker.pick(dsts), spec.family);
        p.proto = static_cast<uint8_t>(picker.pick(protos));
        p.l4_known = true;
        // ICMP type and code are single bytes on the wire (the parser stores
        // them in the port fields); other protocols take any port value.
        const bool icmp = p.proto == 1 || p.proto == 58;
        p.sport = static_cast<uint16_t>(picker.pick(icmp ? types : firsts));
        p.dport = static_cast<uint16_t>(picker.pick(icmp ? codes : seconds));
        const uint32_t ifindex = picker.pick(ifindexes);
        std::size_t hits = 0;
        for (const Filter& f : filters) hits += dataplane::filterMatches(f, p, ifindex) ? 1 : 0;
        require(hits <= 1);
        require((hits == 1) == oracle.matches(p, ifindex));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    if (size == 0) return 0;
    // Byte 0: bit 0 allow wide criteria, bit 1 a small filter budget.
    const uint8_t options = data[0];
    const std::string_view lines(reinterpret_cast<const char*>(data) + 1, size - 1);

    std::string covered = "ADD DTCP/0.8\r\nCsource-ID: md1\r\nCdest-ID: cd1\r\nSeq: 1\r\n";
    covered += lines;
    if (!covered.ends_with("\r\n")) covered += "\r\n";
    const std::string message =
        covered + "Authentication-Info: " + dtcp::hmacSha1Hex(kKey, covered) + "\r\n\r\n";

    dtcp::DecodePolicy policy;
    policy.allow_wide_criteria = (options & 1) != 0;
    dtcp::SeqWindow window;
    const dtcp::DecodeOutcome outcome = dtcp::decodeRequest(message, "md1", kKey, window, policy);
    const auto* request = std::get_if<dtcp::DecodedRequest>(&outcome);
    if (!request) return 0;
    const auto* add = std::get_if<dtcp::AddRequest>(&request->body);
    if (!add) return 0;

    MatchSpec spec = add->match;
    // What the controller does with X-JTap-Input-Interface: one index per name.
    for (const std::string& name : add->input_interfaces) {
        uint32_t index = 0;
        for (char c : name) index += static_cast<uint8_t>(c);
        spec.input_ifindexes.push_back(1 + index % 4);
    }
    criteria::CompileLimits limits;
    limits.allow_wide = policy.allow_wide_criteria;
    if (options & 2) limits.max_filters = 64;
    checkFilters(spec, limits, lines);
    return 0;
}
