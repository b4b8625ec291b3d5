#include <doctest/doctest.h>

#include <functional>
#include <string>
#include <vector>

#include "ipsec/ViciBuilder.h"
#include "ViciGolden.h"

using namespace xtap::ipsec;
using namespace xtap::ipsec::test;

TEST_CASE("builder writes the vici README example byte for byte") {
    // The README's "Encoding example" (see ViciGolden.h), element by element.
    auto built = ViciBuilder()
                     .addKv("key1", "value1")
                     .beginSection("section1")
                     .beginSection("sub-section")
                     .addKv("key2", "value2")
                     .endSection()
                     .beginList("list1")
                     .addItem("item1")
                     .addItem("item2")
                     .endList()
                     .endSection()
                     .finalize();
    REQUIRE(built.ok());
    CHECK(*built == kReadmeExample);
    auto encoded = encodeMessage(readmeTree());
    REQUIRE(encoded.ok());
    CHECK(*encoded == *built);
}

TEST_CASE("builder: an empty message is zero bytes") {
    auto built = ViciBuilder().finalize();
    REQUIRE(built.ok());
    CHECK(built->empty());
}

TEST_CASE("builder: value lengths are 16-bit big-endian") {
    const std::string value(0x0102, 'x');
    auto built = ViciBuilder().addKv("k", value).beginList("l").addItem("").endList().finalize();
    REQUIRE(built.ok());
    const Bytes& b = *built;
    REQUIRE(b.size() == 3 + 2 + value.size() + 3 + 3 + 1);
    CHECK(b[0] == 3);
    CHECK(b[3] == 0x01);
    CHECK(b[4] == 0x02);
    const size_t list = 5 + value.size();
    CHECK(Bytes(b.begin() + static_cast<long>(list), b.end()) == Bytes{4, 1, 'l', 5, 0, 0, 6});
}

TEST_CASE("builder records the first misuse and finalize reports it") {
    struct Case {
        const char* name;
        std::function<void(ViciBuilder&)> steps;
        ViciErrc expected;
    };
    const std::vector<Case> cases = {
        {"key/value inside a list", [](ViciBuilder& b) { b.beginList("l").addKv("k", "v"); },
         ViciErrc::NotAllowedInList},
        {"list inside a list", [](ViciBuilder& b) { b.beginList("a").beginList("b"); },
         ViciErrc::NotAllowedInList},
        {"section inside a list", [](ViciBuilder& b) { b.beginList("a").beginSection("s"); },
         ViciErrc::NotAllowedInList},
        {"section end inside a list",
         [](ViciBuilder& b) { b.beginSection("s").beginList("l").endSection(); },
         ViciErrc::NotAllowedInList},
        {"item outside a list", [](ViciBuilder& b) { b.addItem("x"); }, ViciErrc::OutsideList},
        {"list end outside a list", [](ViciBuilder& b) { b.endList(); }, ViciErrc::OutsideList},
        {"section end at the root", [](ViciBuilder& b) { b.endSection(); },
         ViciErrc::UnbalancedSection},
        {"section left open", [](ViciBuilder& b) { b.beginSection("s").addKv("k", "v"); },
         ViciErrc::UnbalancedSection},
        {"list left open", [](ViciBuilder& b) { b.beginList("l").addItem("x"); },
         ViciErrc::UnterminatedList},
        {"duplicate key", [](ViciBuilder& b) { b.addKv("k", "1").addKv("k", "2"); },
         ViciErrc::DuplicateKey},
        {"list named like a section",
         [](ViciBuilder& b) { b.beginSection("x").endSection().beginList("x"); },
         ViciErrc::DuplicateKey},
        {"empty name", [](ViciBuilder& b) { b.addKv("", "v"); }, ViciErrc::InvalidName},
        {"name of 256 bytes", [](ViciBuilder& b) { b.beginList(std::string(256, 'l')); },
         ViciErrc::InvalidName},
        {"value of 65536 bytes", [](ViciBuilder& b) { b.addKv("k", std::string(65536, 'v')); },
         ViciErrc::ValueTooLong},
        {"item of 65536 bytes",
         [](ViciBuilder& b) { b.beginList("l").addItem(std::string(65536, 'v')); },
         ViciErrc::ValueTooLong},
        {"nesting beyond the cap",
         [](ViciBuilder& b) {
             for (size_t i = 0; i <= kMaxSectionDepth; ++i) {
                 b.beginSection("s");
             }
         },
         ViciErrc::TooDeep},
        {"a later valid sequence does not clear the error",
         [](ViciBuilder& b) { b.addItem("x").beginList("l").addItem("y").endList(); },
         ViciErrc::OutsideList},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        ViciBuilder builder;
        c.steps(builder);
        auto built = builder.finalize();
        REQUIRE_FALSE(built.ok());
        CHECK(built.error().code == c.expected);
    }
}

TEST_CASE("builder: the same name may recur in different sections") {
    auto built = ViciBuilder()
                     .beginSection("a")
                     .addKv("k", "1")
                     .endSection()
                     .beginSection("b")
                     .addKv("k", "2")
                     .endSection()
                     .addKv("k", "3")
                     .finalize();
    REQUIRE(built.ok());
    auto decoded = decodeMessage(*built);
    REQUIRE(decoded.ok());
    CHECK(*decoded->section("a")->value("k") == "1");
    CHECK(*decoded->section("b")->value("k") == "2");
    CHECK(*decoded->value("k") == "3");
}
