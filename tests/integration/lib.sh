# Shared helpers for the integration tests (sourced). Every test builds its
# own namespaces with unique names, sends traffic only inside them (198.18.0.0/15,
# 2001:db8::/32), and removes everything it made on exit, failed or not.
set -euo pipefail

BUILD_DIR=${XTAP_BUILD_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)/build}
SOURCE_DIR=${XTAP_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
TAG="xt$$"
WORK=$(mktemp -d "/tmp/xtap-test.XXXXXX")
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
    sleep 0.2
    for ns in "${NAMESPACES[@]}"; do
        ip netns pids "$ns" 2>/dev/null | xargs -r kill -9 2>/dev/null || true
    done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null || true; done
    for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || true; done
    if [[ $rc -ne 0 ]]; then
        echo "test failed (rc=$rc); work directory kept: $WORK" >&2
    else
        rm -rf "$WORK"
    fi
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
