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
``/mnt/mesos/sandbox`` as ``MESOS_SANDBOX``. The mapping itself is
:func:`framework.model.docker_run.create_kwargs`, which the local cluster's Docker containerizer uses
too (executors may not import the local cluster, nor carry it into the zipapp), under the executor's
stricter rules (``_RULES``: fewer parameters, host-path volumes only, no swap beyond the memory limit).

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
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final, Protocol

from executors.spec import LaunchSpec
from framework.model.docker_run import (
    DOCKER_PARAMETERS,
    SANDBOX_MOUNT,
    VOLUME_OPTIONS,
    DockerRules,
    DockerRunError,
    create_kwargs,
)
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

_RULES: Final = DockerRules(
    runner="the Steward executor",
    # Fewer keys than Mesos maps: none that would override the executor's own resource settings
    # (cpu-shares, memory-swap, memory-reservation) or share host namespaces (ipc, pid, uts), and
    # not ulimit or dns-search/dns-opt.
    parameters=DOCKER_PARAMETERS
    - {"cpu-shares", "memory-swap", "memory-reservation", "ipc", "pid", "uts", "ulimit"}
    - {"dns-search", "dns-opt", "dns-option"},
    volume_options=VOLUME_OPTIONS - {"consistent", "cached", "delegated"},
    networks=frozenset({"HOST", "BRIDGE", "NONE"}),
    mesos_volumes=False,  # host_path bind mounts only (all Steward builds); no named volumes
    allow_swap=False,  # swap would let a task outgrow its memory unnoticed; the OOM killer must see it
)
"""How the executor maps a ``ContainerInfo`` (:mod:`framework.model.docker_run`): a stricter subset of
what Mesos's Docker containerizer (and the local cluster's) accepts, and no swap beyond the limit."""


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

    The mapping is :func:`framework.model.docker_run.create_kwargs` under the executor's rules; what
    is the executor's own is the environment (the command's, no secrets by value, plus the
    ``MESOS_*`` IDs) and the ownership labels.
    """
    command = spec.command

    def environment() -> dict[str, str]:
        env: dict[str, str] = {}
        if command.environment is not None:
            for variable in command.environment.variables:
                if variable.type == "SECRET":
                    raise _invalid(f"environment variable {variable.name}: secrets are not passed by value")
                env[variable.name] = variable.value or ""
        env.update(
            {
                "MESOS_TASK_ID": ids.task_id,
                "MESOS_EXECUTOR_ID": ids.executor_id,
                "MESOS_FRAMEWORK_ID": ids.framework_id,
                "MESOS_CONTAINER_NAME": name,
            }
        )
        if sandbox is not None:
            env["MESOS_SANDBOX"] = SANDBOX_MOUNT
        return env

    own_labels = {
        LABEL_MANAGED: "1",
        LABEL_FRAMEWORK: ids.framework_id,
        LABEL_EXECUTOR: ids.executor_id,
        LABEL_AGENT: ids.agent_id,
        LABEL_TASK: ids.task_id,
        LABEL_KIND: spec.kind,
        **owner.labels(),
    }
    try:
        return create_kwargs(
            spec.container,
            command,
            task,
            _RULES,
            name=name,
            sandbox=sandbox,
            environment=environment,
            labels={},
            own_labels=own_labels,
        )
    except DockerRunError as exc:
        raise _invalid(exc.message) from None


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
