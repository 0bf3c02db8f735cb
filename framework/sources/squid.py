"""The squid source: each instance's request rate from its cache manager, summed over the instances.

Every sample reads ``/squid-internal-mgr/counters`` (and ``info`` when a saturation signal is on) of
every published endpoint, in parallel on a small bounded thread pool, and keeps each endpoint's
previous reading. An instance's rate is the growth of ``client_http.requests`` between two readings
over the time between them; the sample is the sum over the instances that gave a rate.

**Why the time base is our clock, not squid's ``sample_time``.** In squid (checked on Debian's 5.7,
and in ``stat.cc``: ``statCountersDump`` prints the live ``statCounter`` but its ``timestamp``, which
only ``statAvgTick`` sets, once a minute) ``client_http.requests`` is live while ``sample_time`` is
the time of the last *one-minute statistics tick*. Read every few seconds, ``sample_time`` stays put
for a minute and then jumps by 60 s, so "delta requests over delta sample_time" is a division by
zero most of the time and a rate 30 times too low at each tick. The elapsed time is therefore taken
from the runtime's monotonic clock when each answer arrives (the error is the round trip, a few
milliseconds against an interval of seconds), and ``sample_time`` serves as an *identity check*:
between readings less than 50 s apart it must not move, or move by one tick (about 60 s); going back,
or moving by anything else, means another squid process answers there now.

Robustness, each rule tested:

* **Counter resets.** ``client_http.requests`` going down, ``sample_time`` going back or off its
  tick, or (with ``info``) a different ``Start Time`` mean a restarted instance: that pair gives no
  rate, the new reading is the base for the next one.
* **Instances come and go.** ``endpoints()`` is asked at every sample. A new endpoint contributes from
  its second reading on; a vanished one is forgotten at once (and would start afresh if it came
  back).
* **Partial failure.** An endpoint that fails (refused, timeout, HTTP error, garbage) is left out and
  loses its previous reading (a rate over a gap would mix in requests of unknown time). The value is
  the sum over the instances that gave a rate and ``instances_reporting`` says how many; the policy
  then counts the silent ones at target when scaling down (HPA's rule). None gave a rate: missing,
  never 0.
* **Our own requests.** Every cache-manager request is itself a client request (squid counts it
  once it is logged, just after the answer, so by the next reading). With ``subtract_own_requests``
  (default) the requests this source made between two readings are subtracted, so an idle squid
  reads 0 req/s, not 0.5.
* **Slow instances.** Each request has ``timeout_s``; the whole sample waits at most the time the
  reads need (``timeout_s`` per request, times the waves of ``max_parallel``) plus a little. A read
  still running then is abandoned and that endpoint is skipped until it returns: a hung squid holds
  one pool thread, never the loop.

**Saturation.** ``client_http.requests`` counts what squid *accepted*: at capacity it measures the
capacity, not the demand. When ``info`` shows file descriptors in use at or above
``saturation_fd_fraction`` of the usable ones, or (when set) the 5-minute median service time of
all HTTP requests at or above ``saturation_median_s``, that instance is saturated and the sample says
``saturated=True`` (the sum is then only a floor of the demand, so one saturated instance is
enough). Otherwise ``saturated`` is None and the policy infers saturation from the per-instance load
against its capacity. The median is a 5-minute figure, slow to react, hence off by default.
"Usable" descriptors are the maximum less squid's reserve: squid stops accepting connections once
only the reserve is left (seen on 5.7: 64 max, 16 reserved, accepting stops at 48 in use), so a
squid past that point does not even answer its cache manager and shows up as a failed read.

Parameters (``params`` of ``source: {type: squid}``):

============================  ==========================  =============================================
``path``                      ``/squid-internal-mgr/counters``  counters page
``info_path``                 ``/squid-internal-mgr/info``      info page (saturation, start time)
``scheme``                    ``http``                    ``http`` or ``https``
``timeout_s``                 ``2``                       per request
``max_parallel``              ``16``                      threads reading instances at once
``saturation_fd_fraction``    ``0.9``                     fds in use / usable that means saturated; 0: off
``saturation_median_s``       ``0`` (off)                 median service time that means saturated
``subtract_own_requests``     ``true``                    see above
============================  ==========================  =============================================

With both saturation signals off, ``info`` is not read at all.
"""

from __future__ import annotations

import concurrent.futures
import logging
import math
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from framework.core.autoscale import Sample
from framework.sources.base import NoValue, Params, Scalar, describe_error, shorten
from framework.sources.http import HttpGet

__all__ = [
    "DEFAULT_COUNTERS_PATH",
    "DEFAULT_INFO_PATH",
    "Counters",
    "Info",
    "SquidParams",
    "SquidSource",
    "parse_counters",
    "parse_info",
]

log = logging.getLogger(__name__)

DEFAULT_COUNTERS_PATH: Final = "/squid-internal-mgr/counters"
DEFAULT_INFO_PATH: Final = "/squid-internal-mgr/info"

_TICK_S: Final = 60.0
"""squid's statistics tick (``COUNT_INTERVAL``), which sets ``sample_time``."""
_TICK_TOLERANCE_S: Final = 10.0
"""How far one tick may stray from 60 s (event-loop delays under load)."""
_TICK_CHECK_MAX_GAP_S: Final = 50.0
"""Readings closer than this can have seen at most one tick."""
_MIN_INTERVAL_S: Final = 0.05
"""Readings closer than this give no rate (the division would mostly measure jitter)."""
_WAIT_SLACK_S: Final = 0.5
_MAX_LISTED: Final = 5
"""How many endpoints a missing reason names before "and N more"."""


@dataclass(frozen=True, slots=True)
class Counters:
    """What the counters page says: the cumulative ``client_http.requests`` and ``sample_time``
    (seconds since the epoch of the last one-minute tick, see the module docstring)."""

    requests: int
    sample_time: float


@dataclass(frozen=True, slots=True)
class Info:
    """The saturation and identity figures of the info page; None where the page lacks them."""

    start_time: str | None = None
    fds_in_use: int | None = None
    fds_max: int | None = None
    fds_reserved: int | None = None
    """Descriptors squid keeps back: it stops accepting connections at ``fds_max - fds_reserved``."""
    median_service_s: float | None = None
    """5-minute median service time of all HTTP requests."""


_SAMPLE_TIME = re.compile(r"^\s*(\d+)(?:\.(\d{1,6}))?(?:\s|$)")
_INFO_PATTERNS: Final = {
    "start_time": re.compile(r"^\s*Start Time:\s*(.+?)\s*$", re.MULTILINE),
    "fds_max": re.compile(r"^\s*Maximum number of file descriptors:\s*(\d+)\s*$", re.MULTILINE),
    "fds_in_use": re.compile(r"^\s*Number of file desc currently in use:\s*(\d+)\s*$", re.MULTILINE),
    "fds_reserved": re.compile(r"^\s*Reserved number of file descriptors:\s*(\d+)\s*$", re.MULTILINE),
    "median_service_s": re.compile(r"^\s*HTTP Requests \(All\):\s*([0-9.]+)", re.MULTILINE),
}


def parse_counters(text: str) -> Counters:
    """Parse a counters page; :class:`NoValue` says what is wrong with it.

    ``sample_time`` is printed ``%d.%d``: the microseconds are *not* zero-padded, so ``5.1234`` means
    5 s and 1,234 µs; it is parsed as seconds plus microseconds, not as a decimal.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep:
            values.setdefault(key.strip(), value.strip())
    raw_requests = values.get("client_http.requests")
    raw_time = values.get("sample_time")
    if raw_requests is None or raw_time is None:
        missing = " and ".join(
            name
            for name, raw in (("client_http.requests", raw_requests), ("sample_time", raw_time))
            if raw is None
        )
        raise NoValue(f"no {missing} in the counters page (not a squid cache manager answer?)")
    if not raw_requests.isdigit():
        raise NoValue(f"client_http.requests is not a count: {shorten(raw_requests, 40)!r}")
    match = _SAMPLE_TIME.match(raw_time)
    if match is None:
        raise NoValue(f"sample_time is not a time: {shorten(raw_time, 60)!r}")
    seconds = int(match.group(1))
    micros = int(match.group(2)) if match.group(2) else 0
    return Counters(int(raw_requests), seconds + micros / 1e6)


def parse_info(text: str) -> Info:
    """Parse the figures Steward uses from an info page; :class:`NoValue` if it has none of them."""
    found: dict[str, str] = {}
    for name, pattern in _INFO_PATTERNS.items():
        match = pattern.search(text)
        if match is not None:
            found[name] = match.group(1)
    if not found:
        raise NoValue("no file-descriptor, service-time or start-time figures in the info page")
    median: float | None = None
    if "median_service_s" in found:
        try:
            median = float(found["median_service_s"])
        except ValueError:
            median = None
        if median is not None and not math.isfinite(median):
            median = None
    return Info(
        start_time=found.get("start_time"),
        fds_in_use=int(found["fds_in_use"]) if "fds_in_use" in found else None,
        fds_max=int(found["fds_max"]) if "fds_max" in found else None,
        fds_reserved=int(found["fds_reserved"]) if "fds_reserved" in found else None,
        median_service_s=median,
    )


@dataclass(frozen=True, slots=True)
class SquidParams:
    """The squid source's parameters, checked (see the module docstring for their meaning)."""

    path: str = DEFAULT_COUNTERS_PATH
    info_path: str = DEFAULT_INFO_PATH
    scheme: str = "http"
    timeout_s: float = 2.0
    max_parallel: int = 16
    saturation_fd_fraction: float = 0.9
    saturation_median_s: float = 0.0
    subtract_own_requests: bool = True

    @classmethod
    def from_params(cls, params: Mapping[str, Scalar]) -> SquidParams:
        """Check ``params``; :class:`SourceConfigError` names every bad or unknown key."""
        p = Params("squid source", params)
        path = p.text("path", DEFAULT_COUNTERS_PATH) or DEFAULT_COUNTERS_PATH
        info_path = p.text("info_path", DEFAULT_INFO_PATH) or DEFAULT_INFO_PATH
        for key, value in (("path", path), ("info_path", info_path)):
            if not value.startswith("/") or any(c.isspace() for c in value):
                p.problem(f"{key} must be an absolute path without spaces, got {value!r}")
        scheme = p.choice("scheme", "http", ("http", "https"))
        timeout_s = p.number("timeout_s", 2.0, exclusive_minimum=0, maximum=60)
        max_parallel = p.integer("max_parallel", 16, minimum=1, maximum=256)
        fd_fraction = p.number("saturation_fd_fraction", 0.9, minimum=0, maximum=1)
        median_s = p.number("saturation_median_s", 0.0, minimum=0)
        subtract = p.flag("subtract_own_requests", True)
        p.finish()
        return cls(path, info_path, scheme, timeout_s, max_parallel, fd_fraction, median_s, subtract)

    @property
    def reads_info(self) -> bool:
        """Whether any saturation signal needs the info page."""
        return self.saturation_fd_fraction > 0 or self.saturation_median_s > 0


@dataclass(frozen=True, slots=True)
class _Reading:
    """One endpoint's answer: counters, when they arrived (our clock), how many of our own requests
    squid will have counted by the next reading, and the info figures if read."""

    counters: Counters
    at: float
    own_after: int
    info: Info | None
    saturation: str | None
    """Why this instance is saturated, None if it is not (or nobody knows)."""


class SquidSource:
    """Load source over squid cache managers (see the module docstring)."""

    def __init__(
        self,
        *,
        service: str,
        params: SquidParams,
        endpoints: Callable[[], Sequence[str]],
        http: HttpGet,
        clock: Callable[[], float] = time.monotonic,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        self.name = f"squid({service})"
        self.params = params
        self._endpoints = endpoints
        self._http = http
        self._clock = clock
        self._on_close = on_close
        self._previous: dict[str, _Reading] = {}
        self._inflight: dict[str, concurrent.futures.Future[_Reading]] = {}
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._lock = threading.Lock()
        self._closed = False
        self._per_instance: dict[str, float] = {}

    def __repr__(self) -> str:
        return f"SquidSource({self.name!r}, {self.params!r})"

    @property
    def per_instance(self) -> Mapping[str, float]:
        """Each endpoint's rate in the latest sample (only those that gave one): the least loaded
        instance is the cheapest to drain."""
        return dict(self._per_instance)

    def sample(self, now: float) -> Sample:
        """Read every instance, sum the rates; never raises."""
        try:
            with self._lock:
                return self._sample(now)
        except Exception as exc:  # the contract: nothing escapes into the loop
            log.warning("%s: sample failed unexpectedly", self.name, exc_info=True)
            return Sample.missing(f"squid source failed: {describe_error(exc)}", now)

    def close(self) -> None:
        """Stop the reader threads (a read in progress ends within its timeout) and the HTTP pool."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
        if self._on_close is not None:
            self._on_close()

    # -- internals ------------------------------------------------------------------------------

    def _sample(self, now: float) -> Sample:
        if self._closed:
            return Sample.missing("source is closed", now)
        try:
            listed = [str(e).strip() for e in self._endpoints()]
        except Exception as exc:
            return Sample.missing(f"could not list the squid endpoints: {describe_error(exc)}", now)
        endpoints = [e for e in dict.fromkeys(listed) if e]
        current = set(endpoints)
        for gone in [e for e in self._previous if e not in current]:
            del self._previous[gone]
        for gone in [e for e, f in self._inflight.items() if e not in current and f.done()]:
            del self._inflight[gone]
        self._per_instance = {}
        if not endpoints:
            return Sample.missing("no squid endpoints published", now)

        problems: dict[str, str] = {}
        futures: dict[str, concurrent.futures.Future[_Reading]] = {}
        executor = self._pool()
        for endpoint in endpoints:
            running = self._inflight.get(endpoint)
            if running is not None:
                if not running.done():
                    problems[endpoint] = "an earlier read is still running"
                    continue
                del self._inflight[endpoint]
            futures[endpoint] = executor.submit(self._read, endpoint)
        if futures:
            concurrent.futures.wait(futures.values(), timeout=self._budget(len(futures)))

        rates: dict[str, float] = {}
        saturated: list[str] = []
        for endpoint, future in futures.items():
            if not future.done():
                self._inflight[endpoint] = future
                self._previous.pop(endpoint, None)
                problems[endpoint] = f"no answer within {self._budget(len(futures)):g} s"
                continue
            try:
                reading = future.result()
            except Exception as exc:
                self._previous.pop(endpoint, None)
                problems[endpoint] = describe_error(exc)
                continue
            if reading.saturation is not None:
                saturated.append(f"{endpoint}: {reading.saturation}")
            previous = self._previous.get(endpoint)
            self._previous[endpoint] = reading
            if previous is None:
                problems[endpoint] = "first reading (a rate needs two)"
                continue
            rate = self._rate(previous, reading)
            if isinstance(rate, str):
                problems[endpoint] = rate
            else:
                rates[endpoint] = rate

        if problems:
            log.debug("%s: %s", self.name, _listing(problems))
        if saturated:
            log.debug("%s: saturated: %s", self.name, "; ".join(saturated))
        if not rates:
            return Sample.missing(
                f"no rate from any of {len(endpoints)} squid instance(s): {_listing(problems)}", now
            )
        self._per_instance = rates
        return Sample(
            sum(rates.values()),
            now,
            instances_reporting=len(rates),
            saturated=True if saturated else None,
        )

    def _pool(self) -> concurrent.futures.ThreadPoolExecutor:
        if self._executor is None:
            self._executor = concurrent.futures.ThreadPoolExecutor(
                max_workers=self.params.max_parallel, thread_name_prefix=f"steward-{self.name}"
            )
        return self._executor

    def _budget(self, count: int) -> float:
        """How long a sample waits for ``count`` reads: each read's requests, per wave of threads."""
        per_read = self.params.timeout_s * (2 if self.params.reads_info else 1)
        waves = math.ceil(count / self.params.max_parallel)
        return per_read * waves + _WAIT_SLACK_S

    def _url(self, endpoint: str, path: str) -> str:
        if "://" in endpoint:
            return endpoint.rstrip("/") + path
        if any(c.isspace() or c in "/?#@" for c in endpoint):
            raise NoValue("not a host:port endpoint")
        return f"{self.params.scheme}://{endpoint}{path}"

    def _read(self, endpoint: str) -> _Reading:
        """One endpoint's counters (and info): runs on a pool thread, touches no shared state."""
        p = self.params
        response = self._http(self._url(endpoint, p.path), timeout_s=p.timeout_s)
        at = self._clock()
        if response.status != 200:
            hint = (
                " (cache manager access denied: allow the scraper's address)"
                if response.status == 403
                else ""
            )
            raise NoValue(f"counters: HTTP {response.status}{hint}")
        counters = parse_counters(response.text())
        own_after = 1
        info: Info | None = None
        if p.reads_info:
            try:
                info_response = self._http(self._url(endpoint, p.info_path), timeout_s=p.timeout_s)
                own_after += 1
                if info_response.status == 200:
                    info = parse_info(info_response.text())
            except Exception as exc:  # info is a hint: the counters still give a rate
                log.debug("%s: %s: info not read: %s", self.name, endpoint, describe_error(exc))
        return _Reading(counters, at, own_after, info, self._saturation(info))

    def _saturation(self, info: Info | None) -> str | None:
        if info is None:
            return None
        p = self.params
        usable = info.fds_max
        if usable is not None and info.fds_reserved is not None and info.fds_reserved < usable:
            usable -= info.fds_reserved
        if (
            p.saturation_fd_fraction > 0
            and info.fds_in_use is not None
            and usable is not None
            and usable > 0
            and info.fds_in_use >= p.saturation_fd_fraction * usable
        ):
            return f"{info.fds_in_use} of {usable} usable file descriptors in use"
        if (
            p.saturation_median_s > 0
            and info.median_service_s is not None
            and info.median_service_s >= p.saturation_median_s
        ):
            return f"median service time {info.median_service_s:g} s"
        return None

    def _rate(self, previous: _Reading, current: _Reading) -> float | str:
        """The rate between two readings, or why that pair gives none."""
        before, after = previous.counters, current.counters
        if after.requests < before.requests:
            return f"counters reset ({before.requests} -> {after.requests} requests: restarted?)"
        moved = after.sample_time - before.sample_time
        if moved < 0:
            return "sample_time went back (restarted?)"
        gap = current.at - previous.at
        if gap < _MIN_INTERVAL_S:
            return f"readings only {gap:.3f} s apart"
        if gap <= _TICK_CHECK_MAX_GAP_S and moved > 0 and abs(moved - _TICK_S) > _TICK_TOLERANCE_S:
            return f"sample_time moved {moved:.1f} s in {gap:.1f} s, not a statistics tick (restarted?)"
        if (
            previous.info is not None
            and current.info is not None
            and previous.info.start_time is not None
            and current.info.start_time is not None
            and previous.info.start_time != current.info.start_time
        ):
            return "start time changed (restarted)"
        delta = after.requests - before.requests
        if self.params.subtract_own_requests:
            delta = max(0, delta - previous.own_after)
        return delta / gap


def _listing(problems: Mapping[str, str]) -> str:
    items = [f"{endpoint}: {why}" for endpoint, why in problems.items()]
    if len(items) > _MAX_LISTED:
        items = [*items[:_MAX_LISTED], f"and {len(items) - _MAX_LISTED} more"]
    return shorten("; ".join(items))
