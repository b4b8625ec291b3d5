// ControlServer: xtapd's local control socket (a Unix stream socket) and the
// thread that serves it; ControlClient: xtapctl's side.
//
// Access: the socket file is mode 0600 (set before listen(), so there is no
// window in which it is open wider), and every peer's uid is checked with
// SO_PEERCRED; another uid gets an error line and the connection closes.
// Clients are served one at a time, each request bounded in size and time,
// so a stuck client delays others by at most the I/O timeout.
#pragma once

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <string>
#include <thread>
#include <variant>

#include "common/UniqueFd.h"
#include "control/Protocol.h"

namespace xtap::control {

struct ControlServerOptions {
    std::string path = "/run/xtap/control.sock";
    unsigned mode = 0600;
    uid_t allowed_uid = 0;  // root only
    std::chrono::milliseconds io_timeout{2000};
    unsigned max_requests_per_connection = 16;
};

class ControlServer {
  public:
    // Called on the server's thread, one request at a time.
    using Handler = std::function<Response(const Request&)>;
    // Called for refused peers and broken connections (no request contents).
    using Log = std::function<void(const std::string&)>;

    // Creates the socket's directory (mode 0700) if missing, replaces a stale
    // socket file, refuses to replace a socket another process serves or a
    // file that is not a socket, and starts serving. Throws
    // std::system_error / std::runtime_error naming the path.
    ControlServer(ControlServerOptions options, Handler handler, Log log = {});
    ~ControlServer();  // stops the thread, removes the socket file
    ControlServer(const ControlServer&) = delete;
    ControlServer& operator=(const ControlServer&) = delete;

    const std::string& path() const { return options_.path; }

  private:
    void serve();
    void serveClient(int fd);

    ControlServerOptions options_;
    Handler handler_;
    Log log_;
    UniqueFd listener_;
    UniqueFd wake_read_, wake_write_;
    std::thread thread_;
};

// One request, one response. Errors (no such socket, permission, timeout,
// bad response) come back as a message for the operator.
std::variant<Response, std::string> controlRequest(
    const std::string& path, const Request& request,
    std::chrono::milliseconds timeout = std::chrono::milliseconds(10000));

}  // namespace xtap::control
