#!/usr/bin/env bash
# The copy gate (bpf/include/xtap_abi.h, docs/config.md): xtap makes no copy
# nobody will read, and none beyond the operator's copy budget.
#   tgt (target 198.18.1.2) -- r0 [rtr: xtapd] r1 -- inet
#                                              r2 -- md (cleartext destination)
# 1. xtapd held with SIGSTOP: once dataplane.consumer_timeout_ms has passed,
#    every selected packet is counted as gate_no_consumer and none is cloned;
#    transit traffic reaches the target all the while; after SIGCONT the copies
#    flow again, each one delivered.
# 2. xtapd restarted with dataplane.copy_budget_pps, then with
#    copy_budget_bps: tc clones at most the budget (plus its burst), counts
#    the rest as gate_budget, and the MD gets exactly the copies that were
#    cloned.
# 3. Under the budget, two flows at once, Priority 1 and Priority 5: the
#    budget's reserve keeps the copies for the Priority 1 criterion.
# 4. Under the budget, fragmented datagrams at seven times it: the MD gets
#    each datagram whole or not at all.
# Every stage adds up: matched = gated + cloned; and the MD's LIST counts the
# gated copies of its criterion as dropped (X-XTap-Dropped-Packets), across
# the restart.
source "$(dirname "$0")/lib.sh"
require_root
XTAPD="$BUILD_DIR/xtapd"
XTAPCTL="$BUILD_DIR/xtapctl"
FLOWGEN="$BUILD_DIR/flowgen"
[[ -x "$XTAPD" && -x "$XTAPCTL" && -x "$FLOWGEN" ]] || fail "build first: $XTAPD / $XTAPCTL / $FLOWGEN missing"
command -v ssh >/dev/null || fail "missing ssh: run scripts/bootstrap"

TARGET=198.18.1.2
TIMEOUT_MS=250

router_lab
private_bpffs
ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/md_key"
SOCK="$WORK/run/control.sock"
config() {  # config EXTRA_DATAPLANE_JSON
    cat <<J
{
  "dtcp": {"listen": ["198.18.20.1:32001"], "host_key": "$WORK/host_key"},
  "users": {"md1": {"authorized_keys": ["$(cat "$WORK/md_key.pub")"],
                    "destinations": {"cd1": {"address": "198.18.20.2", "port": 50000,
                                             "source_address": "198.18.20.1", "source_port": 49153}}}},
  "interfaces": [{"name": "r1", "xdp_mode": "native"}],
  "delivery": {"cleartext_destinations": ["198.18.20.0/24"]},
  "dataplane": {"criteria": 4096, "rules": 65536, "anchors": 65536, "pin_dir": "$WORK/bpffs/xtap",
                "consumer_timeout_ms": $TIMEOUT_MS $1},
  "state_dir": "$WORK/state", "audit_log": "$WORK/state/audit.jsonl", "control_socket": "$SOCK"
}
J
}
config "" >"$WORK/xtap.json"
"$XTAPD" --check-config "$WORK/xtap.json"

start_xtapd() {  # start_xtapd CONFIG
    : >"$WORK/xtapd.log"
    spawn_in "$RTR" "$XTAPD" --config "$1" >"$WORK/xtapd.log" 2>&1
    XTAPD_PID=${PIDS[-1]}
    wait_for 20 grep -q "DTCP over SSH listening" "$WORK/xtapd.log" || { cat "$WORK/xtapd.log"; fail "xtapd did not start"; }
    wait_for 10 test -S "$SOCK" || fail "no control socket"
}
stop_xtapd() {
    kill -TERM "$XTAPD_PID"
    wait_for 20 bash -c "! kill -0 $XTAPD_PID 2>/dev/null" || fail "xtapd did not stop"
}
status_json() { in_ns "$RTR" "$XTAPCTL" status --socket "$SOCK" --json; }
jq_() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1], {'d': d}))" "$1"; }
C() { echo "$S" | jq_ "d[\"counters\"][\"$1\"]"; }
target_rx() { in_ns "$TGT" cat /sys/class/net/t0/statistics/rx_packets; }
R1_MAC=$(in_ns "$RTR" cat /sys/class/net/r1/address)
send() {  # send PPS SECONDS: the target's flow from inet; prints packets sent
    in_ns "$NET" timeout 30 "$FLOWGEN" -i i0 --dst-mac "$R1_MAC" --src 198.18.2.2 --dst $TARGET \
        --dport 9999 --size 128 --threads 1 --pps "$1" --duration "$2" |
        python3 -c 'import json,sys; print(json.load(sys.stdin)["sent"])'
}
receive() {  # receive [ARGS]: xtapctl receive at the MD, in the background, until received()
    : >"$WORK/receive.err"
    spawn_in "$MD" "$XTAPCTL" receive --listen 198.18.20.2:50000 --duration 60 --json "$@" \
        >"$WORK/receive.json" 2>"$WORK/receive.err"
    RECEIVER=${PIDS[-1]}
    wait_for 20 grep -q "listening" "$WORK/receive.err" || fail "xtapctl receive did not start"
}
received() {  # stops the receiver (SIGINT: it prints its summary); prints its count
    sleep 0.5  # the last copies sent are still on their way
    kill -INT "$RECEIVER" 2>/dev/null || true
    wait "$RECEIVER" || true
    jq_ 'd["copies"]' <"$WORK/receive.json"
}
list_dropped() {  # the criterion's X-XTap-Dropped-Packets, as LIST reports it to the MD
    in_ns "$MD" timeout 30 "$XTAPCTL" dtcp list 198.18.20.1 -p 32001 -l md1 -i "$WORK/md_key" \
        --insecure-host-key --detail stats 2>&1 | tr -d '\r' |
        awk -F': ' 'toupper($1) == "X-XTAP-DROPPED-PACKETS" {print $2}'
}
settle() {  # until the copy path's counters stop moving
    local prev=-1 now
    for _ in $(seq 1 20); do
        S=$(status_json)
        now=$(( $(C received) + $(C cloned) ))
        [[ $now -eq $prev ]] && return 0
        prev=$now
        sleep 0.3
    done
}

note "xtapd with dataplane.consumer_timeout_ms $TIMEOUT_MS; tasking the target's UDP flow"
start_xtapd "$WORK/xtap.json"
R=$(in_ns "$MD" timeout 30 "$XTAPCTL" dtcp add 198.18.20.1 -p 32001 -l md1 -i "$WORK/md_key" \
    --insecure-host-key --cdest-id cd1 --dest-address $TARGET --dest-port 9999 --protocol 17 --static 2>&1)
echo "$R" | grep -q "200 OK" || fail "ADD refused: $R"

note "running: every selected packet is cloned and delivered"
receive
SENT=$(send 2000 0.25)
settle
echo "sent $SENT; $(echo "$S" | jq_ '{k: d["counters"][k] for k in ("matched", "gate_no_consumer", "gate_budget", "cloned", "sent")}')"
GOT=$(received)
[[ $(C matched) -eq $SENT && $(C cloned) -eq $SENT && $(C sent) -eq $SENT ]] ||
    fail "matched $(C matched), cloned $(C cloned), sent $(C sent) of $SENT"
[[ $(C gate_no_consumer) -eq 0 && $(C gate_budget) -eq 0 ]] || fail "the gate held copies back from a live xtapd"
[[ $GOT -eq $SENT ]] || fail "the MD received $GOT of $SENT copies"
BASE_MATCHED=$(C matched) BASE_CLONED=$(C cloned) BASE_SENT=$(C sent)

note "xtapd hung (SIGSTOP): after ${TIMEOUT_MS} ms no copy is made, transit goes on"
kill -STOP "$XTAPD_PID"
sleep $(python3 -c "print(2 * $TIMEOUT_MS / 1000)")
RX0=$(target_rx)
HUNG=$(send 2000 1)
sleep 0.3
RX1=$(target_rx)
kill -CONT "$XTAPD_PID"
echo "sent $HUNG while xtapd was stopped; the target received $((RX1 - RX0)) packets"
[[ $((RX1 - RX0)) -ge $HUNG ]] || fail "transit lost packets while xtapd was stopped: $((RX1 - RX0)) of $HUNG"
settle
echo "$S" | jq_ '{k: d["counters"][k] for k in ("matched", "gate_no_consumer", "cloned", "received", "sent")}'
[[ $(( $(C matched) - BASE_MATCHED )) -eq $HUNG ]] || fail "matched $(( $(C matched) - BASE_MATCHED )) of $HUNG"
[[ $(C gate_no_consumer) -eq $HUNG ]] || fail "gate_no_consumer $(C gate_no_consumer), $HUNG selected while stopped"
[[ $(C cloned) -eq $BASE_CLONED ]] || fail "$(( $(C cloned) - BASE_CLONED )) copies cloned for a stopped xtapd"
in_ns "$RTR" "$XTAPCTL" status --socket "$SOCK" | grep -E "^  not cloned +$HUNG +copy gate: no live copy thread $HUNG" ||
    fail "the status table does not show the gated copies"

note "resumed (SIGCONT): copies flow again"
sleep 0.3  # a copy thread wakes within its 100 ms poll timeout and moves the deadline on
receive
AGAIN=$(send 2000 0.25)
settle
GOT=$(received)
[[ $(( $(C cloned) - BASE_CLONED )) -eq $AGAIN ]] || fail "cloned $(( $(C cloned) - BASE_CLONED )) of $AGAIN after SIGCONT"
[[ $(( $(C sent) - BASE_SENT )) -eq $AGAIN && $GOT -eq $AGAIN ]] || fail "sent $(( $(C sent) - BASE_SENT )), MD got $GOT of $AGAIN"
[[ $(C gate_no_consumer) -eq $HUNG ]] || fail "copies gated after SIGCONT"
[[ $(C matched) -eq $(( $(C gate_no_consumer) + $(C cloned) )) ]] || fail "matched != gated + cloned"
# The MD sees them too: its criterion's LIST counts them as dropped.
DROPPED=$(list_dropped)
echo "LIST: X-XTap-Dropped-Packets: $DROPPED"
[[ "$DROPPED" == "$HUNG" ]] || fail "LIST reports $DROPPED dropped, the gate refused $HUNG"
stop_xtapd

# The flow's frames are 128 B: IP packets of 114 B, 912 bits. Either budget
# lets 100 copies a second through, and a burst of 90 ms: 10 at once.
DROPPED_BEFORE=$HUNG
for budget in '"copy_budget_pps": 100' '"copy_budget_bps": 91200'; do
    note "restarted with a copy budget ($budget, bursts of 90 ms)"
    config ", $budget, \"copy_budget_burst_us\": 90000" >"$WORK/xtap-budget.json"
    start_xtapd "$WORK/xtap-budget.json"
    receive
    OVER=$(send 2000 1)
    settle
    echo "sent $OVER; $(echo "$S" | jq_ '{k: d["counters"][k] for k in ("matched", "gate_budget", "cloned", "sent")}')"
    # In 1 s: the burst of 10 and 100 a second, with the flowgen run's own slack.
    [[ $(C matched) -eq $OVER ]] || fail "matched $(C matched) of $OVER"
    [[ $(C cloned) -ge 100 && $(C cloned) -le 150 ]] || fail "cloned $(C cloned): the budget allows about 110"
    [[ $(( $(C gate_budget) + $(C cloned) )) -eq $OVER ]] || fail "gate_budget $(C gate_budget) + cloned $(C cloned) != $OVER"
    [[ $(C gate_no_consumer) -eq 0 ]] || fail "gate_no_consumer $(C gate_no_consumer) for a live xtapd"
    GOT=$(received)
    [[ $GOT -eq $(C cloned) && $(C sent) -eq $(C cloned) ]] || fail "the MD got $GOT, sent $(C sent), cloned $(C cloned)"
    in_ns "$RTR" "$XTAPCTL" status --socket "$SOCK" | grep "not cloned"
    # The criterion came back from the state file with its drops; the budget's add to them.
    DROPPED=$(list_dropped)
    echo "LIST: X-XTap-Dropped-Packets: $DROPPED"
    [[ "$DROPPED" == "$(( DROPPED_BEFORE + $(C gate_budget) ))" ]] ||
        fail "LIST reports $DROPPED dropped, expected $DROPPED_BEFORE (earlier) + $(C gate_budget) (budget)"
    DROPPED_BEFORE=$DROPPED
    stop_xtapd
done
note "the budget keeps its reserve for Priority 1: two flows, Priority 1 and Priority 5"
config ', "copy_budget_pps": 100, "copy_budget_burst_us": 90000' >"$WORK/xtap-budget.json"
start_xtapd "$WORK/xtap-budget.json"
R=$(in_ns "$MD" timeout 30 "$XTAPCTL" dtcp add 198.18.20.1 -p 32001 -l md1 -i "$WORK/md_key" \
    --insecure-host-key --cdest-id cd1 --dest-address $TARGET --dest-port 9998 --protocol 17 \
    --priority 5 --static 2>&1)
echo "$R" | grep -q "200 OK" || fail "ADD (Priority 5) refused: $R"
per_criterion() {  # "ID MATCHED DROPPED" per criterion, from the MD's LIST
    in_ns "$MD" timeout 30 "$XTAPCTL" dtcp list 198.18.20.1 -p 32001 -l md1 -i "$WORK/md_key" \
        --insecure-host-key --detail stats 2>&1 | tr -d '\r' | awk -F': ' '
        toupper($1) == "CRITERIA-ID" {id = $2}
        toupper($1) == "MATCHING-PACKETS" {m[id] = $2}
        toupper($1) == "X-XTAP-DROPPED-PACKETS" {d[id] = $2}
        END {for (i in m) print i, m[i], d[i]}' | sort -n
}
BEFORE=$(per_criterion)
echo "before: $BEFORE"
receive
# Both flows at once, each 10 times the budget, for 2 s: whichever flowgen
# starts first has the budget alone for a moment, a small share of 2 s.
in_ns "$NET" timeout 30 "$FLOWGEN" -i i0 --dst-mac "$R1_MAC" --src 198.18.2.2 --dst $TARGET \
    --dport 9998 --size 128 --threads 1 --pps 1000 --duration 2 >/dev/null &
MINOR_SENDER=$!
send 1000 2 >/dev/null
wait "$MINOR_SENDER" || fail "flowgen (Priority 5 flow) failed"
settle
GOT=$(received)
AFTER=$(per_criterion)
echo "after: $AFTER"
copies_of() {  # copies_of ID: matched - dropped since BEFORE
    python3 - "$1" "$BEFORE" "$AFTER" <<'PY'
import sys
want, before, after = sys.argv[1], sys.argv[2], sys.argv[3]
def table(text):
    return {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in text.splitlines() if l.strip()}
b, a = table(before), table(after)
m0, d0 = b.get(want, (0, 0))
m1, d1 = a[want]
print((m1 - m0) - (d1 - d0))
PY
}
IMPORTANT=$(copies_of 1) MINOR=$(copies_of 2)
echo "copies this phase: Priority 1: $IMPORTANT, Priority 5: $MINOR; the MD got $GOT"
# 2 s at 100 a second and 10 at once: about 210 in all; the Priority 5 flow
# gets what is left below three quarters of the burst, which the other flow
# alone keeps full.
[[ $IMPORTANT -ge 160 ]] || fail "Priority 1 got $IMPORTANT copies of about 200"
[[ $MINOR -le $(( IMPORTANT / 4 )) ]] || fail "Priority 5 got $MINOR copies against $IMPORTANT for Priority 1"
[[ $GOT -eq $(( IMPORTANT + MINOR )) ]] || fail "the MD got $GOT, the criteria account for $(( IMPORTANT + MINOR ))"

note "under the budget a fragmented datagram reaches the MD whole or not at all"
# 300 datagrams of three fragments (UDP to the target's port 9999, the
# Priority 1 criterion), one every 3 ms: 900 fragments at about 700 a second
# against a budget of 100 copies a second.
I0_MAC=$(in_ns "$NET" cat /sys/class/net/i0/address)
S=$(status_json)
M0=$(C matched) B0=$(C gate_budget) CL0=$(C cloned)
receive --pcap "$WORK/fragments.pcap"
in_ns "$NET" python3 "$SOURCE_DIR/tests/integration/send_fragments.py" i0 "$I0_MAC" "$R1_MAC" \
    198.18.2.2 $TARGET 9999 1000 123 300 0.003 || fail "send_fragments.py failed"
settle
GOT=$(received)
D=$(python3 "$SOURCE_DIR/tests/integration/pcaptool.py" datagrams "$WORK/fragments.pcap")
FRAG_MATCHED=$(( $(C matched) - M0 )) FRAG_GATED=$(( $(C gate_budget) - B0 )) FRAG_CLONED=$(( $(C cloned) - CL0 ))
echo "matched $FRAG_MATCHED, over the budget $FRAG_GATED, cloned $FRAG_CLONED; the MD got $GOT copies: $D"
[[ $FRAG_MATCHED -eq 900 ]] || fail "matched $FRAG_MATCHED of 900 fragments"
[[ $(( FRAG_GATED + FRAG_CLONED )) -eq 900 ]] || fail "over the budget $FRAG_GATED + cloned $FRAG_CLONED != 900"
[[ $GOT -eq $FRAG_CLONED ]] || fail "the MD got $GOT of $FRAG_CLONED copies"
[[ $(jq_ 'd["partial"]' <<<"$D") -eq 0 ]] || fail "datagrams reached the MD in part: $D"
WHOLE=$(jq_ 'd["whole"]' <<<"$D")
# About 1 s at 100 copies a second, 3 copies a datagram: some 30 to 50 whole.
[[ $FRAG_GATED -gt 0 ]] || fail "the budget refused none: the test sent too slowly to test it"
[[ $WHOLE -ge 20 && $(( 3 * WHOLE )) -eq $GOT ]] || fail "$WHOLE whole datagrams for $GOT copies"
stop_xtapd
grep "$TARGET" "$WORK/xtapd.log" && fail "xtapd's log names the target"
echo "PASS: the copy gate"
