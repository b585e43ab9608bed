#!/usr/bin/env bash
# End-to-end sink throughput with RPS steering and GRO on and off, against the plain sink
# (poller consumes, no GRO) measured in the same run: configurations alternate within
# each run, the median over runs is reported with its ratio to the baseline. Delivered =
# frames taken from the rings less those dropped at a backlog, per second of traffic. A veth
# testbed is created and always removed; `skiff gen` sends COUNT 64-byte UDP frames of 64
# flows as fast as it can.
#
#   sudo benches/rx-path.sh [RUNS] [COUNT]            (default 3 runs of 1M frames)
#   sudo CONFIGS="plain:;w1:--workers 1;w2:--workers 2" benches/rx-path.sh   (own set)
#   sudo TESTBED_QUEUES=4 QUEUES=0-3 GEN_CPUS=0-3 SINK_CPUS=4-7 benches/rx-path.sh
#
# CONFIGS is `name:sink flags;...`; the first is the baseline.
set -euo pipefail
cd "$(dirname "$0")/.."
SKIFF=${SKIFF:-target/release/skiff}
runs=${1:-3}
count=${2:-1M}
IFS=';' read -r -a configs <<<"${CONFIGS:-plain:;gro:--gro --gro-udp;rps2:--workers 2;rps2+gro:--workers 2 --gro --gro-udp}"
# shellcheck source=benches/lib.sh
. benches/lib.sh
testbed_up "$SKIFF" skrx "${TESTBED_QUEUES:-1}"
for run in $(seq "$runs"); do
    for c in "${configs[@]}"; do
        cname=${c%%:*}; flags=${c#*:}
        # Bounded: the sink stops by itself after 60 s even if gen never finishes.
        # shellcheck disable=SC2086
        ip netns exec "$name-b" "$SKIFF" sink --iface "$name-b" --duration 60 \
            ${QUEUES:+--queues $QUEUES} --cpus "${SINK_CPUS:-1}" $flags \
            --json --quiet --ready-file "$tmp/ready" >"$tmp/$cname.$run.json" &
        sink=$!
        for _ in $(seq 100); do [ -e "$tmp/ready" ] && break; sleep 0.1; done
        rm -f "$tmp/ready"
        ip netns exec "$name-a" "$SKIFF" gen --iface "$name-a" --dst-ip 198.18.0.2 \
            --dst-mac 02:00:c6:12:00:02 --cpus "${GEN_CPUS:-0}" ${QUEUES:+--queues $QUEUES} \
            --flows 64 --count "$count" --json --quiet >"$tmp/gen.json"
        sleep 0.5; kill -INT "$sink"; wait "$sink" || true
    done
done
python3 - "$tmp" "$runs" "${configs[@]}" <<'PY'
import json, statistics, sys
tmp, runs, configs = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
rows = []
for c in configs:
    name, flags = c.split(":", 1)
    pps, lost, merged = [], [], []
    for r in range(1, runs + 1):
        s = json.load(open(f"{tmp}/{name}.{r}.json"))
        rps = s.get("rps") or {}
        st = rps.get("steer", {})
        backlog = st.get("backlog_full", 0) + st.get("flow_limit", 0)
        # Delivered: taken from the rings and not dropped at a backlog.
        pps.append((s["rx_packets"] - backlog) / s["active_s"] if s["active_s"] > 0 else 0.0)
        lost.append(s["dropped"]["xsk_rx_dropped"] + backlog)
        g = s.get("gro")
        merged.append(g["received"] / max(1, g["packets_out"] + g["singles_out"]) if g else 1.0)
    rows.append((name, flags, statistics.median(pps), statistics.median(lost), statistics.median(merged)))
base = rows[0][2]
print(f"{'config':<12} {'delivered Mpps':>17} {'vs ' + rows[0][0]:>10} {'dropped':>10} {'frames/pkt':>10}  sink flags")
for name, flags, pps, lost, m in rows:
    print(f"{name:<12} {pps/1e6:>17.3f} {pps/base:>9.2f}x {lost:>10.0f} {m:>10.2f}  {flags}")
PY
