#!/usr/bin/env bash
# IKEv2 interop with strongSwan 5.9.8 (charon + kernel-libipsec, an
# implementation we did not write). Gateway A runs espresso (dataplane +
# daemon with a [[connection]]), gateway B runs charon.
#   1. espresso initiates (`espresso up`), AES-GCM-128 (IKE aes128gcm16-prfsha256-ecp256,
#      ESP aes128gcm16): both sides show the same child SPIs, ping both ways and a
#      1 MiB TCP echo pass, the dataplane counts the packets; `espresso down` deletes
#      the SAs on strongSwan too. A killed and restarted dataplane gets the SAs
#      again from the daemon, which rekeys the child.
#   2. strongSwan initiates, espresso responds (right = %any, a road-warrior
#      responder), AES-CBC-128 + HMAC-SHA-256-128 (seeds' proposal form on our side): traffic passes; strongSwan deletes, espresso removes
#      the SAs and traffic stops.
#   3. strongSwan offers only proposals we do not accept: espresso's status and log
#      show NO_PROPOSAL_CHOSEN with what the peer offered next to what is configured.
#   4. start = trap (on-demand): a ping to the remote subnet raises an acquire in
#      the dataplane, espresso initiates, and the tunnel then carries the traffic.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/tcp_echo.sh
source tests/lib/strongswan.sh
source tests/lib/tshark_esp.sh
nsl_init ikesw
nsl_topo_pair
sw_setup
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }

mkdir -p "$NSL_TMP/A"
( umask 077; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk" )
# write_a IKE ESP START [REMOTE]: espresso's configuration on gateway A.
write_a() {
  cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9716"
allow_key_export = true

[[connection]]
name = "sw"
left = "192.0.2.1"
right = "${4:-192.0.2.2}"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
secrets = "sw.psk"
ike = "$1"
esp = "$2"
pfs = false
auto = "$3"
CONF
}
write_a "aes128gcm16-prfsha256-ecp256" "aes128gcm16" none
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=none
sw_start
ctl_dataplane A
ctl_daemon A

# wait_a STATE [SECONDS]: connection sw on A reaches STATE.
wait_a() { ctl_wait_state A sw "$1" "${2:-20}"; }
ping_ok() { local i; for i in 1 2 3; do [ "$(ctl_ping "$1" "$2" 10)" -ge 9 ] && return 0; done; return 1; }
traffic_checks() {
  ping_ok "$NS_HA" 10.2.0.2 || nsl_die "$1: ping hA -> hB"
  ping_ok "$NS_HB" 10.1.0.2 || nsl_die "$1: ping hB -> hA"
  tcp_echo "$NS_HB" "$NS_HA" 10.2.0.2 1048576 || nsl_die "$1: TCP echo hA -> hB"
  local o i
  o=$(ctl_field A "t('sw')['outbound']['packets']")
  i=$(ctl_field A "t('sw')['inbound']['packets']")
  [ "$o" -ge 200 ] && [ "$i" -ge 200 ] || nsl_die "$1: dataplane SA counters too low (out $o, in $i)"
  echo "$o $i"
}

# ---- 1. espresso initiates, AES-GCM-128
grep -q "sw: initiating" <<<"$(ctl A up sw)" || nsl_die "up sw"
wait_a up
read -r ours_in ours_out <<<"$(sw_our_spis)"
read -r sw_in sw_out <<<"$(sw_child_spis)"
[ -n "${sw_in:-}" ] || nsl_die "strongSwan has no installed child SA"
[ "$ours_in" = "$sw_out" ] && [ "$ours_out" = "$sw_in" ] ||
  nsl_die "SPIs differ: ours in/out $ours_in/$ours_out, strongSwan in/out $sw_in/$sw_out"
ctl A status | tee "$NSL_TMP/status1.txt" | sed -n '1,20p'
grep -Eq "^sw +up +192.0.2.1 -> 192.0.2.2 +$(printf "%#x" "0x$ours_in")/$(printf "%#x" "0x$ours_out") +aes128gcm16" "$NSL_TMP/status1.txt" ||
  nsl_die "status table row of sw"
grep -q "ike sw: ESTABLISHED initiator" "$NSL_TMP/status1.txt" || nsl_die "status: IKE SA line"
grep -q "AES_GCM_16-128/PRF_HMAC_SHA2_256/ECP_256" <<<"$(swc --list-sas)" || nsl_die "strongSwan's IKE algorithms"
pass "espresso initiator, AES-GCM-128: IKE SA and child SA up on both sides, SPIs in $ours_in out $ours_out match strongSwan's"
nsl_bg "$NS_GWB" tcpdump_gcm tcpdump -n -i wan -Q in --immediate-mode -w "$NSL_TMP/gcm.pcap" -U 'udp port 4500 and src host 192.0.2.1'
capg=$NSL_PID
sleep 0.5
read -r o i <<<"$(traffic_checks gcm)"
pass "ping both ways and 1 MiB TCP echo through the tunnel (dataplane: $o packets out, $i in)"
sleep 0.3
nsl_stop "$capg"
# The child SA's keys, exported by espresso, let tshark check what gwA sent.
ctl A keys sw >"$NSL_TMP/esp_sa" || nsl_die "espresso keys sw: $(cat "$NSL_TMP/esp_sa")"
[ "$(grep -c '^"IPv4"' "$NSL_TMP/esp_sa")" = 2 ] || nsl_die "keys: want 2 esp_sa records: $(sed 's/0x[0-9a-f]*/<key>/g' "$NSL_TMP/esp_sa")"
mapfile -t recs < <(tshark_esp_records_from_uat "$NSL_TMP/esp_sa")
res=$(tshark_esp_count_multi "$NSL_TMP/gcm.pcap" "${recs[@]}") || nsl_die "tshark with the exported IKE keys: $res"
total=$(sed -n 's/.*total=\([0-9]*\).*/\1/p' <<<"$res")
[ "$total" -ge 100 ] || nsl_die "too few ESP packets captured: $res"
pass "espresso keys exports the IKE child SA: tshark verifies every captured ESP packet ($res)"
m=$(ctl_metrics A 2>/dev/null || ip netns exec "$NS_GWA" python3 -c 'import urllib.request;print(urllib.request.urlopen("http://127.0.0.1:9716/metrics",timeout=5).read().decode())')
grep -q "espresso_ike_child_sa_info{conn=\"sw\",state=\"INSTALLED\",spi_in=\"$(printf "%#x" "0x$ours_in")\"" <<<"$m" || nsl_die "metrics: child SA"
grep -q "espresso_tunnel_packets_total{tunnel=\"sw\",direction=\"out\"} [1-9]" <<<"$m" || nsl_die "metrics: packets of sw"
pass "Prometheus metrics show the IKE and child SA with counters"

# The dataplane dies and comes back: the daemon installs the IKE SAs again
# (outbound sequence numbers above what the old process may have sent) and
# rekeys the child so that no sequence number is reused under a key.
seq_before=$(ctl_field A "t('sw')['outbound']['seq']")
kill -9 "$DP_A"
wait "$DP_A" 2>/dev/null || true
ctl_dataplane A
for _ in $(seq 1 100); do
  read -r n_in n_out <<<"$(sw_our_spis)"
  [ "$n_in" != "$ours_in" ] && [ "$n_out" != "$ours_out" ] && break
  sleep 0.1
done
[ "$n_in" != "$ours_in" ] && [ "$n_out" != "$ours_out" ] || nsl_die "no child rekey after the dataplane restart"
ctl_wait_state A sw up 10
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping after the dataplane restart"
grep -q "IKE: .* installed again in the new dataplane" <<<"$(ctl A log -n 300)" || nsl_die "log lacks the reinstall"
pass "dataplane restart: IKE SAs reinstalled, child rekeyed ($ours_in/$ours_out -> $n_in/$n_out, old outbound had reached seq $seq_before), traffic flows"

grep -q "sw: down" <<<"$(ctl A down sw)" || nsl_die "down sw"
for _ in $(seq 1 50); do [ "$(sw_ike_count)" = 0 ] && break; sleep 0.1; done
[ "$(sw_ike_count)" = 0 ] || nsl_die "strongSwan still has the IKE SA after espresso's delete"
wait_a down
[ "$(ctl_field A "len(s.get('ike_sas', []))")" = 0 ] || nsl_die "espresso keeps IKE SAs after down"
pass "espresso's delete removes the SAs on both sides"
# A connection that is down holds its traffic (discard policy), as manual
# tunnels do: nothing for 10.2.0.0/24 leaves gwA in the clear (captured
# where it arrives, on gwB: the dataplane sends past the qdisc, unseen by a
# capture on gwA).
disc0=$(ctl_field A "sum(w['drops_by_reason'].get('policy_discard',0) for w in s['workers'])")
nsl_bg "$NS_GWB" tcpdump_down tcpdump -n -i wan -Q in --immediate-mode -w "$NSL_TMP/down.pcap" -U 'net 10.2.0.0/24'
capd=$NSL_PID
sleep 0.5
nsl_x "$NS_HA" ping -c 5 -i 0.1 -W 1 10.2.0.2 >/dev/null 2>&1 && nsl_die "ping passed while the connection is down"
sleep 0.3
nsl_stop "$capd"
clear=$(tcpdump -n -r "$NSL_TMP/down.pcap" 2>/dev/null | wc -l)
[ "$clear" -eq 0 ] || nsl_die "$clear cleartext packets for the remote subnet on the WAN while down"
disc1=$(ctl_field A "sum(w['drops_by_reason'].get('policy_discard',0) for w in s['workers'])")
[ "$disc1" -ge $((disc0 + 5)) ] || nsl_die "held traffic not counted as policy_discard ($disc0 -> $disc1)"
pass "down holds the connection's traffic: no cleartext on the WAN, $((disc1 - disc0)) policy_discard drops"

# ---- 2. strongSwan initiates, espresso responds, AES-CBC-128 + HMAC-SHA-256
write_a "AES SHA2_256 19, aes128-sha256-ecp256" "aes128-sha256" add %any
grep -q "reloaded" <<<"$(ctl A reload)" || nsl_die "reload"
sw_write_conf "aes128-sha256-ecp256" "aes128-sha256" child.start_action=none
sw_reload
swc --initiate --child net --timeout 15 >"$NSL_TMP/initiate2.log" 2>&1 || nsl_die "strongSwan initiate: $(tail -5 "$NSL_TMP/initiate2.log")"
wait_a up
ctl_field A "t('sw')['suite']" | grep -q "aes128-sha256" || nsl_die "suite not aes128-sha256: $(ctl_field A "t('sw')['suite']")"
ctl_field A "s['ike_sas'][0]['initiator']" | grep -q False || nsl_die "espresso should be the responder"
read -r ours_in ours_out <<<"$(sw_our_spis)"
read -r sw_in sw_out <<<"$(sw_child_spis)"
[ "$ours_in" = "$sw_out" ] && [ "$ours_out" = "$sw_in" ] || nsl_die "SPIs differ (responder)"
grep -q "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256" <<<"$(swc --list-sas)" || nsl_die "strongSwan's IKE algorithms (CBC)"
pass "espresso responder (right = %any), AES-CBC-128 + HMAC-SHA-256-128: SAs up, SPIs match"
read -r o i <<<"$(traffic_checks cbc)"
pass "ping both ways and 1 MiB TCP echo through the CBC tunnel ($o out, $i in)"
swc --terminate --ike gw --timeout 10 >/dev/null 2>&1 || nsl_die "strongSwan terminate"
wait_a down
[ "$(ctl_field A "len(s.get('ike_sas', []))")" = 0 ] || nsl_die "espresso keeps IKE SAs after the peer's delete"
pass "strongSwan's delete removes espresso's SAs"

# ---- 3. proposal mismatch: the peer offers what we do not accept
sw_write_conf "aes256-sha512-modp3072" "aes256-sha512" child.start_action=none
sw_reload
swc --initiate --child net --timeout 8 >"$NSL_TMP/initiate3.log" 2>&1 && nsl_die "strongSwan's mismatched initiate succeeded"
grep -qi "NO_PROPOSAL_CHOSEN" "$NSL_TMP/sw/charon.log" || nsl_die "strongSwan did not get NO_PROPOSAL_CHOSEN"
st=$(ctl A status)
echo "$st" | grep "NO_PROPOSAL" | head -3
note=$(ctl_field A "' | '.join(s['ike']['notes'])")
grep -q "NO_PROPOSAL_CHOSEN" <<<"$note" || nsl_die "status notes lack NO_PROPOSAL_CHOSEN: $note"
grep -qi "offered \[.*AES_CBC_256.*\]" <<<"$note" || grep -qi "offered \[.*aes256.*\]" <<<"$note" || nsl_die "status does not show what the peer offered: $note"
grep -qi "configured \[.*aes128.*\]" <<<"$note" || nsl_die "status does not show what is configured: $note"
grep -q "NO_PROPOSAL_CHOSEN" <<<"$(ctl A log -n 200)" || nsl_die "log lacks NO_PROPOSAL_CHOSEN"
pass "mismatched proposal: NO_PROPOSAL_CHOSEN with the peer's offer next to ours in status and log"

# ---- 4. start = trap: the first packet to the remote subnet starts the negotiation
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=none
sw_reload
write_a "aes128gcm16-prfsha256-ecp256" "aes128gcm16" trap
grep -q "reloaded" <<<"$(ctl A reload)" || nsl_die "reload (trap)"
[ "$(ctl_field A "len(s.get('ike_sas', []))")" = 0 ] || nsl_die "trap connection negotiated before any traffic"
ctl_ping "$NS_HA" 10.2.0.2 3 >/dev/null || true
wait_a up 15
[ "$(ctl_field A "s['ike_sas'][0]['initiator']")" = True ] || nsl_die "trap: espresso should have initiated"
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping after the acquire"
grep -q "acquire: 10.1.0.2 -> 10.2.0.2" <<<"$(ctl A log -n 300)" || nsl_die "log lacks the acquire"
pass "start = trap: traffic to 10.2.0.0/24 raised an acquire, espresso negotiated and the tunnel carries it"

echo "30_ike_strongswan: $passed passed, 0 failed"
