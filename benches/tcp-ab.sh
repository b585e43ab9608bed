#!/usr/bin/env bash
# skiff TCP -> a kernel TCP server (cli/tests/common/tcp_peer.py, checking the pattern) on
# one veth testbed: two skiff builds or two argument sets, A and B, alternating run by run
# so the machine's noise falls on both alike. Prints each run and the medians of goodput
# and retransmissions, and B's median over A's.
#
#   sudo A=/tmp/old/skiff B=target/release/skiff benches/tcp-ab.sh [RUNS] [CONNS] [BYTES]
#   sudo A_ARGS="--budget 64" B_ARGS="--budget 256" benches/tcp-ab.sh 3 1000 1M
#
# BYTES is per connection (default 1 connection of 1G); A and B default to
# target/release/skiff. The peer's TX checksum offload is off (kernel TCP over veth
# leaves checksums partial otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."
A=${A:-target/release/skiff}
B=${B:-target/release/skiff}
runs=${1:-3}
conns=${2:-1}
bytes=${3:-1G}
# shellcheck source=benches/lib.sh
. benches/lib.sh
testbed_up "$A" sktab
ip netns exec "$name-b" ethtool -K "$name-b" tx off >/dev/null
n=$(parse_bytes "$bytes")

one() { # BIN ARGS OUT: one transfer; the JSON report lands in OUT
    local bin=$1 args=$2 out=$3
    rm -f "$tmp/ready"
    ip netns exec "$name-b" timeout 300 python3 cli/tests/common/tcp_peer.py server \
        --port 5001 --expect-bytes "$n" --conns "$conns" --ready-file "$tmp/ready" \
        >"$tmp/srv.json" 2>"$tmp/srv.err" &
    local srv=$!
    for _ in $(seq 150); do [ -e "$tmp/ready" ] && break; sleep 0.1; done
    # shellcheck disable=SC2086 # ARGS is a word list on purpose
    ip netns exec "$name-a" "$bin" tcp send --iface "$name-a" --dst 198.18.0.2:5001 \
        --bytes "$n" --conns "$conns" --json --quiet --timeout 280s $args >"$out"
    wait "$srv" || { cat "$tmp/srv.err" >&2; exit 1; }
}

for i in $(seq "$runs"); do
    one "$A" "${A_ARGS:-}" "$tmp/a$i.json"
    one "$B" "${B_ARGS:-}" "$tmp/b$i.json"
done
python3 - "$tmp" "$runs" <<'PY'
import json, statistics, sys
tmp, runs = sys.argv[1], int(sys.argv[2])
med, cpu = {}, {}
for side in "ab":
    g, r, u = [], [], []
    for i in range(1, runs + 1):
        d = json.load(open(f"{tmp}/{side}{i}.json"))
        assert d["all_ok"], d
        x = d["poller"].get("xdp_statistics")  # absent in builds before 2026-11-23
        g.append(d["goodput_bps"] / 1e9)
        r.append(d["retrans_segs"])
        t = d["poller"].get("cpu")  # absent in builds before 2026-11-23
        u.append(t["user_s"] / (d["bytes"] / 2**30) if t else float("nan"))
        print(f"{side.upper()} run {i}: {g[-1]:.3f} Gbit/s, {r[-1]} retransmissions, "
              f"user CPU {u[-1]:.3f} s/GiB, rtt p50 {d['rtt']['p50_us']} us, "
              f"{d['poller']['poller']['rounds']} rounds, "
              f"socket drops {x['rx_dropped'] + x['rx_ring_full'] if x else '?'}"
              + (f", Jain's index {d['fairness']['jain']:.2f}" if d.get("fairness") else ""))
    med[side] = statistics.median(g)
    cpu[side] = statistics.median(u)
    print(f"{side.upper()} median: {med[side]:.3f} Gbit/s, retransmissions {statistics.median(r)}, "
          f"poller user CPU {cpu[side]:.3f} s/GiB")
print(f"B / A = {med['b'] / med['a']:.2f}x goodput, {cpu['b'] / cpu['a'] if cpu['a'] else float('nan'):.2f}x user CPU per byte")
PY
