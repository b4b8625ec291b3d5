// xtapctl audit: check and read xtapd's signed audit log.
//   verify FILE --public-key PEM   every record's signature, sequence and hash
//                                  link, and the signed head (truncation)
//   report FILE --public-key PEM   each intercept: start, end, criteria, Cdest, user
//   public-key PRIVATE_PEM         the public key to pin (give it to the auditor)
// The public key is always the auditor's own copy, pinned when xtapd was
// installed: a key read from the log or from the appliance proves nothing,
// since whoever could rewrite the log could write that key too.
#include <fstream>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "Commands.h"
#include "audit/AuditLog.h"
#include "audit/AuditReport.h"

namespace xtap::ctl {

namespace {

struct AuditOptions {
    std::string log;
    std::string public_key;
    std::string head;
    bool no_head = false;
    bool json = false;
    bool unverified = false;
};

std::unique_ptr<audit::Ed25519Key> loadKey(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::stringstream text;
    text << in.rdbuf();
    try {
        return audit::Ed25519Key::fromPem(text.str());
    } catch (const std::exception& e) {
        throw std::runtime_error(path + ": " + e.what());
    }
}

// The verdict on the log, printed; true when it verifies.
bool verifyAndSay(const AuditOptions& o, std::ostream& out) {
    const auto key = loadKey(o.public_key);
    const audit::VerifyResult r = audit::verifyFile(o.log, *key, {o.head, !o.no_head});
    if (!r.ok) {
        out << o.log << ": FAILED";
        if (r.bad_line) out << " at line " << r.bad_line;
        out << ": " << r.reason << "\n";
        return false;
    }
    out << o.log << ": OK, " << r.records
        << " record(s), each signed and chained to the one before";
    out << (o.no_head ? "; head not checked (truncation not ruled out)\n"
                      : "; ends where the signed head says\n");
    return true;
}

int runVerify(const AuditOptions& o) {
    try {
        return verifyAndSay(o, std::cout) ? kOk : kCheckFailed;
    } catch (const std::exception& e) {
        std::cerr << "xtapctl audit verify: " << e.what() << "\n";
        return kSetupError;
    }
}

int runReport(const AuditOptions& o) {
    try {
        if (!o.unverified) {
            if (o.public_key.empty())
                throw std::runtime_error("--public-key is required (or --unverified)");
            std::ostringstream verdict;
            if (!verifyAndSay(o, verdict)) {
                std::cerr << verdict.str()
                          << "xtapctl audit report: no report from a log that does not verify "
                          << "(--unverified to read it anyway)\n";
                return kCheckFailed;
            }
        }
        std::ifstream in(o.log);
        if (!in) throw std::runtime_error("cannot read " + o.log);
        std::vector<nlohmann::json> records;
        for (std::string line; std::getline(in, line);) {
            records.push_back(nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false));
        }
        const audit::Report report = audit::buildReport(records);
        if (o.json) {
            nlohmann::json j = audit::reportJson(report);
            j["verified"] = !o.unverified;
            std::cout << j.dump(2) << "\n";
        } else {
            std::cout << (o.unverified ? "UNVERIFIED: the log's signatures were not checked\n"
                                       : "verified log: " + o.log + "\n")
                      << audit::formatReport(report);
        }
        return kOk;
    } catch (const std::exception& e) {
        std::cerr << "xtapctl audit report: " << e.what() << "\n";
        return kSetupError;
    }
}

int runPublicKey(const std::string& private_key) {
    try {
        std::cout << loadKey(private_key)->publicPem();
        return kOk;
    } catch (const std::exception& e) {
        std::cerr << "xtapctl audit public-key: " << e.what() << "\n";
        return kSetupError;
    }
}

}  // namespace

void registerAuditCommand(CLI::App& app, int& exit_code) {
    CLI::App* audit = app.add_subcommand("audit", "verify and read xtapd's signed audit log");
    audit->require_subcommand(1);
    auto options = std::make_shared<AuditOptions>();

    auto addCommon = [options](CLI::App* sub) {
        sub->add_option("FILE", options->log, "the audit log (xtapd's audit_log)")->required();
        CLI::Option* key =
            sub->add_option("--public-key,-k", options->public_key,
                            "the Ed25519 public key (PEM) pinned when xtapd was installed");
        sub->add_option("--head", options->head, "the signed head file (default FILE.head)");
        sub->add_flag("--no-head", options->no_head,
                      "check the chain without the head file (a truncated tail is not detected)");
        return key;
    };

    CLI::App* verify = audit->add_subcommand(
        "verify",
        "detect any edit, deletion, insertion, reordering or truncation; exit 1 naming the record");
    addCommon(verify)->required();
    verify->callback([options, &exit_code] { exit_code = runVerify(*options); });

    CLI::App* report = audit->add_subcommand(
        "report", "each intercept from a verified log: start, end, criteria, Cdest, user");
    addCommon(report);
    report->add_flag("--json", options->json, "JSON instead of text");
    report->add_flag("--unverified", options->unverified, "report without checking the signatures");
    report->callback([options, &exit_code] { exit_code = runReport(*options); });

    auto private_key = std::make_shared<std::string>();
    CLI::App* public_key = audit->add_subcommand(
        "public-key",
        "print the public key of xtapd's audit key (STATE_DIR/audit_ed25519.pem), to pin");
    public_key->add_option("KEY", *private_key, "the PEM key file")->required();
    public_key->callback([private_key, &exit_code] { exit_code = runPublicKey(*private_key); });
}

}  // namespace xtap::ctl
