#!/usr/bin/env bash
# The README's demo command: set-up (packages, build), then `skiff demo`, which creates a
# veth testbed in two network namespaces, runs a sink and a generator across it, prints a
# report that adds up, and removes the testbed. Extra arguments go to `skiff demo`.
set -euo pipefail
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then exec sudo -E "$0" "$@"; fi
cd "$(dirname "$0")/.."
deploy/setup.sh
exec target/release/skiff demo "$@"
