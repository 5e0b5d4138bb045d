#!/usr/bin/env bash
# IKEv2 over IPv6 against strongSwan 5.9.8 (charon + kernel-libipsec): the
# gateways talk IKE and ESP between fd00:ff::1 (espresso, gateway A) and
# fd00:ff::2 (charon, gateway B), the daemon on its IPv6 sockets.
# (kernel-libipsec makes charon fake a NAT, so ESP travels in UDP 4500 as in
# 30_ike_strongswan; the capture takes ESP in either form.)
#   1. espresso initiates, inner IPv4 (10.1.0.0/24 <-> 10.2.0.0/24), IKE
#      aes128gcm16-prfsha256-ecp256: SAs up with IPv6 endpoints on both
#      sides, SPIs equal, ping both ways, the WAN capture (IPv6 outer)
#      decrypted by tshark with the keys espresso exports.
#   2. strongSwan initiates, espresso responds, inner IPv6 (fd00:1::/64 <->
#      fd00:2::/64), IKE chacha20poly1305-prfsha512-curve25519: the same checks.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
source tests/lib/tshark_esp.sh
nsl_init ikev6
nsl_topo_pair
sw_setup
ip netns exec "$NS_GWB" sysctl -qw net.ipv6.conf.all.forwarding=1
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }

mkdir -p "$NSL_TMP/A"
( umask 077; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk" )
# write_a IKE ESP START LOCAL_SUBNET REMOTE_SUBNET
write_a() {
  cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9718"
allow_key_export = true

[[connection]]
name = "sw"
left = "fd00:ff::1"
right = "fd00:ff::2"
leftsubnet = "$4"
rightsubnet = "$5"
secrets = "sw.psk"
ike = "$1"
esp = "$2"
pfs = false
auto = "$3"
CONF
}
# write_b IKE ESP LOCAL_TS REMOTE_TS: charon's connection on gateway B.
write_b() {
  cat >"$SW_DIR/swanctl/swanctl.conf" <<EOF
connections {
    gw {
        version = 2
        local_addrs = fd00:ff::2
        remote_addrs = fd00:ff::1
        proposals = $1
        mobike = no
        local {
            auth = psk
            id = fd00:ff::2
        }
        remote {
            auth = psk
            id = fd00:ff::1
        }
        children {
            net {
                mode = tunnel
                local_ts = $3
                remote_ts = $4
                esp_proposals = $2
                start_action = none
            }
        }
    }
}
secrets {
    ike-gw {
        id-a = fd00:ff::1
        id-b = fd00:ff::2
        secret = "$SW_PSK"
    }
}
EOF
}
ping_ok() { local i; for i in 1 2 3; do [ "$(ctl_ping "$1" "$2" 10)" -ge 9 ] && return 0; done; return 1; }
# check NAME DST_FROM_A DST_FROM_B: SPIs equal, IPv6 endpoints, ping both
# ways with a WAN capture that tshark decrypts with espresso's keys.
check() {
  local ours_in ours_out sw_in sw_out
  read -r ours_in ours_out <<<"$(sw_our_spis)"
  read -r sw_in sw_out <<<"$(sw_child_spis)"
  [ -n "${sw_in:-}" ] || nsl_die "$1: strongSwan has no installed child SA"
  [ "$ours_in" = "$sw_out" ] && [ "$ours_out" = "$sw_in" ] ||
    nsl_die "$1: SPIs differ: ours in/out $ours_in/$ours_out, strongSwan in/out $sw_in/$sw_out"
  [ "$(ctl_field A "s['ike_sas'][0]['remote']")" = "[fd00:ff::2]:500" ] ||
    [ "$(ctl_field A "s['ike_sas'][0]['remote']")" = "[fd00:ff::2]:4500" ] ||
    nsl_die "$1: espresso's IKE SA is not with [fd00:ff::2]: $(ctl_field A "s['ike_sas'][0]['remote']")"
  swc --list-sas | grep -q "remote 'fd00:ff::1' @ fd00:ff::1\[" ||
    nsl_die "$1: strongSwan's IKE SA is not over IPv6: $(swc --list-sas)"
  nsl_bg "$NS_GWB" "tcpdump_$1" tcpdump -n -i wan -Q in --immediate-mode -w "$NSL_TMP/$1.pcap" -U '(esp or udp port 4500) and src host fd00:ff::1'
  local cap=$NSL_PID
  sleep 0.5
  ping_ok "$NS_HA" "$2" || nsl_die "$1: ping hA -> $2"
  ping_ok "$NS_HB" "$3" || nsl_die "$1: ping hB -> $3"
  sleep 0.3
  nsl_stop "$cap"
  local o i
  o=$(ctl_field A "t('sw')['outbound']['packets']")
  i=$(ctl_field A "t('sw')['inbound']['packets']")
  [ "$o" -ge 20 ] && [ "$i" -ge 20 ] || nsl_die "$1: dataplane SA counters too low (out $o, in $i)"
  ctl A keys sw >"$NSL_TMP/$1.esp_sa" || nsl_die "$1: espresso keys"
  grep -q '^"IPv6"' "$NSL_TMP/$1.esp_sa" || nsl_die "$1: exported SAs are not IPv6: $(sed 's/0x[0-9a-f]*/<key>/g' "$NSL_TMP/$1.esp_sa")"
  mapfile -t recs < <(tshark_esp_records_from_uat "$NSL_TMP/$1.esp_sa")
  local res
  res=$(tshark_esp_count_multi "$NSL_TMP/$1.pcap" "${recs[@]}") || nsl_die "$1: tshark: $res"
  [ "$(sed -n 's/.*total=\([0-9]*\).*/\1/p' <<<"$res")" -ge 10 ] || nsl_die "$1: too few ESP packets: $res"
  echo "SPIs $ours_in/$ours_out, dataplane $o out $i in, tshark $res"
}

# ---- 1. espresso initiates over IPv6, inner IPv4
write_a "aes128gcm16-prfsha256-ecp256" "aes128gcm16" none 10.1.0.0/24 10.2.0.0/24
write_b "aes128gcm16-prfsha256-ecp256" "aes128gcm16" 10.2.0.0/24 10.1.0.0/24
sw_start
ctl_dataplane A
ctl_daemon A
grep -q "sw: initiating" <<<"$(ctl A up sw)" || nsl_die "up sw"
ctl_wait_state A sw up 20
res=$(check v6v4 10.2.0.2 10.1.0.2)
pass "espresso initiator over IPv6 (fd00:ff::1 <-> fd00:ff::2), inner IPv4: SAs up, ping both ways, capture decrypted ($res)"
ctl A down sw >/dev/null 2>&1 || true
for _ in $(seq 1 50); do [ "$(sw_ike_count)" = 0 ] && break; sleep 0.1; done
[ "$(sw_ike_count)" = 0 ] || nsl_die "strongSwan still has the IKE SA after espresso's delete (IPv6)"
pass "espresso's delete over IPv6 removes strongSwan's SAs"

# ---- 2. strongSwan initiates over IPv6, inner IPv6
write_a "chacha20poly1305-prfsha512-curve25519" "aes256gcm16" add fd00:1::/64 fd00:2::/64
grep -q reloaded <<<"$(ctl A reload)" || nsl_die "reload"
write_b "chacha20poly1305-prfsha512-curve25519" "aes256gcm16" fd00:2::/64 fd00:1::/64
sw_reload
swc --initiate --child net --timeout 15 >"$NSL_TMP/init2.log" 2>&1 || nsl_die "strongSwan initiate: $(tail -5 "$NSL_TMP/init2.log")"
ctl_wait_state A sw up 15
[ "$(ctl_field A "s['ike_sas'][0]['initiator']")" = False ] || nsl_die "espresso should be the responder"
swc --list-sas | grep -q "CHACHA20_POLY1305/PRF_HMAC_SHA2_512/CURVE_25519" || nsl_die "strongSwan's IKE algorithms: $(swc --list-sas)"
res=$(check v6v6 fd00:2::2 fd00:1::2)
pass "strongSwan initiator, espresso responder over IPv6, inner IPv6, IKE ChaCha20-Poly1305: SAs up, ping both ways, capture decrypted ($res)"

echo "34_ike_ipv6: $passed passed, 0 failed"
