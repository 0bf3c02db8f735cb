"""What only the runtime sees go by: launches, kills and failures per service, launch-to-RUNNING
latency, and the executors' usage reports.

The state snapshot says what *is* (tasks, counts, backoff); these are things that *happened* and
leave no trace in it (a task that failed is forgotten, a KILL is an operation, not a state). The
runtime's ``CoreScheduler`` owns one :class:`Activity` and calls :meth:`Activity.handled` after
each event the core handled, on the dispatcher thread; the exporter reads :meth:`Activity.snapshot`
from scrape threads. Updates are a few dictionary increments under a lock, nothing else: the metric
families are built at scrape time (``framework.metrics.exporter``), which is also the only module
that imports ``prometheus_client``.
"""

from __future__ import annotations

import bisect
import logging
import re
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Final

from framework.metrics.usage import UsageTable
from framework.model.events import Event, StatusUpdated
from framework.model.operations import Kill, Launch, Operation
from framework.model.proto import TaskState
from framework.model.tasks import TaskRecord, ends_task, parse_task_id

__all__ = [
    "LAUNCH_LATENCY_BUCKETS",
    "Activity",
    "ActivitySnapshot",
    "Histogram",
    "kill_category",
    "reason_label",
]

log = logging.getLogger(__name__)

LAUNCH_LATENCY_BUCKETS: Final = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0)
"""Upper bounds (seconds) of the launch-to-RUNNING histogram: a process starts in under a second,
a container whose image is cached in seconds, a pulled image or a CVMFS mount in minutes."""

_KILL_CATEGORIES: Final = (
    ("scale down", "scale_down"),
    ("unhealthy for", "unhealthy"),
    ("duplicate in slot", "duplicate"),
    ("second ", "duplicate"),
    ("cvmfs restarted", "dependency"),
    ("host ", "host_not_needed"),
    ("rolling restart", "restart"),
    ("unknown task", "unknown_task"),
    ("service ", "unconfigured"),
)
"""Prefixes of the core's kill reasons (``SchedulerState._request_kill``) -> a short stable label.
The reasons carry counts and host names; labels must not (each value is a time series)."""

_REASON_RE: Final = re.compile(r"REASON_[A-Z0-9_]{1,60}")


def kill_category(reason: str) -> str:
    """The label of a kill reason: ``"scale down to 3"`` -> ``"scale_down"``; ``"other"`` if unknown."""
    for prefix, category in _KILL_CATEGORIES:
        if reason.startswith(prefix):
            return category
    return "other"


def reason_label(reason: str | None) -> str:
    """A ``TaskStatus.reason`` as a label: the Mesos enum name, ``"none"``, or ``"other"`` for
    anything that is not one (agents are not trusted to keep label values few)."""
    if reason is None:
        return "none"
    return reason if _REASON_RE.fullmatch(reason) else "other"


@dataclass(frozen=True, slots=True)
class Histogram:
    """Observations in ``LAUNCH_LATENCY_BUCKETS``: ``counts[i]`` fell in bucket ``i`` (not
    cumulative), the last entry past the largest bound."""

    counts: tuple[int, ...]
    total: float
    """Sum of the observations."""

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self, bounds: Sequence[float] = LAUNCH_LATENCY_BUCKETS) -> list[tuple[str, int]]:
        """``(le, cumulative count)`` pairs as Prometheus buckets want them, ``+Inf`` last."""
        pairs: list[tuple[str, int]] = []
        running = 0
        for bound, count in zip((*(repr(float(b)) for b in bounds), "+Inf"), self.counts, strict=True):
            running += count
            pairs.append((bound, running))
        return pairs


@dataclass(frozen=True, slots=True)
class ActivitySnapshot:
    """Running totals since start, for the exporter (copies: safe to read on any thread)."""

    launches: Mapping[str, int]
    """Tasks sent in ACCEPT calls, by service."""
    failures: Mapping[tuple[str, str, str], int]
    """Tasks that ended other than finished or killed by Steward, by (service, state, reason)."""
    kills: Mapping[tuple[str, str], int]
    """KILL calls sent (re-sends included), by (service, reason category)."""
    launch_latency: Mapping[str, Histogram]
    """Seconds from the launch decision to the first TASK_RUNNING, by service."""


class _Buckets:
    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(LAUNCH_LATENCY_BUCKETS) + 1)
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(LAUNCH_LATENCY_BUCKETS, value)] += 1
        self.total += value


_STARTING: Final = frozenset({TaskState.TASK_STAGING, TaskState.TASK_STARTING})


class Activity:
    """Counts what the runtime did and saw. ``handled`` and ``handle_usage`` run on the dispatcher
    thread; ``snapshot`` and ``usage`` may be read from any thread."""

    def __init__(self, usage: UsageTable | None = None) -> None:
        self.usage = usage or UsageTable()
        self._lock = threading.Lock()
        self._launches: Counter[str] = Counter()
        self._failures: Counter[tuple[str, str, str]] = Counter()
        self._kills: Counter[tuple[str, str]] = Counter()
        self._latency: dict[str, _Buckets] = {}

    def handled(
        self, event: Event, operations: Sequence[Operation], before: TaskRecord | None, now: float
    ) -> None:
        """The core handled ``event`` at ``now`` and answered ``operations``; ``before`` is the
        record of the task a ``StatusUpdated`` is about, as it was before (None otherwise, or if
        the task was unknown)."""
        with self._lock:
            for op in operations:
                if isinstance(op, Launch):
                    for task_id in op.task_ids:
                        parsed = parse_task_id(task_id)
                        self._launches[parsed[0] if parsed else ""] += 1
                elif isinstance(op, Kill):
                    parsed = parse_task_id(op.task_id)
                    self._kills[(parsed[0] if parsed else "", kill_category(op.reason))] += 1
            if isinstance(event, StatusUpdated) and before is not None:
                self._status(event, before, now)
        if isinstance(event, StatusUpdated) and ends_task(event.status.state):
            self.usage.forget(event.status.task_id.value)

    def _status(self, event: StatusUpdated, before: TaskRecord, now: float) -> None:
        state = event.status.state
        if (
            state is TaskState.TASK_RUNNING
            and before.running_since is None
            and not before.adopted
            and (before.state in _STARTING or before.state.value == "LAUNCHING")
        ):
            buckets = self._latency.get(before.service)
            if buckets is None:
                buckets = self._latency[before.service] = _Buckets()
            buckets.observe(max(0.0, now - before.launched_at))
        elif ends_task(state):
            steward_killed = state is TaskState.TASK_KILLED and before.kill_requested_at is not None
            if state is not TaskState.TASK_FINISHED and not steward_killed:
                self._failures[(before.service, state.value, reason_label(event.status.reason))] += 1

    def handle_usage(self, agent_id: str, executor_id: str, data: bytes) -> None:
        """An executor MESSAGE: a usage report (see ``framework.model.usage``)."""
        self.usage.handle_usage(agent_id, executor_id, data)

    def snapshot(self) -> ActivitySnapshot:
        with self._lock:
            return ActivitySnapshot(
                launches=dict(self._launches),
                failures=dict(self._failures),
                kills=dict(self._kills),
                launch_latency={
                    service: Histogram(tuple(b.counts), b.total) for service, b in self._latency.items()
                },
            )
