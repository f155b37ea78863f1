#!/usr/bin/env bash
# Builds debian-12 minbase with vzpkg and with mmdebstrap (--variant=minbase
# --mode=root) from the same mirror, cold (empty package cache) and warm (all
# packages cached), and prints both times and the ratio. A benchmark, not a
# test: run it as root on an otherwise idle machine.
#
#   scripts/bench-debian.sh [MIRROR_URL]
#
# MIRROR_URL defaults to the first Debian archive in the host's apt sources.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

host_mirror() {
    { grep -shE '^\s*URIs:' /etc/apt/sources.list.d/*.sources | awk '{print $2}' || true
      grep -shE '^\s*deb\s' /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
        | sed -E 's/\[[^]]*\]//' | awk '{print $2}' || true
    } 2>/dev/null | grep -v -e security -e '^$' | head -n1 || true
}
mirror=${1:-$(host_mirror)}
[ -n "$mirror" ] || { echo "no mirror: pass one as the first argument" >&2; exit 2; }
suite=bookworm

cargo build --release --quiet --bin vzpkg
vzpkg=${CARGO_TARGET_DIR:-$PWD/target}/release/vzpkg
work=$(mktemp -d /var/tmp/vzpkg-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

echo "mirror: $mirror   cores: $(nproc)"

# vzpkg, cold then warm (same package cache, fresh store each time).
t0=$(now); "$vzpkg" --root "$work/vz" create debian-12 --mirror "$mirror" --json > "$work/cold.json"; t1=$(now)
# Moved aside, not deleted: ext4 without a journal passes over inodes freed
# in the last seconds when allocating, so deleting the cold store's ~10k
# files right before would slow the warm build's unpack (mmdebstrap's warm
# run keeps its cold tree as well).
mv "$work/vz/templates" "$work/vz/templates.cold"
t2=$(now); "$vzpkg" --root "$work/vz" create debian-12 --mirror "$mirror" --json > "$work/warm.json"; t3=$(now)
vz_cold=$(secs "$t0" "$t1"); vz_warm=$(secs "$t2" "$t3")

# mmdebstrap, cold (downloads everything, keeps the .debs), then warm (reads them back).
mkdir -p "$work/debs"
t0=$(now)
mmdebstrap --quiet --variant=minbase --mode=root --format=directory \
    --skip=download/empty --skip=essential/unlink \
    --customize-hook="sync-out /var/cache/apt/archives $work/debs" \
    "$suite" "$work/mm-cold" "$mirror"
t1=$(now)
t2=$(now)
mmdebstrap --quiet --variant=minbase --mode=root --format=directory \
    --skip=download/empty --skip=essential/unlink \
    --setup-hook='mkdir -p "$1"/var/cache/apt/archives/' \
    --setup-hook="sync-in $work/debs /var/cache/apt/archives/" \
    "$suite" "$work/mm-warm" "$mirror"
t3=$(now)
mm_cold=$(secs "$t0" "$t1"); mm_warm=$(secs "$t2" "$t3")

python3 - "$work/cold.json" "$work/warm.json" <<PY
import json, sys
cold = json.load(open(sys.argv[1])); warm = json.load(open(sys.argv[2]))
vc, vw, mc, mw = $vz_cold, $vz_warm, $mm_cold, $mm_warm
print(f"packages: vzpkg {cold['packages']}")
print(f"cold: vzpkg {vc:6.1f}s  mmdebstrap {mc:6.1f}s  ratio {vc/mc:.2f}  (target <= 0.5)")
print(f"warm: vzpkg {vw:6.1f}s  mmdebstrap {mw:6.1f}s  ratio {vw/mw:.2f}  (target <= 0.3)")
for label, r in (("cold", cold), ("warm", warm)):
    stages = "  ".join(f"{k} {v:.1f}s" for k, v in r["seconds"].items())
    print(f"vzpkg {label} stages: {stages}")
PY
