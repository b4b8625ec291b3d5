#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ipsec/ViciMessage.h"
#include "ViciGolden.h"

using namespace xtap::ipsec;
using namespace xtap::ipsec::test;

namespace {

Bytes nestedSections(size_t depth) {
    Bytes out;
    for (size_t i = 0; i < depth; ++i) {
        out.insert(out.end(), {1, 1, 's'});
    }
    out.insert(out.end(), depth, 2);
    return out;
}

Section nestedTree(size_t depth) {
    Section root;
    Section* current = &root;
    for (size_t i = 0; i < depth; ++i) {
        current = &current->addSection("s");
    }
    return root;
}

}  // namespace

TEST_CASE("vici README example: the tree encodes to the documented bytes") {
    auto encoded = encodeMessage(readmeTree());
    REQUIRE(encoded.ok());
    CHECK(*encoded == kReadmeExample);
}

TEST_CASE("vici README example: the documented bytes decode to the tree") {
    auto decoded = decodeMessage(kReadmeExample);
    REQUIRE(decoded.ok());
    CHECK(*decoded == readmeTree());

    const Section& root = *decoded;
    REQUIRE(root.value("key1"));
    CHECK(*root.value("key1") == "value1");
    const Section* section1 = root.section("section1");
    REQUIRE(section1);
    REQUIRE(section1->section("sub-section"));
    CHECK(*section1->section("sub-section")->value("key2") == "value2");
    REQUIRE(section1->list("list1"));
    CHECK(*section1->list("list1") == List{"item1", "item2"});
    // Accessors are typed: a name of another kind reads as absent.
    CHECK(root.section("key1") == nullptr);
    CHECK(root.value("section1") == nullptr);
    CHECK(section1->value("list1") == nullptr);
    CHECK(root.find("missing") == nullptr);
    // Entries keep wire order.
    CHECK(root.entries[0].name == "key1");
    CHECK(section1->entries[0].name == "sub-section");
    CHECK(section1->entries[1].name == "list1");
}

TEST_CASE("messages round-trip through encode and decode") {
    struct Case {
        const char* name;
        Section tree;
    };
    std::vector<Case> cases;
    cases.push_back({"empty message", Section{}});
    {
        Section s;
        s.addValue("blob", std::string("\x00\x01\xff\x7f", 4));
        s.addValue("empty", "");
        cases.push_back({"binary and empty values", s});
    }
    {
        Section s;
        s.addList("none", {});
        s.addList("blobs", {std::string(1, '\0'), "", std::string(300, 'x')});
        cases.push_back({"empty list and odd items", s});
    }
    {
        Section s;
        s.addValue(std::string(kMaxNameLength, 'n'), std::string(kMaxValueLength, 'v'));
        s.addList("items", {std::string(kMaxValueLength, 'i')});
        cases.push_back({"largest name and values", s});
    }
    {
        Section s;
        s.addSection("a").addValue("k", "1");
        s.addSection("b").addValue("k", "2");  // same key in sibling sections
        s.addSection("empty");
        cases.push_back({"siblings and empty section", s});
    }
    cases.push_back({"deepest nesting allowed", nestedTree(kMaxSectionDepth)});

    for (const Case& c : cases) {
        CAPTURE(c.name);
        auto encoded = encodeMessage(c.tree);
        REQUIRE(encoded.ok());
        auto decoded = decodeMessage(*encoded);
        REQUIRE(decoded.ok());
        CHECK(*decoded == c.tree);
        auto again = encodeMessage(*decoded);
        REQUIRE(again.ok());
        CHECK(*again == *encoded);
    }
}

TEST_CASE("decode rejects malformed messages") {
    struct Case {
        const char* name;
        Bytes bytes;
        ViciErrc expected;
    };
    const Case cases[] = {
        {"name length missing", bytesOf({3}), ViciErrc::Truncated},
        {"name shorter than its length", bytesOf({3, 4, 'k', 'e'}), ViciErrc::Truncated},
        {"value length cut", bytesOf({3, 1, 'k', 0}), ViciErrc::Truncated},
        {"value shorter than its length", bytesOf({3, 1, 'k', 0, 5, 'a', 'b'}),
         ViciErrc::Truncated},
        {"section name cut", bytesOf({1, 3, 's'}), ViciErrc::Truncated},
        {"list item cut", bytesOf({4, 1, 'l', 5, 0, 3, 'a'}), ViciErrc::Truncated},
        {"list item length cut", bytesOf({4, 1, 'l', 5, 0}), ViciErrc::Truncated},
        {"section left open", bytesOf({1, 1, 's', 3, 1, 'k', 0, 0}), ViciErrc::UnbalancedSection},
        {"two sections, one closed", bytesOf({1, 1, 'a', 1, 1, 'b', 2}),
         ViciErrc::UnbalancedSection},
        {"section end at the root", bytesOf({2}), ViciErrc::UnbalancedSection},
        {"one section end too many", bytesOf({1, 1, 's', 2, 2}), ViciErrc::UnbalancedSection},
        {"list inside a list", bytesOf({4, 1, 'a', 4, 1, 'b', 6, 6}), ViciErrc::NotAllowedInList},
        {"key/value inside a list", bytesOf({4, 1, 'a', 3, 1, 'k', 0, 0, 6}),
         ViciErrc::NotAllowedInList},
        {"section inside a list", bytesOf({4, 1, 'a', 1, 1, 's', 2, 6}),
         ViciErrc::NotAllowedInList},
        {"section end inside a list", bytesOf({1, 1, 's', 4, 1, 'l', 2}),
         ViciErrc::NotAllowedInList},
        {"list item outside a list", bytesOf({5, 0, 1, 'x'}), ViciErrc::OutsideList},
        {"list end outside a list", bytesOf({6}), ViciErrc::OutsideList},
        {"list item after list end", bytesOf({4, 1, 'l', 6, 5, 0, 0}), ViciErrc::OutsideList},
        {"list never closed", bytesOf({4, 1, 'l', 5, 0, 0}), ViciErrc::UnterminatedList},
        {"element type 0", bytesOf({0}), ViciErrc::UnknownElementType},
        {"element type 7", bytesOf({7, 1, 'k'}), ViciErrc::UnknownElementType},
        {"element type 255 inside a list", bytesOf({4, 1, 'l', 0xff}),
         ViciErrc::UnknownElementType},
        {"trailing garbage after a valid message", bytesOf({3, 1, 'k', 0, 0, 0x42}),
         ViciErrc::UnknownElementType},
        {"trailing partial element", bytesOf({3, 1, 'k', 0, 0, 3}), ViciErrc::Truncated},
        {"duplicate key", bytesOf({3, 1, 'k', 0, 0, 3, 1, 'k', 0, 1, 'x'}), ViciErrc::DuplicateKey},
        {"list named like a key", bytesOf({3, 1, 'k', 0, 0, 4, 1, 'k', 6}), ViciErrc::DuplicateKey},
        {"section named like a list", bytesOf({4, 1, 'k', 6, 1, 1, 'k', 2}),
         ViciErrc::DuplicateKey},
        {"empty name", bytesOf({3, 0, 0, 0}), ViciErrc::InvalidName},
        {"control character in name", bytesOf({3, 1, 0x01, 0, 0}), ViciErrc::InvalidName},
        {"non-ASCII name", bytesOf({1, 1, 0xc3, 2}), ViciErrc::InvalidName},
    };
    for (const Case& c : cases) {
        CAPTURE(c.name);
        auto decoded = decodeMessage(c.bytes);
        REQUIRE_FALSE(decoded.ok());
        CHECK(decoded.error().code == c.expected);
        CHECK_FALSE(decoded.error().message().empty());
    }
}

TEST_CASE("decode caps section nesting") {
    CHECK(decodeMessage(nestedSections(kMaxSectionDepth)).ok());
    auto deep = decodeMessage(nestedSections(kMaxSectionDepth + 1));
    REQUIRE_FALSE(deep.ok());
    CHECK(deep.error().code == ViciErrc::TooDeep);
    // Far deeper than the cap: rejected early, without building the tree.
    auto hostile = decodeMessage(nestedSections(100000));
    REQUIRE_FALSE(hostile.ok());
    CHECK(hostile.error().code == ViciErrc::TooDeep);
}

TEST_CASE("encode rejects trees the wire cannot carry") {
    struct Case {
        const char* name;
        Section tree;
        ViciErrc expected;
    };
    std::vector<Case> cases;
    {
        Section s;
        s.addValue("", "v");
        cases.push_back({"empty name", s, ViciErrc::InvalidName});
    }
    {
        Section s;
        s.addValue(std::string(kMaxNameLength + 1, 'n'), "v");
        cases.push_back({"name of 256 bytes", s, ViciErrc::InvalidName});
    }
    {
        Section s;
        s.addSection("bad\nname");
        cases.push_back({"newline in a section name", s, ViciErrc::InvalidName});
    }
    {
        Section s;
        s.addSection("outer").addValue("k", "1").addList("k", {});
        cases.push_back({"duplicate name in a sub-section", s, ViciErrc::DuplicateKey});
    }
    {
        Section s;
        s.addValue("v", std::string(kMaxValueLength + 1, 'x'));
        cases.push_back({"value of 65536 bytes", s, ViciErrc::ValueTooLong});
    }
    {
        Section s;
        s.addList("l", {"ok", std::string(kMaxValueLength + 1, 'x')});
        cases.push_back({"list item of 65536 bytes", s, ViciErrc::ValueTooLong});
    }
    cases.push_back(
        {"nesting beyond the cap", nestedTree(kMaxSectionDepth + 1), ViciErrc::TooDeep});

    for (const Case& c : cases) {
        CAPTURE(c.name);
        auto encoded = encodeMessage(c.tree);
        REQUIRE_FALSE(encoded.ok());
        CHECK(encoded.error().code == c.expected);
    }
}

TEST_CASE("isValidName: 1 to 255 printable ASCII bytes") {
    CHECK(isValidName("a"));
    CHECK(isValidName("child-sas"));
    CHECK(isValidName("with space"));
    CHECK(isValidName(std::string(255, '~')));
    CHECK_FALSE(isValidName(""));
    CHECK_FALSE(isValidName(std::string(256, 'a')));
    CHECK_FALSE(isValidName("tab\t"));
    CHECK_FALSE(isValidName("\x7f"));
}
