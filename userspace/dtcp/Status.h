// Status: DTCP status codes and their reason phrases (dtcp.md §7, §11).
#pragma once

#include <cstdint>
#include <string_view>

namespace xtap::dtcp {

enum class StatusCode : uint16_t {
    SeqRollover = 130,
    NoopNotification = 131,
    Ok = 200,
    CriterionTimeoutDelete = 390,
    BadRequest = 400,
    UnknownContentDestination = 430,
    UnknownCriteriaId = 431,
    ImproperFilter = 432,
    ImproperTimeout = 433,
    BadAuthentication = 497,     // never sent: the message is discarded
    BadSequence = 498,           // never sent: the message is discarded
    UnknownControlSource = 499,  // never sent: the message is discarded
    InternalError = 500,
    NotImplemented = 501,
    VersionNotSupported = 505,
    MaxCriteriaExceeded = 550,
    MaxContentDestinationsExceeded = 551,
    Congestion = 580,
    DuplicatesDropped = 598,
    Restart = 599,
    CongestionDelete = 680,  // never sent: xtap sheds copies instead
    JTapFailure = 901,
};

inline constexpr uint16_t codeNumber(StatusCode code) {
    return static_cast<uint16_t>(code);
}

// The reason text of the status line, e.g. "Unknown Criteria ID" for 431.
std::string_view reasonPhrase(StatusCode code);

}  // namespace xtap::dtcp
