#!/usr/bin/env bash
# The demo's flow (scripts/demo) with assertions, on the lab of scripts/lab:
# the MD tasks xtapd with xtapctl dtcp (DTCP over SSH), the target downloads
# a 5 MB file over HTTP, IPv4 and IPv6; the copies cross the router-MD link
# only inside ESP and the file rebuilt at the MD from the originals
# `xtapctl receive` wrote has the original's SHA-256 (lossless intercept);
# a bystander's downloads give no copy; the MD receives exactly what xtapd
# reports as matched, per criterion (LIST stats), none dropped.
source "$(dirname "$0")/lib.sh"
require_root
source "$SOURCE_DIR/scripts/lib/lab.sh"
COPYTOOL="$SOURCE_DIR/tests/integration/copytool.py"
LABCHECK="$SOURCE_DIR/tests/integration/labcheck.py"

lab_init "${TAG}d"
# The lab goes first (its processes, namespaces, mounts), then lib.sh's cleanup.
trap 'rc=$?; lab_down "$WORK/lab"; (exit $rc); cleanup' EXIT
XTAP_LAB_CAPTURE=1 lab_up
WANT=$(<"$LAB_DIR/net/file.sha256")
jget() { python3 -c "import json,sys; print(eval(sys.argv[2], {'d': json.loads(sys.argv[1])}))" "$1" "$2"; }

note "tasking over DTCP with xtapctl"
declare -A CDEST_OF
add() {
    local cd="$1" reply id
    shift
    reply=$(lab_dtcp add --static --cdest-id "$cd" "$@") || fail "ADD $*: $reply"
    id=$(echo "$reply" | tr -d '\r' | awk -F': ' '/^CRITERIA-ID/ {print $2}')
    [[ -n $id ]] || fail "no CRITERIA-ID in $reply"
    CDEST_OF[$id]=$cd
}
add cd1 --dest-address "$LAB_TGT4"
add cd1 --source-address "$LAB_TGT4"
add cd6 --ip-version ipv6 --dest-address "$LAB_TGT6"
add cd6 --ip-version ipv6 --source-address "$LAB_TGT6"
echo "criteria: ${!CDEST_OF[*]}"

note "the target downloads 5 MB over HTTP, IPv4 and IPv6; the bystander too"
for v in 4 6; do
    [[ $v == 4 ]] && from=$LAB_TGT4 server=$LAB_WEB4 || from=$LAB_TGT6 server=$LAB_WEB6
    got=$(lab_fetch "$from" "$server" "$WORK/got$v.bin") || fail "IPv$v download"
    sha=$(jget "$got" "d['sha256']")
    [[ $sha == "$WANT" ]] || fail "the target's own IPv$v download is corrupt"
done
lab_fetch "$LAB_BYSTANDER4" "$LAB_WEB4" "$WORK/by4.bin" >/dev/null || fail "bystander IPv4 download"
lab_fetch "$LAB_BYSTANDER6" "$LAB_WEB6" "$WORK/by6.bin" >/dev/null || fail "bystander IPv6 download"

note "the copies reach the MD"
rebuild() { python3 "$COPYTOOL" rebuild "$LAB_DIR/md/copies-cd$1.pcap" "$2" "$LAB_WEB_PORT"; }
wait_for 60 bash -c "[[ \$(python3 '$COPYTOOL' rebuild '$LAB_DIR/md/copies-cd1.pcap' $LAB_WEB4 $LAB_WEB_PORT) == *$WANT* && \
    \$(python3 '$COPYTOOL' rebuild '$LAB_DIR/md/copies-cd6.pcap' $LAB_WEB6 $LAB_WEB_PORT) == *$WANT* ]]" || true
sleep 1  # the last ACKs' copies
LIST=$(lab_dtcp list --detail stats | tr -d '\r') || fail "LIST: $LIST"
lab_receivers_stop
R4=$(rebuild 1 "$LAB_WEB4") R6=$(rebuild 6 "$LAB_WEB6")
echo "rebuilt IPv4: $R4"
echo "rebuilt IPv6: $R6"
SHA4=$(jget "$R4" "d['sha256']") SHA6=$(jget "$R6" "d['sha256']")
[[ $SHA4 == "$WANT" ]] || fail "file rebuilt from the IPv4 copies differs from the original"
[[ $SHA6 == "$WANT" ]] || fail "file rebuilt from the IPv6 copies differs from the original"

note "non-target traffic gives no copy"
BY=$(python3 "$LABCHECK" addresses --copies "$LAB_DIR"/md/copies-cd{1,6}.pcap --addr "$LAB_BYSTANDER4" "$LAB_BYSTANDER6")
[[ $BY -eq 0 ]] || fail "$BY copies of the bystander's traffic"

note "every packet to or from the target at the router's ingress reached the MD, byte for byte"
sleep 0.5
SAME=$(python3 "$LABCHECK" originals --ingress "$LAB_PCAP_DIR"/ingress-r{0,1}.pcap \
    --copies "$LAB_DIR"/md/copies-cd{1,6}.pcap --addr "$LAB_TGT4" "$LAB_TGT6") || fail "copies differ from the ingress: $SAME"
echo "$SAME"

note "the router-MD link carries the copies only inside ESP"
CLEAR=$(tshark -r "$LAB_PCAP_DIR/link.pcap" -d udp.port==$LAB_CDEST4_PORT,jmirror -d udp.port==$LAB_CDEST6_PORT,jmirror \
    -Y "jmirror or udp.port==$LAB_CDEST4_PORT or udp.port==$LAB_CDEST6_PORT or ip.addr==$LAB_TGT4 or ipv6.addr==$LAB_TGT6 or ip.addr==$LAB_CDEST4 or ipv6.addr==$LAB_CDEST6" 2>/dev/null | wc -l)
ESP=$(tshark -r "$LAB_PCAP_DIR/link.pcap" -Y esp 2>/dev/null | wc -l)
echo "link: $ESP ESP frames, $CLEAR readable copies"
[[ $CLEAR -eq 0 ]] || fail "copies in clear on the router-MD link"
[[ $ESP -gt 0 ]] || fail "no ESP on the router-MD link"

note "counters: the MD received what xtapd matched, per criterion; nothing dropped"
echo "$LIST" | grep -E '^(CRITERIA-ID|MATCHING-PACKETS|MATCHING-BYTES|X-XTAP-DROPPED-PACKETS)'
declare -A MATCHED DROPPED
id=""
while IFS=': ' read -r key value; do
    case "$key" in
        CRITERIA-ID) id=$value ;;
        MATCHING-PACKETS) MATCHED[$id]=$value ;;
        X-XTAP-DROPPED-PACKETS) DROPPED[$id]=$value ;;
    esac
done <<<"$LIST"
for cd in cd1 cd6; do
    summary=$(<"$LAB_DIR/md/copies-$cd.json")
    echo "receive $cd: $summary"
    failures=$(jget "$summary" "d['failures']")
    [[ $failures -eq 0 ]] || fail "$cd: undecodable copies"
    for id in "${!CDEST_OF[@]}"; do
        [[ ${CDEST_OF[$id]} == "$cd" ]] || continue
        got=$(jget "$summary" "sum(j['copies'] for j in d['jmirror'] if j['intercept_id'] == $id and j['session_id'] == $id)")
        [[ -n ${MATCHED[$id]:-} ]] || fail "criterion $id missing from LIST"
        echo "criterion $id: matched ${MATCHED[$id]}, dropped ${DROPPED[$id]:-?}, received $got at $cd"
        [[ ${DROPPED[$id]:-x} == 0 ]] || fail "criterion $id: copies dropped"
        [[ ${MATCHED[$id]} -gt 0 && ${MATCHED[$id]} -eq $got ]] || fail "criterion $id: matched ${MATCHED[$id]}, received $got"
    done
done
RECEIVED=0 RECEIVED_BYTES=0
for cd in cd1 cd6; do
    n=$(jget "$(<"$LAB_DIR/md/copies-$cd.json")" "d['copies']")
    b=$(jget "$(<"$LAB_DIR/md/copies-$cd.json")" "d['original_bytes']")
    RECEIVED=$((RECEIVED + n)) RECEIVED_BYTES=$((RECEIVED_BYTES + b))
done
INGRESS=$(jget "$SAME" "d['ingress']")
[[ $RECEIVED -eq $INGRESS ]] || fail "copies at the MD ($RECEIVED) != the target's packets at the ingress ($INGRESS)"

note "xtapctl status --json agrees with what was sent and received"
STATUS=$("$LAB_XTAPCTL" status --socket "$LAB_CONTROL_SOCKET" --json) || fail "xtapctl status: $STATUS"
echo "status counters: $(python3 -c "import json,sys; print(json.dumps(json.loads(sys.argv[1])['counters']))" "$STATUS")"
check_counter() {  # EXPRESSION EXPECTED
    local got
    got=$(python3 -c "import json,sys; d=json.loads(sys.argv[1]); print($1)" "$STATUS") || fail "status: $1"
    echo "status: $1 = $got (expected $2)"
    [[ $got == "$2" ]] || fail "xtapctl status --json: $1 = $got, expected $2"
}
check_counter "d['counters']['matched']" "$INGRESS"
check_counter "d['counters']['to_send']" "$INGRESS"
check_counter "d['counters']['sent']" "$RECEIVED"
check_counter "d['counters']['dropped']" 0
# jmirror: each copy is its original behind an 8-byte header.
check_counter "d['counters']['sent_bytes']" $((RECEIVED_BYTES + 8 * RECEIVED))
check_counter "d['criteria']" 4
check_counter "[t['state'] for t in d['tunnels']]" "['up']"
for cd in cd1 cd6; do
    check_counter "sum(c['sent'] for c in d['cdests'] if any(l['cdest_id'] == '$cd' for l in c['labels']))" \
        "$(jget "$(<"$LAB_DIR/md/copies-$cd.json")" "d['copies']")"
done

note "xtapd stops cleanly; its last counters agree"
lab_stop xtapd 20
STOP=$(sed -n 's/.*stopping: //p' "$LAB_XTAPD_LOG" | tail -1)
echo "xtapd: $STOP"
[[ -n $STOP ]] || fail "no stop line from xtapd"
SENT=$(jget "$STOP" "d['sent']")
DROPPED=$(jget "$STOP" "d['dropped']")
[[ $SENT -eq $RECEIVED && $DROPPED -eq 0 ]] || fail "xtapd's stop line: sent $SENT dropped $DROPPED, received $RECEIVED"
echo "PASS: demo flow"
