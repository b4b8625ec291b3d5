// ViciConnection: one unix stream socket to charon's vici plugin (platform.md
// §8). Framing and codecs are the pure ViciPacket/ViciCommands; this class
// only moves bytes, with deadlines. One command in flight per connection, so
// xtap keeps two: one for commands and one for event subscriptions, whose fd a
// poll loop watches and drains with readEvents().
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <utility>
#include <variant>

#include "common/UniqueFd.h"
#include "ipsec/ViciCommands.h"
#include "ipsec/ViciPacket.h"

namespace xtap::ipsec {

enum class ConnectionErrc : uint8_t {
    SocketError,  // a system call failed; sys_errno says which error
    Closed,       // charon closed the socket (it exited or restarts)
    Timeout,      // no complete answer before the deadline
    Protocol,     // charon sent bytes the codec rejects, or an unexpected packet
    Refused,      // CMD_UNKNOWN or EVENT_UNKNOWN: charon lacks the command or event
    Broken,       // an earlier failure left the stream out of step: reconnect
};

std::string_view describe(ConnectionErrc code);

struct ConnectionError {
    ConnectionErrc code = ConnectionErrc::SocketError;
    int sys_errno = 0;
    std::string detail;

    std::string message() const;  // "<description>: <detail> (<strerror>)"
};

template <class T>
class [[nodiscard]] ConnectionResult {
    static_assert(!std::is_same_v<T, ConnectionError>);

  public:
    ConnectionResult(T value) : state_(std::in_place_index<0>, std::move(value)) {}
    ConnectionResult(ConnectionError error) : state_(std::in_place_index<1>, std::move(error)) {}

    bool ok() const { return state_.index() == 0; }
    explicit operator bool() const { return ok(); }

    // Preconditions: ok() for value(), !ok() for error().
    T& value() & { return std::get<0>(state_); }
    const T& value() const& { return std::get<0>(state_); }
    T&& value() && { return std::get<0>(std::move(state_)); }
    const ConnectionError& error() const { return std::get<1>(state_); }

    T* operator->() { return &value(); }
    const T* operator->() const { return &value(); }
    T& operator*() & { return value(); }
    const T& operator*() const& { return value(); }

  private:
    std::variant<T, ConnectionError> state_;
};

template <>
class [[nodiscard]] ConnectionResult<void> {
  public:
    ConnectionResult() = default;
    ConnectionResult(ConnectionError error) : error_(std::move(error)) {}

    bool ok() const { return !error_.has_value(); }
    explicit operator bool() const { return ok(); }
    const ConnectionError& error() const { return *error_; }

  private:
    std::optional<ConnectionError> error_;
};

// Called for every EVENT packet, in arrival order. May be empty.
using EventHandler = std::function<void(const EventMessage&)>;

class ViciConnection {
  public:
    using Clock = std::chrono::steady_clock;
    using Milliseconds = std::chrono::milliseconds;

    // Connects to `socket_path` (a filesystem path, or "unix://<path>" as in
    // strongswan.conf). The socket is non-blocking; every call waits with
    // poll() up to its own timeout.
    static ConnectionResult<ViciConnection> open(std::string_view socket_path,
                                                 Milliseconds timeout);

    ViciConnection(ViciConnection&&) noexcept = default;
    ViciConnection& operator=(ViciConnection&&) noexcept = default;
    ViciConnection(const ViciConnection&) = delete;
    ViciConnection& operator=(const ViciConnection&) = delete;
    ~ViciConnection() = default;

    // Sends one CMD_REQUEST and returns its decoded CMD_RESPONSE. Events that
    // arrive first (streamed by this command, or subscriptions on this
    // connection) go to `on_event`.
    ConnectionResult<Section> call(const Packet& request, Milliseconds timeout,
                                   const EventHandler& on_event = {});

    // A streaming command (list-sas streams list-sa, initiate control-log):
    // registers `stream_event` first, as charon only streams to registered
    // connections, then runs call() and unregisters.
    ConnectionResult<Section> callStreaming(const Packet& request, std::string_view stream_event,
                                            Milliseconds timeout, const EventHandler& on_event);

    // EVENT_REGISTER / EVENT_UNREGISTER, waiting for the confirmation.
    ConnectionResult<void> subscribe(std::string_view event, Milliseconds timeout,
                                     const EventHandler& on_event = {});
    ConnectionResult<void> unsubscribe(std::string_view event, Milliseconds timeout,
                                       const EventHandler& on_event = {});

    // For a poll loop: POLLIN means readEvents() has work.
    int fd() const { return fd_.get(); }

    // Reads what the socket holds without blocking and dispatches every
    // complete EVENT; returns how many. Closed once charon hung up; any other
    // packet type here is a Protocol error (subscriptions only on this one).
    ConnectionResult<size_t> readEvents(const EventHandler& on_event);

  private:
    explicit ViciConnection(UniqueFd fd)
        : fd_(std::move(fd)), reassembler_(std::make_unique<PacketReassembler>()) {}

    ConnectionResult<void> send(const Packet& packet, Clock::time_point deadline);
    // The next non-EVENT packet; events before it go to on_event.
    ConnectionResult<Packet> nextReply(Clock::time_point deadline, const EventHandler& on_event);
    // Moves whatever the socket holds into the reassembler. Returns false
    // when it would block; Closed on EOF.
    ConnectionResult<bool> fill();
    ConnectionResult<void> registration(PacketType type, std::string_view event,
                                        Milliseconds timeout, const EventHandler& on_event);
    // Remembers that the stream can no longer be trusted, then returns `error`.
    ConnectionError breakWith(ConnectionError error);

    UniqueFd fd_;
    // Behind a pointer so a move is a pointer move: g++ 12 with sanitizers
    // warns (falsely) about moving the reassembler's optional error in place.
    std::unique_ptr<PacketReassembler> reassembler_;
    // After a timeout mid-command the late reply would be taken for the next
    // command's, after a codec error the framing is lost: refuse further use.
    bool broken_ = false;
};

}  // namespace xtap::ipsec
