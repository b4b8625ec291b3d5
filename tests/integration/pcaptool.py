#!/usr/bin/env python3
"""Small pcap reader for the integration tests (stdlib only).

  pcaptool.py compare COPIES.pcap INGRESS.pcap [INGRESS.pcap ...]
      the copies must be exactly the ingress frames, as a multiset, byte for byte
  pcaptool.py summary FILE.pcap
      counts per IP family and total L3 bytes, as JSON
  pcaptool.py datagrams FILE.pcap
      the IPv4 fragments grouped by datagram: how many datagrams came whole
      and how many in part, as JSON
"""
import collections
import json
import struct
import sys


RAW_IP = (12, 101)  # DLT_RAW as libpcap writes it, and LINKTYPE_RAW


def records(path):
    """Each record of a pcap file, with the file's link type: (linktype, bytes)."""
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24:
            return
        magic = struct.unpack("<I", header[:4])[0]
        endian = "<" if magic in (0xA1B2C3D4, 0xA1B23C4D) else ">"
        linktype = struct.unpack(endian + "I", header[20:24])[0]
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            _, _, caplen, _ = struct.unpack(endian + "IIII", rec)
            yield linktype, f.read(caplen)


def frames(path):
    for _, data in records(path):
        yield data


def l3(frame):
    """(family, L3 bytes) of an Ethernet frame with up to two VLAN tags."""
    off = 12
    etype = struct.unpack("!H", frame[off:off + 2])[0]
    off += 2
    for _ in range(2):
        if etype not in (0x8100, 0x88A8):
            break
        etype = struct.unpack("!H", frame[off + 2:off + 4])[0]
        off += 4
    family = {0x0800: 4, 0x86DD: 6}.get(etype, 0)
    return family, frame[off:]


def packets(path):
    """The IP packets of a pcap file, Ethernet or raw IP (xtapctl receive --pcap)."""
    for linktype, data in records(path):
        yield data if linktype in RAW_IP else l3(data)[1]


def datagrams(path):
    """IPv4 fragments by (source, destination, protocol, identification): a
    datagram is whole when its pieces cover it from offset 0 to the last one."""
    pieces = collections.defaultdict(list)
    for pkt in packets(path):
        if len(pkt) < 20 or pkt[0] >> 4 != 4:
            continue
        flags_off = struct.unpack("!H", pkt[6:8])[0]
        if not flags_off & 0x3FFF:
            continue
        ihl = (pkt[0] & 0x0F) * 4
        length = struct.unpack("!H", pkt[2:4])[0] - ihl
        key = (pkt[12:16], pkt[16:20], pkt[9], pkt[4:6])
        pieces[key].append(((flags_off & 0x1FFF) * 8, length, bool(flags_off & 0x2000)))
    whole = 0
    for parts in pieces.values():
        covered, complete = 0, False
        for off, length, more in sorted(set(parts)):
            if off != covered:
                break
            covered += length
            complete = not more
        whole += complete
    return {"datagrams": len(pieces), "whole": whole, "partial": len(pieces) - whole,
            "fragments": sum(len(p) for p in pieces.values())}


def summary(path):
    out = {"frames": 0, "ipv4": 0, "ipv6": 0, "ipv4_bytes": 0, "ipv6_bytes": 0, "fragments": 0}
    for fr in frames(path):
        out["frames"] += 1
        fam, pkt = l3(fr)
        if fam == 4:
            out["ipv4"] += 1
            out["ipv4_bytes"] += len(pkt)
            if struct.unpack("!H", pkt[6:8])[0] & 0x3FFF:
                out["fragments"] += 1
        elif fam == 6:
            out["ipv6"] += 1
            out["ipv6_bytes"] += len(pkt)
            if pkt[6] == 44:
                out["fragments"] += 1
    return out


def main():
    if sys.argv[1] == "summary":
        print(json.dumps(summary(sys.argv[2])))
        return 0
    if sys.argv[1] == "datagrams":
        print(json.dumps(datagrams(sys.argv[2])))
        return 0
    if sys.argv[1] == "compare":
        copies = collections.Counter(frames(sys.argv[2]))
        ingress = collections.Counter()
        for p in sys.argv[3:]:
            ingress.update(frames(p))
        missing = ingress - copies
        extra = copies - ingress
        print(json.dumps({"copies": sum(copies.values()), "ingress": sum(ingress.values()),
                          "missing": sum(missing.values()), "extra": sum(extra.values()),
                          "duplicated": sum(c - 1 for c in copies.values() if c > 1)
                          - sum(c - 1 for c in ingress.values() if c > 1)}))
        return 0 if not missing and not extra else 1
    return 2


if __name__ == "__main__":
    sys.exit(main())
