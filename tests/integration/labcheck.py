#!/usr/bin/env python3
"""Checks on the lab's pcaps (scripts/lib/lab.sh), stdlib only.

  labcheck.py originals --ingress A.pcap [B.pcap ...] --copies C.pcap [D.pcap ...] --addr IP [IP ...]
      the IP packets seen at the router's ingress (Ethernet captures) that
      carry one of the addresses, and the originals xtapctl receive wrote
      (raw IP), must be the same multiset, byte for byte; prints JSON
  labcheck.py addresses --copies C.pcap [...] --addr IP [IP ...]
      how many copies carry one of the addresses (source or destination)
  labcheck.py echo-seqs --copies C.pcap [...] --addr IP
      the ICMP/ICMPv6 echo request sequence numbers of copies sent to IP, as JSON
"""
import argparse
import collections
import ipaddress
import json
import struct
import sys

LINKTYPE_ETHERNET, LINKTYPE_RAW, LINKTYPE_LINUX_SLL = 1, 101, 113


def packets(path):
    """The IP packets of a pcap (Ethernet, raw IP or Linux cooked), trimmed to the IP length."""
    with open(path, "rb") as f:
        header = f.read(24)
        if len(header) < 24:
            return
        magic = header[:4]
        endian = "<" if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        linktype = struct.unpack(endian + "I", header[20:24])[0] & 0xFFFF
        while True:
            rec = f.read(16)
            if len(rec) < 16:
                return
            caplen = struct.unpack(endian + "IIII", rec)[2]
            frame = f.read(caplen)
            if linktype == LINKTYPE_ETHERNET:
                etype, off = struct.unpack("!H", frame[12:14])[0], 14
                while etype in (0x8100, 0x88A8):
                    etype, off = struct.unpack("!H", frame[off + 2:off + 4])[0], off + 4
                if etype not in (0x0800, 0x86DD):
                    continue
                pkt = frame[off:]
            elif linktype == LINKTYPE_LINUX_SLL:
                pkt = frame[16:]
            elif linktype in (LINKTYPE_RAW, 12, 14):
                pkt = frame
            else:
                raise SystemExit(f"{path}: link type {linktype} not handled")
            yield trim(pkt)


def trim(pkt):
    if pkt and pkt[0] >> 4 == 4:
        return pkt[:struct.unpack("!H", pkt[2:4])[0]]
    if pkt and pkt[0] >> 4 == 6:
        return pkt[:40 + struct.unpack("!H", pkt[4:6])[0]]
    return pkt


def addresses(pkt):
    if pkt[0] >> 4 == 4:
        return ipaddress.ip_address(pkt[12:16]), ipaddress.ip_address(pkt[16:20])
    return ipaddress.ip_address(pkt[8:24]), ipaddress.ip_address(pkt[24:40])


def carries(pkt, wanted):
    return bool(pkt) and pkt[0] >> 4 in (4, 6) and any(a in wanted for a in addresses(pkt))


def echo_request_seq(pkt, dst):
    if pkt[0] >> 4 == 4:
        ihl = (pkt[0] & 15) * 4
        if pkt[9] == 1 and addresses(pkt)[1] == dst and pkt[ihl] == 8:
            return struct.unpack("!H", pkt[ihl + 6:ihl + 8])[0]
    elif pkt[6] == 58 and addresses(pkt)[1] == dst and pkt[40] == 128:
        return struct.unpack("!H", pkt[46:48])[0]
    return None


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=["originals", "addresses", "echo-seqs"])
    parser.add_argument("--ingress", nargs="*", default=[])
    parser.add_argument("--copies", nargs="+", required=True)
    parser.add_argument("--addr", nargs="+", required=True)
    args = parser.parse_args()
    wanted = {ipaddress.ip_address(a) for a in args.addr}
    copies = [p for path in args.copies for p in packets(path)]
    if args.command == "originals":
        seen = collections.Counter(p for path in args.ingress for p in packets(path) if carries(p, wanted))
        got = collections.Counter(copies)
        missing, extra = seen - got, got - seen
        print(json.dumps({"ingress": sum(seen.values()), "copies": sum(got.values()),
                          "missing": sum(missing.values()), "extra": sum(extra.values())}))
        return 0 if not missing and not extra else 1
    if args.command == "addresses":
        print(sum(1 for p in copies if carries(p, wanted)))
        return 0
    dst = next(iter(wanted))
    seqs = sorted(s for s in (echo_request_seq(p, dst) for p in copies) if s is not None)
    print(json.dumps(seqs))
    return 0


if __name__ == "__main__":
    sys.exit(main())
