#!/usr/bin/env bash
# IKEv1 with RSA signatures (RFC 2409 §5.1; issue 13 acceptance 2) against
# strongSwan 5.9.8 (charon + kernel-libipsec, swanctl `version = 1`,
# `auth = pubkey`). Gateway A runs espresso (dataplane + daemon), gateway B
# charon. Credentials are made here with strongSwan's `pki` and
# `espresso genkey --rsa`.
#   1. espresso initiates main mode, RSA certificates from a pki CA, DN
#      identities, CRL configured: strongSwan verified our signature; status
#      and --json show the peer's auth method and certificate subject;
#      numbered datagrams both ways, none lost; the WAN capture decrypted by
#      tshark with `espresso keys`.
#   2. strongSwan initiates, espresso responds, FQDN identities (from the
#      certificates' subjectAltNames): numbered datagrams both ways.
#   3. Raw RSA keys (authby = rsasig, leftrsasigkey/rightrsasigkey in the 0s
#      form; ours from espresso genkey --rsa; strongSwan's `pubkeys`),
#      address identities: numbered datagrams both ways, tshark.
#   4. strongSwan presents a revoked certificate: espresso refuses it, its
#      log names the certificate and the reason, an `auth` drop is counted.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
source tests/lib/tshark_esp.sh
source tests/lib/udp_flows.sh
source tests/lib/sw_pki.sh
nsl_init v1rsa
nsl_topo_pair
sw_setup
pki_init
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }

mkdir -p "$NSL_TMP/A/ca" "$NSL_TMP/A/crl"
q() { "$@" 2>/dev/null; }
pki_ca ca "C=CH, O=espresso v1, CN=pki Root CA"
ee() { local n=$1; shift; pki_ee "$n" ca rsa 2048 "$@"; } # name dn san...
ee gwa "C=CH, O=espresso v1, CN=gwa.example" gwa.example 192.0.2.1
ee gwb "C=CH, O=espresso v1, CN=gwb.example" gwb.example 192.0.2.2
ee gwb-rev "C=CH, O=espresso v1, CN=revoked.example" revoked.example
pki_revoke ca gwb-rev
chmod 600 "$P"/*.key
cp "$P/ca.crt" "$NSL_TMP/A/ca/pki.crt"; cp "$P/ca.crl" "$NSL_TMP/A/crl/pki.crl"
cp "$P/gwa.crt" "$NSL_TMP/A/gwa.crt"; cp "$P/gwa.key" "$NSL_TMP/A/gwa.key"; chmod 600 "$NSL_TMP/A/gwa.key"

# write_a AUTHLINES [AUTO]: espresso's IKEv1 connection with these extra lines.
write_a() {
  cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9719"
allow_key_export = true

[[connection]]
name = "sw"
version = 1
left = "192.0.2.1"
right = "192.0.2.2"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.2.0.0/24"
ike = "aes128-sha256-modp2048"
esp = "aes128gcm16"
pfs = false
auto = "${2:-none}"
$1
CONF
}
# write_b LOCAL REMOTE: strongSwan's IKEv1 connection (bodies of local {} and remote {}).
write_b() { sw_cert_conf 1 aes128-sha256-modp2048 "$1" "$2"; }
# flows COUNT INTERVAL TAG [CAPTURE]: numbered datagrams hA -> hB and hB -> hA
# at once, counted at each receiver; with CAPTURE, the WAN traffic from A is
# captured at B and checked by tshark with `espresso keys`. Dies on any loss.
flows() {
  local count="$1" interval="$2" tag="$3" cap="" r out
  if [ -n "${4:-}" ]; then
    nsl_bg "$NS_GWB" "tcpdump_$tag" tcpdump -n -i wan -Q in --immediate-mode -w "$NSL_TMP/$tag.pcap" -U 'udp port 4500 and src host 192.0.2.1'
    cap=$NSL_PID
  fi
  flows_start "$count" "$interval" "$tag"
  out=$(flows_check "$tag")
  if [ -n "$cap" ]; then
    sleep 0.3
    nsl_stop "$cap"
    ctl A keys sw >"$NSL_TMP/$tag.esp_sa" || nsl_die "$tag: espresso keys"
    mapfile -t recs < <(tshark_esp_records_from_uat "$NSL_TMP/$tag.esp_sa")
    r=$(tshark_esp_count_multi "$NSL_TMP/$tag.pcap" "${recs[@]}") || nsl_die "$tag: tshark: $r"
    [ "$(sed -n 's/.*total=\([0-9]*\).*/\1/p' <<<"$r")" -ge "$count" ] || nsl_die "$tag: too few ESP packets: $r"
    out+="; tshark: $r"
  fi
  echo "$out"
}
down_all() {
  ctl A down sw >/dev/null 2>&1 || true
  swc --terminate --ike gw --timeout 5 >/dev/null 2>&1 || true
  for _ in $(seq 1 50); do [ "$(sw_ike_count)" = 0 ] && break; sleep 0.1; done
  ctl_wait_state A sw down 10
}

# ---- 1. espresso initiates: RSA certificates, DN identities
write_a '
authby = "pubkey"
leftcert = "gwa.crt"
leftkey = "gwa.key"
rightid = "C=CH, O=espresso v1, CN=gwb.example"
cacerts = "ca"
crls = "crl"'
write_b '            auth = pubkey
            certs = gwb.crt
            id = "C=CH, O=espresso v1, CN=gwb.example"' \
  '            auth = pubkey
            id = "C=CH, O=espresso v1, CN=gwa.example"'
sw_creds x509 "$P/gwb.crt" private "$P/gwb.key" x509ca "$P/ca.crt"
sw_start
sw_load
ctl_dataplane A
ctl_daemon A
up=$(ctl A up sw)
grep -q "sw: initiating (IKEv1)" <<<"$up" || nsl_die "up sw: $up"
ctl_wait_state A sw up 20
sw_agree || nsl_die "SPIs differ (certificates, espresso initiator)"
auth=$(grep "authentication of 'C=CH, O=espresso v1, CN=gwa.example'" "$SW_DIR/charon.log" | tail -1 || true)
grep -q "successful" <<<"$auth" || nsl_die "strongSwan did not log our RSA signature as verified: $(grep -i "authentication of\|signature" "$SW_DIR/charon.log" | tail -5)"
nsl_log "strongSwan: ${auth#*] }"
grep -q "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/MODP_2048" <<<"$(swc --list-sas)" || nsl_die "strongSwan's phase 1: $(swc --list-sas)"
st=$(ctl A status)
grep -Eq '^ike sw: ESTABLISHED initiator .*IKEv1 main mode' <<<"$st" || nsl_die "status: $st"
grep -q 'auth pubkey cert "C=CH, O=espresso v1, CN=gwb.example"' <<<"$st" || nsl_die "status lacks the peer's auth and certificate: $st"
[ "$(ctl_field A "s['ike_sas'][0]['peer_cert']")" = "C=CH, O=espresso v1, CN=gwb.example" ] || nsl_die "--json peer_cert: $(ctl_field A "s['ike_sas'][0]")"
[ "$(ctl_field A "s['ike_sas'][0]['peer_auth']")" = pubkey ] || nsl_die "--json peer_auth"
[ "$(ctl_field A "s['ike_sas'][0]['version']")" = 1 ] || nsl_die "--json version"
pass "espresso initiator, IKEv1 main mode with RSA certificates (pki CA, CRL): strongSwan verified our signature; status shows auth pubkey and the peer's certificate"
res=$(flows 300 0.005 cert1 capture)
pass "numbered datagrams both ways, none lost; WAN capture decrypted ($res)"
down_all

# ---- 2. strongSwan initiates: FQDN identities from the subjectAltNames
write_a '
authby = "pubkey"
leftcert = "gwa.crt"
leftkey = "gwa.key"
leftid = "@gwa.example"
rightid = "@gwb.example"
cacerts = "ca/pki.crt"
crls = "crl"' add
write_b '            auth = pubkey
            certs = gwb.crt
            id = gwb.example' \
  '            auth = pubkey
            id = gwa.example'
sw_load
grep -q reloaded <<<"$(ctl A reload)" || nsl_die "reload (responder)"
swc --initiate --child net --timeout 15 >"$NSL_TMP/init2.log" 2>&1 || nsl_die "strongSwan initiate: $(tail -5 "$NSL_TMP/init2.log")"
ctl_wait_state A sw up 15
[ "$(ctl_field A "s['ike_sas'][0]['initiator']")" = False ] || nsl_die "espresso should be the responder"
[ "$(ctl_field A "s['ike_sas'][0]['remote_id']")" = "gwb.example" ] || [ "$(ctl_field A "s['ike_sas'][0]['remote_id']")" = "@gwb.example" ] ||
  nsl_die "peer id: $(ctl_field A "s['ike_sas'][0]['remote_id']")"
sw_agree || nsl_die "SPIs differ (certificates, espresso responder)"
res=$(flows 300 0.005 cert2)
pass "strongSwan initiator, espresso responder, RSA certificates with FQDN identities: numbered datagrams both ways, none lost ($res)"
down_all

# ---- 3. raw RSA keys: ours from espresso genkey --rsa, strongSwan's pubkeys
rm -f "$NSL_TMP/A/raw.key"
zero_s=$("$ESPRESSO_BIN" genkey --rsa --out "$NSL_TMP/A/raw.key" | tail -1)
q pki --pub --type priv --in "$NSL_TMP/A/raw.key" --outform pem >"$NSL_TMP/a-raw.pub"
q pki --gen --type rsa --size 2048 --outform pem >"$P/raw-b.key"
q pki --pub --type priv --in "$P/raw-b.key" --outform pem >"$P/raw-b.pub"
peer_0s="0s$(q pki --pub --type priv --in "$P/raw-b.key" --outform dnskey | tr -d ' \n')"
write_a "
authby = \"rsasig\"
leftrsasigkey = \"$zero_s\"
rightrsasigkey = \"$peer_0s\"
leftkey = \"raw.key\""
write_b '            auth = pubkey
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
sw_agree || nsl_die "SPIs differ (raw keys)"
[ "$(ctl_field A "s['ike_sas'][0]['peer_auth']")" = rsasig ] || nsl_die "--json peer_auth (raw key): $(ctl_field A "s['ike_sas'][0]")"
[ "$(ctl_field A "s['ike_sas'][0].get('peer_cert', '')")" = "" ] || nsl_die "a raw key has no certificate subject"
auth=$(grep "authentication of '192.0.2.1'" "$SW_DIR/charon.log" | tail -1 || true)
grep -q "successful" <<<"$auth" || nsl_die "strongSwan did not verify our raw-key signature: $(grep -i "authentication of" "$SW_DIR/charon.log" | tail -3)"
nsl_log "strongSwan: ${auth#*] }"
res=$(flows 300 0.005 raw capture)
pass "raw RSA keys (authby = rsasig, 0s form; ours from espresso genkey --rsa), IKEv1 main mode: numbered datagrams both ways, none lost; capture decrypted ($res)"
down_all

# ---- 4. a revoked certificate: refused, and the log says why
write_a '
authby = "pubkey"
leftcert = "gwa.crt"
leftkey = "gwa.key"
rightid = "C=CH, O=espresso v1, CN=*"
cacerts = "ca/pki.crt"
crls = "crl"' add
write_b '            auth = pubkey
            certs = gwb-rev.crt
            id = "C=CH, O=espresso v1, CN=revoked.example"' \
  '            auth = pubkey
            id = "C=CH, O=espresso v1, CN=gwa.example"'
sw_creds x509 "$P/gwb-rev.crt" private "$P/gwb-rev.key" x509ca "$P/ca.crt"
sw_load
grep -q reloaded <<<"$(ctl A reload)" || nsl_die "reload (revoked)"
swc --initiate --child net --timeout 8 >"$NSL_TMP/init4.log" 2>&1 && nsl_die "a revoked certificate was accepted"
line=""
for _ in $(seq 1 50); do
  line=$(ctl A log -n 200 | grep "is revoked by the CRL" || true)
  [ -n "$line" ] && break
  sleep 0.1
done
[ -n "$line" ] || nsl_die "no revocation line in espresso's log: $(ctl A log -n 30)"
grep -q "revoked.example" <<<"$line" && grep -q "key compromise" <<<"$line" || nsl_die "revocation line lacks subject or reason: $line"
n=$(ctl_field A "s['ikev1']['drops_by_reason'].get('auth', 0)")
[ "$n" -ge 1 ] || nsl_die "no auth drop counted: $(ctl_field A "s['ikev1']['drops_by_reason']")"
[ "$(ctl_field A "len([x for x in s.get('ike_sas', []) if x['state'] == 'ESTABLISHED'])")" = 0 ] || nsl_die "an ISAKMP SA with a revoked peer"
nsl_log "espresso: $(sed 's/^.*sw: //' <<<"$line")"
pass "revoked certificate refused by espresso (responder): the log names it and the reason, $n auth drop(s) counted"

echo "42_ikev1_rsasig: $passed passed, 0 failed"
