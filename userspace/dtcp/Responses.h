// Responses: the replies and notifications xtap writes (dtcp.md §5, §7, §11),
// in the Junos shape: status line, SEQ, results, TIMESTAMP, AUTHENTICATION-INFO,
// upper-case names, CRLF line ends, always signed. Times are passed in.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "dtcp/Message.h"
#include "dtcp/RequestDecoder.h"
#include "dtcp/Requests.h"
#include "dtcp/Status.h"
#include "dtcp/Timestamp.h"
#include "dtcp/Version.h"

namespace xtap::dtcp {

struct Response {
    Version version = kVersion08;  // the request's (see replyVersionFor)
    StatusCode code = StatusCode::Ok;
    std::optional<uint64_t> seq;  // the request's Seq, echoed
    std::vector<Field> results;   // between SEQ and TIMESTAMP, names as they go out
    Timestamp timestamp;
};

std::string formatResponse(const Response& response, std::string_view key);

// A bare 200 (NOOP).
Response okResponse(Version version, uint64_t seq, const Timestamp& now);
// 200 to ADD: CRITERIA-ID.
Response addedResponse(Version version, uint64_t seq, uint32_t criteria_id, const Timestamp& now);
// 200 to DELETE and REFRESH: CRITERIA-COUNT.
Response countResponse(Version version, uint64_t seq, uint64_t count, const Timestamp& now);
// An error reply that echoes the offending field when there is one (never
// Authentication-Info, whose line must stay last).
Response errorResponse(Version version, std::optional<uint64_t> seq, StatusCode code,
                       std::string_view item_name, std::string_view item_value,
                       const Timestamp& now);
Response errorResponse(const RequestError& error, const Timestamp& now);

// What LIST shows of one criterion; the controller fills it from one snapshot.
struct ListEntry {
    uint32_t criteria_id = 0;
    std::string csource_id;
    std::string csource_address;  // the client's address, as text
    std::vector<std::string> cdest_ids;
    Timestamp added;
    // With Criteria: the ADD's fields as received.
    std::vector<Field> match_text;
    Timeouts timeouts;
    bool is_static = false;
    bool send_async = false;
    std::vector<Field> extension_text;  // X-JTap-* and X-MD-Intercept-Id
    // With Stats.
    Timeouts remaining;                  // for the timeouts that are set
    uint64_t average_bandwidth_bps = 0;  // 10 s average
    uint64_t matching_packets = 0;
    uint64_t matching_bytes = 0;
    uint64_t num_refresh = 0;
    Timestamp last_refresh;  // the ADD time until a REFRESH
    uint64_t dropped_packets = 0;
    uint64_t dropped_bytes = 0;
};

// 200 to LIST: every entry in turn, each starting with CRITERIA-COUNT and
// CRITERIA-NUM (1..N), no empty lines between them; no entries when nothing matched.
Response listResponse(Version version, uint64_t seq, const std::vector<ListEntry>& entries,
                      ListDetail detail, const Timestamp& now);

// The same reply written entry by entry into its text: a LIST of 100,000
// criteria held as entries and fields costs hundreds of MB; this holds one
// entry's fields and the text. finish() gives
// formatResponse(listResponse(version, seq, entries, detail, now), key).
class ListWriter {
  public:
    ListWriter(Version version, uint64_t seq, size_t count, ListDetail detail);
    void add(const ListEntry& entry);  // `count` of them, in order
    std::string finish(const Timestamp& now, std::string_view key) &&;

  private:
    MessageWriter writer_;
    size_t count_;
    ListDetail detail_;
    uint64_t number_ = 0;
    std::vector<Field> fields_;  // the current entry's
};

// Notifications have no Seq.
struct Notification {
    Version version = kDefaultNotificationVersion;  // the client's last-used one
    StatusCode code = StatusCode::NoopNotification;
    std::vector<Field> params;
    Timestamp timestamp;
};

std::string formatNotification(const Notification& notification, std::string_view key);

Notification seqRolloverNotification(Version version, const Timestamp& now);  // 130
Notification noopNotification(Version version, const Timestamp& now);         // 131
// 390: CRITERIA-ID, then each configured TIMEOUT-* with its REMAINING-*.
Notification criterionTimeoutNotification(Version version, uint32_t criteria_id,
                                          const Timeouts& configured, const Timeouts& remaining,
                                          const Timestamp& now);
// 580: a content destination above its soft limit.
Notification congestionNotification(Version version, std::string_view cdest_id,
                                    uint64_t average_bps, uint64_t alert_bps, uint64_t max_bps,
                                    const Timestamp& now);
// 598: copies dropped for one criterion to one destination since the last one.
Notification duplicatesDroppedNotification(Version version, std::string_view cdest_id,
                                           uint32_t criteria_id, uint64_t dropped_packets,
                                           uint64_t dropped_bytes, const Timestamp& now);
// 599: xtapd restarted without the client's criteria.
Notification restartNotification(Version version, std::string_view alert_info,
                                 const Timestamp& now);

}  // namespace xtap::dtcp
