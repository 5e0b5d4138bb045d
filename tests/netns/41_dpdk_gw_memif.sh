#!/usr/bin/env bash
# A pure DPDK gateway pair: the WAN between gwA and gwB is a DPDK net_memif
# link (shared memory, invisible to the kernels), so each gateway's WAN
# address lives on a TAP interface created by the dataplane (exception path:
# ARP, ICMP and IKE to the gateway go to the kernel through the TAP, the
# kernel's answers go back out on the memif). The LANs are DPDK
# net_af_packet ports on veths (the kernel sees those frames itself).
#
#   hA (10.1.0.2) — lan [net_af_packet] gwA [net_memif server | TAP wan 192.0.2.1]
#       ═ memif ═ [net_memif client | TAP wan 192.0.2.2] gwB [net_af_packet] lan — hB (10.2.0.2)
#
# Checks: neighbour resolution across the memif through both TAPs, ping and
# UDP (IKE port 500) between the gateways' kernels over the memif, ping
# hA <-> hB through ESP (IPv4 and IPv6 inner), TCP 1 MB echo and iperf3
# through ESP, the ESP and exception counters move.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/dpdk.sh
nsl_init dpmemif

nsl_ns hA; NS_HA=$NSL_NS
nsl_ns gwA; NS_GWA=$NSL_NS
nsl_ns gwB; NS_GWB=$NSL_NS
nsl_ns hB; NS_HB=$NSL_NS
nsl_veth "$NS_HA" eth0 "$NS_GWA" lan
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
ip -n "$NS_GWB" addr add 10.2.0.1/24 dev lan
ip -n "$NS_GWB" addr add fd00:2::1/64 dev lan nodad
for n in "$NS_GWA" "$NS_GWB"; do nsl_offloads "$n" lan gateway; done
nsl_offloads "$NS_HA" eth0 endpoint
nsl_offloads "$NS_HB" eth0 endpoint

KAB=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
KBA=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
python3 tests/lib/static_sa.py "$NSL_TMP/a.sa" --side a --key-ab "$KAB" --key-ba "$KBA"
python3 tests/lib/static_sa.py "$NSL_TMP/b.sa" --side b --key-ab "$KAB" --key-ba "$KBA"

SOCK="$NSL_TMP/memif.sock"
nsl_dataplane_dpdk "$NS_GWA" gwA 0 kernel,tap net_af_packet0 net_memif0 \
  "--vdev net_af_packet0,iface=lan --vdev net_memif0,role=server,id=0,socket=$SOCK,socket-abstract=no" \
  --outside-tap wan --idle "${DP_IDLE:-backoff}" --static-sa "$NSL_TMP/a.sa"
nsl_dataplane_dpdk "$NS_GWB" gwB 1 kernel,tap net_af_packet0 net_memif0 \
  "--vdev net_af_packet0,iface=lan --vdev net_memif0,role=client,id=0,socket=$SOCK,socket-abstract=no" \
  --outside-tap wan --idle "${DP_IDLE:-backoff}" --static-sa "$NSL_TMP/b.sa"
grep -q "net_memif0 (net_memif.*TAP wan" "$NSL_TMP/gwA.log" || nsl_die "gwA's WAN is not a memif port with a TAP"

# The WAN addresses and routes go on the TAPs the dataplanes created.
for side in A B; do
  if [ $side = A ]; then n=$NS_GWA me=1 peer=2 far=10.2.0.0/24 far6=fd00:2::/64
  else n=$NS_GWB me=2 peer=1 far=10.1.0.0/24 far6=fd00:1::/64; fi
  ip -n "$n" link show wan >/dev/null || nsl_die "no TAP wan in gw$side"
  ip -n "$n" link set wan up
  ip -n "$n" addr add 192.0.2.$me/24 dev wan
  ip -n "$n" addr add fd00:ff::$me/64 dev wan nodad
  ip -n "$n" route add "$far" via 192.0.2.$peer
  ip -n "$n" -6 route add "$far6" via fd00:ff::$peer
done
macA=$(ip -n "$NS_GWA" -br link show wan | awk '{print $3}')

# 1. Exception path: the gateways' kernels reach each other over the memif.
nsl_expect "gwA kernel pings gwB's WAN address over memif (ARP + ICMP through both TAPs)" \
  nsl_x "$NS_GWA" ping -c 3 -i 0.2 -W 2 192.0.2.2
nb=$(ip -n "$NS_GWB" neigh show 192.0.2.1 dev wan | awk '{print $3}')
[ "$nb" = "$macA" ] || nsl_die "gwB learned 192.0.2.1 at '$nb', gwA's memif/TAP MAC is $macA"
nsl_log "ok: gwB resolved gwA over the memif ($nb)"
nsl_bg "$NS_GWB" ike_echo python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.2", 500)); s.settimeout(20)
for _ in range(3):
    d, a = s.recvfrom(2048); s.sendto(b"echo:" + d, a)'
sleep 0.3
nsl_expect "UDP/500 (IKE port) gwA -> gwB kernel and back over the memif" nsl_x "$NS_GWA" python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("192.0.2.1", 500)); s.settimeout(3)
s.sendto(b"\x00" * 28 + b"ike-sa-init", ("192.0.2.2", 500))
d, _ = s.recvfrom(2048)
assert d == b"echo:" + b"\x00" * 28 + b"ike-sa-init", d'

# 2. ESP through the memif.
nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
nsl_x "$NS_HB" ping -c 3 -i 0.2 -W 1 10.1.0.2 >/dev/null 2>&1 || true
nsl_expect "ping hA -> hB through ESP over memif (IPv4)" nsl_x "$NS_HA" ping -c 5 -i 0.1 -W 2 10.2.0.2
nsl_expect "ping hB -> hA through ESP over memif (IPv4)" nsl_x "$NS_HB" ping -c 5 -i 0.1 -W 2 10.1.0.2
nsl_x "$NS_HA" ping -6 -c 3 -i 0.2 -W 1 fd00:2::2 >/dev/null 2>&1 || true
nsl_expect "ping hA -> hB through ESP over memif (IPv6 in IPv4)" nsl_x "$NS_HA" ping -6 -c 5 -i 0.1 -W 2 fd00:2::2

# DF-clear IPv4 larger than the tunnel MTU (1446): fragmented before encap,
# the extra fragments in mbufs from the DPDK pool; hB reassembles. The UDP
# datagrams are 1500-byte packets that hA does not fragment itself: DPDK's
# net_af_packet joins its fanout group with PACKET_FANOUT_FLAG_DEFRAG, so the
# kernel would hand a fragmented 3000-byte datagram to gwA reassembled, larger
# than a ring frame (dropped as truncated); 17 covers host-fragmented input.
out=$(nsl_x "$NS_HA" ping -c 5 -i 0.1 -W 2 -M dont -s 1472 10.2.0.2 2>&1) \
  && echo "$out" | grep -q " 0% packet loss" \
  || nsl_die "1500-byte DF-clear ping through ESP over memif failed: $out"
nsl_log "ok: 1500-byte DF-clear ping hA -> hB through ESP over memif (pre-fragmented)"
nsl_bg "$NS_HB" udprecv python3 tests/lib/udp_frag.py recv 5000 5 1472
urecv=$NSL_PID
sleep 0.5
nsl_x "$NS_HA" python3 tests/lib/udp_frag.py send 10.2.0.2 5000 5 1472
wait "$urecv" || nsl_die "gwA $(nsl_stat gwA "[(w['fragmented'], w['drops']) for w in s['workers']]"), gwB $(nsl_stat gwB "[(w['fragmented'], w['drops']) for w in s['workers']]"): 1472-byte (1500 IP) DF-clear UDP through ESP over memif: $(cat "$NSL_TMP/udprecv.log")"
nsl_wait_stat gwA "sum(w['fragmented'] for w in s['workers']) >= 10" \
  || nsl_die "gwA fragmented too few: $(nsl_stat gwA "[w['fragmented'] for w in s['workers']]")"
nsl_log "ok: 1472-byte (1500 IP) DF-clear UDP hA -> hB through ESP over memif: $(cat "$NSL_TMP/udprecv.log")"
source tests/lib/tcp_echo.sh
nsl_expect "TCP 1 MB echo hA -> hB through ESP over memif" tcp_echo "$NS_HB" "$NS_HA" 10.2.0.2
gbps=$(nsl_iperf "$NS_HB" "$NS_HA" 10.2.0.2 3) || nsl_die "iperf3 hA -> hB failed"
nsl_log "iperf3 hA -> hB through ESP over memif: $gbps Gbps"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0.01 else 1)" "$gbps" \
  || nsl_die "iperf3 carried almost nothing ($gbps Gbps)"
nsl_log "ok: iperf3 through ESP over memif"

sleep 0.5
enc=$(nsl_stat gwA "sum(w['encrypted'] for w in s['workers'])")
dec=$(nsl_stat gwB "sum(w['decrypted'] for w in s['workers'])")
kin=$(nsl_stat gwB "sum(w['to_kernel'] for w in s['workers'])")
sa_in=$(nsl_stat gwB "[x['packets'] for x in s['sas'] if x['direction']=='inbound'][0]")
nsl_log "gwA encrypted $enc, gwB decrypted $dec (SA $sa_in), gwB to_kernel $kin"
[ "$enc" -ge 100 ] && [ "$dec" -ge 100 ] && [ "$sa_in" -ge 100 ] || nsl_die "ESP counters too low"
[ "$kin" -ge 5 ] || nsl_die "exception path counter too low ($kin)"
echo "41_dpdk_gw_memif: 12 passed, 0 failed"
