#!/usr/bin/env bash
# SPI takeover (issue 10, acceptance 1): an authenticated IKE peer must not
# be able to choose, as our outbound SPI, one that another tunnel already
# uses. Gateway A runs espresso with a manual tunnel "m" (10.1.0.0/24 <->
# 10.3.0.0/24, peer gwC 192.0.2.3, spi_out SPI_M) and an IKE connection "sw"
# to strongSwan 5.9.8 on gwB (10.1.0.0/24 <-> 10.2.0.0/24). All three sit on
# one WAN bridge. gwC is a passive receiver: its captures are decrypted with
# the manual tunnel's own keys; gwB's are searched for SPI_M.
#   1. charon with spi_min = spi_max = SPI_M initiates: espresso refuses the
#      child (NO_PROPOSAL_CHOSEN at strongSwan, the reason in espresso's log,
#      status and metrics count it); 50 numbered probes for 10.3.0.0/24 all
#      reach gwC under SPI_M and decrypt with the manual keys; none reach gwB.
#   2. espresso initiates to the same charon: the child in the answer carries
#      SPI_M: espresso installs nothing and deletes it at strongSwan; probes
#      still all go to gwC.
#   3. charon without the SPI range: the child comes up beside the manual
#      tunnel; ping hA <-> hB passes and probes for gwC still go to gwC.
#   4. the other order: with the IKE child up, a reload adds manual tunnel
#      "m2" whose spi_out is the child's outbound SPI: refused with the SPI
#      named; the child keeps working and nothing for m2's subnet leaves
#      under the child's SA.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
python3 -c 'import scapy.layers.ipsec' 2>/dev/null || nsl_die "scapy not installed"
nsl_init spitko
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }

# ---- topology: hA - gwA -[wan bridge]- gwB - hB, and gwC on the same bridge
nsl_ns hA; NS_HA=$NSL_NS
nsl_ns gwA; NS_GWA=$NSL_NS
nsl_ns gwB; NS_GWB=$NSL_NS
nsl_ns hB; NS_HB=$NSL_NS
nsl_ns gwC; NS_GWC=$NSL_NS
nsl_ns wan; NS_WAN=$NSL_NS
ip -n "$NS_WAN" link add br0 type bridge
ip -n "$NS_WAN" link set br0 up
nsl_veth "$NS_HA" eth0 "$NS_GWA" lan
nsl_veth "$NS_GWA" wan "$NS_WAN" pa
nsl_veth "$NS_GWB" wan "$NS_WAN" pb
nsl_veth "$NS_GWC" wan "$NS_WAN" pc
nsl_veth "$NS_GWB" lan "$NS_HB" eth0
for p in pa pb pc; do ip -n "$NS_WAN" link set "$p" master br0; done
ip -n "$NS_HA" addr add 10.1.0.2/24 dev eth0
ip -n "$NS_HA" route add default via 10.1.0.1
ip -n "$NS_HB" addr add 10.2.0.2/24 dev eth0
ip -n "$NS_HB" route add default via 10.2.0.1
ip -n "$NS_GWA" addr add 10.1.0.1/24 dev lan
ip -n "$NS_GWA" addr add 192.0.2.1/24 dev wan
ip -n "$NS_GWA" route add 10.2.0.0/24 via 192.0.2.2
ip -n "$NS_GWA" route add 10.3.0.0/24 via 192.0.2.3
ip -n "$NS_GWA" route add 10.4.0.0/24 via 192.0.2.3
ip -n "$NS_GWB" addr add 10.2.0.1/24 dev lan
ip -n "$NS_GWB" addr add 192.0.2.2/24 dev wan
ip -n "$NS_GWB" route add 10.1.0.0/24 via 192.0.2.1
ip -n "$NS_GWC" addr add 192.0.2.3/24 dev wan
ip netns exec "$NS_GWA" sysctl -qw net.ipv4.ip_forward=0
for i in lan wan; do nsl_offloads "$NS_GWA" "$i" gateway; done
nsl_offloads "$NS_GWB" wan gateway
nsl_offloads "$NS_GWB" lan gateway
nsl_offloads "$NS_HA" eth0 endpoint
nsl_offloads "$NS_HB" eth0 endpoint
sw_setup

SPI_M=0xc0a11ce5
SPI_M_IN=0x3002
K_OUT=$(ctl_key); K_IN=$(ctl_key)
mkdir -p "$NSL_TMP/A"
( umask 077
  printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk"
  printf 'enc_key_out = "%s"\nenc_key_in = "%s"\n' "$K_OUT" "$K_IN" >"$NSL_TMP/A/m.keys"
  printf 'enc_key_out = "%s"\nenc_key_in = "%s"\n' "$(ctl_key)" "$(ctl_key)" >"$NSL_TMP/A/m2.keys" )
# write_a [EXTRA]: espresso's configuration on gwA (EXTRA: more TOML).
write_a() {
  cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9717"
allow_key_export = true

[[tunnel]]
name = "m"
local = "192.0.2.1"
remote = "192.0.2.3"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.3.0.0/24"]
suite = "aes128gcm16"
spi_in = $SPI_M_IN
spi_out = $SPI_M
keys = "m.keys"

[[connection]]
name = "sw"
left = "192.0.2.1"
right = "192.0.2.2"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
secrets = "sw.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "aes128gcm16"
pfs = false
auto = "add"
${1:-}
CONF
}
write_a
# charon's SPI range: its inbound SPIs (our outbound) forced to SPI_M.
sw_spi_range() {
  sed -i '/^    spi_m[ia][nx] = /d' "$SW_DIR/strongswan.conf"
  [ "$1" = on ] && sed -i "s/^charon {/charon {\n    spi_min = $SPI_M\n    spi_max = $SPI_M/" "$SW_DIR/strongswan.conf"
  return 0
}
sw_spi_range on
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=none
sw_start
ctl_dataplane A
ctl_daemon A
ctl_wait_state A m up 15
ctl A keys m --format scapy >"$NSL_TMP/m_keys.json" || nsl_die "keys m"
spi_hex=$(printf '%08x' "$SPI_M")
metrics() { ip netns exec "$NS_GWA" python3 -c 'import urllib.request;print(urllib.request.urlopen("http://127.0.0.1:9717/metrics",timeout=5).read().decode())'; }

# probes TAG DST: 50 numbered UDP datagrams from hA to DST, captured on the
# WAN of gwC and gwB; prints "C_RESULT | B_RESULT" (tests/lib/esp_probes.py).
probes() {
  local tag="$1" dst="$2" pc pb
  # warm-up (not counted): gwA resolves the next hop first
  nsl_x "$NS_HA" python3 -c "
import socket,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
for i in range(3):
    s.sendto(b'warm', ('$dst', 9999)); time.sleep(0.1)"
  nsl_bg "$NS_GWC" "cap_c_$tag" tcpdump -n -i wan -Q in --immediate-mode -w "$NSL_TMP/c_$tag.pcap" -U 'ip proto 50 or udp port 4500'
  pc=$NSL_PID
  nsl_bg "$NS_GWB" "cap_b_$tag" tcpdump -n -i wan -Q in --immediate-mode -w "$NSL_TMP/b_$tag.pcap" -U 'ip proto 50 or udp port 4500'
  pb=$NSL_PID
  sleep 0.7
  nsl_x "$NS_HA" python3 -c "
import socket,time
s=socket.socket(socket.AF_INET,socket.SOCK_DGRAM)
for i in range(50):
    s.sendto(b'probe-%d' % i, ('$dst', 9999)); time.sleep(0.01)"
  sleep 0.7
  nsl_stop "$pc"; nsl_stop "$pb"
  echo "$(python3 tests/lib/esp_probes.py "$NSL_TMP/c_$tag.pcap" --spi "$SPI_M" --keys "$NSL_TMP/m_keys.json") | $(python3 tests/lib/esp_probes.py "$NSL_TMP/b_$tag.pcap" --spi "$SPI_M")"
}
# check_probes TAG RESULT: all 50 at gwC under SPI_M, decrypted with m's keys; none at gwB.
check_probes() {
  grep -Eq "^esp=[0-9]+ spi=[0-9]+ decrypted=[0-9]+ failed=0 probes=50 \| esp=[0-9]+ spi=0 " <<<"$2" ||
    nsl_die "$1: the manual tunnel's probes did not all reach its own peer: gwC | gwB = $2"
}
r=$(probes before 10.3.0.2)
check_probes before "$r"
pass "manual tunnel m (spi_out $SPI_M): 50/50 probes at gwC, decrypted with m's keys ($r)"

# ---- 1. strongSwan initiates with spi_min = spi_max = SPI_M
swc --initiate --child net --timeout 10 >"$NSL_TMP/initiate1.log" 2>&1 && nsl_die "strongSwan's child with SPI $SPI_M came up"
grep -q "received NO_PROPOSAL_CHOSEN notify" "$NSL_TMP/sw/charon.log" || nsl_die "strongSwan did not get NO_PROPOSAL_CHOSEN: $(tail -5 "$NSL_TMP/sw/charon.log")"
grep -qi "spi_min\|$spi_hex" "$NSL_TMP/sw/charon.log" || true
grep -q "0x$spi_hex is already the outbound SPI of another SA" <<<"$(ctl A log -n 300)" || nsl_die "espresso's log does not say why the child was refused"
[ "$(ctl_field A "s['ike']['child_refused_spi_in_use']")" -ge 1 ] || nsl_die "status does not count the refusal"
grep -Eq '^espresso_ike_child_refused_total\{reason="spi_in_use"\} [1-9]' <<<"$(metrics)" || nsl_die "metrics do not count the refusal"
[ "$(ctl_field A "t('m')['outbound']['spi']")" = "$((SPI_M))" ] || nsl_die "m's outbound SA changed"
r=$(probes refused 10.3.0.2)
check_probes refused "$r"
pass "strongSwan initiator with SPI $SPI_M: child refused (NO_PROPOSAL_CHOSEN, logged, counted); m's 50/50 probes still at gwC, 0 with that SPI at gwB ($r)"

# ---- 2. espresso initiates; strongSwan's answer carries SPI_M
# (a fresh charon: with a one-SPI range, libipsec keeps the SPI it handed
# out for the refused child and would wait forever for another)
swc --terminate --ike gw --timeout 5 >/dev/null 2>&1 || true
sw_stop
sw_start
before=$(ctl_field A "s['ike']['child_refused_spi_in_use']")
grep -q "sw: initiating" <<<"$(ctl A up sw)" || nsl_die "up sw"
for _ in $(seq 1 100); do
  [ "$(ctl_field A "s['ike']['child_refused_spi_in_use']")" -gt "$before" ] && break
  sleep 0.1
done
[ "$(ctl_field A "s['ike']['child_refused_spi_in_use']")" -gt "$before" ] || nsl_die "espresso (initiator) did not refuse the child"
for _ in $(seq 1 50); do [ -z "$(sw_child_spis)" ] && break; sleep 0.1; done
[ -z "$(sw_child_spis)" ] || nsl_die "strongSwan keeps the refused child: $(sw_child_spis)"
[ "$(ctl_field A "t('m')['outbound']['spi']")" = "$((SPI_M))" ] || nsl_die "m's outbound SA changed"
r=$(probes initiator 10.3.0.2)
check_probes initiator "$r"
pass "espresso initiator, answer with SPI $SPI_M: nothing installed, the child deleted at strongSwan; m's probes 50/50 at gwC ($r)"
grep -q "sw: down" <<<"$(ctl A down sw)" || nsl_die "down sw"

# ---- 3. strongSwan with its own SPIs: the child works beside m
sw_stop
sw_spi_range off
sw_start
swc --initiate --child net --timeout 15 >"$NSL_TMP/initiate3.log" 2>&1 || nsl_die "strongSwan initiate: $(tail -5 "$NSL_TMP/initiate3.log")"
ctl_wait_state A sw up 15
read -r sw_in sw_out <<<"$(sw_child_spis)"
[ "$((0x$sw_in))" != "$((SPI_M))" ] || nsl_die "strongSwan still used $SPI_M"
for i in 1 2 3; do [ "$(ctl_ping "$NS_HA" 10.2.0.2 10)" -ge 9 ] && break; [ "$i" = 3 ] && nsl_die "ping hA -> hB"; done
r=$(probes coexist 10.3.0.2)
check_probes coexist "$r"
pass "strongSwan child with its own SPI 0x$sw_in: ping hA -> hB passes, m's probes 50/50 at gwC ($r)"

# ---- 4. the IKE child first, then a manual tunnel with its outbound SPI
child_out=$((0x$sw_in))
write_a "
[[tunnel]]
name = \"m2\"
local = \"192.0.2.1\"
remote = \"192.0.2.3\"
local_subnets = [\"10.1.0.0/24\"]
remote_subnets = [\"10.4.0.0/24\"]
suite = \"aes128gcm16\"
spi_in = 0x3004
spi_out = $child_out
keys = \"m2.keys\""
out=$(ctl A reload 2>&1) && true
echo "$out" | head -5
[ "$(ctl_field A "t('m2')['state']")" != up ] || nsl_die "m2 came up with the child's outbound SPI"
grep -q "$(printf '%#010x' "$child_out") is in use by another SA" <<<"$out $(ctl A log -n 300)" || nsl_die "the refusal of m2 does not name the SPI: $out"
read -r sw_in2 sw_out2 <<<"$(sw_child_spis)"
[ "$sw_in2 $sw_out2" = "$sw_in $sw_out" ] || nsl_die "the strongSwan child changed: $sw_in/$sw_out -> $sw_in2/$sw_out2"
[ "$(ctl_field A "t('sw')['outbound']['spi']")" = "$child_out" ] || nsl_die "the child's outbound SA changed"
for i in 1 2 3; do [ "$(ctl_ping "$NS_HA" 10.2.0.2 10)" -ge 9 ] && break; [ "$i" = 3 ] && nsl_die "ping hA -> hB after m2"; done
pk_before=$(ctl_field A "t('sw')['outbound']['packets']")
r=$(probes m2 10.4.0.2)
pk_after=$(ctl_field A "t('sw')['outbound']['packets']")
grep -Eq "\| esp=0 " <<<"$r" || nsl_die "probes for m2's subnet reached gwB: $r"
[ "$pk_after" = "$pk_before" ] || nsl_die "m2's traffic went out under the child's SA ($pk_before -> $pk_after packets)"
pass "a reload adding m2 with the child's outbound SPI $(printf '%#x' "$child_out") is refused (SPI named); the child keeps its SAs and traffic, none of m2's probes left under it"

echo "33_ike_spi_takeover: $passed passed, 0 failed"
