#include "dataplane/Filter.h"

namespace xtap::dataplane {

namespace {
// Every bit past the prefix length (and past the family's width) must be zero.
bool hostBitsZero(const Prefix& p) {
    for (unsigned i = p.len; i < 128; ++i) {
        if ((p.addr[i / 8] >> (7 - i % 8)) & 1) return false;
    }
    return true;
}
}  // namespace

std::string validate(const Filter& f) {
    if (f.family != Family::V4 && f.family != Family::V6) return "unknown address family";
    const unsigned bits = addressBits(f.family);
    if (f.src.len > bits) return "source prefix longer than the address";
    if (f.dst.len > bits) return "destination prefix longer than the address";
    if (!hostBitsZero(f.src)) return "source prefix has host bits set";
    if (!hostBitsZero(f.dst)) return "destination prefix has host bits set";
    if (f.sport.lo > f.sport.hi || f.dport.lo > f.dport.hi) return "empty port range";
    if (f.needsL4()) {
        if (!f.proto) return "port or ICMP constraint without a protocol";
        if (!hasPorts(*f.proto) && !isIcmp(*f.proto))
            return "port or ICMP constraint on a protocol without them";
        const bool type_too_big = !f.sport.any() && f.sport.hi > 255;
        const bool code_too_big = !f.dport.any() && f.dport.hi > 255;
        if (isIcmp(*f.proto) && (type_too_big || code_too_big))
            return "ICMP type or code above 255";
    }
    return {};
}

}  // namespace xtap::dataplane
