#!/usr/bin/env bash
# Templates through a registry: push and pull time and bytes of debian-12
# with vzpkg, against `skopeo copy` of the same image in the same run; then
# the bytes a second template sharing its /usr and /lib layers pulls, against
# a full pull. The registry is Debian's docker-registry on a loopback port,
# one fresh instance per measured push so nothing is already there.
# A benchmark, not a test: run it as root on an otherwise idle machine.
#
#   scripts/bench-oci.sh [MIRROR_URL]
#
# MIRROR_URL defaults to the first Debian archive in the host's apt sources.
# BENCH_ROOT=DIR reuses the stores of an earlier run there (no rebuilds).
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

cargo build --release --quiet --bin vzpkg
vzpkg=${CARGO_TARGET_DIR:-$PWD/target}/release/vzpkg
if [ -n "${BENCH_ROOT:-}" ]; then
    work=$BENCH_ROOT
    mkdir -p "$work"
else
    work=$(mktemp -d /var/tmp/vzpkg-bench-oci.XXXXXX)
fi
pids=()
fresh=
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
    [ -z "$fresh" ] || { umount -R "$fresh" 2>/dev/null || true; rm -f "$work/fresh.img"; }
    [ -n "${BENCH_ROOT:-}" ] || rm -rf "$work"
}
trap cleanup EXIT

# What is measured writes to an ext4 made for this run: on a file system
# where many files were just deleted, ext4 skips their inodes while they are
# recent (ext4's `recently_deleted`), and a pull that creates thousands of
# files would pay for whatever ran before it. skopeo creates a handful.
fresh_fs() {
    fresh=$work/fresh
    mkdir -p "$fresh"
    truncate -s 8G "$work/fresh.img"
    mkfs.ext4 -q -F "$work/fresh.img"
    mount -o loop "$work/fresh.img" "$fresh"
}

now() { date +%s.%N; }
secs() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }
mib() { awk -v n="$1" 'BEGIN { printf "%.1f MiB", n / 1048576 }'; }
json() { python3 -c 'import json,sys; d=json.load(sys.stdin); print(d'"$1"')'; }
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# A fresh registry under $fresh/NAME; prints its host:port.
registry() {
    local dir=$fresh/$1 port
    rm -rf "$dir"; mkdir -p "$dir/data"
    port=$(free_port)
    cat > "$dir/config.yml" <<EOF
version: 0.1
log:
  level: error
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: $dir/data
http:
  addr: 127.0.0.1:$port
EOF
    docker-registry serve "$dir/config.yml" > "$dir/log" 2>&1 &
    pids+=($!)
    for _ in $(seq 100); do
        if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then break; fi
        sleep 0.1
    done
    REG=127.0.0.1:$port
}

# The templates: debian-12 and a variant differing only in /etc.
a=$work/a
if ! "$vzpkg" --root "$a" info debian-12 > /dev/null 2>&1; then
    "$vzpkg" --root "$a" create debian-12 --mirror "$mirror" --json > /dev/null
fi
if ! "$vzpkg" --root "$a" info debian-12-motd > /dev/null 2>&1; then
    sed -e 's/^name = "debian-12"/name = "debian-12-motd"/' \
        -e 's|^commands = \[\]|commands = ["echo bench > /etc/motd"]|' \
        recipes/debian-12.toml > "$work/debian-12-motd.toml"
    cp recipes/debian-12.lock "$work/debian-12-motd.lock" 2>/dev/null || true
    "$vzpkg" --root "$a" create "$work/debian-12-motd.toml" --mirror "$mirror" --json > /dev/null
fi
echo "cores: $(nproc)   template: debian-12 $("$vzpkg" --root "$a" info debian-12 --json | json '["id"][:16]')"

# Push, in two matched pairs:
# - from the files: vzpkg tars, compresses and uploads a layer no push has
#   made yet; skopeo does the same from containers-storage (what
#   `podman push` reads), with zstd.
# - from finished blobs: vzpkg with the blobs an earlier push left in its
#   cache; skopeo from an OCI layout of the same image.
# Every measured push goes to a registry of its own, so nothing is there.
rm -rf "$work/layout"
"$vzpkg" --root "$a" push debian-12 "oci:$work/layout:v1" --json > /dev/null
rm -rf "$a/templates/oci-blobs"   # a cold push tars and compresses again
fresh_fs
cs="containers-storage:[overlay@$fresh/cs+$fresh/cs-run]bench/debian-12:v1"
skopeo copy -q "oci:$work/layout:v1" "$cs"
sleep 1
registry reg-vzpkg
t0=$(now); "$vzpkg" --root "$a" push debian-12 "$REG/bench/debian-12:v1" --tls-verify=false --json > "$work/push.json"; t1=$(now)
vz_push=$(secs "$t0" "$t1"); vz_push_bytes=$(json '["bytes_pushed"]' < "$work/push.json")
vz_reg=$REG
t0=$(now); "$vzpkg" --root "$a" push debian-12 "$REG/bench/debian-12:v1" --tls-verify=false --json > "$work/push2.json"; t1=$(now)
vz_push_again=$(secs "$t0" "$t1"); vz_push_again_bytes=$(json '["bytes_pushed"]' < "$work/push2.json")
registry reg-skopeo-cs
t0=$(now); skopeo copy -q --dest-tls-verify=false --dest-compress-format zstd "$cs" "docker://$REG/bench/debian-12:v1"; t1=$(now)
sk_push_cs=$(secs "$t0" "$t1")
sk_push_cs_bytes=$(du -sb "$fresh/reg-skopeo-cs/data" | awk '{print $1}')
# The finished-blob pair takes a quarter second each: one run is mostly
# noise, so each goes five times, in turns, and the median counts.
median() { printf '%s\n' "$@" | sort -n | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
vz_times=(); sk_times=()
for round in 1 2 3 4 5; do
    registry "reg-vzpkg-cached-$round"
    t0=$(now); "$vzpkg" --root "$a" push debian-12 "$REG/bench/debian-12:v1" --tls-verify=false --json > "$work/push3.json"; t1=$(now)
    vz_times+=("$(secs "$t0" "$t1")"); vz_push_cached_bytes=$(json '["bytes_pushed"]' < "$work/push3.json")
    registry "reg-skopeo-$round"
    t0=$(now); skopeo copy -q --dest-tls-verify=false "oci:$work/layout:v1" "docker://$REG/bench/debian-12:v1"; t1=$(now)
    sk_times+=("$(secs "$t0" "$t1")")
    sk_push_bytes=$(du -sb "$fresh/reg-skopeo-$round/data" | awk '{print $1}')
done
vz_push_cached=$(median "${vz_times[@]}"); sk_push=$(median "${sk_times[@]}")

# Pull, matched twice: vzpkg into an empty store (download, verify, unpack,
# commit durably) against skopeo into a layout (download and verify only)
# and into containers-storage (download, verify, unpack: `podman pull`).
t0=$(now); "$vzpkg" --root "$fresh/b" pull "$vz_reg/bench/debian-12:v1" --tls-verify=false --json > "$work/pull.json"; t1=$(now)
vz_pull=$(secs "$t0" "$t1"); vz_pull_bytes=$(json '["bytes_fetched"]' < "$work/pull.json")
t0=$(now); skopeo copy -q --src-tls-verify=false "docker://$vz_reg/bench/debian-12:v1" "oci:$fresh/skopeo-pull:v1"; t1=$(now)
sk_pull=$(secs "$t0" "$t1")
sk_pull_bytes=$(du -sb "$fresh/skopeo-pull/blobs" | awk '{print $1}')
t0=$(now); skopeo copy -q --src-tls-verify=false "docker://$vz_reg/bench/debian-12:v1" "containers-storage:[overlay@$fresh/cs2+$fresh/cs2-run]bench/debian-12:v1"; t1=$(now)
sk_pull_cs=$(secs "$t0" "$t1")
same=$("$vzpkg" --root "$fresh/b" info debian-12-v1 --json | json '["id"]')
[ "$same" = "$("$vzpkg" --root "$a" info debian-12 --json | json '["id"]')" ] || { echo "pulled template has another id" >&2; exit 1; }

# A second template sharing layers: into the store that has debian-12, and
# into an empty one.
"$vzpkg" --root "$a" push debian-12-motd "$vz_reg/bench/debian-12-motd:v1" --tls-verify=false --json > /dev/null
"$vzpkg" --root "$fresh/b" pull "$vz_reg/bench/debian-12-motd:v1" --tls-verify=false --json > "$work/shared.json"
"$vzpkg" --root "$fresh/c" pull "$vz_reg/bench/debian-12-motd:v1" --tls-verify=false --json > "$work/full.json"
shared_bytes=$(json '["bytes_fetched"]' < "$work/shared.json")
full_bytes=$(json '["bytes_fetched"]' < "$work/full.json")
present=$(json '["layers_present"]' < "$work/shared.json"); layers=$(json '["layers"]' < "$work/shared.json")

row() { printf '%-44s %9s %12s\n' "$@"; }
row "" seconds bytes
row "vzpkg push, from the files (tar+zstd+up)" "$vz_push" "$(mib "$vz_push_bytes")"
row "skopeo containers-storage -> registry" "$sk_push_cs" "$(mib "$sk_push_cs_bytes")"
row "vzpkg push, blobs made before (median of 5)" "$vz_push_cached" "$(mib "$vz_push_cached_bytes")"
row "skopeo layout -> registry (median of 5)" "$sk_push" "$(mib "$sk_push_bytes")"
row "vzpkg push again (all there)" "$vz_push_again" "$(mib "$vz_push_again_bytes")"
row "vzpkg pull (into the store)" "$vz_pull" "$(mib "$vz_pull_bytes")"
row "skopeo registry -> layout (no unpack)" "$sk_pull" "$(mib "$sk_pull_bytes")"
row "skopeo registry -> containers-storage" "$sk_pull_cs" ""
awk -v a="$vz_push" -v b="$sk_push_cs" -v c="$vz_push_cached" -v d="$sk_push" \
    'BEGIN { printf "push ratios (vzpkg/skopeo; below 1 is faster): from the files %.2f, from finished blobs %.2f\n", a / b, c / d }'
awk -v c="$vz_pull" -v d="$sk_pull" -v e="$sk_pull_cs" \
    'BEGIN { printf "pull ratios: against containers-storage %.2f, against a layout %.2f\n", c / e, c / d }'
echo "second template (shares $present of $layers layers): $(mib "$shared_bytes") pulled, against $(mib "$full_bytes") for a full pull"
