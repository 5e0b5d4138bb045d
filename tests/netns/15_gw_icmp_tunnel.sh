#!/usr/bin/env bash
# ICMP errors a gateway makes about packets that came out of a tunnel go back
# through the tunnel (RFC 4301 §6.2), never in the clear on the WAN.
# Daemon-driven pair (tests/lib/control.sh: lan4 10.1.0.0/24 <-> 10.2.0.0/24,
# lan6 fd00:1::/64 <-> fd00:2::/64, AES-128-GCM); gwB's LAN link has MTU 1300.
# From hA, through the tunnel:
#  - TTL 2 / hop limit 2: gwA forwards with 1 left, gwB answers "time
#    exceeded" from its inside address (10.2.0.1, fd00:2::1);
#  - a 1400-byte DF packet / IPv6 packet: fits the tunnel but not gwB's LAN:
#    gwB answers "fragmentation needed" / "packet too big" with mtu 1300;
# hA receives every error, gwB counts ttl_exceeded and too_big, and a
# capture of what gwA receives on the WAN holds no ICMP error and no
# cleartext LAN address, only ESP.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
nsl_init icmptun
nsl_topo_pair
ip -n "$NS_GWB" link set lan mtu 1300
ip -n "$NS_HB" link set eth0 mtu 1300
ctl_setup
ctl_dataplane A
ctl_dataplane B
ctl_daemon A
ctl_daemon B
for s in A B; do for t in lan4 lan6; do ctl_wait_state "$s" "$t" up; done; done
for a in 10.2.0.2 fd00:2::2; do
  for _ in 1 2 3; do [ "$(ctl_ping "$NS_HA" "$a" 5)" -ge 4 ] && break; done
  [ "$(ctl_ping "$NS_HA" "$a" 5)" -ge 4 ] || nsl_die "ping hA -> $a"
done
nsl_log "ok: tunnels up, ping hA -> hB (IPv4, IPv6)"

wdrop() { ctl_field B "sum(w['drops_by_reason'].get('$1',0) for w in s['workers'])"; }
te0=$(wdrop ttl_exceeded) tb0=$(wdrop too_big)
esp0=$(ctl_field A "t('lan4')['inbound']['packets'] + t('lan6')['inbound']['packets']")

nsl_bg "$NS_GWA" tcpdump tcpdump -n --immediate-mode -i wan -w "$NSL_TMP/wan.pcap" -U
cap=$NSL_PID
sleep 1

out=$(nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 1 -t 2 10.2.0.2 2>&1 || true)
n=$(grep -c "From 10.2.0.1 icmp_seq=[0-9]* Time to live exceeded" <<<"$out" || true)
[ "$n" -ge 2 ] || nsl_die "TTL 2 through the tunnel: no time exceeded from 10.2.0.1: $out"
nsl_log "ok: IPv4 TTL 2 -> time exceeded from gwB's 10.2.0.1 ($n of 3)"

out=$(nsl_x "$NS_HA" ping -6 -c 3 -i 0.2 -W 1 -t 2 fd00:2::2 2>&1 || true)
n=$(grep -c "From fd00:2::1 icmp_seq=[0-9]* Time exceeded: Hop limit" <<<"$out" || true)
[ "$n" -ge 2 ] || nsl_die "hop limit 2 through the tunnel: no time exceeded from fd00:2::1: $out"
nsl_log "ok: IPv6 hop limit 2 -> time exceeded from gwB's fd00:2::1 ($n of 3)"

out=$(nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 -M do -s 1372 10.2.0.2 2>&1 || true)
grep -q "From 10.2.0.1 icmp_seq=[0-9]* Frag needed and DF set (mtu = 1300)" <<<"$out" \
  || nsl_die "1400-byte DF ping: no frag-needed (mtu 1300) from 10.2.0.1: $out"
nsl_log "ok: IPv4 1400-byte DF -> frag needed, mtu 1300, from 10.2.0.1"

out=$(nsl_x "$NS_HA" ping -6 -c 2 -i 0.2 -W 1 -s 1352 fd00:2::2 2>&1 || true)
grep -q "From fd00:2::1 icmp_seq=[0-9]* Packet too big: mtu=1300" <<<"$out" \
  || nsl_die "1400-byte IPv6 ping: no packet too big (mtu 1300) from fd00:2::1: $out"
nsl_log "ok: IPv6 1400-byte packet -> packet too big, mtu 1300, from fd00:2::1"

sleep 0.5
nsl_stop "$cap"
te1=$(wdrop ttl_exceeded) tb1=$(wdrop too_big)
[ "$te1" -ge $((te0 + 4)) ] || nsl_die "gwB ttl_exceeded $te0 -> $te1"
[ "$tb1" -ge $((tb0 + 2)) ] || nsl_die "gwB too_big $tb0 -> $tb1"
esp1=$(ctl_field A "t('lan4')['inbound']['packets'] + t('lan6')['inbound']['packets']")
[ "$esp1" -ge $((esp0 + 8)) ] || nsl_die "gwA decrypted $((esp1 - esp0)) packets from gwB (want the 8+ errors)"

errs=$(tcpdump -n -r "$NSL_TMP/wan.pcap" '(icmp and (icmp[0] == 3 or icmp[0] == 11)) or (icmp6 and ip6[40] < 128)' 2>/dev/null | wc -l)
clear=$(tcpdump -n -r "$NSL_TMP/wan.pcap" 'net 10.0.0.0/8 or net fd00:1::/64 or net fd00:2::/64' 2>/dev/null | wc -l)
esp=$(tcpdump -n -r "$NSL_TMP/wan.pcap" 'src 192.0.2.2 and ip proto 50' 2>/dev/null | wc -l)
tcpdump -n -r "$NSL_TMP/wan.pcap" 'not ip proto 50' 2>/dev/null | head -5 >&2 || true
[ "$errs" = 0 ] || nsl_die "$errs ICMP errors in the clear on the WAN"
[ "$clear" = 0 ] || nsl_die "$clear cleartext LAN packets on the WAN"
[ "$esp" -ge 4 ] || nsl_die "only $esp ESP packets from gwB on the WAN"
nsl_log "ok: gwB counted $((te1 - te0)) ttl_exceeded and $((tb1 - tb0)) too_big; the errors crossed the WAN as ESP ($esp packets from gwB), none in the clear"
echo "15_gw_icmp_tunnel: 6 passed, 0 failed"
