#include "control/ControlServer.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <system_error>

namespace xtap::control {

namespace {

using Clock = std::chrono::steady_clock;

std::system_error errnoError(const std::string& what) {
    return std::system_error(errno, std::generic_category(), what);
}

sockaddr_un unixAddress(const std::string& path) {
    sockaddr_un a{};
    a.sun_family = AF_UNIX;
    if (path.empty() || path.size() >= sizeof a.sun_path)
        throw std::runtime_error("control socket path '" + path + "' is empty or longer than " +
                                 std::to_string(sizeof a.sun_path - 1) + " bytes");
    std::memcpy(a.sun_path, path.data(), path.size());
    return a;
}

int remainingMs(Clock::time_point deadline) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    return left.count() > 0 ? int(left.count()) : 0;
}

// Waits for `events` on fd until the deadline; false on timeout or error.
bool waitFor(int fd, short events, Clock::time_point deadline) {
    for (;;) {
        pollfd p{fd, events, 0};
        const int n = ::poll(&p, 1, remainingMs(deadline));
        if (n > 0) return true;
        if (n == 0 || errno != EINTR) return false;
    }
}

bool writeAll(int fd, std::string_view bytes, Clock::time_point deadline) {
    while (!bytes.empty()) {
        const ssize_t n = ::send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            bytes.remove_prefix(size_t(n));
            continue;
        }
        if (n < 0 && errno == EINTR) continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK) && waitFor(fd, POLLOUT, deadline))
            continue;
        return false;
    }
    return true;
}

enum class LineResult { Line, Closed, TooLong, Failed };

// Reads up to and including '\n' into `line`; `buffer` keeps what follows.
LineResult readLine(int fd, std::string& buffer, std::string& line, size_t limit,
                    Clock::time_point deadline) {
    for (;;) {
        const auto newline = buffer.find('\n');
        if (newline != std::string::npos) {
            line = buffer.substr(0, newline + 1);
            buffer.erase(0, newline + 1);
            return line.size() > limit + 1 ? LineResult::TooLong : LineResult::Line;
        }
        if (buffer.size() > limit + 1) return LineResult::TooLong;
        char chunk[4096];
        const ssize_t n = ::recv(fd, chunk, sizeof chunk, MSG_DONTWAIT);
        if (n > 0) {
            buffer.append(chunk, size_t(n));
            continue;
        }
        if (n == 0) return LineResult::Closed;
        if (errno == EINTR) continue;
        if ((errno == EAGAIN || errno == EWOULDBLOCK) && waitFor(fd, POLLIN, deadline)) continue;
        return LineResult::Failed;
    }
}

}  // namespace

ControlServer::ControlServer(ControlServerOptions options, Handler handler, Log log)
    : options_(std::move(options)), handler_(std::move(handler)), log_(std::move(log)) {
    const sockaddr_un address = unixAddress(options_.path);
    const std::filesystem::path dir = std::filesystem::path(options_.path).parent_path();
    if (!dir.empty() && !std::filesystem::exists(dir)) {
        std::filesystem::create_directories(dir);
        std::filesystem::permissions(dir, std::filesystem::perms::owner_all);
    }
    struct stat st {};
    if (::lstat(options_.path.c_str(), &st) == 0) {
        if (!S_ISSOCK(st.st_mode))
            throw std::runtime_error("control socket path " + options_.path +
                                     " exists and is not a socket");
        UniqueFd probe(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
        if (probe && ::connect(probe.get(), reinterpret_cast<const sockaddr*>(&address),
                               sizeof address) == 0)
            throw std::runtime_error("control socket " + options_.path +
                                     " is served by another process (another xtapd?)");
        ::unlink(options_.path.c_str());  // stale: left by a killed xtapd
    }
    listener_.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!listener_) throw errnoError("control socket");
    if (::bind(listener_.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0)
        throw errnoError("control socket: bind " + options_.path);
    // Narrowed before listen(): nobody can connect while it is wider.
    if (::chmod(options_.path.c_str(), options_.mode) != 0 || ::listen(listener_.get(), 16) != 0) {
        const auto error = errnoError("control socket: chmod/listen " + options_.path);
        ::unlink(options_.path.c_str());
        throw error;
    }
    int pipe_fds[2];
    if (::pipe2(pipe_fds, O_CLOEXEC | O_NONBLOCK) != 0) {
        const auto error = errnoError("control socket: pipe");
        ::unlink(options_.path.c_str());
        throw error;
    }
    wake_read_.reset(pipe_fds[0]);
    wake_write_.reset(pipe_fds[1]);
    thread_ = std::thread([this] { serve(); });
}

ControlServer::~ControlServer() {
    const char byte = 1;
    [[maybe_unused]] const ssize_t n = ::write(wake_write_.get(), &byte, 1);
    if (thread_.joinable()) thread_.join();
    ::unlink(options_.path.c_str());
}

void ControlServer::serve() {
    for (;;) {
        pollfd fds[2] = {{listener_.get(), POLLIN, 0}, {wake_read_.get(), POLLIN, 0}};
        if (::poll(fds, 2, -1) < 0 && errno != EINTR) return;
        if (fds[1].revents) return;
        if (!(fds[0].revents & POLLIN)) continue;
        UniqueFd client(::accept4(listener_.get(), nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK));
        if (client) serveClient(client.get());
    }
}

void ControlServer::serveClient(int fd) {
    auto deadline = Clock::now() + options_.io_timeout;
    ucred peer{};
    socklen_t length = sizeof peer;
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &peer, &length) != 0 ||
        peer.uid != options_.allowed_uid) {
        if (log_)
            log_("control socket: refused a peer with uid " + std::to_string(peer.uid) + " (pid " +
                 std::to_string(peer.pid) + ")");
        writeAll(
            fd,
            encodeResponse(Response::failure("permission denied: the control socket serves uid " +
                                             std::to_string(options_.allowed_uid) + " only")),
            deadline);
        // Read what the peer sent before closing: closing on unread data
        // resets the connection, and the peer could lose the answer.
        ::shutdown(fd, SHUT_WR);
        const auto drain_until = std::min(deadline, Clock::now() + std::chrono::milliseconds(200));
        char sink[4096];
        while (waitFor(fd, POLLIN, drain_until) &&
               ::recv(fd, sink, sizeof sink, MSG_DONTWAIT) > 0) {
        }
        return;
    }
    std::string buffer, line;
    for (unsigned served = 0; served < options_.max_requests_per_connection; ++served) {
        const LineResult r = readLine(fd, buffer, line, kMaxRequestBytes, deadline);
        if (r == LineResult::Closed) return;
        if (r == LineResult::Failed) {
            if (log_) log_("control socket: a client timed out or failed");
            return;
        }
        Response response;
        if (r == LineResult::TooLong) {
            response = Response::failure("bad request: line longer than " +
                                         std::to_string(kMaxRequestBytes) + " bytes");
        } else {
            auto request = decodeRequest(line);
            if (auto* error = std::get_if<std::string>(&request)) {
                response = Response::failure(*error);
            } else {
                try {
                    response = handler_(std::get<Request>(request));
                } catch (const std::exception& e) {
                    response = Response::failure(std::string("internal error: ") + e.what());
                }
            }
        }
        if (!writeAll(fd, encodeResponse(response), deadline) || r == LineResult::TooLong) return;
        deadline = Clock::now() + options_.io_timeout;
    }
}

std::variant<Response, std::string> controlRequest(const std::string& path, const Request& request,
                                                   std::chrono::milliseconds timeout) {
    sockaddr_un address;
    try {
        address = unixAddress(path);
    } catch (const std::exception& e) {
        return std::string(e.what());
    }
    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) return std::string("socket: ") + std::strerror(errno);
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) != 0) {
        const int e = errno;
        if (e == ENOENT || e == ECONNREFUSED)
            return "cannot reach xtapd at " + path + ": " + std::strerror(e) +
                   " (is xtapd running?)";
        if (e == EACCES || e == EPERM)
            return "permission denied on " + path + ": the control socket is root only";
        return "connect " + path + ": " + std::strerror(e);
    }
    const auto deadline = Clock::now() + timeout;
    // A refused peer gets its answer before the request is read, and the send
    // may then fail: the answer waiting to be read says why.
    const bool sent = writeAll(fd.get(), encodeRequest(request), deadline);
    std::string buffer, line;
    if (!sent) {
        if (readLine(fd.get(), buffer, line, kMaxResponseBytes, deadline) == LineResult::Line)
            return decodeResponse(line);
        return "cannot send the request to " + path;
    }
    switch (readLine(fd.get(), buffer, line, kMaxResponseBytes, deadline)) {
        case LineResult::Line:
            return decodeResponse(line);
        case LineResult::Closed:
            return "xtapd closed the connection without an answer";
        case LineResult::TooLong:
            return std::string("the answer is longer than the limit");
        case LineResult::Failed:
            break;
    }
    return "no answer from xtapd within " + std::to_string(timeout.count()) + " ms";
}

}  // namespace xtap::control
