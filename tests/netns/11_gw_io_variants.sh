#!/usr/bin/env bash
# The AF_PACKET I/O variants forward correctly, each through an ESP tunnel
# (so in-place encap uses the frame headroom/tailroom of every ring type):
# TPACKET_V3 rx with sendmmsg, TPACKET_V2 rx with a TX ring, V3 + TX ring,
# two workers per gateway sharing the interfaces through PACKET_FANOUT, and
# options from the [dataplane] table of the configuration file.
# Each: ping both ways and a 512 KiB TCP echo with every byte checked.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/tcp_echo.sh
nsl_init iovar
nsl_topo_pair
KAB=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
KBA=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
python3 tests/lib/static_sa.py "$NSL_TMP/a.sa" --side a --key-ab "$KAB" --key-ba "$KBA"
python3 tests/lib/static_sa.py "$NSL_TMP/b.sa" --side b --key-ab "$KAB" --key-ba "$KBA"

# The last variant takes its options from the [dataplane] table of the
# configuration file the control daemon reads (espresso check accepts it).
cat >"$NSL_TMP/espresso.toml" <<'CONF'
[daemon]
log_lines = 100

[dataplane]
backend = "afpacket"
cores = [0, 1]
rx_ring = "v3"
tx = "sendmmsg"
idle = "backoff"
CONF
"${ESPRESSO_TARGET:-target/release}/espresso" --config "$NSL_TMP/espresso.toml" check >/dev/null \
  || nsl_die "espresso check refuses a [dataplane] table"

passed=0
for v in "--rx-ring v3 --tx sendmmsg" "--rx-ring v2 --tx ring" "--rx-ring v3 --tx ring" "--cores 0,1" \
         "--config $NSL_TMP/espresso.toml"; do
  cores_a="--cores 0"; cores_b="--cores 1"
  case "$v" in *--cores*|*--config*) cores_a=""; cores_b="";; esac
  # shellcheck disable=SC2086
  nsl_dataplane "$NS_GWA" gwA $cores_a --idle backoff $v --static-sa "$NSL_TMP/a.sa"; pa=$NSL_PID
  # shellcheck disable=SC2086
  nsl_dataplane "$NS_GWB" gwB $cores_b --idle backoff $v --static-sa "$NSL_TMP/b.sa"; pb=$NSL_PID
  nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
  nsl_expect "[$v] ping hA -> hB" nsl_x "$NS_HA" ping -c 3 -i 0.1 -W 2 10.2.0.2
  nsl_expect "[$v] ping hB -> hA" nsl_x "$NS_HB" ping -c 3 -i 0.1 -W 2 10.1.0.2
  nsl_expect "[$v] TCP echo hA -> hB" tcp_echo "$NS_HB" "$NS_HA" 10.2.0.2 524288
  trunc=$(nsl_stat gwA "s['drops'].get('no_room',0) + s['drops'].get('truncated',0)")
  [ "$trunc" -eq 0 ] || nsl_die "[$v] no_room/truncated drops on gwA: $trunc"
  case "$v" in *--config*)
    nw=$(nsl_stat gwA "len(s['workers'])")
    [ "$nw" -eq 2 ] || nsl_die "[dataplane] cores = [0, 1] not applied ($nw workers)"
    grep -q "AF_PACKET V3 rx" "$NSL_TMP/gwA.log" || nsl_die "[dataplane] rx_ring = v3 not applied: $(grep forwarding "$NSL_TMP/gwA.log")"
    nsl_log "ok: [dataplane] table of the configuration file applied (2 workers, V3 rx)"
    passed=$((passed + 1));;
  esac
  nsl_stop "$pa"; nsl_stop "$pb"
  passed=$((passed + 3))
done
echo "11_gw_io_variants: $passed passed, 0 failed"
