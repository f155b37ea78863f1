#!/usr/bin/env bash
# VPS figures (a benchmark, not a test; run as root on an idle machine):
#  - create + mount N VPSs from one template: total, per VPS, private-area disk;
#  - the same job done the OpenVZ-cache way (a full copy of the tree per VPS),
#    measured on fewer copies and scaled;
#  - page cache after reading /usr in 1 VPS and in 50 (counted in a memory
#    cgroup of the benchmark's own, see scripts/lib-bench-vps.sh);
#  - start 50 VPSs and `exec true` in each: time and host memory per VPS.
#
#   scripts/bench-vps.sh [N=200] [MIRROR_URL]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
n=${1:-200}
mirror=()
[ $# -gt 1 ] && mirror=(--mirror "$2")
cargo build --release --quiet --bin vzpkg
vz=$PWD/target/release/vzpkg
work=$(mktemp -d /var/tmp/vzpkg-vps-bench.XXXXXX)
export VZPKG_ROOT=$work/root VZ_ROOT=$work/vz
# shellcheck source=scripts/lib-bench-vps.sh
. scripts/lib-bench-vps.sh
trap 'finish $(seq 1000 $((1000 + n - 1)))' EXIT
memcg_enter

cp recipes/debian-12.toml "$work/debian-12.toml"
"$vz" create "$work/debian-12.toml" "${mirror[@]}" --json > /dev/null
echo "template: $("$vz" list | sed -n 2p)"

t0=$(now)
for id in $(seq 1000 $((1000 + n - 1))); do
    "$vz" vzctl create "$id" --ostemplate debian-12 > /dev/null
    "$vz" vzctl mount "$id" > /dev/null
done
t1=$(now)
total=$(elapsed "$t0" "$t1")
priv=$(du -sxk "$VZ_ROOT/private" | cut -f1)
awk -v t="$total" -v n="$n" -v p="$priv" 'BEGIN { printf "create+mount %d VPSs: %.2fs, %.1f ms each; private areas %d KiB, %.1f KiB each\n", n, t, t * 1000 / n, p, p / n }'

# The copy-per-VPS way, on 10 copies.
"$vz" checkout debian-12 "$work/tree"
t0=$(now)
for i in $(seq 1 10); do cp -a "$work/tree" "$work/copy$i"; done
t1=$(now)
copies=$(du -sxk "$work"/copy* | awk '{s += $1} END {print s}')
awk -v t="$(elapsed "$t0" "$t1")" -v c="$copies" 'BEGIN { printf "copy per VPS (cp -a of the tree): %.0f ms each, %d KiB each\n", t * 100, c / 10 }'
rm -rf "$work"/copy*

read_usr() { find "$VZ_ROOT/root/$1/usr" -type f -print0 | xargs -0 cat > /dev/null 2>&1 || true; }
drop_caches
c0=$(cached); read_usr 1000; c1=$(cached)
drop_caches
c2=$(cached); for id in $(seq 1000 1049); do read_usr "$id"; done; c3=$(cached)
awk -v a=$((c1 - c0)) -v b=$((c3 - c2)) 'BEGIN { printf "page cache for /usr: 1 VPS %d KiB, 50 VPSs %d KiB, ratio %.2f (target <= 1.2)\n", a, b, b / a }'

m0=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
t0=$(now)
for id in $(seq 1000 1049); do "$vz" vzctl start "$id" > /dev/null; done
for id in $(seq 1000 1049); do "$vz" vzctl exec "$id" true; done
t1=$(now)
m1=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
awk -v t="$(elapsed "$t0" "$t1")" -v m=$((m0 - m1)) 'BEGIN { printf "start 50 VPSs + exec true in each: %.2fs; host memory %.0f KiB per running VPS\n", t, m / 50 }'
