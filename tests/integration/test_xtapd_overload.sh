#!/usr/bin/env bash
# The per-Cdest rate limit and its notifications (dtcp.md §5 Priority, §11):
#   tgt (target 198.18.1.2) -- r0 [rtr: xtapd] r1 -- inet
#                                              r2 -- md (cleartext destination)
# cd1 allows 800 kbit/s. The MD tasks two UDP criteria to the target: HI
# (port 9001, Priority 1, about half the limit) and LO (port 9002, Priority 9,
# about six times it). Copies delivered must come to about the limit (the
# bucket holds one second, so bucket + rate x duration); HI loses nothing, LO
# most; every drop is counted with reason rate_limit in `xtapctl status
# --json` and in the criteria's LIST counters. An SSH session the MD holds
# open receives 580 (Cdest-ID, Average/Alert/Max-Bandwidth) and 598 (Cdest-ID,
# Criteria-ID, dropped packets and bytes), HMACs valid, never 680; the target
# gets every original.
source "$(dirname "$0")/lib.sh"
require_root
TAG="xovl$$"  # namespace prefix of this test
XTAPD="$BUILD_DIR/xtapd"
XTAPCTL="$BUILD_DIR/xtapctl"
COPYTOOL="$SOURCE_DIR/tests/integration/copytool.py"
DTCPTOOL="$SOURCE_DIR/tests/integration/dtcptool.py"
[[ -x "$XTAPD" && -x "$XTAPCTL" ]] || fail "build first: $XTAPD / $XTAPCTL missing"
command -v ssh >/dev/null || fail "OpenSSH client missing: run scripts/bootstrap"

TARGET=198.18.1.2
LIMIT_BPS=800000 # cd1's max_bandwidth_bps
PAYLOAD=1000     # UDP payload of each datagram; the copy carries 1028 bytes (IPv4 + UDP + payload)
HI_PPS=50        # 411 kbit/s of copies: half the limit
LO_PPS=600       # 4.9 Mbit/s: six times it
SECONDS_SENT=8

router_lab
private_bpffs

ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/md_key"
SOCK="$WORK/run/control.sock"
cat >"$WORK/xtap.json" <<J
{
  "dtcp": {"listen": ["198.18.20.1:32001"], "host_key": "$WORK/host_key"},
  "users": {"md1": {"authorized_keys": ["$(cat "$WORK/md_key.pub")"],
                    "destinations": {"cd1": {"address": "198.18.20.2", "port": 50000,
                                             "source_address": "198.18.20.1", "source_port": 49153,
                                             "max_bandwidth_bps": $LIMIT_BPS}}}},
  "interfaces": [{"name": "r0", "alias": "ge-0/0/0.0", "xdp_mode": "native"},
                 {"name": "r1", "alias": "ge-0/0/1.0", "xdp_mode": "generic"}],
  "delivery": {"cleartext_destinations": ["198.18.20.0/24"]},
  "dataplane": {"criteria": 4096, "rules": 65536, "anchors": 65536, "pin_dir": "$WORK/bpffs/xtap"},
  "state_dir": "$WORK/state", "audit_log": "$WORK/state/audit.jsonl", "control_socket": "$SOCK"
}
J
"$XTAPD" --check-config "$WORK/xtap.json"

note "starting xtapd in $RTR"
spawn_in "$RTR" "$XTAPD" --config "$WORK/xtap.json" >"$WORK/xtapd.log" 2>&1
wait_for 20 grep -q "DTCP over SSH listening" "$WORK/xtapd.log" || { cat "$WORK/xtapd.log"; fail "xtapd did not start"; }
wait_for 10 test -S "$SOCK" || { cat "$WORK/xtapd.log"; fail "no control socket at $SOCK"; }

SSH=(ip netns exec "$MD" timeout 60 ssh -F /dev/null -p 32001 -o StrictHostKeyChecking=no
    -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -i "$WORK/md_key"
    -s md1@198.18.20.1 flow-tap-dtcp)
# One request per SSH connection (each connection has its own Seq window, the
# default); the counter is a file because callers run dtcp inside $(...).
echo 0 >"$WORK/seq"
dtcp() {  # dtcp LINE...: one signed request over the real OpenSSH client
    local seq=$(($(cat "$WORK/seq") + 1))
    echo $seq >"$WORK/seq"
    python3 "$COPYTOOL" sign Juniper "$@" "Seq: $seq" | "${SSH[@]}"
}
status_json() { in_ns "$RTR" "$XTAPCTL" status --socket "$SOCK" --json; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

note "the MD holds a DTCP session open for notifications"
spawn python3 "$DTCPTOOL" watch --user md1 --seq 1 --seconds 40 --until 580,598 \
    --ready-file "$WORK/watch.ready" -- "${SSH[@]}" >"$WORK/notes.jsonl" 2>"$WORK/watch.err"
WATCH=$!
wait_for 20 test -e "$WORK/watch.ready" || fail "the watching session did not come up: $(cat "$WORK/watch.err")"

spawn_in "$MD" python3 "$COPYTOOL" receive 198.18.20.2 50000 "$WORK/copies.bin" 60 >"$WORK/receiver.out"
spawn_in "$TGT" python3 - "$TARGET" "$WORK/transit.json" <<'PY'
import json, os, select, socket, sys, time
# The target counts the originals reaching it, per port.
socks = []
for port in (9001, 9002):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 << 20)
    s.bind((sys.argv[1], port))
    s.setblocking(False)
    socks.append(s)
counts = {9001: 0, 9002: 0}
end = time.time() + 60
while time.time() < end:
    ready, _, _ = select.select(socks, [], [], 0.2)
    for s in ready:
        while True:
            try:
                s.recv(2048)
            except BlockingIOError:
                break
            counts[s.getsockname()[1]] += 1
    with open(sys.argv[2] + ".tmp", "w") as f:
        json.dump(counts, f)
    os.replace(sys.argv[2] + ".tmp", sys.argv[2])
PY
sleep 0.5

note "tasking HI (Priority 1) and LO (Priority 9) to cd1"
add() {  # add PORT PRIORITY: prints the Criteria-ID
    local r
    r=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Dest-Address: $TARGET" "Protocol: 17" \
        "Dest-Port: $1" "Priority: $2" "Flags: STATIC")
    echo "$r" | grep -q "^DTCP/0.8 200 OK" || fail "ADD port $1 refused: $r"
    echo "$r" | awk -F': ' '/^CRITERIA-ID/ {print $2}' | tr -d '\r'
}
HI_ID=$(add 9001 1)
LO_ID=$(add 9002 9)
echo "HI: Criteria-ID $HI_ID, LO: Criteria-ID $LO_ID"
[[ -n "$HI_ID" && -n "$LO_ID" && "$HI_ID" != "$LO_ID" ]] || fail "no Criteria-IDs"

note "inet sends HI at $HI_PPS/s and LO at $LO_PPS/s for $SECONDS_SENT s"
in_ns "$NET" python3 - "$TARGET" "$PAYLOAD" "$HI_PPS" "$LO_PPS" "$SECONDS_SENT" >"$WORK/sent.json" <<'PY'
import json, socket, sys, time
target, size, hi_pps, lo_pps, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]), float(sys.argv[5])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
data = b"x" * size
sent = {9001: 0, 9002: 0}
ticks = int(seconds * 50)  # 20 ms ticks, paced on an absolute schedule
start = time.monotonic()
for i in range(ticks):
    for port, pps in ((9001, hi_pps), (9002, lo_pps)):
        due = (i + 1) * pps // 50 - i * pps // 50
        for _ in range(due):
            s.sendto(data, (target, port))
            sent[port] += 1
    delay = start + (i + 1) * 0.02 - time.monotonic()
    if delay > 0:
        time.sleep(delay)
print(json.dumps({"hi": sent[9001], "lo": sent[9002], "seconds": time.monotonic() - start}))
PY
cat "$WORK/sent.json"
jget() { python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$@"; }
HI_SENT=$(jget "$WORK/sent.json" hi) LO_SENT=$(jget "$WORK/sent.json" lo) DURATION=$(jget "$WORK/sent.json" seconds)
TOTAL=$((HI_SENT + LO_SENT))

settled() {  # every matched packet sent or dropped for cd1
    local s
    s=$(status_json) || return 1
    [[ $(echo "$s" | jq_ 'd["cdests"][0]["sent"] + d["cdests"][0]["dropped"]') -ge $TOTAL ]]
}
wait_for 20 settled || { status_json; fail "status never accounted for $TOTAL copies"; }
S=$(status_json)
echo "$S" | jq_ '{k: d["cdests"][0][k] for k in ("sent", "sent_bytes", "dropped", "dropped_by_reason", "dropped_bytes")}'
CD() { echo "$S" | jq_ "d[\"cdests\"][0][\"$1\"]"; }
SENT=$(CD sent)
DROPPED=$(CD dropped)
[[ $(echo "$S" | jq_ 'd["cdests"][0]["labels"][0]["cdest_id"]') == cd1 ]] || fail "cdests: $S"
[[ $(echo "$S" | jq_ 'd["counters"]["matched"]') -eq $TOTAL ]] || fail "matched is not $TOTAL: $S"
[[ $((SENT + DROPPED)) -eq $TOTAL ]] || fail "cd1 sent $SENT + dropped $DROPPED != $TOTAL matched"
[[ $(echo "$S" | jq_ 'd["cdests"][0]["dropped_by_reason"]["rate_limit"]') -eq $DROPPED ]] ||
    fail "not every drop is a rate_limit drop: $S"
[[ $(echo "$S" | jq_ 'd["counters"]["dropped_by_reason"]["rate_limit"]') -eq $DROPPED ]] ||
    fail "the global rate_limit count differs from cd1's: $S"

note "delivered copies come to the limit"
# The bucket starts full (one second of rate) and refills at the rate; LO
# never takes its last quarter, kept for Priority <= 1, and HI (under the
# limit) never needs it: bucket x 3/4 + rate x duration.
EXPECT=$(python3 -c "import sys; r=int(sys.argv[1])/8; print(int((0.75*r + r*float(sys.argv[2])) / (int(sys.argv[3]) + 28)))" \
    "$LIMIT_BPS" "$DURATION" "$PAYLOAD")
echo "copies sent $SENT, expected about $EXPECT (limit $LIMIT_BPS bit/s for $DURATION s)"
python3 -c "import sys; s,e=int(sys.argv[1]),int(sys.argv[2]); sys.exit(0 if 0.9*e <= s <= 1.15*e else 1)" \
    "$SENT" "$EXPECT" || fail "sent $SENT copies, expected $EXPECT within -10%/+15% (a backlog gets more time)"
[[ $(CD sent_bytes) -le $(( (LIMIT_BPS / 8) * (1 + ${DURATION%.*} + 1) )) ]] ||
    fail "sent $(CD sent_bytes) bytes, more than the bucket + rate allow"

md_copies() {  # per inner destination port: "HI LO"
    python3 - "$COPYTOOL" "$WORK/copies.bin" <<'PY'
import importlib.util, struct, sys
spec = importlib.util.spec_from_file_location("copytool", sys.argv[1])
ct = importlib.util.module_from_spec(spec)
spec.loader.exec_module(ct)
counts = {9001: 0, 9002: 0}
for pkt in ct.records(sys.argv[2]):
    if pkt[0] >> 4 == 4 and pkt[9] == 17:
        port = struct.unpack("!H", pkt[(pkt[0] & 15) * 4 + 2:][:2])[0]
        counts[port] = counts.get(port, 0) + 1
print(counts[9001], counts[9002])
PY
}
all_copies() { read -r h l < <(md_copies) && [[ $((h + l)) -ge $SENT ]]; }
wait_for 10 all_copies || true
read -r GOT_HI GOT_LO < <(md_copies)
echo "the MD received HI $GOT_HI / $HI_SENT, LO $GOT_LO / $LO_SENT"
[[ $((GOT_HI + GOT_LO)) -eq $SENT ]] || fail "the MD received $((GOT_HI + GOT_LO)) copies, status says $SENT sent"

note "priority shedding: HI loses (almost) nothing, LO most"
python3 -c "import sys; g,s=int(sys.argv[1]),int(sys.argv[2]); sys.exit(0 if g >= 0.98*s else 1)" "$GOT_HI" "$HI_SENT" ||
    fail "HI (Priority 1, under the limit) got $GOT_HI of $HI_SENT copies"
python3 -c "import sys; g,s=int(sys.argv[1]),int(sys.argv[2]); sys.exit(0 if g <= 0.5*s else 1)" "$GOT_LO" "$LO_SENT" ||
    fail "LO (Priority 9, six times the limit) got $GOT_LO of $LO_SENT copies"

note "LIST: per-criterion matches and drops"
L=$(dtcp "LIST DTCP/0.8" "Csource-ID: md1" "Flags: Stats")
entry() {  # entry ID FIELD: FIELD of the LIST entry of Criteria-ID ID
    echo "$L" | tr -d '\r' | awk -F': ' -v id="$1" -v f="$2" '
        /^CRITERIA-NUM/ {cur = ""} /^CRITERIA-ID/ {cur = $2} cur == id && $1 == f {print $2}'
}
for c in "HI $HI_ID $HI_SENT $GOT_HI" "LO $LO_ID $LO_SENT $GOT_LO"; do
    set -- $c
    M=$(entry "$2" MATCHING-PACKETS) DP=$(entry "$2" X-XTAP-DROPPED-PACKETS) DB=$(entry "$2" X-XTAP-DROPPED-BYTES)
    echo "$1: matching $M, dropped $DP packets / $DB bytes"
    [[ "$M" -eq $3 ]] || fail "$1: LIST MATCHING-PACKETS $M, sent $3: $L"
    [[ $((M - DP)) -eq $4 ]] || fail "$1: matched $M - dropped $DP != $4 copies received"
    [[ "$DB" -eq $((DP * (PAYLOAD + 28))) ]] || fail "$1: dropped bytes $DB for $DP packets"
done
[[ $(( $(entry "$HI_ID" X-XTAP-DROPPED-PACKETS) + $(entry "$LO_ID" X-XTAP-DROPPED-PACKETS) )) -eq $DROPPED ]] ||
    fail "LIST drops do not add up to status's $DROPPED"

note "notifications on the held session: 580 and 598, signed; never 680"
wait_for 30 bash -c "! kill -0 $WATCH 2>/dev/null" || fail "580 and 598 did not both arrive: $(cat "$WORK/notes.jsonl")"
wait "$WATCH" || fail "a notification's HMAC does not verify: $(cat "$WORK/notes.jsonl")"
cat "$WORK/notes.jsonl"
python3 - "$WORK/notes.jsonl" "$LIMIT_BPS" "$HI_ID" "$LO_ID" "$(entry "$LO_ID" X-XTAP-DROPPED-PACKETS)" <<'PY' ||
import json, sys
notes = [json.loads(line) for line in open(sys.argv[1])]
limit, hi, lo, lo_dropped = int(sys.argv[2]), sys.argv[3], sys.argv[4], int(sys.argv[5])
def fields(n):
    return {k.upper(): v for k, v in n["fields"]}
def need(ok, what):
    if not ok:
        sys.exit(f"{what}: {notes}")
need(all(n["hmac_ok"] for n in notes), "a bad HMAC")
need(all(n["status"] in (580, 598) for n in notes), "an unexpected message (680 is never sent)")
need(all("SEQ" not in fields(n) for n in notes), "a notification with Seq")
congestion = [fields(n) for n in notes if n["status"] == 580]
need(congestion, "no 580")
f = congestion[0]
need(f.get("CDEST-ID") == "cd1", "580 Cdest-ID")
need(int(f["MAX-BANDWIDTH"]) == limit and int(f["ALERT-BANDWIDTH"]) == limit * 80 // 100, "580 Max/Alert-Bandwidth")
need(int(f["AVERAGE-BANDWIDTH"]) > int(f["ALERT-BANDWIDTH"]), "580 Average-Bandwidth not above the alert")
need("TIMESTAMP" in f, "580 without Timestamp")
dropped = [fields(n) for n in notes if n["status"] == 598]
need(dropped, "no 598")
need(all(d.get("CDEST-ID") == "cd1" for d in dropped), "598 Cdest-ID")
need(all(d.get("CRITERIA-ID") in (hi, lo) for d in dropped), "598 for an unknown criterion")
total = sum(int(d["X-XTAP-DROPPED-PACKETS"]) for d in dropped if d["CRITERIA-ID"] == lo)
need(0 < total <= lo_dropped, f"598s report {total} LO drops, LIST {lo_dropped}")
need(all(int(d["X-XTAP-DROPPED-BYTES"]) > 0 for d in dropped), "598 without bytes")
print(f"580 average {f['AVERAGE-BANDWIDTH']} bit/s; 598 dropped {total} of LO's {lo_dropped}")
PY
    fail "notifications"

note "transit unaffected: the target got every original"
wait_for 5 python3 -c "import json,sys; d=json.load(open(sys.argv[1])); sys.exit(0 if d['9001'] + d['9002'] >= int(sys.argv[2]) else 1)" \
    "$WORK/transit.json" "$TOTAL" || true
cat "$WORK/transit.json"; echo
[[ $(jget "$WORK/transit.json" 9001) -eq $HI_SENT && $(jget "$WORK/transit.json" 9002) -eq $LO_SENT ]] ||
    fail "the target did not get all $TOTAL originals"

note "SIGTERM: clean stop"
kill -TERM "${PIDS[0]}"
wait_for 20 bash -c "! kill -0 ${PIDS[0]} 2>/dev/null" || fail "xtapd did not stop on SIGTERM"
echo "PASS: xtapd overload"
