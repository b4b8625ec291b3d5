// Test helpers for the criteria store's tests: instants on a test clock and
// ADDs as the DTCP decoder yields them.
#pragma once

#include <cstdint>
#include <string>

#include "criteria/CriteriaStore.h"
#include "CriteriaTestSupport.h"

namespace xtap::criteria::test {

inline constexpr uint64_t kSecond = 1'000'000'000;

// `seconds` after the test clock's start, in both clocks the store reads.
inline Instant at(uint64_t seconds) {
    Instant now;
    now.boottime_ns = seconds * kSecond;
    now.local = dtcp::Timestamp{
        2024, 5, 1, 10, static_cast<uint8_t>(seconds / 60 % 60), static_cast<uint8_t>(seconds % 60),
        0};
    return now;
}

// An ADD as the decoder yields it: a source address and the given lifetime.
inline dtcp::AddRequest request(const std::string& source, dtcp::Timeouts timeouts,
                                bool is_static = false, const std::string& cdest = "cd1") {
    dtcp::AddRequest r;
    r.cdest_ids = {cdest};
    r.match.family = source.find(':') == std::string::npos ? Family::V4 : Family::V6;
    r.match.src = {addressEntry(source, r.match.family)};
    r.match_text = {{"Source-Address", source}};
    r.timeouts = timeouts;
    r.is_static = is_static;
    r.priority = 1;
    return r;
}

inline dtcp::Timeouts idle(uint32_t s) {
    dtcp::Timeouts t;
    t.idle_seconds = s;
    return t;
}

inline dtcp::Timeouts total(uint32_t s) {
    dtcp::Timeouts t;
    t.total_seconds = s;
    return t;
}

}  // namespace xtap::criteria::test
