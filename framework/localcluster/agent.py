"""One embedded agent: its tasks, their sandboxes, and the status update manager.

An ``Agent`` lives on the cluster runtime's thread (like the master); containerizers report from
their own threads through a sink that posts back onto that thread. What it does, as a Mesos agent:

* **launch**: creates the task's sandbox under the work directory and hands the task to its
  containerizer, or to the executor host for tasks with an ``ExecutorInfo``;
* **status update manager**: every update a containerizer reports (each carries a uuid) is queued
  per task and forwarded to the master in order; the next one leaves only after the scheduler has
  acknowledged the current one. The head of a queue is re-sent with exponential backoff (Mesos: 10 s
  doubling to 10 min) until it is acknowledged, and the whole set is re-sent at once when the agent
  (re-)registers with a master. The agent's latest known state of the task travels with every
  forward (``latest_state``) so the master can free resources before the scheduler catches up;
* **kill**: sends TASK_KILLING first when the framework has TASK_KILLING_STATE (as the built-in
  command and docker executors do), then asks the containerizer to stop the task;
* **re-registration**: reports every task it still knows (with the framework infos), which is how a
  failed-over master learns the cluster's state.

``MasterLink`` is the agent's only way out: the runtime delivers those messages to the master, or
drops them while the agent is partitioned, which is exactly how a network partition looks to it.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from framework.localcluster.containerizers.base import Containerizer, LaunchRequest, StatusSink, make_status
from framework.localcluster.master import AgentRecord, ReportedTask
from framework.localcluster.resources import Resources
from framework.model.proto import Attribute, ExecutorInfo, FrameworkInfo, TaskInfo, TaskState, TaskStatus

__all__ = ["Agent", "AgentContext", "MasterLink", "Timers"]

log = logging.getLogger(__name__)


class MasterLink(Protocol):
    """Messages from an agent to the master (delivered in order, or dropped while partitioned)."""

    def status_update(
        self, agent_id: str, framework_id: str, status: TaskStatus, latest: TaskState
    ) -> None: ...

    def executor_exited(self, agent_id: str, framework_id: str, executor_id: str, status: int) -> None: ...

    def executor_message(self, agent_id: str, framework_id: str, executor_id: str, data: str) -> None: ...


class Timers(Protocol):
    """The runtime's clock and timer service (callbacks run on the runtime thread)."""

    def now(self) -> float: ...

    def call_at(self, when: float, fn: Callable[[], None]) -> None: ...


@dataclass(frozen=True, slots=True)
class AgentContext:
    """What an executor host needs to know about the agent it serves (see ``executors.py``)."""

    agent_id: str
    cluster_id: str
    hostname: str
    work_dir: Path
    post: Callable[[Callable[[], None]], None]
    """Run a callable on the runtime thread (thread-safe)."""
    executor_message: Callable[[str, str, str], None]
    """(framework_id, executor_id, base64 data): an executor's MESSAGE for its scheduler."""
    executor_exited: Callable[[str, str, int], None]
    """(framework_id, executor_id, wait status): an executor process ended."""


@dataclass(slots=True)
class _Task:
    framework_id: str
    info: TaskInfo
    runner: Containerizer
    state: TaskState = TaskState.TASK_STAGING
    latest: TaskStatus | None = None
    executor_id: str | None = None
    custom_executor: bool = False
    group: tuple[str, ...] = ()
    """Task ids of the LAUNCH_GROUP this task belongs to (killing one kills the group)."""
    killing: bool = False


@dataclass(slots=True)
class _Stream:
    """The unacknowledged updates of one task, oldest first; the head is in flight."""

    pending: deque[TaskStatus] = field(default_factory=deque)
    interval: float = 0.0
    attempt: int = 0


class Agent:
    """See the module docstring. All methods run on the runtime thread."""

    def __init__(
        self,
        *,
        agent_id: str,
        cluster_id: str,
        hostname: str,
        resources: Resources,
        attributes: tuple[Attribute, ...],
        work_dir: Path,
        containerizer: Containerizer,
        link: MasterLink,
        timers: Timers,
        post: Callable[[Callable[[], None]], None],
        executor_host_factory: Callable[[AgentContext], Containerizer] | None = None,
        retry_initial_s: float = 10.0,
        retry_max_s: float = 600.0,
        port: int = 5051,
        index: int = 1,
        endpoint: str | None = None,
    ) -> None:
        self.id = agent_id
        self.cluster_id = cluster_id
        self.hostname = hostname
        self.resources = resources
        self.attributes = attributes
        self.work_dir = work_dir
        self.containerizer = containerizer
        self.port = port
        self.index = index
        self.endpoint = endpoint
        self._link = link
        self._timers = timers
        self._post = post
        self._executor_host_factory = executor_host_factory
        self._executor_host: Containerizer | None = None
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._frameworks: dict[str, FrameworkInfo] = {}
        self._tasks: dict[tuple[str, str], _Task] = {}
        self._streams: dict[tuple[str, str], _Stream] = {}
        self._dead_frameworks: set[str] = set()
        self._runs = 0
        self.registered = False
        self.stopped = False

    # --- identity -------------------------------------------------------------------------------

    @property
    def record(self) -> AgentRecord:
        return AgentRecord(
            agent_id=self.id,
            hostname=self.hostname,
            resources=self.resources,
            attributes=self.attributes,
            port=self.port,
            pid_path=f"slave({self.index})",
        )

    def reported_tasks(self) -> list[ReportedTask]:
        """Every task the agent still tracks, for a re-registration."""
        out = []
        for (fid, _tid), task in self._tasks.items():
            if fid in self._dead_frameworks:
                continue
            stream = self._streams.get((fid, task.info.task_id.value))
            pending = stream.pending[0] if stream is not None and stream.pending else None
            out.append(ReportedTask(fid, task.info, task.state, task.latest, pending))
        return out

    def framework_infos(self) -> list[FrameworkInfo]:
        return [info for fid, info in self._frameworks.items() if fid not in self._dead_frameworks]

    def task_count(self) -> int:
        return len(self._tasks)

    # --- from the master ------------------------------------------------------------------------

    def on_registered(self) -> None:
        """The master accepted our (re-)registration: resend every unacknowledged update now."""
        self.registered = True
        for key, stream in self._streams.items():
            if stream.pending:
                stream.interval = self._retry_initial_s
                self._forward(key, stream)

    def launch(
        self, framework_info: FrameworkInfo, tasks: tuple[TaskInfo, ...], group_executor: ExecutorInfo | None
    ) -> None:
        if self.stopped or framework_info.id is None:
            return
        fid = framework_info.id.value
        self._frameworks[fid] = framework_info
        self._dead_frameworks.discard(fid)
        group = tuple(t.task_id.value for t in tasks) if group_executor is not None else ()
        for info in tasks:
            tid = info.task_id.value
            custom = info.executor is not None
            runner = self._executor_host_for_launch() if custom else self.containerizer
            if runner is None:
                task = _Task(fid, info, self.containerizer)
                self._tasks[(fid, tid)] = task
                self._report(
                    fid,
                    make_status(
                        info,
                        TaskState.TASK_FAILED,
                        reason="REASON_EXECUTOR_REGISTRATION_TIMEOUT",
                        message="this local cluster has no executor host for custom executors",
                        source="SOURCE_AGENT",
                    ),
                )
                continue
            executor_id = (
                info.executor.executor_id.value
                if info.executor is not None
                else group_executor.executor_id.value
                if group_executor is not None
                else tid
            )
            task = _Task(fid, info, runner, executor_id=executor_id, custom_executor=custom, group=group)
            self._tasks[(fid, tid)] = task
            sandbox = self._sandbox(fid, executor_id, runner)
            request = LaunchRequest(
                cluster_id=self.cluster_id,
                framework_id=fid,
                agent_id=self.id,
                agent_hostname=self.hostname,
                task=info,
                sandbox=sandbox,
                checkpoint=bool(framework_info.checkpoint),
                extra_env=self._environment(framework_info, executor_id, sandbox),
                framework_info=framework_info,
            )
            sink = self._sink(fid)
            try:
                runner.launch(request, sink)
            except Exception as exc:  # the protocol says never raise; an agent must survive anyway
                log.exception("containerizer %s raised on launch of %s", runner.name, tid)
                self._report(
                    fid,
                    make_status(
                        info,
                        TaskState.TASK_FAILED,
                        reason="REASON_CONTAINER_LAUNCH_FAILED",
                        message=f"launch failed: {exc}",
                        source="SOURCE_AGENT",
                    ),
                )

    def kill(self, framework_id: str, task_id: str, grace_period_s: float) -> None:
        task = self._tasks.get((framework_id, task_id))
        if task is None or self.stopped:
            return
        targets = [task]
        if task.group:
            targets = [t for tid in task.group if (t := self._tasks.get((framework_id, tid))) is not None]
        for target in targets:
            self._kill_one(target, grace_period_s)

    def _kill_one(self, task: _Task, grace_period_s: float) -> None:
        if task.state.is_terminal:
            return
        info = self._frameworks.get(task.framework_id)
        started = task.state in (TaskState.TASK_STARTING, TaskState.TASK_RUNNING)
        if (
            not task.killing
            and not task.custom_executor
            and started
            and info is not None
            and info.has_capability("TASK_KILLING_STATE")
        ):
            # The built-in command/docker executors announce the kill; custom executors do their own.
            self._report(task.framework_id, make_status(task.info, TaskState.TASK_KILLING))
        task.killing = True
        task.runner.kill(task.info.task_id.value, grace_period_s)

    def acknowledge(self, framework_id: str, task_id: str, status_uuid: str) -> None:
        key = (framework_id, task_id)
        stream = self._streams.get(key)
        if stream is None or not stream.pending or stream.pending[0].uuid != status_uuid:
            log.debug(
                "agent %s: ignoring acknowledgement %s of %s (not in flight)", self.id, status_uuid, task_id
            )
            return
        acked = stream.pending.popleft()
        stream.attempt += 1
        task = self._tasks.get(key)
        if task is not None:
            try:
                task.runner.acknowledged(task_id, status_uuid)
            except Exception:
                log.exception("containerizer %s failed on acknowledged()", task.runner.name)
        if stream.pending:
            stream.interval = self._retry_initial_s
            self._forward(key, stream)
            return
        del self._streams[key]
        if acked.state.is_terminal:
            self._forget(key)

    def shutdown_executor(self, framework_id: str, executor_id: str) -> None:
        host = self._executor_host
        if host is not None and hasattr(host, "shutdown_executor"):
            host.shutdown_executor(framework_id, executor_id)
            return
        for (fid, _), task in list(self._tasks.items()):
            if fid == framework_id and task.executor_id == executor_id:
                self._kill_one(task, 0.0)

    def shutdown_framework(self, framework_id: str) -> None:
        """The framework was removed: kill its tasks and stop forwarding its updates."""
        self._dead_frameworks.add(framework_id)
        for key in [k for k in self._streams if k[0] == framework_id]:
            del self._streams[key]
        for (fid, _), task in list(self._tasks.items()):
            if fid != framework_id:
                continue
            if task.state.is_terminal:
                self._forget((fid, task.info.task_id.value))
            else:
                task.killing = True
                task.runner.kill(task.info.task_id.value, _grace(task.info))

    def framework_message(self, framework_id: str, executor_id: str, data: str) -> None:
        host = self._executor_host
        if host is not None and hasattr(host, "send_message"):
            host.send_message(framework_id, executor_id, data)
        else:
            log.info("agent %s: dropping message for executor %s (no executor host)", self.id, executor_id)

    def stop(self) -> list[Containerizer]:
        """Stop acting (the agent is gone or the cluster stops); return what must be shut down."""
        self.stopped = True
        self._streams.clear()
        runners: list[Containerizer] = [self.containerizer]
        if self._executor_host is not None:
            runners.append(self._executor_host)
        return runners

    # --- from containerizers (posted onto the runtime thread) -----------------------------------

    def _sink(self, framework_id: str) -> StatusSink:
        def sink(status: TaskStatus) -> None:
            self._post(lambda: self.on_status(framework_id, status))

        return sink

    def on_status(self, framework_id: str, status: TaskStatus) -> None:
        if self.stopped:
            return
        key = (framework_id, status.task_id.value)
        task = self._tasks.get(key)
        if task is None:
            return
        if task.state.is_terminal:
            log.warning(
                "agent %s: dropping %s for task %s after its terminal update",
                self.id,
                status.state.value,
                status.task_id.value,
            )
            return
        if status.state == TaskState.TASK_KILLING:
            info = self._frameworks.get(framework_id)
            if (
                task.state == TaskState.TASK_KILLING
                or info is None
                or not info.has_capability("TASK_KILLING_STATE")
            ):
                return
        self._report(framework_id, status)

    def _report(self, framework_id: str, status: TaskStatus) -> None:
        """Record an update (from a containerizer or the agent itself) and queue it for the master."""
        key = (framework_id, status.task_id.value)
        task = self._tasks.get(key)
        if task is not None:
            task.state = status.state
            task.latest = status
        if framework_id in self._dead_frameworks:
            if status.state.is_terminal:
                self._forget(key)
            return
        stream = self._streams.get(key)
        if stream is None:
            stream = self._streams[key] = _Stream(interval=self._retry_initial_s)
        stream.pending.append(status)
        if len(stream.pending) == 1:
            self._forward(key, stream)

    # --- status update manager ------------------------------------------------------------------

    def _forward(self, key: tuple[str, str], stream: _Stream) -> None:
        head = stream.pending[0]
        task = self._tasks.get(key)
        latest = task.state if task is not None else head.state
        self._link.status_update(self.id, key[0], head, latest)
        stream.attempt += 1
        attempt = stream.attempt
        when = self._timers.now() + stream.interval
        self._timers.call_at(when, lambda: self._retry(key, attempt))

    def _retry(self, key: tuple[str, str], attempt: int) -> None:
        stream = self._streams.get(key)
        if stream is None or not stream.pending or stream.attempt != attempt or self.stopped:
            return
        stream.interval = min(stream.interval * 2, self._retry_max_s)
        self._forward(key, stream)

    def _forget(self, key: tuple[str, str]) -> None:
        task = self._tasks.pop(key, None)
        if task is None or not task.custom_executor or task.executor_id is None:
            return
        # A custom executor whose last task is gone: tell the master unless the host reports exits.
        if any(t.executor_id == task.executor_id and f == key[0] for (f, _), t in self._tasks.items()):
            return
        # An executor host that reports real exits (``on_executor_exit``) makes this synthesis moot.
        if not hasattr(task.runner, "on_executor_exit"):
            self._link.executor_exited(self.id, key[0], task.executor_id, 0)

    # --- helpers --------------------------------------------------------------------------------

    def _executor_host_for_launch(self) -> Containerizer | None:
        if self._executor_host is None and self._executor_host_factory is not None:
            context = AgentContext(
                agent_id=self.id,
                cluster_id=self.cluster_id,
                hostname=self.hostname,
                work_dir=self.work_dir,
                post=self._post,
                executor_message=lambda fid, eid, data: self._post(
                    lambda: self._link.executor_message(self.id, fid, eid, data)
                ),
                executor_exited=lambda fid, eid, status: self._post(
                    lambda: self._link.executor_exited(self.id, fid, eid, status)
                ),
            )
            self._executor_host = self._executor_host_factory(context)
        return self._executor_host

    def _sandbox(self, framework_id: str, executor_id: str, runner: Containerizer) -> Path:
        """Mesos's layout: ``slaves/<agent>/frameworks/<fw>/executors/<executor>/runs/<n>``.

        A containerizer that never touches the sandbox (``needs_sandbox = False``, the simulated one)
        gets the path without the directories: with thousands of simulated tasks the mkdirs would
        be most of the agent's work.
        """
        self._runs += 1
        executor_dir = (
            self.work_dir / "slaves" / self.id / "frameworks" / framework_id / "executors" / executor_id
        )
        path = executor_dir / "runs" / str(self._runs)
        if getattr(runner, "needs_sandbox", True):
            path.mkdir(parents=True, exist_ok=True)
        return path

    def _environment(
        self, info: FrameworkInfo, executor_id: str, sandbox: Path
    ) -> tuple[tuple[str, str], ...]:
        env = [
            ("MESOS_FRAMEWORK_ID", info.id.value if info.id is not None else ""),
            ("MESOS_EXECUTOR_ID", executor_id),
            ("MESOS_SLAVE_ID", self.id),
            ("MESOS_AGENT_ID", self.id),
            ("MESOS_DIRECTORY", str(sandbox)),
            ("MESOS_CHECKPOINT", "1" if info.checkpoint else "0"),
        ]
        if self.endpoint is not None:
            env.append(("MESOS_AGENT_ENDPOINT", self.endpoint))
        return tuple(env)


def _grace(task: TaskInfo) -> float:
    if task.kill_policy is not None and task.kill_policy.grace_period is not None:
        return max(0.0, task.kill_policy.grace_period.seconds)
    return 3.0
