"""The Steward executor end to end: a local cluster with real Docker, Steward's runtime, the zipapp
served over HTTP and fetched into each executor sandbox, and ways to look at what happened."""

from __future__ import annotations

import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import docker

from executors.runner import LABEL_EXECUTOR, LABEL_FRAMEWORK, LABEL_MANAGED, LABEL_TASK
from framework.localcluster.cluster import LocalCluster
from framework.runtime.app import Runtime

T = TypeVar("T")
WAIT = 45.0


def wait_for(predicate: Callable[[], T], what: str, timeout_s: float = WAIT, interval_s: float = 0.1) -> T:
    """Poll ``predicate`` until it returns something true; fail naming ``what``."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout_s
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:g} s waiting for {what}")
        pause.wait(interval_s)


def free_port_range(count: int) -> tuple[int, int]:
    """``count`` consecutive TCP ports on 127.0.0.1 that nobody listens on (host-network tasks bind them)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(42000, 60000 - count)
        sockets = []
        try:
            for port in range(base, base + count):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sockets.append(s)
                s.bind(("127.0.0.1", port))
            return base, base + count - 1
        except OSError:
            continue
        finally:
            for s in sockets:
                s.close()
    raise RuntimeError("no free port range found")


@dataclass
class Site:
    """One test's Steward on one local cluster."""

    cluster: LocalCluster
    runtime: Runtime
    config_path: Path
    client: docker.DockerClient

    @property
    def framework_id(self) -> str:
        return wait_for(self.runtime.store.framework_id, "Steward to register")

    def containers(self, **labels: str) -> list[Any]:
        """Every container a Steward executor made for this framework (running or not)."""
        wanted = [f"{LABEL_MANAGED}=1", f"{LABEL_FRAMEWORK}={self.framework_id}"]
        wanted += [f"{key}={value}" for key, value in labels.items()]
        return list(self.client.containers.list(all=True, filters={"label": wanted}))

    def cluster_tasks(self) -> dict[str, str]:
        """Task id -> latest state, as the master sees them (live and completed)."""
        state = self.cluster.state()
        found: dict[str, str] = {}
        for framework in state["frameworks"]:
            if framework["id"] != self.framework_id:
                continue
            for task in (*framework["tasks"], *framework["completed_tasks"]):
                found[task["id"]] = task["state"]
        return found

    def statuses(self, task_id: str) -> list[str]:
        """The states the master recorded for ``task_id``, in order."""
        for framework in self.cluster.state()["frameworks"]:
            for task in (*framework["tasks"], *framework["completed_tasks"]):
                if task["id"] == task_id:
                    return [status["state"] for status in task["statuses"]]
        return []

    def running_task(self, service: str, *, healthy: bool | None = None) -> str:
        """Wait for a RUNNING task of ``service`` (healthy, if asked) in Steward's view; its id."""

        def find() -> str | None:
            snapshot = self.runtime.scheduler.snapshot()
            for record in snapshot.tasks if snapshot is not None else ():
                if (
                    record.service != service
                    or getattr(record.state, "value", record.state) != "TASK_RUNNING"
                ):
                    continue
                if healthy is None or record.healthy is healthy:
                    return record.task_id
            return None

        return wait_for(find, f"a RUNNING {service} task" + (" (healthy)" if healthy else ""))

    def container_of(self, task_id: str) -> Any:
        return wait_for(
            lambda: next(iter(self.containers(**{LABEL_TASK: task_id})), None), f"{task_id}'s container"
        )

    def usage(self, task_id: str) -> Any:
        return self.runtime.scheduler.activity.usage.entries().get(task_id)

    def reload(self, yaml_text: str) -> None:
        self.config_path.write_text(yaml_text)
        result = self.runtime.reload(str(self.config_path))
        assert result.applied, result.errors

    def executor_logs(self) -> str:
        """Everything the executors wrote to their sandboxes' stderr."""
        return "\n".join(
            p.read_text(errors="replace")
            for p in sorted(self.cluster.work_dir.rglob("stderr"))
            if p.is_file()
        )

    def executor_host(self) -> Any:
        (agent,) = self.cluster._agents.values()
        return agent._executor_host


def restart_executor_endpoint(host: Any, down_s: float) -> None:
    """What an executor sees of an agent restart, on the local cluster (which has no agent restart):
    its event stream ends, the agent refuses connections for ``down_s``, then the same agent, with
    its state (the executor's tasks, as a real agent recovers them from its checkpoint), answers on
    the same address again. Reaches into ``ExecutorHost``'s private server: test-only."""
    with host._lock:
        server = host._server
        port = server.server_address[1]
        for executor in host._executors.values():
            if executor.stream is not None:
                executor.stream.close()  # ends each SUBSCRIBE response, so the server can close
        host._server = None
        thread, host._server_thread = host._server_thread, None
    server.shutdown()
    server.server_close()
    if thread is not None:
        thread.join(10)
    threading.Event().wait(down_s)
    host._port = port
    host._ensure_server()


def container_env(container: Any) -> dict[str, str]:
    return dict(item.split("=", 1) for item in container.attrs["Config"]["Env"])


def executor_pid(container: Any) -> int:
    return int(container.labels["org.steward.executor.owner-pid"])


def executor_id_of(container: Any) -> str:
    return str(container.labels[LABEL_EXECUTOR])
