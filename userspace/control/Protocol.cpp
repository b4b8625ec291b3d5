#include "control/Protocol.h"

namespace xtap::control {

using json = nlohmann::json;

namespace {

std::string_view chomp(std::string_view line) {
    if (!line.empty() && line.back() == '\n') line.remove_suffix(1);
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    return line;
}

// Parses one JSON object; the error names what was wrong, never echoes input.
std::variant<json, std::string> parseObject(std::string_view line, size_t limit) {
    line = chomp(line);
    if (line.size() > limit)
        return std::string("line longer than ") + std::to_string(limit) + " bytes";
    if (line.find('\n') != std::string_view::npos) return std::string("more than one line");
    json j = json::parse(line.begin(), line.end(), nullptr, false);
    if (j.is_discarded()) return std::string("not valid JSON");
    if (!j.is_object()) return std::string("not a JSON object");
    return j;
}

}  // namespace

std::string encodeRequest(const Request& r) {
    json j = {{"command", r.command == Command::Flush ? "flush" : "status"}};
    if (r.command == Command::Flush) j["confirm"] = r.confirm;
    return j.dump() + "\n";
}

std::variant<Request, std::string> decodeRequest(std::string_view line) {
    auto parsed = parseObject(line, kMaxRequestBytes);
    if (auto* e = std::get_if<std::string>(&parsed)) return "bad request: " + *e;
    const json& j = std::get<json>(parsed);
    for (const auto& [key, value] : j.items())
        if (key != "command" && key != "confirm") return "bad request: unknown key \"" + key + "\"";
    const auto command = j.find("command");
    if (command == j.end() || !command->is_string())
        return std::string("bad request: no \"command\"");
    Request r;
    if (*command == "status") {
        r.command = Command::Status;
        if (j.contains("confirm")) return std::string("bad request: status takes no \"confirm\"");
        return r;
    }
    if (*command == "flush") {
        r.command = Command::Flush;
        const auto confirm = j.find("confirm");
        if (confirm == j.end() || !confirm->is_boolean() || !confirm->get<bool>())
            return std::string(
                "bad request: flush drops every criterion and needs \"confirm\": true");
        r.confirm = true;
        return r;
    }
    return std::string("bad request: unknown command (known: status, flush)");
}

std::string encodeResponse(const Response& r) {
    json j =
        r.ok ? json{{"ok", true}, {"result", r.result}} : json{{"ok", false}, {"error", r.error}};
    // Replace invalid UTF-8 rather than throw: a response always goes out.
    return j.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

std::variant<Response, std::string> decodeResponse(std::string_view line) {
    auto parsed = parseObject(line, kMaxResponseBytes);
    if (auto* e = std::get_if<std::string>(&parsed)) return "bad response: " + *e;
    json& j = std::get<json>(parsed);
    const auto ok = j.find("ok");
    if (ok == j.end() || !ok->is_boolean()) return std::string("bad response: no \"ok\"");
    if (ok->get<bool>()) {
        if (!j.contains("result")) return std::string("bad response: no \"result\"");
        return Response::success(std::move(j["result"]));
    }
    const auto error = j.find("error");
    if (error == j.end() || !error->is_string()) return std::string("bad response: no \"error\"");
    return Response::failure(error->get<std::string>());
}

}  // namespace xtap::control
