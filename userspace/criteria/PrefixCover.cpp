#include "criteria/PrefixCover.h"

#include <algorithm>
#include <bit>

namespace xtap::criteria {

using dataplane::Address;
using dataplane::Family;
using dataplane::Prefix;

namespace {

constexpr Uint128 kAllOnes = ~Uint128{0};

unsigned byteCount(Family family) {
    return dataplane::addressBits(family) / 8;
}

// Trailing zero bits of a non-zero value.
unsigned countTrailingZeros(Uint128 value) {
    const auto low = static_cast<uint64_t>(value);
    if (low != 0) return static_cast<unsigned>(std::countr_zero(low));
    return 64 + static_cast<unsigned>(std::countr_zero(static_cast<uint64_t>(value >> 64)));
}

// floor(log2(value)) of a non-zero value.
unsigned floorLog2(Uint128 value) {
    const auto high = static_cast<uint64_t>(value >> 64);
    if (high != 0) return 64 + static_cast<unsigned>(std::bit_width(high)) - 1;
    return static_cast<unsigned>(std::bit_width(static_cast<uint64_t>(value))) - 1;
}

Uint128 lowMask(unsigned blockBits) {
    return blockBits >= 128 ? kAllOnes : (Uint128{1} << blockBits) - 1;
}

// Greedy cover: at each start take the largest block that is aligned there and still
// ends inside the range. Those blocks are the maximal aligned blocks of the range,
// which is the unique minimal cover. Calls emit(start, blockBits) in ascending order.
template <typename Emit>
void forEachCoverBlock(Uint128 lo, Uint128 hi, Family family, Emit&& emit) {
    const unsigned bits = dataplane::addressBits(family);
    while (true) {
        const unsigned alignBits = lo == 0 ? bits : std::min(bits, countTrailingZeros(lo));
        // hi - lo + 1 overflows only for the whole IPv6 space.
        const unsigned sizeBits = hi - lo == kAllOnes ? 128 : floorLog2(hi - lo + 1);
        const unsigned blockBits = std::min(alignBits, sizeBits);
        emit(lo, blockBits);
        const Uint128 end = lo + lowMask(blockBits);
        if (end == hi) return;
        lo = end + 1;
    }
}

}  // namespace

Uint128 maxAddress(Family family) {
    return family == Family::V4 ? Uint128{0xffffffffu} : kAllOnes;
}

bool fitsFamily(const Address& address, Family family) {
    return std::all_of(address.begin() + byteCount(family), address.end(),
                       [](uint8_t byte) { return byte == 0; });
}

Uint128 toInteger(const Address& address, Family family) {
    Uint128 value = 0;
    for (unsigned i = 0; i < byteCount(family); ++i) value = (value << 8) | address[i];
    return value;
}

Address toAddress(Uint128 value, Family family) {
    Address address{};
    for (unsigned i = byteCount(family); i-- > 0;) {
        address[i] = static_cast<uint8_t>(value);
        value >>= 8;
    }
    return address;
}

uint64_t prefixCount(Uint128 lo, Uint128 hi, Family family) {
    uint64_t count = 0;
    forEachCoverBlock(lo, hi, family, [&count](Uint128, unsigned) { ++count; });
    return count;
}

std::vector<Prefix> prefixCover(Uint128 lo, Uint128 hi, Family family) {
    const unsigned bits = dataplane::addressBits(family);
    std::vector<Prefix> prefixes;
    forEachCoverBlock(lo, hi, family, [&](Uint128 start, unsigned blockBits) {
        prefixes.push_back(
            Prefix{toAddress(start, family), static_cast<uint8_t>(bits - blockBits)});
    });
    return prefixes;
}

}  // namespace xtap::criteria
