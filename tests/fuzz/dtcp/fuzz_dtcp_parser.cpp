// libFuzzer entry point for the DTCP engine: arbitrary bytes go through the
// Framer, the message parser, the request decoder and the serializers.
// Sanitizer reports and broken invariants (__builtin_trap) are findings.
//
// Random bytes almost never carry a valid HMAC, so every message that parses
// is also decoded once more re-signed and from its own Csource-ID: that takes
// the decoder past step (2) into version, method and parameter checks.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dtcp/Framer.h"
#include "dtcp/Hmac.h"
#include "dtcp/Message.h"
#include "dtcp/RequestDecoder.h"
#include "dtcp/Responses.h"
#include "dtcp/Values.h"

namespace {

using namespace xtap::dtcp;

constexpr std::string_view kKey = "Juniper";
const Timestamp kNow{2024, 5, 1, 10, 15, 30, 123};

void require(bool condition) {
    if (!condition) __builtin_trap();
}

// What the engine writes must parse and carry a valid signature.
void checkWritten(const std::string& wire) {
    auto parsed = parseMessage(wire);
    require(parsed.ok());
    require(parsed.value().authentication_info.has_value());
    require(hmacSha1Matches(kKey, std::string_view(wire).substr(0, parsed.value().signed_length),
                            *parsed.value().authentication_info));
}

// parse -> format -> parse keeps start line and fields.
void checkRoundTrip(const Message& message) {
    const std::string again = formatMessage(message, kKey);
    auto reparsed = parseMessage(again);
    require(reparsed.ok());
    require(reparsed.value().start == message.start);
    require(reparsed.value().fields == message.fields);
    checkWritten(again);
}

void answer(const DecodeOutcome& outcome) {
    if (const auto* error = std::get_if<RequestError>(&outcome)) {
        checkWritten(formatResponse(errorResponse(*error, kNow), kKey));
        return;
    }
    const auto* request = std::get_if<DecodedRequest>(&outcome);
    if (!request) return;
    if (const auto* add = std::get_if<AddRequest>(&request->body)) {
        checkWritten(formatResponse(addedResponse(request->version, request->seq, 1, kNow), kKey));
        ListEntry entry;
        entry.criteria_id = 1;
        entry.csource_id = request->csource_id;
        entry.cdest_ids = add->cdest_ids;
        entry.match_text = add->match_text;
        entry.timeouts = add->timeouts;
        entry.is_static = add->is_static;
        entry.send_async = add->send_async;
        entry.extension_text = add->extension_text;
        checkWritten(formatResponse(
            listResponse(request->version, request->seq, {entry}, ListDetail::Both, kNow), kKey));
        for (const auto& e : add->match.src) require(!(e.hi < e.lo));
        for (const auto& e : add->match.dst) require(!(e.hi < e.lo));
        for (const auto& e : add->match.dport) require(e.lo <= e.hi);
    } else {
        checkWritten(formatResponse(countResponse(request->version, request->seq, 0, kNow), kKey));
    }
}

// The message with its Authentication-Info replaced by a valid one.
std::string resigned(std::string_view bytes, const Message& message) {
    std::string out(bytes.substr(0, message.signed_length));
    out += "Authentication-Info: " + hmacSha1Hex(kKey, out) + "\r\n\r\n";
    return out;
}

void exercise(std::string_view bytes, SeqWindow& window) {
    // As received: almost always discarded at step (2), which is itself checked.
    answer(decodeRequest(bytes, "user", kKey, window));

    auto parsed = parseMessage(bytes);
    if (!parsed) return;
    checkRoundTrip(parsed.value());
    const Field* csource = parsed.value().find("Csource-ID");
    if (!csource) return;
    auto user = unescapeIdentifier(csource->value);
    if (!user) return;
    const std::string signed_bytes = resigned(bytes, parsed.value());
    SeqWindow fresh;
    answer(decodeRequest(signed_bytes, user.value(), kKey, fresh));
}

std::vector<std::string> frameAll(std::string_view input, size_t chunk, size_t limit,
                                  bool& too_large) {
    Framer framer(limit);
    std::vector<std::string> messages;
    too_large = false;
    for (size_t pos = 0; pos < input.size(); pos += chunk) {
        framer.append(input.substr(pos, chunk));
        while (true) {
            FrameResult r = framer.next();
            if (r.status == FrameStatus::Message) {
                require(r.message.size() <= limit);
                messages.push_back(std::move(r.message));
                continue;
            }
            too_large = r.status == FrameStatus::TooLarge;
            break;
        }
        if (too_large) break;
    }
    return messages;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    const std::string_view input(reinterpret_cast<const char*>(data), size);

    // Framing does not depend on how the stream was cut.
    bool too_large_whole = false;
    bool too_large_chunked = false;
    const auto whole =
        frameAll(input, input.size() + 1, Framer::kDefaultMaxMessageBytes, too_large_whole);
    const auto chunked = frameAll(input, 7, Framer::kDefaultMaxMessageBytes, too_large_chunked);
    require(whole == chunked);
    require(too_large_whole == too_large_chunked);
    bool small_too_large = false;
    frameAll(input, 13, 256, small_too_large);

    SeqWindow window;
    for (const std::string& message : whole) exercise(message, window);
    // The raw input as one message, whatever its framing.
    exercise(input, window);
    return 0;
}
