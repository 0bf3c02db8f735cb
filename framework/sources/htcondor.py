"""The HTCondor source: idle and running jobs that the startds could run, for startd mode.

``value`` is the number of **idle** jobs (``JobStatus == 1``) and ``running`` the number of
**running** jobs (``JobStatus == 2``) matching ``constraint``, a ClassAd expression over job ads that
says which jobs these startds are for (e.g. ``RequestCpus <= 4 && AcctGroup == "cms"``; default
``true``, every job). Held, completed and removed jobs are no demand. Through the bindings the
sample also names the **busy** startds: the ``STARTD_NAME`` in each running job's ``RemoteHost``
(``slot1_2@<name>@<host>``), which Steward sets to the startd's task ID, so a scale-down removes
idle startds and keeps those running jobs (:func:`~framework.core.convergence.choose_victims`).

Two ways to get the figures (``via``):

* ``bindings`` (default): the ``htcondor`` Python bindings (PyPI ``htcondor`` 24/25, module
  ``htcondor2``; ``pip install 'steward[htcondor]'``). The collector (``collector``, ``host:port``)
  is asked for the schedds, all of them or the one named ``schedd``, and each schedd for its jobs.
  When a schedd does not answer the sample is **missing** rather than a sum without it: a short
  count of idle jobs would read as "less demand" and shrink the pool under a queue that is still
  there. The bindings are an optional import: without them ``make_source`` raises a
  :class:`SourceConfigError` that says how to install them, or to use ``via: prometheus``.
* ``prometheus``: the same figures from PromQL (``prometheus_url``, ``idle_query``, optional
  ``running_query``), for sites that already export their queue (e.g. with an HTCondor exporter).
  A failing ``running_query`` leaves ``running`` None, which the policy reads as "unknown, do not
  scale down".

**Authentication.** ``token_file`` names an IDTOKENS token (as ``condor_token_fetch`` writes it).
The bindings only take a token per call for the *collector* (``SecurityContext``); a *schedd* query
authenticates with the tokens in ``SEC_TOKEN_DIRECTORY``, a process-wide setting. So the token is
copied (mode 0600) into a private directory of this process (mode 0700, removed at exit) and
``SEC_TOKEN_DIRECTORY`` points there; HTCondor picks, among the tokens there, the one whose issuer
matches the daemon, so several pools' sources coexist. A ``SEC_TOKEN_DIRECTORY`` from the site's
own HTCondor configuration is overridden in this process once a source has a ``token_file``.
The token never appears in logs, reasons or reprs. Pools that allow unauthenticated READ need no
token. A ``token_file`` that does not exist yet (a central manager that writes it once it runs)
makes the samples missing, saying so, until it appears; an unreadable or empty one at start is a
configuration error.

**Timeouts.** The bindings block (a collector that accepts the connection and never answers holds a
call for a minute) but release the GIL, so the query runs on a worker thread and the sample gives up
after ``timeout_s``; no second query starts while an abandoned one still runs (see
:class:`~framework.sources.base.BoundedCall`).

Parameters: ``via`` (``bindings``), ``collector``, ``schedd``, ``constraint`` (``true``),
``token_file``, ``timeout_s`` (15); with ``via: prometheus``: ``prometheus_url``, ``idle_query``,
``running_query``, ``timeout_s``.
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any, Final

from framework.core.autoscale import Sample
from framework.sources.base import (
    BoundedCall,
    NoValue,
    Params,
    Scalar,
    SourceConfigError,
    check_http_url,
    describe_error,
)
from framework.sources.http import HttpGet, redact_url
from framework.sources.http_source import HttpLoadSource
from framework.sources.prometheus import query_instant

__all__ = [
    "INSTALL_HINT",
    "HTCondorParams",
    "HTCondorPrometheusSource",
    "HTCondorSource",
    "job_constraint",
    "load_bindings",
    "startd_of",
]

log = logging.getLogger(__name__)

INSTALL_HINT: Final = (
    "the HTCondor Python bindings (module htcondor2) are not installed: "
    "pip install 'steward[htcondor]' (PyPI htcondor>=24), "
    "or use via: prometheus (or a prometheus source) instead"
)

_IDLE: Final = 1
_RUNNING: Final = 2
_BINDINGS_KEYS: Final = ("collector", "schedd", "constraint", "token_file")
_PROMETHEUS_KEYS: Final = ("prometheus_url", "idle_query", "running_query")


def job_constraint(constraint: str) -> str:
    """The schedd query: idle or running jobs that also match the site's ``constraint``."""
    return f"(JobStatus == {_IDLE} || JobStatus == {_RUNNING}) && ({constraint})"


def load_bindings() -> ModuleType:
    """Import ``htcondor2``; :class:`SourceConfigError` with the install hint if it is missing."""
    try:
        return importlib.import_module("htcondor2")
    except ImportError as exc:
        raise SourceConfigError(f"htcondor source: {INSTALL_HINT} ({exc})") from None


@dataclass(frozen=True, slots=True)
class HTCondorParams:
    """The HTCondor source's parameters, checked (see the module docstring)."""

    via: str = "bindings"
    collector: str | None = None
    schedd: str | None = None
    constraint: str = "true"
    token_file: str | None = None
    timeout_s: float = 15.0
    prometheus_url: str | None = None
    idle_query: str | None = None
    running_query: str | None = None

    @classmethod
    def from_params(cls, params: Mapping[str, Scalar]) -> HTCondorParams:
        """Check ``params``; :class:`SourceConfigError` names every bad or unknown key."""
        p = Params("htcondor source", params)
        via = p.choice("via", "bindings", ("bindings", "prometheus"))
        timeout_s = p.number("timeout_s", 15.0, exclusive_minimum=0, maximum=300)
        own, other = (
            (_BINDINGS_KEYS, _PROMETHEUS_KEYS) if via == "bindings" else (_PROMETHEUS_KEYS, _BINDINGS_KEYS)
        )
        for key in other:
            if p.has(key):
                p.problem(
                    f"{key} is not used with via: {via} (it belongs to the other way: {', '.join(other)})"
                )
            p.text(key)  # known, reported above
        values = {key: p.text(key) for key in own}
        if via == "bindings":
            collector = values["collector"]
            if collector is None:
                p.problem("collector is required (host:port of the pool's collector)")
            elif any(c.isspace() for c in collector):
                p.problem(f"collector must be host[:port], got {collector!r}")
        else:
            if values["prometheus_url"] is None:
                p.problem("prometheus_url is required with via: prometheus")
            check_http_url(p, "prometheus_url", values["prometheus_url"])
            if values["idle_query"] is None:
                p.problem("idle_query is required with via: prometheus")
        p.finish()
        return cls(
            via=via,
            collector=values.get("collector"),
            schedd=values.get("schedd"),
            constraint=values.get("constraint") or "true",
            token_file=values.get("token_file"),
            timeout_s=timeout_s,
            prometheus_url=values.get("prometheus_url"),
            idle_query=values.get("idle_query"),
            running_query=values.get("running_query"),
        )

    def __repr__(self) -> str:
        if self.via == "prometheus":
            url = redact_url(self.prometheus_url or "")
            return (
                f"HTCondorParams(via='prometheus', prometheus_url={url!r}, idle_query={self.idle_query!r}, "
                f"running_query={self.running_query!r}, timeout_s={self.timeout_s!r})"
            )
        return (
            f"HTCondorParams(via='bindings', collector={self.collector!r}, schedd={self.schedd!r}, "
            f"constraint={self.constraint!r}, token_file={self.token_file!r}, timeout_s={self.timeout_s!r})"
        )


class _TokenDirectory:
    """The process's private ``SEC_TOKEN_DIRECTORY``: one 0600 copy per distinct token, counted by
    the sources using it; the directory goes at exit (it holds secrets)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._path: Path | None = None
        self._users: dict[str, int] = {}

    def add(self, bindings: Any, token: str) -> str:
        with self._lock:
            if self._path is None:
                self._path = Path(tempfile.mkdtemp(prefix="steward-condor-tokens-"))
                os.chmod(self._path, 0o700)
                atexit.register(self._remove_all)
            name = "steward-" + hashlib.sha256(token.encode()).hexdigest()[:16]
            target = self._path / name
            if name not in self._users:
                fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as handle:
                    handle.write(token + "\n")
                self._users[name] = 0
            self._users[name] += 1
            bindings.param["SEC_TOKEN_DIRECTORY"] = str(self._path)
            return name

    def release(self, name: str) -> None:
        with self._lock:
            if name not in self._users or self._path is None:
                return
            self._users[name] -= 1
            if self._users[name] <= 0:
                del self._users[name]
                with contextlib.suppress(OSError):
                    (self._path / name).unlink()

    def _remove_all(self) -> None:
        with self._lock:
            if self._path is not None:
                shutil.rmtree(self._path, ignore_errors=True)
                self._path = None
                self._users.clear()


_TOKENS = _TokenDirectory()

_BINDINGS_LOCK = threading.Lock()
"""HTCondor's client library keeps process-wide state (configuration, security sessions): queries
of several sources are serialised rather than trusted to be thread-safe."""


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_text().strip()
    except OSError as exc:
        raise SourceConfigError(
            f"htcondor source params: token_file {path!r} cannot be read: {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise SourceConfigError(f"htcondor source params: token_file {path!r} is not a text token") from None
    if not token:
        raise SourceConfigError(f"htcondor source params: token_file {path!r} is empty")
    return token


def _get(ad: Any, key: str) -> Any:
    """``ad[key]`` or None, for ClassAds (and the mappings tests use)."""
    try:
        return ad.get(key)
    except Exception:
        return None


def startd_of(remote_host: object) -> str | None:
    """The ``STARTD_NAME`` in a running job's ``RemoteHost`` (``slot1_2@<STARTD_NAME>@<host>``),
    which Steward sets to the startd's task ID; None for an unnamed startd (``slot1@<host>``)."""
    if not isinstance(remote_host, str):
        return None
    parts = remote_host.split("@")
    if len(parts) < 3 or not all(parts):
        return None
    return "@".join(parts[1:-1])


class HTCondorSource:
    """Idle and running jobs through the ``htcondor2`` bindings (see the module docstring).

    ``bindings`` is the ``htcondor2`` module, injectable so the counting and failure rules can be
    tested without a pool; ``make_source`` passes the real one.
    """

    def __init__(
        self,
        *,
        service: str,
        params: HTCondorParams,
        bindings: Any,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if params.via != "bindings" or params.collector is None:
            raise SourceConfigError("htcondor source: HTCondorSource needs via: bindings and a collector")
        try:
            bindings.classad.ExprTree(job_constraint(params.constraint))
        except Exception:
            raise SourceConfigError(
                f"htcondor source params: constraint {params.constraint!r} is not a ClassAd expression"
            ) from None
        self.name = f"htcondor({service})"
        self.params = params
        self._htcondor = bindings
        self._clock = clock
        self._token: str | None = None
        self._token_name: str | None = None
        self._token_pending = False
        if params.token_file is not None:
            if Path(params.token_file).exists():
                self._take_token(_read_token(params.token_file))
            else:
                # Not written yet (e.g. a central manager that writes it once it runs): the samples
                # are missing, saying so, until it appears; any other problem is a config error.
                self._token_pending = True
        self._call = BoundedCall(f"steward-{self.name}")

    def _take_token(self, token: str) -> None:
        self._token = token
        self._token_name = _TOKENS.add(self._htcondor, token)
        self._token_pending = False

    def __repr__(self) -> str:
        return f"HTCondorSource({self.name!r}, {self.params!r})"

    def sample(self, now: float) -> Sample:
        """Ask the collector and the schedds; never raises."""
        try:
            idle, running, busy = self._call.run(self._measure, self.params.timeout_s)
        except NoValue as exc:
            return Sample.missing(exc.reason, now)
        except Exception as exc:
            return Sample.missing(f"HTCondor query failed: {describe_error(exc)}", now)
        return Sample(float(idle), now, running=float(running), busy=busy)

    def _measure(self) -> tuple[int, int, frozenset[str]]:
        with _BINDINGS_LOCK:
            if self._token_pending:
                assert self.params.token_file is not None
                try:
                    self._take_token(_read_token(self.params.token_file))
                except SourceConfigError as exc:
                    raise NoValue(f"no token yet: {exc}".replace("htcondor source params: ", "")) from None
            return self._query()

    def _query(self) -> tuple[int, int, frozenset[str]]:
        h = self._htcondor
        p = self.params
        try:
            if self._token is not None:
                collector = h.Collector(p.collector, h.SecurityContext(self._token))
            else:
                collector = h.Collector(p.collector)
            if p.schedd is not None:
                ads = [collector.locate(h.DaemonType.Schedd, p.schedd)]
            else:
                ads = list(collector.locateAll(h.DaemonType.Schedd))
        except Exception as exc:
            raise NoValue(f"collector {p.collector}: {describe_error(exc)}") from None
        if not ads:
            raise NoValue(f"collector {p.collector} lists no schedd")
        if p.schedd is not None and not _get(ads[0], "MyAddress"):
            # htcondor2's locate() answers an ad without an address for an unknown name.
            raise NoValue(f"collector {p.collector} does not know schedd {p.schedd!r}")
        constraint = job_constraint(p.constraint)
        idle = running = 0
        busy: set[str] = set()
        for ad in ads:
            name = _get(ad, "Name") or p.schedd or "?"
            try:
                jobs = h.Schedd(ad).query(constraint, ["JobStatus", "RemoteHost"])
            except Exception as exc:
                raise NoValue(f"schedd {name}: {describe_error(exc)}") from None
            for job in jobs:
                status = job.get("JobStatus")
                if status == _IDLE:
                    idle += 1
                elif status == _RUNNING:
                    running += 1
                    startd = startd_of(job.get("RemoteHost"))
                    if startd is not None:
                        busy.add(startd)
        return idle, running, frozenset(busy)

    def close(self) -> None:
        """Stop the worker thread and drop this source's token copy."""
        self._call.close()
        if self._token_name is not None:
            _TOKENS.release(self._token_name)
            self._token_name = None


class HTCondorPrometheusSource(HttpLoadSource[HTCondorParams]):
    """Idle and running jobs from PromQL (``via: prometheus``; see the module docstring)."""

    kind = "htcondor"
    requests_per_sample = 2  # the idle query, then the running query
    failure = "idle jobs query failed"
    missing_prefix = "idle jobs: "

    def __init__(
        self,
        *,
        service: str,
        params: HTCondorParams,
        http: HttpGet,
        clock: Callable[[], float] = time.monotonic,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        if params.via != "prometheus" or params.prometheus_url is None or params.idle_query is None:
            raise SourceConfigError("htcondor source: via: prometheus needs prometheus_url and idle_query")
        super().__init__(service=service, params=params, http=http, clock=clock, on_close=on_close)
        self._url = params.prometheus_url
        self._idle_query = params.idle_query

    def _sample(self, value: float, second: float | None, now: float) -> Sample:
        return Sample(value, now, running=second)

    def _measure(self) -> tuple[float, float | None]:
        p = self.params
        idle = query_instant(self._http, self._url, self._idle_query, p.timeout_s)
        running: float | None = None
        if p.running_query is not None:
            try:
                running = query_instant(self._http, self._url, p.running_query, p.timeout_s)
            except Exception as exc:
                log.info("%s: running_query gave nothing: %s", self.name, describe_error(exc))
        return idle, running
