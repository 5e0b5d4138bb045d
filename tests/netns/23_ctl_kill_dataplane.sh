#!/usr/bin/env bash
# kill -9 of a dataplane under traffic: its daemon notices, shows the tunnels
# pending, and re-installs every SA and policy into the restarted dataplane;
# traffic flows again, and no outbound ESP sequence number appears twice on
# the WAN under one SPI (and key): after the restart gwA's SAs continue above
# the bound the daemon recorded.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
nsl_init ctlkd
nsl_topo_pair
ctl_setup
ctl_dataplane A
ctl_dataplane B
ctl_daemon A
ctl_daemon B
for s in A B; do for t in lan4 lan6; do ctl_wait_state "$s" "$t" up; done; done
nsl_bg "$NS_GWB" tcpdump tcpdump -n -i wan -w "$NSL_TMP/wan.pcap" -U 'esp and src host 192.0.2.1'
cap=$NSL_PID
sleep 0.5
ctl_ping "$NS_HA" 10.2.0.2 20 >/dev/null || true
nsl_bg "$NS_HA" flood ping -i 0.01 -c 700 -W 1 10.2.0.2
flood=$NSL_PID
sleep 0.5
seq0=$(ctl_field A "t('lan4')['outbound']['seq']")
kill -9 "$DP_A"
wait "$DP_A" 2>/dev/null || true
for _ in $(seq 1 50); do
  [ "$(ctl_field A "s['dataplane']['alive']")" = False ] && break
  sleep 0.1
done
[ "$(ctl_field A "t('lan4')['state']")" = pending ] || nsl_die "tunnel not pending with the dataplane dead"
nsl_log "ok: daemon sees the dataplane gone (tunnels pending)"
# A 3 s outage: a bound that kept growing would pass 450 million.
sleep 3
ctl_dataplane A
ctl_wait_state A lan4 up
ctl_wait_state A lan6 up
[ "$(ctl_field A "s['dataplane']['generation']")" = 2 ] || nsl_die "dataplane generation"
ctl_ping "$NS_HA" 10.2.0.2 3 >/dev/null || true
[ "$(ctl_ping "$NS_HA" 10.2.0.2 10)" -ge 9 ] || nsl_die "lan4 after the dataplane restart"
[ "$(ctl_ping "$NS_HA" fd00:2::2 10)" -ge 9 ] || nsl_die "lan6 after the dataplane restart"
seq1=$(ctl_field A "t('lan4')['outbound']['seq']")
[ "$seq1" -gt $((seq0 + 65536)) ] || nsl_die "outbound sequence did not jump past the bound ($seq0 -> $seq1)"
# The bound is frozen when the daemon sees the dataplane die (10 ms polling):
# about 150 Mpps x (time since the last publication), not the whole outage.
[ "$seq1" -lt $((seq0 + 150000000)) ] || nsl_die "sequence bound grew with the outage ($seq0 -> $seq1)"
nsl_log "ok: SAs back in the restarted dataplane; lan4 outbound sequence $seq0 -> $seq1"
wait "$flood" || true
sleep 0.3
nsl_stop "$cap"
tcpdump -n -r "$NSL_TMP/wan.pcap" 2>/dev/null | sed -n 's/.*ESP(spi=\(0x[0-9a-f]*\),seq=\(0x[0-9a-f]*\)).*/\1 \2/p' >"$NSL_TMP/esp_seq.txt"
total=$(wc -l <"$NSL_TMP/esp_seq.txt")
dups=$(sort "$NSL_TMP/esp_seq.txt" | uniq -d | wc -l)
spis=$(cut -d' ' -f1 "$NSL_TMP/esp_seq.txt" | sort -u | wc -l)
[ "$total" -ge 200 ] || nsl_die "too few ESP packets captured ($total)"
[ "$dups" = 0 ] || nsl_die "$dups (spi, seq) pairs sent twice: $(sort "$NSL_TMP/esp_seq.txt" | uniq -d | head -3)"
nsl_log "ok: $total ESP packets from gwA over $spis SPI(s), no sequence number twice"
echo "23_ctl_kill_dataplane: 4 passed, 0 failed"
