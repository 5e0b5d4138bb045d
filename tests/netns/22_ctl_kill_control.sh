#!/usr/bin/env bash
# kill -9 of the control daemon: the dataplane keeps forwarding with its SAs
# (a ping runs through it), the CLI says the daemon is gone (exit 5), and a
# restarted daemon reattaches: same dataplane generation, tunnels up with
# their counters continuing, nothing re-installed, a tunnel brought down
# before the kill stays down.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
nsl_init ctlkc
nsl_topo_pair
ctl_setup
ctl_dataplane A
ctl_dataplane B
ctl_daemon A
ctl_daemon B
for s in A B; do for t in lan4 lan6; do ctl_wait_state "$s" "$t" up; done; done
ctl_ping "$NS_HA" 10.2.0.2 3 >/dev/null || true
ctl A down lan6 >/dev/null
ctl_wait_state A lan6 down
pkts0=$(ctl_field A "t('lan4')['outbound']['packets']")
inst0=$(grep -c " installed" "$NSL_TMP/dpA.log" || true)

nsl_bg "$NS_HA" ping4 ping -i 0.05 -c 80 -W 1 10.2.0.2
ping4=$NSL_PID
sleep 0.5
kill -9 "$CTL_A"
wait "$CTL_A" 2>/dev/null || true
set +e
ctl A status >/dev/null 2>&1; rc=$?
set -e
[ "$rc" = 5 ] || nsl_die "status without a daemon: exit $rc, want 5"
[ "$(ctl_ping "$NS_HB" 10.1.0.2 10)" -ge 9 ] || nsl_die "forwarding stopped with the control daemon"
nsl_log "ok: dataplane forwards with the daemon killed"
sleep 1
ctl_daemon A
ctl_wait_state A lan4 up
[ "$(ctl_field A "t('lan6')['state']")" = down ] || nsl_die "lan6 came back up after the restart"
[ "$(ctl_field A "s['dataplane']['generation']")" = 1 ] || nsl_die "dataplane generation changed"
[ "$(ctl_field A "s['control']['generation']")" = 2 ] || nsl_die "control generation"
pkts1=$(ctl_field A "t('lan4')['outbound']['packets']")
[ "$pkts1" -gt "$pkts0" ] || nsl_die "counters reset ($pkts0 -> $pkts1)"
sleep 0.3
inst1=$(grep -c " installed" "$NSL_TMP/dpA.log" || true)
[ "$inst1" = "$inst0" ] || nsl_die "SAs re-installed on reattach ($inst0 -> $inst1)"
wait "$ping4" || true
got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' "$NSL_TMP/ping4.log")
[ "${got:-0}" -ge 78 ] || nsl_die "ping lost packets across the control restart ($got/80)"
nsl_log "ok: restarted daemon reattached without re-installing ($pkts0 -> $pkts1 packets, ping $got/80)"
ctl A up lan6 >/dev/null
ctl_wait_state A lan6 up
ctl_ping "$NS_HA" fd00:2::2 2 >/dev/null || true
[ "$(ctl_ping "$NS_HA" fd00:2::2 5)" -ge 4 ] || nsl_die "lan6 after up on the new daemon"
echo "22_ctl_kill_control: 4 passed, 0 failed"
