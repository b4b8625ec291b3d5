#include "dtcp/Message.h"

#include "dtcp/Hmac.h"
#include "dtcp/Text.h"

namespace xtap::dtcp {

namespace {

// Walks the input line by line; a line ends at LF, and one CR before it is part
// of the line end, not of the line.
class LineReader {
  public:
    explicit LineReader(std::string_view bytes) : bytes_(bytes) {}

    bool next(std::string_view& line, size_t& line_start) {
        if (pos_ >= bytes_.size()) return false;
        line_start = pos_;
        const size_t lf = bytes_.find('\n', pos_);
        if (lf == std::string_view::npos) {
            line = bytes_.substr(pos_);
            pos_ = bytes_.size();
        } else {
            line = bytes_.substr(pos_, lf - pos_);
            pos_ = lf + 1;
        }
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        return true;
    }

    size_t position() const { return pos_; }

  private:
    std::string_view bytes_;
    size_t pos_ = 0;
};

bool isNameChar(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f && c != ':';
}

bool isTokenChar(char c) {
    const auto u = static_cast<unsigned char>(c);
    return u > 0x20 && u != 0x7f;
}

Result<StartLine, ParseError> parseStartLine(std::string_view line) {
    if (line.substr(0, 5) == "DTCP/") {
        const size_t sp = line.find_first_of(" \t");
        const auto version = parseVersion(line.substr(0, sp));
        if (!version) return fail(ParseError{"bad version in status line", std::nullopt});
        if (sp == std::string_view::npos) {
            return fail(ParseError{"status line without a status code", version});
        }
        std::string_view rest = trimWsp(line.substr(sp));
        if (rest.size() < 3 || !isDigit(rest[0]) || !isDigit(rest[1]) || !isDigit(rest[2]) ||
            (rest.size() > 3 && !isWsp(rest[3]))) {
            return fail(ParseError{"status code is not 3 digits", version});
        }
        StatusLine status;
        status.version = *version;
        status.code =
            static_cast<uint16_t>((rest[0] - '0') * 100 + (rest[1] - '0') * 10 + (rest[2] - '0'));
        status.reason = std::string(trimWsp(rest.substr(3)));
        return StartLine{std::move(status)};
    }
    size_t method_end = 0;
    while (method_end < line.size() && isTokenChar(line[method_end])) ++method_end;
    if (method_end == 0) return fail(ParseError{"request line without a method", std::nullopt});
    if (method_end == line.size() || !isWsp(line[method_end])) {
        return fail(ParseError{"request line without a version", std::nullopt});
    }
    const auto version = parseVersion(trimWsp(line.substr(method_end)));
    if (!version) return fail(ParseError{"bad version in request line", std::nullopt});
    return StartLine{RequestLine{std::string(line.substr(0, method_end)), *version}};
}

std::optional<Version> versionOf(const StartLine& start) {
    return std::visit([](const auto& line) { return line.version; }, start);
}

}  // namespace

const Field* Message::find(std::string_view name) const {
    for (const Field& field : fields) {
        if (iequals(field.name, name)) return &field;
    }
    return nullptr;
}

Result<Message, ParseError> parseMessage(std::string_view bytes) {
    LineReader reader(bytes);
    std::string_view line;
    size_t line_start = 0;
    if (!reader.next(line, line_start) || line.empty()) {
        return fail(ParseError{"empty message", std::nullopt});
    }
    auto start = parseStartLine(line);
    if (!start) return fail(std::move(start.error()));

    Message message;
    message.start = std::move(start.value());
    message.signed_length = bytes.size();
    const auto version = versionOf(message.start);
    size_t line_number = 1;
    while (reader.next(line, line_start)) {
        ++line_number;
        if (line.empty()) {
            message.signed_length = line_start;
            break;
        }
        const size_t colon = line.find(':');
        if (colon == std::string_view::npos) {
            return fail(ParseError{"line " + std::to_string(line_number) + " has no ':'", version});
        }
        if (isWsp(line.front())) {
            return fail(ParseError{
                "line " + std::to_string(line_number) + " starts with whitespace", version});
        }
        const std::string_view name = trimWsp(line.substr(0, colon));
        if (name.empty()) {
            return fail(
                ParseError{"line " + std::to_string(line_number) + " has no name", version});
        }
        for (char c : name) {
            if (!isNameChar(c)) {
                return fail(ParseError{
                    "line " + std::to_string(line_number) + " has a bad character in its name",
                    version});
            }
        }
        const std::string_view value = trimWsp(line.substr(colon + 1));
        if (iequals(name, kAuthenticationInfo)) {
            // Authentication-Info is last: whatever follows is not covered and not read.
            message.authentication_info = std::string(value);
            message.signed_length = line_start;
            break;
        }
        message.fields.push_back(Field{std::string(name), std::string(value)});
    }
    return message;
}

std::string formatStartLine(const StartLine& start) {
    if (const auto* request = std::get_if<RequestLine>(&start)) {
        return request->method + " " + formatVersion(request->version);
    }
    const auto& status = std::get<StatusLine>(start);
    std::string code = std::to_string(status.code % 1000);
    code.insert(0, 3 - code.size(), '0');
    std::string line = formatVersion(status.version) + " " + code;
    if (!status.reason.empty()) line += " " + status.reason;
    return line;
}

MessageWriter::MessageWriter(const StartLine& start) : text_(formatStartLine(start) + "\r\n") {}

MessageWriter& MessageWriter::add(std::string_view name, std::string_view value) {
    text_.append(name);
    text_.append(": ");
    text_.append(value);
    text_.append("\r\n");
    return *this;
}

std::string MessageWriter::sign(std::string_view key, std::string_view auth_name) const& {
    return MessageWriter(*this).sign(key, auth_name);
}

std::string MessageWriter::sign(std::string_view key, std::string_view auth_name) && {
    const std::string mac = hmacSha1Hex(key, text_);
    std::string out = std::move(text_);
    out.append(auth_name);
    out.append(": ");
    out.append(mac);
    out.append("\r\n\r\n");
    return out;
}

std::string formatMessage(const Message& message, std::string_view key,
                          std::string_view auth_name) {
    MessageWriter writer(message.start);
    for (const Field& field : message.fields) writer.add(field.name, field.value);
    return writer.sign(key, auth_name);
}

}  // namespace xtap::dtcp
