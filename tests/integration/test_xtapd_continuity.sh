#!/usr/bin/env bash
# Continuity across xtapd restarts (issue 6):
#   tgt (target 198.18.1.2) -- r0 [rtr: xtapd] r1 -- net (198.18.2.2)
#                                               r2 -- md (mediation device)
# The MD tasks a Static criterion on the target and one with a 4 s
# Timeout-Total; a steady ping (100/s) runs through the router; xtapd is
# killed with -9 and started again. Checked: transit lost nothing; the
# criterion is restored under the same Criteria-ID in its data-plane slot;
# copies resume within 2 s; LIST's counter includes the packets of the gap
# (>= every packet sent); the audit log reports the gap and the copies
# missed; the short criterion, expired during the gap, is audited as timed
# out. Then SIGTERM and a restart lose nothing, a new ADD gets a fresh
# Criteria-ID, an unusable state file stops the start unless --discard-state,
# after which the client gets 599; xtapctl flush drops everything (audited).
source "$(dirname "$0")/lib.sh"
require_root
XTAPD="$BUILD_DIR/xtapd"
XTAPCTL="$BUILD_DIR/xtapctl"
COPYTOOL="$SOURCE_DIR/tests/integration/copytool.py"
[[ -x "$XTAPD" && -x "$XTAPCTL" ]] || fail "build first: $XTAPD or $XTAPCTL missing"
command -v ssh >/dev/null || fail "OpenSSH client missing: run scripts/bootstrap"

router_lab
# One bpffs instance for every xtapd run: the pins outlive the process.
private_bpffs

ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/md_key"
cat >"$WORK/xtap.json" <<J
{
  "dtcp": {"listen": ["198.18.20.1:32001"], "host_key": "$WORK/host_key"},
  "users": {"md1": {"authorized_keys": ["$(cat "$WORK/md_key.pub")"], "seq_reset_per_connection": false,
                    "destinations": {"cd1": {"address": "198.18.20.2", "port": 50000,
                                             "source_address": "198.18.20.1", "source_port": 49153}}}},
  "interfaces": [{"name": "r0", "xdp_mode": "native"}, {"name": "r1", "xdp_mode": "generic"}],
  "delivery": {"cleartext_destinations": ["198.18.20.0/24"]},
  "dataplane": {"criteria": 1024, "rules": 16384, "anchors": 16384, "pin_dir": "$WORK/bpffs/xtap"},
  "state_dir": "$WORK/state", "audit_log": "$WORK/state/audit.jsonl", "control_socket": "$WORK/control.sock"
}
J
AUDIT="$WORK/state/audit.jsonl"
RUN=0
XTAPD_PID=""
start_xtapd() {  # start_xtapd [ARGS...]: a new run, its log in $WORK/xtapd.N.log
    RUN=$((RUN + 1))
    LOG="$WORK/xtapd.$RUN.log"
    spawn_in "$RTR" "$XTAPD" --config "$WORK/xtap.json" "$@" >"$LOG" 2>&1
    XTAPD_PID=${PIDS[-1]}
}
wait_ready() {
    wait_for 60 grep -q "DTCP over SSH listening" "$LOG" || { cat "$LOG"; fail "xtapd run $RUN did not start"; }
}
stop_xtapd() {  # stop_xtapd SIGNAL
    kill "-$1" "$XTAPD_PID"
    wait_for 30 bash -c "! kill -0 $XTAPD_PID 2>/dev/null" || fail "xtapd did not stop on $1"
}

echo 0 >"$WORK/seq"
dtcp() {  # dtcp LINE...: one signed request over the real OpenSSH client
    # The Seq lives in a file: $(dtcp ...) runs in a subshell. It grows across
    # connections and restarts (a per-user window, saved in the state file).
    local seq=$(($(cat "$WORK/seq") + 1))
    echo "$seq" >"$WORK/seq"
    python3 "$COPYTOOL" sign Juniper "$@" "Seq: $seq" |
        in_ns "$MD" timeout 20 ssh -F /dev/null -p 32001 -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -i "$WORK/md_key" \
            -s md1@198.18.20.1 flow-tap-dtcp
}
list_field() {  # list_field LIST_OUTPUT FIELD: the field's value in the (only) entry
    echo "$1" | awk -F': ' -v f="$2" '$1 == f {print $2; exit}' | tr -d '\r'
}
copies() {  # records in the receiver's file
    python3 - "$WORK/copies.bin" <<'PY'
import struct, sys
n = 0
with open(sys.argv[1], "rb") as f:
    while True:
        h = f.read(4)
        if len(h) < 4: break
        (size,) = struct.unpack("!I", h)
        if len(f.read(size)) < size: break
        n += 1
print(n)
PY
}
copies_above() { [[ $(copies) -gt $1 ]]; }
audit_events() {  # audit_events EVENT: the records of that event, one JSON per line
    grep "\"event\":\"$1\"" "$AUDIT" || true
}

note "xtapd run 1; tasking"
start_xtapd
wait_ready
spawn_in "$MD" python3 "$COPYTOOL" receive 198.18.20.2 50000 "$WORK/copies.bin" 300 >"$WORK/receiver.out"
sleep 0.5
A=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Source-Address: 198.18.1.2" "Flags: STATIC")
echo "$A" | grep -q "^DTCP/0.8 200 OK" || fail "ADD refused: $A"
ID1=$(list_field "$A" CRITERIA-ID)
B=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Dest-Address: 198.18.9.9" "Timeout-Total: 4")
echo "$B" | grep -q "^DTCP/0.8 200 OK" || fail "second ADD refused: $B"
ID2=$(list_field "$B" CRITERIA-ID)
echo "Criteria-IDs: $ID1 (static), $ID2 (Timeout-Total 4 s)"
[[ -n "$ID1" && -n "$ID2" && "$ID1" != "$ID2" ]] || fail "no Criteria-IDs in the ADD replies"
[[ $(stat -c %a "$WORK/state/state.json") == 600 ]] || fail "state file mode is not 0600"
[[ $(stat -c %a "$WORK/state/state.journal") == 600 ]] || fail "state journal mode is not 0600"
# Acknowledged means durable: both criteria are in the state file or in the
# journal that continues it (compaction rewrites the file only now and then).
python3 - "$WORK/state/state.json" "$WORK/state/state.journal" <<'PY' || fail "state file and journal do not hold both criteria"
import json, sys
d = json.load(open(sys.argv[1]))
assert d['format'] == 'xtap-state'
ids = {(c['user'], c['id']) for c in d['store']['criteria']}
lines = open(sys.argv[2]).read().splitlines()
assert json.loads(lines[0])['gen'] == d['saved']['journal_gen'], 'journal of another generation'
for line in lines[1:]:
    r = json.loads(line)
    if r['op'] == 'put': ids.add((r['criterion']['user'], r['criterion']['id']))
    if r['op'] == 'del': ids.discard((r['user'], r['id']))
assert len(ids) == 2, ids
PY

note "steady traffic (ping, 200/s) through the router; kill -9 xtapd; restart"
PINGS=4000  # 20 s at 200/s: the kill, the gap and the restart take about 11 s
spawn_in "$TGT" ping -q -c "$PINGS" -i 0.005 -W 5 198.18.2.2 >"$WORK/ping.out" 2>&1
PING_PID=${PIDS[-1]}
wait_for 10 copies_above 100 || fail "no copies before the kill"
sleep 1
stop_xtapd 9
KILLED_AT=$(copies)
classifier_on "$RTR" r0 || fail "the classifier should stay attached after kill -9"
sleep 5  # the gap: longer than the second criterion's Timeout-Total
GAP_COPIES=$(copies)
start_xtapd
T0=$(date +%s.%N)
wait_ready
grep -q "^info restart: " "$LOG" || { cat "$LOG"; fail "no restart line in the log"; }
grep "restart: " "$LOG"
# The ADDs were never compacted into the state file: the journal brought them back.
grep -q "state journal: [0-9]* changes since the last save applied" "$LOG" ||
    fail "the restart did not replay the state journal"
grep -q "198.18.1.2" "$LOG" && fail "a target address in xtapd's log"
RESTORED_AT=$(copies)
wait_for 2 copies_above "$RESTORED_AT" ||
    fail "copies did not resume within 2 s of the restore"
T1=$(date +%s.%N)
echo "copies: $KILLED_AT at the kill, $GAP_COPIES after the gap (none expected), resumed $(python3 -c "print(f'{$T1 - $T0:.2f}')") s after xtapd started"
[[ $((GAP_COPIES - KILLED_AT)) -le 5 ]] || fail "copies during the gap with no xtapd: $((GAP_COPIES - KILLED_AT))"

wait "$PING_PID" || true
cat "$WORK/ping.out"
SENT=$(awk '/packets transmitted/ {print $1}' "$WORK/ping.out")
GOT=$(awk '/packets transmitted/ {print $4}' "$WORK/ping.out")
[[ "$SENT" -eq "$PINGS" ]] || fail "ping sent $SENT of $PINGS"
[[ "$GOT" -eq "$SENT" ]] || fail "transit traffic lost across kill -9 and restart: $GOT of $SENT echo replies"

note "LIST: the same Criteria-ID, counters that include the gap"
sleep 2  # copies in flight and the tick that expires the short criterion
L=$(dtcp "LIST DTCP/0.8" "Csource-ID: md1" "Flags: Both")
echo "$L" | grep -E "^(CRITERIA-ID|MATCHING-PACKETS)"
echo "$L" | grep -q "^CRITERIA-ID: $ID1" || fail "criterion $ID1 not restored: $L"
echo "$L" | grep -q "^CRITERIA-ID: $ID2" && fail "criterion $ID2 outlived its Timeout-Total during the gap"
MATCHED=$(list_field "$L" MATCHING-PACKETS)
echo "$L" | grep -q "198.18.1.2" || fail "LIST does not show the restored criterion's match: $L"
RECEIVED=$(copies)
RESTART=$(audit_events restart | tail -1)
echo "audit: $RESTART"
MISSED=$(python3 -c "import json,sys; print(json.loads(sys.argv[1])['copies_missed_packets'])" "$RESTART")
echo "echo requests sent: $SENT; MATCHING-PACKETS: $MATCHED; copies received: $RECEIVED; reported missed: $MISSED"
[[ "$MATCHED" -ge "$SENT" ]] || fail "counter $MATCHED < $SENT packets sent to the target: the gap was not counted"
[[ "$MISSED" -gt 0 ]] || fail "the gap's missed copies are not reported"
# Nothing hidden: every counted packet was copied or reported missed.
[[ $((RECEIVED + MISSED)) -ge "$MATCHED" ]] || fail "copies $RECEIVED + missed $MISSED < matched $MATCHED"
python3 -c "import json,sys; r=json.loads(sys.argv[1]); assert r['restored']==2 and r['resumed_in_place']==2, r" "$RESTART" ||
    fail "the restart record does not show both criteria taken over in place"
audit_events criterion | grep "\"criteria_id\":$ID2" | grep -q timed-out || fail "criterion $ID2 not audited as timed out"

note "SIGTERM and restart: nothing lost; a new ADD gets a new Criteria-ID"
stop_xtapd TERM
start_xtapd
wait_ready
L2=$(dtcp "LIST DTCP/0.8" "Csource-ID: md1" "Flags: Both")
echo "$L2" | grep -q "^CRITERIA-ID: $ID1" || fail "criterion $ID1 lost over SIGTERM: $L2"
MATCHED2=$(list_field "$L2" MATCHING-PACKETS)
[[ "$MATCHED2" -ge "$MATCHED" ]] || fail "counter went back over SIGTERM: $MATCHED2 < $MATCHED"
C=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Dest-Address: 198.18.9.10" "Flags: STATIC")
ID3=$(list_field "$C" CRITERIA-ID)
echo "new Criteria-ID: $ID3"
[[ "$ID3" -gt "$ID1" && "$ID3" -gt "$ID2" ]] || fail "Criteria-ID $ID3 reused (had $ID1, $ID2)"
# A replayed Seq stays refused after the restart (the window was saved).
R=$(python3 "$COPYTOOL" sign Juniper "LIST DTCP/0.8" "Csource-ID: md1" "Seq: 1" |
    in_ns "$MD" timeout 20 ssh -F /dev/null -p 32001 -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null \
        -o BatchMode=yes -o LogLevel=ERROR -i "$WORK/md_key" -s md1@198.18.20.1 flow-tap-dtcp || true)
echo "$R" | grep -q "^DTCP/0.8 200" && fail "a replayed Seq was accepted after the restart"

note "an unusable state file stops the start; --discard-state starts empty and owes 599"
stop_xtapd TERM
echo '{"format": "xtap-state", "version": 1, "saved": {' >"$WORK/state/state.json"
start_xtapd
wait_for 30 bash -c "! kill -0 $XTAPD_PID 2>/dev/null" || fail "xtapd started on a corrupt state file"
cat "$LOG"
grep -q "state file $WORK/state/state.json is unusable" "$LOG" || fail "no clear error naming the state file"
start_xtapd --discard-state
wait_ready
ls "$WORK/state" | grep -q "state.json.unusable" || fail "the unusable state file was not kept aside"
# Restarted again before md1 connects: the 599 is still owed (state file).
stop_xtapd TERM
start_xtapd
wait_ready
N=$(dtcp "NOOP DTCP/0.8" "Csource-ID: md1")
echo "$N" | grep -Eq "^DTCP/0\.[0-9] 599 " || fail "no 599 on the first connection after a start without criteria: $N"
echo "$N" | grep -qi "^Alert-Info:" || fail "599 without Alert-Info: $N"
L3=$(dtcp "LIST DTCP/0.8" "Csource-ID: md1" "Flags: Both")
echo "$L3" | grep -q "^CRITERIA-ID:" && fail "criteria after --discard-state: $L3"
echo "$L3" | grep -Eq "^DTCP/0\.[0-9] 599 " && fail "a second 599 for the same loss: $L3"
audit_events restart | grep -q '"state":"discarded"' || fail "the discarded state is not audited"

note "xtapctl flush drops everything, audited and saved"
D=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Dest-Address: 198.18.9.11" "Flags: STATIC")
echo "$D" | grep -q "^DTCP/0.8 200 OK" || fail "ADD refused: $D"
in_ns "$RTR" "$XTAPCTL" flush --yes --socket "$WORK/control.sock" | tee "$WORK/flush.out"
grep -q '"flushed":1' "$WORK/flush.out" || fail "flush did not report one criterion"
audit_events flush | grep -q '"criteria_id"' || fail "flush not audited"
python3 -c "import json,sys; d=json.load(open(sys.argv[1])); assert d['store']['criteria']==[]" "$WORK/state/state.json" ||
    fail "the state file still holds criteria after flush"
stop_xtapd TERM
echo "PASS: xtapd continuity"
