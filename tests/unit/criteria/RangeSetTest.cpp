#include <doctest/doctest.h>

#include <cstdint>
#include <random>
#include <vector>

#include "criteria/PrefixCover.h"
#include "criteria/RangeSet.h"

using xtap::criteria::Interval;
using xtap::criteria::RangeSet;
using xtap::criteria::Uint128;

namespace {

using Numbers = RangeSet<uint64_t>;
using Intervals = std::vector<Interval<uint64_t>>;

constexpr uint64_t kMax = 65535;

}  // namespace

TEST_CASE("RangeSet: union sorts, merges overlapping and adjacent intervals") {
    const Numbers set = Numbers::unionOf({{20, 30}, {1, 5}, {6, 9}, {25, 40}, {50, 50}, {3, 4}});
    CHECK(set.intervals() == Intervals{{1, 9}, {20, 40}, {50, 50}});
}

TEST_CASE("RangeSet: union merges at the top of the domain without overflow") {
    constexpr uint64_t top = UINT64_MAX;
    const Numbers set = Numbers::unionOf({{top, top}, {top - 1, top - 1}, {0, 0}});
    CHECK(set.intervals() == Intervals{{0, 0}, {top - 1, top}});

    const Uint128 max128 = ~Uint128{0};
    const auto wide = RangeSet<Uint128>::unionOf({{max128, max128}, {0, max128 - 1}});
    CHECK(wide.isAll(max128));
}

TEST_CASE("RangeSet: the empty union is empty") {
    CHECK(Numbers::unionOf({}).empty());
    CHECK_FALSE(Numbers::unionOf({}).contains(0));
}

TEST_CASE("RangeSet: minus splits, trims and removes") {
    const Numbers all = Numbers::all(kMax);
    CHECK(all.minus(Numbers::unionOf({{80, 80}})).intervals() == Intervals{{0, 79}, {81, kMax}});
    CHECK(all.minus(Numbers::unionOf({{0, 0}})).intervals() == Intervals{{1, kMax}});
    CHECK(all.minus(Numbers::unionOf({{kMax, kMax}})).intervals() == Intervals{{0, kMax - 1}});
    CHECK(all.minus(all).empty());

    // One cut spanning several kept intervals, and several cuts in one interval.
    const Numbers kept = Numbers::unionOf({{10, 20}, {30, 40}, {50, 60}});
    CHECK(kept.minus(Numbers::unionOf({{15, 55}})).intervals() == Intervals{{10, 14}, {56, 60}});
    CHECK(kept.minus(Numbers::unionOf({{11, 12}, {14, 14}, {19, 31}, {60, 70}})).intervals() ==
          Intervals{{10, 10}, {13, 13}, {15, 18}, {32, 40}, {50, 59}});
    CHECK(kept.minus(Numbers{}) == kept);
}

TEST_CASE("RangeSet: intersect") {
    const Numbers a = Numbers::unionOf({{0, 10}, {20, 30}});
    const Numbers b = Numbers::unionOf({{5, 22}, {30, 40}});
    CHECK(a.intersect(b).intervals() == Intervals{{5, 10}, {20, 22}, {30, 30}});
    CHECK(a.intersect(Numbers{}).empty());
    CHECK(Numbers::unionOf({{6, 6}, {17, 17}}).intersect(Numbers::all(255)).intervals() ==
          Intervals{{6, 6}, {17, 17}});
}

TEST_CASE("RangeSet: contains and isAll") {
    const Numbers set = Numbers::unionOf({{3, 5}, {9, 9}});
    CHECK_FALSE(set.contains(2));
    CHECK(set.contains(3));
    CHECK(set.contains(5));
    CHECK_FALSE(set.contains(6));
    CHECK(set.contains(9));
    CHECK_FALSE(set.contains(10));
    CHECK(Numbers::unionOf({{0, 100}, {101, 255}}).isAll(255));
    CHECK_FALSE(Numbers::unionOf({{0, 100}, {102, 255}}).isAll(255));
    CHECK_FALSE(Numbers::all(255).isAll(65535));
}

// Against a bitmap over a small domain: union, minus and intersect agree value by
// value, and results stay sorted, disjoint and non-adjacent.
TEST_CASE("RangeSet: random operations agree with a bitmap") {
    constexpr uint64_t domainMax = 63;
    std::mt19937_64 rng(0x5e7);
    auto randomIntervals = [&rng] {
        Intervals intervals(rng() % 5);
        for (auto& interval : intervals) {
            const uint64_t a = rng() % (domainMax + 1);
            const uint64_t b = rng() % (domainMax + 1);
            interval = {std::min(a, b), std::max(a, b)};
        }
        return intervals;
    };
    auto member = [](const Intervals& intervals, uint64_t v) {
        for (const auto& interval : intervals) {
            if (interval.lo <= v && v <= interval.hi) return true;
        }
        return false;
    };
    auto wellFormed = [](const Numbers& set) {
        const auto& intervals = set.intervals();
        for (std::size_t i = 0; i < intervals.size(); ++i) {
            if (intervals[i].lo > intervals[i].hi) return false;
            if (i > 0 && intervals[i].lo <= intervals[i - 1].hi + 1) return false;
        }
        return true;
    };
    for (int iteration = 0; iteration < 3000; ++iteration) {
        const Intervals a = randomIntervals();
        const Intervals b = randomIntervals();
        const Numbers setA = Numbers::unionOf(a);
        const Numbers setB = Numbers::unionOf(b);
        const Numbers difference = setA.minus(setB);
        const Numbers common = setA.intersect(setB);
        REQUIRE(wellFormed(setA));
        REQUIRE(wellFormed(difference));
        REQUIRE(wellFormed(common));
        for (uint64_t v = 0; v <= domainMax; ++v) {
            REQUIRE(setA.contains(v) == member(a, v));
            REQUIRE(difference.contains(v) == (member(a, v) && !member(b, v)));
            REQUIRE(common.contains(v) == (member(a, v) && member(b, v)));
        }
    }
}
