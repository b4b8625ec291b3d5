#include <doctest/doctest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "audit/AuditLog.h"
#include "tests/support/TempDir.h"

using namespace xtap::audit;
using json = nlohmann::json;

namespace {

using xtap::test::TempDir;

std::vector<std::string> lines(const std::string& file) {
    std::ifstream in(file);
    std::vector<std::string> out;
    for (std::string l; std::getline(in, l);) out.push_back(l);
    return out;
}

VerifyResult verifyLines(const std::vector<std::string>& ls, const Ed25519Key& key, std::optional<Head> head = {}) {
    std::stringstream s;
    for (const auto& l : ls) s << l << "\n";
    return verifyLog(s, key, head);
}

}  // namespace

TEST_CASE("a written log verifies, and every kind of tampering is caught at its record") {
    TempDir dir;
    const std::string file = (dir.path / "audit.jsonl").string();
    auto key = Ed25519Key::generate();
    const auto pub = Ed25519Key::fromPem(key->publicPem());
    CHECK_FALSE(pub->canSign());
    {
        AuditLog log(file, Ed25519Key::fromPem(key->privatePem()));
        for (int i = 0; i < 5; ++i) log.append({{"event", "dtcp"}, {"user", "md1"}, {"n", i}});
    }
    {
        AuditLog log(file, Ed25519Key::fromPem(key->privatePem()));  // reopened: the chain continues
        log.append({{"event", "stop"}});
        CHECK(log.head().seq == 6);
    }
    CHECK((std::filesystem::status(file).permissions() & std::filesystem::perms::others_read) ==
          std::filesystem::perms::none);
    const auto ls = lines(file);
    REQUIRE(ls.size() == 6);
    const auto head = readHead(file + ".head", *pub);
    REQUIRE(head.has_value());
    CHECK(verifyLines(ls, *pub, head).ok);

    SUBCASE("edit") {
        auto t = ls;
        t[2].replace(t[2].find("md1"), 3, "md2");
        const auto r = verifyLines(t, *pub);
        CHECK_FALSE(r.ok);
        CHECK(r.bad_line == 3);
    }
    SUBCASE("deletion") {
        auto t = ls;
        t.erase(t.begin() + 1);
        const auto r = verifyLines(t, *pub);
        CHECK(r.bad_line == 2);
    }
    SUBCASE("insertion of a record signed by another key") {
        auto other = Ed25519Key::generate();
        auto t = ls;
        t.insert(t.begin() + 3, sealRecord({{"event", "forged"}}, 4, sha256Hex(t[2]), *other));
        CHECK(verifyLines(t, *pub).bad_line == 4);
    }
    SUBCASE("reordering") {
        auto t = ls;
        std::swap(t[3], t[4]);
        CHECK(verifyLines(t, *pub).bad_line == 4);
    }
    SUBCASE("truncation") {
        auto t = ls;
        t.pop_back();
        CHECK(verifyLines(t, *pub).ok);  // without the head it cannot be told
        const auto r = verifyLines(t, *pub, head);
        CHECK_FALSE(r.ok);
        CHECK(r.bad_line == 6);
    }
    SUBCASE("a line cut in the middle") {
        auto t = ls;
        t[5] = t[5].substr(0, 20);
        CHECK(verifyLines(t, *pub).bad_line == 6);
    }
}
