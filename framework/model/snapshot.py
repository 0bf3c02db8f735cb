"""A frozen picture of the scheduler core, for metrics, the operator API and tests.

``SchedulerState.snapshot()`` returns a :class:`StateSnapshot`. It lives in the model layer so that
the metrics exporter and the API read it without importing the core (style anchor 14). Counts are
computed with the same predicates the core decides with (``framework.model.tasks``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from framework.model.tasks import TaskId, TaskRecord

__all__ = ["Note", "ServiceSnapshot", "StateSnapshot"]


@dataclass(frozen=True, slots=True)
class Note:
    """Something worth logging that is not an error: an odd update from the master, a kill held
    back by the rate limit, an unknown task adopted. ``kind`` is a short stable key (also counted)."""

    at: float
    kind: str
    text: str
    task_id: TaskId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSnapshot:
    """One service's numbers."""

    name: str
    kind: str
    role: str
    desired: int
    """Instances wanted now (per-host services: eligible hosts)."""
    desired_reason: str
    """Where ``desired`` comes from (``"instances: 3"``, ``"autoscale min"``, a target's reason)."""
    counting: int
    """Tasks holding a slot (launching, staging, running, unreachable not yet replaced)."""
    launching: int
    """Launch decided, no update yet."""
    staging: int
    """TASK_STAGING or TASK_STARTING."""
    running: int
    """TASK_RUNNING and holding a slot."""
    unhealthy: int
    """Running and reported unhealthy."""
    killing: int
    """Being killed (by Steward, or TASK_KILLING)."""
    unreachable: int
    """TASK_UNREACHABLE (replaced or not)."""
    pending: int
    """Instances still to launch (``desired - counting``, at least 0)."""
    backoff_until: float | None
    """No launch before this time (None: no backoff)."""
    restart_failures: int
    """Consecutive failures feeding the restart backoff."""
    breaker_open: bool
    """Health kills are stopped: too large a share of the service is unhealthy at once."""
    endpoints: tuple[str, ...]
    """Published ``host:port`` endpoints (squid services)."""
    restart_pending: int = 0
    """Tasks a rolling restart still has to replace (0: no restart in progress)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class StateSnapshot:
    """The whole core at one ``now``."""

    taken_at: float
    framework_id: str | None
    connected: bool
    reconciled: bool
    """Reconciliation after the latest SUBSCRIBED has finished (kills and scale-down allowed)."""
    services: tuple[ServiceSnapshot, ...]
    tasks: tuple[TaskRecord, ...]
    endpoints: Mapping[str, tuple[str, ...]]
    """Published endpoints by service (only services that publish any)."""
    suppressed_roles: frozenset[str]
    decline_reasons: Mapping[str, int]
    """Declines of the latest offer batch, counted by reason category (``"no demand"``...)."""
    counters: Mapping[str, int]
    """Running totals since start (``launches``, ``kills``, ``odd_update``, ``kill_rate_limited``...)."""
    notes: tuple[Note, ...]
    """The most recent notes, oldest first."""
    declines_by_reason: Mapping[str, int] = field(default_factory=dict)
    """Declined offers since start, counted by reason category (running totals, unlike
    ``decline_reasons``)."""
    reconciliation_s: float | None = None
    """How long the latest finished reconciliation took, SUBSCRIBED to the last task's answer
    (None: none finished yet)."""

    def service(self, name: str) -> ServiceSnapshot:
        """The snapshot of ``name``; ``KeyError`` if it is not configured."""
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)
