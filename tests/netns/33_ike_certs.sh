#!/usr/bin/env bash
# IKEv2 with certificates and RSA keys against strongSwan 5.9.8 (charon +
# kernel-libipsec). Gateway A runs espresso (dataplane + daemon), gateway B
# runs charon. Every credential is made here with the operators' tools:
# strongSwan's `pki`, OpenSSL, and `espresso genkey --rsa`.
#   1. espresso initiates, RSA certificates from a `pki` CA, IKE
#      chacha20poly1305-prfsha512-curve25519 (RFC 7634): both up, ping both
#      ways, the WAN capture decrypted by tshark with `espresso keys`.
#   2. strongSwan initiates, espresso responds, ECDSA P-256 (ours) and P-384
#      (strongSwan's) certificates from an OpenSSL CA, IKE aes256gcm16-prfsha384-ecp384.
#   3. A chain with an intermediate CA on both sides over a 1280-byte WAN:
#      the IKE_AUTH messages travel as RFC 7383 fragments (seen by tshark,
#      no datagram above the MTU), traffic both ways.
#   4. strongSwan presents a revoked certificate: espresso refuses it
#      (AUTHENTICATION_FAILED) with a log line naming the certificate, serial,
#      CRL issuer and reason.
#   5. Raw RSA keys (FreeS/WAN leftrsasigkey/rightrsasigkey, authby=rsasig):
#      ours from `espresso genkey --rsa`, whose 0s form must equal what `pki
#      --pub --outform dnskey` prints for the same key; traffic both ways.
#   6. strongSwan without RFC 7427 (`signature_authentication = no`): both
#      sides sign with AUTH method 1 (RSA PKCS#1 v1.5, SHA-1), then ECDSA
#      with method 9/10; strongSwan logs which scheme it verified.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
source tests/lib/tshark_esp.sh
source tests/lib/sw_pki.sh
nsl_init ikecert
nsl_topo_pair
sw_setup
pki_init
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }

mkdir -p "$NSL_TMP/A"
q() { "$@" 2>/dev/null; }
# ---- credentials: strongSwan pki CA (RSA) with an intermediate, OpenSSL CA (ECDSA)
pki_ca ca "C=CH, O=espresso interop, CN=pki Root CA"
q pki --gen --type rsa --size 2048 --outform pem >"$P/int.key"
q pki --issue --cacert "$P/ca.crt" --cakey "$P/ca.key" --in "$P/int.key" --type priv --ca --pathlen 0 \
  --dn "C=CH, O=espresso interop, CN=pki Intermediate CA" --outform pem >"$P/int.crt"
ee() { pki_ee "$@"; } # name issuer type size dn san...
ee gwa ca rsa 2048 "C=CH, O=espresso interop, CN=gwa.example" gwa.example 192.0.2.1
ee gwb ca rsa 2048 "C=CH, O=espresso interop, CN=gwb.example" gwb.example 192.0.2.2
ee gwa-int int rsa 2048 "C=CH, O=espresso interop, OU=branch, CN=gwa.example" gwa.example
ee gwb-int int rsa 3072 "C=CH, O=espresso interop, OU=branch, CN=gwb.example" gwb.example
ee gwb-rev ca rsa 2048 "C=CH, O=espresso interop, CN=revoked.example" revoked.example
pki_revoke ca gwb-rev
O="$NSL_TMP/ossl"; mkdir -p "$O"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-384 -out "$O/ca.key" 2>/dev/null
openssl req -x509 -new -key "$O/ca.key" -days 30 -subj "/C=DE/O=OpenSSL interop/CN=OpenSSL Root CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" -out "$O/ca.crt" 2>/dev/null
oee() { # name curve cn ip
  openssl genpkey -algorithm EC -pkeyopt "ec_paramgen_curve:$2" -out "$O/$1.key" 2>/dev/null
  openssl req -new -key "$O/$1.key" -subj "/C=DE/O=OpenSSL interop/CN=$3" -out "$O/$1.csr" 2>/dev/null
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nsubjectAltName=DNS:%s,IP:%s\n' "$3" "$4" >"$O/$1.ext"
  openssl x509 -req -in "$O/$1.csr" -CA "$O/ca.crt" -CAkey "$O/ca.key" -CAcreateserial -days 30 -sha384 \
    -extfile "$O/$1.ext" -out "$O/$1.crt" 2>/dev/null
}
oee ea P-256 ecdsa-a.example 192.0.2.1
oee eb P-384 ecdsa-b.example 192.0.2.2
for f in "$P"/*.key "$O"/*.key; do chmod 600 "$f"; done
mkdir -p "$NSL_TMP/A/ca" "$NSL_TMP/A/crl"
cp "$P/ca.crt" "$NSL_TMP/A/ca/pki.crt"; cp "$O/ca.crt" "$NSL_TMP/A/ca/openssl.crt"
cp "$P/ca.crl" "$NSL_TMP/A/crl/pki.crl"

# write_a IKE AUTHLINES [AUTO]: espresso's configuration; AUTHLINES are
# extra [[connection]] lines (credentials and identities).
write_a() {
  cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9717"
allow_key_export = true

[[connection]]
name = "sw"
left = "192.0.2.1"
right = "192.0.2.2"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
ike = "$1"
esp = "aes128gcm16"
pfs = false
auto = "${3:-none}"
$2
CONF
}
# write_b IKE LOCAL REMOTE: strongSwan's connection; LOCAL/REMOTE are the
# bodies of its local {} and remote {} sections.
write_b() { sw_cert_conf 2 "$1" "$2" "$3" $'        mobike = no\n        fragmentation = yes'; }
ping_ok() { local i; for i in 1 2 3; do [ "$(ctl_ping "$1" "$2" 10)" -ge 9 ] && return 0; done; return 1; }
sw_ike() { swc --list-sas 2>/dev/null; }
# check_traffic NAME: pings both ways with a WAN capture, then tshark checks
# every ESP packet with the keys espresso exports.
check_traffic() {
  nsl_bg "$NS_GWB" "tcpdump_$1" tcpdump -n -i wan -Q in --immediate-mode -w "$NSL_TMP/$1.pcap" -U 'udp port 4500 and src host 192.0.2.1'
  local cap=$NSL_PID
  sleep 0.5
  ping_ok "$NS_HA" 10.2.0.2 || nsl_die "$1: ping hA -> hB"
  ping_ok "$NS_HB" 10.1.0.2 || nsl_die "$1: ping hB -> hA"
  sleep 0.3
  nsl_stop "$cap"
  ctl A keys sw >"$NSL_TMP/$1.esp_sa" || nsl_die "$1: espresso keys"
  mapfile -t recs < <(tshark_esp_records_from_uat "$NSL_TMP/$1.esp_sa")
  local res
  res=$(tshark_esp_count_multi "$NSL_TMP/$1.pcap" "${recs[@]}") || nsl_die "$1: tshark: $res"
  [ "$(sed -n 's/.*total=\([0-9]*\).*/\1/p' <<<"$res")" -ge 10 ] || nsl_die "$1: too few ESP packets: $res"
  echo "$res"
}
down_all() {
  ctl A down sw >/dev/null 2>&1 || true
  swc --terminate --ike gw --timeout 5 >/dev/null 2>&1 || true
  for _ in $(seq 1 50); do [ "$(sw_ike_count)" = 0 ] && break; sleep 0.1; done
}

# ---- 1. espresso initiates: RSA certificates (pki), ChaCha20-Poly1305 IKE
cp "$P/gwa.crt" "$NSL_TMP/A/gwa.crt"; cp "$P/gwa.key" "$NSL_TMP/A/gwa.key"; chmod 600 "$NSL_TMP/A/gwa.key"
write_a "chacha20poly1305-prfsha512-curve25519" '
authby = "pubkey"
leftcert = "gwa.crt"
leftkey = "gwa.key"
leftid = "C=CH, O=espresso interop, CN=gwa.example"
rightid = "C=CH, O=espresso interop, CN=gwb.example"
cacerts = "ca"
crls = "crl"'
write_b "chacha20poly1305-prfsha512-curve25519" \
  '            auth = pubkey
            certs = gwb.crt
            id = "C=CH, O=espresso interop, CN=gwb.example"' \
  '            auth = pubkey
            id = "C=CH, O=espresso interop, CN=gwa.example"'
sw_creds x509 "$P/gwb.crt" private "$P/gwb.key" x509ca "$P/ca.crt"
sw_start
sw_load
ctl_dataplane A
ctl_daemon A
ctl A up sw >/dev/null || nsl_die "up sw"
ctl_wait_state A sw up 20
sw_ike | grep -q "CHACHA20_POLY1305/PRF_HMAC_SHA2_512/CURVE_25519" || nsl_die "strongSwan's IKE algorithms: $(sw_ike)"
grep -q "authentication of 'C=CH, O=espresso interop, CN=gwa.example' with RSA" "$SW_DIR/charon.log" ||
  grep -q "authentication of 'C=CH, O=espresso interop, CN=gwa.example' with .*successful" "$SW_DIR/charon.log" ||
  nsl_die "strongSwan did not log our RSA authentication: $(grep -i authentication "$SW_DIR/charon.log" | tail -3)"
nsl_log "strongSwan: $(grep "authentication of 'C=CH, O=espresso interop, CN=gwa.example'" "$SW_DIR/charon.log" | tail -1 | sed 's/^.*authentication/authentication/')"
pass "espresso initiator, RSA certificates from a pki CA, IKE ChaCha20-Poly1305/PRF-SHA512/Curve25519: SAs up, strongSwan verified our signature"
# status and status --json name how the peer authenticated and its certificate
st=$(ctl A status) || nsl_die "status"
grep -qE 'auth [^ ]*(RSA|rsa)[^ ]* cert "C=CH, O=espresso interop, CN=gwb.example"' <<<"$st" ||
  nsl_die "status does not show the peer's auth method and certificate: $st"
[ "$(ctl_field A "s['ike_sas'][0]['peer_cert']")" = "C=CH, O=espresso interop, CN=gwb.example" ] ||
  nsl_die "status --json peer_cert: $(ctl_field A "s['ike_sas'][0]")"
pa=$(ctl_field A "s['ike_sas'][0]['peer_auth']")
grep -qE 'WithRSAEncryption|rsassa-pss' <<<"$pa" ||
  nsl_die "status --json peer_auth: $(ctl_field A "s['ike_sas'][0].get('peer_auth')")"
pass "status and status --json show the peer's auth method ($pa) and certificate subject"
res=$(check_traffic rsa)
pass "ping both ways through the tunnel; tshark verifies the WAN capture with espresso's exported keys ($res)"
down_all

# ---- 2. strongSwan initiates: ECDSA certificates (OpenSSL CA)
cp "$O/ea.crt" "$NSL_TMP/A/ea.crt"; cp "$O/ea.key" "$NSL_TMP/A/ea.key"; chmod 600 "$NSL_TMP/A/ea.key"
write_a "aes256gcm16-prfsha384-ecp384" '
authby = "pubkey"
leftcert = "ea.crt"
leftkey = "ea.key"
rightid = "@ecdsa-b.example"
cacerts = ["ca/openssl.crt"]' add
write_b "aes256gcm16-prfsha384-ecp384" \
  '            auth = pubkey
            certs = eb.crt
            id = ecdsa-b.example' \
  '            auth = pubkey
            id = "C=DE, O=OpenSSL interop, CN=ecdsa-a.example"'
sw_creds x509 "$O/eb.crt" private "$O/eb.key" x509ca "$O/ca.crt"
sw_load
grep -q reloaded <<<"$(ctl A reload)" || nsl_die "reload (ECDSA)"
swc --initiate --child net --timeout 15 >"$NSL_TMP/init2.log" 2>&1 || nsl_die "strongSwan initiate: $(tail -5 "$NSL_TMP/init2.log")"
ctl_wait_state A sw up 15
[ "$(ctl_field A "s['ike_sas'][0]['initiator']")" = False ] || nsl_die "espresso should be the responder"
sw_ike | grep -q "AES_GCM_16-256/PRF_HMAC_SHA2_384/ECP_384" || nsl_die "strongSwan's IKE algorithms (ECDSA case)"
grep -q "with ECDSA-256 signature successful\|with (ECDSA_WITH_SHA256_DER) successful\|ECDSA.*successful" "$SW_DIR/charon.log" ||
  nsl_die "strongSwan did not log our ECDSA authentication: $(grep -i authentication "$SW_DIR/charon.log" | tail -3)"
pass "strongSwan initiator, espresso responder, ECDSA P-256/P-384 certificates from an OpenSSL CA, IKE AES-GCM-256/PRF-SHA384/ECP-384"
res=$(check_traffic ecdsa)
pass "ping both ways; tshark verifies the capture ($res)"
down_all

# ---- 3. chains with intermediates over a 1280-byte WAN: IKE fragmentation
ip -n "$NS_GWA" link set wan mtu 1280
ip -n "$NS_GWB" link set wan mtu 1280
cat "$P/gwa-int.crt" "$P/int.crt" >"$NSL_TMP/A/gwa-int.crt"
cp "$P/gwa-int.key" "$NSL_TMP/A/gwa-int.key"; chmod 600 "$NSL_TMP/A/gwa-int.key"
write_a "aes128gcm16-prfsha256-ecp256" '
authby = "pubkey"
leftcert = "gwa-int.crt"
leftkey = "gwa-int.key"
rightid = "C=CH, O=espresso interop, OU=branch, CN=*"
cacerts = "ca/pki.crt"'
write_b "aes128gcm16-prfsha256-ecp256" \
  '            auth = pubkey
            certs = gwb-int.crt
            id = "C=CH, O=espresso interop, OU=branch, CN=gwb.example"' \
  '            auth = pubkey
            id = "C=CH, O=espresso interop, OU=branch, CN=gwa.example"'
sw_creds x509 "$P/gwb-int.crt" private "$P/gwb-int.key" x509ca "$P/ca.crt" x509ca "$P/int.crt"
sw_load
grep -q reloaded <<<"$(ctl A reload)" || nsl_die "reload (chain)"
nsl_bg "$NS_GWB" tcpdump_ike tcpdump -n -i wan --immediate-mode -w "$NSL_TMP/ike_frag.pcap" -U 'udp port 500 or udp port 4500'
capi=$NSL_PID
sleep 0.5
ctl A up sw >/dev/null || nsl_die "up sw (chain)"
ctl_wait_state A sw up 20
sleep 0.3
nsl_stop "$capi"
frags=$(tshark -r "$NSL_TMP/ike_frag.pcap" -Y 'isakmp && isakmp.nextpayload == 53' -T fields -e ip.src 2>/dev/null | sort | uniq -c)
fa=$(awk '$2 == "192.0.2.1" { print $1 }' <<<"$frags"); fb=$(awk '$2 == "192.0.2.2" { print $1 }' <<<"$frags")
[ "${fa:-0}" -ge 2 ] || nsl_die "no IKE fragments from espresso in the capture: $frags"
[ "${fb:-0}" -ge 2 ] || nsl_die "no IKE fragments from strongSwan in the capture: $frags"
big=$(tshark -r "$NSL_TMP/ike_frag.pcap" -T fields -e ip.len 2>/dev/null | awk '$1 > 1280' | wc -l)
[ "$big" -eq 0 ] || nsl_die "$big IKE datagrams larger than the 1280-byte MTU"
grep -q "received fragment #" "$SW_DIR/charon.log" || nsl_die "strongSwan did not log our fragments"
pass "chains with an intermediate CA on both sides over a 1280-byte WAN: IKE_AUTH fragmented both ways (RFC 7383: $fa fragments from espresso, $fb from strongSwan), no datagram above 1280 bytes"
res=$(check_traffic chain)
pass "ping both ways through the tunnel of the chained certificates; tshark verifies the capture ($res)"
down_all
ip -n "$NS_GWA" link set wan mtu 1500
ip -n "$NS_GWB" link set wan mtu 1500

# ---- 4. a revoked certificate: espresso refuses it and says why
write_a "aes128gcm16-prfsha256-ecp256" '
authby = "pubkey"
leftcert = "gwa.crt"
leftkey = "gwa.key"
rightid = "C=CH, O=espresso interop, CN=*"
cacerts = "ca/pki.crt"
crls = "crl"'
write_b "aes128gcm16-prfsha256-ecp256" \
  '            auth = pubkey
            certs = gwb-rev.crt
            id = "C=CH, O=espresso interop, CN=revoked.example"' \
  '            auth = pubkey
            id = "C=CH, O=espresso interop, CN=gwa.example"'
sw_creds x509 "$P/gwb-rev.crt" private "$P/gwb-rev.key" x509ca "$P/ca.crt"
sw_load
grep -q reloaded <<<"$(ctl A reload)" || nsl_die "reload (revoked)"
ctl A up sw >/dev/null || true
line=""
for _ in $(seq 1 100); do
  line=$(ctl A log -n 200 | grep "is revoked by the CRL" || true)
  [ -n "$line" ] && break
  sleep 0.1
done
[ -n "$line" ] || nsl_die "no revocation line in espresso's log: $(ctl A log -n 30)"
serial=$(openssl x509 -in "$P/gwb-rev.crt" -noout -serial | cut -d= -f2 | tr 'A-F' 'a-f')
grep -q "revoked.example" <<<"$line" && grep -q "key compromise" <<<"$line" && grep -q "pki Root CA" <<<"$line" ||
  nsl_die "revocation line lacks subject, CA or reason: $line"
grep -qi "${serial#00}" <<<"$line" || nsl_die "revocation line lacks the serial $serial: $line"
[ "$(ctl_field A "len(s.get('ike_sas', []))")" = 0 ] || nsl_die "espresso kept an IKE SA with a revoked peer"
nsl_log "espresso: $(sed 's/^.*sw: //' <<<"$line")"
pass "revoked certificate refused: espresso's log names it, its serial, the CRL's CA and the reason"
down_all

# ---- 5. raw RSA keys (FreeS/WAN rsasigkey), ours from espresso genkey --rsa
rm -f "$NSL_TMP/A/raw.key"
zero_s=$("$ESPRESSO_BIN" genkey --rsa --out "$NSL_TMP/A/raw.key" | tail -1)
dnskey=$(q pki --pub --type priv --in "$NSL_TMP/A/raw.key" --outform dnskey | tr -d ' \n')
[ "0s$dnskey" = "$zero_s" ] || nsl_die "espresso's 0s key differs from pki's dnskey (RFC 3110) form: $zero_s vs 0s$dnskey"
q pki --pub --type priv --in "$NSL_TMP/A/raw.key" --outform pem >"$NSL_TMP/a-raw.pub"
q pki --gen --type rsa --size 2048 --outform pem >"$P/raw-b.key"
q pki --pub --type priv --in "$P/raw-b.key" --outform pem >"$P/raw-b.pub"
peer_0s="0s$(q pki --pub --type priv --in "$P/raw-b.key" --outform dnskey | tr -d ' \n')"
write_a "aes128gcm16-prfsha256-ecp256" "
authby = \"rsasig\"
leftrsasigkey = \"$zero_s\"
rightrsasigkey = \"$peer_0s\"
leftkey = \"raw.key\""
write_b "aes128gcm16-prfsha256-ecp256" \
  '            auth = pubkey
            pubkeys = raw-b.pub
            id = 192.0.2.2' \
  '            auth = pubkey
            pubkeys = a-raw.pub
            id = 192.0.2.1'
sw_creds pubkey "$P/raw-b.pub" pubkey "$NSL_TMP/a-raw.pub" private "$P/raw-b.key"
sw_load
grep -q reloaded <<<"$(ctl A reload)" || nsl_die "reload (rsasig)"
ctl A up sw >/dev/null || nsl_die "up sw (rsasig)"
ctl_wait_state A sw up 20
pass "raw RSA keys (authby = rsasig, leftrsasigkey/rightrsasigkey in 0s form; ours from espresso genkey --rsa equals pki's RFC 3110 form): SAs up"
[ "$(ctl_field A "s['ike_sas'][0].get('peer_cert', '')")" = "" ] || nsl_die "a raw key has no certificate subject in status"
grep -qE ' auth [^ ]*(RSA|rsa)' <<<"$(ctl A status)" || nsl_die "status does not show the raw key's signature scheme: $(ctl A status)"
res=$(check_traffic raw)
pass "ping both ways with raw RSA keys; tshark verifies the capture ($res)"
down_all

# ---- 6. a peer without RFC 7427: AUTH methods 1 (RSA) and 9/10 (ECDSA)
sw_stop
sed -i 's/^charon {/charon {\n    signature_authentication = no/' "$SW_DIR/strongswan.conf"
grep -q "signature_authentication = no" "$SW_DIR/strongswan.conf" || nsl_die "strongswan.conf edit"
write_a "aes128gcm16-prfsha256-ecp256" '
authby = "pubkey"
leftcert = "gwa.crt"
leftkey = "gwa.key"
leftid = "C=CH, O=espresso interop, CN=gwa.example"
rightid = "C=CH, O=espresso interop, CN=gwb.example"
cacerts = "ca/pki.crt"'
write_b "aes128gcm16-prfsha256-ecp256" \
  '            auth = pubkey
            certs = gwb.crt
            id = "C=CH, O=espresso interop, CN=gwb.example"' \
  '            auth = pubkey
            id = "C=CH, O=espresso interop, CN=gwa.example"'
sw_creds x509 "$P/gwb.crt" private "$P/gwb.key" x509ca "$P/ca.crt"
sw_start
sw_load
grep -q reloaded <<<"$(ctl A reload)" || nsl_die "reload (method 1)"
ctl A up sw >/dev/null || nsl_die "up sw (method 1)"
ctl_wait_state A sw up 20
# strongSwan names the AUTH method for methods 1/9/10 ("RSA signature"),
# the signature scheme for method 14 (RSA_EMSA_PKCS1_SHA2_256, ...)
m1=$(grep "authentication of 'C=CH, O=espresso interop, CN=gwa.example' with" "$SW_DIR/charon.log" | tail -1)
nsl_log "strongSwan: ${m1#*] }"
grep -q "with RSA signature successful" <<<"$m1" ||
  nsl_die "strongSwan did not verify a method-1 signature of ours: $(grep -i "authentication of" "$SW_DIR/charon.log" | tail -3)"
ping_ok "$NS_HA" 10.2.0.2 && ping_ok "$NS_HB" 10.1.0.2 || nsl_die "ping (method 1)"
pass "peer without RFC 7427: RSA signatures with AUTH method 1 (PKCS#1 v1.5 SHA-1) both ways, strongSwan verified ours; ping both ways"
down_all
write_a "aes256gcm16-prfsha384-ecp384" '
authby = "pubkey"
leftcert = "ea.crt"
leftkey = "ea.key"
rightid = "@ecdsa-b.example"
cacerts = ["ca/openssl.crt"]'
write_b "aes256gcm16-prfsha384-ecp384" \
  '            auth = pubkey
            certs = eb.crt
            id = ecdsa-b.example' \
  '            auth = pubkey
            id = "C=DE, O=OpenSSL interop, CN=ecdsa-a.example"'
sw_creds x509 "$O/eb.crt" private "$O/eb.key" x509ca "$O/ca.crt"
sw_load
grep -q reloaded <<<"$(ctl A reload)" || nsl_die "reload (method 9)"
ctl A up sw >/dev/null || nsl_die "up sw (method 9)"
ctl_wait_state A sw up 20
m9=$(grep "authentication of 'C=DE, O=OpenSSL interop, CN=ecdsa-a.example' with" "$SW_DIR/charon.log" | tail -1)
grep -q "with ECDSA-256 signature successful" <<<"$m9" ||
  nsl_die "strongSwan did not verify our ECDSA signature: $(grep -i "authentication of" "$SW_DIR/charon.log" | tail -3)"
nsl_log "strongSwan: ${m9#*] }"
ping_ok "$NS_HA" 10.2.0.2 && ping_ok "$NS_HB" 10.1.0.2 || nsl_die "ping (method 9)"
pass "peer without RFC 7427: ECDSA P-256/P-384 signatures with AUTH methods 9/10, strongSwan verified ours; ping both ways"
down_all

echo "33_ike_certs: $passed passed, 0 failed"
