"""The executor's task lifecycle on fake Docker and a fake driver: every path ends in one terminal
update with a reason, and no container outlives its task."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest

from executors.executor import ExecutorSettings, StewardExecutor
from executors.runner import LABEL_EXECUTOR, LABEL_FRAMEWORK, LABEL_MANAGED, LABEL_TASK, Owner
from framework.model.proto import (
    AgentID,
    AgentInfo,
    DurationInfo,
    FrameworkCapability,
    FrameworkInfo,
    KillPolicy,
    TaskInfo,
)
from framework.model.usage import decode_usage
from tests.unit.executors.fakes import FakeBackend, FakeDriver
from tests.unit.executors.support import site, steward_task

SERVICES = """
  squid:
    kind: squid
    container: {image: steward/squid:local, executor: steward}
    resources: {cpus: 1, mem: 256MiB, ports: 1}
    kill_grace_period: 20s
  web:
    kind: generic
    container: {image: web, executor: steward, command: "httpd -f"}
    resources: {cpus: 0.5, mem: 64MiB}
    kill_grace_period: 2s
"""
CONFIG = site(SERVICES)
STATS = {
    "cpu_stats": {"cpu_usage": {"total_usage": 2_000_000_000}},
    "memory_stats": {"usage": 1000, "stats": {"inactive_file": 100}},
    "networks": {"eth0": {"rx_bytes": 5, "tx_bytes": 7}},
}


class Harness:
    def __init__(self, tmp_path: Path, *, killing: bool = True, backend: FakeBackend | None = None) -> None:
        self.backend = backend or FakeBackend()
        self.driver = FakeDriver()
        self.settings = ExecutorSettings(
            framework_id="fw-1",
            executor_id="exec-1",
            sandbox_host=str(tmp_path),
            sandbox_local=str(tmp_path),
            shutdown_grace_s=5.0,
            usage_interval_s=0.2,
            sweep_interval_s=3600,
            exit_linger_s=3600,
        )
        self.executor = StewardExecutor(self.backend, self.settings)
        self.executor.attach(self.driver)
        capabilities = (FrameworkCapability(type="TASK_KILLING_STATE"),) if killing else ()
        self.executor.subscribed(
            self.driver,
            None,  # type: ignore[arg-type]
            FrameworkInfo(user="root", name="steward", capabilities=capabilities),
            AgentInfo(hostname="wn-1", id=AgentID("agent-1")),
            None,
        )

    def launch(self, name: str = "web", **changes: object) -> TaskInfo:
        task = steward_task(CONFIG, name)
        if changes:
            task = msgspec.structs.replace(task, **changes)
        self.executor.launch(self.driver, task)
        return task

    def running(self, name: str = "web") -> tuple[TaskInfo, str]:
        task = self.launch(name)
        self.driver.wait_state(task.task_id.value, "TASK_RUNNING")
        return task, self.backend.only().id

    def close(self) -> None:
        self.executor.close()


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    h = Harness(tmp_path)
    yield h
    h.close()


def test_a_task_runs_finishes_and_its_container_is_removed(harness: Harness) -> None:
    task, container_id = harness.running()
    tid = task.task_id.value
    assert harness.driver.states(tid) == ["TASK_STARTING", "TASK_RUNNING"]
    labels = harness.backend.containers[container_id].labels
    assert (labels[LABEL_FRAMEWORK], labels[LABEL_EXECUTOR], labels[LABEL_TASK]) == ("fw-1", "exec-1", tid)
    harness.backend.containers[container_id].stdout = b"hello\n"
    harness.backend.finish(container_id, 0)
    finished = harness.driver.wait_state(tid, "TASK_FINISHED")
    assert finished.message == "the container exited with status 0"
    assert container_id in harness.backend.removed
    assert (Path(harness.settings.sandbox_local or "") / "container.stdout").read_bytes() == b"hello\n"
    # Once the agent acknowledged the terminal update, the executor ends.
    assert not harness.driver.stopped.is_set()
    harness.executor.acknowledged(harness.driver, tid, finished.uuid or "")
    assert harness.driver.stopped.is_set()


def test_a_failing_container_fails_the_task_with_its_status_and_output(harness: Harness) -> None:
    task, container_id = harness.running()
    harness.backend.containers[container_id].stderr = b"line 1\nfatal: no config\n"
    harness.backend.finish(container_id, 3)
    failed = harness.driver.wait_state(task.task_id.value, "TASK_FAILED")
    assert failed.reason == "REASON_COMMAND_EXECUTOR_FAILED"
    assert failed.message is not None
    assert "status 3" in failed.message and "fatal: no config" in failed.message


def test_an_oom_kill_is_a_memory_limitation(harness: Harness) -> None:
    task, container_id = harness.running()
    harness.backend.finish(container_id, 137, oom=True)
    failed = harness.driver.wait_state(task.task_id.value, "TASK_FAILED")
    assert failed.reason == "REASON_CONTAINER_LIMITATION_MEMORY"


def test_kill_sends_killing_drains_and_ends_killed(harness: Harness) -> None:
    task, container_id = harness.running("squid")
    tid = task.task_id.value
    harness.executor.kill(harness.driver, tid, None)
    killed = harness.driver.wait_state(tid, "TASK_KILLED")
    assert harness.driver.states(tid) == ["TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_KILLED"]
    assert harness.backend.containers[container_id].signals == ["SIGTERM"]
    assert (
        killed.message is not None
        and "drain: sent SIGTERM" in killed.message
        and "status 0" in killed.message
    )
    assert container_id in harness.backend.removed


def test_without_the_capability_there_is_no_task_killing(tmp_path: Path) -> None:
    h = Harness(tmp_path, killing=False)
    try:
        task, _ = h.running("squid")
        h.executor.kill(h.driver, task.task_id.value, None)
        h.driver.wait_state(task.task_id.value, "TASK_KILLED")
        assert "TASK_KILLING" not in h.driver.states(task.task_id.value)
    finally:
        h.close()


def test_a_container_ignoring_the_drain_is_killed_at_the_end_of_the_grace(harness: Harness) -> None:
    harness.backend.exit_on_signal = {"SIGKILL": 137}  # SIGTERM changes nothing
    task, container_id = harness.running("squid")
    policy = KillPolicy(grace_period=DurationInfo.from_seconds(0.4))
    harness.executor.kill(harness.driver, task.task_id.value, policy)
    killed = harness.driver.wait_state(task.task_id.value, "TASK_KILLED")
    # Drain, the escalation before the deadline, then SIGKILL.
    assert harness.backend.containers[container_id].signals == ["SIGTERM", "SIGTERM", "SIGKILL"]
    assert killed.message is not None and "SIGKILL at the end of the grace period" in killed.message


def test_a_second_kill_only_shortens_the_grace(harness: Harness) -> None:
    harness.backend.exit_on_signal = {"SIGKILL": 137}
    task, container_id = harness.running("squid")  # 20 s kill grace
    tid = task.task_id.value
    harness.executor.kill(harness.driver, tid, None)
    harness.executor.kill(harness.driver, tid, KillPolicy(grace_period=DurationInfo.from_seconds(60)))
    harness.executor.kill(harness.driver, tid, KillPolicy(grace_period=DurationInfo.from_seconds(0.3)))
    harness.driver.wait_state(tid, "TASK_KILLED", timeout_s=10)
    assert harness.backend.containers[container_id].signals[-1] == "SIGKILL"
    assert harness.driver.states(tid).count("TASK_KILLING") == 1


def test_a_kill_during_the_launch_never_starts_a_container(tmp_path: Path) -> None:
    class SlowImage(FakeBackend):
        gate = threading.Event()
        entered = threading.Event()

        def ensure_image(self, image: str, *, pull: bool) -> None:
            self.entered.set()
            self.gate.wait(10)

    backend = SlowImage()
    h = Harness(tmp_path, backend=backend)
    try:
        task = h.launch()
        assert backend.entered.wait(10)
        h.executor.kill(h.driver, task.task_id.value, None)
        backend.gate.set()
        killed = h.driver.wait_state(task.task_id.value, "TASK_KILLED")
        assert killed.reason == "REASON_TASK_KILLED_DURING_LAUNCH"
        assert not backend.containers and "TASK_RUNNING" not in h.driver.states(task.task_id.value)
    finally:
        h.close()


def test_an_invalid_description_is_a_task_error(harness: Harness) -> None:
    task = harness.launch(data=base64.b64encode(b'{"format": "other/2"}').decode())
    error = harness.driver.wait_state(task.task_id.value, "TASK_ERROR")
    assert error.reason == "REASON_TASK_INVALID"
    assert not harness.backend.containers


def test_docker_refusing_the_container_fails_the_launch(harness: Harness) -> None:
    harness.backend.fail_create = "cannot create the container: no such image"
    task = harness.launch()
    failed = harness.driver.wait_state(task.task_id.value, "TASK_FAILED")
    assert failed.reason == "REASON_CONTAINER_LAUNCH_FAILED" and "no such image" in (failed.message or "")


def test_without_docker_every_launch_fails_saying_so(tmp_path: Path) -> None:
    driver = FakeDriver()
    settings = ExecutorSettings(framework_id="fw-1", executor_id="exec-1")
    executor = StewardExecutor(None, settings, backend_error="cannot reach the Docker Engine: refused")
    executor.attach(driver)
    task = steward_task(CONFIG, "web")
    executor.launch(driver, task)
    failed = driver.wait_state(task.task_id.value, "TASK_FAILED")
    assert failed.message == "cannot reach the Docker Engine: refused"
    executor.close()


def test_usage_reports_arrive_as_messages(harness: Harness) -> None:
    task, container_id = harness.running()
    harness.backend.containers[container_id].stats = STATS
    messages = harness.driver.wait_messages(2)
    report = decode_usage(messages[-1])
    assert report.task_id == task.task_id.value and report.container == container_id
    assert report.cpu_seconds_total == 2.0 and report.memory_bytes == 900
    assert (report.net_rx_bytes, report.net_tx_bytes) == (5, 7)
    assert json.loads(messages[0])["type"] == "usage"


def test_shutdown_kills_every_task_before_returning(harness: Harness) -> None:
    first, _ = harness.running("squid")
    second = harness.launch("web")
    harness.driver.wait_state(second.task_id.value, "TASK_RUNNING")
    harness.executor.shutdown(harness.driver)
    for task in (first, second):
        assert harness.driver.states(task.task_id.value)[-1] == "TASK_KILLED"
    assert all(c.status == "removed" for c in harness.backend.containers.values())


def test_an_earlier_incarnation_is_adopted_and_orphans_of_dead_executors_are_removed(tmp_path: Path) -> None:
    backend = FakeBackend()
    me = Owner.current()
    dead = Owner(pid=999_999_999, start_ticks=1, pid_namespace=me.pid_namespace, boot_id=me.boot_id)
    mine = {LABEL_MANAGED: "1", LABEL_FRAMEWORK: "fw-1", LABEL_EXECUTOR: "exec-1", **dead.labels()}
    task_id = "web.0.abc"
    running_mine = backend.add({**mine, LABEL_TASK: task_id})
    stopped_mine = backend.add({**mine, LABEL_TASK: "old"}, status="exited")
    orphan = backend.add({**mine, LABEL_EXECUTOR: "exec-0", LABEL_TASK: "x", **dead.labels()})
    alive = backend.add({**mine, LABEL_EXECUTOR: "exec-9", LABEL_TASK: "y", **me.labels()})
    foreign_ns = backend.add(
        {**mine, **dead.labels(), LABEL_EXECUTOR: "exec-8", "org.steward.executor.owner-pidns": "other"}
    )

    h = Harness(tmp_path, backend=backend)
    try:
        h.executor.prepare()
        assert stopped_mine.id in backend.removed and orphan.id in backend.removed
        assert running_mine.id not in backend.removed
        assert alive.id not in backend.removed and foreign_ns.id not in backend.removed
        h.launch()
        h.driver.wait_state(task_id, "TASK_RUNNING")
        assert not [c for c in backend.calls if c[0] == "create"]  # adopted, not recreated
        backend.finish(running_mine.id, 0)
        h.driver.wait_state(task_id, "TASK_FINISHED")
        assert running_mine.id in backend.removed
    finally:
        h.close()


def test_an_adoptable_container_nobody_claims_is_removed_at_exit(tmp_path: Path) -> None:
    backend = FakeBackend()
    me = Owner.current()
    dead = Owner(pid=999_999_999, start_ticks=1, pid_namespace=me.pid_namespace, boot_id=me.boot_id)
    leftover = backend.add(
        {
            LABEL_MANAGED: "1",
            LABEL_FRAMEWORK: "fw-1",
            LABEL_EXECUTOR: "exec-1",
            LABEL_TASK: "t",
            **dead.labels(),
        }
    )
    h = Harness(tmp_path, backend=backend)
    h.executor.prepare()
    assert leftover.id not in backend.removed
    h.close()
    assert leftover.id in backend.removed
