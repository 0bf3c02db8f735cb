"""Desired versus observed: which tasks must go, which endpoints are published, how much demand
each role has. Pure functions over task records; ``SchedulerState`` applies them (with the kill-rate
limit and the reconciliation gate) and turns them into operations.

Kill decisions and their reasons, by rule:

* **surplus** (desired lowered): the victims are chosen by a :data:`VictimChooser` hook, by default
  :func:`choose_victims` (not-yet-running first, then unreachable, then unhealthy, then idle ones,
  youngest first, and the busy ones last: startds running a job, as the load source reports them);
  a startd's kill is a drain (SIGTERM, HTCondor's graceful shutdown);
* **duplicate in a slot** (an unreachable or lost task came back after its replacement started, or
  an adopted task): keep the best of the slot (running over starting, then the older), kill the rest;
* **dependency**: a startd whose CVMFS task (``depends_on``) is gone is drained and replaced;
* **health**: a task unhealthy for ``consecutive_failures * interval`` is killed, unless the
  service's circuit breaker is open (``framework.core.lifecycle.breaker_open``) or the task is
  unreachable (it is then not RUNNING, so never health-killed);
* **unknown service**: tasks of a service no longer configured.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from framework.config.model import Config, HealthCheckConfig, ServiceConfig, ServiceKind
from framework.model.proto import TaskState
from framework.model.tasks import LocalState, TaskRecord, counts_toward_desired

__all__ = [
    "ServiceCounts",
    "VictimChooser",
    "choose_victims",
    "count_service",
    "health_kill_due",
    "published_endpoints",
    "slot_survivor",
    "unhealthy_for_s",
]

VictimChooser = Callable[[Sequence[TaskRecord], int, frozenset[str]], list[TaskRecord]]
"""``(candidates, count, busy) -> victims``: which ``count`` of a service's counting tasks to kill
when it scales down, ``busy`` naming the tasks known to have work. A hook for other policies."""

_NOT_YET_RUNNING = (LocalState.LAUNCHING, TaskState.TASK_STAGING, TaskState.TASK_STARTING)


def _age_key(record: TaskRecord) -> float:
    """When the task started its current life: RUNNING time, else launch time."""
    return record.running_since if record.running_since is not None else record.launched_at


def choose_victims(
    candidates: Sequence[TaskRecord], count: int, busy: frozenset[str] = frozenset()
) -> list[TaskRecord]:
    """The default scale-down choice: tasks that have not started yet (cheapest to lose, youngest
    first), then unreachable ones, then unhealthy ones, then the youngest running ones without
    work, and last the running ones ``busy`` names (a startd running a job: its kill is a drain
    that waits for the job, so an idle startd is always the better victim)."""

    def rank(record: TaskRecord) -> tuple[int, float, str]:
        if record.state in _NOT_YET_RUNNING:
            group = 0
        elif record.state is TaskState.TASK_UNREACHABLE:
            group = 1
        elif record.healthy is False:
            group = 2
        elif record.task_id not in busy:
            group = 3
        else:
            group = 4
        return group, -_age_key(record), record.task_id

    if count <= 0:
        return []
    return sorted(candidates, key=rank)[:count]


def slot_survivor(records: Sequence[TaskRecord]) -> TaskRecord:
    """Of several counting tasks in one slot, the one to keep: running (healthy first) over not yet
    running, then the oldest; the rest are surplus."""

    def rank(record: TaskRecord) -> tuple[int, int, float, str]:
        running = record.state is TaskState.TASK_RUNNING
        return (0 if running else 1, 1 if record.healthy is False else 0, _age_key(record), record.task_id)

    return min(records, key=rank)


def unhealthy_for_s(check: HealthCheckConfig) -> float:
    """How long a task may stay unhealthy before Steward kills it: the configured number of failed
    checks in a row, at the check interval."""
    return check.consecutive_failures * check.interval_s


def health_kill_due(record: TaskRecord, service: ServiceConfig, now: float) -> bool:
    """The task is RUNNING (so reachable), counting, and has been unhealthy for long enough."""
    check = service.health_check
    return (
        check is not None
        and record.state is TaskState.TASK_RUNNING
        and record.healthy is False
        and record.unhealthy_since is not None
        and now - record.unhealthy_since >= unhealthy_for_s(check)
        and counts_toward_desired(record)
    )


def is_serving(record: TaskRecord, service: ServiceConfig) -> bool:
    """RUNNING, holding its slot (not being killed), and healthy if the service has a check."""
    if record.state is not TaskState.TASK_RUNNING or not counts_toward_desired(record):
        return False
    return record.healthy is True if service.health_check is not None else record.healthy is not False


def published_endpoints(config: Config, tasks: Iterable[TaskRecord]) -> dict[str, tuple[str, ...]]:
    """``host:port`` of every serving squid, by service, sorted. A squid being killed is dropped
    first, so clients stop being sent to it before it goes."""
    squids = {n: s for n, s in config.services.items() if s.kind is ServiceKind.SQUID}
    found: dict[str, list[str]] = {}
    for record in tasks:
        service = squids.get(record.service)
        if service is None or not record.ports or not record.hostname or not is_serving(record, service):
            continue
        found.setdefault(record.service, []).append(f"{record.hostname}:{record.ports[0]}")
    return {name: tuple(sorted(endpoints)) for name, endpoints in found.items()}


@dataclass(frozen=True, slots=True)
class ServiceCounts:
    """Tasks of one service by what they are doing (each task in exactly one of the first five)."""

    launching: int = 0
    staging: int = 0
    running: int = 0
    killing: int = 0
    unreachable: int = 0
    counting: int = 0
    unhealthy: int = 0

    @classmethod
    def of(cls, records: Iterable[TaskRecord]) -> ServiceCounts:
        return count_service(records)


def count_service(records: Iterable[TaskRecord]) -> ServiceCounts:
    """Count one service's records (see :class:`ServiceCounts`)."""
    tally: Counter[str] = Counter()
    for record in records:
        counting = counts_toward_desired(record)
        if counting:
            tally["counting"] += 1
        if record.state is TaskState.TASK_UNREACHABLE:
            tally["unreachable"] += 1
        elif not counting:
            tally["killing"] += 1
        elif record.state is LocalState.LAUNCHING:
            tally["launching"] += 1
        elif record.state in (TaskState.TASK_STAGING, TaskState.TASK_STARTING):
            tally["staging"] += 1
        elif record.state is TaskState.TASK_RUNNING:
            tally["running"] += 1
            if record.healthy is False:
                tally["unhealthy"] += 1
    return ServiceCounts(**tally)


def group_by_slot(records: Iterable[TaskRecord]) -> Mapping[int, list[TaskRecord]]:
    """Counting records by slot."""
    slots: dict[int, list[TaskRecord]] = {}
    for record in records:
        if counts_toward_desired(record):
            slots.setdefault(record.slot, []).append(record)
    return slots
