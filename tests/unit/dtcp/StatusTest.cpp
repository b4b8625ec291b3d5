#include <doctest/doctest.h>

#include "dtcp/Status.h"

namespace xtap::dtcp {
namespace {

TEST_CASE("every status code has its number and reason phrase") {
    struct Case {
        StatusCode code;
        uint16_t number;
        const char* reason;
    };
    const Case cases[] = {
        {StatusCode::SeqRollover, 130, "Seq Rollover"},
        {StatusCode::NoopNotification, 131, "NoOp"},
        {StatusCode::Ok, 200, "OK"},
        {StatusCode::CriterionTimeoutDelete, 390, "Criterion Timeout Delete"},
        {StatusCode::BadRequest, 400, "Bad Request"},
        {StatusCode::UnknownContentDestination, 430, "Unknown Content Destination"},
        {StatusCode::UnknownCriteriaId, 431, "Unknown Criteria ID"},
        {StatusCode::ImproperFilter, 432, "Improper Filter Specification"},
        {StatusCode::ImproperTimeout, 433, "Improper Timeout Specification"},
        {StatusCode::BadAuthentication, 497, "Bad Authentication"},
        {StatusCode::BadSequence, 498, "Bad Sequence Number"},
        {StatusCode::UnknownControlSource, 499, "Unknown Control Source"},
        {StatusCode::InternalError, 500, "Internal Error"},
        {StatusCode::NotImplemented, 501, "Not Implemented"},
        {StatusCode::VersionNotSupported, 505, "Version Not Supported"},
        {StatusCode::MaxCriteriaExceeded, 550, "Max Criteria Exceeded"},
        {StatusCode::MaxContentDestinationsExceeded, 551, "Max Content Destinations Exceeded"},
        {StatusCode::Congestion, 580, "Congestion"},
        {StatusCode::DuplicatesDropped, 598, "Duplicates Dropped"},
        {StatusCode::Restart, 599, "Restart"},
        {StatusCode::CongestionDelete, 680, "Congestion Delete"},
        {StatusCode::JTapFailure, 901, "JTap-Failure"},
    };
    for (const Case& c : cases) {
        INFO(c.number);
        CHECK(codeNumber(c.code) == c.number);
        CHECK(reasonPhrase(c.code) == c.reason);
    }
}

}  // namespace
}  // namespace xtap::dtcp
