// The control protocol between xtapctl and xtapd on the local control socket
// (pure: no I/O). One JSON object per line each way:
//
//   -> {"command":"status"}
//   <- {"ok":true,"result":{...Status...}}
//   -> {"command":"flush","confirm":true}
//   <- {"ok":true,"result":{"flushed":N}}
//   <- {"ok":false,"error":"..."}            any failure
//
// A flush without "confirm":true is refused by the decoder: dropping every
// intercept must never be one mistyped line away.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <variant>

namespace xtap::control {

inline constexpr size_t kMaxRequestBytes = 4096;               // one request line
inline constexpr size_t kMaxResponseBytes = 64 * 1024 * 1024;  // one response line

enum class Command { Status, Flush };

struct Request {
    Command command = Command::Status;
    bool confirm = false;  // flush only
    bool operator==(const Request&) const = default;
};

struct Response {
    bool ok = true;
    nlohmann::json result;  // when ok
    std::string error;      // when not
    static Response success(nlohmann::json result) { return {true, std::move(result), {}}; }
    static Response failure(std::string error) { return {false, nullptr, std::move(error)}; }
};

// Each encoder's output ends with '\n'; the decoders take a line with or without it.
std::string encodeRequest(const Request& request);
std::variant<Request, std::string> decodeRequest(std::string_view line);
std::string encodeResponse(const Response& response);
std::variant<Response, std::string> decodeResponse(std::string_view line);

}  // namespace xtap::control
