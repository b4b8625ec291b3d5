#!/usr/bin/env bash
# DTCP over SSH end to end: dtcp_echo_server (dtcp::SshServer and the real
# request decoder) in namespace srv on IPv4 and IPv6, driven from namespace cli
# by the real OpenSSH client and by xtapctl:
#   cli 198.18.20.2, 2001:db8:20::2 -- srv 198.18.20.1, 2001:db8:20::1
# Checks: NOOP answered 200 with a verifying HMAC (IPv4, IPv6, several requests
# on one channel); shell, exec, pty, other subsystems and forwarding refused;
# unknown user, wrong key and missing permission refused; passwords against
# yescrypt and SHA-512 hashes, lockout after repeated failures, the attempt
# limit; connection_limit and rate_limit refuse before the SSH banner; an idle
# unauthenticated connection is closed after auth_timeout; an over-64-KiB
# message closes the channel; a bad HMAC is dropped silently (audited, no
# content) and the channel stays usable; a peer that does not read is closed;
# xtapctl with key, password, pinned key, known_hosts; stop with open sessions.
# DTCP_ECHO_SERVER and XTAPCTL override the binaries' paths.
source "$(dirname "$0")/lib.sh"
require_root
ECHO=${DTCP_ECHO_SERVER:-$BUILD_DIR/dtcp_echo_server}
XTAPCTL=${XTAPCTL:-$BUILD_DIR/xtapctl}
[[ -x "$ECHO" ]] || fail "build first: $ECHO missing"
[[ -x "$XTAPCTL" ]] || fail "build first: $XTAPCTL missing"
for tool in ssh ssh-keygen openssl setsid; do
    command -v "$tool" >/dev/null || fail "missing tool $tool: run scripts/bootstrap"
done

SRV="${TAG}srv" CLI="${TAG}cli"
netns_add "$SRV"; netns_add "$CLI"
ip link add s0 netns "$SRV" type veth peer name c0 netns "$CLI"
in_ns "$SRV" ip addr add 198.18.20.1/24 dev s0
in_ns "$SRV" ip addr add 2001:db8:20::1/64 dev s0 nodad
in_ns "$CLI" ip addr add 198.18.20.2/24 dev c0
in_ns "$CLI" ip addr add 2001:db8:20::2/64 dev c0 nodad
in_ns "$SRV" ip link set s0 up
in_ns "$CLI" ip link set c0 up
V4=198.18.20.1 V6=2001:db8:20::1

note "keys, password hashes, users"
cd "$WORK"
export XDG_STATE_HOME="$WORK/state"  # xtapctl's Seq counter files stay in the work directory
for k in host md1 stranger; do ssh-keygen -q -t ed25519 -N '' -C "$k" -f "$WORK/$k"; done
for i in 1 2 3 4 5 6 7; do ssh-keygen -q -t ed25519 -N '' -C "junk$i" -f "$WORK/junk$i"; done
HOST_FP=$(ssh-keygen -l -E sha256 -f "$WORK/host.pub" | awk '{print $2}')
YESCRYPT=$(python3 - 'yes-secret' <<'PY'
import ctypes, ctypes.util, sys
lib = ctypes.CDLL(ctypes.util.find_library("crypt") or "libcrypt.so.1")
lib.crypt_gensalt.restype = ctypes.c_char_p
lib.crypt_gensalt.argtypes = [ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p, ctypes.c_int]
lib.crypt.restype = ctypes.c_char_p
lib.crypt.argtypes = [ctypes.c_char_p, ctypes.c_char_p]
print(lib.crypt(sys.argv[1].encode(), lib.crypt_gensalt(b"$y$", 0, None, 0)).decode())
PY
)
SHA512=$(openssl passwd -6 'sha-secret')
[[ $YESCRYPT == '$y$'* ]] || fail "no yescrypt hash: $YESCRYPT"
[[ $SHA512 == '$6$'* ]] || fail "no SHA-512 hash: $SHA512"
cat >"$WORK/users.json" <<J
{"users":[
 {"name":"md1","authorized_keys":["$(cat md1.pub)"],"flow_tap_operation":true},
 {"name":"pwy","password_hash":"$YESCRYPT","flow_tap_operation":true},
 {"name":"pw6","password_hash":"$SHA512","flow_tap_operation":true},
 {"name":"locky","password_hash":"$YESCRYPT","flow_tap_operation":true},
 {"name":"noperm","authorized_keys":["$(cat md1.pub)"],"password_hash":"$SHA512"},
 {"name":"badreply","authorized_keys":["$(cat md1.pub)"],"flow_tap_operation":true,
  "reply_hmac_key":"NotJuniper"}
]}
J
printf 'yes-secret\n' >pw_yes; printf 'sha-secret\n' >pw_sha; printf 'wrong-secret\n' >pw_wrong
for name in yes sha wrong; do
    printf '#!/bin/sh\ncat %s\n' "$WORK/pw_$name" >"askpass_$name"; chmod +x "askpass_$name"
done

# tcp.py: raw TCP probes that OpenSSH cannot make.
#   probe HOST PORT        banner | closed | timeout: what the server sends first
#   hold HOST PORT N SECS  opens N connections, prints each one's first answer, holds them
#   silent HOST PORT       connects, sends nothing, prints the seconds until the server closes
cat >"$WORK/tcp.py" <<'PY'
import socket, sys, time
def connect(host, port):
    s = socket.socket(socket.AF_INET6 if ':' in host else socket.AF_INET, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect((host, int(port)))
    return s
def first_answer(s, timeout):
    s.settimeout(timeout)
    data = b''
    try:
        while b'\n' not in data:
            chunk = s.recv(256)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        return 'timeout'
    except ConnectionResetError:
        return 'closed'
    return 'banner' if data.startswith(b'SSH-2.0-') else ('closed' if not data else 'other')
cmd, host, port = sys.argv[1:4]
if cmd == 'probe':
    print(first_answer(connect(host, port), 5))
elif cmd == 'hold':
    held = []
    for _ in range(int(sys.argv[4])):
        s = connect(host, port)
        print(first_answer(s, 5), flush=True)
        held.append(s)
    time.sleep(float(sys.argv[5]))
elif cmd == 'silent':
    s = connect(host, port)
    start = time.monotonic()
    s.settimeout(60)
    try:
        while s.recv(4096):
            pass
    except ConnectionResetError:
        pass
    print(f"{time.monotonic() - start:.2f}")
PY

# dtcp.py: builds signed requests and checks signed replies (dtcp.md §8),
# independently of xtap's code.
#   request USER SEQ [KEY [METHOD [PAD_BYTES]]]  one signed request on stdout
#   check KEY < replies                           every message's HMAC; prints "STATUS SEQ" per message
cat >"$WORK/dtcp.py" <<'PY'
import hashlib, hmac, sys
def sign(body, key):
    return body + b"Authentication-Info: " + hmac.new(key, body, hashlib.sha1).hexdigest().encode() + b"\r\n\r\n"
if sys.argv[1] == 'request':
    user, seq = sys.argv[2], sys.argv[3]
    key = (sys.argv[4] if len(sys.argv) > 4 else 'Juniper').encode()
    method = sys.argv[5] if len(sys.argv) > 5 else 'NOOP'
    pad = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    body = f"{method} DTCP/0.8\r\nCsource-ID: {user}\r\n".encode()
    if pad:
        body += b"X-Pad: " + b"a" * pad + b"\r\n"
    body += f"Seq: {seq}\r\n".encode()
    try:
        sys.stdout.buffer.write(sign(body, key))
        sys.stdout.flush()
    except BrokenPipeError:  # the server refused before reading: expected in refusal tests
        sys.stderr.close()
elif sys.argv[1] == 'check':
    key = sys.argv[2].encode()
    data = sys.stdin.buffer.read()
    bad = 0
    for message in [m for m in data.split(b"\r\n\r\n") if m.strip()]:
        lines = message.split(b"\r\n")
        status = lines[0].split(b" ")[1].decode()
        seq, covered, auth = '-', b'', None
        for line in lines:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"authentication-info":
                auth = value.strip().decode()
                break
            if name.strip().lower() == b"seq":
                seq = value.strip().decode()
            covered += line + b"\r\n"
        ok = auth is not None and hmac.compare_digest(auth, hmac.new(key, covered, hashlib.sha1).hexdigest())
        bad += not ok
        print(status, seq, "hmac-ok" if ok else "hmac-BAD")
    sys.exit(1 if bad else 0)
PY
request() { python3 "$WORK/dtcp.py" request "$@"; }
check_replies() { python3 "$WORK/dtcp.py" check "${1:-Juniper}"; }

# ssh_dtcp ADDR USER [ssh options...]: the MD's way in; request on stdin.
ssh_base() {
    local port=$1; shift
    env -u SSH_AUTH_SOCK ip netns exec "$CLI" timeout 30 ssh -F /dev/null -p "$port" \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        -o ConnectTimeout=10 -o IdentitiesOnly=yes "$@"
}
ssh_key() { ssh_base "${PORT:-32001}" -o BatchMode=yes -i "$WORK/md1" "$@"; }
ssh_dtcp() { local addr=$1 user=$2; shift 2; ssh_key "$@" -s "$user@$addr" flow-tap-dtcp; }
ssh_password() {  # ssh_password ASKPASS USER ADDR
    SSH_ASKPASS_REQUIRE=force SSH_ASKPASS="$WORK/askpass_$1" DISPLAY=none setsid -w \
        env -u SSH_AUTH_SOCK ip netns exec "$CLI" timeout 30 ssh -F /dev/null -p 32001 \
        -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR \
        -o PubkeyAuthentication=no -o PreferredAuthentications=password \
        -o NumberOfPasswordPrompts=1 -s "$2@$3" flow-tap-dtcp
}
xtapctl_noop() { ip netns exec "$CLI" "$XTAPCTL" dtcp noop "$@"; }

# start_server NAME PORT [options...]: one dtcp_echo_server in srv on IPv4 and IPv6.
start_server() {
    local name=$1 port=$2; shift 2
    spawn ip netns exec "$SRV" "$ECHO" --host-key "$WORK/host" --users "$WORK/users.json" \
        --listen "$V4:$port" --listen "[$V6]:$port" --audit "$WORK/$name.audit" "$@" \
        >"$WORK/$name.out" 2>"$WORK/$name.log"
    eval "${name}_PID=$!"
    wait_for 10 grep -q '"ready"' "$WORK/$name.out" || { cat "$WORK/$name.log"; fail "$name did not start"; }
}
# counters NAME: the server's counters now, as JSON.
counters() {
    local name=$1 pid_var="${1}_PID" before
    before=$(grep -c '"counters"' "$WORK/$name.out" || true)
    kill -USR1 "${!pid_var}"
    wait_for 10 bash -c "[[ \$(grep -c '\"counters\"' '$WORK/$name.out') -gt $before ]]" || fail "$name gave no counters"
    grep '"counters"' "$WORK/$name.out" | tail -1
}
jget() { python3 -c "import json,sys; d=json.loads(sys.argv[1]); print(eval(sys.argv[2], {}, {'d': d}))" "$1" "$2"; }
expect_counter() {  # expect_counter JSON NAME OP VALUE
    local v
    v=$(jget "$1" "d['counters']['$2']")
    test "$v" "-$3" "$4" || fail "counter $2 = $v, expected -$3 $4: $1"
}

note "main server: 32001 on $V4 and [$V6]"
start_server main 32001 --auth-timeout-ms 3000 --password-delay-ms 200 --lockout-failures 3 \
    --lockout-duration-s 120 --max-auth-attempts 6
grep -q "\"host_key\":\"$HOST_FP\"" "$WORK/main.out" || fail "host key fingerprint differs from ssh-keygen's"

note "NOOP over IPv4 and IPv6: 200, HMAC verifies, several requests on one channel"
request md1 1 | ssh_dtcp $V4 md1 >"$WORK/noop4.out" || fail "ssh NOOP over IPv4 failed"
check_replies <"$WORK/noop4.out" >"$WORK/noop4.check" || fail "reply HMAC: $(cat "$WORK/noop4.check")"
[[ $(cat "$WORK/noop4.check") == "200 1 hmac-ok" ]] || fail "IPv4 NOOP: $(cat "$WORK/noop4.check")"
grep -q $'^DTCP/0.8 200 OK\r$' "$WORK/noop4.out" || fail "status line: $(cat -A "$WORK/noop4.out")"
{ request md1 7; request md1 8; request md1 9; } | ssh_dtcp $V6 md1 >"$WORK/noop6.out" || fail "ssh NOOP over IPv6 failed"
check_replies <"$WORK/noop6.out" >"$WORK/noop6.check" || fail "reply HMAC: $(cat "$WORK/noop6.check")"
[[ $(tr '\n' ' ' <"$WORK/noop6.check") == "200 7 hmac-ok 200 8 hmac-ok 200 9 hmac-ok " ]] ||
    fail "IPv6 NOOPs: $(cat "$WORK/noop6.check")"
request md1 1 Juniper LIST | ssh_dtcp $V4 md1 | check_replies | grep -q "^501 1 hmac-ok$" || fail "LIST should get 501"
request md1 1 Juniper ADD | ssh_dtcp $V4 md1 | check_replies | grep -q "^400 1 hmac-ok$" || fail "ADD without Cdest-ID should get 400"

note "shell, exec, pty, other subsystems and forwarding refused"
ssh_key md1@$V4 </dev/null 2>"$WORK/shell.err" && fail "shell accepted"
grep -q "shell request failed" "$WORK/shell.err" || fail "shell: $(cat "$WORK/shell.err")"
ssh_key md1@$V4 echo hello </dev/null >"$WORK/exec.out" 2>"$WORK/exec.err" && fail "exec accepted"
grep -q "exec request failed" "$WORK/exec.err" || fail "exec: $(cat "$WORK/exec.err")"
[[ -s "$WORK/exec.out" ]] && fail "exec produced output"
{ request md1 1; sleep 1; } | ssh_dtcp $V4 md1 -tt >/dev/null 2>"$WORK/pty.err" && fail "pty accepted"
grep -q "PTY allocation request failed" "$WORK/pty.err" || fail "pty: $(cat "$WORK/pty.err")"
ssh_key -s md1@$V4 sftp </dev/null 2>"$WORK/sftp.err" && fail "sftp subsystem accepted"
grep -q "subsystem request failed" "$WORK/sftp.err" || fail "sftp: $(cat "$WORK/sftp.err")"
ssh_key -W "$V4:22" md1@$V4 </dev/null 2>"$WORK/fwd.err" && fail "direct-tcpip accepted"
grep -q "stdio forwarding failed" "$WORK/fwd.err" || fail "direct-tcpip: $(cat "$WORK/fwd.err")"
ssh_key -N -o ExitOnForwardFailure=yes -R 0:127.0.0.1:9 md1@$V4 </dev/null 2>"$WORK/rfwd.err" &&
    fail "tcpip-forward accepted"
grep -q "remote port forwarding failed" "$WORK/rfwd.err" || fail "tcpip-forward: $(cat "$WORK/rfwd.err")"
for what in "a shell" "an exec request" "a pty" "subsystem 'sftp'"; do
    grep -q "refused $what" "$WORK/main.log" || fail "no log of the refused $what"
done

note "unknown user, wrong key, no permission: refused"
request nobody 1 | ssh_dtcp $V4 nobody >/dev/null 2>"$WORK/nobody.err" && fail "unknown user accepted"
grep -q "Permission denied" "$WORK/nobody.err" || fail "unknown user: $(cat "$WORK/nobody.err")"
request md1 1 | ssh_base 32001 -o BatchMode=yes -i "$WORK/stranger" -s md1@$V4 flow-tap-dtcp \
    >/dev/null 2>"$WORK/stranger.err" && fail "wrong key accepted"
grep -q "Permission denied" "$WORK/stranger.err" || fail "wrong key: $(cat "$WORK/stranger.err")"
request noperm 1 | ssh_dtcp $V4 noperm >/dev/null 2>&1 && fail "user without flow-tap-operation accepted"
ssh_password sha noperm $V4 </dev/null >/dev/null 2>&1 && fail "password of a user without permission accepted"
grep -q "publickey authentication of user 'noperm' failed: no flow-tap-operation permission" \
    "$WORK/main.log" || fail "no permission failure logged"

note "passwords: yescrypt and SHA-512 hashes; wrong password refused"
request pwy 1 | ssh_password yes pwy $V4 | check_replies | grep -q '^200 1 hmac-ok$' ||
    fail "password login against a yescrypt hash"
request pw6 1 | ssh_password sha pw6 $V6 | check_replies | grep -q '^200 1 hmac-ok$' ||
    fail "password login against a SHA-512 hash"
request pwy 1 | ssh_password wrong pwy $V4 >/dev/null 2>&1 && fail "wrong password accepted"

note "lockout: 3 wrong passwords lock the user from this address, even for the right one"
for i in 1 2 3; do
    xtapctl_noop $V4 -l locky --password-file "$WORK/pw_wrong" --insecure-host-key \
        >/dev/null 2>&1 && fail "wrong password $i accepted"
done
xtapctl_noop $V4 -l locky --password-file "$WORK/pw_yes" --insecure-host-key >/dev/null 2>&1 &&
    fail "locked-out user logged in"
grep -q "password logins of user 'locky' from 198.18.20.2 locked" "$WORK/main.log" || fail "no lockout logged"
C=$(counters main)
expect_counter "$C" auth_locked_out ge 1

note "attempt limit: 7 keys offered, closed after 6 failures"
JUNK=(); for i in 1 2 3 4 5 6 7; do JUNK+=(-i "$WORK/junk$i"); done
request md1 1 | ssh_base 32001 -o BatchMode=yes "${JUNK[@]}" -s md1@$V4 flow-tap-dtcp >/dev/null 2>&1 &&
    fail "junk keys accepted"
wait_for 5 grep -q "6 failed authentication attempts: closed" "$WORK/main.log" || fail "attempt limit not enforced"

note "auth timeout: an idle connection is closed after 3 s"
T=$(in_ns "$CLI" python3 "$WORK/tcp.py" silent $V4 32001)
python3 -c "import sys; t=float(sys.argv[1]); sys.exit(0 if 2.5 <= t <= 6 else 1)" "$T" ||
    fail "idle connection closed after $T s, expected about 3"
T=$(in_ns "$CLI" python3 "$WORK/tcp.py" silent $V6 32001)
python3 -c "import sys; t=float(sys.argv[1]); sys.exit(0 if 2.5 <= t <= 6 else 1)" "$T" ||
    fail "idle IPv6 connection closed after $T s, expected about 3"
C=$(counters main)
expect_counter "$C" auth_timeouts ge 2

note "a message over 64 KiB closes the channel"
RC=0
request md1 1 Juniper NOOP 70000 | ssh_dtcp $V4 md1 >"$WORK/big.out" 2>"$WORK/big.err" || RC=$?
[[ $RC -ne 0 ]] || fail "the channel of an over-64-KiB message should end with a non-zero exit status"
[[ -s "$WORK/big.out" ]] && fail "an over-64-KiB message got a reply: $(head -c 200 "$WORK/big.out")"
grep -q "message over 65536 bytes" "$WORK/main.log" || fail "too large message not logged"
request md1 1 Juniper NOOP 60000 | ssh_dtcp $V4 md1 | check_replies | grep -q '^200 1 hmac-ok$' ||
    fail "a 60 KB message should still be answered"

note "a bad HMAC is dropped silently and audited; the channel stays usable"
{ request md1 5 WrongKey; request md1 6; } | ssh_dtcp $V4 md1 >"$WORK/badhmac.out" ||
    fail "ssh with a bad HMAC request failed"
[[ $(check_replies <"$WORK/badhmac.out") == "200 6 hmac-ok" ]] ||
    fail "expected only the reply to Seq 6: $(check_replies <"$WORK/badhmac.out")"
grep -q "discard code=497 user=md1 peer=198.18.20.2:[0-9]* session=[0-9]* channel=[0-9]* seq=5" \
    "$WORK/main.audit" || fail "discard not audited: $(cat "$WORK/main.audit")"
# Logs and audit name users, peers, events; never what a message said.
grep -q -e "X-Pad" -e "Csource-ID" -e "NOOP" -e "aaaaaaaa" "$WORK/main.log" "$WORK/main.audit" &&
    fail "message contents in the log or audit file"

note "xtapctl: key over IPv4, password over IPv6, pinned key, known_hosts, replies checked"
xtapctl_noop $V4 -l md1 -i "$WORK/md1" --insecure-host-key --count 3 --seq 100 >"$WORK/x1.out" 2>>"$WORK/xtapctl.err" ||
    fail "xtapctl noop with a key failed: $(cat "$WORK/x1.out")"
[[ $(grep -c '^DTCP/0.8 200 OK$' "$WORK/x1.out") -eq 3 ]] || fail "xtapctl --count 3: $(cat "$WORK/x1.out")"
xtapctl_noop $V6 -l pwy --password-file "$WORK/pw_yes" --host-key-sha256 "$HOST_FP" \
    --send-async --linger 1 --seq-file "$WORK/seq_pwy" >"$WORK/x2.out" ||
    fail "xtapctl noop with a password failed: $(cat "$WORK/x2.out")"
grep -q '^DTCP/0.8 200 OK$' "$WORK/x2.out" || fail "xtapctl password NOOP: $(cat "$WORK/x2.out")"
grep -q '^DTCP/0.8 131 ' "$WORK/x2.out" || fail "no 131 notification: $(cat "$WORK/x2.out")"
xtapctl_noop $V6 -l pw6 --password-file "$WORK/pw_sha" --host-key-sha256 "$HOST_FP" \
    --seq-file "$WORK/seq_pw6" >/dev/null || fail "xtapctl with a SHA-512 password failed"
xtapctl_noop $V6 -l pw6 --password-file "$WORK/pw_sha" --host-key-sha256 "$HOST_FP" \
    --seq-file "$WORK/seq_pw6" >/dev/null || fail "second xtapctl run with the same Seq file failed"
[[ $(cat "$WORK/seq_pw6") -eq 2 ]] || fail "Seq file should hold 2: $(cat "$WORK/seq_pw6")"
echo "[$V4]:32001 $(cat "$WORK/host.pub")" >"$WORK/known_hosts"
xtapctl_noop $V4 -l md1 -i "$WORK/md1" --known-hosts "$WORK/known_hosts" >/dev/null 2>>"$WORK/xtapctl.err" ||
    fail "xtapctl with known_hosts failed"
RC=0; xtapctl_noop $V4 -l md1 -i "$WORK/md1" --known-hosts /dev/null >/dev/null 2>&1 || RC=$?
[[ $RC -eq 2 ]] || fail "xtapctl accepted an unknown host key"
RC=0; xtapctl_noop $V4 -l md1 -i "$WORK/md1" \
    --host-key-sha256 SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA >/dev/null 2>&1 || RC=$?
[[ $RC -eq 2 ]] || fail "xtapctl accepted a host key that does not match the pin"
RC=0; xtapctl_noop $V4 -l badreply -i "$WORK/md1" --insecure-host-key >/dev/null 2>"$WORK/x3.err" || RC=$?
[[ $RC -eq 4 ]] || fail "xtapctl accepted a reply signed with another key"
grep -q "does not verify" "$WORK/x3.err" || fail "xtapctl: $(cat "$WORK/x3.err")"
xtapctl_noop $V4 -l badreply -i "$WORK/md1" --insecure-host-key --no-verify-reply >/dev/null 2>&1 ||
    fail "xtapctl --no-verify-reply should accept the reply"
printf 'NOOP DTCP/0.7\nCsource-ID: md1\nSeq: 999\nAuthentication-Info: 0000\n\n' >"$WORK/raw.msg"
xtapctl_noop $V6 -l md1 -i "$WORK/md1" --insecure-host-key --raw "$WORK/raw.msg" --count 2 \
    >"$WORK/x5.out" 2>>"$WORK/xtapctl.err" || fail "xtapctl --raw failed: $(cat "$WORK/x5.out")"
[[ $(grep -c '^DTCP/0.7 200 OK$' "$WORK/x5.out") -eq 2 ]] || fail "xtapctl --raw: $(cat "$WORK/x5.out")"
RC=0; xtapctl_noop $V4 -l md1 -i "$WORK/md1" --insecure-host-key --hmac-key Wrong --timeout 1 \
    >/dev/null 2>&1 || RC=$?
[[ $RC -eq 3 ]] || fail "xtapctl should time out on a silently discarded request"
RC=0; ip netns exec "$CLI" "$XTAPCTL" dtcp add $V4 -l md1 -i "$WORK/md1" --insecure-host-key \
    --cdest-id cd1 --source-address 198.18.30.1 --static >"$WORK/x4.out" 2>/dev/null || RC=$?
[[ $RC -eq 1 ]] || fail "xtapctl add should exit 1 on 501"
grep -q '^DTCP/0.8 501 Not Implemented$' "$WORK/x4.out" || fail "xtapctl add: $(cat "$WORK/x4.out")"

note "limits server: connection_limit 3, a peer that does not read"
start_server limits 32002 --connection-limit 3 --max-outbound-bytes 65536 --stall-timeout-ms 3000
spawn ip netns exec "$CLI" python3 "$WORK/tcp.py" hold $V4 32002 3 60 >"$WORK/held.out"
HOLDER=$!
wait_for 10 bash -c "[[ \$(grep -c banner '$WORK/held.out') -eq 3 ]]" || fail "3 connections not accepted: $(cat "$WORK/held.out")"
[[ $(in_ns "$CLI" python3 "$WORK/tcp.py" probe $V4 32002) == closed ]] || fail "4th connection not refused"
PORT=32002 request md1 1 | PORT=32002 ssh_dtcp $V6 md1 >/dev/null 2>"$WORK/limit.err" &&
    fail "ssh beyond connection_limit accepted"
C=$(counters limits)
expect_counter "$C" connections_refused_limit ge 2
expect_counter "$C" sessions_open eq 3
kill "$HOLDER"; wait "$HOLDER" 2>/dev/null || true
wait_for 10 bash -c "kill -USR1 $limits_PID; sleep 0.2; grep '\"counters\"' '$WORK/limits.out' | tail -1 | grep -q '\"sessions_open\":0'" ||
    fail "held connections not released"
PORT=32002 request md1 1 | PORT=32002 ssh_dtcp $V4 md1 | check_replies | grep -q '^200 1 hmac-ok$' ||
    fail "connection after the limit freed up"
# 20000 NOOPs (2.8 MB of replies) into an ssh whose stdout nobody reads: the
# SSH window fills, then the 64 KiB outbound bound, and the session is closed.
python3 - "$WORK/flood.req" <<'PY'
import hashlib, hmac, sys
with open(sys.argv[1], "wb") as out:
    for seq in range(1, 20001):
        body = f"NOOP DTCP/0.8\r\nCsource-ID: md1\r\nSeq: {seq}\r\n".encode()
        out.write(body + b"Authentication-Info: " + hmac.new(b"Juniper", body, hashlib.sha1).hexdigest().encode() + b"\r\n\r\n")
PY
mkfifo "$WORK/unread"
exec 5<>"$WORK/unread"  # a reader that never reads: the pipe fills and ssh stops taking data
PORT=32002 ssh_dtcp $V4 md1 <"$WORK/flood.req" >"$WORK/unread" 2>/dev/null &
FLOOD=$!
wait_for 30 grep -q "closing the session" "$WORK/limits.log" || fail "a peer that does not read was not closed"
C=$(counters limits)
expect_counter "$C" slow_peer_disconnects ge 1
wait_for 10 bash -c "! kill -0 $FLOOD 2>/dev/null" || fail "the slow peer's ssh is still connected"
exec 5>&-

note "rate server: rate_limit 5 per minute"
start_server rate 32003 --rate-limit 5
for i in 1 2 3 4 5; do
    [[ $(in_ns "$CLI" python3 "$WORK/tcp.py" probe $V4 32003) == banner ]] || fail "connection $i refused"
done
[[ $(in_ns "$CLI" python3 "$WORK/tcp.py" probe $V6 32003) == closed ]] || fail "6th connection in a minute not refused"
C=$(counters rate)
expect_counter "$C" connections_refused_rate eq 1
expect_counter "$C" connections_accepted eq 5

note "stop with a session open: channels closed, server exits cleanly"
mkfifo "$WORK/quiet"
exec 6<>"$WORK/quiet"  # a writer that never writes: the ssh client's stdin stays open
ssh_dtcp $V4 md1 <"$WORK/quiet" >/dev/null 2>&1 &
OPEN=$!
wait_for 10 bash -c "kill -USR1 $main_PID; sleep 0.2; grep '\"counters\"' '$WORK/main.out' | tail -1 | grep -q '\"channels_open\":1'" ||
    fail "the held channel did not open"
kill -TERM "$main_PID"
wait_for 10 grep -q '"stopped":true' "$WORK/main.out" || fail "main server did not stop"
wait "$main_PID" || fail "main server exit status $?"
grep -q "closed: server stopping" "$WORK/main.log" || fail "open channel not closed on stop"
wait_for 10 bash -c "! kill -0 $OPEN 2>/dev/null" || fail "ssh client still connected after stop"
exec 6>&-
FINAL=$(grep '"stopped"' "$WORK/main.out")
echo "$FINAL"
expect_counter "$FINAL" sessions_open eq 0
expect_counter "$FINAL" channels_open eq 0
expect_counter "$FINAL" messages_too_large eq 1
expect_counter "$FINAL" auth_failures_permission ge 2
expect_counter "$FINAL" auth_failures_password ge 4
expect_counter "$FINAL" requests_refused ge 4
echo "PASS: DTCP over SSH"
