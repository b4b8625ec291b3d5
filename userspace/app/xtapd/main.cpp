// xtapd: the xtap appliance daemon.
//   xtapd --config /etc/xtap/xtap.json
//   xtapd --check-config /etc/xtap/xtap.json
#include <malloc.h>
#include <signal.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <csignal>
#include <fstream>
#include <iostream>
#include <sstream>

#include "Daemon.h"
#include "config/Config.h"

namespace {

// Set from the signal handler, read by the daemon's loop.
std::atomic<bool> g_stop{false};
std::atomic<bool> g_reload{false};

void onSignal(int sig) {
    if (sig == SIGHUP)
        g_reload = true;
    else
        g_stop = true;
}

std::variant<xtap::config::Config, xtap::config::ConfigError> load(const std::string& path) {
    std::ifstream in(path);
    if (!in) return xtap::config::ConfigError{path, "", "cannot be read"};
    std::stringstream s;
    s << in.rdbuf();
    return xtap::config::parseConfig(s.str(), path);
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"xtapd: lawful-intercept copies at line rate, tasked over DTCP"};
    std::string config_path = "/etc/xtap/xtap.json";
    std::string check_path;
    bool verbose = false;
    xtap::app::DaemonOptions daemon_options;
    app.add_option("-c,--config", config_path, "configuration file");
    app.add_flag(
        "--discard-state", daemon_options.discard_unusable_state,
        "start without criteria if the state file is unusable (set aside; clients get 599)");
    app.add_option("--check-config", check_path, "validate FILE and exit (0: valid)");
    app.add_flag("-v,--verbose", verbose, "debug logging");
    CLI11_PARSE(app, argc, argv);

    auto logger = spdlog::stderr_color_mt("xtapd");
    spdlog::set_default_logger(logger);
    spdlog::set_pattern("%^%l%$ %v");  // journald adds the time
    if (verbose) spdlog::set_level(spdlog::level::debug);

    if (!check_path.empty()) {
        auto r = load(check_path);
        if (auto* e = std::get_if<xtap::config::ConfigError>(&r)) {
            std::cerr << e->message() << "\n";
            return 2;
        }
        std::cout << check_path << ": valid\n";
        return 0;
    }

    // Blocks from 256 KiB up (state file text, LIST replies) are mapped on
    // their own and unmapped when freed. A fixed threshold: glibc's default
    // rises to 32 MiB after such a block is freed, and later large blocks then
    // come from the heap, where the store's allocations above keep them.
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);

    // Targets live in this process's memory: no core dumps.
    rlimit none{0, 0};
    setrlimit(RLIMIT_CORE, &none);
    prctl(PR_SET_DUMPABLE, 0);

    auto r = load(config_path);
    if (auto* e = std::get_if<xtap::config::ConfigError>(&r)) {
        spdlog::critical("refusing to start: {}", e->message());
        return 2;
    }
    struct sigaction sa {};
    sa.sa_handler = onSignal;
    sigaction(SIGTERM, &sa, nullptr);
    sigaction(SIGINT, &sa, nullptr);
    sigaction(SIGHUP, &sa, nullptr);
    signal(SIGPIPE, SIG_IGN);
    try {
        xtap::app::Daemon daemon(std::get<xtap::config::Config>(std::move(r)), config_path,
                                 daemon_options);
        // The restore's transient memory (saved criteria, state file) lies
        // freed between the store's allocations; glibc returns only the heap's
        // top by itself, this returns every free page.
        malloc_trim(0);
        daemon.run(g_stop, g_reload);
    } catch (const std::exception& e) {
        spdlog::critical("xtapd: {}", e.what());
        return 1;
    }
    return 0;
}
