#include <doctest/doctest.h>

#include "dtcp/Timestamp.h"

namespace xtap::dtcp {
namespace {

TEST_CASE("timestamps format as YYYY-MM-DD HH:MM:SS.mmm") {
    CHECK(formatTimestamp(Timestamp{2024, 5, 1, 10, 15, 30, 123}) == "2024-05-01 10:15:30.123");
    CHECK(formatTimestamp(Timestamp{2024, 5, 1, 10, 20, 0, 0}) == "2024-05-01 10:20:00.000");
    CHECK(formatTimestamp(Timestamp{}) == "1970-01-01 00:00:00.000");
}

TEST_CASE("timestamps parse back exactly") {
    for (const char* text : {"2024-05-01 10:15:30.123", "2024-02-29 23:59:59.999",
                             "2000-02-29 00:00:00.000", "2016-12-31 23:59:60.500"}) {
        INFO(text);
        const auto t = parseTimestamp(text);
        REQUIRE(t);
        CHECK(formatTimestamp(*t) == text);
    }
    CHECK(parseTimestamp("2024-05-01 10:15:30.123") == Timestamp{2024, 5, 1, 10, 15, 30, 123});
}

TEST_CASE("timestamps that are not in the format or not real dates are refused") {
    for (const char* text :
         {"", "2024-05-01 10:15:30", "2024-05-01T10:15:30.123", "2024-05-01 10:15:30.1234",
          "2024-5-01 10:15:30.123", "2024-13-01 10:15:30.123", "2024-00-01 10:15:30.123",
          "2024-04-31 10:15:30.123", "2023-02-29 10:15:30.123", "1900-02-29 10:15:30.123",
          "2024-05-01 24:00:00.000", "2024-05-01 10:60:00.000", "2024-05-01 10:15:61.000",
          "2024-05-01 10:15:30,123", "2024-05-01 10:15:3x.123", " 2024-05-01 10:15:30.123"}) {
        INFO(text);
        CHECK_FALSE(parseTimestamp(text));
    }
}

}  // namespace
}  // namespace xtap::dtcp
