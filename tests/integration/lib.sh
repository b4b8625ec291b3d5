# Shared helpers for the integration tests (sourced). Every test builds its
# own namespaces with unique names, sends traffic only inside them (198.18.0.0/15,
# 2001:db8::/32), and removes everything it made on exit, failed or not.
set -euo pipefail
# Debian's python3 ahead of any version manager's shim: scripts/bootstrap
# installs for it, and the pyenv shim on these machines costs about 0.8 s a
# call (0.09 s direct), which the tests pay hundreds of times.
PATH="/usr/sbin:/usr/bin:/sbin:/bin${PATH:+:$PATH}"

BUILD_DIR=${XTAP_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
SOURCE_DIR=${XTAP_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TAG="xt$$"
WORK=$(mktemp -d "/tmp/xtap-test.XXXXXX")
# In a sanitizer build (XTAP_SANITIZE) every report of every process the test
# starts goes to $WORK/sanitizer.PID: a daemon stopped by a signal reports no
# exit status, so cleanup fails the test on any report. No effect otherwise.
export ASAN_OPTIONS="${ASAN_OPTIONS:+$ASAN_OPTIONS:}log_path=$WORK/sanitizer"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:+$UBSAN_OPTIONS:}log_path=$WORK/sanitizer"
NAMESPACES=()
PIDS=()
MOUNTS=()

fail() {
    echo "FAIL: $*" >&2
    exit 1
}

note() { echo "--- $*"; }

require_root() {
    [[ $(id -u) -eq 0 ]] || fail "integration tests need root (network namespaces, BPF)"
    for tool in ip tcpdump ethtool socat python3; do
        command -v "$tool" >/dev/null || fail "missing tool $tool: run scripts/bootstrap"
    done
}

cleanup() {
    local rc=$?
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    # Whatever still runs inside our namespaces (a daemon forked by a tool,
    # a process a failed step left behind) goes too: it would keep the
    # namespace and the test's output pipe alive.
    for ns in "${NAMESPACES[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill 2>/dev/null || true
    done
    # Up to 5 s to exit (a sanitizer build writes its report on the way
    # out), then the rest is killed.
    local left
    for _ in $(seq 50); do
        left=$(for ns in "${NAMESPACES[@]}"; do ip netns pids "$ns" 2>/dev/null; done)
        [[ -z $left ]] && break
        sleep 0.1
    done
    for ns in "${NAMESPACES[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
    local reports=("$WORK"/sanitizer.*)
    if [[ -e ${reports[0]} ]]; then
        echo "FAIL: sanitizer reports:" >&2
        cat "${reports[@]}" >&2
        rc=1
    fi
    if [[ $rc -ne 0 ]]; then
        echo "test failed (rc=$rc); work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
    exit "$rc"
}
trap cleanup EXIT
# A kill (ctest's timeout, Ctrl-C, a script's SIGTERM) exits through the EXIT
# trap too, so namespaces, processes and mounts never outlive the run.
trap 'exit 143' TERM
trap 'exit 130' INT
trap 'exit 129' HUP

netns_add() {
    local ns="$1"
    ip netns add "$ns"
    NAMESPACES+=("$ns")
    ip -n "$ns" link set lo up
    # No DAD: link-local addresses stay tentative for seconds otherwise, and
    # a router cannot resolve neighbours until they are not.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
}

in_ns() {
    local ns="$1"
    shift
    ip netns exec "$ns" "$@"
}

# Background a command and remember its PID for cleanup. Its stdin is the
# caller's (bash would give a background job /dev/null otherwise).
# spawn_in NS CMD...: the same inside a namespace; `ip netns exec` execs the
# command, so the PID recorded is the command's own.
spawn() {
    "$@" <&0 &
    PIDS+=($!)
}

spawn_in() {
    local ns="$1"
    shift
    ip netns exec "$ns" "$@" <&0 &
    PIDS+=($!)
}

# wait_for SECONDS COMMAND...: poll until COMMAND succeeds.
wait_for() {
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# A private bpffs under the work directory: pinned maps that outlive one
# process (ip netns exec hides /sys/fs/bpf), removed on exit.
private_bpffs() {
    mkdir -p "$WORK/bpffs"
    mount -t bpf bpf "$WORK/bpffs"
    MOUNTS+=("$WORK/bpffs")
}

# Sender-side offloads off, so frames on the wire are what the stack sent.
plain_link() {
    in_ns "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
}

# The xtapd lab of the router tests, in namespaces named after $TAG: the target
# (TGT, 198.18.1.2 on t0) and an internet host (NET, 198.18.2.2 on i0) on either
# side of the router (RTR: r0, r1), and the mediation device (MD, 198.18.20.2 on
# m0) on r2. Sets TGT, RTR, NET and MD.
router_lab() {
    TGT="${TAG}tgt" RTR="${TAG}rtr" NET="${TAG}net" MD="${TAG}md"
    for ns in "$TGT" "$RTR" "$NET" "$MD"; do netns_add "$ns"; done
    ip link add t0 netns "$TGT" type veth peer name r0 netns "$RTR"
    ip link add i0 netns "$NET" type veth peer name r1 netns "$RTR"
    ip link add m0 netns "$MD" type veth peer name r2 netns "$RTR"
    in_ns "$TGT" ip addr add 198.18.1.2/24 dev t0
    in_ns "$RTR" ip addr add 198.18.1.1/24 dev r0
    in_ns "$RTR" ip addr add 198.18.2.1/24 dev r1
    in_ns "$RTR" ip addr add 198.18.20.1/24 dev r2
    in_ns "$NET" ip addr add 198.18.2.2/24 dev i0
    in_ns "$MD" ip addr add 198.18.20.2/24 dev m0
    for l in "$TGT t0" "$RTR r0" "$RTR r1" "$RTR r2" "$NET i0" "$MD m0"; do set -- $l; in_ns "$1" ip link set "$2" up; done
    in_ns "$TGT" ip route add default via 198.18.1.1
    in_ns "$NET" ip route add default via 198.18.2.1
    in_ns "$RTR" sysctl -qw net.ipv4.ip_forward=1
    plain_link "$TGT" t0; plain_link "$NET" i0
}

# Is xtap's transit classifier on interface $2 in namespace $1? XDP, or on the
# tc hook (kernels without XDP metadata) the tc ingress program.
classifier_on() {
    in_ns "$1" ip link show "$2" | grep -q xdp ||
        in_ns "$1" tc filter show dev "$2" ingress | grep -q xtap_transit_tc
}
