#!/usr/bin/env bash
# Helpers for the control-plane namespace tests (tests/netns/2*_*.sh): the
# espresso daemon on each gateway of nsl_topo_pair, configured from TOML with
# manual keys, driving espresso-dataplane through shared memory.
#
#   source tests/lib/netns.sh; source tests/lib/control.sh
#   nsl_init NAME; nsl_topo_pair
#   ctl_setup                     # keys + configs: $CFG_A $CFG_B, regions $SHM_A $SHM_B
#   ctl_dataplane A|B             # espresso-dataplane --shm (sets NSL_PID, DP_A/DP_B)
#   ctl_daemon A|B                # espresso daemon (sets NSL_PID, CTL_A/CTL_B)
#   ctl A status --json           # the CLI on gateway A
#   ctl_wait_state A lan4 up      # waits for a tunnel state
# Tunnels (same on both sides, mirrored): lan4 = 10.1.0.0/24 <-> 10.2.0.0/24,
# lan6 = fd00:1::/64 <-> fd00:2::/64, both AES-128-GCM over IPv4 192.0.2.1 <-> .2.

ESPRESSO_BIN="${ESPRESSO_BIN:-${ESPRESSO_TARGET:-target/release}/espresso}"

ctl_key() { echo "0x$(python3 -c 'import os;print(os.urandom(20).hex())')"; }

# ctl_write_config SIDE: (re)writes $NSL_TMP/SIDE/espresso.toml from the
# current SPI variables (LAN4_SPI_AB etc.): A sends with *_AB, B with *_BA.
ctl_write_config() {
  local side="$1" dir="$NSL_TMP/$1" local remote lsub4 rsub4 lsub6 rsub6 in4 out4 in6 out6
  mkdir -p "$dir"
  if [ "$side" = A ]; then
    local=192.0.2.1 remote=192.0.2.2 lsub4=10.1.0.0/24 rsub4=10.2.0.0/24 lsub6=fd00:1::/64 rsub6=fd00:2::/64
    in4=$LAN4_SPI_BA out4=$LAN4_SPI_AB in6=$LAN6_SPI_BA out6=$LAN6_SPI_AB
  else
    local=192.0.2.2 remote=192.0.2.1 lsub4=10.2.0.0/24 rsub4=10.1.0.0/24 lsub6=fd00:2::/64 rsub6=fd00:1::/64
    in4=$LAN4_SPI_AB out4=$LAN4_SPI_BA in6=$LAN6_SPI_AB out6=$LAN6_SPI_BA
  fi
  cat >"$dir/espresso.toml" <<CONF
include = "tunnels/*.toml"

[daemon]
shm = "$dir/region.shm"
socket = "$dir/espresso.sock"
metrics = "127.0.0.1:9715"
CONF
  mkdir -p "$dir/tunnels"
  cat >"$dir/tunnels/lan4.toml" <<CONF
[[tunnel]]
name = "lan4"
local = "$local"
remote = "$remote"
local_subnets = ["$lsub4"]
remote_subnets = ["$rsub4"]
suite = "aes128gcm16"
spi_in = $in4
spi_out = $out4
keys = "lan4.keys"
CONF
  cat >"$dir/tunnels/lan6.toml" <<CONF
[[tunnel]]
name = "lan6"
left = "$local"
right = "$remote"
leftsubnet = "$lsub6"
rightsubnet = "$rsub6"
esp = "aes-128-gcm"
spi_in = "$in6"
spi_out = "$out6"
keys = "lan6.keys"
CONF
  local a4 b4 a6 b6
  if [ "$side" = A ]; then a4=$K4_AB b4=$K4_BA a6=$K6_AB b6=$K6_BA; else a4=$K4_BA b4=$K4_AB a6=$K6_BA b6=$K6_AB; fi
  ( umask 077
    printf 'enc_key_out = "%s"\nenc_key_in = "%s"\n' "$a4" "$b4" >"$dir/tunnels/lan4.keys"
    printf 'enc_key_out = "%s"\nenc_key_in = "%s"\n' "$a6" "$b6" >"$dir/tunnels/lan6.keys" )
  chmod 600 "$dir/tunnels/lan4.keys" "$dir/tunnels/lan6.keys"
}

ctl_setup() {
  [ -x "$ESPRESSO_BIN" ] || nsl_die "$ESPRESSO_BIN not built (cargo build --profile ci -p espresso-control)"
  K4_AB=$(ctl_key); K4_BA=$(ctl_key); K6_AB=$(ctl_key); K6_BA=$(ctl_key)
  LAN4_SPI_AB=0x1001 LAN4_SPI_BA=0x1002 LAN6_SPI_AB=8193 LAN6_SPI_BA=8194
  ctl_write_config A
  ctl_write_config B
  CFG_A="$NSL_TMP/A/espresso.toml" CFG_B="$NSL_TMP/B/espresso.toml"
  SHM_A="$NSL_TMP/A/region.shm" SHM_B="$NSL_TMP/B/region.shm"
}

ctl_ns() { if [ "$1" = A ]; then echo "$NS_GWA"; else echo "$NS_GWB"; fi; }

# ctl_dataplane SIDE [extra args]: the dataplane attached to the side's region.
ctl_dataplane() {
  local side="$1"; shift
  local core=0; [ "$side" = B ] && core=1
  nsl_dataplane "$(ctl_ns "$side")" "dp$side" --cores "$core" --idle backoff \
    --shm "$NSL_TMP/$side/region.shm" "$@"
  if [ "$side" = A ]; then DP_A=$NSL_PID; else DP_B=$NSL_PID; fi
}

# ctl_daemon SIDE: the control daemon; waits until it answers.
ctl_daemon() {
  local side="$1" log="ctl$1" n=0 f
  for f in "$NSL_TMP"/ctl"$side"*.log; do [ -e "$f" ] && n=$((n + 1)); done
  [ "$n" -gt 0 ] && log="ctl${side}_$n"
  nsl_bg "$(ctl_ns "$side")" "$log" env ESPRESSO_LOG=info "$ESPRESSO_BIN" --config "$NSL_TMP/$side/espresso.toml" daemon
  if [ "$side" = A ]; then CTL_A=$NSL_PID; else CTL_B=$NSL_PID; fi
  for _ in $(seq 1 100); do
    ctl "$side" status >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  nsl_die "control daemon $side did not answer"
}

# ctl SIDE args...: the CLI on a gateway.
ctl() {
  local side="$1"; shift
  ip netns exec "$(ctl_ns "$side")" "$ESPRESSO_BIN" --config "$NSL_TMP/$side/espresso.toml" "$@"
}

# ctl_field SIDE PYEXPR: evaluates PYEXPR over `status --json` as `s`
# (helper t(name) returns a tunnel).
ctl_field() {
  ctl "$1" status --json | python3 -c "
import json,sys
s=json.load(sys.stdin)
def t(n): return [x for x in s['tunnels'] if x['name']==n][0]
print($2)"
}

# ctl_wait_state SIDE TUNNEL STATE [SECONDS]
ctl_wait_state() {
  local t=$(( ${4:-15} * 10 ))
  for _ in $(seq 1 "$t"); do
    [ "$(ctl_field "$1" "t('$2')['state']" 2>/dev/null)" = "$3" ] && return 0
    sleep 0.1
  done
  nsl_die "gateway $1: tunnel $2 not $3 (is $(ctl_field "$1" "t('$2')['state']" 2>/dev/null))"
}

# ctl_metrics SIDE: the Prometheus text of the side's daemon.
ctl_metrics() {
  ip netns exec "$(ctl_ns "$1")" python3 -c \
    'import urllib.request;print(urllib.request.urlopen("http://127.0.0.1:9715/metrics",timeout=5).read().decode())'
}

# ctl_ping NS ADDR COUNT: pings, prints the number of replies.
ctl_ping() {
  local fam=""; case "$2" in *:*) fam=-6;; esac
  ip netns exec "$1" ping $fam -c "$3" -i 0.05 -W 1 "$2" 2>/dev/null | sed -n 's/.* \([0-9]*\) received.*/\1/p'
}

# ctl_installs SIDE SPI: how many times the side's dataplane installed an SA with SPI.
ctl_installs() {
  local spi; spi=$(printf '%#010x' "$2")
  grep -c "SA $spi .* installed" "$NSL_TMP/dp$1.log" || true
}
