#!/usr/bin/env bash
# Issue 15, acceptance 2 and 3, against strongSwan 5.9.8 in its default ESP
# proposal form (esp_proposals = aes128gcm16: no DH group, so its rekeys carry
# no KE) with espresso's defaults (pfs = yes), numbered UDP at 500/s each way
# (tests/lib/udp_seq.py) counted at the receivers:
#   1. pfs-start: strongSwan rekeys the child every 4 s without KE; espresso
#      (start = start) refuses, says why in words (log and status), shows the
#      connection degraded with the time its SAs expire, rekeys itself with
#      PFS and, when strongSwan refuses that too, negotiates a fresh IKE SA and
#      child before the old child expires: the tunnel outlives strongSwan's
#      child lifetime (each fresh IKE SA loses a datagram or two, see below).
#   2. pfs-add: the same with start = add (strongSwan initiates): status
#      shows "degraded" with the expiry time, the log says when traffic stops.
#   3. peer-delete: strongSwan deletes the child (swanctl --terminate --child)
#      of a start connection: espresso brings a new child up at once; the
#      held traffic is counted (policy_discard) and the gap is in the log
#      with its length and the number of packets held.
set -euo pipefail
cd "$(dirname "$0")/../.."
source tests/lib/netns.sh
source tests/lib/control.sh
source tests/lib/strongswan.sh
source tests/lib/udp_flows.sh
nsl_init ikepfs
nsl_topo_pair
sw_setup
passed=0
pass() { nsl_log "ok: $*"; passed=$((passed + 1)); }
RATE=500
mkdir -p "$NSL_TMP/A"
( umask 077; printf 'psk = "%s"\n' "$SW_PSK" >"$NSL_TMP/A/sw.psk" )
WORDS="the peer's rekey carries no key exchange (no PFS) and this connection requires PFS: set \`pfs = false\` here or add a DH group to the peer's ESP proposal"

# write_a START LIFETIME: espresso's defaults apart from names and lifetime (pfs not set: yes).
write_a() {
  cat >"$NSL_TMP/A/espresso.toml" <<CONF
[daemon]
shm = "$NSL_TMP/A/region.shm"
socket = "$NSL_TMP/A/espresso.sock"
metrics = "127.0.0.1:9736"

[[connection]]
name = "pf"
local = "192.0.2.1"
remote = "192.0.2.2"
local_id = "192.0.2.1"
remote_id = "192.0.2.2"
local_subnets = ["10.1.0.0/24"]
remote_subnets = ["10.2.0.0/24"]
secrets = "sw.psk"
ike = "aes128gcm16-prfsha256-ecp256"
esp = "aes128gcm16"
lifetime = "$2"
start = "$1"
CONF
}
daemon_log() { ls -t "$NSL_TMP"/ctlA*.log | head -1; }
discards() { ctl_field A "sum(w['drops_by_reason'].get('policy_discard',0) for w in s['workers'])"; }
child_in() { ctl_field A "t('pf')['inbound']['spi'] if t('pf').get('inbound') else 0"; }
start_pair() {
  : >"$SW_DIR/charon.log"
  sw_start
  ctl_dataplane A
  ctl_daemon A
}
stop_pair() {
  nsl_stop "$CTL_A"; nsl_stop "$DP_A"; rm -f "$NSL_TMP/A/region.shm"
  sw_stop
}
flow_secs() { flows_start $(($1 * RATE)) "$(python3 -c "print(1/$RATE)")" "$2"; }

# ---- 1. pfs-start
nsl_log "---- pfs-start"
write_a start 1h
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=none \
  child.rekey_time=4s child.life_time=12s child.rand_time=0s
start_pair
ctl_wait_state A pf up 20
flow_secs 20 pfs_start
# status while degraded (between the refusal and the fresh child)
seen_degraded=""
for _ in $(seq 1 150); do
  st=$(ctl_field A "t('pf')['state'] + ' | ' + str(t('pf').get('reason'))" 2>/dev/null || true)
  case "$st" in degraded*) seen_degraded=$st; break ;; esac
  sleep 0.05
done
flows_wait pfs_start
log=$(daemon_log)
nsl_log "pfs-start: $FLOW_RESULT"
grep -qF "$WORDS" "$log" || nsl_die "the log does not name the PFS mismatch in words: $(grep -i "proposal\|pfs" "$log" | tail -3)"
grep -q "offered \[aes128gcm16\], configured \[aes128gcm16\]" "$log" && nsl_die "the log still says 'offered X, configured X'"
grep -q "degraded: .*its SAs expire at [0-9:]*Z" "$log" || nsl_die "no 'degraded ... expire at' line in the log"
fresh=$(grep -c "negotiating a fresh IKE SA and child SA" "$log" || true)
rekeyed=$(grep -c "child SA rekeyed" "$log" || true)
nsl_log "pfs-start: status seen: ${seen_degraded:-never degraded in polling}; fresh IKE SAs $fresh, child rekeys $rekeyed; espresso drops: $(ctl_field A "{r:n for w in s['workers'] for r,n in w['drops_by_reason'].items() if n}" 2>/dev/null)"
# A fresh IKE SA every 4 s (the peer's rekey interval). The old IKE SA's
# child stops carrying our traffic just before its DELETE leaves (it lost 1-2
# datagrams towards the peer per fresh IKE SA). From the peer, the IKE_AUTH
# child's first datagrams can arrive before we have read the answer and
# installed our inbound SA (unknown_spi, 1-2 per fresh IKE SA): installing it
# before IKE_AUTH leaves would close that gap but would let a man in the
# middle of the unauthenticated IKE_SA_INIT, who knows SK_d, inject traffic
# until IKE_AUTH fails; not done. On a loaded machine charon's socket also
# overflows now and then (tens of datagrams towards the peer). So: at most 1
# in 200 lost, no duplicates, and the traffic must run to the end
# (strongSwan's own child expired at 12 s).
[ "$FLOW_DUPS" = 0 ] && [ "$FLOW_LOST" -le $((FLOW_SENT / 200)) ] || nsl_die "pfs-start: datagrams lost: $FLOW_RESULT (drops A: $(ctl_field A "[w['drops_by_reason'] for w in s['workers']]"))"
last_ok=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(int(d["expected"]-1 not in d["missing"] and d["missing_count"]<d["expected"]))' "$NSL_TMP/ab_pfs_start.json")
[ "$last_ok" = 1 ] || nsl_die "pfs-start: the traffic did not run to the end"
[ $((fresh + rekeyed)) -ge 1 ] || nsl_die "pfs-start: neither a rekey of ours nor a fresh child"
ctl_wait_state A pf up 5
pass "pfs-start: the PFS mismatch is named, the connection survived 20 s (strongSwan's child lifetime 12 s), sent $FLOW_SENT lost $FLOW_LOST dup $FLOW_DUPS"
stop_pair

# ---- 2. pfs-add
nsl_log "---- pfs-add"
write_a add 40s
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=start \
  child.rekey_time=4s child.life_time=1h child.rand_time=0s
start_pair
ctl_wait_state A pf up 20
st=""
for _ in $(seq 1 100); do
  st=$(ctl_field A "t('pf')['state'] + ' | ' + str(t('pf').get('reason'))" 2>/dev/null || true)
  case "$st" in degraded*"traffic will stop at"*) break ;; esac
  sleep 0.1
done
nsl_log "pfs-add status: $st"
case "$st" in degraded*"expire at "*Z*) ;; *) nsl_die "pfs-add: status not degraded with the expiry time: $st" ;; esac
grep -qF "$WORDS" "$(daemon_log)" || nsl_die "pfs-add: the log does not name the PFS mismatch"
grep -q "traffic will stop at [0-9:]*Z" "$(daemon_log)" || nsl_die "pfs-add: the log does not say when traffic stops"
ctl A status | grep -i "degraded" || nsl_die "pfs-add: text status does not show degraded"
pass "pfs-add: status degraded with the expiry time, the log says when traffic stops"
stop_pair

# ---- 3. peer-delete
nsl_log "---- peer-delete"
write_a start 1h
sw_write_conf "aes128gcm16-prfsha256-ecp256" "aes128gcm16" child.start_action=none
start_pair
ctl_wait_state A pf up 20
c0=$(child_in)
d0=$(discards)
flow_secs 8 peer_delete
sleep 3
swc --terminate --child net >"$NSL_TMP/terminate.log" 2>&1 || nsl_die "swanctl --terminate --child: $(cat "$NSL_TMP/terminate.log")"
flows_wait peer_delete
d1=$(discards)
c1=$(child_in)
# the gap line names its length and the packets held in between (reported
# ~100 ms after the new child, once the dataplane's counters settled)
for _ in $(seq 1 20); do
  gap=$(grep -o "new child SA [0-9.]* s after the peer deleted the previous one; [0-9]* packets held in between" "$(daemon_log)" | tail -1 || true)
  [ -n "$gap" ] && break
  sleep 0.1
done
nsl_log "peer-delete: $FLOW_RESULT held at espresso (policy_discard): $((d1 - d0)); $gap"
[ -n "$gap" ] || nsl_die "peer-delete: no gap line with its length and held count in the log: $(grep -i "peer deleted" "$(daemon_log)" | tail -3)"
held=$(sed -n 's/.*; \([0-9]*\) packets held in between/\1/p' <<<"$gap")
[ "$held" -le $((d1 - d0)) ] || nsl_die "peer-delete: the log says $held held, the dataplane counted $((d1 - d0)) policy_discard"
[ "$c1" != 0 ] && [ "$c1" != "$c0" ] || nsl_die "peer-delete: no new child SA ($c0 -> $c1)"
ctl_wait_state A pf up 5
last_ab=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["unique"])' "$NSL_TMP/ab_peer_delete.json")
[ "$FLOW_LOST" -lt $((8 * RATE)) ] || nsl_die "peer-delete: traffic did not resume"
pass "peer-delete: new child at once ($gap), sent $FLOW_SENT lost $FLOW_LOST (held at espresso $((d1 - d0)))"
stop_pair

echo "39_ike_pfs_peer_delete: $passed passed, 0 failed"
