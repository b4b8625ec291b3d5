# The xtap namespace lab (sourced by scripts/lab, scripts/demo and the
# integration tests): one implementation of the topology.
#
#   tgt (target)              rtr (router: xtapd + charon)              net (internet)
#   t0 198.18.1.2  ---------- r0 198.18.1.1      r1 198.18.2.1 -------- i0 198.18.2.2
#      2001:db8:1::2             2001:db8:1::1      2001:db8:2::1          2001:db8:2::2
#      198.18.1.3, 2001:db8:1::3 (bystander: never copied)                 HTTP :8000, file.bin
#                             lo 198.18.10.1, 2001:db8:10::1 (copy sources)
#                             r2 198.18.0.1/30, 2001:db8:ff::1
#                                  |  IKE and ESP-in-UDP only (SSH for DTCP)
#                             m0 198.18.0.2/30, 2001:db8:ff::2
#                             md (mediation device: charon, xtapctl receive)
#                             lo 198.18.20.1, 2001:db8:20::1 (content destinations)
#
# xtapd runs in rtr on the transit interfaces r0 and r1, its IPsec tunnel "md"
# (loaded over the router charon's vici socket) protects 198.18.20.0/24 and
# 2001:db8:20::/64. The MD user md1 has two content destinations, jmirror:
# cd1 = 198.18.20.1:50000 and cd6 = [2001:db8:20::1]:50006, each received by
# `xtapctl receive` into a pcap. The router's default route points at the MD:
# the path a copy would take in clear if the fail-closed guards failed.
#
# Everything a lab owns is named after its prefix (namespaces PREFIX-tgt, ...)
# and lives in LAB_DIR (/run/xtap-lab/PREFIX): configuration, keys, pid files,
# logs, pcaps, a private bpffs. lab_down removes all of it, whatever state a
# failed lab_up left.
#
# Variables read: XTAP_LAB_PREFIX (default xlab), XTAP_BUILD_DIR (default
# SOURCE/build), XTAP_LAB_BASE (default /run/xtap-lab), XTAP_LAB_FILE_BYTES
# (size of the served file, default 5000000), XTAP_LAB_RATE (the internet
# host's uplink, default 16mbit: charon's userspace ESP must keep up, even on a
# busy machine),
# XTAP_LAB_CAPTURE (1: tcpdump on the router-MD link, r0, r1 and the MD's
# ipsec0 into LAB_DIR/pcap; default 0), XTAP_LAB_CHARON_NICE (the charons'
# nice value, default -10).

LAB_SOURCE_DIR=${XTAP_SOURCE_DIR:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}
LAB_BUILD_DIR=${XTAP_BUILD_DIR:-$LAB_SOURCE_DIR/build}
LAB_BASE=${XTAP_LAB_BASE:-/run/xtap-lab}

# Fixed plan (see the drawing above).
LAB_TGT4=198.18.1.2 LAB_TGT6=2001:db8:1::2
LAB_BYSTANDER4=198.18.1.3 LAB_BYSTANDER6=2001:db8:1::3
LAB_WEB4=198.18.2.2 LAB_WEB6=2001:db8:2::2 LAB_WEB_PORT=8000
LAB_RTR_LINK4=198.18.0.1 LAB_MD_LINK4=198.18.0.2
LAB_RTR_LINK6=2001:db8:ff::1 LAB_MD_LINK6=2001:db8:ff::2
LAB_COPY_SRC4=198.18.10.1 LAB_COPY_SRC6=2001:db8:10::1
LAB_CDEST4=198.18.20.1 LAB_CDEST6=2001:db8:20::1
LAB_CDEST4_PORT=50000 LAB_CDEST6_PORT=50006
LAB_DTCP_PORT=32001 LAB_MD_USER=md1 LAB_TUNNEL=md LAB_TRANSIT_MTU=1300

lab_log() { echo "lab: $*" >&2; }
lab_die() {
    echo "lab: error: $*" >&2
    return 1
}

# lab_init [PREFIX]: names and paths of one lab instance.
lab_init() {
    LAB_PREFIX=${1:-${XTAP_LAB_PREFIX:-xlab}}
    [[ $LAB_PREFIX =~ ^[a-z][a-z0-9]{0,11}$ ]] ||
        lab_die "prefix '$LAB_PREFIX': 1-12 lower-case letters and digits, starting with a letter" || return 1
    LAB_DIR=$LAB_BASE/$LAB_PREFIX
    LAB_NS_TGT=$LAB_PREFIX-tgt LAB_NS_RTR=$LAB_PREFIX-rtr LAB_NS_NET=$LAB_PREFIX-net LAB_NS_MD=$LAB_PREFIX-md
    LAB_NAMESPACES=("$LAB_NS_TGT" "$LAB_NS_RTR" "$LAB_NS_NET" "$LAB_NS_MD")
    LAB_XTAPD=$LAB_BUILD_DIR/xtapd LAB_XTAPCTL=$LAB_BUILD_DIR/xtapctl
    LAB_XTAPD_LOG=$LAB_DIR/log/xtapd.log
    LAB_XTAP_CONFIG=$LAB_DIR/rtr/xtap.json
    LAB_CONTROL_SOCKET=$LAB_DIR/rtr/control.sock
    LAB_AUDIT_LOG=$LAB_DIR/rtr/state/audit.jsonl
    LAB_FILE=$LAB_DIR/net/www/file.bin
    LAB_PCAP_DIR=$LAB_DIR/pcap
}

lab_ns_exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }

lab_ns_of() {  # ROLE -> namespace
    case "$1" in
        tgt) echo "$LAB_NS_TGT" ;; rtr) echo "$LAB_NS_RTR" ;; net) echo "$LAB_NS_NET" ;; md) echo "$LAB_NS_MD" ;;
        *) lab_die "unknown role '$1' (tgt, rtr, net, md)" ;;
    esac
}

# lab_exec ROLE CMD...: run a command inside one of the lab's hosts.
lab_exec() {
    local ns
    ns=$(lab_ns_of "$1") || return 1
    shift
    ip netns exec "$ns" "$@"
}

lab_wait_for() {  # SECONDS CMD...: poll until CMD succeeds
    local deadline=$((SECONDS + $1))
    shift
    until "$@" >/dev/null 2>&1; do
        ((SECONDS < deadline)) || return 1
        sleep 0.1
    done
}

# --- processes -------------------------------------------------------------------
# Every process is started detached from the caller's terminal and pipes, in a
# lab namespace, its PID in LAB_DIR/pid/NAME and its output in LAB_DIR/log/NAME.log.

lab_spawn() {  # NAME ROLE CMD...
    local name="$1" ns
    ns=$(lab_ns_of "$2") || return 1
    shift 2
    # ip netns exec (and env) exec: the recorded PID is the command's own.
    ip netns exec "$ns" "$@" </dev/null >"$LAB_DIR/log/$name.log" 2>&1 &
    echo "$! $ns" >"$LAB_DIR/pid/$name"
}

lab_pid() {  # NAME -> PID if that process is still running in its lab namespace
    local f="$LAB_DIR/pid/$1" pid ns state
    [[ -f $f ]] || return 1
    read -r pid ns <"$f"
    [[ -r /proc/$pid/stat ]] || return 1
    state=$(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) || return 1
    [[ $state != Z ]] || return 1
    # Not a recycled PID: the process lives in the namespace it was started in.
    [[ $(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) == $(stat -L -c %i "/run/netns/$ns" 2>/dev/null) ]] || return 1
    echo "$pid"
}

# lab_stop NAME [SECONDS]: SIGTERM, then SIGKILL after SECONDS (default 5).
lab_stop() {
    local name="$1" wait_s="${2:-5}" pid
    pid=$(lab_pid "$name") || { rm -f "$LAB_DIR/pid/$name"; return 0; }
    kill -TERM "$pid" 2>/dev/null || true
    lab_wait_for "$wait_s" bash -c "! [[ -r /proc/$pid/stat ]] || [[ \$(awk '{print \$3}' /proc/$pid/stat) == Z ]]" ||
        kill -KILL "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true  # reap it when it is the caller's child
    rm -f "$LAB_DIR/pid/$name"
}

# --- strongSwan (platform.md §10: one charon per namespace, own conf and vici) --

lab_charon_conf() {  # DIR
    local dir="$1"
    mkdir -p "$dir"/swanctl/{x509,x509ca,x509ocsp,x509aa,x509ac,x509crl,pubkey,private,rsa,ecdsa,bliss,pkcs8,pkcs12,conf.d}
    # A replay window wider than the default 32 packets: under load, ESP
    # packets of one SA may be reordered on their way through charon.
    sed -e "s|RUN/|$dir/|g" -e "s|^charon {|charon {\n  replay_window = 1024|" \
        "$LAB_SOURCE_DIR/deploy/strongswan/lab-strongswan.conf" >"$dir/strongswan.conf"
}

# lab_swan ROLE ARGS...: swanctl against that host's charon (rtr or md).
lab_swan() {
    local dir="$LAB_DIR/$1/charon"
    shift
    STRONGSWAN_CONF="$dir/strongswan.conf" SWANCTL_DIR="$dir/swanctl" swanctl "$@" --uri "unix://$dir/charon.vici"
}

lab_start_charon() {  # ROLE
    local role="$1" dir="$LAB_DIR/$1/charon"
    # charon does the ESP of every copy in userspace and reads ESP-in-UDP with
    # the default socket buffer (about a hundred packets): on a loaded machine
    # a scheduling delay overflows it and copies are lost after xtapd sent
    # them (UdpRcvbufErrors at the MD). A higher CPU priority keeps it reading.
    lab_spawn "charon-$role" "$role" nice -n "${XTAP_LAB_CHARON_NICE:--10}" \
        env STRONGSWAN_CONF="$dir/strongswan.conf" /usr/sbin/charon-systemd
    lab_wait_for 15 lab_swan "$role" --stats || lab_die "charon in $(lab_ns_of "$role") did not start: $(tail -5 "$dir/charon.log" 2>/dev/null)"
}

# --- DTCP from the MD --------------------------------------------------------------

# lab_dtcp METHOD ARGS...: xtapctl dtcp from the MD to the router, as md1,
# with the router's host key pinned.
lab_dtcp() {
    local method="$1"
    shift
    lab_exec md "$LAB_XTAPCTL" dtcp "$method" -H "$LAB_RTR_LINK4" -p "$LAB_DTCP_PORT" -l "$LAB_MD_USER" \
        -i "$LAB_DIR/md/md_key" --host-key-sha256 "$(<"$LAB_DIR/md/router_host_key.sha256")" \
        --seq-file "$LAB_DIR/md/seq" "$@"
}

# lab_fetch FROM SERVER OUT: the target host downloads the served file over
# HTTP from SERVER (an address of net), from its address FROM; prints
# {"bytes", "sha256"}.
lab_fetch() {
    lab_exec tgt python3 - "$1" "$2" "$3" "$LAB_WEB_PORT" <<'EOF'
import hashlib, http.client, json, sys
source, server, out, port = sys.argv[1:5]
connection = http.client.HTTPConnection(server, int(port), timeout=120, source_address=(source, 0))
connection.request("GET", "/file.bin")
response = connection.getresponse()
body = response.read()
if response.status != 200:
    sys.exit(f"HTTP {response.status} from {server}")
open(out, "wb").write(body)
print(json.dumps({"bytes": len(body), "sha256": hashlib.sha256(body).hexdigest()}))
EOF
}

# --- content destinations ------------------------------------------------------------

# lab_receivers_start TAG: one `xtapctl receive` per content destination;
# pcaps and JSON summaries in LAB_DIR/md/TAG-cd1.{pcap,json}, TAG-cd6.*.
lab_receivers_start() {
    local tag="${1:-copies}" cd listen
    for cd in cd1 cd6; do
        [[ $cd == cd1 ]] && listen="$LAB_CDEST4:$LAB_CDEST4_PORT" || listen="[$LAB_CDEST6]:$LAB_CDEST6_PORT"
        rm -f "$LAB_DIR/md/$tag-$cd".{pcap,json}
        lab_spawn "receive-$cd" md "$LAB_XTAPCTL" receive --listen "$listen" --expect-format jmirror \
            --pcap "$LAB_DIR/md/$tag-$cd.pcap" --json
        echo "$tag" >"$LAB_DIR/md/receive-$cd.tag"
    done
    for cd in cd1 cd6; do
        lab_wait_for 10 grep -q listening "$LAB_DIR/log/receive-$cd.log" ||
            lab_die "xtapctl receive ($cd): $(cat "$LAB_DIR/log/receive-$cd.log")" || return 1
    done
}

# lab_receivers_stop: SIGTERM; each summary goes to LAB_DIR/md/TAG-CD.json.
lab_receivers_stop() {
    local cd tag
    for cd in cd1 cd6; do
        lab_pid "receive-$cd" >/dev/null || continue
        tag=$(<"$LAB_DIR/md/receive-$cd.tag")
        lab_stop "receive-$cd" 10
        grep '^{' "$LAB_DIR/log/receive-$cd.log" | tail -1 >"$LAB_DIR/md/$tag-$cd.json" || true
    done
}

# --- captures ------------------------------------------------------------------------

lab_capture_start() {  # NAME ROLE IFACE [FILTER...]
    local name="$1" role="$2" itf="$3"
    shift 3
    mkdir -p "$LAB_PCAP_DIR"
    lab_spawn "tcpdump-$name" "$role" tcpdump -i "$itf" -w "$LAB_PCAP_DIR/$name.pcap" -U -n -s 0 "$@"
    lab_wait_for 10 grep -q listening "$LAB_DIR/log/tcpdump-$name.log" ||
        lab_die "tcpdump on $role:$itf: $(cat "$LAB_DIR/log/tcpdump-$name.log")"
}

# --- up ----------------------------------------------------------------------------------

lab_require() {
    [[ $(id -u) -eq 0 ]] || lab_die "the lab needs root (network namespaces, BPF, IPsec)" || return 1
    local tool
    for tool in ip tc tcpdump tshark ethtool python3 ssh-keygen swanctl /usr/sbin/charon-systemd; do
        command -v "$tool" >/dev/null || lab_die "missing $tool: run scripts/bootstrap" || return 1
    done
    [[ -x $LAB_XTAPD && -x $LAB_XTAPCTL ]] ||
        lab_die "build first: $LAB_XTAPD or $LAB_XTAPCTL missing (XTAP_BUILD_DIR=$LAB_BUILD_DIR)"
}

lab_net() {
    local l
    for ns in "${LAB_NAMESPACES[@]}"; do
        ip netns add "$ns"
        ip -n "$ns" link set lo up
        # No DAD: IPv6 addresses usable at once (platform.md §1).
        ip netns exec "$ns" sysctl -qw net.ipv6.conf.default.accept_dad=0 net.ipv6.conf.all.accept_dad=0
    done
    ip link add t0 netns "$LAB_NS_TGT" type veth peer name r0 netns "$LAB_NS_RTR"
    ip link add i0 netns "$LAB_NS_NET" type veth peer name r1 netns "$LAB_NS_RTR"
    ip link add m0 netns "$LAB_NS_MD" type veth peer name r2 netns "$LAB_NS_RTR"
    lab_exec tgt ip addr add "$LAB_TGT4/24" dev t0
    lab_exec tgt ip addr add "$LAB_BYSTANDER4/24" dev t0
    lab_exec tgt ip addr add "$LAB_TGT6/64" dev t0 nodad
    lab_exec tgt ip addr add "$LAB_BYSTANDER6/64" dev t0 nodad
    lab_exec rtr ip addr add 198.18.1.1/24 dev r0
    lab_exec rtr ip addr add 2001:db8:1::1/64 dev r0 nodad
    lab_exec rtr ip addr add 198.18.2.1/24 dev r1
    lab_exec rtr ip addr add 2001:db8:2::1/64 dev r1 nodad
    lab_exec rtr ip addr add "$LAB_RTR_LINK4/30" dev r2
    lab_exec rtr ip addr add "$LAB_RTR_LINK6/64" dev r2 nodad
    lab_exec rtr ip addr add "$LAB_COPY_SRC4/32" dev lo
    lab_exec rtr ip addr add "$LAB_COPY_SRC6/128" dev lo nodad
    lab_exec net ip addr add "$LAB_WEB4/24" dev i0
    lab_exec net ip addr add "$LAB_WEB6/64" dev i0 nodad
    lab_exec md ip addr add "$LAB_MD_LINK4/30" dev m0
    lab_exec md ip addr add "$LAB_MD_LINK6/64" dev m0 nodad
    lab_exec md ip addr add "$LAB_CDEST4/32" dev lo
    lab_exec md ip addr add "$LAB_CDEST6/128" dev lo nodad
    for l in "tgt t0" "rtr r0" "rtr r1" "rtr r2" "net i0" "md m0"; do
        set -- $l
        lab_exec "$1" ip link set "$2" up
        # Sender offloads off: frames on the wire are what the stack sent.
        lab_exec "$1" ethtool -K "$2" tso off gso off gro off >/dev/null 2>&1 || true
    done
    # Transit links at MTU 1300: a copy (packet + jmirror, UDP and IP headers)
    # then fits ipsec0's MTU of 1400 whole, one ESP packet per copy instead of
    # two outer fragments.
    for l in "tgt t0" "rtr r0" "rtr r1" "net i0"; do
        set -- $l
        lab_exec "$1" ip link set "$2" mtu "$LAB_TRANSIT_MTU"
    done
    lab_exec tgt ip route add default via 198.18.1.1
    lab_exec tgt ip -6 route add default via 2001:db8:1::1
    lab_exec net ip route add default via 198.18.2.1
    lab_exec net ip -6 route add default via 2001:db8:2::1
    # The clear path a leaked copy would take: the MD is the router's next hop.
    lab_exec rtr ip route add default via "$LAB_MD_LINK4"
    lab_exec rtr ip -6 route add default via "$LAB_MD_LINK6"
    lab_exec rtr sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
    # The internet host's uplink is shaped: every copy goes through charon's
    # userspace ESP (kernel-libipsec), which must keep up with the download.
    lab_exec net tc qdisc add dev i0 root tbf rate "${XTAP_LAB_RATE:-16mbit}" burst 16kb latency 400ms
}

lab_web() {
    mkdir -p "$LAB_DIR/net/www"
    head -c "${XTAP_LAB_FILE_BYTES:-5000000}" /dev/urandom >"$LAB_FILE"
    sha256sum "$LAB_FILE" | cut -d' ' -f1 >"$LAB_DIR/net/file.sha256"
    lab_spawn http net python3 -m http.server --bind :: --directory "$LAB_DIR/net/www" "$LAB_WEB_PORT"
    lab_wait_for 10 lab_exec net python3 -c "import socket; socket.create_connection(('$LAB_WEB4', $LAB_WEB_PORT), 1)" ||
        lab_die "HTTP server did not start: $(cat "$LAB_DIR/log/http.log")"
}

lab_ipsec() {
    lab_charon_conf "$LAB_DIR/md/charon"
    lab_charon_conf "$LAB_DIR/rtr/charon"
    head -c 32 /dev/urandom | base64 >"$LAB_DIR/rtr/md.psk"
    chmod 600 "$LAB_DIR/rtr/md.psk"
    # The MD answers; the router's side is loaded by xtapd's TunnelManager.
    cat >"$LAB_DIR/md/charon/swanctl/swanctl.conf" <<EOF
connections {
  router {
    version = 2
    local_addrs = $LAB_MD_LINK4
    remote_addrs = $LAB_RTR_LINK4
    proposals = aes256gcm16-prfsha256-x25519
    local {
      auth = psk
      id = md-gateway
    }
    remote {
      auth = psk
      id = xtap-router
    }
    children {
      copies {
        mode = tunnel
        local_ts = 198.18.20.0/24,2001:db8:20::/64
        remote_ts = $LAB_COPY_SRC4/32,$LAB_COPY_SRC6/128
        esp_proposals = aes256gcm16
        start_action = none
      }
    }
  }
}
secrets {
  ike-router {
    id-md = md-gateway
    id-rtr = xtap-router
    secret = "$(<"$LAB_DIR/rtr/md.psk")"
  }
}
EOF
    lab_start_charon md
    lab_swan md --load-all --noprompt >/dev/null
    lab_start_charon rtr
}

lab_xtapd() {
    ssh-keygen -q -t ed25519 -N '' -C xtap-lab-router -f "$LAB_DIR/rtr/host_key"
    ssh-keygen -q -t ed25519 -N '' -C md1@lab-md -f "$LAB_DIR/md/md_key"
    ssh-keygen -l -E sha256 -f "$LAB_DIR/rtr/host_key.pub" | awk '{print $2}' >"$LAB_DIR/md/router_host_key.sha256"
    mkdir -p "$LAB_DIR/bpffs"
    mount -t bpf bpf "$LAB_DIR/bpffs"
    cat >"$LAB_XTAP_CONFIG" <<EOF
{
  "dtcp": {"listen": ["$LAB_RTR_LINK4:$LAB_DTCP_PORT"], "host_key": "$LAB_DIR/rtr/host_key"},
  "users": {
    "$LAB_MD_USER": {
      "authorized_keys": ["$(cat "$LAB_DIR/md/md_key.pub")"],
      "delivery_format": "jmirror",
      "destinations": {
        "cd1": {"address": "$LAB_CDEST4", "port": $LAB_CDEST4_PORT, "source_address": "$LAB_COPY_SRC4", "source_port": 49153},
        "cd6": {"address": "$LAB_CDEST6", "port": $LAB_CDEST6_PORT, "source_address": "$LAB_COPY_SRC6", "source_port": 49154}
      }
    }
  },
  "interfaces": [{"name": "r0", "alias": "ge-0/0/0.0", "xdp_mode": "native"},
                 {"name": "r1", "alias": "ge-0/0/1.0", "xdp_mode": "generic"}],
  "ipsec": {
    "vici_socket": "unix://$LAB_DIR/rtr/charon/charon.vici",
    "tunnels": [{
      "name": "$LAB_TUNNEL",
      "local_addrs": ["$LAB_RTR_LINK4"], "remote_addrs": ["$LAB_MD_LINK4"],
      "local_id": "xtap-router", "remote_id": "md-gateway",
      "psk_file": "$LAB_DIR/rtr/md.psk",
      "ike_proposals": ["aes256gcm16-prfsha256-x25519"], "esp_proposals": ["aes256gcm16"],
      "local_ts": ["$LAB_COPY_SRC4/32", "$LAB_COPY_SRC6/128"],
      "remote_ts": ["198.18.20.0/24", "2001:db8:20::/64"]
    }]
  },
  "dataplane": {"criteria": 4096, "rules": 65536, "anchors": 65536, "pin_dir": "$LAB_DIR/bpffs/xtap"},
  "state_dir": "$LAB_DIR/rtr/state",
  "audit_log": "$LAB_AUDIT_LOG",
  "control_socket": "$LAB_CONTROL_SOCKET"
}
EOF
    "$LAB_XTAPD" --check-config "$LAB_XTAP_CONFIG" >/dev/null
    lab_spawn xtapd rtr "$LAB_XTAPD" --config "$LAB_XTAP_CONFIG"
    # LAB_XTAPD_LOG is the spawn log.
    lab_wait_for 30 grep -q "DTCP over SSH listening" "$LAB_XTAPD_LOG" ||
        lab_die "xtapd did not start: $(tail -20 "$LAB_XTAPD_LOG")" || return 1
    lab_wait_for 30 grep -q "tunnel $LAB_TUNNEL: up" "$LAB_XTAPD_LOG" ||
        lab_die "the IPsec tunnel to the MD did not come up: $(tail -20 "$LAB_XTAPD_LOG"; tail -20 "$LAB_DIR/rtr/charon/charon.log")"
}

lab_write_env() {
    {
        for v in LAB_PREFIX LAB_DIR LAB_SOURCE_DIR LAB_BUILD_DIR LAB_NS_TGT LAB_NS_RTR LAB_NS_NET LAB_NS_MD \
            LAB_XTAP_CONFIG LAB_XTAPD_LOG LAB_CONTROL_SOCKET LAB_AUDIT_LOG LAB_FILE LAB_PCAP_DIR; do
            printf '%s=%q\n' "$v" "${!v}"
        done
    } >"$LAB_DIR/lab.env"
}

# lab_up: the whole lab. Fails (non-zero) on the first problem; the caller
# runs lab_down in every case (a trap), which also cleans a half-built lab.
lab_up() {
    lab_require || return 1
    [[ ! -e $LAB_DIR ]] || lab_die "lab '$LAB_PREFIX' exists ($LAB_DIR): scripts/lab down first" || return 1
    local ns
    for ns in "${LAB_NAMESPACES[@]}"; do
        ! lab_ns_exists "$ns" || lab_die "namespace $ns exists: scripts/lab down first" || return 1
    done
    mkdir -p "$LAB_BASE" "$LAB_DIR"/{pid,log,rtr,net,md}
    chmod 700 "$LAB_DIR"
    lab_write_env
    lab_log "namespaces $LAB_NS_TGT $LAB_NS_RTR $LAB_NS_NET $LAB_NS_MD"
    lab_net
    lab_log "web server on $LAB_WEB4 and [$LAB_WEB6] port $LAB_WEB_PORT"
    lab_web
    lab_log "strongSwan: charon in $LAB_NS_MD and in $LAB_NS_RTR (kernel-libipsec)"
    lab_ipsec
    if [[ ${XTAP_LAB_CAPTURE:-0} == 1 ]]; then
        lab_capture_start link rtr r2
        lab_capture_start ingress-r0 rtr r0 -Q in
        lab_capture_start ingress-r1 rtr r1 -Q in
    fi
    lab_log "xtapd on r0 and r1, tunnel '$LAB_TUNNEL' to the MD"
    lab_xtapd
    lab_wait_for 10 lab_exec md ip link show ipsec0 || lab_die "no ipsec0 at the MD" || return 1
    [[ ${XTAP_LAB_CAPTURE:-0} == 1 ]] && lab_capture_start md-clear md ipsec0
    lab_log "content destinations: xtapctl receive on $LAB_CDEST4:$LAB_CDEST4_PORT and [$LAB_CDEST6]:$LAB_CDEST6_PORT"
    lab_receivers_start copies
    lab_log "up: $LAB_DIR"
}

# Interface and protocol counters of every host, and the SAs: where copies went.
lab_snapshot() {
    local role
    for role in tgt rtr net md; do
        lab_ns_exists "$(lab_ns_of "$role")" || continue
        echo "=== $role"
        lab_exec "$role" ip -s link
        lab_exec "$role" nstat -az 2>/dev/null | grep -vE '\s0\s+0\.0$' || true
    done
    for role in rtr md; do
        echo "=== SAs at $role"
        lab_swan "$role" --list-sas 2>&1 || true
    done
}

# --- down --------------------------------------------------------------------------------

# lab_down [LOG_COPY_DIR]: stop everything, remove namespaces, mounts and
# LAB_DIR; safe on a half-built or already removed lab. With LOG_COPY_DIR,
# logs, configs and pcaps are copied there first.
lab_down() {
    local ns name pids m
    if [[ -n ${1:-} && -d $LAB_DIR/log ]]; then
        lab_snapshot >"$LAB_DIR/log/counters-at-down.txt" 2>&1 || true
    fi
    if [[ -d $LAB_DIR/pid ]]; then
        # xtapd first and gently: it detaches its programs and logs its counters.
        lab_stop xtapd 20
        lab_receivers_stop
        for name in "$LAB_DIR"/pid/*; do
            [[ -e $name ]] && lab_stop "$(basename "$name")" 5
        done
    fi
    # Whatever else still runs inside the lab's namespaces.
    for ns in "${LAB_NAMESPACES[@]}"; do
        pids=$(ip netns pids "$ns" 2>/dev/null) || continue
        [[ -z $pids ]] || kill -TERM $pids 2>/dev/null || true
    done
    sleep 0.2
    for ns in "${LAB_NAMESPACES[@]}"; do
        pids=$(ip netns pids "$ns" 2>/dev/null) || continue
        [[ -z $pids ]] || kill -KILL $pids 2>/dev/null || true
    done
    for ns in "${LAB_NAMESPACES[@]}"; do
        ip netns del "$ns" 2>/dev/null || true
    done
    # Mounts under LAB_DIR (the private bpffs), deepest first.
    for m in $(awk -v d="$LAB_DIR/" 'index($2, d) == 1 {print $2}' /proc/mounts | sort -r); do
        umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
    if [[ -n ${1:-} && -d $LAB_DIR ]]; then
        mkdir -p "$1"
        cp -a "$LAB_DIR/." "$1/" 2>/dev/null || true
    fi
    if [[ -d $LAB_DIR ]] && ! awk -v d="$LAB_DIR/" 'index($2, d) == 1 {f = 1} END {exit !f}' /proc/mounts; then
        rm -rf "$LAB_DIR"
    fi
    rmdir "$LAB_BASE" 2>/dev/null || true
    return 0
}

# --- status --------------------------------------------------------------------------------

lab_status() {
    local ns role name pid up=0
    echo "lab '$LAB_PREFIX' ($LAB_DIR)"
    for role in tgt rtr net md; do
        ns=$(lab_ns_of "$role")
        if lab_ns_exists "$ns"; then
            echo "  namespace $ns: present"
            up=1
        else
            echo "  namespace $ns: absent"
        fi
    done
    if [[ -d $LAB_DIR/pid ]]; then
        for name in "$LAB_DIR"/pid/*; do
            [[ -e $name ]] || continue
            name=$(basename "$name")
            if pid=$(lab_pid "$name"); then echo "  $name: running (pid $pid)"; else echo "  $name: NOT running"; fi
        done
    fi
    if lab_pid charon-rtr >/dev/null; then
        echo "  IPsec SAs at the router:"
        lab_swan rtr --list-sas 2>/dev/null | sed -n 's/^/    /p' | grep -E 'ESTABLISHED|INSTALLED|bytes_i|bytes_o|===' || echo "    none"
    fi
    if lab_pid xtapd >/dev/null && "$LAB_XTAPCTL" status --help >/dev/null 2>&1; then
        echo "  xtapctl status:"
        "$LAB_XTAPCTL" status --socket "$LAB_CONTROL_SOCKET" 2>&1 | sed 's/^/    /' || true
    fi
    [[ $up == 1 ]]
}
