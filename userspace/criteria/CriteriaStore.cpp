#include "criteria/CriteriaStore.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <limits>
#include <set>
#include <stdexcept>
#include <tuple>

#include <nlohmann/json.hpp>

namespace xtap::criteria {

using dataplane::Address;
using dataplane::Family;
using nlohmann::json;

namespace {

constexpr uint64_t kNsPerSecond = 1'000'000'000;
constexpr std::string_view kFormatName = "xtap-criteria";
constexpr int kFormatVersion = 1;

uint64_t saturatingSub(uint64_t a, uint64_t b) {
    return a > b ? a - b : 0;
}

// Whole seconds, rounded up: only an exhausted limit shows 0.
uint32_t secondsLeft(uint64_t ns) {
    return static_cast<uint32_t>((ns + kNsPerSecond - 1) / kNsPerSecond);
}

MatchCounters operator+(const MatchCounters& a, const MatchCounters& b) {
    return MatchCounters{a.packets + b.packets, a.bytes + b.bytes};
}

using Endpoint = std::tuple<Family, Address, uint16_t>;

Endpoint endpointOf(const ContentDestination& d) {
    return {d.params.outer.family, d.params.outer.destination, d.params.outer.destination_port};
}

// --- JSON encoding of the value types ----------------------------------------------
// Plain functions rather than nlohmann's to_json hooks: the DTCP types belong to
// another namespace, and every field name stays visible here.

const json& arrayOf(const json& j) {
    if (!j.is_array()) throw std::invalid_argument("expected an array");
    return j;
}

// Checked reads: nlohmann's get<uint8_t>() would wrap an out-of-range number.
template <typename T>
T number(const json& j) {
    if (!j.is_number_unsigned()) throw std::invalid_argument("expected an unsigned integer");
    const uint64_t value = j.get<uint64_t>();
    if (value > std::numeric_limits<T>::max()) throw std::invalid_argument("number out of range");
    return static_cast<T>(value);
}

template <typename T>
std::vector<T> numbers(const json& j) {
    std::vector<T> out;
    for (const json& value : arrayOf(j)) out.push_back(number<T>(value));
    return out;
}

std::string addressText(Family family, const Address& address) {
    char text[INET6_ADDRSTRLEN] = {};
    inet_ntop(family == Family::V4 ? AF_INET : AF_INET6, address.data(), text, sizeof text);
    return text;
}

// Throws std::invalid_argument when `text` is not an address of `family`.
Address addressFrom(Family family, const std::string& text) {
    Address address{};
    if (inet_pton(family == Family::V4 ? AF_INET : AF_INET6, text.c_str(), address.data()) != 1) {
        throw std::invalid_argument("not an IPv" + std::to_string(static_cast<int>(family)) +
                                    " address");
    }
    return address;
}

Family familyFrom(const json& j) {
    const int value = j.get<int>();
    if (value == 4) return Family::V4;
    if (value == 6) return Family::V6;
    throw std::invalid_argument("family must be 4 or 6");
}

// The DTCP timestamp format; dtcp's own formatter is in xtap_dtcp, which
// xtap_criteria does not link.
std::string timestampText(const dtcp::Timestamp& t) {
    char text[40];
    std::snprintf(text, sizeof text, "%04u-%02u-%02u %02u:%02u:%02u.%03u", unsigned{t.year},
                  unsigned{t.month}, unsigned{t.day}, unsigned{t.hour}, unsigned{t.minute},
                  unsigned{t.second}, unsigned{t.millisecond});
    return text;
}

dtcp::Timestamp timestampFrom(const std::string& text) {
    unsigned year, month, day, hour, minute, second, millisecond;
    char tail;
    if (std::sscanf(text.c_str(), "%4u-%2u-%2u %2u:%2u:%2u.%3u%c", &year, &month, &day, &hour,
                    &minute, &second, &millisecond, &tail) != 7 ||
        month < 1 || month > 12 || day < 1 || day > 31 || hour > 23 || minute > 59 || second > 60) {
        throw std::invalid_argument("not a YYYY-MM-DD HH:MM:SS.mmm time");
    }
    return dtcp::Timestamp{static_cast<uint16_t>(year),       static_cast<uint8_t>(month),
                           static_cast<uint8_t>(day),         static_cast<uint8_t>(hour),
                           static_cast<uint8_t>(minute),      static_cast<uint8_t>(second),
                           static_cast<uint16_t>(millisecond)};
}

json countersJson(const MatchCounters& c) {
    return json{{"packets", c.packets}, {"bytes", c.bytes}};
}

MatchCounters countersFrom(const json& j) {
    return MatchCounters{number<uint64_t>(j.at("packets")), number<uint64_t>(j.at("bytes"))};
}

json fieldsJson(const std::vector<dtcp::Field>& fields) {
    json out = json::array();
    for (const dtcp::Field& f : fields) out.push_back(json::array({f.name, f.value}));
    return out;
}

std::vector<dtcp::Field> fieldsFrom(const json& j) {
    std::vector<dtcp::Field> out;
    for (const json& f : arrayOf(j)) {
        out.push_back(dtcp::Field{f.at(0).get<std::string>(), f.at(1).get<std::string>()});
    }
    return out;
}

json timeoutsJson(const dtcp::Timeouts& t) {
    json out = json::object();
    if (t.idle_seconds) out["idle_seconds"] = *t.idle_seconds;
    if (t.total_seconds) out["total_seconds"] = *t.total_seconds;
    if (t.packets) out["packets"] = *t.packets;
    if (t.bytes) out["bytes"] = *t.bytes;
    return out;
}

dtcp::Timeouts timeoutsFrom(const json& j) {
    dtcp::Timeouts t;
    if (j.contains("idle_seconds")) t.idle_seconds = number<uint32_t>(j.at("idle_seconds"));
    if (j.contains("total_seconds")) t.total_seconds = number<uint32_t>(j.at("total_seconds"));
    if (j.contains("packets")) t.packets = number<uint32_t>(j.at("packets"));
    if (j.contains("bytes")) t.bytes = number<uint64_t>(j.at("bytes"));
    return t;
}

json addressEntriesJson(Family family, const std::vector<AddressEntry>& entries) {
    json out = json::array();
    for (const AddressEntry& e : entries) {
        out.push_back({{"negated", e.negated},
                       {"lo", addressText(family, e.lo)},
                       {"hi", addressText(family, e.hi)}});
    }
    return out;
}

std::vector<AddressEntry> addressEntriesFrom(Family family, const json& j) {
    std::vector<AddressEntry> out;
    for (const json& e : arrayOf(j)) {
        out.push_back(AddressEntry{e.at("negated").get<bool>(),
                                   addressFrom(family, e.at("lo").get<std::string>()),
                                   addressFrom(family, e.at("hi").get<std::string>())});
    }
    return out;
}

json numberEntriesJson(const std::vector<NumberEntry>& entries) {
    json out = json::array();
    for (const NumberEntry& e : entries) {
        out.push_back({{"negated", e.negated}, {"lo", e.lo}, {"hi", e.hi}});
    }
    return out;
}

std::vector<NumberEntry> numberEntriesFrom(const json& j) {
    std::vector<NumberEntry> out;
    for (const json& e : arrayOf(j)) {
        out.push_back(NumberEntry{e.at("negated").get<bool>(), number<uint64_t>(e.at("lo")),
                                  number<uint64_t>(e.at("hi"))});
    }
    return out;
}

json matchJson(const MatchSpec& m) {
    return json{{"family", static_cast<int>(m.family)},
                {"src", addressEntriesJson(m.family, m.src)},
                {"dst", addressEntriesJson(m.family, m.dst)},
                {"proto", numberEntriesJson(m.proto)},
                {"sport", numberEntriesJson(m.sport)},
                {"dport", numberEntriesJson(m.dport)},
                {"icmp_type", numberEntriesJson(m.icmp_type)},
                {"icmp_code", numberEntriesJson(m.icmp_code)},
                {"input_ifindexes", m.input_ifindexes},
                {"output_ifindexes", m.output_ifindexes}};
}

MatchSpec matchFrom(const json& j) {
    MatchSpec m;
    m.family = familyFrom(j.at("family"));
    m.src = addressEntriesFrom(m.family, j.at("src"));
    m.dst = addressEntriesFrom(m.family, j.at("dst"));
    m.proto = numberEntriesFrom(j.at("proto"));
    m.sport = numberEntriesFrom(j.at("sport"));
    m.dport = numberEntriesFrom(j.at("dport"));
    m.icmp_type = numberEntriesFrom(j.at("icmp_type"));
    m.icmp_code = numberEntriesFrom(j.at("icmp_code"));
    m.input_ifindexes = numbers<uint32_t>(j.at("input_ifindexes"));
    // Absent in state files written before Output-Interface was supported.
    if (j.contains("output_ifindexes"))
        m.output_ifindexes = numbers<uint32_t>(j.at("output_ifindexes"));
    return m;
}

json ipJson(const dtcp::IpAddress& a) {
    return json{{"family", static_cast<int>(a.family)},
                {"address", addressText(a.family, a.bytes)}};
}

dtcp::IpAddress ipFrom(const json& j) {
    const Family family = familyFrom(j.at("family"));
    return dtcp::IpAddress{family, addressFrom(family, j.at("address").get<std::string>())};
}

json requestJson(const StoredRequest& r) {
    json j{{"cdest_ids", r.cdest_ids},
           {"match", matchJson(r.match())},
           {"match_text", fieldsJson(r.matchText())},
           {"timeouts", timeoutsJson(r.timeouts)},
           {"static", r.is_static},
           {"send_async", r.send_async},
           {"priority", r.priority},
           {"input_interfaces", r.inputInterfaces()},
           {"output_interfaces", r.outputInterfaces()},
           {"extension_text", fieldsJson(r.extensionText())}};
    if (const auto& delivery = r.delivery()) {
        json addresses = json::array();
        for (const dtcp::IpAddress& a : delivery->dest_addresses) addresses.push_back(ipJson(a));
        j["delivery"] = {{"dest_addresses", addresses},
                         {"dest_ports", delivery->dest_ports},
                         {"source_address", ipJson(delivery->source_address)},
                         {"source_port", delivery->source_port},
                         {"ttl", delivery->ttl}};
    }
    if (r.vrfName()) j["vrf_name"] = *r.vrfName();
    if (const auto& id = r.mdInterceptId()) {
        j["md_intercept_id"] = {{"hex", id->hex}, {"low30", id->low30}};
    }
    return j;
}

dtcp::AddRequest requestFrom(const json& j) {
    dtcp::AddRequest r;
    r.cdest_ids = j.at("cdest_ids").get<std::vector<std::string>>();
    r.match = matchFrom(j.at("match"));
    r.match_text = fieldsFrom(j.at("match_text"));
    r.timeouts = timeoutsFrom(j.at("timeouts"));
    r.is_static = j.at("static").get<bool>();
    r.send_async = j.at("send_async").get<bool>();
    r.priority = number<uint8_t>(j.at("priority"));
    r.input_interfaces = j.at("input_interfaces").get<std::vector<std::string>>();
    r.output_interfaces = j.at("output_interfaces").get<std::vector<std::string>>();
    r.extension_text = fieldsFrom(j.at("extension_text"));
    if (j.contains("delivery")) {
        const json& d = j.at("delivery");
        dtcp::DeliverySet set;
        for (const json& a : arrayOf(d.at("dest_addresses")))
            set.dest_addresses.push_back(ipFrom(a));
        set.dest_ports = numbers<uint16_t>(d.at("dest_ports"));
        set.source_address = ipFrom(d.at("source_address"));
        set.source_port = number<uint16_t>(d.at("source_port"));
        set.ttl = number<uint8_t>(d.at("ttl"));
        r.delivery = std::move(set);
    }
    if (j.contains("vrf_name")) r.vrf_name = j.at("vrf_name").get<std::string>();
    if (j.contains("md_intercept_id")) {
        const json& m = j.at("md_intercept_id");
        r.md_intercept_id =
            dtcp::MdInterceptId{m.at("hex").get<std::string>(), number<uint32_t>(m.at("low30"))};
    }
    return r;
}

json destinationJson(const ContentDestination& d) {
    const delivery::OuterHeader& o = d.params.outer;
    const delivery::Encapsulation& e = d.params.encapsulation;
    return json{{"cdest_id", d.cdest_id},
                {"family", static_cast<int>(o.family)},
                {"source", addressText(o.family, o.source)},
                {"source_port", o.source_port},
                {"destination", addressText(o.family, o.destination)},
                {"destination_port", o.destination_port},
                {"ttl", o.ttl},
                {"format", e.format == delivery::Format::Jmirror ? "jmirror" : "flowtap"},
                {"intercept_id", e.intercept_id},
                {"session_id", e.session_id},
                {"cleartext", d.cleartext}};
}

ContentDestination destinationFrom(const json& j) {
    ContentDestination d;
    d.cdest_id = j.at("cdest_id").get<std::string>();
    delivery::OuterHeader& o = d.params.outer;
    o.family = familyFrom(j.at("family"));
    o.source = addressFrom(o.family, j.at("source").get<std::string>());
    o.source_port = number<uint16_t>(j.at("source_port"));
    o.destination = addressFrom(o.family, j.at("destination").get<std::string>());
    o.destination_port = number<uint16_t>(j.at("destination_port"));
    o.ttl = number<uint8_t>(j.at("ttl"));
    const std::string format = j.at("format").get<std::string>();
    if (format != "flowtap" && format != "jmirror") {
        throw std::invalid_argument("format must be flowtap or jmirror");
    }
    d.params.encapsulation.format =
        format == "jmirror" ? delivery::Format::Jmirror : delivery::Format::Flowtap;
    d.params.encapsulation.intercept_id = number<uint32_t>(j.at("intercept_id"));
    d.params.encapsulation.session_id = number<uint32_t>(j.at("session_id"));
    d.cleartext = j.at("cleartext").get<bool>();
    return d;
}

json seqStateJson(const dtcp::SeqWindowState& s) {
    return json{
        {"has_baseline", s.has_baseline}, {"highest", s.highest}, {"seen_below", s.seen_below}};
}

dtcp::SeqWindowState seqStateFrom(const json& j) {
    dtcp::SeqWindowState s;
    s.has_baseline = j.at("has_baseline").get<bool>();
    s.highest = number<uint64_t>(j.at("highest"));
    const std::vector<uint64_t> seen = numbers<uint64_t>(j.at("seen_below"));
    if (seen.size() != s.seen_below.size()) throw std::invalid_argument("seen_below needs 4 words");
    std::copy(seen.begin(), seen.end(), s.seen_below.begin());
    return s;
}

SavedCriterion savedFrom(const json& j) {
    SavedCriterion s;
    s.key = CriterionKey{j.at("user").get<std::string>(), number<uint32_t>(j.at("id"))};
    if (s.key.user.empty() || s.key.id == 0) throw std::invalid_argument("no user or ID 0");
    s.request = requestFrom(j.at("request"));
    s.client_address = j.at("client_address").get<std::string>();
    for (const json& d : arrayOf(j.at("destinations")))
        s.destinations.push_back(destinationFrom(d));
    s.effective_priority = number<uint16_t>(j.at("effective_priority"));
    s.limits = timeoutsFrom(j.at("limits"));
    s.added = timestampFrom(j.at("added").get<std::string>());
    s.refresh_count = number<uint64_t>(j.at("refresh_count"));
    s.last_refresh = timestampFrom(j.at("last_refresh").get<std::string>());
    if (j.contains("total_remaining_ns")) {
        s.total_remaining_ns = number<uint64_t>(j.at("total_remaining_ns"));
    }
    if (j.contains("idle_remaining_ns")) {
        s.idle_remaining_ns = number<uint64_t>(j.at("idle_remaining_ns"));
    }
    s.matched = countersFrom(j.at("matched"));
    s.counted_at_refresh = countersFrom(j.at("counted_at_refresh"));
    s.dropped = countersFrom(j.at("dropped"));
    if (j.contains("slot")) {
        const json& slot = j.at("slot");
        s.slot =
            dataplane::SlotRef{number<uint32_t>(slot.at("slot")), number<uint32_t>(slot.at("gen"))};
        s.slot_counted = countersFrom(slot.at("counted"));
        if (s.slot_counted.packets > s.matched.packets || s.slot_counted.bytes > s.matched.bytes)
            throw std::invalid_argument("slot counted more than matched");
        // Absent from a state file older than the copy gate.
        if (slot.contains("gated")) s.slot_gated = countersFrom(slot.at("gated"));
        if (s.slot_gated.packets > s.dropped.packets || s.slot_gated.bytes > s.dropped.bytes)
            throw std::invalid_argument("slot gated more than dropped");
    }
    return s;
}

}  // namespace

json seqStateToJson(const dtcp::SeqWindowState& state) {
    return seqStateJson(state);
}

// --- lifetime ------------------------------------------------------------------------

Lifetime lifetimeOf(const Criterion& c, const MatchCounters& matched, uint64_t now_ns) {
    Lifetime out;
    if (c.isStatic()) return out;  // timeouts are ignored
    auto expire = [&out](TimeoutKind kind) {
        if (!out.expired_by) out.expired_by = kind;
    };
    const dtcp::Timeouts& limits = c.limits;
    if (limits.idle_seconds) {
        out.remaining.idle_seconds = secondsLeft(saturatingSub(c.idle_deadline_ns, now_ns));
        if (now_ns >= c.idle_deadline_ns) expire(TimeoutKind::Idle);
    }
    if (limits.total_seconds) {
        out.remaining.total_seconds = secondsLeft(saturatingSub(c.total_deadline_ns, now_ns));
        if (now_ns >= c.total_deadline_ns) expire(TimeoutKind::Total);
    }
    if (limits.packets) {
        const uint64_t counted = saturatingSub(matched.packets, c.counted_at_refresh.packets);
        out.remaining.packets = static_cast<uint32_t>(saturatingSub(*limits.packets, counted));
        if (*out.remaining.packets == 0) expire(TimeoutKind::Packets);
    }
    if (limits.bytes) {
        const uint64_t counted = saturatingSub(matched.bytes, c.counted_at_refresh.bytes);
        out.remaining.bytes = saturatingSub(*limits.bytes, counted);
        if (*out.remaining.bytes == 0) expire(TimeoutKind::Bytes);
    }
    return out;
}

// --- the store -----------------------------------------------------------------------

CriteriaStore::CriteriaStore(dataplane::DataPlane& data_plane, StoreLimits limits)
    : data_plane_(data_plane), limits_(limits) {}

uint32_t CriteriaStore::nextCriteriaId(std::string_view user) const {
    const auto it = users_.find(user);
    const uint32_t last = it == users_.end() ? 0 : it->second.last_id;
    return last == std::numeric_limits<uint32_t>::max() ? 0 : last + 1;
}

Criterion* CriteriaStore::findMutable(const CriterionKey& key) {
    const auto user = users_.find(key.user);
    if (user == users_.end()) return nullptr;
    const auto it = user->second.criteria.find(key.id);
    return it == user->second.criteria.end() ? nullptr : &it->second;
}

const Criterion* CriteriaStore::find(const CriterionKey& key) const {
    return const_cast<CriteriaStore*>(this)->findMutable(key);
}

const Criterion* CriteriaStore::findBySlot(uint32_t slot) const {
    return slot < by_slot_.size() ? by_slot_[slot] : nullptr;
}

std::vector<uint32_t> CriteriaStore::idsOf(std::string_view user) const {
    std::vector<uint32_t> ids;
    const auto it = users_.find(user);
    if (it == users_.end()) return ids;
    for (const auto& [id, c] : it->second.criteria) ids.push_back(id);
    return ids;
}

std::vector<CriterionKey> CriteriaStore::keys() const {
    std::vector<CriterionKey> out;
    for (const auto& [user, u] : users_) {
        for (const auto& [id, c] : u.criteria) out.push_back(c.key);
    }
    return out;
}

size_t CriteriaStore::countOf(std::string_view user) const {
    const auto it = users_.find(user);
    return it == users_.end() ? 0 : it->second.criteria.size();
}

size_t CriteriaStore::destinationCountOf(std::string_view user) const {
    const auto it = users_.find(user);
    return it == users_.end() ? 0 : it->second.endpoints.size();
}

void CriteriaStore::countEndpoints(UserCriteria& user, const Criterion& c, int delta) {
    // A criterion naming one endpoint twice counts it once.
    std::set<Endpoint> mine;
    for (const ContentDestination& d : c.publication.destinations) mine.insert(endpointOf(d));
    for (const Endpoint& e : mine) {
        if (delta > 0) {
            ++user.endpoints[e];
        } else if (const auto it = user.endpoints.find(e); it != user.endpoints.end()) {
            if (--it->second == 0) user.endpoints.erase(it);
        }
    }
}

StoredRequest::StoredRequest(dtcp::AddRequest r)
    : cdest_ids(std::move(r.cdest_ids)),
      timeouts(r.timeouts),
      is_static(r.is_static),
      send_async(r.send_async),
      priority(r.priority) {
    for (const dtcp::Field& f : r.match_text) {
        for (const std::string* text : {&f.name, &f.value}) {
            const auto length = static_cast<uint32_t>(text->size());
            match_text_.append(reinterpret_cast<const char*>(&length), sizeof length);
            match_text_ += *text;
        }
    }
    const MatchSpec& m = r.match;
    family_ = m.family;
    addresses_.reserve(m.src.size() + m.dst.size());
    for (const auto* list : {&m.src, &m.dst}) {
        addresses_.insert(addresses_.end(), list->begin(), list->end());
        ends_[list == &m.src ? Src : Dst] = static_cast<uint32_t>(addresses_.size());
    }
    const std::array<const std::vector<NumberEntry>*, 5> numbers = {&m.proto, &m.sport, &m.dport,
                                                                    &m.icmp_type, &m.icmp_code};
    numbers_.reserve(m.proto.size() + m.sport.size() + m.dport.size() + m.icmp_type.size() +
                     m.icmp_code.size() + m.input_ifindexes.size() + m.output_ifindexes.size());
    for (size_t i = 0; i < numbers.size(); ++i) {
        numbers_.insert(numbers_.end(), numbers[i]->begin(), numbers[i]->end());
        ends_[Proto + i] = static_cast<uint32_t>(numbers_.size());
    }
    for (const auto* list : {&m.input_ifindexes, &m.output_ifindexes}) {
        for (uint32_t ifindex : *list) numbers_.push_back(NumberEntry{false, ifindex, ifindex});
        ends_[list == &m.input_ifindexes ? InputIf : OutputIf] =
            static_cast<uint32_t>(numbers_.size());
    }
    if (r.delivery || !r.input_interfaces.empty() || !r.output_interfaces.empty() || r.vrf_name ||
        r.md_intercept_id || !r.extension_text.empty()) {
        rare_ = std::make_shared<const Rare>(Rare{
            std::move(r.delivery), std::move(r.input_interfaces), std::move(r.output_interfaces),
            std::move(r.vrf_name), std::move(r.md_intercept_id), std::move(r.extension_text)});
    }
}

MatchSpec StoredRequest::match() const {
    auto begin = [&](List list) { return list == Src || list == Proto ? 0 : ends_[list - 1]; };
    auto addresses = [&](List list) {
        return std::vector<AddressEntry>(addresses_.begin() + begin(list),
                                         addresses_.begin() + ends_[list]);
    };
    auto numbers = [&](List list) {
        return std::vector<NumberEntry>(numbers_.begin() + begin(list),
                                        numbers_.begin() + ends_[list]);
    };
    auto ifindexes = [&](List list) {
        std::vector<uint32_t> out;
        for (uint32_t i = begin(list); i < ends_[list]; ++i)
            out.push_back(static_cast<uint32_t>(numbers_[i].lo));
        return out;
    };
    MatchSpec m;
    m.family = family_;
    m.src = addresses(Src);
    m.dst = addresses(Dst);
    m.proto = numbers(Proto);
    m.sport = numbers(Sport);
    m.dport = numbers(Dport);
    m.icmp_type = numbers(IcmpType);
    m.icmp_code = numbers(IcmpCode);
    m.input_ifindexes = ifindexes(InputIf);
    m.output_ifindexes = ifindexes(OutputIf);
    return m;
}

std::vector<dtcp::Field> StoredRequest::matchText() const {
    std::vector<dtcp::Field> out;
    size_t at = 0;
    auto next = [&] {
        uint32_t length = 0;
        std::memcpy(&length, match_text_.data() + at, sizeof length);
        at += sizeof length + length;
        return match_text_.substr(at - length, length);
    };
    while (at < match_text_.size()) {
        std::string name = next();
        out.push_back(dtcp::Field{std::move(name), next()});
    }
    return out;
}

dtcp::AddRequest StoredRequest::toAddRequest() const {
    dtcp::AddRequest r;
    r.cdest_ids = cdest_ids;
    r.match = match();
    r.match_text = matchText();
    r.timeouts = timeouts;
    r.is_static = is_static;
    r.send_async = send_async;
    r.priority = priority;
    r.delivery = delivery();
    r.input_interfaces = inputInterfaces();
    r.output_interfaces = outputInterfaces();
    r.vrf_name = vrfName();
    r.md_intercept_id = mdInterceptId();
    r.extension_text = extensionText();
    return r;
}

namespace {
// A slot's share of a criterion's counts: what it matched, and of that what
// the copy gate refused.
MatchCounters countedOf(const dataplane::SlotCounters& slot) {
    return {slot.packets, slot.bytes};
}
MatchCounters gatedOf(const dataplane::SlotCounters& slot) {
    return {slot.gated_packets, slot.gated_bytes};
}
}  // namespace

MatchCounters CriteriaStore::matched(const Criterion& c) const {
    return c.baseline + countedOf(data_plane_.counters(c.slot));
}

CriteriaStore::Counts CriteriaStore::counts(const Criterion& c) const {
    const dataplane::SlotCounters now = data_plane_.counters(c.slot);
    return {c.baseline + countedOf(now), c.dropped + gatedOf(now)};
}

Lifetime CriteriaStore::lifetime(const Criterion& c, uint64_t now_ns) const {
    return lifetimeOf(c, matched(c), now_ns);
}

std::variant<dataplane::SlotRef, AddRefusal> CriteriaStore::publish(
    const std::vector<dataplane::Filter>& filters, const Criterion& c) {
    // Static criteria never expire, in the classifier either.
    const dataplane::FilterSet set{filters, c.publication.effective_priority,
                                   c.isStatic() ? 0 : c.total_deadline_ns};
    const dataplane::PublishResult result = data_plane_.publish(set);
    if (const auto* error = std::get_if<dataplane::PublishError>(&result)) {
        return error->kind == dataplane::PublishError::Kind::InvalidFilter
                   ? AddRefusal::ClassifierRefused
                   : AddRefusal::ClassifierFull;
    }
    return std::get<dataplane::SlotRef>(result);
}

AddResult CriteriaStore::add(NewCriterion added, const UserQuota& quota, const Instant& now) {
    const uint32_t id = nextCriteriaId(added.user);
    if (id == 0) return AddRefusal::IdsExhausted;
    if (countOf(added.user) >= quota.max_criteria) return AddRefusal::UserCriteriaQuota;
    if (total_ >= limits_.max_total_criteria) return AddRefusal::TotalCriteriaQuota;

    {
        const auto it = users_.find(added.user);
        size_t endpoints = it == users_.end() ? 0 : it->second.endpoints.size();
        std::set<Endpoint> fresh;
        for (const ContentDestination& d : added.publication.destinations) {
            const Endpoint e = endpointOf(d);
            if (it == users_.end() || !it->second.endpoints.count(e)) fresh.insert(e);
        }
        endpoints += fresh.size();
        if (endpoints > quota.max_content_destinations) return AddRefusal::DestinationQuota;
    }

    Criterion c;
    c.key = CriterionKey{added.user, id};
    c.request = StoredRequest(std::move(added.request));
    c.client_address = std::move(added.client_address);
    c.publication = std::move(added.publication);
    c.publication.destinations = share(std::move(c.publication.destinations));
    c.limits = c.request.timeouts;
    c.add_sample_ns = now.boottime_ns;  // Average-Bandwidth counts from the ADD
    c.added = now.local;
    c.last_refresh = now.local;
    if (c.limits.idle_seconds) {
        c.idle_deadline_ns = now.boottime_ns + uint64_t{*c.limits.idle_seconds} * kNsPerSecond;
    }
    if (!c.isStatic() && c.limits.total_seconds) {
        c.total_deadline_ns = now.boottime_ns + uint64_t{*c.limits.total_seconds} * kNsPerSecond;
    }
    const auto published = publish(c.publication.filters, c);
    if (const auto* refused = std::get_if<AddRefusal>(&published)) return *refused;
    c.slot = std::get<dataplane::SlotRef>(published);

    UserCriteria& user = users_[c.key.user];
    user.last_id = id;
    Criterion& stored = user.criteria.emplace(id, std::move(c)).first->second;
    countEndpoints(user, stored, +1);
    index(stored);
    ++total_;
    return id;
}

Destinations CriteriaStore::share(Destinations d) {
    auto& recent = recent_destinations_;
    const auto same = std::find(recent.begin(), recent.end(), d);
    if (same != recent.end()) {
        d = *same;
        std::rotate(recent.begin(), same, same + 1);  // newest first
    } else {
        std::rotate(recent.begin(), recent.end() - 1, recent.end());
        recent.front() = d;
    }
    return d;
}

bool CriteriaStore::remove(const CriterionKey& key) {
    const auto user = users_.find(key.user);
    if (user == users_.end()) return false;
    const auto it = user->second.criteria.find(key.id);
    if (it == user->second.criteria.end()) return false;
    data_plane_.withdraw(it->second.slot);
    unindex(it->second.slot.slot);
    countEndpoints(user->second, it->second, -1);
    user->second.criteria.erase(it);  // the user entry stays: it holds the ID counter
    --total_;
    return true;
}

void CriteriaStore::observeOne(Criterion& c, uint64_t packets, uint64_t now_ns) {
    if (packets == c.last_seen_packets) return;
    c.last_seen_packets = packets;
    if (c.limits.idle_seconds) {
        c.idle_deadline_ns = now_ns + uint64_t{*c.limits.idle_seconds} * kNsPerSecond;
    }
}

void CriteriaStore::observe(uint64_t now_ns) {
    for (auto& [user, u] : users_)
        for (auto& [id, c] : u.criteria) observeOne(c, matched(c).packets, now_ns);
}

std::pair<uint64_t, std::optional<uint64_t>> CriteriaStore::beginSampling(uint64_t now_ns) {
    const uint64_t tick = first_tick_ + tick_times_.size();
    tick_times_.push_back(now_ns);
    // The newest tick at least a window old: samples before it are no longer
    // anyone's reference.
    std::optional<uint64_t> window_old;
    for (size_t i = 0; i < tick_times_.size() && tick_times_[i] + kBandwidthWindowNs <= now_ns;
         ++i) {
        window_old = first_tick_ + i;
    }
    return {tick, window_old};
}

void CriteriaStore::sampleOne(Criterion& c, uint64_t bytes, uint64_t tick,
                              const std::optional<uint64_t>& window_old) {
    auto& changes = c.byte_changes;
    if (!c.sampled) {
        c.sampled = true;
        c.first_sample = tick;
        c.first_sample_bytes = bytes;
    } else if (bytes != (changes.empty() ? c.first_sample_bytes : changes.back().bytes)) {
        changes.push_back({tick, bytes});
    }
    // A criterion has a sample at every tick since its first: when that
    // reaches back to window_old, that one is its newest sample a window old,
    // and what is older (the ADD's too) goes.
    if (window_old && c.first_sample <= *window_old) {
        c.add_sample_ns.reset();
        auto stale = changes.begin();
        while (stale != changes.end() && stale->tick <= *window_old) ++stale;
        if (stale != changes.begin()) {
            c.first_sample_bytes = std::prev(stale)->bytes;
            changes.erase(changes.begin(), stale);
        }
        c.first_sample = *window_old;
    }
}

void CriteriaStore::endSampling(const std::optional<uint64_t>& window_old) {
    // Every criterion now starts at window_old or later.
    while (window_old && first_tick_ < *window_old) {
        tick_times_.pop_front();
        ++first_tick_;
    }
}

void CriteriaStore::sampleBandwidth(uint64_t now_ns) {
    const auto [tick, window_old] = beginSampling(now_ns);
    for (auto& [user, u] : users_)
        for (auto& [id, c] : u.criteria) sampleOne(c, matched(c).bytes, tick, window_old);
    endSampling(window_old);
}

std::vector<CriterionKey> CriteriaStore::tick(uint64_t now_ns) {
    std::vector<CriterionKey> expired;
    const auto [tick, window_old] = beginSampling(now_ns);
    for (auto& [user, u] : users_) {
        for (auto& [id, c] : u.criteria) {
            const MatchCounters m = matched(c);
            observeOne(c, m.packets, now_ns);
            if (lifetimeOf(c, m, now_ns).expired_by) expired.push_back(c.key);
            sampleOne(c, m.bytes, tick, window_old);
        }
    }
    endSampling(window_old);
    return expired;
}

uint64_t CriteriaStore::averageBandwidth(const Criterion& c, uint64_t bytes_now,
                                         uint64_t now_ns) const {
    // The newest sample at least a window old, else the oldest there is.
    uint64_t reference_ns = 0, reference_bytes = 0;
    if (c.add_sample_ns) {
        reference_ns = *c.add_sample_ns;
    } else if (c.sampled) {
        reference_ns = tick_times_[c.first_sample - first_tick_];
        reference_bytes = c.first_sample_bytes;
    } else {
        return 0;
    }
    if (c.sampled) {
        auto change = c.byte_changes.begin();
        uint64_t bytes = c.first_sample_bytes;
        for (uint64_t tick = c.first_sample; tick < first_tick_ + tick_times_.size(); ++tick) {
            const uint64_t tick_ns = tick_times_[tick - first_tick_];
            if (tick_ns + kBandwidthWindowNs > now_ns) break;
            for (; change != c.byte_changes.end() && change->tick <= tick; ++change)
                bytes = change->bytes;
            reference_ns = tick_ns;
            reference_bytes = bytes;
        }
    }
    if (now_ns <= reference_ns || bytes_now < reference_bytes) return 0;
    const long double bits = static_cast<long double>(bytes_now - reference_bytes) * 8;
    const long double seconds = static_cast<long double>(now_ns - reference_ns) / 1e9L;
    return static_cast<uint64_t>(bits / seconds);
}

bool CriteriaStore::refresh(const CriterionKey& key, const dtcp::Timeouts& limits,
                            const Instant& now) {
    Criterion* c = findMutable(key);
    if (!c || c->isStatic()) return false;
    const MatchCounters counted = matched(*c);
    if (limits.idle_seconds) {
        c->limits.idle_seconds = limits.idle_seconds;
        c->idle_deadline_ns = now.boottime_ns + uint64_t{*limits.idle_seconds} * kNsPerSecond;
    }
    if (limits.total_seconds) {
        c->limits.total_seconds = limits.total_seconds;
        c->total_deadline_ns = now.boottime_ns + uint64_t{*limits.total_seconds} * kNsPerSecond;
        data_plane_.setExpiry(c->slot, c->total_deadline_ns);
    }
    if (limits.packets) {
        c->limits.packets = limits.packets;
        c->counted_at_refresh.packets = counted.packets;
    }
    if (limits.bytes) {
        c->limits.bytes = limits.bytes;
        c->counted_at_refresh.bytes = counted.bytes;
    }
    ++c->refresh_count;
    c->last_refresh = now.local;
    return true;
}

bool CriteriaStore::republish(const CriterionKey& key, std::vector<dataplane::Filter> filters) {
    Criterion* c = findMutable(key);
    if (!c) return false;
    const auto published = publish(filters, *c);
    if (std::holds_alternative<AddRefusal>(published)) return false;

    // The old slot's counts move into the baseline (and its gate refusals
    // into the drops) before it goes.
    const dataplane::SlotCounters old = data_plane_.counters(c->slot);
    c->baseline = c->baseline + countedOf(old);
    c->dropped = c->dropped + gatedOf(old);
    data_plane_.withdraw(c->slot);
    unindex(c->slot.slot);
    c->slot = std::get<dataplane::SlotRef>(published);
    c->publication.filters = std::move(filters);
    index(*c);
    return true;
}

void CriteriaStore::addDropped(uint32_t slot, uint64_t packets, uint64_t bytes) {
    Criterion* c = slot < by_slot_.size() ? by_slot_[slot] : nullptr;
    if (!c) return;
    c->dropped.packets += packets;
    c->dropped.bytes += bytes;
}

// --- persistence ---------------------------------------------------------------------

json CriteriaStore::criterionJson(const Criterion& c, const Instant& now) const {
    // One read: matched and the slot's share of it must agree.
    const dataplane::SlotCounters slot = data_plane_.counters(c.slot);
    json destinations = json::array();
    for (const ContentDestination& d : c.publication.destinations) {
        destinations.push_back(destinationJson(d));
    }
    json entry{{"user", c.key.user},
               {"id", c.key.id},
               {"request", requestJson(c.request)},
               {"client_address", c.client_address},
               {"destinations", destinations},
               {"effective_priority", c.publication.effective_priority},
               {"limits", timeoutsJson(c.limits)},
               {"added", timestampText(c.added)},
               {"refresh_count", c.refresh_count},
               {"last_refresh", timestampText(c.last_refresh)},
               {"matched", countersJson(c.baseline + countedOf(slot))},
               {"counted_at_refresh", countersJson(c.counted_at_refresh)},
               {"dropped", countersJson(c.dropped + gatedOf(slot))}};
    if (data_plane_.isLive(c.slot)) {
        entry["slot"] = {{"slot", c.slot.slot},
                         {"gen", c.slot.gen},
                         {"counted", countersJson(countedOf(slot))},
                         {"gated", countersJson(gatedOf(slot))}};
    }
    if (c.total_deadline_ns != 0) {
        entry["total_remaining_ns"] = saturatingSub(c.total_deadline_ns, now.boottime_ns);
    }
    if (c.limits.idle_seconds) {
        entry["idle_remaining_ns"] = saturatingSub(c.idle_deadline_ns, now.boottime_ns);
    }
    return entry;
}

json CriteriaStore::toJson(const Instant& now, const SeqStates& seq_states) const {
    json last_ids = json::object();
    json criteria = json::array();
    for (const auto& [user, u] : users_) {
        last_ids[user] = u.last_id;
        for (const auto& [id, c] : u.criteria) criteria.push_back(criterionJson(c, now));
    }
    json seq = json::object();
    for (const auto& [user, state] : seq_states) seq[user] = seqStateJson(state);
    return json{{"format", kFormatName},
                {"version", kFormatVersion},
                {"last_ids", last_ids},
                {"seq_states", seq},
                {"criteria", criteria}};
}

void CriteriaStore::dumpJson(std::string& out, const Instant& now,
                             const SeqStates& seq_states) const {
    json last_ids = json::object();
    for (const auto& [user, u] : users_) last_ids[user] = u.last_id;
    json seq = json::object();
    for (const auto& [user, state] : seq_states) seq[user] = seqStateJson(state);
    const json rest{{"format", kFormatName},
                    {"version", kFormatVersion},
                    {"last_ids", last_ids},
                    {"seq_states", seq}};
    // nlohmann dumps keys sorted and "criteria" sorts first: the same text.
    const size_t start = out.size();
    out += "{\"criteria\":[";
    bool first = true;
    for (const auto& [user, u] : users_) {
        for (const auto& [id, c] : u.criteria) {
            if (!first) out += ',';
            out += criterionJson(c, now).dump();
            if (first && total_ > 1) {
                // One allocation for the whole text, not a doubling series of copies.
                out.reserve(out.size() + (out.size() - start) * (total_ - 1) * 9 / 8 + 4096);
            }
            first = false;
        }
    }
    out += "],";
    out.append(rest.dump(), 1);  // without its "{"
}

SavedCriterion CriteriaStore::parseCriterionJson(const json& criterion) {
    return savedFrom(criterion);
}

std::variant<StoreSnapshot, std::string> CriteriaStore::parseJson(const json& document) {
    std::string where = "/";
    try {
        if (!document.is_object()) return std::string("/: not a JSON object");
        where = "/format";
        if (document.at("format").get<std::string>() != kFormatName) {
            return where + ": not an xtap criteria file";
        }
        where = "/version";
        if (document.at("version").get<int>() != kFormatVersion) {
            return where + ": unsupported version";
        }
        StoreSnapshot snapshot;
        for (const auto& [user, last] : document.at("last_ids").items()) {
            where = "/last_ids/" + user;
            snapshot.last_ids[user] = number<uint32_t>(last);
        }
        for (const auto& [user, state] : document.at("seq_states").items()) {
            where = "/seq_states/" + user;
            snapshot.seq_states[user] = seqStateFrom(state);
        }
        const json& criteria = arrayOf(document.at("criteria"));
        for (size_t i = 0; i < criteria.size(); ++i) {
            where = "/criteria/" + std::to_string(i);
            snapshot.criteria.push_back(savedFrom(criteria.at(i)));
        }
        return snapshot;
    } catch (const std::exception& e) {
        // nlohmann's messages name keys and types, never values.
        return where + ": " + e.what();
    }
}

void CriteriaStore::restoreOne(const SavedCriterion& saved, const Instant& now,
                               const RestoreRebuild& rebuild, bool in_place, RestoreReport& report,
                               std::vector<const SavedCriterion*>& later) {
    auto drop = [&](std::string reason) {
        report.dropped.push_back({saved.key, std::move(reason)});
    };
    if (find(saved.key)) return drop("a criterion with this ID exists");
    if (total_ >= limits_.max_total_criteria) return drop("the data plane's capacity is reached");
    auto rebuilt = rebuild(saved);
    if (auto* reason = std::get_if<std::string>(&rebuilt)) return drop(std::move(*reason));
    Criterion c;
    c.key = saved.key;
    c.request = StoredRequest(saved.request);
    c.client_address = saved.client_address;
    c.publication = std::move(std::get<Publication>(rebuilt));
    c.publication.destinations = share(std::move(c.publication.destinations));
    c.limits = saved.limits;
    c.added = saved.added;
    c.refresh_count = saved.refresh_count;
    c.last_refresh = saved.last_refresh;
    if (saved.total_remaining_ns) c.total_deadline_ns = now.boottime_ns + *saved.total_remaining_ns;
    if (saved.idle_remaining_ns) c.idle_deadline_ns = now.boottime_ns + *saved.idle_remaining_ns;
    c.baseline = saved.matched;
    c.last_seen_packets = saved.matched.packets;
    c.counted_at_refresh = saved.counted_at_refresh;
    c.dropped = saved.dropped;
    if (in_place) {
        const dataplane::FilterSet set{c.publication.filters, c.publication.effective_priority,
                                       c.isStatic() ? 0 : c.total_deadline_ns};
        const dataplane::PublishResult result = data_plane_.restore(set, *saved.slot);
        if (!std::holds_alternative<dataplane::SlotRef>(result)) {
            later.push_back(&saved);  // published afresh: what it counted since the save is lost
            return;
        }
        c.slot = *saved.slot;
        // The slot's counters go on from where the save read them.
        c.baseline.packets -= saved.slot_counted.packets;
        c.baseline.bytes -= saved.slot_counted.bytes;
        c.dropped.packets -= saved.slot_gated.packets;
        c.dropped.bytes -= saved.slot_gated.bytes;
        const dataplane::SlotCounters slot = data_plane_.counters(c.slot);
        report.resumed.push_back(
            {c.key, MatchCounters{saturatingSub(slot.packets, saved.slot_counted.packets),
                                  saturatingSub(slot.bytes, saved.slot_counted.bytes)}});
    } else {
        const auto published = publish(c.publication.filters, c);
        if (const auto* refused = std::get_if<AddRefusal>(&published)) {
            return drop(*refused == AddRefusal::ClassifierFull
                            ? "the data plane has no room"
                            : "the data plane refused the filters");
        }
        c.slot = std::get<dataplane::SlotRef>(published);
    }
    UserCriteria& user = users_[c.key.user];
    user.last_id = std::max(user.last_id, c.key.id);
    Criterion& stored = user.criteria.emplace(c.key.id, std::move(c)).first->second;
    countEndpoints(user, stored, +1);
    index(stored);
    ++total_;
    ++report.restored;
}

RestoreReport CriteriaStore::restore(const StoreSnapshot& snapshot, const Instant& now,
                                     const RestoreRebuild& rebuild) {
    RestoreReport report;
    for (const auto& [user, last] : snapshot.last_ids) {
        UserCriteria& u = users_[user];
        u.last_id = std::max(u.last_id, last);
    }
    // Criteria still live in the maps first (in place), then the others.
    std::vector<const SavedCriterion*> later;
    for (const SavedCriterion& saved : snapshot.criteria) {
        if (saved.slot && data_plane_.restoring()) {
            restoreOne(saved, now, rebuild, true, report, later);
        } else {
            later.push_back(&saved);
        }
    }
    data_plane_.finishRestore();
    std::vector<const SavedCriterion*> none;
    for (const SavedCriterion* saved : later) restoreOne(*saved, now, rebuild, false, report, none);
    return report;
}

}  // namespace xtap::criteria
