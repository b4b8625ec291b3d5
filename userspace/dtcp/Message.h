// Message: one DTCP message as text (dtcp.md §2): a start line, `Name: value`
// fields and the Authentication-Info field that ends the signed part. Parsing
// keeps the fields as written; typed meaning comes later (RequestDecoder).
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "dtcp/Result.h"
#include "dtcp/Version.h"

namespace xtap::dtcp {

inline constexpr std::string_view kAuthenticationInfo = "Authentication-Info";
// The spelling xtap uses in its own replies and notifications (Junos shape).
inline constexpr std::string_view kAuthenticationInfoUpper = "AUTHENTICATION-INFO";

struct Field {
    std::string name;   // as written; compare with iequals
    std::string value;  // without surrounding whitespace
    bool operator==(const Field&) const = default;
};

// `METHOD SP DTCP/x.y`
struct RequestLine {
    std::string method;
    Version version;
    bool operator==(const RequestLine&) const = default;
};

// `DTCP/x.y SP 3DIGIT SP reason`, for responses and notifications.
struct StatusLine {
    Version version;
    uint16_t code = 0;
    std::string reason;
    bool operator==(const StatusLine&) const = default;
};

using StartLine = std::variant<RequestLine, StatusLine>;

struct Message {
    StartLine start;
    // Every field before Authentication-Info, in order; a repeated name is kept
    // here but find() returns its first occurrence, which is the one that counts.
    std::vector<Field> fields;
    std::optional<std::string> authentication_info;
    // Bytes [0, signed_length) of the input are what the HMAC covers: everything
    // before the Authentication-Info line (or before the end when there is none).
    size_t signed_length = 0;

    const Field* find(std::string_view name) const;
    const RequestLine* requestLine() const { return std::get_if<RequestLine>(&start); }
    const StatusLine* statusLine() const { return std::get_if<StatusLine>(&start); }
};

struct ParseError {
    std::string detail;
    // The start line's version when it could be read, so that the error reply
    // can be written in the right version.
    std::optional<Version> version;
};

// Parses one message: lines end with CRLF or a bare LF; the first empty line
// ends the message, and anything after it or after the Authentication-Info line
// is ignored.
Result<Message, ParseError> parseMessage(std::string_view bytes);

std::string formatStartLine(const StartLine& start);

// Builds a message line by line with CRLF line ends, then signs it: the HMAC
// covers exactly the bytes built so far.
class MessageWriter {
  public:
    explicit MessageWriter(const StartLine& start);
    MessageWriter& add(std::string_view name, std::string_view value);
    // The bytes built so far, the `<auth_name>: <hmac>` line and the empty line
    // that ends the message. Throws std::runtime_error only if OpenSSL cannot
    // compute HMAC-SHA1 at all.
    std::string sign(std::string_view key, std::string_view auth_name) const&;
    // The same, reusing the bytes built (no copy of a large message).
    std::string sign(std::string_view key, std::string_view auth_name) &&;
    const std::string& signedBytes() const { return text_; }
    size_t size() const { return text_.size(); }
    void reserve(size_t bytes) { text_.reserve(bytes); }

  private:
    std::string text_;
};

// Writes `message` back as text with CRLF line ends and a fresh signature.
std::string formatMessage(const Message& message, std::string_view key,
                          std::string_view auth_name = kAuthenticationInfo);

}  // namespace xtap::dtcp
