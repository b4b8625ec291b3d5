// Status: what `xtapctl status` shows and the metrics endpoint aggregates,
// as plain values with a JSON form (the control protocol's payload).
//
// Confidential by construction: no field can hold a target address or a
// criterion's contents. Clients appear by user name with counts only;
// content destinations by their Cdest-ID labels, never their addresses.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "delivery/CdestCounters.h"

namespace xtap::control {

// AF_XDP socket drops (XDP_STATISTICS): copies lost before userspace saw them.
struct XskDrops {
    uint64_t rx_dropped = 0;                // no UMEM frame / other kernel drops
    uint64_t rx_ring_full = 0;              // the RX ring was full
    uint64_t rx_fill_ring_empty_descs = 0;  // the fill ring ran dry
    uint64_t rx_invalid_descs = 0;

    XskDrops& operator+=(const XskDrops& other);
    bool operator==(const XskDrops&) const = default;
};

// The copy's path, stage by stage. Each stage's figure is the previous
// stage's minus what it names as lost, so an operator can see where copies go.
struct StageCounters {
    // Data plane (BPF stats, summed over CPUs).
    uint64_t matched = 0;   // packets at least one criterion selected
    uint64_t excluded = 0;  // selected but the appliance's own traffic
    // Selected but not cloned: the copy gate (xtap_abi.h) was closed because
    // no copy thread had shown life within dataplane.consumer_timeout_ms, or
    // the copy was over the copy budget (dataplane.copy_budget_pps / _bps).
    uint64_t gate_no_consumer = 0;
    uint64_t gate_budget = 0;
    uint64_t cloned = 0;  // cloned to a capture veth by tc
    uint64_t clone_failed = 0;
    // Of clone_failed: the capture veth's 256-entry ring was full (capA
    // tx_dropped; veth_xmit's drop fails bpf_clone_redirect).
    uint64_t capture_veth_dropped = 0;
    uint64_t capture_no_socket = 0;  // dropped at the capture veth: no AF_XDP socket
    XskDrops xsk;                    // dropped by the AF_XDP socket
    // Copy pump (userspace).
    uint64_t received = 0;      // frames read from AF_XDP
    uint64_t no_metadata = 0;   // frames without the capture program's metadata
    uint64_t late = 0;          // fragments released by the reorderer's timeout
    uint64_t no_criterion = 0;  // every matching criterion withdrawn in between
    uint64_t not_ip = 0;        // not an IP packet after the L2 header
    uint64_t to_send = 0;       // copies for distinct content destinations
    uint64_t encapsulated = 0;  // copies encapsulated and queued to a socket
    // Delivery: sent, bytes and drops by reason, summed over every Cdest.
    // Invariant once the sender is flushed: sent + dropped = to_send.
    delivery::CdestCounters delivery;
    // Of the copies sent: those that left inside a UDP GSO message (one trip
    // through the stack for up to 64 copies); and the sockets that fell back
    // for good to one message per copy (a route that refuses UDP_SEGMENT).
    uint64_t sent_in_gso = 0;
    uint64_t gso_fallbacks = 0;

    uint64_t dropped() const { return delivery.droppedTotal(); }
    uint64_t gated() const { return gate_no_consumer + gate_budget; }
    // Copies lost between cloned and received, by a named stage. Invalid
    // fill descriptors are skipped, not a lost packet, so they are not here.
    uint64_t captureLost() const { return capture_no_socket + xsk.rx_dropped + xsk.rx_ring_full; }
    // cloned - received - captureLost(): copies still on their way (in the
    // veth ring and the AF_XDP ring: a few hundred at most) or lost where
    // nothing counts them. Negative only if the counters disagree.
    int64_t captureUnaccounted() const {
        return static_cast<int64_t>(cloned) - static_cast<int64_t>(received) -
               static_cast<int64_t>(captureLost());
    }
    bool balanced() const { return delivery.copies_sent + dropped() == to_send; }
    bool operator==(const StageCounters&) const = default;
};

struct InterfaceStatus {
    std::string name;
    std::vector<std::string> aliases;
    std::string xdp_mode;  // "native" or "generic", as attached
    std::string capture;   // the capture veth end holding the AF_XDP socket
    uint64_t capture_veth_dropped = 0;
    XskDrops xsk;
    bool operator==(const InterfaceStatus&) const = default;
};

struct TunnelStatus {
    std::string name;
    std::string state;  // "up", "establishing", "waiting", "disconnected"
    uint64_t ups = 0;
    uint64_t downs = 0;
    uint64_t initiations = 0;
    bool up() const { return state == "up"; }
    bool operator==(const TunnelStatus&) const = default;
};

struct ClientStatus {
    std::string user;
    uint64_t criteria = 0;
    uint64_t content_destinations = 0;
    bool operator==(const ClientStatus&) const = default;
};

struct CdestLabel {
    std::string user;
    std::string cdest_id;
    bool operator==(const CdestLabel&) const = default;
};

// One outer header xtap sends to; several users' Cdest-IDs may share it.
struct CdestStatus {
    uint32_t id = 0;  // the sender's number, stable while xtapd runs
    std::vector<CdestLabel> labels;
    delivery::CdestCounters counters;
    bool operator==(const CdestStatus&) const = default;
};

struct Status {
    std::string version;
    uint64_t uptime_s = 0;
    uint64_t criteria = 0;
    std::vector<InterfaceStatus> interfaces;
    std::vector<TunnelStatus> tunnels;
    std::vector<ClientStatus> clients;
    StageCounters stages;
    std::vector<CdestStatus> cdests;
    bool operator==(const Status&) const = default;
};

nlohmann::json toJson(const delivery::CdestCounters& counters);
nlohmann::json toJson(const Status& status);
// Fails (with the reason) on a document that is not a Status.
std::variant<Status, std::string> statusFromJson(const nlohmann::json& document);

// The readable form `xtapctl status` prints.
std::string renderTable(const Status& status);

}  // namespace xtap::control
