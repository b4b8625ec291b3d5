// SshServer: the SSH transport of DTCP (dtcp.md §1, platform.md §11). libssh
// accepts mediation devices on several addresses, authenticates them by public
// key or crypt(3) password, accepts only the `flow-tap-dtcp` subsystem and hands
// every framed message of a channel to a DtcpEndpoint. One thread per session
// owns that session's libssh objects; other threads reach it only through its
// eventfd (notify, closeChannel, closeSession, stop).
//
// Logs name users, peers and events, never message contents: DTCP messages
// name interception targets.
//
// The process should ignore SIGPIPE: a peer may vanish while xtap writes to it.
#pragma once

#include <libssh/libssh.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <vector>

#include "dtcp/Framer.h"

namespace xtap::dtcp {

// --- libssh handles -----------------------------------------------------------

struct SshKeyDeleter {
    void operator()(ssh_key key) const { ssh_key_free(key); }
};
struct SshSessionDeleter {
    void operator()(ssh_session session) const { ssh_free(session); }
};
struct SshChannelDeleter {
    void operator()(ssh_channel channel) const { ssh_channel_free(channel); }
};
struct SshEventDeleter {
    void operator()(ssh_event event) const { ssh_event_free(event); }
};
using UniqueSshKey = std::unique_ptr<std::remove_pointer_t<ssh_key>, SshKeyDeleter>;
using UniqueSshSession = std::unique_ptr<std::remove_pointer_t<ssh_session>, SshSessionDeleter>;
using UniqueSshChannel = std::unique_ptr<std::remove_pointer_t<ssh_channel>, SshChannelDeleter>;
using UniqueSshEvent = std::unique_ptr<std::remove_pointer_t<ssh_event>, SshEventDeleter>;

// Calls ssh_init() once per process; every libssh user calls this first.
void ensureLibsshInitialized();

// "SHA256:" and the unpadded base64 digest of the public key, as OpenSSH prints
// it (ssh-keygen -l -E sha256). Empty if libssh cannot hash the key.
std::string keyFingerprintSha256(ssh_key key);

// --- configuration ------------------------------------------------------------

// "198.18.0.1:32001" or "[2001:db8::1]:32001": numeric addresses only.
struct ListenAddress {
    std::string address;  // without brackets
    uint16_t port = 0;
    bool ipv6 = false;
};
std::optional<ListenAddress> parseListenAddress(std::string_view text);
std::string formatEndpoint(std::string_view address, uint16_t port);  // brackets for IPv6

struct SshUser {
    std::string name;
    // OpenSSH authorized_keys lines without options ("ssh-ed25519 AAAA... comment").
    std::vector<std::string> authorized_keys;
    // crypt(3) hash: yescrypt ($y$) or SHA-512 ($6$). Empty: no password login.
    std::string password_hash;
    // The Junos permission that allows DTCP; without it every login fails.
    bool flow_tap_operation = false;
};

enum class SshLogLevel : uint8_t { Debug, Info, Warning, Error };
std::string_view describe(SshLogLevel level);
// Called from the accept thread and every session thread, possibly at once.
using SshLogSink = std::function<void(SshLogLevel, std::string_view)>;

struct SshServerConfig {
    std::vector<std::string> listen = {"0.0.0.0:32001", "[::]:32001"};
    std::string host_key_file;  // an OpenSSH ed25519 private key
    std::vector<SshUser> users;
    std::string subsystem = "flow-tap-dtcp";

    // Key exchange and authentication must finish within this time of accept.
    std::chrono::milliseconds auth_timeout{30'000};
    unsigned max_auth_attempts = 6;  // failed password and public-key attempts
    // Junos defaults (connection-limit, rate-limit), enforced at accept.
    unsigned connection_limit = 75;  // concurrent connections, authenticated or not
    unsigned rate_limit = 150;       // connections admitted per sliding minute

    // Every wrong password waits this long before the failure is answered.
    std::chrono::milliseconds password_failure_delay{1'000};
    // This many wrong passwords for one user from one address within the window
    // lock password logins of that user from that address for the lockout time.
    unsigned password_lockout_failures = 5;
    std::chrono::seconds password_lockout_window{300};
    std::chrono::seconds password_lockout_duration{300};

    // Per channel: replies and notifications not yet taken by the peer. Above
    // this, or without progress for write_stall_timeout, the session is closed.
    size_t max_outbound_bytes = 8 * 1024 * 1024;
    std::chrono::milliseconds write_stall_timeout{30'000};
    unsigned max_channels_per_session = 4;
    size_t max_message_bytes = Framer::kDefaultMaxMessageBytes;

    SshLogSink log;  // none: lines on stderr
};

// --- the DTCP side -----------------------------------------------------------

struct SessionInfo {
    uint64_t session_id = 0;  // unique per server run
    uint64_t channel_id = 0;  // unique per server run
    std::string user;
    std::string auth_method;      // "publickey" or "password"
    std::string key_fingerprint;  // SHA256:... for publickey logins, else empty
    std::string peer_address;
    uint16_t peer_port = 0;
};

enum class ChannelCloseReason : uint8_t {
    PeerClosed,         // EOF or close from the mediation device
    MessageTooLarge,    // a message over max_message_bytes
    SlowPeer,           // the peer did not take its replies
    EndpointRequested,  // closeChannel or closeSession
    EndpointFailed,     // the endpoint threw
    ServerStopping,
    ConnectionLost,
};
std::string_view describe(ChannelCloseReason reason);

// Receives the messages of every DTCP channel. Called from session threads,
// several at once: implementations are thread-safe. Calls for one channel come
// from one thread, in order: onOpen, onMessage..., onClose.
class DtcpEndpoint {
  public:
    virtual ~DtcpEndpoint() = default;
    virtual void onOpen(const SessionInfo& /*info*/) {}
    // One complete message as received (its HMAC covers these bytes). Returns
    // the messages to send back, in order; none for a silent discard.
    virtual std::vector<std::string> onMessage(const SessionInfo& info,
                                               std::string_view message_bytes) = 0;
    virtual void onClose(const SessionInfo& /*info*/, ChannelCloseReason /*reason*/) {}
    // Before the replies to the messages handled since the last call are
    // written: the endpoint makes what they acknowledge durable here, once for
    // a whole burst of pipelined requests (group commit). Throwing ends the
    // session with those replies unsent.
    virtual void onMessagesHandled() {}
};

struct SshServerCounters {
    uint64_t connections_accepted = 0;  // admitted to key exchange
    uint64_t connections_refused_limit = 0;
    uint64_t connections_refused_rate = 0;
    uint64_t connections_refused_other = 0;  // out of memory, threads or descriptors
    uint64_t key_exchange_failures = 0;
    uint64_t auth_timeouts = 0;
    uint64_t auth_attempts_exceeded = 0;
    uint64_t auth_failures_publickey = 0;
    uint64_t auth_failures_password = 0;
    uint64_t auth_failures_permission = 0;  // valid credentials, no flow-tap-operation
    uint64_t auth_locked_out = 0;           // password attempts refused during a lockout
    uint64_t sessions_authenticated = 0;
    uint64_t sessions_open = 0;     // now: accepted and not yet closed
    uint64_t channels_open = 0;     // now: DTCP channels
    uint64_t requests_refused = 0;  // shell, exec, pty, env, other subsystems, extra channels
    uint64_t messages_received = 0;
    uint64_t messages_too_large = 0;
    uint64_t slow_peer_disconnects = 0;
    uint64_t notifications_queued = 0;
    uint64_t notifications_dropped = 0;  // no open channel, or its buffer full
};

class SshServer {
  public:
    // Loads the host key and the users; throws std::invalid_argument on a bad
    // configuration. `endpoint` must outlive the server.
    SshServer(SshServerConfig config, DtcpEndpoint& endpoint);
    ~SshServer();  // stop()
    SshServer(const SshServer&) = delete;
    SshServer& operator=(const SshServer&) = delete;

    // Binds every listen address and starts accepting. Throws std::system_error
    // when an address cannot be bound (nothing is left listening then).
    void start();
    // Stops accepting, closes every session (their channels get onClose) and
    // joins all threads. Idempotent. Not from an endpoint callback: it joins
    // the thread that runs it.
    void stop();

    // The bound addresses, port 0 resolved, as "addr:port" / "[addr]:port".
    std::vector<std::string> boundAddresses() const;
    const std::string& hostKeyFingerprint() const;

    // Replaces the users for later logins; sessions already open keep going.
    // Throws std::invalid_argument like the constructor.
    void setUsers(const std::vector<SshUser>& users);

    // Queue `bytes` (complete messages) on every open DTCP channel of a session,
    // or of every session of a user, after any reply being written. Returns how
    // many sessions took it; 0 means dropped (counted). Thread-safe.
    size_t notifySession(uint64_t session_id, std::string_view bytes);
    size_t notifyUser(std::string_view user, std::string_view bytes);
    // Close one channel (after its queued output) or a whole session. Return
    // false when no such session is open. Thread-safe.
    bool closeChannel(uint64_t session_id, uint64_t channel_id);
    bool closeSession(uint64_t session_id);

    SshServerCounters counters() const;

    struct Impl;

  private:
    std::unique_ptr<Impl> impl_;
};

}  // namespace xtap::dtcp
