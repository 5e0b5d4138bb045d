#!/usr/bin/env bash
# iperf3 TCP Gbps hA -> hB through the gateway pair, same topology and run:
#   ESP (AES-128-GCM) through espresso  vs  cleartext (bypass policy) through
#   the same espresso dataplanes  vs  kernel forwarding (offloads off).
# ESP and cleartext runs alternate REPS times (the machine is shared and
# noisy); each figure is the mean of its runs. The first ESP run of a
# namespace pair includes path MTU discovery (a few ICMP "fragmentation
# needed" and retransmits at its start).
# Env: DUR (iperf3 seconds, default 10), REPS (default 2).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
DUR="${DUR:-10}"
REPS="${REPS:-2}"
nsl_init iperf
nsl_topo_pair
KAB=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
KBA=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
for s in a b; do
  python3 tests/lib/static_sa.py "$NSL_TMP/$s.sa" --side $s --key-ab "$KAB" --key-ba "$KBA"
  python3 tests/lib/static_sa.py "$NSL_TMP/${s}_bypass.sa" --side $s --bypass
done

iperf_run() { # prints "Gbps retransmits"
  local port=$(( 5201 + RANDOM % 1000 ))
  nsl_bg "$NS_HB" "iperf3s_$port" iperf3 -s -1 -B 10.2.0.2 -p "$port"
  local srv=$NSL_PID
  sleep 0.5
  nsl_x "$NS_HA" iperf3 -c 10.2.0.2 -p "$port" -t "$DUR" -J >"$NSL_TMP/iperf_$port.json" || true
  nsl_stop "$srv"
  python3 - "$NSL_TMP/iperf_$port.json" <<'PY'
import json, sys
try:
    e = json.load(open(sys.argv[1]))["end"]
    print("%.3f %d" % (e["sum_received"]["bits_per_second"] / 1e9, e["sum_sent"].get("retransmits", 0)))
except Exception:
    print("0 0")
PY
}
with_dp() { # $1 suffix; runs iperf through both dataplanes
  nsl_dataplane "$NS_GWA" "gwA$1" --cores 0 --idle backoff --static-sa "$NSL_TMP/a$1.sa"; local pa=$NSL_PID
  nsl_dataplane "$NS_GWB" "gwB$1" --cores 1 --idle backoff --static-sa "$NSL_TMP/b$1.sa"; local pb=$NSL_PID
  nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
  iperf_run
  nsl_stop "$pa"; nsl_stop "$pb"
}

nsl_topo_kernel_forwarding
nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
read -r KG KR < <(iperf_run)
for n in "$NS_GWA" "$NS_GWB"; do
  ip netns exec "$n" sysctl -qw net.ipv4.ip_forward=0
  ip netns exec "$n" sysctl -qw net.ipv6.conf.all.forwarding=0
done
CGS=(); EGS=(); CR=0; ER=0
for _ in $(seq 1 "$REPS"); do
  read -r g r < <(with_dp "")
  EGS+=("$g"); ER=$((ER + r))
  read -r g r < <(with_dp _bypass)
  CGS+=("$g"); CR=$((CR + r))
done
mean() { python3 -c "import sys; v=[float(x) for x in sys.argv[1:]]; print('%.3f' % (sum(v)/len(v)))" "$@"; }
CG=$(mean "${CGS[@]}"); EG=$(mean "${EGS[@]}")
nsl_log "runs: ESP ${EGS[*]} Gbps; cleartext ${CGS[*]} Gbps"
nsl_log "kernel $KG Gbps ($KR retr), espresso clear $CG Gbps ($CR retr), espresso ESP $EG Gbps ($ER retr)"
python3 - "$EG" "$CG" "$KG" <<'PY'
import sys
e, c, k = map(float, sys.argv[1:])
r = lambda a, b: a / b if b else 0
print("iperf3_esp_vs_clear: ours %.3f Gbps, reference %.3f Gbps (cleartext, same dataplanes), ratio %.2f" % (e, c, r(e, c)))
print("iperf3_clear_vs_kernel: ours %.3f Gbps, reference %.3f Gbps (kernel forwarding, offloads off), ratio %.2f" % (c, k, r(c, k)))
print("iperf3_esp_vs_kernel: ours %.3f Gbps, reference %.3f Gbps (kernel forwarding, cleartext), ratio %.2f" % (e, k, r(e, k)))
PY
