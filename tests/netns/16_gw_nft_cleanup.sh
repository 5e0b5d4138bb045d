#!/usr/bin/env bash
# espresso-dataplane --configure-kernel installs the nftables tables
# `inet espresso_dp` and (AF_PACKET ports) `netdev espresso_dp`, the latter
# on the ingress hook of both ports, in its namespace and deletes them on
# every exit path:
# SIGTERM, SIGINT (both exit 0), and an error after the table was made
# (an inside interface that does not exist: exit 1).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
command -v nft >/dev/null || nsl_die "nft not installed"
nsl_init nftcl
nsl_topo_pair
BIN="${ESPRESSO_DP_BIN:-${ESPRESSO_TARGET:-target/release}/espresso-dataplane}"

has_table() { ip netns exec "$NS_GWA" nft list table inet espresso_dp >/dev/null 2>&1; }
has_ingress() { ip netns exec "$NS_GWA" nft list table netdev espresso_dp >/dev/null 2>&1; }

for sig in TERM INT; do
  nsl_dataplane "$NS_GWA" "dp$sig" --cores 0 --idle backoff
  pid=$NSL_PID
  has_table || nsl_die "no table inet espresso_dp while the dataplane runs"
  has_ingress || nsl_die "no table netdev espresso_dp while the dataplane runs"
  ing=$(ip netns exec "$NS_GWA" nft list table netdev espresso_dp)
  grep -Eq 'devices = \{ "?(lan"?, "?wan|wan"?, "?lan)"? \}' <<<"$ing" ||
    nsl_die "the ingress chain is not on both ports: $ing"
  kill -"$sig" "$pid"
  rc=0
  for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  wait "$pid" || rc=$?
  [ "$rc" = 0 ] || nsl_die "dataplane exit code $rc after SIG$sig"
  if has_table; then nsl_die "table inet espresso_dp left behind after SIG$sig"; fi
  if has_ingress; then nsl_die "table netdev espresso_dp left behind after SIG$sig"; fi
  grep -q "table netdev espresso_dp deleted" "$NSL_TMP/dp$sig.log" || nsl_die "ingress table deletion not logged (SIG$sig)"
  grep -q "table inet espresso_dp deleted" "$NSL_TMP/dp$sig.log" || nsl_die "deletion not logged (SIG$sig)"
  nsl_log "ok: SIG$sig: exit 0, tables inet and netdev espresso_dp deleted"
done

rc=0
ip netns exec "$NS_GWA" env RUST_LOG=info "$BIN" --inside nosuch0 --outside wan --configure-kernel \
  --cores 0 >"$NSL_TMP/dperr.log" 2>&1 || rc=$?
cat "$NSL_TMP/dperr.log" | tail -2
[ "$rc" = 1 ] || nsl_die "bad interface: exit $rc (want 1)"
grep -q "nosuch0" "$NSL_TMP/dperr.log" || nsl_die "the error does not name the interface"
if has_table; then nsl_die "table inet espresso_dp left behind after a start-up error"; fi
if has_ingress; then nsl_die "table netdev espresso_dp left behind after a start-up error"; fi
grep -q "table inet espresso_dp deleted" "$NSL_TMP/dperr.log" || nsl_die "deletion not logged (error)"
nsl_log "ok: start-up error after the table was made: exit 1, table deleted"
echo "16_gw_nft_cleanup: 3 passed, 0 failed"
