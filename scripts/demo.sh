#!/usr/bin/env bash
# espresso demo: two gateways in network namespaces, each running the
# control daemon and the dataplane (linked by shared memory), carrying
# iperf3 through ESP tunnels with manual AES-128-GCM keys; then the same
# iperf3 through the same processes with a bypass policy (cleartext) for
# the ratio.
#
#   lanA (hA 10.1.0.2) — gwA 192.0.2.1 — wan — 192.0.2.2 gwB — lanB (hB 10.2.0.2)
#
# Usage: scripts/demo.sh [SECONDS]   (iperf3 duration, default 10)
# Installs what it needs (scripts/setup.sh), builds in release mode, and
# cleans everything up at the end (also on failure or Ctrl-C). Run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
DUR="${1:-10}"

scripts/setup.sh
echo "== building (release) =="
cargo build --release -p espresso-dataplane -p espresso-control -p espresso-bench --bins 2>&1 | tail -n 2
export ESPRESSO_TARGET="${CARGO_TARGET_DIR:-target}/release"

source tests/lib/netns.sh
source tests/lib/control.sh
nsl_init demo
echo "== topology: lanA(hA) - gwA - wan - gwB - lanB(hB), MTU 1500 everywhere =="
nsl_topo_pair

# Configs (docs/config.md): tunnels lan4 (10.1.0.0/24 <-> 10.2.0.0/24) and
# lan6 (fd00:1::/64 <-> fd00:2::/64), AES-128-GCM, manual keys from
# `espresso genkey`-style random 160-bit values in 0600 secrets files,
# mirrored SPIs on the two sides.
ctl_setup
echo "-- gwA config: $CFG_A"
sed 's/^/   /' "$NSL_TMP/A/tunnels/lan4.toml"

DP_ARGS=(--tun esp0)
ctl_dataplane A "${DP_ARGS[@]}"
ctl_dataplane B "${DP_ARGS[@]}"
ctl_daemon A
ctl_daemon B
for s in A B; do for t in lan4 lan6; do ctl_wait_state "$s" "$t" up; done; done
echo "== tunnels up =="
ctl A status

iperf_run() { # prints "Gbps retransmits"
  local port=$(( 5201 + RANDOM % 1000 ))
  nsl_bg "$NS_HB" "iperf3s_$port" iperf3 -s -1 -B 10.2.0.2 -p "$port"
  local srv=$NSL_PID
  sleep 0.5
  nsl_x "$NS_HA" iperf3 -c 10.2.0.2 -p "$port" -t "$DUR" -J >"$NSL_TMP/iperf_$port.json" \
    || { nsl_stop "$srv"; nsl_die "iperf3 failed"; }
  nsl_stop "$srv"
  python3 - "$NSL_TMP/iperf_$port.json" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["end"]
print("%.3f %d" % (e["sum_received"]["bits_per_second"] / 1e9, e["sum_sent"].get("retransmits", 0)))
PY
}

echo "== ESP tunnel (AES-128-GCM, manual keys) =="
ctl_ping "$NS_HA" 10.2.0.2 3 >/dev/null || true
nsl_expect "ping hA -> hB through the tunnel" nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 2 10.2.0.2
nsl_expect "ping hB -> hA through the tunnel" nsl_x "$NS_HB" ping -c 3 -i 0.2 -W 2 10.1.0.2
nsl_expect "ping hA -> hB through the tunnel (IPv6)" nsl_x "$NS_HA" ping -6 -c 3 -i 0.2 -W 2 fd00:2::2
echo "iperf3 TCP ${DUR}s hA -> hB through ESP ..."
read -r ESP_GBPS ESP_RETR < <(iperf_run)
sleep 0.3
SA_REPORT=$( { echo "gwA:"; ctl A status; echo "gwB:"; ctl B status; } | sed 's/^/  /')
ESP_CHECK=$(ctl_field A "t('lan4')['outbound']['packets']")
[ "$ESP_CHECK" -gt 1000 ] || nsl_die "the iperf3 traffic did not go through the lan4 SA ($ESP_CHECK packets)"

echo "== same daemons and dataplanes, bypass policy (cleartext) =="
for s in A B; do
  if [ "$s" = A ]; then l4=10.1.0.0/24 r4=10.2.0.0/24; else l4=10.2.0.0/24 r4=10.1.0.0/24; fi
  cat >"$NSL_TMP/$s/tunnels/zz-bypass.toml" <<CONF
[[policy]]
name = "demo-bypass"
local_subnets = ["$l4"]
remote_subnets = ["$r4"]
action = "bypass"
priority = 10
CONF
  ctl "$s" reload >/dev/null
done
sleep 0.5
before=$(ctl_field A "t('lan4')['outbound']['packets']")
nsl_expect "ping hA -> hB in the clear" nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 2 10.2.0.2
echo "iperf3 TCP ${DUR}s hA -> hB in the clear ..."
read -r CLR_GBPS CLR_RETR < <(iperf_run)
after=$(ctl_field A "t('lan4')['outbound']['packets']")
[ "$after" -eq "$before" ] || nsl_die "bypass run went through the SA ($before -> $after packets)"

RATIO=$(python3 -c "import sys; print('%.2f' % (float(sys.argv[1]) / float(sys.argv[2])))" "$ESP_GBPS" "$CLR_GBPS")
echo
echo "================ espresso demo report ================"
echo "ESP tunnel lan4 (AES-128-GCM):  $ESP_GBPS Gbps, $ESP_RETR TCP retransmits"
echo "bypass policy (cleartext):      $CLR_GBPS Gbps, $CLR_RETR TCP retransmits"
echo "per-SA counters after the ESP run (espresso status):"
echo "$SA_REPORT"
echo "iperf3_esp_vs_bypass: ours $ESP_GBPS Gbps, reference $CLR_GBPS Gbps, ratio $RATIO"
echo "======================================================"
