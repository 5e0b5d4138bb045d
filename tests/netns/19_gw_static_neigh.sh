#!/usr/bin/env bash
# The dataplane's neighbour resolution (worker/netlink.rs) against the real
# kernel: a next hop the operator pinned with a static (PERMANENT) entry, or
# one the kernel has REACHABLE, must never be sent an NTF_USE request (Linux
# >= 5.16 turns a PERMANENT entry dynamic on NTF_USE and probes it; with no
# answer it goes FAILED and the gateway stops forwarding to a peer the
# operator configured by hand). A next hop without an entry must be asked
# for (the kernel starts ARP: INCOMPLETE). Runs examples/neigh_resolve,
# which calls the same function as the netlink thread.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
nsl_init stneigh
EX="${ESPRESSO_TARGET:-target/release}/examples/neigh_resolve"
[ -x "$EX" ] || nsl_die "$EX not built (cargo build --examples)"
nsl_ns a; A=$NSL_NS
nsl_ns b; B=$NSL_NS
nsl_veth "$A" wan "$B" peer
ip -n "$A" addr add 172.31.0.1/24 dev wan
ip -n "$A" -6 addr add fd00:31::1/64 dev wan nodad
ip -n "$A" neigh replace 172.31.0.9 lladdr 02:00:00:00:00:09 dev wan nud permanent
ip -n "$A" -6 neigh replace fd00:31::9 lladdr 02:00:00:00:00:09 dev wan nud permanent
ip -n "$A" neigh replace 172.31.0.10 lladdr 02:00:00:00:00:0a dev wan nud noarp
ip -n "$A" neigh replace 172.31.0.11 lladdr 02:00:00:00:00:0b dev wan nud reachable

state() { ip -n "$A" neigh show "$1" dev wan nud all | awk '{print $NF}'; }
passed=0
for addr in 172.31.0.9 fd00:31::9 172.31.0.10 172.31.0.11; do
  before=$(state "$addr")
  out=$(ip netns exec "$A" "$EX" wan "$addr")
  [ "$out" = known ] || nsl_die "$addr ($before): the dataplane asked the kernel to resolve it ($out)"
  sleep 0.2
  after=$(state "$addr")
  [ "$after" = "$before" ] || nsl_die "$addr: kernel entry went $before -> $after"
  nsl_log "ok: $addr $before: not probed, still $after"
  passed=$((passed + 1))
done

# No entry: asked, and the kernel starts resolving (INCOMPLETE, or FAILED
# once its probes go unanswered).
out=$(ip netns exec "$A" "$EX" wan 172.31.0.20)
[ "$out" = asked ] || nsl_die "172.31.0.20 (no entry): not asked ($out)"
st=$(state 172.31.0.20)
case "$st" in INCOMPLETE|FAILED) ;; *) nsl_die "172.31.0.20: kernel entry '$st' after the request (want INCOMPLETE)";; esac
nsl_log "ok: 172.31.0.20 without an entry: asked, kernel $st"
passed=$((passed + 1))

# A STALE entry is asked for too (the kernel re-probes it: DELAY/PROBE).
ip -n "$A" neigh replace 172.31.0.12 lladdr 02:00:00:00:00:0c dev wan nud stale
out=$(ip netns exec "$A" "$EX" wan 172.31.0.12)
[ "$out" = asked ] || nsl_die "172.31.0.12 (STALE): not asked ($out)"
nsl_log "ok: 172.31.0.12 STALE: asked, kernel $(state 172.31.0.12)"
passed=$((passed + 1))
echo "19_gw_static_neigh: $passed passed, 0 failed"
