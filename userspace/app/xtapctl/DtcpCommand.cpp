// xtapctl dtcp add|delete|refresh|list|noop: speaks DTCP over SSH as a
// mediation device does (dtcp.md §1, §5, §6, §8): an SSH login, the
// `flow-tap-dtcp` subsystem, signed requests with a Seq, signed replies
// checked. Works against xtap and against a Juniper router (port 32001, key
// `Juniper`, Csource-ID = SSH user by default).
#include <fcntl.h>
#include <libssh/libssh.h>
#include <pwd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <charconv>
#include <chrono>
#include <climits>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "Commands.h"
#include "dtcp/FieldNames.h"
#include "dtcp/Framer.h"
#include "dtcp/Hmac.h"
#include "dtcp/Message.h"
#include "dtcp/SshServer.h"
#include "dtcp/Text.h"
#include "dtcp/Version.h"

namespace xtap::ctl {

namespace {

using namespace xtap::dtcp;
using Clock = std::chrono::steady_clock;

// Exit codes; the worst one seen wins.
constexpr int kExitOk = 0;
constexpr int kExitErrorStatus = 1;  // a reply other than 200
constexpr int kExitFailure = 2;      // usage, connection, authentication, host key
constexpr int kExitNoReply = 3;      // no reply in time (xtap discards silently)
constexpr int kExitBadHmac = 4;      // a reply or notification whose HMAC does not verify

constexpr uint16_t kDefaultPort = 32001;
constexpr std::string_view kDefaultSubsystem = "flow-tap-dtcp";

// A failure that ends the command with a message and an exit code.
struct CommandError : std::runtime_error {
    CommandError(int code, const std::string& message) : std::runtime_error(message), exit(code) {}
    int exit;
};

enum class Method { Add, Delete, Refresh, List, Noop };

std::string_view methodName(Method method) {
    switch (method) {
        case Method::Add:
            return "ADD";
        case Method::Delete:
            return "DELETE";
        case Method::Refresh:
            return "REFRESH";
        case Method::List:
            return "LIST";
        case Method::Noop:
            return "NOOP";
    }
    return "NOOP";
}

struct Target {
    std::string host;
    uint16_t port = kDefaultPort;
    std::string user;
    std::string identity_file;
    std::string password_file;
    std::string known_hosts_file;
    std::string host_key_sha256;
    bool insecure_host_key = false;
    long connect_timeout_s = 10;
    std::string subsystem{kDefaultSubsystem};
};

struct RequestOptions {
    std::string version = "0.8";
    std::string hmac_key{kDefaultHmacKey};
    std::string hmac_key_file;
    std::optional<uint64_t> seq;
    std::string seq_file;
    std::string csource_id;
    unsigned count = 1;
    std::vector<std::string> raw_files;
    double timeout_s = 10;
    double linger_s = 0;
    bool dry_run = false;
    bool show_request = false;
    bool verify_reply = true;

    // Fields, in the order they are written (Juniper's clients' order).
    std::vector<std::string> cdest_ids;
    std::string criteria_id;
    std::string source_address, dest_address, source_port, dest_port, protocol;
    std::string icmp_type, icmp_code;
    std::string timeout_idle, timeout_total, timeout_packets, timeout_bytes;
    std::string priority, action;
    std::vector<std::string> input_interfaces, output_interfaces;
    std::string vrf_name, ip_version, filter_family, md_intercept_id;
    std::vector<std::string> cdest_dest_addresses, cdest_dest_ports;
    std::string cdest_source_address, cdest_source_port, cdest_ttl;
    bool is_static = false;
    bool send_async = false;
    std::string list_detail;
    std::string flags;
    std::vector<std::string> extra_fields;  // "Name: value"
};

std::string join(const std::vector<std::string>& items, std::string_view separator) {
    std::string out;
    for (const std::string& item : items) {
        if (!out.empty()) out += separator;
        out += item;
    }
    return out;
}

std::string currentUser() {
    if (const passwd* pw = ::getpwuid(::geteuid())) return pw->pw_name;
    if (const char* user = std::getenv("USER")) return user;
    return "root";
}

std::string readFirstLine(const std::string& path, std::string_view what) {
    std::ifstream in(path);
    if (!in) throw CommandError(kExitFailure, "cannot read the " + std::string(what) + " " + path);
    std::string line;
    std::getline(in, line);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    return line;
}

std::string readFile(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) throw CommandError(kExitFailure, "cannot read " + path);
    std::ostringstream text;
    text << in.rdbuf();
    return text.str();
}

// --- requests ---------------------------------------------------------------------

std::string flagsValue(Method method, const RequestOptions& o) {
    std::vector<std::string> words;
    if (o.is_static) words.emplace_back("STATIC");  // Junos spelling
    if (o.send_async) words.emplace_back("SendAsync");
    if (method == Method::List && !o.list_detail.empty()) {
        if (o.list_detail == "stats") words.emplace_back("Stats");
        if (o.list_detail == "criteria") words.emplace_back("Criteria");
        if (o.list_detail == "both") words.emplace_back("Both");
    }
    if (!o.flags.empty()) words.push_back(o.flags);
    return join(words, ", ");
}

void addExtraFields(MessageWriter& writer, const std::vector<std::string>& extra) {
    for (const std::string& line : extra) {
        const size_t colon = line.find(':');
        if (colon == std::string::npos || colon == 0) {
            throw CommandError(kExitFailure, "--field '" + line + "' is not 'Name: value'");
        }
        writer.add(trimWsp(std::string_view(line).substr(0, colon)),
                   trimWsp(std::string_view(line).substr(colon + 1)));
    }
}

std::string buildRequest(Method method, const RequestOptions& o, const std::string& csource,
                         uint64_t seq, const std::string& key) {
    const auto version = parseVersion("DTCP/" + o.version);
    if (!version) throw CommandError(kExitFailure, "bad --version " + o.version);
    MessageWriter writer(RequestLine{std::string(methodName(method)), *version});
    auto add = [&](std::string_view name, const std::string& value) {
        if (!value.empty()) writer.add(name, value);
    };
    add(field::kCsourceId, csource);
    add(field::kCdestId, join(o.cdest_ids, ","));
    add(field::kCriteriaId, o.criteria_id);
    add(field::kSourceAddress, o.source_address);
    add(field::kDestAddress, o.dest_address);
    add(field::kSourcePort, o.source_port);
    add(field::kDestPort, o.dest_port);
    add(field::kProtocol, o.protocol);
    add(field::kIcmpType, o.icmp_type);
    add(field::kIcmpCode, o.icmp_code);
    add(field::kTimeoutIdle, o.timeout_idle);
    add(field::kTimeoutTotal, o.timeout_total);
    add(field::kTimeoutPackets, o.timeout_packets);
    add(field::kTimeoutBytes, o.timeout_bytes);
    add(field::kPriority, o.priority);
    add(field::kAction, o.action);
    add(field::kInputInterface, join(o.input_interfaces, ","));
    add(field::kOutputInterface, join(o.output_interfaces, ","));
    add(field::kVrfName, o.vrf_name);
    add(field::kIpVersion, o.ip_version);
    add(field::kFilterFamily, o.filter_family);
    add(field::kCdestDestAddress, join(o.cdest_dest_addresses, ","));
    add(field::kCdestDestPort, join(o.cdest_dest_ports, ","));
    add(field::kCdestSourceAddress, o.cdest_source_address);
    add(field::kCdestSourcePort, o.cdest_source_port);
    add(field::kCdestTtl, o.cdest_ttl);
    add(field::kMdInterceptId, o.md_intercept_id);
    add(field::kFlags, flagsValue(method, o));
    addExtraFields(writer, o.extra_fields);
    writer.add(field::kSeq, std::to_string(seq));
    return writer.sign(key, kAuthenticationInfo);
}

// A message file as written, its Seq and Authentication-Info replaced: lines
// get CRLF ends, the first empty line after the start line ends the message.
std::string buildRaw(const std::string& text, uint64_t seq, const std::string& key) {
    std::string covered;
    std::istringstream in(text);
    bool started = false;
    for (std::string line; std::getline(in, line);) {
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.empty()) {
            if (started) break;
            continue;
        }
        started = true;
        const size_t colon = line.find(':');
        if (colon != std::string::npos) {
            const std::string_view name = trimWsp(std::string_view(line).substr(0, colon));
            if (iequals(name, field::kSeq) || iequals(name, kAuthenticationInfo)) continue;
        }
        covered += line + "\r\n";
    }
    if (!started) throw CommandError(kExitFailure, "the message file is empty");
    covered += std::string(field::kSeq) + ": " + std::to_string(seq) + "\r\n";
    return covered + std::string(kAuthenticationInfo) + ": " + hmacSha1Hex(key, covered) +
           "\r\n\r\n";
}

// --- Seq ----------------------------------------------------------------------------

std::filesystem::path defaultSeqFile(const Target& target) {
    std::filesystem::path base;
    if (const char* state = std::getenv("XDG_STATE_HOME"); state && *state) {
        base = state;
    } else if (const char* home = std::getenv("HOME"); home && *home) {
        base = std::filesystem::path(home) / ".local" / "state";
    } else {
        return {};
    }
    return base / "xtapctl" / "seq" /
           (target.user + "@" + target.host + "_" + std::to_string(target.port));
}

uint64_t timeBasedSeq() {
    using namespace std::chrono;
    return static_cast<uint64_t>(
        duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}

// Reserves `n` consecutive Seq values: the last one used for this user and host
// is kept in a counter file, so that a server that keeps one window per user
// across connections accepts the next invocation too.
uint64_t reserveSeq(const RequestOptions& o, const Target& target, uint64_t n) {
    if (o.seq) return *o.seq;
    const std::filesystem::path path =
        o.seq_file.empty() ? defaultSeqFile(target) : std::filesystem::path(o.seq_file);
    if (path.empty()) return timeBasedSeq();
    std::error_code ignored;
    std::filesystem::create_directories(path.parent_path(), ignored);
    const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0 || ::flock(fd, LOCK_EX) != 0) {
        if (fd >= 0) ::close(fd);
        std::cerr << "xtapctl dtcp: cannot use the Seq file " << path
                  << "; using a time-based Seq\n";
        return timeBasedSeq();
    }
    char buffer[32] = {};
    const ssize_t length = ::pread(fd, buffer, sizeof buffer - 1, 0);
    uint64_t last = 0;
    if (length > 0) {
        std::from_chars(buffer, buffer + length, last);
    }
    const uint64_t first = last + 1;
    const std::string updated = std::to_string(first + n - 1) + "\n";
    const bool written =
        ::ftruncate(fd, 0) == 0 &&
        ::pwrite(fd, updated.data(), updated.size(), 0) == static_cast<ssize_t>(updated.size());
    ::close(fd);
    if (!written) std::cerr << "xtapctl dtcp: cannot update the Seq file " << path << "\n";
    return first;
}

// --- SSH ------------------------------------------------------------------------------

std::string sshError(ssh_session session) {
    const char* text = ssh_get_error(session);
    return text && *text ? text : "unknown error";
}

std::string normalizedFingerprint(std::string_view text) {
    if (istartsWith(text, "SHA256:")) text.remove_prefix(7);
    while (!text.empty() && text.back() == '=') text.remove_suffix(1);
    return std::string(text);
}

class DtcpConnection {
  public:
    explicit DtcpConnection(const Target& target) : target_(target) {}

    void connect() {
        ensureLibsshInitialized();
        session_.reset(ssh_new());
        if (!session_) throw CommandError(kExitFailure, "ssh_new failed");
        ssh_session s = session_.get();
        const unsigned port = target_.port;
        const bool process_config = false;  // only what the command line says
        long timeout = target_.connect_timeout_s;
        const int nodelay = 1;  // small requests, one at a time: no Nagle wait
        if (ssh_options_set(s, SSH_OPTIONS_HOST, target_.host.c_str()) != SSH_OK ||
            ssh_options_set(s, SSH_OPTIONS_PORT, &port) != SSH_OK ||
            ssh_options_set(s, SSH_OPTIONS_USER, target_.user.c_str()) != SSH_OK ||
            ssh_options_set(s, SSH_OPTIONS_PROCESS_CONFIG, &process_config) != SSH_OK ||
            ssh_options_set(s, SSH_OPTIONS_TIMEOUT, &timeout) != SSH_OK ||
            ssh_options_set(s, SSH_OPTIONS_NODELAY, &nodelay) != SSH_OK) {
            throw CommandError(kExitFailure, "bad SSH options: " + sshError(s));
        }
        if (!target_.known_hosts_file.empty() &&
            ssh_options_set(s, SSH_OPTIONS_KNOWNHOSTS, target_.known_hosts_file.c_str()) !=
                SSH_OK) {
            throw CommandError(kExitFailure, "bad known_hosts file: " + sshError(s));
        }
        if (ssh_connect(s) != SSH_OK) {
            throw CommandError(kExitFailure, "cannot connect to " +
                                                 formatEndpoint(target_.host, target_.port) + ": " +
                                                 sshError(s));
        }
        verifyHostKey();
        authenticate();
    }

    void openSubsystem() {
        channel_.reset(ssh_channel_new(session_.get()));
        if (!channel_ || ssh_channel_open_session(channel_.get()) != SSH_OK) {
            throw CommandError(kExitFailure, "cannot open a channel: " + sshError(session_.get()));
        }
        if (ssh_channel_request_subsystem(channel_.get(), target_.subsystem.c_str()) != SSH_OK) {
            throw CommandError(kExitFailure, "the server refused the subsystem '" +
                                                 target_.subsystem +
                                                 "': " + sshError(session_.get()));
        }
    }

    void send(std::string_view bytes) {
        size_t done = 0;
        while (done < bytes.size()) {
            const int n = ssh_channel_write(channel_.get(), bytes.data() + done,
                                            static_cast<uint32_t>(bytes.size() - done));
            if (n <= 0) {
                throw CommandError(kExitFailure,
                                   "cannot send the request: " + sshError(session_.get()));
            }
            done += static_cast<size_t>(n);
        }
    }

    enum class ReadStatus { Message, Timeout, Closed };

    // The next complete message, waiting until `deadline`.
    ReadStatus read(std::string& message, Clock::time_point deadline) {
        while (true) {
            FrameResult frame = framer_.next();
            if (frame.status == FrameStatus::Message) {
                message = std::move(frame.message);
                return ReadStatus::Message;
            }
            if (frame.status == FrameStatus::TooLarge) {
                throw CommandError(kExitFailure, "the server sent a message over 64 KiB");
            }
            const auto left =
                std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
            if (left.count() <= 0) return ReadStatus::Timeout;
            if (ssh_channel_is_eof(channel_.get()) || ssh_channel_is_closed(channel_.get())) {
                return ReadStatus::Closed;
            }
            char buffer[16 * 1024];
            const int n = ssh_channel_read_timeout(
                channel_.get(), buffer, sizeof buffer, 0,
                static_cast<int>(std::min<int64_t>(left.count(), INT_MAX)));
            if (n == SSH_ERROR) {
                throw CommandError(kExitFailure, "read failed: " + sshError(session_.get()));
            }
            if (n > 0) framer_.append(std::string_view(buffer, static_cast<size_t>(n)));
        }
    }

    void close() {
        if (channel_) {
            ssh_channel_send_eof(channel_.get());
            ssh_channel_close(channel_.get());
            channel_.reset();
        }
        if (session_) {
            ssh_disconnect(session_.get());
            session_.reset();
        }
    }

    ~DtcpConnection() { close(); }

  private:
    void verifyHostKey() {
        ssh_key raw = nullptr;
        if (ssh_get_server_publickey(session_.get(), &raw) != SSH_OK || !raw) {
            throw CommandError(kExitFailure, "the server sent no host key");
        }
        const UniqueSshKey key(raw);
        const std::string fingerprint = keyFingerprintSha256(key.get());
        if (target_.insecure_host_key) {
            std::cerr << "xtapctl dtcp: warning: host key " << fingerprint << " not checked\n";
            return;
        }
        if (!target_.host_key_sha256.empty()) {
            if (normalizedFingerprint(fingerprint) !=
                normalizedFingerprint(target_.host_key_sha256)) {
                throw CommandError(kExitFailure, "host key " + fingerprint +
                                                     " does not match the pinned " +
                                                     target_.host_key_sha256);
            }
            return;
        }
        switch (ssh_session_is_known_server(session_.get())) {
            case SSH_KNOWN_HOSTS_OK:
                return;
            case SSH_KNOWN_HOSTS_CHANGED:
                throw CommandError(kExitFailure, "HOST KEY CHANGED: the server offers " +
                                                     fingerprint + ", known_hosts says otherwise");
            case SSH_KNOWN_HOSTS_OTHER:
                throw CommandError(kExitFailure, "the server offers a key of another type (" +
                                                     fingerprint + ") than known_hosts lists");
            case SSH_KNOWN_HOSTS_NOT_FOUND:
            case SSH_KNOWN_HOSTS_UNKNOWN:
                throw CommandError(kExitFailure,
                                   "unknown host key " + fingerprint +
                                       ": add it to known_hosts, pin it with --host-key-sha256, "
                                       "or use --insecure-host-key in a lab");
            case SSH_KNOWN_HOSTS_ERROR:
                break;
        }
        throw CommandError(kExitFailure, "cannot check the host key: " + sshError(session_.get()));
    }

    void authenticate() {
        ssh_session s = session_.get();
        int rc = ssh_userauth_none(s, nullptr);
        if (rc == SSH_AUTH_SUCCESS) return;
        if (rc == SSH_AUTH_ERROR) {
            throw CommandError(kExitFailure, "authentication failed: " + sshError(s));
        }
        const int methods = ssh_userauth_list(s, nullptr);
        std::string method;
        if (!target_.identity_file.empty()) {
            method = "public key";
            ssh_key raw = nullptr;
            if (ssh_pki_import_privkey_file(target_.identity_file.c_str(), nullptr, nullptr,
                                            nullptr, &raw) != SSH_OK ||
                !raw) {
                throw CommandError(kExitFailure, "cannot read the key " + target_.identity_file +
                                                     " (encrypted keys: use an agent)");
            }
            const UniqueSshKey key(raw);
            rc = ssh_userauth_publickey(s, nullptr, key.get());
        } else if (!target_.password_file.empty()) {
            method = "password";
            const std::string password = readFirstLine(target_.password_file, "password file");
            rc = SSH_AUTH_DENIED;
            if (methods & SSH_AUTH_METHOD_PASSWORD)
                rc = ssh_userauth_password(s, nullptr, password.c_str());
            // Routers often offer only keyboard-interactive for passwords.
            if (rc == SSH_AUTH_DENIED && (methods & SSH_AUTH_METHOD_INTERACTIVE)) {
                rc = keyboardInteractive(password);
            }
        } else {
            method = "agent or default key";
            rc = ssh_userauth_publickey_auto(s, nullptr, nullptr);
        }
        if (rc != SSH_AUTH_SUCCESS) {
            throw CommandError(kExitFailure, method + " authentication as '" + target_.user +
                                                 "' failed" +
                                                 (rc == SSH_AUTH_ERROR ? ": " + sshError(s) : ""));
        }
    }

    int keyboardInteractive(const std::string& password) {
        ssh_session s = session_.get();
        int rc = ssh_userauth_kbdint(s, nullptr, nullptr);
        for (int round = 0; rc == SSH_AUTH_INFO && round < 4; ++round) {
            const int prompts = ssh_userauth_kbdint_getnprompts(s);
            for (int i = 0; i < prompts; ++i) {
                char echo = 0;
                ssh_userauth_kbdint_getprompt(s, static_cast<unsigned>(i), &echo);
                ssh_userauth_kbdint_setanswer(s, static_cast<unsigned>(i),
                                              echo ? "" : password.c_str());
            }
            rc = ssh_userauth_kbdint(s, nullptr, nullptr);
        }
        return rc;
    }

    const Target& target_;
    UniqueSshSession session_;
    UniqueSshChannel channel_;
    Framer framer_;
};

// --- a run ------------------------------------------------------------------------------

void printMessage(std::string_view bytes) {
    std::string text;
    text.reserve(bytes.size());
    for (size_t i = 0; i < bytes.size(); ++i) {
        if (bytes[i] == '\r' && i + 1 < bytes.size() && bytes[i + 1] == '\n') continue;
        text += bytes[i];
    }
    std::cout << text << std::flush;
}

// What one received message is, and whether its HMAC verifies.
struct Received {
    bool is_reply = false;  // carries a Seq (notifications do not)
    std::optional<uint64_t> seq;
    uint16_t code = 0;
    bool hmac_ok = false;
};

Received examine(std::string_view bytes, const std::string& key) {
    Received r;
    auto parsed = parseMessage(bytes);
    if (!parsed) {
        r.is_reply = true;  // unreadable: ends the wait rather than hanging
        return r;
    }
    const Message& m = parsed.value();
    if (const StatusLine* status = m.statusLine()) r.code = status->code;
    if (const Field* seq = m.find(field::kSeq)) {
        r.is_reply = true;
        uint64_t value = 0;
        const auto [end, error] =
            std::from_chars(seq->value.data(), seq->value.data() + seq->value.size(), value);
        if (error == std::errc() && end == seq->value.data() + seq->value.size()) r.seq = value;
    }
    r.hmac_ok = m.authentication_info &&
                hmacSha1Matches(key, bytes.substr(0, m.signed_length), *m.authentication_info);
    return r;
}

std::chrono::milliseconds seconds(double s) {
    return std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
}

int run(Method method, Target target, const RequestOptions& o) {
    if (target.user.empty()) target.user = currentUser();
    if (o.count == 0) throw CommandError(kExitFailure, "--count must be >= 1");
    if (o.cdest_ids.size() > 2) throw CommandError(kExitFailure, "at most 2 --cdest-id");
    const std::string key =
        o.hmac_key_file.empty() ? o.hmac_key : readFirstLine(o.hmac_key_file, "HMAC key file");
    const std::string csource = o.csource_id.empty() ? target.user : o.csource_id;

    std::vector<std::string> raw_texts;
    for (const std::string& path : o.raw_files) raw_texts.push_back(readFile(path));
    const uint64_t per_round = raw_texts.empty() ? 1 : raw_texts.size();
    const uint64_t total = per_round * o.count;
    const uint64_t first_seq = o.dry_run && !o.seq ? 1 : reserveSeq(o, target, total);

    std::vector<std::pair<uint64_t, std::string>> requests;
    for (uint64_t i = 0; i < total; ++i) {
        const uint64_t seq = first_seq + i;
        requests.emplace_back(seq, raw_texts.empty()
                                       ? buildRequest(method, o, csource, seq, key)
                                       : buildRaw(raw_texts[i % per_round], seq, key));
    }
    if (o.dry_run) {
        for (const auto& request : requests) std::cout << request.second;
        return kExitOk;
    }

    DtcpConnection connection(target);
    connection.connect();
    connection.openSubsystem();
    int worst = kExitOk;
    auto worsen = [&](int code) { worst = std::max(worst, code); };
    auto handle = [&](const std::string& bytes) -> Received {
        const Received r = examine(bytes, key);
        if (!r.is_reply) std::cout << "# notification\n";
        printMessage(bytes);
        if (o.verify_reply && !r.hmac_ok) {
            std::cerr << "xtapctl dtcp: the " << (r.is_reply ? "reply" : "notification")
                      << "'s Authentication-Info does not verify with the HMAC key\n";
            worsen(kExitBadHmac);
        }
        return r;
    };

    for (const auto& [seq, bytes] : requests) {
        if (o.show_request) std::cerr << bytes;
        connection.send(bytes);
        const auto deadline = Clock::now() + seconds(o.timeout_s);
        while (true) {
            std::string message;
            const auto status = connection.read(message, deadline);
            if (status == DtcpConnection::ReadStatus::Timeout) {
                std::cerr << "xtapctl dtcp: no reply to Seq " << seq << " within " << o.timeout_s
                          << " s (xtap discards requests whose HMAC, Csource-ID or Seq it "
                             "rejects)\n";
                worsen(kExitNoReply);
                break;
            }
            if (status == DtcpConnection::ReadStatus::Closed) {
                throw CommandError(std::max(worst, kExitFailure), "the server closed the channel");
            }
            const Received r = handle(message);
            if (!r.is_reply) continue;
            if (r.seq != seq) {
                std::cerr << "xtapctl dtcp: the reply does not echo Seq " << seq << "\n";
            }
            if (r.code != 200) worsen(kExitErrorStatus);
            break;
        }
    }
    if (o.linger_s > 0) {
        const auto deadline = Clock::now() + seconds(o.linger_s);
        std::string message;
        while (connection.read(message, deadline) == DtcpConnection::ReadStatus::Message) {
            handle(message);
        }
    }
    connection.close();
    return worst;
}

// --- command line ----------------------------------------------------------------------

struct CommandState {
    Target target;
    RequestOptions request;
};

void addConnectionOptions(CLI::App& sub, CommandState& s) {
    sub.add_option("host,-H,--host", s.target.host, "xtap or router address or name")->required();
    sub.add_option("-p,--port", s.target.port, "SSH port")->capture_default_str();
    sub.add_option("-l,--user", s.target.user, "SSH user (default: the current user)");
    sub.add_option("-i,--identity", s.target.identity_file, "private key for public-key login");
    sub.add_option("--password-file", s.target.password_file,
                   "password login; the password is the file's first line");
    auto* known = sub.add_option("--known-hosts", s.target.known_hosts_file,
                                 "known_hosts file to check the host key against "
                                 "(default: ~/.ssh/known_hosts)");
    auto* pin =
        sub.add_option("--host-key-sha256", s.target.host_key_sha256,
                       "expected host key fingerprint (SHA256:... as ssh-keygen -l prints)");
    auto* insecure = sub.add_flag("--insecure-host-key", s.target.insecure_host_key,
                                  "do not check the host key (labs only)");
    insecure->excludes(known)->excludes(pin);
    pin->excludes(known);
    sub.add_option("--connect-timeout", s.target.connect_timeout_s, "seconds")
        ->capture_default_str();
    sub.add_option("--subsystem", s.target.subsystem, "SSH subsystem")->capture_default_str();
}

void addRequestOptions(CLI::App& sub, CommandState& s) {
    RequestOptions& o = s.request;
    sub.add_option("--version", o.version, "DTCP version")
        ->check(CLI::IsMember({"0.6", "0.7", "0.8"}))
        ->capture_default_str();
    auto* key = sub.add_option("--hmac-key", o.hmac_key, "HMAC-SHA1 key (default: Juniper)");
    sub.add_option("--hmac-key-file", o.hmac_key_file, "HMAC key in the file's first line")
        ->excludes(key);
    auto* seq = sub.add_option("--seq", o.seq, "Seq of the first request (then +1 each)");
    sub.add_option("--seq-file", o.seq_file,
                   "counter file for Seq (default: ~/.local/state/xtapctl/seq/USER@HOST_PORT)")
        ->excludes(seq);
    sub.add_option("--csource-id", o.csource_id, "Csource-ID (default: the SSH user)");
    sub.add_option("--count", o.count, "send the request this many times on one connection")
        ->capture_default_str();
    sub.add_option("--raw", o.raw_files,
                   "send these message files instead (Seq and Authentication-Info filled in)");
    sub.add_option("--timeout", o.timeout_s, "seconds to wait for each reply")
        ->capture_default_str();
    sub.add_option("--linger", o.linger_s, "after the last reply, print notifications this long");
    sub.add_flag("--dry-run", o.dry_run, "print the signed requests, do not connect");
    sub.add_flag("--show-request", o.show_request, "copy each request to stderr");
    sub.add_flag("!--no-verify-reply", o.verify_reply, "do not check the replies' HMAC");
    sub.add_option("--flags", o.flags, "Flags words as written, added to the ones options set");
    sub.add_option("--field", o.extra_fields, "extra 'Name: value' line (repeatable)");
}

void addSelectionOptions(CLI::App& sub, RequestOptions& o, bool several_cdests) {
    sub.add_option("--criteria-id", o.criteria_id, "Criteria-ID: value, list or range");
    auto* cdest = sub.add_option("--cdest-id", o.cdest_ids,
                                 several_cdests ? "Cdest-ID (up to 2)" : "Cdest-ID");
    if (!several_cdests) cdest->expected(1);
}

void addTimeoutOptions(CLI::App& sub, RequestOptions& o) {
    sub.add_option("--timeout-idle", o.timeout_idle, "Timeout-Idle (s)");
    sub.add_option("--timeout-total", o.timeout_total, "Timeout-Total (s)");
    sub.add_option("--timeout-packets", o.timeout_packets, "Timeout-Packets");
    sub.add_option("--timeout-bytes", o.timeout_bytes, "Timeout-Bytes");
}

void addAddOptions(CLI::App& sub, RequestOptions& o) {
    addSelectionOptions(sub, o, true);
    sub.add_option("--source-address", o.source_address, "Source-Address list");
    sub.add_option("--dest-address", o.dest_address, "Dest-Address list");
    sub.add_option("--protocol", o.protocol, "Protocol list");
    sub.add_option("--source-port", o.source_port, "Source-Port list");
    sub.add_option("--dest-port", o.dest_port, "Dest-Port list");
    sub.add_option("--icmp-type", o.icmp_type, "ICMP-Type list");
    sub.add_option("--icmp-code", o.icmp_code, "ICMP-Code list");
    addTimeoutOptions(sub, o);
    sub.add_flag("--static", o.is_static, "Flags: STATIC (never expires)");
    sub.add_flag("--send-async", o.send_async, "Flags: SendAsync (timeout notification)");
    sub.add_option("--priority", o.priority, "Priority (1 = default, lower is more important)");
    sub.add_option("--action", o.action, "Action: Copy, Redirect or Block");
    sub.add_option("--input-interface", o.input_interfaces, "X-JTap-Input-Interface (up to 8)");
    sub.add_option("--output-interface", o.output_interfaces, "X-JTap-Output-Interface (up to 8)");
    sub.add_option("--vrf-name", o.vrf_name, "X-JTap-VRF-Name");
    sub.add_option("--ip-version", o.ip_version, "X-JTap-IP-Version: ipv4 or ipv6");
    sub.add_option("--filter-family", o.filter_family, "X-JTap-Filter-Family");
    sub.add_option("--cdest-dest-address", o.cdest_dest_addresses,
                   "X-JTap-Cdest-Dest-Address (one per Cdest-ID)");
    sub.add_option("--cdest-dest-port", o.cdest_dest_ports,
                   "X-JTap-Cdest-Dest-Port (one per Cdest-ID)");
    sub.add_option("--cdest-source-address", o.cdest_source_address, "X-JTap-Cdest-Source-Address");
    sub.add_option("--cdest-source-port", o.cdest_source_port, "X-JTap-Cdest-Source-Port");
    sub.add_option("--cdest-ttl", o.cdest_ttl, "X-JTap-Cdest-TTL");
    sub.add_option("--md-intercept-id", o.md_intercept_id, "X-MD-Intercept-Id (hex)");
}

void addMethodCommand(CLI::App& dtcp, Method method, int& exit_code) {
    static constexpr const char* kDescriptions[] = {
        "add a criterion (ADD)", "delete criteria (DELETE)", "refresh criteria (REFRESH)",
        "list criteria (LIST)", "check the link (NOOP)"};
    std::string name(methodName(method));
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    CLI::App* sub = dtcp.add_subcommand(name, kDescriptions[static_cast<int>(method)]);
    auto state = std::make_shared<CommandState>();
    addConnectionOptions(*sub, *state);
    addRequestOptions(*sub, *state);
    RequestOptions& o = state->request;
    switch (method) {
        case Method::Add:
            addAddOptions(*sub, o);
            break;
        case Method::Delete:
            addSelectionOptions(*sub, o, false);
            sub->add_flag("--static", o.is_static, "Flags: STATIC (static criteria too)");
            break;
        case Method::Refresh:
            addSelectionOptions(*sub, o, false);
            addTimeoutOptions(*sub, o);
            break;
        case Method::List:
            addSelectionOptions(*sub, o, false);
            sub->add_option("--detail", o.list_detail, "Flags: stats, criteria or both")
                ->check(CLI::IsMember({"stats", "criteria", "both"}));
            break;
        case Method::Noop:
            sub->add_flag("--send-async", o.send_async, "Flags: SendAsync (a 131 notification)");
            break;
    }
    sub->footer(
        "Exit codes: 0 every reply 200; 1 a reply with another status; 2 usage, connection, "
        "authentication or host key failure; 3 no reply in time (a silent discard); 4 a "
        "reply's HMAC does not verify.");
    sub->callback([state, method, &exit_code] {
        try {
            exit_code = run(method, state->target, state->request);
        } catch (const CommandError& e) {
            std::cerr << "xtapctl dtcp: " << e.what() << "\n";
            exit_code = e.exit;
        } catch (const std::exception& e) {
            std::cerr << "xtapctl dtcp: " << e.what() << "\n";
            exit_code = kExitFailure;
        }
    });
}

}  // namespace

void registerDtcpCommands(CLI::App& app, int& exit_code) {
    CLI::App* dtcp = app.add_subcommand(
        "dtcp", "task xtap (or a Juniper router) over DTCP in SSH, as a mediation device");
    dtcp->require_subcommand(1);
    for (Method method :
         {Method::Add, Method::Delete, Method::Refresh, Method::List, Method::Noop}) {
        addMethodCommand(*dtcp, method, exit_code);
    }
}

}  // namespace xtap::ctl
