#!/usr/bin/env bash
# Single-connection TCP goodput of skiff (userspace TCP on AF_XDP, MSS 1448) against three
# baselines measured in the same run on the same veth testbed:
#   udp:    skiff's own UDP generator at the same frame size (1514 B), peer dropping in XDP:
#           the bit rate skiff's transmit path reaches without TCP (goal: TCP >= 80% of it);
#   udprx:  the same generator into `skiff sink` (AF_XDP receive): every frame is copied
#           into the receiver's UMEM in the sender's veth xmit, as TCP's frames are, so this
#           is the transmit path's rate when the frames are also received;
#   kernel: the kernel's TCP over the same veth (iperf3 -c a -> iperf3 -s b), which passes
#           64 KiB GSO packets through veth unsegmented (one skb per 45 segments).
# and skiff TCP into `skiff tcp recv` (skiff at both ends; the receiver checks the pattern).
# Goodput counts payload bits; the UDP rate counts the frames' bits (L2); the TCP frames
# carry 1448 of 1514 bytes, so 95.6% is the ceiling of goodput over an L2 rate.
#
#   sudo benches/tcp.sh [RUNS] [BYTES]      (default 3 runs of 1G)
#   sudo PEER_THREADED=1 benches/tcp.sh     (both veth ends poll in NAPI kthreads, GRO on)
#
# On veth the receiver's work runs on the sender's CPU: veth_xmit queues the frame to the
# peer's backlog (or NAPI) on the CPU that transmits. PEER_THREADED=1 moves the peer's
# receive processing (kernel TCP, XDP, AF_XDP copy) to a NAPI kthread that the scheduler
# puts on another CPU, as a second host would; it needs more than 2 CPUs to mean anything.
set -euo pipefail
cd "$(dirname "$0")/.."
SKIFF=${SKIFF:-target/release/skiff}
runs=${1:-3}
bytes=${2:-1G}
# shellcheck source=benches/lib.sh
. benches/lib.sh
testbed_up "$SKIFF" sktcp
ip netns exec "$name-b" ethtool -K "$name-b" tx off ${PEER_GRO:+gro on} >/dev/null
if [ -n "${PEER_THREADED:-}" ]; then
    # veth has NAPI (and so a kthread to move) once GRO or XDP is on.
    ip netns exec "$name-b" ethtool -K "$name-b" gro on >/dev/null
    # veth_xmit takes the NAPI path only for frames from a device without TSO
    # (veth_skb_is_eligible_for_gro); AF_XDP's frames are never GSO anyway.
    ip netns exec "$name-a" ethtool -K "$name-a" gro on tso off >/dev/null
    ip netns exec "$name-a" sh -c "echo 1 >/sys/class/net/$name-a/threaded"
    ip netns exec "$name-b" sh -c "echo 1 >/sys/class/net/$name-b/threaded"
fi
nbytes=$(parse_bytes "$bytes")
# Waits (up to 10 s) for a server's ready file $1, then removes it for the next one.
wait_ready() {
    for _ in $(seq 100); do [ -e "$1" ] && break; sleep 0.1; done
    rm -f "$1"
}
# 5 s of skiff UDP at 1514-byte frames from a into a sink in b (extra sink flags in $2...),
# the generator's JSON report to $1.
udp_into_sink() {
    local out=$1; shift
    ip netns exec "$name-b" "$SKIFF" sink --iface "$name-b" --match-all "$@" \
        --duration 30 --json --quiet --ready-file "$tmp/sink.ready" >/dev/null &
    local sink=$!
    wait_ready "$tmp/sink.ready"
    ip netns exec "$name-a" "$SKIFF" gen --iface "$name-a" --dst-ip 198.18.0.2 \
        --dst-mac 02:00:c6:12:00:02 --size 1518 --duration 5s --json --quiet >"$out"
    kill -INT "$sink"; wait "$sink" || true
}
for run in $(seq "$runs"); do
    # skiff TCP -> kernel server
    ip netns exec "$name-b" timeout 300 python3 cli/tests/common/tcp_peer.py server --port 5001 \
        --expect-bytes "$nbytes" --ready-file "$tmp/srv.ready" >"$tmp/srv.$run.json" 2>/dev/null &
    srv=$!
    wait_ready "$tmp/srv.ready"
    ip netns exec "$name-a" "$SKIFF" tcp send --iface "$name-a" --dst 198.18.0.2:5001 \
        --bytes "$nbytes" --json --quiet --timeout 280s >"$tmp/tcp.$run.json"
    wait "$srv"
    # skiff UDP at 1514-byte frames, peer drops in XDP; then into skiff sink (AF_XDP receive)
    udp_into_sink "$tmp/udp.$run.json" --xdp-action drop
    udp_into_sink "$tmp/udprx.$run.json"
    # skiff TCP -> skiff tcp recv
    ip netns exec "$name-b" "$SKIFF" tcp recv --iface "$name-b" --listen 5003 \
        --expect-bytes "$nbytes" --json --quiet --timeout 280s --ready-file "$tmp/recv.ready" \
        >"$tmp/tcprx.$run.json" &
    recv=$!
    wait_ready "$tmp/recv.ready"
    ip netns exec "$name-a" "$SKIFF" tcp send --iface "$name-a" --dst 198.18.0.2:5003 \
        --bytes "$nbytes" --json --quiet --timeout 280s >"$tmp/tcp2.$run.json"
    wait "$recv"
    # kernel TCP over the same veth (no XDP on either side now)
    ip netns exec "$name-b" timeout 60 iperf3 -s -1 -p 5201 >/dev/null 2>&1 &
    ip3=$!
    sleep 0.5
    ip netns exec "$name-a" timeout 60 iperf3 -c 198.18.0.2 -p 5201 -n "$bytes" -J >"$tmp/kernel.$run.json"
    wait "$ip3" || true
done
python3 - "$tmp" "$runs" <<'PY'
import json, statistics, sys
tmp, runs = sys.argv[1], int(sys.argv[2])
def load(kind, i):
    return json.load(open(f"{tmp}/{kind}.{i}.json"))
tcp, tcp2, udp, udprx, ker = [], [], [], [], []
for i in range(1, runs + 1):
    t = load("tcp", i); tcp.append(t["goodput_bps"])
    t2 = load("tcp2", i); tcp2.append(t2["goodput_bps"])
    r2 = load("tcprx", i)
    assert r2["all_ok"], f"skiff tcp recv: pattern or byte count wrong in run {i}"
    udp.append(load("udp", i)["tx_bps_l2"])
    udprx.append(load("udprx", i)["tx_bps_l2"])
    k = load("kernel", i); ker.append(k["end"]["sum_received"]["bits_per_second"])
    print(f"run {i}: skiff tcp->kernel {tcp[-1]/1e9:.3f} Gbit/s (retrans {t['retrans_segs']}), "
          f"skiff tcp->skiff {tcp2[-1]/1e9:.3f} (retrans {t2['retrans_segs']}), "
          f"skiff udp->xdp-drop {udp[-1]/1e9:.3f} L2, udp->skiff sink {udprx[-1]/1e9:.3f} L2, "
          f"kernel tcp {ker[-1]/1e9:.3f} Gbit/s")
mt, mt2, mu, mur, mk = (statistics.median(x) for x in (tcp, tcp2, udp, udprx, ker))
print(f"median: skiff tcp->kernel {mt/1e9:.3f} Gbit/s goodput = {mt/mu:.2f}x udp->xdp-drop "
      f"({mu/1e9:.3f} Gbit/s L2), {mt/mur:.2f}x udp->skiff sink ({mur/1e9:.3f}), "
      f"{mt/mk:.2f}x kernel tcp ({mk/1e9:.3f} Gbit/s goodput)")
print(f"median: skiff tcp->skiff {mt2/1e9:.3f} Gbit/s goodput = {mt2/mu:.2f}x udp->xdp-drop, "
      f"{mt2/mur:.2f}x udp->skiff sink")
PY
