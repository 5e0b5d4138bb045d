#!/usr/bin/env bash
# Short soak (issue 10, acceptance 7): bench/e2e/soak.sh with 20 IKEv2
# tunnels between two espresso gateways for 60 s, child lifetime 20 s
# (margin 8 s) and IKE lifetime 45 s, so that every tunnel's child SA is
# rekeyed two or three times and most IKE SAs once, under numbered UDP on
# every tunnel. Asserts (--check): at least one child rekey per tunnel, no
# datagram lost or duplicated, no SA leaked (dataplane slots, daemon IKE and
# child records: end against start, both gateways), and no process's RSS
# grew by more than 16 MiB from the first to the last quarter of the run.
# The 20-minute, 200-tunnel run is `bench/e2e/soak.sh` without options.
set -euo pipefail
cd "$(dirname "$0")/../.."
exec bash bench/e2e/soak.sh --tunnels 20 --duration 60 --lifetime 20 --margin 8 \
  --ike-lifetime 45 --rate 20 --sample 5 --check
