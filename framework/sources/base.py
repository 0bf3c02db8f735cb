"""What every load source shares: the :class:`LoadSource` contract, parameter checking, the bounded
call, and the rules for turning a failure into a reason.

The contract the autoscale loop relies on:

* ``sample(now)`` **never raises**. A failure, a timeout or garbage becomes
  ``Sample.missing(reason, now)``; the policy then holds (it never scales down on missing data).
* **Never a fabricated zero**: a value is only reported when something actually measured it. "No
  instance answered" is missing, not 0.
* ``observed_at`` is on the runtime's monotonic clock (the ``now`` passed in).
* Construction (``make_source``) checks the parameters and raises :class:`SourceConfigError` (a
  ``ValueError``) naming every bad or unknown key at once, so a config reload can refuse a bad source
  before the old one is dropped.

:class:`BoundedCall` is how a source keeps ``sample`` bounded when the thing it calls has no
reliable timeout of its own (the HTCondor bindings, a getter that hangs in DNS): the call runs on
one worker thread; if it has not answered by the deadline the sample is missing and the call is
left to finish in the background, and no second call is started while it is still running, so a
dead server costs one thread, never a pile of them.
"""

from __future__ import annotations

import concurrent.futures
import math
import threading
from collections.abc import Callable, Iterable, Mapping
from typing import Final, Protocol, TypeVar, runtime_checkable
from urllib.parse import urlsplit

from framework.core.autoscale import Sample
from framework.sources.http import HttpError, redact_url

__all__ = [
    "MAX_REASON_CHARS",
    "BoundedCall",
    "LoadSource",
    "NoValue",
    "Params",
    "Scalar",
    "SourceConfigError",
    "StillRunning",
    "check_http_url",
    "check_load",
    "describe_error",
    "shorten",
]

MAX_REASON_CHARS: Final = 400
"""Reasons go to logs and the API; a whole HTML error page does not."""

T = TypeVar("T")

Scalar = str | int | float | bool


@runtime_checkable
class LoadSource(Protocol):
    """One service's load measurement.

    ``name`` is for logs and metrics, e.g. ``squid(squid)``. ``sample(now)`` never raises and
    returns :meth:`Sample.missing` with a reason when there is no measurement. ``close()`` releases
    threads and connections; a closed source must not be sampled again.
    """

    name: str

    def sample(self, now: float) -> Sample: ...

    def close(self) -> None: ...


class SourceConfigError(ValueError):
    """A source's parameters are invalid, or the source cannot work here (a missing optional
    package); the message names the offending keys and says what to do."""


class NoValue(Exception):
    """Raised inside a source's measurement code for "no sample, because ``reason``"."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class StillRunning(NoValue):
    """The previous bounded call has not returned yet."""


def shorten(text: str, limit: int = MAX_REASON_CHARS) -> str:
    """One line, at most ``limit`` characters."""
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 3] + "..."


def describe_error(exc: BaseException) -> str:
    """A short reason for an unexpected exception (its type and message, one line)."""
    if isinstance(exc, NoValue):
        return shorten(exc.reason)
    if isinstance(exc, HttpError) and str(exc):
        return shorten(str(exc))  # already phrased for a reason ("timed out after 2 s")
    message = str(exc)
    name = type(exc).__name__
    return shorten(f"{name}: {message}" if message else name)


def check_load(value: object, what: str) -> float:
    """``value`` as a load (a finite, non-negative number), or :class:`NoValue` saying why not.

    Booleans are not numbers here (JSON ``true`` is not a load of 1).
    """
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise NoValue(f"{what} is not a number: {shorten(repr(value), 80)}")
    try:
        number = float(value)
    except OverflowError:
        raise NoValue(f"{what} is too large to be a load") from None
    if math.isnan(number):
        raise NoValue(f"{what} is NaN")
    if math.isinf(number):
        raise NoValue(f"{what} is infinite")
    if number < 0:
        raise NoValue(f"{what} is negative ({number:g}); a load cannot be")
    return number


class Params:
    """Typed reads of a source's ``params`` mapping that collect every problem, then
    :meth:`finish` raises one :class:`SourceConfigError` naming them all (unknown keys included).

    ``source`` names the source in messages (``squid source``). Secrets are never echoed: values of
    keys listed in ``secret_keys`` are shown as ``***``.
    """

    def __init__(self, source: str, params: Mapping[str, Scalar], *, secret_keys: Iterable[str] = ()) -> None:
        self._source = source
        self._params = dict(params)
        self._used: set[str] = set()
        self._problems: list[str] = []
        self._secret = frozenset(secret_keys)

    def _show(self, key: str, value: object) -> str:
        return "***" if key in self._secret else repr(value)

    def problem(self, message: str) -> None:
        """Record a problem found by the caller (a cross-check between keys)."""
        self._problems.append(message)

    def has(self, key: str) -> bool:
        """Whether ``key`` was given."""
        return key in self._params

    def text(self, key: str, default: str | None = None, *, required: bool = False) -> str | None:
        """A non-empty string."""
        self._used.add(key)
        if key not in self._params:
            if required:
                self._problems.append(f"{key} is required")
            return default
        value = self._params[key]
        if not isinstance(value, str) or not value.strip():
            self._problems.append(f"{key} must be a non-empty string, got {self._show(key, value)}")
            return default
        return value.strip()

    def number(
        self,
        key: str,
        default: float,
        *,
        minimum: float | None = None,
        exclusive_minimum: float | None = None,
        maximum: float | None = None,
    ) -> float:
        """A finite number within bounds."""
        self._used.add(key)
        if key not in self._params:
            return default
        value = self._params[key]
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            self._problems.append(f"{key} must be a number, got {self._show(key, value)}")
            return default
        number = float(value)
        if exclusive_minimum is not None and not number > exclusive_minimum:
            self._problems.append(f"{key} must be > {exclusive_minimum:g}, got {number:g}")
            return default
        if minimum is not None and number < minimum:
            self._problems.append(f"{key} must be >= {minimum:g}, got {number:g}")
            return default
        if maximum is not None and number > maximum:
            self._problems.append(f"{key} must be <= {maximum:g}, got {number:g}")
            return default
        return number

    def integer(self, key: str, default: int, *, minimum: int, maximum: int) -> int:
        """An integer within bounds."""
        self._used.add(key)
        if key not in self._params:
            return default
        value = self._params[key]
        if isinstance(value, bool) or not isinstance(value, int):
            self._problems.append(f"{key} must be an integer, got {self._show(key, value)}")
            return default
        if not minimum <= value <= maximum:
            self._problems.append(f"{key} must be between {minimum} and {maximum}, got {value}")
            return default
        return value

    def flag(self, key: str, default: bool) -> bool:
        """A boolean (YAML ``true``/``false``; not 0/1, not strings)."""
        self._used.add(key)
        if key not in self._params:
            return default
        value = self._params[key]
        if not isinstance(value, bool):
            self._problems.append(f"{key} must be true or false, got {self._show(key, value)}")
            return default
        return value

    def choice(self, key: str, default: str, choices: Iterable[str]) -> str:
        """One of ``choices``."""
        allowed = tuple(choices)
        value = self.text(key, default)
        if value is None or value not in allowed:
            if value is not None:
                self._problems.append(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
            return default
        return value

    def finish(self) -> None:
        """Raise :class:`SourceConfigError` if any key is unknown or any value was invalid."""
        unknown = sorted(set(self._params) - self._used)
        problems = list(self._problems)
        if unknown:
            known = ", ".join(sorted(self._used))
            names = ", ".join(repr(key) for key in unknown)
            problems.insert(0, f"unknown parameter(s) {names} (known: {known})")
        if problems:
            raise SourceConfigError(f"{self._source} params: " + "; ".join(problems))


def check_http_url(p: Params, key: str, value: str | None) -> None:
    """Record a problem unless ``value`` is an http(s) URL with a host."""
    if value is None:
        return
    try:
        parts = urlsplit(value)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        p.problem(f"{key} must be an http:// or https:// URL with a host, got {redact_url(value)!r}")


class BoundedCall:
    """Run a blocking call on one worker thread with a deadline (see the module docstring).

    ``run(fn, timeout_s)`` returns ``fn()``'s result, re-raises what it raised, raises
    :class:`NoValue` when it did not answer within ``timeout_s`` (the call goes on in the
    background), and :class:`StillRunning` while such an abandoned call has not returned.
    """

    def __init__(self, thread_name: str) -> None:
        self._thread_name = thread_name
        self._executor: concurrent.futures.ThreadPoolExecutor | None = None
        self._pending: concurrent.futures.Future[object] | None = None
        self._lock = threading.Lock()
        self._closed = False

    def run(self, fn: Callable[[], T], timeout_s: float) -> T:
        with self._lock:
            if self._closed:
                raise NoValue("source is closed")
            if self._pending is not None:
                if not self._pending.done():
                    raise StillRunning("the previous query, abandoned at its deadline, is still running")
                self._pending = None
            if self._executor is None:
                self._executor = concurrent.futures.ThreadPoolExecutor(
                    max_workers=1, thread_name_prefix=self._thread_name
                )
            future: concurrent.futures.Future[T] = self._executor.submit(fn)
        try:
            return future.result(timeout=timeout_s)
        except concurrent.futures.TimeoutError:
            with self._lock:
                self._pending = future  # type: ignore[assignment]  # only done() is read
            raise NoValue(f"no answer within {timeout_s:g} s") from None

    def close(self) -> None:
        """Stop accepting calls; an abandoned call finishes in the background, then its thread ends."""
        with self._lock:
            self._closed = True
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=False, cancel_futures=True)
