#include <doctest/doctest.h>

#include <string>

#include "dtcp/Framer.h"

namespace xtap::dtcp {
namespace {

const std::string kCrlfMessage = "NOOP DTCP/0.8\r\nCsource-ID: a\r\nSeq: 1\r\n\r\n";
const std::string kLfMessage = "NOOP DTCP/0.8\nCsource-ID: a\nSeq: 1\n\n";

TEST_CASE("a complete CRLF message comes out with its bytes unchanged") {
    Framer framer;
    framer.append(kCrlfMessage);
    const FrameResult r = framer.next();
    CHECK(r.status == FrameStatus::Message);
    CHECK(r.message == kCrlfMessage);
    CHECK(framer.next().status == FrameStatus::NeedMore);
    CHECK(framer.bufferedBytes() == 0);
}

TEST_CASE("bare LF and mixed line ends end a message at the empty line") {
    for (const std::string& text : {kLfMessage, std::string("NOOP DTCP/0.8\r\nSeq: 1\r\n\n"),
                                    std::string("NOOP DTCP/0.8\nSeq: 1\n\r\n")}) {
        INFO(text);
        Framer framer;
        framer.append(text);
        const FrameResult r = framer.next();
        CHECK(r.status == FrameStatus::Message);
        CHECK(r.message == text);
    }
}

TEST_CASE("a message arriving byte by byte is complete only after its empty line") {
    Framer framer;
    for (size_t i = 0; i + 1 < kCrlfMessage.size(); ++i) {
        framer.append(kCrlfMessage.substr(i, 1));
        CHECK(framer.next().status == FrameStatus::NeedMore);
    }
    framer.append(kCrlfMessage.substr(kCrlfMessage.size() - 1));
    const FrameResult r = framer.next();
    CHECK(r.status == FrameStatus::Message);
    CHECK(r.message == kCrlfMessage);
}

TEST_CASE("several messages in one chunk come out one by one, a partial one waits") {
    Framer framer;
    framer.append(kCrlfMessage + kLfMessage + "NOOP DTCP/0.8\r\nSeq:");
    CHECK(framer.next().message == kCrlfMessage);
    CHECK(framer.next().message == kLfMessage);
    CHECK(framer.next().status == FrameStatus::NeedMore);
    framer.append(" 3\r\n\r\n");
    const FrameResult r = framer.next();
    CHECK(r.status == FrameStatus::Message);
    CHECK(r.message == "NOOP DTCP/0.8\r\nSeq: 3\r\n\r\n");
}

TEST_CASE("empty lines between messages are skipped, not messages") {
    Framer framer;
    framer.append("\r\n\n\r\n" + kCrlfMessage + "\r\n\r\n" + kLfMessage);
    CHECK(framer.next().message == kCrlfMessage);
    CHECK(framer.next().message == kLfMessage);
    CHECK(framer.next().status == FrameStatus::NeedMore);
}

TEST_CASE("a CR alone is no empty line") {
    Framer framer;
    framer.append("NOOP DTCP/0.8\r\n\r");
    CHECK(framer.next().status == FrameStatus::NeedMore);
    framer.append("\r\n");  // "\r\r\n": a line holding one CR, not empty
    CHECK(framer.next().status == FrameStatus::NeedMore);
    framer.append("\r\n");
    CHECK(framer.next().status == FrameStatus::Message);
}

// A message of exactly `size` bytes: start line, one padding field, empty line.
std::string messageOfSize(size_t size) {
    const std::string head = "NOOP DTCP/0.8\r\nX-Pad: ";
    const std::string tail = "\r\n\r\n";
    return head + std::string(size - head.size() - tail.size(), 'p') + tail;
}

TEST_CASE("64 KiB is the default limit: 65536 bytes pass, 65537 close the channel") {
    CHECK(Framer::kDefaultMaxMessageBytes == 65536);
    {
        Framer framer;
        const std::string text = messageOfSize(65536);
        REQUIRE(text.size() == 65536);
        framer.append(text);
        const FrameResult r = framer.next();
        CHECK(r.status == FrameStatus::Message);
        CHECK(r.message.size() == 65536);
    }
    {
        Framer framer;
        framer.append(messageOfSize(65537));
        CHECK(framer.next().status == FrameStatus::TooLarge);
    }
}

TEST_CASE("a message over the limit is refused before its end arrives, and for good") {
    Framer framer(100);
    framer.append("NOOP DTCP/0.8\r\n");
    framer.append(std::string(100, 'x'));
    CHECK(framer.next().status == FrameStatus::TooLarge);
    CHECK(framer.bufferedBytes() == 0);
    framer.append(kCrlfMessage);  // dropped: the channel is closing
    CHECK(framer.next().status == FrameStatus::TooLarge);
    CHECK(framer.bufferedBytes() == 0);
}

TEST_CASE("the limit applies to each message, not to the buffer") {
    Framer framer(kCrlfMessage.size());
    framer.append(kCrlfMessage + kCrlfMessage + kCrlfMessage);
    for (int i = 0; i < 3; ++i) CHECK(framer.next().status == FrameStatus::Message);
    CHECK(framer.next().status == FrameStatus::NeedMore);
}

}  // namespace
}  // namespace xtap::dtcp
