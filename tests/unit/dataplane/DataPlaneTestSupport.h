// Test helpers shared by the DataPlane tests.
#pragma once

#include <doctest/doctest.h>

#include <cstdint>
#include <variant>

#include "dataplane/DataPlane.h"

namespace xtap::test {

using dataplane::Family;
using dataplane::Filter;
using dataplane::PublishResult;
using dataplane::SlotRef;

// An IPv4 source prefix a.b.c.d/len, the host bits cleared as validate() wants.
inline Filter v4Source(uint8_t a, uint8_t b, uint8_t c, uint8_t d, uint8_t len) {
    Filter f;
    f.family = Family::V4;
    f.src = {{a, b, c, d}, len};
    for (unsigned bit = len; bit < 32; ++bit) f.src.addr[bit / 8] &= uint8_t(~(0x80 >> (bit % 8)));
    return f;
}

// The slot of a publication that must have succeeded.
inline SlotRef ok(const PublishResult& r) {
    REQUIRE(std::holds_alternative<SlotRef>(r));
    return std::get<SlotRef>(r);
}

}  // namespace xtap::test
