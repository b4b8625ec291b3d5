#include "dtcp/Responses.h"

#include "dtcp/FieldNames.h"
#include "dtcp/Text.h"
#include "dtcp/Values.h"

namespace xtap::dtcp {

namespace {

// Appends `name: value` with the name upper-cased (Junos shape).
void put(std::vector<Field>& fields, std::string_view name, std::string value) {
    fields.push_back(Field{toUpper(name), std::move(value)});
}

void put(std::vector<Field>& fields, std::string_view name, uint64_t value) {
    put(fields, name, std::to_string(value));
}

std::string joinIdentifiers(const std::vector<std::string>& ids) {
    std::string out;
    for (const std::string& id : ids) {
        if (!out.empty()) out += ", ";
        out += escapeIdentifier(id);
    }
    return out;
}

void putTimeouts(std::vector<Field>& fields, const Timeouts& t, std::string_view idle,
                 std::string_view total, std::string_view packets, std::string_view bytes) {
    if (t.idle_seconds) put(fields, idle, *t.idle_seconds);
    if (t.total_seconds) put(fields, total, *t.total_seconds);
    if (t.packets) put(fields, packets, *t.packets);
    if (t.bytes) put(fields, bytes, *t.bytes);
}

std::string flagsText(bool is_static, bool send_async) {
    std::string out;
    if (is_static) out = "STATIC";
    if (send_async) out += out.empty() ? "SENDASYNC" : ", SENDASYNC";
    return out;
}

Response make(Version version, StatusCode code, std::optional<uint64_t> seq, const Timestamp& now) {
    Response response;
    response.version = version;
    response.code = code;
    response.seq = seq;
    response.timestamp = now;
    return response;
}

Notification makeNotification(Version version, StatusCode code, const Timestamp& now) {
    Notification notification;
    notification.version = version;
    notification.code = code;
    notification.timestamp = now;
    return notification;
}

StatusLine statusLineOf(Version version, StatusCode code) {
    return StatusLine{version, codeNumber(code), std::string(reasonPhrase(code))};
}

}  // namespace

std::string formatResponse(const Response& response, std::string_view key) {
    MessageWriter writer(statusLineOf(response.version, response.code));
    if (response.seq) writer.add(toUpper(field::kSeq), std::to_string(*response.seq));
    for (const Field& f : response.results) writer.add(f.name, f.value);
    writer.add(toUpper(field::kTimestamp), formatTimestamp(response.timestamp));
    return std::move(writer).sign(key, kAuthenticationInfoUpper);
}

Response okResponse(Version version, uint64_t seq, const Timestamp& now) {
    return make(version, StatusCode::Ok, seq, now);
}

Response addedResponse(Version version, uint64_t seq, uint32_t criteria_id, const Timestamp& now) {
    Response response = make(version, StatusCode::Ok, seq, now);
    put(response.results, field::kCriteriaId, criteria_id);
    return response;
}

Response countResponse(Version version, uint64_t seq, uint64_t count, const Timestamp& now) {
    Response response = make(version, StatusCode::Ok, seq, now);
    put(response.results, field::kCriteriaCount, count);
    return response;
}

Response errorResponse(Version version, std::optional<uint64_t> seq, StatusCode code,
                       std::string_view item_name, std::string_view item_value,
                       const Timestamp& now) {
    Response response = make(version, code, seq, now);
    // An echoed Authentication-Info line would end the reply's signed part early.
    if (!item_name.empty() && !iequals(item_name, kAuthenticationInfo)) {
        put(response.results, item_name, std::string(item_value));
    }
    return response;
}

Response errorResponse(const RequestError& error, const Timestamp& now) {
    return errorResponse(error.reply_version, error.seq, error.code, error.item_name,
                         error.item_value, now);
}

namespace {

// One LIST entry's fields, starting with CRITERIA-COUNT and CRITERIA-NUM.
void putListEntry(std::vector<Field>& out, const ListEntry& e, size_t count, uint64_t number,
                  ListDetail detail) {
    const bool with_criteria = detail != ListDetail::Stats;
    const bool with_stats = detail != ListDetail::Criteria;
    put(out, field::kCriteriaCount, count);
    put(out, field::kCriteriaNum, number);
    put(out, field::kCsourceId, escapeIdentifier(e.csource_id));
    put(out, field::kCsourceAddress, e.csource_address);
    put(out, field::kCdestId, joinIdentifiers(e.cdest_ids));
    put(out, field::kCriteriaId, e.criteria_id);
    put(out, field::kTimestamp, formatTimestamp(e.added));
    if (with_criteria) {
        for (const Field& f : e.match_text) put(out, f.name, f.value);
        putTimeouts(out, e.timeouts, field::kTimeoutIdle, field::kTimeoutTotal,
                    field::kTimeoutPackets, field::kTimeoutBytes);
        const std::string flags = flagsText(e.is_static, e.send_async);
        if (!flags.empty()) put(out, field::kFlags, flags);
        for (const Field& f : e.extension_text) put(out, f.name, f.value);
    }
    if (with_stats) {
        putTimeouts(out, e.remaining, field::kRemainingIdle, field::kRemainingTotal,
                    field::kRemainingPackets, field::kRemainingBytes);
        put(out, field::kAverageBandwidth, e.average_bandwidth_bps);
        put(out, field::kMatchingPackets, e.matching_packets);
        put(out, field::kMatchingBytes, e.matching_bytes);
        put(out, field::kNumRefresh, e.num_refresh);
        put(out, field::kLastRefresh, formatTimestamp(e.last_refresh));
        put(out, field::kDroppedPackets, e.dropped_packets);
        put(out, field::kDroppedBytes, e.dropped_bytes);
    }
}

}  // namespace

Response listResponse(Version version, uint64_t seq, const std::vector<ListEntry>& entries,
                      ListDetail detail, const Timestamp& now) {
    Response response = make(version, StatusCode::Ok, seq, now);
    uint64_t number = 0;
    for (const ListEntry& e : entries)
        putListEntry(response.results, e, entries.size(), ++number, detail);
    return response;
}

ListWriter::ListWriter(Version version, uint64_t seq, size_t count, ListDetail detail)
    : writer_(statusLineOf(version, StatusCode::Ok)), count_(count), detail_(detail) {
    writer_.add(toUpper(field::kSeq), std::to_string(seq));
}

void ListWriter::add(const ListEntry& entry) {
    const size_t before = writer_.size();
    fields_.clear();
    putListEntry(fields_, entry, count_, ++number_, detail_);
    for (const Field& f : fields_) writer_.add(f.name, f.value);
    if (number_ == 1 && count_ > 1) {
        // One allocation for the text, not a doubling series of copies.
        writer_.reserve(writer_.size() + (writer_.size() - before) * (count_ - 1) * 9 / 8 + 256);
    }
}

std::string ListWriter::finish(const Timestamp& now, std::string_view key) && {
    writer_.add(toUpper(field::kTimestamp), formatTimestamp(now));
    return std::move(writer_).sign(key, kAuthenticationInfoUpper);
}

std::string formatNotification(const Notification& notification, std::string_view key) {
    MessageWriter writer(statusLineOf(notification.version, notification.code));
    for (const Field& f : notification.params) writer.add(f.name, f.value);
    writer.add(toUpper(field::kTimestamp), formatTimestamp(notification.timestamp));
    return writer.sign(key, kAuthenticationInfoUpper);
}

Notification seqRolloverNotification(Version version, const Timestamp& now) {
    return makeNotification(version, StatusCode::SeqRollover, now);
}

Notification noopNotification(Version version, const Timestamp& now) {
    return makeNotification(version, StatusCode::NoopNotification, now);
}

Notification criterionTimeoutNotification(Version version, uint32_t criteria_id,
                                          const Timeouts& configured, const Timeouts& remaining,
                                          const Timestamp& now) {
    Notification n = makeNotification(version, StatusCode::CriterionTimeoutDelete, now);
    put(n.params, field::kCriteriaId, criteria_id);
    if (configured.idle_seconds) {
        put(n.params, field::kTimeoutIdle, *configured.idle_seconds);
        put(n.params, field::kRemainingIdle, remaining.idle_seconds.value_or(0));
    }
    if (configured.total_seconds) {
        put(n.params, field::kTimeoutTotal, *configured.total_seconds);
        put(n.params, field::kRemainingTotal, remaining.total_seconds.value_or(0));
    }
    if (configured.packets) {
        put(n.params, field::kTimeoutPackets, *configured.packets);
        put(n.params, field::kRemainingPackets, remaining.packets.value_or(0));
    }
    if (configured.bytes) {
        put(n.params, field::kTimeoutBytes, *configured.bytes);
        put(n.params, field::kRemainingBytes, remaining.bytes.value_or(0));
    }
    return n;
}

Notification congestionNotification(Version version, std::string_view cdest_id,
                                    uint64_t average_bps, uint64_t alert_bps, uint64_t max_bps,
                                    const Timestamp& now) {
    Notification n = makeNotification(version, StatusCode::Congestion, now);
    put(n.params, field::kCdestId, escapeIdentifier(cdest_id));
    put(n.params, field::kAverageBandwidth, average_bps);
    put(n.params, field::kAlertBandwidth, alert_bps);
    put(n.params, field::kMaxBandwidth, max_bps);
    return n;
}

Notification duplicatesDroppedNotification(Version version, std::string_view cdest_id,
                                           uint32_t criteria_id, uint64_t dropped_packets,
                                           uint64_t dropped_bytes, const Timestamp& now) {
    Notification n = makeNotification(version, StatusCode::DuplicatesDropped, now);
    put(n.params, field::kCdestId, escapeIdentifier(cdest_id));
    put(n.params, field::kCriteriaId, criteria_id);
    put(n.params, field::kDroppedPackets, dropped_packets);
    put(n.params, field::kDroppedBytes, dropped_bytes);
    return n;
}

Notification restartNotification(Version version, std::string_view alert_info,
                                 const Timestamp& now) {
    Notification n = makeNotification(version, StatusCode::Restart, now);
    put(n.params, field::kAlertInfo, std::string(alert_info));
    return n;
}

}  // namespace xtap::dtcp
