// xtapctl: the operator's and the mediation device's tool for xtap.
#include "Commands.h"

int main(int argc, char** argv) {
    CLI::App app{"xtapctl: task xtap over DTCP, receive copies, inspect the appliance"};
    app.require_subcommand(1);
    int exit_code = 0;
    xtap::ctl::registerDtcpCommands(app, exit_code);
    xtap::ctl::registerReceiveCommand(app, exit_code);
    xtap::ctl::registerStatusCommands(app, exit_code);
    xtap::ctl::registerAuditCommand(app, exit_code);
    CLI11_PARSE(app, argc, argv);
    return exit_code;
}
