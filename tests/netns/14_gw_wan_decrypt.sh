#!/usr/bin/env bash
# WAN captures decrypted by decoders we did not write, with the keys the
# gateways export (`espresso keys`, like a TLS key log).
# The daemon-driven gateway pair (tests/lib/control.sh) carries three manual
# tunnels over 192.0.2.1 <-> 192.0.2.2, one per host pair:
#   gcm  10.1.0.0/24 <-> 10.2.0.2  AES-128-GCM
#   cbc  10.1.0.0/24 <-> 10.2.0.3  AES-CBC-128 + HMAC-SHA-256-128
#   natt 10.1.0.0/24 <-> 10.2.0.4  AES-128-GCM in UDP 4500 (RFC 3948, encap = "udp")
# Checks: `espresso keys` is refused (exit 6, no key printed) until
# `allow_key_export = true` is loaded; ping both ways and a TCP transfer on
# each tunnel while tcpdump records gwB's WAN; then
#  (a) tshark, given `espresso keys --format wireshark` of gwA, verifies the
#      ICV of every ESP packet in the capture (as many as tcpdump counts) and
#      shows the inner ICMP and TCP between the LAN hosts, on all 6 SAs;
#  (b) scapy, given `espresso keys --format scapy` of gwB, decrypts the same
#      packets (ICV, padding) to inner packets between the LANs;
#  and both fail when one key is altered. The daemons never log the keys.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/tshark_esp.sh
source tests/lib/tcp_echo.sh
command -v tshark >/dev/null || nsl_die "tshark not installed"
python3 -c 'import scapy.layers.ipsec' 2>/dev/null || nsl_die "scapy not installed (pip install scapy cryptography)"
[ -x "$ESPRESSO_BIN" ] || nsl_die "$ESPRESSO_BIN not built"
nsl_init wandec
nsl_topo_pair
ip -n "$NS_HB" addr add 10.2.0.3/24 dev eth0
ip -n "$NS_HB" addr add 10.2.0.4/24 dev eth0

hexkey() { python3 -c "import os;print(os.urandom($1).hex())"; }
GCM_AB=$(hexkey 20) GCM_BA=$(hexkey 20)
CBC_AB=$(hexkey 16) CBC_BA=$(hexkey 16) SHA_AB=$(hexkey 32) SHA_BA=$(hexkey 32)
NAT_AB=$(hexkey 20) NAT_BA=$(hexkey 20)

# write_config SIDE ALLOW_EXPORT
write_config() {
  local side=$1 allow=$2 dir="$NSL_TMP/$1" local remote lsub in out
  mkdir -p "$dir"
  cat >"$dir/espresso.toml" <<CONF
[daemon]
shm = "$dir/region.shm"
socket = "$dir/espresso.sock"
metrics = "127.0.0.1:9715"
allow_key_export = $allow
CONF
  [ "$allow" = true ] || sed -i '/allow_key_export/d' "$dir/espresso.toml"
  local t host spi_ab spi_ba extra
  for t in gcm cbc natt; do
    case $t in
      gcm) host=10.2.0.2 spi_ab=0x2001 spi_ba=0x2002 extra='suite = "aes128gcm16"' ;;
      cbc) host=10.2.0.3 spi_ab=0x3001 spi_ba=0x3002 extra='suite = "aes128-sha256"' ;;
      natt) host=10.2.0.4 spi_ab=0x4001 spi_ba=0x4002 extra=$'suite = "aes-128-gcm"\nencap = "udp"' ;;
    esac
    if [ "$side" = A ]; then
      local=192.0.2.1 remote=192.0.2.2 lsub=10.1.0.0/24 rsub=$host/32 in=$spi_ba out=$spi_ab
    else
      local=192.0.2.2 remote=192.0.2.1 lsub=$host/32 rsub=10.1.0.0/24 in=$spi_ab out=$spi_ba
    fi
    cat >>"$dir/espresso.toml" <<CONF

[[tunnel]]
name = "$t"
local = "$local"
remote = "$remote"
local_subnets = ["$lsub"]
remote_subnets = ["$rsub"]
spi_in = $in
spi_out = $out
keys = "$t.keys"
$extra
CONF
  done
  local ea eb
  ( umask 077
    for t in gcm cbc natt; do
      case $t in gcm) ea=$GCM_AB eb=$GCM_BA ;; cbc) ea=$CBC_AB eb=$CBC_BA ;; natt) ea=$NAT_AB eb=$NAT_BA ;; esac
      if [ "$side" = A ]; then
        printf 'enc_key_out = "0x%s"\nenc_key_in = "0x%s"\n' "$ea" "$eb"
        if [ $t = cbc ]; then printf 'auth_key_out = "0x%s"\nauth_key_in = "0x%s"\n' "$SHA_AB" "$SHA_BA"; fi
      else
        printf 'enc_key_out = "0x%s"\nenc_key_in = "0x%s"\n' "$eb" "$ea"
        if [ $t = cbc ]; then printf 'auth_key_out = "0x%s"\nauth_key_in = "0x%s"\n' "$SHA_BA" "$SHA_AB"; fi
      fi >"$dir/$t.keys"
    done )
}

write_config A false
write_config B false
ctl_dataplane A
ctl_dataplane B
ctl_daemon A
ctl_daemon B
for s in A B; do for t in gcm cbc natt; do ctl_wait_state "$s" "$t" up; done; done
nsl_log "ok: tunnels gcm, cbc, natt up on both gateways"

# Key export is off unless the configuration says so.
set +e
out=$(ctl A keys 2>&1); rc=$?
set -e
[ "$rc" = 6 ] || nsl_die "keys without allow_key_export: exit $rc (want 6): $out"
grep -q "allow_key_export" <<<"$out" || nsl_die "refusal does not say how to allow it: $out"
grep -qi "$GCM_AB" <<<"$out" && nsl_die "refused keys command printed a key"
write_config A true
write_config B true
ctl A reload >/dev/null || nsl_die "reload A"
ctl B reload >/dev/null || nsl_die "reload B"
set +e
ctl A keys nosuch >/dev/null 2>&1; rc=$?
set -e
[ "$rc" = 4 ] || nsl_die "keys of an unknown tunnel: exit $rc (want 4)"
nsl_log "ok: keys refused (exit 6) until allow_key_export = true is loaded; unknown tunnel exit 4"

# Warm up neighbours, then capture the WAN while the traffic runs.
for h in 2 3 4; do
  ip netns exec "$NS_GWB" ping -c 1 -W 1 "10.2.0.$h" >/dev/null 2>&1 || true
  ctl_ping "$NS_HA" "10.2.0.$h" 2 >/dev/null || true
done
# The dataplanes send with qdisc bypass, which packet taps on the sending
# side do not see: capture what each gateway receives and merge.
nsl_bg "$NS_GWB" tcpdumpB tcpdump -n --immediate-mode -i wan -w "$NSL_TMP/wanB.pcap" -U
capB=$NSL_PID
nsl_bg "$NS_GWA" tcpdumpA tcpdump -n --immediate-mode -i wan -w "$NSL_TMP/wanA.pcap" -U
capA=$NSL_PID
sleep 1
# ping_from NS SRC DST: 9 of 10 replies, allowing two more rounds (a busy machine).
ping_from() {
  local i n
  for i in 1 2 3; do
    n=$(ip netns exec "$1" ping -I "$2" -c 10 -i 0.05 -W 1 "$3" 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p')
    [ "${n:-0}" -ge 9 ] && return 0
  done
  nsl_log "ping $2 -> $3: ${n:-0} of 10"
  return 1
}
for h in 2 3 4; do
  ping_from "$NS_HA" 10.1.0.2 "10.2.0.$h" || nsl_die "ping hA -> 10.2.0.$h"
  ping_from "$NS_HB" "10.2.0.$h" 10.1.0.2 || nsl_die "ping 10.2.0.$h -> hA"
  tcp_echo "$NS_HB" "$NS_HA" "10.2.0.$h" 200000 || nsl_die "TCP echo hA -> 10.2.0.$h"
done
sleep 0.5
nsl_stop "$capA"
nsl_stop "$capB"
mergecap -w "$NSL_TMP/wan.pcap" "$NSL_TMP/wanA.pcap" "$NSL_TMP/wanB.pcap"
nsl_log "ok: ping both ways and 200 kB TCP echo through each tunnel"

# Independent count of the ESP packets on the wire (raw ESP and UDP 4500 that
# is not IKE's non-ESP marker).
n_esp=$(tcpdump -n -r "$NSL_TMP/wan.pcap" 'ip proto 50' 2>/dev/null | wc -l)
n_natt=$(tcpdump -n -r "$NSL_TMP/wan.pcap" 'udp port 4500 and udp[8:4] != 0' 2>/dev/null | wc -l)
n_total=$((n_esp + n_natt))
[ "$n_esp" -ge 200 ] && [ "$n_natt" -ge 100 ] || nsl_die "capture: $n_esp ESP, $n_natt NAT-T packets"
clear=$(tcpdump -n -r "$NSL_TMP/wan.pcap" 'net 10.0.0.0/8' 2>/dev/null | wc -l)
[ "$clear" = 0 ] || nsl_die "$clear cleartext LAN packets on the WAN"
nsl_log "ok: capture holds $n_esp ESP and $n_natt UDP-encapsulated ESP packets, nothing in the clear"

# (a) tshark with the keys of gwA.
ctl A keys >"$NSL_TMP/esp_sa" || nsl_die "keys --format wireshark"
cat "$NSL_TMP/esp_sa" | sed -E 's/"0x[0-9a-f]{16,}"/"0x<key>"/g'
[ "$(wc -l <"$NSL_TMP/esp_sa")" = 6 ] || nsl_die "want 6 esp_sa records"
grep -qxF "\"IPv4\",\"192.0.2.1\",\"192.0.2.2\",\"0x00002001\",\"AES-GCM with 16 octet ICV [RFC4106]\",\"0x$GCM_AB\",\"NULL\",\"\"" "$NSL_TMP/esp_sa" \
  || nsl_die "gcm out record not in the interop.md form"
grep -qxF "\"IPv4\",\"192.0.2.2\",\"192.0.2.1\",\"0x00003002\",\"AES-CBC [RFC3602]\",\"0x$CBC_BA\",\"HMAC-SHA-256-128 [RFC4868]\",\"0x$SHA_BA\"" "$NSL_TMP/esp_sa" \
  || nsl_die "cbc in record not in the interop.md form"
mapfile -t recs < <(tshark_esp_records_from_uat "$NSL_TMP/esp_sa")
tshark_esp_fields "$NSL_TMP/wan.pcap" "${recs[@]}" -- -e ip.src -e ip.dst -e ip.proto >"$NSL_TMP/tshark.tsv"
ts_sum=$(python3 - "$NSL_TMP/tshark.tsv" <<'PY'
import sys, ipaddress, collections
a, b = ipaddress.ip_network("10.1.0.0/24"), ipaddress.ip_network("10.2.0.0/24")
tot = good = lan = 0; proto = collections.Counter(); spi = collections.Counter()
for line in open(sys.argv[1]):
    f = line.rstrip("\n").split("\t")
    if len(f) < 8 or not f[0]:
        continue
    tot += 1
    if f[3] in ("1", "True") and f[4] not in ("1", "True"):
        good += 1
        s, d = ipaddress.ip_address(f[5]), ipaddress.ip_address(f[6])
        if (s in a and d in b) or (s in b and d in a):
            lan += 1; proto[f[7]] += 1; spi[int(f[1], 0)] += 1
print("total=%d good=%d lan=%d icmp=%d tcp=%d spis=%s" % (tot, good, lan, proto["1"], proto["6"],
      ",".join("%#x:%d" % kv for kv in sorted(spi.items()))))
PY
)
nsl_log "tshark: $ts_sum (tcpdump: $n_total)"
read -r tot good lan icmp tcp spis <<<"$(sed 's/[a-z]*=//g' <<<"$ts_sum")"
[ "$tot" = "$n_total" ] || nsl_die "tshark sees $tot ESP packets, tcpdump $n_total"
[ "$good" = "$n_total" ] && [ "$lan" = "$n_total" ] || nsl_die "tshark: not every ESP packet verified and decrypted: $ts_sum"
[ "$icmp" -ge 110 ] && [ "$tcp" -ge 120 ] || nsl_die "tshark: inner ICMP/TCP missing: $ts_sum"
for s in 0x2001 0x2002 0x3001 0x3002 0x4001 0x4002; do
  n=$(tr ',' '\n' <<<"$spis" | sed -n "s/^$s://p")
  [ "${n:-0}" -ge 20 ] || nsl_die "tshark: SA $s decrypted ${n:-0} packets: $ts_sum"
done
nsl_log "ok: tshark verified and decrypted all $n_total ESP packets ($icmp ICMP, $tcp TCP inner) on all 6 SAs"

# ...and finds bad ICVs when one key is wrong.
bad=("${recs[@]}")
# Flip the last hex digit of the first record's encryption key (6th field).
bad[0]=$(python3 -c '
import sys
f = sys.argv[1].split(",")
k = f[5].strip("\"")
f[5] = "\"" + k[:-1] + ("0" if k[-1] != "0" else "1") + "\""
print(",".join(f))' "${recs[0]}")
[ "${bad[0]}" != "${recs[0]}" ] || nsl_die "could not alter a key"
if tshark_esp_count_multi "$NSL_TMP/wan.pcap" "${bad[@]}" >"$NSL_TMP/bad.txt"; then
  nsl_die "tshark accepted the capture with a wrong key: $(cat "$NSL_TMP/bad.txt")"
fi
nsl_log "ok: tshark with one altered key reports $(cat "$NSL_TMP/bad.txt")"

# (b) scapy with the keys of gwB.
ctl B keys --format scapy >"$NSL_TMP/keys.json" || nsl_die "keys --format scapy"
python3 -c 'import json,sys; a=json.load(open(sys.argv[1])); assert len(a)==6, a' "$NSL_TMP/keys.json" \
  || nsl_die "want 6 SAs in the scapy keys"
sc=$(python3 tests/lib/scapy_keys.py "$NSL_TMP/keys.json" "$NSL_TMP/wan.pcap") || nsl_die "scapy: $sc"
nsl_log "scapy: $sc"
grep -q "^esp=$n_total decrypted=$n_total failed=0 unknown_spi=0 " <<<"$sc" || nsl_die "scapy: $sc (tcpdump: $n_total)"
grep -q "natt=$n_natt " <<<"$sc" || nsl_die "scapy saw other NAT-T packets: $sc"
for s in 0x2001 0x2002 0x3001 0x3002 0x4001 0x4002; do
  grep -Eq "[=,]$s:([2-9][0-9]|[0-9]{3,})" <<<"$sc" || nsl_die "scapy: SA $s has fewer than 20 packets: $sc"
done
nsl_log "ok: scapy decrypted all $n_total ESP packets (ICV and padding checked) on all 6 SAs"
python3 - "$NSL_TMP/keys.json" "$NSL_TMP/keys_bad.json" <<'PY'
import json, sys
a = json.load(open(sys.argv[1]))
k = a[2]["crypt_key"]
a[2]["crypt_key"] = k[:-10] + ("0" if k[-10] != "0" else "1") + k[-9:]
json.dump(a, open(sys.argv[2], "w"))
PY
if sc_bad=$(python3 tests/lib/scapy_keys.py "$NSL_TMP/keys_bad.json" "$NSL_TMP/wan.pcap" 2>/dev/null); then
  nsl_die "scapy accepted the capture with a wrong key: $sc_bad"
fi
nsl_log "ok: scapy with one altered key fails: $sc_bad"

# One tunnel by name; a tunnel that is down has no keys to give.
[ "$(ctl A keys natt | grep -c '"0x0000400[12]"')" = 2 ] || nsl_die "keys natt: want its 2 SAs"
[ "$(ctl A keys natt | wc -l)" = 2 ] || nsl_die "keys natt printed other SAs"
ctl A down cbc >/dev/null
set +e
ctl A keys cbc >/dev/null 2>&1; rc=$?
set -e
[ "$rc" = 6 ] || nsl_die "keys of a tunnel that is down: exit $rc (want 6)"
[ "$(ctl A keys | wc -l)" = 4 ] || nsl_die "keys with cbc down: want 4 SAs"
nsl_log "ok: keys NAME gives that tunnel's SAs; a down tunnel is refused (exit 6) and left out"

# The daemons said they exported keys, and never logged them.
for k in "$GCM_AB" "$GCM_BA" "$CBC_AB" "$CBC_BA" "$SHA_AB" "$SHA_BA" "$NAT_AB" "$NAT_BA"; do
  if grep -rqi "$k" "$NSL_TMP"/ctl*.log "$NSL_TMP"/dp*.log; then nsl_die "a key appears in a log"; fi
done
grep -q "keys of 6 SA(s) exported" "$NSL_TMP/ctlA.log" || nsl_die "export not logged"
nsl_log "ok: exports logged without the keys"
echo "14_gw_wan_decrypt: 10 passed, 0 failed"
