#!/usr/bin/env python3
"""Kernel TCP peers for skiff's TCP interop tests (python3 standard library only).

Run inside a testbed namespace, e.g.

    ip netns exec T-b timeout 120 python3 cli/tests/common/tcp_peer.py \
        server --port 5001 --expect-bytes 1073741824
    ip netns exec T-b timeout 120 python3 cli/tests/common/tcp_peer.py \
        client --dst 198.18.0.1 --port 5001 --bytes 1073741824 --conns 1

Every connection carries the same byte stream: byte i of a connection's stream is
`i mod 251` (251 is prime, so the pattern never lines up with a power-of-two segment,
page or buffer size, and a dropped, duplicated or misplaced segment shows as a mismatch).

server: accepts K connections, checks each one's stream against the pattern and exits 0
        only if every connection delivered exactly N matching bytes and closed with a FIN.
client: opens K connections at once, sends N pattern bytes on each, half-closes, and
        waits for the server's FIN (so its elapsed time covers delivery); exits 0 only if
        every connection sent everything and was closed cleanly by the server.

Both print one JSON object on stdout (`--json` is accepted and implied) and one summary
line on stderr. SIGTERM (e.g. from `timeout`) and SIGINT print the JSON of what happened
so far, with "interrupted": true, and exit 1.
"""

import argparse
import errno
import json
import os
import resource
import selectors
import signal
import socket
import sys
import time

# The pattern's period: byte i of every stream is i mod PERIOD.
PERIOD = 251
# recv/send size: 1 MiB keeps the per-call Python overhead at ~1000 calls per GiB.
CHUNK = 1 << 20
# Pattern buffer: any window [s, s + CHUNK) with s < PERIOD lies inside it.
PATTERN = bytes(i % PERIOD for i in range(PERIOD)) * (CHUNK // PERIOD + 2)
PATTERN_MV = memoryview(PATTERN)
# Listen backlog: 1000 concurrent connects must not overflow the accept queue (the
# kernel caps it at net.core.somaxconn, 4096 by default since Linux 5.4).
MIN_BACKLOG = 1024
# Descriptors besides the connections: stdio, the listener, the selector, spares.
SPARE_FDS = 64


class Interrupted(Exception):
    """SIGTERM or SIGINT arrived."""


def on_signal(signum, _frame):
    raise Interrupted(signal.Signals(signum).name)


def raise_nofile(conns):
    """Raises RLIMIT_NOFILE so that `conns` sockets fit; returns the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = conns + SPARE_FDS
    if soft < want:
        new = want if hard == resource.RLIM_INFINITY else min(want, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        except (ValueError, OSError):
            pass
        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    if soft < want:
        log("tcp_peer: warning: RLIMIT_NOFILE is %d (hard limit), %d connections need %d"
            % (soft, conns, want))
    return soft


def set_cc(sock, cc):
    """TCP_CONGESTION, if asked (root may pick any loaded one, e.g. cubic instead of a
    default bbr, whose internal pacing without sch_fq costs a timer per packet)."""
    if cc:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_CONGESTION, cc.encode())


def first_mismatch(data, n, offset):
    """Index in data[:n] of the first byte that differs from the pattern at `offset`."""
    s = offset % PERIOD
    step = 4096
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        if data[lo:hi] != PATTERN_MV[s + lo:s + hi]:
            for i in range(lo, hi):
                if data[i] != (offset + i) % PERIOD:
                    return i
    return None


def goodput_gbps(nbytes, seconds):
    return round(nbytes * 8 / seconds / 1e9, 4) if seconds > 0 else 0.0


class ServerConn:
    """One accepted connection and its check state."""

    __slots__ = ("sock", "peer", "bytes", "bad_offset", "bad_reason", "start", "end",
                 "closed", "error")

    def __init__(self, sock, peer, now):
        self.sock = sock
        self.peer = "%s:%d" % peer[:2]
        self.bytes = 0
        self.bad_offset = None
        self.bad_reason = None
        self.start = now
        self.end = None
        self.closed = False
        self.error = None

    def feed(self, buf, n, expect):
        """Checks buf[:n], the next n bytes of this connection's stream."""
        off = self.bytes
        self.bytes += n
        if self.bad_offset is not None:
            return
        good = min(n, max(0, expect - off))
        if good:
            s = off % PERIOD
            window = buf if good == len(buf) else buf[:good]
            if window != PATTERN_MV[s:s + good]:
                i = first_mismatch(buf, good, off)
                self.bad_offset = off + (i if i is not None else 0)
                self.bad_reason = "pattern"
                return
        if good < n:
            self.bad_offset = max(off, expect)
            self.bad_reason = "excess"

    def ok(self, expect):
        return (self.closed and self.error is None and self.bad_offset is None
                and self.bytes == expect)

    def report(self, expect):
        r = {"peer": self.peer, "bytes": self.bytes, "ok": self.ok(expect),
             "elapsed_s": round((self.end or time.monotonic()) - self.start, 6)}
        if self.bad_offset is not None:
            r["first_bad_offset"] = self.bad_offset
            r["reason"] = self.bad_reason
        elif self.closed and self.error is None and self.bytes != expect:
            r["reason"] = "short"
        if self.error is not None:
            r["error"] = self.error
        if not self.closed:
            r["reason"] = "open"
        return r


def run_server(a):
    nofile = raise_nofile(a.conns)
    backlog = max(MIN_BACKLOG, a.conns)
    lsock = socket.socket(socket.AF_INET6 if ":" in a.bind else socket.AF_INET,
                          socket.SOCK_STREAM)
    lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    set_cc(lsock, a.cc)  # accepted sockets inherit it
    lsock.bind((a.bind, a.port))
    lsock.listen(backlog)
    lsock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(lsock, selectors.EVENT_READ, None)
    buf = bytearray(CHUNK)
    conns = []
    done = 0
    t0 = time.monotonic()
    first = None
    last = None
    interrupted = None
    log("tcp_peer server: listening on %s:%d (backlog %d, nofile %d), expecting %d x %d bytes"
        % (a.bind, a.port, backlog, nofile, a.conns, a.expect_bytes))
    if a.ready_file:
        with open(a.ready_file, "w") as f:
            f.write("%d\n" % os.getpid())
    try:
        while done < a.conns:
            for key, _ in sel.select(None):
                c = key.data
                if c is None:
                    while len(conns) < a.conns:
                        try:
                            s, peer = lsock.accept()
                        except (BlockingIOError, InterruptedError):
                            break
                        now = time.monotonic()
                        if first is None:
                            first = now
                        s.setblocking(False)
                        c = ServerConn(s, peer, now)
                        conns.append(c)
                        sel.register(s, selectors.EVENT_READ, c)
                    if len(conns) == a.conns:
                        sel.unregister(lsock)
                        lsock.close()
                    continue
                # Drain what is there: up to 16 reads before serving other connections.
                for _ in range(16):
                    try:
                        n = c.sock.recv_into(buf)
                    except (BlockingIOError, InterruptedError):
                        break
                    except OSError as e:
                        c.error = errno.errorcode.get(e.errno, str(e))
                        n = 0
                    if n == 0:
                        c.end = last = time.monotonic()
                        c.closed = True
                        sel.unregister(c.sock)
                        c.sock.close()
                        done += 1
                        break
                    c.feed(buf, n, a.expect_bytes)
    except Interrupted as e:
        interrupted = str(e)
    t_end = time.monotonic()
    ok_conns = sum(1 for c in conns if c.ok(a.expect_bytes))
    total = sum(c.bytes for c in conns)
    elapsed = ((last or t_end) - first) if first is not None else 0.0
    bad = [c.report(a.expect_bytes) for c in conns if not c.ok(a.expect_bytes)]
    ok = interrupted is None and len(conns) == a.conns and ok_conns == a.conns
    out = {
        "mode": "server",
        "ok": ok,
        "port": a.port,
        "conns": a.conns,
        "accepted": len(conns),
        "ok_conns": ok_conns,
        "expect_bytes": a.expect_bytes,
        "total_bytes": total,
        "elapsed_s": round(elapsed, 6),
        "wall_s": round(t_end - t0, 6),
        "goodput_gbps": goodput_gbps(total, elapsed),
        "mismatches": bad,
        "connections": [c.report(a.expect_bytes) for c in conns],
    }
    if interrupted:
        out["interrupted"] = interrupted
    emit(out)
    log("tcp_peer server: %s: %d/%d connections ok, %d bytes in %.3f s (%.3f Gbit/s)%s"
        % ("ok" if ok else "FAILED", ok_conns, a.conns, total, elapsed, out["goodput_gbps"],
           "" if not bad else ", first problem: %s" % json.dumps(bad[0])))
    return 0 if ok else 1


class ClientConn:
    """One outgoing connection: connect, send N pattern bytes, half-close, await FIN."""

    __slots__ = ("sock", "local", "sent", "state", "start", "end", "error", "tries",
                 "retry_at", "extra")

    def __init__(self):
        self.sock = None
        self.local = None
        self.sent = 0
        self.state = "idle"
        self.start = None
        self.end = None
        self.error = None
        self.tries = 0
        self.retry_at = 0.0
        self.extra = 0

    def report(self, nbytes):
        r = {"local": self.local, "bytes_sent": self.sent, "ok": self.ok(nbytes),
             "connect_tries": self.tries}
        if self.start is not None:
            r["elapsed_s"] = round((self.end or time.monotonic()) - self.start, 6)
        if self.error is not None:
            r["error"] = self.error
        if self.extra:
            r["bytes_received"] = self.extra
        if self.state != "done":
            r["state"] = self.state
        return r

    def ok(self, nbytes):
        return self.state == "done" and self.error is None and self.sent == nbytes


def run_client(a):
    nofile = raise_nofile(a.conns)
    family = socket.AF_INET6 if ":" in a.dst else socket.AF_INET
    sel = selectors.DefaultSelector()
    conns = [ClientConn() for _ in range(a.conns)]
    t0 = time.monotonic()
    deadline_retry = t0 + a.retry
    first = None
    last = None
    finished = 0
    interrupted = None
    rbuf = bytearray(65536)

    def start(c):
        c.tries += 1
        s = socket.socket(family, socket.SOCK_STREAM)
        s.setblocking(False)
        set_cc(s, a.cc)
        if a.src:
            s.bind((a.src, 0))
        err = s.connect_ex((a.dst, a.port))
        if err not in (0, errno.EINPROGRESS):
            s.close()
            fail_or_retry(c, err)
            return
        c.sock = s
        c.state = "connecting"
        sel.register(s, selectors.EVENT_WRITE, c)

    def fail_or_retry(c, err):
        nonlocal finished, last
        if err in (errno.ECONNREFUSED, errno.ETIMEDOUT, errno.EHOSTUNREACH) and \
                time.monotonic() < deadline_retry:
            # The server may not listen yet: try again shortly.
            c.state = "retry"
            c.retry_at = time.monotonic() + 0.05
            return
        c.error = errno.errorcode.get(err, str(err))
        c.state = "failed"
        c.end = last = time.monotonic()
        finished += 1

    def close(c):
        sel.unregister(c.sock)
        c.sock.close()
        c.sock = None

    for c in conns:
        start(c)
    try:
        while finished < a.conns:
            timeout = None
            retrying = [c for c in conns if c.state == "retry"]
            if retrying:
                timeout = max(0.0, min(c.retry_at for c in retrying) - time.monotonic())
            for key, _ in sel.select(timeout):
                c = key.data
                if c.state == "connecting":
                    err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err:
                        close(c)
                        fail_or_retry(c, err)
                        continue
                    c.state = "sending"
                    c.start = time.monotonic()
                    if first is None:
                        first = c.start
                    c.local = "%s:%d" % c.sock.getsockname()[:2]
                if c.state == "sending":
                    try:
                        while c.sent < a.bytes:
                            s = c.sent % PERIOD
                            k = min(CHUNK, a.bytes - c.sent)
                            n = c.sock.send(PATTERN_MV[s:s + k])
                            c.sent += n
                            if a.conns > 1 and n < k:
                                break
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        c.error = errno.errorcode.get(e.errno, str(e))
                        c.state = "failed"
                        c.end = last = time.monotonic()
                        close(c)
                        finished += 1
                        continue
                    if c.sent < a.bytes:
                        continue
                    c.sock.shutdown(socket.SHUT_WR)
                    c.state = "draining"
                    sel.modify(c.sock, selectors.EVENT_READ, c)
                    continue
                if c.state == "draining":
                    try:
                        n = c.sock.recv_into(rbuf)
                    except (BlockingIOError, InterruptedError):
                        continue
                    except OSError as e:
                        c.error = errno.errorcode.get(e.errno, str(e))
                        n = 0
                    if n:
                        c.extra += n
                        continue
                    c.state = "done" if c.error is None else "failed"
                    c.end = last = time.monotonic()
                    close(c)
                    finished += 1
            for c in conns:
                if c.state == "retry" and time.monotonic() >= c.retry_at:
                    start(c)
    except Interrupted as e:
        interrupted = str(e)
    t_end = time.monotonic()
    ok_conns = sum(1 for c in conns if c.ok(a.bytes))
    total = sum(c.sent for c in conns)
    elapsed = ((last or t_end) - first) if first is not None else 0.0
    ok = interrupted is None and ok_conns == a.conns
    out = {
        "mode": "client",
        "ok": ok,
        "dst": "%s:%d" % (a.dst, a.port),
        "conns": a.conns,
        "ok_conns": ok_conns,
        "bytes": a.bytes,
        "total_bytes": total,
        "elapsed_s": round(elapsed, 6),
        "wall_s": round(t_end - t0, 6),
        "goodput_gbps": goodput_gbps(total, elapsed),
        "nofile": nofile,
        "failures": [c.report(a.bytes) for c in conns if not c.ok(a.bytes)],
        "connections": [c.report(a.bytes) for c in conns],
    }
    if interrupted:
        out["interrupted"] = interrupted
    emit(out)
    log("tcp_peer client: %s: %d/%d connections ok, %d bytes in %.3f s (%.3f Gbit/s)%s"
        % ("ok" if ok else "FAILED", ok_conns, a.conns, total, elapsed, out["goodput_gbps"],
           "" if ok else ", first problem: %s" % json.dumps(out["failures"][:1])))
    return 0 if ok else 1


def emit(obj):
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def log(line):
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def nonneg(v):
    n = int(v, 0)
    if n < 0:
        raise argparse.ArgumentTypeError("must be >= 0")
    return n


def positive(v):
    n = int(v, 0)
    if n < 1:
        raise argparse.ArgumentTypeError("must be >= 1")
    return n


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="mode", required=True)
    s = sub.add_parser("server", help="accept K connections, check N pattern bytes on each")
    s.add_argument("--port", type=positive, required=True)
    s.add_argument("--expect-bytes", type=nonneg, required=True,
                   help="bytes each connection must deliver")
    s.add_argument("--conns", type=positive, default=1)
    s.add_argument("--bind", default="0.0.0.0", help="address to listen on")
    s.add_argument("--cc", help="congestion control (TCP_CONGESTION), e.g. cubic")
    s.add_argument("--ready-file", help="written (with our pid) once listening")
    s.add_argument("--json", action="store_true", help="accepted; JSON is always printed")
    c = sub.add_parser("client", help="open K connections, send N pattern bytes on each")
    c.add_argument("--dst", required=True)
    c.add_argument("--port", type=positive, required=True)
    c.add_argument("--bytes", type=nonneg, required=True, help="bytes to send per connection")
    c.add_argument("--conns", type=positive, default=1)
    c.add_argument("--src", help="local address to bind")
    c.add_argument("--cc", help="congestion control (TCP_CONGESTION), e.g. cubic")
    c.add_argument("--retry", type=float, default=10.0,
                   help="seconds to keep retrying refused connects (server not up yet)")
    c.add_argument("--json", action="store_true", help="accepted; JSON is always printed")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    try:
        return run_server(a) if a.mode == "server" else run_client(a)
    except OSError as e:
        # Set-up failures (bind, listen, descriptors): still one JSON object on stdout.
        emit({"mode": a.mode, "ok": False, "error": str(e)})
        log("tcp_peer %s: FAILED: %s" % (a.mode, e))
        return 1


if __name__ == "__main__":
    sys.exit(main())
