#!/usr/bin/env bash
# Runs every espresso test: the lints (rustfmt, clippy with the workspace
# lints, no two files of a module folder importing each other), unit and
# property tests (cargo), fuzz smoke runs, and the integration tests in
# network namespaces (tests/netns/*.sh, as root).
# Usage: scripts/test.sh [--quick]   (--quick: lints and cargo tests only)
set -euo pipefail
cd "$(dirname "$0")/.."
top=$(pwd)

scripts/setup.sh

# One build profile for everything the tests run (see [profile.ci] in Cargo.toml);
# the namespace tests find the binaries through ESPRESSO_TARGET.
export ESPRESSO_TARGET="${CARGO_TARGET_DIR:-target}/ci"
start=$(date +%s)
# Wall time of each stage and script, summed up at the end (where CI time goes).
times=()
mark=$start
took() {
  local now
  now=$(date +%s)
  times+=("$(printf '%5d s  %s' $((now - mark)) "$1")")
  mark=$now
}
report_times() {
  echo "== wall time per stage (s) =="
  printf '%s\n' "${times[@]}"
}

echo "== lints: rustfmt, clippy (workspace lints, -D warnings), module imports =="
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --profile ci -- -D warnings 2>&1
python3 scripts/check_module_cycles.py
took "lints (fmt, clippy, module cycles)"

echo "== cargo tests (workspace) =="
# Tests that cannot run their main check on this CPU record it here
# (dataplane/tests/skip_note), printed below: no silent skips.
export ESPRESSO_TEST_SKIPS="${TMPDIR:-/tmp}/espresso-test-skips.$$"
rm -f "$ESPRESSO_TEST_SKIPS"
trap 'rm -f "$ESPRESSO_TEST_SKIPS"' EXIT
cargo test --workspace --profile ci --no-fail-fast 2>&1
took "cargo tests (build + run)"
# The multi-buffer AES-GCM tests once more on the portable path that
# replaces the kernel on CPUs without VAES/VPCLMULQDQ/AVX-512.
echo "== AES-GCM kernel tests on the portable path (ESPRESSO_TEST_PORTABLE=1) =="
# --workspace, as above: `-p espresso-dataplane` alone would unify features
# differently and rebuild the crate and its dependencies (about 1 min).
ESPRESSO_TEST_PORTABLE=1 cargo test --workspace --profile ci \
  --test gcm_mb --test gcm_mb_vectors 2>&1
took "AES-GCM portable path"
echo "== CPU: $(lscpu | sed -nE 's/^Model name: *//p'); $(grep -o -w 'aes\|vaes\|vpclmulqdq\|avx512f\|sha_ni' /proc/cpuinfo | sort -u | tr '\n' ' ') =="
if [ -s "$ESPRESSO_TEST_SKIPS" ]; then
  echo "== skipped on this machine (the portable path was tested instead) =="
  sort -u "$ESPRESSO_TEST_SKIPS"
else
  echo "== no test skipped its main check on this machine =="
fi

if [ "${1:-}" = "--quick" ]; then
  report_times
  echo "== quick run: integration tests skipped =="
  exit 0
fi

cargo build --workspace --profile ci --bins --examples 2>&1
took "build bins and examples"

# The fuzz targets are their own workspace, built with libFuzzer's coverage
# instrumentation: nothing of the ci build above can be reused, and their
# build was most of the fuzz smoke's time (~300 s on a fresh clone). It runs
# in the background at nice 19 while the namespace tests run (they mostly
# wait on timers and flows; at nice 19 the build only gets the CPU they leave
# idle); the fuzz smoke itself runs after them, on the finished build.
fuzz_build_log=$(mktemp "${TMPDIR:-/tmp}/espresso-fuzz-build.XXXXXX")
# (its own process group, so that an interrupted run stops all of it)
fuzz_build_start=$(date +%s)
FUZZ_BUILD_ONLY=1 setsid bash -c 'nice -n 19 bash tests/smoke/fuzz_smoke.sh; rc=$?; date +%s >"$0.end"; exit $rc' \
  "$fuzz_build_log" >"$fuzz_build_log" 2>&1 &
fuzz_build_pid=$!
trap 'rm -f "$ESPRESSO_TEST_SKIPS" "$fuzz_build_log" "$fuzz_build_log.end"; kill -- "-$fuzz_build_pid" 2>/dev/null || true' EXIT

failed=()
for t in tests/smoke/*.sh tests/netns/*.sh; do
  [ -e "$t" ] || continue
  [ "$t" = tests/smoke/fuzz_smoke.sh ] && continue   # after the namespace tests
  echo "== $t =="
  if bash "$t"; then
    echo "PASS $t"
  else
    echo "FAIL $t"
    failed+=("$t")
  fi
  took "$t"
done

echo "== tests/smoke/fuzz_smoke.sh =="
if wait "$fuzz_build_pid"; then
  cat "$fuzz_build_log"
  took "fuzz targets build: waited for it (it took $(( $(cat "$fuzz_build_log.end") - fuzz_build_start )) s in the background)"
  if bash tests/smoke/fuzz_smoke.sh; then
    echo "PASS tests/smoke/fuzz_smoke.sh"
  else
    echo "FAIL tests/smoke/fuzz_smoke.sh"
    failed+=(tests/smoke/fuzz_smoke.sh)
  fi
else
  cat "$fuzz_build_log"
  echo "FAIL tests/smoke/fuzz_smoke.sh (build)"
  failed+=(tests/smoke/fuzz_smoke.sh)
fi
took "tests/smoke/fuzz_smoke.sh (runs)"
report_times

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all tests passed in $(( $(date +%s) - start )) s"
