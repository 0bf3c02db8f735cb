"""The executor host against a real executor process that speaks the v1 executor API over HTTP."""

from __future__ import annotations

import base64
import json
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from framework.localcluster.containerizers.base import LaunchRequest
from framework.localcluster.executors import ExecutorHost
from framework.model.proto import (
    URI,
    AgentID,
    CommandInfo,
    ContainerInfo,
    DockerInfo,
    DurationInfo,
    ExecutorID,
    ExecutorInfo,
    FrameworkCapability,
    FrameworkID,
    FrameworkInfo,
    TaskID,
    TaskInfo,
    TaskState,
)
from tests.integration.containerizers.helpers import StatusRecorder, resources

FAKE_EXECUTOR = Path(__file__).with_name("fake_executor.py")
FRAMEWORK = FrameworkInfo(
    user="root",
    name="test-fw",
    id=FrameworkID("fw-1"),
    capabilities=(FrameworkCapability(type="TASK_KILLING_STATE"),),
)


def wait_until(predicate: Callable[[], Any], timeout_s: float = 20.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout_s}s")


def wait_count(produce: Callable[[], Any], count: int, what: str) -> Any:
    """Poll ``produce()`` until it holds at least ``count`` items; return it."""
    box: list[Any] = []

    def enough() -> bool:
        box[:] = [produce()]
        return len(box[0]) >= count

    wait_until(enough, what=what)
    return box[0]


def executor_task(
    task_id: str,
    *,
    executor_id: str = "exec-1",
    flags: str = "",
    grace_s: float | None = None,
    container: ContainerInfo | None = None,
) -> TaskInfo:
    command = CommandInfo(
        value=f"exec {sys.executable} fake_executor.py {flags}", uris=(URI(value=f"file://{FAKE_EXECUTOR}"),)
    )
    executor = ExecutorInfo(
        executor_id=ExecutorID(executor_id),
        type="CUSTOM",
        command=command,
        container=container,
        shutdown_grace_period=None if grace_s is None else DurationInfo.from_seconds(grace_s),
    )
    return TaskInfo(
        name=task_id,
        task_id=TaskID(task_id),
        agent_id=AgentID("agent-1"),
        resources=resources(),
        executor=executor,
    )


class Harness:
    def __init__(self, host: ExecutorHost, work: Path, tmp_path: Path) -> None:
        self.host = host
        self.work = work
        self.tmp_path = tmp_path
        self.recorder = StatusRecorder()
        self.exits: list[tuple[str, str, str, int]] = []
        self.messages: list[tuple[str, str, str, str]] = []
        self.exited = threading.Event()
        host.on_executor_exit = self._on_exit
        host.on_message = lambda *args: self.messages.append(args)

    def _on_exit(self, *args: Any) -> None:
        self.exits.append(args)
        self.exited.set()

    def launch(self, task: TaskInfo, *, checkpoint: bool = True) -> None:
        sandbox = self.tmp_path / "tasks" / task.task_id.value
        sandbox.mkdir(parents=True, exist_ok=True)
        self.host.launch(
            LaunchRequest(
                cluster_id="c",
                framework_id="fw-1",
                agent_id="agent-1",
                agent_hostname="localhost",
                task=task,
                sandbox=sandbox,
                checkpoint=checkpoint,
                framework_info=FRAMEWORK,
            ),
            self.recorder,
        )

    def events(self, executor_id: str = "exec-1") -> list[dict[str, Any]]:
        lines: list[dict[str, Any]] = []
        for path in sorted(
            (self.work / "frameworks" / "fw-1" / "executors" / executor_id).glob("runs/*/events.jsonl")
        ):
            lines += [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        return lines

    def received(self, kind: str, executor_id: str = "exec-1") -> list[dict[str, Any]]:
        return [e["event"] for e in self.events(executor_id) if e["kind"] == "event" and e["type"] == kind]

    def wait_event(self, kind: str, count: int = 1, executor_id: str = "exec-1") -> list[dict[str, Any]]:
        return wait_count(lambda: self.received(kind, executor_id), count, f"{count} {kind} event(s)")


@pytest.fixture
def harness(tmp_path: Path) -> Iterator[Harness]:
    work = tmp_path / "work"
    host = ExecutorHost("test-cluster", work_dir=work, heartbeat_interval_s=0.3, registration_timeout_s=20)
    yield Harness(host, work, tmp_path)
    host.shutdown()


def post(host: ExecutorHost, body: Any, content_type: str = "application/json") -> requests.Response:
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    return requests.post(
        f"http://{host.endpoint}/api/v1/executor",
        data=data,
        headers={"Content-Type": content_type},
        timeout=10,
    )


def test_subscribe_gets_subscribed_then_launch_and_updates_are_forwarded_with_their_uuids(
    harness: Harness,
) -> None:
    harness.launch(executor_task("finish-1"))
    final = harness.recorder.wait_terminal("finish-1")
    assert final.state == TaskState.TASK_FINISHED
    assert harness.recorder.states("finish-1") == [TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]

    (subscribed,) = harness.received("SUBSCRIBED")
    body = subscribed["subscribed"]
    assert body["executor_info"]["executor_id"] == {"value": "exec-1"}
    assert body["framework_info"]["name"] == "test-fw"
    assert body["framework_info"]["capabilities"] == [{"type": "TASK_KILLING_STATE"}]
    assert body["agent_info"]["id"] == {"value": "agent-1"}
    assert body["container_id"]["value"]
    assert [e["launch"]["task"]["task_id"]["value"] for e in harness.received("LAUNCH")] == ["finish-1"]

    sent = wait_count(
        lambda: {e["uuid"]: e["state"] for e in harness.events() if e["kind"] == "update"},
        2,
        "both updates logged",
    )
    forwarded = {s.uuid: s.state.value for s in harness.recorder.statuses}
    assert forwarded == sent
    assert all(
        s.source == "SOURCE_EXECUTOR" and s.agent_id == AgentID("agent-1") for s in harness.recorder.statuses
    )

    (env_record,) = [e for e in harness.events() if e["kind"] == "env"]
    env = env_record["env"]
    assert env["MESOS_AGENT_ENDPOINT"] == harness.host.endpoint
    assert env["MESOS_FRAMEWORK_ID"] == "fw-1" and env["MESOS_EXECUTOR_ID"] == "exec-1"
    assert env["MESOS_CHECKPOINT"] == "1"
    assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "5secs"
    assert env["MESOS_RECOVERY_TIMEOUT"] == "15mins" and env["MESOS_SUBSCRIPTION_BACKOFF_MAX"] == "2secs"
    assert env["MESOS_SANDBOX"] == env["MESOS_DIRECTORY"]
    assert env["MESOS_SLAVE_ID"] == env["MESOS_AGENT_ID"] == "agent-1"
    assert env["MESOS_HTTP_COMMAND_EXECUTOR"] == "0"

    for status in harness.recorder.statuses:
        harness.host.acknowledged("finish-1", status.uuid or "")
    acked = harness.wait_event("ACKNOWLEDGED", 2)
    assert {a["acknowledged"]["uuid"] for a in acked} == set(sent)


def test_one_executor_process_serves_several_tasks_and_heartbeats(harness: Harness) -> None:
    harness.launch(executor_task("hold-1"))
    harness.recorder.wait_state(TaskState.TASK_RUNNING, "hold-1")
    harness.launch(executor_task("finish-2"))
    assert harness.recorder.wait_terminal("finish-2").state == TaskState.TASK_FINISHED
    assert len({e["pid"] for e in harness.events()}) == 1
    assert len(harness.received("SUBSCRIBED")) == 1
    harness.wait_event("HEARTBEAT")


def test_kill_sends_a_kill_event_with_the_grace_as_kill_policy(harness: Harness) -> None:
    harness.launch(executor_task("hold-k"))
    harness.recorder.wait_state(TaskState.TASK_RUNNING, "hold-k")
    harness.host.kill("hold-k", 2.5)
    assert harness.recorder.wait_terminal("hold-k").state == TaskState.TASK_KILLED
    (kill,) = harness.received("KILL")
    assert kill["kill"] == {
        "task_id": {"value": "hold-k"},
        "kill_policy": {"grace_period": {"nanoseconds": 2500000000}},
    }


def test_scheduler_messages_reach_the_executor_and_its_messages_reach_the_callback(harness: Harness) -> None:
    harness.launch(executor_task("hold-m"))
    harness.recorder.wait_state(TaskState.TASK_RUNNING, "hold-m")
    data = base64.b64encode(b"ping").decode()
    assert harness.host.send_message("fw-1", "exec-1", data)
    wait_until(lambda: harness.messages, what="executor MESSAGE")
    assert harness.messages == [("fw-1", "exec-1", "agent-1", data)]
    assert not harness.host.send_message("fw-1", "no-such-executor", data)


def test_shutdown_sends_shutdown_and_the_executor_reports_its_tasks(harness: Harness) -> None:
    harness.launch(executor_task("hold-s"))
    harness.recorder.wait_state(TaskState.TASK_RUNNING, "hold-s")
    harness.host.shutdown()
    final = harness.recorder.wait_terminal("hold-s")
    assert final.state == TaskState.TASK_KILLED and final.source == "SOURCE_EXECUTOR"
    assert harness.received("SHUTDOWN")
    assert harness.exits == [("fw-1", "exec-1", "agent-1", 0)]


def test_an_executor_ignoring_shutdown_is_sigkilled_after_its_grace(harness: Harness) -> None:
    harness.launch(executor_task("hold-x", flags="--ignore-shutdown", grace_s=0.5))
    harness.recorder.wait_state(TaskState.TASK_RUNNING, "hold-x")
    assert harness.host.shutdown_executor("fw-1", "exec-1")
    final = harness.recorder.wait_terminal("hold-x")
    assert final.state == TaskState.TASK_FAILED
    assert final.reason == "REASON_EXECUTOR_TERMINATED" and final.source == "SOURCE_AGENT"
    assert "SIGKILL" in (final.message or "")
    assert harness.exited.wait(10)
    assert harness.exits == [("fw-1", "exec-1", "agent-1", 9)]
    env = next(e["env"] for e in harness.events() if e["kind"] == "env")
    assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "0.5secs"


def test_an_executor_crash_fails_its_remaining_tasks(harness: Harness) -> None:
    harness.launch(executor_task("crash-1"))
    final = harness.recorder.wait_terminal("crash-1")
    assert final.state == TaskState.TASK_FAILED
    assert final.reason == "REASON_EXECUTOR_TERMINATED"
    assert "status 3" in (final.message or "")
    assert harness.recorder.states("crash-1") == [TaskState.TASK_RUNNING, TaskState.TASK_FAILED]
    assert harness.exited.wait(10)
    assert harness.exits == [("fw-1", "exec-1", "agent-1", 3 << 8)]
    # A new task for the same executor id starts a new executor process.
    harness.launch(executor_task("finish-after-crash"))
    assert harness.recorder.wait_terminal("finish-after-crash").state == TaskState.TASK_FINISHED


def test_a_resubscribe_with_unacknowledged_updates_forwards_only_the_unseen_ones(harness: Harness) -> None:
    harness.launch(executor_task("reconnect-1"))
    final = harness.recorder.wait_terminal("reconnect-1")
    assert final.state == TaskState.TASK_FINISHED
    assert harness.recorder.states("reconnect-1") == [TaskState.TASK_RUNNING, TaskState.TASK_FINISHED]
    updates = wait_count(
        lambda: {e["state"]: e for e in harness.events() if e["kind"] == "update"}, 2, "both updates logged"
    )
    assert updates["TASK_FINISHED"]["sent"] is False  # it only travelled inside the second SUBSCRIBE
    assert final.uuid == updates["TASK_FINISHED"]["uuid"]
    subscribes = wait_count(
        lambda: [e for e in harness.events() if e["kind"] == "subscribe"], 2, "second SUBSCRIBE logged"
    )
    assert [s["code"] for s in subscribes] == [200, 200]
    assert subscribes[1]["unacked_tasks"] == ["reconnect-1"]
    assert len(harness.wait_event("SUBSCRIBED", 2)) == 2
    assert len(harness.received("LAUNCH")) == 1  # the executor listed the task: no second LAUNCH
    for status in harness.recorder.statuses:
        harness.host.acknowledged("reconnect-1", status.uuid or "")
    acked = harness.wait_event("ACKNOWLEDGED", 2)
    assert {a["acknowledged"]["uuid"] for a in acked} == {u["uuid"] for u in updates.values()}


def test_an_executor_that_never_subscribes_times_out(tmp_path: Path) -> None:
    host = ExecutorHost("test-cluster", work_dir=tmp_path / "work", registration_timeout_s=0.5)
    harness = Harness(host, tmp_path / "work", tmp_path)
    try:
        harness.launch(executor_task("finish-t", flags="--never-subscribe"))
        final = harness.recorder.wait_terminal("finish-t")
        assert final.state == TaskState.TASK_FAILED
        assert final.reason == "REASON_EXECUTOR_REGISTRATION_TIMEOUT"
    finally:
        host.shutdown()


def test_killing_a_task_the_executor_never_received_answers_at_once(harness: Harness) -> None:
    harness.launch(executor_task("hold-q", flags="--never-subscribe", grace_s=0.5))
    wait_until(lambda: [e for e in harness.events() if e["kind"] == "env"], what="executor start")
    harness.host.kill("hold-q", 1)
    final = harness.recorder.wait_terminal("hold-q")
    assert final.state == TaskState.TASK_KILLED and final.reason == "REASON_TASK_KILLED_DURING_LAUNCH"
    assert harness.exited.wait(15)  # the executor started for nothing is stopped
    assert harness.recorder.terminal_count("hold-q") == 1


def test_an_executor_in_a_docker_container_is_refused_clearly(harness: Harness) -> None:
    container = ContainerInfo(type="DOCKER", docker=DockerInfo(image="busybox"))
    harness.launch(executor_task("finish-d", container=container))
    final = harness.recorder.wait_terminal("finish-d")
    assert final.state == TaskState.TASK_FAILED and final.reason == "REASON_CONTAINER_LAUNCH_FAILED"
    assert "DOCKER" in (final.message or "")


def test_http_errors_follow_the_agent(harness: Harness) -> None:
    harness.launch(executor_task("hold-e", executor_id="exec-e", flags="--never-subscribe", grace_s=0.5))
    wait_until(lambda: [e for e in harness.events("exec-e") if e["kind"] == "env"], what="executor start")
    ids = {"framework_id": {"value": "fw-1"}, "executor_id": {"value": "exec-e"}}
    heartbeat = {"type": "HEARTBEAT", **ids}
    assert post(harness.host, heartbeat, "application/json; charset=utf-8").status_code == 415
    assert post(harness.host, b"{not json").status_code == 400
    assert post(harness.host, {"type": "HEARTBEAT"}).status_code == 400  # required ids missing
    unknown_fw = post(harness.host, {**heartbeat, "framework_id": {"value": "nope"}})
    assert (unknown_fw.status_code, unknown_fw.text) == (400, "Framework cannot be found")
    unknown_ex = post(harness.host, {**heartbeat, "executor_id": {"value": "nope"}})
    assert (unknown_ex.status_code, unknown_ex.text) == (400, "Executor cannot be found")
    assert post(harness.host, heartbeat).status_code == 403  # not subscribed yet
    assert requests.get(f"http://{harness.host.endpoint}/api/v1/executor", timeout=5).status_code == 405

    # Subscribe by hand, then send invalid updates.
    stream = requests.post(
        f"http://{harness.host.endpoint}/api/v1/executor",
        data=json.dumps({"type": "SUBSCRIBE", **ids, "subscribe": {}}),
        headers={"Content-Type": "application/json"},
        stream=True,
        timeout=10,
    )
    try:
        assert stream.status_code == 200 and stream.headers["Content-Type"] == "application/json"
        assert post(harness.host, heartbeat).status_code == 202
        good = {
            "task_id": {"value": "hold-e"},
            "state": "TASK_RUNNING",
            "source": "SOURCE_EXECUTOR",
            "uuid": base64.b64encode(bytes(range(16))).decode(),
        }
        import uuid as uuid_module

        good["uuid"] = base64.b64encode(uuid_module.uuid4().bytes).decode()
        for bad in (
            {"uuid": "c2hvcnQ="},
            {"source": "SOURCE_MASTER"},
            {"state": "TASK_STAGING"},
            {"executor_id": {"value": "other"}},
        ):
            reply = post(harness.host, {"type": "UPDATE", **ids, "update": {"status": {**good, **bad}}})
            assert reply.status_code == 400, (bad, reply.text)
        assert post(harness.host, {"type": "UPDATE", **ids, "update": {"status": good}}).status_code == 202
        assert harness.recorder.wait_state(TaskState.TASK_RUNNING, "hold-e").uuid == good["uuid"]
    finally:
        stream.close()


def test_a_non_checkpointing_framework_gets_no_recovery_settings(tmp_path: Path) -> None:
    host = ExecutorHost("test-cluster", work_dir=tmp_path / "work", default_shutdown_grace_s=1)
    harness = Harness(host, tmp_path / "work", tmp_path)
    try:
        harness.launch(executor_task("finish-nc"), checkpoint=False)
        assert harness.recorder.wait_terminal("finish-nc").state == TaskState.TASK_FINISHED
        env = next(e["env"] for e in harness.events() if e["kind"] == "env")
        assert env["MESOS_CHECKPOINT"] == "0"
        assert env["MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"] == "1secs"
        assert "MESOS_RECOVERY_TIMEOUT" not in env and "MESOS_SUBSCRIPTION_BACKOFF_MAX" not in env
    finally:
        host.shutdown()
