// UdpSender over loopback: the gate is asked before anything is sent (and
// again at flush), every copy is counted exactly once, batches go out whole,
// the cleartext allow-list is the only bypass, a non-local source fails.
#include <doctest/doctest.h>
#include <netinet/in.h>
#include <poll.h>

#include <atomic>
#include <cstring>
#include <system_error>

#include "TestPackets.h"
#include "delivery/CopyReceiver.h"
#include "delivery/UdpSender.h"

using namespace xtap::delivery;
using namespace xtap::delivery::test;

namespace {

const Address kLoopback4 = v4(127, 0, 0, 1);

Address loopback6() {
    Address address{};
    address[15] = 1;
    return address;
}

// A receiver on an ephemeral loopback port and the Cdest that points at it.
struct Loopback {
    Family family;
    Address host;
    xtap::UniqueFd probe;
    uint16_t port = 0;

    explicit Loopback(Family f) : family(f), host(f == Family::V4 ? kLoopback4 : loopback6()) {
        // Find a free port: bind port 0 on a scratch socket, read it, close it.
        probe.reset(::socket(f == Family::V4 ? AF_INET : AF_INET6, SOCK_DGRAM, 0));
        sockaddr_storage address{};
        socklen_t length = 0;
        if (f == Family::V4) {
            auto* in = reinterpret_cast<sockaddr_in*>(&address);
            in->sin_family = AF_INET;
            std::memcpy(&in->sin_addr, host.data(), 4);
            length = sizeof *in;
        } else {
            auto* in6 = reinterpret_cast<sockaddr_in6*>(&address);
            in6->sin6_family = AF_INET6;
            std::memcpy(&in6->sin6_addr, host.data(), 16);
            length = sizeof *in6;
        }
        REQUIRE(::bind(probe.get(), reinterpret_cast<sockaddr*>(&address), length) == 0);
        REQUIRE(::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&address), &length) == 0);
        port = ntohs(f == Family::V4 ? reinterpret_cast<sockaddr_in*>(&address)->sin_port
                                     : reinterpret_cast<sockaddr_in6*>(&address)->sin6_port);
        probe.reset();
    }

    OuterHeader outer() const { return OuterHeader{family, host, 0, host, port, 64}; }
    Endpoint endpoint() const { return Endpoint{family, host, port}; }
};

size_t drain(CopyReceiver& receiver, std::vector<std::vector<uint8_t>>* packets = nullptr) {
    size_t total = 0;
    for (int i = 0; i < 50; ++i) {
        pollfd pfd{receiver.fd(), POLLIN, 0};
        if (::poll(&pfd, 1, i == 0 ? 200 : 20) <= 0) {
            break;
        }
        total += receiver.receiveAvailable([&](const ReceivedCopy& copy) {
            if (packets) {
                packets->emplace_back(copy.copy.packet.begin(), copy.copy.packet.end());
            }
        });
    }
    return total;
}

}  // namespace

TEST_CASE("UdpSender: a closed gate drops before any send and counts tunnel_down") {
    Loopback sink(Family::V4);
    CopyReceiver receiver(sink.endpoint(), std::nullopt);
    int asked = 0;
    UdpSender sender([&](Family, const Address&) {
        ++asked;
        return false;
    });
    sender.addDestination(1, sink.outer());
    auto encapsulator = Encapsulator::create(jmirror(sink.outer()));
    REQUIRE(encapsulator.ok());
    CHECK(sender.send(1, *encapsulator, kInner4) == SendOutcome::DroppedTunnelDown);
    CHECK(sender.queued() == 0);
    CHECK(sender.flush() == 0);
    const CdestCounters& counters = *sender.counters(1);
    CHECK(counters.copies_sent == 0);
    CHECK(counters.dropped(DropReason::TunnelDown) == 1);
    CHECK(counters.dropped_bytes == kJmirrorHeaderSize + kInner4.size());
    CHECK(asked == 1);
    CHECK(drain(receiver) == 0);
}

TEST_CASE("UdpSender: an open gate delivers byte-identical copies over IPv4 and IPv6") {
    for (Family family : {Family::V4, Family::V6}) {
        CAPTURE(static_cast<int>(family));
        Loopback sink(family);
        CopyReceiver receiver(sink.endpoint(), Format::Jmirror);
        UdpSender sender([](Family, const Address&) { return true; });
        sender.addDestination(7, sink.outer());
        auto encapsulator = Encapsulator::create(jmirror(sink.outer()));
        REQUIRE(encapsulator.ok());
        CHECK(sender.send(7, *encapsulator, kInner4) == SendOutcome::Queued);
        CHECK(sender.send(7, *encapsulator, kInner6) == SendOutcome::Queued);
        CHECK(sender.flush() == 2);
        std::vector<std::vector<uint8_t>> packets;
        CHECK(drain(receiver, &packets) == 2);
        REQUIRE(packets.size() == 2);
        CHECK(packets[0] == kInner4);
        CHECK(packets[1] == kInner6);
        CHECK(receiver.tally().jmirror_by_ids.at({kInterceptId & kMaxInterceptId, kSessionId}) ==
              2);
        const CdestCounters& counters = *sender.counters(7);
        CHECK(counters.copies_sent == 2);
        CHECK(counters.bytes_sent == 2 * kJmirrorHeaderSize + kInner4.size() + kInner6.size());
        CHECK(counters.droppedTotal() == 0);
    }
}

TEST_CASE("UdpSender: the gate is asked again at flush time") {
    Loopback sink(Family::V4);
    CopyReceiver receiver(sink.endpoint(), std::nullopt);
    std::atomic<bool> open{true};
    UdpSender sender([&](Family, const Address&) { return open.load(); });
    sender.addDestination(1, sink.outer());
    auto encapsulator = Encapsulator::create(flowtap(sink.outer()));
    REQUIRE(encapsulator.ok());
    for (int i = 0; i < 5; ++i) {
        CHECK(sender.send(1, *encapsulator, kInner4) == SendOutcome::Queued);
    }
    open = false;  // the tunnel went down before the batch went out
    CHECK(sender.flush() == 0);
    CHECK(sender.counters(1)->dropped(DropReason::TunnelDown) == 5);
    CHECK(sender.counters(1)->copies_sent == 0);
    CHECK(drain(receiver) == 0);
}

TEST_CASE("UdpSender: a copy dropped at flush is reported with its tag") {
    Loopback sink(Family::V4);
    std::atomic<bool> open{true};
    UdpSender sender([&](Family, const Address&) { return open.load(); });
    sender.addDestination(1, sink.outer());
    auto encapsulator = Encapsulator::create(flowtap(sink.outer()));
    REQUIRE(encapsulator.ok());
    std::vector<uint64_t> tags;
    sender.onLateDrop([&](uint64_t tag, DropReason reason, size_t bytes) {
        CHECK(reason == DropReason::TunnelDown);
        CHECK(bytes == kInner4.size());  // flowtap: the UDP payload is the packet
        tags.push_back(tag);
    });
    for (uint64_t tag = 10; tag < 13; ++tag)
        CHECK(sender.send(1, *encapsulator, kInner4, tag) == SendOutcome::Queued);
    open = false;
    CHECK(sender.flush() == 0);
    CHECK(tags == std::vector<uint64_t>{10, 11, 12});
    CHECK(sender.counters(1)->dropped(DropReason::TunnelDown) == 3);
}

TEST_CASE("UdpSender: full batches go out by themselves and sent + dropped = offered") {
    Loopback sink(Family::V6);
    CopyReceiver receiver(sink.endpoint(), Format::Flowtap);
    int calls = 0;
    UdpSenderOptions options;
    options.batch_messages = 8;
    // Open for the first 20 copies only.
    UdpSender sender([&](Family, const Address&) { return calls++ < 20; }, options);
    sender.addDestination(3, sink.outer());
    auto encapsulator = Encapsulator::create(flowtap(sink.outer()));
    REQUIRE(encapsulator.ok());
    size_t queued = 0;
    for (int i = 0; i < 8; ++i) {
        queued += sender.send(3, *encapsulator, kInner6) == SendOutcome::Queued;
    }
    // The eighth copy filled the batch: sent without an explicit flush.
    CHECK(sender.queued() == 0);
    CHECK(sender.counters(3)->copies_sent == 8);
    for (int i = 0; i < 30; ++i) {
        queued += sender.send(3, *encapsulator, kInner6) == SendOutcome::Queued;
    }
    sender.flush();
    const CdestCounters& counters = *sender.counters(3);
    CHECK(counters.copies_sent + counters.droppedTotal() == 38);
    CHECK(counters.dropped(DropReason::TunnelDown) > 0);
    CHECK(drain(receiver) == counters.copies_sent);
    CHECK(receiver.tally().failures() == 0);
}

TEST_CASE("UdpSender: the cleartext allow-list is the only bypass") {
    Loopback sink(Family::V4);
    CopyReceiver receiver(sink.endpoint(), std::nullopt);
    UdpSenderOptions options;
    options.cleartext_allowed = {CleartextPrefix{Family::V4, {v4(127, 0, 0, 0), 8}}};
    UdpSender sender([](Family, const Address&) { return false; }, options);
    sender.addDestination(1, sink.outer());
    CHECK(sender.sendPayload(1, kInner4) == SendOutcome::Queued);
    CHECK(sender.flush() == 1);
    CHECK(drain(receiver) == 1);

    // A prefix of the other family or elsewhere does not open anything.
    UdpSenderOptions elsewhere;
    elsewhere.cleartext_allowed = {CleartextPrefix{Family::V4, {v4(127, 0, 0, 0), 32}},
                                   CleartextPrefix{Family::V6, {Address{}, 0}}};
    UdpSender strict([](Family, const Address&) { return false; }, elsewhere);
    strict.addDestination(1, sink.outer());
    CHECK(strict.sendPayload(1, kInner4) == SendOutcome::DroppedTunnelDown);
}

TEST_CASE("UdpSender: destinations and errors and caller-reported drops") {
    UdpSender sender([](Family, const Address&) { return true; });
    Loopback sink(Family::V4);
    auto encapsulator = Encapsulator::create(flowtap(sink.outer()));
    REQUIRE(encapsulator.ok());
    CHECK(sender.send(9, *encapsulator, kInner4) == SendOutcome::UnknownDestination);

    // A source this host does not have: a clear error, not a silent default.
    OuterHeader foreign = sink.outer();
    foreign.source = v4(192, 0, 2, 77);
    try {
        sender.addDestination(2, foreign);
        FAIL("a foreign source address was accepted");
    } catch (const std::system_error& error) {
        CHECK(error.code().value() == EADDRNOTAVAIL);
        CHECK(std::string(error.what()).find("not an address of this host") != std::string::npos);
    }
    OuterHeader no_port = sink.outer();
    no_port.destination_port = 0;
    CHECK_THROWS_AS(sender.addDestination(3, no_port), std::invalid_argument);

    sender.addDestination(1, sink.outer());
    CHECK_THROWS_AS(sender.addDestination(1, sink.outer()), std::invalid_argument);
    sender.countDrop(1, DropReason::RingFull, 100);
    sender.countDrop(1, DropReason::RateLimit, 50);
    CHECK(sender.counters(1)->dropped(DropReason::RingFull) == 1);
    CHECK(sender.counters(1)->dropped(DropReason::RateLimit) == 1);
    CHECK(sender.counters(1)->dropped_bytes == 150);

    // Two Cdests on one source share a socket; removing one keeps the other working.
    Loopback second(Family::V4);
    sender.addDestination(4, second.outer());
    sender.removeDestination(1);
    CHECK_FALSE(sender.hasDestination(1));
    CopyReceiver receiver(second.endpoint(), std::nullopt);
    CHECK(sender.sendPayload(4, kInner4) == SendOutcome::Queued);
    CHECK(sender.flush() == 1);
    CHECK(drain(receiver) == 1);
}

TEST_CASE("UdpSender: copies above an Ethernet MTU are sent and not refused") {
    Loopback sink(Family::V4);
    CopyReceiver receiver(sink.endpoint(), Format::Flowtap);
    UdpSender sender([](Family, const Address&) { return true; });
    sender.addDestination(1, sink.outer());
    // A 9000-byte original. Fragmentation itself (ipsec0's MTU is 1400) is
    // checked by tests/integration/test_ipsec_delivery.sh.
    std::vector<uint8_t> big(9000, 0xab);
    big[0] = 0x45;
    big[2] = static_cast<uint8_t>(big.size() >> 8);
    big[3] = static_cast<uint8_t>(big.size());
    CHECK(sender.sendPayload(1, big) == SendOutcome::Queued);
    CHECK(sender.flush() == 1);
    std::vector<std::vector<uint8_t>> packets;
    CHECK(drain(receiver, &packets) == 1);
    REQUIRE(packets.size() == 1);
    CHECK(packets[0] == big);
}

TEST_CASE("UdpSender: runs of one size to one Cdest leave as GSO messages, in order") {
    for (Family family : {Family::V4, Family::V6}) {
        CAPTURE(static_cast<int>(family));
        Loopback first(family);
        Loopback second(family);
        CopyReceiver receiver(first.endpoint(), Format::Flowtap);
        CopyReceiver other(second.endpoint(), Format::Flowtap);
        UdpSender sender([](Family, const Address&) { return true; });
        sender.addDestination(1, first.outer());
        sender.addDestination(2, second.outer());  // the same socket (same source)
        auto to_first = Encapsulator::create(flowtap(first.outer()));
        auto to_second = Encapsulator::create(flowtap(second.outer()));
        REQUIRE(to_first.ok());
        REQUIRE(to_second.ok());
        // 5 of one size, 1 of another, 5 again, then alternating Cdests.
        std::vector<std::vector<uint8_t>> expected;
        auto queue = [&](const Encapsulator& e, const std::vector<uint8_t>& packet) {
            CHECK(sender.send(&e == &*to_first ? 1 : 2, e, packet) == SendOutcome::Queued);
            if (&e == &*to_first) expected.push_back(packet);
        };
        for (int i = 0; i < 5; ++i) queue(*to_first, kInner4);
        queue(*to_first, kInner6);
        for (int i = 0; i < 5; ++i) queue(*to_first, kInner4);
        for (int i = 0; i < 3; ++i) {
            queue(*to_second, kInner4);
            queue(*to_first, kInner4);
        }
        CHECK(sender.flush() == 17);
        // Two GSO messages of five; nothing else had a run.
        CHECK(sender.gsoCopies() == 10);
        CHECK(sender.gsoFallbacks() == 0);
        std::vector<std::vector<uint8_t>> packets;
        CHECK(drain(receiver, &packets) == 14);
        CHECK(packets == expected);
        CHECK(drain(other) == 3);
        CHECK(sender.counters(1)->copies_sent == 14);
        CHECK(sender.counters(2)->copies_sent == 3);
        CHECK(receiver.tally().failures() == 0);
    }
}

TEST_CASE("UdpSender: copies above the GSO segment limit go one message each") {
    Loopback sink(Family::V4);
    CopyReceiver receiver(sink.endpoint(), Format::Flowtap);
    UdpSender sender([](Family, const Address&) { return true; });
    sender.addDestination(1, sink.outer());
    std::vector<uint8_t> big(1400, 0xcd);  // above 1280 - 48
    big[0] = 0x45;
    big[2] = static_cast<uint8_t>(big.size() >> 8);
    big[3] = static_cast<uint8_t>(big.size());
    for (int i = 0; i < 4; ++i) CHECK(sender.sendPayload(1, big) == SendOutcome::Queued);
    CHECK(sender.flush() == 4);
    CHECK(sender.gsoCopies() == 0);
    std::vector<std::vector<uint8_t>> packets;
    CHECK(drain(receiver, &packets) == 4);
    for (const auto& p : packets) CHECK(p == big);
}

TEST_CASE("UdpSender: a socket the kernel refuses GSO on falls back, nothing lost, order kept") {
    Loopback sink(Family::V4);
    CopyReceiver receiver(sink.endpoint(), Format::Flowtap);
    UdpSenderOptions options;
    // No UDP checksum on the socket: the kernel refuses UDP_SEGMENT (EINVAL),
    // as it does on an xfrm route or a device without checksum offload.
    options.socket_setup = [](int fd) {
        const int one = 1;
        REQUIRE(::setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &one, sizeof one) == 0);
    };
    UdpSender sender([](Family, const Address&) { return true; }, options);
    sender.addDestination(1, sink.outer());
    auto encapsulator = Encapsulator::create(flowtap(sink.outer()));
    REQUIRE(encapsulator.ok());
    std::vector<std::vector<uint8_t>> expected;
    for (int round = 0; round < 2; ++round) {
        for (int i = 0; i < 4; ++i) {
            CHECK(sender.send(1, *encapsulator, kInner4) == SendOutcome::Queued);
            expected.push_back(kInner4);
        }
        CHECK(sender.send(1, *encapsulator, kInner6) == SendOutcome::Queued);
        expected.push_back(kInner6);
        for (int i = 0; i < 3; ++i) {
            CHECK(sender.send(1, *encapsulator, kInner4) == SendOutcome::Queued);
            expected.push_back(kInner4);
        }
        CHECK(sender.flush() == 8);
    }
    CHECK(sender.gsoFallbacks() == 1);  // once, for good
    CHECK(sender.gsoCopies() == 0);
    std::vector<std::vector<uint8_t>> packets;
    CHECK(drain(receiver, &packets) == expected.size());
    CHECK(packets == expected);
    CHECK(sender.counters(1)->copies_sent == expected.size());
    CHECK(sender.counters(1)->droppedTotal() == 0);
}
