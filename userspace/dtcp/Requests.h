// Requests: the typed DTCP requests (dtcp.md §5, §6) as the decoder produces
// them from a checked message. Identifiers have their `\ddd` escapes decoded.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "criteria/MatchSpec.h"
#include "dtcp/Message.h"
#include "dtcp/Values.h"

namespace xtap::dtcp {

// Lifetime limits. A limit that is absent, or was given as 0, sets no limit;
// the criterion ends when any set limit runs out.
struct Timeouts {
    std::optional<uint32_t> idle_seconds;   // Timeout-Idle: s without a match
    std::optional<uint32_t> total_seconds;  // Timeout-Total: s since ADD or REFRESH
    std::optional<uint32_t> packets;        // Timeout-Packets
    std::optional<uint64_t> bytes;          // Timeout-Bytes
    bool any() const { return idle_seconds || total_seconds || packets || bytes; }
    bool operator==(const Timeouts&) const = default;
};

// The X-JTap-Cdest-* set: with it, delivery parameters belong to the criterion
// and the Cdest-IDs are the client's labels for them.
struct DeliverySet {
    std::vector<IpAddress> dest_addresses;  // one per Cdest-ID, same order
    std::vector<uint16_t> dest_ports;       // one per Cdest-ID, same order
    IpAddress source_address;               // same family as every destination
    uint16_t source_port = 0;
    uint8_t ttl = 255;  // X-JTap-Cdest-TTL
    bool operator==(const DeliverySet&) const = default;
};

// X-MD-Intercept-Id: hex as written, and the low 30 bits JMirror carries.
struct MdInterceptId {
    std::string hex;
    uint32_t low30 = 0;
    bool operator==(const MdInterceptId&) const = default;
};

// A new field goes into criteria::StoredRequest too (what a criterion keeps).
struct AddRequest {
    std::vector<std::string> cdest_ids;  // 1 or 2
    // input_ifindexes stays empty: the controller resolves input_interfaces.
    criteria::MatchSpec match;
    std::vector<Field> match_text;  // the match fields as received, for LIST
    Timeouts timeouts;
    bool is_static = false;  // Flags: Static: never expires, timeouts are ignored
    bool send_async = false;
    uint8_t priority = 1;  // as requested; the controller adds the user's minimum
    std::optional<DeliverySet> delivery;
    std::vector<std::string> input_interfaces;   // as written, at most 8
    std::vector<std::string> output_interfaces;  // as written, at most 8
    std::optional<std::string> vrf_name;
    std::optional<MdInterceptId> md_intercept_id;
    std::vector<Field> extension_text;  // X-JTap-* and X-MD-Intercept-Id as received, for LIST
};

struct CriteriaIdSelection {
    std::vector<criteria::NumberEntry> ids;
    // The ID when the selection is exactly one plain ID: an unknown one is 431,
    // while a list or range deletes whatever exists in it.
    std::optional<uint32_t> single() const;
    bool contains(uint32_t id) const;
    bool operator==(const CriteriaIdSelection&) const = default;
};

struct CdestSelection {
    std::string cdest_id;
    bool operator==(const CdestSelection&) const = default;
};

using Selection = std::variant<CriteriaIdSelection, CdestSelection>;

struct DeleteRequest {
    Selection selection;
    bool include_static = false;  // Flags: Static
};

struct RefreshRequest {
    Selection selection;
    Timeouts timeouts;  // replace the remaining time; at least one is set
};

enum class ListDetail : uint8_t { Stats, Criteria, Both };

struct ListRequest {
    std::optional<Selection> selection;  // none: all the client's criteria
    ListDetail detail = ListDetail::Both;
};

struct NoopRequest {
    bool send_async = false;  // also send a 131 notification
};

using Request = std::variant<AddRequest, DeleteRequest, RefreshRequest, ListRequest, NoopRequest>;

}  // namespace xtap::dtcp
