"""Docker tasks for the embedded local cluster, run through the Docker Engine API (Docker SDK).

The mapping from a ``TaskInfo`` to a container follows Mesos's Docker containerizer
(``src/docker/docker.cpp``, protocol brief 4.8) and lives in one pure function,
``docker_run_kwargs(request, container_name=...)``, which returns the keyword arguments of
``client.containers.create``/``run`` or raises ``LaunchFailed`` with the message Mesos would give
(``Shell specified but no command value provided``, ``Port [31999] not included in resources``, an
unsupported ``parameters`` key, ...). It checks what only a containerizer checks (a Docker
``ContainerInfo``, a ``CommandInfo``, a valid health check), builds the environment and the labels,
and leaves the rest to :func:`framework.model.docker_run.create_kwargs` under Mesos's rules in full
(the Steward executor uses the same function under stricter ones). Highlights:

* shell commands (the default) replace the image entrypoint with ``/bin/sh -c <value>``; with
  ``shell: false`` the image entrypoint stays and ``value`` then ``arguments`` become its CMD;
* the sandbox is bind-mounted at ``/mnt/mesos/sandbox`` (MESOS_SANDBOX); ``volumes`` with a relative
  ``host_path`` live inside the sandbox;
* ``docker.parameters`` are mapped key by key to what ``docker run --key=value`` does (``volume``
  with propagation modes, ``cap-add``, ``device``, ``security-opt``, ``env``, ``label``, ...); a key
  that cannot be mapped fails the task naming the key, never silently dropped;
* cpus/mem become CPU shares, a CFS quota and a memory limit (``TaskInfo.limits`` override them,
  ``"Infinity"`` meaning none);
* every container carries the ``LABEL_*`` labels of ``base.py`` plus the owning process and
  containerizer instance, which is how ``cleanup_orphans`` tells leftovers from live containers.

Runtime: one thread per task creates, starts and then waits for the container, reports STARTING,
RUNNING and exactly one terminal update, copies the log tail into the sandbox and removes the
container. ``kill`` runs ``docker stop`` (SIGTERM, SIGKILL after the grace) on a thread of its own.
Images are never pulled unless the containerizer is built with ``pull_images=True``: the local
cluster has no registry, so a missing image fails the task with a message saying so.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import math
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

import docker
import docker.errors
from docker.models.containers import Container

from framework.localcluster.containerizers.base import (
    LABEL_AGENT,
    LABEL_CLUSTER,
    LABEL_FRAMEWORK,
    LABEL_TASK,
    LaunchRequest,
    StatusSink,
)
from framework.localcluster.containerizers.process import (
    REASON_HEALTH,
    REASON_KILLED_DURING_LAUNCH,
    REASON_TASK_INVALID,
    LaunchFailed,
    TaskReporter,
    kill_grace_s,
    owner_is_live,
    proc_start_ticks,
    register_instance,
    retire_instance,
    task_environment,
)
from framework.localcluster.fetcher import FetchError, fetch_uris
from framework.localcluster.health import (
    HealthChecker,
    HealthReport,
    Probe,
    ProbeResult,
    http_probe,
    tcp_probe,
    validate_health_check,
)
from framework.mesos.threads import ThreadGroup
from framework.model.docker_run import SANDBOX_MOUNT, DockerRules, DockerRunError, create_kwargs
from framework.model.proto import CommandInfo, HealthCheck, TaskState

__all__ = [
    "LABEL_INSTANCE",
    "LABEL_OWNER_PID",
    "LABEL_OWNER_START",
    "SANDBOX_MOUNT",
    "TASK_LABEL_PREFIX",
    "DockerContainerizer",
    "connect_docker",
    "container_name_for",
    "docker_run_kwargs",
]

log = logging.getLogger(__name__)

LABEL_OWNER_PID = "org.steward.localcluster-pid"
"""pid of the process whose containerizer created the container (orphan detection)."""
LABEL_OWNER_START = "org.steward.localcluster-pid-start"
"""that process's start time in clock ticks, so a recycled pid does not look alive."""
LABEL_INSTANCE = "org.steward.containerizer-instance"
"""the containerizer instance inside that process (several agents may share one process)."""
TASK_LABEL_PREFIX = "org.steward.task-label."
"""``TaskInfo.labels`` become docker labels under this prefix."""

_MIN_API_VERSION = "1.24"
"""Oldest Engine API the negotiation request is sent with (every engine since 1.12 answers it)."""
_LOG_TAIL_LINES = 2000
_MESSAGE_TAIL_LINES = 10

_RULES = DockerRules(runner="the local cluster's Docker containerizer")
"""Mesos's Docker containerizer's rules in full (:mod:`framework.model.docker_run`)."""


# --- the pure mapping ---------------------------------------------------------------------------


def container_name_for(agent_id: str, task_id: str, suffix: str | None = None) -> str:
    """``mesos-<agent>-<task>-<short uuid>``, sanitised to what Docker accepts in a name."""

    def clean(text: str, limit: int) -> str:
        return re.sub(r"[^a-zA-Z0-9_.-]", "_", text)[:limit] or "_"

    return f"mesos-{clean(agent_id, 40)}-{clean(task_id, 80)}-{suffix or uuid.uuid4().hex[:8]}"


def docker_run_kwargs(
    request: LaunchRequest,
    *,
    container_name: str,
    owner_pid: int | None = None,
    owner_start: int | None = None,
    instance: str | None = None,
    enable_cfs_quota: bool = True,
) -> dict[str, Any]:
    """Keyword arguments for ``client.containers.create``/``run`` that run ``request.task`` as Mesos would.

    Pure: no Docker call, no file system access. Raises ``LaunchFailed`` (TASK_FAILED or TASK_ERROR with
    a Mesos-style message) for a task the Docker containerizer cannot run.
    """
    task = request.task
    container = task.container
    if container is None or container.type != "DOCKER" or container.docker is None:
        raise LaunchFailed(
            "No docker info found in container info", state=TaskState.TASK_ERROR, reason=REASON_TASK_INVALID
        )
    info = container.docker
    if not info.image:
        raise LaunchFailed("DockerInfo has no image", state=TaskState.TASK_ERROR, reason=REASON_TASK_INVALID)
    command = task.command
    if command is None:
        raise LaunchFailed(
            "Docker tasks need a CommandInfo (custom executors go to the executor host)",
            state=TaskState.TASK_ERROR,
            reason=REASON_TASK_INVALID,
        )
    if task.health_check is not None:
        problem = validate_health_check(task.health_check)
        if problem is not None:
            raise LaunchFailed(problem, state=TaskState.TASK_ERROR, reason=REASON_TASK_INVALID)

    labels: dict[str, str] = {}
    if task.labels is not None:
        labels = {TASK_LABEL_PREFIX + label.key: label.value or "" for label in task.labels.labels}
    own_labels = {
        LABEL_CLUSTER: request.cluster_id,
        LABEL_AGENT: request.agent_id,
        LABEL_FRAMEWORK: request.framework_id,
        LABEL_TASK: task.task_id.value,
    }
    if owner_pid is not None:
        own_labels[LABEL_OWNER_PID] = str(owner_pid)
    if owner_start is not None:
        own_labels[LABEL_OWNER_START] = str(owner_start)
    if instance is not None:
        own_labels[LABEL_INSTANCE] = instance
    try:
        return create_kwargs(
            container,
            command,
            task,
            _RULES,
            name=container_name,
            sandbox=str(request.sandbox),
            environment=lambda: task_environment(
                request, sandbox_path=SANDBOX_MOUNT, container_name=container_name
            ),
            labels=labels,
            own_labels=own_labels,
            cfs_quota=enable_cfs_quota,
        )
    except DockerRunError as exc:
        if exc.task_error:
            raise LaunchFailed(exc.message, state=TaskState.TASK_ERROR, reason=REASON_TASK_INVALID) from None
        raise LaunchFailed(exc.message) from None


# --- health probes inside a container's network namespace ------------------------------------------

_CLONE_NEWNET = 0x40000000


def _in_netns(pid: int, probe: Probe) -> Probe:
    """Run ``probe`` with a thread that joined the network namespace of ``pid`` (the container).

    This is what Mesos's Docker executor does for HTTP/TCP checks of BRIDGE/USER/NONE containers:
    ``127.0.0.1:<container_port>`` inside the container. ``setns`` affects only the calling thread,
    so a fresh thread is used for each probe and dies with the namespace it joined. Needs root.
    """

    def probe_in_ns(timeout_s: float) -> ProbeResult:
        box: list[ProbeResult] = []

        def target() -> None:
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                fd = os.open(f"/proc/{pid}/ns/net", os.O_RDONLY)
                try:
                    if libc.setns(fd, _CLONE_NEWNET) != 0:
                        errno = ctypes.get_errno()
                        box.append(ProbeResult(False, f"cannot enter the container's network: errno {errno}"))
                        return
                finally:
                    os.close(fd)
                box.append(probe(timeout_s))
            except OSError as exc:
                box.append(ProbeResult(False, f"cannot enter the container's network: {exc}"))

        worker = threading.Thread(target=target, name=f"netns-probe-{pid}", daemon=True)
        worker.start()
        worker.join(timeout_s + 5.0)
        return box[0] if box else ProbeResult(False, "health probe in the container's network timed out")

    return probe_in_ns


# --- the containerizer -------------------------------------------------------------------------


class _DockerTask:
    def __init__(self, request: LaunchRequest, reporter: TaskReporter) -> None:
        self.request = request
        self.reporter = reporter
        self.lock = threading.RLock()
        self.container: Container | None = None
        self.killed = False
        self.killed_by_health = False
        self.stop_timeout_s: int | None = None
        self.checker: HealthChecker | None = None
        self.done = threading.Event()
        self.kwargs: dict[str, Any] = {}


ClientFactory = Callable[[], "docker.DockerClient"]


class DockerContainerizer:
    """Runs Docker tasks on the local Docker Engine (see the module docstring).

    ``client`` is a ready ``docker.DockerClient`` or a factory; by default one is created lazily (on
    the first launch) from ``docker_host`` or ``DOCKER_HOST``, so an unreachable daemon fails tasks
    with a clear message instead of failing the agent's start.
    """

    name = "docker"

    def __init__(
        self,
        cluster_id: str,
        *,
        client: docker.DockerClient | ClientFactory | None = None,
        docker_host: str | None = None,
        pull_images: bool = False,
        enable_cfs_quota: bool = True,
        poll_interval_s: float = 0.1,
        shutdown_grace_s: float = 2.0,
        health_host: str = "127.0.0.1",
        api_timeout_s: float = 60.0,
    ) -> None:
        self.cluster_id = cluster_id
        self._client_arg = client
        self._docker_host = docker_host or os.environ.get("DOCKER_HOST") or "unix:///var/run/docker.sock"
        self._pull_images = pull_images
        self._enable_cfs_quota = enable_cfs_quota
        self._poll_interval_s = poll_interval_s
        self._shutdown_grace_s = shutdown_grace_s
        self._health_host = health_host
        self._api_timeout_s = api_timeout_s
        self._instance = register_instance()
        self._owner_start = proc_start_ticks(os.getpid())
        self._client: docker.DockerClient | None = None
        self._client_lock = threading.Lock()
        self._lock = threading.Lock()
        self._tasks: dict[str, _DockerTask] = {}
        self._threads = ThreadGroup("docker containerizer")
        self._closed = False

    # -- Docker client --

    @property
    def client(self) -> docker.DockerClient:
        """The Docker client (created on first use); raises ``LaunchFailed`` if Docker is unreachable."""
        with self._client_lock:
            if self._client is None:
                try:
                    if isinstance(self._client_arg, docker.DockerClient):
                        self._client = self._client_arg
                    elif self._client_arg is not None:
                        self._client = self._client_arg()
                    else:
                        self._client = connect_docker(self._docker_host, self._api_timeout_s)
                except docker.errors.DockerException as exc:
                    raise LaunchFailed(
                        f"cannot reach the Docker daemon at {self._docker_host}: {exc}"
                    ) from exc
            return self._client

    # -- Containerizer protocol --

    def launch(self, request: LaunchRequest, report: StatusSink) -> None:
        task_id = request.task.task_id.value
        record = _DockerTask(request, TaskReporter(request, report))
        with self._lock:
            if self._closed:
                record.reporter.fail(LaunchFailed("the Docker containerizer is shut down"))
                return
            for done_id in [k for k, v in self._tasks.items() if v.done.is_set()]:
                del self._tasks[done_id]
            if task_id in self._tasks:
                record.reporter.fail(
                    LaunchFailed(
                        f"task '{task_id}' is already running on this agent",
                        state=TaskState.TASK_ERROR,
                        reason=REASON_TASK_INVALID,
                    )
                )
                return
            self._tasks[task_id] = record
        self._spawn(lambda: self._run(record), f"docker-task-{task_id}", record)

    def kill(self, task_id: str, grace_period_s: float) -> None:
        with self._lock:
            record = self._tasks.get(task_id)
        if record is not None:
            self._kill(record, grace_period_s)

    def acknowledged(self, task_id: str, status_uuid: str) -> None:
        """Docker tasks need no acknowledgement relay."""

    def cleanup_orphans(self, *, all_local_clusters: bool = False) -> int:
        """Remove containers left by gone owners: of this cluster id, or (``all_local_clusters``) of any.

        A container is an orphan when the process that created it no longer runs (pid and start time
        from its labels), or when it was created by this process through a containerizer instance
        that has been shut down. Containers of live owners, including other agents of this cluster in
        this process, are left alone. Returns how many containers were removed.
        """
        try:
            containers = self.client.containers.list(all=True, filters={"label": LABEL_CLUSTER})
        except (LaunchFailed, docker.errors.DockerException) as exc:
            log.warning("cannot list containers for orphan cleanup: %s", exc)
            return 0
        removed = 0
        for container in containers:
            labels = container.labels or {}
            if labels.get(LABEL_CLUSTER) != self.cluster_id and not all_local_clusters:
                continue
            owner_pid = labels.get(LABEL_OWNER_PID, "")
            owner_start = labels.get(LABEL_OWNER_START, "")
            if owner_is_live(
                int(owner_pid) if owner_pid.isdigit() else None,
                int(owner_start) if owner_start.isdigit() else None,
                labels.get(LABEL_INSTANCE),
            ):
                continue
            with contextlib.suppress(docker.errors.NotFound):
                container.remove(force=True)
                removed += 1
                log.info(
                    "removed orphaned container %s (cluster %s)", container.name, labels.get(LABEL_CLUSTER)
                )
        return removed

    def shutdown(self) -> None:
        """Stop every container of this instance (short grace), wait for their final updates, sweep."""
        with self._lock:
            self._closed = True
            records = list(self._tasks.values())
        for record in records:
            self._kill(record, self._shutdown_grace_s)
        self._threads.join(120.0)
        if self._client is not None:
            try:
                leftovers = self._client.containers.list(
                    all=True, filters={"label": f"{LABEL_INSTANCE}={self._instance}"}
                )
                for container in leftovers:
                    with contextlib.suppress(docker.errors.NotFound):
                        container.remove(force=True)
            except docker.errors.DockerException:
                log.exception("cannot sweep containers on shutdown")
        retire_instance(self._instance)
        if self._client is not None and self._client_arg is None:
            self._client.close()

    # -- threads --

    def _spawn(self, target: Callable[[], None], name: str, record: _DockerTask) -> None:
        def failed(exc: Exception) -> None:
            record.reporter.fail(LaunchFailed(f"internal error in the Docker containerizer: {exc}"))

        self._threads.spawn(target, name, failed)

    # -- one task --

    def _run(self, record: _DockerTask) -> None:
        try:
            container = self._start(record)
        except LaunchFailed as failure:
            record.reporter.fail(failure)
            record.done.set()
            return
        if container is None:  # killed during launch: already reported
            record.done.set()
            return
        try:
            self._watch(record, container)
        finally:
            record.done.set()

    def _start(self, record: _DockerTask) -> Container | None:
        request = record.request
        task = request.task
        name = container_name_for(request.agent_id, task.task_id.value)
        kwargs = docker_run_kwargs(
            request,
            container_name=name,
            owner_pid=os.getpid(),
            owner_start=self._owner_start,
            instance=self._instance,
            enable_cfs_quota=self._enable_cfs_quota,
        )
        record.kwargs = kwargs
        client = self.client
        sandbox = request.sandbox
        sandbox.mkdir(parents=True, exist_ok=True)
        assert task.container is not None and task.command is not None
        for volume in task.container.volumes:
            if volume.host_path and not volume.host_path.startswith("/"):
                (sandbox / volume.host_path).mkdir(parents=True, exist_ok=True)
        try:
            fetch_uris(task.command.uris, sandbox)
        except FetchError as exc:
            raise LaunchFailed(str(exc)) from exc
        self._ensure_image(
            client, kwargs["image"], bool(task.container.docker and task.container.docker.force_pull_image)
        )
        with record.lock:
            if record.killed:
                return None
        record.reporter.send(TaskState.TASK_STARTING)
        try:
            container = client.containers.create(**kwargs)
        except docker.errors.APIError as exc:
            raise LaunchFailed(f"Failed to create docker container: {_api_error(exc)}") from exc
        try:
            container.start()
        except docker.errors.APIError as exc:
            _remove(container)
            raise LaunchFailed(f"Failed to run docker container: {_api_error(exc)}") from exc
        # Only a started container is visible to kill(): a stop before start would be lost, and
        # start would then run a task that was already reported killed.
        with record.lock:
            killed = record.killed
            if not killed:
                record.container = container
        if killed:
            _remove(container)
            return None
        self._wait_running(container)
        record.reporter.send(TaskState.TASK_RUNNING)
        self._start_health_check(record, container)
        return container

    def _ensure_image(self, client: docker.DockerClient, image: str, force_pull: bool) -> None:
        try:
            client.images.get(image)
            present = True
        except docker.errors.ImageNotFound:
            present = False
        except docker.errors.APIError as exc:
            raise LaunchFailed(f"Failed to inspect docker image '{image}': {_api_error(exc)}") from exc
        if present and not (force_pull and self._pull_images):
            return
        if not self._pull_images:
            raise LaunchFailed(
                f"Failed to launch container: docker image '{image}' is not present on this host and the "
                "local cluster does not pull images (no registry); build or load it first"
            )
        try:
            client.images.pull(image)
        except docker.errors.APIError as exc:
            raise LaunchFailed(f"Failed to pull docker image '{image}': {_api_error(exc)}") from exc

    def _wait_running(self, container: Container) -> None:
        """Give Docker a moment to report ``running`` (a container that exits at once never does)."""
        deadline = time.monotonic() + 5.0
        while time.monotonic() < deadline:
            try:
                container.reload()
            except docker.errors.NotFound:
                return
            if container.status != "created":
                return
            time.sleep(self._poll_interval_s)

    def _watch(self, record: _DockerTask, container: Container) -> None:
        exit_code: int | None = None
        wait_error = ""
        try:
            result = container.wait()
            exit_code = int(result.get("StatusCode", -1))
        except (docker.errors.DockerException, ValueError, OSError) as exc:
            wait_error = str(exc)
        with record.lock:
            checker, record.checker = record.checker, None
            killed, by_health = record.killed, record.killed_by_health
        if checker is not None:
            checker.stop()
        oom = False
        with contextlib.suppress(docker.errors.DockerException):
            container.reload()
            oom = bool(container.attrs.get("State", {}).get("OOMKilled"))
        stderr_tail = self._save_logs(record, container)
        _remove(container)
        if killed:
            record.reporter.send(
                TaskState.TASK_KILLED,
                message=f"killed by request; container exited with status {exit_code}",
                healthy=False if by_health else None,
            )
        elif exit_code is None:
            record.reporter.send(
                TaskState.TASK_FAILED,
                reason="REASON_COMMAND_EXECUTOR_FAILED",
                message=f"Failed to get exit status of container: {wait_error}",
            )
        elif oom:
            record.reporter.send(
                TaskState.TASK_FAILED,
                reason="REASON_CONTAINER_LIMITATION_MEMORY",
                message=f"Memory limit exceeded: container was OOM-killed (status {exit_code})",
            )
        elif exit_code == 0:
            record.reporter.send(TaskState.TASK_FINISHED, message="Container exited with status 0")
        else:
            message = f"Container exited with status {exit_code}"
            if stderr_tail:
                message += f"; last output lines:\n{stderr_tail}"
            record.reporter.send(
                TaskState.TASK_FAILED, reason="REASON_COMMAND_EXECUTOR_FAILED", message=message
            )

    def _save_logs(self, record: _DockerTask, container: Container) -> str:
        """Append the container's log tail to the sandbox's stdout/stderr; return the last lines."""
        tail = ""
        for stream, filename in (("stdout", "stdout"), ("stderr", "stderr")):
            try:
                data = container.logs(
                    stdout=stream == "stdout", stderr=stream == "stderr", tail=_LOG_TAIL_LINES
                )
            except docker.errors.DockerException:
                continue
            if not isinstance(data, bytes):
                continue
            with contextlib.suppress(OSError), (record.request.sandbox / filename).open("ab") as out:
                out.write(data)
            if data.strip():
                text = "\n".join(data.decode("utf-8", "replace").splitlines()[-_MESSAGE_TAIL_LINES:])
                tail = text if stream == "stderr" or not tail else tail
        return tail

    def _kill(self, record: _DockerTask, grace_s: float) -> None:
        timeout = max(0, math.ceil(grace_s))
        with record.lock:
            if record.done.is_set() or record.reporter.terminal_sent:
                return
            record.killed = True
            checker, record.checker = record.checker, None
            container = record.container
            if container is None:
                record.reporter.send(
                    TaskState.TASK_KILLED,
                    reason=REASON_KILLED_DURING_LAUNCH,
                    message="killed before the container started",
                )
                return
            if record.stop_timeout_s is not None and timeout >= record.stop_timeout_s:
                return  # a repeated kill may only shorten the escalation
            record.stop_timeout_s = timeout
        if checker is not None:
            checker.stop()

        def stop() -> None:
            try:
                container.stop(timeout=timeout)
            except docker.errors.NotFound:
                pass
            except docker.errors.DockerException as exc:
                log.warning("docker stop of %s failed: %s", container.name, exc)

        self._spawn(stop, f"docker-stop-{record.request.task.task_id.value}", record)

    # -- health --

    def _start_health_check(self, record: _DockerTask, container: Container) -> None:
        check = record.request.task.health_check
        if check is None:
            return
        probe = self._probe_for(record, container, check)

        def on_report(report: HealthReport) -> None:
            with record.lock:
                if record.killed:
                    return
            record.reporter.send(
                TaskState.TASK_RUNNING,
                reason=REASON_HEALTH,
                healthy=report.healthy,
                message=report.detail or None,
            )
            if report.kill_task:
                with record.lock:
                    record.killed_by_health = True
                self._kill(record, kill_grace_s(record.request.task))

        checker = HealthChecker(check, probe, on_report, name=f"health-{record.request.task.task_id.value}")
        with record.lock:
            if record.killed:
                return
            record.checker = checker
        checker.start()

    def _probe_for(self, record: _DockerTask, container: Container, check: HealthCheck) -> Probe:
        if check.type == "COMMAND":
            assert check.command is not None
            return _exec_probe(container, check.command)
        if check.type == "HTTP" and check.http is not None:
            port = check.http.port
        else:
            port = check.tcp.port if check.tcp is not None else 0

        def make(host: str, target_port: int) -> Probe:
            if check.type == "HTTP" and check.http is not None:
                return http_probe(
                    host, target_port, path=check.http.path or "/", scheme=check.http.scheme or "http"
                )
            return tcp_probe(host, target_port)

        network = record.kwargs.get("network_mode", "host")
        if network == "host":
            return make(self._health_host, port)
        # Mesos checks 127.0.0.1:<port> inside the container's network namespace. That needs root;
        # without it the mapped host port is the fallback (docker-proxy accepts connections for a
        # port nobody listens on yet, so a TCP check through it is weaker).
        pid = int(container.attrs.get("State", {}).get("Pid") or 0)
        if os.geteuid() == 0 and pid > 0:
            return _in_netns(pid, make("127.0.0.1", port))
        ports: dict[str, int] = record.kwargs.get("ports", {})
        host_port = ports.get(f"{port}/tcp")
        if host_port is not None:
            return make(self._health_host, host_port)
        return lambda _timeout: ProbeResult(
            False, f"cannot reach port {port} of a {network} container: not root and no port mapping"
        )


def connect_docker(base_url: str, timeout_s: float) -> docker.DockerClient:
    """A client speaking the daemon's API version, negotiated with a throwaway client.

    ``DockerClient(version="auto")`` negotiates in its constructor and, when the daemon is down,
    leaks the socket of the failed attempt; this way every client made is closed on failure.
    """
    if base_url.startswith(("unix://", "/")):
        # docker's unix-socket transport leaks its socket when connect() fails: try it ourselves first.
        path = base_url.removeprefix("unix://")
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            try:
                sock.connect(path)
            except OSError as exc:
                raise docker.errors.DockerException(f"cannot connect to {path}: {exc}") from exc
    probe = docker.DockerClient(base_url=base_url, version=_MIN_API_VERSION, timeout=int(timeout_s))
    try:
        version = str(probe.version()["ApiVersion"])
    finally:
        probe.close()
    return docker.DockerClient(base_url=base_url, version=version, timeout=int(timeout_s), max_pool_size=64)


def _exec_probe(container: Container, command: CommandInfo) -> Probe:
    shell = command.shell is None or command.shell
    if shell:
        argv = ["/bin/sh", "-c", command.value or ""]
    else:
        argv = list(command.arguments) or [command.value or ""]
        if command.value and argv[0] != command.value:
            argv = [command.value, *argv[1:]]
    env = {v.name: v.value or "" for v in command.environment.variables} if command.environment else None

    def probe(timeout_s: float) -> ProbeResult:
        # The low-level calls, not exec_run: exec_run without attached output returns before the
        # command ends (exit code None), and we need the real exit code.
        api = container.client.api
        try:
            exec_id = api.exec_create(container.id, argv, environment=env, stdout=True, stderr=True)["Id"]
            output = api.exec_start(exec_id)  # attached: returns when the command's output ends
            deadline = time.monotonic() + min(timeout_s, 5.0)
            info = api.exec_inspect(exec_id)
            while info.get("Running") and time.monotonic() < deadline:
                time.sleep(0.02)
                info = api.exec_inspect(exec_id)
        except docker.errors.DockerException as exc:
            return ProbeResult(False, f"docker exec failed: {exc}")
        code = info.get("ExitCode")
        if code == 0:
            return ProbeResult(True, "command exited with status 0")
        tail = output.decode("utf-8", "replace").strip()[-200:] if isinstance(output, bytes) else ""
        detail = f"command health check exited with status {code}" + (f": {tail}" if tail else "")
        return ProbeResult(False, detail)

    return probe


def _api_error(exc: docker.errors.APIError) -> str:
    explanation = getattr(exc, "explanation", None)
    return str(explanation or exc)


def _remove(container: Container) -> None:
    try:
        container.remove(force=True)
    except docker.errors.NotFound:
        pass
    except docker.errors.APIError as exc:
        if "already in progress" not in str(exc):
            log.warning("cannot remove container %s: %s", container.name, exc)
