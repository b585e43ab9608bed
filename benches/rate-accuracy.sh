#!/usr/bin/env bash
# Rate accuracy at the receiver: for each rate, `skiff gen --rate R --duration D` on one
# queue (CPU 0) into `skiff sink` (CPU 1) across a veth testbed this script creates and
# always removes. Prints requested, sent, received, the rates both ends measured, their
# error, and the generator's inter-departure gap percentiles.
#
#   sudo benches/rate-accuracy.sh [DURATION_S] [RATES...]     (default: 10 10kpps 100kpps 1Mpps)
#   sudo TESTBED_QUEUES=2 QUEUES=0-1 benches/rate-accuracy.sh 10 100kpps   (two queues)
#   sudo GEN_ARGS="--burst 4ms" benches/rate-accuracy.sh 5 100kpps 100kpps 100kpps   (other gen flags)
set -euo pipefail
cd "$(dirname "$0")/.."
SKIFF=${SKIFF:-target/release/skiff}
dur=${1:-10}; shift || true
rates=("$@"); [ ${#rates[@]} -gt 0 ] || rates=(10kpps 100kpps 1Mpps)
# shellcheck source=benches/lib.sh
. benches/lib.sh
testbed_up "$SKIFF" skrate "${TESTBED_QUEUES:-1}"
printf "%-8s %10s %10s %12s %12s %9s %10s %10s %10s\n" rate sent received gen_pps rx_pps rx_err gap_p50 gap_p99 gap_max
for r in "${rates[@]}"; do
    ip netns exec "$name-b" "$SKIFF" sink --iface "$name-b" --cpus 1 --duration $((dur + 10)) \
        --json --quiet --ready-file "$tmp/ready" >"$tmp/sink.json" &
    sink=$!
    for _ in $(seq 100); do [ -e "$tmp/ready" ] && break; sleep 0.1; done
    rm -f "$tmp/ready"
    ip netns exec "$name-a" "$SKIFF" gen --iface "$name-a" --dst-ip 198.18.0.2 \
        --dst-mac 02:00:c6:12:00:02 --cpus 0 --rate "$r" --duration "$dur" ${QUEUES:+--queues $QUEUES} ${GEN_ARGS:-} \
        --json --quiet >"$tmp/gen.json"
    sleep 0.5; kill -INT "$sink"; wait "$sink" || true
    python3 - "$r" "$tmp/gen.json" "$tmp/sink.json" <<'PY'
import json, sys
r, g, s = sys.argv[1], json.load(open(sys.argv[2])), json.load(open(sys.argv[3]))
st = g["streams"][0]; req = st["requested_pps"]
print(f'{r:<8} {g["tx_packets"]:>10} {s["rx_packets"]:>10} {st["achieved_pps"]:>12.1f} {s["rx_pps"]:>12.1f} '
      f'{(s["rx_pps"]/req-1)*100:>+8.3f}% {st["gap_ns"]["p50"]/1e3:>8.2f}us {st["gap_ns"]["p99"]/1e3:>8.2f}us {st["gap_ns"]["max"]/1e3:>8.1f}us')
PY
done
