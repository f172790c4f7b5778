#!/usr/bin/env bash
# Installs what building and testing Sombra needs on Debian 12, if missing.
# Run as root (or with sudo available). Idempotent: installs nothing when all is there.
set -euo pipefail

packages=(build-essential meson ninja-build pkg-config libck-dev libjemalloc-dev
          libxxhash-dev libcriterion-dev libsqlite3-dev clang libclang-rt-14-dev
          libjansson-dev libcsv-dev libmicrohttpd-dev wrk curl sqlite3)
missing=()
for p in "${packages[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
        sudo_cmd=""
        [ "$(id -u)" -ne 0 ] && sudo_cmd="sudo"
        echo "deps: installing ${missing[*]}"
        $sudo_cmd apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo_cmd apt-get install -y -qq "${missing[@]}" >/dev/null
fi
