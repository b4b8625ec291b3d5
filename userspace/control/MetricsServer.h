// MetricsServer: serves GET /metrics (Prometheus text exposition) on one TCP
// address with libmicrohttpd's own thread. Bounded: a few connections at a
// time, short timeouts, small per-connection memory, no request bodies;
// anything but GET /metrics gets 404 or 405.
#pragma once

#include <cstdint>
#include <functional>
#include <string>

struct MHD_Daemon;

namespace xtap::control {

struct MetricsServerOptions {
    std::string address = "127.0.0.1";  // numeric IPv4 or IPv6
    uint16_t port = 9469;
    unsigned connection_limit = 8;
    unsigned timeout_s = 5;
};

class MetricsServer {
  public:
    // Produces the exposition text; called on libmicrohttpd's thread.
    using Render = std::function<std::string()>;

    // Throws std::runtime_error naming the address when it cannot listen.
    MetricsServer(MetricsServerOptions options, Render render);
    ~MetricsServer();
    MetricsServer(const MetricsServer&) = delete;
    MetricsServer& operator=(const MetricsServer&) = delete;

    uint16_t port() const;  // the bound port (useful with port 0)

  private:
    MetricsServerOptions options_;
    Render render_;
    MHD_Daemon* daemon_ = nullptr;

    friend struct MetricsServerAccess;
};

}  // namespace xtap::control
