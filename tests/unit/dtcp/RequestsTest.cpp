#include <doctest/doctest.h>

#include "dtcp/Requests.h"

namespace xtap::dtcp {
namespace {

using criteria::NumberEntry;

TEST_CASE("a Criteria-ID selection is single only for one plain ID") {
    CHECK(CriteriaIdSelection{{NumberEntry{false, 7, 7}}}.single() == 7u);
    CHECK_FALSE(CriteriaIdSelection{{NumberEntry{false, 7, 8}}}.single());
    CHECK_FALSE(CriteriaIdSelection{{NumberEntry{true, 7, 7}}}.single());
    CHECK_FALSE(CriteriaIdSelection{{NumberEntry{false, 7, 7}, NumberEntry{false, 9, 9}}}.single());
    CHECK_FALSE(CriteriaIdSelection{}.single());
}

TEST_CASE("a Criteria-ID selection contains IDs by the list rules") {
    const CriteriaIdSelection range_but_5{{NumberEntry{false, 1, 10}, NumberEntry{true, 5, 5}}};
    CHECK(range_but_5.contains(1));
    CHECK(range_but_5.contains(10));
    CHECK_FALSE(range_but_5.contains(5));
    CHECK_FALSE(range_but_5.contains(11));
    const CriteriaIdSelection all_but_3{{NumberEntry{true, 3, 3}}};
    CHECK(all_but_3.contains(4294967295u));
    CHECK_FALSE(all_but_3.contains(3));
}

TEST_CASE("timeouts: any() is true once one limit is set") {
    CHECK_FALSE(Timeouts{}.any());
    Timeouts t;
    t.bytes = 1;
    CHECK(t.any());
}

}  // namespace
}  // namespace xtap::dtcp
