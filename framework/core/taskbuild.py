"""From a service's configuration and what an offer gave it to the ``TaskInfo`` Mesos launches.

Every task runs under the Mesos **Docker containerizer** (``container.type: DOCKER``), or, per service,
the Steward executor with the same container (see the end of this docstring). What that
containerizer honours, and so how each setting is expressed (protocol brief 4.8, mistakes 21-22):

* the command: ``command`` -> ``shell: true`` with ``value`` (``sh -c``); ``args`` -> ``shell: false``
  with ``arguments`` (appended to the image's entrypoint); neither -> ``shell: false`` alone, which
  runs the image's own ENTRYPOINT/CMD. A TaskInfo always carries a ``command``.
* networking: ``HOST`` or ``BRIDGE``; port mappings only with BRIDGE, their host ports taken from
  the ports claimed in the offer;
* volumes: plain bind mounts are ``ContainerInfo.volumes`` (``host_path`` + mode). The Docker
  containerizer ignores ``source.host_path.mount_propagation``, so a volume with propagation
  (``/cvmfs`` ``rshared`` for CVMFS, ``rslave`` for its consumers) becomes the pass-through
  parameter ``volume=/cvmfs:/cvmfs:rw,rshared``;
* ``cap-add``, ``cap-drop``, ``device``, ``security-opt`` and ``user`` are ``docker.parameters``
  (the Docker containerizer ignores ``CommandInfo.user``); ``privileged`` is ``DockerInfo.privileged``;
* secret files (and a startd's pool token) are read-only bind mounts: only their **paths** enter the
  TaskInfo, never their content; labels and environment never hold a secret;
* health checks are Mesos-native (run on the agent) and start at once (``delay_seconds: 0``, the
  configured ``grace_period`` covers slow starts), but Steward, not the executor, kills unhealthy
  tasks: the executor's ``consecutive_failures`` is set beyond reach so that Steward's kill-rate
  limit and circuit breaker apply to health kills (see ``framework.core.convergence``);
* ``kill_policy.grace_period`` is the service's ``kill_grace_period``.

Environment: the operator's variables, then Steward's, which win because they must match what was
actually accepted: ``HOST``, ``PORT0``.. ``PORTn``/``PORT``/``PORTS`` (host ports, as Marathon),
``STEWARD_TASK_ID``/``STEWARD_SERVICE``/``STEWARD_SLOT``, and per kind:

* ``squid``: ``SQUID_PORT``, the port squid listens on inside its network namespace (the claimed
  host port with host networking, the first mapping's container port with bridge networking);
* ``startd``: ``NUM_CPUS``/``MEMORY`` from the accepted cpus/mem (``MEMORY`` less a small daemon
  overhead, as OSG does), ``CONDOR_HOST``, ``CONDOR_TOKEN_FILE`` (the token's path in the container),
  ``STARTD_NAME``/``MASTER_NAME`` (the task ID), and the same values under the names of Steward's
  local image (``CONDOR_COLLECTOR_HOST``, ``CONDOR_NUM_CPUS``, ``CONDOR_MEMORY_MB``, ``CONDOR_NAME``;
  ``CONDOR_ROLE=execute`` unless the operator set it);
* ``cvmfs``: ``CVMFS_HTTP_PROXY`` (see :func:`cvmfs_proxy`).

The Steward executor (``container.executor: steward``): the same ``ContainerInfo`` and ``CommandInfo``
are built, but travel in ``TaskInfo.data`` (base64 JSON, format ``steward-executor/1``, read by
``executors.spec``) instead of ``TaskInfo.container``/``command``: Mesos allows exactly one of
``command`` or ``executor``, and the executor, not the agent, runs the container through Docker. The
``executor`` is an ``ExecutorInfo`` (one per task, ID ``<task id>.executor``) whose command runs the
zipapp the Mesos fetcher brings from ``StewardExecutorArtifact.uri`` (``python3 -I -S
steward-executor.pyz``), with a ``shutdown_grace_period`` longer than the kill grace so that an
executor SHUTDOWN leaves time for the drain. The data holds nothing secret (secret files are paths, as
above); health checks stay in ``TaskInfo.health_check``, which the executor runs.

Pure: values in, a ``TaskInfo`` out.
"""

from __future__ import annotations

import base64
import hashlib
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

import msgspec

from framework.config.model import ServiceConfig, ServiceKind
from framework.model.proto import (
    URI,
    AgentID,
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    DurationInfo,
    Environment,
    ExecutorID,
    ExecutorInfo,
    HealthCheck,
    HTTPCheckInfo,
    KillPolicy,
    Labels,
    Parameter,
    PortMapping,
    Resource,
    TaskID,
    TaskInfo,
    TCPCheckInfo,
    Volume,
)
from framework.model.tasks import AgentId, TaskId

__all__ = [
    "EXECUTOR_DATA_FORMAT",
    "EXECUTOR_HEALTH_FAILURES",
    "EXECUTOR_SHUTDOWN_MARGIN_S",
    "STARTD_MEMORY_OVERHEAD_MIB",
    "STARTD_TOKEN_PATH",
    "PortRequest",
    "ServiceTemplate",
    "StewardExecutorArtifact",
    "TaskSpec",
    "assign_port_mappings",
    "build_task_info",
    "cvmfs_proxy",
    "health_check_port",
    "port_request",
    "service_fingerprint",
    "service_template",
    "unsupported_reason",
]

STARTD_TOKEN_PATH: Final = "/etc/condor/tokens-orig.d/steward-pool.token"  # noqa: S105 (a path)
"""Where a startd's pool token (``startd.pool_token_file`` on the agent) appears in its container."""

STARTD_MEMORY_OVERHEAD_MIB: Final = 128
"""Memory kept back from ``MEMORY`` for the HTCondor daemons themselves, so that jobs sized to the
advertised slot do not push the container over its limit (OSG gives ~100 MB)."""

EXECUTOR_HEALTH_FAILURES: Final = 2**31 - 1
"""``HealthCheck.consecutive_failures`` sent to Mesos: never reached, so the executor only reports
health and Steward decides kills (rate-limited, behind the circuit breaker)."""

LABEL_PREFIX: Final = "steward."


def service_fingerprint(service: ServiceConfig) -> str:
    """A short digest of everything in ``service`` that shapes its tasks (its repr is deterministic:
    frozen dataclasses and mappings in file order)."""
    return hashlib.sha256(repr(service).encode()).hexdigest()[:12]


EXECUTOR_DATA_FORMAT: Final = "steward-executor/1"
"""``TaskInfo.data`` format of Steward executor tasks (the reader is ``executors.spec``)."""

EXECUTOR_SHUTDOWN_MARGIN_S: Final = 10.0
"""Added to the kill grace for ``ExecutorInfo.shutdown_grace_period``: time, after the drain, to stop
and remove the container and send the last update before the agent kills the executor."""


@dataclass(frozen=True, slots=True)
class StewardExecutorArtifact:
    """Where agents fetch the Steward executor zipapp (``steward build-executor``) and how they run it."""

    uri: str
    """Its URL (``framework.runtime.artifacts.ArtifactServer.url``), fetched into each sandbox."""
    python: str = "python3"
    """The agents' Python 3 (3.11 or newer), looked up on their PATH."""
    file_name: str = "steward-executor.pyz"
    """Name of the fetched file in the sandbox."""
    usage_interval_s: float = 10.0
    """How often the executor reports each task's resource usage."""


def unsupported_reason(service: ServiceConfig, executor: StewardExecutorArtifact | None = None) -> str | None:
    """Why Steward cannot build tasks for ``service``, or None. ``executor``: where the Steward
    executor is served, without which ``executor: steward`` services cannot launch."""
    if service.container.executor == "steward" and executor is None:
        return "unsupported: executor 'steward' needs the executor zipapp, and none is being served"
    if service.container.executor not in ("docker", "steward"):
        return f"unsupported: executor {service.container.executor!r}"
    return None


# --- ports --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PortRequest:
    """Host ports a task needs: exactly ``fixed`` (in order), then ``count`` more from the offer."""

    fixed: tuple[int, ...]
    count: int

    @property
    def total(self) -> int:
        return len(self.fixed) + self.count


def port_request(service: ServiceConfig) -> PortRequest:
    """The ports to claim: ``fixed_ports`` and mapping host ports named in the config, plus
    ``ports`` dynamic ones (more if bridge mappings without a host port outnumber what is left)."""
    resources = service.resources
    fixed = list(resources.fixed_ports)
    mappings = service.container.port_mappings
    explicit = [m.host_port for m in mappings if m.host_port is not None]
    for port in explicit:
        if port not in fixed:
            fixed.append(port)
    automatic = sum(1 for m in mappings if m.host_port is None)
    spare_fixed = sum(1 for p in resources.fixed_ports if p not in explicit)
    count = max(resources.ports, automatic - spare_fixed)
    return PortRequest(tuple(fixed), count)


def assign_port_mappings(service: ServiceConfig, ports: Sequence[int]) -> tuple[PortMapping, ...]:
    """Bridge port mappings with host ports from the claimed ``ports`` (explicit ones as written,
    the others take the claimed ports not named by a mapping, in order)."""
    mappings = service.container.port_mappings
    explicit = {m.host_port for m in mappings if m.host_port is not None}
    spare = iter([p for p in ports if p not in explicit])
    result = []
    for mapping in mappings:
        host_port = mapping.host_port if mapping.host_port is not None else next(spare)
        result.append(
            PortMapping(host_port=host_port, container_port=mapping.container_port, protocol=mapping.protocol)
        )
    return tuple(result)


def health_check_port(service: ServiceConfig, ports: Sequence[int]) -> int | None:
    """Port a http/tcp check probes inside the task's network namespace: the configured one, else the
    first mapping's container port (bridge) or the first claimed port (host)."""
    check = service.health_check
    if check is None or check.type == "command":
        return None
    if check.port is not None:
        return check.port
    if service.container.network == "bridge" and service.container.port_mappings:
        return service.container.port_mappings[0].container_port
    return ports[0] if ports else None


# --- environment --------------------------------------------------------------------------------


DRAIN_MARGIN_S: Final = 5
"""Seconds of the kill grace period kept back from a drain, for the process to exit after it."""


def drain_seconds(kill_grace_period_s: float) -> int:
    """How long a service may drain inside its kill grace period (whole seconds, at least 1)."""
    return max(1, int(kill_grace_period_s) - DRAIN_MARGIN_S)


def cvmfs_proxy(service: ServiceConfig, squid_endpoints: Sequence[str]) -> str:
    """``CVMFS_HTTP_PROXY`` for a CVMFS task.

    The published squid endpoints, load-balanced (``http://a:3128|http://b:3128``). If the operator
    set ``CVMFS_HTTP_PROXY`` in the service's environment, it is appended as the fail-over group
    (``;``) when squids are published, and used alone when none are. With neither, ``DIRECT``
    (placement does not launch a CVMFS task while a configured squid service has no endpoint yet,
    so ``DIRECT`` only happens when the site runs no squid under Steward).
    """
    configured = service.container.environment.get("CVMFS_HTTP_PROXY")
    if squid_endpoints:
        balanced = "|".join(f"http://{endpoint}" for endpoint in squid_endpoints)
        return f"{balanced};{configured}" if configured else balanced
    return configured or "DIRECT"


def _startd_environment(spec: TaskSpec, cpus: float, mem_mib: float) -> dict[str, str]:
    startd = spec.service.startd
    assert startd is not None
    num_cpus = str(max(1, math.floor(cpus + 1e-9)))
    memory = str(max(1, math.floor(mem_mib) - STARTD_MEMORY_OVERHEAD_MIB))
    return {
        "NUM_CPUS": num_cpus,
        "MEMORY": memory,
        "CONDOR_HOST": startd.condor_host,
        "CONDOR_TOKEN_FILE": STARTD_TOKEN_PATH,
        "STARTD_NAME": spec.task_id,
        "MASTER_NAME": spec.task_id,
        "CONDOR_COLLECTOR_HOST": startd.condor_host,
        "CONDOR_NUM_CPUS": num_cpus,
        "CONDOR_MEMORY_MB": memory,
        "CONDOR_NAME": spec.task_id,
    }


def _environment(spec: TaskSpec, cpus: float, mem_mib: float) -> dict[str, str]:
    service = spec.service
    env = dict(service.container.environment)
    ours: dict[str, str] = {
        "HOST": spec.hostname,
        "STEWARD_TASK_ID": spec.task_id,
        "STEWARD_SERVICE": service.name,
        "STEWARD_SLOT": str(spec.slot),
    }
    if spec.ports:
        ours["PORT"] = str(spec.ports[0])
        ours["PORTS"] = ",".join(str(p) for p in spec.ports)
        for index, port in enumerate(spec.ports):
            ours[f"PORT{index}"] = str(port)
    if service.kind is ServiceKind.SQUID:
        listen = spec.ports[0] if spec.ports else None
        if service.container.network == "bridge" and service.container.port_mappings:
            listen = service.container.port_mappings[0].container_port
        if listen is not None:
            ours["SQUID_PORT"] = str(listen)
        # A kill is a drain: squid refuses new connections at SIGTERM and finishes in-flight
        # requests for shutdown_lifetime; that must end before the kill grace does, or the SIGKILL
        # at the end of the grace cuts the last requests off.
        env.setdefault("SQUID_SHUTDOWN_LIFETIME", str(drain_seconds(service.kill_grace_period_s)))
    elif service.kind is ServiceKind.STARTD:
        env.setdefault("CONDOR_ROLE", "execute")
        ours.update(_startd_environment(spec, cpus, mem_mib))
    elif service.kind is ServiceKind.CVMFS:
        ours["CVMFS_HTTP_PROXY"] = cvmfs_proxy(service, spec.squid_endpoints)
    env.update(ours)
    return env


# --- container ----------------------------------------------------------------------------------


def _volumes_and_parameters(service: ServiceConfig) -> tuple[tuple[Volume, ...], tuple[Parameter, ...]]:
    """The bind mounts and docker parameters every task of ``service`` gets (labels aside)."""
    container = service.container
    volumes: list[Volume] = []
    parameters: list[Parameter] = []
    targets: set[str] = set()
    for volume in container.volumes:
        targets.add(volume.container_path)
        if volume.propagation is None:
            volumes.append(
                Volume(
                    container_path=volume.container_path,
                    host_path=volume.host_path,
                    mode="RW" if volume.mode == "rw" else "RO",
                )
            )
        else:
            parameters.append(
                Parameter(
                    key="volume",
                    value=f"{volume.host_path}:{volume.container_path}:{volume.mode},{volume.propagation}",
                )
            )
    for secret in container.secret_files:
        targets.add(secret.target)
        volumes.append(Volume(container_path=secret.target, host_path=secret.source, mode="RO"))
    startd = service.startd
    if startd is not None and STARTD_TOKEN_PATH not in targets:
        volumes.append(Volume(container_path=STARTD_TOKEN_PATH, host_path=startd.pool_token_file, mode="RO"))
    parameters.extend(Parameter(key="cap-add", value=cap) for cap in container.cap_add)
    parameters.extend(Parameter(key="cap-drop", value=cap) for cap in container.cap_drop)
    parameters.extend(Parameter(key="device", value=device) for device in container.devices)
    parameters.extend(Parameter(key="security-opt", value=opt) for opt in container.security_opt)
    if container.user is not None:
        parameters.append(Parameter(key="user", value=container.user))
    return tuple(volumes), tuple(parameters)


def _labels(spec: TaskSpec) -> dict[str, str]:
    labels = {
        f"{LABEL_PREFIX}task_id": spec.task_id,
        f"{LABEL_PREFIX}service": spec.service.name,
        f"{LABEL_PREFIX}kind": spec.service.kind.value,
        f"{LABEL_PREFIX}slot": str(spec.slot),
        f"{LABEL_PREFIX}config": spec.config_fingerprint,
    }
    if spec.framework_id:
        labels[f"{LABEL_PREFIX}framework_id"] = spec.framework_id
    return labels


def _command(spec: TaskSpec, environment: dict[str, str]) -> CommandInfo:
    container = spec.service.container
    env = Environment.of(environment)
    if container.command is not None:
        # ``command`` is documented as a shell line run by ``sh -c`` in the container.
        return CommandInfo(shell=True, value=container.command, environment=env)  # noqa: S604
    return CommandInfo(shell=False, arguments=tuple(container.args or ()), environment=env)


def _health_check(service: ServiceConfig, ports: Sequence[int]) -> HealthCheck | None:
    check = service.health_check
    if check is None:
        return None
    base = HealthCheck(
        # Explicitly 0, as Marathon sends: left unset, Mesos waits its default 15 s before the first
        # check, which the configuration cannot express (slow starters have ``grace_period``), and a
        # startd would wait that long more for its host's CVMFS to be reported healthy.
        delay_seconds=0.0,
        interval_seconds=check.interval_s,
        timeout_seconds=check.timeout_s,
        grace_period_seconds=check.grace_period_s,
        consecutive_failures=EXECUTOR_HEALTH_FAILURES,
    )
    if check.type == "command":
        assert check.command is not None
        # A command check is a shell line by definition (the config documents it as one).
        command = CommandInfo(shell=True, value=check.command)  # noqa: S604
        return msgspec.structs.replace(base, type="COMMAND", command=command)
    port = health_check_port(service, ports)
    if port is None:
        return None
    if check.type == "http":
        http = HTTPCheckInfo(port=port, path=check.path or "/", scheme="http")
        return msgspec.structs.replace(base, type="HTTP", http=http)
    return msgspec.structs.replace(base, type="TCP", tcp=TCPCheckInfo(port=port))


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """Everything a TaskInfo is built from."""

    task_id: TaskId
    service: ServiceConfig
    slot: int
    agent_id: AgentId
    hostname: str
    resources: tuple[Resource, ...]
    """The claimed copies of offered Resources."""
    ports: tuple[int, ...]
    """Claimed host ports, in the order of :func:`port_request` (fixed first)."""
    config_fingerprint: str
    framework_id: str | None = None
    squid_endpoints: tuple[str, ...] = ()
    """Published squid endpoints (``host:port``), for a CVMFS task's proxy list."""


@dataclass(frozen=True, slots=True)
class ServiceTemplate:
    """The parts of a service's TaskInfos that do not depend on the task: built once per service
    configuration (see :func:`service_template`), so a batch of launches does not rebuild them."""

    service: ServiceConfig
    volumes: tuple[Volume, ...]
    parameters: tuple[Parameter, ...]
    kill_policy: KillPolicy
    health_check: HealthCheck | None
    """The check when it does not depend on the task's ports (None: built per task, or none)."""
    executor: StewardExecutorArtifact | None = None
    """Set for ``executor: steward`` services: the executor the tasks name."""


def service_template(
    service: ServiceConfig, executor: StewardExecutorArtifact | None = None
) -> ServiceTemplate:
    """The task-independent parts of ``service``'s TaskInfos; raises ``ValueError`` for a service
    Steward cannot launch (:func:`unsupported_reason`). ``executor`` is where the Steward executor is
    served (needed by, and only used for, ``executor: steward`` services)."""
    reason = unsupported_reason(service, executor)
    if reason is not None:
        raise ValueError(f"cannot build a task for service {service.name}: {reason}")
    volumes, parameters = _volumes_and_parameters(service)
    check = service.health_check
    fixed_check = _health_check(service, ()) if check is not None and check.type == "command" else None
    return ServiceTemplate(
        service=service,
        volumes=volumes,
        parameters=parameters,
        kill_policy=KillPolicy(grace_period=DurationInfo.from_seconds(service.kill_grace_period_s)),
        health_check=fixed_check,
        executor=executor if service.container.executor == "steward" else None,
    )


def _total(resources: Sequence[Resource], name: str) -> float:
    """Sum of the scalar resources called ``name`` (the claimed pieces of one task)."""
    return sum(r.scalar.value for r in resources if r.name == name and r.scalar is not None)


def build_task_info(spec: TaskSpec, template: ServiceTemplate | None = None) -> TaskInfo:
    """The TaskInfo for one launch (see the module docstring for every mapping). ``template`` is
    :func:`service_template` of ``spec.service``, when the caller keeps one (an ``executor: steward``
    service needs one, made with the executor's artifact)."""
    service = spec.service
    if template is None or template.service is not service:
        template = service_template(service)
    container = service.container
    cpus = _total(spec.resources, "cpus")
    mem_mib = _total(spec.resources, "mem")
    labels = _labels(spec)
    label_parameters = tuple(Parameter(key="label", value=f"{k}={v}") for k, v in labels.items())
    bridge = container.network == "bridge"
    docker = DockerInfo(
        image=container.image,
        network="BRIDGE" if bridge else "HOST",
        port_mappings=assign_port_mappings(service, spec.ports) if bridge else (),
        privileged=True if container.privileged else None,
        parameters=template.parameters + label_parameters,
    )
    health_check = template.health_check
    if health_check is None and service.health_check is not None:
        health_check = _health_check(service, spec.ports)
    command = _command(spec, _environment(spec, cpus, mem_mib))
    container_info = ContainerInfo(type="DOCKER", docker=docker, volumes=template.volumes)
    task_labels = Labels.of({k.removeprefix(LABEL_PREFIX): v for k, v in labels.items()})
    if template.executor is not None:
        return TaskInfo(
            name=spec.task_id,
            task_id=TaskID(value=spec.task_id),
            agent_id=AgentID(value=spec.agent_id),
            resources=spec.resources,
            executor=_executor_info(spec, template.executor),
            data=_executor_data(spec, template.executor, container_info, command),
            health_check=health_check,
            kill_policy=template.kill_policy,
            labels=task_labels,
        )
    return TaskInfo(
        name=spec.task_id,
        task_id=TaskID(value=spec.task_id),
        agent_id=AgentID(value=spec.agent_id),
        resources=spec.resources,
        command=command,
        container=container_info,
        health_check=health_check,
        kill_policy=template.kill_policy,
        labels=task_labels,
    )


def _executor_info(spec: TaskSpec, artifact: StewardExecutorArtifact) -> ExecutorInfo:
    """The Steward executor for one task: the fetched zipapp run by the agents' Python, in isolated
    mode (``-I -S``: nothing from the agent's own Python packages or PYTHON* variables)."""
    service = spec.service
    fetch = URI(value=artifact.uri, extract=False, cache=True, output_file=artifact.file_name)
    command = CommandInfo(
        uris=(fetch,),
        shell=False,
        value=artifact.python,
        arguments=(artifact.python, "-I", "-S", artifact.file_name),
    )
    grace = service.kill_grace_period_s + EXECUTOR_SHUTDOWN_MARGIN_S
    return ExecutorInfo(
        executor_id=ExecutorID(value=f"{spec.task_id}.executor"),
        type="CUSTOM",
        command=command,
        name=f"Steward executor for {spec.task_id}",
        source=service.name,
        shutdown_grace_period=DurationInfo.from_seconds(grace),
        labels=Labels.of({"service": service.name, "kind": service.kind.value, "task_id": spec.task_id}),
    )


def _executor_data(
    spec: TaskSpec, artifact: StewardExecutorArtifact, container: ContainerInfo, command: CommandInfo
) -> str:
    """``TaskInfo.data`` for the Steward executor: what it runs, as base64 JSON (``executors.spec``)."""
    document = {
        "format": EXECUTOR_DATA_FORMAT,
        "service": spec.service.name,
        "kind": spec.service.kind.value,
        "container": container,
        "command": command,
        "usage_interval_s": artifact.usage_interval_s,
    }
    return base64.b64encode(msgspec.json.encode(document)).decode("ascii")
