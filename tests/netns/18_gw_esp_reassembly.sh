#!/usr/bin/env bash
# Fragmented ESP on the WAN (RFC 4303 §3.4.1; issue 10 acceptance 4).
# nsl_topo_pair with a 1280-byte WAN; gwA is no gateway here but a peer that
# sends ESP it built itself: scapy's SecurityAssociation with known AES-GCM
# keys (tests/lib/esp_frag.py), each ~1440-byte ESP packet cut by scapy's
# fragment()/fragment6() to fit the path MTU, in varying orders (last
# fragment first, first fragment twice). gwB runs espresso-dataplane with the
# matching static inbound SAs.
# 1. IPv4 outer, IPv6 outer, and ESP-in-UDP/4500 (IPv4): 300 numbered
#    datagrams each reach hB (counted at the receiver: all, no duplicate),
#    with 576-byte fragments too (3 per datagram); the dataplane counted them
#    reassembled and decrypted, and duplicates as frag_duplicate.
# 2. A fragment flood from gwA (first and middle fragments of ESP that never
#    complete, IPv4 and IPv6, from 2 sources with many identifications and
#    from random spoofed sources, 20 s as fast as python sends) while 300
#    more fragmented datagrams go through: at least 95 % of them arrive, the dataplane's RSS stays within
#    the reassembly table's bound (before, peak, after printed), and the
#    refused fragments are counted by reason (frag_evicted,
#    frag_source_limit).
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
python3 -c 'import scapy.layers.ipsec' 2>/dev/null || nsl_die "scapy not installed (pip install scapy cryptography)"
nsl_init reasm
nsl_topo_pair
pass=0
ok() { nsl_log "ok: $*"; pass=$((pass + 1)); }

ip -n "$NS_GWA" link set wan mtu 1280
ip -n "$NS_GWB" link set wan mtu 1280
hexkey() { python3 -c 'import os;print(os.urandom(20).hex())'; }
K4=$(hexkey) K6=$(hexkey) KN=$(hexkey)
python3 tests/lib/esp_frag.py sa "$NSL_TMP/b.sa" --key4 "$K4" --key6 "$K6" --keyn "$KN"
nsl_dataplane "$NS_GWB" gwB --cores 1 --idle backoff --static-sa "$NSL_TMP/b.sa"
pb=$NSL_PID
DMAC=$(nsl_mac "$NS_GWB" wan)
# Neighbours of hB known to gwB's kernel (the dataplane reads its cache).
nsl_x "$NS_GWB" ping -c 1 -W 1 10.2.0.2 >/dev/null 2>&1 || true
nsl_x "$NS_GWB" ping -6 -c 1 -W 1 fd00:2::2 >/dev/null 2>&1 || true
sleep 0.5

# run MODE ADDR COUNT MTU [SEQ0]: numbered datagrams MODE-encrypted by the
# peer, fragmented at MTU, counted at hB; sets GOT (unique) and DUPS.
run() {
  local mode=$1 addr=$2 count=$3 mtu=$4 seq0=${5:-0} key
  case $mode in v4) key=$K4 ;; v6) key=$K6 ;; natt) key=$KN ;; esac
  rm -f "$NSL_TMP/recv.json"
  nsl_bg "$NS_HB" recv python3 tests/lib/esp_frag.py recv "$addr" 5000 "$NSL_TMP/recv.json" 3
  local r=$NSL_PID
  sleep 0.5
  nsl_x "$NS_GWA" python3 tests/lib/esp_frag.py send "$mode" --key "$key" --count "$count" \
    --size 1400 --mtu "$mtu" --dmac "$DMAC" --seq0 "$seq0" >"$NSL_TMP/send.log" \
    || nsl_die "sender $mode: $(cat "$NSL_TMP/send.log")"
  wait "$r" || nsl_die "receiver $mode failed: $(cat "$NSL_TMP/recv.log")"
  GOT=$(python3 -c "import json;print(json.load(open('$NSL_TMP/recv.json'))['unique'])")
  DUPS=$(python3 -c "import json;print(json.load(open('$NSL_TMP/recv.json'))['dups'])")
  nsl_log "$mode mtu $mtu: $(cat "$NSL_TMP/send.log"), hB got $GOT unique, $DUPS duplicates"
  [ "$GOT" = "$count" ] || nsl_log "gwB counters: $(nsl_stat gwB "{k: s['workers'][0][k] for k in ('rx', 'reassembled', 'decrypted', 'forwarded', 'drops')}")"
}

# ---- 1. fragmented ESP through, three encapsulations ----
run v4 10.2.0.2 300 1280
[ "$GOT" = 300 ] && [ "$DUPS" = 0 ] || nsl_die "IPv4 ESP fragments: $GOT of 300 ($DUPS dups)"
ok "300 datagrams in IPv4 ESP fragmented at 1280 bytes, all delivered"
run v6 fd00:2::2 300 1280 1000
[ "$GOT" = 300 ] && [ "$DUPS" = 0 ] || nsl_die "IPv6 ESP fragments: $GOT of 300 ($DUPS dups)"
ok "300 datagrams in IPv6 ESP fragmented at 1280 bytes, all delivered"
run natt 10.2.0.2 300 1280 2000
[ "$GOT" = 300 ] && [ "$DUPS" = 0 ] || nsl_die "ESP-in-UDP fragments: $GOT of 300 ($DUPS dups)"
ok "300 datagrams in UDP/4500 ESP fragmented at 1280 bytes, all delivered"
run v4 10.2.0.2 100 576 3000
[ "$GOT" = 100 ] && [ "$DUPS" = 0 ] || nsl_die "IPv4 ESP 576-byte fragments: $GOT of 100 ($DUPS dups)"
ok "100 datagrams in IPv4 ESP fragmented at 576 bytes (3 fragments each), all delivered"
nsl_wait_stat gwB "s['workers'][0]['reassembled'] >= 1000" \
  || nsl_die "reassembled: $(nsl_stat gwB "s['workers'][0]['reassembled']")"
nsl_wait_stat gwB "s['workers'][0]['drops'].get('frag_duplicate', 0) >= 200" \
  || nsl_die "frag_duplicate: $(nsl_stat gwB "s['workers'][0]['drops']")"
ok "dataplane: reassembled $(nsl_stat gwB "s['workers'][0]['reassembled']"), decrypted $(nsl_stat gwB "s['workers'][0]['decrypted']"), drops $(nsl_stat gwB "s['workers'][0]['drops']")"

# ---- 2. a fragment flood while the tunnel carries fragmented traffic ----
# nsl_bg execs (ip netns exec, env): the PID is the dataplane's.
pid=$pb
rss() { awk '/^VmRSS/ {print $2}' "/proc/$pid/status"; }
hwm() { awk '/^VmHWM/ {print $2}' "/proc/$pid/status"; }
before=$(rss)
hwm0=$(hwm)
nsl_bg "$NS_GWA" flood1 python3 tests/lib/esp_frag.py flood --seconds 20 --dmac "$DMAC" --seed 1
f1=$NSL_PID
peak=$before
watch_rss() { while kill -0 "$1" 2>/dev/null; do r=$(rss); [ "$r" -gt "$peak" ] && peak=$r; sleep 0.05; done; }
sleep 0.3
run v4 10.2.0.2 300 1280 4000
during=$GOT
kill -0 "$f1" 2>/dev/null || nsl_die "the flood ended before the tunnel's datagrams did (machine too slow?)"
watch_rss "$f1"
wait "$f1" || nsl_die "flood: $(cat "$NSL_TMP/flood1.log")"
mid=$(rss)
# A second flood as long: a bounded table does not grow any further.
# (The tunnel's datagrams above ran inside the first flood's 20 s.)
nsl_bg "$NS_GWA" flood2 python3 tests/lib/esp_frag.py flood --seconds 10 --dmac "$DMAC" --seed 2
f2=$NSL_PID
watch_rss "$f2"
wait "$f2" || nsl_die "flood: $(cat "$NSL_TMP/flood2.log")"
sleep 0.5
after=$(rss)
high=$(hwm)
# VmHWM is the lifetime peak: it counts only if the flood raised it.
[ "$high" -gt "$hwm0" ] && [ "$high" -gt "$peak" ] && peak=$high
drops=$(nsl_stat gwB "s['workers'][0]['drops']")
nsl_log "flood: $(cat "$NSL_TMP/flood1.log"); $(cat "$NSL_TMP/flood2.log")"
nsl_log "dataplane RSS: before ${before} KiB, after flood 1 ${mid} KiB, peak ${peak} KiB (VmHWM ${high}), after ${after} KiB"
nsl_log "drops: $drops"
# Bound: the reassembly table the worker logged (256 x (2048 + bookkeeping)
# bytes, about 640 KiB), plus 1 MiB for anything else the flood may touch
# once (the table is allocated at start; its pages become resident as used).
tbl=$(sed -n 's/.*fragment reassembly:.*bound \([0-9]*\) KiB.*/\1/p' "$NSL_TMP/gwB.log" | head -1)
[ -n "$tbl" ] || nsl_die "no reassembly bound in the dataplane's log"
bound=$((tbl + 1024))
growth=$((peak - before))
[ "$growth" -le "$bound" ] || nsl_die "RSS grew by $growth KiB under the flood (bound $bound KiB)"
[ $((after - mid)) -le 256 ] || nsl_die "RSS still growing in the second flood: $mid -> $after KiB"
ok "RSS under floods of 20 s and 10 s: +$growth KiB at peak (table $tbl KiB, bound $bound KiB), +$((after - mid)) KiB in the second flood"
[ "$during" -ge 285 ] || nsl_die "tunnel during the flood: $during of 300 datagrams"
ok "tunnel during the flood: $during of 300 fragmented datagrams delivered"
nsl_wait_stat gwB "s['workers'][0]['drops'].get('frag_evicted', 0) > 1000 and s['workers'][0]['drops'].get('frag_source_limit', 0) > 100" \
  || nsl_die "flood drops not counted by reason: $(nsl_stat gwB "s['workers'][0]['drops']")"
ok "flood fragments counted: $(nsl_stat gwB "{k: v for k, v in s['workers'][0]['drops'].items() if k.startswith('frag')}")"
# And the tunnel still works after it.
run natt 10.2.0.2 100 1280 5000
[ "$GOT" = 100 ] || nsl_die "after the flood: $GOT of 100"
ok "after the flood: 100 of 100 ESP-in-UDP datagrams"
kill -0 "$pb" || nsl_die "dataplane died"
echo "18_gw_esp_reassembly: $pass passed, 0 failed"
