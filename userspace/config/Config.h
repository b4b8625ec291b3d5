// Config: xtap's one JSON configuration file, parsed and validated into
// plain values. Every error names the file, the JSON pointer of the key and
// the reason; unknown keys are errors (a typo must not silently weaken a
// setting). Pure: the caller reads the file.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "dataplane/Filter.h"

namespace xtap::config {

struct ListenAddress {
    std::string address;  // numeric IPv4 or IPv6, no brackets
    uint16_t port = 32001;
    bool operator==(const ListenAddress&) const = default;
};

struct Dtcp {
    std::vector<ListenAddress> listen{{"::", 32001}};
    std::string host_key = "/etc/xtap/ssh_host_ed25519_key";
    uint32_t connection_limit = 75;  // concurrent sessions (Junos default)
    uint32_t rate_limit = 150;       // new connections per minute (Junos default)
    uint32_t auth_timeout_s = 30;
    uint32_t max_message_bytes = 65536;
};

enum class DeliveryFormat { Flowtap, Jmirror };

// Lowest nonzero max_bandwidth_bps: 2000 bytes a second, one full-size copy.
inline constexpr uint64_t kMinBandwidthBps = 16000;

// A content destination configured for a user: what a plain Cdest-ID names.
struct Destination {
    std::string address;
    uint16_t port = 0;
    std::string source_address;
    uint16_t source_port = 0;
    uint8_t ttl = 255;
    // Copies to this destination above this rate are shed (0 = unlimited).
    uint64_t max_bandwidth_bps = 0;
};

struct User {
    std::vector<std::string> authorized_keys;  // OpenSSH public key lines
    std::string password_hash;                 // crypt(3): $y$ (yescrypt) or $6$ (SHA-512)
    std::string hmac_key = "Juniper";
    uint32_t max_criteria = 3000;  // Junos FlowTapLite's figure
    uint32_t max_content_destinations = 16;
    uint8_t minimum_priority = 0;
    bool allow_wide = false;
    bool seq_reset_per_connection = true;
    DeliveryFormat delivery_format = DeliveryFormat::Flowtap;
    std::vector<std::string> permissions{"flow-tap-operation"};
    std::map<std::string, Destination> destinations;  // by Cdest-ID
    bool canTask() const;
};

enum class XdpMode { Auto, Native, Generic };

struct Interface {
    std::string name;                // Linux name
    std::vector<std::string> alias;  // names a mediation device uses, e.g. ge-0/0/1.0
    XdpMode xdp_mode = XdpMode::Auto;
};

struct Tunnel {
    std::string name;
    std::vector<std::string> local_addrs, remote_addrs;
    std::string local_id, remote_id;
    std::string psk;                                       // either a PSK ...
    std::string psk_file;                                  // ... or a file holding it
    std::string certificate, private_key, ca_certificate;  // or certificates
    std::vector<std::string> ike_proposals{"aes256gcm16-prfsha256-x25519"};
    std::vector<std::string> esp_proposals{"aes256gcm16"};
    std::vector<std::string> local_ts, remote_ts;  // prefixes
};

struct Ipsec {
    std::string vici_socket = "unix:///var/run/charon.vici";
    std::vector<Tunnel> tunnels;
};

struct Delivery {
    std::vector<std::string> cleartext_destinations;  // prefixes; empty by default
};

// Capture queues per interface share the 256 XSKMAP slots with the others.
inline constexpr uint32_t kMaxCopyThreads = 16;
// A longer pause needs a ring that holds a pause's worth of copies (xsk_ring).
inline constexpr uint32_t kMaxCopyCoalesceUs = 1000;
// A copy thread wakes at least every 100 ms (its poll timeout): a deadline
// shorter than a few of those would shed copies of a thread that is alive.
inline constexpr uint32_t kMinConsumerTimeoutMs = 250;
inline constexpr uint32_t kMaxConsumerTimeoutMs = 60000;
inline constexpr uint64_t kMaxCopyBudgetPps = 1'000'000'000;
inline constexpr uint64_t kMaxCopyBudgetBps = 10'000'000'000'000;  // 10 Tbit/s
inline constexpr uint32_t kMaxCopyBudgetBurstUs = 1'000'000;

// Where transit packets are classified: XDP (marks, tc clones) or tc
// ingress alone, for kernels whose XDP programs cannot write metadata; auto:
// XDP where the kernel allows it.
enum class TransitHook { Auto, Xdp, Tc };

struct DataplaneSettings {
    TransitHook transit_hook = TransitHook::Auto;
    uint32_t criteria = 131072;
    uint32_t rules = 262144;
    uint32_t anchors = 262144;
    std::string pin_dir = "/sys/fs/bpf/xtap";
    // Each capture AF_XDP socket: RX ring and fill ring entries (a power of
    // two; the UMEM holds twice as many frames), and frames read per batch.
    uint32_t xsk_ring = 2048;
    uint32_t receive_batch = 64;
    // Copy threads, each reading its own capture queue of every interface
    // (copies spread by flow hash). One is enough until one core is not.
    uint32_t copy_threads = 1;
    // Pause of a copy thread after a read that drained its rings, so that it
    // reads the copies of that time as one batch instead of waking per copy.
    uint32_t copy_coalesce_us = 200;
    // The copy gate (bpf/include/xtap_abi.h): tc makes no copy once the copy
    // threads have not shown life for this long (a hung or killed xtapd), so
    // transit does not pay for copies nobody reads. 0 = no deadline.
    uint32_t consumer_timeout_ms = 1000;
    // The copy budget: at most this many copies, and bits of copied IP
    // packets, a second, either budget running at most copy_budget_burst_us
    // ahead: the copy path cannot take the router's forwarding CPU beyond
    // what the operator gives it. 0 = no such budget.
    uint64_t copy_budget_pps = 0;
    uint64_t copy_budget_bps = 0;
    uint32_t copy_budget_burst_us = 5000;
};

struct Config {
    Dtcp dtcp;
    std::map<std::string, User> users;
    std::vector<Interface> interfaces;
    Ipsec ipsec;
    Delivery delivery;
    DataplaneSettings dataplane;
    std::string state_dir = "/var/lib/xtap";
    std::string audit_log = "/var/log/xtap/audit.jsonl";
    std::string control_socket = "/run/xtap/control.sock";
    std::string metrics_listen = "127.0.0.1:9469";
};

struct ConfigError {
    std::string file;
    std::string pointer;  // JSON pointer of the offending key, "" for the document
    std::string reason;
    std::string message() const;  // "FILE: POINTER: REASON"
};

using ConfigResult = std::variant<Config, ConfigError>;

// `file` is only used in errors.
ConfigResult parseConfig(const std::string& text, const std::string& file);

// Is `address` inside one of the prefixes ("198.18.0.0/15", "2001:db8::/32")?
bool prefixListContains(const std::vector<std::string>& prefixes, const std::string& address);

}  // namespace xtap::config
