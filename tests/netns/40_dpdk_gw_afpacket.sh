#!/usr/bin/env bash
# The demo's gateway pair with the DPDK backend: both espresso dataplanes run
# on DPDK net_af_packet ports over the same veths as the AF_PACKET pair
# (lanA(hA) — gwA — wan — gwB — lanB(hB)), EAL without hugepages or PCI, the
# same worker loop and ESP engine on mbufs; the kernel of each gateway sees
# its frames itself (--exception kernel), as with AF_PACKET. gwA runs two
# workers (one queue pair each on every port), gwB one.
# Checks: ping both ways (IPv4, IPv6 inner), TCP 1 MB echo, iperf3 through
# the tunnel, DF-clear IPv4 pings and UDP larger than the tunnel MTU
# arrive (fragmented before encap), the WAN carries only ESP, tshark decrypts the captured ESP with
# the SA keys (ICV correct), both of gwA's workers get traffic, the ESP
# counters move.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/dpdk.sh
nsl_init dpdkaf
nsl_topo_pair

KAB=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
KBA=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
python3 tests/lib/static_sa.py "$NSL_TMP/a.sa" --side a --key-ab "$KAB" --key-ba "$KBA"
python3 tests/lib/static_sa.py "$NSL_TMP/b.sa" --side b --key-ab "$KAB" --key-ba "$KBA"

VDEVS="--vdev net_af_packet0,iface=lan --vdev net_af_packet1,iface=wan"
# gwA runs two workers (queue pairs spread by the kernel's packet fanout).
VDEVS2="--vdev net_af_packet0,iface=lan,qpairs=2 --vdev net_af_packet1,iface=wan,qpairs=2"
nsl_dataplane_dpdk "$NS_GWA" gwA 0,1 kernel net_af_packet0 net_af_packet1 "$VDEVS2" \
  ${DP_EXTRA:---idle backoff} --static-sa "$NSL_TMP/a.sa"
nsl_dataplane_dpdk "$NS_GWB" gwB 1 kernel net_af_packet0 net_af_packet1 "$VDEVS" \
  ${DP_EXTRA:---idle backoff} --static-sa "$NSL_TMP/b.sa"
grep -q "DPDK: port 0 net_af_packet0 (net_af_packet" "$NSL_TMP/gwA.log" || nsl_die "gwA is not on DPDK ports"

# Each gateway's transmit path bypasses the qdisc (and so packet taps): capture
# what arrives, gwA->gwB on gwB and gwB->gwA on gwA.
nsl_bg "$NS_GWB" tcpdump tcpdump -n -i wan -Q in -c 30000 -w "$NSL_TMP/wan.pcap" -U
cap=$NSL_PID
nsl_bg "$NS_GWA" tcpdump_a tcpdump -n -i wan -Q in -c 30000 -w "$NSL_TMP/wan_a.pcap" -U
cap_a=$NSL_PID
sleep 1

# (the af_packet vdevs bounce the interfaces: neighbours are resolved again)
nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
nsl_x "$NS_HB" ping -c 3 -i 0.2 -W 1 10.1.0.2 >/dev/null 2>&1 || true
nsl_expect "ping hA -> hB through ESP on DPDK (IPv4)" nsl_x "$NS_HA" ping -c 5 -i 0.1 -W 2 10.2.0.2
nsl_expect "ping hB -> hA through ESP on DPDK (IPv4)" nsl_x "$NS_HB" ping -c 5 -i 0.1 -W 2 10.1.0.2
nsl_x "$NS_HA" ping -6 -c 3 -i 0.2 -W 1 fd00:2::2 >/dev/null 2>&1 || true
nsl_expect "ping hA -> hB through ESP on DPDK (IPv6 in IPv4)" nsl_x "$NS_HA" ping -6 -c 5 -i 0.1 -W 2 fd00:2::2

# DF-clear IPv4 larger than the tunnel MTU (1446): fragmented before encap,
# the extra fragments in mbufs from the DPDK pool; hB reassembles. The UDP
# datagrams are 1500-byte packets that hA does not fragment itself: DPDK's
# net_af_packet joins its fanout group with PACKET_FANOUT_FLAG_DEFRAG, so the
# kernel would hand a fragmented 3000-byte datagram to gwA reassembled, larger
# than a ring frame (dropped as truncated); 17 covers host-fragmented input.
out=$(nsl_x "$NS_HA" ping -c 5 -i 0.1 -W 2 -M dont -s 1472 10.2.0.2 2>&1) \
  && echo "$out" | grep -q " 0% packet loss" \
  || nsl_die "1500-byte DF-clear ping through ESP on DPDK failed: $out"
nsl_log "ok: 1500-byte DF-clear ping hA -> hB through ESP on DPDK (pre-fragmented)"
nsl_bg "$NS_HB" udprecv python3 tests/lib/udp_frag.py recv 5000 5 1472
urecv=$NSL_PID
sleep 0.5
nsl_x "$NS_HA" python3 tests/lib/udp_frag.py send 10.2.0.2 5000 5 1472
wait "$urecv" || nsl_die "gwA $(nsl_stat gwA "[(w['fragmented'], w['drops']) for w in s['workers']]"), gwB $(nsl_stat gwB "[(w['fragmented'], w['drops']) for w in s['workers']]"): 1472-byte (1500 IP) DF-clear UDP through ESP on DPDK: $(cat "$NSL_TMP/udprecv.log")"
nsl_wait_stat gwA "sum(w['fragmented'] for w in s['workers']) >= 10" \
  || nsl_die "gwA fragmented too few: $(nsl_stat gwA "[w['fragmented'] for w in s['workers']]")"
nsl_log "ok: 1472-byte (1500 IP) DF-clear UDP hA -> hB through ESP on DPDK: $(cat "$NSL_TMP/udprecv.log")"

source tests/lib/tcp_echo.sh
nsl_expect "TCP 1 MB echo hA -> hB through ESP on DPDK" tcp_echo "$NS_HB" "$NS_HA" 10.2.0.2

gbps=$(nsl_iperf "$NS_HB" "$NS_HA" 10.2.0.2 3) || nsl_die "iperf3 hA -> hB failed"
nsl_log "iperf3 hA -> hB through ESP on DPDK net_af_packet: $gbps Gbps"
python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0.01 else 1)" "$gbps" \
  || nsl_die "iperf3 carried almost nothing ($gbps Gbps)"
nsl_log "ok: iperf3 through ESP on DPDK"

sleep 0.5
nsl_stop "$cap"
nsl_stop "$cap_a"
esp=$(tcpdump -n -r "$NSL_TMP/wan.pcap" esp 2>/dev/null | wc -l)
esp_a=$(tcpdump -n -r "$NSL_TMP/wan_a.pcap" esp 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$NSL_TMP/wan.pcap" 'net 10.2.0.0/24 and net 10.1.0.0/24' 2>/dev/null | wc -l)
clear_a=$(tcpdump -n -r "$NSL_TMP/wan_a.pcap" 'net 10.2.0.0/24 and net 10.1.0.0/24' 2>/dev/null | wc -l)
nsl_log "WAN capture: $esp ESP packets gwA->gwB, $esp_a gwB->gwA, $((clear + clear_a)) cleartext LAN-to-LAN packets"
[ "$esp" -ge 100 ] && [ "$esp_a" -ge 100 ] || nsl_die "too few ESP packets on the WAN ($esp, $esp_a)"
[ $((clear + clear_a)) -eq 0 ] || nsl_die "cleartext LAN traffic on the WAN ($((clear + clear_a)) packets)"

ab=$(nsl_tshark_esp "$NSL_TMP/wan.pcap" 0x1001 "$KAB" 192.0.2.1 192.0.2.2)
ba=$(nsl_tshark_esp "$NSL_TMP/wan_a.pcap" 0x2002 "$KBA" 192.0.2.2 192.0.2.1)
nsl_log "tshark: $ab of $esp gwA->gwB and $ba of $esp_a gwB->gwA ESP packets decrypt with ICV correct"
[ "$ab" -eq "$esp" ] && [ "$ba" -eq "$esp_a" ] || nsl_die "some ESP packets do not decrypt"
nsl_log "ok: every captured ESP packet decrypts with tshark"

enc=$(nsl_stat gwA "sum(w['encrypted'] for w in s['workers'])")
busy=$(nsl_stat gwA "sum(1 for w in s['workers'] if w['rx'] > 0)")
nsl_log "gwA: $busy of 2 workers received packets"
[ "$busy" -eq 2 ] || nsl_die "gwA's second worker received nothing"
dec=$(nsl_stat gwB "sum(w['decrypted'] for w in s['workers'])")
nsl_log "gwA encrypted $enc, gwB decrypted $dec"
[ "$enc" -ge 100 ] && [ "$dec" -ge 100 ] || nsl_die "ESP counters too low"
echo "40_dpdk_gw_afpacket: 12 passed, 0 failed"
