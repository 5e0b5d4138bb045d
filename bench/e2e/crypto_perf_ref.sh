#!/usr/bin/env bash
# Crypto-only AES-128-GCM throughput on one core: DPDK's dpdk-test-crypto-perf
# with the crypto_aesni_mb PMD (intel-ipsec-mb) against espresso's
# multi-buffer kernel (crypto::mb, via the gcm_mb_mops bench binary), in one
# run, trials interleaved.
#
#   bench/e2e/crypto_perf_ref.sh [--sizes 64,512,1420] [--ops N] [--trials K] [--op seal|open]
#
# Prints per size:
#   gcm_mb seal 64B: ours X Mops, dpdk aesni_mb Y Mops, ratio Z              (wall clock)
#   gcm_mb seal 64B (CPU time): ours X Mops, dpdk aesni_mb Y Mops, ratio Z   (thread CPU time)
# Each figure is the best of K trials. Wall clock is what both tools report;
# the machine is shared, so the CPU-time line (ops / CPU time of the one
# thread doing the work: DPDK's lcore 1 worker "rte-worker-1", read by the
# thread_cpu bench binary, minus a warm-up-only run of the same worker,
# dpdk_warmup.c, as bench/e2e/esp_vs_dpdk.sh does; ours: its timed loop's
# thread CPU time, pinned to the same CPU 1) discounts time the scheduler
# gave to other processes. A failed run, or a figure of 0, fails the script.
#
# DPDK side (EAL: no hugepages, no PCI; lcore 0 is the main lcore, lcore 1
# runs the test):
#   dpdk-test-crypto-perf --no-huge -m 512 --no-pci --no-shconf -l 0,1
#     --vdev crypto_aesni_mb -- --ptest throughput --devtype crypto_aesni_mb
#     --optype aead --aead-algo aes-gcm --aead-op encrypt --aead-key-sz 16
#     --aead-iv-sz 12 --aead-aad-sz 8 --digest-sz 16 --buffer-sz SIZE
#     --burst-sz 32 --total-ops N --csv-friendly --silent
set -euo pipefail

sizes=64,512,1420
ops=10000000
trials=3
op=seal
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes=$2; shift 2 ;;
        --ops) ops=$2; shift 2 ;;
        --trials) trials=$2; shift 2 ;;
        --op) op=$2; shift 2 ;;
        -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done
case "$op" in
    seal) aead_op=encrypt ;;
    open) aead_op=decrypt ;;
    *) echo "--op is seal or open" >&2; exit 2 ;;
esac

root=$(cd "$(dirname "$0")/../.." && pwd)
command -v dpdk-test-crypto-perf >/dev/null || {
    echo "dpdk-test-crypto-perf not found (Debian package dpdk)" >&2; exit 1; }
(cd "$root" && cargo build --release -q -p espresso-bench --bin gcm_mb_mops --bin thread_cpu)
ours_bin=${CARGO_TARGET_DIR:-$root/target}/release/gcm_mb_mops
cpu_bin=${CARGO_TARGET_DIR:-$root/target}/release/thread_cpu

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The warm-up-only DPDK program (bench/e2e/dpdk_warmup.c, as esp_vs_dpdk.sh).
warm_bin=$tmp/dpdk_warmup
# shellcheck disable=SC2046
cc -O2 $(pkg-config --cflags libdpdk) "$root/bench/e2e/dpdk_warmup.c" \
    $(pkg-config --libs libdpdk) -o "$warm_bin" ||
    { echo "cannot build dpdk_warmup.c (needs libdpdk-dev, pkg-config, cc)" >&2; exit 1; }

# Worker CPU time (ns) from thread_cpu's report in FILE; fails if the reading
# may have missed the end of the run (worker never seen asleep after it).
worker_ns() {
    local ns
    ns=$(sed -nE 's/^thread_cpu: [^ ]+ ([0-9]+) ns \(asleep after running: yes\).*/\1/p' "$1")
    [ -n "$ns" ] && [ "$ns" -gt 0 ] || { echo "DPDK worker CPU time not read after the run: $(grep '^thread_cpu:' "$1")" >&2; return 1; }
    echo "$ns"
}

# One DPDK run for one size: prints "wall_mops cpu_mops", or fails.
# CPU time: the worker lcore thread (rte-worker-1) by thread_cpu, minus the
# CPU time of the same warm-up alone (crypto-perf calls
# rte_cryptodev_enqueue_burst(NULL, 0) total-ops times before its clock
# starts; dpdk_warmup.c), so that DPDK is timed as ours is: the op loop only.
dpdk_run() {
    local size=$1 wns ns
    "$cpu_bin" rte-worker-1 -- "$warm_bin" --no-huge -m 512 --no-pci --no-shconf -l 0,1 \
        --vdev crypto_aesni_mb --log-level=lib.eal:warning -- --devtype crypto_aesni_mb \
        --total-ops "$ops" >"$tmp/warm.out" 2>&1 || { cat "$tmp/warm.out" >&2; return 1; }
    wns=$(worker_ns "$tmp/warm.out") || return 1
    "$cpu_bin" rte-worker-1 -- dpdk-test-crypto-perf --no-huge -m 512 --no-pci --no-shconf -l 0,1 \
        --vdev crypto_aesni_mb --log-level=lib.eal:warning -- \
        --silent --ptest throughput --devtype crypto_aesni_mb --optype aead \
        --aead-algo aes-gcm --aead-op "$aead_op" --aead-key-sz 16 --aead-iv-sz 12 \
        --aead-aad-sz 8 --digest-sz 16 --buffer-sz "$size" --burst-sz 32 \
        --total-ops "$ops" --csv-friendly >"$tmp/dpdk.out" 2>&1 || { cat "$tmp/dpdk.out" >&2; return 1; }
    ns=$(worker_ns "$tmp/dpdk.out") || return 1
    [ "$ns" -gt "$wns" ] || { echo "DPDK worker CPU time $ns ns not above its warm-up's $wns ns" >&2; return 1; }
    # CSV: lcore,buf,burst,enq,deq,failed enq,failed deq,Mops,Gbps,cycles/buf
    local line
    line=$(grep -E "^ *1,$size,32," "$tmp/dpdk.out" | tail -1)
    [ -n "$line" ] || { cat "$tmp/dpdk.out" >&2; return 1; }
    awk -F, -v ns="$ns" -v wns="$wns" -v ops="$ops" \
        '{ printf "%s %.3f\n", $8 + 0, ops / ((ns - wns) / 1e9) / 1e6 }' <<<"$line"
}

# One run of ours for one size, on the DPDK worker's CPU (lcore 1 = CPU 1):
# prints "wall_mops cpu_mops", or fails.
ours_run() {
    local out
    out=$(taskset -c 1 "$ours_bin" --op "$op" --sizes "$1" --ops "$ops" --trials 1) || return 1
    sed -nE 's/.*: ([0-9.]+) Mops \(by CPU time ([0-9.]+) Mops\)/\1 \2/p' <<<"$out" | grep . ||
        { echo "gcm_mb_mops printed no result: $out" >&2; return 1; }
}

# positive A B...: succeeds if every argument is a number > 0.
positive() { awk 'BEGIN { for (i = 1; i < ARGC; i++) if (!(ARGV[i] + 0 > 0)) exit 1 }' "$@"; }

max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b) ? a : b }'; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# dpdk-test-crypto-perf $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo '?') crypto_aesni_mb; ops=$ops, trials=$trials, burst 32, AES-128-GCM, AAD 8, ICV 16"
for size in ${sizes//,/ }; do
    dw=0 dc=0 ow=0 oc=0
    for _ in $(seq "$trials"); do
        # (No process substitution: a failed run must fail the benchmark. One
        # retry: under load the worker may not be seen asleep after its test.)
        r=$(dpdk_run "$size") || r=$(dpdk_run "$size") ||
            { echo "dpdk-test-crypto-perf failed twice: $op ${size}B" >&2; exit 1; }
        read -r w c <<<"$r"
        positive "$w" "$c" || { echo "dpdk-test-crypto-perf: no valid figure ($r): $op ${size}B" >&2; exit 1; }
        dw=$(max "$dw" "$w"); dc=$(max "$dc" "$c")
        r=$(ours_run "$size") || { echo "gcm_mb_mops failed: $op ${size}B" >&2; exit 1; }
        read -r w c <<<"$r"
        positive "$w" "$c" || { echo "gcm_mb_mops: no valid figure ($r): $op ${size}B" >&2; exit 1; }
        ow=$(max "$ow" "$w"); oc=$(max "$oc" "$c")
    done
    awk -v op="$op" -v s="$size" -v ow="$ow" -v dw="$dw" -v oc="$oc" -v dc="$dc" -v la="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
        printf "gcm_mb %s %sB: ours %.2f Mops, dpdk aesni_mb %.2f Mops, ratio %.2f\n", op, s, ow, dw, ow / dw
        printf "gcm_mb %s %sB (CPU time): ours %.2f Mops, dpdk aesni_mb %.2f Mops, ratio %.2f (load %s)\n", op, s, oc, dc, oc / dc, la
    }'
done
