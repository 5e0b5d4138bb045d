#!/usr/bin/env bash
# Fragmentation by the gateway of IPv4 packets with DF clear that do not fit:
# lanA(hA) — gwA — wan — gwB — lanB(hB).
# 1. Cleartext forwarding, WAN MTU 1280: 1500-byte pings with DF clear
#    (`ping -M dont -s 1472`) and 3000-byte UDP datagrams (IP_PMTUDISC_DONT,
#    so hA sends them as 1500-byte fragments, which gwA fragments again)
#    reach hB intact (hB reassembles); no frame on the WAN is larger than
#    the MTU; a DF ping still gets "Frag needed" with mtu = 1280.
# 2. ESP tunnel (static SAs as in 12), MTU 1500: the tunnel takes inner
#    packets up to 1446 bytes; the same DF-clear pings and datagrams are
#    fragmented before encapsulation (RFC 4459 §5.2) and arrive intact; the
#    WAN carries only unfragmented ESP between the LANs.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
nsl_init frag
nsl_topo_pair
pass=0
ok() { nsl_log "ok: $*"; pass=$((pass + 1)); }

# udp_check DESCRIPTION: 5 datagrams of 3000 bytes hA -> hB, all intact.
udp_check() {
  nsl_bg "$NS_HB" udprecv python3 tests/lib/udp_frag.py recv 5000 5 3000
  local r=$NSL_PID
  sleep 0.5
  nsl_x "$NS_HA" python3 tests/lib/udp_frag.py send 10.2.0.2 5000 5 3000
  if wait "$r"; then
    ok "$1: $(cat "$NSL_TMP/udprecv.log")"
  else
    nsl_die "$1: $(cat "$NSL_TMP/udprecv.log")"
  fi
}

# ---- 1. cleartext forwarding over a 1280-byte WAN ----
ip -n "$NS_GWA" link set wan mtu 1280
ip -n "$NS_GWB" link set wan mtu 1280
nsl_dataplane "$NS_GWA" gwA --cores 0 --idle backoff; pa=$NSL_PID
nsl_dataplane "$NS_GWB" gwB --cores 1 --idle backoff; pb=$NSL_PID
nsl_bg "$NS_GWB" tcpdump tcpdump -n -i wan -w "$NSL_TMP/clear.pcap" -U
cap=$NSL_PID
sleep 1
nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
nsl_x "$NS_HB" ping -c 3 -i 0.2 -W 1 10.1.0.2 >/dev/null 2>&1 || true

out=$(nsl_x "$NS_HA" ping -c 5 -i 0.1 -W 2 -M dont -s 1472 10.2.0.2 2>&1) \
  || nsl_die "1500-byte DF-clear ping over a 1280 WAN failed: $out"
echo "$out" | grep -q " 0% packet loss" || nsl_die "DF-clear ping lost packets: $out"
ok "1500-byte DF-clear ping hA -> hB over a 1280-byte WAN (fragmented both ways)"
udp_check "3000-byte DF-clear UDP hA -> hB over a 1280-byte WAN"
out=$(nsl_x "$NS_HA" ping -c 1 -M do -s 1472 -W 2 10.2.0.2 2>&1 || true)
echo "$out" | grep -q "mtu = 1280" || nsl_die "no frag-needed (mtu 1280) for a DF ping: $out"
ok "DF 1500-byte ping -> Frag needed, mtu = 1280"

nsl_wait_stat gwA "sum(w['fragmented'] for w in s['workers']) >= 10" \
  || nsl_die "gwA fragmented too few: $(nsl_stat gwA "[w['fragmented'] for w in s['workers']]")"
nsl_wait_stat gwB "sum(w['fragmented'] for w in s['workers']) >= 5" \
  || nsl_die "gwB fragmented too few (echo replies): $(nsl_stat gwB "[w['fragmented'] for w in s['workers']]")"
ok "fragmented counters: gwA $(nsl_stat gwA "sum(w['fragmented'] for w in s['workers'])"), gwB $(nsl_stat gwB "sum(w['fragmented'] for w in s['workers'])")"
sleep 0.3
nsl_stop "$cap"
frags=$(tcpdump -n -r "$NSL_TMP/clear.pcap" 'ip and (ip[6:2] & 0x3fff != 0)' 2>/dev/null | wc -l)
big=$(tcpdump -n -r "$NSL_TMP/clear.pcap" 'greater 1295' 2>/dev/null | wc -l)
nsl_log "cleartext WAN: $frags IPv4 fragments, $big frames over 1294 bytes"
[ "$frags" -ge 20 ] || nsl_die "too few fragments on the WAN ($frags)"
[ "$big" -eq 0 ] || nsl_die "$big frames larger than the WAN MTU"
ok "WAN carries fragments, none over the MTU"
nsl_stop "$pa"
nsl_stop "$pb"

# ---- 2. ESP tunnel, MTU 1500 (inner packets up to 1446 bytes) ----
ip -n "$NS_GWA" link set wan mtu 1500
ip -n "$NS_GWB" link set wan mtu 1500
KAB=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
KBA=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
python3 tests/lib/static_sa.py "$NSL_TMP/a.sa" --side a --key-ab "$KAB" --key-ba "$KBA"
python3 tests/lib/static_sa.py "$NSL_TMP/b.sa" --side b --key-ab "$KAB" --key-ba "$KBA"
nsl_dataplane "$NS_GWA" gwAe --cores 0 --idle backoff --static-sa "$NSL_TMP/a.sa" --tun esp0
nsl_dataplane "$NS_GWB" gwBe --cores 1 --idle backoff --static-sa "$NSL_TMP/b.sa" --tun esp0
nsl_bg "$NS_GWB" tcpdump2 tcpdump -n -i wan -w "$NSL_TMP/esp.pcap" -U
cap=$NSL_PID
sleep 1
# Routes cached by the hosts from phase 1 (PMTU 1280) are forgotten.
nsl_x "$NS_HA" ip route flush cache
nsl_x "$NS_HB" ip route flush cache
nsl_x "$NS_HA" ping -6 -c 3 -i 0.2 -W 1 fd00:2::2 >/dev/null 2>&1 || true
nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
nsl_x "$NS_HB" ping -c 3 -i 0.2 -W 1 10.1.0.2 >/dev/null 2>&1 || true

out=$(nsl_x "$NS_HA" ping -c 5 -i 0.1 -W 2 -M dont -s 1472 10.2.0.2 2>&1) \
  || nsl_die "1500-byte DF-clear ping through ESP failed: $out"
echo "$out" | grep -q " 0% packet loss" || nsl_die "DF-clear ping through ESP lost packets: $out"
ok "1500-byte DF-clear ping hA -> hB through ESP (pre-fragmented both ways)"
udp_check "3000-byte DF-clear UDP hA -> hB through ESP"
out=$(nsl_x "$NS_HA" ping -c 1 -M do -s 1472 -W 2 10.2.0.2 2>&1 || true)
echo "$out" | grep -q "mtu = 1446" || nsl_die "no frag-needed (mtu 1446) for a DF ping: $out"
ok "DF 1500-byte ping through ESP -> Frag needed, mtu = 1446"
out=$(nsl_x "$NS_HA" ping -6 -c 1 -s 1452 -W 2 fd00:2::2 2>&1 || true)
echo "$out" | grep -qi "mtu = 1446\|mtu=1446\|too big" || nsl_die "no packet-too-big for IPv6: $out"
ok "IPv6 1500-byte ping through ESP -> Packet too big (IPv6 is not fragmented)"

nsl_wait_stat gwAe "sum(w['fragmented'] for w in s['workers']) >= 10" \
  || nsl_die "gwA fragmented too few: $(nsl_stat gwAe "[w['fragmented'] for w in s['workers']]")"
nsl_wait_stat gwBe "sum(w['fragmented'] for w in s['workers']) >= 5" \
  || nsl_die "gwB fragmented too few: $(nsl_stat gwBe "[w['fragmented'] for w in s['workers']]")"
ok "fragmented counters: gwA $(nsl_stat gwAe "sum(w['fragmented'] for w in s['workers'])"), gwB $(nsl_stat gwBe "sum(w['fragmented'] for w in s['workers'])")"
sleep 0.3
nsl_stop "$cap"
esp=$(tcpdump -n -r "$NSL_TMP/esp.pcap" esp 2>/dev/null | wc -l)
ofrag=$(tcpdump -n -r "$NSL_TMP/esp.pcap" 'ip and (ip[6:2] & 0x3fff != 0)' 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$NSL_TMP/esp.pcap" 'net 10.2.0.0/24 and net 10.1.0.0/24 and not icmp' 2>/dev/null | wc -l)
big=$(tcpdump -n -r "$NSL_TMP/esp.pcap" 'greater 1515' 2>/dev/null | wc -l)
nsl_log "ESP WAN: $esp ESP packets, $ofrag outer fragments, $clear cleartext, $big over 1514 bytes"
[ "$esp" -ge 40 ] || nsl_die "too few ESP packets on the WAN ($esp)"
[ "$ofrag" -eq 0 ] || nsl_die "outer ESP packets were fragmented ($ofrag)"
[ "$clear" -eq 0 ] || nsl_die "cleartext LAN traffic on the WAN ($clear packets)"
[ "$big" -eq 0 ] || nsl_die "$big frames larger than the WAN MTU"
ok "WAN carries only whole ESP packets"
echo "17_gw_fragment: $pass passed, 0 failed"
