"""The Steward executor: Mesos executor callbacks that run each task's container through Docker.

One :class:`StewardExecutor` per executor process; Steward gives every task its own executor ID, so
normally one task. The callbacks run on the executor driver's dispatcher thread and return at once:
each task has a *task thread* (launch, then wait for the container's exit, then the terminal update)
and, once killed, a *drain thread* (the kind's hooks, see :mod:`executors.hooks`).

Updates for a task, always in this order and always ending in exactly one terminal update:

* TASK_STARTING when the container is about to be created, TASK_RUNNING once it runs;
  health changes as TASK_RUNNING with ``healthy`` (:mod:`executors.health`);
* exit 0 -> TASK_FINISHED; non-zero -> TASK_FAILED ``REASON_COMMAND_EXECUTOR_FAILED`` with the exit
  status and the tail of its output; OOM-killed -> TASK_FAILED ``REASON_CONTAINER_LIMITATION_MEMORY``;
  gone without a status -> TASK_FAILED ``REASON_CONTAINER_LAUNCH_FAILED``... see :meth:`_outcome`;
* an invalid description -> TASK_ERROR ``REASON_TASK_INVALID``; Docker refusing to create or start it
  -> TASK_FAILED ``REASON_CONTAINER_LAUNCH_FAILED``;
* KILL -> TASK_KILLING (when the framework has ``TASK_KILLING_STATE``), the drain, then TASK_KILLED
  naming what the drain did and how the container ended (``REASON_TASK_KILLED_DURING_LAUNCH`` if it
  never ran).

The container is removed as soon as its exit is known (after its log tail is saved in the sandbox as
``container.stdout``/``container.stderr``), and every container of this executor at the latest when it
exits.

Ending. The executor exits by itself once every task it was given has ended and the agent has
acknowledged the terminal updates (as Mesos's command executor does), or on SHUTDOWN (kill every task
within the shutdown grace, then exit). Losing the agent is the driver's business (it resubscribes
with checkpointing; without, it calls :meth:`StewardExecutor.shutdown`): containers keep running
while the executor waits for a restarted agent.

Leftovers (see :mod:`executors.runner` for the owner labels): at start, containers labelled with this
executor's ID from an earlier incarnation are adopted when their task is launched again, removed
otherwise (at once when stopped, after ``adopt_window_s`` when running); containers whose owner
executor is provably dead (crashed, ``kill -9``) are removed at start and at every sweep
(``sweep_interval_s``), whoever made them.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Protocol

from executors.health import HealthChecker, Probe, ProbeResult, http_probe, tcp_probe, validate_health_check
from executors.hooks import drain_plan, run_steps
from executors.runner import (
    LABEL_EXECUTOR,
    LABEL_FRAMEWORK,
    LABEL_TASK,
    ContainerBackend,
    ContainerInfo,
    LaunchError,
    Owner,
    TaskIdentity,
    container_kwargs,
    container_name_for,
    owner_state,
)
from executors.spec import LaunchSpec, SpecError, decode_launch_spec
from executors.usage import DEFAULT_INTERVAL_S, UsageSampler
from framework.mesos.errors import MesosError
from framework.mesos.threads import ThreadGroup
from framework.model.proto import (
    AgentInfo,
    ContainerID,
    ExecutorInfo,
    FrameworkInfo,
    HealthCheck,
    KillPolicy,
    TaskGroupInfo,
    TaskInfo,
    TaskState,
    TaskStatus,
)

__all__ = ["DriverLike", "ExecutorSettings", "StewardExecutor"]

log = logging.getLogger(__name__)

DEFAULT_KILL_GRACE_S: Final = 3.0
"""Mesos's default grace for a task without a kill policy."""
SHUTDOWN_MARGIN_S: Final = 2.0
"""Kept back from the shutdown grace for removing containers and sending the last updates."""
LOG_TAIL_LINES: Final = 2000
MESSAGE_TAIL_LINES: Final = 10
REASON_HEALTH: Final = "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"


class DriverLike(Protocol):
    """What the executor uses of ``framework.mesos.executor_driver.ExecutorDriver``."""

    def send_status_update(
        self,
        task_id: str,
        state: TaskState | str,
        *,
        message: str | None = None,
        reason: str | None = None,
        healthy: bool | None = None,
        data: bytes | None = None,
        labels: Any = None,
    ) -> TaskStatus: ...

    def send_message(self, data: bytes) -> None: ...

    def stop(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ExecutorSettings:
    framework_id: str
    executor_id: str
    sandbox_host: str | None = None
    """The sandbox as the Docker daemon sees it (``MESOS_DIRECTORY``): mounted into the container."""
    sandbox_local: str | None = None
    """The sandbox as this process sees it (``MESOS_SANDBOX``): where container logs are written."""
    shutdown_grace_s: float = 5.0
    usage_interval_s: float | None = None
    """Overrides every task's ``usage_interval_s`` (``STEWARD_USAGE_INTERVAL``)."""
    sweep_interval_s: float = 60.0
    adopt_window_s: float = 30.0
    exit_linger_s: float = 30.0
    """Longest wait, after the last task ended, for the agent to acknowledge its terminal update."""
    pull_images: bool = False
    """Pull an image only when ``force_pull_image`` asks for it (missing ones are pulled anyway)."""


@dataclass
class _Task:
    info: TaskInfo
    spec: LaunchSpec | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    container_id: str | None = None
    container_name: str = ""
    ip_address: str | None = None
    network: str = "host"
    started: bool = False
    kill_requested: bool = False
    kill_grace_s: float = DEFAULT_KILL_GRACE_S
    kill_at: float | None = None
    escalate_at: float | None = None
    drain_thread: threading.Thread | None = None
    drain_notes: list[str] = field(default_factory=list)
    health: HealthChecker | None = None
    killed_by_health: bool = False
    terminal_state: TaskState | None = None
    terminal_uuid: str | None = None
    acknowledged: bool = False
    exited: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    """Set once the terminal update was sent (or could not be)."""

    @property
    def task_id(self) -> str:
        return self.info.task_id.value


class StewardExecutor:
    """The executor callbacks (see the module docstring). ``backend`` None: Docker was unreachable;
    every launch then fails with ``backend_error`` as its message."""

    def __init__(
        self,
        backend: ContainerBackend | None,
        settings: ExecutorSettings,
        *,
        owner: Owner | None = None,
        backend_error: str = "Docker is not reachable",
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._backend = backend
        self._backend_error = backend_error
        self._settings = settings
        self._owner = owner or Owner.current()
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.RLock()
        self._tasks: dict[str, _Task] = {}
        self._threads = ThreadGroup("executor")
        self._driver: DriverLike | None = None
        self._killing_state = False
        self._agent_id = ""
        self._adoptable: dict[str, ContainerInfo] = {}
        self._adopt_until: float | None = None
        self._sampler: UsageSampler | None = None
        self._stopping = threading.Event()
        self._sweeper: threading.Thread | None = None
        self._exit_timer: threading.Timer | None = None
        self.shutting_down = False

    # --- lifecycle (called by __main__) ---------------------------------------------------------

    def attach(self, driver: DriverLike) -> None:
        """The driver updates go through (before it starts: updates may be sent from any thread)."""
        self._driver = driver

    def prepare(self) -> None:
        """Before subscribing: collect this executor ID's containers from an earlier incarnation
        (running ones may be adopted), remove stopped ones and every orphan of a dead executor."""
        backend = self._backend
        if backend is None:
            return
        try:
            found = backend.list_managed({})
        except Exception as exc:
            log.warning("cannot list containers to adopt or clean up: %s", exc)
            return
        for info in found:
            labels = info.labels
            mine = (
                labels.get(LABEL_EXECUTOR) == self._settings.executor_id
                and labels.get(LABEL_FRAMEWORK) == self._settings.framework_id
            )
            if mine and info.running and owner_state(labels, self._owner) != "alive":
                task_id = labels.get(LABEL_TASK, "")
                log.info("container %s of task %s from an earlier incarnation: adoptable", info.name, task_id)
                self._adoptable[task_id] = info
            elif mine or owner_state(labels, self._owner) == "dead":
                why = "a stopped container of this executor" if mine else "an orphan of a dead executor"
                self._remove_quietly(info, why)
        self._adopt_until = self._clock() + self._settings.adopt_window_s

    def close(self) -> None:
        """After the driver stopped: stop the helpers and remove every container of this executor."""
        self._stopping.set()
        with self._lock:
            tasks = list(self._tasks.values())
            timer, self._exit_timer = self._exit_timer, None
        if timer is not None:
            timer.cancel()
        if self._sampler is not None:
            self._sampler.stop()
        for task in tasks:
            if task.health is not None:
                task.health.stop()
        backend = self._backend
        if backend is not None:
            for task in tasks:
                if task.container_id is not None and not task.done.is_set():
                    with contextlib.suppress(Exception):
                        backend.remove(task.container_id)
            for info in list(self._adoptable.values()):
                self._remove_quietly(info, "never claimed by a launch")
            self._adoptable.clear()
            try:
                leftovers = backend.list_managed(
                    {LABEL_EXECUTOR: self._settings.executor_id, LABEL_FRAMEWORK: self._settings.framework_id}
                )
            except Exception as exc:
                log.warning("cannot list this executor's containers at exit: %s", exc)
                leftovers = []
            for info in leftovers:
                if owner_state(info.labels, self._owner) != "alive":
                    self._remove_quietly(info, "the executor is exiting")
        self._threads.join(10.0)
        if self._sweeper is not None and self._sweeper is not threading.current_thread():
            self._sweeper.join(5.0)

    def terminate(self, driver: DriverLike) -> None:
        """SIGTERM to the executor: as SHUTDOWN, then stop the driver."""
        self.shutdown(driver)
        driver.stop()

    # --- callbacks ----------------------------------------------------------------------------------

    def subscribed(
        self,
        driver: Any,
        executor_info: ExecutorInfo,
        framework_info: FrameworkInfo,
        agent_info: AgentInfo,
        container_id: ContainerID | None,
    ) -> None:
        self._driver = driver
        self._killing_state = any(c.type == "TASK_KILLING_STATE" for c in framework_info.capabilities)
        self._agent_id = agent_info.id.value if agent_info.id is not None else ""
        log.info(
            "subscribed to agent %s (%s); TASK_KILLING %s",
            agent_info.hostname,
            self._agent_id or "?",
            "on" if self._killing_state else "off",
        )
        if self._sweeper is None and self._backend is not None:
            self._sweeper = threading.Thread(target=self._sweep_loop, name="orphan-sweeper", daemon=True)
            self._sweeper.start()

    def launch(self, driver: Any, task: TaskInfo) -> None:
        self._driver = driver
        task_id = task.task_id.value
        problem: tuple[TaskState, str, str] | None = None
        spec: LaunchSpec | None = None
        if self.shutting_down:
            problem = (TaskState.TASK_FAILED, "REASON_EXECUTOR_TERMINATED", "the executor is shutting down")
        else:
            try:
                spec = decode_launch_spec(task)
                check = task.health_check
                invalid = validate_health_check(check) if check is not None else None
                if invalid is not None:
                    raise SpecError(invalid)
            except SpecError as exc:
                problem = (TaskState.TASK_ERROR, "REASON_TASK_INVALID", str(exc))
        entry = _Task(info=task, spec=spec if problem is None else None)
        entry.kill_grace_s = _grace(task.kill_policy, DEFAULT_KILL_GRACE_S)
        with self._lock:
            if task_id in self._tasks:
                log.info("task %s is already known (re-sent after a reconnect); ignored", task_id)
                return
            self._tasks[task_id] = entry
            self._cancel_exit_timer()
        if problem is not None:
            self._terminal(entry, *problem)
            return
        self._threads.spawn(lambda: self._run_task(entry), f"task-{task_id}")

    def launch_group(self, driver: Any, task_group: TaskGroupInfo) -> None:
        for task in task_group.tasks:
            self.launch(driver, task)

    def kill(self, driver: Any, task_id: str, kill_policy: KillPolicy | None) -> None:
        self._driver = driver
        with self._lock:
            task = self._tasks.get(task_id)
        if task is None:
            log.warning("KILL for unknown task %s: nothing to kill", task_id)
            return
        grace = _grace(kill_policy, task.kill_grace_s)
        self._request_kill(task, grace, why="KILL")

    def acknowledged(self, driver: Any, task_id: str, uuid: str) -> None:
        with self._lock:
            task = self._tasks.get(task_id)
            if (
                task is None
                or task.terminal_uuid is None
                or _uuid_bytes(task.terminal_uuid) != _uuid_bytes(uuid)
            ):
                return
            task.acknowledged = True
            finished = self._all_done_and_acknowledged()
        if finished and not self.shutting_down:
            log.info("every task has ended and its terminal update was acknowledged: exiting")
            self._stop_driver()

    def message(self, driver: Any, data: bytes) -> None:
        log.info("message from the scheduler (%d bytes) ignored", len(data))

    def shutdown(self, driver: Any) -> None:
        """Kill every task within the shutdown grace and wait for their terminal updates."""
        self.shutting_down = True
        started = self._clock()
        budget = max(0.0, self._settings.shutdown_grace_s - SHUTDOWN_MARGIN_S)
        with self._lock:
            tasks = [t for t in self._tasks.values() if not t.done.is_set()]
        log.info("shutting down: killing %d task(s) within %.1f s", len(tasks), budget)
        for task in tasks:
            self._request_kill(task, min(task.kill_grace_s, budget), why="SHUTDOWN")
        for task in tasks:
            remaining = started + budget + SHUTDOWN_MARGIN_S / 2 - self._clock()
            if not task.done.wait(max(0.0, remaining)):
                log.warning("task %s did not end within the shutdown grace", task.task_id)

    def error(self, driver: Any, message: str) -> None:
        log.error("executor driver error: %s", message)

    def disconnected(self, driver: Any, reason: str) -> None:
        log.warning("disconnected from the agent (%s); containers keep running", reason)

    # --- a task's life -------------------------------------------------------------------------------

    def _run_task(self, task: _Task) -> None:
        try:
            launched = self._launch(task)
        except LaunchError as exc:
            self._fail_launch(task, exc.state, exc.reason, exc.message)
            return
        except Exception as exc:  # the engine's errors that are not LaunchError
            log.exception("launching task %s failed", task.task_id)
            self._fail_launch(task, "TASK_FAILED", "REASON_CONTAINER_LAUNCH_FAILED", f"launch failed: {exc}")
            return
        if launched:
            self._watch(task)

    def _fail_launch(self, task: _Task, state: str, reason: str, message: str) -> None:
        container_id = task.container_id
        if container_id is not None and self._backend is not None:
            with contextlib.suppress(Exception):
                self._backend.remove(container_id)
        with task.lock:
            killed = task.kill_requested
        if killed and state == "TASK_FAILED":
            self._terminal(task, TaskState.TASK_KILLED, "REASON_TASK_KILLED_DURING_LAUNCH", message)
        else:
            self._terminal(task, TaskState(state), reason, message)

    def _launch(self, task: _Task) -> bool:
        """Create and start the container (or adopt one); False if the task ended during the launch."""
        backend = self._backend
        if backend is None:
            raise LaunchError(self._backend_error)
        spec = task.spec
        assert spec is not None
        with self._lock:
            adopted = self._adoptable.pop(task.task_id, None)
        if adopted is not None:
            info = backend.inspect(adopted.id)
            if info is not None and info.running:
                log.info("task %s: adopting container %s", task.task_id, info.name)
                with task.lock:
                    task.container_id, task.container_name = info.id, info.name
                    task.ip_address = info.ip_address
                    task.network = _network_of(spec)
                    task.started = True
                self._after_start(task)
                return True
            if info is not None:
                self._remove_quietly(info, "stopped before it could be adopted")
        name = container_name_for(task.task_id)
        ids = TaskIdentity(
            framework_id=self._settings.framework_id,
            executor_id=self._settings.executor_id,
            agent_id=self._agent_id,
            task_id=task.task_id,
        )
        kwargs = container_kwargs(
            spec, task.info, ids, name=name, sandbox=self._settings.sandbox_host, owner=self._owner
        )
        docker_info = spec.container.docker
        assert docker_info is not None
        backend.ensure_image(
            docker_info.image, pull=bool(docker_info.force_pull_image) or self._settings.pull_images
        )
        with task.lock:  # so that a KILL's TASK_KILLING cannot come before this TASK_STARTING
            if task.kill_requested:
                raise LaunchError("killed before the container was created")
            self._send(task, TaskState.TASK_STARTING, message=f"creating container {name}")
        container_id = backend.create(kwargs)
        with task.lock:
            task.container_id, task.container_name = container_id, name
            task.network = str(kwargs.get("network_mode", "host"))
        try:
            backend.start(container_id)
        except LaunchError:
            with task.lock:
                task.container_id = None
            backend.remove(container_id)
            raise
        info = backend.inspect(container_id)
        with task.lock:
            task.started = True
            task.ip_address = info.ip_address if info is not None else None
        self._after_start(task)
        return True

    def _after_start(self, task: _Task) -> None:
        """RUNNING, health checks and usage reports; or straight to the drain if a kill came first."""
        with task.lock:  # RUNNING before any TASK_KILLING, or not at all
            killed = task.kill_requested
            if not killed:
                self._send(
                    task, TaskState.TASK_RUNNING, message=f"container {task.container_name} is running"
                )
        if killed:
            self._start_drain(task)
            return
        self._ensure_sampler(task)
        check = task.info.health_check
        if check is not None:
            self._start_health(task, check)

    def _watch(self, task: _Task) -> None:
        backend = self._backend
        assert backend is not None and task.container_id is not None
        container_id = task.container_id
        exit_code = backend.wait(container_id)
        task.exited.set()
        with task.lock:
            checker, task.health = task.health, None
            drain = task.drain_thread
        if checker is not None:
            checker.stop()
        if drain is not None and drain is not threading.current_thread():
            drain.join(30.0)  # it ends once it sees the exit; its notes go into the update
        info = None
        with contextlib.suppress(Exception):
            info = backend.inspect(container_id)
        tail = self._save_logs(task, container_id)
        try:
            backend.remove(container_id)
        except Exception as exc:
            log.warning("cannot remove container %s: %s", task.container_name, exc)
        state, reason, message = self._outcome(task, exit_code, info, tail)
        self._terminal(task, state, reason, message)

    def _outcome(
        self, task: _Task, exit_code: int | None, info: ContainerInfo | None, tail: str
    ) -> tuple[TaskState, str | None, str]:
        with task.lock:
            killed, notes, by_health = task.kill_requested, list(task.drain_notes), task.killed_by_health
        status = "an unknown status" if exit_code is None else f"status {exit_code}"
        if killed:
            what = "killed after failing its health checks" if by_health else "killed"
            drained = f" (drain: {'; '.join(notes)})" if notes else ""
            return TaskState.TASK_KILLED, None, f"{what}{drained}; the container exited with {status}"
        if info is not None and info.oom_killed:
            return (
                TaskState.TASK_FAILED,
                "REASON_CONTAINER_LIMITATION_MEMORY",
                f"Memory limit exceeded: the container was OOM-killed ({status})",
            )
        if exit_code is None:
            return TaskState.TASK_FAILED, "REASON_CONTAINER_LAUNCH_FAILED", "the container vanished"
        if exit_code == 0:
            return TaskState.TASK_FINISHED, None, "the container exited with status 0"
        message = f"the container exited with status {exit_code}"
        if tail:
            message += f"; last output lines:\n{tail}"
        return TaskState.TASK_FAILED, "REASON_COMMAND_EXECUTOR_FAILED", message

    def _save_logs(self, task: _Task, container_id: str) -> str:
        """Append the container's log tail to the sandbox; return its last lines (stderr first)."""
        backend = self._backend
        assert backend is not None
        try:
            stdout, stderr = backend.logs_tail(container_id, LOG_TAIL_LINES)
        except Exception:
            return ""
        sandbox = self._settings.sandbox_local
        if sandbox is not None:
            for name, data in (("container.stdout", stdout), ("container.stderr", stderr)):
                if data:
                    with contextlib.suppress(OSError), (Path(sandbox) / name).open("ab") as out:
                        out.write(data)
        for data in (stderr, stdout):
            if data.strip():
                lines = data.decode("utf-8", "replace").splitlines()[-MESSAGE_TAIL_LINES:]
                return "\n".join(lines)
        return ""

    # --- kills -------------------------------------------------------------------------------------

    def _request_kill(self, task: _Task, grace_s: float, *, why: str) -> None:
        now = self._clock()
        with task.lock:
            if task.done.is_set():
                return
            first = not task.kill_requested
            task.kill_requested = True
            if not first:
                # A repeated KILL may only shorten the escalation, never extend it (as Mesos's executors).
                if task.kill_at is not None and now + grace_s < task.kill_at:
                    plan = drain_plan(_kind(task), grace_s)
                    task.kill_at = now + plan.kill_at_s
                    task.escalate_at = min(task.escalate_at or task.kill_at, now + plan.escalate_at_s)
                    log.info("task %s: kill deadline shortened to %.1f s (%s)", task.task_id, grace_s, why)
                return
            task.kill_grace_s = grace_s
            started = task.started
        log.info("task %s: %s with %.1f s grace", task.task_id, why, grace_s)
        if self._killing_state:
            self._send(task, TaskState.TASK_KILLING, message=f"{why}: draining within {grace_s:g} s")
        if started:
            self._start_drain(task)
        # Not started yet: the task thread sees kill_requested and ends the launch (or drains after it).

    def _start_drain(self, task: _Task) -> None:
        with task.lock:
            if task.drain_thread is not None or task.container_id is None:
                return
            thread = self._threads.make(lambda: self._drain(task), f"drain-{task.task_id}")
            task.drain_thread = thread
        thread.start()

    def _drain(self, task: _Task) -> None:
        try:
            self._drain_steps(task)
        except Exception:
            log.exception("draining task %s failed", task.task_id)
            if task.container_id is not None and self._backend is not None:
                with contextlib.suppress(Exception):
                    self._backend.signal(task.container_id, "SIGKILL")

    def _drain_steps(self, task: _Task) -> None:
        backend = self._backend
        assert backend is not None and task.container_id is not None
        container_id = task.container_id
        if task.health is not None:
            task.health.stop()
        start = self._clock()
        plan = drain_plan(_kind(task), task.kill_grace_s, stop_signal=_stop_signal(task))
        with task.lock:
            task.kill_at = start + plan.kill_at_s
            task.escalate_at = start + plan.escalate_at_s

        def until(which: str) -> float:
            with task.lock:
                value = task.escalate_at if which == "escalate" else task.kill_at
            return (value or start) - self._clock()

        notes = run_steps(plan.graceful, backend, container_id, time_left=lambda: until("escalate"))
        self._add_notes(task, notes)
        log.info("task %s: %s drain: %s", task.task_id, plan.kind, "; ".join(notes) or "nothing to do")
        if not self._wait_exit(task, lambda: until("escalate")) and plan.escalation:
            notes = run_steps(plan.escalation, backend, container_id, time_left=lambda: until("kill"))
            self._add_notes(task, [f"at the deadline: {n}" for n in notes])
            log.info("task %s: escalated: %s", task.task_id, "; ".join(notes))
        if not self._wait_exit(task, lambda: until("kill")):
            self._add_notes(task, ["SIGKILL at the end of the grace period"])
            log.warning("task %s: still running at the end of its grace period: SIGKILL", task.task_id)
            with contextlib.suppress(Exception):
                backend.signal(container_id, "SIGKILL")

    def _wait_exit(self, task: _Task, remaining: Callable[[], float]) -> bool:
        """Wait for the container's exit while ``remaining()`` is positive (re-read: it may shrink)."""
        while True:
            left = remaining()
            if left <= 0:
                return task.exited.is_set()
            if task.exited.wait(min(left, 0.25)):
                return True

    @staticmethod
    def _add_notes(task: _Task, notes: list[str]) -> None:
        with task.lock:
            task.drain_notes.extend(notes)

    # --- health ------------------------------------------------------------------------------------

    def _start_health(self, task: _Task, check: HealthCheck) -> None:
        probe = self._probe_for(task, check)

        def report(healthy: bool, detail: str, kill_task: bool) -> None:
            with task.lock:
                if task.kill_requested:
                    return
            self._send(task, TaskState.TASK_RUNNING, reason=REASON_HEALTH, healthy=healthy, message=detail)
            if kill_task:
                with task.lock:
                    task.killed_by_health = True
                self._request_kill(task, task.kill_grace_s, why="health checks failed")

        checker = HealthChecker(check, probe, report, name=f"health-{task.task_id}", clock=self._clock)
        with task.lock:
            if task.kill_requested:
                return
            task.health = checker
        checker.start()

    def _probe_for(self, task: _Task, check: HealthCheck) -> Probe:
        if check.type == "COMMAND":
            assert check.command is not None
            command = check.command
            if command.shell is None or command.shell:
                argv = ["/bin/sh", "-c", command.value or ""]
            else:
                argv = list(command.arguments) or [command.value or ""]
            backend = self._backend
            assert backend is not None and task.container_id is not None
            container_id = task.container_id

            def probe(timeout_s: float) -> ProbeResult:
                result = backend.exec(container_id, argv, timeout_s or 20.0)
                if result.exit_code == 0:
                    return ProbeResult(True, "command exited with status 0")
                if result.exit_code is None:
                    return ProbeResult(False, f"command did not finish within {timeout_s:g} s")
                tail = result.output.strip()[-200:]
                return ProbeResult(
                    False, f"command exited with status {result.exit_code}: {tail}".rstrip(": ")
                )

            return probe
        host = "127.0.0.1" if task.network == "host" else (task.ip_address or "127.0.0.1")
        if check.type == "HTTP" and check.http is not None:
            return http_probe(host, check.http.port, check.http.path or "/", check.http.scheme or "http")
        assert check.tcp is not None
        return tcp_probe(host, check.tcp.port)

    # --- usage and sweeping ------------------------------------------------------------------------

    def _ensure_sampler(self, task: _Task) -> None:
        backend = self._backend
        if backend is None:
            return
        with self._lock:
            if self._sampler is not None or self._stopping.is_set():
                return
            interval = self._settings.usage_interval_s
            if interval is None and task.spec is not None:
                interval = task.spec.usage_interval_s
            self._sampler = UsageSampler(
                self._usage_targets,
                backend.stats,
                self._send_message,
                interval_s=interval or DEFAULT_INTERVAL_S,
                wall_clock=self._wall_clock,
            )
            sampler = self._sampler
        log.info("reporting usage every %.1f s", sampler.interval_s)
        sampler.start()

    def _usage_targets(self) -> list[tuple[str, str]]:
        with self._lock:
            tasks = list(self._tasks.values())
        return [
            (t.task_id, t.container_id)
            for t in tasks
            if t.container_id is not None and t.started and not t.exited.is_set()
        ]

    def _send_message(self, data: bytes) -> None:
        driver = self._driver
        if driver is None:
            raise RuntimeError("no driver yet")
        driver.send_message(data)

    def _sweep_loop(self) -> None:
        while not self._stopping.wait(min(self._settings.sweep_interval_s, self._settings.adopt_window_s)):
            try:
                self.sweep()
            except Exception:
                log.exception("sweeping orphaned containers failed")

    def sweep(self) -> int:
        """Remove orphans of dead executors, and adoptable containers nobody claimed in time."""
        backend = self._backend
        if backend is None:
            return 0
        removed = 0
        with self._lock:
            expired = self._adopt_until is not None and self._clock() >= self._adopt_until
            unclaimed = list(self._adoptable.values()) if expired else []
            if expired:
                self._adoptable.clear()
        for info in unclaimed:
            removed += self._remove_quietly(info, "no launch claimed it")
        for info in backend.list_managed({}):
            mine = info.labels.get(LABEL_EXECUTOR) == self._settings.executor_id
            if not mine and owner_state(info.labels, self._owner) == "dead":
                removed += self._remove_quietly(info, "an orphan of a dead executor")
        return removed

    def _remove_quietly(self, info: ContainerInfo, why: str) -> int:
        backend = self._backend
        if backend is None:
            return 0
        log.warning("removing container %s (task %s): %s", info.name, info.labels.get(LABEL_TASK, "?"), why)
        try:
            backend.remove(info.id)
        except Exception as exc:
            log.warning("cannot remove container %s: %s", info.name, exc)
            return 0
        return 1

    # --- updates -------------------------------------------------------------------------------

    def _send(
        self,
        task: _Task,
        state: TaskState,
        *,
        reason: str | None = None,
        message: str | None = None,
        healthy: bool | None = None,
    ) -> TaskStatus | None:
        driver = self._driver
        if driver is None:
            log.error("no driver: %s for task %s not sent", state.value, task.task_id)
            return None
        try:
            return driver.send_status_update(
                task.task_id, state, reason=reason, message=message, healthy=healthy
            )
        except MesosError as exc:
            log.error("%s for task %s not sent: %s", state.value, task.task_id, exc)
            return None

    def _terminal(self, task: _Task, state: TaskState, reason: str | None, message: str) -> None:
        with task.lock:
            if task.terminal_state is not None:
                return
            task.terminal_state = state
        log.info("task %s: %s%s: %s", task.task_id, state.value, f" ({reason})" if reason else "", message)
        status = self._send(task, state, reason=reason, message=message)
        with self._lock:
            task.terminal_uuid = status.uuid if status is not None else None
            if status is None:
                task.acknowledged = True  # nothing will ever be acknowledged; do not wait for it
            task.done.set()
            if self._all_done():
                self._arm_exit_timer()
        if self._sampler is not None and self._all_done():
            self._sampler.stop(timeout_s=0)

    def _all_done(self) -> bool:
        with self._lock:
            return bool(self._tasks) and all(t.done.is_set() for t in self._tasks.values())

    def _all_done_and_acknowledged(self) -> bool:
        with self._lock:
            return self._all_done() and all(t.acknowledged for t in self._tasks.values())

    def _arm_exit_timer(self) -> None:
        """Exit after ``exit_linger_s`` even if an acknowledgement never comes (called under the lock)."""
        if self._exit_timer is not None or self.shutting_down:
            return
        timer = threading.Timer(self._settings.exit_linger_s, self._exit_if_idle)
        timer.daemon = True
        self._exit_timer = timer
        timer.start()

    def _cancel_exit_timer(self) -> None:
        timer, self._exit_timer = self._exit_timer, None
        if timer is not None:
            timer.cancel()

    def _exit_if_idle(self) -> None:
        with self._lock:
            self._exit_timer = None
            idle = self._all_done()
        if idle:
            log.info("every task has ended (some acknowledgements did not come): exiting")
            self._stop_driver()

    def _stop_driver(self) -> None:
        driver = self._driver
        if driver is not None:
            driver.stop()

    # --- threads -----------------------------------------------------------------------------------

    def task_states(self) -> dict[str, str]:
        """Task id -> where it is (for tests and logs)."""
        with self._lock:
            tasks = list(self._tasks.values())
        return {
            t.task_id: t.terminal_state.value
            if t.terminal_state
            else ("running" if t.started else "launching")
            for t in tasks
        }


def _uuid_bytes(text: str) -> bytes:
    """The agent may re-encode a uuid's base64: compare the bytes."""
    try:
        return base64.b64decode(text)
    except (binascii.Error, ValueError):
        return text.encode()


def _grace(policy: KillPolicy | None, default: float) -> float:
    if policy is not None and policy.grace_period is not None:
        return max(0.0, policy.grace_period.seconds)
    return default


def _kind(task: _Task) -> str:
    return task.spec.kind if task.spec is not None else "generic"


def _stop_signal(task: _Task) -> str | None:
    if task.spec is None or task.spec.container.docker is None:
        return None
    for parameter in task.spec.container.docker.parameters:
        if parameter.key.lstrip("-") == "stop-signal":
            return parameter.value
    return None


def _network_of(spec: LaunchSpec) -> str:
    docker = spec.container.docker
    for parameter in docker.parameters if docker is not None else ():
        if parameter.key.lstrip("-") in ("net", "network"):
            return parameter.value
    mode = (docker.network if docker is not None else None) or "HOST"
    return mode.lower()
