#include "dtcp/Framer.h"

namespace xtap::dtcp {

Framer::Framer(size_t max_message_bytes) : max_message_bytes_(max_message_bytes) {}

void Framer::append(std::string_view bytes) {
    if (too_large_) return;
    buffer_.append(bytes);
}

FrameResult Framer::next() {
    if (too_large_) return FrameResult{FrameStatus::TooLarge, {}};
    while (true) {
        const size_t lf = buffer_.find('\n', line_start_);
        if (lf == std::string::npos) break;
        const size_t line_length = lf - line_start_;
        const bool empty_line =
            line_length == 0 || (line_length == 1 && buffer_[line_start_] == '\r');
        if (!empty_line) {
            line_start_ = lf + 1;
            continue;
        }
        if (line_start_ == 0) {
            // An empty line before any message line: separator noise, not a message.
            buffer_.erase(0, lf + 1);
            continue;
        }
        const size_t end = lf + 1;
        if (end > max_message_bytes_) break;
        FrameResult result{FrameStatus::Message, buffer_.substr(0, end)};
        buffer_.erase(0, end);
        line_start_ = 0;
        return result;
    }
    // Either no end yet or the end lies beyond the limit: both are too large once
    // the limit is passed, without waiting for the rest.
    if (buffer_.size() > max_message_bytes_) {
        too_large_ = true;
        buffer_.clear();
        buffer_.shrink_to_fit();
        line_start_ = 0;
        return FrameResult{FrameStatus::TooLarge, {}};
    }
    return FrameResult{FrameStatus::NeedMore, {}};
}

}  // namespace xtap::dtcp
