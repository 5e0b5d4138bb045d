#!/usr/bin/env bash
# Certificates for the strongSwan interop tests with signatures
# (tests/netns/33_ike_certs.sh, 42_ikev1_rsasig.sh): a CA made with
# strongSwan's `pki`, end-entity certificates, a CRL, and strongSwan's
# credential directories and connection with certificate authentication.
# Needs tests/lib/netns.sh and strongswan.sh (after sw_setup).
#
#   pki_init                       # $P, swanctl's credential dirs, the plugins
#                                  # (pkcs8, revocation, constraints) in strongswan.conf
#   pki_ca NAME DN                 # self-signed RSA-2048 CA $P/NAME.{key,crt}
#   pki_ee NAME ISSUER TYPE SIZE DN [SAN...]   # $P/NAME.{key,crt} issued by ISSUER
#   pki_revoke CA CERT             # $P/CA.crl revoking CERT (key compromise)
#   sw_creds KIND FILE [KIND FILE...]   # strongSwan's credential dirs (cleared first)
#   sw_load                        # swanctl --load-creds --clear, --load-conns
#   sw_cert_conf VERSION IKE LOCAL REMOTE [CONN LINES]
#                                  # connection "gw", child "net" (aes128gcm16), with
#                                  # LOCAL and REMOTE the bodies of local {} and remote {}

pki_q() { "$@" 2>/dev/null; }

pki_init() {
  command -v pki >/dev/null || nsl_die "strongSwan's pki tool missing (apt-get install strongswan-pki)"
  # strongSwan also needs PKCS#8 keys, CRL checking and basicConstraints/pathlen
  sed -i 's/^\(    load = random nonce openssl pem pkcs1\) x509/\1 pkcs8 x509 revocation constraints/' "$SW_DIR/strongswan.conf"
  sed -i 's/^\(    load = pem pkcs1\) x509/\1 pkcs8 x509/' "$SW_DIR/strongswan.conf"
  grep -q "pkcs8 x509 revocation constraints" "$SW_DIR/strongswan.conf" || nsl_die "strongswan.conf plugin list"
  P="$NSL_TMP/pki"
  mkdir -p "$P" "$SW_DIR/swanctl"/{x509,x509ca,x509crl,private,pubkey}
}

pki_ca() {
  pki_q pki --gen --type rsa --size 2048 --outform pem >"$P/$1.key"
  pki_q pki --self --ca --in "$P/$1.key" --type priv --dn "$2" --outform pem >"$P/$1.crt"
}

pki_ee() {
  local n=$1 is=$2 t=$3 sz=$4 dn=$5 s; shift 5
  local sans=(); for s in "$@"; do sans+=(--san "$s"); done
  # shellcheck disable=SC2086
  pki_q pki --gen --type "$t" ${sz:+--size $sz} --outform pem >"$P/$n.key"
  pki_q pki --issue --cacert "$P/$is.crt" --cakey "$P/$is.key" --in "$P/$n.key" --type priv \
    --dn "$dn" "${sans[@]}" --outform pem >"$P/$n.crt"
}

pki_revoke() {
  pki_q pki --signcrl --cacert "$P/$1.crt" --cakey "$P/$1.key" --reason key-compromise --cert "$P/$2.crt" \
    --outform pem >"$P/$1.crl"
}

sw_creds() {
  rm -f "$SW_DIR/swanctl"/{x509,x509ca,x509crl,private,pubkey}/*
  local kind f
  while [ $# -gt 0 ]; do kind=$1 f=$2; shift 2; cp "$f" "$SW_DIR/swanctl/$kind/"; done
}

sw_load() {
  swc --load-creds --clear --noprompt >"$NSL_TMP/sw-creds.log" 2>&1 || nsl_die "swanctl --load-creds: $(cat "$NSL_TMP/sw-creds.log")"
  swc --load-conns >"$NSL_TMP/sw-conns.log" 2>&1 || nsl_die "swanctl --load-conns: $(cat "$NSL_TMP/sw-conns.log")"
}

sw_cert_conf() {
  cat >"$SW_DIR/swanctl/swanctl.conf" <<EOF
connections {
    gw {
        version = $1
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = $2
${5:+$5
}        local {
$3
        }
        remote {
$4
        }
        children {
            net {
                mode = tunnel
                local_ts = 10.2.0.0/24
                remote_ts = 10.1.0.0/24
                esp_proposals = aes128gcm16
                start_action = none
            }
        }
    }
}
EOF
}
