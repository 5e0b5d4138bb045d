#!/usr/bin/env bash
# IKEv2 rekeying and dead peer detection against strongSwan 5.9.8 (charon +
# kernel-libipsec) on gateway B; espresso (dataplane + daemon) on gateway A.
#   1. start = "start": espresso initiates on its own when the daemon starts
#      (AES-GCM-128, PFS with ECP-256 on rekeys).
#   2. During a ping flood (every 50 ms, 34 s) and an iperf3 TCP flow, four rekeys happen: a child rekey
#      started by espresso (its lifetime 24 s, margin 12 s, no fuzz), a child rekey
#      started by strongSwan (swanctl --rekey), an IKE rekey started by espresso
#      (ike_lifetime 40 s) and one started by strongSwan. Every ping must be
#      answered (make-before-break: new inbound SA first, old one drained), espresso
#      drops no ESP packet of the iperf3 flow (no unknown SPI, ICV, replay), the child
#      SPIs and IKE SPIs must have changed, and both sides must agree on them.
#   4. (at the end) the daemon is killed -9 and restarted: traffic flows
#      meanwhile, the new daemon clears the stale SAs and negotiates again.
#   3. DPD: charon is killed; espresso's liveness checks go unanswered, the DPD
#      action (restart) removes the SAs and initiates again; once charon runs
#      again the tunnel comes back up without operator action.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
nsl_init ikerk
nsl_topo_pair
sw_setup
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }
# ping_ok NS ADDR: 9 of 10 replies in one of three rounds (right after a fresh
# setup the first round can lose a packet or two on the strongSwan side).
ping_ok() { local i; for i in 1 2 3; do [ "$(ctl_ping "$1" "$2" 10)" -ge 9 ] && return 0; done; return 1; }

mkdir -p "$NSL_TMP/A"
( umask 077; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk" )
cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9717"

[[connection]]
name = "sw"
local = "192.0.2.1"
remote = "192.0.2.2"
local_id = "192.0.2.1"
remote_id = "192.0.2.2"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.2.0.0/24"]
secrets = "sw.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "aes128gcm16-ecp256"
pfs = true
lifetime = "24s"
ike_lifetime = "40s"
margin = "12s"
rekeyfuzz = "0%"
dpd_delay = "2s"
dpd_timeout = "6s"
dpd_action = "restart"
start = "start"
CONF
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16-ecp256" child.start_action=none
sw_start
ctl_dataplane A
ctl_daemon A

ctl_wait_state A sw up 20
pass "start = start: espresso initiated by itself, tunnel up"
child_spis() { ctl_field A "'%08x %08x' % (t('sw')['inbound']['spi'], t('sw')['outbound']['spi'])"; }
ike_spis() { ctl_field A "' '.join(x['spi_i']+x['spi_r'] for x in s['ike_sas'] if x['state']=='ESTABLISHED')"; }
read -r c0_in c0_out <<<"$(child_spis)"
ike0=$(ike_spis)
sw_agree || nsl_die "SPIs differ before the rekeys"

# ---- rekeys under a ping flood
ctl_ping "$NS_HA" 10.2.0.2 3 >/dev/null || true   # ARP warm-up
# ESP drops on espresso's side before the rekeys (a packet lost to a rekey
# would show here: unknown_spi, icv_mismatch, replayed, outside_window).
esp_drops() {
  ctl_field A "sum(w['drops_by_reason'].get(r,0) for w in s['workers'] for r in ('unknown_spi','icv_mismatch','replayed','outside_window','no_sa'))"
}
drops0=$(esp_drops)
# An iperf3 TCP flow (30 Mbit/s, 34 s) runs through all four rekeys next to
# the ping flood.
iport=$(( 5201 + RANDOM % 1000 ))
nsl_bg "$NS_HB" iperf3s iperf3 -s -1 -B 10.2.0.2 -p "$iport"
isrv=$NSL_PID
sleep 0.5
nsl_bg "$NS_HA" iperf3c iperf3 -c 10.2.0.2 -p "$iport" -t 34 -b 30M -J
icli=$NSL_PID
nsl_bg "$NS_HA" flood ping -i 0.05 -c 680 -W 2 10.2.0.2
flood=$NSL_PID
t0=$(date +%s)
waitfor() { local d=$(( $1 - ($(date +%s) - t0) )); [ "$d" -gt 0 ] && sleep "$d"; true; }
waitfor 16
read -r c1_in c1_out <<<"$(child_spis)"
[ "$c1_in" != "$c0_in" ] && [ "$c1_out" != "$c0_out" ] || nsl_die "espresso did not rekey the child SA (SPIs $c0_in/$c0_out)"
sw_agree || nsl_die "SPIs differ after espresso's child rekey"
pass "child rekey by espresso: SPIs $c0_in/$c0_out -> $c1_in/$c1_out, strongSwan agrees"
swc --rekey --child net >"$NSL_TMP/rekey-child.log" 2>&1 || nsl_die "swanctl --rekey --child: $(cat "$NSL_TMP/rekey-child.log")"
sleep 2
read -r c2_in c2_out <<<"$(child_spis)"
[ "$c2_in" != "$c1_in" ] && [ "$c2_out" != "$c1_out" ] || nsl_die "strongSwan's child rekey did not change espresso's SPIs"
sw_agree || nsl_die "SPIs differ after strongSwan's child rekey"
pass "child rekey by strongSwan: SPIs $c1_in/$c1_out -> $c2_in/$c2_out"
waitfor 31
ike1=$(ike_spis)
[ -n "$ike1" ] && [ "$ike1" != "$ike0" ] || nsl_die "espresso did not rekey the IKE SA ($ike0 -> $ike1)"
pass "IKE rekey by espresso: $ike0 -> $ike1"
swc --rekey --ike gw >"$NSL_TMP/rekey-ike.log" 2>&1 || nsl_die "swanctl --rekey --ike: $(cat "$NSL_TMP/rekey-ike.log")"
sleep 2
ike2=$(ike_spis)
[ -n "$ike2" ] && [ "$ike2" != "$ike1" ] || nsl_die "strongSwan's IKE rekey not seen by espresso ($ike1 -> $ike2)"
[ "$(ctl_field A "len(s['ike_sas'])")" = 1 ] || nsl_die "old IKE SAs left: $(ctl_field A "[x['state'] for x in s['ike_sas']]")"
pass "IKE rekey by strongSwan: $ike1 -> $ike2, the old IKE SA is gone"
wait "$flood" 2>/dev/null || true
res=$(grep -E "packets transmitted" "$NSL_TMP/flood.log" || true)
echo "$res"
grep -q "680 packets transmitted, 680 received, 0% packet loss" <<<"$res" || nsl_die "packets lost across the rekeys: $res"
sw_agree || nsl_die "SPIs differ at the end"
ctl_wait_state A sw up 5
[ "$(ctl_ping "$NS_HA" 10.2.0.2 5)" -ge 4 ] || nsl_die "ping after the rekeys"
pass "680 pings every 50 ms across 2 child and 2 IKE rekeys: 0% loss"
wait "$icli" 2>/dev/null || nsl_die "iperf3 across the rekeys failed: $(tail -5 "$NSL_TMP/iperf3c.log")"
nsl_stop "$isrv"
read -r ibytes iretr <<<"$(python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["end"]; print(e["sum_received"]["bytes"], e["sum_sent"].get("retransmits", 0))' "$NSL_TMP/iperf3c.log")"
[ "$ibytes" -ge 50000000 ] || nsl_die "iperf3 carried only $ibytes bytes across the rekeys"
drops1=$(esp_drops)
[ "$drops1" -eq "$drops0" ] || nsl_die "espresso dropped $((drops1 - drops0)) ESP packets across the rekeys (unknown SPI, ICV, replay, no SA)"
pass "iperf3 TCP flow across the 4 rekeys: $ibytes bytes received, no ESP packet dropped by espresso ($iretr TCP retransmits)"

diag() {
  ip -n "$NS_GWB" route show table 220 >&2 || true
  swc --list-sas >&2 || true
  ctl A status >&2 || true
}

# ---- DPD: strongSwan dies
kill -KILL "$SW_PID"
wait "$SW_PID" 2>/dev/null || true
SW_PID=""
for _ in $(seq 1 200); do
  ctl_field A "' | '.join(s['ike']['notes'])" | grep -q "dead" && break
  sleep 0.1
done
ctl_field A "' | '.join(s['ike']['notes'])" | grep -q "dpd action restart" || nsl_die "DPD did not declare the peer dead: $(ctl_field A "s['ike']['notes']")"
[ "$(ctl_field A "t('sw')['state']")" != up ] || nsl_die "tunnel still up with a dead peer"
[ "$(ctl_field A "len([x for x in s['ike_sas'] if x['state']=='ESTABLISHED'])")" = 0 ] || nsl_die "established IKE SA left after DPD"
grep -q "dpd action Restart" <<<"$(ctl A log -n 200)" || nsl_die "log lacks the DPD action"
pass "DPD: killed charon detected, SAs removed, restart action applied"
sw_start
ctl_wait_state A sw up 40
ping_ok "$NS_HA" 10.2.0.2 || { diag; nsl_die "ping after the DPD restart"; }
sw_agree || nsl_die "SPIs differ after the DPD restart"
pass "restart: tunnel re-established with the new charon, traffic flows"

# ---- the control daemon is killed and restarted: the dataplane keeps
# forwarding meanwhile; the new daemon removes the SAs of IKE SAs it does not
# know and negotiates afresh (start = start, INITIAL_CONTACT makes strongSwan
# drop the old IKE SA).
read -r k_in k_out <<<"$(child_spis)"
kill -9 "$CTL_A"
wait "$CTL_A" 2>/dev/null || true
ping_ok "$NS_HA" 10.2.0.2 || { diag; nsl_die "traffic stopped while the daemon was down"; }
ctl_daemon A
ctl_wait_state A sw up 20
read -r r_in r_out <<<"$(child_spis)"
[ "$r_in" != "$k_in" ] || nsl_die "no new child SA after the daemon restart"
sw_agree || nsl_die "SPIs differ after the daemon restart"
for _ in $(seq 1 30); do [ "$(sw_ike_count)" = 1 ] && break; sleep 0.1; done
[ "$(sw_ike_count)" = 1 ] || nsl_die "strongSwan keeps $(sw_ike_count) IKE SAs (INITIAL_CONTACT should replace the old)"
ping_ok "$NS_HA" 10.2.0.2 || { diag; nsl_die "ping after the daemon restart"; }
grep -q "removed 2 SA(s) of IKE SAs of the previous control process" "$NSL_TMP"/ctlA_*.log || nsl_die "restarted daemon did not remove the stale SAs"
pass "daemon killed: traffic kept flowing; restarted daemon removed the stale SAs and negotiated anew ($k_in -> $r_in)"

echo "31_ike_rekey_dpd: $passed passed, 0 failed"
