"""Builders and a status recorder shared by the containerizer integration tests."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

from framework.localcluster.containerizers.base import LaunchRequest
from framework.model.proto import (
    AgentID,
    AllocationInfo,
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    DurationInfo,
    HealthCheck,
    KillPolicy,
    Labels,
    Parameter,
    PortMapping,
    Range,
    Ranges,
    Resource,
    Scalar,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
    Volume,
)


class StatusRecorder:
    """A ``StatusSink`` that remembers every update and lets a test wait for one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self.statuses: list[TaskStatus] = []

    def __call__(self, status: TaskStatus) -> None:
        with self._cond:
            self.statuses.append(status)
            self._cond.notify_all()

    def states(self, task_id: str | None = None) -> list[TaskState]:
        with self._cond:
            return [s.state for s in self.statuses if task_id is None or s.task_id.value == task_id]

    def wait_for(self, predicate: Any, timeout_s: float = 30.0, what: str = "status") -> TaskStatus:
        with self._cond:
            found: list[TaskStatus] = []

            def check() -> bool:
                found.extend(s for s in self.statuses if predicate(s))
                return bool(found)

            if not self._cond.wait_for(check, timeout_s):
                raise AssertionError(f"no {what} within {timeout_s}s; got {self.summary()}")
            return found[0]

    def wait_state(self, state: TaskState, task_id: str | None = None, timeout_s: float = 30.0) -> TaskStatus:
        return self.wait_for(
            lambda s: s.state == state and (task_id is None or s.task_id.value == task_id),
            timeout_s,
            f"{state.value} for {task_id or 'any task'}",
        )

    def wait_terminal(self, task_id: str | None = None, timeout_s: float = 30.0) -> TaskStatus:
        return self.wait_for(
            lambda s: s.state.is_terminal and (task_id is None or s.task_id.value == task_id),
            timeout_s,
            f"terminal update for {task_id or 'any task'}",
        )

    def terminal_count(self, task_id: str) -> int:
        with self._cond:
            return sum(1 for s in self.statuses if s.task_id.value == task_id and s.state.is_terminal)

    def summary(self) -> list[tuple[str, str, str | None, bool | None, str | None]]:
        return [(s.task_id.value, s.state.value, s.reason, s.healthy, s.message) for s in self.statuses]


def wait_for_file(path: Path, timeout_s: float = 30.0) -> None:
    """Wait until a task signals readiness by creating ``path`` (so signals do not race its traps)."""
    deadline = time.monotonic() + timeout_s
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear within {timeout_s}s")
        time.sleep(0.05)


def resources(
    cpus: float = 0.1, mem: float = 64, ports: tuple[int, ...] = (), role: str = "web"
) -> tuple[Resource, ...]:
    alloc = AllocationInfo(role=role)
    out = [
        Resource(name="cpus", type="SCALAR", scalar=Scalar(value=cpus), role="*", allocation_info=alloc),
        Resource(name="mem", type="SCALAR", scalar=Scalar(value=mem), role="*", allocation_info=alloc),
    ]
    if ports:
        out.append(
            Resource(
                name="ports",
                type="RANGES",
                role="*",
                allocation_info=alloc,
                ranges=Ranges(range=tuple(Range(begin=p, end=p) for p in ports)),
            )
        )
    return tuple(out)


def docker_task(
    task_id: str,
    image: str,
    command: str | None = None,
    *,
    shell: bool | None = None,
    arguments: tuple[str, ...] = (),
    network: str | None = None,
    port_mappings: tuple[PortMapping, ...] = (),
    ports: tuple[int, ...] = (),
    parameters: dict[str, str] | list[tuple[str, str]] | None = None,
    volumes: tuple[Volume, ...] = (),
    privileged: bool | None = None,
    health_check: HealthCheck | None = None,
    kill_grace_s: float | None = None,
    labels: dict[str, str] | None = None,
    user: str | None = None,
    mem: float = 64,
    limits: dict[str, Any] | None = None,
    agent_id: str = "agent-1",
) -> TaskInfo:
    params = list(parameters.items()) if isinstance(parameters, dict) else list(parameters or [])
    return TaskInfo(
        name=task_id,
        task_id=TaskID(value=task_id),
        agent_id=AgentID(value=agent_id),
        resources=resources(ports=ports, mem=mem),
        command=CommandInfo(value=command, shell=shell, arguments=arguments, user=user),
        container=ContainerInfo(
            type="DOCKER",
            volumes=volumes,
            docker=DockerInfo(
                image=image,
                network=network,  # type: ignore[arg-type]
                port_mappings=port_mappings,
                privileged=privileged,
                parameters=tuple(Parameter(key=k, value=v) for k, v in params),
            ),
        ),
        health_check=health_check,
        kill_policy=None
        if kill_grace_s is None
        else KillPolicy(grace_period=DurationInfo.from_seconds(kill_grace_s)),
        labels=None if labels is None else Labels.of(labels),
        limits=limits,
    )


def command_task(
    task_id: str,
    command: str | None,
    *,
    shell: bool | None = None,
    arguments: tuple[str, ...] = (),
    health_check: HealthCheck | None = None,
    kill_grace_s: float | None = None,
    user: str | None = None,
    container: ContainerInfo | None = None,
    env: dict[str, str] | None = None,
) -> TaskInfo:
    from framework.model.proto import Environment

    return TaskInfo(
        name=task_id,
        task_id=TaskID(value=task_id),
        agent_id=AgentID(value="agent-1"),
        resources=resources(),
        command=CommandInfo(
            value=command,
            shell=shell,
            arguments=arguments,
            user=user,
            environment=None if env is None else Environment.of(env),
        ),
        container=container,
        health_check=health_check,
        kill_policy=None
        if kill_grace_s is None
        else KillPolicy(grace_period=DurationInfo.from_seconds(kill_grace_s)),
    )


def request_for(task: TaskInfo, cluster_id: str, sandbox: Path, **extra: Any) -> LaunchRequest:
    sandbox.mkdir(parents=True, exist_ok=True)
    return LaunchRequest(
        cluster_id=cluster_id,
        framework_id="fw-1",
        agent_id=task.agent_id.value,
        agent_hostname="localhost",
        task=task,
        sandbox=sandbox,
        **extra,
    )
