// Framer: cuts the byte stream of a DTCP channel into messages. A message ends
// at the first empty line (CRLF or bare LF line ends, dtcp.md §2); its bytes are
// kept exactly as received because the HMAC covers them so.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace xtap::dtcp {

enum class FrameStatus {
    Message,   // `message` holds one complete message, its ending empty line included
    NeedMore,  // no complete message buffered yet
    TooLarge,  // a message exceeds the limit: the caller closes the channel
};

struct FrameResult {
    FrameStatus status = FrameStatus::NeedMore;
    std::string message;
};

class Framer {
  public:
    static constexpr size_t kDefaultMaxMessageBytes = 64 * 1024;

    explicit Framer(size_t max_message_bytes = kDefaultMaxMessageBytes);

    // Adds received bytes. Once a message was too large, further bytes are dropped.
    void append(std::string_view bytes);

    // The next complete message, if any. TooLarge is final: every later call
    // returns it too. Empty lines between messages are skipped.
    FrameResult next();

    size_t bufferedBytes() const { return buffer_.size(); }

  private:
    size_t max_message_bytes_;
    std::string buffer_;
    size_t line_start_ = 0;  // start of the first line not yet examined
    bool too_large_ = false;
};

}  // namespace xtap::dtcp
