#!/usr/bin/env bash
# Installs what vzpkg and its tests need on a Debian 12 host. Idempotent and
# quiet when everything is already there. Run as root (or with sudo).
set -euo pipefail

# Build and run: the archive keyring verifies Debian's InRelease files.
# Tests: dpkg-dev (dpkg-deb checks the test-built .deb files), fuse3,
# rpm and createrepo-c for RPM repositories, iproute2 for network namespaces,
# procps (free, uptime) for the resource tests inside a VPS.
# Benchmarks: mmdebstrap is the yardstick.
# OCI: docker-registry (distribution v2) serves images on loopback; skopeo,
# podman (with runc), umoci and apache2-utils (htpasswd) are the standard
# clients and tools the OCI tests check our images against.
packages=(debian-archive-keyring ca-certificates dpkg-dev fuse3 rpm createrepo-c iproute2 mmdebstrap
    docker-registry skopeo podman runc umoci apache2-utils procps)

missing=()
for p in "${packages[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
        missing+=("$p")
    fi
done

if ((${#missing[@]})); then
    echo "setup: installing ${missing[*]}" >&2
    sudo=""
    if [ "$(id -u)" -ne 0 ]; then sudo=sudo; fi
    export DEBIAN_FRONTEND=noninteractive
    $sudo apt-get update -qq
    $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if ! command -v cargo >/dev/null 2>&1; then
    echo "setup: cargo not found; install a Rust toolchain (rustup) first" >&2
    exit 1
fi
