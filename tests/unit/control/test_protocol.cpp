#include <doctest/doctest.h>

#include "control/Protocol.h"

using namespace xtap::control;

TEST_CASE("control protocol: requests round trip") {
    for (const Request& r : {Request{Command::Status, false}, Request{Command::Flush, true}}) {
        const std::string line = encodeRequest(r);
        CHECK(line.back() == '\n');
        auto decoded = decodeRequest(line);
        REQUIRE(std::holds_alternative<Request>(decoded));
        CHECK(std::get<Request>(decoded) == r);
    }
    CHECK(encodeRequest({Command::Status, false}) == "{\"command\":\"status\"}\n");
}

TEST_CASE("control protocol: bad requests are refused with a reason") {
    auto reason = [](std::string_view line) {
        auto r = decodeRequest(line);
        REQUIRE(std::holds_alternative<std::string>(r));
        return std::get<std::string>(r);
    };
    CHECK(reason("status\n").find("not valid JSON") != std::string::npos);
    CHECK(reason("[1,2]").find("not a JSON object") != std::string::npos);
    CHECK(reason("{}").find("no \"command\"") != std::string::npos);
    CHECK(reason("{\"command\":7}").find("no \"command\"") != std::string::npos);
    CHECK(reason("{\"command\":\"reboot\"}").find("unknown command") != std::string::npos);
    CHECK(reason("{\"command\":\"status\",\"x\":1}").find("unknown key") != std::string::npos);
    CHECK(reason("{\"command\":\"status\",\"confirm\":true}").find("no \"confirm\"") !=
          std::string::npos);
    // Flushing everything needs an explicit confirmation.
    CHECK(reason("{\"command\":\"flush\"}").find("confirm") != std::string::npos);
    CHECK(reason("{\"command\":\"flush\",\"confirm\":false}").find("confirm") != std::string::npos);
    CHECK(reason("{\"command\":\"flush\",\"confirm\":\"yes\"}").find("confirm") !=
          std::string::npos);
    CHECK(reason(std::string(kMaxRequestBytes + 1, ' ')).find("longer than") != std::string::npos);
    CHECK(reason("{\"command\":\"status\"}\n{}").find("more than one line") != std::string::npos);
}

TEST_CASE("control protocol: responses round trip") {
    auto ok = decodeResponse(encodeResponse(Response::success({{"flushed", 3}})));
    REQUIRE(std::holds_alternative<Response>(ok));
    CHECK(std::get<Response>(ok).ok);
    CHECK(std::get<Response>(ok).result["flushed"] == 3);

    auto failed = decodeResponse(encodeResponse(Response::failure("not available")));
    REQUIRE(std::holds_alternative<Response>(failed));
    CHECK_FALSE(std::get<Response>(failed).ok);
    CHECK(std::get<Response>(failed).error == "not available");

    CHECK(std::holds_alternative<std::string>(decodeResponse("{\"ok\":true}")));
    CHECK(std::holds_alternative<std::string>(decodeResponse("{\"ok\":false}")));
    CHECK(std::holds_alternative<std::string>(decodeResponse("{\"result\":1}")));
    CHECK(std::holds_alternative<std::string>(decodeResponse("garbage")));
}

TEST_CASE("control protocol: a response with invalid UTF-8 still encodes") {
    const std::string line = encodeResponse(Response::failure(std::string("bad \xff byte")));
    CHECK(line.back() == '\n');
    CHECK(std::holds_alternative<Response>(decodeResponse(line)));
}
