#include "delivery/DeliveryParams.h"

#include <algorithm>

namespace xtap::delivery {

namespace {

size_t addressBytes(Family family) {
    return family == Family::V4 ? 4 : 16;
}

bool isV4Clean(const Address& address) {
    return std::all_of(address.begin() + 4, address.end(), [](uint8_t b) { return b == 0; });
}

bool sameAddress(Family family, const Address& a, const Address& b) {
    return std::equal(a.begin(), a.begin() + addressBytes(family), b.begin());
}

}  // namespace

Result<void> validate(const OuterHeader& outer) {
    if (outer.family != Family::V4 && outer.family != Family::V6) {
        return DeliveryError::InvalidFamily;
    }
    if (outer.family == Family::V4 && (!isV4Clean(outer.source) || !isV4Clean(outer.destination))) {
        return DeliveryError::InvalidAddress;
    }
    if (outer.destination_port == 0) {
        return DeliveryError::InvalidPort;
    }
    if (outer.ttl == 0) {
        return DeliveryError::InvalidTtl;
    }
    return {};
}

Result<void> validate(const Encapsulation& encapsulation) {
    if (encapsulation.format == Format::Jmirror && encapsulation.intercept_id > kMaxInterceptId) {
        return DeliveryError::InterceptIdTooWide;
    }
    return {};
}

Result<void> validate(const DeliveryParams& params) {
    if (auto outer = validate(params.outer); !outer) {
        return outer;
    }
    return validate(params.encapsulation);
}

bool sameCopy(const DeliveryParams& a, const DeliveryParams& b) {
    const OuterHeader& x = a.outer;
    const OuterHeader& y = b.outer;
    if (x.family != y.family || x.source_port != y.source_port ||
        x.destination_port != y.destination_port || x.ttl != y.ttl ||
        !sameAddress(x.family, x.source, y.source) ||
        !sameAddress(x.family, x.destination, y.destination)) {
        return false;
    }
    if (a.encapsulation.format != b.encapsulation.format) {
        return false;
    }
    if (a.encapsulation.format == Format::Flowtap) {
        return true;
    }
    // Compare what goes on the wire: the low 30 bits of the intercept ID.
    return (a.encapsulation.intercept_id & kMaxInterceptId) ==
               (b.encapsulation.intercept_id & kMaxInterceptId) &&
           a.encapsulation.session_id == b.encapsulation.session_id;
}

}  // namespace xtap::delivery
