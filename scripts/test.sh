#!/usr/bin/env bash
# The whole test suite: set-up, formatting, lints, then every test. Tests that
# need root (mounts, namespaces) skip with a message when not run as root.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --quiet -- -D warnings
cargo test --workspace --no-fail-fast 2>&1
