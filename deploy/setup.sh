#!/usr/bin/env bash
# Installs what skiff needs on Debian/Ubuntu and builds it (release). Idempotent: packages
# already present are not reinstalled. Run as root (or it re-runs itself with sudo).
#
#   clang, llvm, libbpf-dev     the XDP program (ebpf/skiff.bpf.c) and libxdp's own BPF objects
#   m4 make pkg-config          libxdp-sys (xsk-rs) builds libbpf/libxdp from source
#   libelf-dev zlib1g-dev       ... and links them
#   iproute2 ethtool            the veth/netns testbed
#   netsniff-ng                 trafgen, the baseline of `skiff bench tx-only`
#   util-linux procps           setpriv (the non-root test), sysctl
#   tshark tcpdump              independent readers of skiff's pcaps (the tshark template test)
set -euo pipefail

if [ "$(id -u)" -ne 0 ]; then
    if command -v sudo >/dev/null; then exec sudo -E "$0" "$@"; fi
    echo "setup.sh: needs root (apt-get, and later XDP/AF_XDP)" >&2; exit 1
fi
cd "$(dirname "$0")/.."

packages=(clang llvm libbpf-dev m4 make pkg-config gcc libc6-dev libelf-dev zlib1g-dev
          iproute2 ethtool netsniff-ng util-linux procps tshark tcpdump
          python3 python3-venv iperf3)
# libxdp's BPF objects include glibc headers that want the 32-bit stubs on amd64.
if [ "$(dpkg --print-architecture)" = amd64 ]; then packages+=(gcc-multilib); fi
missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "setup.sh: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    # wireshark-common asks whether non-root users may capture: answer no, don't ask.
    echo "wireshark-common wireshark-common/install-setuid boolean false" | debconf-set-selections
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# Rust: the user's toolchain (also under sudo), else rustup from Debian (trixie and later).
for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /usr/local/cargo/bin; do [ -d "$d" ] && PATH="$d:$PATH"; done
if [ -n "${SUDO_USER:-}" ]; then
    uh=$(getent passwd "$SUDO_USER" | cut -d: -f6); [ -d "$uh/.cargo/bin" ] && PATH="$uh/.cargo/bin:$PATH"
fi
if ! command -v cargo >/dev/null; then
    if apt-get install -y -qq rustup >/dev/null 2>&1; then rustup default stable; else
        echo "setup.sh: no Rust toolchain: install one with rustup (https://rustup.rs), rustc >= 1.88" >&2; exit 1
    fi
fi
export PATH

# The independent HdrHistogram reader the latency tests check skiff's logs with: the
# Python implementation (PyPI `hdrhistogram`, module `hdrh`), pinned, in a venv of its own.
HDRH_VENV=.venv-hdrh
if ! "$HDRH_VENV/bin/python" -c 'import hdrh' 2>/dev/null; then
    echo "setup.sh: installing the Python HdrHistogram reader into $HDRH_VENV"
    python3 -m venv "$HDRH_VENV"
    "$HDRH_VENV/bin/pip" install -q hdrhistogram==0.10.8
fi

cargo build --release --locked -p skiff
echo "setup.sh: built $(pwd)/target/release/skiff"
