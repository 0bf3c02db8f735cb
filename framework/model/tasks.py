"""What Steward remembers about each task it launched or adopted: one immutable ``TaskRecord``.

A record is created when the core decides a launch (state ``LAUNCHING``: Steward's own state, before
Mesos has said anything) and replaced by a new record on every status update; it is persisted by
the runtime (``PersistTasks``) before the launch is sent and before an update is acknowledged, and
dropped (``ForgetTasks``) once the task has ended. The records are the store's view of the world;
everything else the core knows (desired counts, backoff, endpoints) is derived from them and the
configuration.

Task IDs are ``<service>.<slot>.<suffix>``: the service's name (lower case, digits, ``-``/``_``, no
dot), the instance slot (a small integer, kept by a replacement so that "squid slot 1" survives a
restart of its task) and a short unique suffix so that no ID is ever reused (Mesos requires IDs to
be unique among live and unreachable tasks, and reusing an old one confuses reconciliation).

Times are monotonic seconds of the process that wrote the record (``now`` as the core receives it).
They are meaningless in another process: the core re-bases them when it loads records from the
store (see ``framework.core.lifecycle.restored``). The agent's wall-clock ``TaskStatus.timestamp``
is never used for durations.

This module is values only: no I/O, no clock, no configuration types.
"""

from __future__ import annotations

import enum
import re
from collections.abc import Mapping
from typing import Any, Final, NewType

import msgspec

from framework.model.proto import TaskState

__all__ = [
    "AgentId",
    "LocalState",
    "OfferId",
    "Phase",
    "TaskId",
    "TaskRecord",
    "counts_toward_desired",
    "ends_task",
    "is_live",
    "make_task_id",
    "parse_task_id",
    "record_from_builtins",
    "record_to_builtins",
]

TaskId = NewType("TaskId", str)
"""A Mesos task ID (``TaskID.value``) as Steward names them: ``<service>.<slot>.<suffix>``."""
AgentId = NewType("AgentId", str)
"""A Mesos agent ID (``AgentID.value``)."""
OfferId = NewType("OfferId", str)
"""A Mesos offer ID (``OfferID.value``)."""


class LocalState(enum.Enum):
    """States only Steward knows: a task between the launch decision and Mesos's first word on it."""

    LAUNCHING = "LAUNCHING"
    """The core decided the launch; the record is persisted before the ACCEPT is sent, and no
    status update has arrived yet (the master never sends TASK_STAGING itself)."""


Phase = TaskState | LocalState
"""Where a task is in its life: a Mesos ``TaskState`` or one of Steward's ``LocalState``s."""

_SERVICE_RE: Final = re.compile(r"[a-z][a-z0-9_-]{0,62}")
_SUFFIX_RE: Final = re.compile(r"[A-Za-z0-9_-]{1,32}")


def make_task_id(service: str, slot: int, suffix: str) -> TaskId:
    """``<service>.<slot>.<suffix>``; raises ``ValueError`` for parts that would make it ambiguous."""
    if not _SERVICE_RE.fullmatch(service):
        raise ValueError(f"not a service name usable in a task id: {service!r}")
    if slot < 0:
        raise ValueError(f"slot must be >= 0, got {slot}")
    if not _SUFFIX_RE.fullmatch(suffix):
        raise ValueError(f"task id suffix must be 1-32 letters, digits, '-' or '_', got {suffix!r}")
    return TaskId(f"{service}.{slot}.{suffix}")


def parse_task_id(task_id: str) -> tuple[str, int] | None:
    """``(service, slot)`` of an ID made by :func:`make_task_id`, or None for any other ID."""
    parts = task_id.split(".")
    if len(parts) != 3:
        return None
    service, slot, suffix = parts
    if not _SERVICE_RE.fullmatch(service) or not _SUFFIX_RE.fullmatch(suffix):
        return None
    if not slot.isdigit() or len(slot) > 6 or (len(slot) > 1 and slot[0] == "0"):
        return None
    return service, int(slot)


class TaskRecord(msgspec.Struct, frozen=True, kw_only=True, gc=False):
    """One task as Steward last knew it. Replace, never mutate (``msgspec.structs.replace``).

    A frozen ``msgspec.Struct`` rather than a dataclass: records are rebuilt on every status update
    and launch (tens of thousands during a reconciliation at site scale), and a Struct is built and
    replaced about ten times faster; it also encodes straight to JSON for the store.
    """

    task_id: TaskId
    service: str
    """Name of the service (a key of ``Config.services``; may be a removed service's name)."""
    slot: int
    """Instance slot within the service; ``-1`` for a task whose ID Steward cannot parse."""
    agent_id: AgentId | None
    """Agent the task was launched on (None only for an adopted task whose update had none)."""
    hostname: str
    """Agent's hostname ("" when unknown, e.g. adopted from a reconciliation answer)."""
    state: Phase
    """Latest state: ``LocalState.LAUNCHING`` until the first update, then Mesos's word."""
    healthy: bool | None = None
    """Latest health-check verdict while RUNNING (None: no check, or no verdict yet)."""
    launched_at: float
    """When the launch was decided (or the task adopted / reloaded)."""
    running_since: float | None = None
    """When it was first seen RUNNING (None: never yet)."""
    last_update_at: float | None = None
    """When the latest status update arrived."""
    unhealthy_since: float | None = None
    """Start of the current unhealthy stretch (None while healthy or unchecked)."""
    unreachable_since: float | None = None
    """When it became TASK_UNREACHABLE (None otherwise)."""
    replaced_at: float | None = None
    """When Steward gave up waiting for this unreachable task and freed its slot for a replacement.
    Such a task no longer counts toward the desired count; if it comes back, the surplus is killed."""
    ports: tuple[int, ...] = ()
    """Host ports claimed for the task, in the order given to it (``PORT0``, ``PORT1``...)."""
    cpus: float = 0.0
    """CPUs accepted for the task."""
    mem_mib: float = 0.0
    """Memory accepted for the task, MiB."""
    config_fingerprint: str = ""
    """Fingerprint of the service configuration the task was built from ("" when adopted)."""
    depends_on: TaskId | None = None
    """For a startd: the CVMFS task that was healthy on its host when it was placed. If that task
    goes away (restart, failure), this startd is drained and replaced."""
    kill_requested_at: float | None = None
    """When Steward decided to kill the task (None: not being killed by Steward)."""
    kill_reason: str | None = None
    """Why (``"scale down to 2"``, ``"cvmfs restarted on host"``...)."""
    kill_sent_at: float | None = None
    """When a KILL was last sent (the core re-sends it until a terminal update arrives)."""
    draining: bool = False
    """The kill is a drain (a startd asked to finish its jobs within its kill grace period)."""
    adopted: bool = False
    """Steward did not launch it in this store's memory: a reconciliation answer named it."""
    restart_requested: bool = False
    """An operator's rolling restart is to replace this task; stored, so that a restarted or
    failed-over Steward carries the restart on where it stopped."""
    message: str | None = None
    """``TaskStatus.message`` of the latest update (for operators)."""
    reason: str | None = None
    """``TaskStatus.reason`` of the latest update."""


_ENDED: Final[frozenset[Phase]] = frozenset(
    {s for s in TaskState if s.is_terminal} | {TaskState.TASK_UNKNOWN}
)
_NOT_HOLDING: Final[frozenset[Phase]] = _ENDED | {TaskState.TASK_KILLING}


def ends_task(state: Phase) -> bool:
    """Whether Steward stops tracking a task in this state: Mesos-terminal, or TASK_UNKNOWN (the
    master does not know it). A task that later comes back (TASK_LOST and TASK_GONE_BY_OPERATOR may)
    is handled as an unknown task: adopted or killed."""
    return state in _ENDED


def is_live(record: TaskRecord) -> bool:
    """The task may be running or about to run (including unreachable and being-killed tasks)."""
    return record.state not in _ENDED


def counts_toward_desired(record: TaskRecord) -> bool:
    """The task holds its slot: live, not being killed (by Steward or by itself), not given up on.

    This is the one predicate behind launch counts (``desired - counting``), slot occupancy and the
    per-service gauges, so the core and the metrics exporter never disagree.
    """
    return (
        record.state not in _NOT_HOLDING and record.kill_requested_at is None and record.replaced_at is None
    )


# --- persistence helpers ------------------------------------------------------------------------

_TUPLE_FIELDS: Final = frozenset({"ports"})


def record_to_builtins(record: TaskRecord) -> dict[str, Any]:
    """The record as JSON-ready builtins (states by name); inverse of :func:`record_from_builtins`."""
    data: dict[str, Any] = {}
    for name in TaskRecord.__struct_fields__:
        value = getattr(record, name)
        if isinstance(value, enum.Enum):
            value = value.value
        elif isinstance(value, tuple):
            value = list(value)
        data[name] = value
    return data


def record_from_builtins(data: Mapping[str, Any]) -> TaskRecord:
    """Rebuild a record from :func:`record_to_builtins` output; unknown keys are ignored (a newer
    Steward may have written more), missing optional ones take their defaults. Raises ``ValueError``
    (or ``TypeError``/``KeyError``) on a malformed record."""
    known = set(TaskRecord.__struct_fields__)
    values = {key: value for key, value in data.items() if key in known}
    state = values.get("state")
    values["state"] = LocalState(state) if state in {s.value for s in LocalState} else TaskState(str(state))
    for key in _TUPLE_FIELDS & values.keys():
        values[key] = tuple(values[key])
    return TaskRecord(**values)
