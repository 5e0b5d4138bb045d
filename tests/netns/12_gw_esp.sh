#!/usr/bin/env bash
# ESP tunnel (AES-128-GCM, manual keys as static SAs) through two espresso
# dataplanes: lanA(hA) — gwA — wan — gwB — lanB(hB), MTU 1500 everywhere.
# Checks: ping both ways (IPv4 and IPv6 inner), TCP 1 MB echo both ways
# (PMTU: needs the gateway's ESP-adjusted "fragmentation needed"), an explicit
# DF ping of 1500 bytes gets "Frag needed" with mtu = 1446 (1500 - 20 outer
# IPv4 - 8 ESP - 8 IV - 16 ICV, aligned, - 2 trailer), the WAN carries only
# ESP between the LANs (tcpdump), cleartext from the WAN toward a protected
# LAN is refused (policy_mismatch), and the SA counters move.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
nsl_init esp
nsl_topo_pair

KAB=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
KBA=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
python3 tests/lib/static_sa.py "$NSL_TMP/a.sa" --side a --key-ab "$KAB" --key-ba "$KBA"
python3 tests/lib/static_sa.py "$NSL_TMP/b.sa" --side b --key-ab "$KAB" --key-ba "$KBA"

nsl_dataplane "$NS_GWA" gwA --cores 0 --idle backoff --static-sa "$NSL_TMP/a.sa" --tun esp0
nsl_dataplane "$NS_GWB" gwB --cores 1 --idle backoff --static-sa "$NSL_TMP/b.sa" --tun esp0

# Capture the WAN on gwB while the traffic runs.
nsl_bg "$NS_GWB" tcpdump tcpdump -n -i wan -w "$NSL_TMP/wan.pcap" -U
cap=$NSL_PID
sleep 1

nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
nsl_x "$NS_HB" ping -c 3 -i 0.2 -W 1 10.1.0.2 >/dev/null 2>&1 || true
nsl_expect "ping hA -> hB through ESP (IPv4)" nsl_x "$NS_HA" ping -c 5 -i 0.1 -W 2 10.2.0.2
nsl_expect "ping hB -> hA through ESP (IPv4)" nsl_x "$NS_HB" ping -c 5 -i 0.1 -W 2 10.1.0.2
nsl_x "$NS_HA" ping -6 -c 3 -i 0.2 -W 1 fd00:2::2 >/dev/null 2>&1 || true
nsl_expect "ping hA -> hB through ESP (IPv6 in IPv4)" nsl_x "$NS_HA" ping -6 -c 5 -i 0.1 -W 2 fd00:2::2
nsl_expect "ping hB -> hA through ESP (IPv6 in IPv4)" nsl_x "$NS_HB" ping -6 -c 5 -i 0.1 -W 2 fd00:1::2

# Exception path: the gateways' own addresses and traffic, through the tunnel.
nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.2.0.1 >/dev/null 2>&1 || true
nsl_expect "ping hA -> gwB's LAN address (decap to gwB's kernel, reply into the tunnel)" \
  nsl_x "$NS_HA" ping -c 3 -i 0.1 -W 2 10.2.0.1
nsl_expect "ping hA -> gwB's LAN address (IPv6)" nsl_x "$NS_HA" ping -6 -c 3 -i 0.1 -W 2 fd00:2::1
nsl_expect "ping from gwA's kernel (10.1.0.1) -> hB through the tunnel" \
  nsl_x "$NS_GWA" ping -c 3 -i 0.1 -W 2 -I 10.1.0.1 10.2.0.2

out=$(nsl_x "$NS_HA" ping -c 1 -M do -s 1472 -W 2 10.2.0.2 2>&1 || true)
echo "$out" | grep -q "mtu = 1446" || nsl_die "no frag-needed with the ESP-adjusted MTU 1446: $out"
nsl_log "ok: DF 1500-byte ping -> Frag needed, mtu = 1446"
out=$(nsl_x "$NS_HA" ping -c 2 -M do -s 1418 -W 2 10.2.0.2 2>&1) || nsl_die "1446-byte DF ping failed: $out"
nsl_log "ok: 1446-byte DF ping fits the tunnel"

source tests/lib/tcp_echo.sh
nsl_expect "TCP 1 MB echo hA -> hB through ESP (IPv4, PMTU)" tcp_echo "$NS_HB" "$NS_HA" 10.2.0.2
nsl_expect "TCP 1 MB echo hB -> hA through ESP (IPv4, PMTU)" tcp_echo "$NS_HA" "$NS_HB" 10.1.0.2
nsl_expect "TCP 1 MB echo hA -> hB through ESP (IPv6, PMTU)" tcp_echo "$NS_HB" "$NS_HA" fd00:2::2

# Cleartext from the WAN toward lanB must be refused by gwB (the policy
# says that traffic is protected): inject it on the WAN link with scapy.
pm0=$(nsl_stat gwB "s['drops'].get('policy_mismatch',0)")
GWB_MAC=$(nsl_mac "$NS_GWB" wan)
nsl_x "$NS_GWA" python3 -c '
import sys
from scapy.all import Ether, IP, ICMP, sendp
sendp(Ether(dst=sys.argv[1]) / IP(src="10.1.0.2", dst="10.2.0.2") / ICMP(), iface="wan", count=3, verbose=False)
' "$GWB_MAC"
sleep 0.6
pm1=$(nsl_stat gwB "s['drops'].get('policy_mismatch',0)")
[ "$pm1" -ge $((pm0 + 3)) ] || nsl_die "policy_mismatch not counted ($pm0 -> $pm1)"
nsl_log "ok: cleartext from the WAN to a protected LAN refused"

sleep 0.5
nsl_stop "$cap"
esp=$(tcpdump -n -r "$NSL_TMP/wan.pcap" esp 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$NSL_TMP/wan.pcap" 'net 10.2.0.0/24 and net 10.1.0.0/24 and not icmp' 2>/dev/null | wc -l)
nsl_log "WAN capture: $esp ESP packets, $clear cleartext LAN-to-LAN packets"
[ "$esp" -ge 100 ] || nsl_die "too few ESP packets on the WAN ($esp)"
[ "$clear" -eq 0 ] || nsl_die "cleartext LAN traffic on the WAN ($clear packets)"

enc=$(nsl_stat gwA "sum(w['encrypted'] for w in s['workers'])")
dec=$(nsl_stat gwB "sum(w['decrypted'] for w in s['workers'])")
sa_out=$(nsl_stat gwA "[x['packets'] for x in s['sas'] if x['direction']=='outbound'][0]")
tb=$(nsl_stat gwA "s['drops'].get('too_big',0)")
nsl_log "gwA encrypted $enc (SA $sa_out), gwB decrypted $dec, gwA too_big $tb"
[ "$enc" -ge 100 ] && [ "$dec" -ge 100 ] && [ "$sa_out" -ge 100 ] || nsl_die "ESP counters too low"
[ "$tb" -ge 1 ] || nsl_die "too_big (PMTU) drops not counted"
echo "12_gw_esp: 16 passed, 0 failed"
