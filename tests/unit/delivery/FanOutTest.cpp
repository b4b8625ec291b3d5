#include <doctest/doctest.h>

#include <vector>

#include "delivery/FanOut.h"
#include "TestPackets.h"

using namespace xtap::delivery;
using namespace xtap::delivery::test;

namespace {

using Indices = std::vector<uint32_t>;

// Agency A's and agency B's content destinations.
OuterHeader cdestA() {
    return outer4();
}
OuterHeader cdestB() {
    OuterHeader outer = outer4();
    outer.destination = v4(198, 18, 30, 7);
    return outer;
}

Match match(uint32_t user, uint32_t criterion, uint32_t cdest, const DeliveryParams& delivery) {
    return Match{CriterionRef{user, criterion}, cdest, delivery};
}

// Each send as the list of matches it serves.
std::vector<Indices> served(const FanOutPlan& plan) {
    std::vector<Indices> out;
    for (const Send& send : plan.sends()) {
        auto s = plan.served(send);
        out.emplace_back(s.begin(), s.end());
    }
    return out;
}

}  // namespace

TEST_CASE("fan-out: two agencies intercepting the same target each get the packet") {
    const std::vector<Match> matches = {match(1, 1, 10, flowtap(cdestA())),
                                        match(2, 1, 20, flowtap(cdestB()))};
    const FanOutPlan plan = planFanOut(matches);
    CHECK(served(plan) == std::vector<Indices>{{0}, {1}});
    CHECK(plan.sends()[0].first_match == 0);
    CHECK(plan.sends()[1].first_match == 1);
}

TEST_CASE("fan-out: one agency, two overlapping criteria, same Cdest: one copy serving both") {
    const std::vector<Match> matches = {match(1, 1, 10, flowtap(cdestA())),
                                        match(1, 2, 10, flowtap(cdestA()))};
    const FanOutPlan plan = planFanOut(matches);
    CHECK(served(plan) == std::vector<Indices>{{0, 1}});
}

TEST_CASE("fan-out: flowtap copies carry no IDs, so differing IDs still go once") {
    DeliveryParams a = flowtap(cdestA());
    DeliveryParams b = flowtap(cdestA());
    a.encapsulation.intercept_id = 5;
    b.encapsulation.session_id = 9;
    const std::vector<Match> matches = {match(1, 1, 10, a), match(1, 2, 10, b)};
    CHECK(served(planFanOut(matches)) == std::vector<Indices>{{0, 1}});
}

TEST_CASE("fan-out: byte-identical copies go once even across agencies") {
    // dtcp.md §10: one copy per destination per packet; both criteria count it.
    const std::vector<Match> matches = {match(1, 7, 10, flowtap(cdestA())),
                                        match(2, 7, 11, flowtap(cdestA()))};
    const FanOutPlan plan = planFanOut(matches);
    REQUIRE(plan.sends().size() == 1);
    CHECK(served(plan) == std::vector<Indices>{{0, 1}});
}

TEST_CASE("fan-out: jmirror copies with different header IDs are different bytes") {
    // Session ID = Criteria-ID (dtcp.md §12), so two criteria differ.
    const std::vector<Match> different = {match(1, 1, 10, jmirror(cdestA(), 100, 1)),
                                          match(1, 2, 10, jmirror(cdestA(), 100, 2)),
                                          match(1, 3, 10, jmirror(cdestA(), 101, 2))};
    CHECK(served(planFanOut(different)) == std::vector<Indices>{{0}, {1}, {2}});

    // Equal IDs (same X-MD-Intercept-Id and session) are the same bytes.
    const std::vector<Match> equal = {match(1, 1, 10, jmirror(cdestA(), 100, 1)),
                                      match(2, 4, 20, jmirror(cdestA(), 100, 1))};
    CHECK(served(planFanOut(equal)) == std::vector<Indices>{{0, 1}});

    // Only the 30 bits on the wire count.
    const std::vector<Match> wide = {match(1, 1, 10, jmirror(cdestA(), 100, 1)),
                                     match(1, 2, 10, jmirror(cdestA(), (1u << 30) | 100, 1))};
    CHECK(served(planFanOut(wide)) == std::vector<Indices>{{0, 1}});
}

TEST_CASE("fan-out: any outer header or format difference is a separate send") {
    const DeliveryParams base = flowtap(cdestA());
    std::vector<DeliveryParams> variants;
    DeliveryParams p = base;
    p.outer.ttl = 64;
    variants.push_back(p);
    p = base;
    p.outer.source_port = 40001;
    variants.push_back(p);
    p = base;
    p.outer.destination_port = 30031;
    variants.push_back(p);
    p = base;
    p.outer.source = v4(198, 18, 10, 2);
    variants.push_back(p);
    p = base;
    p.encapsulation.format = Format::Jmirror;
    variants.push_back(p);
    p = flowtap(outer6());
    variants.push_back(p);
    for (const DeliveryParams& variant : variants) {
        const std::vector<Match> matches = {match(1, 1, 10, base), match(1, 2, 10, variant)};
        CHECK(planFanOut(matches).sends().size() == 2);
    }
}

TEST_CASE("fan-out: IPv4 compares only the four address bytes") {
    DeliveryParams a = flowtap(cdestA());
    DeliveryParams b = flowtap(cdestA());
    b.outer.destination[10] = 0xff;  // invalid, but not part of the wire bytes
    CHECK(sameCopy(a, b));
    a.outer.family = b.outer.family = Family::V6;
    CHECK_FALSE(sameCopy(a, b));
}

TEST_CASE("fan-out: sends in order of first appearance, served lists in input order") {
    const DeliveryParams a = flowtap(cdestA());
    const DeliveryParams b = flowtap(cdestB());
    const DeliveryParams c = jmirror(cdestA(), 1, 3);
    const std::vector<Match> matches = {match(1, 1, 10, a), match(2, 1, 20, b), match(1, 2, 10, a),
                                        match(1, 3, 10, c), match(2, 2, 20, b), match(1, 4, 10, a)};
    const FanOutPlan plan = planFanOut(matches);
    CHECK(served(plan) == std::vector<Indices>{{0, 2, 5}, {1, 4}, {3}});
    REQUIRE(plan.sends().size() == 3);
    CHECK(plan.sends()[0].first_match == 0);
    CHECK(plan.sends()[1].first_match == 1);
    CHECK(plan.sends()[2].first_match == 3);
    // Every criterion is served exactly once.
    size_t total = 0;
    for (const Send& send : plan.sends()) {
        total += plan.served(send).size();
    }
    CHECK(total == matches.size());
}

TEST_CASE("fan-out: a reused plan holds only the latest packet's sends") {
    FanOutPlan plan;
    const std::vector<Match> many = {match(1, 1, 10, flowtap(cdestA())),
                                     match(2, 1, 20, flowtap(cdestB())),
                                     match(2, 2, 20, flowtap(cdestB()))};
    planFanOut(many, plan);
    CHECK(served(plan) == std::vector<Indices>{{0}, {1, 2}});

    const std::vector<Match> one = {match(3, 1, 30, jmirror(cdestB()))};
    planFanOut(one, plan);
    CHECK(served(plan) == std::vector<Indices>{{0}});

    planFanOut({}, plan);
    CHECK(plan.sends().empty());
}
