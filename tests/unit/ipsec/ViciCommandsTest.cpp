#include <doctest/doctest.h>

#include <string>
#include <vector>

#include "ipsec/ViciBuilder.h"
#include "ipsec/ViciCommands.h"

using namespace xtap::ipsec;

namespace {

// The tunnel of platform.md §10 (swanctl.conf of instance a).
TunnelConfig tunnelAb() {
    TunnelConfig config;
    config.name = "ab";
    config.local_addrs = {"198.18.0.1"};
    config.remote_addrs = {"198.18.0.2"};
    config.proposals = {"aes256gcm16-prfsha256-x25519"};
    config.local = {"psk", "gw-a"};
    config.remote = {"psk", "gw-b"};
    ChildConfig child;
    child.name = "cd";
    child.local_ts = {"198.18.10.1/32"};
    child.remote_ts = {"198.18.20.0/24"};
    child.esp_proposals = {"aes256gcm16"};
    child.start_action = "none";
    config.children.push_back(child);
    return config;
}

Section decoded(const Packet& packet) {
    auto message = decodeMessage(packet.message);
    REQUIRE(message.ok());
    return *message;
}

Packet response(const Section& message) {
    auto bytes = encodeMessage(message);
    REQUIRE(bytes.ok());
    return Packet{PacketType::CmdResponse, "", *bytes};
}

// A child-updown event as charon 5.9.8 sends it for the platform.md §10 tunnel.
Section childUpdown(bool up) {
    Section root;
    if (up) {
        root.addValue("up", "yes");
    }
    Section& ike = root.addSection("ab");
    ike.addValue("uniqueid", "1");
    ike.addValue("version", "2");
    ike.addValue("state", "ESTABLISHED");
    ike.addValue("local-host", "198.18.0.1");
    ike.addValue("remote-host", "198.18.0.2");
    Section& child = ike.addSection("child-sas").addSection("cd-3");
    child.addValue("name", "cd");
    child.addValue("uniqueid", "3");
    child.addValue("reqid", "1");
    child.addValue("state", up ? "INSTALLED" : "DELETING");
    child.addValue("mode", "TUNNEL");
    child.addValue("protocol", "ESP");
    child.addValue("encap", "yes");
    child.addValue("spi-in", "c1d2e3f4");
    child.addValue("bytes-in", "1234");
    child.addValue("packets-in", "10");
    child.addValue("bytes-out", "98765432109");
    child.addValue("packets-out", "77");
    child.addList("local-ts", {"198.18.10.1/32"});
    child.addList("remote-ts", {"198.18.20.0/24"});
    return root;
}

}  // namespace

TEST_CASE("version request: the platform.md §8 bytes") {
    auto bytes = encodePacket(versionRequest());
    REQUIRE(bytes.ok());
    CHECK(*bytes == Bytes{0, 0, 0, 9, 0, 7, 'v', 'e', 'r', 's', 'i', 'o', 'n'});
}

TEST_CASE("load-conn carries the swanctl.conf keys in swanctl's layout") {
    auto packet = loadConnRequest(tunnelAb());
    REQUIRE(packet.ok());
    CHECK(packet->type == PacketType::CmdRequest);
    CHECK(packet->name == "load-conn");

    auto expected = ViciBuilder()
                        .beginSection("ab")
                        .addKv("version", "2")
                        .beginList("local_addrs")
                        .addItem("198.18.0.1")
                        .endList()
                        .beginList("remote_addrs")
                        .addItem("198.18.0.2")
                        .endList()
                        .beginList("proposals")
                        .addItem("aes256gcm16-prfsha256-x25519")
                        .endList()
                        .beginSection("local")
                        .addKv("auth", "psk")
                        .addKv("id", "gw-a")
                        .endSection()
                        .beginSection("remote")
                        .addKv("auth", "psk")
                        .addKv("id", "gw-b")
                        .endSection()
                        .beginSection("children")
                        .beginSection("cd")
                        .addKv("mode", "tunnel")
                        .beginList("local_ts")
                        .addItem("198.18.10.1/32")
                        .endList()
                        .beginList("remote_ts")
                        .addItem("198.18.20.0/24")
                        .endList()
                        .beginList("esp_proposals")
                        .addItem("aes256gcm16")
                        .endList()
                        .addKv("start_action", "none")
                        .endSection()
                        .endSection()
                        .endSection()
                        .finalize();
    REQUIRE(expected.ok());
    CHECK(packet->message == *expected);
}

TEST_CASE("load-conn: optional keys are sent only when set") {
    TunnelConfig config = tunnelAb();
    config.dpd_delay = "10s";
    config.children[0].dpd_action = "clear";
    config.children[0].start_action.clear();
    config.remote = {};
    ChildConfig second;
    second.name = "v6";
    second.local_ts = {"2001:db8:10::1/128"};
    second.remote_ts = {"2001:db8:20::/64"};
    config.children.push_back(second);

    auto message = loadConnMessage(config);
    REQUIRE(message.ok());
    const Section* conn = message->section("ab");
    REQUIRE(conn);
    CHECK(*conn->value("dpd_delay") == "10s");
    CHECK(conn->find("remote") == nullptr);
    const Section* cd = conn->section("children")->section("cd");
    REQUIRE(cd);
    CHECK(*cd->value("dpd_action") == "clear");
    CHECK(cd->find("start_action") == nullptr);
    const Section* v6 = conn->section("children")->section("v6");
    REQUIRE(v6);
    CHECK(*v6->list("local_ts") == List{"2001:db8:10::1/128"});
    CHECK(v6->find("esp_proposals") == nullptr);
    CHECK(*v6->value("mode") == "tunnel");
}

TEST_CASE("load-conn rejects configs vici cannot carry") {
    TunnelConfig config = tunnelAb();
    config.ike_version = 3;
    auto bad_version = loadConnRequest(config);
    REQUIRE_FALSE(bad_version.ok());
    CHECK(bad_version.error().code == ViciErrc::InvalidRequest);

    config = tunnelAb();
    config.children.push_back(config.children[0]);  // two children named cd
    auto duplicate = loadConnRequest(config);
    REQUIRE_FALSE(duplicate.ok());
    CHECK(duplicate.error().code == ViciErrc::DuplicateKey);

    config = tunnelAb();
    config.name.clear();
    auto unnamed = loadConnRequest(config);
    REQUIRE_FALSE(unnamed.ok());
    CHECK(unnamed.error().code == ViciErrc::InvalidName);
}

TEST_CASE("load-shared: {id, type, data, owners[]}") {
    SharedSecret secret;
    secret.id = "ike-ab";
    secret.data = "test-only-psk";
    secret.owners = {"gw-a", "gw-b"};
    auto packet = loadSharedRequest(secret);
    REQUIRE(packet.ok());
    CHECK(packet->name == "load-shared");
    auto expected = ViciBuilder()
                        .addKv("id", "ike-ab")
                        .addKv("type", "IKE")
                        .addKv("data", "test-only-psk")
                        .beginList("owners")
                        .addItem("gw-a")
                        .addItem("gw-b")
                        .endList()
                        .finalize();
    REQUIRE(expected.ok());
    CHECK(packet->message == *expected);

    secret.type.clear();
    auto untyped = loadSharedRequest(secret);
    REQUIRE_FALSE(untyped.ok());
    CHECK(untyped.error().code == ViciErrc::InvalidRequest);
}

TEST_CASE("initiate, terminate, list-sas, unload-conn requests") {
    SUBCASE("initiate") {
        auto packet = initiateRequest({"cd", "ab", 20000, 0});
        REQUIRE(packet.ok());
        CHECK(packet->name == "initiate");
        const Section message = decoded(*packet);
        CHECK(*message.value("child") == "cd");
        CHECK(*message.value("ike") == "ab");
        CHECK(*message.value("timeout") == "20000");
        CHECK(*message.value("loglevel") == "0");

        auto minimal = initiateRequest({"cd", "", std::nullopt, std::nullopt});
        REQUIRE(minimal.ok());
        CHECK(decoded(*minimal).entries.size() == 1);
        auto immediate = initiateRequest({"cd", "", -1, std::nullopt});
        REQUIRE(immediate.ok());
        CHECK(*decoded(*immediate).value("timeout") == "-1");

        auto no_child = initiateRequest({});
        REQUIRE_FALSE(no_child.ok());
        CHECK(no_child.error().code == ViciErrc::InvalidRequest);
    }
    SUBCASE("terminate") {
        TerminateRequest request;
        request.ike = "ab";
        request.force = true;
        request.timeout_ms = 5000;
        auto packet = terminateRequest(request);
        REQUIRE(packet.ok());
        CHECK(packet->name == "terminate");
        Section message = decoded(*packet);
        CHECK(*message.value("ike") == "ab");
        CHECK(*message.value("force") == "yes");
        CHECK(*message.value("timeout") == "5000");
        CHECK(message.find("child") == nullptr);

        TerminateRequest by_id;
        by_id.child_id = 3;
        by_id.ike_id = 4000000000u;
        packet = terminateRequest(by_id);
        REQUIRE(packet.ok());
        message = decoded(*packet);
        CHECK(*message.value("child-id") == "3");
        CHECK(*message.value("ike-id") == "4000000000");
        CHECK(message.find("force") == nullptr);

        auto no_selector = terminateRequest(TerminateRequest{});
        REQUIRE_FALSE(no_selector.ok());
        CHECK(no_selector.error().code == ViciErrc::InvalidRequest);
    }
    SUBCASE("list-sas") {
        auto all = listSasRequest({});
        REQUIRE(all.ok());
        CHECK(all->name == "list-sas");
        CHECK(all->message.empty());
        auto filtered = listSasRequest({true, "ab", 7});
        REQUIRE(filtered.ok());
        const Section message = decoded(*filtered);
        CHECK(*message.value("noblock") == "yes");
        CHECK(*message.value("ike") == "ab");
        CHECK(*message.value("ike-id") == "7");
    }
    SUBCASE("unload-conn") {
        auto packet = unloadConnRequest("ab");
        REQUIRE(packet.ok());
        CHECK(packet->name == "unload-conn");
        CHECK(*decoded(*packet).value("name") == "ab");
        CHECK(unloadConnRequest("").error().code == ViciErrc::InvalidRequest);
    }
}

TEST_CASE("event (un)registration packets") {
    auto reg = registerEventRequest(event::kChildUpdown);
    REQUIRE(reg.ok());
    CHECK(*reg == Packet{PacketType::EventRegister, "child-updown", {}});
    auto unreg = unregisterEventRequest(event::kIkeUpdown);
    REQUIRE(unreg.ok());
    CHECK(*unreg == Packet{PacketType::EventUnregister, "ike-updown", {}});
    CHECK(registerEventRequest("").error().code == ViciErrc::InvalidName);
    CHECK(unregisterEventRequest("bad\x01").error().code == ViciErrc::InvalidName);
}

TEST_CASE("readResponse, readEventConfirm and readEvent sort packets by type") {
    Section ok;
    ok.addValue("success", "yes");
    auto message = readResponse(response(ok));
    REQUIRE(message.ok());
    CHECK(*message == ok);

    CHECK(readResponse(Packet{PacketType::CmdUnknown, "", {}}).error().code ==
          ViciErrc::UnknownCommand);
    CHECK(readResponse(Packet{PacketType::Event, "log", {}}).error().code ==
          ViciErrc::UnexpectedPacket);
    CHECK(readResponse(Packet{PacketType::CmdResponse, "", {6}}).error().code ==
          ViciErrc::OutsideList);

    CHECK(readEventConfirm(Packet{PacketType::EventConfirm, "", {}}).ok());
    CHECK(readEventConfirm(Packet{PacketType::EventUnknown, "", {}}).error().code ==
          ViciErrc::UnknownEvent);
    CHECK(readEventConfirm(Packet{PacketType::CmdResponse, "", {}}).error().code ==
          ViciErrc::UnexpectedPacket);

    auto bytes = encodeMessage(childUpdown(true));
    REQUIRE(bytes.ok());
    auto event = readEvent(Packet{PacketType::Event, "child-updown", *bytes});
    REQUIRE(event.ok());
    CHECK(event->name == "child-updown");
    CHECK(event->message == childUpdown(true));
    CHECK(readEvent(Packet{PacketType::CmdResponse, "", *bytes}).error().code ==
          ViciErrc::UnexpectedPacket);
}

TEST_CASE("readCommandOutcome: success yes/no with errmsg") {
    Section yes;
    yes.addValue("success", "yes");
    auto outcome = readCommandOutcome(yes);
    REQUIRE(outcome.ok());
    CHECK(outcome->success);
    CHECK(outcome->errmsg.empty());

    Section no;
    no.addValue("success", "no");
    no.addValue("errmsg", "CHILD_SA 'cd' not established after 20000ms");
    outcome = readCommandOutcome(no);
    REQUIRE(outcome.ok());
    CHECK_FALSE(outcome->success);
    CHECK(outcome->errmsg == "CHILD_SA 'cd' not established after 20000ms");

    CHECK(readCommandOutcome(Section{}).error().code == ViciErrc::MissingKey);
    Section odd;
    odd.addValue("success", "maybe");
    CHECK(readCommandOutcome(odd).error().code == ViciErrc::InvalidValue);
    Section listed;
    listed.addList("success", {"yes"});
    CHECK(readCommandOutcome(listed).error().code == ViciErrc::InvalidValue);
}

TEST_CASE("readVersion") {
    Section reply;
    reply.addValue("daemon", "charon-systemd");
    reply.addValue("version", "5.9.8");
    reply.addValue("sysname", "Linux");
    reply.addValue("release", "6.1.0-18-amd64");
    reply.addValue("machine", "x86_64");
    auto info = readVersion(reply);
    REQUIRE(info.ok());
    CHECK(info->daemon == "charon-systemd");
    CHECK(info->version == "5.9.8");
    CHECK(info->sysname == "Linux");
    CHECK(info->release == "6.1.0-18-amd64");
    CHECK(info->machine == "x86_64");

    Section partial;
    partial.addValue("daemon", "charon");
    CHECK(readVersion(partial).error().code == ViciErrc::MissingKey);
}

TEST_CASE("child-updown up: up=yes, child keyed name-uniqueid, inner name used") {
    auto event = readUpDown(childUpdown(true));
    REQUIRE(event.ok());
    CHECK(event->up);
    REQUIRE(event->ike_sas.size() == 1);
    const IkeSaInfo& ike = event->ike_sas[0];
    CHECK(ike.name == "ab");
    CHECK(ike.unique_id == "1");
    CHECK(ike.state == "ESTABLISHED");
    CHECK(ike.local_host == "198.18.0.1");
    CHECK(ike.remote_host == "198.18.0.2");
    REQUIRE(ike.children.size() == 1);
    const ChildSaInfo& child = ike.children[0];
    CHECK(child.name == "cd");
    CHECK(child.key == "cd-3");
    CHECK(child.unique_id == "3");
    CHECK(child.state == "INSTALLED");
    CHECK(child.mode == "TUNNEL");
    CHECK(child.encap);
    CHECK(child.bytes_in == 1234);
    CHECK(child.packets_in == 10);
    CHECK(child.bytes_out == 98765432109ull);
    CHECK(child.packets_out == 77);
    CHECK(child.local_ts == std::vector<std::string>{"198.18.10.1/32"});
    CHECK(child.remote_ts == std::vector<std::string>{"198.18.20.0/24"});
}

TEST_CASE("child-updown down: no `up` key means down") {
    auto event = readUpDown(childUpdown(false));
    REQUIRE(event.ok());
    CHECK_FALSE(event->up);
    REQUIRE(event->ike_sas.size() == 1);
    REQUIRE(event->ike_sas[0].children.size() == 1);
    CHECK(event->ike_sas[0].children[0].name == "cd");
    CHECK(event->ike_sas[0].children[0].state == "DELETING");

    Section documented_no = childUpdown(false);
    documented_no.entries.insert(documented_no.entries.begin(), Entry{"up", Value("no")});
    auto no = readUpDown(documented_no);
    REQUIRE(no.ok());
    CHECK_FALSE(no->up);
}

TEST_CASE("ike-updown: IKE_SA data without child-sas") {
    Section root;
    root.addValue("up", "yes");
    root.addSection("ab").addValue("uniqueid", "5").addValue("state", "ESTABLISHED");
    auto event = readUpDown(root);
    REQUIRE(event.ok());
    CHECK(event->up);
    REQUIRE(event->ike_sas.size() == 1);
    CHECK(event->ike_sas[0].name == "ab");
    CHECK(event->ike_sas[0].unique_id == "5");
    CHECK(event->ike_sas[0].children.empty());
}

TEST_CASE("up/down events that do not fit are errors") {
    struct Case {
        const char* name;
        Section event;
        ViciErrc expected;
    };
    std::vector<Case> cases;
    {
        Section s = childUpdown(true);
        std::get<Value>(s.entries[0].element) = "maybe";
        cases.push_back({"up neither yes nor no", s, ViciErrc::InvalidValue});
    }
    {
        Section s;
        s.addList("up", {"yes"});
        cases.push_back({"up as a list", s, ViciErrc::InvalidValue});
    }
    {
        Section s;
        s.addValue("up", "yes");
        s.addValue("ab", "not a section");
        cases.push_back({"IKE_SA as a value", s, ViciErrc::InvalidValue});
    }
    {
        Section s;
        Section& child = s.addSection("ab").addSection("child-sas").addSection("cd-3");
        child.addValue("state", "INSTALLED");
        cases.push_back({"child without inner name", s, ViciErrc::MissingKey});
    }
    {
        Section s;
        s.addSection("ab").addValue("child-sas", "x");
        cases.push_back({"child-sas as a value", s, ViciErrc::InvalidValue});
    }
    {
        Section s;
        s.addSection("ab").addSection("child-sas").addValue("cd-3", "x");
        cases.push_back({"child as a value", s, ViciErrc::InvalidValue});
    }
    {
        Section s;
        Section& child = s.addSection("ab").addSection("child-sas").addSection("cd-3");
        child.addValue("name", "cd");
        child.addValue("bytes-in", "12x");
        cases.push_back({"counter not a number", s, ViciErrc::InvalidValue});
    }
    {
        Section s;
        Section& child = s.addSection("ab").addSection("child-sas").addSection("cd-3");
        child.addValue("name", "cd");
        child.addValue("local-ts", "198.18.10.1/32");
        cases.push_back({"traffic selectors as a value", s, ViciErrc::InvalidValue});
    }
    for (const Case& c : cases) {
        CAPTURE(c.name);
        auto event = readUpDown(c.event);
        REQUIRE_FALSE(event.ok());
        CHECK(event.error().code == c.expected);
    }
}

TEST_CASE("list-sa: every IKE_SA with every CHILD_SA") {
    Section root = childUpdown(true);
    root.entries.erase(root.entries.begin());  // list-sa has no `up`
    Section& second = root.addSection("ef");
    second.addValue("state", "CONNECTING");
    Section& children = second.addSection("child-sas");
    children.addSection("gh-7").addValue("name", "gh").addValue("state", "INSTALLING");
    children.addSection("gh-8").addValue("name", "gh").addValue("state", "INSTALLED");

    auto sas = readListSa(root);
    REQUIRE(sas.ok());
    REQUIRE(sas->size() == 2);
    CHECK((*sas)[0].name == "ab");
    CHECK((*sas)[1].name == "ef");
    REQUIRE((*sas)[1].children.size() == 2);
    CHECK((*sas)[1].children[0].name == "gh");
    CHECK((*sas)[1].children[0].key == "gh-7");
    CHECK((*sas)[1].children[1].key == "gh-8");
    CHECK((*sas)[1].children[1].state == "INSTALLED");

    CHECK(readListSa(childUpdown(true)).error().code == ViciErrc::InvalidValue);
}

TEST_CASE("an event read end to end: socket bytes to up/down state") {
    auto message = encodeMessage(childUpdown(true));
    REQUIRE(message.ok());
    auto bytes =
        encodePacket(Packet{PacketType::Event, std::string(event::kChildUpdown), *message});
    REQUIRE(bytes.ok());

    PacketReassembler reassembler;
    reassembler.append(std::span<const uint8_t>(*bytes).first(7));
    reassembler.append(std::span<const uint8_t>(*bytes).subspan(7));
    auto packet = reassembler.next();
    REQUIRE(packet.ok());
    REQUIRE(packet->has_value());
    auto event = readEvent(**packet);
    REQUIRE(event.ok());
    CHECK(event->name == event::kChildUpdown);
    auto updown = readUpDown(event->message);
    REQUIRE(updown.ok());
    CHECK(updown->up);
    CHECK(updown->ike_sas.at(0).children.at(0).name == "cd");
}

TEST_CASE("every vici error has a description") {
    for (int e = 0; e <= static_cast<int>(ViciErrc::InvalidRequest); ++e) {
        CHECK(describe(static_cast<ViciErrc>(e)) != "unknown vici error");
    }
    CHECK(ViciError{ViciErrc::MissingKey, "'success'"}.message() == "missing key: 'success'");
    CHECK(ViciError{ViciErrc::UnknownCommand, ""}.message() == "unknown command");
}
