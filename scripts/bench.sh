#!/usr/bin/env bash
# Runs every espresso benchmark and prints each result as
#   name: ours X, reference Y, ratio Z
# (reference measured in the same run).
#   1. criterion micro-benchmarks: every benches/*.rs target of every
#      workspace crate, discovered (cargo bench -p CRATE --bench NAME);
#   2. end-to-end benchmarks in network namespaces: bench/e2e/*.sh (root).
# Usage: scripts/bench.sh [--micro-only | --e2e-only] [FILTER]
#   FILTER: run only benchmarks whose name contains it.
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=all
case "${1:-}" in
  --micro-only) MODE=micro; shift ;;
  --e2e-only) MODE=e2e; shift ;;
esac
FILTER="${1:-}"
scripts/setup.sh
OUT=$(mktemp -d /tmp/espresso-bench.XXXX)
trap 'rm -rf "$OUT"' EXIT

if [ "$MODE" != e2e ]; then
  echo "== criterion micro-benchmarks =="
  for toml in */Cargo.toml; do
    dir=$(dirname "$toml")
    [ -d "$dir/benches" ] || continue
    pkg=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$toml" | head -n 1)
    for b in "$dir"/benches/*.rs; do
      [ -e "$b" ] || continue
      name=$(basename "$b" .rs)
      [ -z "$FILTER" ] || [[ "$pkg/$name" == *"$FILTER"* ]] || continue
      echo "-- cargo bench -p $pkg --bench $name"
      cargo bench -p "$pkg" --bench "$name" 2>&1 | tee "$OUT/micro_$name.log" \
        | grep -E "^[A-Za-z0-9_./ -]+: ours " || true
    done
  done
fi

if [ "$MODE" != micro ]; then
  echo "== end-to-end (network namespaces) =="
  cargo build --release -p espresso-dataplane -p espresso-control -p espresso-bench --bins 2>&1 | tail -n 1
  export ESPRESSO_TARGET="${CARGO_TARGET_DIR:-target}/release"
  for s in bench/e2e/*.sh; do
    [ -z "$FILTER" ] || [[ "$s" == *"$FILTER"* ]] || continue
    echo "-- $s"
    bash "$s" 2>"$OUT/$(basename "$s").err" | tee "$OUT/$(basename "$s").out" \
      || { echo "$s failed:"; tail -n 20 "$OUT/$(basename "$s").err"; }
  done
fi

echo "== summary =="
cat "$OUT"/*.out "$OUT"/micro_*.log 2>/dev/null | grep -E ": ours .*, (reference|dpdk) .*, ratio " || true
