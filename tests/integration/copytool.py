#!/usr/bin/env python3
"""MD-side helpers for the integration tests (stdlib only).

  copytool.py receive ADDR PORT OUT SECONDS   write every UDP payload received
                                               (kernel-reassembled) to OUT
  copytool.py rebuild OUT SERVER_IP PORT      rebuild the HTTP body the server sent,
                                               from the copies in OUT (or in a pcap of
                                               originals from xtapctl receive); print
                                               {"sha256", "bytes", "copies", "segments"}
  copytool.py count OUT PROTO DST_IP          print how many copies in OUT are of
                                               packets of IP protocol PROTO (1 ICMP,
                                               58 ICMPv6, 6 TCP, ...) to DST_IP
  copytool.py sign KEY LINE...                print a DTCP request signed with KEY
"""
import hashlib
import hmac
import ipaddress
import json
import socket
import struct
import sys
import time


def receive(addr, port, out, seconds):
    fam = socket.AF_INET6 if ":" in addr else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    s.bind((addr, int(port)))
    s.settimeout(0.2)
    deadline = time.time() + float(seconds)
    n = 0
    with open(out, "wb") as f:
        while time.time() < deadline:
            try:
                data = s.recv(70000)
            except socket.timeout:
                continue
            f.write(struct.pack("!I", len(data)) + data)
            f.flush()
            n += 1
    print(json.dumps({"received": n}))


PCAP_MAGICS = {b"\xd4\xc3\xb2\xa1": "<", b"\xa1\xb2\xc3\xd4": ">", b"\x4d\x3c\xb2\xa1": "<", b"\xa1\xb2\x3c\x4d": ">"}


def records(path):
    with open(path, "rb") as f:
        endian = PCAP_MAGICS.get(f.read(4))
        if endian:  # a pcap of raw IP packets, as `xtapctl receive --pcap` writes
            f.read(20)
            while True:
                h = f.read(16)
                if len(h) < 16:
                    return
                yield f.read(struct.unpack(endian + "IIII", h)[2])
        f.seek(0)
        while True:
            h = f.read(4)
            if len(h) < 4:
                return
            (n,) = struct.unpack("!I", h)
            yield f.read(n)


def tcp_of(pkt):
    """(src, dst, sport, dport, seq, payload) of an IPv4/IPv6 TCP packet, else None."""
    v = pkt[0] >> 4
    if v == 4:
        ihl = (pkt[0] & 15) * 4
        if pkt[9] != 6 or struct.unpack("!H", pkt[6:8])[0] & 0x3FFF:
            return None
        total = struct.unpack("!H", pkt[2:4])[0]
        src, dst, l4 = ipaddress.ip_address(pkt[12:16]), ipaddress.ip_address(pkt[16:20]), pkt[ihl:total]
    elif v == 6:
        if pkt[6] != 6:
            return None
        plen = struct.unpack("!H", pkt[4:6])[0]
        src, dst, l4 = ipaddress.ip_address(pkt[8:24]), ipaddress.ip_address(pkt[24:40]), pkt[40:40 + plen]
    else:
        return None
    sport, dport, seq = struct.unpack("!HHI", l4[:8])
    off = (l4[12] >> 4) * 4
    return src, dst, sport, dport, seq, l4[off:]


def rebuild(path, server, port):
    server, port = ipaddress.ip_address(server), int(port)
    segments, copies = {}, 0
    for rec in records(path):
        copies += 1
        pkt = rec if rec[0] >> 4 in (4, 6) else rec[8:]  # jmirror: skip its 8-byte header
        t = tcp_of(pkt)
        if not t or t[0] != server or t[2] != port or not t[5]:
            continue
        segments[t[4]] = t[5]
    if not segments:
        print(json.dumps({"sha256": "", "bytes": 0, "copies": copies, "segments": 0}))
        return
    # Sequence numbers relative to the first byte seen; contiguous or it is a gap.
    seqs = sorted(segments)
    stream, nxt = bytearray(), seqs[0]
    for s in seqs:
        if s > nxt:
            break  # a hole: what follows cannot be trusted
        stream += segments[s][nxt - s:]
        nxt = max(nxt, s + len(segments[s]))
    body = bytes(stream)
    head_end = body.find(b"\r\n\r\n")
    body = body[head_end + 4:] if head_end >= 0 else body
    print(json.dumps({"sha256": hashlib.sha256(body).hexdigest(), "bytes": len(body),
                      "copies": copies, "segments": len(segments)}))


def count(path, proto, dst):
    proto, dst, n = int(proto), ipaddress.ip_address(dst), 0
    for rec in records(path):
        pkt = rec if rec[0] >> 4 in (4, 6) else rec[8:]  # jmirror: skip its 8-byte header
        v = pkt[0] >> 4
        if v == 4 and pkt[9] == proto and ipaddress.ip_address(pkt[16:20]) == dst:
            n += 1
        elif v == 6 and pkt[6] == proto and ipaddress.ip_address(pkt[24:40]) == dst:
            n += 1
    print(n)


def sign(key, lines):
    body = "".join(l + "\r\n" for l in lines).encode()
    mac = hmac.new(key.encode(), body, hashlib.sha1).hexdigest()
    sys.stdout.buffer.write(body + b"Authentication-Info: " + mac.encode() + b"\r\n\r\n")


if __name__ == "__main__":
    cmd = sys.argv[1]
    if cmd == "receive":
        receive(*sys.argv[2:6])
    elif cmd == "rebuild":
        rebuild(*sys.argv[2:5])
    elif cmd == "count":
        count(*sys.argv[2:5])
    elif cmd == "sign":
        sign(sys.argv[2], sys.argv[3:])
    else:
        sys.exit(2)
