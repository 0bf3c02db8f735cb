"""Tasks that only pretend to run: for protocol tests and for scale runs with thousands of agents.

Nothing is started. A launched task reports TASK_STARTING at once and TASK_RUNNING after
``start_delay_s`` (plus a healthy TASK_RUNNING when it has a health check), then stays running until
it is killed (TASK_KILLED). A task can ask to end by itself through its command environment or its
labels:

* ``SIMULATED_EXIT_AFTER=<seconds>`` - exit that long after TASK_RUNNING;
* ``SIMULATED_EXIT_CODE=<n>`` - with that code (0, the default, is TASK_FINISHED, else TASK_FAILED);
* ``SIMULATED_LAUNCH_FAIL=<message>`` - fail the launch (TASK_FAILED, REASON_CONTAINER_LAUNCH_FAILED).

Docker settings are checked as Mesos's Docker containerizer would check them before ``docker run``
(port mappings need BRIDGE or USER networking and host ports inside the task's ``ports``), so a
framework tested against simulated agents sees the same launch failures it would see with Docker.

All simulated containerizers of a cluster share one timer thread (``SimulatedRuntime``): a scale run
with 5,000 agents and 10,000 tasks costs one thread, not thousands.
"""

from __future__ import annotations

import base64
import heapq
import itertools
import logging
import os
import random
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from framework.localcluster.containerizers.base import LaunchRequest, StatusSink
from framework.localcluster.resources import Resources
from framework.model.proto import ExecutorID, TaskInfo, TaskState, TaskStatus

__all__ = ["SimulatedContainerizer", "SimulatedRuntime"]

log = logging.getLogger(__name__)

ENV_EXIT_AFTER = "SIMULATED_EXIT_AFTER"
ENV_EXIT_CODE = "SIMULATED_EXIT_CODE"
ENV_LAUNCH_FAIL = "SIMULATED_LAUNCH_FAIL"


@dataclass(eq=False)
class _Timer:
    when: float
    fn: Callable[[], None]
    cancelled: bool = False

    def cancel(self) -> None:
        self.cancelled = True


class SimulatedRuntime:
    """One daemon-free timer thread running callbacks in time order; ``close`` joins it."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._heap: list[tuple[float, int, _Timer]] = []
        self._seq = itertools.count()
        self._cond = threading.Condition()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name="simulated-containerizer", daemon=True)
        self._thread.start()

    def call_later(self, delay_s: float, fn: Callable[[], None]) -> _Timer:
        timer = _Timer(self._clock() + max(0.0, delay_s), fn)
        with self._cond:
            heapq.heappush(self._heap, (timer.when, next(self._seq), timer))
            if self._heap[0][2] is timer:
                self._cond.notify()
        return timer

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._heap.clear()
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._closed:
                    if not self._heap:
                        self._cond.wait()
                        continue
                    wait = self._heap[0][0] - self._clock()
                    if wait <= 0:
                        break
                    self._cond.wait(wait)
                if self._closed:
                    return
                _, _, timer = heapq.heappop(self._heap)
            if timer.cancelled:
                continue
            try:
                timer.fn()
            except Exception:  # a callback bug must not stop every simulated task
                log.exception("simulated containerizer callback failed")


@dataclass
class _SimTask:
    request: LaunchRequest
    report: StatusSink
    running: bool = False
    terminal: bool = False
    timers: list[_Timer] = field(default_factory=list)


_uuid_rng = random.Random(os.urandom(32))  # noqa: S311 - update ids need uniqueness, not secrecy
_uuid_lock = threading.Lock()


def _status(
    request: LaunchRequest,
    state: TaskState,
    *,
    reason: str | None = None,
    message: str | None = None,
    healthy: bool | None = None,
) -> TaskStatus:
    """What ``make_status`` builds, with the uuid from a seeded PRNG instead of ``uuid4``: one
    ``getrandom`` syscall per update is a large share of a scale run on some kernels, and these ids
    only need to be unique (version-4 UUID bytes, as Mesos checks)."""
    with _uuid_lock:
        bits = _uuid_rng.getrandbits(128)
    task = request.task
    return TaskStatus(
        task_id=task.task_id,
        state=state,
        message=message,
        source="SOURCE_EXECUTOR",
        reason=reason,
        agent_id=task.agent_id,
        executor_id=task.executor.executor_id
        if task.executor is not None
        else ExecutorID(task.task_id.value),
        timestamp=time.time(),
        uuid=base64.b64encode(uuid.UUID(int=bits, version=4).bytes).decode("ascii"),
        healthy=healthy,
    )


def _options(task: TaskInfo) -> dict[str, str]:
    """SIMULATED_* settings from labels, then the command (or executor command) environment."""
    options: dict[str, str] = {}
    if task.labels is not None:
        options.update({k: v for k, v in task.labels.as_dict().items() if k.startswith("SIMULATED_")})
    commands = [task.command, task.executor.command if task.executor is not None else None]
    for command in commands:
        if command is not None and command.environment is not None:
            env = command.environment.as_dict()
            options.update({k: v for k, v in env.items() if k.startswith("SIMULATED_")})
    return options


def docker_launch_problem(task: TaskInfo) -> str | None:
    """What Mesos's Docker containerizer would refuse before running the container, if anything."""
    container = task.container
    if container is None or container.type != "DOCKER" or container.docker is None:
        return None
    docker = container.docker
    if docker.port_mappings and (docker.network or "HOST") not in ("BRIDGE", "USER"):
        return "Port mappings are only supported for bridge and user-defined networks"
    try:
        ports = Resources.parse(task.resources)
    except ValueError as exc:
        return str(exc)
    for mapping in docker.port_mappings:
        if not ports.includes_port(mapping.host_port):
            return f"Port [{mapping.host_port}] not included in resources"
    command = task.command
    if command is not None and command.shell is not False and not command.value:
        return "Shell specified but no command value provided"
    return None


class SimulatedContainerizer:
    """The ``Containerizer`` protocol with no processes behind it (see the module docstring)."""

    name = "simulated"
    needs_sandbox = False
    """Nothing runs, so the agent need not create sandbox directories."""

    def __init__(
        self,
        cluster_id: str = "",
        *,
        runtime: SimulatedRuntime | None = None,
        start_delay_s: float = 0.5,
        kill_delay_s: float = 0.0,
    ) -> None:
        self.cluster_id = cluster_id
        self._own_runtime = runtime is None
        self._runtime = runtime or SimulatedRuntime()
        self._start_delay_s = start_delay_s
        self._kill_delay_s = kill_delay_s
        self._lock = threading.Lock()
        self._tasks: dict[str, _SimTask] = {}

    # --- Containerizer protocol ------------------------------------------------------------------

    def launch(self, request: LaunchRequest, report: StatusSink) -> None:
        task = request.task
        options = _options(task)
        sim = _SimTask(request, report)
        with self._lock:
            self._tasks[task.task_id.value] = sim
        problem = docker_launch_problem(task) or options.get(ENV_LAUNCH_FAIL)
        if problem:
            self._finish(sim, TaskState.TASK_FAILED, reason="REASON_CONTAINER_LAUNCH_FAILED", message=problem)
            return
        self._send(sim, TaskState.TASK_STARTING)
        sim.timers.append(self._runtime.call_later(self._start_delay_s, lambda: self._run(sim, options)))

    def kill(self, task_id: str, grace_period_s: float) -> None:
        with self._lock:
            sim = self._tasks.get(task_id)
        if sim is None or sim.terminal:
            return
        if not sim.running:
            self._finish(
                sim,
                TaskState.TASK_KILLED,
                reason="REASON_TASK_KILLED_DURING_LAUNCH",
                message="Task killed before it started",
            )
            return
        delay = min(self._kill_delay_s, max(0.0, grace_period_s))
        sim.timers.append(
            self._runtime.call_later(
                delay,
                lambda: self._finish(sim, TaskState.TASK_KILLED, message="Command terminated by a kill"),
            )
        )

    def acknowledged(self, task_id: str, status_uuid: str) -> None:
        """Nothing to relay: there is no executor behind a simulated task."""

    def cleanup_orphans(self) -> int:
        """A simulated task dies with its process: there is never anything left over."""
        return 0

    def shutdown(self) -> None:
        with self._lock:
            tasks = list(self._tasks.values())
            self._tasks.clear()
        for sim in tasks:
            sim.terminal = True
            for timer in sim.timers:
                timer.cancel()
        if self._own_runtime:
            self._runtime.close()

    # --- internals ------------------------------------------------------------------------------

    def _run(self, sim: _SimTask, options: dict[str, str]) -> None:
        if sim.terminal:
            return
        sim.running = True
        self._send(sim, TaskState.TASK_RUNNING)
        if sim.request.task.health_check is not None:
            self._send(
                sim, TaskState.TASK_RUNNING, healthy=True, reason="REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"
            )
        exit_after = options.get(ENV_EXIT_AFTER)
        if exit_after is None:
            return
        try:
            delay = float(exit_after)
            code = int(options.get(ENV_EXIT_CODE, "0"))
        except ValueError:
            self._finish(
                sim, TaskState.TASK_FAILED, message=f"invalid {ENV_EXIT_AFTER}/{ENV_EXIT_CODE} setting"
            )
            return
        state = TaskState.TASK_FINISHED if code == 0 else TaskState.TASK_FAILED
        sim.timers.append(
            self._runtime.call_later(
                delay, lambda: self._finish(sim, state, message=f"Command exited with status {code}")
            )
        )

    def _send(
        self,
        sim: _SimTask,
        state: TaskState,
        *,
        reason: str | None = None,
        message: str | None = None,
        healthy: bool | None = None,
    ) -> None:
        # Reporting under the lock keeps a kill's terminal update from overtaking a RUNNING.
        with self._lock:
            if sim.terminal:
                return
            sim.report(_status(sim.request, state, reason=reason, message=message, healthy=healthy))

    def _finish(
        self, sim: _SimTask, state: TaskState, *, reason: str | None = None, message: str | None = None
    ) -> None:
        with self._lock:
            if sim.terminal:
                return
            sim.terminal = True
            if self._tasks.get(sim.request.task.task_id.value) is sim:
                del self._tasks[sim.request.task.task_id.value]
            for timer in sim.timers:
                timer.cancel()
            sim.report(_status(sim.request, state, reason=reason, message=message))
