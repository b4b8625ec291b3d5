// Differential test: random criteria and random packets through the loaded
// XDP programs (BPF_PROG_TEST_RUN) and through ReferenceMatcher. Same
// verdict, same matched criteria, same counters, or the test prints the case.
#include <doctest/doctest.h>

#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <variant>

#include "dataplane/ReferenceMatcher.h"
#include "tests/support/BpfRig.h"
#include "tests/support/PacketBuilder.h"

using namespace xtap;
using namespace xtap::test;
using dataplane::Family;
using dataplane::Filter;
using dataplane::FilterSet;
using dataplane::Prefix;
using dataplane::Range16;

namespace {

// A filter shape: the tuple-space masks stay bounded because filters of a
// round draw from a palette of shapes, as real criteria sets do.
struct Shape {
    Family family;
    uint8_t src_len, dst_len;
    int proto;  // -1 any
    int l4;     // 0 none, 1 exact, 2 aligned block, 3 arbitrary range
    bool ifscoped;
    bool egress;          // X-JTap-Output-Interface: FIB egress compared
    bool sport_too;       // constrain the source port as well
    unsigned block_len;   // kind 2: block length, fixed per shape (one mask)
    Range16 fixed_sport;  // kind 3: the shape's ranges ("Dest-Port: 1024-*" in many criteria)
    Range16 fixed_dport;
};

class Generator {
  public:
    // Output-Interface draws come from their own stream, so the rest of the
    // run is the same as before egress filters existed.
    explicit Generator(uint32_t seed) : rng_(seed), egress_rng_(seed ^ 0x0e9e55u) {}

    uint32_t u(uint32_t lo, uint32_t hi) {
        return std::uniform_int_distribution<uint32_t>(lo, hi)(rng_);
    }
    bool chance(double p) { return std::bernoulli_distribution(p)(rng_); }

    // Addresses from a small pool so random filters and packets collide.
    Address address(Family fam) {
        Address a{};
        if (fam == Family::V4) {
            a[0] = 198;
            a[1] = uint8_t(18 + u(0, 1));
            a[2] = uint8_t(u(0, 255));
            a[3] = uint8_t(u(0, 255));
        } else {
            a[0] = 0x20;
            a[1] = 0x01;
            a[2] = 0x0d;
            a[3] = 0xb8;
            a[7] = uint8_t(u(0, 3));
            a[14] = uint8_t(u(0, 255));
            a[15] = uint8_t(u(0, 255));
            if (chance(0.05)) a[8] = uint8_t(u(0, 255));
        }
        return a;
    }

    static Prefix prefixOf(Address a, uint8_t len) {
        for (unsigned bit = len; bit < 128; ++bit) a[bit / 8] &= uint8_t(~(0x80 >> (bit % 8)));
        return {a, len};
    }

    Shape shape(unsigned round) {
        Shape s;
        s.family = chance(0.5) ? Family::V4 : Family::V6;
        const unsigned bits = dataplane::addressBits(s.family);
        // Rounds sweep the prefix lengths so every length appears in the run.
        // Mostly hosts and long prefixes, as targets are; the sweep term makes
        // every length appear across the rounds.
        auto len = [&] {
            if (chance(0.4)) return uint8_t(bits);
            if (chance(0.3)) return uint8_t(bits - u(1, 16));
            if (chance(0.3)) return uint8_t(0);
            return uint8_t((u(0, bits) + round * 37) % (bits + 1));
        };
        s.src_len = len();
        s.dst_len = len();
        if (s.src_len == 0 && s.dst_len == 0 && chance(0.8)) s.src_len = uint8_t(bits);
        const int protos[] = {-1, 6, 17, 132, s.family == Family::V4 ? 1 : 58, 47};
        s.proto = protos[u(0, 5)];
        s.l4 = 0;
        if (s.proto == 6 || s.proto == 17 || s.proto == 132 || s.proto == 1 || s.proto == 58)
            s.l4 = int(u(0, 3));
        s.ifscoped = chance(0.2);
        s.sport_too = s.l4 != 3 && chance(0.3);  // two arbitrary ranges multiply masks
        const bool icmp = s.proto == 1 || s.proto == 58;
        s.block_len = icmp ? u(12, 16) : u(6, 16);
        s.fixed_sport = arbitrary(icmp);
        s.fixed_dport = arbitrary(icmp);
        s.egress = std::bernoulli_distribution(0.15)(egress_rng_);
        return s;
    }

    Range16 arbitrary(bool icmp) {
        const uint32_t top = icmp ? 255 : 65535;
        uint32_t a = u(0, top), b = u(0, top);
        if (a > b) std::swap(a, b);
        return {uint16_t(a), uint16_t(b)};
    }

    Range16 range(const Shape& s, bool dst) {
        const bool icmp = s.proto == 1 || s.proto == 58;
        const uint32_t top = icmp ? 255 : 65535;
        switch (s.l4) {
            case 1: {
                const uint16_t v = uint16_t(icmp ? u(0, 12) : u(0, 40) * 1000 % 65536);
                return {v, v};
            }
            case 2: {
                const uint32_t size = 1u << (16 - s.block_len);
                const uint32_t base = (u(0, top) / size) * size;
                return {uint16_t(base), uint16_t(std::min(top, base + size - 1))};
            }
            case 3:
                return dst ? s.fixed_dport : s.fixed_sport;
            default:
                return {};
        }
    }

    Filter filter(const Shape& s, const std::vector<uint32_t>& ifaces) {
        Filter f;
        f.family = s.family;
        f.src = prefixOf(address(s.family), s.src_len);
        f.dst = prefixOf(address(s.family), s.dst_len);
        if (s.proto >= 0) f.proto = uint8_t(s.proto);
        if (s.l4) {
            if (s.sport_too) f.sport = range(s, false);
            f.dport = range(s, true);
        }
        if (s.ifscoped) f.ifindex = ifaces[u(0, uint32_t(ifaces.size() - 1))];
        if (s.egress)
            f.oifindex =
                ifaces[std::uniform_int_distribution<size_t>(0, ifaces.size() - 1)(egress_rng_)];
        return f;
    }

    // A packet near a filter (often inside it), in some encapsulation.
    PacketSpec packet(const std::vector<Filter>& filters) {
        PacketSpec p;
        const Filter* near =
            filters.empty() ? nullptr : &filters[u(0, uint32_t(filters.size() - 1))];
        p.family = near && chance(0.9) ? near->family : (chance(0.5) ? Family::V4 : Family::V6);
        p.src = address(p.family);
        p.dst = address(p.family);
        const int protos[] = {6, 17, 132, p.family == Family::V4 ? 1 : 58, 47, 6};
        p.proto = uint8_t(protos[u(0, 5)]);
        p.sport = uint16_t(u(0, 65535));
        p.dport = uint16_t(u(0, 65535));
        if (near && near->family == p.family && chance(0.7)) {
            auto inside = [&](const Prefix& pre, Address a) {
                for (unsigned bit = 0; bit < pre.len; ++bit) {
                    const uint8_t m = uint8_t(0x80 >> (bit % 8));
                    a[bit / 8] = uint8_t((a[bit / 8] & ~m) | (pre.addr[bit / 8] & m));
                }
                return a;
            };
            p.src = inside(near->src, p.src);
            p.dst = inside(near->dst, p.dst);
            if (near->proto) p.proto = *near->proto;
            if (chance(0.8)) {
                p.sport = uint16_t(u(near->sport.lo, near->sport.hi));
                p.dport = uint16_t(u(near->dport.lo, near->dport.hi));
            }
        }
        if (dataplane::isIcmp(p.proto)) {
            p.sport &= 0xff;
            p.dport &= 0xff;
            if (chance(0.5)) p.sport %= 16;
            if (chance(0.5)) p.dport %= 4;
        }
        p.vlan_tags = u(0, 2);
        p.qinq = chance(0.5);
        if (p.family == Family::V4) {
            p.ipv4_option_words = chance(0.2) ? u(1, 10) : 0;
        } else if (chance(0.4)) {
            const uint8_t types[] = {0, 43, 60, 51};
            const unsigned n = u(1, 7);
            for (unsigned i = 0; i < n; ++i) p.v6_ext.push_back(types[u(0, 3)]);
        }
        if (chance(0.15)) {
            p.frag = chance(0.5) ? PacketSpec::Frag::First : PacketSpec::Frag::Later;
            p.frag_id = u(0, 7);
            if (p.family == Family::V6)
                p.v6_ext.insert(p.v6_ext.begin() + u(0, uint32_t(p.v6_ext.size())), 44);
        }
        p.truncate_l4 = chance(0.02);
        p.payload = u(0, 64);
        return p;
    }

  private:
    std::mt19937 rng_;
    std::mt19937 egress_rng_;
};

std::string describe(const PacketSpec& p, const std::vector<uint8_t>& frame) {
    std::string s = "family=" + std::to_string(int(p.family)) +
                    " proto=" + std::to_string(p.proto) + " sport=" + std::to_string(p.sport) +
                    " dport=" + std::to_string(p.dport) + " vlans=" + std::to_string(p.vlan_tags) +
                    " ext=" + std::to_string(p.v6_ext.size()) +
                    " frag=" + std::to_string(int(p.frag)) + " frame=";
    static const char* hex = "0123456789abcdef";
    for (uint8_t b : frame) {
        s += hex[b >> 4];
        s += hex[b & 15];
    }
    return s;
}

// The routes both sides know: installed in the rig's namespace for
// bpf_fib_lookup, and the same table as the reference matcher's route model.
// Part of each address pool is left unrouted (egress 0).
//   198.18.0.0/17 -> if0, 198.18.128.0/17 -> if1, 198.19.0.0/17 -> if2
//   2001:db8:0:0::/64 -> if0, :1::/64 -> if1, :2::/64 -> if2
uint32_t routeOf(const dataplane::PacketFields& p, const std::vector<uint32_t>& ifaces) {
    const Address& d = p.dst;
    if (p.family == Family::V4) {
        if (d[0] != 198) return 0;
        if (d[1] == 18) return ifaces[d[2] < 128 ? 0 : 1];
        if (d[1] == 19 && d[2] < 128) return ifaces[2];
        return 0;
    }
    const bool pool = d[0] == 0x20 && d[1] == 0x01 && d[2] == 0x0d && d[3] == 0xb8 && d[4] == 0 &&
                      d[5] == 0 && d[6] == 0;
    return pool && d[7] < 3 ? ifaces[d[7]] : 0;
}

void run(const std::string& cmd) {
    REQUIRE_MESSAGE(std::system(cmd.c_str()) == 0, cmd);
}

void installRoutes() {
    // The FIB helper answers only where the kernel would forward.
    run("sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1");
    run("ip route replace 198.18.0.0/17 dev xtt0");
    run("ip route replace 198.18.128.0/17 dev xtt1");
    run("ip route replace 198.19.0.0/17 dev xtt2");
    run("ip -6 route replace 2001:db8::/64 dev xtt0");
    run("ip -6 route replace 2001:db8:0:1::/64 dev xtt1");
    run("ip -6 route replace 2001:db8:0:2::/64 dev xtt2");
}

}  // namespace

TEST_CASE("classifier and reference matcher agree on random criteria and packets") {
    constexpr unsigned kRounds = 4;
    constexpr unsigned kFiltersPerRound = 10000;
    constexpr unsigned kPacketsPerRound = 25000;
    Generator gen(20261122);
    size_t total_filters = 0, total_packets = 0, total_matched = 0, total_fragments_followed = 0;
    size_t total_truncated = 0, total_pending = 0, total_egress_matched = 0;

    for (unsigned round = 0; round < kRounds; ++round) {
        BpfRig rig(3);
        dataplane::ReferenceMatcher ref;
        std::vector<uint32_t> ifaces{rig.transit(0), rig.transit(1), rig.transit(2)};
        installRoutes();
        ref.setRoutes(
            [ifaces](const dataplane::PacketFields& p, uint32_t) { return routeOf(p, ifaces); });
        std::vector<Shape> palette;
        for (int i = 0; i < 24; ++i) palette.push_back(gen.shape(round));

        std::vector<Filter> all;
        std::map<uint32_t, std::pair<uint64_t, uint64_t>> expected;  // slot -> packets, bytes
        const uint64_t now = bootNs();
        unsigned filters = 0;
        while (filters < kFiltersPerRound) {
            FilterSet set;
            const unsigned n = gen.u(1, 5);
            for (unsigned i = 0; i < n; ++i)
                set.filters.push_back(gen.filter(palette[gen.u(0, 23)], ifaces));
            if (gen.chance(0.05))
                set.expiry_ns = now - 1;  // already expired
            else if (gen.chance(0.1))
                set.expiry_ns = now + 3600'000'000'000ull;
            auto r = rig.dp().publish(set);
            if (!std::holds_alternative<dataplane::SlotRef>(r)) {
                const auto& e = std::get<dataplane::PublishError>(r);
                REQUIRE_MESSAGE(e.kind == dataplane::PublishError::Kind::SharedKeyFull, e.detail);
                continue;  // eight criteria on one key already: refused whole, nothing left behind
            }
            const auto slot = std::get<dataplane::SlotRef>(r).slot;
            ref.add(slot, set);
            all.insert(all.end(), set.filters.begin(), set.filters.end());
            filters += n;
        }
        total_filters += filters;
        std::vector<const Filter*> egress_filters;
        for (const Filter& f : all)
            if (f.oifindex != 0) egress_filters.push_back(&f);
        INFO("round " << round << ": " << rig.dp().maskCount() << " masks, " << rig.dp().ruleCount()
                      << " rules");

        // Later fragments of first fragments already sent, with the time the
        // first one went: both sides forget a first fragment after
        // XTAP_FRAG_WINDOW_NS, so a slow machine must not hold one near that
        // edge (the two sides read the clock at slightly different times).
        std::vector<std::pair<PacketSpec, uint64_t>> pending_later;
        std::set<uint32_t> tainted;
        for (unsigned i = 0; i < kPacketsPerRound; ++i) {
            PacketSpec p;
            while (!pending_later.empty() &&
                   bootNs() - pending_later.front().second > XTAP_FRAG_WINDOW_NS / 3)
                pending_later.erase(pending_later.begin());
            if (!pending_later.empty() && gen.chance(0.3)) {
                p = pending_later.back().first;
                pending_later.pop_back();
            } else {
                p = gen.packet(all);
                if (p.frag == PacketSpec::Frag::First && gen.chance(0.7)) {
                    PacketSpec later = p;
                    later.frag = PacketSpec::Frag::Later;
                    pending_later.emplace_back(later, bootNs());
                }
            }
            const unsigned iface = gen.u(0, 2);
            const auto frame = buildFrame(p);
            const bool must_pend = ref.mustHoldAsPending(frame, ifaces[iface], bootNs());
            const auto want = ref.match(frame, ifaces[iface], bootNs());
            const auto transit = rig.runTransit(frame, iface);
            const auto capture = rig.runCapture(frame, iface);
            const bool truncated = capture.meta_flags & XTAP_META_TRUNCATED;
            const bool pending = capture.meta_flags & XTAP_META_PENDING_FRAG;
            REQUIRE_MESSAGE(transit.passed, describe(p, frame));
            REQUIRE_MESSAGE(transit.marked == (!want.empty() || pending), describe(p, frame));
            if (must_pend) REQUIRE_MESSAGE(pending, describe(p, frame));
            if (pending) REQUIRE(p.frag == PacketSpec::Frag::Later);
            total_pending += pending;
            if (!truncated && capture.slots != want) {
                std::string got_s, want_s;
                for (auto x : capture.slots) got_s += std::to_string(x) + " ";
                for (auto x : want) want_s += std::to_string(x) + " ";
                FAIL("bpf slots [" << got_s << "] reference [" << want_s << "] "
                                   << describe(p, frame));
            }
            const auto fields = dataplane::parseFrame(frame);
            if (truncated) {
                // More than XTAP_MAX_MATCHES criteria: the copy names the first
                // sixteen and a later fragment knows only those; leave these
                // criteria's counters out of the comparison.
                ++total_truncated;
                tainted.insert(want.begin(), want.end());
            }
            for (uint32_t s : want) {
                expected[s].first += 1;
                expected[s].second += fields->l3_len;
            }
            total_matched += !want.empty();
            if (!want.empty() && fields) {
                const uint32_t egress = routeOf(*fields, ifaces);
                for (const Filter* f : egress_filters) {
                    if (egress == f->oifindex &&
                        filterMatches(*f, *fields, ifaces[iface], egress)) {
                        ++total_egress_matched;
                        break;
                    }
                }
            }
            total_fragments_followed += !want.empty() && p.frag == PacketSpec::Frag::Later;
        }
        total_packets += kPacketsPerRound;

        // Per-criterion counters agree with the reference's tally, read slot by
        // slot, from one batched snapshot of every slot, and from a table read
        // without the controller's lock and installed under it (the tick's way).
        auto countersAgree = [&] {
            for (const auto& [slot, pb] : expected) {
                if (tainted.count(slot)) continue;
                const auto c = rig.maps().readCounters(slot);
                REQUIRE(c.packets == pb.first);
                REQUIRE(c.bytes == pb.second);
            }
        };
        countersAgree();
        REQUIRE(rig.maps().takeCounterSnapshot());
        countersAgree();
        rig.maps().dropCounterSnapshot();
        auto table = rig.maps().readCounterTable();
        REQUIRE(table);
        REQUIRE(rig.maps().installCounterSnapshot(std::move(*table)));
        countersAgree();
        rig.maps().dropCounterSnapshot();
        // A table read before a slot's counters were zeroed (a slot published
        // afresh) is refused: it would give the new criterion the old one's
        // counts. Last in the round: the rig goes with it.
        auto stale = rig.maps().readCounterTable();
        REQUIRE(stale);
        rig.maps().zeroCounters(0);
        CHECK_FALSE(rig.maps().installCounterSnapshot(std::move(*stale)));
        auto fresh = rig.maps().readCounterTable();
        REQUIRE(fresh);
        CHECK(rig.maps().installCounterSnapshot(std::move(*fresh)));
        rig.maps().dropCounterSnapshot();
    }
    MESSAGE(total_filters << " filters, " << total_packets << " packets, " << total_matched
                          << " matched, " << total_fragments_followed
                          << " later fragments matched, " << total_truncated
                          << " matched more than " << XTAP_MAX_MATCHES << " criteria, "
                          << total_pending << " later fragments held as pending, "
                          << total_egress_matched << " matched an Output-Interface filter");
    CHECK(total_filters >= 10000);
    CHECK(total_packets >= 100000);
    CHECK(total_matched > total_packets / 10);  // the generator must exercise the match path
    CHECK(total_fragments_followed > 0);
    CHECK(total_truncated < total_matched / 20);
    CHECK(total_pending > 0);
    CHECK(total_egress_matched > 0);  // Output-Interface filters matched through the FIB
}
