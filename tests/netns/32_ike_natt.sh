#!/usr/bin/env bash
# IKEv2 NAT traversal against strongSwan 5.9.8: espresso's gateway A sits behind
# a namespace doing SNAT (nftables masquerade), strongSwan on gateway B only
# sees the NAT's outside address.
#
#   hA 10.1.0.2 — gwA (lan 10.1.0.1 | wan 192.168.100.2) — nat (192.168.100.1 |
#   192.0.2.1, masquerade) — gwB 192.0.2.2 (charon) — hB 10.2.0.2
#
# espresso initiates (FQDN identity @gwa.example, remote %any on strongSwan's
# side), detects that it is behind a NAT from the NAT_DETECTION hashes, moves
# IKE to UDP 4500 and installs UDP-encapsulated ESP; ping and a TCP echo pass
# through the NAT, the NAT's conntrack shows only UDP 500/4500 between the
# gateways (no raw ESP), and espresso sends NAT keepalives. A byte lifetime
# (life_bytes, counted by the dataplane) rekeys the child during a transfer.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/tcp_echo.sh
source tests/lib/strongswan.sh
nsl_init ikenat
command -v nft >/dev/null || nsl_die "nft missing"
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
for n in "$NS_GWA"; do nsl_offloads "$n" lan gateway; nsl_offloads "$n" wan gateway; done
nsl_offloads "$NS_HA" eth0 endpoint
nsl_offloads "$NS_HB" eth0 endpoint

SW_REMOTE_ID=gwa.example SW_REMOTE_ADDRS=%any
sw_setup
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=none
sw_start

mkdir -p "$NSL_TMP/A"
( umask 077; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk" )
cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9718"

[[connection]]
name = "sw"
local = "%defaultroute"
remote = "192.0.2.2"
local_id = "@gwa.example"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.2.0.0/24"]
secrets = "sw.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "aes128gcm16"
pfs = false
start = "start"
life_bytes = "3M"
CONF
ctl_dataplane A
ctl_daemon A
ctl_wait_state A sw up 25
ctl A status
[ "$(ctl_field A "s['ike_sas'][0]['nat_local']")" = True ] || nsl_die "espresso did not detect that it is behind a NAT"
[ "$(ctl_field A "s['ike_sas'][0]['local']")" = "192.168.100.2:4500" ] || nsl_die "IKE not on 4500 from %defaultroute (local $(ctl_field A "s['ike_sas'][0]['local']"))"
ctl_field A "s['ike_sas'][0]['children'][0]['encap']" | grep -q True || nsl_die "child SA not UDP-encapsulated"
swc --list-sas | tee "$NSL_TMP/sw-sas.txt" | head -4
grep -q "remote 'gwa.example' @ 192.0.2.1\[4500\]" "$NSL_TMP/sw-sas.txt" || nsl_die "strongSwan does not see us as gwa.example at the NAT's address"
pass "behind SNAT: %defaultroute resolved, NAT detected, IKE moved to 4500, ESP in UDP; strongSwan sees gwa.example at 192.0.2.1:4500"

ping_ok() { local i; for i in 1 2 3; do [ "$(ctl_ping "$1" "$2" 10)" -ge 9 ] && return 0; done; return 1; }
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping hA -> hB through the NAT"
ping_ok "$NS_HB" 10.1.0.2 || nsl_die "ping hB -> hA through the NAT (inbound via the NAT mapping)"
tcp_echo "$NS_HB" "$NS_HA" 10.2.0.2 1048576 || nsl_die "TCP echo through the NAT"
o=$(ctl_field A "t('sw')['outbound']['packets']")
[ "$o" -ge 200 ] || nsl_die "outbound SA counted $o packets"
pass "ping both ways and 1 MiB TCP echo through the NAT ($o packets out)"

ct=$(nsl_x "$NS_NAT" cat /proc/net/nf_conntrack 2>/dev/null || true)
if [ -n "$ct" ]; then
  grep -q "proto=50\|esp " <<<"$ct" && nsl_die "raw ESP crossed the NAT"
  grep -q "udp .*sport=4500 dport=4500" <<<"$ct" || nsl_die "no UDP 4500 flow in the NAT's conntrack"
  pass "the NAT carried only UDP (4500 flow in its conntrack, no raw ESP)"
fi

k0=$(ctl_field A "s['ike']['tx']")
nsl_bg "$NS_NAT" natcap tcpdump -n -i in -c 1 'udp and src host 192.168.100.2 and udp[8] = 0xff and udp[4:2] = 9'
cap=$NSL_PID
for _ in $(seq 1 300); do kill -0 "$cap" 2>/dev/null || break; sleep 0.1; done
kill -0 "$cap" 2>/dev/null && nsl_die "no NAT keepalive (UDP 4500 one-byte 0xff) within 30 s"
pass "NAT keepalive sent by espresso"

# byte lifetime (3 MB, rekey at 85-90 %), counted by the dataplane: a few more
# MiB of TCP echo cross it; the child is rekeyed under the running transfer.
read -r b_in b_out <<<"$(ctl_field A "'%08x %08x' % (t('sw')['inbound']['spi'], t('sw')['outbound']['spi'])")"
for _ in 1 2 3; do tcp_echo "$NS_HB" "$NS_HA" 10.2.0.2 1048576 || nsl_die "TCP echo across the byte-lifetime rekey"; done
for _ in $(seq 1 50); do
  read -r a_in a_out <<<"$(ctl_field A "'%08x %08x' % (t('sw')['inbound']['spi'], t('sw')['outbound']['spi'])")"
  [ "$a_in" != "$b_in" ] && break
  sleep 0.1
done
[ "$a_in" != "$b_in" ] && [ "$a_out" != "$b_out" ] || nsl_die "no rekey after the byte lifetime"
grep -q "dataplane: SoftExpire" <<<"$(ctl A log -n 300)" || nsl_die "the rekey was not caused by the dataplane's byte count"
pass "byte lifetime counted by the dataplane: child rekeyed ($b_in/$b_out -> $a_in/$a_out) during 3 MiB of TCP echo, every byte back"

swc --terminate --ike gw --timeout 10 >/dev/null 2>&1 || nsl_die "strongSwan terminate"
ctl_wait_state A sw down 10
pass "strongSwan's delete through the NAT removes espresso's SAs"
echo "32_ike_natt: $passed passed, 0 failed"
