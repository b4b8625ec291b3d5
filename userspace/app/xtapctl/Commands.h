// xtapctl subcommands: each file registers its own on the CLI11 app, and
// returns the exit code through the callback it installs.
#pragma once

#include <CLI/CLI.hpp>

namespace xtap::ctl {

// The exit codes of the commands that check something (audit verify, receive).
enum ExitCode : int {
    kOk = 0,
    kCheckFailed = 1,  // a tampered audit log, a copy that did not decode
    kSetupError = 2,   // bad options, a file or socket that could not be opened
};

// Each register function adds a subcommand; `exit_code` receives the result.
void registerDtcpCommands(CLI::App& app, int& exit_code);     // xtapctl dtcp ...
void registerReceiveCommand(CLI::App& app, int& exit_code);   // xtapctl receive
void registerStatusCommands(CLI::App& app, int& exit_code);   // xtapctl status, flush
void registerAuditCommand(CLI::App& app, int& exit_code);     // xtapctl audit verify|report

}  // namespace xtap::ctl
