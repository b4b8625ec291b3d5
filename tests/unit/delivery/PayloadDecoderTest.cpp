#include <doctest/doctest.h>

#include "delivery/Encapsulator.h"
#include "delivery/PayloadDecoder.h"
#include "TestPackets.h"

using namespace xtap::delivery;
using namespace xtap::delivery::test;

namespace {

Bytes span2bytes(std::span<const uint8_t> s) {
    return Bytes(s.begin(), s.end());
}

}  // namespace

TEST_CASE("decoder: a first nibble of 4 or 6 is a flowtap copy") {
    for (const Bytes* inner : {&kInner4, &kInner6}) {
        auto copy = decodePayload(*inner);
        REQUIRE(copy.ok());
        CHECK(copy->format == Format::Flowtap);
        CHECK(copy->family == (inner == &kInner4 ? Family::V4 : Family::V6));
        CHECK(copy->intercept_id == 0);
        CHECK(copy->session_id == 0);
        CHECK(copy->packet.data() == inner->data());
        CHECK(copy->packet.size() == inner->size());
    }
}

TEST_CASE("decoder: otherwise an 8-byte JMirror header precedes the packet") {
    for (const Bytes* inner : {&kInner4, &kInner6}) {
        const Bytes payload = concat({kJmirrorHeader, *inner});
        auto copy = decodePayload(payload);
        REQUIRE(copy.ok());
        CHECK(copy->format == Format::Jmirror);
        CHECK(copy->intercept_id == kInterceptId);
        CHECK(copy->session_id == kSessionId);
        CHECK(copy->family == (inner == &kInner4 ? Family::V4 : Family::V6));
        CHECK(span2bytes(copy->packet) == *inner);
        CHECK(copy->packet.data() == payload.data() + 8);
    }
}

TEST_CASE("decoder reads back what the encapsulator writes") {
    const DeliveryParams params[] = {flowtap(outer4()), jmirror(outer4()), jmirror(outer6(), 0, 0),
                                     jmirror(outer6(), kMaxInterceptId, 0xffffffff)};
    for (const DeliveryParams& p : params) {
        auto encapsulator = Encapsulator::create(p);
        REQUIRE(encapsulator.ok());
        for (const Bytes* inner : {&kInner4, &kInner6}) {
            Bytes payload(128);
            auto size = encapsulator->encapsulate(*inner, payload);
            REQUIRE(size.ok());
            payload.resize(*size);
            auto copy = decodePayload(payload, p.encapsulation.format);
            REQUIRE(copy.ok());
            CHECK(copy->format == p.encapsulation.format);
            if (p.encapsulation.format == Format::Jmirror) {
                CHECK(copy->intercept_id == p.encapsulation.intercept_id);
                CHECK(copy->session_id == p.encapsulation.session_id);
            }
            CHECK(span2bytes(copy->packet) == *inner);
        }
    }
}

TEST_CASE("decoder: an expected format makes the other one an error") {
    const Bytes jm = concat({kJmirrorHeader, kInner4});
    CHECK(decodePayload(kInner4, Format::Flowtap).ok());
    CHECK(decodePayload(jm, Format::Jmirror).ok());
    CHECK(decodePayload(kInner4, Format::Jmirror).error() == DeliveryError::FormatMismatch);
    CHECK(decodePayload(kInner6, Format::Jmirror).error() == DeliveryError::FormatMismatch);
    CHECK(decodePayload(jm, Format::Flowtap).error() == DeliveryError::FormatMismatch);
}

TEST_CASE("decoder rejects payloads that are neither format") {
    SUBCASE("empty or shorter than a JMirror header") {
        CHECK(decodePayload({}).error() == DeliveryError::UnknownFormat);
        CHECK(decodePayload(Bytes{0x00, 0x01, 0x02}).error() == DeliveryError::UnknownFormat);
    }
    SUBCASE("JMirror version bits not 0") {
        Bytes payload = concat({kJmirrorHeader, kInner4});
        payload[0] = 0x80 | (payload[0] & 0x3f);
        CHECK(decodePayload(payload).error() == DeliveryError::UnknownFormat);
        payload[0] = 0x5b;  // first nibble 5: not IP, not JMirror version 0
        CHECK(decodePayload(payload).error() == DeliveryError::UnknownFormat);
    }
    SUBCASE("JMirror header with nothing or no IP behind it") {
        CHECK(decodePayload(kJmirrorHeader).error() == DeliveryError::TruncatedPacket);
        Bytes payload = concat({kJmirrorHeader, kInner4});
        payload[8] = 0x25;
        CHECK(decodePayload(payload).error() == DeliveryError::NotIp);
    }
    SUBCASE("inner packet cut short or followed by extra bytes") {
        Bytes cut(kInner6.begin(), kInner6.end() - 1);
        CHECK(decodePayload(cut).error() == DeliveryError::TruncatedPacket);
        CHECK(decodePayload(concat({kJmirrorHeader, cut})).error() ==
              DeliveryError::TruncatedPacket);
        Bytes longer = kInner4;
        longer.push_back(0);
        CHECK(decodePayload(longer).error() == DeliveryError::LengthMismatch);
        CHECK(decodePayload(concat({kJmirrorHeader, longer})).error() ==
              DeliveryError::LengthMismatch);
    }
}
