#!/usr/bin/env bash
# DTCP against xtapd itself, with the real OpenSSH client as the MD:
#   v1 198.18.5.2 -- r3 [rtr: xtapd] r4 -- v2 198.18.6.2
#                         r2 -- md 198.18.20.2 (DTCP over SSH, copies)
# The IPv6 FlowTapLite ADD of dtcp.md §8 byte for byte, LIST Flags: Both,
# DELETE by Cdest-ID, every reply's HMAC checked with the key; two users
# isolated (the other's IDs answer 431 like unknown ones, LIST shows only one's
# own); bad inputs each get their answer (dtcp.md §7): a status code for a
# truncated message, an unknown method, a malformed address, three Cdests;
# silence, an audit record and a usable channel for a bad HMAC, a replayed Seq,
# a Csource-ID that is not the user; a closed channel for an over-size message.
# VRF-Name: a Linux VRF device's transit members (when the kernel has VRFs),
# 901 for an unknown VRF or a master device that is not a VRF. Confidentiality:
# xtapd's stderr names no target, one client's errors never name another's.
source "$(dirname "$0")/lib.sh"
require_root
XTAPD="$BUILD_DIR/xtapd"
LINK_MEMBERS="$BUILD_DIR/link_members"
DTCPTOOL="$SOURCE_DIR/tests/integration/dtcptool.py"
COPYTOOL="$SOURCE_DIR/tests/integration/copytool.py"
[[ -x "$XTAPD" && -x "$LINK_MEMBERS" ]] || fail "build first: $XTAPD or $LINK_MEMBERS missing"
command -v ssh >/dev/null || fail "OpenSSH client missing: run scripts/bootstrap"

RTR="${TAG}rtr" MD="${TAG}md" V1="${TAG}v1" V2="${TAG}v2"
for ns in "$RTR" "$MD" "$V1" "$V2"; do netns_add "$ns"; done
ip link add v1 netns "$V1" type veth peer name r3 netns "$RTR"
ip link add v2 netns "$V2" type veth peer name r4 netns "$RTR"
ip link add m0 netns "$MD" type veth peer name r2 netns "$RTR"
in_ns "$V1" ip addr add 198.18.5.2/24 dev v1
in_ns "$V2" ip addr add 198.18.6.2/24 dev v2
in_ns "$RTR" ip addr add 198.18.5.1/24 dev r3
in_ns "$RTR" ip addr add 198.18.6.1/24 dev r4
in_ns "$RTR" ip addr add 198.18.20.1/24 dev r2
in_ns "$MD" ip addr add 198.18.20.2/24 dev m0
# The example's X-JTap-Cdest-Source-Address must be one of xtap's own.
in_ns "$RTR" ip addr add 198.51.100.1/32 dev lo
for l in "$V1 v1" "$V2 v2" "$RTR r3" "$RTR r4" "$RTR r2" "$MD m0"; do set -- $l; in_ns "$1" ip link set "$2" up; done
private_bpffs

for k in host ftap1 md2; do ssh-keygen -q -t ed25519 -N '' -C "$k" -f "$WORK/$k"; done
cat >"$WORK/xtap.json" <<J
{
  "dtcp": {"listen": ["198.18.20.1:32001"], "host_key": "$WORK/host"},
  "users": {
    "ftap1": {"authorized_keys": ["$(cat "$WORK/ftap1.pub")"],
              "destinations": {"cd1": {"address": "198.18.20.2", "port": 50000,
                                       "source_address": "198.18.20.1", "source_port": 49153}}},
    "md2": {"authorized_keys": ["$(cat "$WORK/md2.pub")"], "hmac_key": "md2-secret",
            "destinations": {"cd1": {"address": "198.18.20.2", "port": 50002,
                                     "source_address": "198.18.20.1", "source_port": 49154}}}},
  "interfaces": [{"name": "r3", "alias": "ge-0/0/1.0", "xdp_mode": "generic"},
                 {"name": "r4", "alias": "ge-0/0/2.0", "xdp_mode": "generic"}],
  "delivery": {"cleartext_destinations": ["198.18.20.0/24", "203.0.113.50/32"]},
  "dataplane": {"criteria": 4096, "rules": 65536, "anchors": 65536, "pin_dir": "$WORK/bpffs/xtap"},
  "state_dir": "$WORK/state", "audit_log": "$WORK/state/audit.jsonl", "control_socket": "$WORK/control.sock"
}
J
"$XTAPD" --check-config "$WORK/xtap.json"
note "starting xtapd in $RTR"
spawn_in "$RTR" "$XTAPD" --config "$WORK/xtap.json" >"$WORK/xtapd.log" 2>&1
XTAPD_PID=${PIDS[-1]}
wait_for 20 grep -q "DTCP over SSH listening" "$WORK/xtapd.log" || { cat "$WORK/xtapd.log"; fail "xtapd did not start"; }

declare -A KEY=([ftap1]=Juniper [md2]=md2-secret)
# dtcp USER: one SSH connection of USER with the real OpenSSH client; the
# requests on stdin, the server's messages on stdout.
dtcp() {
    env -u SSH_AUTH_SOCK ip netns exec "$MD" timeout 60 ssh -F /dev/null -p 32001 \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o BatchMode=yes \
        -o LogLevel=ERROR -o IdentitiesOnly=yes -i "$WORK/$1" -s "$1@198.18.20.1" flow-tap-dtcp
}
req() { local user=$1; shift; python3 "$DTCPTOOL" request "${KEY[$user]}" "$@"; }
# replies USER: the messages on stdin as JSON lines; fails if an HMAC does not verify.
replies() { python3 "$DTCPTOOL" replies "${KEY[$1]}" || fail "a reply's HMAC does not verify: $(cat)"; }
# field JSON NAME [N]: the Nth (default first) value of NAME, names case-insensitive.
field() {
    python3 -c '
import json, sys
m = json.loads(sys.argv[1]); want = sys.argv[2].lower(); n = int(sys.argv[3])
vals = [v for k, v in m["fields"] if k.lower() == want]
print(vals[n] if len(vals) > n else "")' "$1" "$2" "${3:-0}"
}
status() { python3 -c 'import json,sys; print(json.loads(sys.argv[1])["status"])' "$1"; }
count_field() {  # count_field JSON NAME: how many NAME lines
    python3 -c 'import json,sys; m=json.loads(sys.argv[1]); print(sum(k.lower()==sys.argv[2].lower() for k,_ in m["fields"]))' "$1" "$2"
}
# one USER LINE...: one request (Seq 1) on its own connection; its one reply as JSON.
one() {
    local user=$1 out
    shift
    out=$(req "$user" "$@" "Seq: 1" | dtcp "$user" | replies "$user")
    [[ $(echo "$out" | grep -c .) -eq 1 ]] || fail "expected one reply to '$1', got: $out"
    echo "$out"
}
audit_discards() {  # audit_discards USER CODE: audit records of USER's discards with CODE
    python3 -c '
import json, sys
n = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    n += r.get("event") == "dtcp" and r.get("user") == sys.argv[2] and r.get("discarded") == int(sys.argv[3])
print(n)' "$WORK/state/audit.jsonl" "$1" "$2"
}

note "the IPv6 FlowTapLite ADD of dtcp.md §8, byte for byte"
printf '%s\r\n' "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: cd1" "Source-Address: 2001:db8:10::/48" \
    "Dest-Address: 2001:db8:20::1" "Protocol: 6" "Dest-Port: 443" "Priority: 2" \
    "X-JTap-Input-Interface: ge-0/0/1.0" "X-JTap-IP-Version: ipv6" \
    "X-JTap-Cdest-Dest-Address: 203.0.113.50" "X-JTap-Cdest-Dest-Port: 50000" \
    "X-JTap-Cdest-Source-Address: 198.51.100.1" "X-JTap-Cdest-Source-Port: 49153" "Flags: STATIC" \
    "Seq: 102" >"$WORK/add6.body"
[[ $(python3 "$DTCPTOOL" hmac Juniper <"$WORK/add6.body") == f9fbfbdba3e4c40fe0b2ad0d737a0f7e2127a3e0 ]] ||
    fail "the example's bytes do not give the reference's HMAC"
{ cat "$WORK/add6.body"; printf 'Authentication-Info: f9fbfbdba3e4c40fe0b2ad0d737a0f7e2127a3e0\r\n\r\n'; } >"$WORK/add6.msg"
R=$(dtcp ftap1 <"$WORK/add6.msg" | tee "$WORK/add6.reply" | replies ftap1)
echo "$R"
[[ $(status "$R") == 200 && $(field "$R" SEQ) == 102 && $(field "$R" CRITERIA-ID) == 1 ]] ||
    fail "IPv6 example ADD: $R"
grep -q $'^DTCP/0.8 200 OK\r$' "$WORK/add6.reply" || fail "status line: $(cat -A "$WORK/add6.reply")"
grep -qi $'^AUTHENTICATION-INFO: [0-9a-f]\{40\}\r$' "$WORK/add6.reply" || fail "no Authentication-Info last"

R=$(one ftap1 "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: cd1" "Dest-Address: 198.18.5.2" "Flags: STATIC")
[[ $(status "$R") == 200 && $(field "$R" CRITERIA-ID) == 2 ]] || fail "IPv4 ADD: $R"

note "LIST Flags: Both"
R=$(one ftap1 "LIST DTCP/0.8" "Csource-ID: ftap1" "Flags: Both")
[[ $(status "$R") == 200 ]] || fail "LIST: $R"
[[ $(field "$R" CRITERIA-COUNT) == 2 && $(count_field "$R" CRITERIA-NUM) == 2 ]] || fail "LIST entries: $R"
[[ "$(field "$R" CRITERIA-ID) $(field "$R" CRITERIA-ID 1)" == "1 2" ]] || fail "LIST IDs: $R"
[[ $(field "$R" CSOURCE-ID) == ftap1 && $(field "$R" CSOURCE-ADDRESS) == 198.18.20.2 ]] || fail "LIST source: $R"
[[ $(field "$R" SOURCE-ADDRESS) == 2001:db8:10::/48 && $(field "$R" X-JTAP-INPUT-INTERFACE) == ge-0/0/1.0 ]] ||
    fail "LIST Both: criteria fields not echoed: $R"
[[ $(count_field "$R" MATCHING-PACKETS) == 2 && $(count_field "$R" AVERAGE-BANDWIDTH) == 2 ]] ||
    fail "LIST Both: no statistics: $R"

note "two users stay isolated"
R=$(one md2 "LIST DTCP/0.8" "Csource-ID: md2" "Flags: Both")
[[ $(status "$R") == 200 && $(count_field "$R" CRITERIA-NUM) == 0 ]] || fail "md2 sees criteria: $R"
OTHER=$(one md2 "DELETE DTCP/0.8" "Csource-ID: md2" "Criteria-ID: 1" "Flags: Static")
UNKNOWN=$(one md2 "DELETE DTCP/0.8" "Csource-ID: md2" "Criteria-ID: 77" "Flags: Static")
[[ $(status "$OTHER") == 431 && $(status "$UNKNOWN") == 431 ]] || fail "DELETE of another's ID: $OTHER / $UNKNOWN"
same_shape() {  # the two answers differ only in the echoed ID and the timestamp
    python3 -c '
import json, sys
a, b = json.loads(sys.argv[1]), json.loads(sys.argv[2])
strip = lambda m: (m["status"], m["reason"], [k.upper() for k, _ in m["fields"]])
sys.exit(0 if strip(a) == strip(b) else 1)' "$1" "$2"
}
same_shape "$OTHER" "$UNKNOWN" || fail "another's ID answers unlike an unknown one: $OTHER / $UNKNOWN"
R=$(one md2 "REFRESH DTCP/0.8" "Csource-ID: md2" "Criteria-ID: 2" "Timeout-Total: 100")
[[ $(status "$R") == 431 ]] || fail "REFRESH of another's ID: $R"
R=$(one md2 "LIST DTCP/0.8" "Csource-ID: md2" "Criteria-ID: 1")
[[ $(status "$R") == 200 && $(count_field "$R" CRITERIA-NUM) == 0 ]] || fail "md2 LISTs another's ID: $R"
R=$(one md2 "ADD DTCP/0.8" "Csource-ID: md2" "Cdest-ID: cd1" "Dest-Address: 198.18.6.2" "Flags: STATIC")
[[ $(status "$R") == 200 && $(field "$R" CRITERIA-ID) == 1 ]] || fail "md2's first ID should be 1: $R"
R=$(one md2 "LIST DTCP/0.8" "Csource-ID: md2")
[[ $(field "$R" CRITERIA-COUNT) == 1 && $(field "$R" CSOURCE-ID) == md2 && $(field "$R" DEST-ADDRESS) == 198.18.6.2 ]] ||
    fail "md2's LIST: $R"
R=$(one ftap1 "LIST DTCP/0.8" "Csource-ID: ftap1" "Flags: Criteria")
[[ $(field "$R" CRITERIA-COUNT) == 2 ]] || fail "ftap1's criteria changed by md2: $R"
# md2's replies, also to requests that touch ftap1's IDs: no trace of ftap1's targets.
OUT=$({ req md2 "DELETE DTCP/0.8" "Csource-ID: md2" "Criteria-ID: 1-5" "Flags: Static" "Seq: 1"
        req md2 "LIST DTCP/0.8" "Csource-ID: md2" "Criteria-ID: 1-9" "Seq: 2"; } | dtcp md2)
grep -q -e "2001:db8:10" -e "2001:db8:20" -e "198.18.5.2" <<<"$OUT" && fail "md2's replies name ftap1's targets: $OUT"

note "DELETE by Cdest-ID"
R=$(one ftap1 "DELETE DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: cd1" "Flags: Static")
[[ $(status "$R") == 200 && $(field "$R" CRITERIA-COUNT) == 2 ]] || fail "DELETE by Cdest-ID: $R"
R=$(one ftap1 "LIST DTCP/0.8" "Csource-ID: ftap1")
[[ $(count_field "$R" CRITERIA-NUM) == 0 ]] || fail "criteria left after DELETE by Cdest-ID: $R"
R=$(one md2 "LIST DTCP/0.8" "Csource-ID: md2")
[[ $(count_field "$R" CRITERIA-NUM) == 0 ]] || fail "md2's criteria should be gone (its DELETE 1-5): $R"

note "bad inputs: each gets its status code"
expect() {  # expect WHAT CODE ITEM_VALUE USER LINE...: one request's answer and its echoed item
    local what=$1 code=$2 item=$3 user=$4 r
    shift 4
    r=$(one "$user" "$@")
    [[ $(status "$r") == "$code" ]] || fail "'$*' should get $code: $r"
    [[ -z "$item" ]] || grep -qF -- "$item" <<<"$r" || fail "'$*': offending item '$item' not echoed: $r"
    echo "  $code $(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["reason"])' "$r"): $what"
}
# Truncated: the message ends before its Seq and Authentication-Info.
R=$(printf 'ADD DTCP/0.8\r\nCsource-ID: ftap1\r\nCdest-ID: cd1\r\n\r\n' | dtcp ftap1 | replies ftap1)
[[ $(status "$R") == 400 ]] || fail "truncated message: $R"
echo "  400 Bad Request: truncated message"
expect "unknown method" 501 "" ftap1 "FOO DTCP/0.8" "Csource-ID: ftap1"
expect "malformed address" 400 198.18.5.300 ftap1 "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: cd1" "Dest-Address: 198.18.5.300" "Flags: STATIC"
expect "three Cdest-IDs" 400 "a, b, c" ftap1 "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: a, b, c" "Dest-Address: 198.18.5.2" "Flags: STATIC"
expect "three Cdests with X-JTap addresses" 400 "" ftap1 "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: c1, c2, c3" \
    "X-JTap-Cdest-Dest-Address: 198.18.20.2, 198.18.20.3, 198.18.20.4" "X-JTap-Cdest-Dest-Port: 1, 2, 3" \
    "X-JTap-Cdest-Source-Address: 198.18.20.1" "X-JTap-Cdest-Source-Port: 4" "Dest-Address: 198.18.5.2" "Flags: STATIC"
expect "unsupported version" 505 "" ftap1 "NOOP DTCP/0.9" "Csource-ID: ftap1"
expect "unknown Cdest-ID" 430 cd9 ftap1 "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: cd9" "Dest-Address: 198.18.5.2" "Flags: STATIC"
expect "no lifetime" 433 "" ftap1 "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: cd1" "Dest-Address: 198.18.5.2"
expect "unknown Criteria-ID" 431 99 ftap1 "DELETE DTCP/0.8" "Csource-ID: ftap1" "Criteria-ID: 99"
# A message that stops mid-line when the MD closes: no answer, nothing breaks.
printf 'NOOP DTCP/0.8\r\nCsource-ID: ftap1\r\nSe' | dtcp ftap1 >"$WORK/cut.out" || true
[[ -s "$WORK/cut.out" ]] && fail "a message cut at EOF got an answer: $(cat "$WORK/cut.out")"

note "silent discards: bad HMAC, replayed Seq, Csource-ID not the user; the channel stays usable"
B497=$(audit_discards ftap1 497) B498=$(audit_discards ftap1 498) B499=$(audit_discards ftap1 499)
{
    req ftap1 "NOOP DTCP/0.8" "Csource-ID: ftap1" "Seq: 10"
    python3 "$DTCPTOOL" request WrongKey "NOOP DTCP/0.8" "Csource-ID: ftap1" "Seq: 11"
    req ftap1 "NOOP DTCP/0.8" "Csource-ID: ftap1" "Seq: 10"  # replay
    req ftap1 "NOOP DTCP/0.8" "Csource-ID: md2" "Seq: 12"
    req ftap1 "LIST DTCP/0.8" "Csource-ID: ftap1" "Seq: 13"
} | dtcp ftap1 | replies ftap1 >"$WORK/discard.replies"
cat "$WORK/discard.replies"
[[ $(grep -c . "$WORK/discard.replies") -eq 2 ]] || fail "discarded requests were answered"
[[ $(field "$(sed -n 1p "$WORK/discard.replies")" SEQ) == 10 ]] || fail "first reply not to Seq 10"
R=$(sed -n 2p "$WORK/discard.replies")
[[ $(status "$R") == 200 && $(field "$R" SEQ) == 13 ]] || fail "the request after the discards not answered: $R"
sleep 0.5
[[ $(audit_discards ftap1 497) -eq $((B497 + 1)) ]] || fail "bad HMAC not audited"
[[ $(audit_discards ftap1 498) -eq $((B498 + 1)) ]] || fail "replayed Seq not audited"
[[ $(audit_discards ftap1 499) -eq $((B499 + 1)) ]] || fail "Csource-ID mismatch not audited"

note "a message over 64 KiB closes the channel; the next connection is served"
RC=0
python3 - <<'PY' | dtcp ftap1 >"$WORK/big.out" 2>/dev/null || RC=$?
import hashlib, hmac, sys
body = b"NOOP DTCP/0.8\r\nCsource-ID: ftap1\r\nX-Pad: " + b"a" * 70000 + b"\r\nSeq: 1\r\n"
sys.stdout.buffer.write(body + b"Authentication-Info: " + hmac.new(b"Juniper", body, hashlib.sha1).hexdigest().encode() + b"\r\n\r\n")
PY
[[ -s "$WORK/big.out" ]] && fail "an over-size message got a reply: $(head -c 300 "$WORK/big.out")"
wait_for 5 grep -q "message over 65536 bytes" "$WORK/xtapd.log" || fail "over-size message not logged"
R=$(one ftap1 "NOOP DTCP/0.8" "Csource-ID: ftap1")
[[ $(status "$R") == 200 ]] || fail "NOOP after the over-size message: $R"

note "VRF-Name"
R=$(one ftap1 "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: cd1" "Source-Address: 198.18.4.0/22" \
    "X-JTap-VRF-Name: novrf" "Flags: STATIC")
[[ $(status "$R") == 901 ]] || fail "unknown VRF: $R"
grep -qi '"X-JTap-VRF-Name", "novrf"' <<<"$R" || fail "unknown VRF not echoed: $R"
# A master device that is not a VRF (a bridge) is no VRF either; the resolver
# reads its members all the same (the part a VRF shares with it).
in_ns "$RTR" ip link add xbr0 type bridge
in_ns "$RTR" ip link add xb0 type veth peer name xb1
in_ns "$RTR" ip link set xb0 master xbr0
[[ $(in_ns "$RTR" "$LINK_MEMBERS" xbr0 bridge) == $(in_ns "$RTR" cat /sys/class/net/xb0/ifindex) ]] ||
    fail "bridge members over rtnetlink: $(in_ns "$RTR" "$LINK_MEMBERS" xbr0 bridge)"
RC=0; in_ns "$RTR" "$LINK_MEMBERS" xbr0 vrf || RC=$?
[[ $RC -eq 1 ]] || fail "a bridge taken for a VRF"
R=$(one ftap1 "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: cd1" "Source-Address: 198.18.4.0/22" \
    "X-JTap-VRF-Name: xbr0" "Flags: STATIC")
[[ $(status "$R") == 901 ]] || fail "a bridge as VRF-Name: $R"
if in_ns "$RTR" ip link add blue type vrf table 10 2>/dev/null; then
    in_ns "$RTR" ip link set blue up
    in_ns "$RTR" ip link add red type vrf table 11
    R=$(one ftap1 "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: cd1" "Source-Address: 198.18.4.0/22" \
        "X-JTap-VRF-Name: red" "Flags: STATIC")
    [[ $(status "$R") == 901 ]] || fail "a VRF without transit members: $R"
    in_ns "$RTR" ip link set r3 master blue
    in_ns "$RTR" ip link set r3 up
    [[ $(in_ns "$RTR" "$LINK_MEMBERS" blue vrf) == $(in_ns "$RTR" cat /sys/class/net/r3/ifindex) ]] ||
        fail "VRF members: $(in_ns "$RTR" "$LINK_MEMBERS" blue vrf)"
    spawn_in "$MD" python3 "$COPYTOOL" receive 198.18.20.2 50000 "$WORK/vrf.bin" 60 >/dev/null
    sleep 0.5
    R=$(one ftap1 "ADD DTCP/0.8" "Csource-ID: ftap1" "Cdest-ID: cd1" "Source-Address: 198.18.4.0/22" \
        "Protocol: 1" "X-JTap-VRF-Name: blue" "Flags: STATIC")
    [[ $(status "$R") == 200 ]] || fail "ADD with a VRF: $R"
    sources() {  # the inner IPv4 sources of the copies so far, with counts
        python3 -c '
import collections, ipaddress, sys
sys.path.insert(0, sys.argv[2]); import copytool
c = collections.Counter(str(ipaddress.ip_address(p[12:16])) for p in copytool.records(sys.argv[1]) if p and p[0] >> 4 == 4)
print(" ".join(f"{k}={v}" for k, v in sorted(c.items())))' "$WORK/vrf.bin" "$(dirname "$COPYTOOL")"
    }
    in_ns "$V1" ping -q -c 5 -i 0.05 198.18.5.1 >/dev/null
    in_ns "$V2" ping -q -c 5 -i 0.05 198.18.6.1 >/dev/null
    sleep 1
    [[ $(sources) == "198.18.5.2=5" ]] || fail "VRF blue = r3: copies $(sources), expected 5 from 198.18.5.2"
    note "r4 joins VRF blue: its criteria follow within a few seconds"
    in_ns "$RTR" ip link set r4 master blue
    in_ns "$RTR" ip link set r4 up
    sleep 3
    in_ns "$V2" ping -q -c 5 -i 0.05 198.18.6.1 >/dev/null
    sleep 1
    [[ $(sources) == "198.18.5.2=5 198.18.6.2=5" ]] || fail "after r4 joined: copies $(sources)"
else
    echo "SKIP: this kernel has no VRF devices (CONFIG_NET_VRF); VRF members checked on a bridge only"
fi

note "confidentiality: xtapd's stderr names no target"
for target in 2001:db8:10 2001:db8:20 198.18.5.2 198.18.6.2 198.18.4.0 198.18.5.300 203.0.113.50; do
    grep -qF "$target" "$WORK/xtapd.log" && fail "xtapd's log names target $target: $(grep -F "$target" "$WORK/xtapd.log")"
done
kill -0 "$XTAPD_PID" || fail "xtapd died"
kill -TERM "$XTAPD_PID"
wait_for 20 bash -c "! kill -0 $XTAPD_PID 2>/dev/null" || fail "xtapd did not stop on SIGTERM"
echo "PASS: xtapd DTCP"
