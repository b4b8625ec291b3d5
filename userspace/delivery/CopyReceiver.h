// CopyReceiver: the content destination's side (`xtapctl receive`, tests). A
// UDP socket on the listen address takes copies in batches (recvmmsg, kernel
// receive timestamps), PayloadDecoder turns each back into the original
// packet, and CopyTally counts them per criterion: JMirror copies by
// (intercept ID, session ID), flowtap copies (no ID on the wire) by sender.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>
#include <map>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/UniqueFd.h"
#include "delivery/DeliveryParams.h"
#include "delivery/PayloadDecoder.h"

namespace xtap::delivery {

// An IPv4 or IPv6 address and UDP port.
struct Endpoint {
    Family family = Family::V4;
    Address address{};
    uint16_t port = 0;

    auto operator<=>(const Endpoint&) const = default;
};

// "198.18.20.1:30030" or "[2001:db8::1]:30030"; port 1-65535 required.
std::optional<Endpoint> parseEndpoint(std::string_view text);
std::string formatEndpoint(const Endpoint& endpoint);  // same syntax

std::optional<Format> parseFormat(std::string_view text);  // "flowtap" | "jmirror"
std::string_view name(Format format);

// Counts of what arrived; pure, so it is tested without sockets.
struct CopyTally {
    uint64_t datagrams = 0;
    uint64_t copies = 0;  // decoded
    uint64_t inner_ipv4 = 0;
    uint64_t inner_ipv6 = 0;
    uint64_t original_bytes = 0;
    uint64_t format_mismatches = 0;            // valid copies in the other format than expected
    std::map<DeliveryError, uint64_t> errors;  // every undecodable datagram, mismatches included
    std::map<std::pair<uint32_t, uint32_t>, uint64_t> jmirror_by_ids;  // (intercept, session)
    std::map<Endpoint, uint64_t> flowtap_by_sender;

    // Records one datagram from `sender` and its decoding.
    void record(const Endpoint& sender, const Result<DecodedCopy>& decoded);
    uint64_t failures() const;  // datagrams that did not decode (mismatches included)
};

struct ReceivedCopy {
    Endpoint sender;
    timespec received{};  // kernel receive time (CLOCK_REALTIME)
    DecodedCopy copy;     // views the receiver's buffer until the handler returns
};

using CopyHandler = std::function<void(const ReceivedCopy&)>;

class CopyReceiver {
  public:
    // Binds to `listen`; throws std::system_error. `expected` makes a copy
    // in the other format an error (counted, not handed to the handler).
    CopyReceiver(const Endpoint& listen, std::optional<Format> expected,
                 int receive_buffer_bytes = 8 << 20);

    int fd() const { return fd_.get(); }
    const CopyTally& tally() const { return tally_; }

    // Takes every datagram the socket holds without blocking, at most
    // `max_datagrams`; hands each decoded copy to `on_copy`. Returns how many
    // datagrams it took (0: nothing queued). Throws std::system_error on a
    // socket error other than "nothing to read".
    size_t receiveAvailable(const CopyHandler& on_copy, size_t max_datagrams = SIZE_MAX);

  private:
    UniqueFd fd_;
    std::optional<Format> expected_;
    CopyTally tally_;
    std::vector<uint8_t> buffers_;  // kBatch datagrams of the maximum UDP size
};

}  // namespace xtap::delivery
