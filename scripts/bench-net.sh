#!/usr/bin/env bash
# Networking figures (a benchmark, not a test; run as root, ideally on an
# idle machine). Everything happens in network namespaces the benchmark
# makes itself, with documentation addresses only, never on the machine's
# own network:
#  - TCP throughput host -> VPS and VPS -> VPS (venet: veth pair, host
#    routes, the eBPF source filter) against a plain veth pair between two
#    namespaces, in the same run, best of three interleaved runs each;
#  - the time networking adds to a start: N VPSs started without an
#    address and N with one, per VPS.
# The VPS side of each connection is a socket in the VPS's network
# namespace, the path its own processes' packets take.
#
#   scripts/bench-net.sh [SECONDS_PER_RUN=3] [N=20]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export BENCH_NET_SECS=${1:-3} BENCH_NET_STARTS=${2:-20}
exec cargo test -q -p vzpkg-tests --test net -- --ignored --nocapture --exact bench_net
