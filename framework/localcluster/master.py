"""The embedded master's decision logic: a state machine that does no I/O.

Every input is a method call that takes ``now`` (seconds on a monotonic clock) and returns *effects*:
"send this event on that stream", "close that stream", "tell agent A to launch these tasks", and so
on. The cluster runtime (``framework.localcluster.cluster``) owns one ``Master`` on one thread, feeds
it the inputs (HTTP calls, stream closures, agent messages, the passage of time) and carries out the
effects. Unit tests drive it directly with a fake clock.

The behaviour follows the Mesos master (``src/master/master.cpp``, ``http.cpp``, ``validation.cpp``
at the commit the protocol brief names) wherever a framework could observe a difference: the HTTP
status codes and their plain-text bodies, subscription and failover rules, which task state a
framework gets in which situation (partition-aware or not), reconciliation answers, invalid launches
answered with TASK_ERROR / TASK_LOST / TASK_DROPPED, refusal filters, offer rescinds, heartbeats.
Documented simplifications: no authentication or authorization, no reservations, persistent volumes,
quota, weights or maintenance (inverse offers are never generated), no offer constraints, and
non-launch offer operations (RESERVE, CREATE, ...) are dropped with a log line.
"""

from __future__ import annotations

import base64
import binascii
import heapq
import logging
import math
import re
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import msgspec

from framework.localcluster.allocator import MAX_REFUSE_SECONDS, Allocation, Allocator
from framework.localcluster.resources import Resources
from framework.mesos.wire import (
    Accept,
    Decline,
    Error,
    EventMessage,
    Failure,
    Kill,
    Offers,
    Reconcile,
    ReconcileTask,
    Rescind,
    Roles,
    SchedulerCall,
    SchedulerEvent,
    SchedulerMessage,
    Shutdown,
    Subscribed,
    Update,
    UpdateFramework,
)
from framework.model.proto import (
    RAW_UNSET,
    AgentID,
    AllocationInfo,
    Attribute,
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    MasterInfo,
    Offer,
    OfferID,
    Operation,
    Resource,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
    TimeInfo,
)

__all__ = [
    "AcknowledgeUpdate",
    "AgentRecord",
    "AgentRegistered",
    "CloseStream",
    "Effect",
    "KillTask",
    "LaunchTasks",
    "Master",
    "MasterConfig",
    "Registry",
    "Reply",
    "ReportedTask",
    "SendEvent",
    "SendFrameworkMessage",
    "ShutdownAgent",
    "ShutdownExecutor",
    "ShutdownFramework",
    "validate_call",
]

log = logging.getLogger(__name__)

MESOS_VERSION = "1.11.0"
DEFAULT_REFUSE_SECONDS = 5.0
DEFAULT_KILL_GRACE_S = 3.0
_MAX_DURATION_S = (2**63 - 1) / 1e9


# --- effects ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SendEvent:
    """Write one event on a subscription stream."""

    stream_id: str
    event: SchedulerEvent


@dataclass(frozen=True, slots=True)
class CloseStream:
    """End a subscription stream (after whatever was sent on it before)."""

    stream_id: str


@dataclass(frozen=True, slots=True)
class LaunchTasks:
    """Hand tasks to an agent. ``group_executor`` is set for LAUNCH_GROUP."""

    agent_id: str
    framework_info: FrameworkInfo
    tasks: tuple[TaskInfo, ...]
    group_executor: ExecutorInfo | None = None


@dataclass(frozen=True, slots=True)
class KillTask:
    agent_id: str
    framework_id: str
    task_id: str
    grace_period_s: float


@dataclass(frozen=True, slots=True)
class AcknowledgeUpdate:
    agent_id: str
    framework_id: str
    task_id: str
    uuid: str


@dataclass(frozen=True, slots=True)
class ShutdownExecutor:
    agent_id: str
    framework_id: str
    executor_id: str


@dataclass(frozen=True, slots=True)
class ShutdownFramework:
    """Kill every task of a removed framework on an agent and forget its pending updates."""

    agent_id: str
    framework_id: str


@dataclass(frozen=True, slots=True)
class SendFrameworkMessage:
    agent_id: str
    framework_id: str
    executor_id: str
    data: str


@dataclass(frozen=True, slots=True)
class ShutdownAgent:
    """The agent was marked gone: it must kill everything and stop."""

    agent_id: str


@dataclass(frozen=True, slots=True)
class AgentRegistered:
    """The master accepted a (re-)registration: the agent resends its unacknowledged updates."""

    agent_id: str


Effect = (
    SendEvent
    | CloseStream
    | LaunchTasks
    | KillTask
    | AcknowledgeUpdate
    | ShutdownExecutor
    | ShutdownFramework
    | SendFrameworkMessage
    | ShutdownAgent
    | AgentRegistered
)


@dataclass(frozen=True, slots=True)
class Reply:
    """The HTTP answer to a non-SUBSCRIBE call."""

    status: int
    body: str = ""


# --- inputs from agents -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """What an agent tells the master about itself when it registers."""

    agent_id: str
    hostname: str
    resources: Resources
    attributes: tuple[Attribute, ...] = ()
    port: int = 5051
    ip: str = "127.0.0.1"
    pid_path: str = "slave(1)"


@dataclass(frozen=True, slots=True)
class ReportedTask:
    """A task an agent still knows, sent with a re-registration (after a partition or failover)."""

    framework_id: str
    task: TaskInfo
    state: TaskState
    """The agent's latest known state of the task."""
    status: TaskStatus | None = None
    """The latest status (for health, container status, timestamps)."""
    pending_status: TaskStatus | None = None
    """The update at the head of the agent's unacknowledged queue, if any."""


@dataclass(slots=True)
class Registry:
    """What survives a master failover (Mesos keeps it in the replicated log): the agents admitted,
    and those marked unreachable or gone (with the time)."""

    admitted: dict[str, AgentRecord] = field(default_factory=dict)
    unreachable: dict[str, float] = field(default_factory=dict)
    gone: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class MasterConfig:
    heartbeat_interval_s: float = 15.0
    allocation_interval_s: float = 1.0
    offer_timeout_s: float | None = None
    agent_ping_timeout_s: float = 0.0
    """Time between losing an agent and marking it unreachable (Mesos: ping timeout x max pings)."""
    agent_reregister_timeout_s: float = 10.0
    """After a failover, recovered agents that have not re-registered by then are unreachable."""
    max_completed_tasks_per_framework: int = 1000
    max_completed_frameworks: int = 50
    hostname: str = "localhost"
    ip: str = "127.0.0.1"
    port: int = 5050


# --- internal records ---------------------------------------------------------------------------


@dataclass(slots=True)
class _Task:
    info: TaskInfo
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    state: TaskState
    executor_id: str | None
    statuses: list[TaskStatus] = field(default_factory=list)
    status_update_state: TaskState | None = None
    status_update_uuid: str | None = None
    latest: TaskStatus | None = None
    unreachable_time: float | None = None

    @property
    def reported_state(self) -> TaskState:
        """What reconciliation answers: the state of the latest update forwarded (Mesos's
        ``status_update_state``), else the task state."""
        return self.status_update_state or self.state


@dataclass(slots=True)
class _Executor:
    info: ExecutorInfo
    agent_id: str
    framework_id: str
    role: str
    resources: Resources


@dataclass(slots=True)
class _Offer:
    offer: Offer
    framework_id: str
    agent_id: str
    role: str
    resources: Resources
    expires_at: float | None


@dataclass(slots=True)
class _Framework:
    id: str
    info: FrameworkInfo
    suppressed: set[str]
    registered_time: float
    stream_id: str | None = None
    active: bool = False
    recovered: bool = False
    failover_deadline: float | None = None
    next_heartbeat: float | None = None
    unregistered_time: float | None = None
    tasks: dict[str, _Task] = field(default_factory=dict)
    unreachable_tasks: dict[str, _Task] = field(default_factory=dict)
    completed_tasks: deque[_Task] = field(default_factory=deque)
    offers: set[str] = field(default_factory=set)

    @property
    def connected(self) -> bool:
        return self.stream_id is not None

    @property
    def partition_aware(self) -> bool:
        return self.info.has_capability("PARTITION_AWARE")

    @property
    def roles(self) -> tuple[str, ...]:
        return framework_roles(self.info)


@dataclass(slots=True)
class _Agent:
    record: AgentRecord
    registered_time: float
    connected: bool = True
    unreachable_deadline: float | None = None
    tasks: dict[tuple[str, str], _Task] = field(default_factory=dict)
    executors: dict[tuple[str, str], _Executor] = field(default_factory=dict)
    offers: set[str] = field(default_factory=set)
    pending_kills: dict[tuple[str, str], float] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.record.agent_id


@dataclass(slots=True)
class Metrics:
    """Counters for ``/metrics/snapshot`` (gauges are computed from the state)."""

    counters: dict[str, int] = field(default_factory=dict)

    def inc(self, name: str, by: int = 1) -> None:
        self.counters[name] = self.counters.get(name, 0) + by


# --- helpers ------------------------------------------------------------------------------------


def framework_roles(info: FrameworkInfo) -> tuple[str, ...]:
    if info.has_capability("MULTI_ROLE"):
        return info.roles
    return (info.role or "*",)


def validate_role(role: str) -> str | None:
    """Mesos's ``roles::validate``: the reason a role name is invalid, or None."""
    if role == "*":
        return None
    if not role:
        return "Empty role name is invalid"
    if role.startswith("/") or role.endswith("/"):
        return f"Role '{role}' cannot start or end with a slash"
    for component in role.split("/"):
        if component in (".", "..", "*", ""):
            return f"Role '{role}' cannot include '.', '..', '*' or empty components"
        if component.startswith("-"):
            return f"Role '{role}' cannot start with '-'"
        if any(c.isspace() or c == "\\" or ord(c) < 32 or ord(c) == 127 for c in component):
            return f"Role '{role}' cannot include whitespace, control characters or backslashes"
    return None


def validate_id(value: str) -> str | None:
    """``common::validation::validateID``."""
    if not value:
        return "ID must not be empty"
    if len(value) > 255:
        return "ID must not be greater than 255 characters"
    if value in (".", ".."):
        return f"'{value}' is disallowed"
    if any(ord(c) < 32 or ord(c) == 127 or c in "/\\" for c in value):
        return f"'{value}' contains invalid characters"
    return None


_BASE64_TEXT = re.compile(r"[A-Za-z0-9+/\s]*=*\s*")


def base64_error(text: str) -> str | None:
    """Mesos's base64 reading of ``bytes`` fields: standard alphabet, whitespace ignored, anything
    after the first ``=`` ignored, padding optional; the URL-safe ``-`` and ``_`` are refused."""
    if _BASE64_TEXT.fullmatch(text) is None:
        return "Failed to decode base64"
    return None


def _decode_base64(text: str) -> bytes:
    data = "".join(text.split("=", 1)[0].split())
    return base64.b64decode(data + "=" * (-len(data) % 4), validate=True)


def _uuid_bytes_error(text: str) -> str | None:
    """``id::UUID::fromBytes`` on the base64 text: 16 bytes with a known version, else an error."""
    if base64_error(text) is not None:
        return "Not a valid UUID"
    try:
        raw = _decode_base64(text)
    except (binascii.Error, ValueError):
        return "Not a valid UUID"
    if len(raw) != 16 or not 1 <= (raw[6] >> 4) <= 5:
        return "Not a valid UUID"
    return None


def validate_call(call: SchedulerCall) -> str | None:
    """The stateless part of ``validation::scheduler::call::validate`` (message without prefix)."""
    if call.type == "SUBSCRIBE":
        if call.subscribe is None:
            return "Expecting 'subscribe' to be present"
        if call.subscribe.framework_info.id != call.framework_id:
            return "'framework_id' differs from 'subscribe.framework_info.id'"
        return None
    if call.framework_id is None:
        return "Expecting 'framework_id' to be present"
    required = {
        "ACCEPT": call.accept,
        "DECLINE": call.decline,
        "ACCEPT_INVERSE_OFFERS": call.accept_inverse_offers,
        "DECLINE_INVERSE_OFFERS": call.decline_inverse_offers,
        "KILL": call.kill,
        "SHUTDOWN": call.shutdown,
        "ACKNOWLEDGE": call.acknowledge,
        "ACKNOWLEDGE_OPERATION_STATUS": call.acknowledge_operation_status,
        "RECONCILE": call.reconcile,
        "MESSAGE": call.message,
        "UPDATE_FRAMEWORK": call.update_framework,
    }
    if call.type in required and required[call.type] is None:
        return f"Expecting '{call.type.lower()}' to be present"
    if call.type == "RECONCILE_OPERATIONS" and not call.reconcile_operations:
        return "Expecting 'reconcile_operations' to be present"
    if call.type == "REQUEST" and not call.request:
        return "Expecting 'request' to be present"
    if call.type == "ACKNOWLEDGE" and call.acknowledge is not None:
        return _uuid_bytes_error(call.acknowledge.uuid)
    if call.type == "MESSAGE" and call.message is not None and base64_error(call.message.data) is not None:
        return "Failed to decode base64 in 'message.data'"
    if call.type == "ACKNOWLEDGE_OPERATION_STATUS" and call.acknowledge_operation_status is not None:
        error = _uuid_bytes_error(call.acknowledge_operation_status.uuid)
        if error is not None:
            return error
        if call.acknowledge_operation_status.agent_id is None:
            return "Expecting 'agent_id' to be present"
    if (
        call.type == "UPDATE_FRAMEWORK"
        and call.update_framework is not None
        and call.update_framework.framework_info.id != call.framework_id
    ):
        return "'framework_id' differs from 'update_framework.framework_info.id'"
    return None


def _ip_to_int(ip: str) -> int:
    """MasterInfo.ip as Mesos fills it: the network-order address read as a host (little-endian) int."""
    parts = [int(p) for p in ip.split(".")]
    return parts[0] | parts[1] << 8 | parts[2] << 16 | parts[3] << 24


def _kill_grace(task: TaskInfo, override: float | None) -> float:
    if override is not None:
        return override
    if task.kill_policy is not None and task.kill_policy.grace_period is not None:
        return max(0.0, task.kill_policy.grace_period.seconds)
    return DEFAULT_KILL_GRACE_S


def _with_allocation(resources: Iterable[Resource], role: str) -> tuple[Resource, ...]:
    """Inject ``allocation_info`` into resources that lack it, as the Mesos master does."""
    alloc = AllocationInfo(role=role)
    return tuple(
        msgspec.structs.replace(res, allocation_info=alloc) if res.allocation_info is None else res
        for res in resources
    )


def _strip_allocation(resources: Iterable[Resource]) -> tuple[Resource, ...]:
    return tuple(msgspec.structs.replace(r, allocation_info=None) for r in resources)


def _task_role(task: TaskInfo, info: FrameworkInfo) -> str:
    for res in task.resources:
        if res.allocation_info is not None and res.allocation_info.role is not None:
            return res.allocation_info.role
    return framework_roles(info)[0] if framework_roles(info) else "*"


class Master:
    """The state of one (leading) master. Not thread-safe: one thread owns it."""

    def __init__(
        self,
        config: MasterConfig,
        *,
        master_id: str,
        now: float,
        wall_offset: float = 0.0,
        registry: Registry | None = None,
        seed: int | None = None,
    ) -> None:
        self.config = config
        self.id = master_id
        self.start_time = now
        self.wall_offset = wall_offset
        self.allocator = Allocator(seed=seed)
        self.metrics = Metrics()
        self.frameworks: dict[str, _Framework] = {}
        self.completed_frameworks: dict[str, _Framework] = {}
        self.agents: dict[str, _Agent] = {}
        self.offers: dict[str, _Offer] = {}
        self.executors: dict[tuple[str, str, str], _Executor] = {}  # (agent, framework, executor)
        registry = registry or Registry()
        self.admitted: dict[str, AgentRecord] = dict(registry.admitted)
        self.unreachable: dict[str, float] = dict(registry.unreachable)
        self.gone: dict[str, float] = dict(registry.gone)
        # Agents admitted before a failover that have not re-registered yet: agent -> deadline.
        self.recovered: dict[str, float] = {
            aid: now + config.agent_reregister_timeout_s
            for aid in self.admitted
            if aid not in self.unreachable and aid not in self.gone
        }
        self._next_framework = 0
        self._next_offer = 0
        self._next_allocation = now
        self._allocation_requested = True
        self._disconnected_agents: set[str] = set()
        self._offer_expiries: list[tuple[float, str]] = []  # heap, stale entries skipped

    # === identity ===============================================================================

    @property
    def info(self) -> MasterInfo:
        c = self.config
        address = msgspec.json.encode({"hostname": c.hostname, "ip": c.ip, "port": c.port})
        return MasterInfo(
            id=self.id,
            ip=_ip_to_int(c.ip),
            port=c.port,
            pid=f"master@{c.ip}:{c.port}",
            hostname=c.hostname,
            version=MESOS_VERSION,
            address=msgspec.Raw(address),
        )

    def wall(self, now: float) -> float:
        return now + self.wall_offset

    def registry(self) -> Registry:
        return Registry(dict(self.admitted), dict(self.unreachable), dict(self.gone))

    # === subscription ===========================================================================

    def subscribe(self, stream_id: str, call: SchedulerCall, now: float) -> list[Effect]:
        """A SUBSCRIBE that passed the stateless checks; the HTTP layer already answered 200."""
        assert call.subscribe is not None
        info = call.subscribe.framework_info
        suppressed = set(call.subscribe.suppressed_roles)
        self.metrics.inc(
            "master/messages_register_framework"
            if info.id is None
            else "master/messages_reregister_framework"
        )
        error = self._validate_framework(info)
        if error is None:
            error = self._validate_suppressed(info, suppressed)
        if error is None and call.subscribe.offer_constraints:
            error = self._validate_offer_constraints(info, call.subscribe.offer_constraints)
        if error is not None:
            log.info("refusing subscription of framework %r: %s", info.name, error)
            return [self._error_event(stream_id, error), CloseStream(stream_id)]

        effects: list[Effect] = []
        if info.id is None or not info.id.value:
            fid = f"{self.id}-{self._next_framework:04d}"
            self._next_framework += 1
            info = msgspec.structs.replace(info, id=FrameworkID(fid))
            fw = _Framework(id=fid, info=info, suppressed=suppressed, registered_time=now)
            self.frameworks[fid] = fw
            self.allocator.add_framework(
                fid,
                fw.roles,
                suppressed=suppressed,
                gpu_capable=info.has_capability("GPU_RESOURCES"),
                active=False,
            )
            log.info("framework %s (%s) subscribed", fid, info.name)
        else:
            fid = info.id.value
            # An unknown id is a framework re-subscribing after a master failover whose tasks no
            # agent reported: Mesos reconstructs it from the FrameworkInfo.
            fw = self.frameworks.get(fid) or self._recover_framework(info, now)
            # user and checkpoint are kept silently (MESOS-703); a principal change is an error.
            info = msgspec.structs.replace(info, user=fw.info.user, checkpoint=fw.info.checkpoint)
            if info.principal != fw.info.principal:
                return [
                    self._error_event(stream_id, "Changing framework's principal is not allowed."),
                    CloseStream(stream_id),
                ]
            fw.info = info
            fw.suppressed = suppressed
            self.allocator.update_framework(
                fid, fw.roles, suppressed=suppressed, gpu_capable=info.has_capability("GPU_RESOURCES")
            )
            if fw.connected and fw.stream_id is not None:
                effects.append(self._error_event(fw.stream_id, "Framework failed over"))
                effects.append(CloseStream(fw.stream_id))
            # Offers never survive a re-subscription; Mesos discards them without RESCIND.
            for offer_id in list(fw.offers):
                self._remove_offer(offer_id, now)
            fw.recovered = False
            log.info("framework %s (%s) re-subscribed", fid, info.name)
        fw.stream_id = stream_id
        fw.failover_deadline = None
        fw.unregistered_time = None
        fw.active = True
        self.allocator.set_framework_active(fid, True)
        effects.append(
            SendEvent(
                stream_id,
                SchedulerEvent(
                    type="SUBSCRIBED",
                    subscribed=Subscribed(
                        framework_id=FrameworkID(fid),
                        heartbeat_interval_seconds=self.config.heartbeat_interval_s,
                        master_info=self.info,
                    ),
                ),
            )
        )
        effects.append(SendEvent(stream_id, SchedulerEvent(type="HEARTBEAT")))
        fw.next_heartbeat = now + self.config.heartbeat_interval_s
        self._request_allocation()
        return effects

    def stream_closed(self, stream_id: str, now: float) -> list[Effect]:
        """The subscription connection of some framework ended (either side closed it)."""
        for fw in self.frameworks.values():
            if fw.stream_id == stream_id:
                return self._disconnect(fw, now)
        return []

    def _disconnect(self, fw: _Framework, now: float) -> list[Effect]:
        log.info("framework %s disconnected", fw.id)
        effects: list[Effect] = []
        fw.stream_id = None
        fw.next_heartbeat = None
        fw.active = False
        fw.unregistered_time = now
        self.allocator.set_framework_active(fw.id, False)
        for offer_id in list(fw.offers):
            self._remove_offer(offer_id, now)
        timeout = fw.info.failover_timeout or 0.0
        timeout = 0.0 if not math.isfinite(timeout) or timeout < 0 else min(timeout, _MAX_DURATION_S)
        fw.failover_deadline = now + timeout
        if timeout == 0:
            effects += self._remove_framework(fw, now)
        return effects

    def _recover_framework(self, info: FrameworkInfo, now: float) -> _Framework:
        assert info.id is not None
        fid = info.id.value
        fw = _Framework(id=fid, info=info, suppressed=set(), registered_time=now, recovered=True)
        self.frameworks[fid] = fw
        self.allocator.add_framework(
            fid, fw.roles, gpu_capable=info.has_capability("GPU_RESOURCES"), active=False
        )
        return fw

    def _validate_framework(self, info: FrameworkInfo) -> str | None:
        multi_role = info.has_capability("MULTI_ROLE")
        if multi_role and info.role is not None:
            return "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE capable"
        if not multi_role and info.roles:
            return "'FrameworkInfo.roles' must not be set when the framework is not MULTI_ROLE capable"
        if multi_role:
            duplicates = sorted({r for r in info.roles if info.roles.count(r) > 1})
            if duplicates:
                return "'FrameworkInfo.roles' contains duplicate items: { " + ", ".join(duplicates) + " }"
            for role in info.roles:
                problem = validate_role(role)
                if problem is not None:
                    return "'FrameworkInfo.roles' contains invalid role: " + problem
        else:
            problem = validate_role(info.role or "*")
            if problem is not None:
                return "'FrameworkInfo.role' is not a valid role: " + problem
        if info.id is not None and info.id.value:
            problem = validate_id(info.id.value)
            if problem is not None:
                return problem
        timeout = info.failover_timeout
        if timeout is not None and (not math.isfinite(timeout) or abs(timeout) > _MAX_DURATION_S):
            return f"The framework failover_timeout ({timeout}) is invalid"
        if info.id is not None and info.id.value in self.completed_frameworks:
            return "Framework has been removed"
        return None

    @staticmethod
    def _validate_suppressed(info: FrameworkInfo, suppressed: set[str]) -> str | None:
        invalid = suppressed - set(framework_roles(info))
        if invalid:
            return (
                "Suppressed roles { "
                + ", ".join(sorted(invalid))
                + " } are not contained in the set of roles"
            )
        return None

    @staticmethod
    def _validate_offer_constraints(info: FrameworkInfo, raw: msgspec.Raw) -> str | None:
        try:
            doc = msgspec.json.decode(raw)
        except msgspec.DecodeError:
            return "Offer constraints are not valid"
        role_constraints = doc.get("role_constraints", {}) if isinstance(doc, dict) else {}
        for role in role_constraints if isinstance(role_constraints, dict) else {}:
            if role not in framework_roles(info):
                return (
                    f"Offer constraints specify `role_constraints` for a role '{role}'"
                    "not contained in the set of roles"
                )
        return None

    def _error_event(self, stream_id: str, message: str) -> SendEvent:
        return SendEvent(stream_id, SchedulerEvent(type="ERROR", error=Error(message=message)))

    # === calls ==================================================================================

    def handle_call(
        self, call: SchedulerCall, stream_id: str | None, now: float
    ) -> tuple[Reply, list[Effect]]:
        """A non-SUBSCRIBE call that passed ``validate_call``; returns the HTTP reply and effects."""
        assert call.framework_id is not None
        fw = self.frameworks.get(call.framework_id.value)
        if fw is None:
            return Reply(400, "Framework cannot be found"), []
        if not fw.connected:
            return Reply(403, "Framework is not subscribed"), []
        if stream_id is None:
            return Reply(400, "All non-subscribe calls should include the 'Mesos-Stream-Id' header"), []
        if stream_id != fw.stream_id:
            return (
                Reply(
                    400,
                    f"The stream ID '{stream_id}' included in this request didn't match the stream ID "
                    f"currently associated with framework ID {fw.id}",
                ),
                [],
            )
        kind = call.type
        effects: list[Effect] = []
        if kind == "TEARDOWN":
            self.metrics.inc("master/messages_unregister_framework")
            stream = fw.stream_id
            effects = self._remove_framework(fw, now)
            if stream is not None:
                effects.append(CloseStream(stream))
        elif kind == "ACCEPT":
            assert call.accept is not None
            effects = self._accept(fw, call.accept, now)
        elif kind == "DECLINE":
            assert call.decline is not None
            self._decline(fw, call.decline, now)
        elif kind == "REVIVE":
            self._revive(fw, call.revive or Roles())
        elif kind == "SUPPRESS":
            self._suppress(fw, call.suppress or Roles())
        elif kind == "KILL":
            assert call.kill is not None
            effects = self._kill(fw, call.kill, now)
        elif kind == "SHUTDOWN":
            assert call.shutdown is not None
            effects = self._shutdown_executor(fw, call.shutdown)
        elif kind == "ACKNOWLEDGE":
            assert call.acknowledge is not None
            a = call.acknowledge
            effects = self._acknowledge(fw, a.agent_id.value, a.task_id.value, a.uuid, now)
        elif kind == "RECONCILE":
            assert call.reconcile is not None
            effects = self._reconcile(fw, call.reconcile, now)
        elif kind == "MESSAGE":
            assert call.message is not None
            effects = self._message(fw, call.message)
        elif kind == "UPDATE_FRAMEWORK":
            assert call.update_framework is not None
            return self._update_framework(fw, call.update_framework, now)
        elif kind in ("ACCEPT_INVERSE_OFFERS", "DECLINE_INVERSE_OFFERS", "REQUEST"):
            log.info("ignoring %s call of framework %s (not supported by this master)", kind, fw.id)
        elif kind in ("ACKNOWLEDGE_OPERATION_STATUS", "RECONCILE_OPERATIONS"):
            log.info("ignoring %s call of framework %s: no operations exist here", kind, fw.id)
        elif kind == "UNKNOWN":
            log.warning("received 'UNKNOWN' call from framework %s", fw.id)
            return Reply(501), []
        else:  # pragma: no cover - SchedulerCall.type is a closed Literal
            return Reply(501), []
        return Reply(202), effects

    # --- offers: accept / decline -----------------------------------------------------------------

    def _validate_offers(self, fw: _Framework, offer_ids: Sequence[OfferID]) -> str | None:
        if not offer_ids:
            return "No offers specified"
        seen: set[str] = set()
        for oid in offer_ids:
            if oid.value in seen:
                return f"Duplicate offer {oid.value} in offer list"
            seen.add(oid.value)
        for oid in offer_ids:
            if oid.value not in self.offers:
                return f"Offer {oid.value} is no longer valid"
        for oid in offer_ids:
            owner = self.offers[oid.value].framework_id
            if owner != fw.id:
                return f"Offer {oid.value} has invalid framework {owner} while framework {fw.id} is expected"
        role: str | None = None
        for oid in offer_ids:
            offer_role = self.offers[oid.value].role
            if role is None:
                role = offer_role
            elif offer_role != role:
                return (
                    f"Aggregated offers must be allocated to the same role. Offer {oid.value} uses "
                    f"role '{offer_role} but another is using role '{role}"
                )
        agent: str | None = None
        for oid in offer_ids:
            offer_agent = self.offers[oid.value].agent_id
            if agent is None:
                agent = offer_agent
            elif offer_agent != agent:
                return (
                    f"Aggregated offers must belong to one single agent. Offer {oid.value} uses agent "
                    f"{offer_agent} and agent {agent}"
                )
        return None

    def _accept(self, fw: _Framework, accept: Accept, now: float) -> list[Effect]:
        effects: list[Effect] = []
        for op in accept.operations:
            if op.type == "LAUNCH" and op.launch is not None and op.launch.task_infos:
                self.metrics.inc("master/messages_launch_tasks")
            elif op.type == "LAUNCH" and (op.launch is None or not op.launch.task_infos):
                self.metrics.inc("master/messages_decline_offers")
        error = self._validate_offers(fw, accept.offer_ids)
        if error is not None:
            for oid in accept.offer_ids:
                if oid.value in self.offers and self.offers[oid.value].framework_id == fw.id:
                    self._remove_offer(oid.value, now)
            log.warning("ACCEPT call of framework %s used invalid offers: %s", fw.id, error)
            state = TaskState.TASK_DROPPED if fw.partition_aware else TaskState.TASK_LOST
            for op in accept.operations:
                for task in self._operation_tasks(op):
                    self.metrics.inc("master/tasks_dropped" if fw.partition_aware else "master/tasks_lost")
                    effects += self._send_master_update(
                        fw,
                        task.task_id.value,
                        state,
                        now,
                        agent_id=task.agent_id.value,
                        message=f"Task launched with invalid offers: {error}",
                        reason="REASON_INVALID_OFFERS",
                    )
                if op.type not in ("LAUNCH", "LAUNCH_GROUP"):
                    log.warning("dropping %s operation: attempted with invalid offers", op.type)
            return effects

        entries = [self.offers[oid.value] for oid in accept.offer_ids]
        agent_id = entries[0].agent_id
        role = entries[0].role
        offered = Resources()
        for entry in entries:
            offered = offered + entry.resources
            self._remove_offer(entry.offer.id.value, now, recover=False)
        remaining = offered
        agent = self.agents[agent_id]
        launched_ids: set[str] = set()
        for op in accept.operations:
            if op.type == "LAUNCH":
                for raw_task in op.launch.task_infos if op.launch is not None else ():
                    task = self._inject_allocation(raw_task, role)
                    problem, consumed = self._validate_task(fw, agent, task, remaining, launched_ids)
                    if problem is not None:
                        self.metrics.inc("master/tasks_error")
                        effects += self._send_master_update(
                            fw,
                            task.task_id.value,
                            TaskState.TASK_ERROR,
                            now,
                            agent_id=task.agent_id.value,
                            message=problem,
                            reason="REASON_TASK_INVALID",
                        )
                        continue
                    remaining = remaining - consumed
                    launched_ids.add(task.task_id.value)
                    self._add_task(fw, agent, task, role, now)
                    effects.append(LaunchTasks(agent_id, fw.info, (task,)))
            elif op.type == "LAUNCH_GROUP":
                group = op.launch_group
                if group is None:
                    continue
                executor = self._inject_executor_allocation(group.executor, role, fw.id)
                tasks = tuple(self._inject_allocation(t, role) for t in group.task_group.tasks)
                problem, consumed = self._validate_group(fw, agent, executor, tasks, remaining, launched_ids)
                if problem is not None:
                    for task in tasks:
                        self.metrics.inc("master/tasks_error")
                        effects += self._send_master_update(
                            fw,
                            task.task_id.value,
                            TaskState.TASK_ERROR,
                            now,
                            agent_id=task.agent_id.value,
                            message=problem,
                            reason="REASON_TASK_INVALID",
                        )
                    continue
                remaining = remaining - consumed
                key = (agent_id, fw.id, executor.executor_id.value)
                if key not in self.executors:
                    self._add_executor(agent, fw.id, executor, role)
                for task in tasks:
                    launched_ids.add(task.task_id.value)
                    self._add_task(fw, agent, task, role, now, group_executor=executor)
                effects.append(LaunchTasks(agent_id, fw.info, tasks, group_executor=executor))
            else:
                log.warning(
                    "dropping %s operation of framework %s: only LAUNCH and LAUNCH_GROUP are supported",
                    op.type,
                    fw.id,
                )
        refuse = self._refuse_seconds(accept.filters.refuse_seconds if accept.filters else None)
        self.allocator.recover(fw.id, role, agent_id, remaining, now=now, refuse_seconds=refuse)
        return effects

    @staticmethod
    def _operation_tasks(op: Operation) -> tuple[TaskInfo, ...]:
        if op.type == "LAUNCH" and op.launch is not None:
            return op.launch.task_infos
        if op.type == "LAUNCH_GROUP" and op.launch_group is not None:
            return op.launch_group.task_group.tasks
        return ()

    @staticmethod
    def _inject_allocation(task: TaskInfo, role: str) -> TaskInfo:
        changes: dict[str, object] = {"resources": _with_allocation(task.resources, role)}
        if task.executor is not None:
            changes["executor"] = msgspec.structs.replace(
                task.executor, resources=_with_allocation(task.executor.resources, role)
            )
        return msgspec.structs.replace(task, **changes)

    @staticmethod
    def _inject_executor_allocation(executor: ExecutorInfo, role: str, fid: str) -> ExecutorInfo:
        return msgspec.structs.replace(
            executor,
            resources=_with_allocation(executor.resources, role),
            framework_id=executor.framework_id or FrameworkID(fid),
        )

    def _validate_task_basics(
        self, fw: _Framework, agent: _Agent, task: TaskInfo, launched_ids: set[str]
    ) -> tuple[str | None, Resources]:
        """The per-task part of ``validation::task::internal::validateTask``, in Mesos's order."""
        tid = task.task_id.value
        problem = validate_id(tid)
        if problem is not None:
            return problem, Resources()
        if tid in fw.tasks or tid in launched_ids:
            return f"Task has duplicate ID: {tid}", Resources()
        if tid in fw.unreachable_tasks:
            return f"Task reuses the ID of an unreachable task: {tid}", Resources()
        if task.agent_id.value != agent.id:
            return (
                f"Task uses invalid agent {task.agent_id.value} while agent {agent.id} is expected",
                Resources(),
            )
        grace = task.kill_policy.grace_period if task.kill_policy is not None else None
        if grace is not None and grace.nanoseconds < 0:
            return "Task's 'kill_policy.grace_period' must be non-negative", Resources()
        if task.max_completion_time is not None and task.max_completion_time.nanoseconds < 0:
            return "Task's `max_completion_time` must be non-negative", Resources()
        if not task.resources:
            return "Task uses no resources", Resources()
        try:
            task_res = Resources.parse(task.resources, _task_role(task, fw.info))
        except ValueError as exc:
            return f"Task uses invalid resources: {exc}", Resources()
        problem = self._validate_container(task)
        if problem is not None:
            return problem, Resources()
        return None, task_res

    def _validate_task(
        self,
        fw: _Framework,
        agent: _Agent,
        task: TaskInfo,
        available: Resources,
        launched_ids: set[str],
    ) -> tuple[str | None, Resources]:
        """``validation::task::validate``; returns (error, resources the task consumes)."""
        problem, total = self._validate_task_basics(fw, agent, task, launched_ids)
        if problem is not None:
            return problem, Resources()
        if (task.executor is None) == (task.command is None):
            return (
                "Task should have at least one (but not both) of CommandInfo or ExecutorInfo present",
                Resources(),
            )
        if task.executor is not None:
            executor = task.executor
            problem = validate_id(executor.executor_id.value)
            if problem is not None:
                return f"Executor ID '{executor.executor_id.value}' is invalid: {problem}", Resources()
            if executor.framework_id is not None and executor.framework_id.value != fw.id:
                return (
                    f"ExecutorInfo has an invalid FrameworkID (Actual: {executor.framework_id.value} "
                    f"vs Expected: {fw.id})",
                    Resources(),
                )
            if executor.type is not None and executor.type != "CUSTOM":
                return "'ExecutorInfo.type' must be 'CUSTOM'", Resources()
            if executor.command is None:
                return "'ExecutorInfo.command' must be set", Resources()
            if (agent.id, fw.id, executor.executor_id.value) not in self.executors:
                try:
                    total = total + Resources.parse(executor.resources, _task_role(task, fw.info))
                except ValueError as exc:
                    return f"Executor uses invalid resources: {exc}", Resources()
        if not available.contains(total):
            return (
                f"Total resources {total} required by task and its executor is more than available "
                f"{available}",
                Resources(),
            )
        return None, total

    @staticmethod
    def _validate_container(task: TaskInfo) -> str | None:
        container = task.container
        if container is None:
            return None
        if container.type == "DOCKER" and container.docker is None:
            return (
                "Task's `ContainerInfo` is invalid: DockerInfo 'docker' is not set for DOCKER typed "
                "ContainerInfo"
            )
        if container.docker is not None:
            for param in container.docker.parameters:
                if param.key == "name":
                    return "Task's `ContainerInfo` is invalid: Parameter in DockerInfo must not be 'name'"
        for volume in container.volumes:
            sources = sum(1 for s in (volume.host_path, volume.image, volume.source) if s)
            if sources > 1:
                return (
                    "Task's `ContainerInfo` is invalid: Only one of them should be set: "
                    "'host_path', 'image' and 'source' in Volume"
                )
        return None

    def _validate_group(  # noqa: PLR0917 - mirrors _validate_task's arguments
        self,
        fw: _Framework,
        agent: _Agent,
        executor: ExecutorInfo,
        tasks: tuple[TaskInfo, ...],
        available: Resources,
        launched_ids: set[str],
    ) -> tuple[str | None, Resources]:
        """``validation::task::group::validate`` (the parts that apply here)."""
        if not tasks:
            return "Task group cannot be empty", Resources()
        total = Resources()
        seen = set(launched_ids)
        for task in tasks:
            problem, task_res = self._validate_task_basics(fw, agent, task, seen)
            if problem is None and task.executor is not None:
                problem = "'TaskInfo.executor' must not be set"
            if problem is not None:
                return f"Task '{task.task_id.value}' is invalid: {problem}", Resources()
            seen.add(task.task_id.value)
            total = total + task_res
        if executor.type is None:
            return "'ExecutorInfo.type' must be set", Resources()
        if executor.type != "DEFAULT":
            return "'ExecutorInfo.type' must be 'DEFAULT'", Resources()
        if (agent.id, fw.id, executor.executor_id.value) not in self.executors:
            try:
                total = total + Resources.parse(executor.resources, _task_role(tasks[0], fw.info))
            except ValueError as exc:
                return f"Executor uses invalid resources: {exc}", Resources()
        if not available.contains(total):
            return (
                f"Total resources {total} required by task group and its executor are more than "
                f"available {available}",
                Resources(),
            )
        return None, total

    def _decline(self, fw: _Framework, decline: Decline, now: float) -> None:
        self.metrics.inc("master/messages_decline_offers")
        refuse = self._refuse_seconds(decline.filters.refuse_seconds if decline.filters else None)
        for oid in decline.offer_ids:
            entry = self.offers.get(oid.value)
            if entry is None or entry.framework_id != fw.id:
                log.warning("ignoring decline of offer %s: no longer valid", oid.value)
                continue
            self._remove_offer(oid.value, now, recover=False)
            self.allocator.recover(
                fw.id, entry.role, entry.agent_id, entry.resources, now=now, refuse_seconds=refuse
            )

    @staticmethod
    def _refuse_seconds(value: float | None) -> float:
        """Mesos's rules: unset means 5 s, negative means 5 s (with a warning), capped at a year."""
        if value is None:
            return DEFAULT_REFUSE_SECONDS
        if math.isnan(value) or value < 0:
            log.warning("using the default refusal filter of 5 seconds instead of %s", value)
            return DEFAULT_REFUSE_SECONDS
        return min(value, MAX_REFUSE_SECONDS)

    def _revive(self, fw: _Framework, body: Roles) -> None:
        self.metrics.inc("master/messages_revive_offers")
        roles = self._call_roles(fw, body, "revive")
        if roles is None:
            return
        self.allocator.revive(fw.id, roles)
        fw.suppressed -= set(roles)
        self._request_allocation()

    def _suppress(self, fw: _Framework, body: Roles) -> None:
        self.metrics.inc("master/messages_suppress_offers")
        roles = self._call_roles(fw, body, "suppression")
        if roles is None:
            return
        self.allocator.suppress(fw.id, roles)
        fw.suppressed |= set(roles)

    @staticmethod
    def _call_roles(fw: _Framework, body: Roles, what: str) -> tuple[str, ...] | None:
        for role in body.roles:
            problem = validate_role(role)
            if problem is not None:
                log.warning(
                    "dropping %s call of framework %s: role '%s' is invalid: %s",
                    what.upper(),
                    fw.id,
                    role,
                    problem,
                )
                return None
            if role not in fw.roles:
                log.warning(
                    "dropping %s call of framework %s: %s role '%s' is not one of the framework's "
                    "subscribed roles",
                    what.upper(),
                    fw.id,
                    what,
                    role,
                )
                return None
        return body.roles or fw.roles

    # --- tasks: kill / shutdown / acknowledge / reconcile / message -------------------------------

    def _kill(self, fw: _Framework, kill: Kill, now: float) -> list[Effect]:
        self.metrics.inc("master/messages_kill_task")
        tid = kill.task_id.value
        task = fw.tasks.get(tid)
        if task is None:
            log.warning("cannot kill unknown task %s of framework %s; reconciling it", tid, fw.id)
            return self._reconcile(
                fw, Reconcile(tasks=(ReconcileTask(task_id=kill.task_id, agent_id=kill.agent_id),)), now
            )
        if kill.agent_id is not None and kill.agent_id.value != task.agent_id:
            log.warning(
                "ignoring KILL of task %s: it runs on agent %s, not %s",
                tid,
                task.agent_id,
                kill.agent_id.value,
            )
            return []
        override = None
        if kill.kill_policy is not None and kill.kill_policy.grace_period is not None:
            override = max(0.0, kill.kill_policy.grace_period.seconds)
        grace = _kill_grace(task.info, override)
        agent = self.agents[task.agent_id]
        agent.pending_kills[(fw.id, tid)] = grace
        if not agent.connected:
            log.warning("agent %s is disconnected; the kill of %s is retried when it returns", agent.id, tid)
            return []
        return [KillTask(agent.id, fw.id, tid, grace)]

    def _shutdown_executor(self, fw: _Framework, shutdown: Shutdown) -> list[Effect]:
        agent = self.agents.get(shutdown.agent_id.value)
        if agent is None or not agent.connected:
            log.warning(
                "cannot shut down executor %s: agent %s is not connected",
                shutdown.executor_id.value,
                shutdown.agent_id.value,
            )
            return []
        return [ShutdownExecutor(agent.id, fw.id, shutdown.executor_id.value)]

    def _acknowledge(self, fw: _Framework, agent_id: str, tid: str, uuid: str, now: float) -> list[Effect]:
        self.metrics.inc("master/messages_status_update_acknowledgement")
        agent = self.agents.get(agent_id)
        if agent is None or not agent.connected:
            log.warning(
                "cannot forward acknowledgement of task %s: agent %s is not %s",
                tid,
                agent_id,
                "registered" if agent is None else "connected",
            )
            self.metrics.inc("master/invalid_status_update_acknowledgements")
            return []
        task = agent.tasks.get((fw.id, tid))
        if (
            task is not None
            and task.status_update_state is not None
            and task.status_update_state.is_terminal
            and task.status_update_uuid == uuid
        ):
            # The acknowledgement of the terminal update lets the master forget the task.
            self._remove_task(fw, task, now)
        self.metrics.inc("master/valid_status_update_acknowledgements")
        return [AcknowledgeUpdate(agent_id, fw.id, tid, uuid)]

    def _reconcile(self, fw: _Framework, reconcile: Reconcile, now: float) -> list[Effect]:
        self.metrics.inc("master/messages_reconcile_tasks")
        effects: list[Effect] = []
        if not reconcile.tasks:
            for live in list(fw.tasks.values()):
                effects += self._send_master_update(
                    fw,
                    live.info.task_id.value,
                    live.reported_state,
                    now,
                    agent_id=live.agent_id,
                    message="Reconciliation: Latest task state",
                    reason="REASON_RECONCILIATION",
                    task=live,
                )
            return effects
        pa = fw.partition_aware
        for item in reconcile.tasks:
            tid = item.task_id.value
            aid = item.agent_id.value if item.agent_id is not None else None
            task = fw.tasks.get(tid)
            if task is not None:
                effects += self._send_master_update(
                    fw,
                    tid,
                    task.reported_state,
                    now,
                    agent_id=task.agent_id,
                    message="Reconciliation: Latest task state",
                    reason="REASON_RECONCILIATION",
                    task=task,
                )
            elif (aid is not None and aid in self.recovered) or (aid is None and self.recovered):
                log.info("dropping reconciliation of task %s: agents have not re-registered yet", tid)
            elif aid is not None and aid in self.agents:
                effects += self._send_master_update(
                    fw,
                    tid,
                    TaskState.TASK_GONE if pa else TaskState.TASK_LOST,
                    now,
                    agent_id=aid,
                    message="Reconciliation: Task is unknown to the agent",
                    reason="REASON_RECONCILIATION",
                )
            elif aid is not None and aid in self.unreachable:
                effects += self._send_master_update(
                    fw,
                    tid,
                    TaskState.TASK_UNREACHABLE if pa else TaskState.TASK_LOST,
                    now,
                    agent_id=aid,
                    message="Reconciliation: Task is unreachable",
                    reason="REASON_RECONCILIATION",
                    unreachable_time=self.unreachable[aid],
                )
            elif aid is not None and aid in self.gone:
                effects += self._send_master_update(
                    fw,
                    tid,
                    TaskState.TASK_GONE_BY_OPERATOR if pa else TaskState.TASK_LOST,
                    now,
                    agent_id=aid,
                    message="Reconciliation: Task is gone",
                    reason="REASON_RECONCILIATION",
                )
            else:
                effects += self._send_master_update(
                    fw,
                    tid,
                    TaskState.TASK_UNKNOWN if pa else TaskState.TASK_LOST,
                    now,
                    agent_id=aid,
                    message="Reconciliation: Task is unknown",
                    reason="REASON_RECONCILIATION",
                )
        return effects

    def _message(self, fw: _Framework, message: SchedulerMessage) -> list[Effect]:
        agent = self.agents.get(message.agent_id.value)
        if agent is None or not agent.connected:
            self.metrics.inc("master/invalid_framework_to_executor_messages")
            log.warning(
                "dropping message for executor %s: agent %s is not connected",
                message.executor_id.value,
                message.agent_id.value,
            )
            return []
        self.metrics.inc("master/messages_framework_to_executor")
        self.metrics.inc("master/valid_framework_to_executor_messages")
        return [SendFrameworkMessage(agent.id, fw.id, message.executor_id.value, message.data)]

    def _update_framework(
        self, fw: _Framework, update: UpdateFramework, now: float
    ) -> tuple[Reply, list[Effect]]:
        info = update.framework_info
        error = self._validate_framework(info)
        if error is not None:
            return Reply(400, "Supplied FrameworkInfo is not valid: " + error), []
        if info.principal != fw.info.principal:
            return Reply(
                400, "FrameworkInfo update is not valid: Changing framework's principal is not allowed."
            ), []
        if info.user != fw.info.user:
            return (
                Reply(
                    400,
                    "FrameworkInfo update is not valid: Updating 'FrameworkInfo.user' is unsupported"
                    f"; attempted to update from '{fw.info.user}' to '{info.user}'",
                ),
                [],
            )
        if bool(info.checkpoint) != bool(fw.info.checkpoint):
            return (
                Reply(
                    400,
                    "FrameworkInfo update is not valid: Updating 'FrameworkInfo.checkpoint' is "
                    f"unsupported; attempted to update from '{str(bool(fw.info.checkpoint)).lower()}' "
                    f"to '{str(bool(info.checkpoint)).lower()}'",
                ),
                [],
            )
        suppressed = set(update.suppressed_roles)
        error = self._validate_suppressed(info, suppressed)
        if error is None and update.offer_constraints:
            error = self._validate_offer_constraints(info, update.offer_constraints)
        if error is not None:
            return Reply(400, "'UpdateFramework' call is not valid: " + error), []
        effects: list[Effect] = []
        new_roles = set(framework_roles(info))
        for offer_id in list(fw.offers):
            if self.offers[offer_id].role not in new_roles:
                effects += self._rescind_offer(offer_id, now)
        fw.info = info
        fw.suppressed = suppressed
        self.allocator.update_framework(
            fw.id, fw.roles, suppressed=suppressed, gpu_capable=info.has_capability("GPU_RESOURCES")
        )
        self._request_allocation()
        return Reply(200), effects

    # === framework removal ======================================================================

    def _remove_framework(self, fw: _Framework, now: float) -> list[Effect]:
        """TEARDOWN or failover timeout: kill every task, forget the framework for good."""
        log.info("removing framework %s (%s)", fw.id, fw.info.name)
        effects: list[Effect] = []
        for offer_id in list(fw.offers):
            self._remove_offer(offer_id, now)
        agents_with_work: set[str] = set()
        for task in list(fw.tasks.values()):
            agents_with_work.add(task.agent_id)
            if not task.state.is_terminal:
                self._count_state(task.state, -1)
                task.state = TaskState.TASK_KILLED
                self._count_state(task.state, +1)
            self._remove_task(fw, task, now)
        for key, executor in list(self.executors.items()):
            if executor.framework_id == fw.id:
                agents_with_work.add(executor.agent_id)
                self._remove_executor(key)
        for agent_id in sorted(agents_with_work):
            agent = self.agents.get(agent_id)
            if agent is not None and agent.connected:
                effects.append(ShutdownFramework(agent_id, fw.id))
        fw.unreachable_tasks.clear()
        self.allocator.remove_framework(fw.id)
        del self.frameworks[fw.id]
        fw.stream_id = None
        fw.active = False
        fw.unregistered_time = now
        self.completed_frameworks[fw.id] = fw
        while len(self.completed_frameworks) > self.config.max_completed_frameworks:
            del self.completed_frameworks[next(iter(self.completed_frameworks))]
        return effects

    # === agents =================================================================================

    def register_agent(self, record: AgentRecord, now: float) -> list[Effect]:
        aid = record.agent_id
        if aid in self.gone:
            return [ShutdownAgent(aid)]
        if aid in self.agents:
            return self.reregister_agent(record, (), (), now)
        self.metrics.inc("master/slave_registrations")
        self.admitted[aid] = record
        self.agents[aid] = _Agent(record=record, registered_time=now)
        self.allocator.add_agent(aid, record.resources)
        self._request_allocation()
        log.info("registered agent %s (%s)", aid, record.hostname)
        return [AgentRegistered(aid)]

    def reregister_agent(
        self,
        record: AgentRecord,
        tasks: Sequence[ReportedTask],
        frameworks: Sequence[FrameworkInfo],
        now: float,
    ) -> list[Effect]:
        """An agent comes back: after a partition, a master failover, or a broken connection.

        ``frameworks`` are the FrameworkInfos of the agent's tasks: after a failover this is how
        the master learns of frameworks (they stay "recovered" until they re-subscribe).
        """
        aid = record.agent_id
        if aid in self.gone:
            log.warning("agent %s was marked gone; telling it to shut down", aid)
            return [ShutdownAgent(aid)]
        for info in frameworks:
            fid = info.id.value if info.id is not None else None
            if fid is not None and fid not in self.frameworks and fid not in self.completed_frameworks:
                self._recover_framework(info, now)
        self.metrics.inc("master/slave_reregistrations")
        effects: list[Effect] = []
        known = self.agents.get(aid)
        if known is not None:
            # A registered agent whose connection broke: reactivate it and resend lost kills.
            known.connected = True
            known.unreachable_deadline = None
            self._disconnected_agents.discard(aid)
            self.allocator.set_agent_active(aid, True)
            for (fid, tid), grace in list(known.pending_kills.items()):
                if (fid, tid) in known.tasks:
                    effects.append(KillTask(aid, fid, tid, grace))
            self._request_allocation()
            effects.append(AgentRegistered(aid))
            return effects

        was_unreachable = aid in self.unreachable
        was_recovered = aid in self.recovered
        self.unreachable.pop(aid, None)
        self.recovered.pop(aid, None)
        self.admitted[aid] = record
        agent = _Agent(record=record, registered_time=now)
        self.agents[aid] = agent
        self.allocator.add_agent(aid, record.resources)
        for fw in self.frameworks.values():
            for tid in [t for t, task in fw.unreachable_tasks.items() if task.agent_id == aid]:
                del fw.unreachable_tasks[tid]
        shutdown_frameworks: set[str] = set()
        for reported in tasks:
            fid = reported.framework_id
            if fid in self.completed_frameworks:
                shutdown_frameworks.add(fid)
                continue
            owner = self.frameworks.get(fid)
            if owner is None:
                log.warning(
                    "agent %s reports task %s of unknown framework %s", aid, reported.task.task_id.value, fid
                )
                shutdown_frameworks.add(fid)
                continue
            task = self._readd_task(owner, agent, reported, now)
            if not was_recovered:
                message = (
                    "Unreachable agent re-reregistered" if was_unreachable else "Unknown agent reregistered"
                )
                if owner.connected:
                    effects += self._send_master_update(
                        owner,
                        task.info.task_id.value,
                        task.state,
                        now,
                        agent_id=aid,
                        message=message,
                        reason="REASON_AGENT_REREGISTERED",
                        task=task,
                    )
                else:
                    log.warning(
                        "dropping re-registration update of task %s for disconnected framework %s",
                        task.info.task_id.value,
                        fid,
                    )
        for fid in sorted(shutdown_frameworks):
            effects.append(ShutdownFramework(aid, fid))
        self._request_allocation()
        log.info("re-registered agent %s (%s)", aid, record.hostname)
        effects.append(AgentRegistered(aid))
        return effects

    def agent_disconnected(self, agent_id: str, now: float) -> list[Effect]:
        """The master lost the agent (its link broke); unreachable after the ping timeout."""
        agent = self.agents.get(agent_id)
        if agent is None or not agent.connected:
            return []
        log.info("agent %s disconnected", agent_id)
        agent.connected = False
        self.allocator.set_agent_active(agent_id, False)
        effects: list[Effect] = []
        for offer_id in list(agent.offers):
            effects += self._rescind_offer(offer_id, now)
        agent.unreachable_deadline = now + self.config.agent_ping_timeout_s
        self._disconnected_agents.add(agent_id)
        if self.config.agent_ping_timeout_s <= 0:
            effects += self._mark_unreachable(agent, now, "health check timed out")
        return effects

    def _mark_unreachable(self, agent: _Agent, now: float, message: str) -> list[Effect]:
        log.info("marking agent %s unreachable: %s", agent.id, message)
        self.metrics.inc("master/slave_removals")
        self.metrics.inc("master/slave_removals/reason_unhealthy")
        self.unreachable[agent.id] = self.wall(now)
        return self._remove_agent(agent, now, unreachable_time=self.wall(now), message=message)

    def mark_agent_gone(self, agent_id: str, now: float) -> list[Effect]:
        """The operator declared the agent gone for good (Mesos's MARK_AGENT_GONE)."""
        message = "Agent has been marked gone"
        effects: list[Effect] = []
        self.gone[agent_id] = self.wall(now)
        self.recovered.pop(agent_id, None)
        agent = self.agents.get(agent_id)
        if agent is not None:
            self.metrics.inc("master/slave_removals")
            effects += self._remove_agent(agent, now, unreachable_time=None, message=message)
            effects.append(ShutdownAgent(agent_id))
            return effects
        if agent_id in self.unreachable:
            del self.unreachable[agent_id]
            for fw in self.frameworks.values():
                for tid, task in list(fw.unreachable_tasks.items()):
                    if task.agent_id != agent_id:
                        continue
                    del fw.unreachable_tasks[tid]
                    pa = fw.partition_aware
                    effects += self._send_master_update(
                        fw,
                        tid,
                        TaskState.TASK_GONE_BY_OPERATOR if pa else TaskState.TASK_LOST,
                        now,
                        agent_id=agent_id,
                        message=message,
                        reason="REASON_AGENT_REMOVED_BY_OPERATOR" if pa else "REASON_AGENT_REMOVED",
                        task=task,
                    )
        effects.append(ShutdownAgent(agent_id))
        return effects

    def _remove_agent(
        self, agent: _Agent, now: float, *, unreachable_time: float | None, message: str
    ) -> list[Effect]:
        """Mesos's ``__removeSlave``: tasks become UNREACHABLE / GONE_BY_OPERATOR / LOST."""
        effects: list[Effect] = []
        self.allocator.remove_agent(agent.id)
        for task in list(agent.tasks.values()):
            fw = self.frameworks.get(task.framework_id)
            if fw is None:
                continue
            if not fw.partition_aware:
                state, reason = TaskState.TASK_LOST, "REASON_AGENT_REMOVED"
            elif unreachable_time is not None:
                state, reason = TaskState.TASK_UNREACHABLE, "REASON_AGENT_REMOVED"
            else:
                state, reason = TaskState.TASK_GONE_BY_OPERATOR, "REASON_AGENT_REMOVED_BY_OPERATOR"
            status = self._master_status(
                task.info.task_id.value,
                state,
                now,
                agent_id=agent.id,
                message=message,
                reason=reason,
                task=task,
                unreachable_time=unreachable_time,
            )
            self._count_state(task.state, -1)
            task.state = state
            self._count_state(state, +1)
            task.status_update_state = state
            task.status_update_uuid = None
            task.statuses.append(status)
            task.latest = status
            task.unreachable_time = unreachable_time
            self._remove_task(fw, task, now, unreachable=unreachable_time is not None)
            if fw.connected and fw.stream_id is not None:
                effects.append(
                    SendEvent(fw.stream_id, SchedulerEvent(type="UPDATE", update=Update(status=status)))
                )
            else:
                log.warning(
                    "dropping update %s of task %s for disconnected framework %s",
                    state.value,
                    task.info.task_id.value,
                    fw.id,
                )
        for key in [k for k in self.executors if k[0] == agent.id]:
            self._remove_executor(key)
        for offer_id in list(agent.offers):
            effects += self._rescind_offer(offer_id, now)
        del self.agents[agent.id]
        self._disconnected_agents.discard(agent.id)
        # FAILURE{agent_id} to every connected framework, as Mesos's sendSlaveLost.
        for fw in self.frameworks.values():
            if fw.connected and fw.stream_id is not None:
                effects.append(
                    SendEvent(
                        fw.stream_id,
                        SchedulerEvent(type="FAILURE", failure=Failure(agent_id=AgentID(agent.id))),
                    )
                )
        return effects

    # --- messages from agents ---------------------------------------------------------------------

    def status_update(
        self, agent_id: str, framework_id: str, status: TaskStatus, latest_state: TaskState, now: float
    ) -> list[Effect]:
        """An agent forwards an executor/agent update (with a uuid); it retries until acknowledged."""
        self.metrics.inc("master/messages_status_update")
        agent = self.agents.get(agent_id)
        if agent is None or not agent.connected:
            self.metrics.inc("master/invalid_status_updates")
            return []
        fw = self.frameworks.get(framework_id)
        if fw is None:
            self.metrics.inc("master/invalid_status_updates")
            log.warning(
                "status update for unknown framework %s from agent %s: shutting it down there",
                framework_id,
                agent_id,
            )
            return [ShutdownFramework(agent_id, framework_id)]
        self.metrics.inc("master/valid_status_updates")
        task = agent.tasks.get((framework_id, status.task_id.value))
        if task is not None:
            self._update_task(fw, task, status, latest_state, now)
        if fw.connected and fw.stream_id is not None:
            return [SendEvent(fw.stream_id, SchedulerEvent(type="UPDATE", update=Update(status=status)))]
        return []

    def executor_exited(
        self, agent_id: str, framework_id: str, executor_id: str, status: int, now: float
    ) -> list[Effect]:
        self.metrics.inc("master/messages_exited_executor")
        key = (agent_id, framework_id, executor_id)
        if key not in self.executors:
            return []
        self._remove_executor(key)
        self._request_allocation()
        fw = self.frameworks.get(framework_id)
        if fw is None or not fw.connected or fw.stream_id is None:
            return []
        return [
            SendEvent(
                fw.stream_id,
                SchedulerEvent(
                    type="FAILURE",
                    failure=Failure(
                        agent_id=AgentID(agent_id), executor_id=ExecutorID(executor_id), status=status
                    ),
                ),
            )
        ]

    def executor_message(
        self, agent_id: str, framework_id: str, executor_id: str, data: str, now: float
    ) -> list[Effect]:
        self.metrics.inc("master/messages_executor_to_framework")
        fw = self.frameworks.get(framework_id)
        if fw is None or not fw.connected or fw.stream_id is None:
            self.metrics.inc("master/invalid_executor_to_framework_messages")
            return []
        self.metrics.inc("master/valid_executor_to_framework_messages")
        return [
            SendEvent(
                fw.stream_id,
                SchedulerEvent(
                    type="MESSAGE",
                    message=EventMessage(
                        agent_id=AgentID(agent_id), executor_id=ExecutorID(executor_id), data=data
                    ),
                ),
            )
        ]

    # === time ===================================================================================

    def next_deadline(self) -> float:
        deadlines = [self._next_allocation]
        for fw in self.frameworks.values():
            if fw.next_heartbeat is not None:
                deadlines.append(fw.next_heartbeat)
            if fw.failover_deadline is not None and not fw.connected:
                deadlines.append(fw.failover_deadline)
        for aid in self._disconnected_agents:
            deadline = self.agents[aid].unreachable_deadline
            if deadline is not None:
                deadlines.append(deadline)
        if self.recovered:
            deadlines.append(min(self.recovered.values()))
        while self._offer_expiries and self._offer_expiries[0][1] not in self.offers:
            heapq.heappop(self._offer_expiries)
        if self._offer_expiries:
            deadlines.append(self._offer_expiries[0][0])
        return min(deadlines)

    def tick(self, now: float) -> list[Effect]:
        """Everything due at ``now``: heartbeats, timeouts, and an allocation round."""
        effects: list[Effect] = []
        for fw in list(self.frameworks.values()):
            if fw.connected and fw.next_heartbeat is not None and fw.next_heartbeat <= now:
                assert fw.stream_id is not None
                effects.append(SendEvent(fw.stream_id, SchedulerEvent(type="HEARTBEAT")))
                fw.next_heartbeat = now + self.config.heartbeat_interval_s
            if not fw.connected and fw.failover_deadline is not None and fw.failover_deadline <= now:
                log.info("framework %s did not fail over in time", fw.id)
                effects += self._remove_framework(fw, now)
        for aid in sorted(self._disconnected_agents):
            agent = self.agents[aid]
            if agent.unreachable_deadline is not None and agent.unreachable_deadline <= now:
                effects += self._mark_unreachable(agent, now, "health check timed out")
        for aid, deadline in list(self.recovered.items()):
            if deadline <= now:
                log.info("agent %s did not re-register after the master failover; unreachable", aid)
                del self.recovered[aid]
                self.unreachable[aid] = self.wall(now)
                self.metrics.inc("master/recovery_slave_removals")
                for fw in self.frameworks.values():
                    if fw.connected and fw.stream_id is not None:
                        effects.append(
                            SendEvent(
                                fw.stream_id,
                                SchedulerEvent(type="FAILURE", failure=Failure(agent_id=AgentID(aid))),
                            )
                        )
        while self._offer_expiries and self._offer_expiries[0][0] <= now:
            _, offer_id = heapq.heappop(self._offer_expiries)
            if offer_id in self.offers:
                log.info("offer %s timed out; rescinding it", offer_id)
                effects += self._rescind_offer(offer_id, now)
        if self._allocation_requested or now >= self._next_allocation:
            effects += self._allocate(now)
        return effects

    def _request_allocation(self) -> None:
        self._allocation_requested = True
        self._next_allocation = -math.inf

    def _allocate(self, now: float) -> list[Effect]:
        self._allocation_requested = False
        self._next_allocation = now + self.config.allocation_interval_s
        decisions = self.allocator.allocate(now)
        by_framework: dict[str, list[Allocation]] = {}
        for decision in decisions:
            by_framework.setdefault(decision.framework_id, []).append(decision)
        effects: list[Effect] = []
        for fid, allocations in by_framework.items():
            fw = self.frameworks.get(fid)
            if fw is None or not fw.connected or not fw.active or fw.stream_id is None:
                for a in allocations:
                    self.allocator.recover(fid, a.role, a.agent_id, a.resources, now=now)
                continue
            offers = [self._make_offer(fw, a, now) for a in allocations]
            self.metrics.inc("master/offers_sent", len(offers))
            effects.append(
                SendEvent(fw.stream_id, SchedulerEvent(type="OFFERS", offers=Offers(offers=tuple(offers))))
            )
        return effects

    def _make_offer(self, fw: _Framework, allocation: Allocation, now: float) -> Offer:
        agent = self.agents[allocation.agent_id]
        offer_id = f"{self.id}-O{self._next_offer}"
        self._next_offer += 1
        record = agent.record
        multi_role = fw.info.has_capability("MULTI_ROLE")
        resources = allocation.resources.to_proto(allocation.role if multi_role else None)
        url = msgspec.json.encode(
            {
                "scheme": "http",
                "address": {"hostname": record.hostname, "ip": record.ip, "port": record.port},
                "path": "/" + record.pid_path,
            }
        )
        executor_ids = tuple(ExecutorID(eid) for (fid, eid) in agent.executors if fid == fw.id)
        offer = Offer(
            id=OfferID(offer_id),
            framework_id=FrameworkID(fw.id),
            agent_id=AgentID(agent.id),
            hostname=record.hostname,
            resources=resources,
            attributes=record.attributes,
            executor_ids=executor_ids,
            allocation_info=AllocationInfo(role=allocation.role) if multi_role else None,
            url=msgspec.Raw(url),
        )
        expires = now + self.config.offer_timeout_s if self.config.offer_timeout_s is not None else None
        self.offers[offer_id] = _Offer(offer, fw.id, agent.id, allocation.role, allocation.resources, expires)
        if expires is not None:
            heapq.heappush(self._offer_expiries, (expires, offer_id))
        fw.offers.add(offer_id)
        agent.offers.add(offer_id)
        return offer

    def _remove_offer(self, offer_id: str, now: float, *, recover: bool = True) -> _Offer | None:
        entry = self.offers.pop(offer_id, None)
        if entry is None:
            return None
        fw = self.frameworks.get(entry.framework_id)
        if fw is not None:
            fw.offers.discard(offer_id)
        agent = self.agents.get(entry.agent_id)
        if agent is not None:
            agent.offers.discard(offer_id)
        if recover:
            self.allocator.recover(entry.framework_id, entry.role, entry.agent_id, entry.resources, now=now)
        return entry

    def _rescind_offer(self, offer_id: str, now: float) -> list[Effect]:
        entry = self._remove_offer(offer_id, now)
        if entry is None:
            return []
        fw = self.frameworks.get(entry.framework_id)
        if fw is None or not fw.connected or fw.stream_id is None:
            return []
        return [
            SendEvent(
                fw.stream_id, SchedulerEvent(type="RESCIND", rescind=Rescind(offer_id=OfferID(offer_id)))
            )
        ]

    # === task bookkeeping =======================================================================

    def _add_task(
        self,
        fw: _Framework,
        agent: _Agent,
        task: TaskInfo,
        role: str,
        now: float,
        *,
        group_executor: ExecutorInfo | None = None,
    ) -> _Task:
        executor_id: str | None = None
        resources = Resources.parse(task.resources, role)
        if task.executor is not None:
            executor_id = task.executor.executor_id.value
            key = (agent.id, fw.id, executor_id)
            if key not in self.executors:
                self._add_executor(agent, fw.id, task.executor, role)
        elif group_executor is not None:
            executor_id = group_executor.executor_id.value
        entry = _Task(
            info=task,
            framework_id=fw.id,
            agent_id=agent.id,
            role=role,
            resources=resources,
            state=TaskState.TASK_STAGING,
            executor_id=executor_id,
        )
        entry.statuses.append(
            TaskStatus(task_id=task.task_id, state=TaskState.TASK_STAGING, timestamp=self.wall(now))
        )
        fw.tasks[task.task_id.value] = entry
        agent.tasks[(fw.id, task.task_id.value)] = entry
        self._count_state(TaskState.TASK_STAGING, +1)
        return entry

    def _add_executor(self, agent: _Agent, fid: str, executor: ExecutorInfo, role: str) -> None:
        key = (agent.id, fid, executor.executor_id.value)
        resources = Resources.parse(executor.resources, role)
        entry = _Executor(executor, agent.id, fid, role, resources)
        self.executors[key] = entry
        agent.executors[(fid, executor.executor_id.value)] = entry

    def _remove_executor(self, key: tuple[str, str, str]) -> None:
        executor = self.executors.pop(key, None)
        if executor is None:
            return
        agent = self.agents.get(executor.agent_id)
        if agent is not None:
            agent.executors.pop((executor.framework_id, key[2]), None)
        if self.allocator.has_agent(executor.agent_id):
            self.allocator.recover(
                executor.framework_id, executor.role, executor.agent_id, executor.resources, now=0.0
            )

    def _readd_task(self, fw: _Framework, agent: _Agent, reported: ReportedTask, now: float) -> _Task:
        """A task reported by a (re-)registering agent; its resources are allocated again."""
        task_info = reported.task
        role = _task_role(task_info, fw.info)
        try:
            resources = Resources.parse(task_info.resources, role)
        except ValueError:
            resources = Resources()
        executor_id: str | None = None
        if task_info.executor is not None:
            executor_id = task_info.executor.executor_id.value
            key = (agent.id, fw.id, executor_id)
            if key not in self.executors:
                self._add_executor(agent, fw.id, task_info.executor, role)
                self.allocator.allocate_used(fw.id, role, agent.id, self.executors[key].resources)
        old = fw.tasks.pop(task_info.task_id.value, None)
        if old is not None:
            self._count_state(old.state, -1)
            stale_agent = self.agents.get(old.agent_id)
            if stale_agent is not None:
                stale_agent.tasks.pop((fw.id, task_info.task_id.value), None)
        fw.completed_tasks = deque(
            (t for t in fw.completed_tasks if t.info.task_id != task_info.task_id),
            maxlen=self.config.max_completed_tasks_per_framework,
        )
        entry = _Task(
            info=task_info,
            framework_id=fw.id,
            agent_id=agent.id,
            role=role,
            resources=resources,
            state=reported.state,
            executor_id=executor_id,
        )
        if reported.status is not None:
            entry.statuses.append(reported.status)
            entry.latest = reported.status
        if reported.pending_status is not None:
            entry.status_update_state = reported.pending_status.state
            entry.status_update_uuid = reported.pending_status.uuid
        fw.tasks[task_info.task_id.value] = entry
        agent.tasks[(fw.id, task_info.task_id.value)] = entry
        self._count_state(entry.state, +1)
        if not entry.state.is_terminal:
            self.allocator.allocate_used(fw.id, role, agent.id, resources)
        return entry

    def _update_task(
        self, fw: _Framework, task: _Task, status: TaskStatus, latest_state: TaskState, now: float
    ) -> None:
        was_terminal = task.state.is_terminal
        if task.state != latest_state:
            self._count_state(task.state, -1)
            task.state = latest_state
            self._count_state(latest_state, +1)
        task.status_update_state = status.state
        task.status_update_uuid = status.uuid
        if not task.statuses or task.statuses[-1].state != status.state or status.healthy is not None:
            task.statuses.append(status)
            if len(task.statuses) > 20:
                del task.statuses[1:-19]
        task.latest = status
        if not was_terminal and latest_state.is_terminal:
            if self.allocator.has_agent(task.agent_id):
                self.allocator.recover(fw.id, task.role, task.agent_id, task.resources, now=now)
            self._request_allocation()

    def _remove_task(self, fw: _Framework, task: _Task, now: float, *, unreachable: bool = False) -> None:
        tid = task.info.task_id.value
        live = not task.state.is_terminal and task.state != TaskState.TASK_UNREACHABLE and not unreachable
        if live and self.allocator.has_agent(task.agent_id):
            # Removing a live task (framework teardown): its resources go back.
            self.allocator.recover(fw.id, task.role, task.agent_id, task.resources, now=now)
        if fw.tasks.get(tid) is task:
            del fw.tasks[tid]
        agent = self.agents.get(task.agent_id)
        if agent is not None:
            agent.tasks.pop((fw.id, tid), None)
            agent.pending_kills.pop((fw.id, tid), None)
        self._count_state(task.state, -1)
        if unreachable:
            fw.unreachable_tasks[tid] = task
        else:
            fw.completed_tasks.append(task)
            while len(fw.completed_tasks) > self.config.max_completed_tasks_per_framework:
                fw.completed_tasks.popleft()
        if task.executor_id is not None and agent is not None:
            key = (agent.id, fw.id, task.executor_id)
            executor = self.executors.get(key)
            # A task-group (default) executor ends with its last task.
            if (
                executor is not None
                and executor.info.command is None
                and not any(
                    t.executor_id == task.executor_id for (f, _), t in agent.tasks.items() if f == fw.id
                )
            ):
                self._remove_executor(key)

    def _count_state(self, state: TaskState, delta: int) -> None:
        """Gauges of tasks per state; entering a terminal state also bumps Mesos's cumulative
        ``master/tasks_<state>`` counter."""
        self.metrics.inc("gauge/" + state.value, delta)
        if delta > 0 and state.is_terminal:
            self.metrics.inc("master/tasks_" + state.value.removeprefix("TASK_").lower(), delta)

    # === master-generated updates ===============================================================

    def _master_status(
        self,
        tid: str,
        state: TaskState,
        now: float,
        *,
        agent_id: str | None,
        message: str,
        reason: str,
        task: _Task | None = None,
        unreachable_time: float | None = None,
    ) -> TaskStatus:
        executor_id = None
        healthy = None
        container_status = RAW_UNSET
        if task is not None:
            if task.executor_id is not None:
                executor_id = ExecutorID(task.executor_id)
            if task.latest is not None:
                healthy = task.latest.healthy
                container_status = task.latest.container_status
            if (
                unreachable_time is None
                and task.unreachable_time is not None
                and state in (TaskState.TASK_UNREACHABLE,)
            ):
                unreachable_time = task.unreachable_time
        return TaskStatus(
            task_id=TaskID(tid),
            state=state,
            message=message,
            source="SOURCE_MASTER",
            reason=reason,
            agent_id=AgentID(agent_id) if agent_id is not None else None,
            executor_id=executor_id,
            timestamp=self.wall(now),
            healthy=healthy,
            container_status=container_status,
            unreachable_time=(
                TimeInfo(nanoseconds=round(unreachable_time * 1e9)) if unreachable_time is not None else None
            ),
        )

    def _send_master_update(
        self,
        fw: _Framework,
        tid: str,
        state: TaskState,
        now: float,
        *,
        agent_id: str | None,
        message: str,
        reason: str,
        task: _Task | None = None,
        unreachable_time: float | None = None,
    ) -> list[Effect]:
        """A one-shot update without uuid (never retried, never acknowledged)."""
        if not fw.connected or fw.stream_id is None:
            return []
        status = self._master_status(
            tid,
            state,
            now,
            agent_id=agent_id,
            message=message,
            reason=reason,
            task=task,
            unreachable_time=unreachable_time,
        )
        return [SendEvent(fw.stream_id, SchedulerEvent(type="UPDATE", update=Update(status=status)))]

    # === introspection ==========================================================================

    def task_counts(self) -> dict[str, int]:
        return {
            k.removeprefix("gauge/"): v for k, v in self.metrics.counters.items() if k.startswith("gauge/")
        }

    def all_tasks(self) -> list[_Task]:
        return [t for fw in self.frameworks.values() for t in fw.tasks.values()]
