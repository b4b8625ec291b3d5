#!/usr/bin/env bash
# X-JTap-Output-Interface end to end: the classifier's FIB lookup picks the
# egress interface, on real veths in namespaces:
#   cli (198.18.1.2, 2001:db8:1::2) -- r0 rtr r1 -- srv1 (198.18.2.2, 2001:db8:2::2)
#                                          r2 -- srv2 (198.18.3.2, 2001:db8:3::2)
# The data plane runs on r0. A criterion with output interface r1 copies only
# the packets the router forwards out of r1 (and the IPv6 one only those out
# of r2); unrouted packets (egress 0) match neither. Once no criterion asks for
# the egress any more, the plain criteria keep working.
source "$(dirname "$0")/lib.sh"
require_root
HARNESS="$BUILD_DIR/dp_harness"
[[ -x "$HARNESS" ]] || fail "build first: $HARNESS missing"

CLI="xoif$$cli" RTR="xoif$$rtr" SRV1="xoif$$srv1" SRV2="xoif$$srv2"
netns_add "$CLI"; netns_add "$RTR"; netns_add "$SRV1"; netns_add "$SRV2"
ip link add c0 netns "$CLI" type veth peer name r0 netns "$RTR"
ip link add s0 netns "$SRV1" type veth peer name r1 netns "$RTR"
ip link add s0 netns "$SRV2" type veth peer name r2 netns "$RTR"
in_ns "$CLI" ip addr add 198.18.1.2/24 dev c0
in_ns "$CLI" ip addr add 2001:db8:1::2/64 dev c0 nodad
in_ns "$RTR" ip addr add 198.18.1.1/24 dev r0
in_ns "$RTR" ip addr add 2001:db8:1::1/64 dev r0 nodad
for n in 2 3; do
    srv=$([[ $n == 2 ]] && echo "$SRV1" || echo "$SRV2")
    rif=r$((n - 1))
    in_ns "$RTR" ip addr add 198.18.$n.1/24 dev "$rif"
    in_ns "$RTR" ip addr add 2001:db8:$n::1/64 dev "$rif" nodad
    in_ns "$srv" ip addr add 198.18.$n.2/24 dev s0
    in_ns "$srv" ip addr add 2001:db8:$n::2/64 dev s0 nodad
    in_ns "$srv" ip link set s0 up
    in_ns "$srv" ip route add default via 198.18.$n.1
    in_ns "$srv" ip -6 route add default via 2001:db8:$n::1
    in_ns "$RTR" ip link set "$rif" up
    plain_link "$srv" s0
done
in_ns "$CLI" ip link set c0 up
in_ns "$RTR" ip link set r0 up
in_ns "$CLI" ip route add default via 198.18.1.1
in_ns "$CLI" ip -6 route add default via 2001:db8:1::1
in_ns "$RTR" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
plain_link "$CLI" c0
for dst in 198.18.2.2 198.18.3.2 2001:db8:2::2 2001:db8:3::2; do
    in_ns "$CLI" ping -c1 -W2 "$dst" >/dev/null || fail "no path to $dst"
done

cat >"$WORK/via_r1.json" <<J
{"filters":[{"family":4,"src":"198.18.1.2/32","oifname":"r1"}]}
J
cat >"$WORK/via_r2_6.json" <<J
{"filters":[{"family":6,"src":"2001:db8:1::2/128","oifname":"r2"}]}
J
# Echo requests only: the client's own neighbour solicitations to the router
# would match a bare source criterion at times the test cannot control.
cat >"$WORK/plain.json" <<J
{"filters":[{"family":4,"src":"198.18.1.2/32","proto":1,"sport":[8,8]},{"family":6,"src":"2001:db8:1::2/128","proto":58,"sport":[128,128]}]}
J

note "starting the data plane in $RTR on r0"
mkfifo "$WORK/ctl"
exec 3<>"$WORK/ctl"
spawn_in "$RTR" "$HARNESS" -i r0:generic -w "$WORK/copies1.pcap" <"$WORK/ctl" >"$WORK/harness.jsonl" 2>"$WORK/harness.err"
wait_for 20 grep -q '"ready"' "$WORK/harness.jsonl" || { cat "$WORK/harness.err"; fail "harness did not start"; }

ctl() { echo "$*" >&3; }
last_stats() {
    local before
    before=$(grep -c '"criteria"' "$WORK/harness.jsonl" || true)
    ctl stats
    wait_for 10 bash -c "[[ \$(grep -c '\"criteria\"' '$WORK/harness.jsonl') -gt $before ]]"
    grep '"criteria"' "$WORK/harness.jsonl" | tail -1
}
jget() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {'d': d}))" "$1" "$2"; }
pings() { in_ns "$CLI" ping -q "$@" >/dev/null 2>&1 || true; }

ctl publish via_r1 "$WORK/via_r1.json"
ctl publish via_r2_6 "$WORK/via_r2_6.json"
wait_for 10 bash -c "grep -c published '$WORK/harness.jsonl' | grep -q 2" || fail "publish failed: $(cat "$WORK/harness.jsonl")"

note "phase 1: the same source to both servers and to an unrouted address"
pings -c 10 -i 0.05 -I 198.18.1.2 198.18.2.2
pings -c 7 -i 0.05 -I 198.18.1.2 198.18.3.2
pings -c 3 -i 0.05 -W 1 -I 198.18.1.2 198.18.9.9      # no route on rtr: egress 0
pings -6 -c 6 -i 0.05 -I 2001:db8:1::2 2001:db8:2::2
pings -6 -c 9 -i 0.05 -I 2001:db8:1::2 2001:db8:3::2
sleep 1
S1=$(last_stats)
echo "$S1"
[[ $(jget "$S1" "d['criteria']['via_r1']['packets']") -eq 10 ]] || fail "via_r1 should count the 10 packets routed out of r1: $S1"
[[ $(jget "$S1" "d['criteria']['via_r1']['copies']") -eq 10 ]] || fail "via_r1 copies: $S1"
[[ $(jget "$S1" "d['criteria']['via_r2_6']['packets']") -eq 9 ]] || fail "via_r2_6 should count the 9 packets routed out of r2: $S1"
[[ $(jget "$S1" "d['criteria']['via_r2_6']['copies']") -eq 9 ]] || fail "via_r2_6 copies: $S1"
[[ $(jget "$S1" "d['copies_received']") -eq 19 ]] || fail "nothing else may be copied: $S1"

note "the copies are exactly the packets to the servers behind the chosen egress"
ctl pcap "$WORK/copies2.pcap"
wait_for 10 grep -q '"pcap"' "$WORK/harness.jsonl"
DSTS=$(tcpdump -nn -r "$WORK/copies1.pcap" 2>/dev/null | awk '{print $5}' | sed 's/:$//' | sort | uniq -c | awk '{print $2"="$1}' | tr '\n' ' ')
echo "copied destinations: $DSTS"
[[ "$DSTS" == "198.18.2.2=10 2001:db8:3::2=9 " ]] || fail "copies went to the wrong destinations: $DSTS"

note "phase 2: with no Output-Interface criterion left, plain criteria still match"
ctl publish plain "$WORK/plain.json"
wait_for 10 grep -q '"published":"plain"' "$WORK/harness.jsonl"
ctl withdraw via_r1
ctl withdraw via_r2_6
wait_for 10 bash -c "[[ \$(grep -c '\"withdrawn\"' '$WORK/harness.jsonl') -ge 2 ]]" || fail "withdraw failed"
B=$(jget "$(last_stats)" "d['copies_received']")
pings -c 4 -i 0.05 -I 198.18.1.2 198.18.3.2
pings -6 -c 4 -i 0.05 -I 2001:db8:1::2 2001:db8:2::2
sleep 1
S2=$(last_stats)
echo "$S2"
[[ $(jget "$S2" "d['criteria']['plain']['packets']") -eq 8 ]] || fail "plain criterion: $S2"
[[ $(jget "$S2" "d['copies_received']") -eq $((B + 8)) ]] || fail "copies after withdraw: $S2"

ctl quit
exec 3>&-
wait_for 20 bash -c "! kill -0 ${PIDS[0]} 2>/dev/null" || fail "harness did not exit"
note "PASS"
