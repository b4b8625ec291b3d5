#include <doctest/doctest.h>

#include "delivery/CdestCounters.h"

using namespace xtap::delivery;

TEST_CASE("counters: sends and drops by reason") {
    CdestCounters c;
    c.addSent(100);
    c.addSent(50);
    c.addDrop(DropReason::TunnelDown, 70);
    c.addDrop(DropReason::TunnelDown, 30);
    c.addDrop(DropReason::RateLimit, 5);

    CHECK(c.copies_sent == 2);
    CHECK(c.bytes_sent == 150);
    CHECK(c.dropped(DropReason::TunnelDown) == 2);
    CHECK(c.dropped(DropReason::RateLimit) == 1);
    CHECK(c.dropped(DropReason::RingFull) == 0);
    CHECK(c.dropped(DropReason::SendError) == 0);
    CHECK(c.droppedTotal() == 3);
    CHECK(c.dropped_bytes == 105);
}

TEST_CASE("counters: merging per-thread counters adds every field") {
    CdestCounters a;
    a.addSent(10);
    a.addDrop(DropReason::RingFull, 1);
    CdestCounters b;
    b.addSent(20);
    b.addSent(30);
    b.addDrop(DropReason::SendError, 2);
    b.addDrop(DropReason::RingFull, 3);

    const CdestCounters sum = a + b;
    CHECK(sum.copies_sent == 3);
    CHECK(sum.bytes_sent == 60);
    CHECK(sum.dropped(DropReason::RingFull) == 2);
    CHECK(sum.dropped(DropReason::SendError) == 1);
    CHECK(sum.dropped_bytes == 6);
    CHECK(sum == b + a);

    CdestCounters total;
    total += a;
    total += b;
    CHECK(total == sum);
    total += CdestCounters{};
    CHECK(total == sum);
}

TEST_CASE("counters: drop reasons have stable metric names") {
    CHECK(name(DropReason::RingFull) == "ring_full");
    CHECK(name(DropReason::TunnelDown) == "tunnel_down");
    CHECK(name(DropReason::SendError) == "send_error");
    CHECK(name(DropReason::RateLimit) == "rate_limit");
}
