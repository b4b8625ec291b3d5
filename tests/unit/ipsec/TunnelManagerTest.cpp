// ViciConnection and TunnelManager against FakeCharon: the socket layer, and
// the fail-closed rules end to end (closed at start, closed on down and on
// disconnect, re-initiation, reconnection with reload).
#include <doctest/doctest.h>

#include <chrono>
#include <functional>
#include <thread>

#include "AddressText.h"
#include "FakeCharon.h"
#include "ipsec/TunnelManager.h"
#include "ipsec/ViciConnection.h"

using namespace xtap::ipsec;
using namespace std::chrono_literals;
using namespace xtap::ipsec::test;
using xtap::ipsec::test::FakeCharon;

namespace {

TunnelSpec tunnelSpec() {
    TunnelSpec spec;
    spec.name = "md";
    spec.local_addrs = {"198.18.0.1"};
    spec.remote_addrs = {"198.18.0.2"};
    spec.local_id = "gw-a";
    spec.remote_id = "gw-b";
    spec.psk = "test-only-psk";
    spec.local_ts = {"198.18.10.1/32"};
    spec.remote_ts = {"198.18.20.0/24", "2001:db8:20::/64"};
    spec.cdest_prefixes = {"198.18.20.0/24", "2001:db8:20::/64"};
    return spec;
}

TunnelManagerConfig managerConfig(const FakeCharon& charon) {
    TunnelManagerConfig config;
    config.vici_socket = "unix://" + charon.path();
    config.tunnels = {tunnelSpec()};
    config.command_timeout = 1000ms;
    config.establish_timeout = 300ms;
    config.retry_initial = 20ms;
    config.retry_max = 100ms;
    config.reconnect_initial = 20ms;
    config.reconnect_max = 100ms;
    config.resync_interval = 10s;
    return config;
}

// Runs the manager's loop until `condition` holds or two seconds pass.
bool runUntil(TunnelManager& manager, const std::function<bool()>& condition) {
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (std::chrono::steady_clock::now() < deadline) {
        manager.runOnce(10ms);
        if (condition()) {
            return true;
        }
    }
    return false;
}

Packet rawCommand(const char* name) {
    return Packet{PacketType::CmdRequest, name, {}};
}

}  // namespace

TEST_CASE("ViciConnection: command and streaming command and unknown command") {
    FakeCharon charon;
    charon.start();
    auto connection = ViciConnection::open("unix://" + charon.path(), 1000ms);
    REQUIRE_MESSAGE(connection.ok(), connection.error().message());

    auto version = connection->call(versionRequest(), 1000ms);
    REQUIRE(version.ok());
    CHECK(readVersion(*version)->daemon == "charon-fake");

    auto unknown = connection->call(rawCommand("nonexistent"), 1000ms);
    REQUIRE_FALSE(unknown.ok());
    CHECK(unknown.error().code == ConnectionErrc::Refused);
    // Still in step afterwards.
    CHECK(connection->call(versionRequest(), 1000ms).ok());

    // One SA installed, so list-sas streams one list-sa event before its reply.
    auto initiate = initiateRequest(InitiateRequest{"md", "md", -1, std::nullopt});
    REQUIRE(connection->call(*initiate, 1000ms).ok());
    int streamed = 0;
    auto listed = connection->callStreaming(*listSasRequest({}), event::kListSa, 1000ms,
                                            [&](const EventMessage& message) {
                                                CHECK(message.name == event::kListSa);
                                                ++streamed;
                                            });
    REQUIRE(listed.ok());
    CHECK(streamed == 1);
}

TEST_CASE("ViciConnection: subscriptions reach readEvents and EOF is Closed") {
    FakeCharon charon;
    charon.start();
    auto events = ViciConnection::open(charon.path(), 1000ms);
    auto commands = ViciConnection::open(charon.path(), 1000ms);
    REQUIRE(events.ok());
    REQUIRE(commands.ok());
    REQUIRE(events->subscribe(event::kChildUpdown, 1000ms).ok());
    REQUIRE(
        commands->call(*initiateRequest(InitiateRequest{"md", "", -1, std::nullopt}), 1000ms).ok());

    std::vector<std::string> seen;
    auto collect = [&](const EventMessage& message) { seen.push_back(message.name); };
    const auto deadline = std::chrono::steady_clock::now() + 2s;
    while (seen.empty() && std::chrono::steady_clock::now() < deadline) {
        pollfd pfd{events->fd(), POLLIN, 0};
        ::poll(&pfd, 1, 50);
        REQUIRE(events->readEvents(collect).ok());
    }
    REQUIRE(seen.size() == 1);
    CHECK(seen[0] == event::kChildUpdown);

    charon.stop();
    ConnectionResult<size_t> read = size_t{0};
    while (read.ok() && std::chrono::steady_clock::now() < deadline + 2s) {
        pollfd pfd{events->fd(), POLLIN, 0};
        ::poll(&pfd, 1, 50);
        read = events->readEvents(collect);
    }
    REQUIRE_FALSE(read.ok());
    CHECK(read.error().code == ConnectionErrc::Closed);
    // Once broken, always broken: reconnect instead.
    auto again = events->readEvents(collect);
    REQUIRE_FALSE(again.ok());
    CHECK(again.error().code == ConnectionErrc::Broken);
}

TEST_CASE("ViciConnection: a missing socket fails clearly") {
    auto connection = ViciConnection::open("/nonexistent/charon.vici", 100ms);
    REQUIRE_FALSE(connection.ok());
    CHECK(connection.error().code == ConnectionErrc::SocketError);
    CHECK(connection.error().message().find("/nonexistent/charon.vici") != std::string::npos);
}

TEST_CASE("ViciConnection: a reply that never comes times out and then the stream is refused") {
    // A listener that accepts and never answers.
    FakeCharon charon;
    xtap::UniqueFd listener(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, charon.path().c_str(), sizeof address.sun_path - 1);
    REQUIRE(::bind(listener.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) == 0);
    REQUIRE(::listen(listener.get(), 1) == 0);
    auto connection = ViciConnection::open(charon.path(), 100ms);
    REQUIRE(connection.ok());
    auto reply = connection->call(versionRequest(), 100ms);
    REQUIRE_FALSE(reply.ok());
    CHECK(reply.error().code == ConnectionErrc::Timeout);
    auto next = connection->call(versionRequest(), 100ms);
    REQUIRE_FALSE(next.ok());
    CHECK(next.error().code == ConnectionErrc::Broken);
    ::unlink(charon.path().c_str());
}

TEST_CASE("TunnelManager: invalid configurations are refused up front") {
    FakeCharon charon;
    auto refused = [&](const std::function<void(TunnelSpec&)>& edit) {
        TunnelManagerConfig config = managerConfig(charon);
        edit(config.tunnels[0]);
        CHECK_THROWS_AS(TunnelManager{config}, std::invalid_argument);
    };
    refused([](TunnelSpec& s) { s.cdest_prefixes = {"198.18.30.0/24"}; });  // outside remote_ts
    refused([](TunnelSpec& s) { s.cdest_prefixes = {}; });
    refused([](TunnelSpec& s) { s.cdest_prefixes = {"198.18.20.1/24"}; });  // host bits
    refused([](TunnelSpec& s) { s.remote_ts = {"198.18.20.0/24[udp]"}; });
    refused([](TunnelSpec& s) { s.local_ts = {}; });
    refused([](TunnelSpec& s) { s.psk.clear(); });  // no authentication
    refused([](TunnelSpec& s) { s.certificates = CertificateFiles{"a", "b", {"c"}}; });  // both
    refused([](TunnelSpec& s) {
        s.psk.clear();
        s.certificates = CertificateFiles{"/nonexistent.pem", "/nonexistent.key", {"/ca.pem"}};
    });
    refused([](TunnelSpec& s) { s.name = ""; });
    TunnelManagerConfig twice = managerConfig(charon);
    twice.tunnels.push_back(twice.tunnels[0]);
    CHECK_THROWS_AS(TunnelManager{twice}, std::invalid_argument);
}

TEST_CASE("TunnelManager: closed until the CHILD_SA is up and open after") {
    FakeCharon charon;
    charon.setAutoUp(false);
    charon.start();
    TunnelManager manager(managerConfig(charon));
    const Address cdest = address("198.18.20.1");
    CHECK_FALSE(manager.isOpenFor(Family::V4, cdest));
    CHECK(manager.protectedPrefixes().size() == 2);

    // Connected, loaded and initiated, but no child-updown yet: still closed.
    REQUIRE(runUntil(manager, [&] { return charon.count("initiate") >= 1; }));
    CHECK(charon.count("load-shared") == 1);
    CHECK(charon.count("load-conn") == 1);
    CHECK_FALSE(manager.isOpenFor(Family::V4, cdest));
    // Never established: abandoned and initiated again after the timeout.
    REQUIRE(runUntil(manager, [&] { return charon.count("initiate") >= 2; }));
    CHECK_FALSE(manager.isOpenFor(Family::V4, cdest));

    charon.setAutoUp(true);
    REQUIRE(runUntil(manager, [&] { return manager.isOpenFor(Family::V4, cdest); }));
    CHECK(manager.isOpenFor(Family::V6, address("2001:db8:20::1")));
    CHECK_FALSE(manager.isOpenFor(Family::V4, address("198.18.21.1")));  // not protected
    CHECK(manager.status()[0].state == TunnelState::Up);
}

TEST_CASE("TunnelManager: a dropped CHILD_SA closes at once and comes back") {
    FakeCharon charon;
    charon.start();
    TunnelManager manager(managerConfig(charon));
    const Address cdest = address("198.18.20.1");
    REQUIRE(runUntil(manager, [&] { return manager.isOpenFor(Family::V4, cdest); }));
    const size_t initiations = charon.count("initiate");
    const std::string child = *charon.installed().begin();

    std::vector<TunnelState> seen;
    manager.setObserver([&](const TunnelStatus& status) { seen.push_back(status.state); });
    charon.dropChild(child);
    REQUIRE(runUntil(manager, [&] { return !manager.isOpenFor(Family::V4, cdest); }));
    REQUIRE(runUntil(manager, [&] { return manager.isOpenFor(Family::V4, cdest); }));
    CHECK(charon.count("initiate") == initiations + 1);
    REQUIRE(seen.size() >= 3);
    CHECK(seen[0] == TunnelState::Waiting);
    CHECK(seen.back() == TunnelState::Up);
    CHECK(manager.status()[0].downs == 1);
}

TEST_CASE("TunnelManager: charon restart closes everything then reloads and reopens") {
    FakeCharon charon;
    charon.start();
    TunnelManager manager(managerConfig(charon));
    const Address cdest = address("2001:db8:20::1");
    REQUIRE(runUntil(manager, [&] { return manager.isOpenFor(Family::V6, cdest); }));

    charon.stop();
    REQUIRE(runUntil(manager, [&] { return !manager.connected(); }));
    CHECK_FALSE(manager.isOpenFor(Family::V6, cdest));
    CHECK(manager.status()[0].state == TunnelState::Disconnected);
    // Stays closed while charon is away.
    for (int i = 0; i < 10; ++i) {
        manager.runOnce(10ms);
    }
    CHECK_FALSE(manager.isOpenFor(Family::V6, cdest));

    charon.start();
    REQUIRE(runUntil(manager, [&] { return manager.isOpenFor(Family::V6, cdest); }));
    // The restarted daemon knows nothing: secrets and connection loaded again.
    CHECK(charon.count("load-shared") == 2);
    CHECK(charon.count("load-conn") == 2);
}

TEST_CASE("TunnelManager: a narrowed remote_ts keeps the uncovered Cdest closed") {
    FakeCharon charon;
    charon.setRemoteTs({"198.18.20.0/25"});
    charon.start();
    TunnelManager manager(managerConfig(charon));
    REQUIRE(runUntil(manager, [&] { return manager.status()[0].state == TunnelState::Up; }));
    CHECK_FALSE(manager.isOpenFor(Family::V4, address("198.18.20.1")));
    CHECK_FALSE(manager.isOpenFor(Family::V6, address("2001:db8:20::1")));
}

TEST_CASE("TunnelManager: started before charon it connects when charon appears") {
    FakeCharon charon;
    TunnelManager manager(managerConfig(charon));
    for (int i = 0; i < 5; ++i) {
        manager.runOnce(10ms);
    }
    CHECK_FALSE(manager.connected());
    charon.start();
    REQUIRE(
        runUntil(manager, [&] { return manager.isOpenFor(Family::V4, address("198.18.20.9")); }));
}
