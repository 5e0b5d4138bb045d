#!/usr/bin/env bash
# A fuzz campaign: every target of dataplane/fuzz/ for a set time each,
# printing executions and crashes per target (a summary table at the end);
# fails if any target crashed (panic, failed assertion, timeout,
# out-of-memory).
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 300)
#   TARGET   default: every target (`cargo fuzz list`)
# env:
#   FUZZ_CORPUS_DIR  working corpus root (default dataplane/fuzz/corpus, kept
#                    between runs and git-ignored); the committed seeds in
#                    dataplane/fuzz/seeds/<target> are always read too.
#   FUZZ_ARGS        extra libFuzzer arguments (e.g. "-jobs=2 -workers=2").
#   FUZZ_JOBS        targets run at the same time (default 1).
#   FUZZ_BUILD_ARGS  extra cargo-fuzz build arguments. Default: none, i.e.
#                    every crypto backend (RustCrypto, aws-lc-rs, ring), each
#                    input choosing which. "--no-default-features" builds the
#                    RustCrypto backend only (much faster to build: no C).
#   FUZZ_BUILD_ONLY  1: build the targets and stop (scripts/test.sh builds them
#                    in the background while the namespace tests run).
#
# Runs on the stable toolchain: `--sanitizer none` keeps libFuzzer's
# coverage instrumentation (stable codegen options) and drops only the
# sanitizers, which need nightly. Rust's own checks stay on: cargo-fuzz
# builds with debug assertions, so integer overflow panics too.
# A crash leaves its input in dataplane/fuzz/artifacts/<target>/; reproduce
# with `cargo fuzz run --sanitizer none TARGET ARTIFACT` (in dataplane/fuzz).
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)
secs=${1:-300}
shift || true

if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz (crates.io)" >&2
  cargo install --locked cargo-fuzz >&2
fi

cd "$top/dataplane/fuzz"
if [ $# -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo fuzz list)
fi
corpus_root=${FUZZ_CORPUS_DIR:-$top/dataplane/fuzz/corpus}

echo "== fuzz: building ${targets[*]} (stable, --sanitizer none)"
blog=$(mktemp)
# shellcheck disable=SC2086
if ! cargo fuzz build --sanitizer none ${FUZZ_BUILD_ARGS:-} >"$blog" 2>&1; then
  grep -v '^\s*Compiling' "$blog" | tail -60
  rm -f "$blog"
  echo "fuzz: build failed" >&2
  exit 1
fi
rm -f "$blog"
if [ "${FUZZ_BUILD_ONLY:-0}" = 1 ]; then
  echo "== fuzz: built ${#targets[@]} targets"
  exit 0
fi

# One target for `secs` seconds in all: after a crash (its input saved in
# artifacts/<target>/) the fuzzer starts again for the time left, so that
# one campaign counts executions and crashes per target (at most
# FUZZ_MAX_CRASHES restarts, default 20). Prints its report; its last line
# is the summary row, and it fails if the target crashed.
fuzz_one() {
  local t=$1 execs=0 crashes=0 cov="" start left log rc n c took
  mkdir -p "$corpus_root/$t"
  echo "== fuzz: $t for ${secs}s"
  start=$(date +%s)
  while :; do
    left=$(( secs - ($(date +%s) - start) ))
    [ "$left" -gt 0 ] || break
    log=$(mktemp)
    # shellcheck disable=SC2086
    if cargo fuzz run --sanitizer none ${FUZZ_BUILD_ARGS:-} "$t" "$corpus_root/$t" "seeds/$t" -- \
        -max_total_time="$left" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
        ${FUZZ_ARGS:-} >"$log" 2>&1; then
      rc=0
    else
      rc=1
    fi
    n=$(grep -Eo 'stat::number_of_executed_units: [0-9]+' "$log" | tail -1 | grep -Eo '[0-9]+$' || true)
    if [ -z "$n" ]; then
      n=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 | grep -Eo '[0-9]+' || true)
    fi
    execs=$(( execs + ${n:-0} ))
    c=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || true)
    [ -n "$c" ] && cov=$c
    if [ "$rc" = 0 ]; then
      rm -f "$log"
      break
    fi
    crashes=$(( crashes + 1 ))
    echo "CRASH fuzz $t (#$crashes)"
    grep -E -A12 'panicked at|ERROR: libFuzzer|Test unit written' "$log" | head -40
    rm -f "$log"
    if [ -z "$n" ] || [ "$crashes" -ge "${FUZZ_MAX_CRASHES:-20}" ]; then
      break
    fi
  done
  took=$(( $(date +%s) - start ))
  if [ "$crashes" -gt 0 ]; then
    echo "FAIL fuzz $t: $execs executions, $crashes crashes in ${took}s (${cov:-no stats})"
  else
    echo "ok   fuzz $t: $execs executions, 0 crashes in ${took}s (${cov:-no stats})"
  fi
  printf '%-14s %6ss %12s execs %4s crashes  %s\n' "$t" "$took" "$execs" "$crashes" "${cov:-}"
  [ "$crashes" = 0 ]
}

# FUZZ_JOBS targets at a time (default 1; the smoke run uses one per core):
# each target still gets its `secs` seconds of one core. Reports are printed
# in target order.
jobs=${FUZZ_JOBS:-1}
out=$(mktemp -d)
pids=()
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs" ]; do
    wait -n || true
  done
  ( if fuzz_one "$t" >"$out/$t.log" 2>&1; then echo 0 >"$out/$t.rc"; else echo 1 >"$out/$t.rc"; fi ) &
  pids+=($!)
done
for p in "${pids[@]}"; do
  wait "$p" || true
done
failed=()
summary=()
for t in "${targets[@]}"; do
  sed '$d' "$out/$t.log"
  summary+=("$(tail -1 "$out/$t.log")")
  [ "$(cat "$out/$t.rc" 2>/dev/null)" = 0 ] || failed+=("$t")
done
rm -rf "$out"

echo "== fuzz summary (target, time, executions, crashes, final coverage)"
printf '%s\n' "${summary[@]}"
if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]} (inputs in dataplane/fuzz/artifacts/; reproduce with"
  echo "  cd dataplane/fuzz && cargo fuzz run --sanitizer none TARGET ARTIFACT)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
