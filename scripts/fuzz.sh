#!/usr/bin/env bash
# Runs every fuzz target of dataplane/fuzz/ for a set time each and fails on
# any crash (panic, failed assertion, timeout, out-of-memory).
#
# usage: scripts/fuzz.sh [SECONDS] [TARGET...]
#   SECONDS  per target (default 300)
#   TARGET   default: every target (`cargo fuzz list`)
# env:
#   FUZZ_CORPUS_DIR  working corpus root (default dataplane/fuzz/corpus, kept
#                    between runs and git-ignored); the committed seeds in
#                    dataplane/fuzz/seeds/<target> are always read too.
#   FUZZ_ARGS        extra libFuzzer arguments (e.g. "-jobs=2 -workers=2").
#   FUZZ_BUILD_ARGS  extra cargo-fuzz build arguments. Default: none, i.e.
#                    every crypto backend (RustCrypto, aws-lc-rs, ring), each
#                    input choosing which. "--no-default-features" builds the
#                    RustCrypto backend only (much faster to build: no C).
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

failed=()
for t in "${targets[@]}"; do
  mkdir -p "$corpus_root/$t"
  log=$(mktemp)
  echo "== fuzz: $t for ${secs}s"
  # shellcheck disable=SC2086
  if cargo fuzz run --sanitizer none ${FUZZ_BUILD_ARGS:-} "$t" "$corpus_root/$t" "seeds/$t" -- \
      -max_total_time="$secs" -timeout=20 -rss_limit_mb=2048 -print_final_stats=1 \
      ${FUZZ_ARGS:-} >"$log" 2>&1; then
    runs=$(grep -Eo 'Done [0-9]+ runs' "$log" | tail -1 || true)
    cov=$(grep -Eo 'cov: [0-9]+ ft: [0-9]+ corp: [0-9]+' "$log" | tail -1 || true)
    echo "ok   fuzz $t: ${runs:-?} (${cov:-no stats})"
  else
    echo "FAIL fuzz $t"
    grep -E -A12 'panicked at|ERROR: libFuzzer|Test unit written' "$log" | head -40
    grep -E 'cargo fuzz (run|tmin)' "$log" | head -2
    failed+=("$t")
  fi
  rm -f "$log"
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "fuzz: crashes in ${failed[*]} (inputs in dataplane/fuzz/artifacts/)"
  exit 1
fi
echo "fuzz: ${#targets[@]} targets, no crash"
