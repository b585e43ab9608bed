#!/usr/bin/env bash
# Multi-queue transmit scaling: `skiff gen` with Q queues, one poller per queue pinned to
# its own CPU (0..Q-1), 64-byte UDP frames as fast as it can, into a veth pair with Q queues
# whose peer drops everything in XDP (so only the transmit side is measured: AF_XDP copy-mode
# xmit, veth, the peer's XDP program, all on the sending CPU). Each queue count is measured
# RUNS times, interleaved; the median is reported with its ratio to one queue measured in
# the same run. The testbed is created for each queue count and always removed.
#
#   sudo benches/scaling.sh [RUNS] [Q ...]          (default 3 runs of Q = 1 2)
#   sudo DURATION=5s SIZE=64 benches/scaling.sh 3 1 2 4 8
#
# Needs at least max(Q) CPUs; on this project's 2-core machines only 1 and 2 make sense.
set -euo pipefail
cd "$(dirname "$0")/.."
SKIFF=${SKIFF:-target/release/skiff}
runs=${1:-3}
shift || true
qs=("$@")
[ ${#qs[@]} -gt 0 ] || qs=(1 2)
ncpu=$(nproc)
for q in "${qs[@]}"; do
    if [ "$q" -gt "$ncpu" ]; then
        echo "scaling.sh: $q queues need $q CPUs, this machine has $ncpu" >&2
        exit 2
    fi
done
name="sksc$$"; name=${name:0:11}
tmp=$(mktemp -d)
trap '"$SKIFF" testbed down --name "$name" >/dev/null 2>&1 || true; rm -rf "$tmp"' EXIT
for run in $(seq "$runs"); do
    for q in "${qs[@]}"; do
        "$SKIFF" testbed up --name "$name" --queues "$q" >/dev/null
        last=$((q - 1))
        # Bounded: the sink stops by itself after 60 s even if gen never finishes.
        ip netns exec "$name-b" "$SKIFF" sink --iface "$name-b" --queues "0-$last" --match-all \
            --xdp-action drop --duration 60 --json --quiet --ready-file "$tmp/ready" >/dev/null &
        sink=$!
        for _ in $(seq 100); do [ -e "$tmp/ready" ] && break; sleep 0.1; done
        rm -f "$tmp/ready"
        ip netns exec "$name-a" "$SKIFF" gen --iface "$name-a" --dst-ip 198.18.0.2 \
            --dst-mac 02:00:c6:12:00:02 --queues "0-$last" --cpus "0-$last" --flows 64 \
            --size "${SIZE:-64}" --duration "${DURATION:-5s}" --json --quiet >"$tmp/q$q.$run.json"
        kill -INT "$sink"; wait "$sink" || true
        "$SKIFF" testbed down --name "$name" >/dev/null
    done
done
python3 - "$tmp" "$runs" "${qs[@]}" <<'PY'
import json, statistics, sys
tmp, runs, qs = sys.argv[1], int(sys.argv[2]), [int(q) for q in sys.argv[3:]]
med = {}
for q in qs:
    pps = [json.load(open(f"{tmp}/q{q}.{r}.json"))["tx_pps"] for r in range(1, runs + 1)]
    med[q] = statistics.median(pps)
    print(f"queues {q:>2}: " + " ".join(f"{p/1e6:.3f}" for p in pps) + " Mpps")
base = med[qs[0]]
print(f"{'queues':>6} {'median Mpps':>12} {'vs ' + str(qs[0]) + ' queue':>11} {'per queue':>10}")
for q in qs:
    print(f"{q:>6} {med[q]/1e6:>12.3f} {med[q]/base:>10.2f}x {med[q]/q/1e6:>10.3f}")
PY
