"""Helpers for the image tests: free ports, polling waits, and a container set that always cleans up.

Every container these tests start carries the label ``org.steward.test=images`` plus a per-test run
id, so a teardown (or a later run) can find and remove whatever an interrupted test left behind.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

import docker
import docker.errors
import requests.exceptions

LABEL = "org.steward.test"
LABEL_VALUE = "images"
LABEL_RUN = "org.steward.test-run"

T = TypeVar("T")


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nobody listens on right now (host networking: the containers bind it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def free_ports(count: int) -> list[int]:
    """``count`` distinct free ports."""
    ports: set[int] = set()
    while len(ports) < count:
        ports.add(free_port())
    return sorted(ports)


def wait_for(predicate: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.25) -> T:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout_s``."""
    pause = threading.Event()
    deadline = time.monotonic() + timeout_s
    last_error: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # a probe may fail while the thing is still starting
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what}{detail}")
        pause.wait(interval_s)


class Containers:
    """Containers started for one test; ``cleanup()`` force-removes all of them."""

    def __init__(self, client: docker.DockerClient) -> None:
        self.client = client
        self.run_id = uuid.uuid4().hex[:10]
        self._started: list[Any] = []

    def run(self, image: str, name: str, **kwargs: Any) -> Any:
        labels = {LABEL: LABEL_VALUE, LABEL_RUN: self.run_id, **kwargs.pop("labels", {})}
        container = self.client.containers.run(
            image, name=f"steward-imgtest-{name}-{self.run_id}", detach=True, labels=labels, **kwargs
        )
        self._started.append(container)
        return container

    def cleanup(self) -> None:
        leftovers = self.client.containers.list(all=True, filters={"label": f"{LABEL_RUN}={self.run_id}"})
        for container in leftovers:
            with contextlib.suppress(docker.errors.NotFound, docker.errors.APIError):
                container.remove(force=True)


def exec_ok(container: Any, cmd: list[str] | str, user: str = "", workdir: str | None = None) -> str:
    """Run ``cmd`` in ``container``; return its output, or fail showing it."""
    result = container.exec_run(cmd, user=user, workdir=workdir)
    output: str = result.output.decode(errors="replace")
    assert result.exit_code == 0, f"{cmd!r} exited {result.exit_code} in {container.name}:\n{output}"
    return output


def exit_code(container: Any, timeout_s: float) -> int:
    """Wait for ``container`` to exit by itself; its exit status."""
    try:
        status: int = container.wait(timeout=timeout_s)["StatusCode"]
    except requests.exceptions.RequestException as exc:  # the SDK's read timeout
        container.reload()
        raise AssertionError(
            f"{container.name} still {container.status} after {timeout_s:g}s; log tail:\n{logs(container)}"
        ) from exc
    return status


def logs(container: Any, tail: int = 60) -> str:
    with contextlib.suppress(docker.errors.APIError):
        text: str = container.logs(tail=tail).decode(errors="replace")
        return text
    return "(no logs)"


@contextlib.contextmanager
def background(fn: Callable[[], T]) -> Iterator[Callable[[float], T]]:
    """Run ``fn`` in a thread; yields ``result(timeout)``, which re-raises what ``fn`` raised."""
    box: dict[str, Any] = {}
    done = threading.Event()

    def runner() -> None:
        try:
            box["value"] = fn()
        except BaseException as exc:
            box["error"] = exc
        finally:
            done.set()

    thread = threading.Thread(target=runner, daemon=True)
    thread.start()

    def result(timeout_s: float) -> T:
        assert done.wait(timeout_s), f"background call did not finish within {timeout_s:g}s"
        if "error" in box:
            raise box["error"]
        value: T = box["value"]
        return value

    try:
        yield result
    finally:
        thread.join(60)
