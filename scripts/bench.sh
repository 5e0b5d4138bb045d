#!/usr/bin/env bash
# Runs every espresso benchmark and prints each result as
#   name: ours X, reference Y, ratio Z
# (reference measured in the same run).
#   1. criterion micro-benchmarks: every benches/*.rs target of every
#      workspace crate, discovered (cargo bench -p CRATE --bench NAME);
#   2. end-to-end benchmarks in network namespaces: bench/e2e/*.sh (root).
# Usage: scripts/bench.sh [--report] [--micro-only | --e2e-only] [FILTER]
#   FILTER: run only benchmarks whose name contains it; several filters are
#   separated by commas (sad,esp_vs_dpdk,iperf).
#   --report: also write bench/results/REPORT.md (tables, SVG charts in
#   bench/results/report/, machine, commit, commands; bench_report) and
#   regenerate the README's benchmark table from it; the raw outputs stay in
#   bench/results/raw/.
# Every benchmark's progress is shown ([k/N], elapsed time); the summary
# lists every ratio line of every benchmark. The exit status is 1 if any
# benchmark failed (each failure is named), 0 otherwise; a benchmark fails
# if it exits non-zero, if one of its ratio lines has a zero, missing or
# invalid figure (ours, reference or ratio), or if it printed no ratio line
# at all (except the loss runs ike_flood, rekey_soak and soak).
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=all
REPORT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --micro-only) MODE=micro; shift ;;
    --e2e-only) MODE=e2e; shift ;;
    --report) REPORT=1; shift ;;
    -h|--help) sed -n '2,21p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) break ;;
  esac
done
FILTER="${1:-}"
# True if the benchmark named $1 is selected by FILTER.
selected() {
  [ -z "$FILTER" ] && return 0
  local f
  IFS=, read -ra fs <<<"$FILTER"
  for f in "${fs[@]}"; do
    [[ "$1" == *"$f"* ]] && return 0
  done
  return 1
}
scripts/setup.sh
if [ "$REPORT" = 1 ]; then
  OUT=bench/results/raw
  rm -rf "$OUT"
  mkdir -p "$OUT"
else
  OUT=$(mktemp -d /tmp/espresso-bench.XXXX)
  trap 'rm -rf "$OUT"' EXIT
fi
ENV="$OUT/run.env"
: >"$ENV"
put() { printf '%s=%s\n' "$1" "$2" >>"$ENV"; }
put date "$(date -u +%FT%TZ)"
put commit "$(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet 2>/dev/null || echo ' (with uncommitted changes)')"
put cpu "$(lscpu | sed -nE 's/^Model name: *//p')"
put cpu_family "$(lscpu | sed -nE 's/^CPU family: *//p') / $(lscpu | sed -nE 's/^Model: *//p')"
put vcpus "$(nproc)"
put flags "$(grep -o -w 'aes\|vaes\|vpclmulqdq\|avx2\|avx512f\|avx512bw\|avx512vl\|sha_ni\|pclmulqdq' /proc/cpuinfo | sort -u | tr '\n' ' ')"
put hypervisor "$(lscpu | sed -nE 's/^Hypervisor vendor: *//p')"
put memory "$(free -g | awk '/^Mem:/ {print $2 " GiB"}')"
put kernel "$(uname -r)"
put load_start "$(cut -d' ' -f1-3 /proc/loadavg)"
put selection "${FILTER:-every benchmark}"
put rustc "$(rustc --version)"
put dpdk "$(dpkg-query -W -f='${Version}' dpdk 2>/dev/null || echo '?')"
put ipsec_mb "$(dpkg-query -W -f='${Version}' libipsec-mb1 2>/dev/null || echo '?')"

# The benchmarks to run: "kind:name:command".
LIST=()
if [ "$MODE" != e2e ]; then
  for toml in */Cargo.toml; do
    dir=$(dirname "$toml")
    [ -d "$dir/benches" ] || continue
    pkg=$(sed -n 's/^name *= *"\(.*\)"/\1/p' "$toml" | head -n 1)
    for b in "$dir"/benches/*.rs; do
      [ -e "$b" ] || continue
      name=$(basename "$b" .rs)
      selected "$pkg/$name" || continue
      LIST+=("micro:$name:cargo bench -p $pkg --bench $name")
    done
  done
fi
if [ "$MODE" != micro ]; then
  for s in bench/e2e/*.sh; do
    name=$(basename "$s" .sh)
    # dpdk_secgw.sh is the reference half of dpdk_esp.sh, not a benchmark of its own.
    [ "$name" = dpdk_secgw ] && continue
    selected "$s" || continue
    LIST+=("e2e:$name:bash $s")
  done
fi
N=${#LIST[@]}
[ "$N" -gt 0 ] || { echo "no benchmark matches '$FILTER'" >&2; exit 2; }

if [ "$MODE" != micro ]; then
  echo "== building release binaries for the end-to-end benchmarks =="
  cargo build --release -p espresso-dataplane -p espresso-control -p espresso-bench --bins 2>&1 | tail -n 1
  export ESPRESSO_TARGET="${CARGO_TARGET_DIR:-target}/release"
fi

# Loss and soak runs that print no "ours X, reference Y, ratio Z" line: their
# verdict is their exit status.
NO_RATIO=" ike_flood rekey_soak soak "
# check_ratios NAME FILE: succeeds if every ratio line in FILE has a positive
# figure for ours and the reference and a finite positive ratio, and (unless
# NAME is in NO_RATIO) there is at least one; otherwise prints what is wrong.
# A side that failed, dropped out or measured 0 fails the benchmark instead
# of printing a ratio.
check_ratios() {
  python3 - "$1" "$2" "$NO_RATIO" <<'PY'
import math, re, sys
name, path, no_ratio = sys.argv[1], sys.argv[2], sys.argv[3].split()
num = r"(-?[0-9][0-9.eE+-]*|-?\.[0-9]+|\bnan\b|\binf\b|\bn/a\b)"
lines = [l.rstrip("\n") for l in open(path, errors="replace") if re.search(r": ours .*, ratio ", l)]
bad = []
for l in lines:
    o = re.search(r": ours " + num, l)
    r = re.search(r", ratio " + num, l)
    # the reference: the first number after "ours X UNIT, "
    ref = re.search(r": ours [^,]*, [^0-9,]*?" + num, l)
    vals = [m.group(1) if m else "?" for m in (o, ref, r)]
    def ok(v):
        try:
            f = float(v)
        except ValueError:
            return False
        return math.isfinite(f) and f > 0
    if not all(ok(v) for v in vals):
        bad.append(l)
if bad:
    print("%d ratio line(s) with a zero, missing or invalid figure: %s" % (len(bad), " | ".join(bad[:3])))
    sys.exit(1)
if not lines and name not in no_ratio:
    print("printed no 'ours X, reference Y, ratio Z' line")
    sys.exit(1)
PY
}

failed=()
t_all=$(date +%s)
k=0
for item in "${LIST[@]}"; do
  k=$((k + 1))
  kind=${item%%:*}; rest=${item#*:}; name=${rest%%:*}; cmd=${rest#*:}
  put "cmd_$name" "$cmd"
  put command "$cmd"
  echo "== [$k/$N] $name: $cmd (started $(date +%T), $(( $(date +%s) - t_all )) s into the run) =="
  t0=$(date +%s)
  # The benchmark's own lines, stdout and stderr (where the netns scripts log
  # their rounds), go to the terminal as they come (long runs show
  # progress); both are kept, stdout for the summary and the report.
  if bash -c "$cmd" 2> >(tee "$OUT/$name.err" >&2) | tee "$OUT/$name.out"; then
    if bad=$(check_ratios "$name" "$OUT/$name.out"); then
      echo "-- $name done in $(( $(date +%s) - t0 )) s"
    else
      echo "-- $name FAILED: it exited 0 but $bad"
      failed+=("$name")
    fi
  else
    echo "-- $name FAILED after $(( $(date +%s) - t0 )) s (its stderr is above)"
    failed+=("$name")
  fi
  put "secs_$name" "$(( $(date +%s) - t0 ))"
done
put load_end "$(cut -d' ' -f1-3 /proc/loadavg)"
put finished "$(date -u +%FT%TZ)"
put failed "${failed[*]:-}"

echo "== summary: every ratio line =="
for item in "${LIST[@]}"; do
  rest=${item#*:}; name=${rest%%:*}
  grep -E ": ours .*, ratio " "$OUT/$name.out" 2>/dev/null | sed "s/^/[$name] /" || true
done

if [ "$REPORT" = 1 ]; then
  cargo build --release -q -p espresso-bench --bin bench_report
  "${CARGO_TARGET_DIR:-target}/release/bench_report" --raw "$OUT" --out bench/results/REPORT.md --readme README.md
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "FAILED benchmarks: ${failed[*]}"
  exit 1
fi
echo "all $N benchmarks ran in $(( $(date +%s) - t_all )) s"
