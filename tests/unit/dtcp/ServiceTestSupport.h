// Helpers for the DtcpService tests: fake interface and destination policies,
// a harness that owns the in-memory data plane, the store and the service, and
// a reader for the signed replies it writes.
#pragma once

#include <doctest/doctest.h>

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "criteria/CriteriaStore.h"
#include "dataplane/DataPlane.h"
#include "dataplane/MemoryMaps.h"
#include "dtcp/DtcpService.h"
#include "dtcp/Hmac.h"
#include "dtcp/Message.h"
#include "dtcp/Text.h"
#include "dtcp/Values.h"
#include "DtcpTestSupport.h"

namespace xtap::dtcp::test {

inline IpAddress ipOf(std::string_view text) {
    const auto address = parseIpAddress(text);
    REQUIRE_MESSAGE(address, "bad test address ", std::string(text));
    return *address;
}

inline delivery::OuterHeader outerHeader(std::string_view source, uint16_t source_port,
                                         std::string_view destination, uint16_t destination_port,
                                         uint8_t ttl = 255) {
    const IpAddress s = ipOf(source);
    const IpAddress d = ipOf(destination);
    return delivery::OuterHeader{s.family, s.bytes, source_port, d.bytes, destination_port, ttl};
}

// Aliases and Linux names of transit interfaces, and VRFs with their members.
class FakeInterfaces final : public InterfaceResolver {
  public:
    std::optional<uint32_t> transitInterface(std::string_view name) const override {
        const auto it = transit.find(std::string(name));
        if (it == transit.end()) return std::nullopt;
        return it->second;
    }
    std::optional<std::vector<uint32_t>> vrfMembers(std::string_view vrf_name) const override {
        const auto it = vrfs.find(std::string(vrf_name));
        if (it == vrfs.end()) return std::nullopt;
        return it->second;
    }

    std::map<std::string, uint32_t> transit;
    std::map<std::string, std::vector<uint32_t>> vrfs;
};

// Exact addresses stand for the appliance's own, the tunnels' remote
// selectors and the operator's cleartext list.
class FakeDestinations final : public DestinationPolicy {
  public:
    bool isOwnAddress(dataplane::Family family, const dataplane::Address& address) const override {
        return own.count(formatIpAddress(IpAddress{family, address})) != 0;
    }
    DestinationRoute route(std::string_view user,
                           const delivery::OuterHeader& outer) const override {
        asked_by.insert(std::string(user));
        const std::string destination = formatIpAddress(IpAddress{outer.family, outer.destination});
        if (tunnel.count(destination)) return DestinationRoute::Tunnel;
        if (cleartext.count(destination)) return DestinationRoute::Cleartext;
        return DestinationRoute::Refused;
    }

    std::set<std::string> own{"198.51.100.1", "2001:db8:ff::1"};
    std::set<std::string> tunnel{"203.0.113.50", "203.0.113.51", "203.0.113.52", "2001:db8:ee::5"};
    std::set<std::string> cleartext{"192.0.2.250"};
    mutable std::set<std::string> asked_by;
};

// A reply or notification, its signature checked.
struct ReadMessage {
    uint16_t code = 0;
    Version version;
    Message message;

    std::string value(std::string_view name) const {
        const Field* f = message.find(name);
        return f ? f->value : std::string("<missing>");
    }
    bool has(std::string_view name) const { return message.find(name) != nullptr; }
    std::vector<std::string> values(std::string_view name) const {
        std::vector<std::string> out;
        for (const Field& f : message.fields) {
            if (iequals(f.name, name)) out.push_back(f.value);
        }
        return out;
    }
};

inline ReadMessage readSigned(const std::string& bytes, std::string_view key = kKey) {
    auto parsed = parseMessage(bytes);
    REQUIRE_MESSAGE(parsed, "unparsable: ", bytes);
    const Message& m = parsed.value();
    REQUIRE(m.statusLine());
    REQUIRE(m.authentication_info);
    CHECK_MESSAGE(hmacSha1Matches(key, std::string_view(bytes).substr(0, m.signed_length),
                                  *m.authentication_info),
                  "bad signature on: ", bytes);
    return ReadMessage{m.statusLine()->code, m.statusLine()->version, m};
}

inline dtcp::Timestamp laterBy(dtcp::Timestamp t, uint64_t seconds) {
    // Tests stay within one day.
    uint64_t total = uint64_t{t.hour} * 3600 + uint64_t{t.minute} * 60 + t.second + seconds;
    t.hour = static_cast<uint8_t>(total / 3600 % 24);
    t.minute = static_cast<uint8_t>(total / 60 % 60);
    t.second = static_cast<uint8_t>(total % 60);
    return t;
}

inline constexpr uint64_t kSecond = 1'000'000'000;

// The data plane in memory, a store over it, the service, its users and
// their Seq counters.
class ServiceHarness {
  public:
    explicit ServiceHarness(uint32_t slots = 64)
        : maps(slots),
          plane(maps, dataplane::Capacity{16384, slots, 16384}),
          store(plane, criteria::StoreLimits{slots}),
          service(store, interfaces, destinations) {
        interfaces.transit = {{"ge-0/0/1.0", 7}, {"ge-0/0/2.0", 8}, {"eth3", 9}};
        interfaces.vrfs = {{"blue", {11, 12}}};
        now.boottime_ns = 1000 * kSecond;
        now.local = dtcp::Timestamp{2024, 5, 1, 10, 15, 30, 123};
    }

    UserContext& addUser(const std::string& name, std::string key = std::string(kKey)) {
        UserContext& user = users[name];
        user.name = name;
        user.hmac_key = std::move(key);
        user.destinations["cd1"] = outerHeader("198.51.100.1", 49153, "203.0.113.50", 50000);
        user.destinations["cd2"] = outerHeader("198.51.100.1", 49153, "203.0.113.51", 50000);
        return user;
    }

    // A request from `user` with the next Seq, signed with the user's key.
    std::string request(const std::string& user, const std::string& start,
                        const std::vector<std::string>& fields) {
        std::vector<std::string> lines{start, "Csource-ID: " + user};
        lines.insert(lines.end(), fields.begin(), fields.end());
        lines.push_back("Seq: " + std::to_string(++seqs[user]));
        return signedMessage(lines, users.at(user).hmac_key);
    }

    ServiceResult sendBytes(const std::string& user, const std::string& bytes) {
        return service.handleMessage(bytes, users.at(user), windows[user], "192.0.2.77", now);
    }

    ServiceResult send(const std::string& user, const std::string& start,
                       const std::vector<std::string>& fields) {
        return sendBytes(user, request(user, start, fields));
    }

    // The signed reply, read back.
    ReadMessage ask(const std::string& user, const std::string& start,
                    const std::vector<std::string>& fields) {
        const ServiceResult result = send(user, start, fields);
        REQUIRE_FALSE(result.reply.empty());
        return readSigned(result.reply, users.at(user).hmac_key);
    }

    // ADD to cd1 (configured) matching `source`; returns the Criteria-ID.
    uint32_t addCriterion(const std::string& user, const std::vector<std::string>& extra,
                          const std::string& source = "192.0.2.10") {
        std::vector<std::string> fields{"Source-Address: " + source};
        fields.insert(fields.end(), extra.begin(), extra.end());
        if (std::none_of(extra.begin(), extra.end(),
                         [](const std::string& f) { return istartsWith(f, "Cdest-ID"); })) {
            fields.push_back("Cdest-ID: cd1");
        }
        const ReadMessage reply = ask(user, "ADD DTCP/0.8", fields);
        REQUIRE_MESSAGE(reply.code == 200, "ADD answered ", reply.code);
        return static_cast<uint32_t>(std::stoul(reply.value("CRITERIA-ID")));
    }

    const criteria::Criterion& criterion(const std::string& user, uint32_t id) {
        const criteria::Criterion* c = store.find(criteria::CriterionKey{user, id});
        REQUIRE(c);
        return *c;
    }

    void traffic(const std::string& user, uint32_t id, uint64_t packets, uint64_t bytes) {
        maps.addTraffic(criterion(user, id).slot.slot, packets, bytes);
    }

    void advance(uint64_t seconds) {
        now.boottime_ns += seconds * kSecond;
        now.local = laterBy(now.local, seconds);
    }

    UserLookup lookup() {
        return [this](std::string_view name) -> const UserContext* {
            const auto it = users.find(std::string(name));
            return it == users.end() ? nullptr : &it->second;
        };
    }

    TickResult tick() { return service.tick(now, lookup()); }

    FakeInterfaces interfaces;
    FakeDestinations destinations;
    dataplane::MemoryMaps maps;
    dataplane::DataPlane plane;
    criteria::CriteriaStore store;
    DtcpService service;
    std::map<std::string, UserContext> users;
    std::map<std::string, SeqWindow> windows;
    std::map<std::string, uint64_t> seqs;
    Instant now;
};

}  // namespace xtap::dtcp::test
