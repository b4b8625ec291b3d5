#include "control/Metrics.h"

#include <fmt/format.h>

namespace xtap::control {

namespace {

using delivery::DropReason;

class Exposition {
  public:
    // One metric family: HELP and TYPE once, then its samples.
    void family(std::string_view name, std::string_view type, std::string_view help) {
        out_ += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
        name_ = name;
    }
    void sample(uint64_t value) { out_ += fmt::format("{} {}\n", name_, value); }
    void sample(std::string_view label, std::string_view label_value, uint64_t value) {
        out_ +=
            fmt::format("{}{{{}=\"{}\"}} {}\n", name_, label, escapeLabelValue(label_value), value);
    }
    void counter(std::string_view name, std::string_view help, uint64_t value) {
        family(name, "counter", help);
        sample(value);
    }
    void gauge(std::string_view name, std::string_view help, uint64_t value) {
        family(name, "gauge", help);
        sample(value);
    }
    std::string take() { return std::move(out_); }

  private:
    std::string out_;
    std::string name_;
};

}  // namespace

std::string escapeLabelValue(std::string_view value) {
    std::string out;
    out.reserve(value.size());
    for (char c : value) {
        if (c == '\\')
            out += "\\\\";
        else if (c == '"')
            out += "\\\"";
        else if (c == '\n')
            out += "\\n";
        else
            out += c;
    }
    return out;
}

std::string formatMetrics(const Status& s) {
    const StageCounters& st = s.stages;
    Exposition e;
    e.gauge("xtap_uptime_seconds", "Seconds since xtapd started.", s.uptime_s);
    e.gauge("xtap_criteria", "Criteria installed, all clients together.", s.criteria);
    e.gauge("xtap_interfaces", "Transit interfaces with xtap attached.", s.interfaces.size());
    e.counter("xtap_matched_packets_total", "Transit packets selected by at least one criterion.",
              st.matched);
    e.counter("xtap_excluded_packets_total",
              "Selected packets of the appliance's own traffic, not copied.", st.excluded);
    e.family("xtap_copies_gated_total", "counter",
             "Selected packets the copy gate kept from being cloned.");
    e.sample("reason", "no_consumer", st.gate_no_consumer);
    e.sample("reason", "budget", st.gate_budget);
    e.counter("xtap_cloned_packets_total", "Selected packets cloned to a capture veth.", st.cloned);
    e.counter("xtap_clone_failed_total", "Selected packets tc could not clone.", st.clone_failed);
    e.counter("xtap_capture_veth_dropped_total",
              "Of the failed clones: the capture veth's ring was full.", st.capture_veth_dropped);
    e.counter("xtap_capture_no_socket_total",
              "Copies dropped at the capture veth: no AF_XDP socket.", st.capture_no_socket);
    e.family("xtap_xsk_drops_total", "counter",
             "Copies dropped by the AF_XDP sockets (XDP_STATISTICS).");
    e.sample("reason", "rx_dropped", st.xsk.rx_dropped);
    e.sample("reason", "rx_ring_full", st.xsk.rx_ring_full);
    e.sample("reason", "rx_invalid_descs", st.xsk.rx_invalid_descs);
    e.counter("xtap_xsk_fill_ring_empty_total", "Times an AF_XDP fill ring was found empty.",
              st.xsk.rx_fill_ring_empty_descs);
    e.counter("xtap_copies_received_total", "Copies read from the AF_XDP sockets.", st.received);
    e.family("xtap_copies_discarded_total", "counter", "Received copies with nothing to deliver.");
    e.sample("reason", "no_metadata", st.no_metadata);
    e.sample("reason", "no_criterion", st.no_criterion);
    e.sample("reason", "not_ip", st.not_ip);
    e.counter("xtap_copies_late_total", "Fragments released by the reorderer's timeout.", st.late);
    e.counter("xtap_copies_to_send_total",
              "Copies owed to content destinations (one per distinct Cdest).", st.to_send);
    e.counter("xtap_copies_encapsulated_total", "Copies encapsulated and queued to a socket.",
              st.encapsulated);
    e.counter("xtap_copies_sent_total", "Copies the kernel accepted for sending.",
              st.delivery.copies_sent);
    e.counter("xtap_copy_bytes_sent_total", "UDP payload bytes of the copies sent.",
              st.delivery.bytes_sent);
    e.counter("xtap_copies_sent_in_gso_total",
              "Copies sent inside a UDP GSO message (several copies per send).", st.sent_in_gso);
    e.counter("xtap_gso_fallbacks_total",
              "Sockets that fell back from UDP GSO to one message per copy.", st.gso_fallbacks);
    e.family("xtap_copies_dropped_total", "counter",
             "Copies dropped on the way to a content destination.");
    for (size_t i = 0; i < delivery::kDropReasonCount; ++i) {
        const auto reason = static_cast<DropReason>(i);
        e.sample("reason", delivery::name(reason), st.delivery.dropped(reason));
    }
    e.counter("xtap_copy_bytes_dropped_total", "UDP payload bytes of the copies dropped.",
              st.delivery.dropped_bytes);
    if (!s.tunnels.empty()) {
        e.family("xtap_tunnel_up", "gauge", "1 while the tunnel's CHILD_SA is installed.");
        for (const auto& t : s.tunnels) e.sample("tunnel", t.name, t.up() ? 1 : 0);
        e.family("xtap_tunnel_downs_total", "counter", "Times the tunnel went down.");
        for (const auto& t : s.tunnels) e.sample("tunnel", t.name, t.downs);
    }
    return e.take();
}

}  // namespace xtap::control
