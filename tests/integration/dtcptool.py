#!/usr/bin/env python3
"""A mediation device's side of DTCP, independent of xtap's code (stdlib only).
Requests are signed and replies checked as dtcp.md §8 says: HMAC-SHA1 over
every byte before the Authentication-Info line.

  dtcptool.py request KEY LINE...     one signed request (CRLF) on stdout
  dtcptool.py hmac KEY                 HMAC of stdin's bytes, hex
  dtcptool.py replies KEY              stdin: messages from the server; stdout:
                                       one JSON object per message {"status",
                                       "version", "fields": [[name, value]...],
                                       "hmac_ok"}; exit 1 if an HMAC fails
  dtcptool.py inflate-state STATE_JSON USER COUNT
                                       grow a stopped xtapd's state file to
                                       COUNT copies of USER's first criterion
  dtcptool.py add-many|list|noop-loop|watch OPTIONS -- SSH COMMAND...
                                       one SSH session (the command's stdin and
                                       stdout are the DTCP channel), timed; a
                                       JSON summary on stdout (see --help)
"""
import argparse
import hashlib
import hmac
import ipaddress
import json
import os
import select
import subprocess
import sys
import time


def sign(body: bytes, key: bytes) -> bytes:
    mac = hmac.new(key, body, hashlib.sha1).hexdigest().encode()
    return body + b"Authentication-Info: " + mac + b"\r\n\r\n"


def request(key: bytes, lines) -> bytes:
    return sign("".join(line + "\r\n" for line in lines).encode(), key)


def parse_message(raw: bytes, key: bytes) -> dict:
    """One message without its final empty line: status, fields, HMAC check."""
    lines = raw.splitlines(keepends=True)
    start = lines[0].decode(errors="replace").strip().split(" ", 2)
    # The covered lines are joined once: `bytes +=` per line is quadratic, hours for
    # a LIST of 100,000 criteria (2.5 million lines).
    covered_lines, fields, mac = [], [], None
    for index, line in enumerate(lines):
        name, _, value = line.partition(b":")
        if index and name.strip().lower() == b"authentication-info":
            mac = value.strip().decode()
            break
        covered_lines.append(line)
        if index:
            fields.append([name.strip().decode(errors="replace"), value.strip().decode(errors="replace")])
    covered = b"".join(covered_lines)
    ok = mac is not None and hmac.compare_digest(mac.lower(), hmac.new(key, covered, hashlib.sha1).hexdigest())
    return {
        "version": start[0],
        "status": int(start[1]) if len(start) > 1 and start[1].isdigit() else None,
        "reason": start[2] if len(start) > 2 else "",
        "fields": fields,
        "hmac_ok": ok,
    }


class Splitter:
    """Splits a byte stream into messages at the empty line (CRLF or LF)."""

    def __init__(self):
        self.buffer = bytearray()
        self.scanned = 0  # bytes of buffer known to hold no message end

    def feed(self, data: bytes):
        self.buffer += data
        out = []
        while True:
            start = max(0, self.scanned - 3)
            cut = [i for i in (self.buffer.find(b"\r\n\r\n", start), self.buffer.find(b"\n\n", start)) if i >= 0]
            if not cut:
                self.scanned = len(self.buffer)
                return out
            i = min(cut)
            sep = 4 if self.buffer[i:i + 4] == b"\r\n\r\n" else 2
            message = bytes(self.buffer[: i + 2 if sep == 4 else i + 1])
            del self.buffer[: i + sep]
            self.scanned = 0
            if message.strip():
                out.append(message)


def cmd_replies(key: bytes):
    splitter = Splitter()
    bad = 0
    for message in splitter.feed(sys.stdin.buffer.read()):
        parsed = parse_message(message, key)
        bad += not parsed["hmac_ok"]
        print(json.dumps(parsed))
    sys.exit(1 if bad else 0)


# --- timed sessions over one SSH connection -------------------------------------


class Session:
    """One SSH subprocess whose stdin/stdout carry the DTCP channel."""

    def __init__(self, command, key: bytes):
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, bufsize=0)
        self.key = key
        self.splitter = Splitter()
        self.queue = []
        os.set_blocking(self.proc.stdout.fileno(), False)

    def send(self, data: bytes):
        self.proc.stdin.write(data)

    def poll(self, timeout: float):
        """Messages that arrived within timeout seconds (possibly none)."""
        if not self.queue:
            ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
            if ready:
                data = self.proc.stdout.read(1 << 20)
                if data == b"":
                    raise EOFError("the server closed the channel")
                if data:
                    self.queue.extend(self.splitter.feed(data))
        out, self.queue = self.queue, []
        return out

    def receive(self, timeout: float) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            if self.queue:
                return self.queue.pop(0)
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no reply in time")
            arrived = self.poll(left)  # poll() rebinds self.queue: call it first
            self.queue.extend(arrived)

    def close(self):
        try:
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()


def status_of(message: bytes) -> int:
    return int(message.split(b" ", 2)[1])


def add_lines(args, i: int):
    base = int(ipaddress.ip_address(args.first_address))
    lines = [
        "ADD DTCP/0.8",
        f"Csource-ID: {args.user}",
        f"Cdest-ID: {args.cdest}",
        f"Dest-Address: {ipaddress.ip_address(base + i)}",
        "Flags: STATIC",
    ]
    if ":" in args.first_address:
        lines.insert(4, "X-JTap-IP-Version: ipv6")
    return lines


def cmd_add_many(args, command):
    """ADD --count criteria; --window requests outstanding (1 = request, reply,
    next request, as Juniper's clients do)."""
    key = args.key.encode()
    s = Session(command, key)
    seq = args.seq
    # A NOOP first: the session is up and authenticated before the clock starts.
    s.send(request(key, ["NOOP DTCP/0.8", f"Csource-ID: {args.user}", f"Seq: {seq}"]))
    status_of(s.receive(60))
    statuses = {}
    sent = answered = 0
    start = time.monotonic()
    while answered < args.count:
        while sent < args.count and sent - answered < args.window:
            seq += 1
            s.send(request(key, add_lines(args, args.offset + sent) + [f"Seq: {seq}"]))
            sent += 1
        for message in [s.receive(120)]:
            code = status_of(message)
            statuses[code] = statuses.get(code, 0) + 1
            answered += 1
    elapsed = time.monotonic() - start
    s.close()
    print(json.dumps({"count": args.count, "window": args.window, "seconds": elapsed,
                      "per_second": args.count / elapsed, "statuses": statuses, "last_seq": seq}))


def cmd_list(args, command):
    """One LIST, timed from the request to the first and the last byte of its reply."""
    key = args.key.encode()
    s = Session(command, key)
    seq = args.seq
    s.send(request(key, ["NOOP DTCP/0.8", f"Csource-ID: {args.user}", f"Seq: {seq}"]))
    status_of(s.receive(60))
    seq += 1
    lines = ["LIST DTCP/0.8", f"Csource-ID: {args.user}"]
    if args.flags:
        lines.append(f"Flags: {args.flags}")
    start = time.monotonic()
    s.send(request(key, lines + [f"Seq: {seq}"]))
    first = None
    while first is None:
        ready, _, _ = select.select([s.proc.stdout], [], [], 300)
        if not ready:
            raise TimeoutError("no LIST reply")
        data = s.proc.stdout.read(1 << 20)
        if not data:
            raise EOFError("closed during LIST")
        first = time.monotonic()
        s.queue.extend(s.splitter.feed(data))
    message = s.receive(600)
    done = time.monotonic()
    s.close()
    parsed = parse_message(message, key)
    names = [n.upper() for n, _ in parsed["fields"]]
    counts = [v for n, v in parsed["fields"] if n.upper() == "CRITERIA-COUNT"]
    print(json.dumps({"status": parsed["status"], "hmac_ok": parsed["hmac_ok"], "bytes": len(message),
                      "entries": names.count("CRITERIA-NUM"), "criteria_count": counts[0] if counts else None,
                      "first_byte_s": first - start, "seconds": done - start, "last_seq": seq}))


def cmd_noop_loop(args, command):
    """NOOPs one after another for --seconds (or until --stop-file exists):
    every answer's latency, with the wall-clock time it was sent."""
    key = args.key.encode()
    s = Session(command, key)
    seq = args.seq
    samples = []
    if args.ready_file:
        s.send(request(key, ["NOOP DTCP/0.8", f"Csource-ID: {args.user}", f"Seq: {seq}"]))
        status_of(s.receive(60))
        open(args.ready_file, "w").close()
    end = time.monotonic() + args.seconds
    while time.monotonic() < end and not (args.stop_file and os.path.exists(args.stop_file)):
        seq += 1
        sent = time.monotonic()
        s.send(request(key, ["NOOP DTCP/0.8", f"Csource-ID: {args.user}", f"Seq: {seq}"]))
        code = status_of(s.receive(120))
        got = time.monotonic()
        samples.append({"wall": time.time() - (got - sent), "latency_s": got - sent, "status": code})
        time.sleep(args.interval)
    s.close()
    lat = sorted(x["latency_s"] for x in samples)
    print(json.dumps({"answered": len(samples), "ok": sum(x["status"] == 200 for x in samples),
                      "median_s": lat[len(lat) // 2] if lat else None, "max_s": lat[-1] if lat else None,
                      "samples": samples}))


def cmd_watch(args, command):
    """Holds one session open and collects what the server sends unasked
    (notifications): a NOOP first, then --ready-file is created; ends when
    every status in --until has arrived, --stop-file exists or --seconds
    pass. Prints one JSON line per message (as `replies`); exit 1 if an
    HMAC fails."""
    key = args.key.encode()
    s = Session(command, key)
    s.send(request(key, ["NOOP DTCP/0.8", f"Csource-ID: {args.user}", f"Seq: {args.seq}"]))
    status_of(s.receive(60))
    if args.ready_file:
        open(args.ready_file, "w").close()
    wanted = {int(x) for x in args.until.split(",") if x}
    seen, bad = set(), 0
    end = time.monotonic() + args.seconds
    while time.monotonic() < end and not (args.stop_file and os.path.exists(args.stop_file)):
        if wanted and wanted <= seen:
            break
        for message in s.poll(0.2):
            parsed = parse_message(message, key)
            seen.add(parsed["status"])
            bad += not parsed["hmac_ok"]
            print(json.dumps(parsed), flush=True)
    s.close()
    sys.exit(1 if bad else 0)


def cmd_inflate_state(path, user, count):
    """Grows xtapd's saved state (stopped xtapd) to COUNT criteria of USER, each
    a copy of USER's first one with its own ID and Dest-Address (198.18.0.0 + i):
    a store of 100,000 criteria in seconds instead of 100,000 ADDs."""
    with open(path) as f:
        state = json.load(f)
    store = state["store"]
    template = next(c for c in store["criteria"] if c["user"] == user)
    others = [c for c in store["criteria"] if c["user"] != user]
    base = int(ipaddress.ip_address("198.18.0.0"))
    grown = []
    for i in range(count):
        # Copies of the levels that change; the rest is shared, only dumped.
        c = dict(template)
        c.pop("slot", None)  # published afresh on restore
        c["id"] = i + 1
        address = str(ipaddress.ip_address(base + i))
        c["request"] = dict(template["request"])
        c["request"]["match"] = dict(template["request"]["match"])
        c["request"]["match"]["dst"] = [{"hi": address, "lo": address, "negated": False}]
        c["request"]["match_text"] = [["Dest-Address", address]]
        grown.append(c)
    store["criteria"] = others + grown
    store["last_ids"][user] = count
    with open(path + ".inflated", "w") as f:
        f.write(json.dumps(state))  # one string: json.dump writes piece by piece
    os.chmod(path + ".inflated", 0o600)
    os.replace(path + ".inflated", path)


def main():
    if len(sys.argv) == 5 and sys.argv[1] == "inflate-state":
        cmd_inflate_state(sys.argv[2], sys.argv[3], int(sys.argv[4]))
        return
    if len(sys.argv) >= 3 and sys.argv[1] == "request":
        sys.stdout.buffer.write(request(sys.argv[2].encode(), sys.argv[3:]))
        return
    if len(sys.argv) == 3 and sys.argv[1] == "hmac":
        print(hmac.new(sys.argv[2].encode(), sys.stdin.buffer.read(), hashlib.sha1).hexdigest())
        return
    if len(sys.argv) == 3 and sys.argv[1] == "replies":
        cmd_replies(sys.argv[2].encode())
        return
    argv = sys.argv[1:]
    if "--" not in argv:
        sys.exit(__doc__)
    split = argv.index("--")
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["add-many", "list", "noop-loop", "watch"])
    p.add_argument("--user", required=True)
    p.add_argument("--key", default="Juniper")
    p.add_argument("--seq", type=int, default=1)
    p.add_argument("--count", type=int, default=1)
    p.add_argument("--offset", type=int, default=0, help="first criterion's index (address offset)")
    p.add_argument("--window", type=int, default=1)
    p.add_argument("--cdest", default="cd1")
    p.add_argument("--first-address", default="198.18.128.0")
    p.add_argument("--flags", default="Both")
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--interval", type=float, default=0.05)
    p.add_argument("--ready-file", help="noop-loop, watch: created once the session is up")
    p.add_argument("--stop-file", help="noop-loop, watch: stops once this file exists")
    p.add_argument("--until", default="", help="watch: statuses (comma list) that end the watch")
    args = p.parse_args(argv[:split])
    command = argv[split + 1:]
    {"add-many": cmd_add_many, "list": cmd_list, "noop-loop": cmd_noop_loop, "watch": cmd_watch}[args.mode](
        args, command)


if __name__ == "__main__":
    main()
