"""Test doubles for the load sources: a fake clock, a scripted HTTP getter, and a fake squid whose
cache manager behaves like the real one (live ``client_http.requests`` that counts the manager's
own requests *after* answering, ``sample_time`` only moving at one-minute ticks)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from framework.sources.http import HttpError, HttpResponse


class FakeClock:
    """A monotonic clock the test advances by hand."""

    def __init__(self, start: float = 1000.0) -> None:
        self.t = start

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


COUNTERS_TEMPLATE = """\
sample_time = {sec}.{usec} (Wed, 25 Nov 2026 03:43:17 GMT)
client_http.requests = {requests}
client_http.hits = 0
client_http.errors = 0
server.all.requests = {requests}
"""

INFO_TEMPLATE = """\
Squid Object Cache: Version 5.7
Start Time:\t{start}
Current Time:\tWed, 25 Nov 2026 03:43:24 GMT
Median Service Times (seconds)  5 min    60 min:
\tHTTP Requests (All):   {median:.5f}  0.00091
\tCache Misses:          0.00000  0.00000
File descriptor usage for squid:
\tMaximum number of file descriptors:   {fds_max}
\tLargest file desc currently in use:     24
\tNumber of file desc currently in use:   {fds}
\tFiles queued for open:                   0
\tAvailable number of file descriptors: {available}
\tReserved number of file descriptors:   {reserved}
"""


@dataclass
class FakeSquid:
    """One squid's cache manager: ``serve(n)`` adds client requests; ``tick()`` is the one-minute
    statistics tick that moves ``sample_time``; ``restart()`` starts a new process."""

    requests: int = 0
    sample_time: float = 1_795_578_197.783290
    start: str = "Wed, 25 Nov 2026 03:43:17 GMT"
    fds: int = 9
    fds_max: int = 8192
    fds_reserved: int = 100
    median_s: float = 0.0009
    manager_requests: int = 0

    def serve(self, n: int) -> None:
        self.requests += n

    def tick(self, seconds: float = 60.0) -> None:
        self.sample_time += seconds

    def restart(self, start: str, sample_time: float) -> None:
        self.requests = 0
        self.start = start
        self.sample_time = sample_time

    def answer(self, path: str) -> HttpResponse:
        if path.endswith("/counters"):
            sec, usec = divmod(round(self.sample_time * 1e6), 1_000_000)
            body = COUNTERS_TEMPLATE.format(sec=sec, usec=usec, requests=self.requests)
        elif path.endswith("/info"):
            body = INFO_TEMPLATE.format(
                start=self.start,
                median=self.median_s,
                fds_max=self.fds_max,
                fds=self.fds,
                available=self.fds_max - self.fds,
                reserved=self.fds_reserved,
            )
        else:
            return HttpResponse(404, b"not found")
        # squid counts the manager request once it is logged, after the reply went out.
        self.requests += 1
        self.manager_requests += 1
        return HttpResponse(200, body.encode())


Handler = Callable[[str, float, Mapping[str, str] | None], HttpResponse]


@dataclass
class FakeHttp:
    """An :class:`HttpGet` that routes by ``host:port`` to fake squids or to handlers; anything
    unrouted is refused like a closed port. Records every call."""

    squids: dict[str, FakeSquid] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    calls: list[tuple[str, float, dict[str, str] | None]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def __call__(
        self, url: str, *, timeout_s: float, params: Mapping[str, str] | None = None
    ) -> HttpResponse:
        with self.lock:
            self.calls.append((url, timeout_s, dict(params) if params else None))
        rest = url.split("://", 1)[1]
        hostport, _, path = rest.partition("/")
        handler = self.handlers.get(hostport)
        if handler is not None:
            return handler("/" + path, timeout_s, params)
        squid = self.squids.get(hostport)
        if squid is None:
            raise HttpError("connection failed: Connection refused")
        with self.lock:
            return squid.answer("/" + path)


def static(status: int, body: bytes | str) -> Handler:
    """A handler answering the same thing to every request."""
    data = body.encode() if isinstance(body, str) else body

    def handler(path: str, timeout_s: float, params: Mapping[str, str] | None) -> HttpResponse:
        return HttpResponse(status, data)

    return handler


def failing(message: str) -> Handler:
    """A handler that raises :class:`HttpError` (refused, timed out...)."""

    def handler(path: str, timeout_s: float, params: Mapping[str, str] | None) -> HttpResponse:
        raise HttpError(message)

    return handler
