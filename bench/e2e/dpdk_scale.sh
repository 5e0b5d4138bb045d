#!/usr/bin/env bash
# Worker scaling of ESP encap on DPDK net_null ports (no traffic generator:
# net_null hands out mbufs, a 42-byte header is written into each), 1 worker
# against 2 workers, rounds alternating, through the dataplane's own worker
# loop (bench/src/bin/dpdk_scale.rs: SPD lookup, grouping by SA, encap,
# routing, TX). Many SAs (--sas, default 64), each used by one worker only,
# as RSS would spread flows.
#
#   bench/e2e/dpdk_scale.sh [--secs 4] [--rounds 3] [--size 64] [--sas 64]
#
# This machine has 2 vCPUs shared with other work, so two workers cannot get
# two idle cores: the wall-clock rate of 2 workers depends on what else runs.
# The figure that says whether the workers get in each other's way is the
# rate per CPU-second of each worker (packets / that worker thread's CPU
# time): with no shared cache line written per packet it stays the same with
# 2 workers as with 1, and 2 dedicated cores then give twice the rate. So:
#   dpdk scale esp encap 64B 2 workers (per CPU-second, summed): ours X Mpps,
#     reference Y Mpps (1 worker), ratio Z
# plus the wall-clock line for the record. Best of the rounds for each.
set -euo pipefail
cd "$(dirname "$0")/../.."
secs=4
rounds=3
size=64
sas=64
while [ $# -gt 0 ]; do
  case "$1" in
    --secs) secs=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --size) size=$2; shift 2 ;;
    --sas) sas=$2; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

source tests/lib/netns.sh
nsl_init dpscale
if [ -z "${ESPRESSO_TARGET:-}" ]; then
  cargo build --release -q -p espresso-bench --bin dpdk_scale
fi
bin=${ESPRESSO_TARGET:-target/release}/dpdk_scale
nsl_ns s; NS=$NSL_NS

echo "# $(date -u +%FT%TZ) CPU: $(lscpu | sed -nE 's/^Model name: *//p'), $(nproc) vCPUs, load average $(cut -d' ' -f1-3 /proc/loadavg)"
best1c=0 best2c=0 best1w=0 best2w=0
for r in $(seq "$rounds"); do
  for w in 1 2; do
    out=$(ip netns exec "$NS" "$bin" --workers "$w" --secs "$secs" --size "$size" --sas "$sas" --cores 0,1 2>"$NSL_TMP/scale.err") ||
      { cat "$NSL_TMP/scale.err" >&2; nsl_die "dpdk_scale --workers $w failed"; }
    echo "# round $r: $out"
    drops=$(sed -nE 's/.*drops ([0-9]+)$/\1/p' <<<"$out")
    [ "${drops:-1}" = 0 ] || nsl_die "packets dropped: $out"
    wall=$(sed -nE 's/.* -> ([0-9.]+) Mpps wall.*/\1/p' <<<"$out")
    cpu=$(sed -nE 's/.*, sum ([0-9.]+); drops.*/\1/p' <<<"$out")
    # A run that sent nothing (or printed no figure) fails, never a ratio of 0.
    python3 -c "import sys; sys.exit(0 if float(sys.argv[1]) > 0 and float(sys.argv[2]) > 0 else 1)" "${wall:-0}" "${cpu:-0}" ||
      nsl_die "dpdk_scale --workers $w: no valid rate: $out"
    if [ "$w" = 1 ]; then
      best1c=$(python3 -c "print(max($best1c, $cpu))"); best1w=$(python3 -c "print(max($best1w, $wall))")
    else
      best2c=$(python3 -c "print(max($best2c, $cpu))"); best2w=$(python3 -c "print(max($best2w, $wall))")
    fi
  done
done
python3 - "$size" "$best1c" "$best2c" "$best1w" "$best2w" <<'PY'
import sys
size, c1, c2, w1, w2 = sys.argv[1], *map(float, sys.argv[2:])
print(f"dpdk scale esp encap {size}B 2 workers (per CPU-second, summed): ours {c2:.3f} Mpps, reference {c1:.3f} Mpps (1 worker), ratio {c2 / c1:.2f}")
print(f"dpdk scale esp encap {size}B 2 workers (wall clock, 2 shared vCPUs): ours {w2:.3f} Mpps, reference {w1:.3f} Mpps (1 worker), ratio {w2 / w1:.2f}")
PY
