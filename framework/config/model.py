"""The typed configuration: frozen dataclasses whose type hints are the schema.

A site file has two top-level sections, ``framework`` (who Steward is to Mesos and how it runs) and
``services`` (what it runs). Every class here is a frozen, slotted, keyword-only dataclass; values
carry their unit in the attribute name (``timeout_s`` seconds, ``mem_mib`` MiB) while the YAML key
drops the suffix (``timeout: 30s``, ``mem: 2GiB``). ``framework.config.schema`` explains how hints
become parsing rules; ``framework.config.defaults`` fills in the per-kind defaults before
conversion, so after :func:`framework.config.load_config` every field below holds its final value.

To add a setting: add an annotated field with a default and a docstring to the right class, add
a ``_cross_check`` rule if it depends on other fields, and document it in the configuration
reference. Unknown keys are always errors, so old files stay valid and typos never pass silently.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Iterator
from collections.abc import Mapping as AbcMapping
from dataclasses import dataclass, field
from typing import Annotated, ClassVar, Final, Literal

from framework.config.addresses import parse_host_port, parse_master
from framework.config.errors import Issue
from framework.config.schema import (
    Check,
    Duration,
    KeyCheck,
    LocalPath,
    Problem,
    SizeMiB,
    absolute_path,
    at_least,
    at_most,
    matches,
    non_empty,
    positive,
    setting,
    unique_items,
)

__all__ = [
    "ApiConfig",
    "AttributeConstraint",
    "AutoscaleConfig",
    "AutoscaleSourceConfig",
    "Config",
    "Constraint",
    "ContainerConfig",
    "ExecutorConfig",
    "FileStoreConfig",
    "FrameworkConfig",
    "HealthCheckConfig",
    "HeartbeatConfig",
    "LocalClusterConfig",
    "MaxPerConstraint",
    "OffersConfig",
    "PortMappingConfig",
    "ResourcesConfig",
    "RestartBackoffConfig",
    "SecretFileConfig",
    "ServiceConfig",
    "ServiceKind",
    "SpreadConstraint",
    "StartdConfig",
    "StoreConfig",
    "TlsConfig",
    "UniqueConstraint",
    "VolumeConfig",
    "ZooKeeperStoreConfig",
]

ONE_WEEK_S: Final = 7 * 86400.0

# -- value rules shared by several classes -------------------------------------------------------


def _address_check(*, default_port: int | None = None, allow_port_zero: bool = False) -> Check:
    def test(value: str) -> str | None:
        try:
            parse_host_port(value, default_port=default_port, allow_port_zero=allow_port_zero)
        except ValueError as exc:
            return str(exc)
        return None

    return Check(test)


def _master_check(value: str) -> str | None:
    try:
        parse_master(value)
    except ValueError as exc:
        return str(exc)
    return None


def _regex_check(value: str) -> str | None:
    try:
        re.compile(value)
    except re.error as exc:
        return f"invalid regular expression {value!r}: {exc}"
    return None


Port = Annotated[int, at_least(1), at_most(65535)]
"""A TCP/UDP port number."""

HostPath = Annotated[str, absolute_path]
"""An absolute path on a Mesos agent (bind-mount sources): never resolved against the config file."""

ContainerPath = Annotated[str, absolute_path]
"""An absolute path inside a container."""

Role = Annotated[
    str,
    matches(
        r"\*|[A-Za-z0-9_][A-Za-z0-9_.-]*(?:/[A-Za-z0-9_][A-Za-z0-9_.-]*)*",
        "a Mesos role name such as 'steward'",
    ),
]
"""A Mesos role: ``*`` or names such as ``site`` or ``site/services`` (hierarchical)."""

UnixUser = Annotated[
    str,
    matches(
        r"(?:[A-Za-z_][A-Za-z0-9_.-]*|[0-9]+)(?::(?:[A-Za-z_][A-Za-z0-9_.-]*|[0-9]+))?",
        "a user name or uid, optionally with ':group' or ':gid' (e.g. 'condor' or '1000:1000')",
    ),
]
"""A unix user for a container: ``name``, ``uid``, ``name:group`` or ``uid:gid``."""

AttributeName = Annotated[
    str, matches(r"[A-Za-z0-9_][A-Za-z0-9_.-]*", "'hostname' or an agent attribute name such as 'rack'")
]
"""``hostname`` or the name of an agent attribute (``--attributes=rack:r1``)."""

Capability = Annotated[
    str, matches(r"ALL|(?:CAP_)?[A-Z][A-Z0-9_]*", "a Linux capability such as 'SYS_ADMIN' or 'ALL'")
]
"""A Linux capability name as Docker takes it (``SYS_ADMIN``; ``CAP_`` prefix optional)."""

Regex = Annotated[str, Check(_regex_check)]
"""A Python regular expression that must match an attribute value in full."""

ServiceName = KeyCheck(
    lambda name: (
        None
        if re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", name)
        else f"service names are lower-case letters, digits, '-' and '_', starting with a letter "
        f"(at most 63 characters), got {name!r}"
    )
)
EnvName = KeyCheck(
    lambda name: (
        None
        if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name)
        else "environment variable names are letters, digits and '_', not starting with a digit, "
        f"got {name!r}"
    )
)

_EMPTY: Final[AbcMapping[str, str]] = types.MappingProxyType({})


def _empty_mapping() -> AbcMapping[str, str]:
    return _EMPTY


def format_seconds(seconds: float) -> str:
    """Render seconds the way a user would write them back (``90s``, ``0.25s``)."""
    return f"{seconds:g}s"


# -- framework -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class TlsConfig:
    """TLS towards the Mesos master (used for ``https://`` masters)."""

    ca_bundle: LocalPath | None = None
    """PEM file of CA certificates to trust instead of the system store."""
    verify: bool = True
    """Verify the master's certificate. Turning this off is allowed for experiments, with a warning."""

    def _cross_check(self) -> Iterator[Problem]:
        if not self.verify:
            if self.ca_bundle is not None:
                yield Problem(("ca_bundle",), "has no effect when verify is false; remove one of them")
            yield Problem(
                ("verify",),
                "TLS certificate verification is disabled: anyone between Steward and the master "
                "can impersonate the master",
                warning=True,
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class HeartbeatConfig:
    """The watchdog on the master's HEARTBEAT events."""

    misses: Annotated[int, at_least(1), at_most(100)] = 5
    """Heartbeat intervals that may pass in silence before the connection is declared lost and the
    master is detected again."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FileStoreConfig:
    """State (framework ID, task records) in local files: for a single scheduler instance."""

    config_tag: ClassVar[tuple[str, str]] = ("type", "file")
    type: Literal["file"] = "file"
    """Always ``file``; selects this store."""
    path: LocalPath = "/var/lib/steward"
    """Directory holding the state files."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ZooKeeperStoreConfig:
    """State in ZooKeeper: needed when several Steward instances stand by for each other."""

    config_tag: ClassVar[tuple[str, str]] = ("type", "zookeeper")
    type: Literal["zookeeper"]
    """Always ``zookeeper``; selects this store."""
    servers: Annotated[tuple[Annotated[str, _address_check(default_port=2181)], ...], non_empty, unique_items]
    """ZooKeeper servers as ``host:port`` (port defaults to 2181)."""
    path: Annotated[str, matches(r"(?:/[A-Za-z0-9_.-]+)+", "a znode path such as '/steward'")] = "/steward"
    """The znode under which Steward keeps its state."""


StoreConfig = FileStoreConfig | ZooKeeperStoreConfig
"""Where Steward persists what it must not forget across restarts, chosen by ``type``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class OffersConfig:
    """How Steward treats resource offers it does not use."""

    refuse_seconds: Annotated[Duration, positive] = 120.0
    """Filter duration sent with every DECLINE: the master keeps the declined resources away this long."""
    revive_min_interval_s: Annotated[Duration, positive] = 5.0
    """Least time between two REVIVE calls, however often demand rises."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ApiConfig:
    """The operator HTTP API (status, overrides, metrics)."""

    listen: Annotated[str, _address_check(allow_port_zero=True)] = "127.0.0.1:8080"
    """``host:port`` to listen on; port 0 picks a free port. Loopback by default: expose it deliberately."""
    token_file: LocalPath | None = None
    """File holding the bearer token that write actions (scale, pause, resume, restart, reload)
    need; re-read when it changes. Without it the API is read-only."""
    read_token_required: bool = False
    """Reads (``/v1/...`` and ``/metrics``) need the token too; ``/healthz``, ``/readyz`` and the
    OpenAPI document never do."""

    def _cross_check(self) -> Iterator[Problem]:
        if self.read_token_required and self.token_file is None:
            yield Problem(("read_token_required",), "needs a token_file to check the token against")


@dataclass(frozen=True, slots=True, kw_only=True)
class LocalClusterConfig:
    """The embedded single-host cluster that ``master: local`` starts inside the Steward process."""

    agents: Annotated[int, at_least(1), at_most(64)] = 3
    """How many agents (``agent-1``, ``agent-2``, ...) the embedded cluster runs on this host."""
    containerizer: Literal["docker", "process", "simulated"] = "docker"
    """What runs the tasks: real Docker containers, local processes, or nothing (scale tests)."""
    listen: Annotated[str, _address_check(allow_port_zero=True)] = "127.0.0.1:5050"
    """``host:port`` of the embedded master; port 0 picks a free port."""
    config: LocalPath | None = None
    """A cluster file (agents' resources, attributes, timings) instead of ``agents``."""

    def _cross_check(self) -> Iterator[Problem]:
        if self.config is not None and self.agents != 3:
            yield Problem(("agents",), "set either agents or a cluster file (config), not both")


@dataclass(frozen=True, slots=True, kw_only=True)
class ExecutorConfig:
    """The Steward executor, for services with ``container.executor: steward``."""

    zipapp: LocalPath | None = None
    """The executor zipapp (``steward build-executor --out FILE``); unset builds one at start."""
    listen: Annotated[str, _address_check(allow_port_zero=True)] = "127.0.0.1:0"
    """Where Steward serves the zipapp for the agents' fetchers (port 0 picks a free port)."""
    advertise_host: Annotated[str, non_empty] | None = None
    """Host name the agents reach that address by (default: the listen host, or this host's name)."""
    python: Annotated[str, non_empty] = "python3"
    """The agents' Python 3.11+ interpreter, looked up on their PATH."""
    usage_interval_s: Annotated[Duration, positive] = 10.0
    """How often each task's resource usage is reported."""


@dataclass(frozen=True, slots=True, kw_only=True)
class FrameworkConfig:
    """Who Steward is to Mesos and how it connects, persists and serves."""

    name: Annotated[str, non_empty] = "steward"
    """Framework name shown by the master."""
    user: UnixUser = "nobody"
    """Default unix user of tasks (FrameworkInfo.user) when a service does not name one."""
    roles: Annotated[tuple[Role, ...], non_empty, unique_items] = ("*",)
    """Roles Steward subscribes with (MULTI_ROLE); a service without ``role`` uses the first."""
    principal: Annotated[str, non_empty] | None = None
    """Principal for authentication with the master."""
    secret_file: LocalPath | None = None
    """File holding the secret for ``principal``; read only when connecting (see ``read_secret``)."""
    failover_timeout_s: Duration = ONE_WEEK_S
    """How long the master keeps Steward's tasks running while no scheduler is connected."""
    master: Annotated[str, Check(_master_check)] = "local"
    """``local``, ``http(s)://host:port[,host:port...]`` or ``zk://host:port[,...]/path``."""
    tls: TlsConfig = field(default_factory=TlsConfig)
    """TLS towards ``https://`` masters."""
    heartbeat: HeartbeatConfig = field(default_factory=HeartbeatConfig)
    """The heartbeat watchdog."""
    store: StoreConfig = field(default_factory=FileStoreConfig)
    """Where state is persisted (``type: file`` or ``type: zookeeper``)."""
    offers: OffersConfig = field(default_factory=OffersConfig)
    """Offer handling: decline filters and revive pacing."""
    api: ApiConfig = field(default_factory=ApiConfig)
    """The operator HTTP API."""
    local_cluster: LocalClusterConfig = field(default_factory=LocalClusterConfig)
    """Used only with ``master: local``."""
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)
    """Used only when a service runs with ``container.executor: steward``."""
    """The operator HTTP API."""
    allow_privileged: Annotated[tuple[str, ...], unique_items] = ()
    """Services (by name) that may run privileged containers besides kind ``cvmfs``."""

    def _cross_check(self) -> Iterator[Problem]:
        if self.secret_file is not None and self.principal is None:
            yield Problem(("secret_file",), "needs a principal to go with it")
        if self.failover_timeout_s < ONE_WEEK_S:
            yield Problem(
                ("failover_timeout",),
                f"{format_seconds(self.failover_timeout_s)} is less than a week: if Steward is down "
                "longer, Mesos kills every service it runs",
                warning=True,
            )


# -- services ------------------------------------------------------------------------------------


class ServiceKind(enum.StrEnum):
    """What a service is; each kind brings defaults (see ``framework.config.defaults``)."""

    STARTD = "startd"
    CVMFS = "cvmfs"
    SQUID = "squid"
    GENERIC = "generic"


@dataclass(frozen=True, slots=True, kw_only=True)
class SecretFileConfig:
    """A file on the agent mounted read-only into the container."""

    source: HostPath
    """Absolute path on the agent."""
    target: ContainerPath
    """Absolute path inside the container."""


@dataclass(frozen=True, slots=True, kw_only=True)
class PortMappingConfig:
    """A bridge-network port mapping."""

    container_port: Port
    """Port inside the container."""
    host_port: Port | None = None
    """A port from the offer's ``ports``; unset takes the next port allocated to the task."""
    protocol: Literal["tcp", "udp"] = "tcp"
    """``tcp`` or ``udp``."""


@dataclass(frozen=True, slots=True, kw_only=True)
class VolumeConfig:
    """A bind mount from the agent into the container."""

    host_path: HostPath
    """Absolute path on the agent."""
    container_path: ContainerPath
    """Absolute path inside the container."""
    mode: Literal["ro", "rw"] = "ro"
    """Read-only unless said otherwise."""
    propagation: Literal["rprivate", "private", "rslave", "slave", "rshared", "shared"] | None = None
    """Mount propagation; unset is Docker's default (``rprivate``)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ContainerConfig:
    """The container a service's tasks run in."""

    image: Annotated[str, matches(r"\S+", "a Docker image reference such as 'squid:6'")]
    """Docker image reference, pulled by the agent."""
    command: str | None = None
    """A shell command line (run with ``sh -c``); the image's entrypoint when neither this nor ``args``."""
    args: tuple[str, ...] | None = None
    """Arguments passed to the image's entrypoint, without a shell."""
    environment: Annotated[AbcMapping[str, str], EnvName] = field(default_factory=_empty_mapping)
    """Environment variables; numbers are taken as written (``PORT: 3128`` is ``"3128"``)."""
    secret_files: tuple[SecretFileConfig, ...] = ()
    """Agent files mounted read-only (tokens, keys); their content never passes through Steward."""
    user: UnixUser | None = None
    """Unix user in the container; unset uses the framework's ``user``."""
    network: Literal["host", "bridge"] = "host"
    """``host`` (the task binds its ports on the agent) or ``bridge`` (Docker NAT with ``port_mappings``)."""
    port_mappings: tuple[PortMappingConfig, ...] = ()
    """Only with ``network: bridge``."""
    volumes: tuple[VolumeConfig, ...] = ()
    """Bind mounts from the agent."""
    cap_add: Annotated[tuple[Capability, ...], unique_items] = ()
    """Linux capabilities to add (``docker --cap-add``)."""
    cap_drop: Annotated[tuple[Capability, ...], unique_items] = ()
    """Linux capabilities to drop (``docker --cap-drop``); ``ALL`` drops every one."""
    devices: Annotated[
        tuple[
            Annotated[
                str, matches(r"/[^:\s]+(?::/[^:\s]+)?(?::[rwm]{1,3})?", "a device such as '/dev/fuse'")
            ],
            ...,
        ],
        unique_items,
    ] = ()
    """Host devices to expose, ``/dev/x[:/dev/y][:rwm]``."""
    security_opt: tuple[Annotated[str, non_empty], ...] = ()
    """Docker ``--security-opt`` values, e.g. ``apparmor:unconfined``."""
    privileged: bool = False
    """Only for kind ``cvmfs`` or services named in ``framework.allow_privileged``."""
    executor: Literal["docker", "steward"] = "docker"
    """``docker``: the Mesos Docker containerizer runs the container; ``steward``: the Steward executor
    does (drain hooks, per-task metrics)."""

    def _cross_check(self) -> Iterator[Problem]:
        if self.command is not None and self.args is not None:
            yield Problem(("args",), "set either command (run by a shell) or args (run directly), not both")
        if self.port_mappings and self.network != "bridge":
            yield Problem(("port_mappings",), "port mappings need network: bridge")
        targets: dict[str, tuple[str | int, ...]] = {}
        mounts = [(("volumes", i), v.container_path) for i, v in enumerate(self.volumes)]
        mounts += [(("secret_files", i), s.target) for i, s in enumerate(self.secret_files)]
        for where, target in mounts:
            if target in targets:
                yield Problem(
                    (*where, "container_path" if where[0] == "volumes" else "target"),
                    f"{target} is already mounted by {_show_at(targets[target])}",
                )
            else:
                targets[target] = where


def _show_at(at: tuple[str | int, ...]) -> str:
    return "".join(f"[{part}]" if isinstance(part, int) else part for part in at)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResourcesConfig:
    """What each task of a service asks Mesos for."""

    cpus: Annotated[float, positive]
    """CPU shares per task (> 0; fractions allowed)."""
    mem_mib: Annotated[SizeMiB, positive]
    """Memory per task (> 0), ``mem`` in YAML (``512MiB``, ``2GiB``; a bare number is MiB)."""
    disk_mib: SizeMiB = 0.0
    """Sandbox disk per task, ``disk`` in YAML; 0 asks for none."""
    ports: Annotated[int, at_least(0), at_most(1000)] = 0
    """How many ports to take from the offer's ``ports`` range."""
    fixed_ports: Annotated[tuple[Port, ...], unique_items] = ()
    """Exact ports to reserve instead (e.g. ``[3128]``)."""

    def _cross_check(self) -> Iterator[Problem]:
        if self.ports and self.fixed_ports:
            yield Problem(
                ("fixed_ports",), "set either ports (a count taken from offers) or fixed_ports, not both"
            )

    @property
    def port_count(self) -> int:
        """How many ports a task holds, dynamic or fixed."""
        return self.ports + len(self.fixed_ports)


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoscaleSourceConfig:
    """Where the load measurement comes from; parameters are typed per source by later work."""

    type: Literal["squid", "prometheus", "htcondor", "http_json"]
    """Which kind of measurement: squid counters, a Prometheus query, HTCondor's queue, or JSON over HTTP."""
    params: AbcMapping[str, bool | int | float | str] = field(default_factory=_empty_mapping)
    """Source parameters (scalar values); their keys are checked by the source itself for now."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AutoscaleConfig:
    """Scale a service between ``min`` and ``max`` so that each instance carries about
    ``target_per_instance`` units of the measured load."""

    min: Annotated[int, at_least(0)] = 0
    """Floor (kind ``squid`` defaults to 2)."""
    max: Annotated[int, at_least(1)]
    """Ceiling, >= ``min`` and >= 1."""
    source: AutoscaleSourceConfig
    """Where the load is measured."""
    target_per_instance: Annotated[float, positive]
    """Load one instance should carry (> 0), in the source's unit (requests/s, idle jobs...)."""

    # The policy's tuning knobs. Unset keeps the recommended default (see the configuration
    # reference); ``steward simulate`` shows what a change does on a load trace before it is used.
    capacity_per_instance: Annotated[float, positive] | None = None
    """Load at which one instance saturates (default target / 0.7); saturation is judged against it."""
    interval_s: Annotated[Duration, positive] | None = None
    """How often the load is measured and a decision taken (default 2s; 30s for startds)."""
    start_delay_s: Annotated[Duration, at_least(0)] | None = None
    """Expected time from launch to serving (default 45s; 120s for startds): capacity on its way."""
    up_window_s: Annotated[Duration, positive] | None = None
    """Window of recent load the up path averages (default 6s)."""
    up_tolerance: Annotated[float, at_least(0), at_most(1)] | None = None
    """No scale-up while the load is within this fraction above target (default 0.1)."""
    up_step_instances: Annotated[int, at_least(1)] | None = None
    """Most instances added per up period, with ``up_step_percent`` (the larger wins; default 8)."""
    up_step_percent: Annotated[float, positive] | None = None
    """Most growth per up period in percent of the current count (default 200)."""
    up_period_s: Annotated[Duration, positive] | None = None
    """Period of the up step limit (default 15s)."""
    up_cooldown_s: Annotated[Duration, at_least(0)] | None = None
    """Least time between two scale-ups (default 0s)."""
    forecast_s: Annotated[Duration, at_least(0)] | None = None
    """While load rises steadily, size for the load this far ahead (default 45s; 0 disables)."""
    forecast_window_s: Annotated[Duration, positive] | None = None
    """Window the rising trend is measured over (default 30s)."""
    down_window_s: Annotated[Duration, positive] | None = None
    """Window of recent load the down path averages (default 60s)."""
    down_tolerance: Annotated[float, at_least(0), at_most(1)] | None = None
    """Scale down only when the load fits one instance fewer this far below target (default 0.1)."""
    down_tolerance_continuing: Annotated[float, at_least(0), at_most(1)] | None = None
    """The same while a decline continues (default 0.03)."""
    down_votes: Annotated[int, at_least(1)] | None = None
    """Consecutive decisions that must agree before a scale-down (default 5)."""
    down_step_instances: Annotated[int, at_least(1)] | None = None
    """Most instances removed per down period, with ``down_step_percent`` (default 1)."""
    down_step_percent: Annotated[float, positive, at_most(100)] | None = None
    """Most shrinkage per down period in percent of the current count (default 50)."""
    down_period_s: Annotated[Duration, positive] | None = None
    """Period of the down step limit (default 30s)."""
    down_cooldown_s: Annotated[Duration, at_least(0)] | None = None
    """No scale-down this long after a scale-up (default 60s)."""
    burst_ratio: Annotated[float, at_least(1)] | None = None
    """A return of load this many times the current capacity within ``burst_memory`` is a repeat
    burst: capacity is kept (default 1.5)."""
    burst_memory_s: Annotated[Duration, at_least(0)] | None = None
    """How long a burst is remembered (default 600s)."""
    saturation_fraction: Annotated[float, positive, at_most(1)] | None = None
    """Per-instance load at this share of capacity counts as saturated (default 0.95)."""
    stale_after_s: Annotated[Duration, positive] | None = None
    """A sample older than this is missing data: hold, never scale down (default 30s; 120s startds)."""
    startd_attenuation: Annotated[float, at_least(1)] | None = None
    """Startds: launch missing / this many per cycle, GlideinWMS-style (default 3)."""
    startd_launch_cap: Annotated[int, at_least(1)] | None = None
    """Startds: most launches per cycle (default 20)."""
    startd_cycle_s: Annotated[Duration, positive] | None = None
    """Startds: length of a launch cycle (default 60s)."""
    dry_run: bool = False
    """Decide and record, but do not change the service's size."""

    def _cross_check(self) -> Iterator[Problem]:
        if self.max < self.min:
            yield Problem(("max",), f"must be >= min ({self.min}), got {self.max}")


@dataclass(frozen=True, slots=True, kw_only=True)
class UniqueConstraint:
    """At most one task of the service per distinct value (``unique: hostname``)."""

    config_tag: ClassVar[tuple[str, None]] = ("unique", None)
    unique: AttributeName
    """Attribute whose values must all differ (``hostname`` for one task per host)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class MaxPerConstraint:
    """At most ``count`` tasks per distinct value of the attribute."""

    config_tag: ClassVar[tuple[str, None]] = ("max_per", None)
    max_per: AttributeName
    """Attribute to group by."""
    count: Annotated[int, at_least(1)]
    """Largest number of tasks per group (>= 1)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class AttributeConstraint:
    """Only agents whose attribute ``equals`` a value, or does (``like``) or does not (``unlike``)
    match a regular expression in full."""

    config_tag: ClassVar[tuple[str, None]] = ("attribute", None)
    attribute: AttributeName
    """Attribute to test; agents without it never match."""
    equals: str | None = None
    """Exact value required."""
    like: Regex | None = None
    """Regular expression the value must match in full."""
    unlike: Regex | None = None
    """Regular expression the value must not match in full."""

    def _cross_check(self) -> Iterator[Problem]:
        given = [key for key in ("equals", "like", "unlike") if getattr(self, key) is not None]
        if len(given) != 1:
            found = " and ".join(given) if given else "none"
            yield Problem(
                (), f"an attribute constraint needs exactly one of equals, like, unlike; found {found}"
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class SpreadConstraint:
    """Spread tasks evenly over the distinct values of the attribute."""

    config_tag: ClassVar[tuple[str, None]] = ("spread", None)
    spread: AttributeName
    """Attribute over whose values tasks are spread."""


Constraint = UniqueConstraint | MaxPerConstraint | AttributeConstraint | SpreadConstraint
"""One placement rule, told apart by its first key."""


@dataclass(frozen=True, slots=True, kw_only=True)
class HealthCheckConfig:
    """How Mesos decides a task is healthy."""

    type: Literal["http", "tcp", "command"]
    """``http`` (a 2xx/3xx answer), ``tcp`` (a connection) or ``command`` (exit status 0)."""
    port: Port | None = None
    """Port to probe (http, tcp); unset probes the task's first port."""
    path: Annotated[str, matches(r"/\S*", "a URL path starting with '/'")] | None = None
    """URL path (http only); unset is ``/``."""
    command: str | None = None
    """Shell command (command only); exit status 0 is healthy."""
    interval_s: Annotated[Duration, positive] = 10.0
    """Time between checks."""
    timeout_s: Annotated[Duration, positive] = 5.0
    """Time one check may take before it counts as failed."""
    grace_period_s: Duration = 60.0
    """Failures during this time after start do not count."""
    consecutive_failures: Annotated[int, at_least(1)] = 3
    """Failed checks in a row that make a task unhealthy."""

    def _cross_check(self) -> Iterator[Problem]:
        if self.type == "command":
            if self.command is None:
                yield Problem(("command",), "is required for a command health check")
            for key in ("port", "path"):
                if getattr(self, key) is not None:
                    yield Problem((key,), "is not used by a command health check")
        else:
            if self.command is not None:
                yield Problem(("command",), f"is not used by an {self.type} health check")
            if self.type == "tcp" and self.path is not None:
                yield Problem(("path",), "is not used by a tcp health check")


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartBackoffConfig:
    """Delay before relaunching a failed task: ``initial * factor**n``, capped at ``max``."""

    initial_s: Annotated[Duration, positive] = 1.0
    """Delay after the first failure."""
    factor: Annotated[float, at_least(1), at_most(100)] = 1.15
    """Growth per further failure (>= 1)."""
    max_s: Annotated[Duration, positive] = 300.0
    """Longest delay, ``max`` in YAML (>= ``initial``)."""

    def _cross_check(self) -> Iterator[Problem]:
        if self.max_s < self.initial_s:
            yield Problem(
                ("max",),
                f"must be >= initial ({format_seconds(self.initial_s)}), got {format_seconds(self.max_s)}",
            )


@dataclass(frozen=True, slots=True, kw_only=True)
class StartdConfig:
    """Settings only an HTCondor startd has (required for kind ``startd``)."""

    condor_host: Annotated[str, _address_check(default_port=9618)]
    """The pool's central manager, ``host[:port]`` (port 9618 by default)."""
    pool_token_file: HostPath
    """IDTOKEN on the agent, mounted read-only into the startd."""


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceConfig:
    """One service: a set of identical tasks (instances) Steward keeps running."""

    name: str = setting(from_key=True)
    """The key under ``services``; names tasks and metrics."""
    kind: ServiceKind
    """What the service is; brings the kind's defaults."""
    role: Role
    """Mesos role the tasks run under; defaults to the framework's first role."""
    container: ContainerConfig
    """What each task runs."""
    resources: ResourcesConfig
    """What each task asks for."""
    instances: Annotated[int, at_least(0), at_most(10000)] | Literal["per_host"] | None = None
    """A fixed count, or ``per_host`` (kind ``cvmfs`` only); ``None`` when ``autoscale`` is set."""
    autoscale: AutoscaleConfig | None = None
    """Load-driven instance count; excludes ``instances``."""
    constraints: tuple[Constraint, ...] = ()
    """Placement rules, all of which an agent must satisfy."""
    health_check: HealthCheckConfig | None = None
    """How Mesos checks each task; none by default."""
    kill_grace_period_s: Duration = 30.0
    """Time between SIGTERM and SIGKILL when a task is killed."""
    restart_backoff: RestartBackoffConfig = field(default_factory=RestartBackoffConfig)
    """Delay before relaunching failed tasks."""
    startd: StartdConfig | None = None
    """HTCondor settings; required for, and only allowed with, kind ``startd``."""

    @property
    def per_host(self) -> bool:
        """One instance on every eligible host rather than a count."""
        return self.instances == "per_host"

    def _cross_check(self) -> Iterator[Problem]:
        if self.instances is not None and self.autoscale is not None:
            yield Problem(("autoscale",), "set either instances or autoscale, not both")
        if self.instances is None and self.autoscale is None:
            yield Problem(("instances",), "is required (or an autoscale section)")
        if self.per_host and self.kind is not ServiceKind.CVMFS:
            yield Problem(("instances",), "'per_host' is only allowed for kind cvmfs")
        if self.kind is ServiceKind.STARTD and self.startd is None:
            yield Problem(("startd",), "is required for kind startd (condor_host and pool_token_file)")
        if self.kind is not ServiceKind.STARTD and self.startd is not None:
            yield Problem(("startd",), f"is only allowed for kind startd, not {self.kind}")
        check = self.health_check
        if (
            check is not None
            and check.type != "command"
            and check.port is None
            and self.resources.port_count == 0
            and not self.container.port_mappings
        ):
            yield Problem(
                ("health_check", "port"), f"is required: the service has no ports for the {check.type} check"
            )


# -- the whole file ------------------------------------------------------------------------------


def _empty_services() -> AbcMapping[str, ServiceConfig]:
    return types.MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """A validated site configuration."""

    framework: FrameworkConfig = field(default_factory=FrameworkConfig)
    """Who Steward is to Mesos and how it runs."""
    services: Annotated[AbcMapping[str, ServiceConfig], ServiceName] = field(default_factory=_empty_services)
    """Services by name, in file order (read-only mapping)."""
    warnings: tuple[Issue, ...] = setting(default=(), internal=True)
    """Things that are allowed but probably unwise (TLS verification off), found while loading."""

    def _cross_check(self) -> Iterator[Problem]:
        allowed = set(self.framework.allow_privileged)
        for index, name in enumerate(self.framework.allow_privileged):
            if name not in self.services:
                yield Problem(("framework", "allow_privileged", index), f"there is no service named {name!r}")
        roles = self.framework.roles
        for name, service in self.services.items():
            if service.container.privileged and service.kind is not ServiceKind.CVMFS and name not in allowed:
                yield Problem(
                    ("services", name, "container", "privileged"),
                    f"privileged containers are only allowed for kind cvmfs; list {name!r} in "
                    "framework.allow_privileged to allow it",
                )
            if service.role not in roles:
                shown = ", ".join(roles)
                yield Problem(
                    ("services", name, "role"),
                    f"must be one of the framework's roles ({shown}), got {service.role!r}",
                )
