#!/usr/bin/env bash
# IKEv1 (issue 12) against strongSwan 5.9.8 (charon + kernel-libipsec,
# `version = 1`) with espresso behind a SNAT namespace, and every kind of
# rekey under a running numbered flow:
#
#   hA 10.1.0.2 — gwA (lan 10.1.0.1 | wan 192.168.100.2, espresso) — nat
#   (192.168.100.1 | 192.0.2.1, masquerade) — gwB 192.0.2.2 (charon) — hB 10.2.0.2
#
#   1. NAT-T (RFC 3947, checked after the flow): espresso initiates main
#      mode from behind the NAT,
#      NAT-D payloads in the second exchange (checked in the capture), NAT
#      detected on our side, IKE floated from 500 to 4500, ESP in UDP; the
#      NAT's conntrack has only UDP; strongSwan sees us at the NAT's address.
#   2. Numbered UDP both ways at 500 datagrams/s each for 30 s while, in this
#      order: strongSwan rekeys the IPsec SA (swanctl --rekey), strongSwan
#      re-authenticates the ISAKMP SA (swanctl --rekey --reauth: its IPsec
#      SAs move under the new one), espresso rekeys the IPsec SA by its
#      lifetime (20 s, margin 8 s, no fuzz) under the peer's new ISAKMP SA
#      with its QM3 lost twice at the NAT (charon gets it with its second
#      QM2 retransmission, ~2.4 s later: espresso keeps the old pair until
#      charon sends on the new one), espresso re-authenticates by its ISAKMP lifetime (26 s; as the
#      responder of strongSwan's new ISAKMP SA with half the 8 s margin: a
#      new main mode, the IPsec SAs move under it, the old ISAKMP SA is
#      deleted), and espresso rekeys the IPsec SA again. strongSwan acts
#      5 s and 8 s after the first ISAKMP SA, away from espresso's own
#      rekeys (no collision). Asserted: no
#      datagram lost at either receiver (hA -> hB: but for those dropped at
#      strongSwan's own full NAT-T socket, counted there exactly; see
#      sw_overflows), no ESP drop at espresso (by reason),
#      none logged by charon, each rekey seen (SPIs and ISAKMP cookies), and
#      after it one ISAKMP SA on each side, the same one (no stale SA).
#   3. The WAN capture (inside the NAT) is decrypted by tshark with the keys
#      `espresso keys` exported during the flow: every ESP packet verifies.
#   4. NAT keepalives (one byte 0xff on UDP 4500) from espresso.
#   5. A rekey collision: espresso's lifetime rekey and strongSwan's
#      `swanctl --rekey` of the same IPsec SA cross (espresso's quick mode
#      held back at the NAT for its first try); numbered UDP both ways
#      across it loses nothing, one pair is left at both ends, the one
#      strongSwan sends on (it has no IKEv1 collision rule: the pair it
#      installed last; espresso follows the peer's traffic). It runs on
#      an ISAKMP SA of its own (reload with a 1 h ISAKMP lifetime, up
#      again) so that no re-authentication falls inside the collision.
# Root; about 100 s.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
source tests/lib/tshark_esp.sh
source tests/lib/udp_flows.sh
nsl_init v1nat
command -v nft >/dev/null || nsl_die "nft missing"
command -v tshark >/dev/null || nsl_die "tshark missing"
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }

nsl_ns hA; NS_HA=$NSL_NS
nsl_ns gwA; NS_GWA=$NSL_NS
nsl_ns nat; NS_NAT=$NSL_NS
nsl_ns gwB; NS_GWB=$NSL_NS
nsl_ns hB; NS_HB=$NSL_NS
nsl_veth "$NS_HA" eth0 "$NS_GWA" lan
nsl_veth "$NS_GWA" wan "$NS_NAT" in
nsl_veth "$NS_NAT" out "$NS_GWB" wan
nsl_veth "$NS_GWB" lan "$NS_HB" eth0
ip -n "$NS_HA" addr add 10.1.0.2/24 dev eth0
ip -n "$NS_HA" route add default via 10.1.0.1
ip -n "$NS_GWA" addr add 10.1.0.1/24 dev lan
ip -n "$NS_GWA" addr add 192.168.100.2/24 dev wan
ip -n "$NS_GWA" route add default via 192.168.100.1
ip -n "$NS_NAT" addr add 192.168.100.1/24 dev in
ip -n "$NS_NAT" addr add 192.0.2.1/24 dev out
ip -n "$NS_GWB" addr add 192.0.2.2/24 dev wan
ip -n "$NS_GWB" addr add 10.2.0.1/24 dev lan
ip -n "$NS_HB" addr add 10.2.0.2/24 dev eth0
ip -n "$NS_HB" route add default via 10.2.0.1
ip netns exec "$NS_GWA" sysctl -qw net.ipv4.ip_forward=0
ip netns exec "$NS_NAT" sysctl -qw net.ipv4.ip_forward=1
nsl_x "$NS_NAT" nft -f - <<'NFT'
table ip espresso_test_nat {
  chain post {
    type nat hook postrouting priority srcnat; policy accept;
    oifname "out" masquerade
  }
}
NFT
nsl_offloads "$NS_GWA" lan gateway
nsl_offloads "$NS_GWA" wan gateway
nsl_offloads "$NS_HA" eth0 endpoint
nsl_offloads "$NS_HB" eth0 endpoint

SW_VERSION=1 SW_REMOTE_ID=gwa.example SW_REMOTE_ADDRS=%any
sw_setup
sw_write_conf "aes128-sha256-modp2048" "aes128-sha1-modp2048" child.start_action=none
sw_start
mkdir -p "$NSL_TMP/A"
( umask 077; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk" )
cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9718"
allow_key_export = true

[[connection]]
name = "sw"
version = 1
left = "%defaultroute"
right = "192.0.2.2"
leftid = "@gwa.example"
rightid = "192.0.2.2"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
secrets = "sw.psk"
ike = "aes128-sha256-modp2048"
esp = "aes128-sha1"
pfs = true
auto = "none"
ikelifetime = "26s"
lifetime = "20s"
margin = "8s"
rekeyfuzz = "0%"
CONF
ctl_dataplane A
ctl_daemon A

# the WAN side of espresso (inside the NAT), from before the first packet
nsl_bg "$NS_NAT" cap_in tcpdump -n -i in -B 32768 -s 1500 --immediate-mode -U -w "$NSL_TMP/wan.pcap" 'udp port 500 or udp port 4500 or esp'
CAP=$NSL_PID
sleep 0.5

# ---- 1. up from behind the NAT (the NAT-T checks follow the flow)
up=$(ctl A up sw)
grep -q "initiating (IKEv1)" <<<"$up" || nsl_die "up sw: $up"
ctl_wait_state A sw up 25
U=$(date +%s.%N)   # espresso's lifetimes count from here
j() { ctl_field A "$1"; }
# charon (kernel-libipsec) reads our ESP from its NAT-T socket in
# userspace. On a loaded machine (load 10-20 seen on 2 vCPUs) it is starved
# long enough for that socket's buffer (212992 bytes; not settable per
# namespace) to overflow at 500 datagrams/s: UdpRcvbufErrors in gwB's
# namespace counted exactly the datagrams missing at hB (514 of 514, 321 of
# 321), with no ESP drop at espresso and nothing in charon's log. Such
# datagrams reached strongSwan and were lost there; any other loss fails.
sw_overflows() {
  ip netns exec "$NS_GWB" nstat -az UdpRcvbufErrors 2>/dev/null | awk '/UdpRcvbufErrors/ {print $2 + 0}'
}
# flow_ok DIR EXPECTED UNIQUE MISSING COUNT OVERFLOWS: no datagram lost,
# or (hA -> hB only) exactly those dropped at strongSwan's full socket
flow_ok() {
  [ "$2" = "$5" ] || return 1
  [ "$4" = 0 ] && [ "$3" = "$2" ] && return 0
  [ "$1" = ab ] && [ "$6" -gt 0 ] && [ "$4" = "$6" ] && [ "$3" = $(( $2 - $4 )) ]
}

# ---- 2. numbered flows across every kind of rekey
ISAKMP_0=$(j "' '.join(x['spi_i']+x['spi_r'] for x in s['ike_sas'])")
read -r IN_0 _ <<<"$(j "'%08x %08x' % (t('sw')['inbound']['spi'], t('sw')['outbound']['spi'])")"
# keys of every IPsec SA generation: `espresso keys` polled during the flow
(
  while :; do
    ctl A keys sw >>"$NSL_TMP/keys.uat" 2>/dev/null || true
    sleep 1
  done
) &
KEYS_POLL=$!
NSL_PIDS+=("$KEYS_POLL")
# ESP at 500 datagrams/s each way for 30 s
COUNT=15000
INTERVAL=0.002
ctl_ping "$NS_HA" 10.2.0.2 2 >/dev/null || true
ctl_ping "$NS_HB" 10.1.0.2 2 >/dev/null || true
FPORT=$(( 20000 + RANDOM % 20000 ))
nsl_bg "$NS_HB" recvB python3 tests/lib/udp_seq.py recv 10.2.0.2 "$FPORT" "$NSL_TMP/ab.json" 4
nsl_bg "$NS_HA" recvA python3 tests/lib/udp_seq.py recv 10.1.0.2 "$FPORT" "$NSL_TMP/ba.json" 4
# both receivers bound before the first datagram (python starts slowly on a loaded machine)
for ns in "$NS_HB" "$NS_HA"; do
  for _ in $(seq 1 100); do
    [ -n "$(ip netns exec "$ns" ss -Huln "sport = :$FPORT")" ] && break
    sleep 0.1
  done
  [ -n "$(ip netns exec "$ns" ss -Huln "sport = :$FPORT")" ] || nsl_die "receiver in $ns not listening on $FPORT"
done
# espresso's first QM3 (its lifetime rekey at 12 s: IKE on 4500 from
# espresso, exchange type 32, HASH(3) alone: UDP length 88) is lost twice
# at the NAT: charon gets it with its second QM2 retransmission (1 s, then
# 1.4 s more), so it sends on the old pair ~2.4 s after QM3 and has not
# installed the new one. espresso waits for charon's ESP on the new pair
# before it moves its traffic there and deletes the old pair (before, it
# moved 1 s after QM3 and sent the DELETE 1 s later: charon deleted the pair
# it sent on before it had the new one).
nsl_x "$NS_NAT" nft -f - <<'NFT'
table ip espresso_test_qm3 {
  chain qm3_drop {
    type filter hook forward priority filter; policy accept;
    ip saddr 192.168.100.2 udp dport 4500 udp length < 120 @th,64,32 0 @th,240,8 32 counter drop
  }
}
NFT
qm3_dropped() { { nsl_x "$NS_NAT" nft list chain ip espresso_test_qm3 qm3_drop 2>/dev/null || true; } | sed -n 's/.*counter packets \([0-9]*\).*/\1/p'; }
(
  while n=$(qm3_dropped) && [ -n "$n" ] && [ "$n" -lt 2 ]; do sleep 0.05; done
  nsl_x "$NS_NAT" nft delete table ip espresso_test_qm3 2>/dev/null && nsl_log "espresso's QM3 dropped twice at the NAT"
) &
QM3_POLL=$!
NSL_PIDS+=("$QM3_POLL")
OV0=$(sw_overflows)
nsl_bg "$NS_HA" sendA python3 tests/lib/udp_seq.py send 10.2.0.2 "$FPORT" "$COUNT" "$INTERVAL" 200
SEND_A=$NSL_PID
nsl_bg "$NS_HB" sendB python3 tests/lib/udp_seq.py send 10.1.0.2 "$FPORT" "$COUNT" "$INTERVAL" 200
SEND_B=$NSL_PID
# strongSwan acts at fixed times after the ISAKMP SA came up, away from
# espresso's own rekeys (IPsec SA at 12 s, 24 s; ISAKMP SA 22 s after
# strongSwan's re-authentication): no rekey collision
at() { local d; d=$(python3 -c "import sys,time; print(max(0, $U + $1 - time.time()))"); sleep "$d"; }
at 5
swc --rekey --child net >"$NSL_TMP/sw-rekey.log" 2>&1 || nsl_die "swanctl --rekey --child: $(cat "$NSL_TMP/sw-rekey.log")"
nsl_log "strongSwan rekeyed the IPsec SA"
at 8
swc --rekey --ike gw --reauth >"$NSL_TMP/sw-reauth.log" 2>&1 || nsl_die "swanctl --rekey --ike --reauth: $(cat "$NSL_TMP/sw-reauth.log")"
nsl_log "strongSwan re-authenticated the ISAKMP SA"
wait "$SEND_A" 2>/dev/null || true
wait "$SEND_B" 2>/dev/null || true
nsl_wait_file "$NSL_TMP/ab.json" 40 || nsl_die "receiver in hB wrote no result"
nsl_wait_file "$NSL_TMP/ba.json" 40 || nsl_die "receiver in hA wrote no result"
kill "$KEYS_POLL" 2>/dev/null || true
wait "$KEYS_POLL" 2>/dev/null || true
qm3_n=$(qm3_dropped)
kill "$QM3_POLL" 2>/dev/null || true
wait "$QM3_POLL" 2>/dev/null || true
[ -z "$qm3_n" ] || nsl_die "espresso's QM3 was not dropped twice during the flow (dropped $qm3_n): no lifetime rekey by espresso?"
ctl A keys sw >>"$NSL_TMP/keys.uat" 2>/dev/null || true

# ---- NAT-T (state after the flow: every SA since was set up from behind the NAT)
ctl A status | sed -n '1,6p'
[ "$(j "s['ike_sas'][0]['nat_local']")" = True ] || nsl_die "espresso did not detect that it is behind a NAT: $(j "s['ike_sas'][0]")"
[ "$(j "s['ike_sas'][0]['local']")" = "192.168.100.2:4500" ] || nsl_die "IKE not floated to 4500: local $(j "s['ike_sas'][0]['local']")"
j "s['ike_sas'][0]['children'][0]['encap']" | grep -q True || nsl_die "IPsec SA not UDP-encapsulated"
swc --list-sas >"$NSL_TMP/sw-sas.txt"
grep -q "remote 'gwa.example' @ 192.0.2.1\[4500\]" "$NSL_TMP/sw-sas.txt" || nsl_die "strongSwan does not see gwa.example at the NAT's address: $(head -3 "$NSL_TMP/sw-sas.txt")"
grep -q "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048" "$NSL_TMP/sw-sas.txt" || nsl_die "strongSwan's phase 1 algorithms: $(head -3 "$NSL_TMP/sw-sas.txt")"
ct=$(nsl_x "$NS_NAT" cat /proc/net/nf_conntrack 2>/dev/null || true)
if [ -n "$ct" ]; then
  grep -q "proto=50\|^ipv4 .* esp " <<<"$ct" && nsl_die "raw ESP crossed the NAT"
fi
pass "NAT-T: main mode from behind the SNAT, NAT detected (local), IKE floated to 192.168.100.2:4500, ESP in UDP; strongSwan sees gwa.example at 192.0.2.1:4500"

log=$(sed "s/\x1b\[[0-9;]*m//g" "$NSL_TMP/ctlA.log")
grep -E "sw: (IKE SA|child SA)" <<<"$log" | sed 's/^.*sw: /  /' | cut -c1-150 >&2 || true
drops=$(j "[w['drops_by_reason'] for w in s['workers']]")
sadrops=$(j "[x for x in s.get('sas', []) if x.get('drops')]" 2>/dev/null || true)
res=""
ov=$(( $(sw_overflows) - OV0 ))
for f in ab ba; do
  r=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["expected"], d["unique"], d["missing_count"], d["missing"][:10])' "$NSL_TMP/$f.json")
  read -r exp uniq miss _ <<<"$r"
  flow_ok "$f" "$exp" "$uniq" "$miss" "$COUNT" "$ov" ||
    nsl_die "$f: datagrams lost at the receiver: expected/unique/missing/first missing = $r; espresso's drops: $drops; charon: $(grep -ciE 'ESP\].*(fail|discard|drop)' "$SW_DIR/charon.log") ESP errors logged; strongSwan's socket overflowed $ov times"
  res+="$f $uniq/$exp "
  [ "$miss" = 0 ] || res+="(the $miss missing dropped at strongSwan's full socket) "
done
# every drop espresso counted is a policy discard from before the first SA
[ "$(j "all(set(w['drops_by_reason']) <= {'policy_discard'} for w in s['workers'])")" = True ] ||
  nsl_die "espresso dropped ESP or forwarded traffic: $drops"
grep -iE "ESP\].*(fail|discard|drop|mismatch)" "$SW_DIR/charon.log" && nsl_die "charon logged ESP errors"

# the rekeys: strongSwan's QM, espresso's QM, espresso's re-authentication, strongSwan's
# espresso's last rekey (about 24 s in) switches when charon sends on the
# new pair, or at the latest 10 s after its QM3 (SWITCH_WAIT_MAX): charon,
# still adopting the IPsec SAs after espresso's re-authentication, may take
# the quick mode for a new IPsec SA rather than a rekey and go on sending
# on the old pair (seen), which stays until then (nothing lost)
for _ in $(seq 1 120); do
  rekeys=$(sed "s/\x1b\[[0-9;]*m//g" "$NSL_TMP/ctlA.log" | grep -c "sw: child SA rekeyed" || true)
  [ "$rekeys" -ge 3 ] && break
  sleep 0.1
done
log=$(sed "s/\x1b\[[0-9;]*m//g" "$NSL_TMP/ctlA.log")
[ "$rekeys" -ge 3 ] || nsl_die "expected at least 3 quick-mode rekeys (strongSwan's and espresso's), saw $rekeys"
# the keys of a pair whose outbound SA went in after the flow (that switch)
ctl A keys sw >>"$NSL_TMP/keys.uat" 2>/dev/null || true
reauth_ours=$(grep -c "IKE SA .* established .*(initiator)" <<<"$log" || true)
[ "$reauth_ours" -ge 2 ] || nsl_die "espresso did not re-authenticate the ISAKMP SA (initiator establishments: $reauth_ours)"
grep -q "IKE SA .* established .*(responder)" <<<"$log" || nsl_die "strongSwan's re-authentication did not reach espresso"
# one ISAKMP SA left on each side, the same one, not the first one
for _ in $(seq 1 50); do
  [ "$(j "len(s['ike_sas'])")" = 1 ] && [ "$(sw_ike_count)" = 1 ] && break
  sleep 0.1
done
ours=$(j "' '.join(x['spi_i']+x['spi_r'] for x in s['ike_sas'])")
theirs=$(swc --list-sas --raw 2>/dev/null | python3 -c '
import re,sys
t=sys.stdin.read()
print(" ".join(a+b for a,b in re.findall(r"initiator-spi=([0-9a-f]+) responder-spi=([0-9a-f]+)", t)))')
nsl_log "ISAKMP SAs: espresso [$ours], strongSwan [$theirs] (all states)"
[ "$(wc -w <<<"$ours")" = 1 ] || nsl_die "espresso lists $(wc -w <<<"$ours") ISAKMP SAs after the re-authentications: $ours"
[ "$ours" = "$theirs" ] || nsl_die "ISAKMP SAs differ: espresso $ours, strongSwan $theirs"
[ "$ours" != "$ISAKMP_0" ] || nsl_die "ISAKMP SA not replaced"
for _ in $(seq 1 30); do
  read -r si so <<<"$(sw_child_spis)"
  read -r ai ao <<<"$(j "'%08x %08x' % (t('sw')['inbound']['spi'], t('sw')['outbound']['spi'])")"
  [ "$ai" = "${so:-}" ] && [ "$ao" = "${si:-}" ] && break
  sleep 0.1
done
[ "$ai" = "${so:-}" ] && [ "$ao" = "${si:-}" ] && [ "$ai" != "$IN_0" ] || nsl_die "IPsec SAs: espresso in/out $ai/$ao, strongSwan in/out $si/$so (first $IN_0)"
spis=$(grep -c '^"IPv4"' <(sort -u "$NSL_TMP/keys.uat") || true)
pass "numbered UDP at 500/s both ways for 30 s ($res) across $rekeys quick-mode rekeys and ISAKMP re-authentications by espresso and by strongSwan: none lost on the way (every datagram reached hB and hA or strongSwan's socket), no ESP drop on either side, one ISAKMP SA left on both sides ($ours); $spis SA keys exported"

# ---- 3. the WAN capture, decrypted
sort -u "$NSL_TMP/keys.uat" >"$NSL_TMP/esp_sa"
mapfile -t recs < <(tshark_esp_records_from_uat "$NSL_TMP/esp_sa")
[ "${#recs[@]}" -ge 8 ] || nsl_die "too few exported SAs for 4+ generations: ${#recs[@]}"

# ---- 4. NAT keepalives (RFC 3948: one byte 0xff), within 25 s of the last phase 1
ka=0
for _ in $(seq 1 250); do
  ka=$(tshark -n -r "$NSL_TMP/wan.pcap" -Y 'ip.src==192.168.100.2 && udp.dstport==4500 && udp.length==9' 2>/dev/null | wc -l || true)
  [ "$ka" -ge 1 ] && break
  sleep 0.1
done
nsl_stop "$CAP"
sleep 0.3
capdrop=$(sed -n 's/^\([0-9]*\) packets dropped by kernel.*/\1/p' "$NSL_TMP/cap_in.log")
[ "${capdrop:-0}" = 0 ] || nsl_die "tcpdump lost $capdrop packets: the capture cannot show every ESP packet"
[ "$ka" -ge 1 ] || nsl_die "no NAT keepalive from espresso"
pass "NAT keepalives: $ka one-byte 0xff on UDP 4500 from behind the NAT"

# NAT-D and the float, in the capture
natd=$(tshark -n -r "$NSL_TMP/wan.pcap" -Y 'udp.port==500 && isakmp.ike.nat_hash' -T fields -e isakmp.ike.nat_hash 2>/dev/null | wc -l)
[ "$natd" -ge 2 ] || nsl_die "no NAT-D payloads on port 500 (main mode messages 3 and 4): $natd"
float=$(tshark -n -r "$NSL_TMP/wan.pcap" -Y 'udp.srcport==4500 && udp.dstport==4500 && isakmp' 2>/dev/null | wc -l)
[ "$float" -ge 2 ] || nsl_die "no ISAKMP on 4500 after the float"
res=$(tshark_esp_count_multi "$NSL_TMP/wan.pcap" "${recs[@]}") || nsl_die "tshark with the exported IKEv1 keys: $res"
total=$(sed -n 's/.*total=\([0-9]*\).*/\1/p' <<<"$res")
[ "$total" -ge $((2 * COUNT)) ] || nsl_die "fewer ESP packets in the capture than datagrams sent: $res"
pass "WAN capture inside the NAT: NAT-D in main mode ($natd messages), ISAKMP floated to 4500 ($float messages), every ESP-in-UDP packet decrypted and verified by tshark with the keys espresso exported ($res)"

swc --terminate --ike gw --timeout 10 >/dev/null 2>&1 || nsl_die "strongSwan terminate"
ctl_wait_state A sw down 10
[ "$(j "len(s.get('ike_sas', []))")" = 0 ] || nsl_die "espresso keeps SAs after strongSwan's delete through the NAT"
pass "strongSwan's delete through the NAT removes espresso's SAs"
# ---- 5. both ends rekey the IPsec SA at once (a collision), on an ISAKMP
# SA of its own whose lifetime (1 h) keeps espresso's re-authentication out
# of the way: with the 26 s of cases 2-4 a re-authentication could fall
# between the held quick mode and its retransmission, redo the quick mode
# under the new ISAKMP SA, and there was no collision to see (4 of 4 runs
# after cases 2-4 on the merged main). The engine's collision handling is
# also unit-tested (ikev1_exchanges: simultaneous_rekeys_leave_one_chain,
# a_rekey_collision_follows_the_pair_the_peer_sends_on, an_idle_rekey_collision_*).
# The collision happens every time. strongSwan (charon, IKEv1) has no
# collision rule and deletes neither pair: it sends on the pair it installed
# last (quick_mode.c: the later exchange's install removes the outbound SA
# of the pair it replaced). espresso sends on the pair its nonce rule keeps
# and deletes neither until the dataplane's counters show which pair the
# peer sends on; then it sends on that one too and deletes the other. Before
# (1 of 3 runs, tests8 branch, 2026-12-06), espresso kept strongSwan's pair
# and deleted the one charon sent on: the ba flow lost its last ~4 s.
sed -i 's/^ikelifetime = "26s"$/ikelifetime = "1h"/' "$NSL_TMP/A/espresso.toml"
grep -q '^ikelifetime = "1h"$' "$NSL_TMP/A/espresso.toml" || nsl_die "case 5: ikelifetime not rewritten"
rl=$(ctl A reload 2>&1) || nsl_die "reload for case 5: $rl"
grep -q "reloaded: .*sw" <<<"$rl" || nsl_die "reload did not change sw: $rl"
collisions0=$(sed "s/\x1b\[[0-9;]*m//g" "$NSL_TMP/ctlA.log" | grep -c "sw: child SA rekey collision (" || true)
up=$(ctl A up sw)
grep -q "initiating (IKEv1)" <<<"$up" || nsl_die "case 5: up sw: $up"
ctl_wait_state A sw up 25
ISAKMP_5=$(j "' '.join(x['spi_i']+x['spi_r'] for x in s['ike_sas'])")
# espresso's quick mode for its lifetime rekey is held back at the NAT (one
# datagram dropped: IKE on 4500 from espresso, exchange type 32) and
# strongSwan is told to rekey the same IPsec SA the moment it is: espresso
# answers strongSwan's quick mode while its own is outstanding, and its
# retransmission (4 s later) makes a second new pair at both ends. espresso
# sends on one pair (RFC 7296 §2.8.1's nonce rule), both ends send on pairs
# the other has; once strongSwan's traffic shows its pick, espresso sends
# on that pair and deletes the other, the old one goes after its drain:
# numbered UDP both ways at 500/s across it loses nothing, and afterwards
# espresso and strongSwan hold the same single pair.
nsl_x "$NS_NAT" nft -f - <<'NFT'
table ip espresso_test_qm {
  chain qm_hold {
    type filter hook forward priority filter; policy accept;
    ip saddr 192.168.100.2 udp dport 4500 @th,64,32 0 @th,240,8 32 counter drop
  }
}
NFT
rk=$(j "min(c['rekey_in_s'] for x in s['ike_sas'] for c in x['children'] if c['state']=='INSTALLED' and c['rekey_in_s'] is not None)")
sleep "$(( rk > 2 ? rk - 2 : 0 ))"
# the flow lasts until well after the retransmission (4 s) and the
# settling of the collision (about 3.5 s, twice that after a swap)
COUNT2=$(( (rk > 2 ? 2 : rk) * 500 + 8000 ))
OV0=$(sw_overflows)
FLOW_IDLE=4 FLOW_SIZE=200 flows_start "$COUNT2" "$INTERVAL" coll
held=0
for _ in $(seq 1 300); do
  nsl_x "$NS_NAT" nft list chain ip espresso_test_qm qm_hold | grep -q "packets [1-9]" && { held=1; break; }
  sleep 0.05
done
[ "$held" = 1 ] || nsl_die "espresso did not start its quick-mode rekey within 15 s (rekey in $rk s)"
nsl_x "$NS_NAT" nft delete table ip espresso_test_qm
swc --rekey --child net >"$NSL_TMP/sw-rekey2.log" 2>&1 || nsl_die "swanctl --rekey --child: $(cat "$NSL_TMP/sw-rekey2.log")"
nsl_log "espresso's quick mode held back; strongSwan rekeyed the same IPsec SA"
flows_senders_wait
nsl_wait_file "$NSL_TMP/ab_coll.json" 30 || nsl_die "coll: receiver in hB wrote no result"
nsl_wait_file "$NSL_TMP/ba_coll.json" 30 || nsl_die "coll: receiver in hA wrote no result"
ov=$(( $(sw_overflows) - OV0 ))
res=""
for f in ab ba; do
  r=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["expected"], d["unique"], d["missing_count"], d["missing"][:10])' "$NSL_TMP/${f}_coll.json")
  read -r exp uniq miss _ <<<"$r"
  flow_ok "$f" "$exp" "$uniq" "$miss" "$COUNT2" "$ov" ||
    nsl_die "coll $f: datagrams lost at the receiver: expected/unique/missing/first missing = $r; espresso's ESP drops: $(j "[w['drops_by_reason'] for w in s['workers']]"); strongSwan's socket overflowed $ov times"
  res+="$f $uniq/$exp "
  [ "$miss" = 0 ] || res+="(the $miss missing dropped at strongSwan's full socket) "
done
log=$(sed "s/\x1b\[[0-9;]*m//g" "$NSL_TMP/ctlA.log")
collisions=$(grep -c "sw: child SA rekey collision (" <<<"$log" || true)
grep "sw: child SA rekey collision" <<<"$log" | sed 's/^.*sw: /  /' >&2 || true
[ "$collisions" -gt "$collisions0" ] ||
  nsl_die "no rekey collision at espresso: $(grep -E 'sw: child SA' <<<"$log" | tail -6)"
settled=$(grep "sw: child SA rekey collision settled" <<<"$log" | tail -1)
[ -n "$settled" ] || nsl_die "the collision did not settle (no peer traffic seen?): $(grep -E 'sw: child SA' <<<"$log" | tail -6)"
if grep -q "its pick, not ours" <<<"$settled"; then how="espresso moved to strongSwan's pick"; else how="strongSwan sent on espresso's pick"; fi
[ "$(j "all(set(w['drops_by_reason']) <= {'policy_discard'} for w in s['workers'])")" = True ] ||
  nsl_die "espresso dropped ESP during the collision: $(j "[w['drops_by_reason'] for w in s['workers']]")"
# one pair left at both ends, the same one (the redundant one and the old one deleted)
for _ in $(seq 1 150); do
  n=$(j "sum(len(x['children']) for x in s['ike_sas'])")
  read -r si so <<<"$(sw_child_spis)"
  read -r ai ao <<<"$(j "'%08x %08x' % (t('sw')['inbound']['spi'], t('sw')['outbound']['spi'])")"
  swn=$(swc --list-sas --raw 2>/dev/null | grep -o "state=INSTALLED" | wc -l)
  [ "$n" = 1 ] && [ "$swn" = 1 ] && [ "$ai" = "${so:-}" ] && [ "$ao" = "${si:-}" ] && break
  sleep 0.1
done
[ "$n" = 1 ] || nsl_die "espresso keeps $n IPsec SA pairs after the collision: $(j "[(c['state'], c['inbound']['spi_hex'], c['outbound']['spi_hex']) for x in s['ike_sas'] for c in x['children']]")"
[ "$swn" = 1 ] || nsl_die "strongSwan keeps $swn IPsec SAs after the collision: $(swc --list-sas)"
[ "$ai" = "${so:-}" ] && [ "$ao" = "${si:-}" ] || nsl_die "after the collision: espresso in/out $ai/$ao, strongSwan in/out $si/$so"
[ "$(j "' '.join(x['spi_i']+x['spi_r'] for x in s['ike_sas'])")" = "$ISAKMP_5" ] && [ "$(sw_ike_count)" = 1 ] ||
  nsl_die "case 5's ISAKMP SA changed (a re-authentication in the collision): $ISAKMP_5 -> $(j "[x['spi_i']+x['spi_r'] for x in s['ike_sas']]"), strongSwan $(sw_ike_count)"
pass "rekey collision (both ends rekeyed the IPsec SA at once): numbered UDP both ways ($res) none lost on the way, no ESP drop, one pair left at both ends ($ai/$ao), $how"

echo "36_ikev1_natt_reauth: $passed passed, 0 failed"
