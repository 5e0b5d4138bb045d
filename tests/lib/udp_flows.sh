#!/usr/bin/env bash
# Numbered UDP datagrams both ways through the tunnel of nsl_topo_pair
# (hA 10.1.0.2 <-> hB 10.2.0.2), counted at each receiver by
# tests/lib/udp_seq.py: every datagram lost or duplicated is seen.
# Needs tests/lib/netns.sh (and control.sh for ctl_ping).
#
#   flows_start COUNT INTERVAL TAG   # senders + receivers in the background
#   flows_wait TAG                   # waits; sets FLOW_RESULT ("ab ... | ba ...")
#                                    # and FLOW_LOST / FLOW_DUPS / FLOW_SENT (both ways)
#   flows_check TAG                  # waits; dies unless every datagram arrived both
#                                    # ways; prints "ab UNIQUE/SENT ba UNIQUE/SENT"
# FLOW_IDLE (default 3): seconds of silence after which a receiver stops;
# FLOW_SIZE (default 300): bytes per datagram.

flows_start() {
  local count="$1" interval="$2" tag="$3"
  FLOW_COUNT=$count
  # neighbours on both LANs resolved before the count starts (ARP warm-up)
  ctl_ping "$NS_HA" 10.2.0.2 2 >/dev/null || true
  ctl_ping "$NS_HB" 10.1.0.2 2 >/dev/null || true
  FLOW_PORT=$(( 20000 + RANDOM % 20000 ))
  nsl_bg "$NS_HB" "recvB_$tag" python3 tests/lib/udp_seq.py recv 10.2.0.2 "$FLOW_PORT" "$NSL_TMP/ab_$tag.json" "${FLOW_IDLE:-3}"
  FLOW_RB=$NSL_PID
  nsl_bg "$NS_HA" "recvA_$tag" python3 tests/lib/udp_seq.py recv 10.1.0.2 "$FLOW_PORT" "$NSL_TMP/ba_$tag.json" "${FLOW_IDLE:-3}"
  FLOW_RA=$NSL_PID
  # both receivers bound before the first datagram (a loaded machine can
  # take a second or more to start python)
  local ns
  for ns in "$NS_HB" "$NS_HA"; do
    for _ in $(seq 1 100); do
      [ -n "$(ip netns exec "$ns" ss -Hlun "sport = :$FLOW_PORT" 2>/dev/null)" ] && break
      sleep 0.1
    done
    [ -n "$(ip netns exec "$ns" ss -Hlun "sport = :$FLOW_PORT" 2>/dev/null)" ] || nsl_die "receiver in $ns did not bind port $FLOW_PORT"
  done
  nsl_bg "$NS_HA" "sendA_$tag" python3 tests/lib/udp_seq.py send 10.2.0.2 "$FLOW_PORT" "$count" "$interval" "${FLOW_SIZE:-300}"
  FLOW_SA=$NSL_PID
  nsl_bg "$NS_HB" "sendB_$tag" python3 tests/lib/udp_seq.py send 10.1.0.2 "$FLOW_PORT" "$count" "$interval" "${FLOW_SIZE:-300}"
  FLOW_SB=$NSL_PID
}

# flows_senders_wait: returns when both senders are done.
flows_senders_wait() {
  wait "$FLOW_SA" 2>/dev/null || true
  wait "$FLOW_SB" 2>/dev/null || true
}

flows_wait() {
  local tag="$1" f r exp uniq miss dups first
  flows_senders_wait
  nsl_wait_file "$NSL_TMP/ab_$tag.json" 30 || nsl_die "receiver in hB wrote no result"
  nsl_wait_file "$NSL_TMP/ba_$tag.json" 30 || nsl_die "receiver in hA wrote no result"
  wait "$FLOW_RA" 2>/dev/null || true
  wait "$FLOW_RB" 2>/dev/null || true
  FLOW_RESULT="" FLOW_LOST=0 FLOW_DUPS=0 FLOW_SENT=0
  for f in ab ba; do
    r=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["expected"], d["unique"], d["missing_count"], d["dups"], ",".join(map(str, d["missing"][:8])) or "-")' "$NSL_TMP/${f}_$tag.json")
    read -r exp uniq miss dups first <<<"$r"
    FLOW_SENT=$((FLOW_SENT + exp))
    FLOW_LOST=$((FLOW_LOST + miss))
    FLOW_DUPS=$((FLOW_DUPS + dups))
    FLOW_RESULT+="$f sent $exp lost $miss dup $dups (first lost: $first); "
  done
}

flows_check() {
  local tag="$1" f r exp uniq miss out=""
  flows_senders_wait
  nsl_wait_file "$NSL_TMP/ab_$tag.json" 30 || nsl_die "$tag: receiver in hB wrote no result"
  nsl_wait_file "$NSL_TMP/ba_$tag.json" 30 || nsl_die "$tag: receiver in hA wrote no result"
  for f in ab ba; do
    r=$(python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(d["expected"], d["unique"], d["missing_count"], d["missing"][:10])' "$NSL_TMP/${f}_$tag.json")
    read -r exp uniq miss _ <<<"$r"
    [ "$exp" = "$FLOW_COUNT" ] && [ "$uniq" = "$exp" ] && [ "$miss" = 0 ] ||
      nsl_die "$tag $f: datagrams lost at the receiver: expected/unique/missing/first missing = $r; espresso's ESP drops: $(ctl_field A "[w['drops_by_reason'] for w in s['workers']]" 2>/dev/null)"
    out+="$f $uniq/$exp "
  done
  echo "$out"
}
