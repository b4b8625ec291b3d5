#include "dataplane/TupleSpace.h"

#include <cstring>

namespace xtap::dataplane {

namespace {

void prefixMask(uint8_t len, uint8_t out[16]) {
    for (unsigned i = 0; i < 16; ++i) {
        const unsigned bits = len > i * 8 ? std::min(8u, len - i * 8) : 0u;
        out[i] = bits == 0 ? 0 : static_cast<uint8_t>(0xff00 >> bits);
    }
}

uint16_t fieldMask(uint8_t len) {
    return len == 0 ? 0 : static_cast<uint16_t>(0xffff0000u >> len);
}

}  // namespace

xtap_mask MaskSpec::toAbi() const {
    xtap_mask m{};
    m.active = 1;
    m.family = static_cast<uint8_t>(family);
    m.needs_l4 = (sport_len > 0 || dport_len > 0) ? 1 : 0;
    m.proto_mask = proto ? 0xff : 0;
    m.ifindex_mask = ifindex ? 0xffffffffu : 0;
    m.oifindex_mask = oifindex ? 0xffffffffu : 0;
    m.sport_mask = fieldMask(sport_len);
    m.dport_mask = fieldMask(dport_len);
    prefixMask(src_len, m.src_mask);
    prefixMask(dst_len, m.dst_mask);
    return m;
}

std::vector<Block16> rangeToBlocks(Range16 r) {
    std::vector<Block16> out;
    uint32_t lo = r.lo;
    const uint32_t hi = r.hi;
    while (lo <= hi) {
        // Largest block aligned at lo that does not pass hi.
        unsigned size_log = 0;
        while (size_log < 16) {
            const uint32_t size = 1u << (size_log + 1);
            if ((lo & (size - 1)) != 0 || lo + size - 1 > hi) break;
            ++size_log;
        }
        out.push_back({static_cast<uint16_t>(lo), static_cast<uint8_t>(16 - size_log)});
        lo += 1u << size_log;
    }
    return out;
}

xtap_key applyMask(const xtap_key& p, const xtap_mask& m, uint8_t mask_id) {
    xtap_key k{};
    k.mask_id = mask_id;
    k.family = p.family;
    k.proto = p.proto & m.proto_mask;
    k.ifindex = p.ifindex & m.ifindex_mask;
    k.oifindex = p.oifindex & m.oifindex_mask;
    k.sport = p.sport & m.sport_mask;
    k.dport = p.dport & m.dport_mask;
    for (unsigned i = 0; i < 16; ++i) {
        k.src[i] = p.src[i] & m.src_mask[i];
        k.dst[i] = p.dst[i] & m.dst_mask[i];
    }
    return k;
}

std::vector<RuleEntry> expandFilter(const Filter& f) {
    MaskSpec base;
    base.family = f.family;
    base.src_len = f.src.len;
    base.dst_len = f.dst.len;
    base.proto = f.proto.has_value();
    base.ifindex = f.ifindex != 0;
    base.oifindex = f.oifindex != 0;

    xtap_key packet{};
    packet.family = static_cast<uint8_t>(f.family);
    packet.proto = f.proto.value_or(0);
    packet.ifindex = f.ifindex;
    packet.oifindex = f.oifindex;
    std::memcpy(packet.src, f.src.addr.data(), 16);
    std::memcpy(packet.dst, f.dst.addr.data(), 16);

    const auto sblocks = rangeToBlocks(f.sport);
    const auto dblocks = rangeToBlocks(f.dport);
    std::vector<RuleEntry> out;
    out.reserve(sblocks.size() * dblocks.size());
    for (const auto& sb : sblocks) {
        for (const auto& db : dblocks) {
            RuleEntry e;
            e.mask = base;
            e.mask.sport_len = sb.len;
            e.mask.dport_len = db.len;
            packet.sport = sb.value;
            packet.dport = db.value;
            e.key = applyMask(packet, e.mask.toAbi(), 0);
            out.push_back(e);
        }
    }
    return out;
}

std::optional<Prefix> anchorOf(const Filter& f) {
    if (f.src.len == 0 && f.dst.len == 0) return std::nullopt;
    return f.src.len >= f.dst.len ? f.src : f.dst;
}

}  // namespace xtap::dataplane
