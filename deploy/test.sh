#!/usr/bin/env bash
# The README's test command (and CI's, through .ci/run): set-up, then every check.
#   1. cargo fmt --check and cargo clippy -D warnings
#   2. cargo test --workspace: unit, property and the privileged veth/AF_XDP tests (root)
#   3. the README's commands still work: the demo and the benchmarks, briefly
#   4. a short coverage-guided fuzz run of every cargo-fuzz target (deploy/fuzz.sh)
# Privileged tests FAIL without root; nothing is skipped silently.
set -euo pipefail
if [ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null; then exec sudo -E "$0" "$@"; fi
cd "$(dirname "$0")/.."
deploy/setup.sh
for d in "${CARGO_HOME:-$HOME/.cargo}/bin" /usr/local/cargo/bin; do [ -d "$d" ] && PATH="$d:$PATH"; done
export PATH

step() { echo; echo "=== $*"; }
step "cargo fmt --check"
cargo fmt --all -- --check
step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings
step "cargo test (unit, property, privileged integration)"
cargo test --workspace --locked
step "README commands: skiff demo (2 s, and with --latency), skiff bench tx-only, gen-features and latency (1 run each)"
out=$(target/release/skiff demo --duration 2s --json)
echo "$out" | python3 -c 'import json,sys; d=json.load(sys.stdin)["accounting"]; print(d); assert d["adds_up"] and d["dropped_total"]==0, d'
target/release/skiff demo --latency --duration 2s
target/release/skiff bench tx-only --runs 1 --duration 1s
target/release/skiff bench gen-features --runs 1 --duration 1s
target/release/skiff bench latency --runs 1 --duration 1s
benches/rx-path.sh 1 200k
left=$(ip netns list | grep -c '^skdemo\|^skbench\|^sklat\|^skrx' || true)
[ "$left" -eq 0 ] || { echo "left-over namespaces: $left" >&2; exit 1; }
step "fuzz: every cargo-fuzz target for 20 s (deploy/fuzz.sh)"
deploy/fuzz.sh 20
echo; echo "deploy/test.sh: all checks passed"
