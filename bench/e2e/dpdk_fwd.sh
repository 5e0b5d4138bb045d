#!/usr/bin/env bash
# Cleartext io-forward Mpps: espresso's DPDK safe layer (ffi/examples/fwd.rs)
# against dpdk-testpmd --forward-mode=io, same vdevs, same EAL flags, same
# pool, forwarding on one core (lcore 1), measured in the same run.
#
# Usage: bench/e2e/dpdk_fwd.sh [--secs N] [--rounds N] [--vdevs "net_null net_ring"]
# Prints per vdev: "dpdk fwd <vdev>: ours X Mpps, testpmd Y Mpps, ratio Z"
# (X, Y: best of the rounds, which alternate ours/testpmd to share the noise
# of a shared machine; every sample is printed too).
set -euo pipefail
cd "$(dirname "$0")/../.."

secs=5
rounds=3
vdevs="net_null net_ring"
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --vdevs) vdevs=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

command -v dpdk-testpmd >/dev/null || { echo "dpdk-testpmd not found (apt-get install dpdk)" >&2; exit 1; }
cargo build --release -q -p espresso-ffi --example fwd
fwd=target/release/examples/fwd

EAL=(--no-huge -m 512 --no-pci --no-shconf -l 0-1)
MBUFS=32768
warmup=2
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# ours: prints "RESULT mpps=X"
run_ours() {
  local vdev=$1 extra=()
  [ "$vdev" = net_ring ] && extra=(--tx-first)
  "$fwd" --secs "$secs" --warmup "$warmup" --mbufs "$MBUFS" --cache 250 "${extra[@]}" -- \
    "${EAL[@]}" --vdev "${vdev}0" --vdev "${vdev}1" >"$tmp/ours.out" 2>&1
  sed -n 's/^RESULT mpps=//p' "$tmp/ours.out"
}

# testpmd: io forwarding on lcore 1, Rx-pps of both ports printed every second;
# the average of the per-second sums after the warm-up seconds, in Mpps.
run_testpmd() {
  local vdev=$1 extra=()
  [ "$vdev" = net_ring ] && extra=(--tx-first)
  timeout -s INT $((secs + warmup + 3)) dpdk-testpmd "${EAL[@]}" \
    --vdev "${vdev}0" --vdev "${vdev}1" -- \
    --forward-mode=io --auto-start --stats-period=1 --total-num-mbufs=$MBUFS \
    --mbcache=250 --burst=32 "${extra[@]}" </dev/null >"$tmp/tp.out" 2>&1 || true
  awk -v warm="$warmup" -v secs="$secs" '
    /Rx-pps:/ { s += $2; n++; if (n % 2 == 0) { sums[++p] = s; s = 0 } }
    END {
      # skip the periods before forwarding started, then the warm-up ones
      first = 0
      for (i = 1; i <= p; i++) if (sums[i] > 0) { first = i; break }
      if (first == 0) { print "0"; exit }
      tot = 0; k = 0
      for (i = first + warm; i <= p && k < secs; i++) { tot += sums[i]; k++ }
      if (k == 0) { print "0"; exit }
      printf "%.3f\n", tot / k / 1e6
    }' "$tmp/tp.out"
}

best() { sort -g | tail -1; }

for vdev in $vdevs; do
  : >"$tmp/ours.list"; : >"$tmp/tp.list"
  for r in $(seq "$rounds"); do
    o=$(run_ours "$vdev"); t=$(run_testpmd "$vdev")
    { [ -n "$o" ] && awk -v o="$o" 'BEGIN { exit !(o > 0) }'; } ||
      { echo "ours failed on $vdev (rate '$o'):"; cat "$tmp/ours.out"; exit 1; }
    [ "$t" != 0 ] || { echo "testpmd failed on $vdev:"; tail -20 "$tmp/tp.out"; exit 1; }
    echo "  $vdev round $r: ours $o Mpps, testpmd $t Mpps"
    echo "$o" >>"$tmp/ours.list"; echo "$t" >>"$tmp/tp.list"
  done
  o=$(best <"$tmp/ours.list"); t=$(best <"$tmp/tp.list")
  ratio=$(awk -v o="$o" -v t="$t" 'BEGIN { printf "%.2f", o / t }')
  echo "dpdk fwd $vdev: ours $o Mpps, testpmd $t Mpps, ratio $ratio"
done
