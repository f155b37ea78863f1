#!/usr/bin/env bash
# The nightly CI job: rebuild every recipe whose package set changed upstream,
# export the rebuilt templates as OpenVZ template caches, and leave the new
# lock files for CI to commit. A no-op (exit 0) when nothing changed.
#
#   scripts/nightly.sh [--mirror URL] [RECIPE...]     (default: all recipes)
#
# Exit: 0 nothing changed, 11 rebuilt (caches in cache/export/, locks updated
# in recipes/), 12 something failed (see rebuild.json).
set -uo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh

args=()
recipes=()
while (($#)); do
    case "$1" in
        --mirror) args+=(--mirror "$2"); shift 2 ;;
        *) recipes+=("$1"); shift ;;
    esac
done
((${#recipes[@]})) || recipes=(--all)

cargo build --release --quiet --bin vzpkg || exit 12
vzpkg=./target/release/vzpkg

"$vzpkg" --json rebuild "${recipes[@]}" --if-changed "${args[@]}" > rebuild.json
code=$?
python3 - rebuild.json <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for t in r["templates"]:
    line = f'{t["name"]}: {t["outcome"]}'
    if t.get("error"):
        line += f' ({t["error"]})'
    print(line)
    for k, sign in (("added", "+"), ("upgraded", "~"), ("removed", "-")):
        for p in t.get(k, []):
            print(f"  {sign} {p}")
PY

if [ "$code" -eq 11 ]; then
    mkdir -p cache/export
    for name in $(python3 -c 'import json,sys; print(" ".join(t["name"] for t in json.load(open("rebuild.json"))["templates"] if t["outcome"] == "rebuilt"))'); do
        "$vzpkg" export "$name" -o "cache/export/$name.tar.zst" || code=12
    done
    git status --short recipes/ 2>/dev/null || true
fi
exit "$code"
