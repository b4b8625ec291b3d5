// PacketBuilder: crafted Ethernet frames for the BPF tests and benchmarks:
// VLAN tags, IPv4 options, IPv6 extension-header chains, fragments, L4.
#pragma once

#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/Filter.h"

namespace xtap::test {

using dataplane::Address;
using dataplane::Family;

struct PacketSpec {
    Family family = Family::V4;
    Address src{};
    Address dst{};
    uint8_t proto = 6;
    uint16_t sport = 0;  // ICMP type for ICMP
    uint16_t dport = 0;  // ICMP code for ICMP
    unsigned vlan_tags = 0;
    bool qinq = false;             // outer tag 802.1ad
    unsigned ipv4_option_words = 0;  // 0..10
    std::vector<uint8_t> v6_ext;   // extension header types in chain order (0, 43, 44, 60, 51)
    enum class Frag { None, First, Later } frag = Frag::None;
    uint32_t frag_id = 0;
    size_t payload = 16;
    bool truncate_l4 = false;  // end the frame inside the L4 header
};

inline void put16(std::vector<uint8_t>& v, uint16_t x) {
    v.push_back(uint8_t(x >> 8));
    v.push_back(uint8_t(x));
}

inline std::vector<uint8_t> buildFrame(const PacketSpec& s) {
    std::vector<uint8_t> f = {0x02, 0, 0, 0, 0, 2, 0x02, 0, 0, 0, 0, 1};
    for (unsigned i = 0; i < s.vlan_tags; ++i) {
        put16(f, (i == 0 && s.qinq && s.vlan_tags == 2) ? 0x88a8 : 0x8100);
        put16(f, uint16_t(100 + i));  // TCI
    }
    const bool later = s.frag == PacketSpec::Frag::Later;
    std::vector<uint8_t> l4;
    if (!later) {
        if (dataplane::hasPorts(s.proto)) {
            put16(l4, s.sport);
            put16(l4, s.dport);
            l4.resize(s.proto == 6 ? 20 : 8, 0);
        } else if (dataplane::isIcmp(s.proto)) {
            l4 = {uint8_t(s.sport), uint8_t(s.dport), 0, 0, 0, 0, 0, 0};
        }
        if (s.truncate_l4 && !l4.empty()) l4.resize(1);
    }
    std::vector<uint8_t> payload(s.truncate_l4 ? 0 : s.payload, 0xab);

    if (s.family == Family::V4) {
        put16(f, 0x0800);
        const size_t ip = f.size();
        const unsigned ihl = 5 + s.ipv4_option_words;
        f.push_back(uint8_t(0x40 | ihl));
        f.push_back(0);
        put16(f, uint16_t(ihl * 4 + l4.size() + payload.size()));
        put16(f, uint16_t(s.frag_id));
        uint16_t fo = 0;
        if (s.frag == PacketSpec::Frag::First) fo = 0x2000;
        if (later) fo = 0x2000 | 185;  // offset 1480
        put16(f, fo);
        f.push_back(64);
        f.push_back(s.proto);
        put16(f, 0);
        f.insert(f.end(), s.src.begin(), s.src.begin() + 4);
        f.insert(f.end(), s.dst.begin(), s.dst.begin() + 4);
        for (unsigned i = 0; i < s.ipv4_option_words * 4; ++i) f.push_back(1);  // NOP options
        (void)ip;
    } else {
        put16(f, 0x86dd);
        f.push_back(0x60);
        f.push_back(0);
        put16(f, 0);
        const size_t plen_at = f.size();
        put16(f, 0);
        const uint8_t first = s.v6_ext.empty() ? s.proto : s.v6_ext[0];
        f.push_back(first);
        f.push_back(64);
        f.insert(f.end(), s.src.begin(), s.src.end());
        f.insert(f.end(), s.dst.begin(), s.dst.end());
        for (size_t i = 0; i < s.v6_ext.size(); ++i) {
            const uint8_t type = s.v6_ext[i];
            const uint8_t next = i + 1 < s.v6_ext.size() ? s.v6_ext[i + 1] : s.proto;
            if (type == 44) {
                f.push_back(next);
                f.push_back(0);
                uint16_t fo = 0;
                if (s.frag == PacketSpec::Frag::First) fo = 1;
                if (later) fo = uint16_t(1448 | 1);
                put16(f, fo);
                put16(f, uint16_t(s.frag_id >> 16));
                put16(f, uint16_t(s.frag_id));
            } else if (type == 51) {  // AH: (len + 2) * 4 bytes, here 16
                f.push_back(next);
                f.push_back(2);
                for (int b = 0; b < 14; ++b) f.push_back(0);
            } else {  // hop-by-hop, routing, destination options: (len + 1) * 8, here 16
                f.push_back(next);
                f.push_back(1);
                for (int b = 0; b < 14; ++b) f.push_back(type == 43 ? 0 : 1);
            }
        }
        const size_t plen = f.size() - (plen_at + 2 + 2 + 32) + l4.size() + payload.size();
        f[plen_at] = uint8_t(plen >> 8);
        f[plen_at + 1] = uint8_t(plen);
    }
    f.insert(f.end(), l4.begin(), l4.end());
    f.insert(f.end(), payload.begin(), payload.end());
    return f;
}

inline Address v4(uint8_t a, uint8_t b, uint8_t c, uint8_t d) {
    Address x{};
    x[0] = a;
    x[1] = b;
    x[2] = c;
    x[3] = d;
    return x;
}

}  // namespace xtap::test
