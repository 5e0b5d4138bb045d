#!/usr/bin/env bash
# ESP tunnel encap Mpps on one core: espresso-dataplane on DPDK ports against
# DPDK's own ipsec-secgw (bench/e2e/dpdk_secgw.sh), same vdevs, same traffic,
# same SA (AES-128-GCM tunnel, same key; SPI 0x1005 for espresso, which
# refuses the reserved SPIs 1-255 that the ipsec-secgw example uses), measured alternately in one run.
#
#   cleartext: net_pcap0 (a pcap of 64 UDP flows replayed forever, infinite_rx)
#   ESP out:   net_null1 (discards)
#
# espresso runs its normal worker (Ethernet demux, SPD lookup, grouping by SA,
# encap in the mbufs, routing, Ethernet rewrite) with the exception path on
# TAP interfaces that carry the routes and a static neighbour for the peer.
# Both outputs are first checked with tshark (every ESP packet decrypts).
#
# Usage: bench/e2e/dpdk_esp.sh [--secs N] [--rounds N] [--size 64|512|1420] [--bypass]
# Prints "dpdk esp encap <size>B: ours X Mpps, ipsec-secgw Y Mpps, ratio Z"
# (best of the rounds for each). --bypass: both forward the same traffic in
# the clear under a bypass policy (the whole gateway path without crypto):
# "dpdk bypass forward <size>B: ...".
set -euo pipefail
cd "$(dirname "$0")/../.."
top=$(pwd)
secs=6
rounds=2
size=64
bypass=0
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --bypass) bypass=1; shift ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

source tests/lib/netns.sh
nsl_init dpesp
cargo build --release -q -p espresso-dataplane
bench/e2e/dpdk_secgw.sh --build-only >/dev/null
bin=${ESPRESSO_TARGET:-target/release}/espresso-dataplane

# Cleartext frames addressed to net_pcap0's MAC (DPDK's pcap PMD numbers its
# ports 02:70:63:61:70:NN from 00).
PCAP_MAC=02:70:63:61:70:00
python3 - "$NSL_TMP/in.pcap" "$size" "$PCAP_MAC" <<'PY'
import sys
from scapy.all import Ether, IP, UDP, Raw, wrpcap
out, size, mac = sys.argv[1], int(sys.argv[2]), sys.argv[3]
pk = []
for i in range(64):
    p = Ether(src="02:00:00:00:00:01", dst=mac) / \
        IP(src="192.168.10.%d" % (i + 1), dst="192.168.105.%d" % (i + 1), ttl=64) / UDP(sport=1000 + i, dport=2000)
    pk.append(p / Raw(b"\x00" * max(0, size - 4 - len(p))))
wrpcap(out, pk)
PY

KEY=0x0102030405060708090a0b0c0d0e0f1011121314
python3 - "$NSL_TMP/sa.json" "$KEY" "$bypass" <<'PY'
import json, os, sys
ANY = {"start": 0, "end": 65535}
sel = {"local": "192.168.10.0/24", "remote": "192.168.105.0/24", "proto": 0,
       "local_ports": ANY, "remote_ports": ANY}
def sa(spi, direction, local, remote):
    return {"spi": spi, "direction": direction, "mode": "tunnel",
            "suite": {"encr": "aes-gcm128", "integ": "none"},
            "enc_key": sys.argv[2], "auth_key": "", "esn": False,
            "replay_window": 4096 if direction == "inbound" else 0,
            "local_addr": local, "remote_addr": remote, "encap": None,
            "selectors": [sel],
            "lifetime": {"soft_bytes": 0, "hard_bytes": 0, "soft_packets": 0, "hard_packets": 0},
            "df": "copy", "copy_dscp": True, "initial_seq": 1, "allow_legacy": False, "tunnel_id": 1}
doc = {"sas": [sa(0x1005, "outbound", "172.16.1.5", "172.16.2.5"),
               sa(0x1105, "inbound", "172.16.1.5", "172.16.2.5")],
       "policies": [{"id": 1, "tunnel_id": 1, "selector": sel,
                     "action": {"action": "protect", "spi": 0x1005}, "priority": 10}]}
if sys.argv[3] == "1":
    doc["policies"][0]["action"] = {"action": "bypass"}
fd = os.open(sys.argv[1], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
with os.fdopen(fd, "w") as f:
    json.dump(doc, f)
PY

nsl_ns gw; NS=$NSL_NS

# packets sent (ESP, or cleartext with --bypass): worker tx counter
enc() { nsl_stat dp "sum(w['tx'] for w in s['workers'])"; }
drops() { nsl_stat dp "sum(s['drops'].values())"; }

# run_ours OUT_VDEV INFINITE(0|1): starts the dataplane in $NS, sets up its
# TAPs; sets DP (PID).
run_ours() {
  local out_vdev=$1 inf=$2
  rm -f "$NSL_TMP/dp.json"
  local eal="-l 1 --no-huge -m 1024 --no-pci --no-shconf --log-level=warning"
  eal+=" --vdev net_pcap0,rx_pcap=$NSL_TMP/in.pcap,infinite_rx=$inf --vdev $out_vdev"
  nsl_bg "$NS" dp env RUST_LOG=info "$bin" --backend dpdk --eal "$eal" --exception tap \
    --inside net_pcap0 --outside "${out_vdev%%,*}" --inside-tap lan --outside-tap wan \
    --cores 1 --static-sa "$NSL_TMP/sa.json" --configure-kernel \
    --stats-file "$NSL_TMP/dp.json" --stats-interval-ms 200
  DP=$NSL_PID
  nsl_wait_file "$NSL_TMP/dp.json" 30 || nsl_die "dataplane did not start"
  grep -q "net_pcap0 (net_pcap, $PCAP_MAC" "$NSL_TMP/dp.log" || nsl_die "net_pcap0 MAC is not $PCAP_MAC"
  ip -n "$NS" link set lan up
  ip -n "$NS" link set wan up
  ip -n "$NS" addr add 192.168.10.254/24 dev lan
  ip -n "$NS" addr add 172.16.1.5/24 dev wan
  ip -n "$NS" route add 172.16.2.0/24 dev wan
  ip -n "$NS" neigh replace 172.16.2.5 lladdr 02:00:00:00:00:09 dev wan nud permanent
  ip -n "$NS" route add 192.168.105.0/24 via 172.16.2.5 dev wan
  # Steady state: packets stop failing the route/neighbour lookups once the
  # dataplane's copy of the kernel tables has caught up (re-announce the
  # neighbour if it has not after a while).
  local prev cur
  for i in $(seq 1 40); do
    prev=$(nsl_stat dp "sum(s['drops'].values())")
    sleep 0.25
    cur=$(nsl_stat dp "sum(s['drops'].values())")
    [ "$cur" = "$prev" ] && [ "$(enc)" -gt 0 ] && return 0
    [ $((i % 8)) = 0 ] && ip -n "$NS" neigh replace 172.16.2.5 lladdr 02:00:00:00:00:09 dev wan nud permanent
  done
  nsl_die "the dataplane keeps dropping: $(nsl_stat dp "s['drops']"); $(ip -n "$NS" neigh show dev wan)"
}


# 1. correctness: one pass of the pcap (started before the routes exist, so
# replay it until it passes), ESP to a pcap, tshark decrypts every packet.
ok=0
for attempt in 1 2 3; do
  rm -f "$NSL_TMP/out.pcap"
  run_ours "net_pcap1,tx_pcap=$NSL_TMP/out.pcap" 1
  sleep 1
  nsl_stop "$DP"
  if [ "$bypass" = 1 ]; then
    n=$(tshark -r "$NSL_TMP/out.pcap" -c 2000 -Y "udp && ip.dst == 192.168.105.0/24 && !esp" -T fields -e ip.dst 2>/dev/null | grep -c . || true)
    total=$(tshark -r "$NSL_TMP/out.pcap" -c 2000 -Y "ip.src == 192.168.10.0/24 || esp" -T fields -e ip.dst 2>/dev/null | grep -c . || true)
  else
  n=$(tshark -r "$NSL_TMP/out.pcap" -c 2000 -o esp.enable_encryption_decode:TRUE -o esp.enable_authentication_check:TRUE \
    -o "uat:esp_sa:\"IPv4\",\"172.16.1.5\",\"172.16.2.5\",\"0x00001005\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"$KEY\",\"NULL\",\"\"" \
    -Y "esp.icv_good == 1 && ip.src == 192.168.10.0/24" -T fields -e esp.sequence 2>/dev/null | grep -c . || true)
  total=$(tshark -r "$NSL_TMP/out.pcap" -c 2000 -Y esp -T fields -e esp.spi 2>/dev/null | grep -c . || true)
  fi
  if [ "$total" -ge 100 ] && [ "$n" = "$total" ]; then ok=1; break; fi
done
[ "$ok" = 1 ] || nsl_die "espresso's output is wrong ($n of $total)"
if [ "$bypass" = 1 ]; then
  echo "espresso check: $n/$total packets forwarded in the clear (bypass policy)"
else
  echo "espresso check: $n/$total ESP packets decrypt with tshark (AES-128-GCM tunnel, inner 192.168.10.x)"
fi
refopt=""; what="esp encap"
[ "$bypass" = 1 ] && { refopt="--bypass"; what="bypass forward"; }

best_ours=0
best_ref=0
for r in $(seq "$rounds"); do
  run_ours "net_null1,no-rx=1" 1
  sleep 2
  e0=$(enc); d0=$(drops); t0=$(date +%s.%N)
  if [ -n "${PERF_OUT:-}" ]; then  # profile the dataplane during the window
    perf record -q -g -o "$PERF_OUT" -p "$DP" -- sleep "$secs" 2>/dev/null || true
  else
    sleep "$secs"
  fi
  e1=$(enc); d1=$(drops); t1=$(date +%s.%N)
  nsl_stop "$DP"
  ours=$(python3 -c "import sys; print('%.3f' % ((int(sys.argv[2]) - int(sys.argv[1])) / (float(sys.argv[4]) - float(sys.argv[3])) / 1e6))" "$e0" "$e1" "$t0" "$t1")
  drops="$((d1 - d0)) in the window, total $(nsl_stat dp "s['drops']")"
  ref=$(bench/e2e/dpdk_secgw.sh --secs "$secs" --size "$size" $refopt | sed -n 's/^RESULT mpps=//p')
  echo "  round $r: ours $ours Mpps (drops $drops), ipsec-secgw $ref Mpps"
  # A round that dropped or stalled measures a fault, not the speed.
  [ "$((d1 - d0))" = 0 ] || nsl_die "round $r: espresso dropped packets in the window ($drops); $(ip -n "$NS" neigh show dev wan)"
  python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)" "$ours" || nsl_die "round $r: espresso sent nothing"
  [ -n "$ref" ] && python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 else 1)" "$ref" || nsl_die "round $r: ipsec-secgw gave no result"
  best_ours=$(python3 -c "print(max(float('$best_ours'), float('$ours')))")
  best_ref=$(python3 -c "print(max(float('$best_ref'), float('${ref:-0}')))")
done
ratio=$(python3 -c "print('%.2f' % (float('$best_ours') / float('$best_ref')) if float('$best_ref') > 0 else 'n/a')")
echo "dpdk $what ${size}B: ours $best_ours Mpps, ipsec-secgw $best_ref Mpps, ratio $ratio"
