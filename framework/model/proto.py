"""Typed values mirroring the Mesos v1 protobuf messages (package ``mesos.v1``).

Every class here is a frozen ``msgspec.Struct`` whose attribute names are the proto field names,
so the same class decodes what the master sends and encodes what Steward sends, with no dict in
between (``framework.mesos.wire`` holds the call and event envelopes and the codec). Rules that
follow from the Mesos JSON dialect (see ``shared/reference/mesos-v1-protocol.md`` section 1.4):

* unset optional fields are ``None`` (or an empty tuple for repeated fields) and are omitted on
  encode (``omit_defaults``): Steward never sends a key it did not mean to set;
* enums are their v1 name strings;
* ``bytes`` fields (``uuid``, ``data``) stay base64 text exactly as received, so an ACKNOWLEDGE
  echoes the master's uuid byte for byte;
* parts of a message Steward only carries through and never inspects (a persistent volume's
  ``disk``, a ``revocable`` marker, an agent ``domain``) are kept as ``msgspec.Raw``: the original
  JSON is re-emitted untouched, so a ``Resource`` copied from an offer into a task keeps every field
  the master put there (protocol brief, mistake 20);
* unknown fields from a newer master are ignored on decode, never an error.

Only the messages (and fields) that a framework, an executor or the embedded cluster use are
modelled; add fields here by their proto names when a feature needs them.
"""

from __future__ import annotations

import enum
from typing import Annotated, Final, Literal

import msgspec

__all__ = [
    "MAX_SCALAR",
    "RAW_UNSET",
    "URI",
    "AgentID",
    "AgentInfo",
    "AllocationInfo",
    "Attribute",
    "CapabilityInfo",
    "CommandInfo",
    "ContainerID",
    "ContainerInfo",
    "DockerInfo",
    "DurationInfo",
    "Environment",
    "EnvironmentVariable",
    "ExecutorID",
    "ExecutorInfo",
    "Filters",
    "FrameworkCapability",
    "FrameworkID",
    "FrameworkInfo",
    "HTTPCheckInfo",
    "HealthCheck",
    "KillPolicy",
    "Label",
    "Labels",
    "LinuxInfo",
    "MasterInfo",
    "Message",
    "Offer",
    "OfferID",
    "Operation",
    "OperationID",
    "OperationStatus",
    "Parameter",
    "PortMapping",
    "Range",
    "Ranges",
    "ReservationInfo",
    "Resource",
    "Scalar",
    "Set",
    "TCPCheckInfo",
    "TaskGroupInfo",
    "TaskID",
    "TaskInfo",
    "TaskState",
    "TaskStatus",
    "Text",
    "TimeInfo",
    "UUIDMessage",
    "Volume",
]


RAW_UNSET: Final = msgspec.Raw()
"""Default of pass-through fields: an empty ``Raw`` is falsy and omitted on encode."""


class Message(msgspec.Struct, frozen=True, omit_defaults=True, gc=False):
    """Base of every proto-mirroring value: immutable, omits unset fields when encoded."""


# --- identifiers (each is a message with one ``value`` field on the wire) -----------------------


class FrameworkID(Message, frozen=True):
    value: str


class OfferID(Message, frozen=True):
    value: str


class AgentID(Message, frozen=True):
    value: str


class TaskID(Message, frozen=True):
    value: str


class ExecutorID(Message, frozen=True):
    value: str


class ContainerID(Message, frozen=True):
    value: str
    parent: ContainerID | None = None


class OperationID(Message, frozen=True):
    value: str


class UUIDMessage(Message, frozen=True):
    """``mesos.v1.UUID``: used by operation status updates (base64 text in ``value``)."""

    value: str


class TimeInfo(Message, frozen=True):
    nanoseconds: int


class DurationInfo(Message, frozen=True):
    nanoseconds: int

    @classmethod
    def from_seconds(cls, seconds: float) -> DurationInfo:
        return cls(nanoseconds=round(seconds * 1_000_000_000))

    @property
    def seconds(self) -> float:
        return self.nanoseconds / 1_000_000_000


# --- values, resources, attributes --------------------------------------------------------------


class TaskState(enum.Enum):
    """``mesos.v1.TaskState``."""

    TASK_STAGING = "TASK_STAGING"
    TASK_STARTING = "TASK_STARTING"
    TASK_RUNNING = "TASK_RUNNING"
    TASK_KILLING = "TASK_KILLING"
    TASK_FINISHED = "TASK_FINISHED"
    TASK_FAILED = "TASK_FAILED"
    TASK_KILLED = "TASK_KILLED"
    TASK_ERROR = "TASK_ERROR"
    TASK_LOST = "TASK_LOST"
    TASK_DROPPED = "TASK_DROPPED"
    TASK_UNREACHABLE = "TASK_UNREACHABLE"
    TASK_GONE = "TASK_GONE"
    TASK_GONE_BY_OPERATOR = "TASK_GONE_BY_OPERATOR"
    TASK_UNKNOWN = "TASK_UNKNOWN"

    @property
    def is_terminal(self) -> bool:
        """Terminal for resource accounting, as Mesos's ``protobuf::isTerminalState``.

        TASK_LOST and TASK_GONE_BY_OPERATOR are terminal here although such a task may come back;
        the lifecycle table in ``framework.core`` decides what to do when it does.
        """
        return self in _TERMINAL_STATES


_TERMINAL_STATES = frozenset(
    {
        TaskState.TASK_FINISHED,
        TaskState.TASK_FAILED,
        TaskState.TASK_KILLED,
        TaskState.TASK_ERROR,
        TaskState.TASK_LOST,
        TaskState.TASK_DROPPED,
        TaskState.TASK_GONE,
        TaskState.TASK_GONE_BY_OPERATOR,
    }
)

ValueType = Literal["SCALAR", "RANGES", "SET", "TEXT"]


MAX_SCALAR: Final = 2**63 / 1000
"""Mesos does its scalar arithmetic in int64 thousandths, so no master sends a larger magnitude; one
this large (say 1e308 cpus from a hostile master) overflowed Steward's own thousandths arithmetic and
stopped the scheduler. Decoding refuses it: the record is skipped as malformed."""


class Scalar(Message, frozen=True):
    value: Annotated[float, msgspec.Meta(ge=-MAX_SCALAR, le=MAX_SCALAR)]


class Range(Message, frozen=True):
    begin: int
    end: int


class Ranges(Message, frozen=True):
    range: tuple[Range, ...] = ()


class Set(Message, frozen=True):
    item: tuple[str, ...] = ()


class Text(Message, frozen=True):
    value: str


class AllocationInfo(Message, frozen=True):
    role: str | None = None


class Label(Message, frozen=True):
    key: str
    value: str | None = None


class Labels(Message, frozen=True):
    labels: tuple[Label, ...] = ()

    @classmethod
    def of(cls, mapping: dict[str, str]) -> Labels:
        return cls(labels=tuple(Label(key=k, value=v) for k, v in mapping.items()))

    def as_dict(self) -> dict[str, str]:
        return {label.key: label.value or "" for label in self.labels}


class ReservationInfo(Message, frozen=True):
    type: Literal["UNKNOWN", "STATIC", "DYNAMIC"] | None = None
    role: str | None = None
    principal: str | None = None
    labels: Labels | None = None


class Resource(Message, frozen=True):
    """``mesos.v1.Resource``. Copy offered ones and shrink only the quantity (see ``model.resources``)."""

    name: str
    type: ValueType
    scalar: Scalar | None = None
    ranges: Ranges | None = None
    set: Set | None = None
    role: str | None = None
    allocation_info: AllocationInfo | None = None
    reservation: ReservationInfo | None = None
    reservations: tuple[ReservationInfo, ...] = ()
    disk: msgspec.Raw = RAW_UNSET
    revocable: msgspec.Raw = RAW_UNSET
    shared: msgspec.Raw = RAW_UNSET
    provider_id: msgspec.Raw = RAW_UNSET


class Attribute(Message, frozen=True):
    name: str
    type: ValueType
    scalar: Scalar | None = None
    ranges: Ranges | None = None
    set: Set | None = None
    text: Text | None = None

    def as_text(self) -> str:
        """The attribute's value as one string (how placement constraints compare it)."""
        if self.text is not None:
            return self.text.value
        if self.scalar is not None:
            return format(self.scalar.value, "g")
        if self.ranges is not None:
            return ",".join(f"[{r.begin}-{r.end}]" for r in self.ranges.range)
        if self.set is not None:
            return "{" + ",".join(self.set.item) + "}"
        return ""


# --- framework, master, agent -------------------------------------------------------------------

FrameworkCapabilityType = Literal[
    "UNKNOWN",
    "REVOCABLE_RESOURCES",
    "TASK_KILLING_STATE",
    "GPU_RESOURCES",
    "SHARED_RESOURCES",
    "PARTITION_AWARE",
    "MULTI_ROLE",
    "RESERVATION_REFINEMENT",
    "REGION_AWARE",
]


class FrameworkCapability(Message, frozen=True):
    type: FrameworkCapabilityType


class FrameworkInfo(Message, frozen=True):
    user: str
    name: str
    id: FrameworkID | None = None
    failover_timeout: float | None = None
    checkpoint: bool | None = None
    role: str | None = None
    roles: tuple[str, ...] = ()
    hostname: str | None = None
    principal: str | None = None
    webui_url: str | None = None
    capabilities: tuple[FrameworkCapability, ...] = ()
    labels: Labels | None = None
    offer_filters: msgspec.Raw = RAW_UNSET

    def has_capability(self, capability: FrameworkCapabilityType) -> bool:
        return any(c.type == capability for c in self.capabilities)


class MasterInfo(Message, frozen=True):
    id: str
    ip: int
    port: int = 5050
    pid: str | None = None
    hostname: str | None = None
    version: str | None = None
    address: msgspec.Raw = RAW_UNSET
    domain: msgspec.Raw = RAW_UNSET
    capabilities: msgspec.Raw = RAW_UNSET


class AgentInfo(Message, frozen=True):
    hostname: str
    port: int | None = None
    resources: tuple[Resource, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    id: AgentID | None = None
    domain: msgspec.Raw = RAW_UNSET


# --- commands, containers, checks ---------------------------------------------------------------


class URI(Message, frozen=True):
    value: str
    executable: bool | None = None
    extract: bool | None = None
    cache: bool | None = None
    output_file: str | None = None


class EnvironmentVariable(Message, frozen=True):
    name: str
    type: Literal["UNKNOWN", "VALUE", "SECRET"] | None = None
    value: str | None = None
    secret: msgspec.Raw = RAW_UNSET


class Environment(Message, frozen=True):
    variables: tuple[EnvironmentVariable, ...] = ()

    @classmethod
    def of(cls, mapping: dict[str, str]) -> Environment:
        return cls(variables=tuple(EnvironmentVariable(name=k, value=v) for k, v in mapping.items()))

    def as_dict(self) -> dict[str, str]:
        return {v.name: v.value or "" for v in self.variables}


class CommandInfo(Message, frozen=True):
    uris: tuple[URI, ...] = ()
    environment: Environment | None = None
    shell: bool | None = None
    value: str | None = None
    arguments: tuple[str, ...] = ()
    user: str | None = None


class Parameter(Message, frozen=True):
    key: str
    value: str


class PortMapping(Message, frozen=True):
    host_port: int
    container_port: int
    protocol: str | None = None


class DockerInfo(Message, frozen=True):
    image: str
    network: Literal["HOST", "BRIDGE", "NONE", "USER"] | None = None
    port_mappings: tuple[PortMapping, ...] = ()
    privileged: bool | None = None
    parameters: tuple[Parameter, ...] = ()
    force_pull_image: bool | None = None
    volume_driver: str | None = None


class Volume(Message, frozen=True):
    container_path: str
    mode: Literal["RW", "RO"]
    host_path: str | None = None
    image: msgspec.Raw = RAW_UNSET
    source: msgspec.Raw = RAW_UNSET


Capability = Literal[
    "UNKNOWN",
    "CHOWN",
    "DAC_OVERRIDE",
    "DAC_READ_SEARCH",
    "FOWNER",
    "FSETID",
    "KILL",
    "SETGID",
    "SETUID",
    "SETPCAP",
    "LINUX_IMMUTABLE",
    "NET_BIND_SERVICE",
    "NET_BROADCAST",
    "NET_ADMIN",
    "NET_RAW",
    "IPC_LOCK",
    "IPC_OWNER",
    "SYS_MODULE",
    "SYS_RAWIO",
    "SYS_CHROOT",
    "SYS_PTRACE",
    "SYS_PACCT",
    "SYS_ADMIN",
    "SYS_BOOT",
    "SYS_NICE",
    "SYS_RESOURCE",
    "SYS_TIME",
    "SYS_TTY_CONFIG",
    "MKNOD",
    "LEASE",
    "AUDIT_WRITE",
    "AUDIT_CONTROL",
    "SETFCAP",
    "MAC_OVERRIDE",
    "MAC_ADMIN",
    "SYSLOG",
    "WAKE_ALARM",
    "BLOCK_SUSPEND",
    "AUDIT_READ",
    "PERFMON",
    "BPF",
    "CHECKPOINT_RESTORE",
]
"""``CapabilityInfo.Capability``: Linux capability names without Docker's ``CAP_`` prefix."""


class CapabilityInfo(Message, frozen=True):
    capabilities: tuple[Capability, ...] = ()


class LinuxInfo(Message, frozen=True):
    capability_info: CapabilityInfo | None = None
    bounding_capabilities: CapabilityInfo | None = None
    effective_capabilities: CapabilityInfo | None = None
    share_pid_namespace: bool | None = None
    seccomp: msgspec.Raw = RAW_UNSET
    ipc_mode: Literal["UNKNOWN", "PRIVATE", "SHARE_PARENT"] | None = None
    shm_size: int | None = None
    share_cgroups: bool | None = None


class ContainerInfo(Message, frozen=True):
    type: Literal["DOCKER", "MESOS"]
    volumes: tuple[Volume, ...] = ()
    hostname: str | None = None
    docker: DockerInfo | None = None
    mesos: msgspec.Raw = RAW_UNSET
    network_infos: msgspec.Raw = RAW_UNSET
    linux_info: LinuxInfo | None = None
    rlimit_info: msgspec.Raw = RAW_UNSET
    tty_info: msgspec.Raw = RAW_UNSET


class HTTPCheckInfo(Message, frozen=True):
    port: int
    scheme: str | None = None
    path: str | None = None
    statuses: tuple[int, ...] = ()
    protocol: Literal["IPv4", "IPv6"] | None = None


class TCPCheckInfo(Message, frozen=True):
    port: int
    protocol: Literal["IPv4", "IPv6"] | None = None


class HealthCheck(Message, frozen=True):
    type: Literal["UNKNOWN", "COMMAND", "HTTP", "TCP"] | None = None
    delay_seconds: float | None = None
    interval_seconds: float | None = None
    timeout_seconds: float | None = None
    consecutive_failures: int | None = None
    grace_period_seconds: float | None = None
    command: CommandInfo | None = None
    http: HTTPCheckInfo | None = None
    tcp: TCPCheckInfo | None = None


class KillPolicy(Message, frozen=True):
    grace_period: DurationInfo | None = None


class LimitScalar(Message, frozen=True):
    """``Value.Scalar`` inside ``TaskInfo.limits``: a number, or the string ``"Infinity"``."""

    value: float | Literal["Infinity"]


class ExecutorInfo(Message, frozen=True):
    executor_id: ExecutorID
    type: Literal["UNKNOWN", "DEFAULT", "CUSTOM"] | None = None
    framework_id: FrameworkID | None = None
    command: CommandInfo | None = None
    container: ContainerInfo | None = None
    resources: tuple[Resource, ...] = ()
    name: str | None = None
    source: str | None = None
    data: str | None = None
    shutdown_grace_period: DurationInfo | None = None
    labels: Labels | None = None
    discovery: msgspec.Raw = RAW_UNSET


class TaskInfo(Message, frozen=True):
    name: str
    task_id: TaskID
    agent_id: AgentID
    resources: tuple[Resource, ...] = ()
    executor: ExecutorInfo | None = None
    command: CommandInfo | None = None
    container: ContainerInfo | None = None
    health_check: HealthCheck | None = None
    check: msgspec.Raw = RAW_UNSET
    kill_policy: KillPolicy | None = None
    data: str | None = None
    labels: Labels | None = None
    discovery: msgspec.Raw = RAW_UNSET
    max_completion_time: DurationInfo | None = None
    limits: dict[str, LimitScalar] | None = None


class TaskGroupInfo(Message, frozen=True):
    tasks: tuple[TaskInfo, ...] = ()


# --- offers and operations ----------------------------------------------------------------------


class Offer(Message, frozen=True):
    id: OfferID
    framework_id: FrameworkID
    agent_id: AgentID
    hostname: str
    resources: tuple[Resource, ...] = ()
    attributes: tuple[Attribute, ...] = ()
    executor_ids: tuple[ExecutorID, ...] = ()
    allocation_info: AllocationInfo | None = None
    url: msgspec.Raw = RAW_UNSET
    domain: msgspec.Raw = RAW_UNSET
    unavailability: msgspec.Raw = RAW_UNSET

    @property
    def role(self) -> str | None:
        return self.allocation_info.role if self.allocation_info else None


class LaunchOperation(Message, frozen=True):
    task_infos: tuple[TaskInfo, ...] = ()


class LaunchGroupOperation(Message, frozen=True):
    executor: ExecutorInfo
    task_group: TaskGroupInfo


OperationType = Literal[
    "UNKNOWN",
    "LAUNCH",
    "LAUNCH_GROUP",
    "RESERVE",
    "UNRESERVE",
    "CREATE",
    "DESTROY",
    "GROW_VOLUME",
    "SHRINK_VOLUME",
    "CREATE_DISK",
    "DESTROY_DISK",
]


class Operation(Message, frozen=True):
    """``Offer.Operation``: LAUNCH and LAUNCH_GROUP are modelled; the others pass through raw."""

    type: OperationType
    id: OperationID | None = None
    launch: LaunchOperation | None = None
    launch_group: LaunchGroupOperation | None = None
    reserve: msgspec.Raw = RAW_UNSET
    unreserve: msgspec.Raw = RAW_UNSET
    create: msgspec.Raw = RAW_UNSET
    destroy: msgspec.Raw = RAW_UNSET
    grow_volume: msgspec.Raw = RAW_UNSET
    shrink_volume: msgspec.Raw = RAW_UNSET
    create_disk: msgspec.Raw = RAW_UNSET
    destroy_disk: msgspec.Raw = RAW_UNSET


class Filters(Message, frozen=True):
    refuse_seconds: float | None = None


# --- status -------------------------------------------------------------------------------------

TaskStatusSource = Literal["SOURCE_MASTER", "SOURCE_AGENT", "SOURCE_EXECUTOR"]


class TaskStatus(Message, frozen=True):
    """``mesos.v1.TaskStatus``. ``reason`` stays a string: new reasons must not break decoding."""

    task_id: TaskID
    state: TaskState
    message: str | None = None
    source: TaskStatusSource | None = None
    reason: str | None = None
    data: str | None = None
    agent_id: AgentID | None = None
    executor_id: ExecutorID | None = None
    timestamp: float | None = None
    uuid: str | None = None
    healthy: bool | None = None
    check_status: msgspec.Raw = RAW_UNSET
    labels: Labels | None = None
    container_status: msgspec.Raw = RAW_UNSET
    unreachable_time: TimeInfo | None = None
    limitation: msgspec.Raw = RAW_UNSET


class OperationStatus(Message, frozen=True):
    state: str
    operation_id: OperationID | None = None
    message: str | None = None
    uuid: UUIDMessage | None = None
    agent_id: AgentID | None = None
    resource_provider_id: msgspec.Raw = RAW_UNSET
    converted_resources: msgspec.Raw = RAW_UNSET
