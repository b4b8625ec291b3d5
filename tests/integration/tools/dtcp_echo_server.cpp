// dtcp_echo_server: the DTCP SSH transport (dtcp::SshServer) with users from a
// JSON file and a minimal endpoint on the real request decoder, for the
// integration tests:
//   NOOP                -> 200 (with Flags: SendAsync also a 131 notification,
//                          sent through SshServer::notifySession)
//   other valid request -> 501 Not Implemented
//   decode error        -> its code (400, 505, ...)
//   discard             -> no reply, one line in the audit file; 10 in a row
//                          close the channel (dtcp.md §7)
// Prints {"ready":...} on stdout once listening, the counters as one JSON line
// on SIGUSR1, and again when SIGTERM or SIGINT stops it. Logs go to stderr.
//
// Users file: {"users":[{"name":"md1","authorized_keys":["ssh-ed25519 AAAA..."],
//   "authorized_keys_file":"/path","password_hash":"$y$...","flow_tap_operation":true,
//   "hmac_key":"Juniper","reply_hmac_key":"..."}]}
// reply_hmac_key signs replies with another key than requests are checked
// with: a fault for testing clients that verify replies.
#include <signal.h>
#include <time.h>

#include <CLI/CLI.hpp>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <variant>

#include "dtcp/Hmac.h"
#include "dtcp/RequestDecoder.h"
#include "dtcp/Responses.h"
#include "dtcp/SeqWindow.h"
#include "dtcp/SshServer.h"

using namespace xtap::dtcp;
using json = nlohmann::json;

namespace {

constexpr unsigned kDiscardsBeforeClose = 10;

Timestamp nowTimestamp() {
    timespec ts{};
    ::clock_gettime(CLOCK_REALTIME, &ts);
    tm local{};
    ::localtime_r(&ts.tv_sec, &local);
    Timestamp t;
    t.year = static_cast<uint16_t>(local.tm_year + 1900);
    t.month = static_cast<uint8_t>(local.tm_mon + 1);
    t.day = static_cast<uint8_t>(local.tm_mday);
    t.hour = static_cast<uint8_t>(local.tm_hour);
    t.minute = static_cast<uint8_t>(local.tm_min);
    t.second = static_cast<uint8_t>(local.tm_sec);
    t.millisecond = static_cast<uint16_t>(ts.tv_nsec / 1'000'000);
    return t;
}

struct UserKeys {
    std::string request_key{kDefaultHmacKey};
    std::string reply_key{kDefaultHmacKey};
};

class EchoEndpoint : public DtcpEndpoint {
  public:
    EchoEndpoint(std::map<std::string, UserKeys> keys, const std::string& audit_path)
        : keys_(std::move(keys)) {
        if (!audit_path.empty()) {
            audit_.open(audit_path, std::ios::app);
            if (!audit_) throw std::runtime_error("cannot open audit file " + audit_path);
        }
    }

    void setServer(SshServer* server) { server_ = server; }

    void onOpen(const SessionInfo& info) override {
        std::lock_guard lock(mutex_);
        channels_[info.channel_id] = std::make_unique<ChannelState>();
    }

    void onClose(const SessionInfo& info, ChannelCloseReason) override {
        std::lock_guard lock(mutex_);
        channels_.erase(info.channel_id);
    }

    std::vector<std::string> onMessage(const SessionInfo& info,
                                       std::string_view message_bytes) override {
        ChannelState* state = nullptr;
        {
            std::lock_guard lock(mutex_);
            state = channels_.at(info.channel_id).get();  // only this thread uses it
        }
        const UserKeys keys = keysOf(info.user);
        const Timestamp now = nowTimestamp();
        DecodeOutcome outcome =
            decodeRequest(message_bytes, info.user, keys.request_key, state->seq_window);
        if (auto* discard = std::get_if<Discard>(&outcome)) {
            audit(info, *discard);
            if (++state->consecutive_discards >= kDiscardsBeforeClose && server_) {
                server_->closeChannel(info.session_id, info.channel_id);
            }
            return {};
        }
        state->consecutive_discards = 0;
        if (auto* error = std::get_if<RequestError>(&outcome)) {
            return {formatResponse(errorResponse(*error, now), keys.reply_key)};
        }
        const auto& request = std::get<DecodedRequest>(outcome);
        state->version = request.version;
        if (request.seq_verdict == SeqVerdict::Wrapped) {
            notify(info, formatNotification(seqRolloverNotification(request.version, now),
                                            keys.reply_key));
        }
        if (const auto* noop = std::get_if<NoopRequest>(&request.body)) {
            if (noop->send_async) {
                notify(info,
                       formatNotification(noopNotification(request.version, now), keys.reply_key));
            }
            return {formatResponse(okResponse(request.version, request.seq, now), keys.reply_key)};
        }
        return {formatResponse(
            errorResponse(request.version, request.seq, StatusCode::NotImplemented, {}, {}, now),
            keys.reply_key)};
    }

  private:
    struct ChannelState {
        SeqWindow seq_window;
        Version version = kDefaultNotificationVersion;
        unsigned consecutive_discards = 0;
    };

    UserKeys keysOf(const std::string& user) const {
        const auto it = keys_.find(user);
        return it == keys_.end() ? UserKeys{} : it->second;
    }

    void notify(const SessionInfo& info, const std::string& bytes) {
        if (server_) server_->notifySession(info.session_id, bytes);
    }

    // Who, where and why; never the message itself.
    void audit(const SessionInfo& info, const Discard& discard) {
        std::lock_guard lock(mutex_);
        if (!audit_) return;
        const Timestamp now = nowTimestamp();
        audit_ << formatTimestamp(now) << " discard code=" << codeNumber(auditCode(discard.reason))
               << " user=" << info.user
               << " peer=" << formatEndpoint(info.peer_address, info.peer_port)
               << " session=" << info.session_id << " channel=" << info.channel_id;
        if (discard.seq) audit_ << " seq=" << *discard.seq;
        if (discard.seq_verdict) audit_ << " verdict=" << describe(*discard.seq_verdict);
        audit_ << '\n';
        audit_.flush();
    }

    const std::map<std::string, UserKeys> keys_;
    SshServer* server_ = nullptr;
    std::mutex mutex_;
    std::map<uint64_t, std::unique_ptr<ChannelState>> channels_;
    std::ofstream audit_;
};

std::vector<std::string> readLines(const std::string& path) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    std::vector<std::string> lines;
    for (std::string line; std::getline(in, line);) lines.push_back(line);
    return lines;
}

void loadUsers(const std::string& path, std::vector<SshUser>& users,
               std::map<std::string, UserKeys>& keys) {
    std::ifstream in(path);
    if (!in) throw std::runtime_error("cannot read " + path);
    const json doc = json::parse(in);
    for (const json& entry : doc.at("users")) {
        SshUser user;
        user.name = entry.at("name").get<std::string>();
        user.password_hash = entry.value("password_hash", "");
        user.flow_tap_operation = entry.value("flow_tap_operation", false);
        for (const json& line : entry.value("authorized_keys", json::array())) {
            user.authorized_keys.push_back(line.get<std::string>());
        }
        if (entry.contains("authorized_keys_file")) {
            for (auto& line : readLines(entry.at("authorized_keys_file").get<std::string>())) {
                user.authorized_keys.push_back(std::move(line));
            }
        }
        UserKeys user_keys;
        user_keys.request_key = entry.value("hmac_key", std::string(kDefaultHmacKey));
        user_keys.reply_key = entry.value("reply_hmac_key", user_keys.request_key);
        keys[user.name] = user_keys;
        users.push_back(std::move(user));
    }
}

json countersJson(const SshServerCounters& c) {
    return json{{"connections_accepted", c.connections_accepted},
                {"connections_refused_limit", c.connections_refused_limit},
                {"connections_refused_rate", c.connections_refused_rate},
                {"connections_refused_other", c.connections_refused_other},
                {"key_exchange_failures", c.key_exchange_failures},
                {"auth_timeouts", c.auth_timeouts},
                {"auth_attempts_exceeded", c.auth_attempts_exceeded},
                {"auth_failures_publickey", c.auth_failures_publickey},
                {"auth_failures_password", c.auth_failures_password},
                {"auth_failures_permission", c.auth_failures_permission},
                {"auth_locked_out", c.auth_locked_out},
                {"sessions_authenticated", c.sessions_authenticated},
                {"sessions_open", c.sessions_open},
                {"channels_open", c.channels_open},
                {"requests_refused", c.requests_refused},
                {"messages_received", c.messages_received},
                {"messages_too_large", c.messages_too_large},
                {"slow_peer_disconnects", c.slow_peer_disconnects},
                {"notifications_queued", c.notifications_queued},
                {"notifications_dropped", c.notifications_dropped}};
}

}  // namespace

int main(int argc, char** argv) {
    CLI::App app{"dtcp_echo_server: DTCP over SSH with a NOOP-only endpoint (test tool)"};
    SshServerConfig config;
    std::string users_path;
    std::string audit_path;
    bool verbose = false;
    int64_t auth_timeout_ms = config.auth_timeout.count();
    int64_t password_delay_ms = config.password_failure_delay.count();
    int64_t lockout_window_s = config.password_lockout_window.count();
    int64_t lockout_duration_s = config.password_lockout_duration.count();
    int64_t stall_timeout_ms = config.write_stall_timeout.count();
    app.add_option("--host-key", config.host_key_file, "ed25519 host key (OpenSSH format)")
        ->required();
    app.add_option("--users", users_path, "users JSON file")->required();
    app.add_option("--listen", config.listen, "addr:port or [addr]:port (repeatable)");
    app.add_option("--audit", audit_path, "append discard lines here");
    app.add_option("--auth-timeout-ms", auth_timeout_ms);
    app.add_option("--max-auth-attempts", config.max_auth_attempts);
    app.add_option("--connection-limit", config.connection_limit);
    app.add_option("--rate-limit", config.rate_limit);
    app.add_option("--password-delay-ms", password_delay_ms);
    app.add_option("--lockout-failures", config.password_lockout_failures);
    app.add_option("--lockout-window-s", lockout_window_s);
    app.add_option("--lockout-duration-s", lockout_duration_s);
    app.add_option("--max-outbound-bytes", config.max_outbound_bytes);
    app.add_option("--stall-timeout-ms", stall_timeout_ms);
    app.add_option("--max-message-bytes", config.max_message_bytes);
    app.add_flag("-v,--verbose", verbose, "debug logs too");
    CLI11_PARSE(app, argc, argv);

    config.auth_timeout = std::chrono::milliseconds(auth_timeout_ms);
    config.password_failure_delay = std::chrono::milliseconds(password_delay_ms);
    config.password_lockout_window = std::chrono::seconds(lockout_window_s);
    config.password_lockout_duration = std::chrono::seconds(lockout_duration_s);
    config.write_stall_timeout = std::chrono::milliseconds(stall_timeout_ms);
    auto log_mutex = std::make_shared<std::mutex>();
    config.log = [verbose, log_mutex](SshLogLevel level, std::string_view line) {
        if (level == SshLogLevel::Debug && !verbose) return;
        std::lock_guard lock(*log_mutex);
        std::cerr << describe(level) << ": " << line << std::endl;
    };

    // Signals are taken by sigwait below; the server's threads inherit the mask.
    ::signal(SIGPIPE, SIG_IGN);
    sigset_t signals;
    sigemptyset(&signals);
    sigaddset(&signals, SIGTERM);
    sigaddset(&signals, SIGINT);
    sigaddset(&signals, SIGUSR1);
    pthread_sigmask(SIG_BLOCK, &signals, nullptr);

    try {
        std::map<std::string, UserKeys> keys;
        loadUsers(users_path, config.users, keys);
        EchoEndpoint endpoint(std::move(keys), audit_path);
        SshServer server(config, endpoint);
        endpoint.setServer(&server);
        server.start();
        std::cout << json{{"ready", true},
                          {"listen", server.boundAddresses()},
                          {"host_key", server.hostKeyFingerprint()}}
                         .dump()
                  << std::endl;
        while (true) {
            int signal_number = 0;
            if (sigwait(&signals, &signal_number) != 0) continue;
            if (signal_number == SIGUSR1) {
                std::cout << json{{"counters", countersJson(server.counters())}}.dump()
                          << std::endl;
                continue;
            }
            break;
        }
        server.stop();
        endpoint.setServer(nullptr);
        std::cout << json{{"counters", countersJson(server.counters())}, {"stopped", true}}.dump()
                  << std::endl;
    } catch (const std::exception& e) {
        std::cerr << "dtcp_echo_server: " << e.what() << std::endl;
        return 1;
    }
    return 0;
}
