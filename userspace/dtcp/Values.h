// Values: the value syntax of DTCP fields (dtcp.md §4): bounded decimal
// integers, address and numeric lists with ranges, wildcards and `!` negation,
// and `\ddd` escapes in identifiers. Lists become criteria::MatchSpec entries.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "criteria/MatchSpec.h"
#include "dataplane/Filter.h"
#include "dtcp/Result.h"

namespace xtap::dtcp {

// Decimal integer types: digit count and largest value.
//   N8 1-3 digits <= 255, N16 1-5 <= 65535, N32 1-10 <= 2^32-1,
//   N64 1-20 <= 2^64-1, DAYSEC 1-5 <= 86400.
enum class IntegerKind : uint8_t { N8, N16, N32, N64, DaySec };

uint64_t maxValue(IntegerKind kind);
unsigned maxDigits(IntegerKind kind);

// Digits only (no sign, no whitespace), within the kind's digit count and range.
std::optional<uint64_t> parseInteger(std::string_view text, IntegerKind kind);

// Syntax: the text is not a value of the field's syntax, or a number is out of
// range (400). Improper: well formed but not a usable filter, e.g. an address of
// the other family or a reversed range (432 for match fields).
enum class ValueProblem : uint8_t { Syntax, Improper };

struct ValueError {
    ValueProblem problem = ValueProblem::Syntax;
    std::string detail;
};

struct IpAddress {
    dataplane::Family family = dataplane::Family::V4;
    dataplane::Address bytes{};  // IPv4 in the first 4 bytes
    bool operator==(const IpAddress&) const = default;
};

// An IPv4 (dotted quad) or IPv6 address, by inet_pton.
std::optional<IpAddress> parseIpAddress(std::string_view text);
std::string formatIpAddress(const IpAddress& address);

// A comma list of `a`, `a/len`, `a-b`, `a-*`, `*-a`, `*`, each optionally
// preceded by `!`, for a criterion of `family`. `a/len` keeps the whole prefix
// even when `a` has host bits set.
Result<std::vector<criteria::AddressEntry>, ValueError> parseAddressList(std::string_view text,
                                                                         dataplane::Family family);

// A comma list of `n`, `n-m`, `n-*`, `*-n`, `*`, each optionally preceded by
// `!`. `*` as a bound stands for 0 or for the kind's largest value.
Result<std::vector<criteria::NumberEntry>, ValueError> parseNumberList(std::string_view text,
                                                                       IntegerKind kind);

// DTCP list semantics: a value matches when it lies in at least one plain entry
// (a list without plain entries starts from `*`) and in no negated entry.
bool numberListMatches(const std::vector<criteria::NumberEntry>& list, uint64_t value);
bool addressListMatches(const std::vector<criteria::AddressEntry>& list,
                        const dataplane::Address& address);

// Whether the list leaves out some value of the kind (it is not `*`). Lists that
// only add up to everything, like `0-99, 100-*`, count as constraints.
bool constrainsNumbers(const std::vector<criteria::NumberEntry>& list, IntegerKind kind);

// Whether the list names addresses: it has a plain entry narrower than the whole
// family. A list of only negated entries matches nearly everything and does not.
bool anchorsAddresses(const std::vector<criteria::AddressEntry>& list, dataplane::Family family);

// Decodes `\ddd` (three decimal digits, at most 255) to the byte it stands for.
// A backslash not followed by such digits is an error.
Result<std::string, ValueError> unescapeIdentifier(std::string_view text);
// Escapes bytes that cannot appear as such in an identifier value: controls,
// space, non-ASCII, `\`, `,` and `:`.
std::string escapeIdentifier(std::string_view identifier);

}  // namespace xtap::dtcp
