"""The life of one task: the transition table, how updates change a record, restart backoff and
the circuit breaker.

Two kinds of state change, handled differently (style anchor 4, after h11's Local/Remote split):

* **Remote** changes arrive as status updates. The master is the truth: whatever it reports is
  applied, even when the table below does not expect it (a duplicate, TASK_UNREACHABLE -> RUNNING
  after a partition heals, a TASK_LOST answer for a task that is in fact running, MESOS-6250). An
  unexpected one is returned as an ``ODD`` outcome with a note, for the caller to log and count.
  The one exception is a *stale* update that would move a task backwards through its launch
  sequence (STARTING after RUNNING): Mesos delivers each task's updates in order, so such an update
  can only be an old answer overtaken by a newer one, and it is ignored (and noted) rather than
  undoing what is known (protocol brief 4.9: "Ignore an update whose state is older").
* **Local** changes are Steward's own decisions (today: abandoning a launch whose ACCEPT failed).
  One that the local table does not allow raises :class:`InvalidTransition`: that is a bug in the
  core, not an event in the world.

Restart backoff follows Marathon (``initial * factor**(n-1)``, capped), per service, and grows only
for failures the service itself caused: never for agent loss, partitions, TASK_GONE/DROPPED, kills
Steward asked for, or a startd that exits by itself after idling (TASK_FINISHED).

Pure: records in, records out; ``now`` is passed in.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final

import msgspec

from framework.config.model import RestartBackoffConfig, ServiceKind
from framework.model.proto import TaskState, TaskStatus
from framework.model.tasks import AgentId, LocalState, Phase, TaskId, TaskRecord

__all__ = [
    "ALL_PHASES",
    "LOCAL_TRANSITIONS",
    "TRANSITIONS",
    "Applied",
    "InvalidTransition",
    "RestartBackoff",
    "UpdateKind",
    "apply_local",
    "apply_status",
    "breaker_open",
    "classify",
    "grows_backoff",
    "next_backoff",
    "restored",
    "same_when_restored",
]

S = TaskState
LAUNCHING = LocalState.LAUNCHING

ALL_PHASES: Final[tuple[Phase, ...]] = (LAUNCHING, *TaskState)
"""Every state a record can be in: Steward's local ones first, then every Mesos TaskState."""

# Expected remote transitions: for each state a record can be in, the states an update may bring
# without surprise. Anything else is accepted as truth but reported as odd (or ignored if stale).
# TASK_LOST never appears as expected: Steward registers PARTITION_AWARE, for which Mesos reports
# TASK_UNREACHABLE / TASK_GONE / TASK_GONE_BY_OPERATOR / TASK_DROPPED / TASK_UNKNOWN instead.
TRANSITIONS: Final[Mapping[Phase, frozenset[TaskState]]] = {
    LAUNCHING: frozenset(
        {
            S.TASK_STAGING,  # a reconciliation answer: the master has it, the agent has not started it
            S.TASK_STARTING,  # the executor is starting it: the usual first update
            S.TASK_RUNNING,  # the executor skipped STARTING (the Docker executor may)
            S.TASK_KILLING,  # Steward killed it right after launching (TASK_KILLING_STATE capability)
            S.TASK_FINISHED,  # it ran and exited 0 while Steward was away; the reconcile answer is final
            S.TASK_FAILED,  # the container did not start (REASON_CONTAINER_LAUNCH_FAILED, image pull)
            S.TASK_KILLED,  # killed during launch (REASON_TASK_KILLED_DURING_LAUNCH)
            S.TASK_ERROR,  # the master rejected the TaskInfo (REASON_TASK_INVALID / _UNAUTHORIZED)
            S.TASK_DROPPED,  # the offer was rescinded or invalid (REASON_INVALID_OFFERS): never started
            S.TASK_UNREACHABLE,  # the agent was partitioned between ACCEPT and start
            S.TASK_GONE,  # the agent restarted with a new ID before the task started
            S.TASK_GONE_BY_OPERATOR,  # the operator marked the agent gone
            S.TASK_UNKNOWN,  # explicit reconcile: the master never saw the ACCEPT (it was lost)
        }
    ),
    S.TASK_STAGING: frozenset(
        {
            S.TASK_STARTING,  # the executor took it
            S.TASK_RUNNING,  # the executor took it and skipped STARTING
            S.TASK_KILLING,  # a kill reached the executor before the start completed
            S.TASK_FINISHED,  # a very short task: its intermediate updates were coalesced by a reconcile
            S.TASK_FAILED,  # the container could not be created (image, volumes, devices)
            S.TASK_KILLED,  # killed before delivery to an executor (REASON_TASK_KILLED_DURING_LAUNCH)
            S.TASK_ERROR,  # the agent rejected the task (validation, authorization)
            S.TASK_DROPPED,  # the agent dropped it before starting (shutting down, transient error)
            S.TASK_UNREACHABLE,  # the agent was partitioned while it staged
            S.TASK_GONE,  # the agent restarted with a new ID
            S.TASK_GONE_BY_OPERATOR,  # the operator marked the agent gone
        }
    ),
    S.TASK_STARTING: frozenset(
        {
            S.TASK_RUNNING,  # started
            S.TASK_KILLING,  # a kill arrived while starting
            S.TASK_FINISHED,  # exited 0 before RUNNING was reported
            S.TASK_FAILED,  # crashed while starting
            S.TASK_KILLED,  # killed while starting
            S.TASK_UNREACHABLE,  # the agent was partitioned
            S.TASK_GONE,  # the agent restarted with a new ID
            S.TASK_GONE_BY_OPERATOR,  # the operator marked the agent gone
        }
    ),
    S.TASK_RUNNING: frozenset(
        {
            S.TASK_RUNNING,  # a health verdict (REASON_TASK_HEALTH_CHECK_STATUS_UPDATED), a reconcile answer
            S.TASK_KILLING,  # a kill (Steward's, an operator's, a failed health check's) began
            S.TASK_FINISHED,  # exited 0 (normal for a startd that idled out)
            S.TASK_FAILED,  # exited non-zero, OOM (REASON_CONTAINER_LIMITATION_MEMORY), executor died
            S.TASK_KILLED,  # killed without a TASK_KILLING first (no grace, or an older executor)
            S.TASK_UNREACHABLE,  # the agent was partitioned (REASON_AGENT_REMOVED); it may still run
            S.TASK_GONE,  # the agent restarted with a new ID: definitely not running
            S.TASK_GONE_BY_OPERATOR,  # the operator marked the agent gone
        }
    ),
    S.TASK_KILLING: frozenset(
        {
            S.TASK_FINISHED,  # exited 0 within the grace period (a drained startd)
            S.TASK_FAILED,  # exited non-zero on SIGTERM
            S.TASK_KILLED,  # the kill completed
            S.TASK_UNREACHABLE,  # the agent was partitioned mid-kill (the kill resumes on re-registration)
            S.TASK_GONE,  # the agent restarted with a new ID
            S.TASK_GONE_BY_OPERATOR,  # the operator marked the agent gone
        }
    ),
    S.TASK_UNREACHABLE: frozenset(
        {
            S.TASK_STAGING,  # the agent re-registered (REASON_AGENT_REREGISTERED); the task had not started
            S.TASK_STARTING,  # the agent re-registered while the task was starting
            S.TASK_RUNNING,  # the agent re-registered; the task ran all along
            S.TASK_KILLING,  # the agent re-registered and a pending kill is under way
            S.TASK_FINISHED,  # it ended while partitioned; the agent reports it on re-registration
            S.TASK_FAILED,  # it failed while partitioned
            S.TASK_KILLED,  # a pending kill completed on re-registration
            S.TASK_UNREACHABLE,  # a reconciliation answer repeating what is known
            S.TASK_GONE,  # the agent came back with a new ID, or the master gave up on it
            S.TASK_GONE_BY_OPERATOR,  # the operator marked the unreachable agent gone
            S.TASK_UNKNOWN,  # the master garbage-collected the unreachable agent (registry age)
        }
    ),
    S.TASK_UNKNOWN: frozenset(
        {
            S.TASK_STAGING,  # the agent re-registered after a master failover with the task staging
            S.TASK_STARTING,  # ... starting
            S.TASK_RUNNING,  # ... running
            S.TASK_KILLING,  # ... being killed
            S.TASK_FINISHED,  # ... and reports that it finished meanwhile
            S.TASK_FAILED,  # ... that it failed meanwhile
            S.TASK_KILLED,  # ... that it was killed meanwhile
            S.TASK_UNREACHABLE,  # the master now knows the agent but cannot reach it
            S.TASK_GONE,  # the master now knows the agent is gone
            S.TASK_GONE_BY_OPERATOR,  # the operator marked the agent gone
        }
    ),
    S.TASK_LOST: frozenset(
        {
            S.TASK_STARTING,  # "may come back": the agent re-registered with the task starting
            S.TASK_RUNNING,  # ... running after all (MESOS-6250: LOST during master failover)
            S.TASK_KILLING,  # ... being killed
            S.TASK_FINISHED,  # ... and it finished meanwhile
            S.TASK_FAILED,  # ... it failed meanwhile
            S.TASK_KILLED,  # ... it was killed meanwhile
            S.TASK_UNREACHABLE,  # a partition-aware answer for the same partition
            S.TASK_GONE,  # the agent is definitely gone
            S.TASK_GONE_BY_OPERATOR,  # the operator marked the agent gone
        }
    ),
    S.TASK_GONE_BY_OPERATOR: frozenset(
        {
            S.TASK_STARTING,  # the operator was wrong: the agent came back with the task starting
            S.TASK_RUNNING,  # ... running (Mesos: "might return to RUNNING")
            S.TASK_KILLING,  # ... being killed
            S.TASK_FINISHED,  # ... and it finished meanwhile
            S.TASK_FAILED,  # ... it failed meanwhile
            S.TASK_KILLED,  # ... it was killed meanwhile
            S.TASK_GONE,  # the master confirmed the agent is gone
        }
    ),
    # Terminal for good: nothing is expected after these. A later update (for example RUNNING after
    # TASK_KILLED) is odd; it is still applied, and the task is then treated as live again.
    S.TASK_FINISHED: frozenset(),
    S.TASK_FAILED: frozenset(),
    S.TASK_KILLED: frozenset(),
    S.TASK_ERROR: frozenset(),
    S.TASK_DROPPED: frozenset(),
    S.TASK_GONE: frozenset(),
}

# Transitions Steward makes by itself, without an update. Anything else raises InvalidTransition.
LOCAL_TRANSITIONS: Final[Mapping[Phase, frozenset[Phase]]] = {
    LAUNCHING: frozenset(
        {
            S.TASK_DROPPED,  # the ACCEPT (or the store write before it) failed: the launch never happened
        }
    ),
}

# The launch sequence: an update that would move a task backwards through it is stale.
_LAUNCH_RANK: Final[Mapping[Phase, int]] = {
    LAUNCHING: 0,
    S.TASK_STAGING: 1,
    S.TASK_STARTING: 2,
    S.TASK_RUNNING: 3,
    S.TASK_KILLING: 4,
}


class InvalidTransition(Exception):
    """Steward tried to move a task along an edge its local table does not have (a core bug)."""

    def __init__(self, task_id: TaskId, start: Phase, finish: Phase, story: str) -> None:
        super().__init__(
            f"task {task_id}: invalid local transition {start.value} -> {finish.value} ({story})"
        )
        self.task_id = task_id
        self.start = start
        self.finish = finish
        self.story = story


class UpdateKind(enum.Enum):
    """How an update relates to what was known."""

    EXPECTED = "expected"
    """An edge of ``TRANSITIONS``."""
    DUPLICATE = "duplicate"
    """The same state again (other than RUNNING, which repeats with health verdicts)."""
    ODD = "odd"
    """Not expected, applied anyway: the master is the truth."""
    STALE = "stale"
    """Backwards through the launch sequence: ignored."""


def classify(start: Phase, finish: TaskState) -> UpdateKind:
    """What an update to ``finish`` means for a task in ``start``."""
    if finish in TRANSITIONS[start]:
        return UpdateKind.EXPECTED
    if start is finish:
        return UpdateKind.DUPLICATE
    start_rank = _LAUNCH_RANK.get(start)
    finish_rank = _LAUNCH_RANK.get(finish)
    if start_rank is not None and finish_rank is not None and finish_rank < start_rank:
        return UpdateKind.STALE
    return UpdateKind.ODD


@dataclass(frozen=True, slots=True)
class Applied:
    """A record after an update, and what kind of update it was (``note`` for odd/stale/duplicate)."""

    record: TaskRecord
    kind: UpdateKind
    note: str | None


def apply_status(record: TaskRecord, status: TaskStatus, now: float) -> Applied:
    """The record as ``status`` leaves it.

    Health is only meaningful while RUNNING: a verdict is kept across RUNNING updates that carry
    none (a reconciliation answer) and cleared on any other state. ``running_since`` is the first
    time the task was seen RUNNING and survives a partition; ``unreachable_since`` is set on
    TASK_UNREACHABLE and cleared when the task comes back. A task Steward had given up on
    (``replaced_at``) that comes back holds its slot again: if a replacement took the slot meanwhile,
    the slot now has a surplus, which the core resolves (keeping the running, older one).
    """
    start = record.state
    finish = status.state
    kind = classify(start, finish)
    if kind is UpdateKind.STALE:
        note = f"stale update {finish.value} ignored: the task is already {start.value}"
        return Applied(msgspec.structs.replace(record, last_update_at=now), kind, note)
    running = finish is S.TASK_RUNNING
    healthy: bool | None = None
    if running:
        healthy = status.healthy
        if healthy is None and start is S.TASK_RUNNING:
            healthy = record.healthy
    unhealthy_since: float | None = None
    if healthy is False:
        unhealthy_since = record.unhealthy_since if record.unhealthy_since is not None else now
    unreachable_since: float | None = None
    if finish is S.TASK_UNREACHABLE:
        unreachable_since = record.unreachable_since if record.unreachable_since is not None else now
    updated = msgspec.structs.replace(
        record,
        state=finish,
        healthy=healthy,
        unhealthy_since=unhealthy_since,
        running_since=record.running_since if record.running_since is not None or not running else now,
        unreachable_since=unreachable_since,
        replaced_at=record.replaced_at if finish in (S.TASK_UNREACHABLE, S.TASK_UNKNOWN) else None,
        last_update_at=now,
        agent_id=AgentId(status.agent_id.value) if status.agent_id is not None else record.agent_id,
        message=status.message if status.message is not None else record.message,
        reason=status.reason,
    )
    remark: str | None = None
    if kind is UpdateKind.ODD:
        remark = f"unexpected {start.value} -> {finish.value} reported by the master; applied"
    elif kind is UpdateKind.DUPLICATE:
        remark = f"duplicate {finish.value}"
    return Applied(updated, kind, remark)


def apply_local(record: TaskRecord, finish: Phase, now: float, why: str) -> TaskRecord:
    """Move ``record`` to ``finish`` on Steward's own decision; raises :class:`InvalidTransition`
    unless ``LOCAL_TRANSITIONS`` has the edge."""
    if finish not in LOCAL_TRANSITIONS.get(record.state, frozenset()):
        raise InvalidTransition(record.task_id, record.state, finish, why)
    return msgspec.structs.replace(record, state=finish, last_update_at=now, message=why, healthy=None)


def restored(record: TaskRecord, now: float) -> TaskRecord:
    """A record loaded from the store, its monotonic times re-based on this process's ``now``.

    Times written by another process mean nothing here; each duration (unreachable wait, unhealthy
    stretch, kill retry) starts again from the load. A pending kill is re-sent at the first chance.
    """

    def rebase(value: float | None) -> float | None:
        return None if value is None else now

    return msgspec.structs.replace(
        record,
        launched_at=now,
        running_since=rebase(record.running_since),
        last_update_at=None,
        unhealthy_since=rebase(record.unhealthy_since),
        unreachable_since=rebase(record.unreachable_since),
        replaced_at=rebase(record.replaced_at),
        kill_requested_at=rebase(record.kill_requested_at),
        kill_sent_at=None,
    )


def same_when_restored(stored: TaskRecord, new: TaskRecord) -> bool:
    """Whether writing ``new`` over ``stored`` would change nothing a restart uses: they differ at
    most in the values of times (``restored`` keeps only whether each is set), in when the latest
    update and the latest KILL came (never restored), and in the latest update's message and
    reason (for operators). A reconciliation answer that confirms what Steward knows is such an
    update: after a restart at site scale, writing each of them cost an fsync apiece."""
    return _restorable(stored) == _restorable(new)


def _restorable(record: TaskRecord) -> TaskRecord:
    return msgspec.structs.replace(restored(record, 0.0), message=None, reason=None)


# --- restart backoff ----------------------------------------------------------------------------

_INFRASTRUCTURE_REASONS: Final = frozenset(
    {
        "REASON_AGENT_DISCONNECTED",
        "REASON_AGENT_REMOVED",
        "REASON_AGENT_REMOVED_BY_OPERATOR",
        "REASON_AGENT_RESTARTED",
        "REASON_AGENT_UNKNOWN",
        "REASON_INVALID_OFFERS",
        "REASON_MASTER_DISCONNECTED",
        "REASON_RESOURCES_UNKNOWN",
    }
)
"""Reasons that blame the machine or the cluster, not the task: no backoff growth."""


@dataclass(frozen=True, slots=True)
class RestartBackoff:
    """A service's restart backoff: consecutive failures, the time before which nothing launches, and
    when the latest failure happened (only a task launched after it can prove the service healthy
    again and reset the backoff)."""

    failures: int = 0
    until: float | None = None
    last_failure_at: float | None = None

    def active(self, now: float) -> bool:
        return self.until is not None and now < self.until


def next_backoff(backoff: RestartBackoff, config: RestartBackoffConfig, now: float) -> RestartBackoff:
    """One more failure: delay ``initial * factor**(failures-1)``, at most ``max``, from ``now``."""
    failures = backoff.failures + 1
    exponent = min(failures - 1, 10_000)
    try:
        delay = config.initial_s * config.factor**exponent
    except OverflowError:
        delay = config.max_s
    return RestartBackoff(failures=failures, until=now + min(config.max_s, delay), last_failure_at=now)


def grows_backoff(record: TaskRecord, finish: TaskState, reason: str | None, kind: ServiceKind) -> bool:
    """Whether a task of a ``kind`` service ending in ``finish`` counts as a failure of the service.

    Not a failure: a kill Steward asked for; agent loss, partitions and their aftermath (LOST,
    DROPPED, GONE, GONE_BY_OPERATOR, UNKNOWN, and any state with an agent/master reason); a startd's
    TASK_FINISHED (an idle startd exits by itself, by design). A failure: FAILED and ERROR; KILLED
    that Steward did not ask for (an operator, or the executor after failed health checks); and
    FINISHED of any other kind (a site service is not supposed to exit).
    """
    if record.kill_requested_at is not None or (reason in _INFRASTRUCTURE_REASONS):
        return False
    if finish in (S.TASK_FAILED, S.TASK_ERROR, S.TASK_KILLED):
        return True
    if finish is S.TASK_FINISHED:
        return kind is not ServiceKind.STARTD
    return False


# --- circuit breaker ----------------------------------------------------------------------------


def breaker_open(running: int, unhealthy: int, *, max_unhealthy_fraction: float, min_unhealthy: int) -> bool:
    """Whether too much of a service is unhealthy at once for health kills to be trusted.

    When many tasks turn unhealthy together, the cause is rarely the tasks (an overloaded host, a
    dead upstream, a partition); killing them all turns a brownout into an outage (Marathon #3317).
    Open when at least ``min_unhealthy`` of ``running`` tasks are unhealthy and they are more than
    ``max_unhealthy_fraction`` of them; a lone unhealthy task is still replaced.
    """
    return unhealthy >= min_unhealthy and unhealthy > max_unhealthy_fraction * running
