// Daemon: xtapd's parts wired together, started in order (data plane,
// capture veths and AF_XDP, IPsec tunnels, DTCP listener) and stopped in
// reverse. Three threads besides the SSH sessions': the copy pump (AF_XDP ->
// fan-out -> encapsulation -> UDP through the tunnel), the tunnel manager's
// poll loop, and a one-second tick (timeouts, notifications, state file).
#pragma once

#include <atomic>
#include <memory>
#include <string>

#include "config/Config.h"

namespace xtap::app {

struct DaemonOptions {
    // A state file that cannot be read or trusted stops the start (no
    // intercept is dropped silently). With this, xtapd sets it aside, starts
    // without criteria and owes every client a 599 (xtapd --discard-state).
    bool discard_unusable_state = false;
};

class Daemon {
  public:
    // Throws std::runtime_error / std::system_error naming what failed;
    // whatever was attached is detached again before the exception leaves.
    Daemon(config::Config config, std::string config_path, DaemonOptions options = {});
    ~Daemon();
    Daemon(const Daemon&) = delete;
    Daemon& operator=(const Daemon&) = delete;

    // Runs until `stop` is set (SIGTERM) and returns after a clean shutdown.
    // `reload` (SIGHUP) re-reads users and limits from the config file.
    void run(const std::atomic<bool>& stop, std::atomic<bool>& reload);

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace xtap::app
