#!/usr/bin/env bash
# The Debian package (scripts/package.sh, ci profile): contents and modes,
# control data, man pages and completions generated from clap, the Grafana
# dashboard, and the systemd units checked with `systemd-analyze verify`
# (units copied with ExecStart pointing into the unpacked package, since the
# package is not installed here; any warning fails) plus the offline
# `systemd-analyze security` exposure of each unit.
set -euo pipefail
cd "$(dirname "$0")/../.."
tmp=$(mktemp -d /tmp/espresso-pkg.XXXX)
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
passed=0
ok() { echo "ok: $*"; passed=$((passed + 1)); }

# The binaries the other tests run: the same build as scripts/test.sh's (a
# no-op there; `-p control -p dataplane` alone would unify features differently
# and rebuild both binaries, about 1.5 min on 2 cores).
cargo build --workspace --profile ci --bins --examples >&2
deb=$(scripts/package.sh --profile ci --no-build --out "$tmp/out" | tail -1)
[ -f "$deb" ] || fail "no package built"
dpkg-deb -c "$deb" | awk '{print $1, $6}' >"$tmp/list"
for f in ./usr/bin/espresso ./usr/bin/espresso-dataplane \
  ./lib/systemd/system/espresso.service ./lib/systemd/system/espresso-dataplane.service \
  ./etc/espresso/espresso.toml ./etc/espresso/conf.d/ ./etc/espresso/secrets/ \
  ./usr/share/man/man8/espresso.8.gz ./usr/share/man/man8/espresso-dataplane.8.gz \
  ./usr/share/man/man8/espresso-import.8.gz ./usr/share/man/man8/espresso-shell.8.gz \
  ./usr/share/man/man8/espresso-ipsec.8.gz ./usr/share/man/man8/ipsec.8.gz \
  ./usr/share/bash-completion/completions/espresso ./usr/share/bash-completion/completions/ipsec \
  ./usr/share/bash-completion/completions/espresso-dataplane \
  ./usr/share/zsh/vendor-completions/_espresso ./usr/share/fish/vendor_completions.d/espresso.fish \
  ./usr/share/espresso/grafana/espresso-dashboard.json ./usr/share/doc/espresso/config.md; do
  grep -q " $f\$" "$tmp/list" || fail "package lacks $f"
done
grep -q '^-rwxr-xr-x ./usr/bin/espresso$' "$tmp/list" || fail "espresso not 0755"
grep -q '^drwx------ ./etc/espresso/secrets/$' "$tmp/list" || fail "secrets/ not 0700: $(grep secrets "$tmp/list")"
grep -q '^-rw-r--r-- ./etc/espresso/espresso.toml$' "$tmp/list" || fail "espresso.toml not 0644"
[ "$(dpkg-deb -c "$deb" | awk '{print $2}' | sort -u)" = "root/root" ] || fail "files not owned by root"
ok "contents: both binaries, both units, /etc/espresso (secrets/ 0700), $(grep -c 'man8/.*gz' "$tmp/list") man pages, completions, dashboard"

dpkg-deb -f "$deb" Package Version Architecture Depends >"$tmp/control"
grep -q '^Depends: .*libc6' "$tmp/control" || fail "Depends lacks libc6: $(cat "$tmp/control")"
if ldd target/ci/espresso-dataplane 2>/dev/null | grep -q librte; then
  grep -q 'librte-eal' "$tmp/control" || fail "Depends lacks the DPDK libraries the dataplane links"
fi
[ "$(dpkg-deb --ctrl-tarfile "$deb" | tar -xO ./conffiles)" = "/etc/espresso/espresso.toml" ] || fail "conffiles"
for s in postinst prerm postrm; do dpkg-deb --ctrl-tarfile "$deb" | tar -xO "./$s" | sh -n || fail "$s syntax"; done
ok "control: $(grep Depends "$tmp/control" | cut -c1-80)...; conffiles; maintainer scripts parse"

mkdir -p "$tmp/root"
dpkg-deb -x "$deb" "$tmp/root"
r="$tmp/root"
zcat "$r/usr/share/man/man8/espresso-import.8.gz" | grep -q '^\.TH espresso-import 8' || fail "import man page header"
zcat "$r/usr/share/man/man8/espresso-import.8.gz" | grep -q 'dry' || fail "import man page lacks --dry-run"
zcat "$r/usr/share/man/man8/espresso-dataplane.8.gz" | grep -q 'backend' || fail "dataplane man page lacks --backend"
grep -q 'import' "$r/usr/share/bash-completion/completions/espresso" || fail "bash completion lacks import"
grep -q 'statusall' "$r/usr/share/bash-completion/completions/ipsec" || fail "ipsec completion lacks statusall"
bash -n "$r/usr/share/bash-completion/completions/espresso" || fail "bash completion syntax"
ok "man pages (section 8) and completions generated from clap"

python3 - "$r/usr/share/espresso/grafana/espresso-dashboard.json" <<'PY' || fail "dashboard JSON"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["panels"] and all(p["targets"] for p in d["panels"]), "empty panels"
assert all("espresso_" in t["expr"] for p in d["panels"] for t in p["targets"]), "a query without espresso metrics"
PY
ok "Grafana dashboard parses ($(python3 -c "import json;print(len(json.load(open('$r/usr/share/espresso/grafana/espresso-dashboard.json'))['panels']))") panels; its metrics are checked against a live daemon in tests/netns/51)"

"$r/usr/bin/espresso" --config "$r/etc/espresso/espresso.toml" check >"$tmp/check.txt" 2>&1 || fail "packaged default configuration does not check: $(cat "$tmp/check.txt")"
ok "the packaged /etc/espresso/espresso.toml passes espresso check"

if command -v systemd-analyze >/dev/null; then
  mkdir -p "$tmp/units"
  for u in espresso.service espresso-dataplane.service; do
    sed "s#/usr/bin/#$r/usr/bin/#g" "$r/lib/systemd/system/$u" >"$tmp/units/$u"
  done
  out=$(systemd-analyze verify --man=no "$tmp/units/espresso.service" "$tmp/units/espresso-dataplane.service" 2>&1) ||
    fail "systemd-analyze verify: $out"
  [ -z "$out" ] || fail "systemd-analyze verify warns: $out"
  ok "systemd-analyze verify: both units clean (directives, ExecStart binaries)"
  for u in espresso.service espresso-dataplane.service; do
    echo "  $(systemd-analyze security --offline=yes "$tmp/units/$u" 2>/dev/null | grep 'Overall exposure' | sed 's/\x1b\[[0-9;]*m//g')"
  done
  for u in espresso.service espresso-dataplane.service; do
    grep -q '^Restart=on-failure' "$r/lib/systemd/system/$u" || fail "$u: Restart="
  done
  grep -q '^After=.*espresso-dataplane.service' "$r/lib/systemd/system/espresso.service" || fail "espresso.service ordering"
  grep -q '^Before=espresso.service' "$r/lib/systemd/system/espresso-dataplane.service" || fail "dataplane ordering"
  for c in CAP_NET_ADMIN CAP_NET_RAW CAP_IPC_LOCK CAP_SYS_NICE; do
    grep -q "^CapabilityBoundingSet=.*$c" "$r/lib/systemd/system/espresso-dataplane.service" || fail "dataplane lacks $c"
  done
  grep -q '^RestrictAddressFamilies=.*AF_PACKET' "$r/lib/systemd/system/espresso-dataplane.service" || fail "dataplane must keep AF_PACKET"
  ! grep -q '^PrivateDevices=yes' "$r/lib/systemd/system/espresso-dataplane.service" || fail "PrivateDevices breaks DPDK"
  ok "units: ordering, Restart=, the dataplane keeps AF_PACKET and CAP_NET_ADMIN/NET_RAW/IPC_LOCK/SYS_NICE"
else
  echo "note: systemd-analyze not available: unit files checked by grep only"
fi
echo "package_deb: $passed passed, 0 failed"
