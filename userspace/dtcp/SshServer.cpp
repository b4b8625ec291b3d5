#include "dtcp/SshServer.h"

#include <arpa/inet.h>
#include <crypt.h>
#include <fmt/format.h>
#include <libssh/callbacks.h>
#include <libssh/server.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/crypto.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <charconv>
#include <cstdio>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <stdexcept>
#include <system_error>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/UniqueFd.h"

namespace xtap::dtcp {

namespace {

struct SshBindDeleter {
    void operator()(ssh_bind bind) const { ssh_bind_free(bind); }
};
using UniqueSshBind = std::unique_ptr<std::remove_pointer_t<ssh_bind>, SshBindDeleter>;

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

constexpr int kPollIntervalMs = 200;
constexpr size_t kWriteChunkBytes = 32 * 1024;
constexpr size_t kMaxLockoutEntries = 10'000;
// Above connection_limit's maximum (250): a burst of attempts overflowing the
// accept queue would leave some half-open, neither admitted nor refused, until
// the client gives up (seen with 200 at once).
constexpr int kListenBacklog = 1024;
// Flushing the close of a session that is going away waits at most this long.
constexpr int kTeardownFlushRounds = 5;
constexpr unsigned kMaxConsecutivePollErrors = 50;
// libssh reads at most 4 KiB per poll round, about ten pipelined requests.
// The socket's backlog is taken in up to this many more rounds (128 KiB)
// before the replies go out, so one durability barrier covers the burst.
constexpr int kMaxDrainRounds = 32;

// Peer-supplied text (user names, subsystem names) as it may appear in a log.
std::string printable(std::string_view text, size_t max_length = 64) {
    std::string out;
    for (char c : text.substr(0, max_length)) {
        const auto u = static_cast<unsigned char>(c);
        if (u >= 0x20 && u < 0x7f && c != '\\') {
            out += c;
        } else {
            out += fmt::format("\\x{:02x}", u);
        }
    }
    if (text.size() > max_length) out += "...";
    return out;
}

std::string sshError(void* handle) {
    const char* text = ssh_get_error(handle);
    return text && *text ? text : "unknown error";
}

struct PeerAddress {
    std::string address;
    uint16_t port = 0;
    std::string text() const { return formatEndpoint(address, port); }
};

PeerAddress peerFrom(const sockaddr_storage& storage) {
    char text[INET6_ADDRSTRLEN] = {};
    PeerAddress peer;
    if (storage.ss_family == AF_INET) {
        const auto& in = reinterpret_cast<const sockaddr_in&>(storage);
        ::inet_ntop(AF_INET, &in.sin_addr, text, sizeof text);
        peer.port = ntohs(in.sin_port);
    } else if (storage.ss_family == AF_INET6) {
        const auto& in6 = reinterpret_cast<const sockaddr_in6&>(storage);
        ::inet_ntop(AF_INET6, &in6.sin6_addr, text, sizeof text);
        peer.port = ntohs(in6.sin6_port);
    }
    peer.address = text;
    return peer;
}

// --- users ------------------------------------------------------------------

struct UserRecord {
    std::string name;
    std::vector<UniqueSshKey> keys;
    std::string password_hash;
    bool flow_tap_operation = false;
};
using UserTable = std::unordered_map<std::string, UserRecord>;

std::vector<std::string_view> splitWhitespace(std::string_view line) {
    std::vector<std::string_view> words;
    size_t i = 0;
    while (i < line.size()) {
        while (i < line.size() && (line[i] == ' ' || line[i] == '\t')) ++i;
        const size_t start = i;
        while (i < line.size() && line[i] != ' ' && line[i] != '\t') ++i;
        if (i > start) words.push_back(line.substr(start, i - start));
    }
    return words;
}

// One authorized_keys line; nullptr for an empty or comment line.
UniqueSshKey parseAuthorizedKey(std::string_view line, const std::string& user) {
    while (!line.empty() && (line.back() == '\r' || line.back() == '\n')) line.remove_suffix(1);
    const auto words = splitWhitespace(line);
    if (words.empty() || words[0].front() == '#') return nullptr;
    const std::string type_name(words[0]);
    const ssh_keytypes_e type = ssh_key_type_from_name(type_name.c_str());
    // Options (from=, command=, ...) would restrict the key; xtap cannot honour
    // them, so a line with options is refused rather than silently widened.
    if (type == SSH_KEYTYPE_UNKNOWN) {
        throw std::invalid_argument(fmt::format(
            "user '{}': authorized key '{}...' does not start with a key type (options are not "
            "supported)",
            user, printable(words[0], 24)));
    }
    if (type_name.find("-cert-") != std::string::npos) {
        throw std::invalid_argument(
            fmt::format("user '{}': certificates are not supported as authorized keys", user));
    }
    if (words.size() < 2) {
        throw std::invalid_argument(fmt::format("user '{}': authorized key without data", user));
    }
    const std::string base64(words[1]);
    ssh_key key = nullptr;
    if (ssh_pki_import_pubkey_base64(base64.c_str(), type, &key) != SSH_OK || !key) {
        throw std::invalid_argument(
            fmt::format("user '{}': authorized key of type {} does not decode", user, type_name));
    }
    return UniqueSshKey(key);
}

bool isSupportedHash(std::string_view hash) {
    return hash.starts_with("$y$") || hash.starts_with("$6$");
}

std::shared_ptr<const UserTable> buildUserTable(const std::vector<SshUser>& users) {
    auto table = std::make_shared<UserTable>();
    for (const SshUser& user : users) {
        if (user.name.empty()) throw std::invalid_argument("a user without a name");
        if (table->contains(user.name)) {
            throw std::invalid_argument(fmt::format("user '{}' is listed twice", user.name));
        }
        if (!user.password_hash.empty() && !isSupportedHash(user.password_hash)) {
            throw std::invalid_argument(fmt::format(
                "user '{}': password hash must be yescrypt ($y$) or SHA-512 ($6$)", user.name));
        }
        UserRecord record;
        record.name = user.name;
        record.password_hash = user.password_hash;
        record.flow_tap_operation = user.flow_tap_operation;
        for (const std::string& line : user.authorized_keys) {
            if (UniqueSshKey key = parseAuthorizedKey(line, user.name)) {
                record.keys.push_back(std::move(key));
            }
        }
        table->emplace(user.name, std::move(record));
    }
    return table;
}

// crypt_r(3) of `phrase` with the salt and method of `setting`.
std::optional<std::string> cryptHash(const char* phrase, const std::string& setting) {
    auto data = std::make_unique<crypt_data>();  // large: not on the stack
    const char* out = crypt_r(phrase, setting.c_str(), data.get());
    std::optional<std::string> result;
    if (out && out[0] != '*') result = std::string(out);
    OPENSSL_cleanse(data.get(), sizeof(crypt_data));
    return result;
}

bool passwordMatches(const char* password, const std::string& hash) {
    const auto computed = cryptHash(password, hash);
    if (!computed || computed->size() != hash.size()) return false;
    return CRYPTO_memcmp(computed->data(), hash.data(), hash.size()) == 0;
}

// A hash nobody's password matches, so that an unknown user costs the same
// yescrypt round as a known one.
std::string makeDummyHash() {
    char setting[CRYPT_GENSALT_OUTPUT_SIZE] = {};
    if (crypt_gensalt_rn("$y$", 0, nullptr, 0, setting, sizeof setting)) {
        if (auto hash = cryptHash("xtap-unused-password", setting)) return *hash;
    }
    return "$6$xtapdummysalt$";
}

// --- wrong-password lockout -------------------------------------------------

class PasswordLockout {
  public:
    PasswordLockout(unsigned failures, std::chrono::seconds window, std::chrono::seconds duration)
        : failures_(failures), window_(window), duration_(duration) {}

    bool isLocked(const std::string& key, Clock::time_point now) {
        std::lock_guard lock(mutex_);
        const auto it = entries_.find(key);
        return it != entries_.end() && it->second.locked_until > now;
    }

    // Records a wrong password; true when it starts a lockout.
    bool recordFailure(const std::string& key, Clock::time_point now) {
        if (failures_ == 0) return false;
        std::lock_guard lock(mutex_);
        if (entries_.size() >= kMaxLockoutEntries) prune(now);
        Entry& entry = entries_[key];
        if (entry.failures == 0 || now - entry.window_start > window_) {
            entry.failures = 0;
            entry.window_start = now;
        }
        if (++entry.failures < failures_) return false;
        entry.failures = 0;
        entry.locked_until = now + duration_;
        return true;
    }

    void recordSuccess(const std::string& key) {
        std::lock_guard lock(mutex_);
        entries_.erase(key);
    }

  private:
    struct Entry {
        unsigned failures = 0;
        Clock::time_point window_start;
        Clock::time_point locked_until;
    };

    void prune(Clock::time_point now) {
        std::erase_if(entries_, [&](const auto& item) {
            const Entry& e = item.second;
            return e.locked_until <= now && now - e.window_start > window_;
        });
        // Still full (a flood of fresh names): forget the oldest half-truths.
        if (entries_.size() >= kMaxLockoutEntries) entries_.clear();
    }

    const unsigned failures_;
    const std::chrono::seconds window_;
    const std::chrono::seconds duration_;
    std::mutex mutex_;
    std::unordered_map<std::string, Entry> entries_;
};

// --- cross-thread state of one session ----------------------------------------

struct SessionCommand {
    enum class Kind : uint8_t { Notify, CloseChannel, CloseSession };
    Kind kind = Kind::Notify;
    uint64_t channel_id = 0;
    std::string bytes;
};

struct SessionShared {
    SessionShared(uint64_t session_id, UniqueFd wake) : id(session_id), wake_fd(std::move(wake)) {}

    void wake() const {
        const uint64_t one = 1;
        [[maybe_unused]] const ssize_t n = ::write(wake_fd.get(), &one, sizeof one);
    }

    const uint64_t id;
    const UniqueFd wake_fd;  // eventfd polled by the session's ssh_event
    std::mutex mutex;
    std::string user;          // set once authenticated
    size_t dtcp_channels = 0;  // DTCP channels open now
    std::deque<SessionCommand> commands;
    size_t queued_bytes = 0;
    std::atomic<bool> finished{false};
};

struct AtomicCounters {
    std::atomic<uint64_t> connections_accepted{0};
    std::atomic<uint64_t> connections_refused_limit{0};
    std::atomic<uint64_t> connections_refused_rate{0};
    std::atomic<uint64_t> connections_refused_other{0};
    std::atomic<uint64_t> key_exchange_failures{0};
    std::atomic<uint64_t> auth_timeouts{0};
    std::atomic<uint64_t> auth_attempts_exceeded{0};
    std::atomic<uint64_t> auth_failures_publickey{0};
    std::atomic<uint64_t> auth_failures_password{0};
    std::atomic<uint64_t> auth_failures_permission{0};
    std::atomic<uint64_t> auth_locked_out{0};
    std::atomic<uint64_t> sessions_authenticated{0};
    std::atomic<uint64_t> sessions_open{0};
    std::atomic<uint64_t> channels_open{0};
    std::atomic<uint64_t> requests_refused{0};
    std::atomic<uint64_t> messages_received{0};
    std::atomic<uint64_t> messages_too_large{0};
    std::atomic<uint64_t> slow_peer_disconnects{0};
    std::atomic<uint64_t> notifications_queued{0};
    std::atomic<uint64_t> notifications_dropped{0};
};

enum class AuthVerdict : uint8_t { Accepted, Rejected, NoPermission, LockedOut };

// Logs a refusal reason at most once per second, with how many were not logged.
class RefusalLogLimiter {
  public:
    // The number of refusals folded into this line, or 0: do not log now.
    uint64_t shouldLog(Clock::time_point now) {
        ++pending_;
        if (now - last_ < std::chrono::seconds(1)) return 0;
        last_ = now;
        return std::exchange(pending_, 0);
    }

  private:
    Clock::time_point last_{};
    uint64_t pending_ = 0;
};

}  // namespace

// --- free functions -------------------------------------------------------------

void ensureLibsshInitialized() {
    static std::once_flag once;
    std::call_once(once, [] { ssh_init(); });
}

std::string keyFingerprintSha256(ssh_key key) {
    unsigned char* hash = nullptr;
    size_t length = 0;
    if (!key || ssh_get_publickey_hash(key, SSH_PUBLICKEY_HASH_SHA256, &hash, &length) != 0) {
        return {};
    }
    char* text = ssh_get_fingerprint_hash(SSH_PUBLICKEY_HASH_SHA256, hash, length);
    ssh_clean_pubkey_hash(&hash);
    if (!text) return {};
    std::string fingerprint(text);
    ssh_string_free_char(text);
    return fingerprint;
}

std::optional<ListenAddress> parseListenAddress(std::string_view text) {
    ListenAddress result;
    std::string_view port_text;
    if (text.starts_with('[')) {
        const size_t close = text.find(']');
        if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
            return std::nullopt;
        }
        result.address = std::string(text.substr(1, close - 1));
        result.ipv6 = true;
        port_text = text.substr(close + 2);
    } else {
        const size_t colon = text.rfind(':');
        if (colon == std::string_view::npos) return std::nullopt;
        result.address = std::string(text.substr(0, colon));
        port_text = text.substr(colon + 1);
    }
    unsigned port = 0;
    const auto [end, error] =
        std::from_chars(port_text.data(), port_text.data() + port_text.size(), port);
    if (port_text.empty() || error != std::errc() || end != port_text.data() + port_text.size() ||
        port > 65535) {
        return std::nullopt;
    }
    result.port = static_cast<uint16_t>(port);
    unsigned char buffer[sizeof(in6_addr)];
    if (::inet_pton(result.ipv6 ? AF_INET6 : AF_INET, result.address.c_str(), buffer) != 1) {
        return std::nullopt;
    }
    return result;
}

std::string formatEndpoint(std::string_view address, uint16_t port) {
    if (address.find(':') != std::string_view::npos) return fmt::format("[{}]:{}", address, port);
    return fmt::format("{}:{}", address, port);
}

std::string_view describe(SshLogLevel level) {
    switch (level) {
        case SshLogLevel::Debug:
            return "debug";
        case SshLogLevel::Info:
            return "info";
        case SshLogLevel::Warning:
            return "warning";
        case SshLogLevel::Error:
            return "error";
    }
    return "?";
}

std::string_view describe(ChannelCloseReason reason) {
    switch (reason) {
        case ChannelCloseReason::PeerClosed:
            return "closed by the peer";
        case ChannelCloseReason::MessageTooLarge:
            return "message too large";
        case ChannelCloseReason::SlowPeer:
            return "peer does not read";
        case ChannelCloseReason::EndpointRequested:
            return "closed by the endpoint";
        case ChannelCloseReason::EndpointFailed:
            return "endpoint failed";
        case ChannelCloseReason::ServerStopping:
            return "server stopping";
        case ChannelCloseReason::ConnectionLost:
            return "connection lost";
    }
    return "?";
}

// --- the server -------------------------------------------------------------------

struct SshServer::Impl {
    Impl(SshServerConfig cfg, DtcpEndpoint& ep);

    void log(SshLogLevel level, const std::string& line) const {
        if (config.log) {
            config.log(level, line);
        } else {
            std::fprintf(stderr, "xtap-ssh %s: %s\n", std::string(describe(level)).c_str(),
                         line.c_str());
        }
    }

    std::shared_ptr<const UserTable> userTable() const {
        std::lock_guard lock(users_mutex);
        return users;
    }

    AuthVerdict checkPublicKey(const std::string& user, ssh_key key) const;
    AuthVerdict checkPassword(const std::string& user, const char* password,
                              const std::string& peer_address);
    void failureDelay() const;

    void bindListeners();
    void acceptLoop();
    void admit(UniqueFd fd, const sockaddr_storage& peer_storage);
    void reapFinishedSessions();
    void runSession(std::shared_ptr<SessionShared> shared, UniqueSshSession session,
                    PeerAddress peer, Clock::time_point accepted_at);
    std::shared_ptr<SessionShared> findSession(uint64_t id);
    bool post(uint64_t session_id, SessionCommand command);

    SshServerConfig config;
    DtcpEndpoint& endpoint;
    UniqueSshBind bind_handle;
    std::string host_key_fingerprint;
    std::vector<ListenAddress> listen_addresses;

    mutable std::mutex users_mutex;
    std::shared_ptr<const UserTable> users;
    std::string dummy_hash;
    PasswordLockout lockout;

    mutable AtomicCounters counters;
    std::atomic<bool> stopping{false};
    UniqueFd stop_fd;  // eventfd: readable once stop() began

    std::mutex lifecycle_mutex;
    bool started = false;
    bool stopped = false;
    std::vector<UniqueFd> listeners;
    std::vector<std::string> bound;
    std::thread accept_thread;

    std::mutex sessions_mutex;
    std::map<uint64_t, std::shared_ptr<SessionShared>> sessions;
    // Touched by the accept thread, then by stop() after joining it.
    std::map<uint64_t, std::pair<std::thread, std::shared_ptr<SessionShared>>> session_threads;
    std::atomic<uint64_t> next_session_id{1};
    std::atomic<uint64_t> next_channel_id{1};
    std::atomic<unsigned> live_sessions{0};

    // Accept thread only.
    std::deque<Clock::time_point> admitted_times;
    RefusalLogLimiter limit_log;
    RefusalLogLimiter rate_log;
};

SshServer::Impl::Impl(SshServerConfig cfg, DtcpEndpoint& ep)
    : config(std::move(cfg)),
      endpoint(ep),
      lockout(config.password_lockout_failures, config.password_lockout_window,
              config.password_lockout_duration) {
    ensureLibsshInitialized();
    if (config.listen.empty()) throw std::invalid_argument("no listen address");
    if (config.connection_limit == 0) throw std::invalid_argument("connection_limit must be >= 1");
    if (config.rate_limit == 0) throw std::invalid_argument("rate_limit must be >= 1");
    if (config.max_auth_attempts == 0)
        throw std::invalid_argument("max_auth_attempts must be >= 1");
    if (config.max_channels_per_session == 0) {
        throw std::invalid_argument("max_channels_per_session must be >= 1");
    }
    if (config.subsystem.empty()) throw std::invalid_argument("no subsystem name");
    if (config.max_message_bytes == 0 || config.max_outbound_bytes == 0) {
        throw std::invalid_argument("message and buffer limits must be > 0");
    }
    for (const std::string& text : config.listen) {
        auto address = parseListenAddress(text);
        if (!address) {
            throw std::invalid_argument("listen address '" + text +
                                        "' is not addr:port or [addr]:port");
        }
        listen_addresses.push_back(std::move(*address));
    }

    ssh_key raw_key = nullptr;
    if (ssh_pki_import_privkey_file(config.host_key_file.c_str(), nullptr, nullptr, nullptr,
                                    &raw_key) != SSH_OK ||
        !raw_key) {
        throw std::invalid_argument("cannot read the host key '" + config.host_key_file + "'");
    }
    UniqueSshKey host_key(raw_key);
    if (ssh_key_type(host_key.get()) != SSH_KEYTYPE_ED25519) {
        throw std::invalid_argument("host key '" + config.host_key_file + "' is not ed25519");
    }
    host_key_fingerprint = keyFingerprintSha256(host_key.get());

    bind_handle.reset(ssh_bind_new());
    if (!bind_handle) throw std::runtime_error("ssh_bind_new failed");
    const bool process_config = false;  // never read /etc/ssh/libssh_server_config
    if (ssh_bind_options_set(bind_handle.get(), SSH_BIND_OPTIONS_PROCESS_CONFIG, &process_config) !=
        0) {
        throw std::runtime_error("cannot disable libssh's server configuration file");
    }
    // The bind takes ownership of an imported key.
    if (ssh_bind_options_set(bind_handle.get(), SSH_BIND_OPTIONS_IMPORT_KEY, host_key.get()) != 0) {
        throw std::invalid_argument("libssh refused the host key: " + sshError(bind_handle.get()));
    }
    host_key.release();

    users = buildUserTable(config.users);
    dummy_hash = makeDummyHash();

    stop_fd.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!stop_fd) throw std::system_error(errno, std::generic_category(), "eventfd");
}

AuthVerdict SshServer::Impl::checkPublicKey(const std::string& user, ssh_key key) const {
    const auto table = userTable();
    const auto it = table->find(user);
    if (it == table->end()) return AuthVerdict::Rejected;
    const bool listed = std::any_of(it->second.keys.begin(), it->second.keys.end(), [&](auto& k) {
        return ssh_key_cmp(key, k.get(), SSH_KEY_CMP_PUBLIC) == 0;
    });
    if (!listed) return AuthVerdict::Rejected;
    return it->second.flow_tap_operation ? AuthVerdict::Accepted : AuthVerdict::NoPermission;
}

void SshServer::Impl::failureDelay() const {
    // Wait on the stop eventfd so that stop() is not held up by the delay.
    pollfd pfd{stop_fd.get(), POLLIN, 0};
    ::poll(&pfd, 1, static_cast<int>(config.password_failure_delay.count()));
}

AuthVerdict SshServer::Impl::checkPassword(const std::string& user, const char* password,
                                           const std::string& peer_address) {
    const std::string lockout_key = user.substr(0, 256) + '\n' + peer_address;
    if (lockout.isLocked(lockout_key, Clock::now())) {
        failureDelay();
        return AuthVerdict::LockedOut;
    }
    const auto table = userTable();
    const auto it = table->find(user);
    const bool has_hash = it != table->end() && !it->second.password_hash.empty();
    const bool matches =
        passwordMatches(password, has_hash ? it->second.password_hash : dummy_hash);
    if (has_hash && matches) {
        lockout.recordSuccess(lockout_key);
        return it->second.flow_tap_operation ? AuthVerdict::Accepted : AuthVerdict::NoPermission;
    }
    if (lockout.recordFailure(lockout_key, Clock::now())) {
        log(SshLogLevel::Warning,
            fmt::format("password logins of user '{}' from {} locked for {} s after {} failures",
                        printable(user), peer_address, config.password_lockout_duration.count(),
                        config.password_lockout_failures));
    }
    failureDelay();
    return AuthVerdict::Rejected;
}

std::shared_ptr<SessionShared> SshServer::Impl::findSession(uint64_t id) {
    std::lock_guard lock(sessions_mutex);
    const auto it = sessions.find(id);
    return it == sessions.end() ? nullptr : it->second;
}

bool SshServer::Impl::post(uint64_t session_id, SessionCommand command) {
    const auto shared = findSession(session_id);
    if (!shared) return false;
    {
        std::lock_guard lock(shared->mutex);
        shared->commands.push_back(std::move(command));
    }
    shared->wake();
    return true;
}

// --- one session ------------------------------------------------------------------

namespace {

enum class ChannelPhase : uint8_t {
    AwaitingSubsystem,  // opened; only the DTCP subsystem may follow
    Dtcp,               // the subsystem runs: messages flow
    Closing,            // send what is queued, then close
    Closed,             // our side is done; freed once the peer's close arrived
};

class Connection;

struct Channel {
    Connection* owner = nullptr;
    uint64_t id = 0;
    UniqueSshChannel handle;
    ssh_channel_callbacks_struct callbacks{};
    ChannelPhase phase = ChannelPhase::AwaitingSubsystem;
    bool endpoint_opened = false;  // onOpen was called: onClose is owed
    bool peer_closed = false;
    ChannelCloseReason close_reason = ChannelCloseReason::PeerClosed;
    int exit_status = 0;
    SessionInfo info;
    Framer framer;
    std::string outbound;
    size_t sent = 0;  // bytes of `outbound` already written
    Clock::time_point last_progress;

    explicit Channel(size_t max_message_bytes) : framer(max_message_bytes) {}
    size_t pending() const { return outbound.size() - sent; }
};

class Connection {
  public:
    Connection(SshServer::Impl& server, std::shared_ptr<SessionShared> shared,
               UniqueSshSession session, PeerAddress peer, Clock::time_point accepted_at)
        : server_(server),
          config_(server.config),
          counters_(server.counters),
          shared_(std::move(shared)),
          session_(std::move(session)),
          peer_(std::move(peer)),
          auth_deadline_(accepted_at + config_.auth_timeout) {}

    void run();

  private:
    // libssh callbacks: userdata is the Connection or the Channel.
    static int onPassword(ssh_session, const char* user, const char* password, void* userdata);
    static int onPublicKey(ssh_session, const char* user, ssh_key_struct* key, char state,
                           void* userdata);
    static ssh_channel onChannelOpen(ssh_session, void* userdata);
    static int onWake(socket_t fd, int revents, void* userdata);
    static int onData(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr,
                      void* userdata);
    static void onEof(ssh_session, ssh_channel, void* userdata);
    static void onClose(ssh_session, ssh_channel, void* userdata);
    static int onSubsystem(ssh_session, ssh_channel, const char* subsystem, void* userdata);
    static int onPty(ssh_session, ssh_channel, const char*, int, int, int, int, void* userdata);
    static int onShell(ssh_session, ssh_channel, void* userdata);
    static int onExec(ssh_session, ssh_channel, const char*, void* userdata);
    static int onEnv(ssh_session, ssh_channel, const char*, const char*, void* userdata);

    void log(SshLogLevel level, const std::string& text) const {
        server_.log(level,
                    fmt::format("session {} {}{}: {}", shared_->id, peer_.text(),
                                user_.empty() ? "" : " user '" + printable(user_) + "'", text));
    }

    bool setUp();
    void loop();
    void teardown();
    bool advanceKeyExchange();
    bool connectionClosed() const;
    void end(ChannelCloseReason reason);

    int authenticatePassword(const std::string& user, const char* password);
    int authenticatePublicKey(const std::string& user, ssh_key key, char state);
    void authFailed(std::string_view method, const std::string& user, std::string_view why);
    void markAuthenticated(const std::string& user, std::string method, std::string fingerprint);

    ssh_channel openChannel();
    int acceptSubsystem(Channel& channel, const char* name);
    int refuseRequest(Channel& channel, std::string_view what);
    void receive(Channel& channel, std::string_view bytes);
    bool queueOutbound(Channel& channel, std::string_view bytes);
    bool queueOutbound(Channel& channel, std::string&& bytes);
    void beginClose(Channel& channel, ChannelCloseReason reason, int exit_status);
    void finish(Channel& channel);
    void flush(Channel& channel);
    bool socketWritable() const;
    bool socketReadable() const;
    void drainSocket();
    void takeCommands();
    void serviceChannels();

    SshServer::Impl& server_;
    const SshServerConfig& config_;
    AtomicCounters& counters_;
    std::shared_ptr<SessionShared> shared_;
    UniqueSshSession session_;
    UniqueSshEvent event_;
    ssh_server_callbacks_struct server_callbacks_{};
    PeerAddress peer_;
    Clock::time_point auth_deadline_;

    bool wake_fd_added_ = false;
    bool session_in_event_ = false;
    bool key_exchange_done_ = false;
    bool authenticated_ = false;
    unsigned failed_attempts_ = 0;
    unsigned poll_errors_ = 0;
    bool replies_unsynced_ = false;  // replies queued since the endpoint last made them durable
    std::string user_;
    std::string auth_method_;
    std::string key_fingerprint_;
    std::optional<ChannelCloseReason> end_reason_;
    // Stable addresses: libssh holds pointers to each Channel's callbacks.
    std::vector<std::unique_ptr<Channel>> channels_;
};

void Connection::run() {
    if (setUp()) loop();
    teardown();
}

bool Connection::setUp() {
    ssh_session s = session_.get();
    // Every callback is in place before the key exchange starts.
    server_callbacks_.userdata = this;
    server_callbacks_.auth_password_function = &Connection::onPassword;
    server_callbacks_.auth_pubkey_function = &Connection::onPublicKey;
    server_callbacks_.channel_open_request_session_function = &Connection::onChannelOpen;
    ssh_callbacks_init(&server_callbacks_);
    if (ssh_set_server_callbacks(s, &server_callbacks_) != SSH_OK) {
        log(SshLogLevel::Error, "cannot set the server callbacks");
        return false;
    }
    ssh_set_auth_methods(s, SSH_AUTH_METHOD_PUBLICKEY | SSH_AUTH_METHOD_PASSWORD);
    ssh_set_blocking(s, 0);  // the loop below waits, so that stop() is never held up

    event_.reset(ssh_event_new());
    if (!event_) {
        log(SshLogLevel::Error, "ssh_event_new failed");
        return false;
    }
    if (ssh_event_add_fd(event_.get(), shared_->wake_fd.get(), POLLIN, &Connection::onWake, this) !=
        SSH_OK) {
        log(SshLogLevel::Error, "cannot poll the wake-up eventfd");
        return false;
    }
    wake_fd_added_ = true;
    return true;
}

bool Connection::advanceKeyExchange() {
    const int rc = ssh_handle_key_exchange(session_.get());
    if (!session_in_event_ && rc != SSH_ERROR) {
        // libssh creates the session's poll context in the first call above.
        if (ssh_event_add_session(event_.get(), session_.get()) != SSH_OK) {
            log(SshLogLevel::Error, "cannot add the session to its event");
            end(ChannelCloseReason::ConnectionLost);
            return false;
        }
        session_in_event_ = true;
    }
    if (rc == SSH_OK) {
        key_exchange_done_ = true;
        log(SshLogLevel::Debug, "key exchange done");
        return true;
    }
    if (rc == SSH_AGAIN) return true;
    ++counters_.key_exchange_failures;
    log(SshLogLevel::Info, "key exchange failed: " + sshError(session_.get()));
    end(ChannelCloseReason::ConnectionLost);
    return false;
}

bool Connection::connectionClosed() const {
    const int status = ssh_get_status(session_.get());
    if (status & (SSH_CLOSED | SSH_CLOSED_ERROR)) return true;
    return key_exchange_done_ && !ssh_is_connected(session_.get());
}

void Connection::end(ChannelCloseReason reason) {
    if (!end_reason_) end_reason_ = reason;
}

void Connection::loop() {
    while (!end_reason_) {
        if (server_.stopping.load()) {
            end(ChannelCloseReason::ServerStopping);
            break;
        }
        if (!key_exchange_done_ && !advanceKeyExchange()) break;
        if (!authenticated_) {
            if (Clock::now() >= auth_deadline_) {
                ++counters_.auth_timeouts;
                log(SshLogLevel::Info, "not authenticated in time: closed");
                end(ChannelCloseReason::ConnectionLost);
                break;
            }
            if (failed_attempts_ >= config_.max_auth_attempts) {
                ++counters_.auth_attempts_exceeded;
                log(SshLogLevel::Info,
                    fmt::format("{} failed authentication attempts: closed", failed_attempts_));
                end(ChannelCloseReason::ConnectionLost);
                break;
            }
        }
        takeCommands();
        serviceChannels();
        if (end_reason_) break;
        if (session_in_event_ && connectionClosed()) {
            end(ChannelCloseReason::PeerClosed);
            break;
        }
        int timeout_ms = kPollIntervalMs;
        if (!authenticated_) {
            const auto left =
                std::chrono::duration_cast<milliseconds>(auth_deadline_ - Clock::now());
            timeout_ms =
                static_cast<int>(std::clamp<int64_t>(left.count() + 1, 0, kPollIntervalMs));
        }
        // A poll that keeps failing on a socket libssh still calls open would spin.
        if (ssh_event_dopoll(event_.get(), timeout_ms) == SSH_ERROR) {
            if (++poll_errors_ >= kMaxConsecutivePollErrors) {
                log(SshLogLevel::Warning, "polling keeps failing: closed");
                end(ChannelCloseReason::ConnectionLost);
            }
        } else {
            poll_errors_ = 0;
            if (authenticated_) drainSocket();
        }
    }
}

// Pipelined requests arrive faster than libssh reads them: take what is already
// in the socket now. The replies to all of them then wait for one barrier
// (onMessagesHandled: the audit log and the journal on disk), not one per read.
void Connection::drainSocket() {
    for (int round = 0; round < kMaxDrainRounds && !end_reason_ && socketReadable(); ++round) {
        if (ssh_event_dopoll(event_.get(), 0) == SSH_ERROR) return;
    }
}

void Connection::teardown() {
    const ChannelCloseReason reason = end_reason_.value_or(ChannelCloseReason::ConnectionLost);
    const bool peer_gone =
        reason == ChannelCloseReason::ConnectionLost || reason == ChannelCloseReason::PeerClosed ||
        reason == ChannelCloseReason::SlowPeer || !session_in_event_ || connectionClosed();
    for (auto& channel : channels_) {
        if (channel->phase == ChannelPhase::Closed) continue;
        channel->close_reason = reason;
        channel->exit_status = 1;
        if (peer_gone) channel->peer_closed = true;  // nothing more goes out
        finish(*channel);
    }
    if (!peer_gone && event_) {
        // Let the closes and the disconnect leave before the socket goes.
        for (int round = 0; round < kTeardownFlushRounds; ++round) {
            if (!(ssh_get_status(session_.get()) & SSH_WRITE_PENDING)) break;
            ssh_event_dopoll(event_.get(), 100);
        }
    }
    for (auto& channel : channels_) {
        ssh_remove_channel_callbacks(channel->handle.get(), &channel->callbacks);
    }
    channels_.clear();  // before ssh_free, which would free them too
    if (event_) {
        if (session_in_event_) ssh_event_remove_session(event_.get(), session_.get());
        if (wake_fd_added_) ssh_event_remove_fd(event_.get(), shared_->wake_fd.get());
        event_.reset();
    }
    ssh_disconnect(session_.get());
    session_.reset();
    log(authenticated_ ? SshLogLevel::Info : SshLogLevel::Debug,
        fmt::format("session ended: {}", describe(reason)));
}

// --- authentication ---------------------------------------------------------------

int Connection::onPassword(ssh_session, const char* user, const char* password, void* userdata) {
    return static_cast<Connection*>(userdata)->authenticatePassword(user ? user : "",
                                                                    password ? password : "");
}

int Connection::onPublicKey(ssh_session, const char* user, ssh_key_struct* key, char state,
                            void* userdata) {
    return static_cast<Connection*>(userdata)->authenticatePublicKey(user ? user : "", key, state);
}

void Connection::authFailed(std::string_view method, const std::string& user,
                            std::string_view why) {
    ++failed_attempts_;
    log(SshLogLevel::Info,
        fmt::format("{} authentication of user '{}' failed: {}", method, printable(user), why));
}

int Connection::authenticatePassword(const std::string& user, const char* password) {
    if (authenticated_) return SSH_AUTH_DENIED;
    switch (server_.checkPassword(user, password, peer_.address)) {
        case AuthVerdict::Accepted:
            markAuthenticated(user, "password", "");
            return SSH_AUTH_SUCCESS;
        case AuthVerdict::NoPermission:
            ++counters_.auth_failures_permission;
            authFailed("password", user, "no flow-tap-operation permission");
            return SSH_AUTH_DENIED;
        case AuthVerdict::LockedOut:
            ++counters_.auth_locked_out;
            authFailed("password", user, "locked out after repeated failures");
            return SSH_AUTH_DENIED;
        case AuthVerdict::Rejected:
            break;
    }
    ++counters_.auth_failures_password;
    authFailed("password", user, "unknown user or wrong password");
    return SSH_AUTH_DENIED;
}

int Connection::authenticatePublicKey(const std::string& user, ssh_key key, char state) {
    if (authenticated_) return SSH_AUTH_DENIED;
    const AuthVerdict verdict = server_.checkPublicKey(user, key);
    if (verdict == AuthVerdict::Accepted) {
        // First a probe (state NONE: would this key do?), then the signed
        // request that libssh has verified (state VALID).
        if (state == SSH_PUBLICKEY_STATE_NONE) return SSH_AUTH_SUCCESS;
        if (state == SSH_PUBLICKEY_STATE_VALID) {
            markAuthenticated(user, "publickey", keyFingerprintSha256(key));
            return SSH_AUTH_SUCCESS;
        }
    }
    const std::string fingerprint = keyFingerprintSha256(key);
    if (verdict == AuthVerdict::NoPermission) {
        ++counters_.auth_failures_permission;
        authFailed("publickey", user, "no flow-tap-operation permission");
    } else if (verdict == AuthVerdict::Accepted) {
        ++counters_.auth_failures_publickey;
        authFailed("publickey", user, "bad signature with key " + fingerprint);
    } else {
        ++counters_.auth_failures_publickey;
        authFailed("publickey", user, "unknown user or key " + fingerprint);
    }
    return SSH_AUTH_DENIED;
}

void Connection::markAuthenticated(const std::string& user, std::string method,
                                   std::string fingerprint) {
    authenticated_ = true;
    user_ = user;
    auth_method_ = std::move(method);
    key_fingerprint_ = std::move(fingerprint);
    {
        std::lock_guard lock(shared_->mutex);
        shared_->user = user;
    }
    ++counters_.sessions_authenticated;
    log(SshLogLevel::Info, fmt::format("authenticated by {}{}", auth_method_,
                                       key_fingerprint_.empty() ? "" : " " + key_fingerprint_));
}

// --- channels ---------------------------------------------------------------------

ssh_channel Connection::onChannelOpen(ssh_session, void* userdata) {
    return static_cast<Connection*>(userdata)->openChannel();
}

ssh_channel Connection::openChannel() {
    if (!authenticated_ || end_reason_) return nullptr;
    if (channels_.size() >= config_.max_channels_per_session) {
        ++counters_.requests_refused;
        log(SshLogLevel::Info, "refused a channel: too many channels in this session");
        return nullptr;
    }
    ssh_channel raw = ssh_channel_new(session_.get());
    if (!raw) return nullptr;
    auto channel = std::make_unique<Channel>(config_.max_message_bytes);
    channel->owner = this;
    channel->id = server_.next_channel_id++;
    channel->handle.reset(raw);
    // Set at once: a subsystem request may follow in the same poll round.
    ssh_channel_callbacks_struct& cb = channel->callbacks;
    cb.userdata = channel.get();
    cb.channel_data_function = &Connection::onData;
    cb.channel_eof_function = &Connection::onEof;
    cb.channel_close_function = &Connection::onClose;
    cb.channel_subsystem_request_function = &Connection::onSubsystem;
    cb.channel_pty_request_function = &Connection::onPty;
    cb.channel_shell_request_function = &Connection::onShell;
    cb.channel_exec_request_function = &Connection::onExec;
    cb.channel_env_request_function = &Connection::onEnv;
    // No x11 or auth-agent callbacks: libssh would answer those with success;
    // without one it refuses them.
    ssh_callbacks_init(&cb);
    if (ssh_set_channel_callbacks(raw, &cb) != SSH_OK) {
        log(SshLogLevel::Error, "cannot set channel callbacks");
        return nullptr;  // `channel` frees the handle
    }
    channel->info.session_id = shared_->id;
    channel->info.channel_id = channel->id;
    channel->info.user = user_;
    channel->info.auth_method = auth_method_;
    channel->info.key_fingerprint = key_fingerprint_;
    channel->info.peer_address = peer_.address;
    channel->info.peer_port = peer_.port;
    channels_.push_back(std::move(channel));
    return raw;
}

int Connection::onSubsystem(ssh_session, ssh_channel, const char* subsystem, void* userdata) {
    auto& channel = *static_cast<Channel*>(userdata);
    return channel.owner->acceptSubsystem(channel, subsystem ? subsystem : "");
}

int Connection::acceptSubsystem(Channel& channel, const char* name) {
    if (channel.phase != ChannelPhase::AwaitingSubsystem) {
        return refuseRequest(channel, "a second subsystem");
    }
    if (name != config_.subsystem) {
        return refuseRequest(channel, "subsystem '" + printable(name) + "'");
    }
    channel.phase = ChannelPhase::Dtcp;
    {
        std::lock_guard lock(shared_->mutex);
        ++shared_->dtcp_channels;
    }
    ++counters_.channels_open;
    channel.endpoint_opened = true;
    log(SshLogLevel::Info, fmt::format("DTCP channel {} opened", channel.id));
    try {
        server_.endpoint.onOpen(channel.info);
    } catch (...) {
        log(SshLogLevel::Error, fmt::format("endpoint failed opening channel {}", channel.id));
        beginClose(channel, ChannelCloseReason::EndpointFailed, 1);
    }
    // What the endpoint queued on opening (an owed 599) goes out before the
    // reply to the first request, which may arrive in this same poll and is
    // answered from inside it.
    takeCommands();
    return 0;
}

int Connection::refuseRequest(Channel& channel, std::string_view what) {
    ++counters_.requests_refused;
    log(SshLogLevel::Info, fmt::format("refused {} on channel {}", what, channel.id));
    return -1;
}

int Connection::onPty(ssh_session, ssh_channel, const char*, int, int, int, int, void* userdata) {
    auto& channel = *static_cast<Channel*>(userdata);
    return channel.owner->refuseRequest(channel, "a pty");
}

int Connection::onShell(ssh_session, ssh_channel, void* userdata) {
    auto& channel = *static_cast<Channel*>(userdata);
    return channel.owner->refuseRequest(channel, "a shell");
}

int Connection::onExec(ssh_session, ssh_channel, const char*, void* userdata) {
    auto& channel = *static_cast<Channel*>(userdata);
    return channel.owner->refuseRequest(channel, "an exec request");
}

int Connection::onEnv(ssh_session, ssh_channel, const char*, const char*, void* userdata) {
    auto& channel = *static_cast<Channel*>(userdata);
    return channel.owner->refuseRequest(channel, "an environment variable");
}

int Connection::onData(ssh_session, ssh_channel, void* data, uint32_t len, int is_stderr,
                       void* userdata) {
    auto& channel = *static_cast<Channel*>(userdata);
    // Everything is consumed (libssh then reopens the window); only the DTCP
    // stream of a running channel is read, the rest is dropped.
    if (!is_stderr && channel.phase == ChannelPhase::Dtcp) {
        channel.owner->receive(channel, std::string_view(static_cast<const char*>(data), len));
    }
    return static_cast<int>(len);
}

void Connection::receive(Channel& channel, std::string_view bytes) {
    channel.framer.append(bytes);
    while (channel.phase == ChannelPhase::Dtcp && !end_reason_) {
        FrameResult frame = channel.framer.next();
        if (frame.status == FrameStatus::NeedMore) break;
        if (frame.status == FrameStatus::TooLarge) {
            ++counters_.messages_too_large;
            log(SshLogLevel::Warning, fmt::format("message over {} bytes on channel {}: closing it",
                                                  config_.max_message_bytes, channel.id));
            beginClose(channel, ChannelCloseReason::MessageTooLarge, 1);
            break;
        }
        ++counters_.messages_received;
        std::vector<std::string> replies;
        try {
            replies = server_.endpoint.onMessage(channel.info, frame.message);
        } catch (...) {
            log(SshLogLevel::Error, fmt::format("endpoint failed on channel {}", channel.id));
            beginClose(channel, ChannelCloseReason::EndpointFailed, 1);
            break;
        }
        replies_unsynced_ = true;
        for (std::string& reply : replies) {
            if (!queueOutbound(channel, std::move(reply))) break;
        }
    }
}

bool Connection::queueOutbound(Channel& channel, std::string_view bytes) {
    // The bound is on what the peer left untaken, not on one reply: a LIST of
    // 100,000 criteria (about 37 MB) is queued whole and written as the SSH
    // window opens; the write stall timeout catches a peer that stops reading.
    if (channel.pending() > config_.max_outbound_bytes) {
        ++counters_.slow_peer_disconnects;
        log(SshLogLevel::Warning,
            fmt::format("channel {}: over {} bytes not taken by the peer: closing the session",
                        channel.id, config_.max_outbound_bytes));
        end(ChannelCloseReason::SlowPeer);
        return false;
    }
    if (channel.pending() == 0) channel.last_progress = Clock::now();
    channel.outbound.append(bytes);
    return true;
}

bool Connection::queueOutbound(Channel& channel, std::string&& bytes) {
    // Nothing queued: the reply becomes the queue, not a copy of it (a LIST of
    // 100,000 criteria would be held twice).
    if (channel.outbound.empty()) {
        channel.last_progress = Clock::now();
        channel.outbound = std::move(bytes);
        channel.sent = 0;
        return true;
    }
    return queueOutbound(channel, std::string_view(bytes));
}

void Connection::onEof(ssh_session, ssh_channel, void* userdata) {
    auto& channel = *static_cast<Channel*>(userdata);
    // The MD sends nothing more: answer what it sent, then close.
    channel.owner->beginClose(channel, ChannelCloseReason::PeerClosed, 0);
}

void Connection::onClose(ssh_session, ssh_channel, void* userdata) {
    auto& channel = *static_cast<Channel*>(userdata);
    channel.peer_closed = true;
    channel.owner->beginClose(channel, ChannelCloseReason::PeerClosed, 0);
}

void Connection::beginClose(Channel& channel, ChannelCloseReason reason, int exit_status) {
    if (channel.phase == ChannelPhase::Closing || channel.phase == ChannelPhase::Closed) return;
    channel.phase = ChannelPhase::Closing;
    channel.close_reason = reason;
    channel.exit_status = exit_status;
}

void Connection::finish(Channel& channel) {
    if (channel.phase == ChannelPhase::Closed) return;
    const bool was_dtcp = channel.endpoint_opened;
    channel.phase = ChannelPhase::Closed;
    ssh_channel handle = channel.handle.get();
    if (!channel.peer_closed && handle) {
        if (was_dtcp) ssh_channel_request_send_exit_status(handle, channel.exit_status);
        ssh_channel_send_eof(handle);
        ssh_channel_close(handle);
    }
    if (was_dtcp) {
        {
            std::lock_guard lock(shared_->mutex);
            --shared_->dtcp_channels;
        }
        --counters_.channels_open;
        channel.endpoint_opened = false;
        log(SshLogLevel::Info,
            fmt::format("DTCP channel {} closed: {}", channel.id, describe(channel.close_reason)));
        try {
            server_.endpoint.onClose(channel.info, channel.close_reason);
        } catch (...) {
            log(SshLogLevel::Error, fmt::format("endpoint failed closing channel {}", channel.id));
        }
    }
}

bool Connection::socketWritable() const {
    pollfd pfd{ssh_get_fd(session_.get()), POLLOUT, 0};
    return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLOUT);
}

bool Connection::socketReadable() const {
    pollfd pfd{ssh_get_fd(session_.get()), POLLIN, 0};
    return ::poll(&pfd, 1, 0) == 1 && (pfd.revents & POLLIN);
}

void Connection::flush(Channel& channel) {
    // No reply leaves before what it acknowledges is durable.
    if (replies_unsynced_ && channel.pending() > 0) {
        replies_unsynced_ = false;
        try {
            server_.endpoint.onMessagesHandled();
        } catch (...) {
            log(SshLogLevel::Error, "endpoint could not make its changes durable: closing");
            end(ChannelCloseReason::EndpointFailed);
            return;
        }
    }
    // Only as much as the peer's window takes and only while the kernel takes
    // it: libssh's own buffer then stays small and `outbound` is the bound.
    while (channel.pending() > 0 && !channel.peer_closed) {
        const uint32_t window = ssh_channel_window_size(channel.handle.get());
        if (window == 0 || !socketWritable()) break;
        const size_t length = std::min({channel.pending(), size_t{window}, kWriteChunkBytes});
        // A copy: callbacks run inside ssh_channel_write and may append.
        const std::string chunk = channel.outbound.substr(channel.sent, length);
        const int written = ssh_channel_write(channel.handle.get(), chunk.data(),
                                              static_cast<uint32_t>(chunk.size()));
        if (written == SSH_ERROR) {
            log(SshLogLevel::Info, fmt::format("write on channel {} failed", channel.id));
            end(ChannelCloseReason::ConnectionLost);
            return;
        }
        if (written <= 0) break;
        channel.sent += static_cast<size_t>(written);
        channel.last_progress = Clock::now();
    }
    // What was sent leaves the front of the queue once it is at least half of
    // it: each byte is moved at most once more. Erasing after every chunk
    // moved the rest of a 37 MB LIST reply a thousand times.
    if (channel.sent > 0 &&
        (channel.pending() == 0 ||
         channel.sent >= std::max(kWriteChunkBytes, channel.outbound.size() / 2))) {
        channel.outbound.erase(0, channel.sent);
        channel.sent = 0;
    }
    if (channel.pending() > 0 &&
        Clock::now() - channel.last_progress > config_.write_stall_timeout) {
        ++counters_.slow_peer_disconnects;
        log(SshLogLevel::Warning,
            fmt::format("channel {}: peer took nothing for {} ms: closing the session", channel.id,
                        config_.write_stall_timeout.count()));
        end(ChannelCloseReason::SlowPeer);
    }
}

void Connection::takeCommands() {
    std::deque<SessionCommand> commands;
    {
        std::lock_guard lock(shared_->mutex);
        commands.swap(shared_->commands);
        shared_->queued_bytes = 0;
    }
    for (SessionCommand& command : commands) {
        switch (command.kind) {
            case SessionCommand::Kind::Notify: {
                bool delivered = false;
                for (size_t i = 0; i < channels_.size() && !end_reason_; ++i) {
                    Channel& channel = *channels_[i];
                    if (channel.phase != ChannelPhase::Dtcp) continue;
                    delivered = queueOutbound(channel, command.bytes) || delivered;
                }
                if (!delivered) ++counters_.notifications_dropped;
                break;
            }
            case SessionCommand::Kind::CloseChannel:
                for (auto& channel : channels_) {
                    if (channel->id == command.channel_id) {
                        beginClose(*channel, ChannelCloseReason::EndpointRequested, 0);
                    }
                }
                break;
            case SessionCommand::Kind::CloseSession:
                log(SshLogLevel::Info, "closed on request");
                end(ChannelCloseReason::EndpointRequested);
                break;
        }
    }
}

void Connection::serviceChannels() {
    // By index and raw pointer: callbacks inside ssh_channel_write may open channels.
    for (size_t i = 0; i < channels_.size() && !end_reason_; ++i) {
        Channel* channel = channels_[i].get();
        if (channel->phase == ChannelPhase::Dtcp || channel->phase == ChannelPhase::Closing) {
            flush(*channel);
        }
        if (channel->phase == ChannelPhase::Closing &&
            (channel->pending() == 0 || channel->peer_closed ||
             channel->close_reason == ChannelCloseReason::EndpointFailed)) {
            finish(*channel);
        }
        if (channel->phase == ChannelPhase::AwaitingSubsystem && channel->peer_closed) {
            finish(*channel);
        }
    }
    std::erase_if(channels_, [](const std::unique_ptr<Channel>& channel) {
        if (channel->phase != ChannelPhase::Closed || !channel->peer_closed) return false;
        ssh_remove_channel_callbacks(channel->handle.get(), &channel->callbacks);
        return true;  // ssh_channel_free answers the peer's close and frees
    });
}

int Connection::onWake(socket_t fd, int, void*) {
    uint64_t value = 0;
    [[maybe_unused]] const ssize_t n = ::read(fd, &value, sizeof value);
    return 0;
}

}  // namespace

// --- accepting --------------------------------------------------------------------

void SshServer::Impl::bindListeners() {
    for (const ListenAddress& address : listen_addresses) {
        sockaddr_storage storage{};
        socklen_t length = 0;
        if (address.ipv6) {
            auto& in6 = reinterpret_cast<sockaddr_in6&>(storage);
            in6.sin6_family = AF_INET6;
            in6.sin6_port = htons(address.port);
            ::inet_pton(AF_INET6, address.address.c_str(), &in6.sin6_addr);
            length = sizeof in6;
        } else {
            auto& in = reinterpret_cast<sockaddr_in&>(storage);
            in.sin_family = AF_INET;
            in.sin_port = htons(address.port);
            ::inet_pton(AF_INET, address.address.c_str(), &in.sin_addr);
            length = sizeof in;
        }
        const std::string text = formatEndpoint(address.address, address.port);
        UniqueFd fd(::socket(storage.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
        if (!fd) throw std::system_error(errno, std::generic_category(), "socket for " + text);
        const int one = 1;
        ::setsockopt(fd.get(), SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
        // [::] and 0.0.0.0 on one port are two listeners, not a conflict.
        if (address.ipv6) ::setsockopt(fd.get(), IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
        if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&storage), length) != 0) {
            throw std::system_error(errno, std::generic_category(), "bind " + text);
        }
        if (::listen(fd.get(), kListenBacklog) != 0) {
            throw std::system_error(errno, std::generic_category(), "listen " + text);
        }
        sockaddr_storage actual{};
        socklen_t actual_length = sizeof actual;
        ::getsockname(fd.get(), reinterpret_cast<sockaddr*>(&actual), &actual_length);
        bound.push_back(peerFrom(actual).text());
        listeners.push_back(std::move(fd));
    }
}

void SshServer::Impl::acceptLoop() {
    std::vector<pollfd> fds;
    for (const UniqueFd& fd : listeners) fds.push_back(pollfd{fd.get(), POLLIN, 0});
    fds.push_back(pollfd{stop_fd.get(), POLLIN, 0});
    while (!stopping.load()) {
        const int ready = ::poll(fds.data(), fds.size(), 250);
        reapFinishedSessions();
        if (ready <= 0 || stopping.load()) continue;
        for (size_t i = 0; i + 1 < fds.size(); ++i) {
            if (!(fds[i].revents & POLLIN)) continue;
            while (true) {
                sockaddr_storage peer{};
                socklen_t length = sizeof peer;
                const int fd = ::accept4(fds[i].fd, reinterpret_cast<sockaddr*>(&peer), &length,
                                         SOCK_NONBLOCK | SOCK_CLOEXEC);
                if (fd < 0) {
                    if (errno == EMFILE || errno == ENFILE) {
                        ++counters.connections_refused_other;
                        log(SshLogLevel::Error, "out of file descriptors: not accepting");
                        std::this_thread::sleep_for(milliseconds(100));
                    }
                    break;  // EAGAIN: all taken; others: the next poll retries
                }
                admit(UniqueFd(fd), peer);
            }
        }
    }
}

void SshServer::Impl::admit(UniqueFd fd, const sockaddr_storage& peer_storage) {
    const auto now = Clock::now();
    const PeerAddress peer = peerFrom(peer_storage);
    // Refusals close the socket before the SSH banner: they cost no crypto.
    if (live_sessions.load() >= config.connection_limit) {
        ++counters.connections_refused_limit;
        if (const uint64_t n = limit_log.shouldLog(now)) {
            log(SshLogLevel::Warning,
                fmt::format("refused {}: connection limit {} reached ({} refused)", peer.text(),
                            config.connection_limit, n));
        }
        return;
    }
    while (!admitted_times.empty() && now - admitted_times.front() >= std::chrono::minutes(1)) {
        admitted_times.pop_front();
    }
    if (admitted_times.size() >= config.rate_limit) {
        ++counters.connections_refused_rate;
        if (const uint64_t n = rate_log.shouldLog(now)) {
            log(SshLogLevel::Warning,
                fmt::format("refused {}: rate limit {} per minute reached ({} refused)",
                            peer.text(), config.rate_limit, n));
        }
        return;
    }
    const int one = 1;
    ::setsockopt(fd.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);

    UniqueFd wake(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    UniqueSshSession session(ssh_new());
    if (!wake || !session) {
        ++counters.connections_refused_other;
        log(SshLogLevel::Error, "refused " + peer.text() + ": out of resources");
        return;
    }
    if (ssh_bind_accept_fd(bind_handle.get(), session.get(), fd.get()) != SSH_OK) {
        ++counters.connections_refused_other;
        log(SshLogLevel::Error, "refused " + peer.text() + ": " + sshError(bind_handle.get()));
        if (ssh_get_fd(session.get()) == fd.get()) fd.release();  // ssh_free closes it
        return;
    }
    fd.release();  // the session owns the socket now
    admitted_times.push_back(now);

    const uint64_t id = next_session_id++;
    auto shared = std::make_shared<SessionShared>(id, std::move(wake));
    {
        std::lock_guard lock(sessions_mutex);
        sessions.emplace(id, shared);
    }
    ++live_sessions;
    ++counters.sessions_open;
    ++counters.connections_accepted;
    log(SshLogLevel::Debug, fmt::format("session {} {}: accepted", id, peer.text()));
    try {
        std::thread thread(&Impl::runSession, this, shared, std::move(session), peer, now);
        session_threads.emplace(id, std::make_pair(std::move(thread), shared));
    } catch (const std::system_error&) {
        ++counters.connections_refused_other;
        log(SshLogLevel::Error, "refused " + peer.text() + ": cannot start a thread");
        std::lock_guard lock(sessions_mutex);
        sessions.erase(id);
        --live_sessions;
        --counters.sessions_open;
    }
}

void SshServer::Impl::runSession(std::shared_ptr<SessionShared> shared, UniqueSshSession session,
                                 PeerAddress peer, Clock::time_point accepted_at) {
    try {
        Connection connection(*this, shared, std::move(session), std::move(peer), accepted_at);
        connection.run();
    } catch (const std::exception& e) {
        log(SshLogLevel::Error, fmt::format("session {} failed: {}", shared->id, e.what()));
    }
    {
        std::lock_guard lock(sessions_mutex);
        sessions.erase(shared->id);
    }
    --live_sessions;
    --counters.sessions_open;
    shared->finished = true;
}

void SshServer::Impl::reapFinishedSessions() {
    for (auto it = session_threads.begin(); it != session_threads.end();) {
        if (it->second.second->finished.load()) {
            it->second.first.join();
            it = session_threads.erase(it);
        } else {
            ++it;
        }
    }
}

// --- public interface -------------------------------------------------------------

SshServer::SshServer(SshServerConfig config, DtcpEndpoint& endpoint)
    : impl_(std::make_unique<Impl>(std::move(config), endpoint)) {}

SshServer::~SshServer() {
    stop();
}

void SshServer::start() {
    std::lock_guard lock(impl_->lifecycle_mutex);
    if (impl_->started || impl_->stopped) throw std::logic_error("SshServer started twice");
    try {
        impl_->bindListeners();
    } catch (...) {
        impl_->listeners.clear();
        impl_->bound.clear();
        throw;
    }
    impl_->accept_thread = std::thread(&Impl::acceptLoop, impl_.get());
    impl_->started = true;
    impl_->log(SshLogLevel::Info,
               fmt::format("listening on {} (host key {})", fmt::join(impl_->bound, ", "),
                           impl_->host_key_fingerprint));
}

void SshServer::stop() {
    Impl& impl = *impl_;
    {
        std::lock_guard lock(impl.lifecycle_mutex);
        if (impl.stopped) return;
        impl.stopped = true;
        if (!impl.started) return;
    }
    impl.stopping = true;
    const uint64_t one = 1;
    [[maybe_unused]] const ssize_t n = ::write(impl.stop_fd.get(), &one, sizeof one);
    if (impl.accept_thread.joinable()) impl.accept_thread.join();
    impl.listeners.clear();
    {
        std::lock_guard lock(impl.sessions_mutex);
        for (const auto& [id, shared] : impl.sessions) shared->wake();
    }
    for (auto& [id, entry] : impl.session_threads) entry.first.join();
    impl.session_threads.clear();
    impl.log(SshLogLevel::Info, "stopped");
}

std::vector<std::string> SshServer::boundAddresses() const {
    std::lock_guard lock(impl_->lifecycle_mutex);
    return impl_->bound;
}

const std::string& SshServer::hostKeyFingerprint() const {
    return impl_->host_key_fingerprint;
}

void SshServer::setUsers(const std::vector<SshUser>& users) {
    auto table = buildUserTable(users);
    std::lock_guard lock(impl_->users_mutex);
    impl_->users = std::move(table);
}

size_t SshServer::notifySession(uint64_t session_id, std::string_view bytes) {
    const auto shared = impl_->findSession(session_id);
    bool queued = false;
    if (shared) {
        std::lock_guard lock(shared->mutex);
        if (shared->dtcp_channels > 0 &&
            shared->queued_bytes + bytes.size() <= impl_->config.max_outbound_bytes) {
            shared->commands.push_back({SessionCommand::Kind::Notify, 0, std::string(bytes)});
            shared->queued_bytes += bytes.size();
            queued = true;
        }
    }
    if (!queued) {
        ++impl_->counters.notifications_dropped;
        return 0;
    }
    ++impl_->counters.notifications_queued;
    shared->wake();
    return 1;
}

size_t SshServer::notifyUser(std::string_view user, std::string_view bytes) {
    std::vector<uint64_t> ids;
    {
        std::lock_guard lock(impl_->sessions_mutex);
        for (const auto& [id, shared] : impl_->sessions) {
            std::lock_guard session_lock(shared->mutex);
            if (shared->user == user && shared->dtcp_channels > 0) ids.push_back(id);
        }
    }
    if (ids.empty()) {
        ++impl_->counters.notifications_dropped;
        return 0;
    }
    size_t taken = 0;
    for (uint64_t id : ids) taken += notifySession(id, bytes);
    return taken;
}

bool SshServer::closeChannel(uint64_t session_id, uint64_t channel_id) {
    return impl_->post(session_id, {SessionCommand::Kind::CloseChannel, channel_id, {}});
}

bool SshServer::closeSession(uint64_t session_id) {
    return impl_->post(session_id, {SessionCommand::Kind::CloseSession, 0, {}});
}

SshServerCounters SshServer::counters() const {
    const AtomicCounters& c = impl_->counters;
    SshServerCounters out;
    out.connections_accepted = c.connections_accepted.load();
    out.connections_refused_limit = c.connections_refused_limit.load();
    out.connections_refused_rate = c.connections_refused_rate.load();
    out.connections_refused_other = c.connections_refused_other.load();
    out.key_exchange_failures = c.key_exchange_failures.load();
    out.auth_timeouts = c.auth_timeouts.load();
    out.auth_attempts_exceeded = c.auth_attempts_exceeded.load();
    out.auth_failures_publickey = c.auth_failures_publickey.load();
    out.auth_failures_password = c.auth_failures_password.load();
    out.auth_failures_permission = c.auth_failures_permission.load();
    out.auth_locked_out = c.auth_locked_out.load();
    out.sessions_authenticated = c.sessions_authenticated.load();
    out.sessions_open = c.sessions_open.load();
    out.channels_open = c.channels_open.load();
    out.requests_refused = c.requests_refused.load();
    out.messages_received = c.messages_received.load();
    out.messages_too_large = c.messages_too_large.load();
    out.slow_peer_disconnects = c.slow_peer_disconnects.load();
    out.notifications_queued = c.notifications_queued.load();
    out.notifications_dropped = c.notifications_dropped.load();
    return out;
}

}  // namespace xtap::dtcp
