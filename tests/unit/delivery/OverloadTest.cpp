#include <doctest/doctest.h>

#include "delivery/Overload.h"

using namespace xtap::delivery;
using namespace std::chrono_literals;

namespace {
const TokenBucket::Clock::time_point start{};  // the injected clock's origin
const OverloadKey md1_cd1{"md1", "cd1"};
const OverloadKey md2_cd1{"md2", "cd1"};
}  // namespace

TEST_CASE("an unconfigured destination is unlimited and never reported") {
    OverloadMonitor m;
    for (int i = 0; i < 100; ++i) CHECK(m.admit(md1_cd1, 1, 9, 65535, start));
    for (int i = 0; i < 20; ++i) {
        const auto t = m.tick();
        CHECK(t.alerts.empty());
        CHECK(t.drops.empty());
    }
}

TEST_CASE("drops are counted per criterion and reported every 10 s to the destination's user") {
    OverloadMonitor m;
    m.configure(md1_cd1, 80000, start);  // 10000 bytes/s, reserve 2500
    m.configure(md2_cd1, 0, start);      // md2's cd1 unlimited
    int sent5 = 0, sent1 = 0;
    for (int i = 0; i < 10; ++i) {
        sent5 += m.admit(md1_cd1, 5, 3, 1000, start);  // less important
        sent1 += m.admit(md1_cd1, 7, 1, 1000, start);
    }
    CHECK(sent5 < sent1);  // shed first
    CHECK(sent5 + sent1 == 10);
    CHECK(m.admit(md2_cd1, 5, 3, 100000, start));
    for (int i = 0; i < 9; ++i) CHECK(m.tick().drops.empty());
    const auto t = m.tick();
    REQUIRE(t.drops.size() == 2);
    CHECK(t.drops[0].key == md1_cd1);
    CHECK(t.drops[0].criteria_id == 5);
    CHECK(t.drops[0].packets == uint64_t(10 - sent5));
    CHECK(t.drops[0].bytes == uint64_t(10 - sent5) * 1000);
    CHECK(t.drops[1].criteria_id == 7);
    CHECK(t.drops[1].packets == uint64_t(10 - sent1));
    // Reported once: the next period starts from zero.
    for (int i = 0; i < 10; ++i) CHECK(m.tick().drops.empty());
}

TEST_CASE("580 after a 10 s average above 80% of max, at most once per 10 s") {
    OverloadMonitor m;
    m.configure(md1_cd1, 80000, start);  // alert at 64000 bps = 8000 bytes/s
    auto t = start;
    std::vector<CongestionAlert> alerts;
    for (int s = 0; s < 25; ++s) {
        for (int i = 0; i < 9; ++i) m.admit(md1_cd1, 1, 1, 1000, t);  // 72000 bps offered
        t += 1s;
        for (auto& a : m.tick().alerts) alerts.push_back(a);
    }
    REQUIRE(alerts.size() == 2);  // at 10 s and 20 s
    CHECK(alerts[0].key == md1_cd1);
    CHECK(alerts[0].average_bps == 72000);
    CHECK(alerts[0].alert_bps == 64000);
    CHECK(alerts[0].max_bps == 80000);
}

TEST_CASE("no 580 below the alert bandwidth") {
    OverloadMonitor m;
    m.configure(md1_cd1, 80000, start);
    auto t = start;
    for (int s = 0; s < 30; ++s) {
        for (int i = 0; i < 8; ++i) m.admit(md1_cd1, 1, 1, 1000, t);  // exactly 64000 bps
        t += 1s;
        CHECK(m.tick().alerts.empty());
    }
}

TEST_CASE("removing a limit forgets it") {
    OverloadMonitor m;
    m.configure(md1_cd1, 16000, start);
    CHECK(m.admit(md1_cd1, 1, 1, 2000, start));
    CHECK_FALSE(m.admit(md1_cd1, 1, 1, 1, start));
    m.configure(md1_cd1, 16000, start);  // same rate: state kept
    CHECK_FALSE(m.admit(md1_cd1, 1, 1, 1, start));
    m.configure(md1_cd1, 0, start);
    CHECK(m.admit(md1_cd1, 1, 1, 1 << 20, start));
}
