"""Mesos-native health checks (``TaskInfo.health_check``) for the local cluster's containerizers.

Three layers, so the counting rules can be tested without threads or sockets:

* ``HealthPolicy`` turns a ``HealthCheck`` proto into numbers, with Mesos's defaults (delay 15 s,
  interval 10 s, timeout 20 s, 3 consecutive failures, grace 10 s);
* ``HealthState`` is the pure bookkeeping of ``src/checks/health_checker.cpp``: it takes each probe
  result with the injected ``now`` and says what to report. A failure inside the grace period is
  ignored until the first success; every counted failure is reported (``healthy=False`` with the
  running count), the first success and the first success after failures are reported
  (``healthy=True``), and reaching ``consecutive_failures`` asks for the task to be killed;
* ``HealthChecker`` is the thread that waits, runs a probe and feeds ``HealthState``.

Probes (``http_probe``, ``tcp_probe``, or a containerizer's command runner) answer a ``ProbeResult``
and never raise: a probe that blows up is a failed check, exactly as in Mesos.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from framework.model.proto import HealthCheck

__all__ = [
    "DEFAULT_CONSECUTIVE_FAILURES",
    "DEFAULT_DELAY_S",
    "DEFAULT_GRACE_PERIOD_S",
    "DEFAULT_INTERVAL_S",
    "DEFAULT_TIMEOUT_S",
    "HealthChecker",
    "HealthPolicy",
    "HealthReport",
    "HealthState",
    "Probe",
    "ProbeResult",
    "http_probe",
    "tcp_probe",
]

log = logging.getLogger(__name__)

DEFAULT_DELAY_S = 15.0
DEFAULT_INTERVAL_S = 10.0
DEFAULT_TIMEOUT_S = 20.0
DEFAULT_CONSECUTIVE_FAILURES = 3
DEFAULT_GRACE_PERIOD_S = 10.0

_NO_TIMEOUT_S = 24 * 3600.0
"""What ``timeout_seconds: 0`` (no timeout) becomes for sockets and subprocesses."""


@dataclass(frozen=True, slots=True)
class HealthPolicy:
    """The timing and threshold numbers of one health check, defaults filled in."""

    delay_s: float = DEFAULT_DELAY_S
    interval_s: float = DEFAULT_INTERVAL_S
    timeout_s: float = DEFAULT_TIMEOUT_S
    """0 means no timeout (Mesos semantics)."""
    consecutive_failures: int = DEFAULT_CONSECUTIVE_FAILURES
    grace_period_s: float = DEFAULT_GRACE_PERIOD_S

    @classmethod
    def from_proto(cls, check: HealthCheck) -> HealthPolicy:
        def pick(value: float | None, default: float) -> float:
            return default if value is None else float(value)

        return cls(
            delay_s=pick(check.delay_seconds, DEFAULT_DELAY_S),
            interval_s=pick(check.interval_seconds, DEFAULT_INTERVAL_S),
            timeout_s=pick(check.timeout_seconds, DEFAULT_TIMEOUT_S),
            consecutive_failures=(
                DEFAULT_CONSECUTIVE_FAILURES
                if check.consecutive_failures is None
                else int(check.consecutive_failures)
            ),
            grace_period_s=pick(check.grace_period_seconds, DEFAULT_GRACE_PERIOD_S),
        )

    @property
    def effective_timeout_s(self) -> float:
        """The timeout to hand to a socket or subprocess (0 = none becomes a day)."""
        return self.timeout_s if self.timeout_s > 0 else _NO_TIMEOUT_S


def validate_health_check(check: HealthCheck) -> str | None:
    """Why this health check cannot run, or None; mirrors ``validateHealthCheck`` in Mesos."""
    if check.type in (None, "UNKNOWN"):
        return "HealthCheck must specify 'type'"
    if check.type == "COMMAND":
        if check.command is None:
            return "Expecting 'command' to be set for COMMAND health check"
        if (check.command.shell is None or check.command.shell) and not check.command.value:
            return "Command health check must contain 'shell command'"
        if check.command.shell is False and not check.command.value:
            return "Command health check must contain 'executable path'"
    elif check.type == "HTTP":
        if check.http is None:
            return "Expecting 'http' to be set for HTTP health check"
        if check.http.scheme not in (None, "http", "https"):
            return f"Unsupported HTTP health check scheme: '{check.http.scheme}'"
        if check.http.path is not None and not check.http.path.startswith("/"):
            return f"The path '{check.http.path}' of HTTP health check must start with '/'"
    elif check.type == "TCP" and check.tcp is None:
        return "Expecting 'tcp' to be set for TCP health check"
    for name in ("delay_seconds", "interval_seconds", "timeout_seconds", "grace_period_seconds"):
        value = getattr(check, name)
        if value is not None and value < 0:
            return f"Expecting '{name}' to be non-negative"
    if check.consecutive_failures is not None and check.consecutive_failures < 1:
        return "Expecting 'consecutive_failures' to be positive"
    return None


@dataclass(frozen=True, slots=True)
class ProbeResult:
    ok: bool
    detail: str = ""


Probe = Callable[[float], ProbeResult]
"""A check: called with the timeout in seconds, answers healthy or not (never raises)."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """One thing to tell the scheduler: a TASK_RUNNING update with ``healthy`` set."""

    healthy: bool
    consecutive_failures: int
    kill_task: bool
    detail: str = ""


class HealthState:
    """Pure counting logic of a Mesos health checker; every method takes ``now`` (monotonic s)."""

    __slots__ = ("_consecutive_failures", "_initializing", "_next_check_at", "_started_at", "policy")

    def __init__(self, policy: HealthPolicy, started_at: float) -> None:
        self.policy = policy
        self._started_at = started_at
        self._next_check_at = started_at + policy.delay_s
        self._consecutive_failures = 0
        self._initializing = True

    @property
    def consecutive_failures(self) -> int:
        return self._consecutive_failures

    @property
    def next_check_at(self) -> float:
        """When the next probe is due; the delay applies to the first one, the interval after."""
        return self._next_check_at

    def record(self, ok: bool, now: float, detail: str = "") -> HealthReport | None:
        """Account for one probe result that finished at ``now``; return what to report, if anything."""
        self._next_check_at = now + self.policy.interval_s
        if ok:
            report = None
            if self._initializing or self._consecutive_failures > 0:
                report = HealthReport(healthy=True, consecutive_failures=0, kill_task=False, detail=detail)
            self._initializing = False
            self._consecutive_failures = 0
            return report
        in_grace = (
            self._initializing
            and self.policy.grace_period_s > 0
            and now - self._started_at <= self.policy.grace_period_s
        )
        if in_grace:
            return None
        self._consecutive_failures += 1
        return HealthReport(
            healthy=False,
            consecutive_failures=self._consecutive_failures,
            kill_task=self._consecutive_failures >= self.policy.consecutive_failures,
            detail=detail,
        )


# --- probes ---------------------------------------------------------------------------------------


def http_probe(host: str, port: int, *, path: str = "/", scheme: str = "http") -> Probe:
    """GET ``scheme://host:port/path``; 200-399 is healthy (the built-in executors ignore ``statuses``).

    HTTPS certificates are not verified, as Mesos's checker runs curl with ``-k``.
    """

    def probe(timeout_s: float) -> ProbeResult:
        conn: http.client.HTTPConnection
        if scheme == "https":
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            conn = http.client.HTTPSConnection(host, port, timeout=timeout_s, context=context)
        else:
            conn = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            conn.request("GET", path or "/", headers={"User-Agent": "steward-localcluster-health"})
            response = conn.getresponse()
            response.read(64 * 1024)
        except (OSError, http.client.HTTPException) as exc:
            return ProbeResult(False, f"HTTP GET {scheme}://{host}:{port}{path} failed: {exc}")
        finally:
            conn.close()
        if 200 <= response.status < 400:
            return ProbeResult(True, f"HTTP {response.status}")
        return ProbeResult(False, f"Unexpected HTTP response code: {response.status}")

    return probe


def tcp_probe(host: str, port: int) -> Probe:
    """Healthy when a TCP connection to ``host:port`` can be established."""

    def probe(timeout_s: float) -> ProbeResult:
        try:
            with socket.create_connection((host, port), timeout=timeout_s):
                return ProbeResult(True, "TCP connection succeeded")
        except OSError as exc:
            return ProbeResult(False, f"TCP connection to {host}:{port} failed: {exc}")

    return probe


def _run_probe(probe: Probe, timeout_s: float) -> ProbeResult:
    try:
        return probe(timeout_s)
    except Exception as exc:  # a crashing probe is a failed check, never a dead checker thread
        log.debug("health probe raised", exc_info=True)
        return ProbeResult(False, f"health check raised {type(exc).__name__}: {exc}")


class HealthChecker:
    """Runs one task's health check on its own thread and reports through ``on_report``.

    ``on_report`` is called from the checker thread. After a report with ``kill_task`` the checker
    stops by itself (the containerizer kills the task); ``stop`` ends it earlier and joins the thread.
    A probe is bounded by the policy's timeout: the probe gets that timeout, and a probe that ignores
    it is abandoned (its result discarded) and counted as a failure.
    """

    def __init__(
        self,
        check: HealthCheck,
        probe: Probe,
        on_report: Callable[[HealthReport], None],
        *,
        name: str = "health-check",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.policy = HealthPolicy.from_proto(check)
        self._probe = probe
        self._on_report = on_report
        self._clock = clock
        self._stop = threading.Event()
        self._state = HealthState(self.policy, clock())
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout_s)

    @property
    def stopped(self) -> bool:
        return self._stop.is_set()

    def _run(self) -> None:
        while not self._stop.is_set():
            wait_s = self._state.next_check_at - self._clock()
            if wait_s > 0 and self._stop.wait(wait_s):
                return
            result = self._bounded_probe()
            if self._stop.is_set():
                return
            report = self._state.record(result.ok, self._clock(), result.detail)
            if report is None:
                continue
            try:
                self._on_report(report)
            except Exception:
                log.exception("health report callback failed")
            if report.kill_task:
                self._stop.set()
                return

    def _bounded_probe(self) -> ProbeResult:
        timeout_s = self.policy.effective_timeout_s
        box: list[ProbeResult] = []
        done = threading.Event()

        def target() -> None:
            box.append(_run_probe(self._probe, timeout_s))
            done.set()

        worker = threading.Thread(target=target, name=f"{self._thread.name}-probe", daemon=True)
        worker.start()
        # Wake up early if the checker is stopped, so shutdown never waits for a slow probe.
        deadline = self._clock() + timeout_s
        while not done.wait(min(0.2, max(0.0, deadline - self._clock()))):
            if self._stop.is_set() or self._clock() >= deadline:
                break
        if box:
            with contextlib.suppress(RuntimeError):
                worker.join(1.0)
            return box[0]
        return ProbeResult(False, f"health check timed out after {timeout_s:g}s")
