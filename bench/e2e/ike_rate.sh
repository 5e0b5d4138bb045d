#!/usr/bin/env bash
# IKE SA setups per second on one core: espresso's IKEv2 engine against
# strongSwan 5.9.8 on the same machine, in one run.
#
#   bench/e2e/ike_rate.sh [--setups N] [--ref-setups M] [--core C]
#
# Both sides do the same work per setup: IKE_SA_INIT + IKE_AUTH with a
# pre-shared key, IKE aes128gcm16-prfsha256-ecp256, one child SA aes128gcm16
# (no PFS), initiator and responder on the same core C.
#   ours:      target/ci/ike_rate: an initiator and a responder engine in one
#              thread, datagrams handed over in memory (16 setups in flight);
#              child SAs are computed (keys, SaParams) but not pushed to a dataplane.
#   reference: two charons (kernel-libipsec: child SAs installed in its userspace
#              SAD) in two network namespaces joined by a veth pair, both pinned
#              to core C (taskset); the initiator has M connections with
#              start_action = start, loaded at once; the time (charon's log
#              clock, ms) from the first "initiating IKE_SA" on the initiator to
#              the M-th "IKE_SA ... established" on the responder.
# Prints: ike_setups_per_s: ours X, reference Y, ratio Z
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
setups=3000
ref_setups=300
core=0
while [ $# -gt 0 ]; do
  case "$1" in
    --setups) setups=$2; shift 2 ;;
    --ref-setups) ref_setups=$2; shift 2 ;;
    --core) core=$2; shift 2 ;;
    *) echo "usage: $0 [--setups N] [--ref-setups M] [--core C]" >&2; exit 2 ;;
  esac
done
bin="${ESPRESSO_TARGET:-target/ci}/ike_rate"
[ -x "$bin" ] || { echo "$bin not built (cargo build --profile ci -p espresso-bench --bin ike_rate)" >&2; exit 1; }
CHARON=/usr/lib/ipsec/charon
[ -x "$CHARON" ] && [ -e /usr/lib/ipsec/plugins/libstrongswan-openssl.so ] ||
  { echo "strongSwan with the openssl plugin needed (libstrongswan-standard-plugins)" >&2; exit 1; }

nsl_init ikerate
nsl_ns A; NA=$NSL_NS
nsl_ns B; NB=$NSL_NS
nsl_veth "$NA" v "$NB" v
ip -n "$NA" addr add 192.0.2.1/24 dev v
ip -n "$NB" addr add 192.0.2.2/24 dev v
ip -n "$NA" addr add 10.1.0.1/24 dev lo
ip -n "$NB" addr add 10.2.0.1/24 dev lo

conf() { # conf SIDE ME PEER
  local d="$NSL_TMP/$1"
  mkdir -p "$d/run" "$d/swanctl"
  cat >"$d/strongswan.conf" <<EOF
charon {
    load_modular = no
    load = random nonce openssl pem pkcs1 x509 pubkey aes sha1 sha2 hmac gcm kdf drbg kernel-libipsec! kernel-netlink socket-default vici
    install_routes = no
    cookie_threshold = 1000000
    block_threshold = 1000000
    init_limit_half_open = 0
    ikesa_table_size = 4096
    ikesa_table_segments = 16
    retransmit_timeout = 0.5
    retransmit_base = 1.2
    retransmit_tries = 10
    filelog {
        main {
            path = $d/charon.log
            time_format = %s
            time_add_ms = yes
            flush_line = yes
            default = 0
            ike = 1
        }
    }
    plugins {
        vici {
            socket = unix://$d/run/charon.vici
        }
    }
}
swanctl {
    socket = unix://$d/run/charon.vici
    load = pem pkcs1 x509 pubkey openssl random
}
EOF
}
conf A; conf B
psk='ike-rate-benchmark-psk-0123456789'
# responder: one connection
cat >"$NSL_TMP/B/swanctl/swanctl.conf" <<EOF
connections {
    gw {
        local_addrs = 192.0.2.2
        remote_addrs = 192.0.2.1
        proposals = aes128gcm16-prfsha256-ecp256
        unique = never
        mobike = no
        local { auth = psk
                id = 192.0.2.2 }
        remote { auth = psk
                 id = %any }
        children { net { local_ts = 10.2.0.0/24
                         remote_ts = 10.1.0.0/24
                         esp_proposals = aes128gcm16 } }
    }
}
secrets { ike { secret = "$psk" } }
EOF
# initiator: M connections that start when loaded (each its own identity, so
# that charon does not fold them into one IKE SA)
{
  echo "connections {"
  for i in $(seq 1 "$ref_setups"); do
    cat <<EOF
    gw$i {
        local_addrs = 192.0.2.1
        remote_addrs = 192.0.2.2
        proposals = aes128gcm16-prfsha256-ecp256
        unique = never
        mobike = no
        local { auth = psk
                id = gw$i.example }
        remote { auth = psk
                 id = 192.0.2.2 }
        children { net { local_ts = 10.1.0.0/24
                         remote_ts = 10.2.0.0/24
                         esp_proposals = aes128gcm16
                         start_action = start } }
    }
EOF
  done
  echo "}"
  echo "secrets { ike { secret = \"$psk\" } }"
} >"$NSL_TMP/A/swanctl/swanctl.conf"

start_charon() { # SIDE NS
  local d="$NSL_TMP/$1"
  nsl_bg "$2" "charon$1" taskset -c "$core" unshare --mount --propagation private \
    sh -c "mount --bind '$d/run' /run && exec env STRONGSWAN_CONF='$d/strongswan.conf' $CHARON"
  for _ in $(seq 1 100); do [ -S "$d/run/charon.vici" ] && return 0; sleep 0.1; done
  nsl_die "charon $1 did not start"
}
swc() { local s=$1; shift; ip netns exec "$(eval echo \$N$s)" env STRONGSWAN_CONF="$NSL_TMP/$s/strongswan.conf" SWANCTL_DIR="$NSL_TMP/$s/swanctl" swanctl "$@"; }
start_charon B "$NB"
start_charon A "$NA"
swc B --load-all >/dev/null 2>&1
swc A --load-creds >/dev/null 2>&1

established() { grep -c "IKE_SA gw\[[0-9]*\] established" "$NSL_TMP/B/charon.log" 2>/dev/null || true; }
t0=$(date +%s.%N)
swc A --load-conns >/dev/null 2>&1
while [ "$(established)" -lt "$ref_setups" ]; do
  sleep 0.05
  if [ "$(echo "$(date +%s.%N) - $t0 > 120" | bc)" = 1 ]; then
    nsl_die "strongSwan: only $(established) of $ref_setups IKE SAs after 120 s"
  fi
done
# charon's own clock (ms): first initiation on A to the M-th IKE SA on B
# (excludes swanctl reading and sending the configuration before the first one)
first=$(grep -m1 "initiating IKE_SA" "$NSL_TMP/A/charon.log" | awk '{print $1}')
last=$(grep "IKE_SA gw\[[0-9]*\] established" "$NSL_TMP/B/charon.log" | sed -n "${ref_setups}p" | awk '{print $1}')
[ -n "$first" ] && [ -n "$last" ] || nsl_die "charon log timestamps missing"
ref=$(echo "$ref_setups / ($last - $first)" | bc -l)
children=$(grep -c "CHILD_SA net{[0-9]*} established" "$NSL_TMP/B/charon.log" || true)
[ "$children" -ge "$ref_setups" ] || nsl_die "strongSwan: $children child SAs for $ref_setups IKE SAs"
printf 'reference: %d strongSwan IKE SAs (+ child SAs) in %.3f s on core %s\n' "$ref_setups" "$(echo "$last - $first" | bc -l)" "$core"

out=$(taskset -c "$core" "$bin" --setups "$setups")
echo "$out"
ours=$(sed -n 's/^ike_setups_per_s ours: \([0-9.]*\).*/\1/p' <<<"$out")
[ -n "$ours" ] || nsl_die "ike_rate printed no figure"
printf 'ike_setups_per_s: ours %.0f, reference %.0f, ratio %.2f\n' "$ours" "$ref" "$(echo "$ours / $ref" | bc -l)"
