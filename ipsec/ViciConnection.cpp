#include "ipsec/ViciConnection.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <array>
#include <cerrno>
#include <cstring>

namespace xtap::ipsec {

namespace {

constexpr std::string_view kUnixScheme = "unix://";

ConnectionError systemError(std::string detail, int err = errno) {
    return ConnectionError{ConnectionErrc::SocketError, err, std::move(detail)};
}

ConnectionError protocolError(const ViciError& error) {
    return ConnectionError{ConnectionErrc::Protocol, 0, error.message()};
}

// Milliseconds left until `deadline`, for poll(); 0 once it passed.
int remainingMs(ViciConnection::Clock::time_point deadline) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
        deadline - ViciConnection::Clock::now());
    return left.count() <= 0 ? 0 : static_cast<int>(left.count());
}

// Waits for `events` on `fd` until `deadline`: ok(true) ready, ok(false) timed out.
ConnectionResult<bool> waitFor(int fd, short events, ViciConnection::Clock::time_point deadline) {
    for (;;) {
        pollfd pfd{fd, events, 0};
        const int ready = ::poll(&pfd, 1, remainingMs(deadline));
        if (ready > 0) {
            return true;
        }
        if (ready == 0) {
            return false;
        }
        if (errno != EINTR) {
            return systemError("poll on the vici socket");
        }
    }
}

std::string packetTypeName(PacketType type) {
    return "packet type " + std::to_string(static_cast<unsigned>(type));
}

}  // namespace

std::string_view describe(ConnectionErrc code) {
    switch (code) {
        case ConnectionErrc::SocketError:
            return "vici socket error";
        case ConnectionErrc::Closed:
            return "charon closed the vici connection";
        case ConnectionErrc::Timeout:
            return "vici request timed out";
        case ConnectionErrc::Protocol:
            return "vici protocol error";
        case ConnectionErrc::Refused:
            return "charon refused the request";
        case ConnectionErrc::Broken:
            return "vici connection unusable after an earlier failure";
    }
    return "vici error";
}

std::string ConnectionError::message() const {
    std::string out(describe(code));
    if (!detail.empty()) {
        out += ": " + detail;
    }
    if (sys_errno != 0) {
        out += std::string(" (") + std::strerror(sys_errno) + ")";
    }
    return out;
}

ConnectionResult<ViciConnection> ViciConnection::open(std::string_view socket_path,
                                                      Milliseconds timeout) {
    if (socket_path.starts_with(kUnixScheme)) {
        socket_path.remove_prefix(kUnixScheme.size());
    }
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    if (socket_path.empty() || socket_path.size() >= sizeof(address.sun_path)) {
        return ConnectionError{ConnectionErrc::SocketError, ENAMETOOLONG,
                               "vici socket path '" + std::string(socket_path) + "'"};
    }
    std::memcpy(address.sun_path, socket_path.data(), socket_path.size());

    UniqueFd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0));
    if (!fd) {
        return systemError("create the vici socket");
    }
    const auto deadline = Clock::now() + timeout;
    if (::connect(fd.get(), reinterpret_cast<const sockaddr*>(&address), sizeof address) < 0) {
        // A unix socket connects at once or fails; EAGAIN means charon's
        // backlog is full, which the caller's retry covers like a refusal.
        if (errno != EINPROGRESS) {
            return systemError("connect to " + std::string(socket_path));
        }
        auto writable = waitFor(fd.get(), POLLOUT, deadline);
        if (!writable) {
            return writable.error();
        }
        if (!*writable) {
            return ConnectionError{ConnectionErrc::Timeout, 0,
                                   "connect to " + std::string(socket_path)};
        }
        int err = 0;
        socklen_t len = sizeof err;
        if (::getsockopt(fd.get(), SOL_SOCKET, SO_ERROR, &err, &len) < 0 || err != 0) {
            return systemError("connect to " + std::string(socket_path), err ? err : errno);
        }
    }
    return ViciConnection(std::move(fd));
}

ConnectionError ViciConnection::breakWith(ConnectionError error) {
    broken_ = true;
    return error;
}

ConnectionResult<void> ViciConnection::send(const Packet& packet, Clock::time_point deadline) {
    auto bytes = encodePacket(packet);
    if (!bytes) {
        // Nothing was written: the stream is still in step.
        return protocolError(bytes.error());
    }
    size_t written = 0;
    while (written < bytes->size()) {
        const ssize_t n = ::send(fd_.get(), bytes->data() + written, bytes->size() - written,
                                 MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n >= 0) {
            written += static_cast<size_t>(n);
            continue;
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EPIPE || errno == ECONNRESET) {
            return breakWith(ConnectionError{ConnectionErrc::Closed, errno, "while sending"});
        }
        if (errno != EAGAIN) {
            return breakWith(systemError("send to charon"));
        }
        auto writable = waitFor(fd_.get(), POLLOUT, deadline);
        if (!writable) {
            return breakWith(writable.error());
        }
        if (!*writable) {
            // A partial packet is on the wire: the framing is lost.
            return breakWith(ConnectionError{ConnectionErrc::Timeout, 0, "sending a request"});
        }
    }
    return {};
}

ConnectionResult<bool> ViciConnection::fill() {
    std::array<uint8_t, 16384> chunk;
    bool got_bytes = false;
    for (;;) {
        const ssize_t n = ::recv(fd_.get(), chunk.data(), chunk.size(), MSG_DONTWAIT);
        if (n > 0) {
            reassembler_->append(std::span<const uint8_t>(chunk.data(), static_cast<size_t>(n)));
            got_bytes = true;
            continue;
        }
        if (n == 0) {
            if (got_bytes) {
                // Hand over what arrived; the next fill() reports the EOF.
                return true;
            }
            return breakWith(ConnectionError{ConnectionErrc::Closed, 0, {}});
        }
        if (errno == EINTR) {
            continue;
        }
        if (errno == EAGAIN) {
            return got_bytes;
        }
        if (errno == ECONNRESET) {
            return breakWith(ConnectionError{ConnectionErrc::Closed, errno, {}});
        }
        return breakWith(systemError("receive from charon"));
    }
}

ConnectionResult<Packet> ViciConnection::nextReply(Clock::time_point deadline,
                                                   const EventHandler& on_event) {
    for (;;) {
        auto next = reassembler_->next();
        if (!next) {
            return breakWith(protocolError(next.error()));
        }
        if (next->has_value()) {
            Packet packet = std::move(**next);
            if (packet.type != PacketType::Event) {
                return packet;
            }
            auto event = readEvent(packet);
            if (!event) {
                return breakWith(protocolError(event.error()));
            }
            if (on_event) {
                on_event(*event);
            }
            continue;
        }
        auto readable = waitFor(fd_.get(), POLLIN, deadline);
        if (!readable) {
            return breakWith(readable.error());
        }
        if (!*readable) {
            return breakWith(ConnectionError{ConnectionErrc::Timeout, 0, "waiting for a reply"});
        }
        if (auto filled = fill(); !filled) {
            return filled.error();
        }
    }
}

ConnectionResult<Section> ViciConnection::call(const Packet& request, Milliseconds timeout,
                                               const EventHandler& on_event) {
    if (broken_) {
        return ConnectionError{ConnectionErrc::Broken, 0, request.name};
    }
    const auto deadline = Clock::now() + timeout;
    if (auto sent = send(request, deadline); !sent) {
        return sent.error();
    }
    auto reply = nextReply(deadline, on_event);
    if (!reply) {
        ConnectionError error = reply.error();
        error.detail = request.name + (error.detail.empty() ? "" : ": " + error.detail);
        return error;
    }
    if (reply->type == PacketType::CmdUnknown) {
        return ConnectionError{ConnectionErrc::Refused, 0, "unknown command " + request.name};
    }
    if (reply->type != PacketType::CmdResponse) {
        return breakWith(ConnectionError{ConnectionErrc::Protocol, 0,
                                         request.name + ": " + packetTypeName(reply->type)});
    }
    auto message = readResponse(*reply);
    if (!message) {
        // The frame was complete, so the stream is still in step.
        return protocolError(message.error());
    }
    return std::move(message).value();
}

ConnectionResult<void> ViciConnection::registration(PacketType type, std::string_view event,
                                                    Milliseconds timeout,
                                                    const EventHandler& on_event) {
    if (broken_) {
        return ConnectionError{ConnectionErrc::Broken, 0, std::string(event)};
    }
    auto packet = type == PacketType::EventRegister ? registerEventRequest(event)
                                                    : unregisterEventRequest(event);
    if (!packet) {
        return protocolError(packet.error());
    }
    const auto deadline = Clock::now() + timeout;
    if (auto sent = send(*packet, deadline); !sent) {
        return sent.error();
    }
    auto reply = nextReply(deadline, on_event);
    if (!reply) {
        return reply.error();
    }
    if (reply->type == PacketType::EventUnknown) {
        return ConnectionError{ConnectionErrc::Refused, 0, "unknown event " + std::string(event)};
    }
    if (reply->type != PacketType::EventConfirm) {
        return breakWith(ConnectionError{ConnectionErrc::Protocol, 0,
                                         std::string(event) + ": " + packetTypeName(reply->type)});
    }
    return {};
}

ConnectionResult<void> ViciConnection::subscribe(std::string_view event, Milliseconds timeout,
                                                 const EventHandler& on_event) {
    return registration(PacketType::EventRegister, event, timeout, on_event);
}

ConnectionResult<void> ViciConnection::unsubscribe(std::string_view event, Milliseconds timeout,
                                                   const EventHandler& on_event) {
    return registration(PacketType::EventUnregister, event, timeout, on_event);
}

ConnectionResult<Section> ViciConnection::callStreaming(const Packet& request,
                                                        std::string_view stream_event,
                                                        Milliseconds timeout,
                                                        const EventHandler& on_event) {
    const auto deadline = Clock::now() + timeout;
    auto left = [&] { return std::chrono::duration_cast<Milliseconds>(deadline - Clock::now()); };
    if (auto registered = subscribe(stream_event, left(), on_event); !registered) {
        return registered.error();
    }
    auto response = call(request, left(), on_event);
    if (!response) {
        return response;
    }
    if (auto unregistered = unsubscribe(stream_event, left(), on_event); !unregistered) {
        return unregistered.error();
    }
    return response;
}

ConnectionResult<size_t> ViciConnection::readEvents(const EventHandler& on_event) {
    if (broken_) {
        return ConnectionError{ConnectionErrc::Broken, 0, "event connection"};
    }
    auto filled = fill();
    size_t dispatched = 0;
    for (;;) {
        auto next = reassembler_->next();
        if (!next) {
            return breakWith(protocolError(next.error()));
        }
        if (!next->has_value()) {
            break;
        }
        auto event = readEvent(**next);
        if (!event) {
            return breakWith(protocolError(event.error()));
        }
        if (on_event) {
            on_event(*event);
        }
        ++dispatched;
    }
    // Events that arrived with the EOF are dispatched first: a down event
    // just before charon exits must not be lost.
    if (!filled) {
        return filled.error();
    }
    return dispatched;
}

}  // namespace xtap::ipsec
