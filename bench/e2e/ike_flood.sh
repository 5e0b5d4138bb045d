#!/usr/bin/env bash
# IKE flood, the 30-second variant of tests/netns/53_ike_flood.sh (which runs
# 15 s inside scripts/test.sh): scapy IKE_SA_INIT from spoofed and real
# sources at the highest rate one Python sender reaches, while the
# established tunnel carries ping, numbered UDP and a TCP echo and strongSwan
# brings up a new connection. Prints the flood rate, the daemon's RSS before,
# peak and after, the datagrams lost on the tunnel (must be 0) and the drops
# by reason. Usage: sudo bench/e2e/ike_flood.sh [SECONDS] [v1] (default 30;
# `v1`: IKEv1 main-mode first messages matching a configured IKEv1
# responder, tests/netns/44_ikev1_flood.sh, with numbered UDP both ways
# through an established IKEv1 tunnel to strongSwan).
set -euo pipefail
cd "$(dirname "$0")/../.."
export FLOOD_S="${1:-30}"
export ESPRESSO_TARGET="${ESPRESSO_TARGET:-$PWD/target/release}"
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2- | sed 's/^ //')"
if [ "${2:-}" = v1 ]; then
  exec bash tests/netns/44_ikev1_flood.sh
fi
exec bash tests/netns/53_ike_flood.sh
