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

echo "== lints: rustfmt, clippy (workspace lints, -D warnings), module imports =="
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --profile ci -- -D warnings 2>&1
python3 scripts/check_module_cycles.py

echo "== cargo tests (workspace) =="
cargo test --workspace --profile ci --no-fail-fast 2>&1

if [ "${1:-}" = "--quick" ]; then
  echo "== quick run: integration tests skipped =="
  exit 0
fi

cargo build --workspace --profile ci --bins --examples 2>&1

failed=()
for t in tests/smoke/*.sh tests/netns/*.sh; do
  [ -e "$t" ] || continue
  echo "== $t =="
  if bash "$t"; then
    echo "PASS $t"
  else
    echo "FAIL $t"
    failed+=("$t")
  fi
done

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED: ${failed[*]}"
  exit 1
fi
echo "all tests passed in $(( $(date +%s) - start )) s"
