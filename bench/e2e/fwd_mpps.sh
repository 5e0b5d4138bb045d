#!/usr/bin/env bash
# Forwarding rate, 64-byte UDP frames over 16 flows: espresso's AF_PACKET
# dataplane (one worker) vs kernel forwarding (offloads off), same topology,
# same generator, same run: hA (generator) — gw — hB (sink, drops in nftables).
# The rate is what reaches hB (its veth rx counter) per second.
#
# Same CPUs for both: the generator runs on CPU 0; receive packet steering
# (RPS) on gw's lan puts the gateway's receive processing on CPU 1 for both
# the kernel's forwarding and the delivery into espresso's AF_PACKET ring,
# and espresso's worker is pinned to CPU 1 too. (Without RPS, veth runs the
# receiving namespace's softirq on the sender's CPU: kernel forwarding would
# share CPU 0 with the generator while espresso had CPU 1 to itself.)
# Kernel and espresso rounds alternate; each figure is the best of ROUNDS.
# The worker runs SCHED_FIFO (--sched-fifo 50), so io::RtPacer keeps it
# under the kernel's RT budget with short rests; a variant ending in
# "-nopacer" runs the same without the pacer (ESPRESSO_RT_PACER=off: the
# kernel's RT throttling then stops the worker 50 ms each second), and each
# paced round prints the share of its time the worker rested.
# Env: SECS (default 5), ROUNDS (default 2), VARIANTS (default "v2-sendmmsg
# v3-sendmmsg v2-ring"; PACER_AB=1: "v2-sendmmsg v2-sendmmsg-nopacer", the
# pacer's cost at full load, same run, alternating; a variant ending in
# "-base" runs BASE_DP, another espresso-dataplane binary, e.g. the previous
# commit's); PERF_DIR (perf record -g of both CPUs (the gateway's is CPU 1) during
# each measurement: PERF_DIR/<variant>-<round>.data, kernel rounds too).
# Each espresso round also prints the worker's ring drops (kernel: ring
# full) and CPU 1's backlog drops (softnet_stat) during the round.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
SECS="${SECS:-5}"
ROUNDS="${ROUNDS:-2}"
if [ "${PACER_AB:-0}" = 1 ]; then
  VARIANTS="${VARIANTS:-v2-sendmmsg v2-sendmmsg-nopacer}"
else
  VARIANTS="${VARIANTS:-v2-sendmmsg v3-sendmmsg v2-ring}"
fi
T="${ESPRESSO_TARGET:-target/release}"
PROBE="$T/espresso-probe"
[ -x "$PROBE" ] || nsl_die "$PROBE not built (cargo build --release -p espresso-bench)"
nsl_init fwdmpps
nsl_topo_single
nsl_x "$NS_HB" nft -f - <<'NFT'
table ip espresso_sink {
  chain pre {
    type filter hook prerouting priority -300; policy accept;
    udp dport 9 drop
  }
}
NFT
GWMAC=$(nsl_mac "$NS_GW" lan)
# RPS: gw's receive processing on CPU 1 (mask 2), for both contenders.
ip netns exec "$NS_GW" sh -c 'for q in /sys/class/net/lan/queues/rx-*/rps_cpus; do echo 2 > "$q"; done'
[ "$(ip netns exec "$NS_GW" cat /sys/class/net/lan/queues/rx-0/rps_cpus | tr -d 0,)" = 2 ] ||
  nsl_die "cannot set RPS on gw's lan"
echo "# CPU: $(lscpu | sed -nE 's/^Model name: *//p'), $(nproc) vCPUs, load average $(cut -d' ' -f1-3 /proc/loadavg); generator CPU 0, gateway CPU 1 (RPS / pinned worker)"

# measure LABEL: runs the generator flat out for $SECS s; prints Mpps at hB.
measure() {
  local before after
  before=$(nsl_rx_packets "$NS_HB" eth0)
  local perf_pid=""
  if [ -n "${PERF_DIR:-}" ]; then
    mkdir -p "$PERF_DIR"
    perf record -q -g -a -o "$PERF_DIR/$1-${ROUND:-0}.data" -- sleep "$SECS" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  nsl_x "$NS_HA" chrt -f 50 taskset -c 0 "$PROBE" gen --iface eth0 --dst-mac "$GWMAC" \
      --src 10.1.0.2 --dst 10.9.0.2 --secs "$SECS" --size 64 --flows 16 >"$NSL_TMP/gen_$1.json"
  [ -z "$perf_pid" ] || wait "$perf_pid" || true
  sleep 0.3
  after=$(nsl_rx_packets "$NS_HB" eth0)
  python3 -c "import sys; print('%.3f' % ((int(sys.argv[2]) - int(sys.argv[1])) / float(sys.argv[3]) / 1e6))" \
      "$before" "$after" "$SECS"
}

# backlog_drops: CPU 1's input backlog drops so far (softnet_stat, all namespaces).
backlog_drops() { python3 -c "print(int(open('/proc/net/softnet_stat').read().split(chr(10))[1].split()[1], 16))"; }

best() { python3 -c "import sys; print(max(float(x) for x in sys.argv[1:]))" "$@"; }
# nonzero WHAT MPPS: a round in which nothing reached hB measures a fault, not a rate.
nonzero() { python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)" "$2" || nsl_die "$1: nothing reached hB"; }
declare -A RES=()
for r in $(seq "$ROUNDS"); do
  ROUND=$r
  # Kernel forwarding reference.
  ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=1
  nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.9.0.2 >/dev/null 2>&1 || true
  b0=$(backlog_drops)
  K=$(measure kernel)
  b1=$(backlog_drops)
  nonzero "round $r kernel forwarding" "$K"
  ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=0
  nsl_log "round $r kernel forwarding: $K Mpps (generator: $(cat "$NSL_TMP/gen_kernel.json")); CPU 1 backlog drops $((b1 - b0))"
  RES[kernel]="${RES[kernel]:-} $K"
  for v in $VARIANTS; do
    ring=${v%%-*}; tx=${v#*-}; tx=${tx%%-*}
    pacer=on bin=${ESPRESSO_DP_BIN:-$T/espresso-dataplane}
    case "$v" in *-nopacer) pacer=off ;; esac
    case "$v" in *-base) [ -x "${BASE_DP:-}" ] || nsl_die "$v: BASE_DP is not an executable"; bin=$BASE_DP ;; esac
    ESPRESSO_DP_BIN=$bin ESPRESSO_RT_PACER=$pacer nsl_dataplane "$NS_GW" "dp_${v}_$r" --cores 1 --sched-fifo 50 --rx-ring "$ring" --tx "$tx"
    pid=$NSL_PID
    nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.9.0.2 >/dev/null 2>&1 || true
    tid=$(grep -lx worker0 /proc/"$pid"/task/*/comm | head -1 | cut -d/ -f5)
    [ -n "$tid" ] || nsl_die "$v: no worker0 thread in $pid"
    c0=$(cut -d' ' -f1 /proc/"$pid"/task/"$tid"/schedstat); w0=$(date +%s%N); b0=$(backlog_drops)
    O=$(measure "$v")
    c1=$(cut -d' ' -f1 /proc/"$pid"/task/"$tid"/schedstat); w1=$(date +%s%N); b1=$(backlog_drops)
    oncpu=$(python3 -c "import sys; print('%.1f' % (100.0 * (int(sys.argv[2]) - int(sys.argv[1])) / (int(sys.argv[4]) - int(sys.argv[3]))))" "$c0" "$c1" "$w0" "$w1")
    nsl_stop "$pid"
    nonzero "round $r espresso $v" "$O"
    paced=$(sed -nE 's/.*(worker [0-9]+: [0-9]+ RT pacing pauses.*)/\1/p' "$NSL_TMP/dp_${v}_$r.log" | tail -1)
    ringdrops=$(sed -nE 's/.*worker0 port 0: .*rx_dropped: ([0-9]+).*/\1/p' "$NSL_TMP/dp_${v}_$r.log" | tail -1)
    nsl_log "round $r espresso $v: $O Mpps (generator: $(cat "$NSL_TMP/gen_$v.json")); worker on its CPU $oncpu % of the measurement${paced:+; $paced}; lan ring drops ${ringdrops:-?} (whole run), CPU 1 backlog drops $((b1 - b0))"
    RES[$v]="${RES[$v]:-} $O"
  done
done
# shellcheck disable=SC2086
KERNEL=$(best ${RES[kernel]})
for v in $VARIANTS; do
  # shellcheck disable=SC2086
  OURS=$(best ${RES[$v]})
  python3 -c "import sys; o,r=float(sys.argv[2]),float(sys.argv[3]); print('fwd_mpps_64B_%s: ours %.3f Mpps, reference %.3f Mpps (kernel forwarding, same CPUs), ratio %.2f' % (sys.argv[1], o, r, o/r))" \
    "$v" "$OURS" "$KERNEL"
done
