#!/usr/bin/env bash
# IKEv1 (issue 12) through the daemon and the real dataplane against strongSwan
# 5.9.8 (charon + kernel-libipsec, `version = 1` in swanctl) on gateway B;
# espresso (dataplane + daemon) on gateway A.
#   1. espresso initiator (`espresso up`), main mode, phase 1 AES-CBC-128/SHA-1/
#      MODP-2048, ESP AES-CBC-128 + HMAC-SHA-1 with PFS: SAs up on both sides,
#      same SPIs; `status`, `--json`, metrics and `keys` show the ISAKMP SA
#      (version 1, main mode, phase 1 and phase 2 algorithms).
#   2. Numbered UDP datagrams both ways (counted at the receivers) across two
#      quick-mode rekeys: one started by espresso (phase 2 lifetime 20 s,
#      margin 8 s, no fuzz), one by strongSwan (swanctl --rekey): none lost,
#      SPIs changed and both sides agree.
#   3. The WAN capture of a flow is decrypted by tshark with `espresso keys`:
#      every ESP packet's ICV verifies.
#   4. `espresso down`: the delete reaches strongSwan.
#   5. espresso responder: strongSwan initiates main mode, ESP AES-GCM-128;
#      numbered datagrams both ways, none lost; strongSwan's delete.
#   6. Aggressive mode with FQDN IDs: espresso `%any` responder with
#      remote_id = @roadwarrior (the seeds' road-warrior case).
#   7. A mismatched phase 1 proposal, explained in status (offered next to configured).
#   8. Legacy 3DES-MD5-MODP1024 (seed 003's `3DES MD5 2`): reload refused
#      without allow_legacy; with it, a loud warning, and the tunnel works.
#   9. ikev2 = propose: espresso tries IKEv2 first; the IKEv1-only charon
#      refuses, espresso falls back to IKEv1 (as Openswan does).
#  10. DPD: charon killed, espresso's R-U-THERE unanswered: SAs removed.
# Between 2 and 3 (2a): strongSwan rekeys the IPsec SA espresso's own rekey
# made (espresso responder), espresso then rekeys twice by its lifetime:
# numbered datagrams both ways, none lost (the order of a 2026-12-06 failure).
# NAT-T, and rekeys/re-authentications in both directions at 500 datagrams/s
# (strongSwan's ISAKMP re-authentication during numbered datagrams, none
# lost, one ISAKMP SA left on each side, once case 2b here):
# 36_ikev1_natt_reauth.sh.
#
# Earlier runs lost datagrams around strongSwan's re-authentication. One
# cause, reproduced and fixed: espresso's quick-mode rekey could start on the old ISAKMP
# SA just as charon moved its IPsec SAs under the new one; charon ignores a
# quick mode on an SA it re-authenticates (and destroys that SA), espresso
# moved the IPsec SA still marked "rekey in progress" under the new ISAKMP SA,
# where it was never rekeyed and expired (20 s here) with no successor. The
# rekey is now redone under the new ISAKMP SA (control tests:
# rekey_in_flight_during_peer_reauthentication_is_redone). Two earlier
# failures (a gap of more than 4 s at hB right at the re-authentication, no
# drop counted by espresso) did not recur in later runs; a repeat shows up here
# as datagrams missing at the receiver with the charon log kept
# (NSL_KEEP_LOGS=1).
# Seen once (16:15 UTC on 2026-12-06, machine load ~24), analysed from the
# kept logs: espresso's timers ran late all through case 2 (a rekey 2.5 s
# late, two expiries 2.7 s and 3.9 s late) and then not at all for ~12 s, past
# both the rekey time (12 s) and the expiry (20 s) of the IPsec SA espresso had
# just made by rekeying the one strongSwan's rekey had made. It expired with
# no rekey ever started (the quick-mode log of charon shows none), every SA
# was removed (status listed none), and the datagrams met the connection's
# hold policy (policy_discard) until the end of the flow. The rekey order was
# not the cause: control test our_rekey_then_the_peers_then_ours_never_leaves_a_gap
# replays it. An IPsec SA that expires with no rekey started is now replaced
# by a new quick mode at once (an_sa_that_expires_unrekeyed_after_a_stall_is_replaced_at_once),
# so such a stall costs one quick-mode round trip, not the rest of the flow.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
source tests/lib/tshark_esp.sh
source tests/lib/udp_flows.sh
nsl_init ikev1sw
nsl_topo_pair
SW_VERSION=1
sw_setup
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }
ping_ok() { local i; for i in 1 2 3; do [ "$(ctl_ping "$1" "$2" 10)" -ge 9 ] && return 0; done; return 1; }

mkdir -p "$NSL_TMP/A"
( umask 077; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk" )
# write_a IKE ESP START [EXTRA TOML LINES]
write_a() {
  cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9718"
allow_key_export = true

[[connection]]
name = "sw"
version = 1
left = "192.0.2.1"
right = "192.0.2.2"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
secrets = "sw.psk"
ike = "$1"
esp = "$2"
auto = "$3"
${4:-}
CONF
}
write_a "aes128-sha1-modp2048" "aes128-sha1" none $'pfs = true\nlifetime = "20s"\nmargin = "8s"\nrekeyfuzz = "0%"'
sw_write_conf "aes128-sha1-modp2048" "aes128-sha1-modp2048" child.start_action=none
sw_start
ctl_dataplane A
ctl_daemon A

wait_a() { ctl_wait_state A sw "$1" "${2:-20}"; }
# numbered datagrams both ways (tests/lib/udp_flows.sh); receivers wait 4 s
# for stragglers
FLOW_IDLE=4

# ---- 1. espresso initiator, main mode, AES-CBC + SHA-1
ctl_ping "$NS_HA" 10.2.0.2 1 >/dev/null || true
up=$(ctl A up sw)
grep -q "sw: initiating (IKEv1)" <<<"$up" || nsl_die "up sw: $up"
wait_a up
sw_agree || nsl_die "SPIs differ after main mode + quick mode"
ctl A status | tee "$NSL_TMP/status1.txt" | sed -n '1,20p'
grep -Eq "^ike sw: ESTABLISHED initiator .*IKEv1 main mode" "$NSL_TMP/status1.txt" || nsl_die "status: ISAKMP SA line with the mode"
grep -q "AES_CBC-128/HMAC_SHA1_96/PRF_HMAC_SHA1/MODP_2048" <<<"$(swc --list-sas)" || nsl_die "strongSwan's phase 1 algorithms: $(swc --list-sas)"
[ "$(ctl_field A "[x['version'] for x in s['ike_sas']][0]")" = 1 ] || nsl_die "--json: version"
[ "$(ctl_field A "[x['mode'] for x in s['ike_sas']][0]")" = main ] || nsl_die "--json: mode"
p1=$(ctl_field A "s['ike_sas'][0]['proposal']")
p2=$(ctl_field A "s['ike_sas'][0]['children'][0]['proposal']")
nsl_log "phase 1: $p1; phase 2: $p2"
grep -qi "aes.*128" <<<"$p1" && grep -qi "sha1\|sha_1\|sha-1" <<<"$p1" || nsl_die "--json: phase 1 algorithms: $p1"
grep -qi "aes.*128" <<<"$p2" && grep -qi "sha1" <<<"$p2" || nsl_die "--json: phase 2 algorithms: $p2"
m=$(ip netns exec "$NS_GWA" python3 -c 'import urllib.request;print(urllib.request.urlopen("http://127.0.0.1:9718/metrics",timeout=5).read().decode())')
grep -q 'espresso_ike_sa_info{conn="sw",version="1",mode="main",state="ESTABLISHED"' <<<"$m" || nsl_die "metrics: ISAKMP SA"
grep -Eq 'espresso_ikev1_established_total\{sa="ipsec"\} [1-9]' <<<"$m" || nsl_die "metrics: IKEv1 counters"
pass "espresso initiator, IKEv1 main mode AES-CBC-128/SHA-1/MODP-2048 + ESP AES-CBC/SHA-1 with PFS: up on both sides, SPIs match; status/--json/metrics show version 1, main mode, $p1 / $p2"

# ---- 2. numbered datagrams both ways across two quick-mode rekeys
read -r c0_in c0_out <<<"$(sw_our_spis)"
flows_start 1100 0.02 rekey            # 22 s at 50 datagrams/s each way
sleep 3
swc --rekey --child net >"$NSL_TMP/rekey-child.log" 2>&1 || nsl_die "swanctl --rekey --child: $(cat "$NSL_TMP/rekey-child.log")"
sleep 2
read -r c1_in c1_out <<<"$(sw_our_spis)"
[ "$c1_in" != "$c0_in" ] && [ "$c1_out" != "$c0_out" ] || nsl_die "strongSwan's quick-mode rekey did not change espresso's SPIs"
sw_agree || nsl_die "SPIs differ after strongSwan's rekey"
# espresso's own rekey: 12 s after the last child SA (lifetime 20 s - margin 8 s)
for _ in $(seq 1 150); do
  read -r c2_in c2_out <<<"$(sw_our_spis)"
  [ -n "$c2_in" ] && [ "$c2_in" != "$c1_in" ] && break
  sleep 0.1
done
[ "$c2_in" != "$c1_in" ] && [ "$c2_out" != "$c1_out" ] || nsl_die "espresso did not rekey the IPsec SA by its lifetime"
sw_agree || nsl_die "SPIs differ after espresso's rekey"
res=$(flows_check rekey)
echo "$res"
pass "numbered datagrams both ways across a quick-mode rekey by strongSwan ($c0_in -> $c1_in) and one by espresso ($c1_in -> $c2_in): none lost at either receiver ($(tr '\n' ' ' <<<"$res"))"

# ---- 2a. the order of the 16:15 failure: espresso's rekey came last, now
# strongSwan rekeys that SA (espresso responder), espresso rekeys the result
# and then its own SA again by the lifetime, no IPsec SA expiring unreplaced
read -r d0_in _ <<<"$(sw_our_spis)"
flows_start 1400 0.02 order        # 28 s at 50 datagrams/s each way
sleep 1
swc --rekey --child net >"$NSL_TMP/rekey-child2.log" 2>&1 || nsl_die "swanctl --rekey --child: $(cat "$NSL_TMP/rekey-child2.log")"
seq_in=("$d0_in")
for _ in $(seq 1 300); do
  read -r x _ <<<"$(sw_our_spis)"
  [ -n "$x" ] && [[ " ${seq_in[*]} " != *" $x "* ]] && seq_in+=("$x")
  [ "${#seq_in[@]}" -ge 4 ] && break
  sleep 0.1
done
[ "${#seq_in[@]}" -ge 4 ] || nsl_die "after strongSwan's rekey of espresso's SA, espresso did not rekey twice by its lifetime: ${seq_in[*]}"
sw_agree || nsl_die "SPIs differ after the rekeys"
res=$(flows_check order)
pass "strongSwan rekeys the SA espresso's rekey made, espresso rekeys on (${seq_in[*]}): none lost ($(tr '\n' ' ' <<<"$res"))"

# (ISAKMP re-authentication by strongSwan during numbered datagrams both
# ways, none lost, one ISAKMP SA left on each side: 36_ikev1_natt_reauth.sh
# case 2, at 500 datagrams/s and through a NAT; this script's case 2b until
# the CI time cut of issue 9.)

# ---- 3. WAN capture decrypted by tshark with `espresso keys`
# (the IPsec SAs are rekeyed every 12 s here: the keys are exported before
# and after the flow, so that a rekey during it leaves no packet unchecked)
ctl A keys sw >"$NSL_TMP/esp_sa0" || nsl_die "espresso keys sw: $(cat "$NSL_TMP/esp_sa0")"
nsl_bg "$NS_GWB" tcpdump_cbc tcpdump -n -i wan -Q in --immediate-mode -w "$NSL_TMP/cbc.pcap" -U 'udp port 4500 and src host 192.0.2.1'
cap=$NSL_PID
sleep 0.5
flows_start 200 0.005 cap
flows_senders_wait
sleep 0.3
nsl_stop "$cap"
ctl A keys sw >"$NSL_TMP/esp_sa1" || nsl_die "espresso keys sw: $(cat "$NSL_TMP/esp_sa1")"
sort -u "$NSL_TMP/esp_sa0" "$NSL_TMP/esp_sa1" >"$NSL_TMP/esp_sa"
flows_check cap >/dev/null
[ "$(grep -c '^"IPv4"' "$NSL_TMP/esp_sa")" -ge 2 ] || nsl_die "keys: want esp_sa records: $(sed 's/0x[0-9a-f]*/<key>/g' "$NSL_TMP/esp_sa")"
mapfile -t recs < <(tshark_esp_records_from_uat "$NSL_TMP/esp_sa")
res=$(tshark_esp_count_multi "$NSL_TMP/cbc.pcap" "${recs[@]}") || nsl_die "tshark with the exported IKEv1 keys: $res"
total=$(sed -n 's/.*total=\([0-9]*\).*/\1/p' <<<"$res")
[ "$total" -ge 200 ] || nsl_die "too few ESP packets captured: $res"
pass "espresso keys exports the IKEv1 IPsec SAs: tshark verifies every captured ESP packet ($res)"

# ---- 4. espresso's delete
grep -q "sw: down" <<<"$(ctl A down sw)" || nsl_die "down sw"
for _ in $(seq 1 50); do [ "$(sw_ike_count)" = 0 ] && [ -z "$(sw_child_spis)" ] && break; sleep 0.1; done
[ -z "$(sw_child_spis)" ] || nsl_die "strongSwan keeps the IPsec SA after espresso's delete"
wait_a down
[ "$(ctl_field A "len(s.get('ike_sas', []))")" = 0 ] || nsl_die "espresso keeps SAs after down"
pass "espresso down: deletes reach strongSwan, SAs gone on both sides"

# ---- 5. espresso responder, AES-GCM ESP
write_a "aes128-sha1-modp2048" "aes128gcm16" add "pfs = false"
grep -q "reloaded" <<<"$(ctl A reload)" || nsl_die "reload"
sw_write_conf "aes128-sha1-modp2048" "aes128gcm16" child.start_action=none
sw_reload
swc --initiate --child net --timeout 15 >"$NSL_TMP/initiate2.log" 2>&1 || nsl_die "strongSwan initiate: $(tail -5 "$NSL_TMP/initiate2.log")"
wait_a up
sw_agree || nsl_die "SPIs differ (responder)"
ctl_field A "s['ike_sas'][0]['initiator']" | grep -q False || nsl_die "espresso should be the responder"
ctl_field A "t('sw')['suite']" | grep -qi "gcm" || nsl_die "suite not AES-GCM: $(ctl_field A "t('sw')['suite']")"
flows_start 500 0.004 gcm
res=$(flows_check gcm)
pass "espresso responder, main mode + ESP AES-GCM-128: numbered datagrams both ways, none lost ($(tr '\n' ' ' <<<"$res"))"
swc --terminate --ike gw --timeout 10 >/dev/null 2>&1 || nsl_die "strongSwan terminate"
wait_a down
[ "$(ctl_field A "len(s.get('ike_sas', []))")" = 0 ] || nsl_die "espresso keeps SAs after the peer's delete"
pass "strongSwan's delete removes espresso's SAs"

# ---- 6. aggressive mode, FQDN IDs, espresso %any responder
cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9718"
allow_key_export = true

[[connection]]
name = "sw"
ikev2 = "never"
aggrmode = true
left = "192.0.2.1"
right = "%any"
leftid = "@gateway.example"
rightid = "@roadwarrior"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
secrets = "sw.psk"
ike = "aes256-sha256-modp2048"
esp = "aes128gcm16"
pfs = false
auto = "add"
CONF
grep -q "reloaded" <<<"$(ctl A reload)" || nsl_die "reload (aggressive)"
cat >"$SW_DIR/swanctl/swanctl.conf" <<EOF
connections {
    gw {
        version = 1
        aggressive = yes
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = aes256-sha256-modp2048
        local { auth = psk
                id = @roadwarrior }
        remote { auth = psk
                 id = @gateway.example }
        children { net { mode = tunnel
                         local_ts = 10.2.0.0/24
                         remote_ts = 10.1.0.0/24
                         esp_proposals = aes128gcm16
                         start_action = none } }
    }
}
secrets { ike-rw { id-a = @roadwarrior
                   id-b = @gateway.example
                   secret = "$SW_PSK" } }
EOF
sw_reload
swc --initiate --child net --timeout 15 >"$NSL_TMP/initiate3.log" 2>&1 || nsl_die "strongSwan aggressive initiate: $(tail -5 "$NSL_TMP/initiate3.log")"
wait_a up
[ "$(ctl_field A "s['ike_sas'][0]['mode']")" = aggressive ] || nsl_die "--json: mode aggressive"
[ "$(ctl_field A "s['ike_sas'][0]['remote_id']")" = "roadwarrior" ] || [ "$(ctl_field A "s['ike_sas'][0]['remote_id']")" = "@roadwarrior" ] || nsl_die "peer id: $(ctl_field A "s['ike_sas'][0]['remote_id']")"
ctl A status | grep -q "IKEv1 aggressive mode" || nsl_die "status: aggressive mode"
sw_agree || nsl_die "SPIs differ (aggressive)"
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping through the aggressive-mode tunnel"
pass "aggressive mode, FQDN IDs (@roadwarrior -> %any responder): up, SPIs match, traffic flows"
swc --terminate --ike gw --timeout 10 >/dev/null 2>&1 || true
wait_a down

# ---- 7. a mismatched proposal, explained
sed -i 's/proposals = aes256-sha256-modp2048/proposals = aes128-sha512-modp3072/' "$SW_DIR/swanctl/swanctl.conf"
sw_reload
swc --initiate --child net --timeout 8 >"$NSL_TMP/initiate4.log" 2>&1 && nsl_die "mismatched initiate succeeded"
for _ in $(seq 1 30); do ctl_field A "' | '.join(s['ike']['notes'])" | grep -q "NO_PROPOSAL" && break; sleep 0.1; done
note=$(ctl_field A "' | '.join(s['ike']['notes'])")
echo "$note" | tr '|' '\n' | grep NO_PROPOSAL | head -2
grep -q "NO_PROPOSAL_CHOSEN" <<<"$note" && grep -qi "offered" <<<"$note" && grep -qi "configured" <<<"$note" || nsl_die "status notes lack the explained mismatch: $note"
pass "mismatched phase 1 proposal explained in status (offered next to configured)"

# ---- 8. legacy proposals (seed 003: `3DES MD5 2`)
write_a "3DES MD5 2" "3des-md5" none "pfs = false"
r=$(ctl A reload 2>&1) && nsl_die "reload with 3DES-MD5-MODP1024 and no allow_legacy accepted: $r"
grep -q "allow_legacy" <<<"$r" || nsl_die "legacy refusal does not name allow_legacy: $r"
write_a "3DES MD5 2" "3des-md5" none $'pfs = false\nallow_legacy = true'
r=$(ctl A reload 2>&1) || nsl_die "reload with allow_legacy: $r"
grep -q "LEGACY" <<<"$r$(ctl A log -n 100)" || nsl_die "no loud warning for the legacy proposal: $r"
sw_write_conf "3des-md5-modp1024" "3des-md5" child.start_action=none
sw_reload
grep -q "initiating" <<<"$(ctl A up sw)" || nsl_die "up sw (legacy)"
wait_a up
grep -q "3DES_CBC/HMAC_MD5_96/PRF_HMAC_MD5/MODP_1024" <<<"$(swc --list-sas)" || nsl_die "strongSwan's phase 1 algorithms (legacy): $(swc --list-sas)"
sw_agree || nsl_die "SPIs differ (legacy)"
flows_start 300 0.005 legacy
res=$(flows_check legacy)
pass "legacy 3DES-MD5-MODP1024 refused without allow_legacy, accepted with it (warning), tunnel carries numbered datagrams both ways, none lost ($(tr '\n' ' ' <<<"$res"))"
ctl A down sw >/dev/null
wait_a down

# ---- 9. ikev2 = propose: IKEv2 first, IKEv1 when the peer refuses
write_a "aes128-sha256-modp2048" "aes128gcm16" none $'pfs = false\nikev2 = "propose"'
sed -i '/^version = 1$/d' "$NSL_TMP/A/espresso.toml"
r=$(ctl A reload 2>&1) || nsl_die "reload (propose): $r"
sw_write_conf "aes128-sha256-modp2048" "aes128gcm16" child.start_action=none
sw_reload
up=$(ctl A up sw)
grep -q "initiating" <<<"$up" && ! grep -q "IKEv1" <<<"$up" || nsl_die "up with propose should start IKEv2: $up"
wait_a up 30
grep -q "falling back to IKEv1" <<<"$(ctl A log -n 200)" || nsl_die "log lacks the fallback"
[ "$(ctl_field A "[x['version'] for x in s['ike_sas'] if x['state']=='ESTABLISHED'][0]")" = 1 ] || nsl_die "fallback SA is not IKEv1"
sw_agree || nsl_die "SPIs differ (fallback)"
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping through the fallback tunnel"
pass "ikev2 = propose: IKEv2 refused by the IKEv1-only peer, fell back to IKEv1 main mode, traffic flows"
ctl A down sw >/dev/null
wait_a down

# ---- 10. DPD against a killed charon (espresso initiator again)
write_a "aes128-sha1-modp2048" "aes128gcm16" none $'pfs = false\ndpd_delay = "2s"\ndpd_timeout = "6s"\ndpd_action = "clear"'
grep -q "reloaded" <<<"$(ctl A reload)" || nsl_die "reload (dpd)"
sw_write_conf "aes128-sha1-modp2048" "aes128gcm16" child.start_action=none dpd_delay=2s
sw_reload
grep -q "initiating" <<<"$(ctl A up sw)" || nsl_die "up sw (dpd)"
wait_a up
kill -KILL "$SW_PID"
wait "$SW_PID" 2>/dev/null || true
SW_PID=""
for _ in $(seq 1 300); do
  ctl_field A "' | '.join(s['ike']['notes'])" | grep -q "dead" && break
  sleep 0.1
done
ctl_field A "' | '.join(s['ike']['notes'])" | grep -q "dpd action clear" || nsl_die "DPD did not declare the peer dead: $(ctl_field A "s['ike']['notes']")"
[ "$(ctl_field A "t('sw')['state']")" != up ] || nsl_die "tunnel still up with a dead peer"
[ "$(ctl_field A "len(s.get('ike_sas', []))")" = 0 ] || nsl_die "SAs left after DPD clear"
pass "DPD: killed charon detected by R-U-THERE, SAs removed (action clear)"

echo "35_ikev1_strongswan: $passed passed, 0 failed"
