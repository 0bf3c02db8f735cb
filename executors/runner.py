"""The task's container through the Docker SDK: the pure mapping, the engine calls, and ownership labels.

Mapping. :func:`container_kwargs` turns a :class:`~executors.spec.LaunchSpec` (the ``ContainerInfo`` and
``CommandInfo`` Steward would give Mesos's Docker containerizer) plus the task's resources into the
keyword arguments of ``client.containers.create``, following what Mesos's Docker containerizer does
(protocol brief 4.8): a shell command replaces the entrypoint with ``/bin/sh -c``; otherwise ``value``
and ``arguments`` are the CMD after the image's entrypoint; ``HOST``/``BRIDGE``/``NONE`` networking,
port mappings only with bridge and only inside the task's ``ports``; ``docker.parameters`` mapped key by
key (``volume`` with propagation modes such as ``rshared``/``rslave``, ``cap-add``, ``cap-drop``,
``device``, ``security-opt``, ``user``, ``env``, ``label``, ...; an unknown key fails the launch naming
it, never silently dropped); cpus become CPU shares and a CFS quota, mem a memory limit
(``TaskInfo.limits`` override, ``"Infinity"`` meaning none); the executor's sandbox is mounted at
``/mnt/mesos/sandbox`` as ``MESOS_SANDBOX``. (The local cluster's Docker containerizer has the same
rules; executors may not import it, and must not carry it into the zipapp.)

Ownership. Every container carries labels naming the framework, executor, task and agent, the kind,
and its *owner*: the executor process (pid, its start time in clock ticks, its pid namespace and the
host's boot id). Those let :func:`owner_state` tell, from any Steward executor on the host, whether
the executor that made a container is still alive. The executor uses that to adopt or remove the
containers of an earlier incarnation of itself, and to remove containers orphaned by a crashed
executor (a ``kill -9`` leaves its container running; the next Steward executor on the host, or a
running one at its next sweep, removes it).

Engine calls. :class:`DockerBackend` is the only class here that talks to Docker, behind the small
:class:`ContainerBackend` protocol the executor uses (tests give it a fake).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any, Final, Protocol

from executors.spec import LaunchSpec
from framework.model.proto import TaskInfo

__all__ = [
    "LABEL_AGENT",
    "LABEL_EXECUTOR",
    "LABEL_FRAMEWORK",
    "LABEL_KIND",
    "LABEL_MANAGED",
    "LABEL_TASK",
    "SANDBOX_MOUNT",
    "ContainerBackend",
    "ContainerInfo",
    "DockerBackend",
    "ExecResult",
    "LaunchError",
    "Owner",
    "container_kwargs",
    "container_name_for",
    "owner_state",
]

log = logging.getLogger(__name__)

SANDBOX_MOUNT: Final = "/mnt/mesos/sandbox"

LABEL_MANAGED: Final = "org.steward.executor"
"""Present (value ``1``) on every container a Steward executor made."""
LABEL_FRAMEWORK: Final = "org.steward.executor.framework-id"
LABEL_EXECUTOR: Final = "org.steward.executor.executor-id"
LABEL_TASK: Final = "org.steward.executor.task-id"
LABEL_AGENT: Final = "org.steward.executor.agent-id"
LABEL_KIND: Final = "org.steward.executor.kind"
LABEL_OWNER_PID: Final = "org.steward.executor.owner-pid"
LABEL_OWNER_START: Final = "org.steward.executor.owner-start"
"""The owner's start time in clock ticks since boot (``/proc/<pid>/stat`` field 22): a recycled pid
has another."""
LABEL_OWNER_PIDNS: Final = "org.steward.executor.owner-pidns"
"""Inode of the owner's pid namespace: pids are only comparable inside the same one."""
LABEL_BOOT_ID: Final = "org.steward.executor.boot-id"

CPU_SHARES_PER_CPU: Final = 1024
MIN_CPU_SHARES: Final = 2
CPU_CFS_PERIOD_US: Final = 100_000
MIN_CPU_CFS_QUOTA_US: Final = 1_000
MIN_MEMORY_BYTES: Final = 32 * 1024 * 1024
MIB: Final = 1024 * 1024

_VOLUME_OPTIONS: Final = frozenset(
    {"ro", "rw", "z", "Z", "shared", "rshared", "slave", "rslave", "private", "rprivate", "nocopy"}
)
_REJECTED_PARAMETERS: Final = {
    "name": "the executor names the container itself",
    "rm": "the executor removes the container itself, after reading its exit status",
    "detach": "the executor always detaches",
    "restart": "restarts are Steward's business, not Docker's",
    "entrypoint": "the entrypoint is set by CommandInfo.shell",
    "log-driver": "the executor reads the container's log tail through Docker",
}


class LaunchError(Exception):
    """The task cannot be run as described; ``state``/``reason`` are those of the terminal update."""

    def __init__(
        self, message: str, *, state: str = "TASK_FAILED", reason: str = "REASON_CONTAINER_LAUNCH_FAILED"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.state = state
        self.reason = reason


def _invalid(message: str) -> LaunchError:
    return LaunchError(message, state="TASK_ERROR", reason="REASON_TASK_INVALID")


# --- owner identity -------------------------------------------------------------------------------


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as handle:
            return handle.read().strip()
    except OSError:
        return None


def process_start_ticks(pid: int) -> int | None:
    """Field 22 of ``/proc/<pid>/stat`` (start time in clock ticks since boot), None if no such pid."""
    text = _read(f"/proc/{pid}/stat")
    if text is None:
        return None
    # The command name (field 2) is in parentheses and may itself contain spaces or parentheses.
    fields = text.rsplit(")", 1)[-1].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def _pid_namespace() -> str:
    try:
        return str(os.stat("/proc/self/ns/pid").st_ino)
    except OSError:
        return ""


@dataclass(frozen=True, slots=True)
class Owner:
    """Who made a container: enough to tell later whether that process still lives."""

    pid: int
    start_ticks: int
    pid_namespace: str
    boot_id: str

    @classmethod
    def current(cls) -> Owner:
        pid = os.getpid()
        return cls(
            pid=pid,
            start_ticks=process_start_ticks(pid) or 0,
            pid_namespace=_pid_namespace(),
            boot_id=_read("/proc/sys/kernel/random/boot_id") or "",
        )

    def labels(self) -> dict[str, str]:
        return {
            LABEL_OWNER_PID: str(self.pid),
            LABEL_OWNER_START: str(self.start_ticks),
            LABEL_OWNER_PIDNS: self.pid_namespace,
            LABEL_BOOT_ID: self.boot_id,
        }


def owner_state(labels: Mapping[str, str], me: Owner) -> str:
    """``"self"``, ``"alive"``, ``"dead"`` or ``"unknown"``: the owner of a container with ``labels``,
    as seen by the executor ``me``.

    Dead means certainly gone: another boot, or the pid (in our pid namespace) is gone or was reused.
    Unknown when pids cannot be compared (another pid namespace, labels missing): such a container is
    left alone, only its own executor (same executor ID) may remove it.
    """
    boot = labels.get(LABEL_BOOT_ID, "")
    if boot and me.boot_id and boot != me.boot_id:
        return "dead"
    try:
        pid = int(labels.get(LABEL_OWNER_PID, ""))
        start = int(labels.get(LABEL_OWNER_START, ""))
    except ValueError:
        return "unknown"
    if labels.get(LABEL_OWNER_PIDNS, "") != me.pid_namespace or not me.pid_namespace:
        return "unknown"
    if pid == me.pid and start == me.start_ticks:
        return "self"
    return "alive" if process_start_ticks(pid) == start else "dead"


# --- the pure mapping ------------------------------------------------------------------------------


def container_name_for(task_id: str) -> str:
    """``steward-<task>-<short uuid>``, sanitised to what Docker accepts in a name."""
    clean = re.sub(r"[^a-zA-Z0-9_.-]", "_", task_id)[:100] or "_"
    return f"steward-{clean}-{uuid.uuid4().hex[:8]}"


def _bool_value(key: str, value: str) -> bool:
    lowered = value.strip().lower()
    if lowered in ("", "true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise _invalid(f"docker parameter '{key}' expects true or false, not '{value}'")


def _key_value(key: str, value: str, sep: str = "=") -> tuple[str, str]:
    name, found, rest = value.partition(sep)
    if not found or not name:
        raise _invalid(f"docker parameter '{key}' expects KEY{sep}VALUE, not '{value}'")
    return name, rest


def _volume_spec(value: str, sandbox: str, key: str) -> str:
    parts = value.split(":")
    if len(parts) not in (2, 3) or not parts[0] or not parts[1]:
        raise _invalid(f"docker parameter '{key}' expects src:dst[:options], not '{value}'")
    source, target = parts[0], parts[1]
    if not target.startswith("/"):
        raise _invalid(f"docker parameter '{key}': container path '{target}' must be absolute")
    if "/" in source and not source.startswith("/"):
        source = str(PurePosixPath(sandbox) / source)
    if len(parts) == 2:
        return f"{source}:{target}"
    options = [o for o in parts[2].split(",") if o]
    unknown = [o for o in options if o not in _VOLUME_OPTIONS]
    if unknown:
        raise _invalid(f"docker parameter '{key}': unsupported volume option(s) {', '.join(unknown)}")
    if "ro" in options and "rw" in options:
        raise _invalid(f"docker parameter '{key}': both ro and rw in '{value}'")
    return f"{source}:{target}:{','.join(options)}" if options else f"{source}:{target}"


def _device_spec(value: str) -> str:
    parts = value.split(":")
    if not parts[0].startswith("/") or len(parts) > 3:
        raise _invalid(f"docker parameter 'device' expects /dev/x[:/dev/y][:rwm], not '{value}'")
    if len(parts) == 1:
        return f"{parts[0]}:{parts[0]}:rwm"
    if len(parts) == 2:
        if parts[1].startswith("/"):
            return f"{parts[0]}:{parts[1]}:rwm"
        target, permissions = parts[0], parts[1]
    else:
        target, permissions = parts[1], parts[2]
    if not permissions or set(permissions) - set("rwm"):
        raise _invalid(f"docker parameter 'device': bad permissions '{permissions}' in '{value}'")
    return f"{parts[0]}:{target}:{permissions}"


def _int_value(key: str, value: str) -> int:
    try:
        return int(value)
    except ValueError:
        raise _invalid(f"docker parameter '{key}' expects an integer, not '{value}'") from None


def _apply_parameters(params: Iterable[tuple[str, str]], kwargs: dict[str, Any], sandbox: str) -> str | None:
    """Fold ``docker.parameters`` into ``kwargs``; return the network they select, if any."""
    network: str | None = None
    for raw_key, value in params:
        key = raw_key.lstrip("-")
        if key in _REJECTED_PARAMETERS:
            raise _invalid(f"docker parameter '{key}' is not supported: {_REJECTED_PARAMETERS[key]}")
        if key in ("net", "network"):
            network = network or value  # as Mesos: the first one wins
        elif key in ("volume", "v"):
            kwargs["volumes"].append(_volume_spec(value, sandbox, key))
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
                raise _invalid(f"docker parameter '{key}' expects key[=value], not '{value}'")
            kwargs["labels"][name] = label_value
        elif key in ("hostname", "h"):
            kwargs["hostname"] = value
        elif key in ("workdir", "w"):
            kwargs["working_dir"] = value
        elif key == "shm-size":
            kwargs["shm_size"] = value
        elif key == "tmpfs":
            path, _, options = value.partition(":")
            if not path.startswith("/"):
                raise _invalid(f"docker parameter 'tmpfs' expects /path[:options], not '{value}'")
            kwargs.setdefault("tmpfs", {})[path] = options
        elif key == "init":
            kwargs["init"] = _bool_value(key, value)
        elif key == "read-only":
            kwargs["read_only"] = _bool_value(key, value)
        elif key == "privileged":
            kwargs["privileged"] = _bool_value(key, value)
        elif key == "pids-limit":
            kwargs["pids_limit"] = _int_value(key, value)
        elif key == "oom-score-adj":
            kwargs["oom_score_adj"] = _int_value(key, value)
        elif key == "sysctl":
            name, sysctl_value = _key_value(key, value)
            kwargs.setdefault("sysctls", {})[name] = sysctl_value
        elif key == "group-add":
            kwargs.setdefault("group_add", []).append(value)
        elif key == "stop-signal":
            kwargs["stop_signal"] = value
        elif key == "add-host":
            host, ip = _key_value(key, value, ":")
            kwargs.setdefault("extra_hosts", {})[host] = ip
        elif key == "dns":
            kwargs.setdefault("dns", []).append(value)
        else:
            raise _invalid(f"docker parameter '{key}' is not supported by the Steward executor")
    return network


def _scalar(task: TaskInfo, name: str) -> float | None:
    values = [r.scalar.value for r in task.resources if r.name == name and r.scalar is not None]
    return sum(values) if values else None


def _limit(task: TaskInfo, name: str) -> float | None:
    if task.limits is None or name not in task.limits:
        return None
    value = task.limits[name].value
    return math.inf if value == "Infinity" else float(value)


def _port_ranges(task: TaskInfo) -> list[tuple[int, int]]:
    return [
        (r.begin, r.end)
        for resource in task.resources
        if resource.name == "ports" and resource.ranges is not None
        for r in resource.ranges.range
    ]


@dataclass(frozen=True, slots=True)
class TaskIdentity:
    """The IDs a container is labelled with (and the environment it is told)."""

    framework_id: str
    executor_id: str
    agent_id: str
    task_id: str


def container_kwargs(
    spec: LaunchSpec,
    task: TaskInfo,
    ids: TaskIdentity,
    *,
    name: str,
    sandbox: str | None,
    owner: Owner,
) -> dict[str, Any]:
    """Keyword arguments of ``client.containers.create`` that run ``task`` as ``spec`` describes.

    Pure: no Docker call, no file access. ``sandbox`` is the executor's sandbox as a **host** path
    (``MESOS_DIRECTORY``), bind-mounted at ``/mnt/mesos/sandbox``; None mounts nothing. Raises
    ``LaunchError`` (TASK_ERROR, REASON_TASK_INVALID) for a description Docker cannot run.
    """
    info = spec.container.docker
    if info is None or not info.image:
        raise _invalid("container.docker.image is required")
    command = spec.command
    kwargs: dict[str, Any] = {"image": info.image, "name": name, "detach": True}

    if command.shell is None or command.shell:
        if not command.value:
            raise _invalid("Shell specified but no command value provided")
        kwargs["entrypoint"] = ["/bin/sh", "-c"]
        kwargs["command"] = [command.value]
    else:
        argv = ([command.value] if command.value else []) + list(command.arguments)
        if argv:
            kwargs["command"] = argv
    if command.user:
        kwargs["user"] = command.user

    environment: dict[str, str] = {}
    if command.environment is not None:
        for variable in command.environment.variables:
            if variable.type == "SECRET":
                raise _invalid(f"environment variable {variable.name}: secrets are not passed by value")
            environment[variable.name] = variable.value or ""
    environment.update(
        {
            "MESOS_TASK_ID": ids.task_id,
            "MESOS_EXECUTOR_ID": ids.executor_id,
            "MESOS_FRAMEWORK_ID": ids.framework_id,
            "MESOS_CONTAINER_NAME": name,
        }
    )
    if sandbox is not None:
        environment["MESOS_SANDBOX"] = SANDBOX_MOUNT
    kwargs["environment"] = environment
    kwargs["labels"] = {}

    volumes: list[str] = []
    for volume in spec.container.volumes:
        target = volume.container_path
        if not target.startswith("/"):
            target = str(PurePosixPath(SANDBOX_MOUNT) / target)
        mode = {"RW": "rw", "RO": "ro"}.get(volume.mode)
        if mode is None:
            raise _invalid(f"volume {volume.container_path}: unsupported mode {volume.mode!r}")
        if volume.host_path is None:
            raise _invalid(f"volume {volume.container_path}: only host_path volumes are supported")
        source = volume.host_path
        if not source.startswith("/"):
            if sandbox is None:
                raise _invalid(f"volume {volume.container_path}: a relative host_path needs a sandbox")
            source = str(PurePosixPath(sandbox) / source)
        volumes.append(f"{source}:{target}:{mode}")
    kwargs["volumes"] = volumes

    cpus, mem = _scalar(task, "cpus"), _scalar(task, "mem")
    cpu_limit, mem_limit = _limit(task, "cpus"), _limit(task, "mem")
    if cpus is not None:
        kwargs["cpu_shares"] = max(int(CPU_SHARES_PER_CPU * cpus), MIN_CPU_SHARES)
    quota_cpus = cpu_limit if cpu_limit is not None else cpus
    if quota_cpus is not None and not math.isinf(quota_cpus):
        kwargs["cpu_period"] = CPU_CFS_PERIOD_US
        kwargs["cpu_quota"] = max(int(CPU_CFS_PERIOD_US * quota_cpus), MIN_CPU_CFS_QUOTA_US)
    memory = mem_limit if mem_limit is not None else mem
    if memory is not None and not math.isinf(memory):
        kwargs["mem_limit"] = max(int(memory * MIB), MIN_MEMORY_BYTES)
        # Swap would let a task outgrow its memory unnoticed; the OOM killer must see the limit.
        kwargs["memswap_limit"] = kwargs["mem_limit"]
    if mem_limit is not None and mem is not None:
        kwargs["mem_reservation"] = max(int(mem * MIB), MIN_MEMORY_BYTES)
    if info.privileged:
        kwargs["privileged"] = True

    param_network = _apply_parameters(((p.key, p.value) for p in info.parameters), kwargs, sandbox or "")
    if sandbox is not None:
        kwargs["volumes"].append(f"{sandbox}:{SANDBOX_MOUNT}:rw")

    # Our own labels last, so that parameters cannot forge them.
    kwargs["labels"].update(
        {
            LABEL_MANAGED: "1",
            LABEL_FRAMEWORK: ids.framework_id,
            LABEL_EXECUTOR: ids.executor_id,
            LABEL_AGENT: ids.agent_id,
            LABEL_TASK: ids.task_id,
            LABEL_KIND: spec.kind,
            **owner.labels(),
        }
    )

    mode_name = info.network or "HOST"
    network = {"HOST": "host", "BRIDGE": "bridge", "NONE": "none"}.get(mode_name)
    if network is None:
        raise _invalid(f"network mode {mode_name} is not supported by the Steward executor")
    network = param_network or network
    kwargs["network_mode"] = network
    if spec.container.hostname:
        kwargs["hostname"] = spec.container.hostname
    if network == "host" and "hostname" in kwargs:
        raise _invalid("Unable to set hostname with host network mode")
    if info.port_mappings:
        if network in ("host", "none"):
            raise _invalid("Port mappings are only supported for bridge and user-defined networks")
        ranges = _port_ranges(task)
        ports: dict[str, int] = {}
        for mapping in info.port_mappings:
            if not any(begin <= mapping.host_port <= end for begin, end in ranges):
                raise _invalid(f"Port [{mapping.host_port}] not included in resources")
            protocol = (mapping.protocol or "tcp").lower()
            ports[f"{mapping.container_port}/{protocol}"] = mapping.host_port
        kwargs["ports"] = ports
    return kwargs


# --- the engine --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ContainerInfo:
    """What the executor needs to know of a container (from ``docker inspect``/``ps``)."""

    id: str
    name: str
    labels: Mapping[str, str]
    status: str
    """Docker's: created, running, paused, restarting, removing, exited, dead."""
    exit_code: int | None = None
    oom_killed: bool = False
    ip_address: str | None = None

    @property
    def running(self) -> bool:
        return self.status in ("running", "paused", "restarting")


@dataclass(frozen=True, slots=True)
class ExecResult:
    exit_code: int | None
    """None: it did not finish within the timeout (it may still be running)."""
    output: str


class ContainerBackend(Protocol):
    """The Docker operations the executor uses; :class:`DockerBackend` is the real one."""

    def ensure_image(self, image: str, *, pull: bool) -> None: ...

    def create(self, kwargs: Mapping[str, Any]) -> str: ...

    def start(self, container_id: str) -> None: ...

    def inspect(self, container_id: str) -> ContainerInfo | None: ...

    def wait(self, container_id: str) -> int | None: ...

    def signal(self, container_id: str, signal_name: str) -> None: ...

    def exec(self, container_id: str, argv: list[str], timeout_s: float) -> ExecResult: ...

    def stats(self, container_id: str) -> Mapping[str, Any] | None: ...

    def logs_tail(self, container_id: str, lines: int) -> tuple[bytes, bytes]: ...

    def remove(self, container_id: str) -> None: ...

    def list_managed(self, labels: Mapping[str, str]) -> list[ContainerInfo]: ...

    def close(self) -> None: ...


_MIN_API_VERSION: Final = "1.24"


def _info(attrs: Mapping[str, Any]) -> ContainerInfo:
    state = attrs.get("State") or {}
    config = attrs.get("Config") or {}
    network = attrs.get("NetworkSettings") or {}
    ip = network.get("IPAddress") or None
    if ip is None:
        for net in (network.get("Networks") or {}).values():
            if isinstance(net, Mapping) and net.get("IPAddress"):
                ip = str(net["IPAddress"])
                break
    status = state.get("Status") if isinstance(state, Mapping) else None
    exit_code = state.get("ExitCode") if isinstance(state, Mapping) else None
    return ContainerInfo(
        id=str(attrs.get("Id", "")),
        name=str(attrs.get("Name", "")).lstrip("/"),
        labels=dict(config.get("Labels") or {}),
        status=str(status or "unknown"),
        exit_code=int(exit_code) if isinstance(exit_code, int) else None,
        oom_killed=bool(state.get("OOMKilled")) if isinstance(state, Mapping) else False,
        ip_address=ip,
    )


class DockerBackend:
    """:class:`ContainerBackend` on the Docker SDK (the Engine API over the unix socket or ``DOCKER_HOST``).

    Never pulls unless ``pull_images``: with no registry reachable, a missing image fails the launch
    with a message saying so rather than hanging in a pull.
    """

    def __init__(
        self, base_url: str | None = None, *, timeout_s: float = 60.0, pull_images: bool = True
    ) -> None:
        import docker  # noqa: PLC0415 - imported when used, so the pure mapping needs no Docker SDK

        self._docker = docker
        self._pull_images = pull_images
        url = base_url or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        if url.startswith(("unix://", "/")):
            # Check the socket first: the SDK leaks its socket when connecting fails.
            path = url.removeprefix("unix://")
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(timeout_s)
                try:
                    sock.connect(path)
                except OSError as exc:
                    raise docker.errors.DockerException(f"cannot connect to Docker at {path}: {exc}") from exc
        probe = docker.APIClient(base_url=url, version=_MIN_API_VERSION, timeout=int(timeout_s))
        try:
            version = str(probe.version()["ApiVersion"])
        finally:
            probe.close()
        self._client = docker.DockerClient(
            base_url=url, version=version, timeout=int(timeout_s), max_pool_size=16
        )
        self._api = self._client.api

    @property
    def errors(self) -> Any:
        return self._docker.errors

    def ensure_image(self, image: str, *, pull: bool) -> None:
        errors = self._docker.errors
        try:
            self._api.inspect_image(image)
            present = True
        except errors.ImageNotFound:
            present = False
        except errors.APIError as exc:
            raise LaunchError(f"cannot inspect docker image '{image}': {_explain(exc)}") from exc
        if present and not pull:
            return
        if not self._pull_images:
            if present:
                return
            raise LaunchError(f"docker image '{image}' is not present on this host and pulling is disabled")
        try:
            self._api.pull(image)  # the SDK splits name:tag (and name@digest) itself
        except errors.APIError as exc:
            if present:
                log.warning("pulling %s failed (%s); using the local copy", image, _explain(exc))
                return
            raise LaunchError(f"cannot pull docker image '{image}': {_explain(exc)}") from exc

    def create(self, kwargs: Mapping[str, Any]) -> str:
        """``containers.create`` with the high-level client's keyword arguments; the container's id."""
        errors = self._docker.errors
        try:
            container = self._client.containers.create(**kwargs)
        except errors.APIError as exc:
            raise LaunchError(f"cannot create the container: {_explain(exc)}") from exc
        except TypeError as exc:  # an argument the SDK does not know: a bug in the mapping
            raise LaunchError(f"cannot create the container: {exc}") from exc
        return str(container.id)

    def start(self, container_id: str) -> None:
        try:
            self._api.start(container_id)
        except self._docker.errors.APIError as exc:
            raise LaunchError(f"cannot start the container: {_explain(exc)}") from exc

    def inspect(self, container_id: str) -> ContainerInfo | None:
        try:
            return _info(self._api.inspect_container(container_id))
        except self._docker.errors.NotFound:
            return None

    def wait(self, container_id: str) -> int | None:
        """Block until the container stops; its exit code, or None if it is gone.

        A broken connection (the engine restarted) is not the container's end: wait again.
        """
        errors = self._docker.errors
        while True:
            try:
                result = self._api.wait(container_id, timeout=None)
                return int(result.get("StatusCode", -1))
            except errors.NotFound:
                return None
            except (errors.DockerException, OSError, ValueError) as exc:
                info = self.inspect_quietly(container_id)
                if info is None:
                    return None
                if not info.running:
                    return info.exit_code
                log.warning("waiting for %s failed (%s); waiting again", container_id[:12], exc)
                time.sleep(1.0)

    def inspect_quietly(self, container_id: str) -> ContainerInfo | None:
        try:
            return self.inspect(container_id)
        except (self._docker.errors.DockerException, OSError):
            return ContainerInfo(id=container_id, name="", labels={}, status="running")

    def signal(self, container_id: str, signal_name: str) -> None:
        errors = self._docker.errors
        try:
            self._api.kill(container_id, signal=signal_name)
        except errors.APIError as exc:
            # 409: not running (any more); 404: gone. Both mean the signal has nothing left to do.
            if exc.status_code not in (404, 409):
                raise

    def exec(self, container_id: str, argv: list[str], timeout_s: float) -> ExecResult:
        """Run ``argv`` in the container; wait at most ``timeout_s`` for it (it may run on after)."""
        errors = self._docker.errors
        try:
            exec_id = self._api.exec_create(container_id, argv, stdout=True, stderr=True)["Id"]
        except errors.APIError as exc:
            return ExecResult(None if exc.status_code >= 500 else 126, f"docker exec failed: {_explain(exc)}")
        box: list[bytes] = []

        def run() -> None:
            with contextlib.suppress(errors.DockerException, OSError):
                output = self._api.exec_start(exec_id)
                box.append(output if isinstance(output, bytes) else b"")

        thread = threading.Thread(target=run, name=f"exec-{container_id[:12]}", daemon=True)
        thread.start()
        thread.join(max(0.0, timeout_s))
        output = box[0].decode("utf-8", "replace") if box else ""
        try:
            info = self._api.exec_inspect(exec_id)
        except errors.DockerException:
            return ExecResult(None, output)
        if info.get("Running"):
            return ExecResult(None, output)
        code = info.get("ExitCode")
        return ExecResult(int(code) if isinstance(code, int) else None, output)

    def stats(self, container_id: str) -> Mapping[str, Any] | None:
        try:
            result = self._api.stats(container_id, stream=False, one_shot=True)
        except self._docker.errors.NotFound:
            return None
        return result if isinstance(result, Mapping) else None

    def logs_tail(self, container_id: str, lines: int) -> tuple[bytes, bytes]:
        errors = self._docker.errors
        out: list[bytes] = []
        for stdout in (True, False):
            try:
                data = self._api.logs(container_id, stdout=stdout, stderr=not stdout, tail=lines)
            except errors.DockerException:
                data = b""
            out.append(data if isinstance(data, bytes) else b"")
        return out[0], out[1]

    def remove(self, container_id: str) -> None:
        errors = self._docker.errors
        try:
            self._api.remove_container(container_id, force=True, v=False)
        except errors.NotFound:
            pass
        except errors.APIError as exc:
            if exc.status_code == 409 and "already in progress" in str(exc):
                return
            raise

    def list_managed(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        """Containers (running or not) with all of ``labels`` (plus the managed mark), inspected."""
        filters = [f"{LABEL_MANAGED}=1", *(f"{k}={v}" for k, v in labels.items())]
        found = []
        for summary in self._api.containers(all=True, filters={"label": filters}):
            info = self.inspect(str(summary["Id"]))
            if info is not None:
                found.append(info)
        return found

    def close(self) -> None:
        self._client.close()


def _explain(exc: Exception) -> str:
    return str(getattr(exc, "explanation", None) or exc)


def sandbox_host_path(environ: Mapping[str, str]) -> str | None:
    """The sandbox as the Docker daemon sees it: ``MESOS_DIRECTORY`` (host path), else ``MESOS_SANDBOX``."""
    for name in ("MESOS_DIRECTORY", "MESOS_SANDBOX"):
        value = environ.get(name)
        if value and Path(value).is_absolute():
            return value
    return None
