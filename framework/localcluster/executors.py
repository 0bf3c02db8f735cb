"""The agent's side of the Mesos v1 executor API: runs custom executors (``TaskInfo.executor``).

``ExecutorHost`` implements the ``Containerizer`` protocol for tasks that name an executor. For each
(framework, executor id) it starts one local process from ``ExecutorInfo.command`` (its ``uris``
fetched into the executor sandbox first) with the environment a Mesos agent gives executors
(``MESOS_AGENT_ENDPOINT``, ``MESOS_FRAMEWORK_ID``, ``MESOS_EXECUTOR_ID``, ``MESOS_CHECKPOINT`` ...,
protocol brief 5.1), and serves ``POST /api/v1/executor`` on its own loopback HTTP server:

* SUBSCRIBE answers 200 and a RecordIO stream (chunked): SUBSCRIBED first, then a LAUNCH for every
  task queued for the executor, then KILL / ACKNOWLEDGED / MESSAGE / SHUTDOWN events as they come,
  and a HEARTBEAT whenever the stream was idle for ``heartbeat_interval_s``;
* UPDATE is validated as ``validateExecutorCall`` does (16-byte uuid, SOURCE_EXECUTOR, never
  TASK_STAGING, matching executor id), answered 202 and forwarded to the task's ``StatusSink`` with
  the executor's uuid, so ``acknowledged(task_id, uuid)`` can relay the acknowledgement back;
* MESSAGE goes to ``on_message``; HEARTBEAT is accepted;
* errors as the agent answers them: a call before SUBSCRIBE 403, a malformed body 400, an unknown
  framework or executor 400 ``Framework cannot be found`` / ``Executor cannot be found``, a wrong
  Content-Type 415, a non-POST 405.

A broken stream is not fatal: the executor may SUBSCRIBE again with its unacknowledged updates and
tasks. Updates the host has not seen are forwarded, already acknowledged ones are acknowledged again,
tasks the executor does not know are launched again, and events queued while it was away (KILL,
ACKNOWLEDGED, SHUTDOWN) are delivered.

When the executor process ends, every task of it without a terminal update gets TASK_FAILED with
REASON_EXECUTOR_TERMINATED (source SOURCE_AGENT), as ``Slave::sendExecutorTerminatedStatusUpdate``
does, and ``on_executor_exit(framework_id, executor_id, agent_id, status)`` is called with the wait
status (``exit code << 8``, or the signal number), which the master turns into a FAILURE event.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import http.server
import logging
import os
import queue
import signal
import socketserver
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec

from framework.localcluster.containerizers.base import LaunchRequest, StatusSink, make_status
from framework.localcluster.containerizers.process import (
    REASON_KILLED_DURING_LAUNCH,
    LaunchFailed,
    PidRegistry,
    UserIds,
    command_argv,
    command_environment,
    describe_exit,
    kill_group_and_wait,
    register_instance,
    resolve_user,
    retire_instance,
)
from framework.localcluster.fetcher import FetchError, fetch_uris
from framework.mesos import recordio
from framework.mesos.errors import RemoteProtocolError
from framework.mesos.threads import ThreadGroup
from framework.mesos.wire import (
    Acknowledged,
    ExecutorCall,
    ExecutorEvent,
    ExecutorEventMessage,
    ExecutorKill,
    ExecutorSubscribed,
    Launch,
    decode_executor_call,
    encode,
)
from framework.model.proto import (
    AgentID,
    AgentInfo,
    ContainerID,
    DurationInfo,
    ExecutorID,
    ExecutorInfo,
    FrameworkID,
    FrameworkInfo,
    KillPolicy,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
)

__all__ = ["DEFAULT_SHUTDOWN_GRACE_S", "ExecutorHost", "format_duration"]

log = logging.getLogger(__name__)

DEFAULT_SHUTDOWN_GRACE_S = 5.0
"""The agent's ``--executor_shutdown_grace_period`` default."""
REASON_EXECUTOR_TERMINATED = "REASON_EXECUTOR_TERMINATED"
REASON_REGISTRATION_TIMEOUT = "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
_ACKED_MEMORY = 10_000
"""Acknowledged uuids remembered per executor, to re-acknowledge them after a reconnect."""


def format_duration(seconds: float) -> str:
    """Seconds as a stout duration string (``5secs``, ``0.5secs``), as the agent writes them."""
    return f"{seconds:g}secs"


MessageCallback = Callable[[str, str, str, str], None]
"""``on_message(framework_id, executor_id, agent_id, data_base64)``."""
ExitCallback = Callable[[str, str, str, int], None]
"""``on_executor_exit(framework_id, executor_id, agent_id, wait_status)``."""


# --- bookkeeping --------------------------------------------------------------------------------


@dataclass
class _Task:
    info: TaskInfo
    request: LaunchRequest
    sink: StatusSink
    known: bool = False
    """The executor has shown it knows the task (an update, or listed at re-SUBSCRIBE)."""
    launched: bool = False
    terminal: bool = False
    terminal_uuid: str | None = None
    """uuid of the task's terminal update; once that is acknowledged the task is forgotten."""
    forwarded: set[str] = field(default_factory=set)


class _Stream:
    """One SUBSCRIBE response: records queued here are written by the request's handler thread."""

    def __init__(self) -> None:
        self.queue: queue.Queue[bytes | None] = queue.Queue()
        self.closed = threading.Event()

    def send(self, event: ExecutorEvent) -> None:
        if not self.closed.is_set():
            self.queue.put(recordio.encode(encode(event)))

    def close(self) -> None:
        if not self.closed.is_set():
            self.closed.set()
            self.queue.put(None)


@dataclass
class _Executor:
    framework_id: str
    executor_id: str
    agent_id: str
    agent_hostname: str
    info: ExecutorInfo
    framework_info: FrameworkInfo
    checkpoint: bool
    container_id: str
    sandbox: Path
    extra_env: tuple[tuple[str, str], ...]
    default_shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S
    """The host's grace when ExecutorInfo.shutdown_grace_period is unset (the agent flag)."""
    state: str = "launching"  # launching -> registering -> running -> (terminating) -> terminated
    proc: subprocess.Popen[bytes] | None = None
    subscribed_once: bool = False
    stream: _Stream | None = None
    tasks: dict[str, _Task] = field(default_factory=dict)
    pending: list[ExecutorEvent] = field(default_factory=list)
    """Events for a disconnected executor (KILL, ACKNOWLEDGED, SHUTDOWN), sent at the next SUBSCRIBE."""
    acked: dict[str, str] = field(default_factory=dict)
    """uuid -> task id of acknowledged updates (bounded)."""
    registration_timed_out: bool = False
    shutdown_requested: bool = False
    kill_timer: threading.Timer | None = None
    registration_timer: threading.Timer | None = None
    gone: threading.Event = field(default_factory=threading.Event)
    """Set once the executor's process is gone (or never started) and its tasks are settled."""

    @property
    def key(self) -> tuple[str, str]:
        return (self.framework_id, self.executor_id)

    @property
    def shutdown_grace_s(self) -> float:
        if self.info.shutdown_grace_period is not None:
            return max(0.0, self.info.shutdown_grace_period.seconds)
        return self.default_shutdown_grace_s

    def send(self, event: ExecutorEvent, *, queue_if_disconnected: bool = True) -> bool:
        if self.stream is not None and not self.stream.closed.is_set():
            self.stream.send(event)
            return True
        if queue_if_disconnected:
            self.pending.append(event)
        return False


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: str = ""


_Outbox = list[tuple[StatusSink, TaskStatus]]


# --- the host -------------------------------------------------------------------------------------


class ExecutorHost:
    """Runs custom executors as local processes and speaks the v1 executor API with them.

    ``on_message`` and ``on_executor_exit`` are attributes the agent may set (called from the host's
    threads, never under its lock).
    """

    name = "executor"

    def __init__(
        self,
        cluster_id: str,
        *,
        work_dir: Path,
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_interval_s: float = 1800.0,
        registration_timeout_s: float = 60.0,
        default_shutdown_grace_s: float = DEFAULT_SHUTDOWN_GRACE_S,
        inherit_env: bool = True,
        frameworks_home: Path | None = None,
        recovery_timeout: str = "15mins",
        subscription_backoff_max: str = "2secs",
    ) -> None:
        self.cluster_id = cluster_id
        self.on_message: MessageCallback | None = None
        self.on_executor_exit: ExitCallback | None = None
        self._work_dir = Path(work_dir)
        self._host = host
        self._port = port
        self._heartbeat_interval_s = heartbeat_interval_s
        self._registration_timeout_s = registration_timeout_s
        self._default_shutdown_grace_s = default_shutdown_grace_s
        self._inherit_env = inherit_env
        self._frameworks_home = frameworks_home
        self._recovery_timeout = recovery_timeout
        self._subscription_backoff_max = subscription_backoff_max
        self._instance = register_instance()
        self._pids = PidRegistry(self._work_dir, cluster_id, "executor", self._instance)
        self._lock = threading.RLock()
        self._executors: dict[tuple[str, str], _Executor] = {}
        self._task_index: dict[str, tuple[str, str]] = {}
        self._threads = ThreadGroup("executor host")
        self._server: _ExecutorHTTPServer | None = None
        self._server_thread: threading.Thread | None = None
        self._closed = False

    # -- endpoint --

    @property
    def endpoint(self) -> str:
        """``ip:port`` of the executor API server (MESOS_AGENT_ENDPOINT); starts it on first use."""
        server = self._ensure_server()
        host, port = server.server_address[:2]
        return f"{host!s}:{port}"

    def _ensure_server(self) -> _ExecutorHTTPServer:
        with self._lock:
            if self._server is None:
                server = _ExecutorHTTPServer((self._host, self._port), _ExecutorRequestHandler, self)
                thread = threading.Thread(
                    target=server.serve_forever,
                    kwargs={"poll_interval": 0.2},
                    name="executor-api-server",
                    daemon=True,
                )
                self._server, self._server_thread = server, thread
                thread.start()
            return self._server

    # -- Containerizer protocol --

    def launch(self, request: LaunchRequest, report: StatusSink) -> None:
        task = request.task
        task_id = task.task_id.value
        outbox: _Outbox = []
        start: _Executor | None = None
        with self._lock:
            if self._closed:
                outbox.append(
                    (
                        report,
                        _agent_status(
                            request,
                            TaskState.TASK_FAILED,
                            "REASON_CONTAINER_LAUNCH_FAILED",
                            "the executor host is shut down",
                        ),
                    )
                )
            elif task.executor is None:
                outbox.append(
                    (
                        report,
                        _agent_status(
                            request, TaskState.TASK_ERROR, "REASON_TASK_INVALID", "task has no ExecutorInfo"
                        ),
                    )
                )
            elif task_id in self._task_index:
                outbox.append(
                    (
                        report,
                        _agent_status(
                            request,
                            TaskState.TASK_ERROR,
                            "REASON_TASK_INVALID",
                            f"task '{task_id}' is already known to this agent",
                        ),
                    )
                )
            else:
                key = (request.framework_id, task.executor.executor_id.value)
                executor = self._executors.get(key)
                if executor is not None and executor.state in ("terminating", "terminated"):
                    outbox.append(
                        (
                            report,
                            _agent_status(
                                request,
                                TaskState.TASK_FAILED,
                                "REASON_EXECUTOR_TERMINATED",
                                f"executor '{key[1]}' is shutting down",
                            ),
                        )
                    )
                else:
                    if executor is None:
                        executor = self._new_executor(request, task.executor)
                        self._executors[key] = executor
                        start = executor
                    entry = _Task(info=task, request=request, sink=report)
                    executor.tasks[task_id] = entry
                    self._task_index[task_id] = key
                    if executor.state == "running" and executor.stream is not None:
                        entry.launched = True
                        executor.send(ExecutorEvent(type="LAUNCH", launch=Launch(task=task)))
        _deliver(outbox)
        if start is not None:
            self._threads.spawn(lambda: self._start_executor(start), f"executor-start-{start.executor_id}")

    def kill(self, task_id: str, grace_period_s: float) -> None:
        outbox: _Outbox = []
        with self._lock:
            found = self._find_task(task_id)
            if found is None:
                return
            executor, entry = found
            if entry.terminal:
                return
            if not entry.launched:
                # Still queued for an executor that has not subscribed: answer at once.
                status = _agent_status(
                    entry.request,
                    TaskState.TASK_KILLED,
                    REASON_KILLED_DURING_LAUNCH,
                    "killed before the executor received the task",
                )
                entry.terminal, entry.terminal_uuid = True, status.uuid
                outbox.append((entry.sink, status))
                if not executor.subscribed_once and all(t.terminal for t in executor.tasks.values()):
                    self._begin_shutdown(executor)  # an executor started for nothing: stop it
            else:
                policy = KillPolicy(grace_period=DurationInfo.from_seconds(max(0.0, grace_period_s)))
                executor.send(
                    ExecutorEvent(type="KILL", kill=ExecutorKill(task_id=TaskID(task_id), kill_policy=policy))
                )
        _deliver(outbox)

    def acknowledged(self, task_id: str, status_uuid: str) -> None:
        with self._lock:
            found = self._find_task(task_id)
            if found is None:
                return
            executor, entry = found
            executor.acked[status_uuid] = task_id
            while len(executor.acked) > _ACKED_MEMORY:
                executor.acked.pop(next(iter(executor.acked)))
            if status_uuid in entry.forwarded:  # updates the agent made are not the executor's business
                ack = Acknowledged(task_id=TaskID(task_id), uuid=status_uuid)
                executor.send(ExecutorEvent(type="ACKNOWLEDGED", acknowledged=ack))
            if entry.terminal and entry.terminal_uuid == status_uuid:
                # The task's update stream is complete: forget it. An update the executor re-sends
                # after a reconnect is acknowledged again from ``executor.acked``.
                del executor.tasks[task_id]
                if self._task_index.get(task_id) == executor.key:
                    del self._task_index[task_id]

    def cleanup_orphans(self, *, all_local_clusters: bool = False) -> int:
        """Kill executor process groups left by an earlier, gone run of this cluster (or of any)."""
        return self._pids.kill_orphans(all_local_clusters=all_local_clusters)

    def shutdown(self) -> None:
        """SHUTDOWN every executor, SIGKILL those still alive after their grace, stop the server."""
        with self._lock:
            self._closed = True
            executors = list(self._executors.values())
            for executor in executors:
                self._begin_shutdown(executor)
        deadline = time.monotonic() + max([e.shutdown_grace_s for e in executors], default=0.0) + 30.0
        for executor in executors:
            executor.gone.wait(max(0.0, deadline - time.monotonic()))
        self._threads.join(60.0)
        with self._lock:
            server, self._server = self._server, None
            thread, self._server_thread = self._server_thread, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(10.0)
        retire_instance(self._instance)

    # -- scheduler-initiated extras --

    def send_message(self, framework_id: str, executor_id: str, data: str) -> bool:
        """Deliver a scheduler MESSAGE (base64 ``data``); False if the executor is not connected."""
        with self._lock:
            executor = self._executors.get((framework_id, executor_id))
            if executor is None:
                return False
            return executor.send(
                ExecutorEvent(type="MESSAGE", message=ExecutorEventMessage(data=data)),
                queue_if_disconnected=False,
            )

    def shutdown_executor(self, framework_id: str, executor_id: str) -> bool:
        """The scheduler's SHUTDOWN: SHUTDOWN event, then SIGKILL after the executor's grace period."""
        with self._lock:
            executor = self._executors.get((framework_id, executor_id))
            if executor is None:
                return False
            self._begin_shutdown(executor)
            return True

    def executor_ids(self, framework_id: str | None = None) -> list[tuple[str, str]]:
        """(framework id, executor id) of the executors currently known."""
        with self._lock:
            return [k for k in self._executors if framework_id is None or k[0] == framework_id]

    # -- executor lifecycle --

    def _new_executor(self, request: LaunchRequest, info: ExecutorInfo) -> _Executor:
        container_id = str(uuid.uuid4())
        sandbox = (
            self._work_dir
            / "frameworks"
            / _safe(request.framework_id)
            / "executors"
            / _safe(info.executor_id.value)
            / "runs"
            / container_id
        )
        framework_info = request.framework_info or FrameworkInfo(
            user="root", name="unknown", id=FrameworkID(request.framework_id)
        )
        if framework_info.id is None:
            framework_info = msgspec.structs.replace(framework_info, id=FrameworkID(request.framework_id))
        if info.framework_id is None:
            info = msgspec.structs.replace(info, framework_id=FrameworkID(request.framework_id))
        return _Executor(
            framework_id=request.framework_id,
            executor_id=info.executor_id.value,
            agent_id=request.agent_id,
            agent_hostname=request.agent_hostname,
            info=info,
            framework_info=framework_info,
            checkpoint=request.checkpoint,
            container_id=container_id,
            sandbox=sandbox,
            extra_env=request.extra_env,
            default_shutdown_grace_s=self._default_shutdown_grace_s,
        )

    def _start_executor(self, executor: _Executor) -> None:
        try:
            proc = self._spawn_process(executor)
        except LaunchFailed as failure:
            self._fail_executor_launch(executor, failure.message)
            return
        with self._lock:
            executor.proc = proc
            abort = executor.shutdown_requested
            if not abort:
                executor.state = "registering"
                timer = threading.Timer(self._registration_timeout_s, self._registration_timeout, (executor,))
                timer.daemon = True
                executor.registration_timer = timer
                timer.start()
        self._pids.add(proc.pid, f"{executor.framework_id}/{executor.executor_id}")
        if abort:
            _killpg(proc.pid, signal.SIGKILL)
        self._watch(executor, proc)

    def _spawn_process(self, executor: _Executor) -> subprocess.Popen[bytes]:
        info = executor.info
        if info.container is not None and info.container.type == "DOCKER":
            raise LaunchFailed(
                "custom executors in DOCKER containers are not supported by the local "
                "cluster; run the executor as a command (no ExecutorInfo.container)"
            )
        if info.container is not None and info.container.mesos:
            raise LaunchFailed(
                "custom executors with a container image are not supported by the local cluster"
            )
        command = info.command
        if command is None:
            raise LaunchFailed("ExecutorInfo has no command")
        argv, executable = command_argv(command)
        user: UserIds | None = resolve_user(command.user)
        sandbox = executor.sandbox
        sandbox.mkdir(parents=True, exist_ok=True)
        try:
            fetch_uris(command.uris, sandbox, frameworks_home=self._frameworks_home)
        except FetchError as exc:
            raise LaunchFailed(str(exc)) from exc
        env = dict(os.environ) if self._inherit_env else {}
        env.update(dict(executor.extra_env))
        env.update(self._executor_env(executor))
        env.update(command_environment(command))
        stdout = (sandbox / "stdout").open("ab")
        stderr = (sandbox / "stderr").open("ab")
        try:
            if user is not None:
                for path in (sandbox, sandbox / "stdout", sandbox / "stderr"):
                    os.chown(path, user.uid, user.gid)
            return subprocess.Popen(
                argv,
                executable=executable,
                cwd=sandbox,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=stdout,
                stderr=stderr,
                start_new_session=True,
                user=user.uid if user else None,
                group=user.gid if user else None,
                extra_groups=list(user.groups) if user else None,
            )
        except OSError as exc:
            raise LaunchFailed(f"failed to start executor '{argv[0]}': {exc}") from exc
        finally:
            stdout.close()
            stderr.close()

    def _executor_env(self, executor: _Executor) -> dict[str, str]:
        """What ``Slave::executorEnvironment`` sets (brief 5.1), plus MESOS_SANDBOX."""
        env = {
            "MESOS_AGENT_ENDPOINT": self.endpoint,
            "MESOS_FRAMEWORK_ID": executor.framework_id,
            "MESOS_EXECUTOR_ID": executor.executor_id,
            "MESOS_DIRECTORY": str(executor.sandbox),
            "MESOS_SANDBOX": str(executor.sandbox),
            "MESOS_CHECKPOINT": "1" if executor.checkpoint else "0",
            "MESOS_SLAVE_ID": executor.agent_id,
            "MESOS_AGENT_ID": executor.agent_id,
            "MESOS_HTTP_COMMAND_EXECUTOR": "0",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": format_duration(executor.shutdown_grace_s),
        }
        if executor.checkpoint:  # Mesos sets these only for checkpointing frameworks
            env["MESOS_RECOVERY_TIMEOUT"] = self._recovery_timeout
            env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] = self._subscription_backoff_max
        return env

    def _fail_executor_launch(self, executor: _Executor, message: str) -> None:
        outbox: _Outbox = []
        with self._lock:
            executor.state = "terminated"
            for entry in executor.tasks.values():
                if not entry.terminal:
                    entry.terminal = True
                    outbox.append(
                        (
                            entry.sink,
                            _agent_status(
                                entry.request,
                                TaskState.TASK_FAILED,
                                "REASON_CONTAINER_LAUNCH_FAILED",
                                message,
                            ),
                        )
                    )
            self._forget(executor)
        executor.gone.set()
        _deliver(outbox)

    def _registration_timeout(self, executor: _Executor) -> None:
        with self._lock:
            if executor.state != "registering" or executor.proc is None:
                return
            executor.registration_timed_out = True
            proc = executor.proc
        log.warning(
            "executor %s did not subscribe within %gs; killing it",
            executor.executor_id,
            self._registration_timeout_s,
        )
        _killpg(proc.pid, signal.SIGKILL)

    def _begin_shutdown(self, executor: _Executor) -> None:
        """SHUTDOWN event now (or at its next SUBSCRIBE), SIGKILL after the grace. Call under the lock."""
        if executor.state == "terminated" or executor.shutdown_requested:
            return
        executor.shutdown_requested = True
        if executor.proc is None:
            return  # still fetching: _start_executor kills it as soon as it exists
        executor.state = "terminating"
        executor.send(ExecutorEvent(type="SHUTDOWN"))
        pid = executor.proc.pid
        timer = threading.Timer(executor.shutdown_grace_s, _killpg, (pid, signal.SIGKILL))
        timer.daemon = True
        executor.kill_timer = timer
        timer.start()

    def _watch(self, executor: _Executor, proc: subprocess.Popen[bytes]) -> None:
        returncode = proc.wait()
        kill_group_and_wait(proc.pid)  # whatever the executor left in its group
        self._pids.remove(proc.pid)
        outbox: _Outbox = []
        with self._lock:
            executor.state = "terminated"
            for timer in (executor.kill_timer, executor.registration_timer):
                if timer is not None:
                    timer.cancel()
            if executor.stream is not None:
                executor.stream.close()
            if executor.registration_timed_out:
                reason = REASON_REGISTRATION_TIMEOUT
                message = f"Executor did not register within {self._registration_timeout_s:g}s"
            else:
                reason = REASON_EXECUTOR_TERMINATED
                message = f"Executor terminated: {describe_exit(returncode)}"
            for entry in executor.tasks.values():
                if not entry.terminal:
                    entry.terminal = True
                    outbox.append(
                        (entry.sink, _agent_status(entry.request, TaskState.TASK_FAILED, reason, message))
                    )
            self._forget(executor)
        _deliver(outbox)
        wait_status = -returncode if returncode < 0 else returncode << 8
        callback = self.on_executor_exit
        if callback is not None:
            try:
                callback(executor.framework_id, executor.executor_id, executor.agent_id, wait_status)
            except Exception:
                log.exception("on_executor_exit callback failed")
        executor.gone.set()

    def _forget(self, executor: _Executor) -> None:
        if self._executors.get(executor.key) is executor:
            del self._executors[executor.key]
        for task_id in executor.tasks:
            if self._task_index.get(task_id) == executor.key:
                del self._task_index[task_id]

    def _find_task(self, task_id: str) -> tuple[_Executor, _Task] | None:
        key = self._task_index.get(task_id)
        executor = self._executors.get(key) if key is not None else None
        if executor is None:
            return None
        entry = executor.tasks.get(task_id)
        return (executor, entry) if entry is not None else None

    # -- threads --

    # -- the executor API (called from the HTTP server's threads) --

    def handle_call(self, call: ExecutorCall) -> tuple[_Reply, _Stream | None]:
        """Apply one decoded call; answer the HTTP reply and, for SUBSCRIBE, the stream to serve."""
        outbox: _Outbox = []
        message_args: tuple[str, str, str, str] | None = None
        with self._lock:
            fid, eid = call.framework_id.value, call.executor_id.value
            executor = self._executors.get((fid, eid))
            if executor is None:
                if not any(k[0] == fid for k in self._executors):
                    return _Reply(400, "Framework cannot be found"), None
                return _Reply(400, "Executor cannot be found"), None
            if call.type == "SUBSCRIBE":
                if call.subscribe is None:
                    return _Reply(400, "Expecting 'subscribe' to be present"), None
                if executor.state in ("launching", "terminated"):
                    return _Reply(400, "Executor cannot be found"), None
                stream = self._subscribe(executor, call, outbox)
                reply: tuple[_Reply, _Stream | None] = (_Reply(200), stream)
            elif not executor.subscribed_once:
                return _Reply(403, "Executor is not subscribed"), None
            elif call.type == "UPDATE":
                if call.update is None:
                    return _Reply(400, "Expecting 'update' to be present"), None
                problem = self._accept_update(executor, call.update.status, outbox)
                if problem is not None:
                    return _Reply(400, problem), None
                reply = (_Reply(202), None)
            elif call.type == "MESSAGE":
                if call.message is None:
                    return _Reply(400, "Expecting 'message' to be present"), None
                message_args = (fid, eid, executor.agent_id, call.message.data)
                reply = (_Reply(202), None)
            elif call.type == "HEARTBEAT":
                reply = (_Reply(202), None)
            else:
                return _Reply(501, f"Received '{call.type}' call"), None
        _deliver(outbox)
        if message_args is not None and self.on_message is not None:
            try:
                self.on_message(*message_args)
            except Exception:
                log.exception("on_message callback failed")
        return reply

    def _subscribe(self, executor: _Executor, call: ExecutorCall, outbox: _Outbox) -> _Stream:
        assert call.subscribe is not None
        if executor.stream is not None:
            executor.stream.close()
        stream = _Stream()
        executor.stream = stream
        if executor.registration_timer is not None:
            executor.registration_timer.cancel()
            executor.registration_timer = None
        if executor.state == "registering":
            executor.state = "running"
        executor.subscribed_once = True
        stream.send(
            ExecutorEvent(
                type="SUBSCRIBED",
                subscribed=ExecutorSubscribed(
                    executor_info=executor.info,
                    framework_info=executor.framework_info,
                    agent_info=AgentInfo(hostname=executor.agent_hostname, id=AgentID(executor.agent_id)),
                    container_id=ContainerID(executor.container_id),
                ),
            )
        )
        for task in call.subscribe.unacknowledged_tasks:
            entry = executor.tasks.get(task.task_id.value)
            if entry is not None:
                entry.known = entry.launched = True
        for update in call.subscribe.unacknowledged_updates:
            status = update.status
            task_id = status.task_id.value
            if status.uuid is not None and status.uuid in executor.acked:
                ack = Acknowledged(task_id=TaskID(task_id), uuid=status.uuid)
                stream.send(ExecutorEvent(type="ACKNOWLEDGED", acknowledged=ack))
                continue
            problem = self._accept_update(executor, status, outbox)
            if problem is not None:
                log.warning(
                    "dropping an invalid unacknowledged update from executor %s: %s",
                    executor.executor_id,
                    problem,
                )
        for entry in executor.tasks.values():
            if not entry.terminal and not entry.known:
                entry.launched = True
                stream.send(ExecutorEvent(type="LAUNCH", launch=Launch(task=entry.info)))
        pending, executor.pending = executor.pending, []
        for event in pending:
            stream.send(event)
        if executor.shutdown_requested and not any(e.type == "SHUTDOWN" for e in pending):
            stream.send(ExecutorEvent(type="SHUTDOWN"))
        return stream

    def _accept_update(self, executor: _Executor, status: TaskStatus, outbox: _Outbox) -> str | None:
        """Validate an executor's update like ``validateExecutorCall``; queue it for the sink."""
        if status.executor_id is not None and status.executor_id.value != executor.executor_id:
            return (
                f"ExecutorID in Call: {executor.executor_id} does not match ExecutorID in TaskStatus: "
                f"{status.executor_id.value}"
            )
        if status.source != "SOURCE_EXECUTOR":
            return "Received Call from executor with invalid source, expecting 'SOURCE_EXECUTOR'"
        if status.state == TaskState.TASK_STAGING:
            return "Received TASK_STAGING from executor which is not allowed"
        if status.uuid is None:
            return "Expecting 'uuid' to be present"
        if not _valid_uuid(status.uuid):
            return f"Not a valid UUID: {status.uuid!r}"
        entry = executor.tasks.get(status.task_id.value)
        if entry is None:
            log.warning(
                "executor %s sent an update for unknown task %s; dropped",
                executor.executor_id,
                status.task_id.value,
            )
            return None
        entry.known = entry.launched = True
        if status.uuid in entry.forwarded:
            return None  # a duplicate (re-sent after a reconnect): already with the agent
        if entry.terminal:
            log.warning(
                "task %s already had a terminal update; dropping %s", status.task_id.value, status.state.value
            )
            return None
        entry.forwarded.add(status.uuid)
        if status.state.is_terminal:
            entry.terminal, entry.terminal_uuid = True, status.uuid
        stamped = msgspec.structs.replace(
            status,
            agent_id=status.agent_id or AgentID(executor.agent_id),
            executor_id=ExecutorID(executor.executor_id),
            timestamp=status.timestamp if status.timestamp is not None else time.time(),
        )
        outbox.append((entry.sink, stamped))
        return None

    def stream_ended(self, stream: _Stream) -> None:
        with self._lock:
            for executor in self._executors.values():
                if executor.stream is stream:
                    executor.stream = None
            stream.close()

    @property
    def heartbeat_interval_s(self) -> float:
        return self._heartbeat_interval_s


# --- helpers --------------------------------------------------------------------------------------


def _agent_status(request: LaunchRequest, state: TaskState, reason: str, message: str) -> TaskStatus:
    return make_status(request, state, reason=reason, message=message, source="SOURCE_AGENT")


def _deliver(outbox: _Outbox) -> None:
    for sink, status in outbox:
        try:
            sink(status)
        except Exception:
            log.exception("status sink failed for task %s", status.task_id.value)


def _valid_uuid(text: str) -> bool:
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(raw) != 16:
        return False
    return uuid.UUID(bytes=raw).variant == uuid.RFC_4122


def _killpg(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _safe(text: str) -> str:
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in text).strip(".") or "_"


# --- HTTP -----------------------------------------------------------------------------------------


class _ExecutorHTTPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    """Loopback HTTP server; request threads are joined on close (no thread outlives the host)."""

    daemon_threads = False
    block_on_close = True
    allow_reuse_address = True

    def __init__(
        self, address: tuple[str, int], handler: type[http.server.BaseHTTPRequestHandler], host: ExecutorHost
    ) -> None:
        self.executor_host = host
        super().__init__(address, handler)


class _ExecutorRequestHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "steward-localcluster"
    timeout = 30.0
    server: _ExecutorHTTPServer

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("executor api: " + format, *args)

    def _reply(self, status: int, body: str = "") -> None:
        data = body.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", "text/plain; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("Connection", "close")
        self.end_headers()
        if data:
            self.wfile.write(data)
        self.close_connection = True

    def do_GET(self) -> None:
        self._reply(405, "Expecting a 'POST' request")

    do_PUT = do_DELETE = do_GET

    def do_POST(self) -> None:
        self.close_connection = True
        if self.path.split("?", 1)[0].rstrip("/") != "/api/v1/executor":
            self._reply(404, "Not found")
            return
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        content_type = self.headers.get("Content-Type")
        if content_type is None:
            self._reply(400, "Expecting 'Content-Type' to be present")
            return
        if content_type != "application/json":
            self._reply(
                415,
                f"Expecting 'Content-Type' of application/json (got {content_type!r}); "
                "protobuf is not supported by the local cluster",
            )
            return
        accept = self.headers.get("Accept")
        if accept and not any(
            part.split(";")[0].strip() in ("application/json", "*/*", "application/*")
            for part in accept.split(",")
        ):
            self._reply(406, "Expecting 'Accept' to allow application/json")
            return
        try:
            call = decode_executor_call(body)
        except RemoteProtocolError as exc:
            self._reply(400, f"Failed to parse body into Call: {exc}")
            return
        host = self.server.executor_host
        reply, stream = host.handle_call(call)
        if stream is None:
            self._reply(reply.status, reply.body)
            return
        self._serve_stream(host, stream)

    def _serve_stream(self, host: ExecutorHost, stream: _Stream) -> None:
        try:
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.flush()
            interval = host.heartbeat_interval_s
            heartbeat = recordio.encode(encode(ExecutorEvent(type="HEARTBEAT")))
            while True:
                try:
                    record = stream.queue.get(timeout=interval)
                except queue.Empty:
                    record = heartbeat
                if record is None:
                    self.wfile.write(b"0\r\n\r\n")
                    self.wfile.flush()
                    return
                self.wfile.write(b"%x\r\n%s\r\n" % (len(record), record))
                self.wfile.flush()
        except OSError:
            log.debug("executor event stream broke", exc_info=True)
        finally:
            host.stream_ended(stream)
