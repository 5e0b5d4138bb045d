#!/usr/bin/env bash
# Imported configurations against strongSwan 5.9.8 (charon, kernel-libipsec)
# in namespaces, traffic both ways (issue 14):
#   1. tests/configs/024-netns-openswan-gcm (Openswan/Libreswan ipsec.conf +
#      ipsec.secrets: ikev2=insist, aes_gcm128, dh19, pfs=no) imported with
#      `espresso import`; espresso initiates with `espresso ipsec up`; ping
#      both ways and a 1 MiB TCP echo; `espresso ipsec status` shows the SAs in
#      strongSwan's format with the SPIs strongSwan has; `ipsec down`.
#   2. tests/configs/025-netns-strongswan-roadwarrior (strongSwan stroke
#      ipsec.conf: %default, also=, two left subnets, right=%any) imported over
#      the first (the imported espresso.toml is replaced), `espresso ipsec
#      reload`; strongSwan initiates, espresso responds; traffic both ways.
#   2b. a strongSwan stroke conn with X.509 certificates from pki (leftcert,
#      a `ca` section, DN ids, rightca, `: RSA FILE` in ipsec.secrets)
#      imported and brought up by espresso; strongSwan verifies our RSA
#      signature; traffic both ways.
#   3. `espresso ipsec stop` takes the connection down (strongSwan's SA goes)
#      and stops the daemon; `espresso ipsec start` (no systemd here) starts
#      it again in the background with the imported configuration.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/tcp_echo.sh
source tests/lib/strongswan.sh
nsl_init impsw
nsl_topo_pair
sw_setup
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }
A="$NSL_TMP/A"
mkdir -p "$A"
cat >"$A/espresso.toml" <<CONF
# the test's own daemon settings; the imported configuration is included
include = ["imp/espresso.toml"]

[daemon]
shm = "$A/region.shm"
socket = "$A/espresso.sock"
metrics = "127.0.0.1:9717"
CONF
imp() { "$ESPRESSO_BIN" import --out "$A/imp" --local 192.0.2.1 "$@"; }
ping_ok() { local i; for i in 1 2 3; do [ "$(ctl_ping "$1" "$2" 10)" -ge 9 ] && return 0; done; return 1; }
traffic() {
  local name="$1" o i
  ping_ok "$NS_HA" 10.2.0.2 || nsl_die "$name: ping hA -> hB"
  ping_ok "$NS_HB" 10.1.0.2 || nsl_die "$name: ping hB -> hA"
  tcp_echo "$NS_HB" "$NS_HA" 10.2.0.2 1048576 || nsl_die "$name: TCP echo hA -> hB"
  o=$(ctl_field A "t('$name')['outbound']['packets']")
  i=$(ctl_field A "t('$name')['inbound']['packets']")
  [ "$o" -ge 200 ] && [ "$i" -ge 200 ] || nsl_die "$name: dataplane SA counters too low (out $o, in $i)"
  echo "$o $i"
}

# ---- 1. Openswan-style site-to-site, espresso initiates
c=tests/configs/024-netns-openswan-gcm
imp "$c/ipsec.conf" "$c/ipsec.secrets" >"$NSL_TMP/import1.txt" 2>&1 || nsl_die "import 024: $(cat "$NSL_TMP/import1.txt")"
grep -q "imported: 1 of 1" "$NSL_TMP/import1.txt" || nsl_die "import 024 report: $(cat "$NSL_TMP/import1.txt")"
[ "$(stat -c %a "$A/imp/secrets/netns-site.psk")" = 600 ] || nsl_die "secrets file mode $(stat -c %a "$A/imp/secrets/netns-site.psk")"
[ "$(stat -c %a "$A/imp/secrets")" = 700 ] || nsl_die "secrets dir mode"
grep -q 'ike = "aes128gcm16-prfsha256-ecp256"' "$A/imp/espresso.toml" || nsl_die "imported ike proposal"
pass "espresso import 024: one connection, secrets 0600 in a 0700 directory, check passed"
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=none
sw_start
ctl_dataplane A
ctl_daemon A
ctl A ipsec up netns-site | tee "$NSL_TMP/up1.txt" | grep -q "netns-site: initiating" || nsl_die "ipsec up: $(cat "$NSL_TMP/up1.txt")"
ctl_wait_state A netns-site up 20
read -r sw_in sw_out <<<"$(sw_child_spis)"
[ -n "${sw_in:-}" ] || nsl_die "strongSwan has no installed child SA"
st=$(ctl A ipsec status)
echo "$st"
grep -q "^Security Associations (1 up, 0 connecting):" <<<"$st" || nsl_die "ipsec status header"
grep -Eq "^ *netns-site\[[0-9]+\]: ESTABLISHED, 192.0.2.1\[192.0.2.1\]\.\.\.192.0.2.2\[192.0.2.2\]" <<<"$st" || nsl_die "ipsec status IKE SA line"
grep -Eq "netns-site\{[0-9]+\}: +INSTALLED, TUNNEL.*SPIs: ${sw_out}_i ${sw_in}_o" <<<"$st" || nsl_die "ipsec status child SA line (strongSwan has in $sw_in out $sw_out)"
grep -Eq "netns-site\{[0-9]+\}: +10.1.0.0/24 === 10.2.0.0/24" <<<"$st" || nsl_die "ipsec status selectors"
pass "imported Openswan conn: espresso ipsec up -> IKE and child SA with strongSwan; ipsec status shows strongSwan's SPIs (in $sw_out out $sw_in)"
read -r o i <<<"$(traffic netns-site)"
pass "traffic both ways through the imported Openswan conn (pings, 1 MiB TCP echo; $o packets out, $i in)"
ip netns exec "$NS_GWA" python3 -c 'import urllib.request;print(urllib.request.urlopen("http://127.0.0.1:9717/metrics",timeout=5).read().decode())' >"$NSL_TMP/metrics.txt"
grep -q '^espresso_ike_child_sa_info{conn="netns-site"' "$NSL_TMP/metrics.txt" || nsl_die "metrics lack the child SA"
if command -v promtool >/dev/null; then
  out=$(promtool check metrics <"$NSL_TMP/metrics.txt" 2>&1) && [ -z "$out" ] || nsl_die "promtool check metrics: $out"
fi
python3 tests/lib/dashboard_check.py packaging/grafana/espresso-dashboard.json "$NSL_TMP/metrics.txt" ||
  nsl_die "the dashboard queries metrics or labels that are not exported"
pass "metrics with an IKE SA up pass promtool; every metric and label of the Grafana dashboard is exported"
ctl A ipsec statusall | grep -q "IKE proposal: .*" || nsl_die "ipsec statusall"
ctl A ipsec down netns-site >/dev/null || nsl_die "ipsec down"
for _ in $(seq 1 50); do [ "$(sw_ike_count)" = 0 ] && break; sleep 0.1; done
[ "$(sw_ike_count)" = 0 ] || nsl_die "strongSwan keeps the IKE SA after ipsec down"
pass "ipsec down deletes the SAs on both sides"

# ---- 2. strongSwan stroke road warrior, strongSwan initiates
c=tests/configs/025-netns-strongswan-roadwarrior
imp "$c/ipsec.conf" "$c/ipsec.secrets" >"$NSL_TMP/import2.txt" 2>&1 || nsl_die "import 025: $(cat "$NSL_TMP/import2.txt")"
grep -q "imported: 1 of 1" "$NSL_TMP/import2.txt" || nsl_die "import 025 report: $(cat "$NSL_TMP/import2.txt")"
grep -q "leftfirewall=yes: no effect" "$NSL_TMP/import2.txt" || nsl_die "import 025 does not list leftfirewall"
ctl A ipsec reload >/dev/null || nsl_die "ipsec reload"
ctl_field A "[x['name'] for x in s['tunnels']]" | grep -q "'rw'" || nsl_die "rw not loaded after reload"
ctl_field A "[x['name'] for x in s['tunnels']]" | grep -q "netns-site" && nsl_die "netns-site still loaded after the second import"
sw_write_conf "aes128-sha256-ecp256" "aes128-sha256" child.start_action=none
sw_reload
swc --initiate --child net --timeout 15 >"$NSL_TMP/initiate2.log" 2>&1 || nsl_die "strongSwan initiate: $(tail -5 "$NSL_TMP/initiate2.log")"
ctl_wait_state A rw up 20
[ "$(ctl_field A "s['ike_sas'][0]['initiator']")" = False ] || nsl_die "espresso should be the responder"
grep -q "AES_CBC-128/HMAC_SHA2_256_128/PRF_HMAC_SHA2_256/ECP_256" <<<"$(swc --list-sas)" || nsl_die "strongSwan's IKE algorithms"
pass "imported strongSwan road-warrior conn (also=, %default, right=%any): strongSwan initiates, espresso responds, AES-CBC-128/SHA-256"
read -r o i <<<"$(traffic rw)"
pass "traffic both ways through the imported strongSwan conn ($o packets out, $i in)"
ctl A ipsec status | grep -Eq "rw\{[0-9]+\}: +10.1.0.0/24 === 10.2.0.0/24" || nsl_die "status: narrowed selectors of rw"
pass "ipsec status shows the narrowed selectors (10.1.0.0/24 of the two imported left subnets)"

# ---- 2b. strongSwan stroke conn with X.509 certificates (leftcert, a `ca`
# section, DN ids, rightca, `: RSA FILE` in ipsec.secrets), certificates from
# strongSwan's pki; espresso initiates
P="$NSL_TMP/pki"
mkdir -p "$P" "$SW_DIR/swanctl"/{x509,x509ca,private}
q() { "$@" 2>/dev/null; }
q pki --gen --type rsa --size 2048 --outform pem >"$P/ca.key"
q pki --self --ca --in "$P/ca.key" --type priv --dn "C=CH, O=espresso import, CN=Import Root CA" --outform pem >"$P/ca.crt"
for n in moon sun; do
  q pki --gen --type rsa --size 2048 --outform pem >"$P/$n.key"
  q pki --issue --cacert "$P/ca.crt" --cakey "$P/ca.key" --in "$P/$n.key" --type priv \
    --dn "C=CH, O=espresso import, CN=$n.example" --san "$n.example" --outform pem >"$P/$n.crt"
done
chmod 600 "$P/moon.key"
cat >"$NSL_TMP/certs.conf" <<CONF
ca import
	cacert=$P/ca.crt
	auto=add

conn certs
	keyexchange=ikev2
	left=192.0.2.1
	leftsubnet=10.1.0.0/24
	leftcert=$P/moon.crt
	leftid="C=CH, O=espresso import, CN=moon.example"
	right=192.0.2.2
	rightsubnet=10.2.0.0/24
	rightid="C=CH, O=espresso import, CN=sun.example"
	rightca="C=CH, O=espresso import, CN=Import Root CA"
	ike=aes256-sha256-modp2048!
	esp=aes256gcm16!
	auto=add
CONF
printf ': RSA %s\n' "$P/moon.key" >"$NSL_TMP/certs.secrets"
imp "$NSL_TMP/certs.conf" "$NSL_TMP/certs.secrets" >"$NSL_TMP/import3.txt" 2>&1 || nsl_die "import certs: $(cat "$NSL_TMP/import3.txt")"
grep -q "imported: 1 of 1" "$NSL_TMP/import3.txt" || nsl_die "import certs report: $(cat "$NSL_TMP/import3.txt")"
for want in "local_cert = \"$P/moon.crt\"" "local_key = \"$P/moon.key\"" 'auth = "pubkey"' \
  "cacerts = [\"/etc/ipsec.d/cacerts\", \"$P/ca.crt\"]" 'remote_ca = "C=CH, O=espresso import, CN=Import Root CA"' \
  'remote_id = "C=CH, O=espresso import, CN=sun.example"'; do
  grep -qxF "$want" "$A/imp/espresso.toml" || nsl_die "imported certificate conn lacks $want: $(cat "$A/imp/espresso.toml")"
done
ctl A ipsec reload >/dev/null || nsl_die "ipsec reload (certs)"
ctl_field A "[x['name'] for x in s['tunnels']]" | grep -q "'certs'" || nsl_die "certs not loaded after reload: $(ctl A status)"
cp "$P/sun.crt" "$SW_DIR/swanctl/x509/"; cp "$P/sun.key" "$SW_DIR/swanctl/private/"; cp "$P/ca.crt" "$SW_DIR/swanctl/x509ca/"
cat >"$SW_DIR/swanctl/swanctl.conf" <<CONF
connections {
    gw {
        version = 2
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = aes256-sha256-modp2048
        mobike = no
        local {
            auth = pubkey
            certs = sun.crt
            id = "C=CH, O=espresso import, CN=sun.example"
        }
        remote {
            auth = pubkey
            id = "C=CH, O=espresso import, CN=moon.example"
        }
        children {
            net {
                mode = tunnel
                local_ts = 10.2.0.0/24
                remote_ts = 10.1.0.0/24
                esp_proposals = aes256gcm16
                start_action = none
            }
        }
    }
}
CONF
swc --load-all --noprompt >"$NSL_TMP/swanctl-load3.log" 2>&1 || nsl_die "swanctl --load-all (certs): $(cat "$NSL_TMP/swanctl-load3.log")"
ctl A ipsec up certs | grep -q "certs: initiating" || nsl_die "ipsec up certs"
ctl_wait_state A certs up 20
grep -q "authentication of 'C=CH, O=espresso import, CN=moon.example' with RSA.* successful" "$SW_DIR/charon.log" ||
  nsl_die "strongSwan did not verify our certificate signature: $(grep -i authentication "$SW_DIR/charon.log" | tail -3)"
pass "imported certificate conn (leftcert, ca section, DN ids, rightca, : RSA FILE): espresso initiates, strongSwan verified our RSA signature"
read -r o i <<<"$(traffic certs)"
pass "traffic both ways through the imported certificate conn ($o packets out, $i in)"
ctl A ipsec down certs >/dev/null || nsl_die "ipsec down certs"
for _ in $(seq 1 50); do [ "$(sw_ike_count)" = 0 ] && break; sleep 0.1; done
# back to the road-warrior import for the stop/start part
imp "$c/ipsec.conf" "$c/ipsec.secrets" >"$NSL_TMP/import2b.txt" 2>&1 || nsl_die "re-import 025"
ctl A ipsec reload >/dev/null || nsl_die "ipsec reload (025 again)"
sw_write_conf "aes128-sha256-ecp256" "aes128-sha256" child.start_action=none
sw_reload
swc --initiate --child net --timeout 15 >"$NSL_TMP/initiate2b.log" 2>&1 || nsl_die "strongSwan initiate (025 again): $(tail -5 "$NSL_TMP/initiate2b.log")"
ctl_wait_state A rw up 20

# ---- 3. ipsec stop / ipsec start
ctl A ipsec stop >"$NSL_TMP/stop.txt" 2>&1 || nsl_die "ipsec stop: $(cat "$NSL_TMP/stop.txt")"
grep -q "rw: down" "$NSL_TMP/stop.txt" || nsl_die "ipsec stop did not take rw down: $(cat "$NSL_TMP/stop.txt")"
for _ in $(seq 1 50); do kill -0 "$CTL_A" 2>/dev/null || break; sleep 0.1; done
kill -0 "$CTL_A" 2>/dev/null && nsl_die "the daemon (pid $CTL_A) still runs after ipsec stop"
for _ in $(seq 1 50); do [ "$(sw_ike_count)" = 0 ] && break; sleep 0.1; done
[ "$(sw_ike_count)" = 0 ] || nsl_die "strongSwan keeps the IKE SA after ipsec stop"
pass "ipsec stop: rw deleted on both sides, daemon stopped"
ctl A ipsec start >"$NSL_TMP/start.txt" 2>&1 || nsl_die "ipsec start: $(cat "$NSL_TMP/start.txt")"
newpid=$(ctl_field A "s['control']['pid']")
NSL_PIDS+=("$newpid")   # stopped by the cleanup like every process of the test
[ "$newpid" != "$CTL_A" ] || nsl_die "ipsec start: same pid"
ctl A ipsec statusall | grep -Eq "^ +rw:  192.0.2.1...%any" || nsl_die "ipsec statusall after start: $(ctl A ipsec statusall)"
swc --initiate --child net --timeout 15 >"$NSL_TMP/initiate3.log" 2>&1 || nsl_die "strongSwan initiate after ipsec start"
ctl_wait_state A rw up 20
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping after ipsec start"
ctl A ipsec stop >/dev/null 2>&1 || nsl_die "second ipsec stop"
pass "ipsec start: the daemon runs again in the background (pid $newpid), strongSwan connects, traffic passes; stopped again"
echo "50_import_strongswan: $passed passed, 0 failed"
