#!/usr/bin/env bash
# Short fuzz run of every target (FUZZ_SMOKE_SECONDS each, default 10) from
# the committed seeds into a throw-away corpus: any crash fails the suite.
# The long runs are `scripts/fuzz.sh [SECONDS]`.
#
# To keep the suite short the smoke build has the dataplane's RustCrypto
# backend only (FUZZ_BUILD_ARGS=--no-default-features: the ring and aws-lc
# ESP backends left out; aws-lc is still built, for the control process's
# signatures); the engine logic fuzzed is the same, and the other backends are
# cross-checked by the cargo tests (Wycheproof, cross-backend proptests) and
# by scripts/fuzz.sh, whose default build has all of them.
# Set FUZZ_BUILD_ARGS= (empty) to smoke-test every backend.
set -euo pipefail
cd "$(dirname "$0")/../.."
corpus=$(mktemp -d /tmp/espresso-fuzz-smoke.XXXXXX)
trap 'rm -rf "$corpus"' EXIT
# One target per core at a time: each still runs its full time on a core of
# its own, and the 13 targets take half the wall time.
FUZZ_JOBS=${FUZZ_JOBS:-$(nproc)} FUZZ_BUILD_ARGS=${FUZZ_BUILD_ARGS---no-default-features} \
  FUZZ_CORPUS_DIR=$corpus scripts/fuzz.sh "${FUZZ_SMOKE_SECONDS:-10}"
