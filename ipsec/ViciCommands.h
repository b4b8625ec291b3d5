// The vici requests xtap sends and the replies and events it reads
// (platform.md §8, strongSwan vici README), as plain structs in and out.
// Requests become Packets ready for encodePacket(); readers take decoded
// messages. Key names follow charon 5.9.8.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "ipsec/ViciMessage.h"
#include "ipsec/ViciPacket.h"
#include "ipsec/ViciResult.h"

namespace xtap::ipsec {

namespace command {
inline constexpr std::string_view kVersion = "version";
inline constexpr std::string_view kLoadShared = "load-shared";
inline constexpr std::string_view kLoadConn = "load-conn";
inline constexpr std::string_view kUnloadConn = "unload-conn";
inline constexpr std::string_view kInitiate = "initiate";
inline constexpr std::string_view kTerminate = "terminate";
inline constexpr std::string_view kListSas = "list-sas";
}  // namespace command

namespace event {
inline constexpr std::string_view kIkeUpdown = "ike-updown";
inline constexpr std::string_view kChildUpdown = "child-updown";
inline constexpr std::string_view kListSa = "list-sa";          // streamed by list-sas
inline constexpr std::string_view kControlLog = "control-log";  // streamed by initiate/terminate
}  // namespace event

// --- requests ------------------------------------------------------------------

// swanctl.conf keys; an empty string leaves charon's default (key not sent).
struct AuthConfig {
    std::string auth;  // "psk", "pubkey", ...
    std::string id;
};

struct ChildConfig {
    std::string name;
    std::string mode = "tunnel";
    std::vector<std::string> local_ts;  // must hold a local address (platform.md §9)
    std::vector<std::string> remote_ts;
    std::vector<std::string> esp_proposals;
    std::string start_action;  // none | trap | start
    std::string dpd_action;    // clear | trap | restart
};

struct TunnelConfig {
    std::string name;
    unsigned ike_version = 2;  // 0 = any, 1 or 2
    std::vector<std::string> local_addrs;
    std::vector<std::string> remote_addrs;
    std::vector<std::string> proposals;
    std::string dpd_delay;  // e.g. "10s"; dpd_action needs it to have any effect
    AuthConfig local;
    AuthConfig remote;
    std::vector<ChildConfig> children;
};

struct SharedSecret {
    std::string id;  // charon replaces a secret loaded again under the same id
    std::string type = "IKE";
    std::string data;  // the raw secret (swanctl's 0s base64 already decoded)
    std::vector<std::string> owners;
};

struct InitiateRequest {
    std::string child;
    std::string ike;                // optional: the IKE config to find the child under
    std::optional<int> timeout_ms;  // charon: 0 waits forever, -1 returns at once
    std::optional<int> loglevel;    // for control-log events
};

// At least one selector: child, ike, child_id or ike_id.
struct TerminateRequest {
    std::string child;
    std::string ike;
    std::optional<uint32_t> child_id;
    std::optional<uint32_t> ike_id;
    std::optional<int> timeout_ms;
    std::optional<int> loglevel;
    bool force = false;  // IKE_SA: delete without waiting for the peer
};

struct ListSasRequest {
    bool noblock = false;
    std::string ike;
    std::optional<uint32_t> ike_id;
};

// The message trees, for tests and logs; the *Request functions wrap them.
ViciResult<Section> loadConnMessage(const TunnelConfig& config);
ViciResult<Section> loadSharedMessage(const SharedSecret& secret);

Packet versionRequest();
ViciResult<Packet> loadConnRequest(const TunnelConfig& config);
ViciResult<Packet> loadSharedRequest(const SharedSecret& secret);
ViciResult<Packet> unloadConnRequest(std::string_view name);
ViciResult<Packet> initiateRequest(const InitiateRequest& request);
ViciResult<Packet> terminateRequest(const TerminateRequest& request);
ViciResult<Packet> listSasRequest(const ListSasRequest& request);
ViciResult<Packet> registerEventRequest(std::string_view event);
ViciResult<Packet> unregisterEventRequest(std::string_view event);

// --- replies and events ----------------------------------------------------------

// CMD_RESPONSE -> its decoded message; CMD_UNKNOWN -> UnknownCommand; any
// other type -> UnexpectedPacket (events are handled by the caller first).
ViciResult<Section> readResponse(const Packet& packet);

// EVENT_CONFIRM -> ok; EVENT_UNKNOWN -> UnknownEvent; else UnexpectedPacket.
ViciResult<void> readEventConfirm(const Packet& packet);

struct EventMessage {
    std::string name;
    Section message;
};
ViciResult<EventMessage> readEvent(const Packet& packet);

// {success = yes|no, errmsg}: a "no" is a value, not a ViciError.
struct CommandOutcome {
    bool success = false;
    std::string errmsg;
};
ViciResult<CommandOutcome> readCommandOutcome(const Section& response);

struct VersionInfo {
    std::string daemon;
    std::string version;
    std::string sysname;
    std::string release;
    std::string machine;
};
ViciResult<VersionInfo> readVersion(const Section& response);

struct ChildSaInfo {
    std::string name;  // the CHILD_SA config name, from the inner "name" key
    std::string key;   // the section name charon used: "<name>-<uniqueid>"
    std::string unique_id;
    std::string state;  // INSTALLED, REKEYING, DELETING, ...
    std::string mode;
    bool encap = false;
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;
    uint64_t packets_in = 0;
    uint64_t packets_out = 0;
    std::vector<std::string> local_ts;
    std::vector<std::string> remote_ts;
};

struct IkeSaInfo {
    std::string name;  // the IKE config name (the section name)
    std::string unique_id;
    std::string state;  // ESTABLISHED, CONNECTING, DELETING, ...
    std::string local_host;
    std::string remote_host;
    std::vector<ChildSaInfo> children;
};

// One list-sa event: one or more IKE_SA sections.
ViciResult<std::vector<IkeSaInfo>> readListSa(const Section& event);

// ike-updown and child-updown: `up = yes` is present only when the SA came
// up; absent means down. child-updown lists only the affected CHILD_SA.
struct UpDownEvent {
    bool up = false;
    std::vector<IkeSaInfo> ike_sas;
};
ViciResult<UpDownEvent> readUpDown(const Section& event);

}  // namespace xtap::ipsec
