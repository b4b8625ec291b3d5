#include "StatusReport.h"

#include <algorithm>

namespace xtap::app {

namespace {

control::TunnelStatus view(const ipsec::TunnelStatus& s) {
    return {s.name, std::string(ipsec::name(s.state)), s.ups, s.downs, s.initiations};
}

control::XskDrops drops(const dataplane::kernel::XskStats& s) {
    return {s.rx_dropped, s.rx_ring_full, s.rx_fill_ring_empty_descs, s.rx_invalid_descs};
}

}  // namespace

void CdestLabels::note(uint32_t id, std::string_view user, std::string_view cdest_id) {
    auto& labels = labels_[id];
    for (const auto& l : labels)
        if (l.user == user && l.cdest_id == cdest_id) return;
    labels.push_back({std::string(user), std::string(cdest_id)});
}

void TunnelBoard::reset(const std::vector<ipsec::TunnelStatus>& all) {
    std::lock_guard g(mutex_);
    tunnels_.clear();
    for (const auto& s : all) tunnels_.push_back(view(s));
}

void TunnelBoard::update(const ipsec::TunnelStatus& one) {
    std::lock_guard g(mutex_);
    auto it = std::find_if(tunnels_.begin(), tunnels_.end(),
                           [&](const auto& t) { return t.name == one.name; });
    if (it == tunnels_.end())
        tunnels_.push_back(view(one));
    else
        *it = view(one);
}

std::vector<control::TunnelStatus> TunnelBoard::snapshot() const {
    std::lock_guard g(mutex_);
    return tunnels_;
}

std::array<uint64_t, XTAP_STAT_MAX> sinceStart(
    const std::array<uint64_t, XTAP_STAT_MAX>& now,
    const std::array<uint64_t, XTAP_STAT_MAX>& at_start) {
    std::array<uint64_t, XTAP_STAT_MAX> out{};
    // A counter below its start value means the maps were recreated: count from 0.
    for (size_t i = 0; i < out.size(); ++i)
        out[i] = now[i] >= at_start[i] ? now[i] - at_start[i] : now[i];
    return out;
}

control::Status buildStatus(const StatusInputs& in) {
    control::Status s;
    s.version = XTAP_VERSION;
    s.uptime_s = in.uptime_s;
    s.criteria = in.criteria;
    s.clients = in.clients;
    s.tunnels = in.tunnels;

    control::StageCounters& st = s.stages;
    const auto& b = in.bpf_stats;
    st.matched = b[XTAP_STAT_MATCHED];
    st.excluded = b[XTAP_STAT_EXCLUDED];
    st.gate_no_consumer = b[XTAP_STAT_GATE_NO_CONSUMER];
    st.gate_budget = b[XTAP_STAT_GATE_BUDGET];
    st.cloned = b[XTAP_STAT_CLONED];
    st.clone_failed = b[XTAP_STAT_CLONE_FAILED];
    st.capture_no_socket = b[XTAP_STAT_CAPTURE_NO_SOCKET];
    for (size_t i = 0; i < in.interfaces.size(); ++i) {
        const auto& t = in.interfaces[i];
        control::InterfaceStatus itf;
        itf.name = t.name;
        for (const auto& c : in.config.interfaces)
            if (c.name == t.name) itf.aliases = c.alias;
        itf.xdp_mode = t.modeName();
        itf.capture = t.capture;
        if (i < in.capture.size()) {
            itf.xsk = drops(in.capture[i].xsk);
            itf.capture_veth_dropped = in.capture[i].veth_dropped;
        }
        st.xsk += itf.xsk;
        st.capture_veth_dropped += itf.capture_veth_dropped;
        s.interfaces.push_back(std::move(itf));
    }
    st.received = in.pump.received;
    st.no_metadata = in.pump.no_metadata;
    st.late = in.pump.late;
    st.no_criterion = in.pump.no_criterion;
    st.not_ip = in.pump.not_ip;
    st.to_send = in.pump.to_send;
    st.encapsulated = in.pump.encapsulated;
    st.sent_in_gso = in.sent_in_gso;
    st.gso_fallbacks = in.gso_fallbacks;
    for (const auto& [id, labels] : in.cdests.all()) {
        control::CdestStatus d;
        d.id = id;
        d.labels = labels;
        if (auto c = in.cdest_counters.find(id); c != in.cdest_counters.end())
            d.counters = c->second;
        st.delivery += d.counters;
        s.cdests.push_back(std::move(d));
    }
    return s;
}

}  // namespace xtap::app
