#!/usr/bin/env bash
# VPS figures (a benchmark, not a test; run as root on an idle machine):
#  - create + mount N VPSs from one template: total, per VPS, private-area disk;
#  - the same job done the OpenVZ-cache way (a full copy of the tree per VPS),
#    measured on fewer copies and scaled;
#  - page cache after reading /usr in 1 VPS and in 50 (counted in a memory
#    cgroup of the benchmark's own, see scripts/lib-bench-vps.sh);
#  - start 50 VPSs and `exec true` in each: time and host memory per VPS;
#  - each figure for unprivileged VPSs (the default) and privileged ones
#    (`--userns no`) in the same run, and the cold read of /usr of the one
#    against the other.
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
# mktemp makes it 0700: an unprivileged VPS's root (a host uid of its range)
# must be able to pass through to its own tree below.
chmod 755 "$work"
export VZPKG_ROOT=$work/root VZ_ROOT=$work/vz
# shellcheck source=scripts/lib-bench-vps.sh
. scripts/lib-bench-vps.sh
ids() { seq "$1" $(($1 + $2 - 1)); }
trap 'finish $(ids 1000 "$n") $(ids 5000 "$n")' EXIT
memcg_enter

cp recipes/debian-12.toml "$work/debian-12.toml"
"$vz" create "$work/debian-12.toml" "${mirror[@]}" --json > /dev/null
echo "template: $("$vz" list | sed -n 2p)"

# Every figure twice in the same run: unprivileged VPSs (the default: a
# user namespace each, layers through idmapped mounts) from CTID 1000 and
# privileged ones (--userns no) from CTID 5000.
modes=("unprivileged:1000:" "privileged:5000:--userns no")

declare -A read_s
for m in "${modes[@]}"; do
    IFS=: read -r label first opts <<< "$m"
    t0=$(now)
    for id in $(ids "$first" "$n"); do
        # shellcheck disable=SC2086
        "$vz" vzctl create "$id" --ostemplate debian-12 $opts > /dev/null
        "$vz" vzctl mount "$id" > /dev/null
    done
    t1=$(now)
    total=$(elapsed "$t0" "$t1")
    priv=$(du -sxk "$VZ_ROOT/private" | cut -f1)
    awk -v l="$label" -v t="$total" -v n="$n" -v p="$priv" 'BEGIN { printf "%s: create+mount %d VPSs: %.2fs, %.1f ms each (target < 20); private areas so far %d KiB\n", l, n, t, t * 1000 / n, p }'
done

# The copy-per-VPS way, on 10 copies.
"$vz" checkout debian-12 "$work/tree"
t0=$(now)
for i in $(seq 1 10); do cp -a "$work/tree" "$work/copy$i"; done
t1=$(now)
copies=$(du -sxk "$work"/copy* | awk '{s += $1} END {print s}')
awk -v t="$(elapsed "$t0" "$t1")" -v c="$copies" 'BEGIN { printf "copy per VPS (cp -a of the tree): %.0f ms each, %d KiB each\n", t * 100, c / 10 }'
rm -rf "$work"/copy*

read_usr() { find "$VZ_ROOT/root/$1/usr" -type f -print0 | xargs -0 cat > /dev/null 2>&1 || true; }
for m in "${modes[@]}"; do
    IFS=: read -r label first _ <<< "$m"
    drop_caches
    t0=$(now); c0=$(cached); read_usr "$first"; c1=$(cached); t1=$(now)
    read_s[$label]=$(elapsed "$t0" "$t1")
    drop_caches
    c2=$(cached); for id in $(ids "$first" 50); do read_usr "$id"; done; c3=$(cached)
    awk -v l="$label" -v a=$((c1 - c0)) -v b=$((c3 - c2)) -v t="${read_s[$label]}" 'BEGIN { printf "%s: cold read of /usr %.2fs; page cache for /usr: 1 VPS %d KiB, 50 VPSs %d KiB, ratio %.3f (target <= 1.05)\n", l, t, a, b, b / a }'
done
awk -v u="${read_s[unprivileged]}" -v p="${read_s[privileged]}" 'BEGIN { printf "cold read of /usr, unprivileged against privileged: %.2f of its speed (target >= 0.95)\n", p / u }'

for m in "${modes[@]}"; do
    IFS=: read -r label first _ <<< "$m"
    m0=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    t0=$(now)
    for id in $(ids "$first" 50); do "$vz" vzctl start "$id" > /dev/null; done
    for id in $(ids "$first" 50); do "$vz" vzctl exec "$id" true; done
    t1=$(now)
    m1=$(awk '/^MemAvailable:/ {print $2}' /proc/meminfo)
    awk -v l="$label" -v t="$(elapsed "$t0" "$t1")" -v m=$((m0 - m1)) 'BEGIN { printf "%s: start 50 VPSs + exec true in each: %.2fs; host memory %.0f KiB per running VPS\n", l, t, m / 50 }'
    for id in $(ids "$first" 50); do "$vz" vzctl stop "$id" --skip-umount > /dev/null; done
done
