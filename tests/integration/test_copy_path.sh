#!/usr/bin/env bash
# The copy path end to end on real veths in namespaces:
#   cli (target 198.18.1.2, 2001:db8:1::2; bystander .3/::3) -- rtr -- srv
# rtr runs the data plane on r0 (native XDP) and r1 (generic XDP). Real ping,
# TCP, UDP, IPv6 and fragmented traffic. Checks: every target packet entering
# the router is copied exactly once and byte-identical (tcpdump on ingress is
# the independent count), nothing else is copied, originals arrive intact,
# per-criterion counters agree, withdraw and expiry stop copying at once.
source "$(dirname "$0")/lib.sh"
require_root
HARNESS="$BUILD_DIR/dp_harness"
PCAPTOOL="$SOURCE_DIR/tests/integration/pcaptool.py"
[[ -x "$HARNESS" ]] || fail "build first: $HARNESS missing"

CLI="${TAG}cli" RTR="${TAG}rtr" SRV="${TAG}srv"
netns_add "$CLI"; netns_add "$RTR"; netns_add "$SRV"
ip link add c0 netns "$CLI" type veth peer name r0 netns "$RTR"
ip link add s0 netns "$SRV" type veth peer name r1 netns "$RTR"
in_ns "$CLI" ip addr add 198.18.1.2/24 dev c0
in_ns "$CLI" ip addr add 198.18.1.3/24 dev c0
in_ns "$CLI" ip addr add 2001:db8:1::2/64 dev c0 nodad
in_ns "$CLI" ip addr add 2001:db8:1::3/64 dev c0 nodad
in_ns "$RTR" ip addr add 198.18.1.1/24 dev r0
in_ns "$RTR" ip addr add 2001:db8:1::1/64 dev r0 nodad
in_ns "$RTR" ip addr add 198.18.2.1/24 dev r1
in_ns "$RTR" ip addr add 2001:db8:2::1/64 dev r1 nodad
in_ns "$SRV" ip addr add 198.18.2.2/24 dev s0
in_ns "$SRV" ip addr add 2001:db8:2::2/64 dev s0 nodad
for l in "$CLI c0" "$RTR r0" "$RTR r1" "$SRV s0"; do set -- $l; in_ns "$1" ip link set "$2" up; done
in_ns "$CLI" ip route add default via 198.18.1.1
in_ns "$CLI" ip -6 route add default via 2001:db8:1::1
in_ns "$SRV" ip route add default via 198.18.2.1
in_ns "$SRV" ip -6 route add default via 2001:db8:2::1
in_ns "$RTR" sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
plain_link "$CLI" c0; plain_link "$SRV" s0
# Resolve neighbours before the measured phase so ND/ARP timing cannot differ.
in_ns "$CLI" ping -c1 -W2 198.18.2.2 >/dev/null
in_ns "$CLI" ping -6 -c1 -W2 2001:db8:2::2 >/dev/null

cat >"$WORK/target4.json" <<J
{"filters":[{"family":4,"src":"198.18.1.2/32"},{"family":4,"dst":"198.18.1.2/32"}]}
J
cat >"$WORK/target6.json" <<J
{"filters":[{"family":6,"src":"2001:db8:1::2/128"},{"family":6,"dst":"2001:db8:1::2/128"}]}
J
cat >"$WORK/bystander.json" <<J
{"filters":[{"family":4,"src":"198.18.1.3/32"},{"family":4,"dst":"198.18.1.3/32"}],"expiry_s":3}
J

note "starting the data plane in $RTR (r0 native, r1 generic)"
mkfifo "$WORK/ctl"
exec 3<>"$WORK/ctl"  # read-write: opening does not wait for the harness
spawn_in "$RTR" "$HARNESS" -i r0:native -i r1:generic -w "$WORK/copies1.pcap" <"$WORK/ctl" >"$WORK/harness.jsonl" 2>"$WORK/harness.err"
wait_for 20 grep -q '"ready"' "$WORK/harness.jsonl" || { cat "$WORK/harness.err"; fail "harness did not start"; }
grep '"ready"' "$WORK/harness.jsonl"
if grep -q '"hook":"tc"' "$WORK/harness.jsonl"; then
    # A kernel without XDP metadata: tc classifies, no XDP on r0/r1 (README, Architecture).
    [[ $(grep -o '"mode":"tc"' "$WORK/harness.jsonl" | wc -l) -eq 2 ]] || fail "r0 and r1 not on the tc hook"
else
    grep -q '"mode":"native"' "$WORK/harness.jsonl" || fail "r0 not in native mode"
    grep -q '"mode":"generic"' "$WORK/harness.jsonl" || fail "r1 not in generic mode"
fi
grep -q '"gro_off":false' "$WORK/harness.jsonl" && fail "GRO still on a transit interface"

ctl() { echo "$*" >&3; }
last_stats() {
    local before
    before=$(grep -c '"criteria"' "$WORK/harness.jsonl" || true)
    ctl stats
    wait_for 10 bash -c "[[ \$(grep -c '\"criteria\"' '$WORK/harness.jsonl') -gt $before ]]"
    grep '"criteria"' "$WORK/harness.jsonl" | tail -1
}
jget() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {'d': d}))" "$1" "$2"; }

ctl publish target4 "$WORK/target4.json"
ctl publish target6 "$WORK/target6.json"
wait_for 10 bash -c "grep -c published '$WORK/harness.jsonl' | grep -q 2" || fail "publish failed: $(cat "$WORK/harness.jsonl")"

FILTER='ip host 198.18.1.2 or ip6 host 2001:db8:1::2'
for i in r0 r1; do
    spawn_in "$RTR" tcpdump -Q in -i "$i" -w "$WORK/in_$i.pcap" -U -n "$FILTER" 2>"$WORK/tcpdump_$i.err"
done
wait_for 10 grep -q listening "$WORK/tcpdump_r0.err"; wait_for 10 grep -q listening "$WORK/tcpdump_r1.err"

note "phase 1: target and bystander traffic"
head -c 300000 /dev/urandom >"$WORK/send.bin"
spawn_in "$SRV" socat -u TCP4-LISTEN:8080,reuseaddr OPEN:"$WORK/recv4.bin",creat,trunc
spawn_in "$SRV" socat -u TCP6-LISTEN:8086,reuseaddr OPEN:"$WORK/recv6.bin",creat,trunc
spawn_in "$SRV" socat -u UDP4-RECV:9000 OPEN:"$WORK/udp.bin",creat,trunc
sleep 0.3
in_ns "$CLI" ping -q -c 10 -i 0.05 -I 198.18.1.2 198.18.2.2 >/dev/null || fail "IPv4 ping lost packets"
in_ns "$CLI" ping -q -6 -c 10 -i 0.05 -I 2001:db8:1::2 2001:db8:2::2 >/dev/null || fail "IPv6 ping lost packets"
in_ns "$CLI" ping -q -c 3 -i 0.1 -s 3000 -I 198.18.1.2 198.18.2.2 >/dev/null || fail "fragmented IPv4 ping"
in_ns "$CLI" ping -q -6 -c 3 -i 0.1 -s 3000 -I 2001:db8:1::2 2001:db8:2::2 >/dev/null || fail "fragmented IPv6 ping"
in_ns "$CLI" socat -u OPEN:"$WORK/send.bin" TCP4:198.18.2.2:8080,bind=198.18.1.2
in_ns "$CLI" socat -u OPEN:"$WORK/send.bin" TCP6:[2001:db8:2::2]:8086,bind=[2001:db8:1::2]
for n in $(seq 1 20); do echo "datagram $n" | in_ns "$CLI" socat -u - UDP4-SENDTO:198.18.2.2:9000,bind=198.18.1.2; done
# Bystander: not a target, never copied.
in_ns "$CLI" ping -q -c 10 -i 0.05 -I 198.18.1.3 198.18.2.2 >/dev/null
in_ns "$CLI" ping -q -6 -c 10 -i 0.05 -I 2001:db8:1::3 2001:db8:2::2 >/dev/null
sleep 1
S1=$(last_stats)
echo "$S1"

# Stop the independent captures; everything after this is phase 2.
for pid in "${PIDS[@]:1:2}"; do kill -INT "$pid" 2>/dev/null || true; done
sleep 0.5
ctl pcap "$WORK/copies2.pcap"
wait_for 10 grep -q '"pcap"' "$WORK/harness.jsonl"

note "originals arrive intact"
wait_for 10 cmp -s "$WORK/send.bin" "$WORK/recv4.bin" || fail "IPv4 TCP transfer corrupted or incomplete"
wait_for 10 cmp -s "$WORK/send.bin" "$WORK/recv6.bin" || fail "IPv6 TCP transfer corrupted or incomplete"
[[ $(grep -c datagram "$WORK/udp.bin") -eq 20 ]] || fail "UDP datagrams lost: $(wc -l <"$WORK/udp.bin")"

note "every target packet entering the router copied exactly once, byte-identical"
python3 "$PCAPTOOL" compare "$WORK/copies1.pcap" "$WORK/in_r0.pcap" "$WORK/in_r1.pcap" || fail "copies differ from ingress"
IN=$(python3 - "$PCAPTOOL" "$WORK/in_r0.pcap" "$WORK/in_r1.pcap" <<'PY'
import json, subprocess, sys
tot = {}
for p in sys.argv[2:]:
    s = json.loads(subprocess.check_output([sys.executable, sys.argv[1], "summary", p]))
    for k, v in s.items():
        tot[k] = tot.get(k, 0) + v
print(json.dumps(tot))
PY
)
echo "ingress: $IN"
[[ $(jget "$IN" "d['fragments']") -ge 12 ]] || fail "expected the fragmented pings' fragments in the capture"
[[ $(jget "$S1" "d['criteria']['target4']['packets']") -eq $(jget "$IN" "d['ipv4']") ]] || fail "target4 packet counter != IPv4 ingress count"
[[ $(jget "$S1" "d['criteria']['target4']['bytes']") -eq $(jget "$IN" "d['ipv4_bytes']") ]] || fail "target4 byte counter != IPv4 ingress bytes"
[[ $(jget "$S1" "d['criteria']['target6']['packets']") -eq $(jget "$IN" "d['ipv6']") ]] || fail "target6 packet counter != IPv6 ingress count"
[[ $(jget "$S1" "d['criteria']['target6']['copies']") -eq $(jget "$IN" "d['ipv6']") ]] || fail "target6 copies != IPv6 ingress count"
[[ $(jget "$S1" "d['copies_without_meta']") -eq 0 ]] || fail "copies arrived without metadata"

note "phase 2: withdraw stops copying at once; expiry too"
ctl withdraw target4
wait_for 10 grep -q '"withdrawn"' "$WORK/harness.jsonl"
B=$(jget "$(last_stats)" "d['copies_received']")
in_ns "$CLI" ping -q -c 5 -i 0.05 -I 198.18.1.2 198.18.2.2 >/dev/null
sleep 0.5
S2=$(last_stats)
[[ $(jget "$S2" "d['copies_received']") -eq $B ]] || fail "copies after withdraw: $S2"
in_ns "$CLI" ping -q -6 -c 5 -i 0.05 -I 2001:db8:1::2 2001:db8:2::2 >/dev/null
sleep 0.5
S3=$(last_stats)
[[ $(jget "$S3" "d['copies_received']") -eq $((B + 10)) ]] || fail "target6 should still be copied: $S3"

ctl publish bystander "$WORK/bystander.json"
wait_for 10 grep -q '"published":"bystander"' "$WORK/harness.jsonl"
in_ns "$CLI" ping -q -c 3 -i 0.05 -I 198.18.1.3 198.18.2.2 >/dev/null
sleep 0.3
S4=$(last_stats)
[[ $(jget "$S4" "d['criteria']['bystander']['packets']") -eq 6 ]] || fail "bystander before expiry: $S4"
sleep 3
in_ns "$CLI" ping -q -c 3 -i 0.05 -I 198.18.1.3 198.18.2.2 >/dev/null
sleep 0.3
S5=$(last_stats)
[[ $(jget "$S5" "d['criteria']['bystander']['packets']") -eq 6 ]] || fail "bystander after expiry: $S5"
[[ $(jget "$S5" "d['copies_received']") -eq $(( $(jget "$S4" "d['copies_received']") )) ]] || fail "copies after expiry"

note "phase 3: fragments that arrive before their first are copied to port-scoped criteria"
ctl withdraw target6
cat >"$WORK/udpport.json" <<J
{"filters":[{"family":4,"src":"198.18.1.2/32","proto":17,"dport":[7777,7777]},
            {"family":6,"src":"2001:db8:1::2/128","proto":17,"dport":[7777,7777]}]}
J
ctl publish udpport "$WORK/udpport.json"
wait_for 10 grep -q '"published":"udpport"' "$WORK/harness.jsonl"
ctl pcap "$WORK/copies3.pcap"
sleep 0.3
CMAC=$(in_ns "$CLI" cat /sys/class/net/c0/address)
RMAC=$(in_ns "$RTR" cat /sys/class/net/r0/address)
SEND="$SOURCE_DIR/tests/integration/send_fragments.py"
in_ns "$CLI" python3 "$SEND" c0 "$CMAC" "$RMAC" 198.18.1.2 198.18.2.2 7777 4242 321
in_ns "$CLI" python3 "$SEND" c0 "$CMAC" "$RMAC" 2001:db8:1::2 2001:db8:2::2 7777 4243 231
# Same order, but no criterion wants port 7778: held, then expired, never delivered.
in_ns "$CLI" python3 "$SEND" c0 "$CMAC" "$RMAC" 198.18.1.2 198.18.2.2 7778 4244 321
sleep 3
S6=$(last_stats)
echo "$S6"
[[ $(jget "$S6" "d['criteria']['udpport']['copies']") -eq 6 ]] || fail "out-of-order fragments not all copied: $S6"
[[ $(jget "$S6" "d['copies_late']") -eq 4 ]] || fail "expected 4 late releases: $S6"
[[ $(jget "$S6" "d['reorder']['expired']") -eq 2 ]] || fail "the unwanted datagram's held fragments should expire: $S6"
ctl pcap "$WORK/copies4.pcap"
wait_for 10 bash -c "[[ \$(grep -c '\"pcap\"' '$WORK/harness.jsonl') -ge 3 ]]"
F3=$(python3 "$PCAPTOOL" summary "$WORK/copies3.pcap")
[[ $(jget "$F3" "d['fragments']") -eq 6 ]] || fail "copies3.pcap should hold the 6 fragments: $F3"

ctl quit
exec 3>&-
wait_for 20 bash -c "[[ \$(grep -c '\"criteria\"' '$WORK/harness.jsonl') -ge 8 ]]" || fail "harness did not exit cleanly"
note "transit interfaces clean after detach"
in_ns "$RTR" ip link show r0 | grep -q xdp && fail "XDP left on r0"
in_ns "$RTR" ip link show | grep -q xtcap && fail "capture veth left behind"
in_ns "$RTR" tc filter show dev r0 ingress | grep -q xtap && fail "tc filter left on r0"
note "fail safe: with the controller killed (-9), transit traffic flows untouched"
exec 3<>"$WORK/ctl"
spawn_in "$RTR" "$HARNESS" -i r0:native -i r1:generic -w "$WORK/copies5.pcap" <"$WORK/ctl" >"$WORK/harness2.jsonl" 2>&1
wait_for 20 grep -q '"ready"' "$WORK/harness2.jsonl" || fail "second harness did not start"
ctl publish target4 "$WORK/target4.json"
wait_for 10 grep -q '"published"' "$WORK/harness2.jsonl"
kill -9 "${PIDS[-1]}"
exec 3>&-
sleep 0.5
# Programs stay attached, marking and cloning; the copies die at the capture
# veth for want of a socket. The originals must not notice.
in_ns "$CLI" ping -q -c 20 -i 0.02 -I 198.18.1.2 198.18.2.2 >/dev/null || fail "transit traffic lost after the controller died"
in_ns "$CLI" ping -q -c 3 -i 0.1 -s 3000 -I 198.18.1.2 198.18.2.2 >/dev/null || fail "fragmented transit traffic lost after the controller died"
spawn_in "$SRV" socat -u TCP4-LISTEN:8081,reuseaddr OPEN:"$WORK/recv4b.bin",creat,trunc
sleep 0.3
in_ns "$CLI" socat -u OPEN:"$WORK/send.bin" TCP4:198.18.2.2:8081,bind=198.18.1.2
wait_for 10 cmp -s "$WORK/send.bin" "$WORK/recv4b.bin" || fail "TCP transfer corrupted after the controller died"
classifier_on "$RTR" r0 || fail "expected the classifier to stay attached after a crash"
echo "PASS: copy path"
