#!/usr/bin/env bash
# The Prometheus metrics of a running gateway pass `promtool check metrics`
# (Debian package prometheus), and every metric and label the packaged
# Grafana dashboard queries exists in them (issue 14; the per-IKE-SA families
# appear only with an IKE SA: tests/netns/50 checks them against strongSwan). Gateway A runs
# the manual tunnels of tests/lib/control.sh plus an IKE connection, with
# traffic through the tunnel so that counters move.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
command -v promtool >/dev/null || { echo "promtool missing (apt-get install prometheus; scripts/setup.sh installs it)" >&2; exit 1; }
nsl_init metric
nsl_topo_pair
ctl_setup
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }
( umask 077; printf 'psk = "metrics-test-psk-0123456789"\n' >"$NSL_TMP/A/tunnels/ike.psk" )
cat >"$NSL_TMP/A/tunnels/ike.toml" <<CONF
[[connection]]
name = "ike-peer"
left = "192.0.2.1"
right = "192.0.2.99"
leftsubnet = "10.1.0.0/24"
rightsubnet = "10.99.0.0/24"
secrets = "ike.psk"
auto = "add"
CONF
ctl_dataplane A
ctl_dataplane B
ctl_daemon A
ctl_daemon B
ctl_wait_state A lan4 up
ctl_wait_state B lan4 up
ok=0
for _ in 1 2 3 4 5; do [ "$(ctl_ping "$NS_HA" 10.2.0.2 10)" -ge 9 ] && { ok=1; break; }; sleep 0.5; done
[ "$ok" = 1 ] || nsl_die "ping through lan4"
ctl_metrics A >"$NSL_TMP/metrics.txt" || nsl_die "metrics of A"
grep -q 'espresso_tunnel_packets_total{tunnel="lan4",direction="out"} [1-9]' "$NSL_TMP/metrics.txt" || nsl_die "lan4 counters did not move"
out=$(promtool check metrics <"$NSL_TMP/metrics.txt" 2>&1) || nsl_die "promtool check metrics: $out"
[ -z "$out" ] || nsl_die "promtool check metrics reports: $out"
pass "promtool check metrics: $(grep -c '^# TYPE' "$NSL_TMP/metrics.txt") metric families, $(grep -vc '^#' "$NSL_TMP/metrics.txt") samples, no problems"
python3 tests/lib/dashboard_check.py packaging/grafana/espresso-dashboard.json "$NSL_TMP/metrics.txt" --ignore espresso_ike_sa_ --ignore espresso_ike_child_sa_ ||
  nsl_die "the dashboard queries metrics or labels that are not exported"
pass "every metric and label of the Grafana dashboard is exported (IKE SA families: checked with a live IKE SA in tests/netns/50)"
echo "51_metrics_promtool: $passed passed, 0 failed"
