#!/usr/bin/env bash
# MOBIKE (RFC 4555) against strongSwan 5.9.8: strongSwan on gateway B is the
# mobile peer (swanctl defaults: mobike = yes), espresso on gateway A the
# gateway (right = %any). While numbered UDP datagrams run through the tunnel
# both ways, gateway B's WAN address changes (192.0.2.2 -> 192.0.2.3, the old
# one removed): strongSwan's kernel-netlink plugin sees it and sends
# UPDATE_SA_ADDRESSES from the new address; espresso answers, checks the new
# address (COOKIE2) and moves the IKE SA and the child SAs in its dataplane.
# Checked: MOBIKE negotiated on both sides; after the move the same IKE and
# child SPIs on both sides (no IKE_SA_INIT, no CREATE_CHILD_SA), espresso's
# SAs at 192.0.2.3; at most the datagrams in flight lost across the move;
# ping both ways afterwards; the WAN capture after the move decrypts with the
# keys `espresso keys` exports (tshark).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
source tests/lib/tshark_esp.sh
nsl_init ikemob
nsl_topo_pair
sw_setup
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }
# the old address goes while the new one stays: keep secondaries on removal
ip netns exec "$NS_GWB" sysctl -qw net.ipv4.conf.wan.promote_secondaries=1

mkdir -p "$NSL_TMP/A"
( umask 077; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk" )
cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9721"
allow_key_export = true

[[connection]]
name = "sw"
left = "192.0.2.1"
right = "%any"
rightid = "192.0.2.2"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
secrets = "sw.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "aes128gcm16"
pfs = false
auto = "add"
CONF
SW_MOBIKE=yes SW_LOCAL_ADDRS=%any
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=none
sw_start
ctl_dataplane A
ctl_daemon A

swc --initiate --child net --timeout 15 >"$NSL_TMP/initiate.log" 2>&1 || nsl_die "strongSwan initiate: $(tail -5 "$NSL_TMP/initiate.log")"
ctl_wait_state A sw up 20
[ "$(ctl_field A "s['ike_sas'][0]['mobike']")" = True ] || nsl_die "MOBIKE not negotiated (status: mobike false)"
[ "$(ctl_field A "s['ike_sas'][0]['remote']")" = "192.0.2.2:4500" ] || nsl_die "peer not at 192.0.2.2:4500: $(ctl_field A "s['ike_sas'][0]['remote']")"
grep -q "MOBIKE" <<<"$(swc --list-sas)" || grep -q "MOBIKE" "$SW_DIR/charon.log" || nsl_die "strongSwan shows no MOBIKE"
ike_spis() { ctl_field A "s['ike_sas'][0]['spi_i'] + ' ' + s['ike_sas'][0]['spi_r']"; }
read -r ike_i ike_r <<<"$(ike_spis)"
read -r ours_in ours_out <<<"$(sw_our_spis)"
read -r sw_in sw_out <<<"$(sw_child_spis)"
[ "$ours_in" = "$sw_out" ] && [ "$ours_out" = "$sw_in" ] || nsl_die "SPIs differ: ours $ours_in/$ours_out, strongSwan $sw_in/$sw_out"
ping_ok() { local i; for i in 1 2 3; do [ "$(ctl_ping "$1" "$2" 10)" -ge 9 ] && return 0; done; return 1; }
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping hA -> hB before the move"
pass "strongSwan (mobike = yes) initiated, espresso responded with MOBIKE_SUPPORTED: IKE $ike_i/$ike_r, child $ours_in/$ours_out, traffic flows"

inits0=$(grep -c "IKE_SA_INIT" "$SW_DIR/charon.log" || true)
creates0=$(grep -c "CREATE_CHILD_SA" "$SW_DIR/charon.log" || true)   # request and response lines

# numbered datagrams both ways: 100 per second for 8 s, the move after 3 s
COUNT=800 INTERVAL=0.01
nsl_bg "$NS_HB" recvB python3 tests/lib/udp_seq.py recv 10.2.0.2 5001 "$NSL_TMP/ab.json" 3
rb=$NSL_PID
nsl_bg "$NS_HA" recvA python3 tests/lib/udp_seq.py recv 10.1.0.2 5002 "$NSL_TMP/ba.json" 3
ra=$NSL_PID
sleep 0.5
nsl_bg "$NS_HA" sendA python3 tests/lib/udp_seq.py send 10.2.0.2 5001 "$COUNT" "$INTERVAL" 200
sa=$NSL_PID
nsl_bg "$NS_HB" sendB python3 tests/lib/udp_seq.py send 10.1.0.2 5002 "$COUNT" "$INTERVAL" 200
sb=$NSL_PID
sleep 3
nsl_log "moving gateway B's WAN address 192.0.2.2 -> 192.0.2.3"
t_move=$(date +%s.%N)
ip -n "$NS_GWB" addr add 192.0.2.3/24 dev wan
ip -n "$NS_GWB" addr del 192.0.2.2/24 dev wan
ip -n "$NS_GWB" route replace 10.1.0.0/24 via 192.0.2.1
for _ in $(seq 1 100); do
  [ "$(ctl_field A "s['ike_sas'][0]['remote']" 2>/dev/null)" = "192.0.2.3:4500" ] && break
  sleep 0.05
done
t_moved=$(date +%s.%N)
[ "$(ctl_field A "s['ike_sas'][0]['remote']")" = "192.0.2.3:4500" ] || nsl_die "espresso's IKE SA did not follow to 192.0.2.3: $(ctl_field A "s['ike_sas'][0]['remote']"); charon: $(grep -i "mobike\|UPDATE_SA\|roam" "$SW_DIR/charon.log" | tail -5)"
for p in "$sa" "$sb"; do wait "$p" 2>/dev/null || true; done
for p in "$ra" "$rb"; do
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
[ -s "$NSL_TMP/ab.json" ] && [ -s "$NSL_TMP/ba.json" ] || nsl_die "a receiver wrote no result"
lost() { python3 -c "import json;d=json.load(open('$1'));print(d['expected']-d['unique'])"; }
lab=$(lost "$NSL_TMP/ab.json")
lba=$(lost "$NSL_TMP/ba.json")
nsl_log "datagrams lost across the move: A->B $lab, B->A $lba of $COUNT each; espresso followed in $(python3 -c "print(round($t_moved-$t_move,2))") s"
grep -E "MOBIKE|UPDATE_SA|moved to" <<<"$(ctl A log -n 300)" | tail -4 || true

grep -E "roam|MOBIKE|UPDATE_SA|COOKIE2|update|rekey|CREATE_CHILD" "$SW_DIR/charon.log" | grep -v "scheduling" | tail -15 || true
# The IKE SA stays: same SPIs, no IKE_SA_INIT. strongSwan's kernel-libipsec
# cannot update an installed SA (its update_sa is NOT_SUPPORTED: charon then
# rekeys each child after the move, with CREATE_CHILD_SA on the moved IKE SA),
# so the child SPIs change on strongSwan's initiative; espresso moved the
# original child in place first (its dataplane reinstalled the same SPIs at
# the new address), see part 2 for a peer that keeps them.
read -r ike_i2 ike_r2 <<<"$(ike_spis)"
[ "$ike_i2 $ike_r2" = "$ike_i $ike_r" ] || nsl_die "IKE SPIs changed: $ike_i/$ike_r -> $ike_i2/$ike_r2"
[ "$(grep -c "IKE_SA_INIT" "$SW_DIR/charon.log" || true)" = "$inits0" ] || nsl_die "a new IKE_SA_INIT after the move"
grep -q "generating INFORMATIONAL request [0-9]* \[ N(UPD_SA_ADDR) N(NATD_S_IP) N(NATD_D_IP)" "$SW_DIR/charon.log" || nsl_die "strongSwan sent no UPDATE_SA_ADDRESSES with NAT detection"
grep -q "parsed INFORMATIONAL response [0-9]* \[ N(COOKIE2) N(NATD_S_IP) N(NATD_D_IP) \]" "$SW_DIR/charon.log" || nsl_die "espresso's answer to UPDATE_SA_ADDRESSES lacks the COOKIE2 echo or NAT detection"
grep -q "parsed INFORMATIONAL request [0-9]* \[ N(COOKIE2) \]" "$SW_DIR/charon.log" || nsl_die "no return routability check (COOKIE2) from espresso"
grep -q "192.0.2.3\[4500\]" <<<"$(swc --list-sas)" || nsl_die "strongSwan's IKE SA not at 192.0.2.3"
[ "$(grep -c "SA 0x$ours_out Outbound installed" "$NSL_TMP/dpA.log")" = 2 ] || nsl_die "espresso's dataplane did not move outbound SA $ours_out in place"
[ "$(grep -c "SA 0x$ours_in Inbound installed" "$NSL_TMP/dpA.log")" = 2 ] || nsl_die "espresso's dataplane did not move inbound SA $ours_in in place"
grep -q "moved to 192.0.2.1:4500 <-> 192.0.2.3:4500 (MOBIKE)" <<<"$(ctl A log -n 300)" || nsl_die "espresso's log lacks the move"
pass "the IKE SA followed to 192.0.2.3 without renegotiation (IKE $ike_i/$ike_r unchanged, no IKE_SA_INIT): UPDATE_SA_ADDRESSES answered with NAT detection and COOKIE2, return routability checked, child $ours_in/$ours_out moved in espresso's dataplane"
read -r n_in n_out <<<"$(sw_our_spis)"
[ "$(grep -c "CREATE_CHILD_SA" "$SW_DIR/charon.log" || true)" -le $((creates0 + 2)) ] || nsl_die "more than one CREATE_CHILD_SA exchange after the move"
nsl_log "strongSwan (kernel-libipsec cannot update SAs) rekeyed the child after the move: $ours_in/$ours_out -> $n_in/$n_out"

# at most what was in flight: strongSwan's address change to our switch
[ "$lab" -le 60 ] && [ "$lba" -le 60 ] || nsl_die "too many datagrams lost across the move: A->B $lab, B->A $lba (100/s)"
pass "numbered UDP across the move: lost A->B $lab, B->A $lba of $COUNT each (100 datagrams/s)"
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping hA -> hB after the move"
ping_ok "$NS_HB" 10.1.0.2 || nsl_die "ping hB -> hA after the move"
pass "ping both ways after the move"

# a capture at the new addresses, of the child as it is now
nsl_bg "$NS_GWB" wancap tcpdump -n -i wan --immediate-mode -w "$NSL_TMP/wan-after.pcap" -U 'udp port 4500 and host 192.0.2.3'
cap=$NSL_PID
sleep 0.5
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping hA -> hB (capture)"
ping_ok "$NS_HB" 10.1.0.2 || nsl_die "ping hB -> hA (capture)"
sleep 0.3
nsl_stop "$cap"
ctl A keys sw >"$NSL_TMP/esp_sa" || nsl_die "espresso keys sw: $(cat "$NSL_TMP/esp_sa")"
grep -q '"192.0.2.3"' "$NSL_TMP/esp_sa" || nsl_die "exported keys do not name the new address"
mapfile -t recs < <(tshark_esp_records_from_uat "$NSL_TMP/esp_sa")
res=$(tshark_esp_count_multi "$NSL_TMP/wan-after.pcap" "${recs[@]}") || nsl_die "tshark with the exported keys on the WAN capture after the move: $res"
total=$(sed -n 's/.*total=\([0-9]*\).*/\1/p' <<<"$res")
[ "$total" -ge 30 ] || nsl_die "too few ESP packets captured after the move: $res"
pass "the WAN capture after the move (192.0.2.1 <-> 192.0.2.3, both directions) decrypts with espresso's exported keys ($res)"

swc --terminate --ike gw --timeout 10 >/dev/null 2>&1 || nsl_die "strongSwan terminate"
ctl_wait_state A sw down 10
pass "strongSwan's delete from the new address removes espresso's SAs"

# ---- 2. espresso as the mobile side (gateway B, `espresso move`) against
# espresso: the child SAs move in both dataplanes with the same SPIs and keys.
sw_stop
ip netns exec "$NS_GWB" sysctl -qw net.ipv4.ip_forward=0
ip -n "$NS_GWB" route flush table 220 2>/dev/null || true
cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9721"
allow_key_export = true

[[connection]]
name = "mob"
left = "192.0.2.1"
right = "%any"
rightid = "@gwb.example"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
secrets = "sw.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "aes128gcm16"
auto = "add"
CONF
grep -q "reloaded" <<<"$(ctl A reload)" || nsl_die "reload A"
mkdir -p "$NSL_TMP/B"
cp "$NSL_TMP/A/sw.psk" "$NSL_TMP/B/sw.psk"
cat >"$NSL_TMP/B/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/B/region.shm"
socket = "$NSL_TMP/B/espresso.sock"
metrics = "127.0.0.1:9722"
allow_key_export = true

[[connection]]
name = "mob"
left = "192.0.2.3"
right = "192.0.2.1"
leftid = "@gwb.example"
leftsubnet = "10.2.0.0/24"
rightsubnet = "10.1.0.0/24"
secrets = "sw.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "aes128gcm16"
auto = "start"
CONF
ctl_dataplane B
ctl_daemon B
ctl_wait_state B mob up 20
ctl_wait_state A mob up 10
[ "$(ctl_field B "s['ike_sas'][0]['mobike']")" = True ] && [ "$(ctl_field A "s['ike_sas'][0]['mobike']")" = True ] || nsl_die "MOBIKE not negotiated between the espresso gateways"
[ "$(ctl_field B "s['ike_sas'][0]['local']")" = "192.0.2.3:4500" ] || nsl_die "the MOBIKE initiator did not float to 4500: $(ctl_field B "s['ike_sas'][0]['local']")"
spis() { ctl_field "$1" "s['ike_sas'][0]['spi_i'] + ' ' + s['ike_sas'][0]['spi_r'] + ' %08x %08x' % (t('mob')['inbound']['spi'], t('mob')['outbound']['spi'])"; }
read -r bi br bin bout <<<"$(spis B)"
read -r ai ar ain aout <<<"$(spis A)"
[ "$bi $br" = "$ai $ar" ] && [ "$bin $bout" = "$aout $ain" ] || nsl_die "the two gateways disagree on SPIs"
ping_ok "$NS_HB" 10.1.0.2 || nsl_die "ping hB -> hA before the move (espresso <-> espresso)"
pass "espresso <-> espresso with MOBIKE: IKE $bi/$br, child $bin/$bout, IKE on 4500 from IKE_AUTH on"

nsl_bg "$NS_HB" recvB2 python3 tests/lib/udp_seq.py recv 10.2.0.2 5003 "$NSL_TMP/ab2.json" 3
rb=$NSL_PID
nsl_bg "$NS_HA" recvA2 python3 tests/lib/udp_seq.py recv 10.1.0.2 5004 "$NSL_TMP/ba2.json" 3
ra=$NSL_PID
nsl_bg "$NS_GWA" wancap2 tcpdump -n -i wan --immediate-mode -w "$NSL_TMP/wan-moved.pcap" -U 'host 192.0.2.4 and (esp or udp port 4500)'
cap=$NSL_PID
sleep 0.5
nsl_bg "$NS_HA" sendA2 python3 tests/lib/udp_seq.py send 10.2.0.2 5003 "$COUNT" "$INTERVAL" 200
sa=$NSL_PID
nsl_bg "$NS_HB" sendB2 python3 tests/lib/udp_seq.py send 10.1.0.2 5004 "$COUNT" "$INTERVAL" 200
sb=$NSL_PID
sleep 3
nsl_log "moving gateway B (espresso) 192.0.2.3 -> 192.0.2.4 with espresso move"
ip -n "$NS_GWB" addr add 192.0.2.4/24 dev wan
grep -q "UPDATE_SA_ADDRESSES sent" <<<"$(ctl B move mob 192.0.2.4)" || nsl_die "espresso move"
ip -n "$NS_GWB" addr del 192.0.2.3/24 dev wan
for _ in $(seq 1 100); do
  [ "$(ctl_field A "s['ike_sas'][0]['remote']" 2>/dev/null)" = "192.0.2.4:4500" ] && break
  sleep 0.05
done
[ "$(ctl_field A "s['ike_sas'][0]['remote']")" = "192.0.2.4:4500" ] || nsl_die "gateway A did not follow B to 192.0.2.4"
for p in "$sa" "$sb"; do wait "$p" 2>/dev/null || true; done
for p in "$ra" "$rb"; do
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
nsl_stop "$cap"
lab=$(lost "$NSL_TMP/ab2.json")
lba=$(lost "$NSL_TMP/ba2.json")
nsl_log "datagrams lost across the move: A->B $lab, B->A $lba of $COUNT each"
read -r bi2 br2 bin2 bout2 <<<"$(spis B)"
read -r ai2 ar2 ain2 aout2 <<<"$(spis A)"
[ "$bi2 $br2 $bin2 $bout2" = "$bi $br $bin $bout" ] || nsl_die "B's SPIs changed: $bi/$br $bin/$bout -> $bi2/$br2 $bin2/$bout2"
[ "$ai2 $ar2 $ain2 $aout2" = "$ai $ar $ain $aout" ] || nsl_die "A's SPIs changed: $ai/$ar $ain/$aout -> $ai2/$ar2 $ain2/$aout2"
[ "$(ctl_field B "s['ike_sas'][0]['local']")" = "192.0.2.4:4500" ] || nsl_die "B's IKE SA not at 192.0.2.4"
for side in A B; do
  grep -q "moved to .*192.0.2.4:4500.*(MOBIKE), 1 child SA(s) follow" <<<"$(ctl $side log -n 300)" || nsl_die "$side's log lacks the move"
done
pass "espresso move: both gateways moved the IKE SA and the child in place, IKE $bi/$br and child $bin/$bout unchanged"
# in flight: what A sends to B's old address until A's return routability
# check of the new one is answered (the old address goes right after `move`)
[ "$lab" -le 50 ] && [ "$lba" -le 50 ] || nsl_die "too many datagrams lost across the move: A->B $lab, B->A $lba (100/s)"
pass "numbered UDP across espresso's move: lost A->B $lab, B->A $lba of $COUNT each (100 datagrams/s)"
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping hA -> hB after espresso's move"
ping_ok "$NS_HB" 10.1.0.2 || nsl_die "ping hB -> hA after espresso's move"
ctl A keys mob >"$NSL_TMP/esp_sa2" || nsl_die "espresso keys mob"
grep -q '"192.0.2.4"' "$NSL_TMP/esp_sa2" || nsl_die "exported keys do not name the new address"
mapfile -t recs < <(tshark_esp_records_from_uat "$NSL_TMP/esp_sa2")
res=$(tshark_esp_count_multi "$NSL_TMP/wan-moved.pcap" "${recs[@]}") || nsl_die "tshark with the exported keys on the capture at the new address: $res"
total=$(sed -n 's/.*total=\([0-9]*\).*/\1/p' <<<"$res")
[ "$total" -ge 300 ] || nsl_die "too few ESP packets at the new address: $res"
pass "ping both ways after the move; the capture at the new address on A (what B sent: plain ESP, same SPIs) decrypts with the exported keys ($res)"

# ---- 3. without the operator: B's address goes away, the daemon notices (it
# checks its IKE SAs' addresses every second) and moves to the new source
# address towards the peer.
nsl_bg "$NS_HB" recvB3 python3 tests/lib/udp_seq.py recv 10.2.0.2 5005 "$NSL_TMP/ab3.json" 3
rb=$NSL_PID
nsl_bg "$NS_HA" recvA3 python3 tests/lib/udp_seq.py recv 10.1.0.2 5006 "$NSL_TMP/ba3.json" 3
ra=$NSL_PID
sleep 0.5
nsl_bg "$NS_HA" sendA3 python3 tests/lib/udp_seq.py send 10.2.0.2 5005 "$COUNT" "$INTERVAL" 200
sa=$NSL_PID
nsl_bg "$NS_HB" sendB3 python3 tests/lib/udp_seq.py send 10.1.0.2 5006 "$COUNT" "$INTERVAL" 200
sb=$NSL_PID
sleep 3
nsl_log "gateway B's address 192.0.2.4 goes, 192.0.2.5 comes (no espresso move)"
ip -n "$NS_GWB" addr add 192.0.2.5/24 dev wan
ip -n "$NS_GWB" addr del 192.0.2.4/24 dev wan
for _ in $(seq 1 100); do
  [ "$(ctl_field A "s['ike_sas'][0]['remote']" 2>/dev/null)" = "192.0.2.5:4500" ] && break
  sleep 0.05
done
[ "$(ctl_field A "s['ike_sas'][0]['remote']")" = "192.0.2.5:4500" ] || nsl_die "B's daemon did not notice its address change"
for p in "$sa" "$sb"; do wait "$p" 2>/dev/null || true; done
for p in "$ra" "$rb"; do
  for _ in $(seq 1 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
done
lab=$(lost "$NSL_TMP/ab3.json")
lba=$(lost "$NSL_TMP/ba3.json")
read -r bi3 br3 bin3 bout3 <<<"$(spis B)"
[ "$bi3 $br3 $bin3 $bout3" = "$bi $br $bin $bout" ] || nsl_die "B's SPIs changed on the automatic move"
grep -q "our address 192.0.2.4 is gone; moving IKE SA .* to 192.0.2.5 (MOBIKE)" <<<"$(ctl B log -n 300)" || nsl_die "B's log lacks the address check"
# the address is checked once a second: up to 1 s of datagrams, plus one exchange
[ "$lab" -le 150 ] && [ "$lba" -le 150 ] || nsl_die "too many datagrams lost across the automatic move: A->B $lab, B->A $lba (100/s)"
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping hA -> hB after the automatic move"
ping_ok "$NS_HB" 10.1.0.2 || nsl_die "ping hB -> hA after the automatic move"
pass "address removed under espresso: the daemon moved to 192.0.2.5 by itself, SPIs unchanged, lost A->B $lab, B->A $lba of $COUNT (100/s), ping both ways"

# ---- 4. espresso as the mobile side against strongSwan as the gateway:
# gateway A (espresso, initiator) loses 192.0.2.1 and gets 192.0.2.11; its
# daemon notices and sends UPDATE_SA_ADDRESSES to strongSwan.
# A deletes its IKE SA with B while B still answers (a reload without it)
cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9721"
allow_key_export = true
CONF
grep -q "reloaded" <<<"$(ctl A reload)" || nsl_die "reload A (no connections)"
for _ in $(seq 1 100); do
  [ "$(ctl_field A "len(s.get('ike_sas', []))")" = 0 ] && break
  sleep 0.1
done
[ "$(ctl_field A "len(s.get('ike_sas', []))")" = 0 ] || nsl_die "A's IKE SA with B was not deleted"
nsl_stop "$CTL_B"
nsl_stop "$DP_B"
ip netns exec "$NS_GWA" sysctl -qw net.ipv4.conf.wan.promote_secondaries=1
ip netns exec "$NS_GWB" sysctl -qw net.ipv4.ip_forward=1
SW_MOBIKE=yes SW_LOCAL_ADDRS=%any SW_REMOTE_ADDRS=%any
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=none
sw_start
cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9721"
allow_key_export = true

[[connection]]
name = "gw"
left = "192.0.2.1"
right = "192.0.2.5"
rightid = "192.0.2.2"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
secrets = "sw.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "aes128gcm16"
pfs = false
auto = "start"
CONF
grep -q "reloaded" <<<"$(ctl A reload)" || nsl_die "reload A (part 4)"
ctl_wait_state A gw up 20
[ "$(ctl_field A "s['ike_sas'][0]['mobike']")" = True ] || nsl_die "MOBIKE not negotiated with strongSwan as responder"
read -r gi gr <<<"$(ike_spis)"
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping hA -> hB through strongSwan's gateway: $(swc --list-sas | head -8; ip -n "$NS_GWB" route show table all | grep -v "^local\\|^broadcast\\|fe80\\|ff00" | head; ip netns exec "$NS_GWB" nft list ruleset | head -20; ctl A status | head -12)"
inits0=$(grep -c "IKE_SA_INIT" "$SW_DIR/charon.log" || true)
nsl_log "gateway A (espresso) loses 192.0.2.1, gets 192.0.2.11"
ip -n "$NS_GWA" addr add 192.0.2.11/24 dev wan
ip -n "$NS_GWA" addr del 192.0.2.1/24 dev wan
for _ in $(seq 1 100); do
  [ "$(ctl_field A "s['ike_sas'][0]['local']" 2>/dev/null)" = "192.0.2.11:4500" ] && break
  sleep 0.05
done
[ "$(ctl_field A "s['ike_sas'][0]['local']")" = "192.0.2.11:4500" ] || nsl_die "espresso did not move its IKE SA to 192.0.2.11"
for _ in $(seq 1 60); do
  grep -q "192.0.2.11\[4500\]" <<<"$(swc --list-sas)" && break
  sleep 0.1
done
grep -q "192.0.2.11\[4500\]" <<<"$(swc --list-sas)" || nsl_die "strongSwan did not follow espresso to 192.0.2.11"
grep -q "parsed INFORMATIONAL request [0-9]* \[ N(UPD_SA_ADDR) N(NATD_S_IP) N(NATD_D_IP) N(NO_ADD_ADDR) \]" "$SW_DIR/charon.log" || nsl_die "strongSwan did not parse espresso's UPDATE_SA_ADDRESSES"
read -r gi2 gr2 <<<"$(ike_spis)"
[ "$gi2 $gr2" = "$gi $gr" ] || nsl_die "IKE SPIs changed on espresso's move"
[ "$(grep -c "IKE_SA_INIT" "$SW_DIR/charon.log" || true)" = "$inits0" ] || nsl_die "a new IKE_SA_INIT after espresso's move"
ok=0
for _ in 1 2 3 4 5; do ping_ok "$NS_HA" 10.2.0.2 && ping_ok "$NS_HB" 10.1.0.2 && { ok=1; break; }; sleep 0.5; done
[ "$ok" = 1 ] || nsl_die "no traffic both ways after espresso's move to 192.0.2.11"
pass "espresso as the mobile side: its address went, it sent UPDATE_SA_ADDRESSES from 192.0.2.11, strongSwan's gateway followed (IKE $gi/$gr unchanged, no IKE_SA_INIT), ping both ways"
echo "37_ike_mobike: $passed passed, 0 failed"
