#!/usr/bin/env bash
# Store figures against the host's Debian mirror (a benchmark, not a test):
#  - disk used by the store for debian-12 minbase plus debian-12 with
#    openssh-server and python3, against the two trees copied out;
#  - time of a no-op `rebuild --if-changed`;
#  - export time and size per compression against `tar | zstd -T0`;
#  - a rebuild from the lock in a clean store gives the same template id.
#
#   scripts/bench-store.sh [MIRROR_URL]     (run as root)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release --quiet --bin vzpkg
vz=$PWD/target/release/vzpkg
work=$(mktemp -d /var/tmp/vzpkg-store-bench.XXXXXX)
trap 'rm -rf "$work"' EXIT
mirror=()
[ $# -gt 0 ] && mirror=(--mirror "$1")

cp recipes/debian-12.toml "$work/minbase.toml"
sed -e 's/^name = "debian-12"/name = "debian-12-ssh"/' \
    -e 's/^include = \["usr-is-merged"\]/include = ["usr-is-merged", "openssh-server", "python3"]/' \
    recipes/debian-12.toml > "$work/debian-12-ssh.toml"
sed -i 's/^name = "debian-12"/name = "minbase"/' "$work/minbase.toml"

root=$work/root
"$vz" --root "$root" create "$work/minbase.toml" "${mirror[@]}" --json > "$work/a.json"
"$vz" --root "$root" create "$work/debian-12-ssh.toml" "${mirror[@]}" --json > "$work/b.json"
"$vz" --root "$root" checkout minbase "$work/tree-a"
"$vz" --root "$root" checkout debian-12-ssh "$work/tree-b"
store_kb=$(du -sxk "$root/templates" | cut -f1)
a_kb=$(du -sxk "$work/tree-a" | cut -f1)
b_kb=$(du -sxk "$work/tree-b" | cut -f1)
larger=$(( a_kb > b_kb ? a_kb : b_kb ))
echo "store: ${store_kb} KiB for both templates; trees copied out: ${a_kb} + ${b_kb} = $((a_kb + b_kb)) KiB"
awk -v s="$store_kb" -v l="$larger" 'BEGIN { printf "store / larger tree = %.2f (target <= 1.1)\n", s / l }'

t0=$(date +%s.%N)
"$vz" --root "$root" rebuild "$work/minbase.toml" "$work/debian-12-ssh.toml" --if-changed "${mirror[@]}" > "$work/rebuild.txt" || true
t1=$(date +%s.%N)
cat "$work/rebuild.txt"
awk -v a="$t0" -v b="$t1" 'BEGIN { printf "no-op rebuild --if-changed of 2 recipes: %.2fs\n", b - a }'

for suffix in tar.zst tar.gz tar.xz; do
    t0=$(date +%s.%N)
    "$vz" --root "$root" export debian-12-ssh -o "$work/out.$suffix" > /dev/null
    t1=$(date +%s.%N)
    size=$(stat -c %s "$work/out.$suffix")
    awk -v a="$t0" -v b="$t1" -v s="$size" -v n="$suffix" 'BEGIN { printf "export %-8s %7.1f MiB in %5.1fs\n", n, s / 1048576, b - a }'
done
t0=$(date +%s.%N)
tar -C "$work/tree-b" --numeric-owner -cf - . | zstd -q -T0 > "$work/ref.tar.zst"
t1=$(date +%s.%N)
size=$(stat -c %s "$work/ref.tar.zst")
awk -v a="$t0" -v b="$t1" -v s="$size" 'BEGIN { printf "tar | zstd -T0  %7.1f MiB in %5.1fs\n", s / 1048576, b - a }'

id_a=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["template_id"])' "$work/a.json")
"$vz" --root "$work/clean" create "$work/minbase.toml" --locked "${mirror[@]}" --json > "$work/c.json"
id_c=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["template_id"])' "$work/c.json")
echo "first build:            $id_a"
echo "from the lock, new store: $id_c"
[ "$id_a" = "$id_c" ] && echo "same template id" || echo "DIFFERENT template id"
