#include <doctest/doctest.h>

#include "control/Metrics.h"
#include "control/Status.h"

using namespace xtap::control;
using xtap::delivery::DropReason;

namespace {

Status sample() {
    Status s;
    s.version = "0.1.0";
    s.uptime_s = 42;
    s.criteria = 3;
    s.interfaces = {{"r0", {"ge-0/0/0.0"}, "native", "xtcap5b", 7, {1, 2, 3, 4}},
                    {"r1", {}, "generic", "xtcap6b", 0, {}}};
    s.tunnels = {{"md", "up", 2, 1, 3}, {"backup \"b\"", "waiting", 0, 0, 7}};
    s.clients = {{"md1", 2, 1}, {"md2", 1, 1}};
    StageCounters& st = s.stages;
    st.matched = 117;
    st.gate_no_consumer = 12;
    st.gate_budget = 5;
    st.xsk = {1, 2, 3, 4};
    st.capture_veth_dropped = 7;
    st.cloned = 100;
    st.received = 100;
    st.to_send = 120;
    st.encapsulated = 118;
    st.sent_in_gso = 96;
    st.gso_fallbacks = 1;
    st.delivery.copies_sent = 110;
    st.delivery.bytes_sent = 11000;
    st.delivery.addDrop(DropReason::TunnelDown, 100);
    st.delivery.addDrop(DropReason::TunnelDown, 100);
    for (int i = 0; i < 8; ++i) st.delivery.addDrop(DropReason::SendError, 10);
    CdestStatus d;
    d.id = 1;
    d.labels = {{"md1", "cd1"}, {"md2", "lab"}};
    d.counters = st.delivery;
    s.cdests = {d};
    return s;
}

}  // namespace

TEST_CASE("status: JSON round trip keeps every field") {
    const Status s = sample();
    auto back = statusFromJson(toJson(s));
    REQUIRE(std::holds_alternative<Status>(back));
    CHECK(std::get<Status>(back) == s);
}

TEST_CASE("status: JSON names the counters scripts read") {
    const auto j = toJson(sample());
    CHECK(j["counters"]["matched"] == 117);
    CHECK(j["counters"]["gate_no_consumer"] == 12);
    CHECK(j["counters"]["gate_budget"] == 5);
    CHECK(j["counters"]["received"] == 100);
    CHECK(j["counters"]["sent"] == 110);
    CHECK(j["counters"]["dropped"] == 10);
    CHECK(j["counters"]["to_send"] == 120);
    CHECK(j["counters"]["dropped_by_reason"]["tunnel_down"] == 2);
    CHECK(j["counters"]["dropped_by_reason"]["send_error"] == 8);
    CHECK(j["counters"]["dropped_by_reason"]["rate_limit"] == 0);
    CHECK(j["counters"]["dropped_by_reason"]["ring_full"] == 0);
    CHECK(j["cdests"][0]["labels"][1]["cdest_id"] == "lab");
    CHECK(j["counters"]["sent_in_gso"] == 96);
    CHECK(j["counters"]["gso_fallbacks"] == 1);
}

TEST_CASE("status: every cloned copy is received or lost at a named stage") {
    StageCounters st;
    st.cloned = 1000;
    st.received = 600;
    st.capture_veth_dropped = 150;
    st.capture_no_socket = 50;
    st.xsk = {30, 160, 999, 5};  // fill-ring-empty and invalid descs lose no copy
    // Veth drops fail the clone: part of clone_failed, never of cloned.
    CHECK(st.captureLost() == 240);
    CHECK(st.captureUnaccounted() == 160);  // in flight or uncounted
    st.received = 770;
    CHECK(st.captureUnaccounted() == -10);  // the counters disagree: visible, not wrapped
    Status status;
    status.stages = st;
    const auto j = toJson(status);
    CHECK(j["counters"]["capture_veth_dropped"] == 150);
    CHECK(j["counters"]["capture_lost"] == 240);
    CHECK(j["counters"]["capture_unaccounted"] == -10);
}

TEST_CASE("status: a document without the veth counter (older xtapd) still reads") {
    auto j = toJson(sample());
    j["counters"].erase("capture_veth_dropped");
    j["interfaces"][0].erase("capture_veth_dropped");
    auto back = statusFromJson(j);
    REQUIRE(std::holds_alternative<Status>(back));
    CHECK(std::get<Status>(back).stages.capture_veth_dropped == 0);
    CHECK(std::get<Status>(back).interfaces[0].capture_veth_dropped == 0);
}

TEST_CASE("status: a document without the GSO or gate counters (older xtapd) still reads") {
    auto j = toJson(sample());
    for (const char* key : {"sent_in_gso", "gso_fallbacks", "gate_no_consumer", "gate_budget"})
        j["counters"].erase(key);
    auto back = statusFromJson(j);
    REQUIRE(std::holds_alternative<Status>(back));
    const StageCounters& st = std::get<Status>(back).stages;
    CHECK(st.sent_in_gso == 0);
    CHECK(st.gso_fallbacks == 0);
    CHECK(st.gated() == 0);
}

TEST_CASE("status: a broken document is refused, not half read") {
    auto j = toJson(sample());
    j["counters"].erase("matched");
    CHECK(std::holds_alternative<std::string>(statusFromJson(j)));
    j = toJson(sample());
    j["counters"]["dropped"] = 11;  // not the sum of the reasons
    CHECK(std::holds_alternative<std::string>(statusFromJson(j)));
    CHECK(std::holds_alternative<std::string>(statusFromJson(nlohmann::json::array())));
}

TEST_CASE("status: the invariant sent + dropped = to send") {
    Status s = sample();
    CHECK(s.stages.balanced());
    s.stages.delivery.addSent(10);
    CHECK_FALSE(s.stages.balanced());
}

TEST_CASE("status: the table shows each section") {
    const std::string t = renderTable(sample());
    for (const char* part :
         {"Interfaces", "r0", "ge-0/0/0.0", "native", "xtcap5b", "Tunnels", "waiting", "Clients",
          "md1", "Copy path", "matched", "tunnel_down 2, send_error 8", "Content destinations",
          "cd1 (md1), lab (md2)", "veth drops", "96 of them in UDP GSO messages; GSO fallbacks 1",
          "cloned = received + lost (0 no socket, 3 AF_XDP) -3 in flight", "not cloned",
          "no live copy thread 12, over the copy budget 5"})
        CHECK_MESSAGE(t.find(part) != std::string::npos, part);
    CHECK(t.find("note:") == std::string::npos);  // balanced
    Status unbalanced = sample();
    unbalanced.stages.to_send = 1;
    CHECK(renderTable(unbalanced).find("note: sent + dropped = 120, to send = 1") !=
          std::string::npos);
}

TEST_CASE("metrics: exposition lines, HELP and TYPE once per family") {
    const std::string m = formatMetrics(sample());
    CHECK(m.find("# TYPE xtap_matched_packets_total counter\nxtap_matched_packets_total 117\n") !=
          std::string::npos);
    CHECK(m.find("# HELP xtap_copies_sent_total ") != std::string::npos);
    CHECK(m.find("xtap_copies_sent_total 110\n") != std::string::npos);
    CHECK(m.find("# TYPE xtap_copies_dropped_total counter\n") != std::string::npos);
    CHECK(m.find("xtap_copies_dropped_total{reason=\"tunnel_down\"} 2\n") != std::string::npos);
    CHECK(m.find("xtap_copies_dropped_total{reason=\"send_error\"} 8\n") != std::string::npos);
    CHECK(m.find("xtap_copies_dropped_total{reason=\"rate_limit\"} 0\n") != std::string::npos);
    CHECK(m.find("xtap_copies_to_send_total 120\n") != std::string::npos);
    CHECK(m.find("xtap_xsk_drops_total{reason=\"rx_ring_full\"} 2\n") != std::string::npos);
    CHECK(m.find("xtap_capture_veth_dropped_total 7\n") != std::string::npos);
    CHECK(m.find("xtap_tunnel_up{tunnel=\"md\"} 1\n") != std::string::npos);
    CHECK(m.find("xtap_tunnel_up{tunnel=\"backup \\\"b\\\"\"} 0\n") != std::string::npos);
    CHECK(m.find("xtap_criteria 3\n") != std::string::npos);
    CHECK(m.find("xtap_copies_sent_in_gso_total 96\n") != std::string::npos);
    CHECK(m.find("xtap_gso_fallbacks_total 1\n") != std::string::npos);
    CHECK(m.find("xtap_copies_gated_total{reason=\"no_consumer\"} 12\n") != std::string::npos);
    CHECK(m.find("xtap_copies_gated_total{reason=\"budget\"} 5\n") != std::string::npos);
    // Each family declared once; every line a comment or "name[{labels}] value".
    size_t types = 0, pos = 0;
    while ((pos = m.find("# TYPE xtap_copies_dropped_total ", pos)) != std::string::npos)
        ++types, ++pos;
    CHECK(types == 1);
    CHECK(m.back() == '\n');
}

TEST_CASE("metrics: aggregate only, no client, Cdest or criterion labels") {
    const std::string m = formatMetrics(sample());
    CHECK(m.find("md1") == std::string::npos);
    CHECK(m.find("md2") == std::string::npos);
    CHECK(m.find("cd1") == std::string::npos);
    CHECK(m.find("user=") == std::string::npos);
    CHECK(m.find("cdest") == std::string::npos);
}

TEST_CASE("metrics: label values are escaped") {
    CHECK(escapeLabelValue("a\\b\"c\nd") == "a\\\\b\\\"c\\nd");
    CHECK(escapeLabelValue("plain") == "plain");
}
