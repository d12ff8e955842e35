#!/usr/bin/env bash
# Install the Debian data packages clipasync's experiments read (no downloads at run time).
# Idempotent: does nothing when they are already installed.
set -euo pipefail
pkgs=(dataset-fashion-mnist)
missing=()
for p in "${pkgs[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then exit 0; fi
if [ "$(id -u)" -ne 0 ]; then
  echo "clipasync: please install Debian packages: ${missing[*]} (needs root); continuing without them" >&2
  exit 0
fi
apt-get update -qq
DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
