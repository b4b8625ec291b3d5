// StatusReport: the copy pump's own counters, the names each sender Cdest
// answers to, the tunnels' last known state, and the assembly of all of it
// (with the BPF and AF_XDP figures) into a control::Status for
// `xtapctl status` and the metrics endpoint.
#pragma once

#include <array>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "config/Config.h"
#include "control/Status.h"
#include "dataplane/kernel/CopyPath.h"
#include "delivery/UdpSender.h"
#include "ipsec/TunnelManager.h"
#include "xtap_abi.h"

namespace xtap::app {

// Counted by the copy pump, under xtapd's lock.
struct PumpCounters {
    uint64_t received = 0;      // frames read from AF_XDP
    uint64_t no_metadata = 0;   // without the capture program's metadata
    uint64_t delivered = 0;     // out of the fragment reorderer
    uint64_t late = 0;          // of which released by timeout
    uint64_t no_criterion = 0;  // every matching criterion withdrawn in between
    uint64_t not_ip = 0;
    uint64_t to_send = 0;       // one per distinct Cdest of each delivered copy
    uint64_t encapsulated = 0;  // queued to a socket (sent or dropped at flush)

    PumpCounters& operator+=(const PumpCounters& o) {
        received += o.received;
        no_metadata += o.no_metadata;
        delivered += o.delivered;
        late += o.late;
        no_criterion += o.no_criterion;
        not_ip += o.not_ip;
        to_send += o.to_send;
        encapsulated += o.encapsulated;
        return *this;
    }
};

// The sender's Cdest numbers and the (user, Cdest-ID) labels that led to
// each: several users' Cdest-IDs may name one outer header.
class CdestLabels {
  public:
    // Cheap when already known (the usual case, per copy).
    void note(uint32_t id, std::string_view user, std::string_view cdest_id);
    const std::map<uint32_t, std::vector<control::CdestLabel>>& all() const { return labels_; }

  private:
    std::map<uint32_t, std::vector<control::CdestLabel>> labels_;
};

// Written by the tunnel manager's thread (observer), read by status.
class TunnelBoard {
  public:
    void reset(const std::vector<ipsec::TunnelStatus>& all);
    void update(const ipsec::TunnelStatus& one);
    std::vector<control::TunnelStatus> snapshot() const;

  private:
    mutable std::mutex mutex_;
    std::vector<control::TunnelStatus> tunnels_;
};

struct StatusInputs {
    const config::Config& config;
    uint64_t uptime_s = 0;
    uint64_t criteria = 0;
    std::vector<control::ClientStatus> clients;
    const std::array<uint64_t, XTAP_STAT_MAX>& bpf_stats;
    std::vector<dataplane::kernel::TransitInterface> interfaces;
    std::vector<dataplane::kernel::CaptureCounters> capture;  // one per interface, same order
    std::vector<control::TunnelStatus> tunnels;
    const PumpCounters& pump;                                    // every copy thread's, summed
    std::map<uint32_t, delivery::CdestCounters> cdest_counters;  // every sender's, summed
    const CdestLabels& cdests;
    uint64_t sent_in_gso = 0;  // every sender's gsoCopies(), summed
    uint64_t gso_fallbacks = 0;
};

// The BPF counters live in the pinned maps and outlast an xtapd run (and a
// restart keeps the maps); the pump's, the sockets' and the capture veths'
// start from 0 with xtapd. Status counts every stage since xtapd started, so
// that cloned = received + the named losses holds after a restart too.
std::array<uint64_t, XTAP_STAT_MAX> sinceStart(const std::array<uint64_t, XTAP_STAT_MAX>& now,
                                               const std::array<uint64_t, XTAP_STAT_MAX>& at_start);

control::Status buildStatus(const StatusInputs& in);

}  // namespace xtap::app
