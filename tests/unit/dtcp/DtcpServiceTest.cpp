#include <doctest/doctest.h>

#include <nlohmann/json.hpp>

#include <string>
#include <vector>

#include "dtcp/DtcpService.h"
#include "DtcpTestSupport.h"
#include "ServiceTestSupport.h"

namespace xtap::dtcp {
namespace {

using namespace test;
using criteria::CriterionKey;
using dataplane::Family;

std::vector<std::string> with(std::vector<std::string> fields,
                              const std::vector<std::string>& more) {
    fields.insert(fields.end(), more.begin(), more.end());
    return fields;
}

bool slotEnabled(ServiceHarness& h, const criteria::Criterion& c) {
    return (h.maps.slot(c.slot.slot).state & XTAP_SLOT_ENABLED) != 0 && h.plane.isLive(c.slot);
}

// --- ADD -----------------------------------------------------------------------------

TEST_CASE("the IPv6 FlowTapLite ADD of dtcp.md §8 is published and answered") {
    ServiceHarness h;
    h.addUser("ftap1");
    const ServiceResult result = h.sendBytes("ftap1", withAuthentication(kAddV6Lines, kAddV6Hmac));
    REQUIRE_FALSE(result.reply.empty());
    const ReadMessage reply = readSigned(result.reply);
    CHECK(reply.code == 200);
    CHECK(reply.version == kVersion08);
    CHECK(reply.value("SEQ") == "102");
    CHECK(reply.value("CRITERIA-ID") == "1");
    CHECK(reply.value("TIMESTAMP") == "2024-05-01 10:15:30.123");
    CHECK(result.notifications.empty());

    const criteria::Criterion& c = h.criterion("ftap1", 1);
    CHECK(slotEnabled(h, c));
    CHECK(c.isStatic());
    CHECK(h.maps.slot(c.slot.slot).expiry_ns == 0);  // Static: no deadline in the classifier
    CHECK(h.maps.slot(c.slot.slot).priority == 2);
    REQUIRE_FALSE(c.publication.filters.empty());
    for (const dataplane::Filter& f : c.publication.filters) {
        CHECK(f.family == Family::V6);
        CHECK(f.ifindex == 7);  // ge-0/0/1.0
        CHECK(f.proto == std::optional<uint8_t>(6));
        CHECK(f.dport == dataplane::Range16{443, 443});
        CHECK(f.src.len == 48);
        CHECK(f.dst.len == 128);
    }
    REQUIRE(c.publication.destinations.size() == 1);
    const criteria::ContentDestination& d = c.publication.destinations.front();
    CHECK(d.cdest_id == "cd1");
    CHECK(d.params.outer == outerHeader("198.51.100.1", 49153, "203.0.113.50", 50000, 255));
    CHECK(d.params.encapsulation.format == delivery::Format::Flowtap);
    CHECK_FALSE(d.cleartext);
    CHECK(h.destinations.asked_by == std::set<std::string>{"ftap1"});
    REQUIRE(result.audit.size() == 1);
    CHECK(result.audit.front().kind == AuditEvent::Kind::Added);
}

TEST_CASE("the other ADD examples of dtcp.md §8: X-JTap set with TTL, configured Cdest in 0.7") {
    ServiceHarness h;
    h.addUser("ftap1");
    h.addUser("ms1");
    const ReadMessage v8 =
        readSigned(h.sendBytes("ftap1", withAuthentication(kAddV8Lines, kAddV8Hmac)).reply);
    CHECK(v8.code == 200);
    CHECK(v8.value("CRITERIA-ID") == "1");
    CHECK(h.criterion("ftap1", 1).publication.destinations.front().params.outer.ttl == 64);

    const ReadMessage v7 =
        readSigned(h.sendBytes("ms1", withAuthentication(kAddV7Lines, kAddV7Hmac)).reply);
    CHECK(v7.code == 200);
    CHECK(v7.version == kVersion07);
    CHECK(v7.value("SEQ") == "5000");
    const criteria::Criterion& c = h.criterion("ms1", 1);
    CHECK(c.publication.destinations.front().params.outer == h.users.at("ms1").destinations["cd1"]);
    CHECK(c.sendAsync());
    CHECK(h.maps.slot(c.slot.slot).expiry_ns == h.now.boottime_ns + 86400 * kSecond);
}

TEST_CASE("the effective priority adds the user's minimum_priority") {
    ServiceHarness h;
    h.addUser("alice").minimum_priority = 10;
    const uint32_t id = h.addCriterion("alice", {"Priority: 3", "Flags: Static"});
    const criteria::Criterion& c = h.criterion("alice", id);
    CHECK(c.publication.effective_priority == 13);
    CHECK(h.maps.slot(c.slot.slot).priority == 13);
}

TEST_CASE("JMirror users get the intercept ID from X-MD-Intercept-Id, else the Criteria-ID") {
    ServiceHarness h;
    h.addUser("alice").delivery_format = delivery::Format::Jmirror;
    const uint32_t plain = h.addCriterion("alice", {"Flags: Static"});
    const uint32_t tagged =
        h.addCriterion("alice", {"Flags: Static", "X-MD-Intercept-Id: 4000000a"});
    const auto& a = h.criterion("alice", plain).publication.destinations.front().params;
    CHECK(a.encapsulation.format == delivery::Format::Jmirror);
    CHECK(a.encapsulation.intercept_id == plain);
    CHECK(a.encapsulation.session_id == plain);
    const auto& b = h.criterion("alice", tagged).publication.destinations.front().params;
    CHECK(b.encapsulation.intercept_id == 0x0000000a);  // the low 30 bits
    CHECK(b.encapsulation.session_id == tagged);
}

TEST_CASE("two Cdest-IDs give two destinations") {
    ServiceHarness h;
    h.addUser("alice");
    const uint32_t id = h.addCriterion("alice", {"Flags: Static", "Cdest-ID: cd1, cd2"});
    const auto& d = h.criterion("alice", id).publication.destinations;
    REQUIRE(d.size() == 2);
    CHECK(d[0].cdest_id == "cd1");
    CHECK(d[1].cdest_id == "cd2");
    CHECK(d[1].params.outer.destination == ipOf("203.0.113.51").bytes);
}

// --- 430, 901, 501 -------------------------------------------------------------------

TEST_CASE("430: unknown Cdest-ID, destination outside tunnels and cleartext list, foreign source") {
    ServiceHarness h;
    UserContext& alice = h.addUser("alice");
    alice.destinations["far"] = outerHeader("198.51.100.1", 49153, "198.18.0.9", 50000);
    alice.destinations["spoofed"] = outerHeader("198.51.100.99", 49153, "203.0.113.50", 50000);

    SUBCASE("Cdest-ID not configured for the user") {
        const ReadMessage r =
            h.ask("alice", "ADD DTCP/0.8",
                  {"Source-Address: 192.0.2.10", "Flags: Static", "Cdest-ID: nowhere"});
        CHECK(r.code == 430);
        CHECK(r.value("CDEST-ID") == "nowhere");
    }
    SUBCASE("a configured destination no tunnel covers") {
        const ReadMessage r =
            h.ask("alice", "ADD DTCP/0.8",
                  {"Source-Address: 192.0.2.10", "Flags: Static", "Cdest-ID: far"});
        CHECK(r.code == 430);
        CHECK(r.value("CDEST-ID") == "far");
    }
    SUBCASE("a configured destination with a source that is not the appliance's") {
        const ReadMessage r =
            h.ask("alice", "ADD DTCP/0.8",
                  {"Source-Address: 192.0.2.10", "Flags: Static", "Cdest-ID: spoofed"});
        CHECK(r.code == 430);
    }
    SUBCASE("an X-JTap destination outside the tunnels") {
        const ReadMessage r =
            h.ask("alice", "ADD DTCP/0.8",
                  {"Source-Address: 192.0.2.10", "Flags: Static", "Cdest-ID: mine",
                   "X-JTap-Cdest-Dest-Address: 198.18.0.9", "X-JTap-Cdest-Dest-Port: 50000",
                   "X-JTap-Cdest-Source-Address: 198.51.100.1", "X-JTap-Cdest-Source-Port: 49153"});
        CHECK(r.code == 430);
        CHECK(r.value("X-JTAP-CDEST-DEST-ADDRESS") == "198.18.0.9");
    }
    SUBCASE("an X-JTap source address that is not the appliance's") {
        const ReadMessage r = h.ask(
            "alice", "ADD DTCP/0.8",
            {"Source-Address: 192.0.2.10", "Flags: Static", "Cdest-ID: mine",
             "X-JTap-Cdest-Dest-Address: 203.0.113.50", "X-JTap-Cdest-Dest-Port: 50000",
             "X-JTap-Cdest-Source-Address: 198.51.100.200", "X-JTap-Cdest-Source-Port: 49153"});
        CHECK(r.code == 430);
        CHECK(r.value("X-JTAP-CDEST-SOURCE-ADDRESS") == "198.51.100.200");
    }
    CHECK(h.store.size() == 0);
    CHECK(h.plane.liveCount() == 0);
    // Refused ADDs allocate no ID.
    CHECK(h.store.nextCriteriaId("alice") == 1);
}

TEST_CASE("a cleartext-list destination is accepted and audited") {
    ServiceHarness h;
    h.addUser("alice").destinations["lab"] =
        outerHeader("198.51.100.1", 49153, "192.0.2.250", 50000);
    const ServiceResult result = h.send(
        "alice", "ADD DTCP/0.8", {"Source-Address: 192.0.2.10", "Flags: Static", "Cdest-ID: lab"});
    CHECK(readSigned(result.reply).code == 200);
    REQUIRE(result.audit.size() == 2);
    CHECK(result.audit[1].kind == AuditEvent::Kind::CleartextDestination);
    CHECK(result.audit[1].cdest_id == "lab");
    CHECK(h.criterion("alice", 1).publication.destinations.front().cleartext);
}

TEST_CASE("901: unknown input interface or VRF; VRF members become the input interfaces") {
    ServiceHarness h;
    h.addUser("alice");
    const ReadMessage unknown =
        h.ask("alice", "ADD DTCP/0.8",
              {"Source-Address: 192.0.2.10", "Flags: Static", "Cdest-ID: cd1",
               "X-JTap-Input-Interface: ge-0/0/1.0, ge-9/9/9.0"});
    CHECK(unknown.code == 901);
    CHECK(unknown.value("X-JTAP-INPUT-INTERFACE") == "ge-9/9/9.0");

    const ReadMessage no_vrf = h.ask(
        "alice", "ADD DTCP/0.8",
        {"Source-Address: 192.0.2.10", "Flags: Static", "Cdest-ID: cd1", "X-JTap-VRF-Name: red"});
    CHECK(no_vrf.code == 901);
    CHECK(no_vrf.value("X-JTAP-VRF-NAME") == "red");
    CHECK(h.store.size() == 0);

    const uint32_t id = h.addCriterion("alice", {"Flags: Static", "X-JTap-VRF-Name: blue"});
    std::set<uint32_t> ifindexes;
    for (const auto& f : h.criterion("alice", id).publication.filters) ifindexes.insert(f.ifindex);
    CHECK(ifindexes == std::set<uint32_t>{11, 12});

    const uint32_t linux_name =
        h.addCriterion("alice", {"Flags: Static", "X-JTap-Input-Interface: eth3"});
    for (const auto& f : h.criterion("alice", linux_name).publication.filters)
        CHECK(f.ifindex == 9);
}

TEST_CASE("a VRF whose members change is recompiled, its counters carried over") {
    ServiceHarness h;
    h.addUser("alice");
    const uint32_t id = h.addCriterion("alice", {"Flags: Static", "X-JTap-VRF-Name: blue"});
    h.traffic("alice", id, 3, 300);
    const dataplane::SlotRef before = h.criterion("alice", id).slot;

    h.interfaces.vrfs["blue"] = {12, 13};
    const VrfUpdate update = h.service.updateVrf("blue", h.lookup());
    CHECK(update.republished == 1);
    CHECK(update.failed.empty());
    const criteria::Criterion& c = h.criterion("alice", id);
    CHECK_FALSE(h.plane.isLive(before));
    CHECK(slotEnabled(h, c));
    std::set<uint32_t> ifindexes;
    for (const auto& f : c.publication.filters) ifindexes.insert(f.ifindex);
    CHECK(ifindexes == std::set<uint32_t>{12, 13});
    CHECK(h.store.matched(c) == criteria::MatchCounters{3, 300});
    CHECK(h.store.findBySlot(c.slot.slot) == &c);

    // A VRF left without members keeps the filters it had.
    const dataplane::SlotRef current = c.slot;
    h.interfaces.vrfs["blue"] = {};
    const VrfUpdate empty = h.service.updateVrf("blue", h.lookup());
    CHECK(empty.republished == 0);
    CHECK(empty.failed.size() == 1);
    CHECK(h.criterion("alice", id).slot == current);
    CHECK(h.plane.isLive(current));
}

TEST_CASE("X-JTap-Output-Interface resolves through the alias table; unknown names are 901") {
    ServiceHarness h;
    h.addUser("alice");
    const ReadMessage unknown =
        h.ask("alice", "ADD DTCP/0.8",
              {"Source-Address: 192.0.2.10", "Flags: Static", "Cdest-ID: cd1",
               "X-JTap-Output-Interface: ge-0/0/2.0, ge-9/9/9.0"});
    CHECK(unknown.code == 901);
    CHECK(unknown.value("X-JTAP-OUTPUT-INTERFACE") == "ge-9/9/9.0");
    CHECK(h.store.size() == 0);

    const uint32_t id =
        h.addCriterion("alice", {"Flags: Static", "X-JTap-Input-Interface: ge-0/0/1.0",
                                 "X-JTap-Output-Interface: ge-0/0/2.0, eth3"});
    std::set<uint32_t> egress;
    for (const auto& f : h.criterion("alice", id).publication.filters) {
        CHECK(f.ifindex == 7);
        egress.insert(f.oifindex);
    }
    CHECK(egress == std::set<uint32_t>{8, 9});
}

TEST_CASE("a criterion over the user's compiled-filter budget is 432") {
    ServiceHarness h;
    h.addUser("alice").max_filters_per_criterion = 2;
    const ReadMessage r =
        h.ask("alice", "ADD DTCP/0.8",
              {"Source-Address: 192.0.2.1-192.0.2.6", "Flags: Static", "Cdest-ID: cd1"});
    CHECK(r.code == 432);
    CHECK(r.message.fields.size() == 2);  // the whole criterion is at fault: SEQ, TIMESTAMP only
    CHECK(h.store.size() == 0);
}

// --- quotas --------------------------------------------------------------------------

TEST_CASE("550: the user's max_criteria and the global total") {
    SUBCASE("per user") {
        ServiceHarness h;
        h.addUser("alice").max_criteria = 2;
        h.addUser("bob");
        h.addCriterion("alice", {"Flags: Static"});
        h.addCriterion("alice", {"Flags: Static"}, "192.0.2.11");
        const ReadMessage r =
            h.ask("alice", "ADD DTCP/0.8",
                  {"Source-Address: 192.0.2.12", "Flags: Static", "Cdest-ID: cd1"});
        CHECK(r.code == 550);
        CHECK(h.store.countOf("alice") == 2);
        // Another user is not held to alice's quota.
        CHECK(h.addCriterion("bob", {"Flags: Static"}) == 1);
        // After a DELETE there is room again, under a new ID.
        CHECK(h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 1", "Flags: Static"}).code == 200);
        CHECK(h.addCriterion("alice", {"Flags: Static"}, "192.0.2.12") == 3);
    }
    SUBCASE("global: the data plane's capacity") {
        ServiceHarness h(2);
        h.addUser("alice");
        h.addUser("bob");
        h.addCriterion("alice", {"Flags: Static"});
        h.addCriterion("bob", {"Flags: Static"});
        const ReadMessage r =
            h.ask("alice", "ADD DTCP/0.8",
                  {"Source-Address: 192.0.2.12", "Flags: Static", "Cdest-ID: cd1"});
        CHECK(r.code == 550);
        CHECK(h.plane.liveCount() == 2);
    }
}

TEST_CASE("551: distinct content destinations per user") {
    ServiceHarness h;
    h.addUser("alice").max_content_destinations = 1;
    h.addCriterion("alice", {"Flags: Static", "Cdest-ID: cd1"});
    // The same destination again does not count twice.
    h.addCriterion("alice", {"Flags: Static", "Cdest-ID: cd1"}, "192.0.2.11");
    const ReadMessage r = h.ask("alice", "ADD DTCP/0.8",
                                {"Source-Address: 192.0.2.12", "Flags: Static", "Cdest-ID: cd2"});
    CHECK(r.code == 551);
    CHECK(r.value("CDEST-ID") == "cd2");
    CHECK(h.store.countOf("alice") == 2);
    CHECK(h.store.destinationCountOf("alice") == 1);
}

// --- DELETE, REFRESH, LIST -----------------------------------------------------------

TEST_CASE("DELETE by Cdest-ID removes the client's criteria to that destination") {
    ServiceHarness h;
    h.addUser("alice");
    h.addCriterion("alice", {"Timeout-Total: 600", "Cdest-ID: cd1"});
    h.addCriterion("alice", {"Timeout-Total: 600", "Cdest-ID: cd2, cd1"}, "192.0.2.11");
    const uint32_t kept =
        h.addCriterion("alice", {"Timeout-Total: 600", "Cdest-ID: cd2"}, "192.0.2.12");
    const ReadMessage r = h.ask("alice", "DELETE DTCP/0.8", {"Cdest-ID: cd1"});
    CHECK(r.code == 200);
    CHECK(r.value("CRITERIA-COUNT") == "2");
    CHECK(h.store.idsOf("alice") == std::vector<uint32_t>{kept});
    CHECK(h.plane.liveCount() == 1);

    const ReadMessage none = h.ask("alice", "DELETE DTCP/0.8", {"Cdest-ID: cd1"});
    CHECK(none.code == 200);
    CHECK(none.value("CRITERIA-COUNT") == "0");
}

TEST_CASE("DELETE by list and range; an unknown single ID is 431 and deletes nothing") {
    ServiceHarness h;
    h.addUser("alice");
    for (int i = 0; i < 4; ++i) {
        h.addCriterion("alice", {"Timeout-Total: 600"}, "192.0.2." + std::to_string(10 + i));
    }
    const ReadMessage unknown = h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 9"});
    CHECK(unknown.code == 431);
    CHECK(unknown.value("CRITERIA-ID") == "9");
    CHECK(h.store.countOf("alice") == 4);

    CHECK(h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 1, 3"}).value("CRITERIA-COUNT") == "2");
    CHECK(h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 3-100"}).value("CRITERIA-COUNT") == "1");
    CHECK(h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 50-60"}).value("CRITERIA-COUNT") == "0");
    CHECK(h.store.idsOf("alice") == std::vector<uint32_t>{2});
}

TEST_CASE("two users are isolated: per-user IDs, 431 for the other's, LIST shows only one's own") {
    ServiceHarness h;
    h.addUser("alice");
    h.addUser("bob", "bobs-key");
    CHECK(h.addCriterion("alice", {"Timeout-Total: 600"}) == 1);
    CHECK(h.addCriterion("alice", {"Timeout-Total: 600"}, "192.0.2.11") == 2);
    CHECK(h.addCriterion("bob", {"Timeout-Total: 600"}, "192.0.2.99") == 1);

    const ReadMessage del = h.ask("bob", "DELETE DTCP/0.8", {"Criteria-ID: 2"});
    CHECK(del.code == 431);
    const ReadMessage ref =
        h.ask("bob", "REFRESH DTCP/0.8", {"Criteria-ID: 2", "Timeout-Total: 5"});
    CHECK(ref.code == 431);
    CHECK(h.criterion("alice", 2).refresh_count == 0);

    const ServiceResult listed = h.send("bob", "LIST DTCP/0.8", {});
    const ReadMessage list = readSigned(listed.reply, "bobs-key");
    CHECK(list.values("CRITERIA-ID") == std::vector<std::string>{"1"});
    CHECK(list.values("CSOURCE-ID") == std::vector<std::string>{"bob"});
    CHECK(list.value("SOURCE-ADDRESS") == "192.0.2.99");
    CHECK(h.ask("bob", "LIST DTCP/0.8", {"Criteria-ID: 2"}).has("CRITERIA-COUNT") == false);

    // A range deletes only bob's own.
    CHECK(h.ask("bob", "DELETE DTCP/0.8", {"Criteria-ID: 1-*"}).value("CRITERIA-COUNT") == "1");
    CHECK(h.store.countOf("alice") == 2);
    CHECK(h.store.countOf("bob") == 0);
}

TEST_CASE("Criteria-IDs are never reused after a delete") {
    ServiceHarness h;
    h.addUser("alice");
    CHECK(h.addCriterion("alice", {"Timeout-Total: 600"}) == 1);
    CHECK(h.addCriterion("alice", {"Timeout-Total: 600"}, "192.0.2.11") == 2);
    CHECK(h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 2"}).code == 200);
    CHECK(h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 1"}).code == 200);
    CHECK(h.addCriterion("alice", {"Timeout-Total: 600"}, "192.0.2.12") == 3);
    CHECK(h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 2"}).code == 431);
}

TEST_CASE("LIST Both: criteria fields echoed, counters, bandwidth, refresh and drop statistics") {
    ServiceHarness h;
    h.addUser("alice");
    const uint32_t id =
        h.addCriterion("alice", with({"Protocol: 6", "Dest-Port: 443", "Timeout-Idle: 600",
                                      "Timeout-Packets: 1000", "Flags: SendAsync", "Cdest-ID: tap"},
                                     kCdestSet));
    const std::string added_at = "2024-05-01 10:15:30.123";
    h.traffic("alice", id, 10, 10000);
    h.advance(10);
    h.tick();  // samples 10000 bytes at +10 s
    h.traffic("alice", id, 15, 25000);
    h.advance(10);
    h.store.addDropped(h.criterion("alice", id).slot.slot, 2, 3000);

    const ReadMessage list = h.ask("alice", "LIST DTCP/0.8", {"Flags: Both"});
    CHECK(list.code == 200);
    CHECK(list.value("CRITERIA-COUNT") == "1");
    CHECK(list.value("CRITERIA-NUM") == "1");
    CHECK(list.value("CSOURCE-ID") == "alice");
    CHECK(list.value("CSOURCE-ADDRESS") == "192.0.2.77");
    CHECK(list.value("CDEST-ID") == "tap");
    CHECK(list.value("CRITERIA-ID") == std::to_string(id));
    CHECK(list.values("TIMESTAMP").front() == added_at);
    CHECK(list.value("SOURCE-ADDRESS") == "192.0.2.10");
    CHECK(list.value("PROTOCOL") == "6");
    CHECK(list.value("DEST-PORT") == "443");
    CHECK(list.value("TIMEOUT-IDLE") == "600");
    CHECK(list.value("TIMEOUT-PACKETS") == "1000");
    CHECK(list.value("FLAGS") == "SENDASYNC");
    CHECK(list.value("X-JTAP-CDEST-DEST-ADDRESS") == "203.0.113.50");
    CHECK(list.value("X-JTAP-CDEST-SOURCE-PORT") == "49153");
    CHECK(list.value("REMAINING-IDLE") == "600");  // traffic was seen at the LIST
    CHECK(list.value("REMAINING-PACKETS") == "975");
    CHECK(list.value("MATCHING-PACKETS") == "25");
    CHECK(list.value("MATCHING-BYTES") == "35000");
    // 25000 bytes in the 10 s since the sample a window old.
    CHECK(list.value("AVERAGE-BANDWIDTH") == "20000");
    CHECK(list.value("NUM-REFRESH") == "0");
    CHECK(list.value("LAST-REFRESH") == added_at);
    CHECK(list.value("X-XTAP-DROPPED-PACKETS") == "2");
    CHECK(list.value("X-XTAP-DROPPED-BYTES") == "3000");
    // The reply's own TIMESTAMP is last.
    CHECK(list.values("TIMESTAMP").back() == "2024-05-01 10:15:50.123");

    const ReadMessage stats = h.ask("alice", "LIST DTCP/0.8", {"Flags: Stats"});
    CHECK(stats.value("MATCHING-PACKETS") == "25");
    CHECK_FALSE(stats.has("SOURCE-ADDRESS"));
    CHECK_FALSE(stats.has("TIMEOUT-IDLE"));
    const ReadMessage crit = h.ask("alice", "LIST DTCP/0.8", {"Flags: Criteria"});
    CHECK(crit.value("SOURCE-ADDRESS") == "192.0.2.10");
    CHECK_FALSE(crit.has("MATCHING-PACKETS"));
    const ReadMessage none = h.ask("alice", "LIST DTCP/0.8", {});
    CHECK(none.value("MATCHING-PACKETS") == "25");  // no Flags: Both
    CHECK(none.value("SOURCE-ADDRESS") == "192.0.2.10");
}

TEST_CASE("LIST selects by Cdest-ID and lists several entries with a true count") {
    ServiceHarness h;
    h.addUser("alice");
    h.addCriterion("alice", {"Timeout-Total: 600", "Cdest-ID: cd1"});
    h.addCriterion("alice", {"Timeout-Total: 600", "Cdest-ID: cd2"}, "192.0.2.11");
    h.addCriterion("alice", {"Timeout-Total: 600", "Cdest-ID: cd2"}, "192.0.2.12");
    const ReadMessage all = h.ask("alice", "LIST DTCP/0.8", {});
    CHECK(all.values("CRITERIA-COUNT") == std::vector<std::string>{"3", "3", "3"});
    CHECK(all.values("CRITERIA-NUM") == std::vector<std::string>{"1", "2", "3"});
    const ReadMessage cd2 = h.ask("alice", "LIST DTCP/0.8", {"Cdest-ID: cd2"});
    CHECK(cd2.values("CRITERIA-ID") == std::vector<std::string>{"2", "3"});
    const ReadMessage nothing = h.ask("alice", "LIST DTCP/0.8", {"Cdest-ID: cd9"});
    CHECK(nothing.code == 200);
    CHECK_FALSE(nothing.has("CRITERIA-COUNT"));
}

TEST_CASE("Static criteria: DELETE needs Flags: Static, REFRESH leaves them, no timeouts") {
    ServiceHarness h;
    h.addUser("alice");
    const uint32_t fixed = h.addCriterion("alice", {"Flags: Static", "Timeout-Total: 5"});
    const uint32_t timed = h.addCriterion("alice", {"Timeout-Total: 600"}, "192.0.2.11");

    const ReadMessage plain = h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 1-2"});
    CHECK(plain.value("CRITERIA-COUNT") == "1");
    CHECK(h.store.idsOf("alice") == std::vector<uint32_t>{fixed});
    CHECK(h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 1"}).value("CRITERIA-COUNT") == "0");

    const ReadMessage refresh =
        h.ask("alice", "REFRESH DTCP/0.8", {"Criteria-ID: 1", "Timeout-Idle: 30"});
    CHECK(refresh.code == 200);
    CHECK(refresh.value("CRITERIA-COUNT") == "0");
    CHECK(h.criterion("alice", fixed).refresh_count == 0);

    // Its Timeout-Total is ignored: Static never expires.
    h.advance(3600);
    h.tick();
    CHECK(h.store.find(CriterionKey{"alice", fixed}));
    CHECK(h.maps.slot(h.criterion("alice", fixed).slot.slot).expiry_ns == 0);
    const ReadMessage list = h.ask("alice", "LIST DTCP/0.8", {});
    CHECK(list.value("FLAGS") == "STATIC");
    CHECK_FALSE(list.has("REMAINING-TOTAL"));

    CHECK(h.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: 1", "Flags: Static"})
              .value("CRITERIA-COUNT") == "1");
    CHECK(h.store.size() == 0);
    CHECK(timed == 2);
}

TEST_CASE("REFRESH replaces the remaining time and counts refreshes") {
    ServiceHarness h;
    h.addUser("alice");
    const uint32_t id = h.addCriterion("alice", {"Timeout-Total: 60", "Timeout-Packets: 100"});
    h.traffic("alice", id, 90, 9000);
    h.advance(50);
    const ReadMessage r =
        h.ask("alice", "REFRESH DTCP/0.8",
              {"Criteria-ID: " + std::to_string(id), "Timeout-Total: 60", "Timeout-Packets: 20"});
    CHECK(r.code == 200);
    CHECK(r.value("CRITERIA-COUNT") == "1");
    const criteria::Criterion& c = h.criterion("alice", id);
    CHECK(h.maps.slot(c.slot.slot).expiry_ns == h.now.boottime_ns + 60 * kSecond);

    const ReadMessage list = h.ask("alice", "LIST DTCP/0.8", {"Flags: Both"});
    CHECK(list.value("TIMEOUT-TOTAL") == "60");
    CHECK(list.value("TIMEOUT-PACKETS") == "20");
    CHECK(list.value("REMAINING-TOTAL") == "60");
    CHECK(list.value("REMAINING-PACKETS") == "20");  // counted from the REFRESH
    CHECK(list.value("MATCHING-PACKETS") == "90");   // counters still run from the ADD
    CHECK(list.value("NUM-REFRESH") == "1");
    CHECK(list.value("LAST-REFRESH") == "2024-05-01 10:16:20.123");

    h.advance(59);
    CHECK(h.tick().audit.empty());
    h.advance(1);
    const TickResult expired = h.tick();
    REQUIRE(expired.audit.size() == 1);
    CHECK(expired.audit.front().kind == AuditEvent::Kind::TimedOut);
    CHECK(h.store.size() == 0);
}

TEST_CASE("REFRESH by Cdest-ID; an unknown single ID is 431") {
    ServiceHarness h;
    h.addUser("alice");
    h.addCriterion("alice", {"Timeout-Idle: 60", "Cdest-ID: cd1"});
    h.addCriterion("alice", {"Timeout-Idle: 60", "Cdest-ID: cd2"}, "192.0.2.11");
    const ReadMessage r =
        h.ask("alice", "REFRESH DTCP/0.8", {"Cdest-ID: cd2", "Timeout-Idle: 120"});
    CHECK(r.value("CRITERIA-COUNT") == "1");
    CHECK(h.criterion("alice", 2).limits.idle_seconds == std::optional<uint32_t>(120));
    CHECK(h.criterion("alice", 1).limits.idle_seconds == std::optional<uint32_t>(60));
    CHECK(h.ask("alice", "REFRESH DTCP/0.8", {"Criteria-ID: 7", "Timeout-Idle: 1"}).code == 431);
}

// --- timeouts ------------------------------------------------------------------------

TEST_CASE("Timeout-Idle: traffic keeps a criterion alive; silence ends it with a 390") {
    ServiceHarness h;
    h.addUser("ms1");
    // The ADD in 0.7 makes 0.7 the user's notification version.
    const ReadMessage added =
        readSigned(h.sendBytes("ms1", withAuthentication(kAddV7Lines, kAddV7Hmac)).reply);
    REQUIRE(added.code == 200);
    h.advance(500);
    h.traffic("ms1", 1, 1, 100);
    CHECK(h.tick().notifications.empty());
    h.advance(599);
    CHECK(h.tick().notifications.empty());
    h.advance(1);
    const TickResult t = h.tick();
    CHECK(h.store.size() == 0);
    CHECK(h.plane.liveCount() == 0);
    REQUIRE(t.notifications.size() == 1);
    CHECK(t.notifications.front().user == "ms1");
    CHECK(t.notifications.front().criteria_id == 1);
    const ReadMessage n = readSigned(t.notifications.front().message);
    CHECK(n.code == 390);
    CHECK(n.version == kVersion07);
    CHECK_FALSE(n.has("SEQ"));
    CHECK(n.value("CRITERIA-ID") == "1");
    CHECK(n.value("TIMEOUT-IDLE") == "600");
    CHECK(n.value("REMAINING-IDLE") == "0");
    CHECK(n.value("TIMEOUT-TOTAL") == "86400");
    CHECK(n.value("REMAINING-TOTAL") == std::to_string(86400 - 1100));
}

TEST_CASE("Timeout-Total ends a criterion at its deadline, also set in the classifier") {
    ServiceHarness h;
    h.addUser("alice");
    const uint32_t id = h.addCriterion("alice", {"Timeout-Total: 30", "Flags: SendAsync"});
    CHECK(h.maps.slot(h.criterion("alice", id).slot.slot).expiry_ns ==
          h.now.boottime_ns + 30 * kSecond);
    h.traffic("alice", id, 5, 500);  // traffic does not extend Timeout-Total
    h.advance(29);
    CHECK(h.tick().notifications.empty());
    h.advance(1);
    const TickResult t = h.tick();
    REQUIRE(t.notifications.size() == 1);
    const ReadMessage n = readSigned(t.notifications.front().message);
    CHECK(n.version == kVersion08);
    CHECK(n.value("TIMEOUT-TOTAL") == "30");
    CHECK(n.value("REMAINING-TOTAL") == "0");
    CHECK(h.store.size() == 0);
}

TEST_CASE("Timeout-Packets and Timeout-Bytes end a criterion once reached") {
    ServiceHarness h;
    h.addUser("alice");
    const uint32_t packets = h.addCriterion("alice", {"Timeout-Packets: 100", "Flags: SendAsync"});
    const uint32_t bytes =
        h.addCriterion("alice", {"Timeout-Bytes: 5000", "Flags: SendAsync"}, "192.0.2.11");
    h.traffic("alice", packets, 99, 9900);
    h.traffic("alice", bytes, 4, 4999);
    h.advance(1);
    CHECK(h.tick().notifications.empty());
    h.traffic("alice", packets, 1, 100);
    h.traffic("alice", bytes, 1, 1);
    h.advance(1);
    const TickResult t = h.tick();
    REQUIRE(t.notifications.size() == 2);
    const ReadMessage first = readSigned(t.notifications[0].message);
    CHECK(first.value("CRITERIA-ID") == std::to_string(packets));
    CHECK(first.value("TIMEOUT-PACKETS") == "100");
    CHECK(first.value("REMAINING-PACKETS") == "0");
    const ReadMessage second = readSigned(t.notifications[1].message);
    CHECK(second.value("CRITERIA-ID") == std::to_string(bytes));
    CHECK(second.value("TIMEOUT-BYTES") == "5000");
    CHECK(second.value("REMAINING-BYTES") == "0");
    CHECK(h.store.size() == 0);
}

TEST_CASE("a criterion without SendAsync times out silently") {
    ServiceHarness h;
    h.addUser("alice");
    h.addCriterion("alice", {"Timeout-Idle: 5"});
    h.advance(5);
    const TickResult t = h.tick();
    CHECK(t.notifications.empty());
    REQUIRE(t.audit.size() == 1);
    CHECK(t.audit.front().kind == AuditEvent::Kind::TimedOut);
    CHECK(h.store.size() == 0);
}

// --- NOOP, Seq, discards ---------------------------------------------------------------

TEST_CASE("NOOP answers a bare 200; with SendAsync also a 131 notification") {
    ServiceHarness h;
    h.addUser("alice");
    const ServiceResult plain = h.send("alice", "NOOP DTCP/0.6", {});
    const ReadMessage ok = readSigned(plain.reply);
    CHECK(ok.code == 200);
    CHECK(ok.version == kVersion06);
    CHECK(ok.message.fields.size() == 2);  // SEQ, TIMESTAMP
    CHECK(plain.notifications.empty());

    const ServiceResult async = h.send("alice", "NOOP DTCP/0.8", {"Flags: SendAsync"});
    REQUIRE(async.notifications.size() == 1);
    CHECK(async.messages().size() == 2);
    CHECK(async.messages().front() == async.reply);
    const ReadMessage n = readSigned(async.notifications.front());
    CHECK(n.code == 131);
    CHECK(n.version == kVersion08);
}

TEST_CASE("a Seq rollover sends 130 after the reply") {
    ServiceHarness h;
    h.addUser("alice");
    h.seqs["alice"] = 0xffffffffffffffffULL - 1;  // the next request uses 2^64 - 1
    CHECK(h.send("alice", "NOOP DTCP/0.8", {}).notifications.empty());
    h.seqs["alice"] = 0;  // then Seq 1: across 2^64
    const ServiceResult wrapped = h.send("alice", "NOOP DTCP/0.8", {});
    CHECK(readSigned(wrapped.reply).code == 200);
    REQUIRE(wrapped.notifications.size() == 1);
    CHECK(readSigned(wrapped.notifications.front()).code == 130);
}

TEST_CASE("a message signed with another key is discarded without a reply") {
    ServiceHarness h;
    h.addUser("alice", "the-right-key");
    const std::string forged =
        signedMessage({"ADD DTCP/0.8", "Csource-ID: alice", "Source-Address: 192.0.2.10",
                       "Flags: Static", "Cdest-ID: cd1", "Seq: 1"},
                      "another-key");
    const ServiceResult result = h.sendBytes("alice", forged);
    CHECK(result.reply.empty());
    CHECK(result.messages().empty());
    REQUIRE(result.discard);
    CHECK(result.discard->reason == DiscardReason::BadAuthentication);
    CHECK(h.store.size() == 0);
}

TEST_CASE("decoder errors are answered in the request's version, signed with the user's key") {
    ServiceHarness h;
    h.addUser("alice", "k2");
    const ServiceResult result =
        h.send("alice", "ADD DTCP/0.6",
               {"Source-Address: 192.0.2.10", "Action: Block", "Flags: Static", "Cdest-ID: cd1"});
    const ReadMessage r = readSigned(result.reply, "k2");
    CHECK(r.code == 501);
    CHECK(r.version == kVersion06);
    CHECK(result.status == StatusCode::NotImplemented);
    CHECK(h.service.notificationVersion("alice") == kVersion06);
}

// --- persistence ------------------------------------------------------------------------

TEST_CASE("store -> JSON -> new store: the same criteria under the same IDs") {
    ServiceHarness before;
    before.addUser("alice");
    before.addUser("bob", "bobs-key");
    before.addUser("ftap1");
    before.addCriterion("alice", {"Timeout-Total: 600", "Timeout-Idle: 300", "Flags: SendAsync"});
    const uint32_t deleted = before.addCriterion("alice", {"Timeout-Total: 600"}, "192.0.2.11");
    const uint32_t refreshed = before.addCriterion(
        "alice", {"Timeout-Packets: 50", "Protocol: 17", "Source-Port: 53"}, "192.0.2.12");
    CHECK(
        before.ask("alice", "DELETE DTCP/0.8", {"Criteria-ID: " + std::to_string(deleted)}).code ==
        200);
    before.sendBytes("ftap1", withAuthentication(kAddV6Lines, kAddV6Hmac));
    before.addCriterion("bob", with({"Flags: Static", "Cdest-ID: tap"}, kCdestSet), "192.0.2.99");
    before.traffic("alice", refreshed, 30, 3000);
    before.advance(20);
    CHECK(before
              .ask("alice", "REFRESH DTCP/0.8",
                   {"Criteria-ID: " + std::to_string(refreshed), "Timeout-Packets: 40"})
              .code == 200);
    before.traffic("alice", 1, 7, 700);
    before.store.addDropped(before.criterion("alice", 1).slot.slot, 1, 100);
    before.advance(100);

    criteria::SeqStates seqs;
    for (const auto& [user, window] : before.windows) seqs[user] = window.state();
    // Through text, as xtapd writes the file.
    const std::string text = before.store.toJson(before.now, seqs).dump();
    const auto parsed = criteria::CriteriaStore::parseJson(nlohmann::json::parse(text));
    REQUIRE(std::holds_alternative<criteria::StoreSnapshot>(parsed));
    const auto& snapshot = std::get<criteria::StoreSnapshot>(parsed);
    CHECK(snapshot.seq_states == seqs);

    ServiceHarness after;
    after.users = before.users;
    after.advance(5000);  // a different boot: the new CLOCK_BOOTTIME is unrelated
    const criteria::RestoreReport report =
        after.service.restore(snapshot, after.lookup(), after.now);
    CHECK(report.restored == 4);
    CHECK(report.dropped.empty());
    CHECK(after.plane.liveCount() == 4);
    CHECK(after.store.idsOf("alice") == std::vector<uint32_t>{1, 3});
    CHECK(after.store.idsOf("bob") == std::vector<uint32_t>{1});
    CHECK(after.store.idsOf("ftap1") == std::vector<uint32_t>{1});

    for (const CriterionKey& key : before.store.keys()) {
        const criteria::Criterion& a = *before.store.find(key);
        const criteria::Criterion& b = after.criterion(key.user, key.id);
        CAPTURE(key.user);
        CAPTURE(key.id);
        CHECK(slotEnabled(after, b));
        CHECK(b.publication.filters == a.publication.filters);
        CHECK(b.publication.destinations == a.publication.destinations);
        CHECK(b.publication.effective_priority == a.publication.effective_priority);
        CHECK(b.request.match() == a.request.match());
        CHECK(b.request.matchText() == a.request.matchText());
        CHECK(b.request.extensionText() == a.request.extensionText());
        CHECK(b.request.cdest_ids == a.request.cdest_ids);
        CHECK(b.request.delivery() == a.request.delivery());
        CHECK(b.request.inputInterfaces() == a.request.inputInterfaces());
        CHECK(b.limits == a.limits);
        CHECK(b.added == a.added);
        CHECK(b.last_refresh == a.last_refresh);
        CHECK(b.refresh_count == a.refresh_count);
        CHECK(b.client_address == a.client_address);
        CHECK(b.dropped == a.dropped);
        CHECK(after.store.matched(b) == before.store.matched(a));
        CHECK(after.store.lifetime(b, after.now.boottime_ns).remaining ==
              before.store.lifetime(a, before.now.boottime_ns).remaining);
        CHECK(after.store.findBySlot(b.slot.slot) == &b);
    }
    // The Timeout-Total deadline continues in the new clock.
    const auto& restored = after.criterion("alice", 1);
    CHECK(after.maps.slot(restored.slot.slot).expiry_ns == after.now.boottime_ns + 480 * kSecond);
    // ID counters continue: a deleted ID is not handed out again.
    CHECK(after.addCriterion("alice", {"Timeout-Total: 600"}, "192.0.2.13") == 4);
    // The packet limit still counts from its REFRESH: 30 at the REFRESH, 40 more allowed.
    after.traffic("alice", refreshed, 40, 4000);
    after.advance(1);
    after.tick();
    CHECK_FALSE(after.store.find(CriterionKey{"alice", refreshed}));
}

TEST_CASE("restore rebuilds against the current configuration and drops what no longer passes") {
    ServiceHarness before;
    before.addUser("alice");
    before.addUser("bob");
    before.addCriterion("alice", {"Flags: Static", "Cdest-ID: cd1"});
    before.addCriterion("alice", {"Flags: Static", "Cdest-ID: cd2"}, "192.0.2.11");
    before.addCriterion("alice", {"Flags: Static", "X-JTap-Input-Interface: ge-0/0/2.0"},
                        "192.0.2.12");
    before.addCriterion("bob", {"Flags: Static"});
    const auto parsed = criteria::CriteriaStore::parseJson(before.store.toJson(before.now, {}));
    REQUIRE(std::holds_alternative<criteria::StoreSnapshot>(parsed));

    ServiceHarness after;
    after.addUser("alice");
    after.destinations.tunnel.erase("203.0.113.51");  // cd2's tunnel is gone
    after.interfaces.transit["ge-0/0/2.0"] = 21;      // renumbered after a reboot
    const criteria::RestoreReport report =
        after.service.restore(std::get<criteria::StoreSnapshot>(parsed), after.lookup(), after.now);
    CHECK(report.restored == 2);
    REQUIRE(report.dropped.size() == 2);
    CHECK(report.dropped[0].key == CriterionKey{"alice", 2});
    CHECK(report.dropped[0].reason == "an ADD now answers 430 on Cdest-ID");
    CHECK(report.dropped[1].key == CriterionKey{"bob", 1});
    CHECK(after.store.idsOf("alice") == std::vector<uint32_t>{1, 3});
    for (const auto& f : after.criterion("alice", 3).publication.filters) CHECK(f.ifindex == 21);
    // A dropped criterion's ID stays used.
    CHECK(after.store.nextCriteriaId("alice") == 4);
    CHECK(after.store.nextCriteriaId("bob") == 2);
}

}  // namespace
}  // namespace xtap::dtcp
