#!/usr/bin/env bash
# ESP encap/decap per suite on one core, through espresso's real ESP path
# (esp::encap_burst / esp::decap_burst with Backend::Auto: SAD lookup, replay
# check+commit, padding/trailer, inner checks; bench binary esp_mops), against
# DPDK's dpdk-test-crypto-perf with the crypto_aesni_mb PMD (intel-ipsec-mb),
# crypto-only, on the same crypto work, in one run, trials interleaved.
#
#   bench/e2e/esp_vs_dpdk.sh [--sizes 64,512,1420] [--ops N] [--trials K]
#                            [--suites a,b,...] [--ops-only encap|decap]
#
# Prints per suite, operation and inner packet size:
#   esp encap aes-cbc-128+sha256-128 64B (CPU time): ours X Mops, dpdk aesni_mb Y Mops, ratio Z
# X and Y are the best of K trials (min CPU time); the same line carries the
# medians and the figures with every harness cost included. Ratio > 1 means
# ours is faster.
#
# Time is the CPU time of the one thread doing the work (the machine is
# shared): CLOCK_THREAD_CPUTIME_ID inside esp_mops; for DPDK the worker lcore
# thread (rte-worker-1) from /proc/PID/task/TID/schedstat, read by the
# thread_cpu bench binary once the thread sleeps again after the test. Same
# method as bench/e2e/crypto_perf_ref.sh (which samples /proc stat ticks).
#
# Both sides without their harness (the headline figures): ours without
# putting the packets back into their buffers (esp_mops times that alone and
# subtracts it); DPDK without its warm-up (crypto-perf calls
# rte_cryptodev_enqueue_burst(NULL, 0) total-ops times on the worker before
# its clock starts): dpdk_warmup.c does exactly that warm-up on the same
# device and lcore, its worker CPU time (also by thread_cpu) is subtracted
# trial by trial. "everything included" figures keep both harnesses in (ours
# with the buffer reset, DPDK with warm-up and worker start-up).
#
# Same crypto work on both sides: DPDK's buffer size is the number of bytes
# our encap encrypts for that inner size (inner packet + ESP padding + 2,
# read from `esp_mops --layout`); NULL encryption: SPI+Seq+payload, the
# bytes our HMAC covers. (CBC+HMAC: our HMAC also covers SPI, Seq and IV, 24
# bytes more than DPDK's, which authenticates the buffer only.)
#   encap  vs  aead encrypt / cipher-then-auth (encrypt, generate) / auth-only generate
#   decap  vs  aead decrypt / auth-then-cipher (verify, decrypt)   / auth-only verify
# DPDK's verify needs a test-vector file (--test-file): a random one is
# written; its digests do not match, which costs aesni_mb the same work (the
# throughput test counts every dequeued op).
#
# ESP_MOPS_DIR=dir uses prebuilt esp_mops and thread_cpu from dir instead of
# building the release ones (quick checks; measured runs use the release build).
# ESP_MOPS_BASE=path/to/esp_mops also runs that (older) build in every trial,
# interleaved with the other two, and prints a "before" line per figure
# (before/after of a change measured in the same run).
#
# Same core: DPDK's worker is lcore 1 (-l 0,1), pinned by EAL to CPU 1; our
# esp_mops runs pinned to the same CPU (taskset -c 1). Each result line ends
# with the load average when it was printed (the machine may be shared).
# Ops: N at 64 B, N/2 at 512 B, N/4 at 1420 B (other sizes: N*64/size, at
# least N/4).
set -euo pipefail

sizes=64,512,1420
ops=2000000
trials=3
suites=aes-gcm-128,aes-gcm-256,chacha20-poly1305,aes-cbc-128+sha1-96,aes-cbc-256+sha1-96,aes-cbc-128+sha256-128,aes-cbc-256+sha256-128,aes-cbc-128+sha384-192,aes-cbc-256+sha384-192,aes-cbc-128+sha512-256,aes-cbc-256+sha512-256,null+sha256-128
opsel="encap decap"
while [ $# -gt 0 ]; do
    case "$1" in
        --sizes) sizes=$2; shift 2 ;;
        --ops) ops=$2; shift 2 ;;
        --trials) trials=$2; shift 2 ;;
        --suites) suites=$2; shift 2 ;;
        --ops-only) opsel=$2; shift 2 ;;
        -h|--help) sed -n '2,35p' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
done

root=$(cd "$(dirname "$0")/../.." && pwd)
command -v dpdk-test-crypto-perf >/dev/null || {
    echo "dpdk-test-crypto-perf not found (Debian package dpdk)" >&2; exit 1; }
if [ -n "${ESP_MOPS_DIR:-}" ]; then
    bin=$ESP_MOPS_DIR   # prebuilt esp_mops and thread_cpu (quick checks only)
else
    (cd "$root" && cargo build --release -q -p espresso-bench --bin esp_mops --bin thread_cpu)
    bin=${CARGO_TARGET_DIR:-$root/target}/release
fi
ours_bin=$bin/esp_mops
cpu_bin=$bin/thread_cpu

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The warm-up-only DPDK program (see dpdk_warmup.c).
warm_bin=$tmp/dpdk_warmup
# shellcheck disable=SC2046
cc -O2 $(pkg-config --cflags libdpdk) "$root/bench/e2e/dpdk_warmup.c" \
    $(pkg-config --libs libdpdk) -o "$warm_bin" ||
    { echo "cannot build dpdk_warmup.c (needs libdpdk-dev, pkg-config, cc)" >&2; exit 1; }

# Random test vectors for DPDK's verify runs (global section only).
vec=$tmp/vectors.data
{
    echo "# random values: throughput runs only"
    for kv in plaintext:2048 ciphertext:2048 cipher_key:32 auth_key:64 aead_key:32 \
        cipher_iv:16 aead_iv:12 aad:8 digest:64; do
        printf '%s = %s\n' "${kv%%:*}" \
            "$(od -An -v -tx1 -N "${kv##*:}" /dev/urandom | tr -s ' \n' '  ' |
                sed -E 's/^ //; s/ $//; s/([0-9a-f]{2})/0x\1/g; s/ /,/g')"
    done
} >"$vec"

# DPDK arguments for one suite: sets d_kind (aead|chain|auth) and d_args
# (algorithm, key, IV and digest options, without the operation).
dpdk_suite() {
    local cbc auth
    case "$1" in
        aes-gcm-128) d_kind=aead; d_args="--aead-algo aes-gcm --aead-key-sz 16" ;;
        aes-gcm-256) d_kind=aead; d_args="--aead-algo aes-gcm --aead-key-sz 32" ;;
        chacha20-poly1305) d_kind=aead; d_args="--aead-algo chacha20-poly1305 --aead-key-sz 32" ;;
        aes-cbc-128+*) d_kind=chain; cbc=16 ;;
        aes-cbc-256+*) d_kind=chain; cbc=32 ;;
        null+*) d_kind=auth ;;
        *) echo "no DPDK equivalent for suite $1" >&2; return 1 ;;
    esac
    if [ "$d_kind" = aead ]; then
        d_args="$d_args --aead-iv-sz 12 --aead-aad-sz 8 --digest-sz 16"
        return 0
    fi
    case "${1#*+}" in
        sha1-96) auth="--auth-algo sha1-hmac --auth-key-sz 20 --digest-sz 12" ;;
        sha256-128) auth="--auth-algo sha2-256-hmac --auth-key-sz 32 --digest-sz 16" ;;
        sha384-192) auth="--auth-algo sha2-384-hmac --auth-key-sz 48 --digest-sz 24" ;;
        sha512-256) auth="--auth-algo sha2-512-hmac --auth-key-sz 64 --digest-sz 32" ;;
        *) echo "no DPDK equivalent for suite $1" >&2; return 1 ;;
    esac
    d_args=$auth
    if [ "$d_kind" = chain ]; then
        d_args="--cipher-algo aes-cbc --cipher-key-sz $cbc --cipher-iv-sz 16 $auth"
    fi
}

# The operation options for d_kind and op (encap|decap).
dpdk_op() {
    case "$d_kind:$1" in
        aead:encap) echo "--optype aead --aead-op encrypt" ;;
        aead:decap) echo "--optype aead --aead-op decrypt" ;;
        chain:encap) echo "--optype cipher-then-auth --cipher-op encrypt --auth-op generate" ;;
        chain:decap) echo "--optype auth-then-cipher --cipher-op decrypt --auth-op verify --test-file $vec" ;;
        auth:encap) echo "--optype auth-only --auth-op generate" ;;
        auth:decap) echo "--optype auth-only --auth-op verify --test-file $vec" ;;
    esac
}

# Worker CPU time (ns) of thread_cpu's report in FILE, or nothing if the
# reading may have missed the end of the run.
worker_ns() {
    local ns= seen=
    read -r ns seen < <(sed -nE 's/^thread_cpu: [^ ]+ ([0-9]+) ns \(asleep after running: ([a-z]+)\).*/\1 \2/p' "$1") || true
    [ "${seen:-}" = yes ] && echo "$ns"
    return 0
}

# The warm-up alone for OPS ops: prints the worker's CPU time in ns.
dpdk_warmup_ns() {
    "$cpu_bin" rte-worker-1 -- "$warm_bin" --no-huge -m 512 --no-pci --no-shconf -l 0,1 \
        --vdev crypto_aesni_mb --log-level=lib.eal:warning -- --devtype crypto_aesni_mb \
        --total-ops "$1" >"$tmp/warm.out" 2>&1 || { cat "$tmp/warm.out" >&2; return 1; }
    worker_ns "$tmp/warm.out"
}

# One DPDK run: dpdk_run OPS BUFSZ ARGS...; prints
# "wall_mops cpu_mops cpu_mops_with_warmup" (0 where the CPU reading failed).
dpdk_run() {
    local n=$1 bufsz=$2
    shift 2
    local wns
    wns=$(dpdk_warmup_ns "$n") || return 1
    # thread_cpu runs the command and reports the CPU time of its worker
    # lcore thread (lcore 1 runs the test; lcore 0, the main one, waits).
    # shellcheck disable=SC2068
    "$cpu_bin" rte-worker-1 -- dpdk-test-crypto-perf --no-huge -m 512 --no-pci \
        --no-shconf -l 0,1 --vdev crypto_aesni_mb --log-level=lib.eal:warning -- \
        --silent --ptest throughput --devtype crypto_aesni_mb --burst-sz 32 \
        --buffer-sz "$bufsz" --total-ops "$n" --csv-friendly $@ >"$tmp/dpdk.out" 2>&1 ||
        { cat "$tmp/dpdk.out" >&2; return 1; }
    local ns
    ns=$(worker_ns "$tmp/dpdk.out")
    if [ -z "$ns" ] || [ -z "$wns" ]; then
        # The process ended before the worker was seen asleep after its
        # test: the reading may miss the end, so it is not used.
        echo "warning: $* ${bufsz}B: DPDK worker CPU time not read after its test or warm-up; trial's CPU figure dropped" >&2
        ns=0 wns=0
    fi
    # CSV: lcore,buf,burst,enq,deq,failed enq,failed deq,Mops,Gbps,cycles/buf
    local line
    line=$(grep -E "^ *1,$bufsz,32," "$tmp/dpdk.out" | tail -1)
    [ -n "$line" ] || { cat "$tmp/dpdk.out" >&2; return 1; }
    awk -F, -v ns="${ns:-0}" -v wns="${wns:-0}" -v ops="$n" '{
        cpu = (ns > wns && ns > 0) ? ops / ((ns - wns) / 1e9) / 1e6 : 0
        incl = (ns > 0) ? ops / (ns / 1e9) / 1e6 : 0
        printf "%s %.3f %.3f\n", $8 + 0, cpu, incl }' <<<"$line"
}

# One run of ours: ours_run SUITE OP SIZE OPS; prints
# "wall_mops cpu_mops cpu_mops_with_reset backend".
ours_run() {
    local b=${OURS_BIN:-$ours_bin}
    taskset -c 1 "$b" --suite "$1" --op "$2" --sizes "$3" --ops "$4" --trials 1 |
        sed -nE 's/.*: ([0-9.]+) Mops \(by CPU time ([0-9.]+) Mops; buffer reset included ([0-9.]+) Mops\) backend (.*)/\1 \2 \3 \4/p'
}   # (nothing printed when esp_mops fails or prints no result: the caller fails)

ops_for() {
    local size=$1
    case "$size" in
        64) echo "$ops" ;;
        512) echo $((ops / 2)) ;;
        1420) echo $((ops / 4)) ;;
        *) local o=$((ops * 64 / size)); [ "$o" -ge $((ops / 4)) ] || o=$((ops / 4)); echo "$o" ;;
    esac
}

# best LIST / median LIST: of whitespace-separated numbers (0 = failed reading, ignored).
best() { tr ' ' '\n' <<<"$*" | awk '$1 > 0' | sort -g | tail -1; }
median() {
    tr ' ' '\n' <<<"$*" | awk '$1 > 0' | sort -g |
        awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "# CPU: $(lscpu | sed -nE 's/^Model name: *//p') (family $(lscpu | sed -nE 's/^CPU family: *//p') model $(lscpu | sed -nE 's/^Model: *//p'))"
echo "# dpdk-test-crypto-perf $(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo '?') crypto_aesni_mb; ops=$ops at 64 B, trials=$trials, burst 32"
for suite in ${suites//,/ }; do
    dpdk_suite "$suite"
    # Layout: "layout SIZE iv IV payload P icv ICV" per size.
    declare -A bufsz=()
    while read -r _ s _ _ _ p _ _; do
        case "$d_kind" in
            auth) bufsz[$s]=$((8 + p)) ;;
            *) bufsz[$s]=$p ;;
        esac
    done < <("$ours_bin" --suite "$suite" --layout --sizes "$sizes")
    for op in $opsel; do
        dop=$(dpdk_op "$op")
        for size in ${sizes//,/ }; do
            n=$(ops_for "$size")
            dws= dcs= dis= ows= ocs= ois= backend= bcs= bbackend=
            for _ in $(seq "$trials"); do
                w= c= i=
                read -r w c i < <(dpdk_run "$n" "${bufsz[$size]}" $d_args $dop) || true
                [ -n "$c" ] || { echo "dpdk-test-crypto-perf failed: $suite $op ${size}B" >&2; exit 1; }
                dws+=" $w" dcs+=" $c" dis+=" $i"
                w= c= i=
                read -r w c i backend < <(ours_run "$suite" "$op" "$size" "$n") || true
                [ -n "$c" ] || { echo "esp_mops failed: $suite $op ${size}B" >&2; exit 1; }
                ows+=" $w" ocs+=" $c" ois+=" $i"
                if [ -n "${ESP_MOPS_BASE:-}" ]; then
                    w= c= i=
                    read -r w c i bbackend < <(OURS_BIN=$ESP_MOPS_BASE ours_run "$suite" "$op" "$size" "$n") || true
                    [ -n "$c" ] || { echo "esp_mops (base) failed: $suite $op ${size}B" >&2; exit 1; }
                    bcs+=" $c"
                fi
            done
            echo "# $op $suite ${size}B: ours backend $backend, dpdk buffer ${bufsz[$size]} B, ops $n; wall clock (ours incl. buffer reset, dpdk's own clock): ours $(best $ows) Mops, dpdk $(best $dws) Mops"
            awk -v op="$op" -v su="$suite" -v s="$size" \
                -v oc="$(best $ocs)" -v dc="$(best $dcs)" -v om="$(median $ocs)" -v dm="$(median $dcs)" \
                -v oi="$(best $ois)" -v di="$(best $dis)" -v k="$trials" 'BEGIN {
                if (dc > 0 && dm > 0 && di > 0 && oc > 0 && om > 0 && oi > 0)
                    printf "esp %s %s %sB (CPU time): ours %.2f Mops, dpdk aesni_mb %.2f Mops, ratio %.2f (median of %d: ours %.2f, dpdk %.2f, ratio %.2f; everything included: ours %.2f, dpdk %.2f, ratio %.2f)\n", op, su, s, oc, dc, oc / dc, k, om, dm, om / dm, oi, di, oi / di
                else {
                    # No ratio without both sides: a side with no valid
                    # figure in any trial fails the benchmark.
                    printf "esp %s %s %sB: no valid CPU-time figure in %d trials (ours %s, dpdk %s)\n", op, su, s, k, oc, dc > "/dev/stderr"
                    exit 1
                }
            }'
            if [ -n "${ESP_MOPS_BASE:-}" ]; then
                awk -v op="$op" -v su="$suite" -v s="$size" -v bc="$(best $bcs)" \
                    -v dc="$(best $dcs)" -v bb="$bbackend" -v la="$(cut -d' ' -f1-3 /proc/loadavg)" 'BEGIN {
                    if (dc > 0) printf "before: esp %s %s %sB (CPU time): ours %.2f Mops, dpdk aesni_mb %.2f Mops, ratio %.2f (backend %s; load %s)\n", op, su, s, bc, dc, bc / dc, bb, la
                }'
            fi
            echo "# load average: $(cut -d' ' -f1-3 /proc/loadavg)"
        done
    done
    unset bufsz
done
