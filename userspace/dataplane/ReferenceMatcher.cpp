#include "dataplane/ReferenceMatcher.h"

#include <algorithm>
#include <cstring>

#include "xtap_abi.h"

namespace xtap::dataplane {

namespace {

uint16_t be16(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] << 8 | p[1]);
}
uint32_t be32(const uint8_t* p) {
    return uint32_t(p[0]) << 24 | uint32_t(p[1]) << 16 | uint32_t(p[2]) << 8 | p[3];
}

// Reads the first L4 fields when they lie inside the frame.
void readL4(std::span<const uint8_t> f, size_t off, PacketFields& p) {
    if (hasPorts(p.proto)) {
        if (off + 4 > f.size()) return;
        p.sport = be16(&f[off]);
        p.dport = be16(&f[off + 2]);
        p.l4_known = true;
    } else if (isIcmp(p.proto)) {
        if (off + 2 > f.size()) return;
        p.sport = f[off];
        p.dport = f[off + 1];
        p.l4_known = true;
    }
}

bool isV6Extension(uint8_t nh) {
    return nh == 0 || nh == 43 || nh == 44 || nh == 60 || nh == 51;
}

}  // namespace

std::optional<PacketFields> parseFrame(std::span<const uint8_t> f) {
    if (f.size() < 14) return std::nullopt;
    size_t off = 12;
    uint16_t ethertype = be16(&f[off]);
    off += 2;
    for (int tags = 0; tags < 2 && (ethertype == 0x8100 || ethertype == 0x88a8); ++tags) {
        if (off + 4 > f.size()) return std::nullopt;
        ethertype = be16(&f[off + 2]);
        off += 4;
    }

    PacketFields p;
    if (ethertype == 0x0800) {
        if (off + 20 > f.size()) return std::nullopt;
        const uint8_t* ip = &f[off];
        const unsigned ihl = ip[0] & 0x0f;
        if ((ip[0] >> 4) != 4 || ihl < 5) return std::nullopt;
        if (off + ihl * 4 > f.size()) return std::nullopt;
        p.family = Family::V4;
        p.proto = ip[9];
        std::memcpy(p.src.data(), ip + 12, 4);
        std::memcpy(p.dst.data(), ip + 16, 4);
        p.l3_len = static_cast<uint32_t>(f.size() - off);
        const uint16_t fragment = be16(ip + 6);
        const bool more = fragment & 0x2000;
        const uint16_t offset = fragment & 0x1fff;
        if (offset != 0) {
            p.frag = PacketFields::Frag::Later;
        } else if (more) {
            p.frag = PacketFields::Frag::First;
        }
        if (p.frag != PacketFields::Frag::None) p.frag_id = be16(ip + 4);
        if (p.frag != PacketFields::Frag::Later) readL4(f, off + ihl * 4, p);
        return p;
    }
    if (ethertype == 0x86dd) {
        if (off + 40 > f.size()) return std::nullopt;
        const uint8_t* ip = &f[off];
        if ((ip[0] >> 4) != 6) return std::nullopt;
        p.family = Family::V6;
        std::memcpy(p.src.data(), ip + 8, 16);
        std::memcpy(p.dst.data(), ip + 24, 16);
        p.l3_len = static_cast<uint32_t>(f.size() - off);
        uint8_t next = ip[6];
        size_t pos = off + 40;
        for (int n = 0; n < 8 && isV6Extension(next); ++n) {
            if (pos + 2 > f.size()) return std::nullopt;
            if (next == 44) {  // fragment header: 8 bytes
                if (pos + 8 > f.size()) return std::nullopt;
                const uint16_t fo = be16(&f[pos + 2]);
                p.frag_id = be32(&f[pos + 4]);
                if (fo & 0xfff8) {
                    p.frag = PacketFields::Frag::Later;
                } else if (fo & 1) {
                    p.frag = PacketFields::Frag::First;
                }
                next = f[pos];
                pos += 8;
                if (p.frag == PacketFields::Frag::Later) {
                    p.proto = next;
                    return p;
                }
                continue;
            }
            const size_t len =
                next == 51 ? (size_t(f[pos + 1]) + 2) * 4 : (size_t(f[pos + 1]) + 1) * 8;
            next = f[pos];
            pos += len;
        }
        p.proto = next;
        if (!isV6Extension(next)) readL4(f, pos, p);
        return p;
    }
    return std::nullopt;
}

bool prefixContains(const Prefix& pre, const Address& a) {
    for (unsigned bit = 0; bit < pre.len; ++bit) {
        const unsigned byte = bit / 8, shift = 7 - bit % 8;
        if (((pre.addr[byte] >> shift) & 1) != ((a[byte] >> shift) & 1)) return false;
    }
    return true;
}

bool filterMatches(const Filter& f, const PacketFields& p, uint32_t ifindex, uint32_t oifindex) {
    if (f.family != p.family) return false;
    if (f.ifindex != 0 && f.ifindex != ifindex) return false;
    if (f.oifindex != 0 && f.oifindex != oifindex) return false;
    if (!prefixContains(f.src, p.src) || !prefixContains(f.dst, p.dst)) return false;
    if (f.proto && *f.proto != p.proto) return false;
    if (f.needsL4()) {
        if (!p.l4_known) return false;
        if (!f.sport.contains(p.sport) || !f.dport.contains(p.dport)) return false;
    }
    return true;
}

bool ReferenceMatcher::mustHoldAsPending(std::span<const uint8_t> frame, uint32_t ifindex,
                                         uint64_t now_ns) const {
    const auto p = parseFrame(frame);
    if (!p || p->frag != PacketFields::Frag::Later) return false;
    const FragKey fk{static_cast<uint8_t>(p->family), p->proto, p->frag_id, p->src, p->dst};
    if (firstFragment(fk, now_ns)) return false;
    const uint32_t oifindex = egressOf(*p, ifindex);
    for (const auto& [slot, set] : criteria_) {
        if (set.expiry_ns != 0 && now_ns >= set.expiry_ns) continue;
        for (const auto& f : set.filters) {
            if (!f.needsL4() || f.family != p->family) continue;
            if (f.ifindex != 0 && f.ifindex != ifindex) continue;
            if (f.oifindex != 0 && f.oifindex != oifindex) continue;
            if (f.proto && *f.proto != p->proto) continue;
            if (prefixContains(f.src, p->src) && prefixContains(f.dst, p->dst)) return true;
        }
    }
    return false;
}

const ReferenceMatcher::FirstFragment* ReferenceMatcher::firstFragment(const FragKey& key,
                                                                       uint64_t now_ns) const {
    const auto it = frags_.find(key);
    if (it == frags_.end() || now_ns - it->second.seen_ns >= XTAP_FRAG_WINDOW_NS) return nullptr;
    return &it->second;
}

void ReferenceMatcher::add(uint32_t slot, FilterSet set) {
    criteria_[slot] = std::move(set);
}

void ReferenceMatcher::remove(uint32_t slot) {
    criteria_.erase(slot);
}

std::vector<uint32_t> ReferenceMatcher::match(std::span<const uint8_t> frame, uint32_t ifindex,
                                              uint64_t now_ns) {
    std::vector<uint32_t> out;
    const auto p = parseFrame(frame);
    if (!p) return out;
    auto live = [&](const FilterSet& s) { return s.expiry_ns == 0 || now_ns < s.expiry_ns; };

    std::set<uint32_t> hits;
    const uint32_t oifindex = egressOf(*p, ifindex);
    const FragKey fk{static_cast<uint8_t>(p->family), p->proto, p->frag_id, p->src, p->dst};
    if (p->frag == PacketFields::Frag::Later) {
        if (const auto* first = firstFragment(fk, now_ns)) {
            for (uint32_t slot : first->slots) {
                auto c = criteria_.find(slot);
                if (c != criteria_.end() && live(c->second)) hits.insert(slot);
            }
        }
    }
    for (const auto& [slot, set] : criteria_) {
        if (!live(set)) continue;
        if (std::any_of(set.filters.begin(), set.filters.end(),
                        [&](const Filter& f) { return filterMatches(f, *p, ifindex, oifindex); }))
            hits.insert(slot);
    }
    if (p->frag == PacketFields::Frag::First && !hits.empty()) frags_[fk] = {hits, now_ns};
    return {hits.begin(), hits.end()};
}

}  // namespace xtap::dataplane
