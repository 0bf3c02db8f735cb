"""The latest usage report of each running task, as the Steward executors send them.

Reports arrive as executor MESSAGEs on the dispatcher thread (``handle_usage``); the exporter reads
the table at scrape time and shows only tasks the state snapshot still has, so the series of a task
that ended disappears with it. The table forgets a task when its terminal update is handled and,
as a backstop, entries nobody refreshed for ``stale_after_s``; it never holds more than
``capacity`` tasks (a flood of reports for made-up task IDs cannot grow it without bound).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from framework.model.usage import UsageError, UsageReport, decode_usage

__all__ = ["UsageEntry", "UsageTable"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class UsageEntry:
    """The latest report of one task, with where it came from and when it arrived."""

    report: UsageReport
    agent_id: str
    executor_id: str
    received_at: float
    """Monotonic seconds of this process."""


class UsageTable:
    """Thread-safe ``task_id -> UsageEntry``."""

    def __init__(
        self,
        *,
        capacity: int = 20_000,
        stale_after_s: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._capacity = capacity
        self._stale_after_s = stale_after_s
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[str, UsageEntry] = {}
        self.rejected = 0
        """Messages that were not usage reports, or did not fit (counted, logged at debug)."""

    def handle_usage(self, agent_id: str, executor_id: str, data: bytes) -> None:
        """Keep ``data``'s report unless it is malformed or older than the one kept; never raises."""
        try:
            report = decode_usage(data)
        except UsageError as exc:
            with self._lock:
                self.rejected += 1
            log.debug("message from executor %s on agent %s ignored: %s", executor_id, agent_id, exc)
            return
        now = self._clock()
        with self._lock:
            kept = self._entries.get(report.task_id)
            if kept is not None and kept.report.timestamp > report.timestamp:
                return
            if kept is None and len(self._entries) >= self._capacity:
                self._drop_stale(now)
                if len(self._entries) >= self._capacity:
                    self.rejected += 1
                    return
            self._entries[report.task_id] = UsageEntry(report, agent_id, executor_id, now)

    def forget(self, task_id: str) -> None:
        with self._lock:
            self._entries.pop(task_id, None)

    def entries(self) -> dict[str, UsageEntry]:
        """A copy of the table (stale entries dropped first)."""
        with self._lock:
            self._drop_stale(self._clock())
            return dict(self._entries)

    def _drop_stale(self, now: float) -> None:
        limit = now - self._stale_after_s
        for task_id in [t for t, e in self._entries.items() if e.received_at < limit]:
            del self._entries[task_id]
