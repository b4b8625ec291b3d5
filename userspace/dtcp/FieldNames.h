// FieldNames: the DTCP field names xtap reads and writes, spelled as the drafts
// and Juniper spell them. Names compare without regard to case; replies use
// toUpper() of these (Junos shape).
#pragma once

#include <string_view>

namespace xtap::dtcp::field {

// Every request.
inline constexpr std::string_view kCsourceId = "Csource-ID";
inline constexpr std::string_view kSeq = "Seq";

// Selections and results.
inline constexpr std::string_view kCdestId = "Cdest-ID";
inline constexpr std::string_view kCriteriaId = "Criteria-ID";
inline constexpr std::string_view kCriteriaCount = "Criteria-Count";
inline constexpr std::string_view kCriteriaNum = "Criteria-Num";
inline constexpr std::string_view kCsourceAddress = "Csource-Address";
inline constexpr std::string_view kTimestamp = "Timestamp";
inline constexpr std::string_view kAlertInfo = "Alert-Info";

// Match fields of ADD.
inline constexpr std::string_view kSourceAddress = "Source-Address";
inline constexpr std::string_view kDestAddress = "Dest-Address";
inline constexpr std::string_view kProtocol = "Protocol";
inline constexpr std::string_view kSourcePort = "Source-Port";
inline constexpr std::string_view kDestPort = "Dest-Port";
inline constexpr std::string_view kIcmpType = "ICMP-Type";
inline constexpr std::string_view kIcmpCode = "ICMP-Code";

// Lifetime and handling.
inline constexpr std::string_view kTimeoutIdle = "Timeout-Idle";
inline constexpr std::string_view kTimeoutTotal = "Timeout-Total";
inline constexpr std::string_view kTimeoutPackets = "Timeout-Packets";
inline constexpr std::string_view kTimeoutBytes = "Timeout-Bytes";
inline constexpr std::string_view kRemainingIdle = "Remaining-Idle";
inline constexpr std::string_view kRemainingTotal = "Remaining-Total";
inline constexpr std::string_view kRemainingPackets = "Remaining-Packets";
inline constexpr std::string_view kRemainingBytes = "Remaining-Bytes";
inline constexpr std::string_view kFlags = "Flags";
inline constexpr std::string_view kPriority = "Priority";
inline constexpr std::string_view kAction = "Action";

// LIST statistics and notifications.
inline constexpr std::string_view kAverageBandwidth = "Average-Bandwidth";
inline constexpr std::string_view kAlertBandwidth = "Alert-Bandwidth";
inline constexpr std::string_view kMaxBandwidth = "Max-Bandwidth";
inline constexpr std::string_view kMatchingPackets = "Matching-Packets";
inline constexpr std::string_view kMatchingBytes = "Matching-Bytes";
inline constexpr std::string_view kNumRefresh = "Num-Refresh";
inline constexpr std::string_view kLastRefresh = "Last-Refresh";
inline constexpr std::string_view kDroppedPackets = "X-XTap-Dropped-Packets";
inline constexpr std::string_view kDroppedBytes = "X-XTap-Dropped-Bytes";

// Juniper extensions (dtcp.md §6).
inline constexpr std::string_view kExtensionPrefix = "X-";
inline constexpr std::string_view kJTapPrefix = "X-JTap-";
inline constexpr std::string_view kCdestDestAddress = "X-JTap-Cdest-Dest-Address";
inline constexpr std::string_view kCdestDestPort = "X-JTap-Cdest-Dest-Port";
inline constexpr std::string_view kCdestSourceAddress = "X-JTap-Cdest-Source-Address";
inline constexpr std::string_view kCdestSourcePort = "X-JTap-Cdest-Source-Port";
inline constexpr std::string_view kCdestTtl = "X-JTap-Cdest-TTL";
inline constexpr std::string_view kInputInterface = "X-JTap-Input-Interface";
inline constexpr std::string_view kOutputInterface = "X-JTap-Output-Interface";
inline constexpr std::string_view kVrfName = "X-JTap-VRF-Name";
inline constexpr std::string_view kIpVersion = "X-JTap-IP-Version";
inline constexpr std::string_view kFilterFamily = "X-JTap-Filter-Family";
inline constexpr std::string_view kMdInterceptId = "X-MD-Intercept-Id";

// radius-flow-tap subscriber triggers: 501 (ignoring them would widen the criterion).
inline constexpr std::string_view kInterfaceId = "X-Interface-Id";
inline constexpr std::string_view kUserName = "X-UserName";
inline constexpr std::string_view kActSessId = "X-Act-Sess-Id";
inline constexpr std::string_view kIpAddr = "X-IP-Addr";
inline constexpr std::string_view kDropPolicy = "X-Drop-Policy";

}  // namespace xtap::dtcp::field
