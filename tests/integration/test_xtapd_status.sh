#!/usr/bin/env bash
# xtapctl status and the metrics endpoint agree with the traffic:
#   tgt (target 198.18.1.2) -- r0 [rtr: xtapd] r1 -- inet
#                                              r2 -- md (cleartext destination)
# The MD tasks one UDP criterion; inet sends a known number of matching
# datagrams. `xtapctl status --json` must count every stage (matched =
# received = sent, sent + dropped = to send), the Prometheus endpoint must
# serve the same totals, a non-root peer is refused by the control socket
# (file mode and SO_PEERCRED), and neither status, metrics nor xtapd's
# stderr names the target. xtapd runs two copy threads (dataplane.copy_threads)
# and the datagrams come from 32 source ports: both capture queues carry
# copies, and the totals are the sum of both threads'. Its copy threads wake
# per copy (dataplane.copy_coalesce_us 0); the other tests run the default pause.
source "$(dirname "$0")/lib.sh"
require_root
XTAPD="$BUILD_DIR/xtapd"
XTAPCTL="$BUILD_DIR/xtapctl"
COPYTOOL="$SOURCE_DIR/tests/integration/copytool.py"
FLOWGEN="$BUILD_DIR/flowgen"
[[ -x "$XTAPD" && -x "$XTAPCTL" && -x "$FLOWGEN" ]] || fail "build first: $XTAPD / $XTAPCTL / $FLOWGEN missing"
for tool in ssh curl setpriv; do command -v "$tool" >/dev/null || fail "missing $tool: run scripts/bootstrap"; done

TARGET=198.18.1.2
N=200          # matching datagrams sent
METRICS_PORT=19469

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
                                             "source_address": "198.18.20.1", "source_port": 49153}}}},
  "interfaces": [{"name": "r0", "alias": "ge-0/0/0.0", "xdp_mode": "native"},
                 {"name": "r1", "alias": "ge-0/0/1.0", "xdp_mode": "generic"}],
  "delivery": {"cleartext_destinations": ["198.18.20.0/24"]},
  "dataplane": {"criteria": 4096, "rules": 65536, "anchors": 65536, "pin_dir": "$WORK/bpffs/xtap",
                "copy_threads": 2, "copy_coalesce_us": 0},
  "state_dir": "$WORK/state", "audit_log": "$WORK/state/audit.jsonl",
  "control_socket": "$SOCK", "metrics": {"listen": "127.0.0.1:$METRICS_PORT"}
}
J
"$XTAPD" --check-config "$WORK/xtap.json"

note "starting xtapd in $RTR"
spawn_in "$RTR" "$XTAPD" --config "$WORK/xtap.json" >"$WORK/xtapd.log" 2>&1
wait_for 20 grep -q "DTCP over SSH listening" "$WORK/xtapd.log" || { cat "$WORK/xtapd.log"; fail "xtapd did not start"; }
wait_for 10 test -S "$SOCK" || { cat "$WORK/xtapd.log"; fail "no control socket at $SOCK"; }
[[ $(stat -c %a "$SOCK") == 600 ]] || fail "control socket mode is $(stat -c %a "$SOCK"), not 600"

status_json() { in_ns "$RTR" "$XTAPCTL" status --socket "$SOCK" --json; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }

S=$(status_json) || fail "xtapctl status --json failed"
[[ $(echo "$S" | jq_ 'd["counters"]["matched"]') -eq 0 ]] || fail "matched before any criterion: $S"
[[ $(echo "$S" | jq_ 'len(d["interfaces"])') -eq 2 ]] || fail "status lists no interfaces: $S"
# native as configured, or tc on a kernel without XDP metadata (README, Architecture).
MODE0=$(echo "$S" | jq_ 'd["interfaces"][0]["xdp_mode"]')
MODE1=$(echo "$S" | jq_ 'd["interfaces"][1]["xdp_mode"]')
[[ $MODE0/$MODE1 == native/generic || $MODE0/$MODE1 == tc/tc ]] || fail "r0/r1 not native/generic (or tc/tc): $S"
if [[ $MODE0 == tc ]]; then
    grep -q "transit classifier hook: tc" "$WORK/xtapd.log" || fail "xtapd did not log the tc hook"
fi

SEQ=0
dtcp() {  # dtcp LINE...: one signed request over the real OpenSSH client
    SEQ=$((SEQ + 1))
    python3 "$COPYTOOL" sign Juniper "$@" "Seq: $SEQ" |
        in_ns "$MD" timeout 20 ssh -F /dev/null -p 32001 -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -i "$WORK/md_key" \
            -s md1@198.18.20.1 flow-tap-dtcp
}

note "the MD receives with xtapctl receive; tasking one UDP flow to the target"
spawn_in "$MD" "$XTAPCTL" receive --listen 198.18.20.2:50000 --count $N --duration 60 --json \
    >"$WORK/receive.json" 2>"$WORK/receive.err"
# Copies sent before the receiver has bound its socket would be lost at the MD
# (an ASan-built xtapctl takes long enough to start for that to happen).
wait_for 20 grep -q "listening" "$WORK/receive.err" || fail "xtapctl receive did not start: $(cat "$WORK/receive.err")"
R=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Dest-Address: $TARGET" "Dest-Port: 9999" \
    "Protocol: 17" "Flags: STATIC")
echo "$R" | grep -q "^DTCP/0.8 200 OK" || fail "ADD refused: $R"

note "inet sends $N matching datagrams from 32 source ports (and some that do not match)"
in_ns "$NET" python3 - "$TARGET" "$N" <<'PY'
import socket, sys, time
socks = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(32)]
for i in range(int(sys.argv[2])):
    s = socks[i % len(socks)]
    s.sendto(b"x" * 100 + str(i).encode(), (sys.argv[1], 9999))
    s.sendto(b"bystander", (sys.argv[1], 9998))  # another port: no criterion
    if i % 20 == 19:
        time.sleep(0.01)
PY

settled() {
    local s
    s=$(status_json) || return 1
    [[ $(echo "$s" | jq_ 'd["counters"]["sent"] + d["counters"]["dropped"]') -ge $N ]]
}
wait_for 20 settled || { status_json; fail "status never accounted for $N copies"; }
sleep 1
S=$(status_json)
echo "$S" | jq_ 'd["counters"]'
C() { echo "$S" | jq_ "d[\"counters\"][\"$1\"]"; }
[[ $(C matched) -eq $N ]] || fail "matched $(C matched), sent $N matching packets"
[[ $(C cloned) -eq $N ]] || fail "cloned $(C cloned), matched $N"
[[ $(C received) -eq $(C matched) ]] || fail "received $(C received) from AF_XDP, matched $(C matched)"
[[ $(C to_send) -eq $N ]] || fail "to_send $(C to_send), expected $N (one Cdest)"
[[ $(( $(C sent) + $(C dropped) )) -eq $(C to_send) ]] || fail "sent + dropped != to_send"
[[ $(C sent) -eq $N ]] || fail "sent $(C sent) of $N (drops: $(echo "$S" | jq_ 'd["counters"]["dropped_by_reason"]'))"
# Copies in clear over a veth: UDP GSO is accepted, no socket falls back.
echo "sent in UDP GSO messages: $(C sent_in_gso) of $(C sent)"
[[ $(C sent_in_gso) -le $(C sent) ]] || fail "sent_in_gso $(C sent_in_gso) > sent $(C sent)"
[[ $(C gso_fallbacks) -eq 0 ]] || fail "a socket fell back from UDP GSO on a veth route: $(C gso_fallbacks)"
[[ $(echo "$S" | jq_ 'd["clients"][0]["user"]') == md1 ]] || fail "clients: $S"
[[ $(echo "$S" | jq_ 'd["clients"][0]["criteria"]') -eq 1 ]] || fail "md1 should have 1 criterion: $S"
[[ $(echo "$S" | jq_ 'd["cdests"][0]["labels"][0]["cdest_id"]') == cd1 ]] || fail "cdests: $S"
[[ $(echo "$S" | jq_ 'd["cdests"][0]["sent"]') -eq $N ]] || fail "per-Cdest sent: $S"

# Both queues of r1's capture veth carried copies (veth's per-queue XDP counters).
CAP=$(echo "$S" | jq_ 'd["interfaces"][1]["capture"]')
for q in 0 1; do
    P=$(in_ns "$RTR" ethtool -S "$CAP" | awk -v k="rx_queue_${q}_xdp_packets:" '$1 == k {print $2}')
    echo "$CAP queue $q: ${P:-?} copies"
    [[ ${P:-0} -gt 0 ]] || fail "capture queue $q of $CAP carried no copy: $(in_ns "$RTR" ethtool -S "$CAP")"
done

wait_for 20 test -s "$WORK/receive.json" || true
GOT=$(jq_ 'd["copies"]' <"$WORK/receive.json" 2>/dev/null || echo 0)
[[ "$GOT" -eq $N ]] || fail "the MD received $GOT copies, status says $N sent"

note "the readable table"
TABLE=$(in_ns "$RTR" "$XTAPCTL" status --socket "$SOCK")
echo "$TABLE"
echo "$TABLE" | grep -Eq "^  sent +$N " || fail "table does not show $N sent"
echo "$TABLE" | grep -q "cd1 (md1)" || fail "table does not show the Cdest"

note "metrics"
M=$(in_ns "$RTR" curl -sf "http://127.0.0.1:$METRICS_PORT/metrics") || fail "metrics endpoint not serving"
echo "$M" | grep -E "^xtap_(matched_packets|copies_sent|copies_to_send)_total "
echo "$M" | grep -qx "xtap_matched_packets_total $N" || fail "metrics: matched"
echo "$M" | grep -qx "xtap_copies_sent_total $N" || fail "metrics: sent"
echo "$M" | grep -qx "xtap_copies_to_send_total $N" || fail "metrics: to send"
echo "$M" | grep -qx 'xtap_copies_dropped_total{reason="tunnel_down"} 0' || fail "metrics: drops"
echo "$M" | grep -q "md1\|cd1" && fail "metrics name a client or a Cdest"
in_ns "$RTR" curl -s -o /dev/null -w "%{http_code}" "http://127.0.0.1:$METRICS_PORT/" | grep -qx 404 ||
    fail "metrics: / should be 404"

note "a non-root peer is refused"
PUB=$(mktemp -d /tmp/xtap-ctl.XXXXXX)
cp "$XTAPCTL" "$PUB/xtapctl" && chmod 755 "$PUB" "$PUB/xtapctl"
# 1: the socket file's mode (0600, and the work directory is root's).
OUT=$(in_ns "$RTR" setpriv --reuid=65534 --regid=65534 --clear-groups "$PUB/xtapctl" status --socket "$SOCK" 2>&1) &&
    { rm -rf "$PUB"; fail "nobody read the status: $OUT"; }
echo "nobody (file mode): $OUT"
echo "$OUT" | grep -q "permission denied" || { rm -rf "$PUB"; fail "expected permission denied: $OUT"; }
# 2: SO_PEERCRED, with the file mode opened up.
chmod 711 "$WORK" "$WORK/run"
chmod 666 "$SOCK"
OUT=$(in_ns "$RTR" setpriv --reuid=65534 --regid=65534 --clear-groups "$PUB/xtapctl" status --socket "$SOCK" 2>&1) &&
    { rm -rf "$PUB"; fail "nobody read the status through SO_PEERCRED: $OUT"; }
chmod 600 "$SOCK"
chmod 700 "$WORK" "$WORK/run"
rm -rf "$PUB"
echo "nobody (peer check): $OUT"
echo "$OUT" | grep -q "serves uid 0 only" || fail "expected the SO_PEERCRED refusal: $OUT"
grep -q "refused a peer with uid 65534" "$WORK/xtapd.log" || fail "the refusal is not logged"

note "a flood: every cloned copy is received or lost at a named stage"
# flowgen sends as fast as it can for 1 s: more than the copy path takes,
# so copies are lost on the way. Once settled: matched = excluded + gated
# (the copy gate: a copy thread starved for dataplane.consumer_timeout_ms) +
# cloned + clone_failed (veth ring full is one reason), cloned = received +
# no socket + AF_XDP drops.
R1_MAC=$(in_ns "$RTR" cat /sys/class/net/r1/address)
in_ns "$NET" timeout 30 "$FLOWGEN" -i i0 --dst-mac "$R1_MAC" --src 198.18.2.2 --dst $TARGET \
    --dport 9999 --size 64 --duration 1 >"$WORK/flood.json" || fail "flowgen failed"
cat "$WORK/flood.json"
PREV=-1
for _ in $(seq 1 20); do  # settled: received stops moving
    S=$(status_json)
    NOW=$(C received)
    [[ $NOW -eq $PREV ]] && break
    PREV=$NOW
    sleep 0.5
done
echo "$S" | jq_ '{k: d["counters"][k] for k in ("matched", "gate_no_consumer", "gate_budget", "cloned", "clone_failed", "capture_veth_dropped",
    "capture_no_socket", "xsk", "received", "capture_lost", "capture_unaccounted")}'
[[ $(C matched) -gt $N ]] || fail "the flood matched nothing"
TOLERANCE=$(( $(C matched) / 1000 + 16 ))  # 0.1%: counters read between two stages' updates
within() { local gap=$1; [[ ${gap#-} -le $TOLERANCE ]]; }
# Selected = cloned + failed clones; the veth's full ring is one reason a clone fails.
GAP=$(( $(C matched) - $(C excluded) - $(C gate_no_consumer) - $(C gate_budget) - $(C cloned) - $(C clone_failed) ))
within $GAP || fail "matched $(C matched) != excluded + gated + cloned + clone_failed (gap $GAP)"
[[ $(C gate_budget) -eq 0 ]] || fail "copies over a budget that is not set: $(C gate_budget)"
[[ $(C capture_veth_dropped) -le $(C clone_failed) ]] ||
    fail "capture_veth_dropped $(C capture_veth_dropped) > clone_failed $(C clone_failed)"
LOST=$(echo "$S" | jq_ 'd["counters"]["capture_no_socket"] + d["counters"]["xsk"]["rx_dropped"] + d["counters"]["xsk"]["rx_ring_full"]')
[[ $LOST -eq $(C capture_lost) ]] || fail "capture_lost $(C capture_lost), stages add up to $LOST"
GAP=$(( $(C cloned) - $(C received) - LOST ))
within $GAP || fail "cloned $(C cloned) != received $(C received) + lost $LOST (gap $GAP)"
[[ $(C capture_unaccounted) -eq $GAP ]] || fail "capture_unaccounted $(C capture_unaccounted), gap $GAP"
[[ $(echo "$S" | jq_ '"capture_veth_dropped" in d["interfaces"][1]') == True ]] ||
    fail "no per-interface capture_veth_dropped: $S"
M=$(in_ns "$RTR" curl -sf "http://127.0.0.1:$METRICS_PORT/metrics") || fail "metrics endpoint not serving"
echo "$M" | grep -qE "^xtap_capture_veth_dropped_total [0-9]+$" || fail "metrics: no capture veth drops"
in_ns "$RTR" "$XTAPCTL" status --socket "$SOCK" | grep -q "veth drops" || fail "table: no veth drops row"

note "flush"
in_ns "$RTR" "$XTAPCTL" flush --socket "$SOCK" && fail "flush without --yes must refuse"
FLUSH=$(in_ns "$RTR" "$XTAPCTL" flush --socket "$SOCK" --yes 2>&1) || fail "flush --yes: $FLUSH"
echo "flush --yes: $FLUSH"
echo "$FLUSH" | grep -q '"flushed":1' || fail "flush should drop the one criterion: $FLUSH"
[[ $(status_json | jq_ 'd["criteria"]') -eq 0 ]] || fail "criteria left after flush"
grep -q '"event":"flush"' "$WORK/state/audit.jsonl" || fail "flush not audited"

note "no target address in status, metrics or xtapd's log"
for what in "status:$S" "table:$TABLE" "metrics:$M" "log:$(cat "$WORK/xtapd.log")"; do
    [[ "$what" == *"$TARGET"* ]] && fail "the target address appears in ${what%%:*}"
done

note "SIGTERM removes the control socket"
kill -TERM "${PIDS[0]}"
wait_for 20 bash -c "! kill -0 ${PIDS[0]} 2>/dev/null" || fail "xtapd did not stop on SIGTERM"
[[ -e "$SOCK" ]] && fail "control socket left behind"
grep "stopping:" "$WORK/xtapd.log" | grep -q "$TARGET" && fail "stop log names the target"
echo "PASS: xtapd status and metrics"
