#!/usr/bin/env bash
# Runs every cargo-fuzz target of engine/fuzz for SECONDS each (default 30) and prints one
# summary line per target. Exits non-zero if a target fails to build, crashes, or stops
# early.
#
#   deploy/fuzz.sh [SECONDS]
#
# - Installs cargo-fuzz (`cargo install cargo-fuzz --locked`) when it is missing.
# - Writes seed corpora to engine/fuzz/corpus/<target>/ (git-ignored) before fuzzing:
#   hand-built frames (IPv4/TCP, IPv6/UDP, 802.1Q and 802.1ad tags, fragments, IPv6
#   extension headers) and, for `gro`, merge-able TCP/UDP streams in the record format
#   of `skiff_engine::rx::gro::fuzz_one`; plus frames from any *.pcap in the repository.
# - Works on a stable toolchain: cargo-fuzz passes nightly-only flags (-Zsanitizer=...),
#   which stable rustc accepts with RUSTC_BOOTSTRAP=1 (set here unless already set).
# - Sanitizer: FUZZ_SANITIZER (default `address`; `none` to turn it off). If the
#   AddressSanitizer build fails (no runtime for this toolchain), the script says so and
#   falls back to `-s none`.
# - Extra libFuzzer flags: FUZZ_ARGS (e.g. FUZZ_ARGS='-jobs=2 -seed=1').
# - Crash inputs land in engine/fuzz/artifacts/<target>/; the summary names them and
#   prints their first bytes in hex.
set -euo pipefail

secs="${1:-30}"
if ! [[ "$secs" =~ ^[1-9][0-9]*$ ]]; then
    echo "usage: $0 [SECONDS]   (SECONDS: a positive integer, default 30)" >&2
    exit 2
fi

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
fuzz="$root/engine/fuzz"
cd "$fuzz"

# Root shells (sudo, su -) often lack ~/.cargo/bin on PATH.
for d in "${CARGO_HOME:-$HOME/.cargo}/bin" "$HOME/.cargo/bin"; do
    [[ -d "$d" ]] && PATH="$d:$PATH"
done
export PATH
command -v cargo >/dev/null || {
    echo "fuzz.sh: cargo not found (install rustup: https://rustup.rs)" >&2
    exit 1
}
export RUSTC_BOOTSTRAP="${RUSTC_BOOTSTRAP:-1}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "fuzz.sh: installing cargo-fuzz"
    cargo install cargo-fuzz --locked
fi
command -v python3 >/dev/null || {
    echo "fuzz.sh: python3 is needed to write the seed corpora" >&2
    exit 1
}

# The fuzz crate is its own workspace with its own (git-ignored) lock file: start it from
# the main workspace's, so the engine builds against the versions the main build tests.
if [[ ! -f Cargo.lock && -f "$root/Cargo.lock" ]]; then
    cp "$root/Cargo.lock" Cargo.lock
fi

# ---------------------------------------------------------------------------------------
# Seed corpora.
mapfile -t pcaps < <(find "$root" \( -path "$root/target" -o -path '*/target' -o -path '*/.git' \) -prune \
    -o -type f \( -name '*.pcap' -o -name '*.pcapng' \) -print 2>/dev/null | sort)
python3 - "$fuzz/corpus" "${pcaps[@]}" <<'PY'
"""Writes seed inputs for the flow_key and gro fuzz targets."""
import os
import struct
import sys
import zlib

corpus, pcaps = sys.argv[1], sys.argv[2:]

SRC_MAC = bytes([2, 0, 0, 0, 0, 1])
DST_MAC = bytes([2, 0, 0, 0, 0, 2])
V4A, V4B = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2])
V6A = bytes.fromhex("20010db8000000000000000000000001")
V6B = bytes.fromhex("20010db8000000000000000000000002")
TCP, UDP, ICMP, HOPOPTS, FRAG6 = 6, 17, 1, 0, 44
ACK, PSH = 0x10, 0x08


def ones(data, acc=0):
    if len(data) % 2:
        data += b"\0"
    acc += sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while acc >> 16:
        acc = (acc & 0xFFFF) + (acc >> 16)
    return acc


def csum(data, acc=0):
    return ~ones(data, acc) & 0xFFFF


def pseudo(src, dst, proto, l4len):
    if len(src) == 4:
        return ones(src + dst + struct.pack("!BBH", 0, proto, l4len))
    return ones(src + dst + struct.pack("!IxxxB", l4len, proto))


def tsopt(tsval=1000, tsecr=2000):
    return bytes([1, 1, 8, 10]) + struct.pack("!II", tsval, tsecr)


def payload(n, seed=0):
    return bytes((seed * 31 + i * 7) & 0xFF for i in range(n))


def tcp(src, dst, sport, dport, seq, ack, flags, data, opts=None, window=502):
    opts = tsopt() if opts is None else opts
    h = struct.pack("!HHIIBBHHH", sport, dport, seq, ack, (20 + len(opts)) // 4 << 4,
                    flags, window, 0, 0) + opts
    seg = h + data
    ck = csum(seg, pseudo(src, dst, TCP, len(seg)))
    return seg[:16] + struct.pack("!H", ck) + seg[18:]


def udp(src, dst, sport, dport, data):
    seg = struct.pack("!HHHH", sport, dport, 8 + len(data), 0) + data
    ck = csum(seg, pseudo(src, dst, UDP, len(seg))) or 0xFFFF
    return seg[:6] + struct.pack("!H", ck) + seg[8:]


def ipv4(l4, proto, src=V4A, dst=V4B, ident=0x1000, df=True, frag=0, opts=b"", ttl=64):
    ihl = 5 + len(opts) // 4
    h = struct.pack("!BBHHHBBH4s4s", 0x40 | ihl, 0, ihl * 4 + len(l4), ident,
                    (0x4000 if df else 0) | frag, ttl, proto, 0, src, dst) + opts
    return h[:10] + struct.pack("!H", csum(h)) + h[12:] + l4


def ipv6(l4, nh, src=V6A, dst=V6B, ext=b"", first=None, flow=0x12345, hlim=64):
    return struct.pack("!IHBB16s16s", 6 << 28 | flow, len(ext) + len(l4),
                       nh if first is None else first, hlim, src, dst) + ext + l4


def eth(l3, v6=False, tags=(), pad_to=0):
    f = DST_MAC + SRC_MAC
    for tpid, tci in tags:
        f += struct.pack("!HH", tpid, tci)
    f += struct.pack("!H", 0x86DD if v6 else 0x0800) + l3
    return f + b"\0" * max(0, pad_to - len(f))


def tcp4_frame(sport, seq, data, ident, flags=ACK, tags=(), dport=5001):
    return eth(ipv4(tcp(V4A, V4B, sport, dport, seq, 77, flags, data), TCP, ident=ident), tags=tags)


def tcp6_frame(sport, seq, data, flags=ACK, tags=()):
    return eth(ipv6(tcp(V6A, V6B, sport, 5001, seq, 77, flags, data), TCP), True, tags)


def udp4_frame(sport, data, ident, tags=()):
    return eth(ipv4(udp(V4A, V4B, sport, 4789, data), UDP, ident=ident), tags=tags)


def flow_hash(frame):
    """A stand-in for the NIC's RSS hash (one byte): equal for frames of one flow."""
    off, et = 12, frame[12:14]
    while et in (b"\x81\x00", b"\x88\xa8") and len(frame) >= off + 6:
        off += 4
        et = frame[off:off + 2]
    l3 = frame[off + 2:]
    if et == b"\x08\x00" and len(l3) >= 20:
        ihl = (l3[0] & 15) * 4
        key = l3[9:10] + l3[12:20] + l3[ihl:ihl + 4]
    elif et == b"\x86\xdd" and len(l3) >= 40:
        key = l3[6:7] + l3[8:40] + l3[40:44]
    else:
        return 0
    return zlib.crc32(key) & 0xFF


def records(ctl, frames, flush_after=()):
    """The gro target's input: config byte, then [len_hi, len_lo, hash, ctl, frame...]."""
    out = bytearray([ctl])
    for i, f in enumerate(frames):
        f = f[:0xFFFF]
        out += struct.pack("!HBB", len(f), flow_hash(f), 1 if i in flush_after else 0) + f
    return bytes(out)


def gro_ctl(verify=True, udp_on=False, tcp_off=False, per_bucket=1, buckets=1):
    return (int(verify) | int(udp_on) << 1 | int(tcp_off) << 2
            | (per_bucket - 1) << 3 | (buckets - 1) << 5)


def write(target, name, data):
    d = os.path.join(corpus, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "seed-" + name), "wb") as fh:
        fh.write(data)


# flow_key: one frame per input.
hop = bytes([TCP, 0, 1, 4, 0, 0, 0, 0])             # hop-by-hop: PadN, 8 bytes
frag6 = bytes([UDP, 0]) + struct.pack("!HI", 0x0001, 0xABCD)  # offset 0, M=1
flow_seeds = {
    "ipv4_tcp": tcp4_frame(40000, 1_000_000, payload(64), 0x1000),
    "ipv6_udp": eth(ipv6(udp(V6A, V6B, 5353, 53, payload(40)), UDP), True),
    "vlan_ipv4_udp": udp4_frame(4000, payload(32), 7, tags=[(0x8100, 100)]),
    "qinq_ipv6_tcp": tcp6_frame(2000, 5, payload(48), tags=[(0x88A8, 10), (0x8100, 20)]),
    "ipv4_opts_padded_udp": eth(ipv4(udp(V4A, V4B, 1, 2, b"x"), UDP,
                                     opts=bytes([1, 1, 1, 0])), pad_to=60),
    "ipv4_fragment": eth(ipv4(udp(V4A, V4B, 9, 9, payload(24)), UDP, df=False, frag=0x2000)),
    "ipv4_icmp": eth(ipv4(bytes([8, 0, 0xF7, 0xFF, 0, 0, 0, 0]), ICMP), pad_to=60),
    "ipv6_hopopts_tcp": eth(ipv6(tcp(V6A, V6B, 80, 8080, 1, 2, ACK, b"hi"), TCP,
                                 ext=hop, first=HOPOPTS), True),
    "ipv6_fragment_udp": eth(ipv6(udp(V6A, V6B, 7, 7, payload(16)), UDP, ext=frag6,
                                  first=FRAG6), True),
}
for name, f in flow_seeds.items():
    write("flow_key", name, f)

# gro: record streams that merge. Every flow keeps its TCP options, ACK and flags fixed
# and advances seq by the payload; IPv4 IDs increment (DF set); the last, shorter segment
# (or PSH) ends a packet. Checksums are valid, so the seeds merge with verification on.
MSS = 200
seq = 1_000_000
s1 = [tcp4_frame(40000, seq + i * MSS, payload(MSS, i), 0x1000 + i) for i in range(5)]
s1.append(tcp4_frame(40000, seq + 5 * MSS, payload(60, 5), 0x1005, flags=ACK | PSH))
write("gro", "tcp4_stream", records(gro_ctl(), s1))

# Two interleaved IPv6 flows, a flush (round end) in the middle, room for both.
s2, off = [], {2000: 0, 2001: 0}
for i in range(8):
    sp = 2000 + i % 2
    s2.append(tcp6_frame(sp, 7 + off[sp], payload(MSS, i)))
    off[sp] += MSS
write("gro", "tcp6_two_flows", records(gro_ctl(per_bucket=2, buckets=4), s2, flush_after={3}))

# UDP on: a VLAN-tagged TCP stream interleaved with equal-sized UDP datagrams, the last
# datagram shorter (it ends its packet), then a fixed-ID (DF) IPv4 TCP stream.
s3 = []
for i in range(4):
    s3.append(tcp4_frame(41000, 50 + i * MSS, payload(MSS, i), 0x2000 + i, tags=[(0x8100, 9)]))
    s3.append(udp4_frame(6000, payload(120 if i < 3 else 40, i), 0x3000 + i))
s3 += [tcp4_frame(42000, 9 + i * MSS, payload(MSS, i), 0x4242) for i in range(3)]
write("gro", "vlan_tcp4_udp4_fixed_id", records(gro_ctl(udp_on=True, per_bucket=2, buckets=2), s3))


# Frames from the repository's captures (classic pcap or pcapng, Ethernet link type).
def pcap_frames(path):
    with open(path, "rb") as fh:
        b = fh.read()
    if len(b) < 24:
        return
    magic = b[:4]
    if magic in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\xc3\xd4", b"\xa1\xb2\x3c\x4d"):
        e = "<" if magic[0] in (0xD4, 0x4D) else ">"
        if struct.unpack(e + "I", b[20:24])[0] != 1:
            return
        off = 24
        while off + 16 <= len(b):
            incl = struct.unpack(e + "I", b[off + 8:off + 12])[0]
            yield b[off + 16:off + 16 + incl]
            off += 16 + incl
    elif magic == b"\x0a\x0d\x0d\x0a":
        e = "<" if b[8:12] == b"\x4d\x3c\x2b\x1a" else ">"
        off, links = 0, []
        while off + 12 <= len(b):
            typ, blen = struct.unpack(e + "II", b[off:off + 8])
            if blen < 12:
                return
            if typ == 1:  # interface description
                links.append(struct.unpack(e + "H", b[off + 8:off + 10])[0])
            elif typ == 6:  # enhanced packet
                ifc, _, _, cap = struct.unpack(e + "IIII", b[off + 8:off + 24])
                if ifc < len(links) and links[ifc] == 1:
                    yield b[off + 28:off + 28 + cap]
            off += blen


for p in pcaps:
    try:
        frames = [f for _, f in zip(range(64), pcap_frames(p))]
    except (OSError, struct.error):
        continue
    if not frames:
        continue
    tag = os.path.basename(p).rsplit(".", 1)[0][:40]
    for i, f in enumerate(frames[:16]):
        write("flow_key", "pcap-%s-%02d" % (tag, i), f)
    write("gro", "pcap-%s" % tag, records(gro_ctl(udp_on=True, per_bucket=2, buckets=8), frames))
    print("fuzz.sh: seeds from %s (%d frames)" % (p, len(frames)))
PY

# ---------------------------------------------------------------------------------------
mapfile -t targets < <(cargo fuzz list)
(( ${#targets[@]} > 0 )) || { echo "fuzz.sh: no fuzz targets" >&2; exit 1; }

san="${FUZZ_SANITIZER:-address}"

logs="$(mktemp -d "${TMPDIR:-/tmp}/skiff-fuzz.XXXXXX")"
declare -a summary=()
failed=0
read -r -a extra <<<"${FUZZ_ARGS:-}"
for t in "${targets[@]}"; do
    log="$logs/$t.log"
    s="$san"
    if ! cargo fuzz build -s "$s" "$t" >"$log" 2>&1; then
        if [[ "$s" == address ]]; then
            echo "fuzz.sh: $t: AddressSanitizer build failed (last lines below); retrying with -s none" >&2
            tail -n 5 "$log" >&2
            s=none
            if ! cargo fuzz build -s none "$t" >"$log" 2>&1; then
                tail -n 20 "$log" >&2
                summary+=("$t: FAILED to build (log: $log)")
                failed=1
                continue
            fi
        else
            tail -n 20 "$log" >&2
            summary+=("$t: FAILED to build (log: $log)")
            failed=1
            continue
        fi
    fi
    mkdir -p "corpus/$t" "artifacts/$t"
    before="$(find "artifacts/$t" -type f | sort)"
    echo "fuzz.sh: $t: fuzzing ${secs}s (sanitizer: $s, $(find "corpus/$t" -type f | wc -l) corpus inputs)"
    rc=0
    cargo fuzz run -s "$s" "$t" -- -max_total_time="$secs" -print_final_stats=1 "${extra[@]}" \
        >"$log" 2>&1 || rc=$?
    # libFuzzer: "#N DONE cov: C ft: F corp: K/Sb ... exec/s: E" and, with -print_final_stats,
    # "stat::number_of_executed_units: N".
    status="$(grep -E '^#[0-9]+[[:space:]]+(DONE|pulse|NEW|REDUCE|INITED)' "$log" | tail -n 1 || true)"
    execs="$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)"
    [[ -n "$execs" ]] || execs="$(sed -n 's/^#\([0-9]*\).*/\1/p' <<<"$status")"
    cov="$(sed -n 's/.* cov: \([0-9]*\).*/\1/p' <<<"$status")"
    ft="$(sed -n 's/.* ft: \([0-9]*\).*/\1/p' <<<"$status")"
    corp="$(sed -n 's/.* corp: \([0-9]*\)\/.*/\1/p' <<<"$status")"
    eps="$(sed -n 's/.* exec\/s: \([0-9]*\).*/\1/p' <<<"$status")"
    line="$t: execs=${execs:-?} cov=${cov:-?} ft=${ft:-?} corpus=${corp:-?} exec/s=${eps:-?} sanitizer=$s"
    new="$(comm -13 <(echo "$before") <(find "artifacts/$t" -type f | sort) | grep . || true)"
    if (( rc != 0 )) || [[ -n "$new" ]] || ! grep -q '^Done [0-9]* runs' "$log"; then
        failed=1
        # A Rust panic: "thread '...' panicked at FILE:LINE:COL:" and the message below it.
        why="$(grep -m1 -A1 'panicked at' "$log" | tr '\n' ' ' || true)"
        [[ -n "$why" ]] || why="$(grep -m1 -E 'ERROR: (AddressSanitizer|libFuzzer)|==[0-9]+==ERROR' "$log" || true)"
        line+=" FAILED (rc=$rc${why:+: $why})"
        echo "----- $t: last lines of $log -----" >&2
        tail -n 40 "$log" >&2
        for a in $new; do
            size="$(stat -c %s "$a")"
            hex="$(head -c 512 "$a" | od -An -v -tx1 | tr -d ' \n')"
            if (( size > 512 )); then hex+="... (first 512 bytes)"; fi
            line+=$'\n'"  input: $fuzz/$a ($size bytes) hex: ${hex:-(empty)}"
            line+=$'\n'"  reproduce: cd $fuzz && RUSTC_BOOTSTRAP=1 cargo fuzz run -s $s $t $a"
        done
    else
        line+=" ok"
    fi
    summary+=("$line")
done

echo "== fuzz summary (${secs}s per target; logs in $logs) =="
printf '%s\n' "${summary[@]}"
exit "$failed"
