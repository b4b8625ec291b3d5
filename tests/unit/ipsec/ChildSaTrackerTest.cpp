// ChildSaTracker: which CHILD_SAs are up, from events shaped as charon 5.9.8
// sends them (read with the real readUpDown), and the gate it derives.
#include <doctest/doctest.h>

#include "ipsec/TunnelManager.h"
#include "AddressText.h"

using namespace xtap::ipsec;
using namespace xtap::ipsec::test;

namespace {

struct ChildSpec {
    std::string name;
    std::string id;
    std::string state = "INSTALLED";
    List remote_ts = {"198.18.20.0/24", "2001:db8:20::/64"};
};

// {up?, <ike>{uniqueid, state, child-sas{<name>-<id>{name, uniqueid, state, remote-ts[]}}}}
Section updownMessage(bool up, const std::string& ike, const std::string& ike_id,
                      const std::vector<ChildSpec>& children,
                      const std::string& ike_state = "ESTABLISHED") {
    Section root;
    if (up) {
        root.addValue("up", "yes");
    }
    Section& ike_section = root.addSection(ike);
    ike_section.addValue("uniqueid", ike_id);
    ike_section.addValue("state", ike_state);
    if (!children.empty()) {
        Section& child_sas = ike_section.addSection("child-sas");
        for (const ChildSpec& child : children) {
            Section& section = child_sas.addSection(child.name + "-" + child.id);
            section.addValue("name", child.name);
            section.addValue("uniqueid", child.id);
            section.addValue("state", child.state);
            section.addList("local-ts", {"198.18.10.1/32", "2001:db8:10::1/128"});
            section.addList("remote-ts", child.remote_ts);
        }
    }
    return root;
}

UpDownEvent updown(bool up, const std::string& ike, const std::string& ike_id,
                   const std::vector<ChildSpec>& children) {
    auto event = readUpDown(updownMessage(up, ike, ike_id, children));
    REQUIRE(event.ok());
    return *event;
}

std::vector<IkeSaInfo> snapshot(const std::string& ike, const std::string& ike_id,
                                const std::vector<ChildSpec>& children,
                                const std::string& ike_state = "ESTABLISHED") {
    auto listed = readListSa(updownMessage(false, ike, ike_id, children, ike_state));
    REQUIRE(listed.ok());
    return *listed;
}

// {<ike>{uniqueid, child-sas{<child>{old{name, uniqueid, ...}, new{...}}}}}
Section childRekeyMessage(const std::string& ike, const std::string& ike_id,
                          const std::string& child, const std::string& old_id,
                          const std::string& new_id) {
    Section root;
    Section& ike_section = root.addSection(ike);
    ike_section.addValue("uniqueid", ike_id);
    Section& pair = ike_section.addSection("child-sas").addSection(child);
    for (auto [which, id] : {std::pair{"old", old_id}, std::pair{"new", new_id}}) {
        Section& sa = pair.addSection(which);
        sa.addValue("name", child);
        sa.addValue("uniqueid", id);
        sa.addValue("state", "INSTALLED");
        sa.addList("remote-ts", {"198.18.20.0/24", "2001:db8:20::/64"});
    }
    return root;
}

Section ikeRekeyMessage(const std::string& ike, const std::string& old_id,
                        const std::string& new_id) {
    Section root;
    Section& pair = root.addSection(ike);
    pair.addSection("old").addValue("uniqueid", old_id);
    pair.addSection("new").addValue("uniqueid", new_id);
    return root;
}

// Two tunnels: "md" protects the 198.18.20/24 and 2001:db8:20::/64 Cdests,
// "md2" protects 198.18.30/24.
struct Fixture {
    ChildSaTracker tracker{{
        TrackedTunnel{"md", "md", {prefix("198.18.20.0/24"), prefix("2001:db8:20::/64")}},
        TrackedTunnel{"md2", "cd", {prefix("198.18.30.0/24")}},
    }};
    SendGate gate{tracker.gateEntries()};

    bool open(const char* destination) {
        tracker.apply(gate);
        const IpPrefix p = prefix(destination);
        return gate.isOpenFor(p.family, p.prefix.addr);
    }
};

}  // namespace

TEST_CASE("gate entries follow the tunnels' protected prefixes") {
    Fixture f;
    REQUIRE(f.gate.size() == 3);
    CHECK(f.gate.entry(0).tunnel == 0);
    CHECK(f.gate.entry(1).prefix == prefix("2001:db8:20::/64"));
    CHECK(f.gate.entry(2).tunnel == 1);
    CHECK_FALSE(f.open("198.18.20.5"));
}

TEST_CASE("child-updown up opens and down closes") {
    Fixture f;
    CHECK_FALSE(f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "3"}})));
    CHECK(f.tracker.isUp(0));
    CHECK(f.open("198.18.20.5"));
    CHECK(f.open("2001:db8:20::5"));
    CHECK_FALSE(f.open("198.18.30.5"));  // the other tunnel is still down

    f.tracker.onChildUpDown(updown(false, "md", "1", {{"md", "3"}}));
    CHECK_FALSE(f.tracker.isUp(0));
    CHECK_FALSE(f.open("198.18.20.5"));
    CHECK_FALSE(f.open("2001:db8:20::5"));
}

TEST_CASE("events of other connections or children change nothing") {
    Fixture f;
    f.tracker.onChildUpDown(updown(true, "other", "1", {{"md", "3"}}));
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"other", "4"}}));
    f.tracker.onChildUpDown(updown(true, "md2", "2", {{"md", "5"}}));  // md2's child is "cd"
    CHECK_FALSE(f.tracker.isUp(0));
    CHECK_FALSE(f.tracker.isUp(1));
    CHECK_FALSE(f.open("198.18.20.5"));
    CHECK_FALSE(f.open("198.18.30.5"));
}

TEST_CASE("a duplicate CHILD_SA keeps the gate open until the last one goes") {
    Fixture f;
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "3"}}));
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "4"}}));
    f.tracker.onChildUpDown(updown(false, "md", "1", {{"md", "3"}}));
    CHECK(f.open("198.18.20.5"));
    f.tracker.onChildUpDown(updown(false, "md", "1", {{"md", "4"}}));
    CHECK_FALSE(f.open("198.18.20.5"));
}

TEST_CASE("a narrowed remote_ts leaves the uncovered prefix closed") {
    Fixture f;
    ChildSpec narrowed{"md", "3", "INSTALLED", {"198.18.20.0/25"}};
    f.tracker.onChildUpDown(updown(true, "md", "1", {narrowed}));
    CHECK(f.tracker.isUp(0));
    CHECK_FALSE(f.tracker.covers(0, prefix("198.18.20.0/24")));
    CHECK_FALSE(f.open("198.18.20.5"));
    CHECK_FALSE(f.open("2001:db8:20::5"));
}

TEST_CASE("a port-restricted remote_ts covers nothing") {
    Fixture f;
    ChildSpec restricted{"md", "3", "INSTALLED", {"198.18.20.0/24[udp/30030]"}};
    f.tracker.onChildUpDown(updown(true, "md", "1", {restricted}));
    CHECK_FALSE(f.open("198.18.20.5"));
}

TEST_CASE("IKE_SA down closes its CHILD_SAs and asks for a resync") {
    Fixture f;
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "3"}}));
    f.tracker.onChildUpDown(
        updown(true, "md2", "2", {{"cd", "4", "INSTALLED", {"198.18.30.0/24"}}}));
    // charon lists the children in ike-updown; closing must not depend on it.
    CHECK(f.tracker.onIkeUpDown(updown(false, "md", "1", {})));
    CHECK_FALSE(f.open("198.18.20.5"));
    CHECK(f.open("198.18.30.5"));  // another IKE_SA: untouched
}

TEST_CASE("a stale snapshot cannot reopen an SA seen going down") {
    Fixture f;
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "3"}}));
    f.tracker.onChildUpDown(updown(false, "md", "1", {{"md", "3"}}));
    // list-sas answered before charon removed the SA.
    f.tracker.onResync(snapshot("md", "1", {{"md", "3"}}));
    CHECK_FALSE(f.open("198.18.20.5"));
    // A new SA in the same snapshot counts.
    f.tracker.onResync(snapshot("md", "1", {{"md", "3"}, {"md", "5"}}));
    CHECK(f.open("198.18.20.5"));
}

TEST_CASE("a snapshot of a dead IKE_SA cannot reopen its children") {
    Fixture f;
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "3"}}));
    f.tracker.onIkeUpDown(updown(false, "md", "1", {}));
    f.tracker.onResync(snapshot("md", "1", {{"md", "3"}}));
    CHECK_FALSE(f.open("198.18.20.5"));
}

TEST_CASE("resync adopts SAs charon already holds and drops vanished ones") {
    Fixture f;
    f.tracker.onResync(snapshot("md", "7", {{"md", "9"}}));
    CHECK(f.open("198.18.20.5"));
    f.tracker.onResync({});
    CHECK_FALSE(f.open("198.18.20.5"));
}

TEST_CASE("resync counts only traffic-carrying states") {
    Fixture f;
    f.tracker.onResync(snapshot("md", "7", {{"md", "9", "DELETING"}}));
    CHECK_FALSE(f.open("198.18.20.5"));
    f.tracker.onResync(snapshot("md", "7", {{"md", "9", "REKEYING"}}));
    CHECK(f.open("198.18.20.5"));
    f.tracker.onResync(snapshot("md", "7", {{"md", "10"}}, "CONNECTING"));
    CHECK_FALSE(f.open("198.18.20.5"));
    f.tracker.onResync(snapshot("md", "7", {{"md", "11"}}, "DELETING"));
    CHECK_FALSE(f.open("198.18.20.5"));
}

TEST_CASE("child rekey hands over to the new SA whose later down closes") {
    Fixture f;
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "3"}}));
    CHECK_FALSE(f.tracker.onChildRekey(childRekeyMessage("md", "1", "md", "3", "8")));
    CHECK(f.open("198.18.20.5"));
    // The old SA is deleted without a child-updown; the new one's down counts.
    f.tracker.onChildUpDown(updown(false, "md", "1", {{"md", "8"}}));
    CHECK_FALSE(f.open("198.18.20.5"));
}

TEST_CASE("IKE rekey moves the children and the new IKE_SA's down closes them") {
    Fixture f;
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "3"}}));
    CHECK_FALSE(f.tracker.onIkeRekey(ikeRekeyMessage("md", "1", "2")));
    // The old IKE_SA going away does not take the moved child with it.
    f.tracker.onIkeUpDown(updown(false, "md", "1", {}));
    CHECK(f.open("198.18.20.5"));
    f.tracker.onIkeUpDown(updown(false, "md", "2", {}));
    CHECK_FALSE(f.open("198.18.20.5"));
}

TEST_CASE("unreadable rekey events ask for a resync") {
    Fixture f;
    Section garbage;
    garbage.addValue("md", "not a section");
    CHECK(f.tracker.onIkeRekey(garbage));
    CHECK(f.tracker.onChildRekey(garbage));
}

TEST_CASE("reset closes everything and forgets dead ids (charon restarted)") {
    Fixture f;
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "1"}}));
    f.tracker.onChildUpDown(updown(false, "md", "1", {{"md", "1"}}));
    f.tracker.onChildUpDown(
        updown(true, "md2", "2", {{"cd", "2", "INSTALLED", {"198.18.30.0/24"}}}));
    REQUIRE(f.open("198.18.30.5"));
    f.tracker.reset();
    CHECK_FALSE(f.open("198.18.30.5"));
    // A restarted charon numbers from 1 again: id 1 is a new SA.
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "1"}}));
    CHECK(f.open("198.18.20.5"));
}

TEST_CASE("a down event without a unique id closes the whole tunnel") {
    Fixture f;
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "3"}}));
    f.tracker.onChildUpDown(updown(true, "md", "1", {{"md", "4"}}));
    CHECK(f.tracker.onChildUpDown(updown(false, "md", "1", {{"md", ""}})));
    CHECK_FALSE(f.open("198.18.20.5"));
}
