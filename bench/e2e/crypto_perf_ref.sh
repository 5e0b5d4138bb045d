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
# thread doing the work: DPDK's lcore 1 worker "rte-worker-1", from /proc) discounts
# time the scheduler gave to other processes.
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
(cd "$root" && cargo build --release -q -p espresso-bench --bin gcm_mb_mops)
ours_bin=$root/target/release/gcm_mb_mops

tmp=$(mktemp -d)
dpdk_pid=
cleanup() {
    if [ -n "$dpdk_pid" ] && kill -0 "$dpdk_pid" 2>/dev/null; then kill "$dpdk_pid"; fi
    rm -rf "$tmp"
}
trap cleanup EXIT

hz=$(getconf CLK_TCK)

# One DPDK run for one size: prints "wall_mops cpu_mops".
dpdk_run() {
    local size=$1
    dpdk-test-crypto-perf --no-huge -m 512 --no-pci --no-shconf -l 0,1 \
        --vdev crypto_aesni_mb --log-level=lib.eal:warning -- \
        --silent --ptest throughput --devtype crypto_aesni_mb --optype aead \
        --aead-algo aes-gcm --aead-op "$aead_op" --aead-key-sz 16 --aead-iv-sz 12 \
        --aead-aad-sz 8 --digest-sz 16 --buffer-sz "$size" --burst-sz 32 \
        --total-ops "$ops" --csv-friendly >"$tmp/dpdk.out" 2>&1 &
    dpdk_pid=$!
    # CPU ticks of the worker lcore thread, sampled until the process ends.
    local ticks=0 t comm st
    while kill -0 "$dpdk_pid" 2>/dev/null; do
        for t in /proc/"$dpdk_pid"/task/*; do
            comm=$(cat "$t/comm" 2>/dev/null) || continue
            case "$comm" in
                lcore-worker-1|rte-worker-1)
                    st=$(cat "$t/stat" 2>/dev/null) || continue
                    # utime, stime: fields 14, 15 (comm has no spaces here).
                    ticks=$(awk '{print $14 + $15}' <<<"$st") ;;
            esac
        done
        sleep 0.02
    done
    wait "$dpdk_pid" || { cat "$tmp/dpdk.out" >&2; return 1; }
    dpdk_pid=
    # CSV: lcore,buf,burst,enq,deq,failed enq,failed deq,Mops,Gbps,cycles/buf
    local line
    line=$(grep -E "^ *1,$size,32," "$tmp/dpdk.out" | tail -1)
    [ -n "$line" ] || { cat "$tmp/dpdk.out" >&2; return 1; }
    awk -F, -v ticks="$ticks" -v hz="$hz" -v ops="$ops" \
        '{ cpu = (ticks > 0) ? ops / (ticks / hz) / 1e6 : 0; printf "%s %.3f\n", $8 + 0, cpu }' <<<"$line"
}

# One run of ours for one size: prints "wall_mops cpu_mops".
ours_run() {
    "$ours_bin" --op "$op" --sizes "$1" --ops "$ops" --trials 1 |
        sed -E 's/.*: ([0-9.]+) Mops \(by CPU time ([0-9.]+) Mops\)/\1 \2/'
}

max() { awk -v a="$1" -v b="$2" 'BEGIN { print (a > b) ? a : b }'; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# dpdk-test-crypto-perf $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo '?') crypto_aesni_mb; ops=$ops, trials=$trials, burst 32, AES-128-GCM, AAD 8, ICV 16"
for size in ${sizes//,/ }; do
    dw=0 dc=0 ow=0 oc=0
    for _ in $(seq "$trials"); do
        read -r w c < <(dpdk_run "$size")
        dw=$(max "$dw" "$w"); dc=$(max "$dc" "$c")
        read -r w c < <(ours_run "$size")
        ow=$(max "$ow" "$w"); oc=$(max "$oc" "$c")
    done
    awk -v op="$op" -v s="$size" -v ow="$ow" -v dw="$dw" -v oc="$oc" -v dc="$dc" 'BEGIN {
        printf "gcm_mb %s %sB: ours %.2f Mops, dpdk aesni_mb %.2f Mops, ratio %.2f\n", op, s, ow, dw, ow / dw
        if (dc > 0) printf "gcm_mb %s %sB (CPU time): ours %.2f Mops, dpdk aesni_mb %.2f Mops, ratio %.2f\n", op, s, oc, dc, oc / dc
    }'
done
