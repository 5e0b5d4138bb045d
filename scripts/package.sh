#!/usr/bin/env bash
# Builds the Debian package of espresso with dpkg-deb (no other tool needed):
#   usr/bin/espresso, usr/bin/espresso-dataplane
#   lib/systemd/system/espresso-dataplane.service, espresso.service
#   etc/espresso/espresso.toml (conffile), etc/espresso/conf.d/, etc/espresso/secrets/ (0700)
#   usr/share/man/man8/*.8.gz (generated from clap), shell completions (bash, zsh, fish)
#   usr/share/espresso/grafana/espresso-dashboard.json, usr/share/doc/espresso/
# postinst links /usr/sbin/ipsec -> espresso where no other ipsec command exists.
# Usage: scripts/package.sh [--profile release|ci] [--out DIR] [--no-build]   (prints the .deb path last)
#   --no-build  package the binaries already in target/PROFILE (tests/smoke/package_deb.sh
#               packages the ones scripts/test.sh built and tested, instead of building
#               them again with the two packages' own feature set)
set -euo pipefail
cd "$(dirname "$0")/.."
profile=release
out=target/deb
build=1
while [ $# -gt 0 ]; do
  case "$1" in
    --profile) profile="$2"; shift 2 ;;
    --out) out="$2"; shift 2 ;;
    --no-build) build=0; shift ;;
    *) echo "usage: $0 [--profile release|ci] [--out DIR] [--no-build]" >&2; exit 2 ;;
  esac
done
command -v dpkg-deb >/dev/null || { echo "package: dpkg-deb missing (apt-get install dpkg-dev)" >&2; exit 1; }
target="${CARGO_TARGET_DIR:-target}/$profile"
if [ "$build" = 1 ]; then
  cargo build --profile "$profile" -p espresso-control -p espresso-dataplane --bins >&2
fi
for b in espresso espresso-dataplane; do
  [ -x "$target/$b" ] || { echo "package: $target/$b missing (build it, or drop --no-build)" >&2; exit 1; }
done
version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
arch=$(dpkg --print-architecture)
stage="$out/espresso_${version}_${arch}"
rm -rf "$stage"
mkdir -p "$stage/DEBIAN" "$stage/usr/bin" "$stage/lib/systemd/system" "$stage/etc/espresso/conf.d" \
  "$stage/etc/espresso/secrets" "$stage/usr/share/man/man8" "$stage/usr/share/doc/espresso" \
  "$stage/usr/share/espresso/grafana" "$stage/usr/share/bash-completion/completions" \
  "$stage/usr/share/zsh/vendor-completions" "$stage/usr/share/fish/vendor_completions.d"
install -m 0755 "$target/espresso" "$target/espresso-dataplane" "$stage/usr/bin/"
strip --strip-debug "$stage/usr/bin/espresso" "$stage/usr/bin/espresso-dataplane" 2>/dev/null || true
install -m 0644 packaging/systemd/espresso-dataplane.service packaging/systemd/espresso.service "$stage/lib/systemd/system/"
install -m 0644 packaging/etc/espresso.toml "$stage/etc/espresso/espresso.toml"
chmod 0755 "$stage/etc/espresso" "$stage/etc/espresso/conf.d"
chmod 0700 "$stage/etc/espresso/secrets"
install -m 0644 packaging/grafana/espresso-dashboard.json "$stage/usr/share/espresso/grafana/"
install -m 0644 README.md docs/config.md "$stage/usr/share/doc/espresso/"
printf 'espresso %s\nLicense: Apache-2.0\n' "$version" >"$stage/usr/share/doc/espresso/copyright"
# Man pages and completions from the clap definitions.
gen=$(mktemp -d)
trap 'rm -rf "$gen"' EXIT
"$target/espresso" generate --man "$gen/man" --completions "$gen/comp"
"$target/espresso-dataplane" --print-man-page >"$gen/man/espresso-dataplane.8"
for f in "$gen"/man/*.8; do gzip -9n <"$f" >"$stage/usr/share/man/man8/$(basename "$f").gz"; done
chmod 0644 "$stage"/usr/share/man/man8/*.gz
install -m 0644 "$gen/comp/bash/espresso" "$gen/comp/bash/ipsec" "$stage/usr/share/bash-completion/completions/"
"$target/espresso-dataplane" --print-completions bash >"$stage/usr/share/bash-completion/completions/espresso-dataplane"
install -m 0644 "$gen/comp/zsh/_espresso" "$gen/comp/zsh/_ipsec" "$stage/usr/share/zsh/vendor-completions/"
"$target/espresso-dataplane" --print-completions zsh >"$stage/usr/share/zsh/vendor-completions/_espresso-dataplane"
install -m 0644 "$gen/comp/fish/espresso.fish" "$gen/comp/fish/ipsec.fish" "$stage/usr/share/fish/vendor_completions.d/"
"$target/espresso-dataplane" --print-completions fish >"$stage/usr/share/fish/vendor_completions.d/espresso-dataplane.fish"
chmod 0644 "$stage"/usr/share/bash-completion/completions/* "$stage"/usr/share/zsh/vendor-completions/* "$stage"/usr/share/fish/vendor_completions.d/*
# Dependencies: the packages that provide the shared libraries the binaries link.
deps=$(for b in "$stage"/usr/bin/*; do ldd "$b" | awk '/=> \//{print $3}'; done | sort -u |
  while read -r lib; do dpkg -S "$(readlink -f "$lib")" 2>/dev/null || dpkg -S "$lib" 2>/dev/null; done |
  cut -d: -f1 | sort -u | paste -sd, | sed 's/,/, /g')
size=$(du -sk "$stage" | cut -f1)
cat >"$stage/DEBIAN/control" <<CONTROL
Package: espresso
Version: $version
Architecture: $arch
Maintainer: espresso developers <espresso@localhost>
Installed-Size: $size
Depends: ${deps:-libc6}
Recommends: nftables
Suggests: prometheus, grafana
Section: net
Priority: optional
Description: poll-mode IPsec gateway (ESP dataplane, IKEv2 and manual keys)
 espresso-dataplane busy-polls NIC queues (AF_PACKET or DPDK) and runs
 batched ESP; espresso is the control daemon (IKEv2 with pre-shared keys,
 manual keys, policies) and its command line, with Openswan/strongSwan-style
 ipsec commands, an importer for ipsec.conf/ipsec.secrets, Halon/OpenBSD
 manual-key tables and mbox commands, Prometheus metrics and a Grafana
 dashboard.
CONTROL
echo "/etc/espresso/espresso.toml" >"$stage/DEBIAN/conffiles"
install -m 0755 packaging/debian/postinst packaging/debian/prerm packaging/debian/postrm "$stage/DEBIAN/"
deb="$out/espresso_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >&2
echo "$deb"
