#!/usr/bin/env bash
# Resource figures (a benchmark, not a test; run as root):
#  - the cost of `vzctl start` with limits (ram, swap, cpuunits, cpulimit,
#    numproc, iolimit) against one without, 50 VPSs each, in turns in the
#    same run (target: <= 5 ms added per VPS);
#  - the memory of the per-VPS /proc view process (RSS and PSS).
# The VPSs run a small template made from the host's own programs, so no
# mirror is needed.
#
#   scripts/bench-resources.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet --bin vzpkg
cargo test --release --quiet -p vzpkg-tests --test resources \
    bench_start_with_limits_and_view_memory -- --ignored --nocapture 2>&1 \
    | grep -E '^(start|/proc view|skipped)'
