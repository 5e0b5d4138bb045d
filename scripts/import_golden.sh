#!/bin/bash
# Golden outputs of `espresso import` for refactoring the importer: runs the
# binary over every input of tests/configs (each format, each dialect, many
# --local addresses, with and without the secrets), the seeds and the interop
# notes, and keeps stdout, stderr, exit codes and the files written (secrets
# included) under OUTDIR, one file per run. Run it with the binary before and
# after a change and compare: `diff -r OLD NEW` must print nothing.
#
#   scripts/import_golden.sh OUTDIR [BINARY]   (default target/ci/espresso)
#
# About 2400 runs; a few minutes on an idle core.
set -u
out=${1:?usage: import_golden.sh OUTDIR [BINARY]}
bin=$(realpath "${2:-target/ci/espresso}")
root=$(cd "$(dirname "$0")/.." && pwd)
shared=${ESPRESSO_SHARED:-/work/shared}
rm -rf "$out"
mkdir -p "$out"
out=$(realpath "$out")
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
n=0
run() {
	n=$((n + 1))
	local f od
	f="$out/$(printf %04d $n)"
	od="$tmp/out"
	rm -rf "$od"
	{
		echo "ARGS: $*"
		"$bin" import --dry-run --out /out "$@" 2>&1
		echo "rc=$?"
		"$bin" import --out "$od" "$@" >/dev/null 2>&1
		echo "rc2=$?"
		if [ -d "$od" ]; then
			(cd "$od" && find . -type f | sort | while read -r x; do
				echo "== $x $(stat -c %a "$x")"
				cat "$x"
			done)
		fi
	} >"$f" 2>&1
	sed -i -E "s#$root/##g; s#$shared/##g; s#$od#OUT#g; s#/tmp/espresso-import-[0-9]+-[0-9a-f]+#TMP#g" "$f"
}
cd "$root"
inputs=$(find tests/configs -type f ! -path '*/expected/*' ! -name README ! -name args | sort)
extra=$(ls "$shared"/seeds/*.txt 2>/dev/null; find "$shared"/docs/interop -type f 2>/dev/null | sort)
for f in $inputs $extra; do
	for fmt in auto ipsecconf openbsd csv mbox; do
		run --format $fmt --local 192.0.2.1 "$f"
	done
	run --local 10.0.0.1 --local 2001:db8:1::1 "$f"
	run --mirror --local 192.0.2.1 "$f"
done
for d in tests/configs/*/; do
	for c in ipsec.conf root/etc/ipsec.conf; do
		[ -f "$d$c" ] || continue
		s=$(dirname "$d$c")/ipsec.secrets
		for dia in auto freeswan openswan libreswan strongswan; do
			for loc in 192.0.2.1 192.0.2.2 192.0.2.10 192.0.2.11 198.51.100.1 10.0.0.1 192.0.2.45 2001:db8:1::1 203.0.113.1; do
				[ -f "$s" ] && run --dialect $dia --local $loc --root "${d}root" "$d$c" "$s"
				run --dialect $dia --local $loc "$d$c"
			done
		done
	done
done
echo "$n runs in $out"
