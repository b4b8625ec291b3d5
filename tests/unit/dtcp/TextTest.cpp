#include <doctest/doctest.h>

#include <string_view>
#include <vector>

#include "dtcp/Text.h"

namespace xtap::dtcp {
namespace {

TEST_CASE("ASCII comparisons ignore case, and only ASCII case") {
    CHECK(iequals("Csource-ID", "CSOURCE-id"));
    CHECK_FALSE(iequals("Seq", "Seq "));
    CHECK_FALSE(iequals("a", "b"));
    CHECK_FALSE(iequals("\xc3\xa9", "\xc3\x89"));  // é vs É: not ASCII
    CHECK(istartsWith("x-jtap-cdest-ttl", "X-JTap-"));
    CHECK_FALSE(istartsWith("X-J", "X-JTap-"));
    CHECK(toUpper("Criteria-Id: x1") == "CRITERIA-ID: X1");
}

TEST_CASE("whitespace trimming and comma lists") {
    CHECK(trimWsp(" \t a b \t ") == "a b");
    CHECK(trimWsp("\r") == "\r");  // CR is not whitespace inside a line
    CHECK(trimWsp("").empty());
    CHECK(splitCommaList("a, b ,c") == std::vector<std::string_view>{"a", "b", "c"});
    CHECK(splitCommaList("") == std::vector<std::string_view>{""});
    CHECK(splitCommaList("a,") == std::vector<std::string_view>{"a", ""});
    CHECK(splitCommaList(" , ") == std::vector<std::string_view>{"", ""});
}

}  // namespace
}  // namespace xtap::dtcp
