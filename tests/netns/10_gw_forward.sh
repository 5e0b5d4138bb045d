#!/usr/bin/env bash
# Cleartext forwarding through two espresso dataplanes (no SA, no policy:
# everything is forwarded in the clear, as with a bypass policy):
# lanA(hA) — gwA — wan — gwB — lanB(hB).
# Checks: ping both ways (IPv4 and IPv6), TCP both ways (1 MB echo), the
# kernel does not forward (ip_forward=0) so the counters prove the dataplanes
# did, TTL expiry gives ICMP time exceeded from the gateway, a route change in
# the kernel is followed, and an unresolved next hop is resolved on demand;
# numbered datagrams are not lost while neighbour entries expire and are
# flushed, nor while a new next hop is resolved.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
nsl_init fwd
nsl_topo_pair

nsl_dataplane "$NS_GWA" gwA --cores 0 --idle backoff; pa=$NSL_PID
nsl_dataplane "$NS_GWB" gwB --cores 1 --idle backoff; pb=$NSL_PID

# First packets may meet unresolved neighbours (counted no_neighbour drops
# while the kernel resolves them); then everything must pass.
nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
nsl_expect "ping hA -> hB (IPv4)" nsl_x "$NS_HA" ping -c 5 -i 0.1 -W 2 10.2.0.2
nsl_expect "ping hB -> hA (IPv4)" nsl_x "$NS_HB" ping -c 5 -i 0.1 -W 2 10.1.0.2
nsl_x "$NS_HA" ping -6 -c 3 -i 0.2 -W 1 fd00:2::2 >/dev/null 2>&1 || true
nsl_expect "ping hA -> hB (IPv6)" nsl_x "$NS_HA" ping -6 -c 5 -i 0.1 -W 2 fd00:2::2
nsl_expect "ping hB -> hA (IPv6)" nsl_x "$NS_HB" ping -6 -c 5 -i 0.1 -W 2 fd00:1::2

# The kernel forwards nothing: the packets went through the dataplanes.
fa=$(nsl_stat gwA "sum(w['forwarded'] for w in s['workers'])")
fb=$(nsl_stat gwB "sum(w['forwarded'] for w in s['workers'])")
nsl_log "forwarded: gwA $fa, gwB $fb"
[ "$fa" -ge 20 ] && [ "$fb" -ge 20 ] || nsl_die "dataplane counters too low (gwA $fa, gwB $fb)"

# TCP both ways: 1 MB each way through an echo server; every byte checked.
source tests/lib/tcp_echo.sh
nsl_expect "TCP 1 MB echo hA -> hB (IPv4)" tcp_echo "$NS_HB" "$NS_HA" 10.2.0.2
nsl_expect "TCP 1 MB echo hB -> hA (IPv4)" tcp_echo "$NS_HA" "$NS_HB" 10.1.0.2
nsl_expect "TCP 1 MB echo hA -> hB (IPv6)" tcp_echo "$NS_HB" "$NS_HA" fd00:2::2

# TTL 1 from hA: gwA answers "time to live exceeded" from 10.1.0.1.
out=$(nsl_x "$NS_HA" ping -c 1 -t 1 -W 2 10.2.0.2 2>&1 || true)
echo "$out" | grep -q "From 10.1.0.1.*Time to live exceeded" || nsl_die "no ICMP time exceeded from gwA: $out"
nsl_log "ok: TTL 1 -> ICMP time exceeded from gwA"
# TTL 2: gwA forwards (TTL 1 left), gwB answers.
out=$(nsl_x "$NS_HA" ping -c 1 -t 2 -W 2 10.2.0.2 2>&1 || true)
echo "$out" | grep -q "From 192.0.2.2.*Time to live exceeded" || nsl_die "no ICMP time exceeded from gwB: $out"
nsl_log "ok: TTL 2 -> ICMP time exceeded from gwB"
out=$(nsl_x "$NS_HA" ping -6 -c 1 -t 1 -W 2 fd00:2::2 2>&1 || true)
echo "$out" | grep -qi "From fd00:1::1.*Time exceeded" || nsl_die "no ICMPv6 time exceeded from gwA: $out"
nsl_log "ok: hop limit 1 -> ICMPv6 time exceeded from gwA"
nsl_wait_stat gwA "s['drops'].get('ttl_exceeded',0) >= 2" \
  || nsl_die "ttl_exceeded drops not counted on gwA: $(nsl_stat gwA "s['drops']")"

# Route changes are followed: remove gwA's route to lanB -> no_route drops;
# put it back -> traffic flows again.
ip -n "$NS_GWA" route del 10.2.0.0/24
sleep 0.3
nr0=$(nsl_stat gwA "s['drops'].get('no_route',0)")
nsl_x "$NS_HA" ping -c 3 -i 0.1 -W 1 10.2.0.2 >/dev/null 2>&1 && nsl_die "ping passed without a route"
sleep 0.5
nr1=$(nsl_stat gwA "s['drops'].get('no_route',0)")
[ "$nr1" -ge $((nr0 + 3)) ] || nsl_die "no_route drops not counted ($nr0 -> $nr1)"
ip -n "$NS_GWA" route add 10.2.0.0/24 via 192.0.2.2
sleep 0.3
nsl_expect "ping after the route came back" nsl_x "$NS_HA" ping -c 3 -i 0.1 -W 2 10.2.0.2

# A flushed neighbour entry is resolved again through the kernel.
ip -n "$NS_GWA" neigh flush dev wan
sleep 0.3
nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
nsl_expect "ping after neighbour flush" nsl_x "$NS_HA" ping -c 3 -i 0.1 -W 2 10.2.0.2
rr=$(nsl_stat gwA "sum(w['resolve_requests'] for w in s['workers'])")
[ "$rr" -ge 1 ] || nsl_die "no neighbour resolution requested"

# Neighbour expiry under traffic (issue 10): numbered datagrams both ways
# (1000/s for 3 s) while both gateways' neighbour entries go stale fast
# (base_reachable_time 1 s) and are flushed, lan and wan, three times. The
# dataplane keeps sending with the stale MAC while the kernel resolves the
# entry again (Linux's STALE/DELAY/PROBE), so not one datagram may be lost.
for ns in "$NS_GWA" "$NS_GWB"; do
  for dev in lan wan; do
    nsl_x "$ns" sysctl -qw "net.ipv4.neigh.$dev.base_reachable_time_ms=1000" \
      "net.ipv4.neigh.$dev.delay_first_probe_time=1"
  done
done
nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
# both: EXPR over gwA's and gwB's counters (one python for both: fast on a
# loaded machine)
both() {
  python3 -c "import json,sys
for f in sys.argv[1:]:
    s=json.load(open(f)); print($1)" "$NSL_TMP/gwA.json" "$NSL_TMP/gwB.json" | paste -sd' '
}
read -r nn0 nn0b < <(both "s['drops'].get('no_neighbour',0)")
FPORT=$(( 20000 + RANDOM % 20000 ))
# bound NS ADDR: waits until a receiver is bound to ADDR:$FPORT in NS (a
# loaded machine can take seconds to start python).
bound() {
  for _ in $(seq 1 100); do
    nsl_x "$1" ss -Huln "src $2 and sport = :$FPORT" | grep -q . && return 0
    sleep 0.1
  done
  nsl_die "receiver on $2:$FPORT did not start"
}
nsl_bg "$NS_HB" recv_ab python3 tests/lib/udp_seq.py recv 10.2.0.2 "$FPORT" "$NSL_TMP/ab.json" 2
nsl_bg "$NS_HA" recv_ba python3 tests/lib/udp_seq.py recv 10.1.0.2 "$FPORT" "$NSL_TMP/ba.json" 2
bound "$NS_HB" 10.2.0.2; bound "$NS_HA" 10.1.0.2
nsl_bg "$NS_HA" send_ab python3 tests/lib/udp_seq.py send 10.2.0.2 "$FPORT" 3000 0.001 200; s_ab=$NSL_PID
nsl_bg "$NS_HB" send_ba python3 tests/lib/udp_seq.py send 10.1.0.2 "$FPORT" 3000 0.001 200; s_ba=$NSL_PID
for _ in 1 2 3; do
  sleep 0.8
  for ns in "$NS_GWA" "$NS_GWB"; do
    ip -n "$ns" neigh flush dev wan
    ip -n "$ns" neigh flush dev lan
  done
done
wait "$s_ab" "$s_ba" 2>/dev/null || true
for f in ab ba; do
  nsl_wait_file "$NSL_TMP/$f.json" 20 || nsl_die "receiver $f wrote no result"
  r=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["expected"], d["unique"], d["missing_count"], d["missing"][:10])' "$NSL_TMP/$f.json")
  read -r exp uniq miss _ <<<"$r"
  [ "$exp" = 3000 ] && [ "$uniq" = 3000 ] && [ "$miss" = 0 ] ||
    nsl_die "$f: datagrams lost across neighbour expiry (expected/unique/missing/first missing: $r); gwA drops $(nsl_stat gwA "s['drops']"), gwB drops $(nsl_stat gwB "s['drops']")"
done
nsl_log "ok: 2 x 3000 numbered datagrams, 0 lost across 3 neighbour flushes"
read -r st stb < <(both "sum(w['neighbour_stale'] for w in s['workers'])")
[ "$st" -ge 1 ] && [ "$stb" -ge 1 ] || nsl_die "no packet went through a stale entry (gwA $st, gwB $stb): the flushes did not test anything"
read -r nn1 nn1b < <(both "s['drops'].get('no_neighbour',0)")
[ "$nn1" = "$nn0" ] && [ "$nn1b" = "$nn0b" ] || nsl_die "no_neighbour drops during the flushes (gwA $nn0 -> $nn1, gwB $nn0b -> $nn1b)"
nsl_log "ok: sent through stale entries while resolving (gwA $st, gwB $stb packets), no no_neighbour drop"

# A next hop never resolved before: the first packets wait in the worker's
# queue for it (Linux's unres_qlen) instead of being dropped.
ip -n "$NS_HB" addr add 10.2.0.3/24 dev eth0
ip -n "$NS_GWB" neigh del 10.2.0.3 dev lan 2>/dev/null || true
h0=$(nsl_stat gwB "sum(w['neighbour_held'] for w in s['workers'])")
nsl_bg "$NS_HB" recv_new python3 tests/lib/udp_seq.py recv 10.2.0.3 "$FPORT" "$NSL_TMP/new.json" 2
bound "$NS_HB" 10.2.0.3
nsl_x "$NS_HA" python3 tests/lib/udp_seq.py send 10.2.0.3 "$FPORT" 10 0.0002 200
nsl_wait_file "$NSL_TMP/new.json" 20 || nsl_die "receiver of 10.2.0.3 wrote no result"
r=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["expected"], d["unique"], d["missing_count"])' "$NSL_TMP/new.json")
[ "$r" = "10 10 0" ] || nsl_die "first datagrams to an unresolved next hop lost (expected/unique/missing: $r); gwB drops $(nsl_stat gwB "s['drops']")"
sleep 0.3
h1=$(nsl_stat gwB "sum(w['neighbour_held'] for w in s['workers'])")
[ "$h1" -gt "$h0" ] || nsl_die "gwB held no packet for the unresolved next hop"
nsl_log "ok: 10 datagrams to an unresolved next hop, 0 lost (held $((h1 - h0)))"

# The kernel must not forward by itself: stop gwA's dataplane, ping must fail.
nsl_stop "$pa"
nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 && nsl_die "traffic passed with gwA's dataplane stopped"
nsl_log "ok: no forwarding without the dataplane"
nsl_stop "$pb"
echo "10_gw_forward: 17 passed, 0 failed"
