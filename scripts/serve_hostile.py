#!/usr/bin/env python3
"""The hostile-client probes of issue 32 against `kompress serve`, standard library only.

Each probe starts its own server (so that its peak resident memory, VmHWM, is its own), runs, and
prints one line of JSON: status codes, times, the server's VmHWM/VmRSS before and after.

    python3 scripts/serve_hostile.py --kompress target/release/kompress --model tests/fixtures/models/v5
    python3 scripts/serve_hostile.py ... --probes items,idle --items 100000
    python3 scripts/serve_hostile.py ... --soak 600      # mixed hostile and normal clients, RSS sampled

Linux only (reads /proc/<pid>/status). Not run in CI: the full-size probes take minutes.
"""

import argparse
import json
import os
import resource
import signal
import socket
import subprocess
import sys
import threading
import time

ARGS = None
ORIGINAL_NOFILE = resource.getrlimit(resource.RLIMIT_NOFILE)


def status(pid):
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            k, _, v = line.partition(":")
            fields[k] = v.strip()
    return {
        "hwm_mb": int(fields["VmHWM"].split()[0]) // 1024,
        "rss_mb": int(fields["VmRSS"].split()[0]) // 1024,
        # RSS is the heap and the stacks (anonymous) plus the binary's code and data paged in from its
        # file: code first run under load (error paths, timeouts) stays paged in, clean and shared.
        "anon_mb": int(fields["RssAnon"].split()[0]) // 1024,
        "file_mb": int(fields["RssFile"].split()[0]) // 1024,
        "threads": int(fields["Threads"]),
    }


class Server:
    def __init__(self, *extra, token=None):
        env = dict(os.environ, KOMPRESS_DTYPE="f32", KOMPRESS_LOG="info")
        if token:
            env["KOMPRESS_TOKEN"] = token
        cmd = [ARGS.kompress, "serve", "--port", "0", "--device", "cpu", "-m", ARGS.model, *extra]
        # The server starts with the open-file limits this script was given (it raised its own).
        soft = min(ARGS.server_nofile, ORIGINAL_NOFILE[1]) if ARGS.server_nofile else ORIGINAL_NOFILE[0]
        limits = lambda: resource.setrlimit(resource.RLIMIT_NOFILE, (soft, ORIGINAL_NOFILE[1]))
        self.proc = subprocess.Popen(cmd, env=env, stderr=subprocess.PIPE, text=True, preexec_fn=limits)
        self.port = None
        for line in self.proc.stderr:
            if "http://" in line and self.port is None:
                self.port = int(line.split("http://")[1].split()[0].rsplit(":", 1)[1])
            if " ready" in line:
                break
        # Keep reading its log so it never blocks on a full pipe.
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.pid = self.proc.pid

    def mem(self):
        return status(self.pid)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout=40)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self):
        return self

    def __exit__(self, *_):
        self.stop()


def request(port, method, path, body=b"", headers=(), timeout=120):
    """One request on its own connection: (status, headers, body length, seconds, error)."""
    started = time.monotonic()
    try:
        s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    except OSError as e:
        return None, {}, 0, time.monotonic() - started, f"connect: {e}"
    try:
        head = f"{method} {path} HTTP/1.1\r\nHost: x\r\nContent-Length: {len(body)}\r\n"
        for k, v in headers:
            head += f"{k}: {v}\r\n"
        error = None
        try:
            s.sendall(head.encode() + b"\r\n" + body)
        except OSError as e:
            error = f"write: {e}"
        raw = b""
        try:
            while True:
                b = s.recv(1 << 20)
                if not b:
                    break
                raw += b
                if b"\r\n\r\n" in raw:
                    h, _, rest = raw.partition(b"\r\n\r\n")
                    length = [int(l.split(b":")[1]) for l in h.split(b"\r\n") if l.lower().startswith(b"content-length")]
                    if length and len(rest) >= length[0]:
                        break
        except OSError as e:
            error = (error or "") + f" read: {e}"
        if b"\r\n\r\n" not in raw:
            return None, {}, 0, time.monotonic() - started, error or "no answer"
        h, _, rest = raw.partition(b"\r\n\r\n")
        lines = h.decode().split("\r\n")
        hdrs = {l.split(":", 1)[0].lower(): l.split(":", 1)[1].strip() for l in lines[1:] if ":" in l}
        return int(lines[0].split()[1]), hdrs, len(rest), time.monotonic() - started, error
    finally:
        s.close()


def post_json(port, path, value, headers=(), timeout=120):
    body = json.dumps(value).encode()
    return request(port, "POST", path, body, [("Content-Type", "application/json"), *headers], timeout)


def report(name, **fields):
    print(json.dumps({"probe": name, **fields}), flush=True)


def probe_items():
    n = ARGS.items
    bodies = {
        "compress": ("/v1/compress", {"text": [""] * n}),
        "blocks": ("/v1/compress/blocks", {"context_blocks": ["a"] * n, "query": "q"}),
        "kserve": ("/v1/models/kompress:predict", {"instances": [""] * n}),
        "oip": (
            "/v2/models/kompress/infer",
            {"inputs": [{"name": "text", "shape": [n], "datatype": "BYTES", "data": [""] * n}]},
        ),
    }
    for name, (path, body) in bodies.items():
        with Server(*ARGS.extra) as srv:
            before = srv.mem()
            st, _, size, secs, err = post_json(srv.port, path, body)
            t = time.monotonic()
            health = request(srv.port, "GET", "/healthz")[3]
            report(f"items-{name}", items=n, status=st, seconds=round(secs, 2), answer_bytes=size,
                   healthz_s=round(health, 3), before=before, after=srv.mem(), error=err)
    # The same with a 2 s deadline: the work must stop and its memory come back.
    # A server that admits them all (a binary from before `--max-items` has no limit).
    more = ["--max-items", str(n), "--queue-chunks", str(n)] if has_flag("--max-items") else []
    with Server(*ARGS.extra, *more) as srv:
        before = srv.mem()
        st, _, _, secs, _ = post_json(srv.port, "/v1/compress", {"text": [""] * n}, [("X-Kompress-Deadline-Ms", "2000")])
        samples = []
        for _ in range(10):
            time.sleep(0.5)
            samples.append(srv.mem()["rss_mb"])
        report("items-deadline", items=n, max_items=n, status=st, seconds=round(secs, 2), before=before,
               after=srv.mem(), rss_mb_every_500ms=samples)


def has_flag(flag):
    out = subprocess.run([ARGS.kompress, "serve", "--help"], capture_output=True, text=True).stdout
    return flag in out


def open_idle(port, count):
    socks = []
    for _ in range(count):
        try:
            socks.append(socket.create_connection(("127.0.0.1", port), timeout=5))
        except OSError:
            break
    return socks


def probe_idle():
    with Server(*ARGS.extra) as srv:
        socks = open_idle(srv.port, ARGS.idle)
        time.sleep(0.5)
        small = {"content": "the quick brown fox jumps over the lazy dog " * 5}
        times = []
        statuses = []
        for _ in range(5):
            st, _, _, secs, _ = post_json(srv.port, "/compress", small, timeout=10)
            statuses.append(st)
            times.append(round(secs * 1000, 1))
        hz = request(srv.port, "GET", "/healthz", timeout=10)
        # How many of the idle sockets the server closed (header timeout or eviction).
        alive = 0
        for s in socks:
            s.setblocking(False)
            try:
                alive += s.recv(1) != b""
            except BlockingIOError:
                alive += 1
            except OSError:
                pass
        report("idle-connections", opened=len(socks), statuses=statuses, compress_ms=times,
               healthz_ms=round(hz[3] * 1000, 1), still_open=alive, mem=srv.mem())
        for s in socks:
            s.close()


def probe_headers():
    with Server(*ARGS.extra) as srv:
        before = srv.mem()
        socks = []
        part = b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * (ARGS.head_bytes - 40)
        for _ in range(ARGS.heads):
            try:
                s = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
                s.sendall(part)
                socks.append(s)
            except OSError:
                break
        time.sleep(1)
        during = srv.mem()
        started = time.monotonic()
        closed = 0
        deadline = started + 30
        for s in socks:
            s.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                s.recv(1 << 16)
                closed += 1
            except socket.timeout:
                pass
            except OSError:
                closed += 1
        waited = time.monotonic() - started
        hz = request(srv.port, "GET", "/healthz", timeout=10)
        after = srv.mem()
        for s in socks:
            s.close()
        # An idle server hands freed memory back within its release period (5 s).
        time.sleep(7)
        report("partial-headers", connections=len(socks), head_bytes=len(part), before=before, during=during,
               closed=closed, closed_within_s=round(waited, 1), after=after, after_7s_idle=srv.mem(), healthz=hz[0])


def probe_slow_bodies():
    with Server(*ARGS.extra) as srv:
        stop = threading.Event()
        socks = []
        for _ in range(4):
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"POST /compress HTTP/1.1\r\nHost: x\r\nContent-Length: 16777216\r\n\r\n")
            socks.append(s)

        def trickle():
            while not stop.is_set():
                for s in socks:
                    try:
                        s.sendall(b"a" * 64)
                    except OSError:
                        pass
                stop.wait(2)

        threading.Thread(target=trickle, daemon=True).start()
        time.sleep(1)
        small = {"content": "the quick brown fox jumps over the lazy dog " * 5}
        statuses = [post_json(srv.port, "/compress", small, timeout=10)[0] for _ in range(5)]
        stop.set()
        report("slow-bodies", statuses=statuses, mem=srv.mem())
        for s in socks:
            s.close()


def probe_readyz():
    with Server(*ARGS.extra, token="t0k") as srv:
        st, _, _, _, _ = request(srv.port, "GET", "/readyz")
        s = socket.create_connection(("127.0.0.1", srv.port))
        s.sendall(b"GET /readyz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        body = b""
        while (b := s.recv(4096)):
            body += b
        shown = body.partition(b"\r\n\r\n")[2].decode()
        report("readyz", status=st, body=shown, path_shown=os.path.abspath(ARGS.model) in shown or ARGS.model in shown)


def probe_early():
    with Server(*ARGS.extra, token="t0k") as srv:
        body = json.dumps({"content": "x " * 200_000}).encode()
        st, h, _, _, err = request(srv.port, "POST", "/compress", body)
        report("early-401", status=st, connection=h.get("connection"), body_bytes=len(body), client_error=err)
        big = b"a" * (17 << 20)
        st, h, _, _, err = request(srv.port, "POST", "/compress", big, [("Authorization", "Bearer t0k")])
        report("early-413", status=st, connection=h.get("connection"), body_bytes=len(big), client_error=err)
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=10)
        s.sendall(b"POST /compress HTTP/1.1\r\nHost: x\r\nX-API-Key: t0k\r\nX-Kompress-Deadline-Ms: 300\r\n"
                  b"Content-Length: 1000\r\n\r\n{\"content\": ")
        raw = s.recv(65536)
        head = raw.partition(b"\r\n\r\n")[0].decode()
        report("early-408", status=int(head.split()[1]) if head else None,
               connection="close" if "connection: close" in head.lower() else None)
        s.close()


def probe_sigterm():
    with Server(*ARGS.extra, "--grace-ms", "3000") as srv:
        s = socket.create_connection(("127.0.0.1", srv.port), timeout=30)
        s.sendall(b"POST /compress HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{\"content\": \"")
        time.sleep(0.3)
        started = time.monotonic()
        srv.proc.send_signal(signal.SIGTERM)
        raw = b""
        try:
            while (b := s.recv(65536)):
                raw += b
        except OSError:
            pass
        answered = time.monotonic() - started
        srv.proc.wait(timeout=40)
        exited = time.monotonic() - started
        head = raw.partition(b"\r\n\r\n")[0].decode()
        report("sigterm-slow-body", grace_s=3, status=int(head.split()[1]) if head else None,
               answered_s=round(answered, 2), exited_s=round(exited, 2), exit_code=srv.proc.returncode)


def probe_soak():
    """Mixed hostile and normal clients for ARGS.soak seconds (ARGS.soak_rounds times, 22 s idle after
    each); RSS and threads sampled each second."""
    with Server(*ARGS.extra) as srv:
        # The start: after one request of each kind and an idle pause (the token counter's vocabulary
        # loads in the background at start; first uses allocate once).
        post_json(srv.port, "/compress", {"content": "the quick brown fox must not jump over /etc/hosts " * 20})
        post_json(srv.port, "/v1/compress", {"text": [""] * 100})
        post_json(srv.port, "/v1/compress/blocks", {"context_blocks": ["a"] * 100, "query": "q"})
        time.sleep(7)
        start = srv.mem()
        stop = threading.Event()
        counts = {}
        lock = threading.Lock()

        def count(key):
            with lock:
                counts[key] = counts.get(key, 0) + 1

        def normal():
            body = {"content": "the quick brown fox must not jump over /etc/hosts today " * 20}
            while not stop.is_set():
                count(f"normal-{post_json(srv.port, '/compress', body)[0]}")

        def items():
            while not stop.is_set():
                count(f"items-{post_json(srv.port, '/v1/compress', {'text': [''] * 20000})[0]}")
                count(f"blocks-{post_json(srv.port, '/v1/compress/blocks', {'context_blocks': ['a'] * 5000, 'query': 'q'})[0]}")

        def deadline():
            while not stop.is_set():
                count(f"deadline-{post_json(srv.port, '/v1/compress', {'text': [''] * 9000}, [('X-Kompress-Deadline-Ms', '50')])[0]}")

        def idle():
            while not stop.is_set():
                socks = open_idle(srv.port, 300)
                stop.wait(3)
                for s in socks:
                    s.close()
                count("idle-300")

        def slow():
            while not stop.is_set():
                try:
                    s = socket.create_connection(("127.0.0.1", srv.port))
                except OSError:
                    count("slow-connect-failed")
                    stop.wait(1)
                    continue
                try:
                    s.sendall(b"POST /compress HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000\r\n\r\n")
                    for _ in range(5):
                        s.sendall(b"a" * 64)
                        stop.wait(1)
                except OSError:
                    pass
                s.close()
                count("slow")

        def heads():
            while not stop.is_set():
                socks = []
                for _ in range(100):
                    try:
                        c = socket.create_connection(("127.0.0.1", srv.port))
                        c.sendall(b"GET /healthz HTTP/1.1\r\nX-Pad: " + b"a" * 50000)
                        socks.append(c)
                    except OSError:
                        break
                stop.wait(2)
                for c in socks:
                    c.close()
                count("heads-100")

        named = {"normal": normal, "items": items, "deadline": deadline, "idle": idle, "slow": slow, "heads": heads}
        workers = [named[w] for w in ARGS.soak_workers.split(",")]
        samples, rounds = [], []
        for _ in range(ARGS.soak_rounds):
            stop.clear()
            threads = [threading.Thread(target=w, daemon=True) for w in workers]
            for t in threads:
                t.start()
            end = time.monotonic() + ARGS.soak
            while time.monotonic() < end:
                time.sleep(1)
                samples.append(srv.mem())
            stop.set()
            for t in threads:
                t.join(timeout=60)
            # An idle server hands freed memory back every 5 s (`RELEASE_EVERY`).
            time.sleep(7)
            after_7s = srv.mem()
            time.sleep(15)
            after = srv.mem()
            rounds.append(after)
        metrics = request(srv.port, "GET", "/metrics", timeout=10)
        if ARGS.verbose:
            s = socket.create_connection(("127.0.0.1", srv.port))
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            raw = b""
            while (b := s.recv(65536)):
                raw += b
            print("\n".join(l for l in raw.decode().splitlines() if l.startswith(("kompress_connections", "kompress_queue_chunks", "kompress_body"))))
        report("soak", after_7s=after_7s, seconds=ARGS.soak, start=start, peak_rss_mb=max(s["rss_mb"] for s in samples),
               hwm_mb=after["hwm_mb"], max_threads=max(s["threads"] for s in samples), after_22s=after,
               rss_after_over_start=round(after["rss_mb"] / max(1, start["rss_mb"]), 2),
               anon_after_over_start=round(after["anon_mb"] / max(1, start["anon_mb"]), 2), counts=counts,
               # With several rounds: what each round left, and the last against the first (what a
               # server keeps once every kind of client has been served once, against what it keeps
               # after more of the same).
               rounds=[{"rss_mb": r["rss_mb"], "anon_mb": r["anon_mb"], "threads": r["threads"]} for r in rounds],
               last_over_first_round=round(rounds[-1]["rss_mb"] / max(1, rounds[0]["rss_mb"]), 2))


PROBES = {
    "items": probe_items,
    "idle": probe_idle,
    "headers": probe_headers,
    "slow": probe_slow_bodies,
    "readyz": probe_readyz,
    "early": probe_early,
    "sigterm": probe_sigterm,
}


def main():
    global ARGS
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--kompress", default="target/release/kompress")
    p.add_argument("--model", default="tests/fixtures/models/v5")
    p.add_argument("--probes", default=",".join(PROBES))
    p.add_argument("--items", type=int, default=1_000_000, help="items in the item probes")
    p.add_argument("--idle", type=int, default=1100, help="idle connections")
    p.add_argument("--heads", type=int, default=3000, help="connections with partial heads")
    p.add_argument("--head-bytes", type=int, default=60_000, help="bytes of each partial head")
    p.add_argument("--server-nofile", type=int, default=1024,
                   help="the server's soft open-file limit at start, as on most Linux systems (0: this shell's)")
    p.add_argument("--soak", type=int, default=0, help="seconds of mixed load instead of the probes")
    p.add_argument("--soak-rounds", type=int, default=1,
                   help="soak rounds of --soak seconds, each followed by 22 s idle and a reading")
    p.add_argument("--soak-workers", default="normal,normal,items,deadline,idle,slow,slow,heads",
                   help="the soak's clients, one thread each")
    p.add_argument("--verbose", action="store_true")
    p.add_argument("extra", nargs="*", help="more `kompress serve` flags, after --")
    ARGS = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if ARGS.soak:
        probe_soak()
        return
    for name in ARGS.probes.split(","):
        PROBES[name]()


if __name__ == "__main__":
    sys.exit(main())
