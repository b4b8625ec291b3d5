#include <arpa/inet.h>
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "common/UniqueFd.h"
#include "control/ControlServer.h"
#include "control/MetricsServer.h"
#include "tests/support/TempDir.h"

using namespace xtap::control;
namespace fs = std::filesystem;

namespace {

using xtap::test::TempDir;

ControlServerOptions optionsAt(const fs::path& path) {
    ControlServerOptions o;
    o.path = path.string();
    o.allowed_uid = ::getuid();
    o.io_timeout = std::chrono::milliseconds(500);
    return o;
}

Response statusHandler(const Request& r) {
    if (r.command == Command::Flush) return Response::failure("flush is not available");
    return Response::success({{"criteria", 0}});
}

// Sends raw bytes, returns everything the server wrote before closing.
std::string exchangeRaw(const std::string& path, const std::string& bytes) {
    xtap::UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    std::strncpy(a.sun_path, path.c_str(), sizeof a.sun_path - 1);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{2, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    (void)!::send(fd.get(), bytes.data(), bytes.size(), MSG_NOSIGNAL);
    ::shutdown(fd.get(), SHUT_WR);
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) out.append(buf, size_t(n));
    return out;
}

std::string httpGet(uint16_t port, const std::string& request) {
    xtap::UniqueFd fd(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(::connect(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{5, 0};
    ::setsockopt(fd.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    REQUIRE(::send(fd.get(), request.data(), request.size(), MSG_NOSIGNAL) ==
            ssize_t(request.size()));
    std::string out;
    char buf[4096];
    ssize_t n;
    while ((n = ::recv(fd.get(), buf, sizeof buf, 0)) > 0) out.append(buf, size_t(n));
    return out;
}

}  // namespace

TEST_CASE("control server: answers status, refuses flush it cannot do, socket is 0600") {
    TempDir dir;
    const fs::path sock = dir.path / "run" / "control.sock";
    {
        ControlServer server(optionsAt(sock), statusHandler);
        struct stat st {};
        REQUIRE(::stat(sock.c_str(), &st) == 0);
        CHECK((st.st_mode & 0777) == 0600);
        CHECK((fs::status(sock.parent_path()).permissions() & fs::perms::all) ==
              fs::perms::owner_all);

        auto r = controlRequest(sock, {Command::Status, false});
        REQUIRE(std::holds_alternative<Response>(r));
        CHECK(std::get<Response>(r).ok);
        CHECK(std::get<Response>(r).result["criteria"] == 0);

        auto f = controlRequest(sock, {Command::Flush, true});
        REQUIRE(std::holds_alternative<Response>(f));
        CHECK_FALSE(std::get<Response>(f).ok);
        CHECK(std::get<Response>(f).error == "flush is not available");

        // Several requests on one connection, and a bad one answered in kind.
        const std::string out =
            exchangeRaw(sock, "{\"command\":\"status\"}\nnonsense\n{\"command\":\"flush\"}\n");
        CHECK(out.find("\"ok\":true") != std::string::npos);
        CHECK(out.find("not valid JSON") != std::string::npos);
        CHECK(out.find("needs \\\"confirm\\\": true") != std::string::npos);
    }
    CHECK_FALSE(fs::exists(sock));  // removed on destruction
    auto gone = controlRequest(sock, {Command::Status, false});
    REQUIRE(std::holds_alternative<std::string>(gone));
    CHECK(std::get<std::string>(gone).find("is xtapd running?") != std::string::npos);
}

TEST_CASE("control server: a peer with another uid is refused (SO_PEERCRED)") {
    TempDir dir;
    auto options = optionsAt(dir.path / "c.sock");
    options.allowed_uid = ::getuid() + 1;  // anyone but us
    std::atomic<int> handled{0}, refused{0};
    ControlServer server(
        options, [&](const Request&) { return ++handled, Response::success(nullptr); },
        [&](const std::string& line) { refused += line.find("refused") != std::string::npos; });
    auto r = controlRequest(options.path, {Command::Status, false});
    if (auto* e = std::get_if<std::string>(&r)) FAIL(*e);
    CHECK_FALSE(std::get<Response>(r).ok);
    CHECK(std::get<Response>(r).error.find("permission denied") != std::string::npos);
    CHECK(handled == 0);
    CHECK(refused == 1);
}

TEST_CASE("control server: an over-long request is refused and the connection closed") {
    TempDir dir;
    ControlServer server(optionsAt(dir.path / "c.sock"), statusHandler);
    const std::string out = exchangeRaw(server.path(), std::string(kMaxRequestBytes * 3, 'x'));
    CHECK(out.find("longer than") != std::string::npos);
    CHECK(std::count(out.begin(), out.end(), '\n') == 1);
}

TEST_CASE("control server: a stale socket is replaced, a live one or a plain file is not") {
    TempDir dir;
    const fs::path sock = dir.path / "c.sock";
    {
        // A socket file nobody listens on, as a killed xtapd leaves it.
        xtap::UniqueFd stale(::socket(AF_UNIX, SOCK_STREAM, 0));
        sockaddr_un a{};
        a.sun_family = AF_UNIX;
        std::strncpy(a.sun_path, sock.c_str(), sizeof a.sun_path - 1);
        REQUIRE(::bind(stale.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    }
    ControlServer first(optionsAt(sock), statusHandler);
    CHECK(std::holds_alternative<Response>(controlRequest(sock, {Command::Status, false})));
    CHECK_THROWS_WITH_AS(ControlServer(optionsAt(sock), statusHandler),
                         doctest::Contains("served by another process"), std::runtime_error);

    const fs::path file = dir.path / "file";
    std::ofstream(file) << "x";
    CHECK_THROWS_WITH_AS(ControlServer(optionsAt(file), statusHandler),
                         doctest::Contains("not a socket"), std::runtime_error);
    CHECK(fs::exists(file));
}

TEST_CASE("metrics server: GET /metrics serves the exposition, other paths do not") {
    MetricsServerOptions o;
    o.address = "127.0.0.1";
    o.port = 0;  // any free port
    int renders = 0;
    MetricsServer server(o, [&] { return ++renders, std::string("xtap_criteria 0\n"); });
    REQUIRE(server.port() != 0);

    const std::string ok = httpGet(server.port(), "GET /metrics HTTP/1.0\r\n\r\n");
    CHECK(ok.rfind("HTTP/1.", 0) == 0);
    CHECK(ok.find(" 200 ") != std::string::npos);
    CHECK(ok.find("text/plain; version=0.0.4") != std::string::npos);
    CHECK(ok.find("\r\n\r\nxtap_criteria 0\n") != std::string::npos);
    CHECK(renders == 1);

    CHECK(httpGet(server.port(), "GET /secrets HTTP/1.0\r\n\r\n").find(" 404 ") !=
          std::string::npos);
    CHECK(httpGet(server.port(), "POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
              .find(" 405 ") != std::string::npos);
    CHECK(renders == 1);
}

TEST_CASE("metrics server: an address it cannot bind is a clear error") {
    MetricsServerOptions o;
    o.address = "198.18.255.254";  // not on this host
    o.port = 9469;
    CHECK_THROWS_WITH_AS(MetricsServer(o, [] { return std::string(); }),
                         doctest::Contains("cannot listen"), std::runtime_error);
    o.address = "localhost";
    CHECK_THROWS_WITH_AS(MetricsServer(o, [] { return std::string(); }),
                         doctest::Contains("not a numeric IP address"), std::runtime_error);
}
