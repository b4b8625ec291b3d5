#!/usr/bin/env python3
"""Send a UDP datagram as three fragments in a chosen order, on a raw
Ethernet socket (stdlib only). For the fragment tests.

  send_fragments.py IFACE SRC_MAC DST_MAC SRC_IP DST_IP DPORT ID ORDER [COUNT [GAP_S]]
  ORDER: e.g. 321 (last fragment first)
  COUNT datagrams (default 1), identifications ID, ID+1, ..., GAP_S seconds apart
"""
import ipaddress
import socket
import struct
import sys
import time


def csum(data):
    if len(data) % 2:
        data += b"\0"
    s = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while s >> 16:
        s = (s & 0xFFFF) + (s >> 16)
    return (~s) & 0xFFFF


def datagram(smac, dmac, src, dst, dport, ident):
    """The datagram's three fragments, as Ethernet frames."""
    data = bytes((i * 7) & 0xFF for i in range(2992))
    udp_len = 8 + len(data)
    udp = struct.pack("!HHHH", 40000, dport, udp_len, 0) + data
    if src.version == 6:
        pseudo = src.packed + dst.packed + struct.pack("!IxxxB", udp_len, 17)
        udp = udp[:6] + struct.pack("!H", csum(pseudo + udp) or 0xFFFF) + udp[8:]
    chunks = [(0, udp[0:1400]), (1400, udp[1400:2800]), (2800, udp[2800:])]  # fits IPv6 + fragment header
    frames = []
    for i, (off, chunk) in enumerate(chunks):
        more = 1 if i < len(chunks) - 1 else 0
        if src.version == 4:
            hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(chunk), ident & 0xFFFF,
                              (more << 13) | (off // 8), 64, 17, 0, src.packed, dst.packed)
            hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
            l3, etype = hdr + chunk, 0x0800
        else:
            frag = struct.pack("!BBHI", 17, 0, off | more, ident)
            hdr = struct.pack("!IHBB16s16s", 0x60000000, 8 + len(chunk), 44, 64, src.packed, dst.packed)
            l3, etype = hdr + frag + chunk, 0x86DD
        frames.append(bytes.fromhex(dmac.replace(":", "")) + bytes.fromhex(smac.replace(":", ""))
                      + struct.pack("!H", etype) + l3)
    return frames


def main():
    iface, smac, dmac, src, dst, dport, ident, order = sys.argv[1:9]
    count = int(sys.argv[9]) if len(sys.argv) > 9 else 1
    gap = float(sys.argv[10]) if len(sys.argv) > 10 else 0.0
    src, dst = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    dport, ident = int(dport), int(ident)
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
    s.bind((iface, 0))
    for k in range(min(count, 100000)):
        frames = datagram(smac, dmac, src, dst, dport, ident + k)
        for c in order:
            s.send(frames[int(c) - 1])
        if gap:
            time.sleep(gap)
    return 0


if __name__ == "__main__":
    sys.exit(main())
