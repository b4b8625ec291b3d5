#!/usr/bin/env bash
# xtapd end to end, without IPsec (the MD's prefix is a configured cleartext
# destination, as in a lab):
#   tgt (target 198.18.1.2, 2001:db8:1::2) -- r0 [rtr: xtapd] r1 -- inet (web server)
#                                              r2 -- md (mediation device)
# The MD tasks xtapd over DTCP with the real OpenSSH client; the target
# downloads a 5 MB file over HTTP, IPv4 and IPv6; the MD rebuilds the file
# from the copies and its SHA-256 must equal the original's. Bystander traffic
# gives no copy; LIST counters agree with the copies; DELETE stops copying; a
# criterion with X-JTap-Output-Interface copies only what leaves by that interface.
source "$(dirname "$0")/lib.sh"
require_root
XTAPD="$BUILD_DIR/xtapd"
COPYTOOL="$SOURCE_DIR/tests/integration/copytool.py"
[[ -x "$XTAPD" ]] || fail "build first: $XTAPD missing"
command -v ssh >/dev/null || fail "OpenSSH client missing: run scripts/bootstrap"

router_lab
# On top of the router lab: a bystander address beside the target, and IPv6.
in_ns "$TGT" ip addr add 198.18.1.3/24 dev t0
in_ns "$TGT" ip addr add 2001:db8:1::2/64 dev t0 nodad
in_ns "$RTR" ip addr add 2001:db8:1::1/64 dev r0 nodad
in_ns "$RTR" ip addr add 2001:db8:2::1/64 dev r1 nodad
in_ns "$NET" ip addr add 2001:db8:2::2/64 dev i0 nodad
in_ns "$TGT" ip -6 route add default via 2001:db8:1::1
in_ns "$NET" ip -6 route add default via 2001:db8:2::1
in_ns "$RTR" sysctl -qw net.ipv6.conf.all.forwarding=1
private_bpffs

ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_key"
ssh-keygen -q -t ed25519 -N '' -f "$WORK/md_key"
cat >"$WORK/xtap.json" <<J
{
  "dtcp": {"listen": ["198.18.20.1:32001"], "host_key": "$WORK/host_key"},
  "users": {"md1": {"authorized_keys": ["$(cat "$WORK/md_key.pub")"], "seq_reset_per_connection": false,
                    "destinations": {"cd1": {"address": "198.18.20.2", "port": 50000,
                                             "source_address": "198.18.20.1", "source_port": 49153}}}},
  "interfaces": [{"name": "r0", "alias": "ge-0/0/0.0", "xdp_mode": "native"},
                 {"name": "r1", "alias": "ge-0/0/1.0", "xdp_mode": "generic"}],
  "delivery": {"cleartext_destinations": ["198.18.20.0/24"]},
  "dataplane": {"criteria": 4096, "rules": 65536, "anchors": 65536, "pin_dir": "$WORK/bpffs/xtap"},
  "state_dir": "$WORK/state", "audit_log": "$WORK/state/audit.jsonl", "control_socket": "$WORK/control.sock"
}
J
"$XTAPD" --check-config "$WORK/xtap.json"

note "starting xtapd in $RTR"
spawn_in "$RTR" "$XTAPD" --config "$WORK/xtap.json" >"$WORK/xtapd.log" 2>&1
wait_for 20 grep -q "DTCP over SSH listening" "$WORK/xtapd.log" || { cat "$WORK/xtapd.log"; fail "xtapd did not start"; }

# Seq lives in a file: callers run dtcp inside $(...), a subshell, where a
# shell variable's increment would be lost and every request would go out
# with Seq 1. md1 has one Seq window across connections
# (seq_reset_per_connection off), so a repeated Seq would go unanswered.
echo 0 >"$WORK/seq"
dtcp() {  # dtcp LINE...: one signed request over the real OpenSSH client
    local seq=$(($(cat "$WORK/seq") + 1))
    echo $seq >"$WORK/seq"
    python3 "$COPYTOOL" sign Juniper "$@" "Seq: $seq" |
        in_ns "$MD" timeout 20 ssh -F /dev/null -p 32001 -o StrictHostKeyChecking=no \
            -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -i "$WORK/md_key" \
            -s md1@198.18.20.1 flow-tap-dtcp
}

spawn_in "$MD" python3 "$COPYTOOL" receive 198.18.20.2 50000 "$WORK/copies.bin" 180 >"$WORK/receiver.out"
sleep 0.5

note "tasking over DTCP"
R4=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Dest-Address: 198.18.1.2" "Flags: STATIC")
echo "$R4" | head -3
echo "$R4" | grep -q "^DTCP/0.8 200 OK" || fail "IPv4 ADD refused: $R4"
R6=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Dest-Address: 2001:db8:1::2" \
    "X-JTap-IP-Version: ipv6" "X-JTap-Input-Interface: ge-0/0/1" "Flags: STATIC")
echo "$R6" | grep -q "^DTCP/0.8 200 OK" || fail "IPv6 ADD refused: $R6"
BAD=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd9" "Dest-Address: 198.18.1.9" "Flags: STATIC")
echo "$BAD" | grep -q "^DTCP/0.8 430" || fail "unknown Cdest-ID should get 430: $BAD"

note "the target downloads 5 MB over HTTP, IPv4 and IPv6"
mkdir -p "$WORK/www"
head -c 5000000 /dev/urandom >"$WORK/www/file.bin"
WANT=$(sha256sum "$WORK/www/file.bin" | cut -d' ' -f1)
spawn_in "$NET" python3 -m http.server --bind :: --directory "$WORK/www" 8000 >/dev/null 2>&1
wait_for 10 in_ns "$NET" python3 -c "import socket; socket.create_connection(('198.18.2.2', 8000), 1)"
# A paced download (a 32 KB receive buffer, a pause per read): bursts stay far
# below the capture socket's ring even for an ASan-built xtapd. Copies lost at a
# full ring are counted (capture_lost) but would leave the rebuilt file short.
fetch() {
    in_ns "$TGT" python3 - "$1" "$2" <<'PY'
import socket, sys, time, urllib.parse
u = urllib.parse.urlsplit(sys.argv[1])
s = socket.socket(socket.AF_INET6 if ":" in u.hostname else socket.AF_INET)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 32768)
s.connect((u.hostname, u.port))
s.sendall(f"GET {u.path} HTTP/1.0\r\nHost: {u.netloc}\r\n\r\n".encode())
chunks = []
for _ in range(100000):  # bounded: 5 MB arrive in far fewer reads
    b = s.recv(16384)
    if not b:
        break
    chunks.append(b)
    time.sleep(0.001)
head, _, body = b"".join(chunks).partition(b"\r\n\r\n")
if not head.startswith(b"HTTP/1.0 200"):
    sys.exit("HTTP: " + head[:40].decode(errors="replace"))
open(sys.argv[2], "wb").write(body)
PY
}
fetch http://198.18.2.2:8000/file.bin "$WORK/got4.bin"
fetch "http://[2001:db8:2::2]:8000/file.bin" "$WORK/got6.bin"
[[ $(sha256sum <"$WORK/got4.bin" | cut -d' ' -f1) == "$WANT" ]] || fail "the target's own IPv4 download is corrupt"
[[ $(sha256sum <"$WORK/got6.bin" | cut -d' ' -f1) == "$WANT" ]] || fail "the target's own IPv6 download is corrupt"
# A bystander on the same link: never copied.
in_ns "$TGT" ping -q -c 5 -i 0.05 -I 198.18.1.3 198.18.2.2 >/dev/null
sleep 2

note "the MD rebuilds the file from the copies"
REB4=$(python3 "$COPYTOOL" rebuild "$WORK/copies.bin" 198.18.2.2 8000)
REB6=$(python3 "$COPYTOOL" rebuild "$WORK/copies.bin" 2001:db8:2::2 8000)
echo "IPv4: $REB4"
echo "IPv6: $REB6"
jget() { python3 -c "import json,sys; print(json.loads(sys.argv[1])[sys.argv[2]])" "$1" "$2"; }
[[ $(jget "$REB4" sha256) == "$WANT" ]] || fail "file rebuilt from IPv4 copies differs from the original"
[[ $(jget "$REB6" sha256) == "$WANT" ]] || fail "file rebuilt from IPv6 copies differs from the original"

note "LIST counters agree with the copies"
L=$(dtcp "LIST DTCP/0.8" "Csource-ID: md1" "Flags: Stats")
COPIES=$(jget "$REB4" copies)
MATCHED=$(echo "$L" | awk -F': ' '/^MATCHING-PACKETS/ {s += $2} END {print s}')
echo "copies received: $COPIES, MATCHING-PACKETS summed: $MATCHED"
[[ "$MATCHED" -eq "$COPIES" ]] || fail "LIST says $MATCHED packets matched, the MD received $COPIES copies"
echo "$L" | grep -q "^X-XTAP-DROPPED-PACKETS: 0" || fail "drops reported: $L"

note "DELETE by Cdest-ID stops copying at once"
D=$(dtcp "DELETE DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Flags: STATIC")
echo "$D" | grep -q "^CRITERIA-COUNT: 2" || fail "DELETE by Cdest-ID: $D"
in_ns "$TGT" ping -q -c 5 -i 0.05 198.18.2.2 >/dev/null
sleep 1
AFTER=$(jget "$(python3 "$COPYTOOL" rebuild "$WORK/copies.bin" 198.18.2.2 8000)" copies)
[[ "$AFTER" -eq "$COPIES" ]] || fail "copies after DELETE: $AFTER (was $COPIES)"

note "X-JTap-Output-Interface over DTCP: only what leaves by the named interface"
# The target pings the web server (forwarded out r1, alias ge-0/0/1.0) and the
# MD (forwarded out r2); the criterion names r1 by its alias. The router finds
# the egress with the classifier's FIB lookup, so only the first pings count.
O=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Source-Address: 198.18.1.2" \
    "X-JTap-Output-Interface: ge-0/0/1.0" "Flags: STATIC")
echo "$O" | grep -q "^DTCP/0.8 200 OK" || fail "ADD with an output interface refused: $O"
# r2 is no transit interface of xtapd: refused, and the name echoed.
O2=$(dtcp "ADD DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Source-Address: 198.18.1.2" \
    "X-JTap-Output-Interface: r2" "Flags: STATIC")
echo "$O2" | grep -q "^DTCP/0.8 901" || fail "an output interface xtapd does not watch: $O2"
grep -qi '^X-JTap-Output-Interface: r2' <<<"$O2" || fail "refused output interface not echoed: $O2"
icmp_copies() { python3 "$COPYTOOL" count "$WORK/copies.bin" 1 "$1"; }
BEFORE_NET=$(icmp_copies 198.18.2.2) BEFORE_MD=$(icmp_copies 198.18.20.2)
in_ns "$MD" ip route add 198.18.1.0/24 via 198.18.20.1  # the MD answers the target's pings
in_ns "$TGT" ping -q -c 7 -i 0.05 198.18.2.2 >/dev/null
in_ns "$TGT" ping -q -c 7 -i 0.05 198.18.20.2 >/dev/null
sleep 1
NET_COPIES=$(($(icmp_copies 198.18.2.2) - BEFORE_NET)) MD_COPIES=$(($(icmp_copies 198.18.20.2) - BEFORE_MD))
echo "ICMP copies: out r1 $NET_COPIES (want 7), out r2 $MD_COPIES (want 0)"
[[ $NET_COPIES -eq 7 ]] || fail "pings leaving by ge-0/0/1.0: $NET_COPIES copies, want 7"
[[ $MD_COPIES -eq 0 ]] || fail "pings leaving by r2 were copied: $MD_COPIES"
D=$(dtcp "DELETE DTCP/0.8" "Csource-ID: md1" "Cdest-ID: cd1" "Flags: STATIC")
echo "$D" | grep -q "^CRITERIA-COUNT: 1" || fail "DELETE of the output-interface criterion: $D"

note "a replayed Seq is discarded, unanswered"
REPLAY=$(python3 "$COPYTOOL" sign Juniper "NOOP DTCP/0.8" "Csource-ID: md1" "Seq: 1" |
    in_ns "$MD" timeout 20 ssh -F /dev/null -p 32001 -o StrictHostKeyChecking=no \
        -o UserKnownHostsFile=/dev/null -o BatchMode=yes -o LogLevel=ERROR -i "$WORK/md_key" \
        -s md1@198.18.20.1 flow-tap-dtcp) || true
[[ -z "$REPLAY" ]] || fail "a replayed Seq 1 was answered: $REPLAY"
[[ $(dtcp "NOOP DTCP/0.8" "Csource-ID: md1") == "DTCP/0.8 200 OK"* ]] || fail "NOOP after the replay refused"

note "SIGTERM: clean stop, transit interfaces restored"
kill -TERM "${PIDS[0]}"
wait_for 20 bash -c "! kill -0 ${PIDS[0]} 2>/dev/null" || fail "xtapd did not stop on SIGTERM"
classifier_on "$RTR" r0 && fail "classifier left on r0"
in_ns "$RTR" ip link show | grep -q xtcap && fail "capture veth left behind"
grep -q '"event":"stop"' "$WORK/state/audit.jsonl" || fail "no stop record in the audit log"
echo "PASS: xtapd intercept"
