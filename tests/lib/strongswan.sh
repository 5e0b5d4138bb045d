#!/usr/bin/env bash
# strongSwan 5.9.8 (Debian strongswan-charon + kernel-libipsec) as the IKE peer
# on gateway B of nsl_topo_pair, following /work/shared/docs/interop/strongswan-recipe.sh:
# a private strongswan.conf (STRONGSWAN_CONF), a private /run in its own mount
# namespace (charon's pid file is compiled in), userspace ESP (libipsec always
# uses UDP encapsulation on 4500). Needs tests/lib/netns.sh.
#
#   sw_setup                       # dirs, forwarding on gwB
#   sw_write_conf IKE ESP [KEY=VALUE...]   # swanctl.conf (connection "gw", child "net"; SW_VERSION=1: IKEv1)
#   sw_start                       # charon in gwB (sets SW_PID), waits for vici
#   swc --list-sas                 # swanctl against it
#   sw_stop                        # stops charon by PID
# Extra KEY=VALUE pairs go into the connection (e.g. dpd_delay=2s) or, prefixed
# with child., into the child (child.rekey_time=20s). SW_LOCAL_ADDRS (192.0.2.2),
# SW_REMOTE_ADDRS (192.0.2.1) and SW_MOBIKE (no) set those connection fields.

SW_CHARON=/usr/lib/ipsec/charon
SW_PSK="${SW_PSK:-espresso-interop-psk-0123456789}"

sw_available() {
  [ -x "$SW_CHARON" ] && command -v swanctl >/dev/null &&
    [ -e /usr/lib/ipsec/plugins/libstrongswan-kernel-libipsec.so ] &&
    [ -e /usr/lib/ipsec/plugins/libstrongswan-openssl.so ] && [ -e /usr/lib/ipsec/plugins/libstrongswan-gcm.so ]
}

sw_setup() {
  sw_available || nsl_die "strongSwan missing (apt-get install strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins)"
  SW_DIR="$NSL_TMP/sw"
  mkdir -p "$SW_DIR/run" "$SW_DIR/swanctl"
  ip netns exec "$NS_GWB" sysctl -qw net.ipv4.ip_forward=1
  ip netns exec "$NS_GWB" sysctl -qw net.ipv4.conf.all.rp_filter=0
  ip netns exec "$NS_GWB" sysctl -qw net.ipv4.conf.default.rp_filter=0
  cat >"$SW_DIR/strongswan.conf" <<EOF
charon {
    load_modular = no
    load = random nonce openssl pem pkcs1 x509 pubkey aes sha1 sha2 hmac gcm kdf drbg kernel-libipsec! kernel-netlink socket-default vici updown
    install_routes = yes
    routing_table = 220
    routing_table_prio = 220
    retransmit_tries = ${SW_RETRANSMIT_TRIES:-3}
    retransmit_timeout = 1.0
    retransmit_base = 1.4
    filelog {
        main {
            path = $SW_DIR/charon.log
            time_format = %T
            append = yes
            flush_line = yes
            default = 1
            ike = 2
            chd = 2
            cfg = 2
            knl = 1
            net = 1
            enc = 1
        }
    }
    plugins {
        vici {
            socket = unix://$SW_DIR/run/charon.vici
        }
    }
}
swanctl {
    socket = unix://$SW_DIR/run/charon.vici
    load = pem pkcs1 x509 pubkey openssl random
}
EOF
}

# sw_write_conf IKE_PROPOSALS ESP_PROPOSALS [key=value ...]
sw_write_conf() {
  local ike="$1" esp="$2"; shift 2
  local conn_extra="" child_extra="" kv
  for kv in "$@"; do
    case "$kv" in
      child.*) child_extra+="                ${kv#child.}"$'\n' ;;
      *) conn_extra+="        $kv"$'\n' ;;
    esac
  done
  cat >"$SW_DIR/swanctl/swanctl.conf" <<EOF
connections {
    gw {
        version = ${SW_VERSION:-2}
        local_addrs = ${SW_LOCAL_ADDRS:-192.0.2.2}
        remote_addrs = ${SW_REMOTE_ADDRS:-192.0.2.1}
        proposals = $ike
        mobike = ${SW_MOBIKE:-no}
$conn_extra        local {
            auth = psk
            id = 192.0.2.2
        }
        remote {
            auth = psk
            id = ${SW_REMOTE_ID:-192.0.2.1}
        }
        children {
            net {
                mode = tunnel
                local_ts = 10.2.0.0/24
                remote_ts = 10.1.0.0/24
                esp_proposals = $esp
$child_extra            }
        }
    }
}
secrets {
    ike-gw {
        id-a = ${SW_REMOTE_ID:-192.0.2.1}
        id-b = 192.0.2.2
        secret = "$SW_PSK"
    }
}
EOF
}

swc() {
  ip netns exec "$NS_GWB" env STRONGSWAN_CONF="$SW_DIR/strongswan.conf" \
    SWANCTL_DIR="$SW_DIR/swanctl" swanctl "$@"
}

sw_start() {
  rm -f "$SW_DIR/run/charon.vici" "$SW_DIR/run/charon.pid"   # left by a killed charon
  nsl_bg "$NS_GWB" charon unshare --mount --propagation private \
    sh -c "mount --bind '$SW_DIR/run' /run && exec env STRONGSWAN_CONF='$SW_DIR/strongswan.conf' $SW_CHARON"
  SW_PID=$NSL_PID
  local i
  for i in $(seq 1 100); do
    [ -S "$SW_DIR/run/charon.vici" ] && break
    sleep 0.1
  done
  [ -S "$SW_DIR/run/charon.vici" ] || nsl_die "charon did not start"
  for i in $(seq 1 50); do
    [ "$(cat /proc/$SW_PID/comm 2>/dev/null)" = charon ] && break
    sleep 0.1
  done
  [ "$(cat /proc/$SW_PID/comm 2>/dev/null)" = charon ] || nsl_die "PID $SW_PID is not charon"
  swc --load-all >"$NSL_TMP/swanctl-load.log" 2>&1 || nsl_die "swanctl --load-all: $(cat "$NSL_TMP/swanctl-load.log")"
}

sw_reload() {
  swc --load-all >"$NSL_TMP/swanctl-load.log" 2>&1 || nsl_die "swanctl --load-all: $(cat "$NSL_TMP/swanctl-load.log")"
}

sw_stop() { [ -n "${SW_PID:-}" ] && nsl_stop "$SW_PID"; SW_PID=""; }

# sw_child_spis: "IN OUT" SPIs (hex, no 0x) of B's installed child "net", or nothing.
sw_child_spis() {
  swc --list-sas --raw 2>/dev/null | python3 -c '
import sys,re
t=sys.stdin.read()
m=re.findall(r"state=INSTALLED.*?spi-in=([0-9a-f]+) spi-out=([0-9a-f]+)", t)
if m: print(m[-1][0], m[-1][1])'
}

# sw_ike_count: established IKE SAs of B.
sw_ike_count() { swc --list-sas --raw 2>/dev/null | grep -o "state=ESTABLISHED" | wc -l; }

# sw_our_spis: "IN OUT" SPIs (hex, no 0x) of espresso's tunnel "sw" on gateway A
# (needs tests/lib/control.sh).
sw_our_spis() { ctl_field A "'%08x %08x' % (t('sw')['inbound']['spi'], t('sw')['outbound']['spi'])"; }

# sw_agree: espresso's "sw" and strongSwan's child show the same SPIs (polled
# for 3 s: a rekey may be finishing); otherwise logs both and fails.
sw_agree() {
  local a b si so
  for _ in $(seq 1 30); do
    read -r a b <<<"$(sw_our_spis)"
    read -r si so <<<"$(sw_child_spis)"
    [ -n "$a" ] && [ "$a" = "${so:-}" ] && [ "$b" = "${si:-}" ] && return 0
    sleep 0.1
  done
  nsl_log "SPIs: espresso in/out $a/$b, strongSwan in/out ${si:-?}/${so:-?}"
  swc --list-sas --raw >&2 || true
  return 1
}
