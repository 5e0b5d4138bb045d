#!/usr/bin/env bash
# The long run of tests/netns/38_ike_rekey_zero_loss.sh (issue 15): numbered
# UDP datagrams at 500/s each way through the tunnel while child SAs are
# rekeyed every 4 s, >= 100 rekeys per variant (sw-child es-child collide ike
# nopfs es-es). A loss test, not a timing: it prints, per variant, datagrams
# sent/lost/duplicated and the rekeys counted in the logs, and fails on any
# loss, duplicate or missing rekey.
#
#   bench/e2e/rekey_soak.sh [--seconds S] [--variants "sw-child nopfs ..."] [--rt PRIO]
#
# --rt PRIO sets the SCHED_FIFO priority of the dataplanes' workers and
# charon (test 38's default: 50; --rt "" for normal scheduling): on a shared
# machine under load they are otherwise starved for seconds and lose datagrams
# to ring and socket overflows (counted, and logged per variant: dataplane
# rx_dropped, UDP RcvbufErrors) that no rekey caused.
#
# S (default 420: 104 rekeys at one every 4 s) is the length of each
# variant's flow. Needs root, strongSwan (tests/lib/strongswan.sh) and the
# ci binaries (ESPRESSO_TARGET, default target/ci).
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=420
variants="sw-child es-child collide ike nopfs es-es"
while [ $# -gt 0 ]; do
  case "$1" in
    --seconds) secs=$2; shift 2 ;;
    --variants) variants=$2; shift 2 ;;
    --rt) export ZL_RT=$2; shift 2 ;;
    *) echo "usage: $0 [--seconds S] [--variants LIST] [--rt PRIO]" >&2; exit 2 ;;
  esac
done
[ "$secs" -ge 404 ] || echo "note: $secs s per variant gives fewer than 100 rekeys" >&2
export ESPRESSO_TARGET="${ESPRESSO_TARGET:-$PWD/target/ci}"
ZL_SECONDS=$secs ZL_VARIANTS=$variants exec bash tests/netns/38_ike_rekey_zero_loss.sh
