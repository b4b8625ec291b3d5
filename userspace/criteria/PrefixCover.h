// PrefixCover: addresses as integers, and the minimal set of CIDR prefixes that
// covers an inclusive address range (what the data plane's prefix masks need).
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/Filter.h"

namespace xtap::criteria {

// Wide enough for IPv6; an IPv4 address uses the low 32 bits.
using Uint128 = unsigned __int128;

// The family's largest address: 2^32 - 1 or 2^128 - 1.
Uint128 maxAddress(dataplane::Family family);

// True when `address` belongs to the family: an IPv4 address has bytes 4..15 zero.
bool fitsFamily(const dataplane::Address& address, dataplane::Family family);

// Network byte order <-> integer. IPv4 reads and writes the first 4 bytes only.
Uint128 toInteger(const dataplane::Address& address, dataplane::Family family);
dataplane::Address toAddress(Uint128 value, dataplane::Family family);

// Number of prefixes in the minimal cover of [lo, hi], lo <= hi <= maxAddress(family):
// at most 2 * bits - 2 (62 for IPv4, 254 for IPv6). Cheap: no prefixes are built.
uint64_t prefixCount(Uint128 lo, Uint128 hi, dataplane::Family family);

// The minimal cover itself: disjoint prefixes in ascending address order whose union
// is exactly [lo, hi].
std::vector<dataplane::Prefix> prefixCover(Uint128 lo, Uint128 hi, dataplane::Family family);

}  // namespace xtap::criteria
