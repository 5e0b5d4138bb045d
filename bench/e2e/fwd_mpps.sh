#!/usr/bin/env bash
# Forwarding rate, 64-byte UDP frames over 16 flows: espresso's AF_PACKET
# dataplane (one worker) vs kernel forwarding (offloads off), same topology,
# same generator, same run: hA (generator) — gw — hB (sink, drops in nftables).
# The rate is what reaches hB (its veth rx counter) per second.
# Env: SECS (default 5), VARIANTS (default "v2-sendmmsg v3-sendmmsg v2-ring").
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
SECS="${SECS:-5}"
VARIANTS="${VARIANTS:-v2-sendmmsg v3-sendmmsg v2-ring}"
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

# measure LABEL: runs the generator flat out for $SECS s; prints Mpps at hB.
measure() {
  local before after
  before=$(nsl_rx_packets "$NS_HB" eth0)
  local t0 t1
  t0=$(date +%s.%N)
  nsl_x "$NS_HA" chrt -f 50 taskset -c 0 "$PROBE" gen --iface eth0 --dst-mac "$GWMAC" \
      --src 10.1.0.2 --dst 10.9.0.2 --secs "$SECS" --size 64 --flows 16 >"$NSL_TMP/gen_$1.json"
  t1=$(date +%s.%N)
  sleep 0.3
  after=$(nsl_rx_packets "$NS_HB" eth0)
  python3 -c "import sys; print('%.3f' % ((int(sys.argv[2]) - int(sys.argv[1])) / float(sys.argv[3]) / 1e6))" \
      "$before" "$after" "$SECS"
}

# Kernel forwarding reference.
ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=1
nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.9.0.2 >/dev/null 2>&1 || true
KERNEL=$(measure kernel)
ip netns exec "$NS_GW" sysctl -qw net.ipv4.ip_forward=0
nsl_log "kernel forwarding: $KERNEL Mpps (generator: $(cat "$NSL_TMP/gen_kernel.json"))"

for v in $VARIANTS; do
  ring=${v%%-*}; tx=${v#*-}
  nsl_dataplane "$NS_GW" "dp_$v" --cores 1 --sched-fifo 50 --rx-ring "$ring" --tx "$tx"
  pid=$NSL_PID
  nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.9.0.2 >/dev/null 2>&1 || true
  OURS=$(measure "$v")
  nsl_stop "$pid"
  nsl_log "espresso $v: $OURS Mpps (generator: $(cat "$NSL_TMP/gen_$v.json"))"
  python3 -c "import sys; o,r=float(sys.argv[2]),float(sys.argv[3]); print('fwd_mpps_64B_%s: ours %.3f Mpps, reference %.3f Mpps (kernel forwarding), ratio %.2f' % (sys.argv[1], o, r, o/r if r else 0))" \
    "$v" "$OURS" "$KERNEL"
done
