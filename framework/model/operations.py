"""Imperatives the scheduler core hands to the runtime: what to send to the master or the store.

``SchedulerState.handle`` returns a list of these. The runtime executes them **in list order**; the
order carries the write-ahead rules:

* ``PersistTasks`` / ``ForgetTasks`` come before the ``Launch`` whose records they hold (a crash
  after the ACCEPT but before the write would leave a task Steward does not know) and before the
  ``Acknowledge`` of the update they record (acknowledge only what is stored);
* ``PersistFrameworkId`` comes first after a SUBSCRIBED.

If a store write fails, the runtime reports ``CallFailed`` for it and skips what would act on
unwritten records (later writes, launches, kills and acknowledgements; a skipped launch's offers
are declined instead, so the master offers them again), while declines, SUPPRESS/REVIVE and
reconciliation still go out; the core then abandons the launches it held. A failed master call is
reported as ``CallFailed`` and the rest of the list still runs.

Values only: frozen, slotted dataclasses. ``op.match(field=value, ...)`` compares a subset of fields,
for tests (as dask's ``Instruction.match``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from framework.model.proto import TaskInfo, TaskStatus
from framework.model.tasks import AgentId, OfferId, TaskId, TaskRecord

__all__ = [
    "Acknowledge",
    "Decline",
    "ForgetTasks",
    "Kill",
    "Launch",
    "Operation",
    "PersistFrameworkId",
    "PersistTasks",
    "Reconcile",
    "Revive",
    "Suppress",
]


class _Matchable:
    """Mixin: partial equality for tests."""

    __slots__ = ()

    def match(self, **fields: Any) -> bool:
        """True when every named field equals the given value (unknown names raise AttributeError)."""
        return all(getattr(self, name) == value for name, value in fields.items())


@dataclass(frozen=True, slots=True)
class Launch(_Matchable):
    """ACCEPT ``offer_ids`` (one agent, one role) with one LAUNCH of ``task_infos``.

    ``refuse_seconds`` is the filter for the offer's unused remainder."""

    offer_ids: tuple[OfferId, ...]
    agent_id: AgentId
    role: str
    task_infos: tuple[TaskInfo, ...]
    refuse_seconds: float

    @property
    def task_ids(self) -> tuple[TaskId, ...]:
        return tuple(TaskId(t.task_id.value) for t in self.task_infos)


@dataclass(frozen=True, slots=True)
class Decline(_Matchable):
    """DECLINE ``offer_ids`` with a ``refuse_seconds`` filter; ``reasons[i]`` explains ``offer_ids[i]``."""

    offer_ids: tuple[OfferId, ...]
    refuse_seconds: float
    reasons: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Kill(_Matchable):
    """KILL a task with a KillPolicy of ``grace_period_s`` (re-sent until a terminal update)."""

    task_id: TaskId
    agent_id: AgentId | None
    grace_period_s: float
    reason: str


@dataclass(frozen=True, slots=True)
class Suppress(_Matchable):
    """SUPPRESS offers for ``roles`` (never empty: the core names the roles)."""

    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Revive(_Matchable):
    """REVIVE ``roles`` (never empty): un-suppress them and clear their decline filters."""

    roles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Acknowledge(_Matchable):
    """ACKNOWLEDGE ``status`` (it has a uuid and an agent_id; echo them exactly)."""

    status: TaskStatus


@dataclass(frozen=True, slots=True)
class Reconcile(_Matchable):
    """RECONCILE: explicit for ``tasks`` (task, agent) pairs, or implicit (``tasks`` empty)."""

    tasks: tuple[tuple[TaskId, AgentId | None], ...]
    implicit: bool


@dataclass(frozen=True, slots=True)
class PersistTasks(_Matchable):
    """Store these records (insert or replace by task id) before the operations that follow."""

    records: tuple[TaskRecord, ...]


@dataclass(frozen=True, slots=True)
class ForgetTasks(_Matchable):
    """Delete these records from the store (the tasks ended)."""

    task_ids: tuple[TaskId, ...]


@dataclass(frozen=True, slots=True)
class PersistFrameworkId(_Matchable):
    """Store the framework ID the master assigned (or confirmed)."""

    framework_id: str


Operation = (
    Launch
    | Decline
    | Kill
    | Suppress
    | Revive
    | Acknowledge
    | Reconcile
    | PersistTasks
    | ForgetTasks
    | PersistFrameworkId
)
"""Everything ``SchedulerState.handle`` may return."""
