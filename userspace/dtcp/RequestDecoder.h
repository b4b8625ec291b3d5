// RequestDecoder: turns the bytes of one received message into a typed request,
// an error to answer, or a silent discard, in the check order of dtcp.md §7:
// (1) structure -> 400; (2) HMAC, Csource-ID = SSH user, Seq -> discard;
// (3) version -> 505; (4) method and parameters -> 501, 400, 432, 433, 901.
// Checks that need configuration or state (430, 431, 550, 551, compiled-rule
// budget, interface and VRF lookup) are the controller's.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>

#include "dtcp/Requests.h"
#include "dtcp/SeqWindow.h"
#include "dtcp/Status.h"
#include "dtcp/Version.h"

namespace xtap::dtcp {

struct DecodePolicy {
    // Accept criteria without any address constraint (per-user option); else 432.
    bool allow_wide_criteria = false;
};

struct DecodedRequest {
    Version version;  // the request's; the reply is written in it
    uint64_t seq = 0;
    SeqVerdict seq_verdict = SeqVerdict::Baseline;  // Wrapped: send a 130 notification
    std::string csource_id;
    Request body;
};

// A request to answer with an error status.
struct RequestError {
    StatusCode code = StatusCode::BadRequest;
    Version reply_version = kDefaultNotificationVersion;
    std::optional<uint64_t> seq;            // echoed when the request had a valid one
    std::optional<SeqVerdict> seq_verdict;  // set when the Seq window accepted it
    // The offending field, echoed in the reply: canonical name and value as
    // received (empty when the field is missing). No name: nothing to echo.
    std::string item_name;
    std::string item_value;
    std::string detail;  // for the log
};

enum class DiscardReason : uint8_t {
    BadAuthentication,  // wrong or malformed Authentication-Info (497)
    CsourceMismatch,    // Csource-ID is not the SSH user (499)
    SeqRejected,        // replayed or outside the window (498)
};

// The status the audit log records for a discard (it is never sent).
StatusCode auditCode(DiscardReason reason);

// A message dropped without a reply; the fields are for the audit log.
struct Discard {
    DiscardReason reason = DiscardReason::BadAuthentication;
    std::string csource_id;  // as received
    std::optional<uint64_t> seq;
    std::optional<SeqVerdict> seq_verdict;  // for SeqRejected
    std::string detail;
};

using DecodeOutcome = std::variant<DecodedRequest, RequestError, Discard>;

// `message_bytes` is one message as the Framer yielded it. The window changes
// only when the message is authentic and from `ssh_user`, whatever follows.
DecodeOutcome decodeRequest(std::string_view message_bytes, std::string_view ssh_user,
                            std::string_view hmac_key, SeqWindow& seq_window,
                            const DecodePolicy& policy = {});

}  // namespace xtap::dtcp
