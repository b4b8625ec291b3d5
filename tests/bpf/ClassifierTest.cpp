// The loaded classifier, case by case, through BPF_PROG_TEST_RUN.
#include <doctest/doctest.h>

#include <variant>

#include "dataplane/FragmentReorderer.h"
#include "tests/support/BpfRig.h"
#include "tests/support/PacketBuilder.h"

using namespace xtap;
using namespace xtap::test;
using dataplane::Filter;
using dataplane::FilterSet;
using dataplane::SlotRef;

namespace {

Filter hostFilter(Address a, bool as_src = true) {
    Filter f;
    f.family = dataplane::Family::V4;
    (as_src ? f.src : f.dst) = {a, 32};
    return f;
}

SlotRef publish(BpfRig& rig, FilterSet set) {
    auto r = rig.dp().publish(set);
    REQUIRE(std::holds_alternative<SlotRef>(r));
    return std::get<SlotRef>(r);
}

PacketSpec tcp4(Address src, Address dst, uint16_t sport, uint16_t dport) {
    PacketSpec s;
    s.src = src;
    s.dst = dst;
    s.proto = 6;
    s.sport = sport;
    s.dport = dport;
    return s;
}

PacketSpec udp4(Address src, Address dst, uint16_t sport, uint16_t dport) {
    PacketSpec s = tcp4(src, dst, sport, dport);
    s.proto = 17;
    return s;
}

// UDP from `src` to port `dport`.
Filter udpFilter(Address src, uint16_t dport) {
    Filter f = hostFilter(src);
    f.proto = 17;
    f.dport = {dport, dport};
    return f;
}

Address v6(uint16_t a, uint16_t last) {
    Address x{};
    x[0] = 0x20;
    x[1] = 0x01;
    x[2] = 0x0d;
    x[3] = 0xb8;
    x[4] = uint8_t(a >> 8);
    x[5] = uint8_t(a);
    x[14] = uint8_t(last >> 8);
    x[15] = uint8_t(last);
    return x;
}

}  // namespace

TEST_CASE("a host criterion is matched, marked and reported; others pass unmarked") {
    BpfRig rig;
    const auto target = v4(198, 18, 0, 7), other = v4(198, 18, 0, 8), peer = v4(198, 19, 1, 1);
    const SlotRef ref = publish(rig, {{hostFilter(target)}});

    const auto hit = buildFrame(tcp4(target, peer, 40000, 80));
    auto t = rig.runTransit(hit, 0);
    CHECK(t.passed);
    CHECK(t.marked);
    auto c = rig.runCapture(hit, 0);
    CHECK(c.slots == std::vector<uint32_t>{ref.slot});

    const auto miss = buildFrame(tcp4(other, peer, 40000, 80));
    t = rig.runTransit(miss, 0);
    CHECK(t.passed);
    CHECK_FALSE(t.marked);
    CHECK(rig.runCapture(miss, 0).action == XDP_DROP);

    const auto counters = rig.dp().counters(ref);
    CHECK(counters.packets == 1);
    CHECK(counters.bytes == hit.size() - 14);
}

TEST_CASE("ports, protocol and ICMP type are matched exactly") {
    BpfRig rig;
    const auto target = v4(198, 18, 1, 1), peer = v4(198, 19, 0, 1);
    Filter https = hostFilter(target, false);
    https.proto = 6;
    https.dport = {443, 443};
    Filter ping = hostFilter(target, false);
    ping.proto = 1;
    ping.sport = {8, 8};  // echo request
    const SlotRef a = publish(rig, {{https}});
    const SlotRef b = publish(rig, {{ping}});

    CHECK(rig.runCapture(buildFrame(tcp4(peer, target, 1234, 443)), 0).slots ==
          std::vector<uint32_t>{a.slot});
    CHECK_FALSE(rig.runTransit(buildFrame(tcp4(peer, target, 1234, 444)), 0).marked);
    auto udp = tcp4(peer, target, 1234, 443);
    udp.proto = 17;
    CHECK_FALSE(rig.runTransit(buildFrame(udp), 0).marked);
    PacketSpec icmp = tcp4(peer, target, 8, 0);
    icmp.proto = 1;
    CHECK(rig.runCapture(buildFrame(icmp), 0).slots == std::vector<uint32_t>{b.slot});
    icmp.sport = 0;  // echo reply
    CHECK_FALSE(rig.runTransit(buildFrame(icmp), 0).marked);
}

TEST_CASE("two VLAN tags, IPv4 options and six IPv6 extension headers are parsed") {
    BpfRig rig;
    const auto t4 = v4(198, 18, 2, 2), p4 = v4(198, 19, 0, 1);
    const SlotRef a = publish(rig, {{udpFilter(t4, 53)}});
    auto s = udp4(t4, p4, 5000, 53);
    s.vlan_tags = 2;
    s.qinq = true;
    s.ipv4_option_words = 10;
    CHECK(rig.runCapture(buildFrame(s), 1).slots == std::vector<uint32_t>{a.slot});

    Filter f6;
    f6.family = dataplane::Family::V6;
    f6.dst = {v6(0x10, 0), 48};
    f6.proto = 6;
    f6.dport = {443, 443};
    const SlotRef b = publish(rig, {{f6}});
    PacketSpec s6;
    s6.family = dataplane::Family::V6;
    s6.src = v6(0x99, 1);
    s6.dst = v6(0x10, 7);
    s6.proto = 6;
    s6.sport = 50000;
    s6.dport = 443;
    s6.vlan_tags = 1;
    s6.v6_ext = {0, 60, 43, 51, 60, 60};
    CHECK(rig.runCapture(buildFrame(s6), 2).slots == std::vector<uint32_t>{b.slot});
    s6.dport = 80;
    CHECK_FALSE(rig.runTransit(buildFrame(s6), 2).marked);
}

TEST_CASE("later fragments follow their first fragment, IPv4 and IPv6") {
    BpfRig rig;
    const auto target = v4(198, 18, 3, 3), peer = v4(198, 19, 0, 1);
    const SlotRef ref = publish(rig, {{udpFilter(target, 4789)}});

    auto first = udp4(target, peer, 1, 4789);
    first.frag = PacketSpec::Frag::First;
    first.frag_id = 0x1234;
    auto later = first;
    later.frag = PacketSpec::Frag::Later;

    // A later fragment before any first fragment: its ports are unknown, so
    // it is copied as pending, for no criterion yet (userspace holds it).
    CHECK(rig.runTransit(buildFrame(later), 0).marked);
    auto held = rig.runCapture(buildFrame(later), 0);
    CHECK(held.slots.empty());
    CHECK((held.meta_flags & XTAP_META_PENDING_FRAG) != 0);
    CHECK(rig.dp().counters(ref).packets == 0);
    CHECK(rig.runTransit(buildFrame(first), 0).marked);
    CHECK(rig.runTransit(buildFrame(later), 0).marked);
    CHECK(rig.runCapture(buildFrame(later), 0).slots == std::vector<uint32_t>{ref.slot});
    CHECK((rig.runCapture(buildFrame(later), 0).meta_flags & XTAP_META_PENDING_FRAG) == 0);
    auto other_id = later;
    other_id.frag_id = 0x1235;
    CHECK((rig.runCapture(buildFrame(other_id), 0).meta_flags & XTAP_META_PENDING_FRAG) != 0);
    auto other_host = later;
    other_host.src = v4(198, 18, 3, 9);  // no criterion on these addresses: not even pending
    CHECK_FALSE(rig.runTransit(buildFrame(other_host), 0).marked);

    Filter f6;
    f6.family = dataplane::Family::V6;
    f6.src = {v6(0x20, 5), 128};
    f6.proto = 17;
    f6.sport = {5000, 5000};
    const SlotRef ref6 = publish(rig, {{f6}});
    PacketSpec a6;
    a6.family = dataplane::Family::V6;
    a6.src = v6(0x20, 5);
    a6.dst = v6(0x30, 1);
    a6.proto = 17;
    a6.sport = 5000;
    a6.dport = 9;
    a6.v6_ext = {0, 44};
    a6.frag = PacketSpec::Frag::First;
    a6.frag_id = 0xdeadbeef;
    auto b6 = a6;
    b6.frag = PacketSpec::Frag::Later;
    CHECK(rig.runTransit(buildFrame(a6), 1).marked);
    CHECK(rig.runCapture(buildFrame(b6), 1).slots == std::vector<uint32_t>{ref6.slot});
    CHECK(rig.dp().counters(ref6).packets == 1);  // capture runs do not count
    CHECK(rig.runTransit(buildFrame(b6), 1).marked);
    CHECK(rig.dp().counters(ref6).packets == 2);

    // An address-only criterion matches a later fragment without its first.
    const auto lone = v4(198, 18, 3, 4);
    const SlotRef addr_only = publish(rig, {{hostFilter(lone)}});
    auto orphan = later;
    orphan.src = lone;
    CHECK(rig.runCapture(buildFrame(orphan), 0).slots == std::vector<uint32_t>{addr_only.slot});
}

TEST_CASE("a later fragment released after its first fragment is counted with its criterion") {
    BpfRig rig;
    const auto target = v4(198, 18, 3, 3), peer = v4(198, 19, 0, 1);
    const SlotRef ref = publish(rig, {{udpFilter(target, 4789)}});
    auto first = udp4(target, peer, 1, 4789);
    first.payload = 200;
    first.frag = PacketSpec::Frag::First;
    first.frag_id = 0x4321;
    auto later = first;
    later.frag = PacketSpec::Frag::Later;
    later.payload = 60;
    const auto first_frame = buildFrame(first), later_frame = buildFrame(later);

    // As xtapd does it: copies through the reorderer, late releases counted.
    dataplane::FragmentReorderer reorderer;
    unsigned late_copies = 0;
    auto deliver = [&](std::span<const uint8_t> frame, std::span<const uint32_t> slots, bool late) {
        if (!late) return;
        ++late_copies;
        for (uint32_t slot : slots) rig.dp().countReleased(slot, 1, frame.size() - 14);
    };
    auto copy = [&](const std::vector<uint8_t>& frame) {
        CHECK(rig.runTransit(frame, 0).marked);
        const auto c = rig.runCapture(frame, 0);
        reorderer.onCopy(frame, c.slots, c.meta_flags, bootNs(), deliver);
    };
    copy(later_frame);  // before its first: pending, the classifier cannot count it
    CHECK(rig.dp().counters(ref).packets == 0);
    copy(first_frame);
    CHECK(late_copies == 1);
    const auto counted = rig.dp().counters(ref);
    CHECK(counted.packets == 2);
    CHECK(counted.bytes == first_frame.size() - 14 + later_frame.size() - 14);
}

TEST_CASE("an expired criterion stops matching in the data path itself") {
    BpfRig rig;
    const auto target = v4(198, 18, 4, 4), peer = v4(198, 19, 0, 1);
    FilterSet set{{hostFilter(target)}};
    set.expiry_ns = bootNs() - 1;
    const SlotRef ref = publish(rig, set);
    const auto frame = buildFrame(tcp4(target, peer, 1, 2));
    CHECK_FALSE(rig.runTransit(frame, 0).marked);
    rig.dp().setExpiry(ref, bootNs() + 60'000'000'000ull);
    CHECK(rig.runTransit(frame, 0).marked);
    rig.dp().setExpiry(ref, 0);
    CHECK(rig.runTransit(frame, 0).marked);
}

TEST_CASE("withdraw stops matching at once and frees every map entry") {
    BpfRig rig;
    const auto target = v4(198, 18, 5, 5), peer = v4(198, 19, 0, 1);
    Filter ports = hostFilter(target);
    ports.proto = 6;
    ports.dport = {1024, 65535};  // six aligned blocks
    const SlotRef ref = publish(rig, {{ports}});
    CHECK(rig.dp().ruleCount() == 6);
    const auto frame = buildFrame(tcp4(target, peer, 1, 5000));
    CHECK(rig.runTransit(frame, 0).marked);
    rig.dp().withdraw(ref);
    CHECK_FALSE(rig.runTransit(frame, 0).marked);
    CHECK(rig.dp().ruleCount() == 0);
    CHECK(rig.dp().maskCount() == 0);
    CHECK(rig.maps().control().mask_count == 0);
}

TEST_CASE("a rule left behind for an old generation never matches") {
    BpfRig rig;
    const auto target = v4(198, 18, 6, 6), peer = v4(198, 19, 0, 1);
    const SlotRef ref = publish(rig, {{hostFilter(target)}});
    // Forge a second rule (other address, same mask) that names the slot with a stale generation.
    auto entries = dataplane::expandFilter(hostFilter(v4(198, 18, 6, 7)));
    REQUIRE(entries.size() == 1);
    auto key = entries[0].key;
    key.mask_id = 0;
    xtap_rule stale{};
    stale.count = 1;
    stale.refs[0] = {ref.slot, ref.gen + 1};
    REQUIRE(rig.maps().putRule(key, stale));
    xtap_maskset first_mask{};
    first_mask.bits[0] = 1;
    REQUIRE(rig.maps().putAnchor(dataplane::Family::V4, {v4(198, 18, 6, 7), 32}, first_mask));
    CHECK_FALSE(rig.runTransit(buildFrame(tcp4(v4(198, 18, 6, 7), peer, 1, 2)), 0).marked);
    CHECK(rig.runTransit(buildFrame(tcp4(target, peer, 1, 2)), 0).marked);
}

TEST_CASE("every criterion that selects a packet gets it: two agencies, one target") {
    BpfRig rig;
    const auto target = v4(198, 18, 7, 7), peer = v4(198, 19, 0, 1);
    const SlotRef a = publish(rig, {{hostFilter(target)}});
    const SlotRef b = publish(rig, {{hostFilter(target)}});
    Filter web = hostFilter(target);
    web.proto = 6;
    const SlotRef c = publish(rig, {{web, hostFilter(target, false)}});
    std::vector<uint32_t> want{a.slot, b.slot, c.slot};
    std::sort(want.begin(), want.end());
    CHECK(rig.runCapture(buildFrame(tcp4(target, peer, 1, 2)), 0).slots == want);
    rig.runTransit(buildFrame(tcp4(target, peer, 1, 2)), 0);
    CHECK(rig.dp().counters(c).packets == 1);  // two filters, counted once
}

TEST_CASE("interface-scoped criteria match only on their interface") {
    BpfRig rig;
    const auto target = v4(198, 18, 8, 8), peer = v4(198, 19, 0, 1);
    Filter f = hostFilter(target);
    f.ifindex = rig.transit(1);
    publish(rig, {{f}});
    const auto frame = buildFrame(tcp4(target, peer, 1, 2));
    CHECK_FALSE(rig.runTransit(frame, 0).marked);
    CHECK(rig.runTransit(frame, 1).marked);
    CHECK(rig.runCapture(frame, 1).slots.size() == 1);
    CHECK(rig.runCapture(frame, 2).slots.empty());
}

TEST_CASE("the appliance's own traffic is never copied, even when a criterion names it") {
    BpfRig rig;
    const auto router = v4(198, 18, 9, 1), md = v4(198, 19, 9, 2);
    publish(rig, {{hostFilter(router, false)}});
    xtap_exclude_key ssh{};
    ssh.family = 4;
    ssh.proto = 6;
    ssh.port = 32001;
    std::memcpy(ssh.addr, router.data(), 4);
    rig.maps().addExclude(ssh);
    xtap_exclude_key esp{};
    esp.family = 4;
    esp.proto = 50;
    std::memcpy(esp.addr, router.data(), 4);
    rig.maps().addExclude(esp);

    CHECK_FALSE(rig.runTransit(buildFrame(tcp4(md, router, 40000, 32001)), 0).marked);
    auto espf = tcp4(md, router, 0, 0);
    espf.proto = 50;
    CHECK_FALSE(rig.runTransit(buildFrame(espf), 0).marked);
    CHECK(rig.runTransit(buildFrame(tcp4(md, router, 40000, 80)), 0).marked);
    CHECK(rig.maps().readStats()[XTAP_STAT_EXCLUDED] == 2);
}

TEST_CASE("the copy gate: no copy past the consumer deadline, none over the budget") {
    BpfRig rig;
    const auto target = v4(198, 18, 12, 1), other = v4(198, 18, 12, 2), peer = v4(198, 19, 0, 1);
    const SlotRef ref = publish(rig, {{hostFilter(target)}});
    const SlotRef both = publish(rig, {{hostFilter(target), hostFilter(other)}});
    const auto frame = buildFrame(tcp4(target, peer, 1, 2));
    // Per run of `packets`: selected for a copy (the XDP mark, or the tc
    // hook's clone), and what the gate kept back, by reason.
    struct Outcome {
        uint64_t selected = 0, no_consumer = 0, budget = 0;
    };
    auto send = [&](int packets) {
        const auto before = rig.maps().readStats();
        Outcome o;
        for (int i = 0; i < packets; ++i) {
            const auto r = rig.runTransit(frame, 0);
            REQUIRE(r.passed);  // the original goes on whatever the gate says
            o.selected += r.marked;
        }
        const auto after = rig.maps().readStats();
        o.no_consumer = after[XTAP_STAT_GATE_NO_CONSUMER] - before[XTAP_STAT_GATE_NO_CONSUMER];
        o.budget = after[XTAP_STAT_GATE_BUDGET] - before[XTAP_STAT_GATE_BUDGET];
        return o;
    };

    Outcome o = send(2);  // a fresh gate: no deadline, no budget
    CHECK(o.selected == 2);
    CHECK(o.no_consumer + o.budget == 0);

    rig.maps().setCopyDeadline(xtap::test::bootNs() + 60'000'000'000ull);
    CHECK(send(2).selected == 2);
    rig.maps().setCopyDeadline(xtap::test::bootNs() - 1);  // the copy threads stopped
    o = send(3);
    CHECK(o.selected == 0);
    CHECK(o.no_consumer == 3);
    // Both criteria still count what they selected, and what was not copied.
    for (const SlotRef& r : {ref, both}) {
        const auto c = rig.dp().counters(r);
        CHECK(c.packets == 7);
        CHECK(c.gated_packets == 3);
        CHECK(c.gated_bytes == 3 * (frame.size() - 14));
    }
    rig.maps().setCopyDeadline(0);
    CHECK(send(1).selected == 1);

    // One copy a second, 2 s of burst: three pass at once, the rest wait.
    constexpr uint64_t kTwoSeconds = 2'000'000'000ull;
    rig.maps().setCopyBudget(1, 0, kTwoSeconds);
    o = send(5);
    CHECK(o.selected == 3);
    CHECK(o.budget == 2);
    CHECK(rig.maps().copyGate().interval_ns == 1'000'000'000ull);
    CHECK(rig.dp().counters(ref).gated_packets == 5);
    rig.maps().setCopyBudget(0, 0, kTwoSeconds);
    CHECK(send(2).selected == 2);
    // A new budget starts full: with no burst it admits one.
    rig.maps().setCopyBudget(1, 0, 0);
    o = send(2);
    CHECK(o.selected == 1);
    CHECK(o.budget == 1);

    // The byte budget: 8 bits a second for each byte of this packet, so that
    // one copy takes a second of it; a generous copy budget beside it.
    const uint64_t l3_bytes = frame.size() - 14;
    rig.maps().setCopyBudget(1'000'000, 8 * l3_bytes, kTwoSeconds);
    o = send(5);
    CHECK(o.selected == 3);
    CHECK(o.budget == 2);
    // Twice the bits: half a second a copy, five fit in the burst.
    rig.maps().setCopyBudget(0, 16 * l3_bytes, kTwoSeconds);
    o = send(7);
    CHECK(o.selected == 5);
    CHECK(o.budget == 2);
}

TEST_CASE("the copy budget keeps its reserve for the most important criteria") {
    BpfRig rig;
    const auto vip = v4(198, 18, 13, 1), minor = v4(198, 18, 13, 2), peer = v4(198, 19, 0, 1);
    FilterSet important{{hostFilter(vip)}};
    important.priority = 1;  // the DTCP default: may use the reserve
    FilterSet less{{hostFilter(minor)}};
    less.priority = 5;
    publish(rig, important);
    publish(rig, less);
    FilterSet both{{hostFilter(minor)}};  // a second, important criterion on `minor`
    both.priority = 0;
    auto selected = [&](const Address& target, int packets) {
        const auto frame = buildFrame(tcp4(target, peer, 1, 2));
        int n = 0;
        for (int i = 0; i < packets; ++i) n += rig.runTransit(frame, 0).marked;
        return n;
    };
    // One copy a second, 4 s of burst: 5 at once for the important, 4 for the
    // others (the last second of it is the reserve).
    rig.maps().setCopyBudget(1, 0, 4'000'000'000ull);
    CHECK(selected(minor, 6) == 4);
    CHECK(selected(vip, 3) == 1);  // the reserve
    // With no burst there is no reserve: one copy, whoever asks first.
    rig.maps().setCopyBudget(1, 0, 0);
    CHECK(selected(minor, 2) == 1);
    // A packet that an important criterion selects too is important.
    publish(rig, both);
    rig.maps().setCopyBudget(1, 0, 4'000'000'000ull);
    CHECK(selected(minor, 6) == 5);
}

TEST_CASE("the copy gate takes or refuses a fragmented datagram whole") {
    BpfRig rig;
    const auto target = v4(198, 18, 14, 1), peer = v4(198, 19, 0, 1);
    const SlotRef ref = publish(rig, {{udpFilter(target, 4789)}});
    auto fragments = [&](uint32_t id) {
        auto first = udp4(target, peer, 1, 4789);
        first.frag = PacketSpec::Frag::First;
        first.frag_id = id;
        auto later = first;
        later.frag = PacketSpec::Frag::Later;
        return std::pair{buildFrame(first), buildFrame(later)};
    };
    auto selected = [&](const std::vector<uint8_t>& frame, int packets) {
        int n = 0;
        for (int i = 0; i < packets; ++i) n += rig.runTransit(frame, 0).marked;
        return n;
    };
    auto over_budget = [&] { return rig.maps().readStats()[XTAP_STAT_GATE_BUDGET]; };

    // One copy a second, 2 s of burst: three copies at once.
    rig.maps().setCopyBudget(1, 0, 2'000'000'000ull);
    const auto [a_first, a_later] = fragments(0x0a);
    CHECK(selected(a_first, 1) == 1);
    // Admitted: all of its datagram follows, past what the burst has left.
    CHECK(selected(a_later, 4) == 4);
    CHECK(over_budget() == 0);
    // Refused: none of it, though the budget now has room again.
    const auto [b_first, b_later] = fragments(0x0b);
    CHECK(selected(b_first, 1) == 0);
    rig.maps().setCopyBudget(1, 0, 2'000'000'000ull);  // a new budget starts full
    CHECK(selected(b_later, 2) == 0);
    CHECK(over_budget() == 3);
    const auto c = rig.dp().counters(ref);
    CHECK(c.packets == 8);
    CHECK(c.gated_packets == 3);
    CHECK(c.gated_bytes == b_first.size() - 14 + 2 * (b_later.size() - 14));
    // The next datagram is judged afresh by its own first fragment.
    const auto [c_first, c_later] = fragments(0x0c);
    CHECK(selected(c_first, 1) == 1);
    CHECK(selected(c_later, 1) == 1);
    // The same datagram's first fragment again (a sender's retry) is judged
    // afresh too, and its verdict holds for the fragments after it.
    CHECK(selected(b_first, 1) == 1);
    CHECK(selected(b_later, 1) == 1);

    // Refused for want of a live copy thread: the rest of the datagram too,
    // for that reason, though the copy threads came back (and the budget
    // went) in between.
    rig.maps().setCopyBudget(0, 0, 0);
    auto no_consumer = [&] { return rig.maps().readStats()[XTAP_STAT_GATE_NO_CONSUMER]; };
    const auto [d_first, d_later] = fragments(0x0d);
    rig.maps().setCopyDeadline(xtap::test::bootNs() - 1);
    CHECK(selected(d_first, 1) == 0);
    rig.maps().setCopyDeadline(0);
    CHECK(selected(d_later, 2) == 0);
    CHECK(no_consumer() == 3);
    CHECK(over_budget() == 3);
    CHECK(selected(c_later, 1) == 1);  // another datagram's: copied
}

TEST_CASE("the kill switch stops all classification") {
    BpfRig rig;
    const auto target = v4(198, 18, 11, 1), peer = v4(198, 19, 0, 1);
    publish(rig, {{hostFilter(target)}});
    rig.maps().setEnabled(false);
    CHECK_FALSE(rig.runTransit(buildFrame(tcp4(target, peer, 1, 2)), 0).marked);
}

TEST_CASE("100,000 host criteria fit, IPv4 and IPv6 mixed") {
    BpfRig rig(1);
    for (uint32_t i = 0; i < 100000; ++i) {
        Filter f;
        if (i % 2) {
            f.family = dataplane::Family::V6;
            f.src = {v6(0x100 + uint16_t(i >> 16), uint16_t(i)), 128};
        } else {
            f = hostFilter(v4(198, 18 + (i >> 16), uint8_t(i >> 8), uint8_t(i)));
        }
        auto r = rig.dp().publish({{f}});
        REQUIRE(std::holds_alternative<SlotRef>(r));
    }
    CHECK(rig.dp().liveCount() == 100000);
    CHECK(rig.runTransit(buildFrame(tcp4(v4(198, 18, 1, 2), v4(198, 19, 0, 1), 1, 2)), 0).marked);
}
