#include <doctest/doctest.h>

#include "dtcp/Version.h"

namespace xtap::dtcp {
namespace {

TEST_CASE("versions parse from DTCP/x.y and format back") {
    CHECK(parseVersion("DTCP/0.8") == kVersion08);
    CHECK(parseVersion("DTCP/0.10") == Version{0, 10});
    CHECK(parseVersion("DTCP/12.345") == Version{12, 345});
    for (const char* bad : {"", "DTCP", "DTCP/", "DTCP/0", "DTCP/0.", "DTCP/.8", "dtcp/0.8",
                            "DTCP/0.8 ", "DTCP/0.8.1", "DTCP/1000.0", "DTCP/-1.0", "HTTP/1.1"}) {
        INFO(bad);
        CHECK_FALSE(parseVersion(bad));
    }
    CHECK(formatVersion(kVersion06) == "DTCP/0.6");
    CHECK(formatVersion(Version{1, 10}) == "DTCP/1.10");
}

TEST_CASE("0.6 to 0.8 are supported, others are answered in the nearest end") {
    CHECK_FALSE(isSupported(Version{0, 5}));
    CHECK(isSupported(kVersion06));
    CHECK(isSupported(kVersion07));
    CHECK(isSupported(kVersion08));
    CHECK_FALSE(isSupported(Version{0, 9}));
    CHECK_FALSE(isSupported(Version{1, 0}));
    CHECK(replyVersionFor(kVersion07) == kVersion07);
    CHECK(replyVersionFor(Version{0, 9}) == kVersion08);
    CHECK(replyVersionFor(Version{2, 0}) == kVersion08);
    CHECK(replyVersionFor(Version{0, 5}) == kVersion06);
    CHECK(kDefaultNotificationVersion == kVersion07);
    CHECK(Version{0, 10} > kVersion08);  // numeric, not textual, order
}

}  // namespace
}  // namespace xtap::dtcp
