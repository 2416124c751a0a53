#!/usr/bin/env bash
# Installs the build and test dependencies on Debian 12 when they are missing (as root, apt-get).
set -euo pipefail
pkgs=(cmake gcc clang make pkg-config curl jq bc python3 libjansson-dev libxxhash-dev libmicrohttpd-dev libcurl4-openssl-dev libclang-rt-14-dev)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages: ${missing[*]} (run as root, or install them)" >&2
    exit 1
  fi
  echo "setup: installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
