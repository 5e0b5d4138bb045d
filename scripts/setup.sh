#!/usr/bin/env bash
# Installs what espresso needs on a fresh Debian 12 machine (idempotent).
# Used by scripts/demo.sh, scripts/test.sh and scripts/bench.sh.
set -euo pipefail

APT_PKGS=(
  build-essential pkg-config clang libclang-dev
  dpdk dpdk-dev libdpdk-dev dpdk-doc libipsec-mb-dev
  iproute2 iputils-ping iperf3 ethtool tcpdump tshark nftables
  strongswan-charon strongswan-swanctl libcharon-extra-plugins libstrongswan-standard-plugins strongswan-pki openssl bc
  python3 python3-pip
  prometheus dpkg-dev
)
PIP_PKGS=(scapy cryptography)

missing=()
for p in "${APT_PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  # tshark asks whether non-root users may capture; answer no without a prompt.
  echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
  apt-get update -q >/dev/null
  apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! python3 -c 'import scapy, cryptography' 2>/dev/null; then
  echo "setup: installing ${PIP_PKGS[*]} (pip)" >&2
  pip3 install -q "${PIP_PKGS[@]}" 2>/dev/null || pip3 install -q --break-system-packages "${PIP_PKGS[@]}"
fi

command -v cargo >/dev/null || { echo "setup: cargo not found (install Rust with rustup first)" >&2; exit 1; }

# Fuzzing (scripts/fuzz.sh, tests/smoke/fuzz_smoke.sh): cargo-fuzz, used on the
# stable toolchain with --sanitizer none.
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "setup: installing cargo-fuzz (cargo install)" >&2
  cargo install --locked -q cargo-fuzz
fi
