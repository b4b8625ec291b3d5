#include "dtcp/Status.h"

namespace xtap::dtcp {

std::string_view reasonPhrase(StatusCode code) {
    switch (code) {
        case StatusCode::SeqRollover:
            return "Seq Rollover";
        case StatusCode::NoopNotification:
            return "NoOp";
        case StatusCode::Ok:
            return "OK";
        case StatusCode::CriterionTimeoutDelete:
            return "Criterion Timeout Delete";
        case StatusCode::BadRequest:
            return "Bad Request";
        case StatusCode::UnknownContentDestination:
            return "Unknown Content Destination";
        case StatusCode::UnknownCriteriaId:
            return "Unknown Criteria ID";
        case StatusCode::ImproperFilter:
            return "Improper Filter Specification";
        case StatusCode::ImproperTimeout:
            return "Improper Timeout Specification";
        case StatusCode::BadAuthentication:
            return "Bad Authentication";
        case StatusCode::BadSequence:
            return "Bad Sequence Number";
        case StatusCode::UnknownControlSource:
            return "Unknown Control Source";
        case StatusCode::InternalError:
            return "Internal Error";
        case StatusCode::NotImplemented:
            return "Not Implemented";
        case StatusCode::VersionNotSupported:
            return "Version Not Supported";
        case StatusCode::MaxCriteriaExceeded:
            return "Max Criteria Exceeded";
        case StatusCode::MaxContentDestinationsExceeded:
            return "Max Content Destinations Exceeded";
        case StatusCode::Congestion:
            return "Congestion";
        case StatusCode::DuplicatesDropped:
            return "Duplicates Dropped";
        case StatusCode::Restart:
            return "Restart";
        case StatusCode::CongestionDelete:
            return "Congestion Delete";
        case StatusCode::JTapFailure:
            return "JTap-Failure";
    }
    return "Unknown Status";
}

}  // namespace xtap::dtcp
