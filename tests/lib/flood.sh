#!/usr/bin/env bash
# The IKE flood of tests/netns/44_ikev1_flood.sh and 53_ike_flood.sh: scapy
# frames (tests/lib/ike_flood.py) sent from gwB's WAN to gateway A's daemon,
# whose RSS is sampled and whose `status` must keep answering meanwhile.
# Needs tests/lib/netns.sh and control.sh, gwB with the flood sources
# 192.0.2.2-6 (flood_sources), $CTL_A (ctl_daemon A).
#
#   flood_sources                  # 192.0.2.3-6 on gwB, A's default route via gwB
#   flood_start SECONDS [MODE]     # the flood (FLOOD pid) + the RSS sampler (SAMPLER)
#   flood_wait_sending             # returns when the flood sends (its frames built)
#   flood_poll_status [PYEXPR]     # `status --json` every second until the flood ends,
#                                  # each must answer (30 s bound; slowest reported):
#                                  # FLOOD_SLOWEST_MS, FLOOD_MAX (max of PYEXPR over `s`)
#   flood_report                   # logs the flood's rate
#   flood_rss_check LIMIT_MIB      # before/peak/after, dies above LIMIT_MIB

flood_rss() { awk '/^VmRSS/ {print $2}' "/proc/$CTL_A/status"; }
flood_mib() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }

# real flood sources on gwB; answers to spoofed sources leave towards gwB,
# which drops them
flood_sources() {
  local a
  for a in 3 4 5 6; do ip -n "$NS_GWB" addr add "192.0.2.$a/24" dev wan; done
  ip -n "$NS_GWA" route add default via 192.0.2.2
}

flood_start() {
  local secs="$1" mode="${2:-}" dst_mac
  FLOOD_RSS_BEFORE=$(flood_rss)
  dst_mac=$(nsl_mac "$NS_GWA" wan)
  # shellcheck disable=SC2086
  nsl_bg "$NS_GWB" flood python3 tests/lib/ike_flood.py wan "$dst_mac" 192.0.2.1 "$secs" \
    "$NSL_TMP/flood.json" 192.0.2.2,192.0.2.3,192.0.2.4,192.0.2.5,192.0.2.6 $mode
  FLOOD=$NSL_PID
  # RSS sampler (peak), in the background
  ( peak=0; while kill -0 "$FLOOD" 2>/dev/null; do
      r=$(flood_rss || echo 0); [ "${r:-0}" -gt "$peak" ] && peak=$r; echo "$peak" >"$NSL_TMP/rss_peak"
      sleep 0.2; done ) &
  SAMPLER=$!
  NSL_PIDS+=("$SAMPLER")
}

# The flood builds its frames with scapy before it sends: a second on a
# quiet machine, up to a minute at load 25 on 2 vCPUs. What must happen
# during the flood waits for this, not for a fixed time.
flood_wait_sending() {
  nsl_wait_file "$NSL_TMP/flood.json.started" 180 || nsl_die "the flood did not start sending within 180 s"
}

flood_poll_status() {
  local expr="${1:-}" t0 ms out v
  FLOOD_SLOWEST_MS=0
  FLOOD_MAX=0
  while kill -0 "$FLOOD" 2>/dev/null; do
    t0=$(date +%s%N)
    out=$(timeout 30 ip netns exec "$NS_GWA" "$ESPRESSO_BIN" --config "$NSL_TMP/A/espresso.toml" status --json 2>/dev/null) \
      || nsl_die "status did not answer within 30 s during the flood"
    ms=$(( ($(date +%s%N) - t0) / 1000000 ))
    [ "$ms" -gt "$FLOOD_SLOWEST_MS" ] && FLOOD_SLOWEST_MS=$ms
    if [ -n "$expr" ]; then
      v=$(python3 -c "import json,sys; s=json.load(sys.stdin); print($expr)" <<<"$out")
      [ "$v" -gt "$FLOOD_MAX" ] && FLOOD_MAX=$v
    fi
    sleep 1
  done
  wait "$FLOOD" 2>/dev/null || true
  # how fast is a timing (bench/e2e/ike_flood.sh measures it): at load 25
  # on 2 vCPUs starting the CLI alone takes seconds; the test only asks
  # that status answers (the daemon is not wedged), within a 30 s bound
}

flood_report() {
  nsl_log "$(python3 -c "import json; d=json.load(open('$NSL_TMP/flood.json')); print('flood: %d datagrams in %.1f s (%d/s)' % (d['sent'], d['seconds'], d['pps']))")"
}

flood_rss_check() {
  local limit="$1"
  kill "$SAMPLER" 2>/dev/null || true
  sleep 2
  FLOOD_RSS_PEAK=$(cat "$NSL_TMP/rss_peak")
  local after; after=$(flood_rss)
  nsl_log "daemon RSS: before $(flood_mib "$FLOOD_RSS_BEFORE") MiB, peak $(flood_mib "$FLOOD_RSS_PEAK") MiB, after $(flood_mib "$after") MiB"
  [ "$FLOOD_RSS_PEAK" -lt $(( limit * 1024 )) ] || nsl_die "daemon RSS peaked at $(flood_mib "$FLOOD_RSS_PEAK") MiB (limit $limit)"
}
