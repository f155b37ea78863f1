#!/usr/bin/env bash
# Builds the same test yum repository's full package set with vzpkg and with
# `dnf --installroot`, and prints both wall times and their ratio, both tree
# sizes, and whether both installed the same packages. A benchmark, not a
# test: run it as root on an otherwise idle machine.
#
#   scripts/bench-rpm.sh [RUNS]
#
# The repository (the host-rpm package plus generated packages with a
# dependency chain, a fan-out and scriptlets, repomd.xml signed by a fresh
# key) is written by the ignored test tests/tests/bench_rpm_repo.rs. Each of
# RUNS rounds (default 3) builds from scratch with both tools (fresh vzpkg
# root, fresh dnf installroot and metadata cache); the median is reported.
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-3}
[[ $runs =~ ^[1-9][0-9]*$ ]] || { echo "RUNS must be a positive number" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || { echo "run as root (vzpkg and dnf --installroot need it)" >&2; exit 2; }
scripts/setup.sh

if ! command -v dnf >/dev/null 2>&1; then
    echo "bench-rpm: installing dnf" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -qq --no-install-recommends dnf >/dev/null \
        || { apt-get update -qq && apt-get install -y -qq --no-install-recommends dnf >/dev/null; }
fi

work=$(mktemp -d /var/tmp/vzpkg-bench-rpm.XXXXXX)
trap 'rm -rf "$work"' EXIT
repo=$work/repo
mkdir -p "$repo"

cargo build --release --quiet --bin vzpkg
vzpkg=$PWD/target/release/vzpkg
VZPKG_BENCH_REPO=$repo cargo test --release --quiet -p vzpkg-tests --test bench_rpm_repo \
    -- --ignored --nocapture > "$work/repo.log" 2>&1 \
    || { cat "$work/repo.log" >&2; echo "writing the repository failed" >&2; exit 1; }
[ -f "$repo/bench.toml" ] || { cat "$work/repo.log" >&2; exit 1; }
mapfile -t names < "$repo/names.txt"

# dnf: only this repository, no signature checks, no weak dependencies.
mkdir -p "$work/dnf/repos" "$work/dnf/home"
cat > "$work/dnf/repos/bench.repo" <<EOF
[bench]
name=bench
baseurl=file://$repo/
enabled=1
gpgcheck=0
repo_gpgcheck=0
EOF
# Debian's rpm keeps its database in ~/.rpmdb; the packages' own rpm (and
# RPM distributions) use /var/lib/rpm. Point dnf's rpm there through a
# private HOME so the installroot's rpm sees what dnf installed.
printf '%%_dbpath /var/lib/rpm\n' > "$work/dnf/home/.rpmmacros"

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

vz_times=(); dnf_times=()
for ((i = 1; i <= runs; i++)); do
    rm -rf "$work/vz" "$work/dnf/root" "$work/dnf/cache"
    t0=$(now)
    "$vzpkg" --root "$work/vz" --json create "$repo/bench.toml" > "$work/vz.json" \
        || { cat "$work/vz.json" >&2; echo "vzpkg create failed" >&2; exit 1; }
    t1=$(now)
    vz_times+=("$(secs "$t0" "$t1")")

    t0=$(now)
    HOME=$work/dnf/home dnf -y -q \
        --installroot="$work/dnf/root" --releasever=1 \
        --setopt=reposdir="$work/dnf/repos" --setopt=cachedir="$work/dnf/cache" \
        --setopt=install_weak_deps=False \
        --disablerepo='*' --enablerepo=bench \
        install "${names[@]}" > "$work/dnf.log" 2>&1 \
        || { cat "$work/dnf.log" >&2; echo "dnf install failed" >&2; exit 1; }
    t1=$(now)
    dnf_times+=("$(secs "$t0" "$t1")")
done

# The last round's trees: vzpkg's template checked out, dnf's installroot.
vz_tree=$work/vz-tree
dnf_tree=$work/dnf/root
rm -rf "$vz_tree"
"$vzpkg" --root "$work/vz" checkout bench-rpm "$vz_tree"

qf='%{NAME}-%{VERSION}-%{RELEASE}.%{ARCH}\n'
chroot "$vz_tree" rpm -qa --qf "$qf" | sort > "$work/vz.pkgs"
chroot "$dnf_tree" rpm -qa --qf "$qf" | sort > "$work/dnf.pkgs"
vz_kb=$(du -sxk "$vz_tree" | cut -f1)
dnf_kb=$(du -sxk "$dnf_tree" | cut -f1)
dnf_state=()
for d in var/lib/dnf var/cache/dnf var/log; do
    [ -e "$dnf_tree/$d" ] && dnf_state+=("$dnf_tree/$d")
done
dnf_state_kb=0
((${#dnf_state[@]})) && dnf_state_kb=$(du -scxk "${dnf_state[@]}" | tail -n1 | cut -f1)

vz=$(median "${vz_times[@]}"); dn=$(median "${dnf_times[@]}")
echo "repository: ${#names[@]} packages named ($(wc -l < "$work/vz.pkgs") installed by vzpkg), $(du -sk "$repo/Packages" | cut -f1) KiB of .rpm   cores: $(nproc)   rounds: $runs"
echo "signatures: vzpkg checked repomd.xml's signature (repo_gpgcheck); dnf ran with gpgcheck=0 repo_gpgcheck=0, i.e. without signature checks; neither checked package signatures (the test packages are unsigned)"
awk -v v="$vz" -v d="$dn" 'BEGIN { printf "time (median): vzpkg %.3fs  dnf %.3fs  ratio vzpkg/dnf %.2f\n", v, d, v / d }'
echo "time (each round): vzpkg ${vz_times[*]}  dnf ${dnf_times[*]}"
python3 - "$work/vz.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print("vzpkg stages (last round): " + "  ".join(f"{k} {v:.3f}s" for k, v in r["seconds"].items()))
PY
echo "tree size (du -sxk): vzpkg ${vz_kb} KiB  dnf ${dnf_kb} KiB (of which ${dnf_state_kb} KiB dnf's own state: var/lib/dnf, var/cache/dnf, var/log)"
if cmp -s "$work/vz.pkgs" "$work/dnf.pkgs"; then
    echo "package set: same ($(wc -l < "$work/vz.pkgs") packages, chroot TREE rpm -qa)"
else
    echo "package set: DIFFERENT (- vzpkg only, + dnf only):"
    diff "$work/vz.pkgs" "$work/dnf.pkgs" | grep '^[<>]' | sed 's/^</-/; s/^>/+/' || true
fi
echo "note: dnf's rpm was given %_dbpath /var/lib/rpm (a private HOME/.rpmmacros): Debian's rpm would otherwise put the installroot's database in /root/.rpmdb, where the tree's own rpm does not look"
