// SeqWindow: replay protection for the Seq of one client (dtcp.md §9). The
// first Seq sets the baseline; afterwards a Seq is accepted when it lies up to
// 256 above the highest accepted one, or up to 256 below it and was not seen
// yet. A forward step may cross 2^64 back to small values only when the highest
// accepted Seq has its top bit set (a rollover, reported for the 130 notification).
// The caller checks authenticity first: the window changes only on accept().
#pragma once

#include <array>
#include <cstdint>
#include <string_view>

namespace xtap::dtcp {

enum class SeqVerdict : uint8_t {
    Baseline,     // accepted: the first Seq of this state
    Advanced,     // accepted: 1 to 256 above the highest
    Wrapped,      // accepted: 1 to 256 above the highest, across 2^64 (send 130)
    Late,         // accepted: up to 256 below the highest, not seen before
    Replayed,     // rejected: seen before
    TooOld,       // rejected: more than 256 below the highest
    TooFarAhead,  // rejected: more than 256 above the highest
};

inline constexpr bool isAccepted(SeqVerdict v) {
    return v == SeqVerdict::Baseline || v == SeqVerdict::Advanced || v == SeqVerdict::Wrapped ||
           v == SeqVerdict::Late;
}

std::string_view describe(SeqVerdict v);

// What the controller persists to keep a user's window across connections.
struct SeqWindowState {
    bool has_baseline = false;
    uint64_t highest = 0;
    // Bit i (word i / 64, bit i % 64) set: Seq highest - 1 - i was accepted.
    std::array<uint64_t, 4> seen_below{};
    bool operator==(const SeqWindowState&) const = default;
};

class SeqWindow {
  public:
    static constexpr uint64_t kWindow = 256;

    SeqWindow() = default;
    explicit SeqWindow(const SeqWindowState& state) : state_(state) {}

    // Classifies `seq` without changing anything.
    SeqVerdict check(uint64_t seq) const;
    // Classifies `seq` and, if it is accepted, records it.
    SeqVerdict accept(uint64_t seq);
    // Forgets everything: the next Seq sets a new baseline (xtapctl reset).
    void reset() { state_ = SeqWindowState{}; }

    const SeqWindowState& state() const { return state_; }

  private:
    bool seenBelow(uint64_t distance) const;
    void markBelow(uint64_t distance);
    void advanceBy(uint64_t steps);

    SeqWindowState state_;
};

}  // namespace xtap::dtcp
