#!/usr/bin/env bash
# ESP drops are counted by reason, per SA and per worker:
# - a replayed packet (captured on the WAN with tcpdump, sent again with
#   scapy) is dropped as `replayed`, and traffic goes on;
# - a wrong inbound key gives `icv_mismatch` drops and no traffic.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
nsl_init espdrop
nsl_topo_pair

KAB=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
KBA=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
BAD=0x$(python3 -c 'import os;print(os.urandom(20).hex())')
python3 tests/lib/static_sa.py "$NSL_TMP/a.sa" --side a --key-ab "$KAB" --key-ba "$KBA"
python3 tests/lib/static_sa.py "$NSL_TMP/b.sa" --side b --key-ab "$KAB" --key-ba "$KBA"
python3 tests/lib/static_sa.py "$NSL_TMP/b_bad.sa" --side b --key-ab "$BAD" --key-ba "$KBA"

nsl_dataplane "$NS_GWA" gwA --cores 0 --idle backoff --static-sa "$NSL_TMP/a.sa"
nsl_dataplane "$NS_GWB" gwB --cores 1 --idle backoff --static-sa "$NSL_TMP/b.sa"; pb=$NSL_PID

nsl_x "$NS_HA" ping -c 3 -i 0.2 -W 1 10.2.0.2 >/dev/null 2>&1 || true
nsl_expect "ping through the tunnel" nsl_x "$NS_HA" ping -c 3 -i 0.1 -W 2 10.2.0.2

# Capture one ESP packet gwA -> gwB on gwB's WAN.
nsl_bg "$NS_GWB" cap1 tcpdump -n -i wan -c 1 -w "$NSL_TMP/one.pcap" -U 'esp and src host 192.0.2.1'
cap=$NSL_PID
sleep 1
nsl_x "$NS_HA" ping -c 2 -i 0.2 -W 2 10.2.0.2 >/dev/null
for _ in $(seq 1 20); do kill -0 "$cap" 2>/dev/null || break; sleep 0.1; done
nsl_stop "$cap"
[ -s "$NSL_TMP/one.pcap" ] || nsl_die "no ESP packet captured"
sleep 0.5
rp0=$(nsl_stat gwB "s['drops'].get('replayed',0)")
# Send it again, three times, from gwA's side of the WAN link.
nsl_x "$NS_GWA" python3 -c '
import sys
from scapy.all import rdpcap, sendp
p = rdpcap(sys.argv[1])[0]
sendp(p, iface="wan", count=3, verbose=False)' "$NSL_TMP/one.pcap"
sleep 0.6
rp1=$(nsl_stat gwB "s['drops'].get('replayed',0)")
sarp=$(nsl_stat gwB "[x['drops'].get('replayed',0) for x in s['sas'] if x['direction']=='inbound'][0]")
nsl_log "replayed drops on gwB: $rp0 -> $rp1 (SA: $sarp)"
[ "$rp1" -eq $((rp0 + 3)) ] || nsl_die "replayed packets not counted as replayed ($rp0 -> $rp1)"
[ "$sarp" -ge 3 ] || nsl_die "replay drops not counted on the SA ($sarp)"
nsl_expect "traffic goes on after the replay" nsl_x "$NS_HA" ping -c 3 -i 0.1 -W 2 10.2.0.2

# Wrong key on gwB's inbound SA.
nsl_stop "$pb"
nsl_dataplane "$NS_GWB" gwB --cores 1 --idle backoff --static-sa "$NSL_TMP/b_bad.sa"
nsl_x "$NS_HA" ping -c 5 -i 0.1 -W 1 10.2.0.2 >/dev/null 2>&1 && nsl_die "traffic passed with a wrong key"
sleep 0.6
icv=$(nsl_stat gwB "s['drops'].get('icv_mismatch',0)")
saicv=$(nsl_stat gwB "[x['drops'].get('icv_mismatch',0) for x in s['sas'] if x['direction']=='inbound'][0]")
nsl_log "icv_mismatch drops on gwB: $icv (SA: $saicv)"
[ "$icv" -ge 5 ] && [ "$saicv" -ge 5 ] || nsl_die "wrong-key packets not counted as icv_mismatch ($icv/$saicv)"
nsl_log "ok: wrong key -> icv_mismatch"
echo "13_gw_esp_drops: 4 passed, 0 failed"
