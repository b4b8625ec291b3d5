// trieCoverCount: the size of the minimal prefix cover of [lo, hi], by
// definition rather than by the compiler's algorithm: walk the binary trie of
// the address space and count each node whose block lies inside the range
// (its parent does not). The unit tests and the criteria fuzz target check
// PrefixCover against it.
#pragma once

#include <cstdint>

namespace xtap::test {

inline uint64_t trieCoverCount(unsigned __int128 lo, unsigned __int128 hi, unsigned __int128 base,
                               unsigned blockBits) {
    using Wide = unsigned __int128;
    const Wide last = base + (blockBits == 128 ? ~Wide{0} : (Wide{1} << blockBits) - 1);
    if (last < lo || base > hi) return 0;
    if (lo <= base && last <= hi) return 1;
    const Wide half = Wide{1} << (blockBits - 1);
    return trieCoverCount(lo, hi, base, blockBits - 1) +
           trieCoverCount(lo, hi, base + half, blockBits - 1);
}

}  // namespace xtap::test
