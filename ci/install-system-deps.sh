#!/usr/bin/env bash
# Installs the Debian packages listed in ci/apt-packages.txt.
# Tolerates a partial `apt-get update` (the i386 index of a mirror can be mid-sync)
# and retries failed downloads, so a flaky mirror does not fail a CI run.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
mapfile -t wanted < <(sed -e 's/#.*//' -e 's/[[:space:]]//g' "$here/apt-packages.txt" | grep -v '^$')

if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: run as root (or: sudo $0); it installs: ${wanted[*]}" >&2
  exit 1
fi

missing=()
for p in "${wanted[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install-system-deps: all ${#wanted[@]} packages present"
  exit 0
fi
echo "install-system-deps: installing ${missing[*]}"

if ! dpkg --print-foreign-architectures | grep -qx i386; then
  dpkg --add-architecture i386
fi
export DEBIAN_FRONTEND=noninteractive
# A partial update still leaves usable lists; the install below is the real check.
apt-get update -q || echo "install-system-deps: apt-get update was partial; continuing" >&2
for attempt in 1 2 3; do
  if apt-get install -y -q --no-install-recommends -o Acquire::Retries=3 "${missing[@]}"; then
    exit 0
  fi
  echo "install-system-deps: install attempt $attempt failed; retrying" >&2
  sleep $((attempt * 10))
  apt-get update -q || true
done
echo "install-system-deps: could not install: ${missing[*]}" >&2
exit 1
