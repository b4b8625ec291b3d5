#include "dtcp/SeqWindow.h"

namespace xtap::dtcp {

namespace {
constexpr uint64_t kTopBit = uint64_t{1} << 63;
constexpr size_t kWords = 4;
}  // namespace

std::string_view describe(SeqVerdict v) {
    switch (v) {
        case SeqVerdict::Baseline:
            return "baseline";
        case SeqVerdict::Advanced:
            return "advanced";
        case SeqVerdict::Wrapped:
            return "wrapped past 2^64";
        case SeqVerdict::Late:
            return "late but unseen";
        case SeqVerdict::Replayed:
            return "replayed";
        case SeqVerdict::TooOld:
            return "more than 256 below the highest accepted Seq";
        case SeqVerdict::TooFarAhead:
            return "more than 256 above the highest accepted Seq";
    }
    return "unknown";
}

// `distance` is 1..kWindow: the Seq highest - distance.
bool SeqWindow::seenBelow(uint64_t distance) const {
    const uint64_t bit = distance - 1;
    return (state_.seen_below[bit / 64] >> (bit % 64)) & 1;
}

void SeqWindow::markBelow(uint64_t distance) {
    const uint64_t bit = distance - 1;
    state_.seen_below[bit / 64] |= uint64_t{1} << (bit % 64);
}

// Moves the highest up by `steps` (1..kWindow): every recorded value moves that
// much further below, and the old highest becomes seen at distance `steps`.
void SeqWindow::advanceBy(uint64_t steps) {
    std::array<uint64_t, kWords> shifted{};
    const size_t word_shift = steps / 64;
    const unsigned bit_shift = steps % 64;
    for (size_t i = kWords; i-- > word_shift;) {
        const size_t from = i - word_shift;
        uint64_t word = state_.seen_below[from] << bit_shift;
        if (bit_shift != 0 && from > 0) word |= state_.seen_below[from - 1] >> (64 - bit_shift);
        shifted[i] = word;
    }
    state_.seen_below = shifted;
    state_.highest += steps;  // wraps modulo 2^64 on a rollover
    markBelow(steps);
}

SeqVerdict SeqWindow::check(uint64_t seq) const {
    if (!state_.has_baseline) return SeqVerdict::Baseline;
    const uint64_t highest = state_.highest;
    if (seq > highest) {
        return seq - highest <= kWindow ? SeqVerdict::Advanced : SeqVerdict::TooFarAhead;
    }
    if (seq == highest) return SeqVerdict::Replayed;
    // seq < highest: a rollover when counting on from a highest with its top bit
    // set reaches seq within the window; else it is behind.
    if ((highest & kTopBit) != 0 && seq - highest <= kWindow) return SeqVerdict::Wrapped;
    const uint64_t distance = highest - seq;
    if (distance > kWindow) return SeqVerdict::TooOld;
    return seenBelow(distance) ? SeqVerdict::Replayed : SeqVerdict::Late;
}

SeqVerdict SeqWindow::accept(uint64_t seq) {
    const SeqVerdict verdict = check(seq);
    switch (verdict) {
        case SeqVerdict::Baseline:
            state_ = SeqWindowState{};
            state_.has_baseline = true;
            state_.highest = seq;
            break;
        case SeqVerdict::Advanced:
        case SeqVerdict::Wrapped:
            advanceBy(seq - state_.highest);
            break;
        case SeqVerdict::Late:
            markBelow(state_.highest - seq);
            break;
        case SeqVerdict::Replayed:
        case SeqVerdict::TooOld:
        case SeqVerdict::TooFarAhead:
            break;
    }
    return verdict;
}

}  // namespace xtap::dtcp
