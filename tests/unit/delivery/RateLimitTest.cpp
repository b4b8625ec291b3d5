#include <doctest/doctest.h>

#include "delivery/RateLimit.h"

using namespace xtap::delivery;
using namespace std::chrono_literals;

namespace {
const TokenBucket::Clock::time_point t0{};  // the injected clock's origin
}

TEST_CASE("an unlimited bucket admits everything") {
    TokenBucket b(0, t0);
    CHECK(b.unlimited());
    for (int i = 0; i < 1000; ++i) CHECK(b.admit(65535, 9, t0));
}

TEST_CASE("the bucket holds one second and refills at the rate") {
    TokenBucket b(80000, t0);  // 10000 bytes/s
    CHECK(b.capacityBytes() == 10000);
    int admitted = 0;
    for (int i = 0; i < 20; ++i) admitted += b.admit(1000, 1, t0);
    CHECK(admitted == 10);  // the important class may drain it fully
    CHECK_FALSE(b.admit(1, 1, t0));
    CHECK(b.admit(1000, 1, t0 + 100ms));  // 100 ms = 1000 bytes
    CHECK_FALSE(b.admit(1, 1, t0 + 100ms));
    // A long idle gap refills to one second, no more.
    CHECK(b.tokens() == 0);
    CHECK(b.admit(1, 1, t0 + 1h));
    CHECK(b.tokens() == 9999);
}

TEST_CASE("fractions of a byte carry over between refills") {
    TokenBucket b(8000, t0);  // 1000 bytes/s: one byte per ms
    for (int i = 0; i < 1000; ++i) REQUIRE(b.admit(1, 1, t0));
    auto t = t0;
    int admitted = 0;
    for (int i = 0; i < 2000; ++i) {  // 2000 steps of 0.5 ms = 1000 bytes
        t += 500us;
        admitted += b.admit(1, 1, t);
    }
    CHECK(admitted == 1000);
}

TEST_CASE("less important copies are shed before the reserve") {
    TokenBucket b(80000, t0);  // 10000 bytes, reserve 2500
    int low = 0;
    for (int i = 0; i < 20; ++i) low += b.admit(1000, 5, t0);
    CHECK(low == 7);  // 3000 left: one more would cut into the reserve
    CHECK_FALSE(b.admit(1000, 2, t0));
    CHECK(b.admit(1000, 1, t0));  // Priority 1 still goes
    CHECK(b.admit(1000, 0, t0));
    CHECK(b.admit(1000, 1, t0));
    CHECK_FALSE(b.admit(1000, 1, t0));  // 0 left
}

TEST_CASE("a clock that goes backwards adds nothing") {
    TokenBucket b(80000, t0 + 10s);
    while (b.admit(1000, 1, t0 + 10s)) {
    }
    CHECK_FALSE(b.admit(1000, 1, t0 + 5s));
    CHECK(b.admit(1000, 1, t0 + 10s + 100ms));
}

TEST_CASE("the highest rate the config allows does not overflow") {
    TokenBucket b(UINT64_MAX, t0);
    CHECK(b.admit(1500, 9, t0 + 999ms));
    CHECK(b.tokens() == b.capacityBytes() - 1500);
}

TEST_CASE("the 10 s window averages closed seconds") {
    RateWindow w;
    for (int i = 0; i < 9; ++i) {
        w.add(1000);
        w.closeSecond();
    }
    CHECK_FALSE(w.full());
    CHECK(w.averageBps() == 0);
    w.add(1000);
    w.closeSecond();
    CHECK(w.averageBps() == 8000);
    for (int i = 0; i < 5; ++i) w.closeSecond();  // 5 idle seconds
    CHECK(w.averageBps() == 4000);
    w.add(999);  // the open second does not count yet
    CHECK(w.averageBps() == 4000);
}
