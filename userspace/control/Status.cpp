#include "control/Status.h"

#include <fmt/format.h>

#include <algorithm>

namespace xtap::control {

using json = nlohmann::json;
using delivery::CdestCounters;
using delivery::DropReason;
using delivery::kDropReasonCount;

namespace {

constexpr DropReason kReasons[kDropReasonCount] = {DropReason::RingFull, DropReason::TunnelDown,
                                                   DropReason::SendError, DropReason::RateLimit};

json toJson(const XskDrops& x) {
    return {{"rx_dropped", x.rx_dropped},
            {"rx_ring_full", x.rx_ring_full},
            {"rx_fill_ring_empty_descs", x.rx_fill_ring_empty_descs},
            {"rx_invalid_descs", x.rx_invalid_descs}};
}

XskDrops xskFromJson(const json& j) {
    XskDrops x;
    x.rx_dropped = j.at("rx_dropped").get<uint64_t>();
    x.rx_ring_full = j.at("rx_ring_full").get<uint64_t>();
    x.rx_fill_ring_empty_descs = j.at("rx_fill_ring_empty_descs").get<uint64_t>();
    x.rx_invalid_descs = j.at("rx_invalid_descs").get<uint64_t>();
    return x;
}

CdestCounters countersFromJson(const json& j) {
    CdestCounters c;
    c.copies_sent = j.at("sent").get<uint64_t>();
    c.bytes_sent = j.at("sent_bytes").get<uint64_t>();
    c.dropped_bytes = j.at("dropped_bytes").get<uint64_t>();
    const json& by = j.at("dropped_by_reason");
    for (DropReason r : kReasons)
        c.drops[static_cast<size_t>(r)] = by.at(std::string(delivery::name(r))).get<uint64_t>();
    if (j.at("dropped").get<uint64_t>() != c.droppedTotal())
        throw std::invalid_argument("dropped is not the sum of dropped_by_reason");
    return c;
}

}  // namespace

XskDrops& XskDrops::operator+=(const XskDrops& other) {
    rx_dropped += other.rx_dropped;
    rx_ring_full += other.rx_ring_full;
    rx_fill_ring_empty_descs += other.rx_fill_ring_empty_descs;
    rx_invalid_descs += other.rx_invalid_descs;
    return *this;
}

json toJson(const CdestCounters& c) {
    json by = json::object();
    for (DropReason r : kReasons) by[std::string(delivery::name(r))] = c.dropped(r);
    return {{"sent", c.copies_sent},
            {"sent_bytes", c.bytes_sent},
            {"dropped", c.droppedTotal()},
            {"dropped_by_reason", by},
            {"dropped_bytes", c.dropped_bytes}};
}

json toJson(const Status& s) {
    json j;
    j["version"] = s.version;
    j["uptime_s"] = s.uptime_s;
    j["criteria"] = s.criteria;
    j["interfaces"] = json::array();
    for (const auto& i : s.interfaces)
        j["interfaces"].push_back({{"name", i.name},
                                   {"aliases", i.aliases},
                                   {"xdp_mode", i.xdp_mode},
                                   {"capture", i.capture},
                                   {"capture_veth_dropped", i.capture_veth_dropped},
                                   {"xsk", toJson(i.xsk)}});
    j["tunnels"] = json::array();
    for (const auto& t : s.tunnels)
        j["tunnels"].push_back({{"name", t.name},
                                {"state", t.state},
                                {"ups", t.ups},
                                {"downs", t.downs},
                                {"initiations", t.initiations}});
    j["clients"] = json::array();
    for (const auto& c : s.clients)
        j["clients"].push_back({{"user", c.user},
                                {"criteria", c.criteria},
                                {"content_destinations", c.content_destinations}});
    const StageCounters& st = s.stages;
    json counters = {{"matched", st.matched},
                     {"excluded", st.excluded},
                     {"gate_no_consumer", st.gate_no_consumer},
                     {"gate_budget", st.gate_budget},
                     {"cloned", st.cloned},
                     {"clone_failed", st.clone_failed},
                     {"capture_veth_dropped", st.capture_veth_dropped},
                     {"capture_no_socket", st.capture_no_socket},
                     {"xsk", toJson(st.xsk)},
                     {"received", st.received},
                     {"capture_lost", st.captureLost()},
                     {"capture_unaccounted", st.captureUnaccounted()},
                     {"no_metadata", st.no_metadata},
                     {"late", st.late},
                     {"no_criterion", st.no_criterion},
                     {"not_ip", st.not_ip},
                     {"to_send", st.to_send},
                     {"encapsulated", st.encapsulated},
                     {"sent_in_gso", st.sent_in_gso},
                     {"gso_fallbacks", st.gso_fallbacks}};
    counters.update(toJson(st.delivery));
    j["counters"] = counters;
    j["cdests"] = json::array();
    for (const auto& d : s.cdests) {
        json labels = json::array();
        for (const auto& l : d.labels)
            labels.push_back({{"user", l.user}, {"cdest_id", l.cdest_id}});
        json e = {{"id", d.id}, {"labels", labels}};
        e.update(toJson(d.counters));
        j["cdests"].push_back(e);
    }
    return j;
}

std::variant<Status, std::string> statusFromJson(const json& j) {
    try {
        Status s;
        s.version = j.at("version").get<std::string>();
        s.uptime_s = j.at("uptime_s").get<uint64_t>();
        s.criteria = j.at("criteria").get<uint64_t>();
        // capture_veth_dropped: absent from an older xtapd's document.
        for (const auto& i : j.at("interfaces"))
            s.interfaces.push_back(
                {i.at("name").get<std::string>(), i.at("aliases").get<std::vector<std::string>>(),
                 i.at("xdp_mode").get<std::string>(), i.at("capture").get<std::string>(),
                 i.value("capture_veth_dropped", uint64_t(0)), xskFromJson(i.at("xsk"))});
        for (const auto& t : j.at("tunnels"))
            s.tunnels.push_back({t.at("name").get<std::string>(), t.at("state").get<std::string>(),
                                 t.at("ups").get<uint64_t>(), t.at("downs").get<uint64_t>(),
                                 t.at("initiations").get<uint64_t>()});
        for (const auto& c : j.at("clients"))
            s.clients.push_back({c.at("user").get<std::string>(), c.at("criteria").get<uint64_t>(),
                                 c.at("content_destinations").get<uint64_t>()});
        const json& c = j.at("counters");
        StageCounters& st = s.stages;
        st.matched = c.at("matched").get<uint64_t>();
        st.excluded = c.at("excluded").get<uint64_t>();
        // gate_*: absent from an older xtapd's document.
        st.gate_no_consumer = c.value("gate_no_consumer", uint64_t(0));
        st.gate_budget = c.value("gate_budget", uint64_t(0));
        st.cloned = c.at("cloned").get<uint64_t>();
        st.clone_failed = c.at("clone_failed").get<uint64_t>();
        st.capture_veth_dropped = c.value("capture_veth_dropped", uint64_t(0));
        st.capture_no_socket = c.at("capture_no_socket").get<uint64_t>();
        st.xsk = xskFromJson(c.at("xsk"));
        st.received = c.at("received").get<uint64_t>();
        st.no_metadata = c.at("no_metadata").get<uint64_t>();
        st.late = c.at("late").get<uint64_t>();
        st.no_criterion = c.at("no_criterion").get<uint64_t>();
        st.not_ip = c.at("not_ip").get<uint64_t>();
        st.to_send = c.at("to_send").get<uint64_t>();
        st.encapsulated = c.at("encapsulated").get<uint64_t>();
        // Absent from an older xtapd's document.
        st.sent_in_gso = c.value("sent_in_gso", uint64_t(0));
        st.gso_fallbacks = c.value("gso_fallbacks", uint64_t(0));
        st.delivery = countersFromJson(c);
        for (const auto& d : j.at("cdests")) {
            CdestStatus e;
            e.id = d.at("id").get<uint32_t>();
            for (const auto& l : d.at("labels"))
                e.labels.push_back(
                    {l.at("user").get<std::string>(), l.at("cdest_id").get<std::string>()});
            e.counters = countersFromJson(d);
            s.cdests.push_back(std::move(e));
        }
        return s;
    } catch (const std::exception& e) {
        return std::string("not a status document: ") + e.what();
    }
}

namespace {

// Left-aligned columns, as wide as their widest cell.
std::string table(const std::vector<std::vector<std::string>>& rows) {
    std::vector<size_t> width;
    for (const auto& r : rows)
        for (size_t i = 0; i < r.size(); ++i) {
            if (width.size() <= i) width.push_back(0);
            width[i] = std::max(width[i], r[i].size());
        }
    std::string out;
    for (const auto& r : rows) {
        std::string line = "  ";
        for (size_t i = 0; i < r.size(); ++i)
            line += i + 1 < r.size() ? fmt::format("{:<{}}  ", r[i], width[i]) : r[i];
        out += line + "\n";
    }
    return out;
}

std::string join(const std::vector<std::string>& parts, std::string_view sep) {
    std::string out;
    for (const auto& p : parts) out += (out.empty() ? "" : std::string(sep)) + p;
    return out;
}

std::string drops(const CdestCounters& c) {
    std::vector<std::string> parts;
    for (DropReason r : kReasons)
        if (c.dropped(r)) parts.push_back(fmt::format("{} {}", delivery::name(r), c.dropped(r)));
    return parts.empty() ? "0" : join(parts, ", ");
}

}  // namespace

std::string renderTable(const Status& s) {
    std::string out =
        fmt::format("xtapd {}, up {} s, {} criteria\n", s.version, s.uptime_s, s.criteria);

    out += "\nInterfaces\n";
    std::vector<std::vector<std::string>> rows{{"NAME", "ALIASES", "XDP", "CAPTURE"}};
    for (const auto& i : s.interfaces)
        rows.push_back(
            {i.name, i.aliases.empty() ? "-" : join(i.aliases, ","), i.xdp_mode, i.capture});
    out += rows.size() > 1 ? table(rows) : "  (none)\n";

    out += "\nTunnels\n";
    rows = {{"NAME", "STATE", "UPS", "DOWNS", "INITIATIONS"}};
    for (const auto& t : s.tunnels)
        rows.push_back({t.name, t.state, std::to_string(t.ups), std::to_string(t.downs),
                        std::to_string(t.initiations)});
    out += rows.size() > 1 ? table(rows) : "  (none: cleartext destinations only)\n";

    out += "\nClients\n";
    rows = {{"USER", "CRITERIA", "CDESTS"}};
    for (const auto& c : s.clients)
        rows.push_back(
            {c.user, std::to_string(c.criteria), std::to_string(c.content_destinations)});
    out += rows.size() > 1 ? table(rows) : "  (none)\n";

    const StageCounters& st = s.stages;
    const XskDrops& x = st.xsk;
    out += "\nCopy path\n";
    rows = {
        {"matched", std::to_string(st.matched), "packets selected by a criterion (XDP)"},
        {"excluded", std::to_string(st.excluded), "the appliance's own traffic, not copied"},
        {"not cloned", std::to_string(st.gated()),
         fmt::format("copy gate: no live copy thread {}, over the copy budget {}",
                     st.gate_no_consumer, st.gate_budget)},
        {"cloned", std::to_string(st.cloned),
         fmt::format("to the capture veth ({} failed)", st.clone_failed)},
        {"veth drops", std::to_string(st.capture_veth_dropped),
         "of the failed clones: the capture veth's ring was full"},
        {"no socket", std::to_string(st.capture_no_socket), "dropped: no AF_XDP socket"},
        {"ring drops", std::to_string(x.rx_dropped + x.rx_ring_full + x.rx_invalid_descs),
         fmt::format("AF_XDP: dropped {}, ring full {}, invalid {}; fill ring empty {}",
                     x.rx_dropped, x.rx_ring_full, x.rx_invalid_descs, x.rx_fill_ring_empty_descs)},
        {"received", std::to_string(st.received), "from AF_XDP"},
        {"discarded", std::to_string(st.no_metadata + st.no_criterion + st.not_ip),
         fmt::format("no metadata {}, criterion gone {}, not IP {}", st.no_metadata,
                     st.no_criterion, st.not_ip)},
        {"late", std::to_string(st.late), "fragments released by timeout (still sent)"},
        {"to send", std::to_string(st.to_send), "copies, one per distinct content destination"},
        {"encapsulated", std::to_string(st.encapsulated), "queued to a socket"},
        {"sent", std::to_string(st.delivery.copies_sent),
         fmt::format("{} bytes; {} of them in UDP GSO messages; GSO fallbacks {}",
                     st.delivery.bytes_sent, st.sent_in_gso, st.gso_fallbacks)},
        {"dropped", std::to_string(st.dropped()), drops(st.delivery)},
    };
    out += table(rows);
    out += fmt::format(
        "  cloned = received + lost ({} no socket, {} AF_XDP) {:+} in flight or uncounted\n",
        st.capture_no_socket, x.rx_dropped + x.rx_ring_full, st.captureUnaccounted());
    if (!st.balanced())
        out += fmt::format("  note: sent + dropped = {}, to send = {}\n",
                           st.delivery.copies_sent + st.dropped(), st.to_send);

    out += "\nContent destinations\n";
    rows = {{"ID", "CDEST-ID (USER)", "SENT", "BYTES", "DROPPED"}};
    for (const auto& d : s.cdests) {
        std::vector<std::string> names;
        for (const auto& l : d.labels) names.push_back(l.cdest_id + " (" + l.user + ")");
        rows.push_back({std::to_string(d.id), names.empty() ? "-" : join(names, ", "),
                        std::to_string(d.counters.copies_sent),
                        std::to_string(d.counters.bytes_sent), drops(d.counters)});
    }
    out += rows.size() > 1 ? table(rows) : "  (none yet)\n";
    return out;
}

}  // namespace xtap::control
