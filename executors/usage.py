"""Per-task resource usage: Docker stats in, ``framework.model.usage`` reports out (executor MESSAGEs).

Every ``interval_s`` (default 10 s; a task's ``usage_interval_s`` or ``STEWARD_USAGE_INTERVAL`` may set
it) the :class:`UsageSampler` reads each running container's stats once (``docker stats --no-stream``)
and sends one report per task to Steward as an executor MESSAGE. What a report holds, from the Engine
API's stats document (:func:`report_from_stats`, pure):

* ``cpu_seconds_total``: ``cpu_stats.cpu_usage.total_usage`` (nanoseconds since the container started)
  in seconds;
* ``memory_bytes``: ``memory_stats.usage`` less the page cache Docker itself leaves out of ``docker
  stats`` (``inactive_file`` on cgroup v2, ``total_inactive_file`` on v1): what the OOM killer counts;
* ``net_rx_bytes``/``net_tx_bytes``: summed over ``networks`` (every interface of the container's own
  network namespace). A host-network container has no interfaces of its own, so 0: its traffic is the
  host's and cannot be told apart.

MESSAGE is best effort and so are reports: a failed read or send is logged (once per task and kind
of failure, not every interval) and the next interval tries again. Counters are totals since the
container started, so a lost report loses nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, Final

from framework.model.usage import UsageReport, encode_usage

__all__ = ["DEFAULT_INTERVAL_S", "UsageSampler", "report_from_stats"]

log = logging.getLogger(__name__)

DEFAULT_INTERVAL_S: Final = 10.0
MIN_INTERVAL_S: Final = 0.2


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def report_from_stats(
    stats: Mapping[str, Any], *, task_id: str, container: str, timestamp: float
) -> UsageReport | None:
    """The usage report in one Docker stats document; None if it holds no figures (a stopped
    container answers an empty ``memory_stats`` and no ``cpu_usage``)."""
    cpu_stats = stats.get("cpu_stats") or {}
    cpu_usage = cpu_stats.get("cpu_usage") if isinstance(cpu_stats, Mapping) else None
    total_ns = _number(cpu_usage.get("total_usage")) if isinstance(cpu_usage, Mapping) else None
    memory_stats = stats.get("memory_stats") or {}
    usage = _number(memory_stats.get("usage")) if isinstance(memory_stats, Mapping) else None
    if total_ns is None and usage is None:
        return None
    memory = usage or 0.0
    detail = memory_stats.get("stats") if isinstance(memory_stats, Mapping) else None
    if isinstance(detail, Mapping):
        # cgroup v2 reports inactive_file, v1 total_inactive_file (docker CLI: calculateMemUsageUnixNoCache).
        for key in ("inactive_file", "total_inactive_file"):
            cache = _number(detail.get(key))
            if cache is not None:
                memory = memory - cache if cache < memory else memory
                break
    rx = tx = 0.0
    networks = stats.get("networks")
    if isinstance(networks, Mapping):
        for interface in networks.values():
            if isinstance(interface, Mapping):
                rx += _number(interface.get("rx_bytes")) or 0.0
                tx += _number(interface.get("tx_bytes")) or 0.0
    return UsageReport(
        task_id=task_id,
        container=container,
        timestamp=timestamp,
        cpu_seconds_total=(total_ns or 0.0) / 1e9,
        memory_bytes=max(0.0, memory),
        net_rx_bytes=rx,
        net_tx_bytes=tx,
    )


StatsReader = Callable[[str], Mapping[str, Any] | None]
"""``stats(container_id)``: one stats document, None if the container is gone."""
Targets = Callable[[], list[tuple[str, str]]]
"""``targets()``: (task id, container id) of every task whose container runs now."""
Send = Callable[[bytes], None]


class UsageSampler:
    """A thread that reports every running task's usage every ``interval_s`` until :meth:`stop`."""

    def __init__(
        self,
        targets: Targets,
        stats: StatsReader,
        send: Send,
        *,
        interval_s: float = DEFAULT_INTERVAL_S,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._targets = targets
        self._stats = stats
        self._send = send
        self._interval_s = max(MIN_INTERVAL_S, interval_s)
        self._wall_clock = wall_clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._complained: set[tuple[str, str]] = set()
        self.sent = 0
        """Reports handed to ``send`` without error (for tests and the executor's own log)."""

    @property
    def interval_s(self) -> float:
        return self._interval_s

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="usage-sampler", daemon=True)
            self._thread.start()

    def stop(self, timeout_s: float = 10.0) -> None:
        self._stop.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout_s)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.sample_once()

    def sample_once(self) -> int:
        """Read and send one report per running task now; how many were sent."""
        sent = 0
        for task_id, container_id in self._targets():
            try:
                stats = self._stats(container_id)
            except Exception as exc:  # the Docker SDK's and the socket's errors alike
                self._complain(task_id, "stats", f"cannot read the stats of {container_id[:12]}: {exc}")
                continue
            if stats is None:
                continue
            report = report_from_stats(
                stats, task_id=task_id, container=container_id, timestamp=self._wall_clock()
            )
            if report is None:
                continue
            try:
                self._send(encode_usage(report))
            except Exception as exc:  # NotSubscribed while the agent restarts, ConnectionLost, ...
                self._complain(task_id, "send", f"usage report not sent: {exc}")
                continue
            self._complained.discard((task_id, "send"))
            sent += 1
        self.sent += sent
        return sent

    def _complain(self, task_id: str, what: str, message: str) -> None:
        key = (task_id, what)
        if key in self._complained:
            log.debug("task %s: %s", task_id, message)
        else:
            self._complained.add(key)
            log.warning("task %s: %s (further failures logged at debug)", task_id, message)
