#!/usr/bin/env bash
# xtapd's copies through IPsec, never in clear (issue 4), on the lab of
# scripts/lab: xtapd's TunnelManager drives the router's charon over vici, the
# MD runs its own charon (kernel-libipsec both) and `xtapctl receive`.
#   1. steady stream (ping streams to and from the target, IPv4 and IPv6):
#      the pcaps `xtapctl receive` wrote hold byte-identical originals of every
#      target packet captured at the router's ingress; tshark at the MD decodes
#      the jmirror copies (jmirror.mid/sid = the Criteria-IDs);
#   2. fail-closed: the CHILD_SA is terminated over the router charon's vici
#      socket mid-stream; xtapd counts the copies it cannot send as dropped,
#      re-initiates by itself, and copies resume; sent + dropped = selected;
#   3. the router-MD link (the router's default route points at the MD, the
#      path a leaked copy would take) carried IKE, ESP-in-UDP and the DTCP SSH
#      session only: no copy in clear, during the outage or ever.
source "$(dirname "$0")/lib.sh"
require_root
source "$SOURCE_DIR/scripts/lib/lab.sh"
LABCHECK="$SOURCE_DIR/tests/integration/labcheck.py"

lab_init "${TAG}i"
trap 'rc=$?; lab_down "$WORK/lab"; (exit $rc); cleanup' EXIT
XTAP_LAB_CAPTURE=1 lab_up
jget() { python3 -c "import json,sys; print(eval(sys.argv[2], {'d': json.loads(sys.argv[1])}))" "$1" "$2"; }

note "tasking: to and from the target, IPv4 (cd1) and IPv6 (cd6)"
IDS=()
add() {
    local reply id
    reply=$(lab_dtcp add --static "$@") || fail "ADD $*: $reply"
    id=$(echo "$reply" | tr -d '\r' | awk -F': ' '/^CRITERIA-ID/ {print $2}')
    [[ -n $id ]] || fail "no CRITERIA-ID in $reply"
    IDS+=("$id")
}
add --cdest-id cd1 --dest-address "$LAB_TGT4"
add --cdest-id cd1 --source-address "$LAB_TGT4"
add --cdest-id cd6 --ip-version ipv6 --dest-address "$LAB_TGT6"
add --cdest-id cd6 --ip-version ipv6 --source-address "$LAB_TGT6"

# ping_stream TAG COUNT: the internet host pings the target, IPv4 and IPv6 at
# 200/s each (bounded); replies come back through the router too.
PINGERS=()
ping_stream() {
    PINGERS=()
    spawn_in "$LAB_NS_NET" ping -q -n -c "$2" -i 0.005 -W 1 "$LAB_TGT4" >"$WORK/$1-ping4.out" 2>&1
    PINGERS+=(${PIDS[-1]})
    spawn_in "$LAB_NS_NET" ping -6 -q -n -c "$2" -i 0.005 -W 1 "$LAB_TGT6" >"$WORK/$1-ping6.out" 2>&1
    PINGERS+=(${PIDS[-1]})
}
wait_pingers() {
    local pid
    for pid in "${PINGERS[@]}"; do wait "$pid" || fail "ping stream failed: $(cat "$WORK"/*-ping*.out)"; done
}

# --- 1. steady stream ---------------------------------------------------------------
note "1. steady stream: 1000 pings each way per family"
ping_stream p1 1000
wait_pingers
sleep 2  # copies in charon's queues
lab_receivers_stop
SAME=$(python3 "$LABCHECK" originals --ingress "$LAB_PCAP_DIR"/ingress-r{0,1}.pcap \
    --copies "$LAB_DIR"/md/copies-cd{1,6}.pcap --addr "$LAB_TGT4" "$LAB_TGT6") ||
    fail "the originals at the MD differ from the router's ingress: $SAME"
echo "originals at the MD vs the router's ingress: $SAME"
COPIES1=$(jget "$SAME" "d['copies']")
((COPIES1 >= 4000)) || fail "too few copies: $SAME"
for cd in cd1 cd6; do
    echo "receive $cd: $(<"$LAB_DIR/md/copies-$cd.json")"
    failures=$(jget "$(<"$LAB_DIR/md/copies-$cd.json")" "d['failures']")
    [[ $failures -eq 0 ]] || fail "$cd: undecodable copies"
done

note "tshark at the MD decodes the jmirror copies"
DECODE=(-d "udp.port==$LAB_CDEST4_PORT,jmirror" -d "udp.port==$LAB_CDEST6_PORT,jmirror")
tshark -r "$LAB_PCAP_DIR/md-clear.pcap" "${DECODE[@]}" -Y jmirror -T fields -e jmirror.mid -e jmirror.sid 2>/dev/null |
    sort | uniq -c | tee "$WORK/md_jmirror.txt"
for id in "${IDS[@]}"; do
    all_ids=$(cat "$LAB_DIR"/md/copies-cd{1,6}.json | python3 -c 'import json,sys; print(json.dumps([j for l in sys.stdin for j in json.loads(l)["jmirror"]]))')
    want=$(jget "$all_ids" "sum(j['copies'] for j in d if j['intercept_id'] == $id)")
    got=$(awk -v id="$id" '$2 + 0 == id && $3 + 0 == id {print $1}' "$WORK/md_jmirror.txt")
    echo "criterion $id: tshark decodes ${got:-0} jmirror copies, xtapctl receive counted $want"
    [[ ${got:-0} -gt 0 && ${got:-0} -eq $want ]] || fail "criterion $id: tshark ${got:-0}, receiver $want"
done
INNER=$(tshark -r "$LAB_PCAP_DIR/md-clear.pcap" "${DECODE[@]}" -Y "jmirror and (icmp or icmpv6)" 2>/dev/null | wc -l)
echo "copies whose inner ICMP tshark decodes: $INNER"
((INNER >= 4000)) || fail "tshark decodes $INNER inner packets"

# --- 2. fail-closed -----------------------------------------------------------------
note "2. CHILD_SA terminated mid-stream: 3000 pings each way per family (15 s)"
lab_receivers_start p2
UPS_BEFORE=$(grep -c "tunnel $LAB_TUNNEL: up" "$LAB_XTAPD_LOG")
ping_stream p2 3000
sleep 3
lab_swan rtr --terminate --child "$LAB_TUNNEL" --ike "$LAB_TUNNEL" --timeout 10 >/dev/null ||
    fail "swanctl --terminate"
wait_for 20 bash -c "(( \$(grep -c 'tunnel $LAB_TUNNEL: up' '$LAB_XTAPD_LOG') > $UPS_BEFORE ))" ||
    fail "the tunnel did not come back by itself: $(grep tunnel "$LAB_XTAPD_LOG" | tail -5)"
grep "tunnel $LAB_TUNNEL" "$LAB_XTAPD_LOG" | tail -4
wait_pingers
sleep 2
lab_receivers_stop
for v in 4 6; do
    [[ $v == 4 ]] && tgt=$LAB_TGT4 cd=cd1 || tgt=$LAB_TGT6 cd=cd6
    SEQS=$(python3 "$LABCHECK" echo-seqs --copies "$LAB_DIR/md/p2-$cd.pcap" --addr "$tgt")
    # Copies resumed: the last quarter of the stream (well after the recovery)
    # reached the MD whole; a gap while the tunnel was down.
    total=$(jget "$SEQS" "len(d)") tail_part=$(jget "$SEQS" "sum(1 for s in d if s > 2250)")
    echo "IPv$v echo requests copied: $total of 3000 (outage about $(((3000 - total) * 5)) ms at 200/s); of the last 750: $tail_part"
    [[ $tail_part -eq 750 ]] || fail "IPv$v: copies did not resume"
    [[ $total -lt 3000 ]] || fail "IPv$v: no gap while the tunnel was down?"
done

note "counters account for every copy (xtapctl status --json, LIST, the ingress capture)"
LIST=$(lab_dtcp list --detail stats | tr -d '\r') || fail "LIST: $LIST"
MATCHED_LIST=$(echo "$LIST" | awk -F': ' '/^MATCHING-PACKETS/ {s += $2} END {print s + 0}')
DROPPED_LIST=$(echo "$LIST" | awk -F': ' '/^X-XTAP-DROPPED-PACKETS/ {s += $2} END {print s + 0}')
STATUS=$("$LAB_XTAPCTL" status --socket "$LAB_CONTROL_SOCKET" --json) || fail "xtapctl status: $STATUS"
status() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($1)" "$STATUS"; }
echo "status counters: $(status "json.dumps(d['counters'])")"
echo "status tunnels: $(status "json.dumps(d['tunnels'])")"
MATCHED=$(status "d['counters']['matched']")
SELECTED=$(status "d['counters']['to_send']")
SENT=$(status "d['counters']['sent']")
DROPPED=$(status "d['counters']['dropped']")
TUNNEL_DOWN=$(status "d['counters']['dropped_by_reason']['tunnel_down']")
UPS=$(status "d['tunnels'][0]['ups']") DOWNS=$(status "d['tunnels'][0]['downs']")
INGRESS=$(python3 "$LABCHECK" addresses --copies "$LAB_PCAP_DIR"/ingress-r{0,1}.pcap --addr "$LAB_TGT4" "$LAB_TGT6")
RECEIVED=0
for f in "$LAB_DIR"/md/{copies,p2}-cd{1,6}.json; do
    n=$(jget "$(<"$f")" "d['copies']")
    RECEIVED=$((RECEIVED + n))
done
echo "target packets at the ingress $INGRESS; matched $MATCHED (LIST $MATCHED_LIST); selected $SELECTED;" \
    "sent $SENT; dropped $DROPPED (tunnel down $TUNNEL_DOWN, LIST $DROPPED_LIST); received at the MD $RECEIVED;" \
    "tunnel ups $UPS downs $DOWNS"
[[ $((SENT + DROPPED)) -eq $SELECTED ]] || fail "sent + dropped != selected"
[[ $SELECTED -eq $INGRESS && $MATCHED -eq $INGRESS && $MATCHED_LIST -eq $INGRESS ]] ||
    fail "selected/matched != the target's packets at the ingress"
[[ $DROPPED -eq $DROPPED_LIST ]] || fail "LIST drops $DROPPED_LIST != status drops $DROPPED"
[[ $TUNNEL_DOWN -gt 0 ]] || fail "no copy dropped for tunnel down: was it down at all?"
[[ $UPS -ge 2 && $DOWNS -ge 1 ]] || fail "tunnel history: ups $UPS downs $DOWNS"
# A copy handed to ipsec0 just as its SA is deleted is lost inside charon: a few.
((RECEIVED <= SENT && RECEIVED >= SENT - 20)) || fail "received $RECEIVED of $SENT sent"
lab_stop xtapd 20
echo "xtapd: $(sed -n 's/.*stopping: //p' "$LAB_XTAPD_LOG" | tail -1)"

# --- 3. the link ------------------------------------------------------------------------
note "3. the router-MD link carried IKE, ESP-in-UDP and SSH only, no copy in clear"
lab_stop tcpdump-link 5
tshark -r "$LAB_PCAP_DIR/link.pcap" -q -z io,phs 2>/dev/null | sed -n '/^eth/,/^=/p'
OTHER=$(tshark -r "$LAB_PCAP_DIR/link.pcap" -Y "not (udp.port==500 or udp.port==4500) and not tcp.port==$LAB_DTCP_PORT and not arp and not (icmpv6.type >= 133 and icmpv6.type <= 137) and not icmpv6.type==143" 2>/dev/null | wc -l)
CLEAR=$(tshark -r "$LAB_PCAP_DIR/link.pcap" "${DECODE[@]}" \
    -Y "jmirror or udp.port==$LAB_CDEST4_PORT or udp.port==$LAB_CDEST6_PORT or ip.addr==$LAB_TGT4 or ipv6.addr==$LAB_TGT6 or ip.addr==$LAB_CDEST4 or ipv6.addr==$LAB_CDEST6 or ip.addr==$LAB_COPY_SRC4 or ipv6.addr==$LAB_COPY_SRC6 or icmp" 2>/dev/null | wc -l)
ESP=$(tshark -r "$LAB_PCAP_DIR/link.pcap" -Y esp 2>/dev/null | wc -l)
echo "link: $ESP ESP-in-UDP frames, $CLEAR readable copies, $OTHER other frames"
[[ $OTHER -eq 0 ]] || fail "unexpected traffic on the link: $(tshark -r "$LAB_PCAP_DIR/link.pcap" -Y "not (udp.port==500 or udp.port==4500) and not tcp.port==$LAB_DTCP_PORT and not arp and not icmpv6" 2>/dev/null | head -5)"
[[ $CLEAR -eq 0 ]] || fail "copies in clear on the router-MD link"
[[ $ESP -gt 0 ]] || fail "no ESP on the link: the capture saw nothing"
echo "PASS: xtapd IPsec delivery, fail-closed"
