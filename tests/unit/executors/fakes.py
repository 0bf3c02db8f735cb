"""In-memory stand-ins for the executor's two seams: the Docker backend and the executor driver."""

from __future__ import annotations

import base64
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from executors.runner import ContainerInfo, ExecResult, LaunchError
from framework.model.proto import TaskID, TaskState, TaskStatus


@dataclass
class FakeContainer:
    id: str
    kwargs: dict[str, Any]
    labels: dict[str, str]
    status: str = "created"
    exit_code: int | None = None
    oom: bool = False
    exited: threading.Event = field(default_factory=threading.Event)
    signals: list[str] = field(default_factory=list)
    execs: list[list[str]] = field(default_factory=list)
    stats: Mapping[str, Any] | None = None
    stdout: bytes = b""
    stderr: bytes = b""


class FakeBackend:
    """Containers that run until told to exit (``finish``) or until a signal their ``on_signal`` maps
    to an exit; every call is recorded in ``calls``."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.containers: dict[str, FakeContainer] = {}
        self.removed: list[str] = []
        self.calls: list[tuple[str, Any]] = []
        self.exit_on_signal: dict[str, int] = {"SIGTERM": 0, "SIGKILL": 137}
        self.exec_results: dict[str, ExecResult] = {}
        self.fail_create: str | None = None
        self.created = threading.Event()

    def add(self, labels: dict[str, str], status: str = "running") -> FakeContainer:
        container = FakeContainer(id=uuid.uuid4().hex, kwargs={}, labels=labels, status=status)
        if status != "running":
            container.exited.set()
        self.containers[container.id] = container
        return container

    def only(self) -> FakeContainer:
        (container,) = [c for c in self.containers.values() if c.id not in self.removed]
        return container

    def finish(self, container_id: str, code: int, *, oom: bool = False) -> None:
        with self.lock:
            container = self.containers[container_id]
            container.status, container.exit_code, container.oom = "exited", code, oom
        container.exited.set()

    # --- ContainerBackend -------------------------------------------------------------------------

    def ensure_image(self, image: str, *, pull: bool) -> None:
        self.calls.append(("ensure_image", image))

    def create(self, kwargs: Mapping[str, Any]) -> str:
        if self.fail_create:
            raise LaunchError(self.fail_create)
        container = FakeContainer(id=uuid.uuid4().hex, kwargs=dict(kwargs), labels=dict(kwargs["labels"]))
        with self.lock:
            self.containers[container.id] = container
        self.calls.append(("create", container.id))
        self.created.set()
        return container.id

    def start(self, container_id: str) -> None:
        self.containers[container_id].status = "running"
        self.calls.append(("start", container_id))

    def inspect(self, container_id: str) -> ContainerInfo | None:
        container = self.containers.get(container_id)
        if container is None or container_id in self.removed:
            return None
        return ContainerInfo(
            id=container.id,
            name=container.kwargs.get("name", container.id[:12]),
            labels=container.labels,
            status=container.status,
            exit_code=container.exit_code,
            oom_killed=container.oom,
            ip_address="172.17.0.9",
        )

    def wait(self, container_id: str) -> int | None:
        container = self.containers[container_id]
        container.exited.wait()
        return container.exit_code

    def signal(self, container_id: str, signal_name: str) -> None:
        container = self.containers[container_id]
        container.signals.append(signal_name)
        self.calls.append(("signal", signal_name))
        code = self.exit_on_signal.get(signal_name)
        if code is not None and container.status == "running":
            self.finish(container_id, code)

    def exec(self, container_id: str, argv: list[str], timeout_s: float) -> ExecResult:
        self.containers[container_id].execs.append(argv)
        self.calls.append(("exec", argv[0]))
        return self.exec_results.get(argv[0], ExecResult(127, "not found"))

    def stats(self, container_id: str) -> Mapping[str, Any] | None:
        return self.containers[container_id].stats

    def logs_tail(self, container_id: str, lines: int) -> tuple[bytes, bytes]:
        container = self.containers[container_id]
        return container.stdout, container.stderr

    def remove(self, container_id: str) -> None:
        self.removed.append(container_id)
        container = self.containers.get(container_id)
        if container is not None:
            container.status = "removed"
            container.exited.set()
        self.calls.append(("remove", container_id))

    def list_managed(self, labels: Mapping[str, str]) -> list[ContainerInfo]:
        found = []
        for container in list(self.containers.values()):
            if container.id in self.removed:
                continue
            if all(container.labels.get(k) == v for k, v in labels.items()):
                info = self.inspect(container.id)
                if info is not None:
                    found.append(info)
        return found

    def close(self) -> None:
        pass


class FakeDriver:
    """Records updates and messages; ``wait_state`` blocks until a task reaches a state."""

    def __init__(self) -> None:
        self.updates: list[TaskStatus] = []
        self.messages: list[bytes] = []
        self.stopped = threading.Event()
        self._changed = threading.Condition()

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
    ) -> TaskStatus:
        status = TaskStatus(
            task_id=TaskID(task_id),
            state=TaskState(state),
            message=message,
            reason=reason,
            healthy=healthy,
            source="SOURCE_EXECUTOR",
            uuid=base64.b64encode(uuid.uuid4().bytes).decode(),
        )
        with self._changed:
            self.updates.append(status)
            self._changed.notify_all()
        return status

    def send_message(self, data: bytes) -> None:
        with self._changed:
            self.messages.append(data)
            self._changed.notify_all()

    def stop(self) -> None:
        self.stopped.set()

    def states(self, task_id: str) -> list[str]:
        return [u.state.value for u in self.updates if u.task_id.value == task_id]

    def wait_state(self, task_id: str, state: str, timeout_s: float = 10.0) -> TaskStatus:
        with self._changed:
            ok = self._changed.wait_for(
                lambda: any(u.task_id.value == task_id and u.state.value == state for u in self.updates),
                timeout_s,
            )
        assert ok, f"{task_id} never reached {state}: {self.states(task_id)}"
        return next(u for u in self.updates if u.task_id.value == task_id and u.state.value == state)

    def wait_messages(self, count: int, timeout_s: float = 10.0) -> list[bytes]:
        with self._changed:
            ok = self._changed.wait_for(lambda: len(self.messages) >= count, timeout_s)
        assert ok, f"only {len(self.messages)} messages"
        return list(self.messages)
