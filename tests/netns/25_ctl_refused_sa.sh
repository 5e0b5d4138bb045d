#!/usr/bin/env bash
# An SA the dataplane cannot build is reported back through shared memory
# (DataplaneEnd::refuse_sa) and `espresso status` shows the tunnel in error
# with the reason, instead of pending forever: gwA's dataplane runs with
# `--crypto multibuffer`, which does AES-GCM only, and the tunnel uses
# AES-CBC-128 + HMAC-SHA-256. A dataplane with a backend that can do the
# suite, started in its place, gets the SAs and the tunnel comes up.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
[ -x "$ESPRESSO_BIN" ] || nsl_die "$ESPRESSO_BIN not built"
nsl_init refsa
nsl_topo_pair
dir="$NSL_TMP/A"
mkdir -p "$dir"
cat >"$dir/espresso.toml" <<CONF
[daemon]
shm = "$dir/region.shm"
socket = "$dir/espresso.sock"
metrics = false

[[tunnel]]
name = "cbc"
local = "192.0.2.1"
remote = "192.0.2.2"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.2.0.0/24"]
suite = "aes128-sha256"
spi_in = 0x3002
spi_out = 0x3001
keys = "cbc.keys"
CONF
hexkey() { python3 -c "import os;print(os.urandom($1).hex())"; }
( umask 077
  printf 'enc_key_in = "0x%s"\nenc_key_out = "0x%s"\nauth_key_in = "0x%s"\nauth_key_out = "0x%s"\n' \
    "$(hexkey 16)" "$(hexkey 16)" "$(hexkey 32)" "$(hexkey 32)" >"$dir/cbc.keys" )

ctl_dataplane A --crypto multibuffer
ctl_daemon A
ctl_wait_state A cbc error
reason=$(ctl_field A "t('cbc')['reason']")
echo "$reason"
grep -q "the dataplane refused the inbound SA spi 0x3002: its crypto backend cannot do this suite" <<<"$reason" \
  || nsl_die "status reason: $reason"
table=$(ctl A status)
grep -Eq "^cbc +error \(the dataplane refused the inbound SA spi 0x3002: its crypto backend" <<<"$table" \
  || nsl_die "status table: $table"
grep -q "SA 0x00003002 Inbound refused: crypto backend multibuffer does not implement aes-cbc-128" "$NSL_TMP/dpA.log" \
  || nsl_die "dataplane log lacks the full reason"
nsl_log "ok: refused SA shown in status with its reason: $reason"

nsl_stop "$DP_A"
ctl_dataplane A --crypto rustcrypto
ctl_wait_state A cbc up
nsl_log "ok: a dataplane that can build the SA gets it; cbc is up"
echo "25_ctl_refused_sa: 2 passed, 0 failed"
