#include <doctest/doctest.h>

#include <cstdint>
#include <limits>

#include "dtcp/SeqWindow.h"

namespace xtap::dtcp {
namespace {

constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();

TEST_CASE("the first Seq sets the baseline, whatever its value") {
    for (uint64_t first : {uint64_t{0}, uint64_t{1}, uint64_t{5000}, kMax}) {
        INFO(first);
        SeqWindow w;
        CHECK(w.accept(first) == SeqVerdict::Baseline);
        CHECK(w.state().has_baseline);
        CHECK(w.state().highest == first);
        CHECK(w.accept(first) == SeqVerdict::Replayed);
    }
}

TEST_CASE("forward: 1 to 256 above the highest is accepted, 257 is not") {
    SeqWindow w;
    w.accept(1000);
    CHECK(w.accept(1001) == SeqVerdict::Advanced);
    CHECK(w.accept(1001 + 256) == SeqVerdict::Advanced);
    CHECK(w.state().highest == 1257);
    CHECK(w.accept(1257 + 257) == SeqVerdict::TooFarAhead);
    CHECK(w.state().highest == 1257);  // a rejected Seq changes nothing
    CHECK(w.accept(1257 + 256) == SeqVerdict::Advanced);
}

TEST_CASE("backward: unseen values down to 256 below are accepted once") {
    SeqWindow w;
    w.accept(1000);
    CHECK(w.accept(999) == SeqVerdict::Late);
    CHECK(w.accept(999) == SeqVerdict::Replayed);
    CHECK(w.accept(1000 - 256) == SeqVerdict::Late);
    CHECK(w.accept(1000 - 257) == SeqVerdict::TooOld);
    CHECK(w.accept(0) == SeqVerdict::TooOld);
    CHECK(w.accept(1000) == SeqVerdict::Replayed);
    CHECK(w.state().highest == 1000);  // late values never move the highest
}

TEST_CASE("a baseline below 256 has a window down to zero") {
    SeqWindow w;
    w.accept(3);
    CHECK(w.accept(0) == SeqVerdict::Late);
    CHECK(w.accept(2) == SeqVerdict::Late);
    CHECK(w.accept(0) == SeqVerdict::Replayed);
    CHECK(w.accept(1) == SeqVerdict::Late);
}

TEST_CASE("seen values stay seen as the window moves, until they fall out of it") {
    SeqWindow w;
    w.accept(100);
    w.accept(105);
    for (uint64_t s = 101; s <= 104; ++s) CHECK(w.accept(s) == SeqVerdict::Late);
    for (uint64_t s = 100; s <= 105; ++s) CHECK(w.accept(s) == SeqVerdict::Replayed);
    CHECK(w.accept(99) == SeqVerdict::Late);

    // Moves by 64 (a whole bitmap word) and by odd amounts across word edges.
    CHECK(w.accept(169) == SeqVerdict::Advanced);
    CHECK(w.accept(200) == SeqVerdict::Advanced);
    CHECK(w.accept(333) == SeqVerdict::Advanced);
    for (uint64_t s : {uint64_t{99}, uint64_t{100}, uint64_t{105}, uint64_t{169}, uint64_t{200}}) {
        INFO(s);
        CHECK(w.check(s) == SeqVerdict::Replayed);
    }
    CHECK(w.check(98) == SeqVerdict::Late);
    CHECK(w.check(106) == SeqVerdict::Late);
    CHECK(w.check(333 - 256) == SeqVerdict::Late);

    CHECK(w.accept(355) == SeqVerdict::Advanced);  // 99 is now 256 below
    CHECK(w.check(99) == SeqVerdict::Replayed);
    CHECK(w.check(98) == SeqVerdict::TooOld);
    CHECK(w.accept(356) == SeqVerdict::Advanced);  // and now 257 below
    CHECK(w.check(99) == SeqVerdict::TooOld);
    CHECK(w.check(100) == SeqVerdict::Replayed);
}

TEST_CASE("a full 256 step keeps only the old highest as seen") {
    SeqWindow w;
    w.accept(1000);
    w.accept(990);
    CHECK(w.accept(1256) == SeqVerdict::Advanced);
    CHECK(w.check(1000) == SeqVerdict::Replayed);
    CHECK(w.check(1001) == SeqVerdict::Late);
    CHECK(w.check(990) == SeqVerdict::TooOld);
}

TEST_CASE("check() classifies without recording") {
    SeqWindow w;
    CHECK(w.check(7) == SeqVerdict::Baseline);
    CHECK_FALSE(w.state().has_baseline);
    w.accept(7);
    const SeqWindowState before = w.state();
    CHECK(w.check(8) == SeqVerdict::Advanced);
    CHECK(w.check(6) == SeqVerdict::Late);
    CHECK(w.state() == before);
}

TEST_CASE("rollover: past 2^64 only forward from a highest with its top bit set") {
    SeqWindow w;
    w.accept(kMax - 10);
    CHECK(w.accept(5) == SeqVerdict::Wrapped);  // 16 steps on, across 2^64
    CHECK(w.state().highest == 5);
    CHECK(w.check(kMax - 10) == SeqVerdict::TooFarAhead);  // the old side is not below 5
    CHECK(w.accept(6) == SeqVerdict::Advanced);

    SeqWindow edge;
    edge.accept(kMax);
    CHECK(edge.accept(0) == SeqVerdict::Wrapped);

    SeqWindow far;
    far.accept(kMax - 10);
    // 257 steps on lands on 246: outside the window from either side.
    CHECK(far.accept(kMax - 10 + 256 + 1) == SeqVerdict::TooOld);
    CHECK(far.accept(kMax - 10 + 256) == SeqVerdict::Wrapped);

    // A top-bit-set highest far from 2^64 does not wrap to small values.
    SeqWindow top;
    top.accept(uint64_t{1} << 63);
    CHECK(top.accept(3) == SeqVerdict::TooOld);

    SeqWindow low;
    low.accept(5);
    CHECK(low.accept(kMax) == SeqVerdict::TooFarAhead);
}

TEST_CASE("only accepted values count as seen: verdicts other than accepts change nothing") {
    SeqWindow w;
    w.accept(500);
    const SeqWindowState before = w.state();
    w.accept(500);
    w.accept(100);
    w.accept(900);
    CHECK(w.state() == before);
}

TEST_CASE("the state round-trips through SeqWindowState, and reset starts over") {
    SeqWindow w;
    for (uint64_t s : {uint64_t{10}, uint64_t{12}, uint64_t{11}, uint64_t{300}, uint64_t{70}}) {
        w.accept(s);
    }
    SeqWindow restored(w.state());
    CHECK(restored.state() == w.state());
    for (uint64_t s = 0; s < 700; ++s) {
        INFO(s);
        CHECK(restored.check(s) == w.check(s));
    }
    restored.reset();
    CHECK(restored.state() == SeqWindowState{});
    CHECK(restored.accept(3) == SeqVerdict::Baseline);
}

TEST_CASE("verdict helpers") {
    CHECK(isAccepted(SeqVerdict::Baseline));
    CHECK(isAccepted(SeqVerdict::Advanced));
    CHECK(isAccepted(SeqVerdict::Wrapped));
    CHECK(isAccepted(SeqVerdict::Late));
    CHECK_FALSE(isAccepted(SeqVerdict::Replayed));
    CHECK_FALSE(isAccepted(SeqVerdict::TooOld));
    CHECK_FALSE(isAccepted(SeqVerdict::TooFarAhead));
    CHECK(describe(SeqVerdict::Replayed) == "replayed");
}

}  // namespace
}  // namespace xtap::dtcp
