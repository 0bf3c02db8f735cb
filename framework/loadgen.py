"""A load generator and an origin server for squids (the autoscaling tests, ``steward demo``), run as
separate processes.

Standard library only, loopback only, bounded in time and in requests. Two commands::

    python -m framework.loadgen origin [--slow-seconds S]
        # an HTTP origin on 127.0.0.1 (port printed as the first stdout line, "port N"):
        # /fast/<n> answers at once, /slow/<n> after S seconds; never cacheable (every request
        # goes through squid to the origin, so squid does real work per request)

    python -m framework.loadgen load --endpoints-url URL --origin URL --plan RATE:SECONDS[,RATE:SECONDS...]
        # drives RATE requests/s (open loop) through the squids published at URL (Steward's
        # GET /v1/services/<name>/endpoints), phase after phase; stops early on "stop" or EOF on
        # stdin; writes one JSON line per event to stdout

Why a separate process: the load must not share the test's interpreter (Steward's dispatcher and
pollers run there) or its GIL, or the measured reaction would include the load generator's own
stalls, and a real client never shares Steward's process.

**The client's rules** (what a well-behaved squid client does, e.g. CVMFS with a proxy list):

* The published endpoints are re-read every ``--refresh`` seconds (1 s); requests are spread over
  the current list round-robin.
* Every request uses a **new connection** (``Connection: close``). A keep-alive connection to a
  squid that starts draining can be closed by squid between two requests, and the next request
  written on it fails *after it was sent*; new connections make "refused" the only way a draining
  squid says no.
* A request whose **connection was refused** (squid stopped listening: it is draining, or gone) was
  never sent: the client may retry it on another endpoint, at most once per published endpoint
  (refreshing the list first). This is the only retry.
* A request that was **sent** must get its full answer; anything else (reset, timeout, a non-200,
  a short body) is a failure. So is a request that no endpoint accepted.

Output lines (``"ev"``): ``phase`` (``t``, ``rate``, ``seconds``), ``endpoints`` (``t``, ``list``:
whenever the list changes), ``req`` (``t0`` start, ``t1`` end, ``ep`` the endpoint that answered or
failed, ``ok``, ``slow``, ``refused``: endpoints that refused first, ``err``), ``done`` (counts).
Times are ``time.time()`` seconds, comparable with the test process's clock.
"""

from __future__ import annotations

import argparse
import http.client
import http.server
import itertools
import json
import random
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

BODY_FAST = b"steward autoscale test origin: fast\n"
BODY_SLOW = b"steward autoscale test origin: slow\n"


# --- origin ---------------------------------------------------------------------------------------


def run_origin(slow_seconds: float) -> int:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            slow = self.path.startswith("/slow/")
            if slow:
                time.sleep(slow_seconds)
            body = BODY_SLOW if slow else BODY_FAST
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    class Server(http.server.ThreadingHTTPServer):
        daemon_threads = True
        request_queue_size = 256  # squids open bursts of connections; the default 5 drops SYNs

    server = Server(("127.0.0.1", 0), Handler)
    print(f"port {server.server_address[1]}", flush=True)
    def stop_on_eof() -> None:
        sys.stdin.read()
        server.shutdown()

    stopper = threading.Thread(target=stop_on_eof, daemon=True)
    stopper.start()  # EOF on stdin (the parent went away or closed it) stops the origin
    server.serve_forever(poll_interval=0.2)
    server.server_close()
    return 0


# --- load ------------------------------------------------------------------------------------------


class Output:
    """JSON lines on stdout, one writer at a time."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def emit(self, **fields: Any) -> None:
        line = json.dumps(fields, separators=(",", ":"))
        with self._lock:
            sys.stdout.write(line + "\n")


class Endpoints:
    """The published endpoints, re-read from Steward's API every ``refresh`` seconds."""

    def __init__(self, url: str, refresh: float, resolve_to: str, out: Output) -> None:
        self.url = url
        self.refresh = refresh
        self.resolve_to = resolve_to
        self.out = out
        self._lock = threading.Lock()
        self._list: tuple[str, ...] = ()
        self._counter = itertools.count()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="endpoints", daemon=True)

    def start(self) -> None:
        self.read()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def read(self) -> None:
        try:
            with urllib.request.urlopen(self.url, timeout=5) as response:  # noqa: S310 - an http(s) URL we were given
                listed = tuple(json.load(response)["endpoints"])
        except Exception as exc:  # keep the last list: Steward's API is briefly busy, not empty
            self.out.emit(ev="endpoints_error", t=time.time(), err=f"{type(exc).__name__}: {exc}")
            return
        with self._lock:
            changed = listed != self._list
            self._list = listed
        if changed:
            self.out.emit(ev="endpoints", t=time.time(), list=list(listed))

    def _run(self) -> None:
        while not self._stop.wait(self.refresh):
            self.read()

    def current(self) -> tuple[str, ...]:
        with self._lock:
            return self._list

    def pick(self, avoid: set[str]) -> str | None:
        """The next endpoint round-robin, skipping those that already refused this request."""
        listed = [e for e in self.current() if e not in avoid]
        if not listed:
            return None
        return listed[next(self._counter) % len(listed)]

    def address(self, endpoint: str) -> tuple[str, int]:
        """Where to connect: the embedded cluster's agents are this machine, so an agent's
        hostname (``agent-1``) is reached at ``resolve_to``; the port is the squid's."""
        host, port = endpoint.rsplit(":", 1)
        return (self.resolve_to or host, int(port))


def one_request(
    endpoints: Endpoints, origin: str, n: int, slow: bool, *, timeout: float, out: Output
) -> bool:
    path = f"/{'slow' if slow else 'fast'}/{n}"
    expected = BODY_SLOW if slow else BODY_FAST
    t0 = time.time()
    refused: list[str] = []
    while True:
        endpoint = endpoints.pick(set(refused))
        if endpoint is None and refused:
            endpoints.read()  # the list may have moved on since this request began
            endpoint = endpoints.pick(set(refused))
        if endpoint is None:
            out.emit(
                ev="req",
                t0=t0,
                t1=time.time(),
                ep=None,
                ok=False,
                slow=slow,
                refused=refused,
                err="no endpoint accepted the connection",
            )
            return False
        connection = http.client.HTTPConnection(*endpoints.address(endpoint), timeout=timeout)
        try:
            connection.connect()
        except ConnectionRefusedError:
            connection.close()
            refused.append(endpoint)  # never sent: the one retry the rules allow
            continue
        except OSError as exc:
            connection.close()
            out.emit(
                ev="req",
                t0=t0,
                t1=time.time(),
                ep=endpoint,
                ok=False,
                slow=slow,
                refused=refused,
                err=f"connect: {type(exc).__name__}: {exc}",
            )
            return False
        try:
            connection.request("GET", f"{origin}{path}", headers={"Connection": "close"})
            response = connection.getresponse()
            body = response.read()
            ok = response.status == 200 and body == expected
            err = None if ok else f"HTTP {response.status}: {body[:200]!r}"
        except OSError as exc:
            ok, err = False, f"sent: {type(exc).__name__}: {exc}"
        except http.client.HTTPException as exc:
            ok, err = False, f"sent: {type(exc).__name__}: {exc}"
        finally:
            connection.close()
        out.emit(ev="req", t0=t0, t1=time.time(), ep=endpoint, ok=ok, slow=slow, refused=refused, err=err)
        return ok


def parse_plan(text: str) -> list[tuple[float, float]]:
    plan = []
    for item in text.split(","):
        rate, seconds = item.split(":")
        plan.append((float(rate), float(seconds)))
    return plan


def run_load(args: argparse.Namespace) -> int:
    out = Output()
    endpoints = Endpoints(args.endpoints_url, args.refresh, args.resolve_to, out)
    endpoints.start()
    stop = threading.Event()

    def watch_stdin() -> None:
        for line in sys.stdin:
            if line.strip() == "stop":
                break
        stop.set()

    threading.Thread(target=watch_stdin, name="stdin", daemon=True).start()
    rng = random.Random(args.seed)  # noqa: S311 - which requests are slow, not a secret
    sent = 0
    failed = 0
    lock = threading.Lock()

    def run(n: int, slow: bool) -> None:
        nonlocal failed
        if not one_request(endpoints, args.origin, n, slow, timeout=args.timeout, out=out):
            with lock:
                failed += 1

    deadline = time.monotonic() + args.max_seconds
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        for rate, seconds in parse_plan(args.plan):
            if stop.is_set():
                break
            out.emit(ev="phase", t=time.time(), rate=rate, seconds=seconds)
            start = time.monotonic()
            end = min(start + seconds, deadline)
            due = start
            while not stop.is_set() and sent < args.max_requests:
                now = time.monotonic()
                if now >= end:
                    break
                if due > now:
                    stop.wait(due - now)
                    continue
                pool.submit(run, sent, rng.random() < args.slow_fraction)
                sent += 1
                due += 1.0 / rate
                if now - due > 1.0:  # fell behind by a second: an open loop, but not a flood
                    due = now
    endpoints.stop()
    out.emit(ev="done", t=time.time(), sent=sent, failed=failed)
    sys.stdout.flush()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    origin = commands.add_parser("origin")
    origin.add_argument("--slow-seconds", type=float, default=1.0)
    load = commands.add_parser("load")
    load.add_argument("--endpoints-url", required=True)
    load.add_argument("--origin", required=True, help="http://127.0.0.1:PORT")
    load.add_argument("--plan", required=True, help="RATE:SECONDS[,RATE:SECONDS...]")
    load.add_argument("--slow-fraction", type=float, default=0.2)
    load.add_argument("--refresh", type=float, default=1.0)
    load.add_argument("--resolve-to", default="127.0.0.1")
    load.add_argument("--timeout", type=float, default=30.0)
    load.add_argument("--workers", type=int, default=96)
    load.add_argument("--max-requests", type=int, default=100_000)
    load.add_argument("--max-seconds", type=float, default=600.0)
    load.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    if args.command == "origin":
        return run_origin(args.slow_seconds)
    if not args.origin.startswith("http://127.0.0.1:"):
        parser.error("--origin must be on 127.0.0.1 (loopback only)")
    socket.setdefaulttimeout(args.timeout)
    return run_load(args)


if __name__ == "__main__":
    raise SystemExit(main())
