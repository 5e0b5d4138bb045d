#!/usr/bin/env bash
# Shared helpers for every namespace test, demo and benchmark.
#
#   source tests/lib/netns.sh
#   nsl_init demo            # unique prefix (name + PID), cleanup trap, temp dir $NSL_TMP
#   nsl_ns gwA; ns=$NSL_NS   # creates namespace "<prefix>-gwA", removed on exit
#   nsl_veth "$a" lan "$b" eth0   # veth pair between two namespaces
#   nsl_bg "$ns" log_name cmd args...; pid=$NSL_PID   # background process, killed on exit
#   nsl_stop "$pid"          # stop one process by PID (TERM, then KILL)
# (The helpers return names and PIDs in variables, not on stdout: a command
# substitution would run them in a subshell and the cleanup would not know them.)
#   nsl_topo_pair            # lanA(hA) - gwA - wan - gwB - lanB(hB), see below
#
# Only namespaces and processes created through these helpers are touched:
# other engineers run namespace tests on the same machine at the same time.
set -o pipefail

NSL_NAMESPACES=()
NSL_PIDS=()
NSL_TMP=""
NSL_PREFIX=""

nsl_log() { echo "[$(date +%H:%M:%S)] $*" >&2; }
nsl_die() { nsl_log "FAIL: $*"; exit 1; }

nsl_cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local p
  for p in "${NSL_PIDS[@]}"; do
    kill -TERM "$p" 2>/dev/null || true
  done
  for p in "${NSL_PIDS[@]}"; do
    for _ in 1 2 3 4 5 6 7 8 9 10; do
      kill -0 "$p" 2>/dev/null || break
      sleep 0.2
    done
    kill -KILL "$p" 2>/dev/null || true
  done
  local n
  for n in "${NSL_NAMESPACES[@]}"; do
    ip netns delete "$n" 2>/dev/null || true
  done
  if [ -n "$NSL_TMP" ] && [ -d "$NSL_TMP" ]; then
    if [ "$rc" -ne 0 ] && [ -n "${NSL_KEEP_LOGS:-}" ]; then
      nsl_log "logs kept in $NSL_TMP"
    else
      if [ "$rc" -ne 0 ]; then
        for f in "$NSL_TMP"/*.log; do
          [ -s "$f" ] || continue
          echo "---- $(basename "$f") (last lines) ----" >&2
          tail -n 20 "$f" >&2
        done
      fi
      rm -rf "$NSL_TMP"
    fi
  fi
  exit "$rc"
}

# nsl_init NAME: unique prefix, temp dir, cleanup trap.
nsl_init() {
  [ "$(id -u)" = 0 ] || { echo "needs root (network namespaces)" >&2; exit 1; }
  NSL_PREFIX="es${1:0:6}$$"
  NSL_TMP=$(mktemp -d "/tmp/${NSL_PREFIX}.XXXX")
  trap nsl_cleanup EXIT
  trap 'exit 130' INT TERM
}

# nsl_ns SHORT: creates namespace "<prefix>-SHORT" with loopback up; sets NSL_NS.
nsl_ns() {
  local n="${NSL_PREFIX}-$1"
  ip netns add "$n" || nsl_die "ip netns add $n"
  NSL_NAMESPACES+=("$n")
  ip -n "$n" link set lo up
  NSL_NS="$n"
}

# nsl_veth NS1 IF1 NS2 IF2: a veth pair, created directly inside the namespaces.
nsl_veth() {
  ip link add "$2" netns "$1" type veth peer name "$4" netns "$3" || nsl_die "veth $2/$4"
  ip -n "$1" link set "$2" up
  ip -n "$3" link set "$4" up
}

# nsl_x NS cmd...: runs a command in a namespace.
nsl_x() { local n="$1"; shift; ip netns exec "$n" "$@"; }

# nsl_bg NS LOGNAME cmd...: starts cmd in the background in NS, output to
# $NSL_TMP/LOGNAME.log; sets NSL_PID (also stopped by the cleanup trap).
nsl_bg() {
  local n="$1" log="$2"; shift 2
  ip netns exec "$n" "$@" >"$NSL_TMP/$log.log" 2>&1 &
  NSL_PID=$!
  NSL_PIDS+=("$NSL_PID")
}

# nsl_stop PID: stops one process started by nsl_bg.
nsl_stop() {
  local p="$1"
  kill -TERM "$p" 2>/dev/null || return 0
  for _ in $(seq 1 25); do
    kill -0 "$p" 2>/dev/null || { wait "$p" 2>/dev/null || true; return 0; }
    sleep 0.2
  done
  kill -KILL "$p" 2>/dev/null || true
  wait "$p" 2>/dev/null || true
}

# nsl_wait_file PATH [SECONDS]: waits for a file to exist.
nsl_wait_file() {
  local t=$(( ${2:-10} * 10 ))
  for _ in $(seq 1 "$t"); do
    [ -e "$1" ] && return 0
    sleep 0.1
  done
  return 1
}

# nsl_offloads NS IF MODE: MODE=endpoint (tx checksum off) or gateway (GRO/GSO/TSO off too).
nsl_offloads() {
  local n="$1" i="$2" mode="$3"
  if [ "$mode" = gateway ]; then
    ip netns exec "$n" ethtool -K "$i" tx off rx off gro off gso off tso off >/dev/null 2>&1 || true
  else
    ip netns exec "$n" ethtool -K "$i" tx off >/dev/null 2>&1 || true
  fi
}

# nsl_topo_pair: builds
#   hA (lanA 10.1.0.2, fd00:1::2) — gwA (10.1.0.1 | wan 192.0.2.1) —
#   gwB (wan 192.0.2.2 | 10.2.0.1) — hB (lanB 10.2.0.2, fd00:2::2)
# Sets NS_HA NS_GWA NS_GWB NS_HB. Interfaces: gateways "lan" and "wan",
# hosts "eth0". Gateways route each other's LAN via the WAN peer; kernel
# forwarding is left off (the dataplane forwards). MTU 1500 everywhere.
nsl_topo_pair() {
  nsl_ns hA; NS_HA=$NSL_NS
  nsl_ns gwA; NS_GWA=$NSL_NS
  nsl_ns gwB; NS_GWB=$NSL_NS
  nsl_ns hB; NS_HB=$NSL_NS
  nsl_veth "$NS_HA" eth0 "$NS_GWA" lan
  nsl_veth "$NS_GWA" wan "$NS_GWB" wan
  nsl_veth "$NS_GWB" lan "$NS_HB" eth0
  ip -n "$NS_HA" addr add 10.1.0.2/24 dev eth0
  ip -n "$NS_HA" addr add fd00:1::2/64 dev eth0 nodad
  ip -n "$NS_HA" route add default via 10.1.0.1
  ip -n "$NS_HA" -6 route add default via fd00:1::1
  ip -n "$NS_HB" addr add 10.2.0.2/24 dev eth0
  ip -n "$NS_HB" addr add fd00:2::2/64 dev eth0 nodad
  ip -n "$NS_HB" route add default via 10.2.0.1
  ip -n "$NS_HB" -6 route add default via fd00:2::1
  ip -n "$NS_GWA" addr add 10.1.0.1/24 dev lan
  ip -n "$NS_GWA" addr add fd00:1::1/64 dev lan nodad
  ip -n "$NS_GWA" addr add 192.0.2.1/24 dev wan
  ip -n "$NS_GWA" addr add fd00:ff::1/64 dev wan nodad
  ip -n "$NS_GWA" route add 10.2.0.0/24 via 192.0.2.2
  ip -n "$NS_GWA" -6 route add fd00:2::/64 via fd00:ff::2
  ip -n "$NS_GWB" addr add 10.2.0.1/24 dev lan
  ip -n "$NS_GWB" addr add fd00:2::1/64 dev lan nodad
  ip -n "$NS_GWB" addr add 192.0.2.2/24 dev wan
  ip -n "$NS_GWB" addr add fd00:ff::2/64 dev wan nodad
  ip -n "$NS_GWB" route add 10.1.0.0/24 via 192.0.2.1
  ip -n "$NS_GWB" -6 route add fd00:1::/64 via fd00:ff::1
  local n
  for n in "$NS_GWA" "$NS_GWB"; do
    ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=0
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.forwarding=0
    nsl_offloads "$n" lan gateway
    nsl_offloads "$n" wan gateway
  done
  nsl_offloads "$NS_HA" eth0 endpoint
  nsl_offloads "$NS_HB" eth0 endpoint
}

# nsl_topo_kernel_forwarding: turns the gateways into plain kernel routers
# (the reference for benchmarks; no dataplane running).
nsl_topo_kernel_forwarding() {
  local n
  for n in "$NS_GWA" "$NS_GWB"; do
    ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=1
    ip netns exec "$n" sysctl -qw net.ipv6.conf.all.forwarding=1
  done
}

# nsl_dataplane NS NAME [extra args...]: starts espresso-dataplane on a
# gateway (inside "lan", outside "wan"), waits until it runs; sets NSL_PID.
# Counters go to $NSL_TMP/NAME.json. Binary: $ESPRESSO_BIN (default target/release).
nsl_dataplane() {
  local n="$1" name="$2"; shift 2
  local bin="${ESPRESSO_DP_BIN:-${ESPRESSO_TARGET:-target/release}/espresso-dataplane}"
  [ -x "$bin" ] || nsl_die "$bin not built (cargo build --profile ci -p espresso-dataplane)"
  rm -f "$NSL_TMP/$name.json"
  nsl_bg "$n" "$name" env RUST_LOG="${RUST_LOG:-info}" "$bin" --inside lan --outside wan \
        --configure-kernel --stats-file "$NSL_TMP/$name.json" --stats-interval-ms 200 "$@"
  nsl_wait_file "$NSL_TMP/$name.json" 15 || nsl_die "dataplane $name did not start"
}

# nsl_stat NAME EXPR: evaluates a Python expression over the dataplane's
# counters file ($NSL_TMP/NAME.json as `s`), e.g. nsl_stat gwA "s['drops'].get('replayed',0)".
nsl_stat() {
  python3 -c "import json,sys; s=json.load(open(sys.argv[1])); print($2)" "$NSL_TMP/$1.json"
}

# nsl_wait_stat NAME COND [SECONDS]: waits (default 3 s) until the Python
# condition COND over NAME's counters file (as `s`) holds, since counters are
# published every --stats-interval-ms; returns 1 if it never does.
nsl_wait_stat() {
  local i n=$(( ${3:-3} * 10 ))
  for ((i = 0; i < n; i++)); do
    [ "$(nsl_stat "$1" "bool($2)" 2>/dev/null)" = True ] && return 0
    sleep 0.1
  done
  return 1
}

# nsl_expect DESCRIPTION cmd...: runs cmd, fails the test with DESCRIPTION if it fails.
nsl_expect() {
  local d="$1"; shift
  if "$@"; then nsl_log "ok: $d"; else nsl_die "$d"; fi
}

# nsl_topo_single: one gateway between two hosts (forwarding benchmarks):
#   hA (eth0 10.1.0.2) — gw (lan 10.1.0.1 | wan 10.9.0.1) — hB (eth0 10.9.0.2)
# Sets NS_HA NS_GW NS_HB; kernel forwarding off on gw.
nsl_topo_single() {
  nsl_ns hA; NS_HA=$NSL_NS
  nsl_ns gw; NS_GW=$NSL_NS
  nsl_ns hB; NS_HB=$NSL_NS
  nsl_veth "$NS_HA" eth0 "$NS_GW" lan
  nsl_veth "$NS_GW" wan "$NS_HB" eth0
  ip -n "$NS_HA" addr add 10.1.0.2/24 dev eth0
  ip -n "$NS_HA" route add default via 10.1.0.1
  ip -n "$NS_GW" addr add 10.1.0.1/24 dev lan
  ip -n "$NS_GW" addr add 10.9.0.1/24 dev wan
  ip -n "$NS_HB" addr add 10.9.0.2/24 dev eth0
  ip -n "$NS_HB" route add default via 10.9.0.1
  ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=0
  nsl_offloads "$NS_GW" lan gateway
  nsl_offloads "$NS_GW" wan gateway
  nsl_offloads "$NS_HA" eth0 endpoint
  nsl_offloads "$NS_HB" eth0 endpoint
}

# nsl_rx_packets NS IF: the interface's received-packets counter.
nsl_rx_packets() { ip netns exec "$1" cat "/sys/class/net/$2/statistics/rx_packets"; }

# nsl_mac NS IF: the interface's MAC address.
nsl_mac() { ip netns exec "$1" cat "/sys/class/net/$2/address"; }
