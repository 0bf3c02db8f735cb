"""Mesos-native health checks, run by the Steward executor (a custom executor must run its own).

``TaskInfo.health_check`` keeps Mesos's meaning (protocol brief 4.8): wait ``delay_seconds``, then probe
every ``interval_seconds`` with ``timeout_seconds``; failures within ``grace_period_seconds`` of the
launch are ignored until the first success; ``consecutive_failures`` failures in a row kill the task
(Steward sends a number it never reaches, so that its own kill-rate limit and circuit breaker decide).

The executor reports a change of health as TASK_RUNNING with ``healthy`` and reason
``REASON_TASK_HEALTH_CHECK_STATUS_UPDATED``: the first result, then every flip, as Mesos's executors do.

Probes, as Mesos runs them for a Docker task: HTTP and TCP go to the port *inside the container's
network namespace*: ``127.0.0.1:<port>`` for a host-network container (the executor runs on the same
host), the container's bridge IP otherwise (the host reaches it over docker0); COMMAND runs inside the
container (``docker exec``), healthy on exit 0.
"""

from __future__ import annotations

import http.client
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from framework.model.proto import HealthCheck

__all__ = ["HealthChecker", "ProbeResult", "http_probe", "tcp_probe", "validate_health_check"]

log = logging.getLogger(__name__)

DEFAULT_DELAY_S: Final = 15.0
DEFAULT_INTERVAL_S: Final = 10.0
DEFAULT_TIMEOUT_S: Final = 20.0
DEFAULT_CONSECUTIVE_FAILURES: Final = 3
DEFAULT_GRACE_S: Final = 10.0


@dataclass(frozen=True, slots=True)
class ProbeResult:
    healthy: bool
    detail: str


Probe = Callable[[float], ProbeResult]
"""``probe(timeout_s)``: one check."""


def validate_health_check(check: HealthCheck) -> str | None:
    """Why Mesos would refuse ``check``, or None."""
    if check.type == "HTTP":
        if check.http is None:
            return "HTTP health check needs 'http'"
        if check.http.path and not check.http.path.startswith("/"):
            return "The path of an HTTP health check must start with '/'"
    elif check.type == "TCP":
        if check.tcp is None:
            return "TCP health check needs 'tcp'"
    elif check.type == "COMMAND":
        if check.command is None:
            return "COMMAND health check needs 'command'"
    else:
        return f"unsupported health check type {check.type!r}"
    for name in ("delay_seconds", "interval_seconds", "timeout_seconds", "grace_period_seconds"):
        value = getattr(check, name)
        if value is not None and value < 0:
            return f"HealthCheck.{name} must not be negative"
    return None


def http_probe(host: str, port: int, path: str = "/", scheme: str = "http") -> Probe:
    def probe(timeout_s: float) -> ProbeResult:
        connection_type = http.client.HTTPSConnection if scheme == "https" else http.client.HTTPConnection
        connection = connection_type(host, port, timeout=timeout_s or None)
        try:
            connection.request("GET", path or "/", headers={"User-Agent": "steward-executor-health"})
            status = connection.getresponse().status
        except (OSError, http.client.HTTPException) as exc:
            return ProbeResult(False, f"GET {scheme}://{host}:{port}{path} failed: {exc}")
        finally:
            connection.close()
        healthy = 200 <= status < 400
        return ProbeResult(healthy, f"GET {path} answered {status}")

    return probe


def tcp_probe(host: str, port: int) -> Probe:
    def probe(timeout_s: float) -> ProbeResult:
        try:
            with socket.create_connection((host, port), timeout=timeout_s or None):
                return ProbeResult(True, f"connected to {host}:{port}")
        except OSError as exc:
            return ProbeResult(False, f"cannot connect to {host}:{port}: {exc}")

    return probe


Report = Callable[[bool, str, bool], None]
"""``report(healthy, detail, kill_task)``: a change of health (or the limit of failures reached)."""


class HealthChecker:
    """Runs ``probe`` on its own thread as ``check`` says; calls ``report`` on every change."""

    def __init__(
        self,
        check: HealthCheck,
        probe: Probe,
        report: Report,
        *,
        name: str = "health",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._probe = probe
        self._report = report
        self._clock = clock
        self._started_at = clock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.failures = 0
        self.healthy: bool | None = None

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(5.0)

    def _value(self, name: str, default: float) -> float:
        value = getattr(self._check, name)
        return float(default if value is None else value)

    def _run(self) -> None:
        delay = self._value("delay_seconds", DEFAULT_DELAY_S)
        interval = max(0.05, self._value("interval_seconds", DEFAULT_INTERVAL_S))
        if self._stop.wait(delay):
            return
        while not self._stop.is_set():
            timeout = self._value("timeout_seconds", DEFAULT_TIMEOUT_S)
            try:
                result = self._probe(timeout)
            except Exception as exc:  # a probe bug must not end the checks
                result = ProbeResult(False, f"health probe failed: {exc!r}")
            if self._stop.is_set():
                return
            self.observe(result)
            if self._stop.wait(interval):
                return

    def observe(self, result: ProbeResult) -> None:
        """Account one probe result (public so the rules can be tested without threads)."""
        if result.healthy:
            self.failures = 0
            if self.healthy is not True:
                self.healthy = True
                self._report(True, result.detail, False)
            return
        in_grace = self._clock() - self._started_at < self._value("grace_period_seconds", DEFAULT_GRACE_S)
        if in_grace and self.healthy is None:
            log.debug("health check failed within the grace period: %s", result.detail)
            return
        self.failures += 1
        limit = self._check.consecutive_failures or DEFAULT_CONSECUTIVE_FAILURES
        kill = self.failures >= limit
        if self.healthy is not False or kill:
            self.healthy = False
            self._report(False, result.detail, kill)
        if kill:
            self._stop.set()
