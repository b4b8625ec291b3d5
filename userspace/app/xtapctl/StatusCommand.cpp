// xtapctl status / xtapctl flush: xtapd's local control socket (root only).
//   xtapctl status [--json] [--socket PATH]
//   xtapctl flush --yes [--socket PATH]
#include <iostream>
#include <memory>

#include "Commands.h"
#include "control/ControlServer.h"
#include "control/Status.h"

namespace xtap::ctl {

namespace {

constexpr const char* kDefaultSocket = "/run/xtap/control.sock";

// Exit codes: 0 done, 1 xtapd refused or failed, 2 usage, 3 cannot reach xtapd.
int ask(const std::string& socket, const control::Request& request, control::Response& out) {
    auto r = control::controlRequest(socket, request);
    if (auto* e = std::get_if<std::string>(&r)) {
        std::cerr << "xtapctl: " << *e << "\n";
        return 3;
    }
    out = std::move(std::get<control::Response>(r));
    if (!out.ok) {
        std::cerr << "xtapctl: xtapd: " << out.error << "\n";
        return 1;
    }
    return 0;
}

int runStatus(const std::string& socket, bool as_json) {
    control::Response response;
    if (int rc = ask(socket, {control::Command::Status, false}, response)) return rc;
    if (as_json) {
        std::cout << response.result.dump(2) << "\n";
        return 0;
    }
    auto status = control::statusFromJson(response.result);
    if (auto* e = std::get_if<std::string>(&status)) {
        std::cerr << "xtapctl: " << *e << " (try --json)\n";
        return 1;
    }
    std::cout << control::renderTable(std::get<control::Status>(status));
    return 0;
}

int runFlush(const std::string& socket, bool yes) {
    if (!yes) {
        std::cerr << "xtapctl: flush drops every criterion of every client (audited); "
                     "add --yes to do it\n";
        return 2;
    }
    control::Response response;
    if (int rc = ask(socket, {control::Command::Flush, true}, response)) return rc;
    std::cout << "flushed: " << response.result.dump() << "\n";
    return 0;
}

}  // namespace

void registerStatusCommands(CLI::App& app, int& exit_code) {
    auto socket = std::make_shared<std::string>(kDefaultSocket);
    auto as_json = std::make_shared<bool>(false);
    CLI::App* status =
        app.add_subcommand("status", "xtapd's interfaces, tunnels, clients and copy counters");
    status->add_option("--socket", *socket, "xtapd's control socket (config key control_socket)");
    status->add_flag("--json", *as_json, "print the JSON document, for scripts");
    status->callback([socket, as_json, &exit_code] { exit_code = runStatus(*socket, *as_json); });

    auto flush_socket = std::make_shared<std::string>(kDefaultSocket);
    auto yes = std::make_shared<bool>(false);
    CLI::App* flush = app.add_subcommand("flush", "drop every criterion of every client (audited)");
    flush->add_option("--socket", *flush_socket,
                      "xtapd's control socket (config key control_socket)");
    flush->add_flag("--yes", *yes, "confirm: every intercept stops");
    flush->callback([flush_socket, yes, &exit_code] { exit_code = runFlush(*flush_socket, *yes); });
}

}  // namespace xtap::ctl
