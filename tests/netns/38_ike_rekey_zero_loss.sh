#!/usr/bin/env bash
# Zero-loss IKEv2 rekeys, measured end to end (issue 15): numbered UDP
# datagrams at 500/s each way (hA <-> hB, tests/lib/udp_seq.py counts every
# one at the receiver) while child SAs are rekeyed back to back, every 4 s.
# Gateway A runs espresso; gateway B strongSwan 5.9.8 (charon +
# kernel-libipsec) or, in the last variant, espresso too. Variants:
#   sw-child      strongSwan starts every child rekey (PFS, ECP-256)
#   es-child      espresso starts every child rekey (PFS)
#   collide       both sides rekey with the same interval (RFC 7296 §2.8.1)
#   ike           IKE SA rekeys by both sides next to espresso's child rekeys
#   nopfs         no PFS on either side (strongSwan's default ESP proposal
#                 without a DH group), rekeys by both sides
#   es-es         espresso <-> espresso, both sides rekey (collisions)
# Each variant asserts 0 datagrams lost, 0 duplicated, and that the rekeys
# happened (counted in espresso's log, the ones strongSwan started in its log).
# ZL_SECONDS (default 14) is the length of each flow; bench/e2e/rekey_soak.sh
# runs the same with >= 100 rekeys per variant. ZL_VARIANTS picks variants.
# ZL_RT=PRIO (default 50; ZL_RT= for normal scheduling) runs the dataplanes'
# workers and charon SCHED_FIFO PRIO, as the forwarding benches run theirs: on
# a loaded machine they are otherwise not scheduled for long enough that
# charon's UDP socket, libipsec's TUN or the AF_PACKET ring overflow (logged
# per variant), which is no rekey's doing. ZL_PCAP=1 captures gwA's WAN.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
source tests/lib/udp_flows.sh
nsl_init ikezl
nsl_topo_pair
sw_setup
passed=0
failed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }
SECS="${ZL_SECONDS:-14}"
ZL_RT="${ZL_RT-50}"
RATE=500                      # datagrams per second, each way
INTERVAL=4                    # seconds between rekeys
VARIANTS="${ZL_VARIANTS:-sw-child es-child collide ike nopfs es-es}"
REPORT=()

mkdir -p "$NSL_TMP/A" "$NSL_TMP/B"
( umask 077; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk"; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/B/sw.psk" )

# write_es SIDE ESP PFS LIFETIME IKE_LIFETIME START: espresso's connection
# (margin 4 s, no fuzz: with LIFETIME 8s it rekeys every 4 s; 1h: never here).
write_es() {
  local side="$1" esp="$2" pfs="$3" life="$4" ikelife="$5" start="$6" l r ls rs
  if [ "$side" = A ]; then l=192.0.2.1 r=192.0.2.2 ls=10.1.0.0/24 rs=10.2.0.0/24
  else l=192.0.2.2 r=192.0.2.1 ls=10.2.0.0/24 rs=10.1.0.0/24; fi
  cat >"$NSL_TMP/$side/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/$side/region.shm"
socket = "$NSL_TMP/$side/espresso.sock"
metrics = "127.0.0.1:9735"

[[connection]]
name = "zl"
local = "$l"
remote = "$r"
local_id = "$l"
remote_id = "$r"
local_subnets = ["$ls"]
remote_subnets = ["$rs"]
secrets = "sw.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "$esp"
pfs = $pfs
lifetime = "$life"
ike_lifetime = "$ikelife"
margin = "4s"
rekeyfuzz = "0%"
start = "$start"
CONF
}

# log_count SIDE REGEX: matching lines in the newest daemon log of SIDE.
daemon_log() { ls -t "$NSL_TMP"/ctl"$1"*.log | head -1; }
log_count() { grep -cE "$2" "$(daemon_log "$1")" || true; }
sw_count() { grep -cE "$1" "$SW_DIR/charon.log" || true; }
esp_drops() {
  ctl_field "$1" "{r:n for w in s['workers'] for r,n in w['drops_by_reason'].items() if n}" 2>/dev/null || echo "?"
}

stop_side() {
  local side="$1"
  if [ "$side" = A ]; then nsl_stop "$CTL_A"; nsl_stop "$DP_A"; else nsl_stop "$CTL_B"; nsl_stop "$DP_B"; fi
  rm -f "$NSL_TMP/$side/region.shm"
}

# udp_errs: "NS:InErrors/RcvbufErrors ..." of the UDP receivers that could
# drop datagrams unseen by espresso (the hosts' receivers; gwB's charon, whose
# libipsec reads ESP-in-UDP from a socket), and the TX drops of libipsec's TUN.
udp_errs() {
  local ns
  for ns in hA:"$NS_HA" hB:"$NS_HB" gwA:"$NS_GWA" gwB:"$NS_GWB"; do
    printf '%s:%s ' "${ns%%:*}" "$(ip netns exec "${ns#*:}" awk '/^Udp:/ { if (h) { print $4 "/" $6 } else h = 1 }' /proc/net/snmp | tr '\n' '/')"
  done
  printf 'gwB-tun-txdrop:%s' "$(ip netns exec "$NS_GWB" sh -c 'cat /sys/class/net/ipsec0/statistics/tx_dropped 2>/dev/null || echo -')"
}

# lost_at TAG T0: the runs of lost datagrams of both flows with the wall-clock
# time they were sent (the senders pace datagram i at T0 + i/RATE).
lost_at() {
  python3 - "$NSL_TMP/ab_$1.json" "$NSL_TMP/ba_$1.json" "$2" "$RATE" <<'PY'
import json, sys, time
t0, rate = float(sys.argv[3]), float(sys.argv[4])
for name, f in (("ab", sys.argv[1]), ("ba", sys.argv[2])):
    for a, b in json.load(open(f)).get("missing_ranges", []):
        t = t0 + a / rate
        print(f"{name} lost {a}..{b} ({b - a + 1}) sent at ~{time.strftime('%H:%M:%S', time.localtime(t))}.{int(t % 1 * 1000):03d}")
PY
}

# install_lag CTL_LOG DP_LOG: how long the dataplane took to apply each new
# inbound SA of a child rekey (the control's "child SA rekeyed" line to the
# dataplane's "Inbound installed" line): a starved dataplane shows here.
install_lag() {
  python3 - "$1" "$2" <<'PY'
import re, sys
from datetime import datetime
def t(s): return datetime.fromisoformat(s.rstrip("Z")).timestamp()
strip = lambda l: re.sub(r"\x1b\[[0-9;]*m", "", l)
reks, inst = [], {}
for l in map(strip, open(sys.argv[1], errors="replace")):
    m = re.match(r"(\S+Z) .*child SA rekeyed: in 0x[0-9a-f]+ -> (0x[0-9a-f]+)", l)
    if m: reks.append((t(m.group(1)), int(m.group(2), 16)))
for l in map(strip, open(sys.argv[2], errors="replace")):
    m = re.match(r"(\S+Z) .*SA (0x[0-9a-f]+) Inbound installed", l)
    if m: inst.setdefault(int(m.group(2), 16), t(m.group(1)))
lags = sorted(inst[s] - r for r, s in reks if s in inst)
if lags:
    print(f"dataplane applied {len(lags)} rekeyed inbound SAs: median lag {lags[len(lags)//2]*1000:.1f} ms, max {lags[-1]*1000:.0f} ms, {sum(x > 0.1 for x in lags)} over 100 ms")
else:
    print("no rekeyed inbound SA matched in the logs")
PY
}

# run_variant NAME: both peers configured by the caller and up; one flow of
# SECS seconds; records the numbers; MIN_* are the rekeys that must happen.
run_variant() {
  local name="$1" count=$((SECS * RATE)) c0 i0 s0 c1 i1 s1 drops
  c0=$(log_count A "child SA rekeyed")
  i0=$(log_count A "IKE SA rekeyed")
  s0=$(sw_count "${SW_REKEY_RE:-^$}")
  local e0 t0 pcap=""
  e0=$(udp_errs)
  if [ -n "${ZL_PCAP:-}" ]; then
    # WAN capture in a ring (5 x 20 MB, headers only) to place a loss on the wire
    nsl_bg "$NS_GWA" "pcap_$name" tcpdump -Z root -i wan -n -s 96 -C 20 -W 5 -w "$NSL_TMP/wan_$name.pcap"
    pcap=$NSL_PID
  fi
  flows_start "$count" "$(python3 -c "print(1/$RATE)")" "$name"
  t0=$(date +%s.%N)
  nsl_log "$name: flow started (datagram 0 at ~$(date +%T.%3N))"
  flows_wait "$name"
  [ -z "$pcap" ] || nsl_stop "$pcap"
  nsl_log "$name: UDP InErrors/RcvbufErrors before: $e0"
  nsl_log "$name: UDP InErrors/RcvbufErrors after:  $(udp_errs)"
  lost_at "$name" "$t0" | head -20 | while read -r l; do nsl_log "$name: $l"; done
  c1=$(( $(log_count A "child SA rekeyed") - c0 ))
  i1=$(( $(log_count A "IKE SA rekeyed") - i0 ))
  s1=$(( $(sw_count "${SW_REKEY_RE:-^$}") - s0 ))
  drops=$(esp_drops A)
  local line="$name: datagrams sent $FLOW_SENT lost $FLOW_LOST dup $FLOW_DUPS; child rekeys $c1, IKE rekeys $i1${SW_REKEY_WHAT:+, $SW_REKEY_WHAT $s1}; [$FLOW_RESULT] espresso A drops: $drops"
  REPORT+=("$line")
  nsl_log "$line"
  local bad=""
  [ "$FLOW_LOST" = 0 ] && [ "$FLOW_DUPS" = 0 ] || bad+="datagrams lost or duplicated; "
  [ "$c1" -ge "${MIN_CHILD:-0}" ] || bad+="only $c1 child rekeys (want >= $MIN_CHILD); "
  [ "$i1" -ge "${MIN_IKE:-0}" ] || bad+="only $i1 IKE rekeys (want >= $MIN_IKE); "
  [ "$s1" -ge "${MIN_SW:-0}" ] || bad+="only $s1 $SW_REKEY_WHAT (want >= $MIN_SW); "
  if [ -n "$bad" ]; then
    nsl_log "FAIL $name: $bad"
    failed=$((failed + 1))
  else
    pass "$name"
  fi
}

# rekeys a flow of SECS seconds must see with one every INTERVAL s (one
# fewer for the start and end of the flow).
want=$(( SECS / INTERVAL - 1 ))

sw_variant() {
  local name="$1" esp_es="$2" pfs="$3" es_life="$4" es_ikelife="$5" sw_esp="$6"; shift 6
  nsl_log "---- $name"
  write_es A "$esp_es" "$pfs" "$es_life" "$es_ikelife" start
  sw_write_conf "aes128gcm16-prfsha256-ecp256" "$sw_esp" child.start_action=none "$@"
  : >"$SW_DIR/charon.log"
  sw_start
  [ -z "${ZL_RT:-}" ] || chrt -a -f -p "$ZL_RT" "$SW_PID"
  ctl_dataplane A ${ZL_RT:+--sched-fifo "$ZL_RT"}
  ctl_daemon A
  ctl_wait_state A zl up 20
  run_variant "$name"
  stop_side A
  sw_stop
  nsl_log "$name: dataplane A ports at exit: $(grep -o 'port [0-9]*: PortStats.*' "$NSL_TMP/dpA.log" | tr '\n' ' ')"
  nsl_log "$name: $(install_lag "$(daemon_log A)" "$NSL_TMP/dpA.log")"
  # each variant's logs apart (kept with NSL_KEEP_LOGS=1 when a variant fails)
  cp "$NSL_TMP/dpA.log" "$NSL_TMP/dpA_$name.log"
  cp "$SW_DIR/charon.log" "$NSL_TMP/charon_$name.log"
}

for v in $VARIANTS; do
  case "$v" in
    sw-child)
      MIN_CHILD=$want MIN_IKE=0 MIN_SW=$want SW_REKEY_WHAT="rekeys strongSwan started" \
        SW_REKEY_RE="activating CHILD_REKEY task" \
        sw_variant sw-child aes128gcm16-ecp256 true 1h 1h aes128gcm16-ecp256 \
        child.rekey_time=${INTERVAL}s child.life_time=1h child.rand_time=0s ;;
    es-child)
      MIN_CHILD=$want MIN_IKE=0 MIN_SW=0 SW_REKEY_WHAT="rekeys strongSwan started" \
        SW_REKEY_RE="activating CHILD_REKEY task" \
        sw_variant es-child aes128gcm16-ecp256 true 8s 1h aes128gcm16-ecp256 \
        child.rekey_time=0 child.life_time=1h ;;
    collide)
      MIN_CHILD=$want MIN_IKE=0 MIN_SW=1 SW_REKEY_WHAT="rekeys strongSwan started" \
        SW_REKEY_RE="activating CHILD_REKEY task" \
        sw_variant collide aes128gcm16-ecp256 true 8s 1h aes128gcm16-ecp256 \
        child.rekey_time=${INTERVAL}s child.life_time=1h child.rand_time=0s ;;
    ike)
      MIN_CHILD=$want MIN_IKE=$(( SECS / 7 )) MIN_SW=$(( SECS / 7 )) SW_REKEY_WHAT="IKE rekeys strongSwan started" \
        SW_REKEY_RE="activating IKE_REKEY task" \
        sw_variant ike aes128gcm16-ecp256 true 8s 11s aes128gcm16-ecp256 \
        rekey_time=5s over_time=1h rand_time=0s child.rekey_time=0 child.life_time=1h ;;
    nopfs)
      MIN_CHILD=$want MIN_IKE=0 MIN_SW=1 SW_REKEY_WHAT="rekeys strongSwan started" \
        SW_REKEY_RE="activating CHILD_REKEY task" \
        sw_variant nopfs aes128gcm16 false 8s 1h aes128gcm16 \
        child.rekey_time=${INTERVAL}s child.life_time=1h child.rand_time=0s ;;
    es-es)
      nsl_log "---- es-es"
      # gateway B becomes an espresso gateway (kernel forwarding off again)
      ip netns exec "$NS_GWB" sysctl -qw net.ipv4.ip_forward=0
      write_es A aes128gcm16-ecp256 true 8s 11s start
      write_es B aes128gcm16-ecp256 true 8s 1h add
      ctl_dataplane B ${ZL_RT:+--sched-fifo "$ZL_RT"}
      ctl_daemon B
      ctl_dataplane A ${ZL_RT:+--sched-fifo "$ZL_RT"}
      ctl_daemon A
      ctl_wait_state A zl up 20
      ctl_wait_state B zl up 10
      MIN_CHILD=$want MIN_IKE=$(( SECS / 7 )) MIN_SW=0 SW_REKEY_WHAT="" SW_REKEY_RE="" run_variant es-es
      b_child=$(log_count B "child SA rekeyed")
      nsl_log "es-es: gateway B logged $b_child child rekeys; B drops: $(esp_drops B)"
      stop_side A
      stop_side B
      ;;
    *) nsl_die "unknown variant $v" ;;
  esac
done

echo "---- 38_ike_rekey_zero_loss: $RATE datagrams/s each way, $SECS s per variant, rekeys every ${INTERVAL} s"
for l in "${REPORT[@]}"; do echo "$l"; done
[ "$failed" = 0 ] || nsl_die "$failed variant(s) lost datagrams or missed rekeys"
echo "38_ike_rekey_zero_loss: $passed passed, 0 failed"
