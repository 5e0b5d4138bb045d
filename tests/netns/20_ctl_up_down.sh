#!/usr/bin/env bash
# Control plane on a gateway pair: espresso daemons read TOML configs with
# manual AES-128-GCM keys (secrets files 0600, included tunnel files, FreeS/WAN
# field names for one tunnel) and drive both dataplanes through shared memory.
# Checks: both tunnels come up, ping both ways (IPv4 and IPv6 inner), status
# table/JSON and Prometheus counters; `down lan4` stops its traffic (held:
# discarded and counted, nothing in the clear on the WAN) while lan6 runs on;
# down tunnels stay in the metrics with zeros and state; `up lan4` restores it
# with its outbound sequence numbers continuing (never reused under the key).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
nsl_init ctlud
nsl_topo_pair
ctl_setup
ctl_dataplane A
ctl_dataplane B
ctl_daemon A
ctl_daemon B
for s in A B; do for t in lan4 lan6; do ctl_wait_state "$s" "$t" up; done; done
nsl_log "ok: lan4 and lan6 up on both gateways"

# ping_ok NS ADDR: 9 of 10 replies, allowing two warm-up rounds (ARP/ND under load).
ping_ok() { local i; for i in 1 2 3; do [ "$(ctl_ping "$1" "$2" 10)" -ge 9 ] && return 0; done; return 1; }
ping_ok "$NS_HA" 10.2.0.2 || nsl_die "ping hA -> hB (lan4)"
ping_ok "$NS_HB" 10.1.0.2 || nsl_die "ping hB -> hA (lan4)"
ping_ok "$NS_HA" fd00:2::2 || nsl_die "ping hA -> hB (lan6)"
ping_ok "$NS_HB" fd00:1::2 || nsl_die "ping hB -> hA (lan6)"
nsl_log "ok: ping both ways through lan4 and lan6"

table=$(ctl A status)
echo "$table"
grep -q "dataplane: running" <<<"$table" || nsl_die "status table: dataplane"
grep -Eq "^lan4 +up +192.0.2.1 -> 192.0.2.2 +0x1002/0x1001 +aes-gcm-128" <<<"$table" || nsl_die "status table: lan4 row"
out_pkts=$(ctl_field A "t('lan4')['outbound']['packets']")
in_pkts=$(ctl_field B "t('lan4')['inbound']['packets']")
[ "$out_pkts" -ge 10 ] && [ "$in_pkts" -ge 10 ] || nsl_die "SA counters ($out_pkts out on A, $in_pkts in on B)"
grep -q 'espresso_tunnel_up{tunnel="lan4",kind="tunnel"} 1' <<<"$(ctl_metrics A)" || nsl_die "metrics: lan4 up"
nsl_log "ok: status and metrics show the tunnels with counters ($out_pkts packets out on gwA)"

# down: held, not leaked.
seq_before=$(ctl_field A "t('lan4')['outbound']['seq']")
disc0=$(ctl_field A "sum(w['drops_by_reason'].get('policy_discard',0) for w in s['workers'])")
nsl_bg "$NS_GWB" tcpdump tcpdump -n -i wan -w "$NSL_TMP/wan.pcap" -U
cap=$NSL_PID
sleep 0.5
grep -q "lan4: down" <<<"$(ctl A down lan4)" || nsl_die "down lan4"
ctl_wait_state A lan4 down
[ "$(ctl_ping "$NS_HA" 10.2.0.2 5)" = 0 ] || nsl_die "lan4 traffic still passes after down"
[ "$(ctl_ping "$NS_HA" fd00:2::2 5)" -ge 4 ] || nsl_die "lan6 stopped with lan4"
sleep 0.3
disc1=$(ctl_field A "sum(w['drops_by_reason'].get('policy_discard',0) for w in s['workers'])")
[ "$disc1" -ge $((disc0 + 5)) ] || nsl_die "held traffic not counted as policy_discard ($disc0 -> $disc1)"
m=$(ctl_metrics A)
grep -q 'espresso_tunnel_state{tunnel="lan4",state="down"} 1' <<<"$m" || nsl_die "metrics: lan4 down state"
grep -q 'espresso_tunnel_packets_total{tunnel="lan4",direction="out"} 0' <<<"$m" || nsl_die "metrics: lan4 zeros"
grep -q 'espresso_tunnel_drops_total{tunnel="lan4",direction="in",reason="icv_mismatch"} 0' <<<"$m" || nsl_die "metrics: lan4 drop reasons"
nsl_stop "$cap"
clear=$(tcpdump -n -r "$NSL_TMP/wan.pcap" 'src net 10.1.0.0/24 and dst net 10.2.0.0/24' 2>/dev/null | wc -l)
[ "$clear" -eq 0 ] || nsl_die "$clear cleartext lan4 packets on the WAN while down"
nsl_log "ok: down lan4 stops its traffic ($((disc1 - disc0)) held and counted, none in the clear), lan6 unaffected, metrics keep lan4 with zeros"

grep -q "lan4: up" <<<"$(ctl A up lan4)" || nsl_die "up lan4"
ctl_wait_state A lan4 up
ctl_ping "$NS_HA" 10.2.0.2 2 >/dev/null || true
[ "$(ctl_ping "$NS_HA" 10.2.0.2 10)" -ge 9 ] || nsl_die "ping after up"
seq_after=$(ctl_field A "t('lan4')['outbound']['seq']")
[ "$seq_after" -gt "$seq_before" ] || nsl_die "outbound sequence restarted ($seq_before -> $seq_after)"
nsl_log "ok: up lan4 restores traffic; outbound sequence continues ($seq_before -> $seq_after)"

# Tap (Halon's enc0): lan4's clear packets, both ways, into a pcap file.
nsl_bg "$NS_HA" tapping ping -i 0.1 -c 30 -W 1 10.2.0.2
pinger=$NSL_PID
ctl A tap lan4 --out "$NSL_TMP/lan4.pcap" --count 6 --duration 10 2>"$NSL_TMP/tap.err" || nsl_die "tap: $(cat "$NSL_TMP/tap.err")"
nsl_stop "$pinger"
tapped=$(tcpdump -n -r "$NSL_TMP/lan4.pcap" 2>/dev/null)
echo "$tapped" | head -4
n_req=$(grep -c "10.1.0.2 > 10.2.0.2: ICMP echo request" <<<"$tapped" || true)
n_rep=$(grep -c "10.2.0.2 > 10.1.0.2: ICMP echo reply" <<<"$tapped" || true)
[ "$((n_req + n_rep))" -ge 6 ] && [ "$n_req" -ge 1 ] && [ "$n_rep" -ge 1 ] || nsl_die "tap pcap: $n_req requests, $n_rep replies"
nsl_log "ok: tap wrote lan4's decrypted traffic ($n_req requests out, $n_rep replies in) as pcap"

# Exit codes of the CLI.
set +e
ctl A up nosuch >/dev/null 2>&1; [ $? = 4 ] || nsl_die "unknown tunnel: exit 4"
ip netns exec "$NS_GWA" "$ESPRESSO_BIN" --socket "$NSL_TMP/none.sock" status >/dev/null 2>&1; [ $? = 5 ] || nsl_die "no daemon: exit 5"
set -e
grep -q "lan4: down" <<<"$(ctl A log -n 100)" || nsl_die "log lacks the down"
nsl_log "ok: exit codes and log"
echo "20_ctl_up_down: 10 passed, 0 failed"
