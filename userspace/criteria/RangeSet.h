// RangeSet: a set of unsigned integers held as sorted, disjoint, non-adjacent
// inclusive intervals. DTCP lists (unions, `!` differences) of addresses,
// protocols, ports and ICMP fields reduce to one; because its intervals are
// disjoint, filters emitted one per interval (or per prefix of one) are too.
//
// T is an unsigned integer type, including unsigned __int128 (which strict
// C++20 does not call integral, hence no concept).
#pragma once

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <vector>

namespace xtap::criteria {

template <typename T>
struct Interval {
    T lo{};
    T hi{};  // inclusive; lo <= hi
    bool operator==(const Interval&) const = default;
};

template <typename T>
class RangeSet {
  public:
    RangeSet() = default;  // the empty set

    // The union of `intervals` (each lo <= hi), in any order, overlapping or not.
    static RangeSet unionOf(std::vector<Interval<T>> intervals) {
        std::sort(intervals.begin(), intervals.end(),
                  [](const Interval<T>& a, const Interval<T>& b) { return a.lo < b.lo; });
        RangeSet out;
        for (const Interval<T>& next : intervals) {
            if (!out.intervals_.empty()) {
                Interval<T>& last = out.intervals_.back();
                // Overlapping or adjacent: merge. `last.hi + 1` could overflow at the top of
                // the domain, `next.lo - last.hi` cannot once next.lo > last.hi.
                if (next.lo <= last.hi || next.lo - last.hi == 1) {
                    last.hi = std::max(last.hi, next.hi);
                    continue;
                }
            }
            out.intervals_.push_back(next);
        }
        return out;
    }

    // Every value in [0, max].
    static RangeSet all(T max) { return unionOf({{T{0}, max}}); }

    RangeSet minus(const RangeSet& cuts) const {
        RangeSet out;
        auto firstCut = cuts.intervals_.begin();
        const auto endCut = cuts.intervals_.end();
        for (const Interval<T>& kept : intervals_) {
            while (firstCut != endCut && firstCut->hi < kept.lo) ++firstCut;
            T lo = kept.lo;
            bool tailLeft = true;
            // A cut may span several kept intervals, so firstCut only moves past cuts that
            // end below the current one.
            for (auto cut = firstCut; cut != endCut && cut->lo <= kept.hi; ++cut) {
                if (cut->lo > lo) out.intervals_.push_back({lo, T(cut->lo - 1)});
                if (cut->hi >= kept.hi) {
                    tailLeft = false;
                    break;
                }
                lo = cut->hi + 1;  // cut->hi < kept.hi: no overflow
            }
            if (tailLeft) out.intervals_.push_back({lo, kept.hi});
        }
        return out;
    }

    RangeSet intersect(const RangeSet& other) const {
        RangeSet out;
        std::size_t i = 0;
        std::size_t j = 0;
        while (i < intervals_.size() && j < other.intervals_.size()) {
            const Interval<T>& a = intervals_[i];
            const Interval<T>& b = other.intervals_[j];
            const T lo = std::max(a.lo, b.lo);
            const T hi = std::min(a.hi, b.hi);
            if (lo <= hi) out.intervals_.push_back({lo, hi});
            if (a.hi < b.hi) {
                ++i;
            } else {
                ++j;
            }
        }
        return out;
    }

    bool contains(T value) const {
        auto it = std::upper_bound(
            intervals_.begin(), intervals_.end(), value,
            [](const T& v, const Interval<T>& interval) { return v < interval.lo; });
        return it != intervals_.begin() && value <= std::prev(it)->hi;
    }

    bool empty() const { return intervals_.empty(); }
    // True when the set is all of [0, max]: the field is unconstrained.
    bool isAll(T max) const {
        return intervals_.size() == 1 && intervals_[0].lo == T{0} && intervals_[0].hi == max;
    }
    const std::vector<Interval<T>>& intervals() const { return intervals_; }

    bool operator==(const RangeSet&) const = default;

  private:
    std::vector<Interval<T>> intervals_;
};

}  // namespace xtap::criteria
