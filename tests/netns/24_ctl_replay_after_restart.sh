#!/usr/bin/env bash
# A dataplane restart must not reopen the replay window: the daemon installs
# the inbound SAs again with a replay floor (the highest sequence number the
# dead dataplane had published), so ESP packets captured before the restart
# and sent again afterwards are dropped (replayed / outside_window), counted
# on the SA, and never reach the LAN; new traffic still flows.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
nsl_init replrs
nsl_topo_pair
ctl_setup
ctl_dataplane A
ctl_dataplane B
ctl_daemon A
ctl_daemon B
for s in A B; do for t in lan4 lan6; do ctl_wait_state "$s" "$t" up; done; done
ctl_ping "$NS_HA" 10.2.0.2 3 >/dev/null || true

# Capture gwA -> gwB ESP of lan4 (spi 0x1001) on gwB's WAN while pinging.
nsl_bg "$NS_GWB" cap tcpdump -n --immediate-mode -i wan -w "$NSL_TMP/old.pcap" -U 'ip proto 50 and src host 192.0.2.1 and ip[20:4] = 0x1001'
cap=$NSL_PID
sleep 1
[ "$(ctl_ping "$NS_HA" 10.2.0.2 10)" -ge 9 ] || nsl_die "ping hA -> hB"
sleep 0.3
nsl_stop "$cap"
seqs=$(tcpdump -n -r "$NSL_TMP/old.pcap" 2>/dev/null | sed -n 's/.*ESP(spi=0x00001001,seq=\(0x[0-9a-f]*\)).*/\1/p')
n_old=$(wc -l <<<"$seqs")
max_old=$(for s in $seqs; do echo $((s)); done | sort -n | tail -1)
[ "$n_old" -ge 9 ] || nsl_die "captured only $n_old ESP packets"
# Wait until gwB's dataplane has published what it received.
for _ in $(seq 1 50); do
  [ "$(ctl_field B "t('lan4')['inbound']['seq']")" -ge "$max_old" ] && break
  sleep 0.1
done
pub=$(ctl_field B "t('lan4')['inbound']['seq']")
[ "$pub" -ge "$max_old" ] || nsl_die "gwB published inbound seq $pub < $max_old"
nsl_log "ok: captured $n_old lan4 ESP packets (up to seq $max_old); gwB published $pub"

kill -9 "$DP_B"
wait "$DP_B" 2>/dev/null || true
for _ in $(seq 1 50); do
  [ "$(ctl_field B "s['dataplane']['alive']")" = False ] && break
  sleep 0.1
done
ctl_dataplane B
ctl_wait_state B lan4 up
[ "$(ctl_field B "s['dataplane']['generation']")" = 2 ] || nsl_die "gwB dataplane generation"
floor=$(ctl_field B "t('lan4')['inbound']['seq']")
[ "$floor" -ge "$max_old" ] || nsl_die "restarted SA starts at inbound seq $floor, below $max_old"
nsl_log "ok: gwB's dataplane restarted; lan4's inbound SA starts with floor $floor"

# Send every captured packet again, from gwA's side of the WAN link.
rx0=$(nsl_rx_packets "$NS_HB" eth0)
nsl_x "$NS_GWA" python3 -c '
import sys
from scapy.all import rdpcap, sendp
sendp(rdpcap(sys.argv[1]), iface="wan", verbose=False)' "$NSL_TMP/old.pcap"
want=$n_old
for _ in $(seq 1 50); do
  d=$(ctl_field B "sum(t('lan4')['inbound']['drops_by_reason'].get(r,0) for r in ('replayed','outside_window'))")
  [ "$d" -ge "$want" ] && break
  sleep 0.1
done
d=$(ctl_field B "sum(t('lan4')['inbound']['drops_by_reason'].get(r,0) for r in ('replayed','outside_window'))")
acc=$(ctl_field B "t('lan4')['inbound']['packets']")
why=$(ctl_field B "t('lan4')['inbound']['drops_by_reason']")
rx1=$(nsl_rx_packets "$NS_HB" eth0)
[ "$d" = "$want" ] || nsl_die "replayed pre-restart packets: $d of $want dropped as replayed/outside_window ($why)"
[ "$acc" = 0 ] || nsl_die "gwB accepted $acc replayed pre-restart packets"
[ "$rx1" -le $((rx0 + 2)) ] || nsl_die "hB received $((rx1 - rx0)) packets during the replay"
nsl_log "ok: all $want pre-restart packets sent again were dropped ($why), none accepted"

[ "$(ctl_ping "$NS_HA" 10.2.0.2 10)" -ge 9 ] || nsl_die "ping after the restart"
acc=$(ctl_field B "t('lan4')['inbound']['packets']")
[ "$acc" -ge 9 ] || nsl_die "new traffic not accepted ($acc)"
nsl_log "ok: new traffic above the floor flows ($acc packets accepted)"
echo "24_ctl_replay_after_restart: 4 passed, 0 failed"
