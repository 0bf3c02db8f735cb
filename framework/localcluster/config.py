"""Configuration of ``steward local-cluster``: command-line flags or a small YAML file.

Everything the cluster needs is one frozen :class:`ClusterConfig`. It is built from flags
(``--listen``, ``--agents``, ``--containerizer``) or from a YAML file read with the same strict,
line-numbered machinery as Steward's site files (``framework.config``): aliases, unknown keys and
wrong types are errors reported as ``file:line: path: message``, all at once. The file::

    listen: 127.0.0.1:5050
    containerizer: docker          # docker | process | simulated
    cluster_id: demo               # names containers/processes; default: generated per run
    work_dir: /var/tmp/steward-lc  # sandboxes; default: a temporary directory removed at stop
    timing:
      heartbeat_interval: 15s
      allocation_interval: 1s
      offer_timeout: 30s           # default: offers never time out (as in Mesos)
      update_retry_initial: 10s    # status update resend backoff, doubling ...
      update_retry_max: 10m        # ... up to this
      agent_ping_timeout: 0s       # partitioned agent -> unreachable after this
      agent_reregister_timeout: 10s
    simulated:
      start_delay: 0.5s
      kill_delay: 0s
    docker:
      host: unix:///var/run/docker.sock
      pull_images: false
    agents:                        # or `agent_count: 3` for default agents
      - hostname: agent-1
        cpus: 4
        mem: 8GiB
        disk: 20GiB
        ports: ["31000-31999"]
        attributes: {rack: r1, zone: local}
      - count: 2                   # two more alike: agent-2, agent-3 unless hostname is given
        cpus: 2
        mem: 4GiB

Agent ``n`` (1-based, in file order after ``count`` expansion) gets the hostname ``agent-n`` and the
ports ``[31000 + 1000(n-1), 31999 + 1000(n-1)]`` unless the entry says otherwise.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Literal

from framework.config.addresses import parse_host_port
from framework.config.errors import ConfigError, Issue
from framework.config.schema import (
    INVALID,
    Converter,
    Duration,
    Problem,
    SizeMiB,
    at_least,
    greater_than,
)
from framework.config.yamltree import read_tree
from framework.localcluster.resources import Resources

__all__ = [
    "AgentSpec",
    "ClusterConfig",
    "ContainerizerKind",
    "default_agent",
    "load_cluster_config",
    "parse_cluster_config",
]

ContainerizerKind = Literal["docker", "process", "simulated"]
_PORT_RANGE_RE = re.compile(r"\s*(\d{1,10})\s*(?:-\s*(\d{1,10}))?\s*")
_MAX_PORT = 65535


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """One agent's identity and resources."""

    hostname: str
    cpus: float = 4.0
    mem_mib: float = 8192.0
    disk_mib: float = 20480.0
    gpus: float = 0.0
    ports: tuple[tuple[int, int], ...] = ()
    attributes: tuple[tuple[str, str], ...] = ()

    @property
    def resources(self) -> Resources:
        return Resources.of(
            cpus=self.cpus, mem=self.mem_mib, disk=self.disk_mib, gpus=self.gpus, ports=self.ports
        )


def default_agent(n: int) -> AgentSpec:
    """Agent ``n`` (1-based) when nothing is configured."""
    base = 31000 + 1000 * (n - 1)
    return AgentSpec(
        hostname=f"agent-{n}",
        ports=((base, base + 999),),
        attributes=(("rack", f"rack-{(n - 1) % 3 + 1}"), ("zone", "local")),
    )


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Everything a :class:`~framework.localcluster.cluster.LocalCluster` needs."""

    listen: str = "127.0.0.1:5050"
    """host:port of the master's HTTP endpoint; port 0 picks a free one."""
    agents: tuple[AgentSpec, ...] = ()
    """Explicit agents; when empty, ``agent_count`` default agents."""
    agent_count: int = 3
    containerizer: ContainerizerKind = "docker"
    cluster_id: str | None = None
    """Prefix of agent ids and label on every container/process; generated when None."""
    work_dir: Path | None = None
    """Sandboxes live here; a temporary directory (removed at stop) when None."""
    heartbeat_interval_s: float = 15.0
    allocation_interval_s: float = 1.0
    offer_timeout_s: float | None = None
    update_retry_initial_s: float = 10.0
    update_retry_max_s: float = 600.0
    agent_ping_timeout_s: float = 0.0
    agent_reregister_timeout_s: float = 10.0
    simulated_start_delay_s: float = 0.5
    simulated_kill_delay_s: float = 0.0
    docker_host: str | None = None
    pull_images: bool = False
    leader_url: str | None = None
    """Standby mode: answer every scheduler call with 307 to this master (``http://host:port``)."""
    stream_queue_limit: int = 100_000
    """Records queued for one slow subscriber before its connection is dropped."""
    seed: int | None = None
    """Seed of the allocator's agent shuffle (tests use a fixed one)."""

    def agent_specs(self) -> tuple[AgentSpec, ...]:
        if self.agents:
            return self.agents
        return tuple(default_agent(n) for n in range(1, self.agent_count + 1))

    def problems(self) -> list[str]:
        """Cross-field checks done before start (the YAML loader reports them with lines)."""
        out = []
        specs = self.agent_specs()
        hostnames = [a.hostname for a in specs]
        if len(set(hostnames)) != len(hostnames):
            out.append("agent hostnames must be unique")
        if self.containerizer != "simulated":
            for spec in specs:
                if any(e > _MAX_PORT for _, e in spec.ports):
                    out.append(
                        f"agent {spec.hostname}: ports beyond {_MAX_PORT} only work with the simulated "
                        "containerizer (use fewer agents or explicit ports)"
                    )
        if self.update_retry_initial_s <= 0 or self.update_retry_max_s < self.update_retry_initial_s:
            out.append("update retry: need 0 < initial <= max")
        if self.heartbeat_interval_s <= 0 or self.allocation_interval_s <= 0:
            out.append("heartbeat and allocation intervals must be positive")
        return out


# --- the YAML file's schema (keys as written; converted by framework.config.schema) ----------------


def _parse_ports(items: tuple[str, ...]) -> tuple[tuple[int, int], ...] | str:
    ranges = []
    for item in items:
        m = _PORT_RANGE_RE.fullmatch(item)
        if m is None:
            return f"expected a port or a range such as '31000-31999', got {item!r}"
        begin = int(m[1])
        end = int(m[2]) if m[2] is not None else begin
        if begin > end:
            return f"range {item!r} ends before it begins"
        ranges.append((begin, end))
    return tuple(ranges)


@dataclass(frozen=True, slots=True)
class _AgentEntry:
    hostname: str | None = None
    count: Annotated[int, at_least(1)] = 1
    cpus: Annotated[float, greater_than(0)] = 4.0
    mem_mib: SizeMiB = 8192.0
    disk_mib: SizeMiB = 20480.0
    gpus: Annotated[float, at_least(0)] = 0.0
    ports: tuple[str, ...] = ()
    attributes: Mapping[str, str] = field(default_factory=dict)

    def _cross_check(self) -> Iterator[Problem]:
        parsed = _parse_ports(self.ports)
        if isinstance(parsed, str):
            yield Problem(("ports",), parsed)
        if self.hostname is not None and self.count > 1:
            yield Problem(("hostname",), "a hostname cannot be shared by several agents (count > 1)")


@dataclass(frozen=True, slots=True)
class _Timing:
    heartbeat_interval_s: Annotated[Duration, greater_than(0)] = 15.0
    allocation_interval_s: Annotated[Duration, greater_than(0)] = 1.0
    offer_timeout_s: Annotated[Duration, greater_than(0)] | None = None
    update_retry_initial_s: Annotated[Duration, greater_than(0)] = 10.0
    update_retry_max_s: Annotated[Duration, greater_than(0)] = 600.0
    agent_ping_timeout_s: Duration = 0.0
    agent_reregister_timeout_s: Duration = 10.0

    def _cross_check(self) -> Iterator[Problem]:
        if self.update_retry_max_s < self.update_retry_initial_s:
            yield Problem(("update_retry_max",), "must be >= update_retry_initial")


@dataclass(frozen=True, slots=True)
class _Simulated:
    start_delay_s: Duration = 0.5
    kill_delay_s: Duration = 0.0


@dataclass(frozen=True, slots=True)
class _Docker:
    host: str | None = None
    pull_images: bool = False


@dataclass(frozen=True, slots=True)
class _ClusterFile:
    listen: str = "127.0.0.1:5050"
    containerizer: ContainerizerKind = "docker"
    cluster_id: str | None = None
    work_dir: str | None = None
    leader_url: str | None = None
    agent_count: Annotated[int, at_least(0)] | None = None
    agents: tuple[_AgentEntry, ...] = ()
    timing: _Timing = field(default_factory=_Timing)
    simulated: _Simulated = field(default_factory=_Simulated)
    docker: _Docker = field(default_factory=_Docker)

    def _cross_check(self) -> Iterator[Problem]:
        if self.agents and self.agent_count is not None:
            yield Problem(("agent_count",), "give either 'agents' or 'agent_count', not both")
        if self.cluster_id is not None and not re.fullmatch(
            r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}", self.cluster_id
        ):
            yield Problem(("cluster_id",), "use letters, digits, '.', '_' and '-' (at most 63)")
        try:
            parse_host_port(self.listen, allow_port_zero=True)
        except ValueError as exc:
            yield Problem(("listen",), str(exc))


def _expand_agents(entries: tuple[_AgentEntry, ...]) -> tuple[AgentSpec, ...]:
    specs: list[AgentSpec] = []
    for entry in entries:
        for _ in range(entry.count):
            n = len(specs) + 1
            default = default_agent(n)
            parsed = _parse_ports(entry.ports)
            ports = parsed if isinstance(parsed, tuple) and parsed else default.ports
            specs.append(
                AgentSpec(
                    hostname=entry.hostname or default.hostname,
                    cpus=entry.cpus,
                    mem_mib=entry.mem_mib,
                    disk_mib=entry.disk_mib,
                    gpus=entry.gpus,
                    ports=ports,
                    attributes=tuple(entry.attributes.items()) or default.attributes,
                )
            )
    return tuple(specs)


def parse_cluster_config(text: str, filename: str = "<string>") -> ClusterConfig:
    """Parse a cluster file; raise :class:`ConfigError` listing every problem with its line."""
    root, issues = read_tree(text, filename)
    if root is None and not issues:
        return ClusterConfig()
    converter = Converter(filename)
    parsed = converter.convert(root, _ClusterFile, "", 1) if root is not None else INVALID
    issues.extend(converter.issues)
    if issues or parsed is INVALID:
        raise ConfigError(issues or [Issue(filename, 1, "", "invalid cluster configuration")])
    assert isinstance(parsed, _ClusterFile)
    timing, sim = parsed.timing, parsed.simulated
    config = ClusterConfig(
        listen=parsed.listen,
        agents=_expand_agents(parsed.agents),
        agent_count=parsed.agent_count if parsed.agent_count is not None else 3,
        containerizer=parsed.containerizer,
        cluster_id=parsed.cluster_id,
        work_dir=Path(parsed.work_dir) if parsed.work_dir else None,
        heartbeat_interval_s=timing.heartbeat_interval_s,
        allocation_interval_s=timing.allocation_interval_s,
        offer_timeout_s=timing.offer_timeout_s,
        update_retry_initial_s=timing.update_retry_initial_s,
        update_retry_max_s=timing.update_retry_max_s,
        agent_ping_timeout_s=timing.agent_ping_timeout_s,
        agent_reregister_timeout_s=timing.agent_reregister_timeout_s,
        simulated_start_delay_s=sim.start_delay_s,
        simulated_kill_delay_s=sim.kill_delay_s,
        docker_host=parsed.docker.host,
        pull_images=parsed.docker.pull_images,
        leader_url=parsed.leader_url,
    )
    problems = config.problems()
    if problems:
        raise ConfigError(Issue(filename, 1, "", p) for p in problems)
    return config


def load_cluster_config(path: str | Path) -> ClusterConfig:
    """Read and parse a cluster file (see the module docstring)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([Issue(str(path), 0, "", f"cannot read the file: {exc}")]) from exc
    return parse_cluster_config(text, str(path))


def replace(config: ClusterConfig, **changes: object) -> ClusterConfig:
    """``dataclasses.replace`` for callers that build a config from flags on top of a file."""
    return dataclasses.replace(config, **changes)  # type: ignore[arg-type]
