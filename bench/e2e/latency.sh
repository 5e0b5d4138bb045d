#!/usr/bin/env bash
# Latency added by one gateway at about half load: timestamped UDP probes
# (2000/s, sender wall clock vs the receiver's kernel timestamp, HDR
# histogram) from hA to hB through the gateway, while the generator sends
# 64-byte background traffic at half of the rate the gateway forwarded flat
# out in this run. espresso (TPACKET_V2 and V3) vs kernel forwarding.
# Loss: more than 1 % of the numbered probes missing at the receiver fails
# the run; so does any probe dropped by the receiver's own socket (a tool
# starved of CPU, which once passed for 75 % gateway loss: both cores were
# taken by SCHED_FIFO spinners, the paced generator and the worker, and a
# 212 KB socket buffer held 270 probes).
# Env: SECS (default 5), VARIANTS (RING-TX-IDLE words, default
# "v2-sendmmsg-busy v2-sendmmsg-backoff v3-sendmmsg-busy"), LOAD_PCT (the
# background as a share of the flat-out rate, default 50), DP_ARGS (more
# espresso-dataplane options, e.g. "--frames 8192").
# The worker runs SCHED_FIFO on its own core (as the kernel's softirq
# processing effectively does); busy polling then meets the kernel's RT
# throttling (sched_rt_runtime_us: a 50 ms pause each second when spinning
# flat out) unless it paces itself (io::RtPacer: ~33 us rests every 0.5 ms
# of CPU, taken when idle); backoff sleeps in poll(2) when idle and pays a
# wake-up instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
SECS="${SECS:-5}"
LOAD_PCT="${LOAD_PCT:-50}"
VARIANTS="${VARIANTS:-v2-sendmmsg-busy v2-sendmmsg-backoff v3-sendmmsg-busy}"
T="${ESPRESSO_TARGET:-target/release}"
PROBE="$T/espresso-probe"
[ -x "$PROBE" ] || nsl_die "$PROBE not built (cargo build --release -p espresso-bench)"
nsl_init lat
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

max_rate() { # flat-out Mpps reaching hB in 2 s
  local b a
  b=$(nsl_rx_packets "$NS_HB" eth0)
  nsl_x "$NS_HA" chrt -f 50 taskset -c 0 "$PROBE" gen --iface eth0 --dst-mac "$GWMAC" --src 10.1.0.2 \
      --dst 10.9.0.2 --secs 2 >/dev/null
  sleep 0.2
  a=$(nsl_rx_packets "$NS_HB" eth0)
  echo $(( (a - b) / 2 ))
}

# probe LABEL PPS: background load at PPS, probes; prints "p50 p99".
probe() {
  local label="$1" pps="$2"
  nsl_bg "$NS_HB" "latrx_$label" "$PROBE" lat-rx --bind 10.9.0.2:7777 --secs $((SECS + 2))
  local rx=$NSL_PID
  sleep 0.3
  local gen=""
  if [ "$pps" -gt 0 ]; then
    nsl_bg "$NS_HA" "gen_$label" chrt -f 50 taskset -c 0 "$PROBE" gen --iface eth0 --dst-mac "$GWMAC" \
        --src 10.1.0.2 --dst 10.9.0.2 --secs $((SECS + 1)) --pps "$pps"
    gen=$NSL_PID
  fi
  # The probe sender shares the generator's core, not the worker's: a
  # real-time task on the worker's core eats the RT budget of that core
  # (see io::RtPacer) and once made the kernel stop the worker 50 ms a second.
  nsl_x "$NS_HA" chrt -f 60 taskset -c 0 "$PROBE" lat-tx --dst 10.9.0.2:7777 --pps 2000 --secs "$SECS" >"$NSL_TMP/lattx_$label.json"
  for _ in $(seq 1 50); do kill -0 "$rx" 2>/dev/null || break; sleep 0.1; done
  [ -n "$gen" ] && nsl_stop "$gen"
  nsl_stop "$rx"
  python3 -c "import json,sys; j=json.load(open(sys.argv[1])); print(j['p50_us'], j['p99_us'], j['received'], json.load(open(sys.argv[2]))['probes'], j['socket_drops'], ','.join(j['missing_runs']) or '-')" \
      "$NSL_TMP/latrx_$label.log" "$NSL_TMP/lattx_$label.json"
}

ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=1
nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.9.0.2 >/dev/null 2>&1 || true
KMAX=$(max_rate)
read -r KP50 KP99 KN KS KD KM < <(probe kernel $((KMAX * LOAD_PCT / 100)))
ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=0
nsl_log "kernel forwarding: max $KMAX pps; at half load p50 $KP50 us, p99 $KP99 us ($KN of $KS probes)"
[ "$KMAX" -gt 0 ] && [ "${KN:-0}" -gt 0 ] || nsl_die "kernel forwarding: no packets through (max $KMAX pps, ${KN:-0} probes)"
# Percentiles of the probes that arrived hide the ones lost: more than 1 %
# of the probes lost fails the run (on either side) instead of a ratio.
# Probes the receiving socket itself dropped (SO_RXQ_OVFL) are the
# benchmark's fault, not the gateway's: they fail the run on their own.
# probes_ok WHO RECEIVED SENT SOCKET_DROPS MISSING_RUNS
probes_ok() {
  [ "${4:-0}" -eq 0 ] || nsl_die "$1: the probe receiver's socket dropped $4 probes (receiver starved; not the gateway's loss)"
  python3 -c "import sys; sys.exit(0 if int(sys.argv[1]) >= 0.99 * int(sys.argv[2]) else 1)" "$2" "$3" ||
    nsl_die "$1: $2 of $3 latency probes arrived (more than 1 % lost at $LOAD_PCT % load; missing probes, first+count: $5)"
}
probes_ok "kernel forwarding" "$KN" "${KS:-0}" "${KD:-0}" "${KM:--}"

for v in $VARIANTS; do
  IFS=- read -r ring tx idle <<<"$v"
  # shellcheck disable=SC2086
  nsl_dataplane "$NS_GW" "dp_$v" --cores 1 --sched-fifo 50 --idle "${idle:-busy}" --idle-sleep-us 1000 --rx-ring "$ring" --tx "$tx" ${DP_ARGS:-}
  pid=$NSL_PID
  nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.9.0.2 >/dev/null 2>&1 || true
  MAX=$(max_rate)
  read -r P50 P99 N S D M < <(probe "$v" $((MAX * LOAD_PCT / 100)))
  nsl_stop "$pid"
  nsl_log "espresso $v: max $MAX pps; at half load p50 $P50 us, p99 $P99 us ($N of $S probes); $(grep -o '[0-9]* RT pacing pauses\|port 0: PortStats {[^}]*}' "$NSL_TMP/dp_$v.log" | tr '\n' ' ') drops $(nsl_stat "dp_$v" "s.get('drops')" 2>/dev/null) (the whole run, flat-out phase included)"
  [ "$MAX" -gt 0 ] && [ "${N:-0}" -gt 0 ] || nsl_die "espresso $v: no packets through (max $MAX pps, ${N:-0} probes)"
  probes_ok "espresso $v" "$N" "${S:-0}" "${D:-0}" "${M:--}"
  python3 - "$v" "$P50" "$P99" "$KP50" "$KP99" <<'PY'
import sys
v, p50, p99, k50, k99 = sys.argv[1], *map(float, sys.argv[2:])
print("latency_p50_half_load_%s: ours %.1f us, reference %.1f us (kernel forwarding), ratio %.2f" % (v, p50, k50, p50 / k50))
print("latency_p99_half_load_%s: ours %.1f us, reference %.1f us (kernel forwarding), ratio %.2f" % (v, p99, k99, p99 / k99))
PY
done
