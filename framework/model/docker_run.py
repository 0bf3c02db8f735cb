"""Mesos's Docker containerizer mapping: a ``ContainerInfo`` and ``CommandInfo`` plus a task's resources
as the keyword arguments of the Docker SDK's ``client.containers.create`` (or ``run``).

Two runners start containers from the description Steward gives Mesos's Docker containerizer: the
local cluster's Docker containerizer (``framework.localcluster.containerizers.docker``), which plays
Mesos's part, and the Steward executor (``executors.runner``), which runs the same description on a
real agent. The executor may import only the protocol client and the model (import-linter contract
``executors``), and its zipapp carries only what it imports, so the one mapping both use lives here.
It is pure: no Docker SDK (ulimits are given in the Engine API's own shape, which the SDK takes as
is), no file access, no I/O.

The rules (protocol brief 4.8), in :func:`create_kwargs`:

* a shell command (the default) replaces the image's entrypoint with ``/bin/sh -c <value>``; with
  ``shell: false`` the entrypoint stays and ``value`` then ``arguments`` are its CMD;
  ``CommandInfo.user`` is the container's user;
* ``ContainerInfo.volumes`` are bind mounts (a relative ``container_path`` is inside the sandbox
  mount, a relative ``host_path`` inside the sandbox); the sandbox itself is mounted last at
  :data:`SANDBOX_MOUNT`;
* cpus become CPU shares and a CFS quota, mem a memory limit; ``TaskInfo.limits`` override the
  quota and the limit (``"Infinity"`` meaning none), the request then being a memory reservation;
* ``docker.parameters`` are mapped key by key to what ``docker run --key=value`` does (``volume``
  with propagation modes, ``cap-add``, ``cap-drop``, ``device``, ``security-opt``, ``user``, ``env``,
  ``label``, ...); a key that cannot be mapped fails the launch naming it, never silently dropped;
* ``HOST`` (the default), ``BRIDGE``, ``NONE`` or ``USER`` networking (or a ``net``/``network``
  parameter), port mappings only off the host network and only inside the task's ``ports``;
* the runner's own labels are applied last, so a ``label`` parameter cannot forge them.

What the runners do differently is a :class:`DockerRules` value (which parameters, volumes and
networks they accept, swap) plus what each passes in: the environment (each sets its own ``MESOS_*``
variables), the starting labels and its own labels, the container's name and the sandbox.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, Final

import msgspec

from framework.model.proto import CommandInfo, ContainerInfo, TaskInfo

__all__ = [
    "CPU_CFS_PERIOD_US",
    "CPU_SHARES_PER_CPU",
    "DOCKER_PARAMETERS",
    "MIN_CPU_CFS_QUOTA_US",
    "MIN_CPU_SHARES",
    "MIN_MEMORY_BYTES",
    "NETWORK_MODES",
    "SANDBOX_MOUNT",
    "VOLUME_OPTIONS",
    "DockerRules",
    "DockerRunError",
    "create_kwargs",
]

SANDBOX_MOUNT: Final = "/mnt/mesos/sandbox"
"""Where the task's sandbox is mounted in the container (its ``MESOS_SANDBOX``)."""

CPU_SHARES_PER_CPU: Final = 1024
MIN_CPU_SHARES: Final = 2
CPU_CFS_PERIOD_US: Final = 100_000
MIN_CPU_CFS_QUOTA_US: Final = 1_000
MIN_MEMORY_BYTES: Final = 32 * 1024 * 1024
_MIB: Final = 1024 * 1024

NETWORK_MODES: Final = frozenset({"HOST", "BRIDGE", "NONE", "USER"})
"""``DockerInfo.network`` values Mesos knows."""

VOLUME_OPTIONS: Final = frozenset(
    {"ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate", "nocopy"}
    | {"consistent", "cached", "delegated"}
)
"""Every option a ``volume`` parameter may carry (mode, SELinux relabelling, propagation, ...)."""

DOCKER_PARAMETERS: Final = frozenset(
    {"net", "network", "volume", "v", "cap-add", "cap-drop", "device", "security-opt", "user", "u"}
    | {"env", "e", "label", "l", "hostname", "h", "workdir", "w", "shm-size", "ulimit", "tmpfs", "init"}
    | {"read-only", "privileged", "pids-limit", "memory-swap", "memory-reservation", "oom-score-adj"}
    | {"cpu-shares", "add-host", "dns", "dns-search", "dns-opt", "dns-option", "sysctl", "group-add"}
    | {"stop-signal", "ipc", "pid", "uts"}
)
"""Every ``docker.parameters`` key (without its leading dashes) this module can map."""

_REJECTED_PARAMETERS: Final = {
    "name": "{runner} names the container itself",
    "rm": "{runner} removes the container itself, after reading its exit status",
    "detach": "{runner} always detaches",
    "restart": "restarts are the scheduler's business, not Docker's",
    "entrypoint": "the entrypoint is set by CommandInfo.shell",
    "log-driver": "{runner} reads the container's logs through Docker",
}
"""Keys ``docker run`` knows that no runner may be given, with why (``{runner}`` is filled in)."""


class DockerRunError(ValueError):
    """The description cannot be run as a Docker container; ``message`` says why.

    ``task_error`` marks the errors Mesos answers with ``TASK_ERROR`` (the task itself is malformed)
    rather than a failed launch; each runner turns this into its own terminal update.
    """

    def __init__(self, message: str, *, task_error: bool = False) -> None:
        super().__init__(message)
        self.message = message
        self.task_error = task_error


@dataclass(frozen=True, slots=True)
class DockerRules:
    """What one runner accepts; the defaults are Mesos's Docker containerizer's."""

    runner: str
    """Who runs the container, as named in messages: ``the Steward executor``."""
    parameters: frozenset[str] = DOCKER_PARAMETERS
    """The ``docker.parameters`` keys it maps (a subset of :data:`DOCKER_PARAMETERS`); any other
    key fails the launch naming it."""
    volume_options: frozenset[str] = VOLUME_OPTIONS
    """The options a ``volume`` parameter may carry."""
    networks: frozenset[str] = NETWORK_MODES
    """The ``DockerInfo.network`` modes it runs (``USER`` takes its name from ``network_infos``)."""
    mesos_volumes: bool = True
    """Mesos's volume rules in full: a ``DOCKER_VOLUME`` source is a named volume (one volume
    driver, also from ``DockerInfo.volume_driver``), other sources are ignored, and a volume whose
    two paths are both relative is refused. False: every volume must be a ``host_path`` bind mount
    (which is all Steward builds)."""
    allow_swap: bool = True
    """False: the swap limit equals the memory limit, so the OOM killer sees the limit (a task cannot
    outgrow its memory into swap unnoticed)."""

    def __post_init__(self) -> None:
        unknown = self.parameters - DOCKER_PARAMETERS
        if unknown:
            raise ValueError(f"no mapping for docker parameter(s) {', '.join(sorted(unknown))}")


# --- docker.parameters ---------------------------------------------------------------------------


def _bool_value(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("", "true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise DockerRunError(f"docker parameter '{key}' expects true or false, not '{value}'")


def _int_value(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise DockerRunError(f"docker parameter '{key}' expects an integer, not '{value}'") from None


def _key_value(key: str, value: str, sep: str = "=") -> tuple[str, str]:
    name, found, rest = value.partition(sep)
    if not found or not name:
        raise DockerRunError(f"docker parameter '{key}' expects KEY{sep}VALUE, not '{value}'")
    return name, rest


def _volume_spec(key: str, value: str, sandbox: str, options_allowed: frozenset[str]) -> str:
    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise DockerRunError(f"docker parameter '{key}' expects src:dst[:options], not '{value}'")
    source, target = parts[0], parts[1]
    if not target.startswith("/"):
        raise DockerRunError(f"docker parameter '{key}': container path '{target}' must be absolute")
    if "/" in source and not source.startswith("/"):
        source = str(PurePosixPath(sandbox) / source)  # a relative host path: inside the sandbox
    if len(parts) == 2:
        return f"{source}:{target}"
    options = [o for o in parts[2].split(",") if o]
    unknown = [o for o in options if o not in options_allowed]
    if unknown:
        raise DockerRunError(f"docker parameter '{key}': unsupported volume option(s) {', '.join(unknown)}")
    if "ro" in options and "rw" in options:
        raise DockerRunError(f"docker parameter '{key}': both ro and rw in '{value}'")
    return f"{source}:{target}:{','.join(options)}" if options else f"{source}:{target}"


def _device_spec(value: str) -> str:
    parts = value.split(":")
    if not parts[0].startswith("/") or len(parts) > 3:
        raise DockerRunError(f"docker parameter 'device' expects /dev/x[:/dev/y][:rwm], not '{value}'")
    if len(parts) == 1:
        return f"{parts[0]}:{parts[0]}:rwm"
    if len(parts) == 2:
        if parts[1].startswith("/"):
            return f"{parts[0]}:{parts[1]}:rwm"
        target, permissions = parts[0], parts[1]
    else:
        target, permissions = parts[1], parts[2]
    if not permissions or set(permissions) - set("rwm"):
        raise DockerRunError(f"docker parameter 'device': bad permissions '{permissions}' in '{value}'")
    return f"{parts[0]}:{target}:{permissions}"


def _ulimit(value: str) -> dict[str, Any]:
    """``name=soft[:hard]`` as the Engine API's ``{"Name", "Soft", "Hard"}`` (-1: unlimited)."""
    name, limits = _key_value("ulimit", value)
    soft_text, _, hard_text = limits.partition(":")
    try:
        soft = -1 if soft_text == "unlimited" else int(soft_text)
        hard = soft if not hard_text else (-1 if hard_text == "unlimited" else int(hard_text))
    except ValueError:
        raise DockerRunError(f"docker parameter 'ulimit' expects name=soft[:hard], not '{value}'") from None
    return {"Name": name, "Soft": soft, "Hard": hard}


def _apply_parameters(
    params: Iterable[tuple[str, str]], kwargs: dict[str, Any], sandbox: str, rules: DockerRules
) -> str | None:
    """Fold ``docker.parameters`` into ``kwargs``; return the network they select, if any."""
    network: str | None = None
    for raw_key, value in params:
        key = raw_key.lstrip("-")
        if key in _REJECTED_PARAMETERS:
            reason = _REJECTED_PARAMETERS[key].format(runner=rules.runner)
            raise DockerRunError(f"docker parameter '{key}' is not supported: {reason}")
        if key not in rules.parameters:
            raise DockerRunError(f"docker parameter '{key}' is not supported by {rules.runner}")
        if key in ("net", "network"):
            network = network or value  # the first one wins (as Mesos); an empty value selects none
        elif key in ("volume", "v"):
            kwargs["volumes"].append(_volume_spec(key, value, sandbox, rules.volume_options))
        elif key == "cap-add":
            kwargs.setdefault("cap_add", []).append(value)
        elif key == "cap-drop":
            kwargs.setdefault("cap_drop", []).append(value)
        elif key == "device":
            kwargs.setdefault("devices", []).append(_device_spec(value))
        elif key == "security-opt":
            kwargs.setdefault("security_opt", []).append(value)
        elif key in ("user", "u"):
            kwargs["user"] = value
        elif key in ("env", "e"):
            name, env_value = _key_value(key, value)
            kwargs["environment"][name] = env_value
        elif key in ("label", "l"):
            name, _, label_value = value.partition("=")
            if not name:
                raise DockerRunError(f"docker parameter '{key}' expects key[=value], not '{value}'")
            kwargs["labels"][name] = label_value
        elif key in ("hostname", "h"):
            kwargs["hostname"] = value
        elif key in ("workdir", "w"):
            kwargs["working_dir"] = value
        elif key == "shm-size":
            kwargs["shm_size"] = value
        elif key == "ulimit":
            kwargs.setdefault("ulimits", []).append(_ulimit(value))
        elif key == "tmpfs":
            path, _, options = value.partition(":")
            if not path.startswith("/"):
                raise DockerRunError(f"docker parameter 'tmpfs' expects /path[:options], not '{value}'")
            kwargs.setdefault("tmpfs", {})[path] = options
        elif key == "init":
            kwargs["init"] = _bool_value(key, value)
        elif key == "read-only":
            kwargs["read_only"] = _bool_value(key, value)
        elif key == "privileged":
            kwargs["privileged"] = _bool_value(key, value)
        elif key == "pids-limit":
            kwargs["pids_limit"] = _int_value(key, value)
        elif key == "memory-swap":
            kwargs["memswap_limit"] = -1 if value.strip() == "-1" else value
        elif key == "memory-reservation":
            kwargs["mem_reservation"] = value
        elif key == "oom-score-adj":
            kwargs["oom_score_adj"] = _int_value(key, value)
        elif key == "cpu-shares":
            kwargs["cpu_shares"] = _int_value(key, value)
        elif key == "add-host":
            host, ip = _key_value(key, value, ":")
            kwargs.setdefault("extra_hosts", {})[host] = ip
        elif key == "dns":
            kwargs.setdefault("dns", []).append(value)
        elif key == "dns-search":
            kwargs.setdefault("dns_search", []).append(value)
        elif key in ("dns-opt", "dns-option"):
            kwargs.setdefault("dns_opt", []).append(value)
        elif key == "sysctl":
            name, sysctl_value = _key_value(key, value)
            kwargs.setdefault("sysctls", {})[name] = sysctl_value
        elif key == "group-add":
            kwargs.setdefault("group_add", []).append(value)
        elif key == "stop-signal":
            kwargs["stop_signal"] = value
        elif key == "ipc":
            kwargs["ipc_mode"] = value
        elif key == "pid":
            kwargs["pid_mode"] = value
        else:
            assert key == "uts", key  # DOCKER_PARAMETERS lists exactly the keys mapped above
            kwargs["uts_mode"] = value
    return network


# --- volumes, resources, network -------------------------------------------------------------------


def _volumes(
    container: ContainerInfo, sandbox: str | None, rules: DockerRules
) -> tuple[list[str], str | None]:
    """The bind mounts (and named volumes) of ``container.volumes``, and the volume driver they name."""
    specs: list[str] = []
    driver: str | None = None
    for volume in container.volumes:
        where = volume.container_path
        target = where if where.startswith("/") else str(PurePosixPath(SANDBOX_MOUNT) / where)
        mode = {"RW": "rw", "RO": "ro"}.get(volume.mode)
        if mode is None:
            raise DockerRunError(f"volume {where}: unsupported mode {volume.mode!r}")
        source = volume.host_path
        if source is not None:
            if rules.mesos_volumes and not source.startswith("/") and not where.startswith("/"):
                raise DockerRunError(
                    f"Both host_path '{source}' and container_path '{where}' of a volume are relative"
                )
            if not source.startswith("/"):
                if sandbox is None:
                    raise DockerRunError(f"volume {where}: a relative host_path needs a sandbox")
                source = str(PurePosixPath(sandbox) / source)
            specs.append(f"{source}:{target}:{mode}")
        elif not rules.mesos_volumes:
            raise DockerRunError(f"volume {where}: only host_path volumes are supported")
        elif volume.source:
            info = msgspec.json.decode(volume.source)
            if not isinstance(info, dict) or info.get("type") != "DOCKER_VOLUME":
                continue  # Mesos's Docker containerizer ignores other source types
            docker_volume = info.get("docker_volume") or {}
            name = docker_volume.get("name")
            if not name:
                raise DockerRunError("DOCKER_VOLUME source without a volume name")
            if docker_volume.get("driver"):
                if driver is not None and driver != docker_volume["driver"]:
                    raise DockerRunError("Only one volume driver is supported")
                driver = str(docker_volume["driver"])
            specs.append(f"{name}:{target}:{mode}")
        else:
            raise DockerRunError("Host path or volume source is required")
    return specs, driver


def _scalar(task: TaskInfo, name: str) -> float | None:
    values = [r.scalar.value for r in task.resources if r.name == name and r.scalar is not None]
    return sum(values) if values else None


def _limit(task: TaskInfo, name: str) -> float | None:
    if task.limits is None or name not in task.limits:
        return None
    value = task.limits[name].value
    return math.inf if value == "Infinity" else float(value)


def _resources(task: TaskInfo, kwargs: dict[str, Any], *, cfs_quota: bool, allow_swap: bool) -> None:
    """CPU shares from the request; the CFS quota and memory limit from the limit, else the request."""
    cpus, mem = _scalar(task, "cpus"), _scalar(task, "mem")
    cpu_limit, mem_limit = _limit(task, "cpus"), _limit(task, "mem")
    if cpus is not None:
        kwargs["cpu_shares"] = max(int(CPU_SHARES_PER_CPU * cpus), MIN_CPU_SHARES)
    quota_cpus = cpu_limit if cpu_limit is not None else (cpus if cfs_quota else None)
    if quota_cpus is not None and not math.isinf(quota_cpus):
        kwargs["cpu_period"] = CPU_CFS_PERIOD_US
        kwargs["cpu_quota"] = max(int(CPU_CFS_PERIOD_US * quota_cpus), MIN_CPU_CFS_QUOTA_US)
    memory = mem_limit if mem_limit is not None else mem
    if memory is not None and not math.isinf(memory):
        kwargs["mem_limit"] = max(int(memory * _MIB), MIN_MEMORY_BYTES)
        if not allow_swap:
            kwargs["memswap_limit"] = kwargs["mem_limit"]
    if mem_limit is not None and mem is not None:
        kwargs["mem_reservation"] = max(int(mem * _MIB), MIN_MEMORY_BYTES)


def _port_ranges(task: TaskInfo) -> list[tuple[int, int]]:
    return [
        (r.begin, r.end)
        for resource in task.resources
        if resource.name == "ports" and resource.ranges is not None
        for r in resource.ranges.range
    ]


def _network_info_name(raw: msgspec.Raw) -> str:
    infos = msgspec.json.decode(raw) if raw else []
    if not isinstance(infos, list) or not infos:
        raise DockerRunError("No network info found in container info")
    if len(infos) > 1:
        raise DockerRunError("Only a single network can be defined in Docker run")
    name = infos[0].get("name") if isinstance(infos[0], dict) else None
    if not name:
        raise DockerRunError("No network name found in network info")
    return str(name)


def _network(container: ContainerInfo, rules: DockerRules) -> str:
    assert container.docker is not None
    mode = container.docker.network or "HOST"
    if mode not in rules.networks:
        if mode in NETWORK_MODES:
            raise DockerRunError(f"network mode {mode} is not supported by {rules.runner}")
        raise DockerRunError(f"Unsupported Network mode: {mode}")
    if mode == "USER":
        return _network_info_name(container.network_infos)
    return mode.lower()


# --- the mapping -----------------------------------------------------------------------------------


def create_kwargs(
    container: ContainerInfo,
    command: CommandInfo,
    task: TaskInfo,
    rules: DockerRules,
    *,
    name: str,
    sandbox: str | None,
    environment: Callable[[], Mapping[str, str]],
    labels: Mapping[str, str],
    own_labels: Mapping[str, str],
    cfs_quota: bool = True,
) -> dict[str, Any]:
    """Keyword arguments of ``client.containers.create``/``run`` that run ``container`` and ``command``.

    ``task`` gives the resources and limits (only those are read: the Steward executor's own task
    carries its container in ``TaskInfo.data``). ``sandbox`` is the sandbox as a path of the Docker
    daemon's host, mounted at :data:`SANDBOX_MOUNT`; None mounts nothing (and then a relative
    ``host_path`` is refused). ``environment`` gives the container's environment before ``env``
    parameters; it is called once the command has passed its checks, so a task with a bad command
    is told about the command first. ``labels`` are its labels before ``label`` parameters;
    ``own_labels`` are set last. ``cfs_quota`` False: no CFS quota from the cpus request (a cpus
    limit still sets one).

    Raises :class:`DockerRunError` for a description Docker cannot run (or ``rules`` refuse).
    """
    info = container.docker
    if info is None or not info.image:
        raise DockerRunError("container.docker.image is required", task_error=True)
    kwargs: dict[str, Any] = {"image": info.image, "name": name, "detach": True}

    # Command: shell replaces the entrypoint; otherwise value + arguments become the CMD.
    if command.shell is None or command.shell:
        if not command.value:
            raise DockerRunError("Shell specified but no command value provided", task_error=True)
        kwargs["entrypoint"] = ["/bin/sh", "-c"]
        kwargs["command"] = [command.value]
    else:
        argv = ([command.value] if command.value else []) + list(command.arguments)
        if argv:
            kwargs["command"] = argv
    if command.user:
        kwargs["user"] = command.user

    kwargs["environment"] = dict(environment())
    kwargs["labels"] = dict(labels)

    # Volumes: the container's, then the parameters', then the sandbox (Mesos appends it last).
    volumes, volume_driver = _volumes(container, sandbox, rules)
    if rules.mesos_volumes and info.volume_driver:
        if volume_driver is not None and volume_driver != info.volume_driver:
            raise DockerRunError("Only one volume driver per task is supported")
        volume_driver = info.volume_driver
    if volume_driver is not None:
        kwargs["volume_driver"] = volume_driver
    kwargs["volumes"] = volumes

    _resources(task, kwargs, cfs_quota=cfs_quota, allow_swap=rules.allow_swap)
    if info.privileged:
        kwargs["privileged"] = True

    # Parameters may add volumes, env, labels, ... and select the network.
    parameters = ((p.key, p.value) for p in info.parameters)
    param_network = _apply_parameters(parameters, kwargs, sandbox or "", rules)
    if sandbox is not None:
        kwargs["volumes"].append(f"{sandbox}:{SANDBOX_MOUNT}:rw")

    # The runner's own labels last, so that parameters cannot forge them.
    kwargs["labels"].update(own_labels)

    mode_network = _network(container, rules)  # checked even when a parameter overrides it
    network = param_network or mode_network
    kwargs["network_mode"] = network
    if container.hostname:
        kwargs["hostname"] = container.hostname
    if network == "host" and "hostname" in kwargs:
        raise DockerRunError("Unable to set hostname with host network mode")
    if info.port_mappings:
        if network in ("host", "none"):
            raise DockerRunError("Port mappings are only supported for bridge and user-defined networks")
        ranges = _port_ranges(task)
        if not ranges:
            raise DockerRunError("Port mappings require port resources")
        ports: dict[str, int] = {}
        for mapping in info.port_mappings:
            if not any(begin <= mapping.host_port <= end for begin, end in ranges):
                raise DockerRunError(f"Port [{mapping.host_port}] not included in resources")
            protocol = (mapping.protocol or "tcp").lower()
            ports[f"{mapping.container_port}/{protocol}"] = mapping.host_port
        kwargs["ports"] = ports
    return kwargs
