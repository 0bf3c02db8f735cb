"""The executor driver against a scripted agent over real HTTP (framework/testing/scripted_server.py)."""

from __future__ import annotations

import base64
import logging
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import msgspec
import pytest

from framework.mesos.errors import CallRejected, LocalProtocolError, NotSubscribed
from framework.mesos.executor_driver import (
    ExecutorCallbacks,
    ExecutorDriver,
    ExecutorEnvironment,
    ExecutorEnvironmentError,
    subscription_backoff,
)
from framework.model.proto import (
    AgentInfo,
    ContainerID,
    ExecutorInfo,
    FrameworkInfo,
    KillPolicy,
    TaskGroupInfo,
    TaskInfo,
    TaskState,
)
from framework.testing.scripted_server import Respond, ScriptedServer, Stream
from tests.unit.mesos.test_schema_conformance import body_errors, check

pytestmark = pytest.mark.usefixtures("no_thread_leak")

WAIT_S = 10.0  # generous upper bound for anything that should happen "soon"
TOKEN = "eyJhbGciOiJIUzI1NiJ9.jwt-for-exec-7"
EXECUTOR_PATH = "/api/v1/executor"

# --- events as the agent sends them ------------------------------------------------------------------

SUBSCRIBED: dict[str, Any] = {
    "type": "SUBSCRIBED",
    "subscribed": {
        "executor_info": {"executor_id": {"value": "exec-7"}, "type": "CUSTOM"},
        "framework_info": {
            "user": "steward",
            "name": "Steward",
            "id": {"value": "fw-1"},
            "capabilities": [{"type": "TASK_KILLING_STATE"}],
        },
        "agent_info": {"hostname": "agent-1.example", "id": {"value": "agent-1"}, "port": 5051},
        "container_id": {"value": "container-1"},
    },
}


EXECUTOR_INFO: dict[str, Any] = {
    "executor_id": {"value": "exec-7"},
    "type": "CUSTOM",
    "command": {"value": "steward-executor", "shell": False},
}


def launch(task_id: str) -> dict[str, Any]:
    task = {
        "name": f"task {task_id}",
        "task_id": {"value": task_id},
        "agent_id": {"value": "agent-1"},
        "executor": EXECUTOR_INFO,
    }
    return {"type": "LAUNCH", "launch": {"task": task}}


def acknowledged(task_id: str, uuid_b64: str) -> dict[str, Any]:
    return {"type": "ACKNOWLEDGED", "acknowledged": {"task_id": {"value": task_id}, "uuid": uuid_b64}}


# --- a recording executor ------------------------------------------------------------------------


@dataclass(frozen=True)
class Seen:
    name: str
    args: tuple[Any, ...]
    thread: str


class Recorder(ExecutorCallbacks):
    """Records every callback (name, arguments, thread); ``hooks`` run inside chosen callbacks."""

    def __init__(self, **hooks: Callable[..., object]) -> None:
        self.seen: list[Seen] = []
        self.hooks = hooks
        self._changed = threading.Condition()

    def _record(self, name: str, driver: ExecutorDriver, *args: Any) -> None:
        with self._changed:
            self.seen.append(Seen(name, args, threading.current_thread().name))
            self._changed.notify_all()
        hook = self.hooks.get(name)
        if hook is not None:
            hook(driver, *args)

    def names(self) -> list[str]:
        with self._changed:
            return [s.name for s in self.seen]

    def wait_for(self, name: str, count: int = 1, timeout: float = WAIT_S) -> list[Seen]:
        with self._changed:
            ok = self._changed.wait_for(lambda: sum(s.name == name for s in self.seen) >= count, timeout)
            if not ok:
                raise TimeoutError(f"expected {count} x {name}; saw {[s.name for s in self.seen]}")
            return [s for s in self.seen if s.name == name]

    def subscribed(
        self,
        driver: ExecutorDriver,
        executor_info: ExecutorInfo,
        framework_info: FrameworkInfo,
        agent_info: AgentInfo,
        container_id: ContainerID | None,
    ) -> None:
        self._record("subscribed", driver, executor_info, framework_info, agent_info, container_id)

    def launch(self, driver: ExecutorDriver, task: TaskInfo) -> None:
        self._record("launch", driver, task)

    def launch_group(self, driver: ExecutorDriver, task_group: TaskGroupInfo) -> None:
        self._record("launch_group", driver, task_group)

    def kill(self, driver: ExecutorDriver, task_id: str, kill_policy: KillPolicy | None) -> None:
        self._record("kill", driver, task_id, kill_policy)

    def acknowledged(self, driver: ExecutorDriver, task_id: str, uuid: str) -> None:
        self._record("acknowledged", driver, task_id, uuid)

    def message(self, driver: ExecutorDriver, data: bytes) -> None:
        self._record("message", driver, data)

    def shutdown(self, driver: ExecutorDriver) -> None:
        self._record("shutdown", driver)

    def error(self, driver: ExecutorDriver, message: str) -> None:
        self._record("error", driver, message)

    def disconnected(self, driver: ExecutorDriver, reason: str) -> None:
        self._record("disconnected", driver, reason)


# --- fixtures --------------------------------------------------------------------------------------


def agent_environ(server: ScriptedServer, **overrides: str) -> dict[str, str]:
    environ = {
        "MESOS_AGENT_ENDPOINT": f"127.0.0.1:{server.port}",
        "MESOS_FRAMEWORK_ID": "fw-1",
        "MESOS_EXECUTOR_ID": "exec-7",
        "MESOS_SANDBOX": "/mnt/mesos/sandbox",
        "MESOS_CHECKPOINT": "1",
        "MESOS_RECOVERY_TIMEOUT": "15mins",
        "MESOS_SUBSCRIPTION_BACKOFF_MAX": "500ms",
        "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5secs",
        "MESOS_EXECUTOR_AUTHENTICATION_TOKEN": TOKEN,
    }
    environ.update(overrides)
    return {k: v for k, v in environ.items() if v != "<unset>"}


@pytest.fixture
def run_driver(server: ScriptedServer) -> Iterator[Callable[..., ExecutorDriver]]:
    """Start a driver on ``server`` with the given executor and environment overrides; stopped and
    joined at teardown (a driver that does not stop fails the test)."""
    drivers: list[ExecutorDriver] = []

    def start(executor: ExecutorCallbacks, *, autostart: bool = True, **environ: str) -> ExecutorDriver:
        env = ExecutorEnvironment.from_environ(agent_environ(server, **environ))
        driver = ExecutorDriver(executor, env)
        drivers.append(driver)
        if autostart:
            driver.start()
        return driver

    yield start
    for driver in drivers:
        driver.stop()
    for driver in drivers:
        assert driver.join(WAIT_S), "executor driver did not stop"


# --- SUBSCRIBE -------------------------------------------------------------------------------------


def test_subscribe_sends_exactly_the_required_keys(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED]))
    recorder = Recorder()
    run_driver(recorder)
    (request,) = server.wait_for(1, "SUBSCRIBE", timeout=WAIT_S)
    assert request.path == EXECUTOR_PATH
    assert request.method == "POST"
    # The subscribe object is there even when empty; both ids are top-level.
    assert request.json == {
        "type": "SUBSCRIBE",
        "executor_id": {"value": "exec-7"},
        "framework_id": {"value": "fw-1"},
        "subscribe": {},
    }
    assert request.headers["Content-Type"] == "application/json"
    assert request.headers["Accept"] == "application/json"
    assert "Mesos-Stream-Id" not in request.headers


def test_subscribed_is_delivered_with_typed_values(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED]))
    recorder = Recorder()
    driver = run_driver(recorder)
    (seen,) = recorder.wait_for("subscribed")
    executor_info, framework_info, agent_info, container_id = seen.args
    assert isinstance(executor_info, ExecutorInfo) and executor_info.executor_id.value == "exec-7"
    assert isinstance(framework_info, FrameworkInfo) and framework_info.has_capability("TASK_KILLING_STATE")
    assert isinstance(agent_info, AgentInfo) and agent_info.hostname == "agent-1.example"
    assert container_id == ContainerID(value="container-1")
    assert driver.subscribed
    assert driver.agent_info == agent_info


def test_a_503_while_the_agent_recovers_is_retried(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Respond(503, b"Agent has not finished recovery"), Stream([SUBSCRIBED]))
    recorder = Recorder()
    run_driver(recorder)
    recorder.wait_for("subscribed")
    assert len(server.matching("SUBSCRIBE")) == 2
    assert "error" not in recorder.names()


@pytest.mark.parametrize(
    ("status", "body"),
    [(400, b"Executor cannot be found"), (401, b"Unauthorized"), (403, b"JWT claims do not match")],
)
def test_a_refused_subscribe_calls_error_and_stops(
    server: ScriptedServer,
    run_driver: Callable[..., ExecutorDriver],
    caplog: pytest.LogCaptureFixture,
    status: int,
    body: bytes,
) -> None:
    server.on("SUBSCRIBE", Respond(status, body))
    recorder = Recorder()
    with caplog.at_level(logging.ERROR, logger="framework.mesos.executor_driver"):
        driver = run_driver(recorder)
        assert driver.join(WAIT_S)
    (error,) = recorder.wait_for("error")
    assert str(status) in error.args[0] and body.decode() in error.args[0]
    assert driver.failed and driver.stopped
    assert len(server.matching("SUBSCRIBE")) == 1, "a refusal must not be retried"
    assert any(body.decode() in r.getMessage() for r in caplog.records), "the agent's reason is logged"


# --- UPDATE ---------------------------------------------------------------------------------------


def test_an_update_carries_source_executor_a_fresh_uuid_and_the_executor_id(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED]))
    recorder = Recorder()
    driver = run_driver(recorder)
    recorder.wait_for("subscribed")
    sent = driver.send_status_update(
        "t1", TaskState.TASK_RUNNING, message="up", data=b"\x00payload", labels={"k": "v"}, healthy=True
    )
    second = driver.send_status_update("t1", "TASK_FINISHED", reason="REASON_COMMAND_EXECUTOR_FAILED")
    first_request, second_request = server.wait_for(2, "UPDATE", timeout=WAIT_S)

    call = first_request.json
    assert set(call) == {"type", "executor_id", "framework_id", "update"}
    assert call["executor_id"] == {"value": "exec-7"} and call["framework_id"] == {"value": "fw-1"}
    status = call["update"]["status"]
    assert status["task_id"] == {"value": "t1"}
    assert status["state"] == "TASK_RUNNING"
    assert status["source"] == "SOURCE_EXECUTOR"
    assert status["executor_id"] == {"value": "exec-7"}
    raw = base64.b64decode(status["uuid"], validate=True)  # standard alphabet, padded
    assert len(raw) == 16 and uuid.UUID(bytes=raw).version == 4
    assert status["uuid"] == sent.uuid
    assert isinstance(status["timestamp"], float)
    assert base64.b64decode(status["data"]) == b"\x00payload"
    assert status["labels"] == {"labels": [{"key": "k", "value": "v"}]}
    assert status["healthy"] is True and status["message"] == "up"

    status2 = second_request.json["update"]["status"]
    assert status2["state"] == "TASK_FINISHED" and status2["reason"] == "REASON_COMMAND_EXECUTOR_FAILED"
    assert status2["uuid"] != status["uuid"], "every update needs a fresh uuid"
    assert [s.uuid for s in driver.unacknowledged_updates] == [sent.uuid, second.uuid]


def test_task_staging_is_refused_locally(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED]))
    recorder = Recorder()
    driver = run_driver(recorder)
    recorder.wait_for("subscribed")
    with pytest.raises(LocalProtocolError, match="TASK_STAGING"):
        driver.send_status_update("t1", "TASK_STAGING")
    driver.send_status_update("t1", "TASK_RUNNING")
    (update,) = server.wait_for(1, "UPDATE", timeout=WAIT_S)
    assert update.json["update"]["status"]["state"] == "TASK_RUNNING"
    assert [s.state for s in driver.unacknowledged_updates] == [TaskState.TASK_RUNNING]


def test_acknowledged_removes_the_update_and_the_launched_task(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED, launch("t1"), launch("t2")]))
    recorder = Recorder()
    driver = run_driver(recorder)
    recorder.wait_for("launch", 2)
    assert [t.task_id.value for t in driver.unacknowledged_tasks] == ["t1", "t2"]
    running = driver.send_status_update("t1", "TASK_RUNNING")
    other = driver.send_status_update("t2", "TASK_RUNNING")

    server.push(acknowledged("t1", running.uuid or ""))
    (ack,) = recorder.wait_for("acknowledged")
    assert ack.args == ("t1", running.uuid)
    assert [s.uuid for s in driver.unacknowledged_updates] == [other.uuid]
    assert [t.task_id.value for t in driver.unacknowledged_tasks] == ["t2"]


def test_an_update_sent_before_subscribing_travels_in_the_subscribe(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED]))
    recorder = Recorder()
    driver = run_driver(recorder, autostart=False)
    status = driver.send_status_update("t1", "TASK_FAILED", message="could not start")
    driver.start()
    recorder.wait_for("subscribed")
    (subscribe,) = server.matching("SUBSCRIBE")
    carried = subscribe.json["subscribe"]["unacknowledged_updates"]
    assert carried == [{"status": msgspec.to_builtins(status)}]
    assert server.matching("UPDATE") == [], "the SUBSCRIBE carried it; no separate POST"


def test_an_update_sent_while_the_subscribe_is_pending_is_posted_once_subscribed(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([]))  # the agent holds SUBSCRIBED back
    recorder = Recorder()
    driver = run_driver(recorder)
    server.wait_for_stream(1)
    status = driver.send_status_update("t1", "TASK_RUNNING")
    assert server.matching("UPDATE") == [], "not subscribed yet: the agent would answer 403"
    server.push(SUBSCRIBED)
    (update,) = server.wait_for(1, "UPDATE", timeout=WAIT_S)
    assert update.json["update"]["status"]["uuid"] == status.uuid


# --- reconnecting ----------------------------------------------------------------------------------


def test_after_a_cut_stream_the_resubscribe_carries_unacknowledged_updates_and_tasks(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED, launch("t1")]), Stream([SUBSCRIBED]))
    recorder = Recorder(
        launch=lambda driver, task: driver.send_status_update(task.task_id.value, "TASK_RUNNING")
    )
    driver = run_driver(recorder)
    (update,) = server.wait_for(1, "UPDATE", timeout=WAIT_S)
    sent_status = update.json["update"]["status"]

    server.wait_for_stream(1).cut()
    recorder.wait_for("subscribed", 2)
    assert recorder.names()[:4] == ["subscribed", "launch", "disconnected", "subscribed"]
    resubscribe = server.matching("SUBSCRIBE")[1].json
    assert set(resubscribe) == {"type", "executor_id", "framework_id", "subscribe"}
    assert resubscribe["subscribe"]["unacknowledged_updates"] == [{"status": sent_status}]
    (task,) = resubscribe["subscribe"]["unacknowledged_tasks"]
    assert task["task_id"] == {"value": "t1"} and task["name"] == "task t1"
    assert driver.subscribed and not driver.stopped


def test_resubscription_goes_on_through_several_503s(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on(
        "SUBSCRIBE",
        Stream([SUBSCRIBED], then="cut"),
        Respond(503, b"recovering"),
        Respond(503, b"recovering"),
        Respond(503, b"recovering"),
        Respond(503, b"recovering"),
        Stream([SUBSCRIBED]),
    )
    recorder = Recorder()
    run_driver(recorder, MESOS_SUBSCRIPTION_BACKOFF_MAX="200ms")
    recorder.wait_for("subscribed", 2)
    assert recorder.names() == ["subscribed", "disconnected", "subscribed"]
    assert len(server.matching("SUBSCRIBE")) == 6


@pytest.mark.parametrize("attempt", range(40))
def test_no_backoff_pause_exceeds_the_subscription_backoff_max(attempt: int) -> None:
    assert 0.0 <= subscription_backoff(attempt, 2.0, jitter=1.0) <= 2.0
    assert subscription_backoff(attempt, 0.05, jitter=1.0) <= 0.05


def test_backoff_starts_small_and_grows_to_the_max() -> None:
    pauses = [subscription_backoff(n, 2.0, jitter=1.0) for n in range(8)]
    assert pauses[0] == pytest.approx(0.1)
    assert pauses == sorted(pauses)
    assert pauses[-1] == 2.0
    assert subscription_backoff(3, 2.0, jitter=0.5) == pytest.approx(0.4)


def test_without_checkpointing_a_lost_stream_means_disconnected_then_shutdown_and_no_retry(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED, launch("t1")]))
    # The executor kills its task in shutdown(); the driver still takes its update (kept, since
    # there is no agent to send it to).
    recorder = Recorder(shutdown=lambda driver: driver.send_status_update("t1", "TASK_KILLED"))
    driver = run_driver(
        recorder,
        MESOS_CHECKPOINT="0",
        MESOS_RECOVERY_TIMEOUT="<unset>",
        MESOS_SUBSCRIPTION_BACKOFF_MAX="<unset>",
    )
    recorder.wait_for("launch")
    server.wait_for_stream(1).cut()
    assert driver.join(WAIT_S)
    assert recorder.names() == ["subscribed", "launch", "disconnected", "shutdown"]
    assert len(server.matching("SUBSCRIBE")) == 1
    assert driver.stopped and "disconnected" in (driver.stop_reason or "")
    assert [s.state for s in driver.unacknowledged_updates] == [TaskState.TASK_KILLED]


def test_the_recovery_timeout_ends_in_shutdown(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED]), Respond(503, b"Agent has not finished recovery"))
    recorder = Recorder()
    driver = run_driver(recorder, MESOS_RECOVERY_TIMEOUT="1secs", MESOS_SUBSCRIPTION_BACKOFF_MAX="200ms")
    recorder.wait_for("subscribed")
    server.wait_for_stream(1).cut()
    assert driver.join(WAIT_S)
    assert recorder.names() == ["subscribed", "disconnected", "shutdown"]
    assert driver.failed
    assert len(server.matching("SUBSCRIBE")) >= 3, "kept trying until the recovery timeout"


def test_an_error_event_is_reported_and_the_driver_resubscribes(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on(
        "SUBSCRIBE",
        Stream([SUBSCRIBED, {"type": "ERROR", "error": {"message": "bad thing"}}]),
        Stream([SUBSCRIBED]),
    )
    recorder = Recorder()
    run_driver(recorder)
    recorder.wait_for("subscribed", 2)
    assert recorder.names()[:4] == ["subscribed", "error", "disconnected", "subscribed"]
    assert recorder.wait_for("error")[0].args == ("bad thing",)


# --- events and callbacks --------------------------------------------------------------------------


def test_events_reach_typed_callbacks_in_order_on_one_thread(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED]))
    recorder = Recorder()
    driver = run_driver(recorder)
    recorder.wait_for("subscribed")
    server.push(launch("t1"))
    server.push(
        {
            "type": "LAUNCH_GROUP",
            "launch_group": {
                "task_group": {
                    "tasks": [
                        {
                            "name": "a",
                            "task_id": {"value": "g1"},
                            "agent_id": {"value": "agent-1"},
                            "executor": EXECUTOR_INFO,
                        },
                        {
                            "name": "b",
                            "task_id": {"value": "g2"},
                            "agent_id": {"value": "agent-1"},
                            "executor": EXECUTOR_INFO,
                        },
                    ]
                }
            },
        }
    )
    server.push({"type": "HEARTBEAT"})
    server.push(
        {
            "type": "KILL",
            "kill": {
                "task_id": {"value": "t1"},
                "kill_policy": {"grace_period": {"nanoseconds": 3_000_000_000}},
            },
        }
    )
    server.push({"type": "KILL", "kill": {"task_id": {"value": "g1"}}})
    server.push({"type": "MESSAGE", "message": {"data": base64.b64encode(b"hello \xffexecutor").decode()}})
    server.push({"type": "SOMETHING_NEW"})
    server.push({"type": "SHUTDOWN"})
    recorder.wait_for("shutdown")
    assert driver.join(WAIT_S)

    assert recorder.names() == ["subscribed", "launch", "launch_group", "kill", "kill", "message", "shutdown"]
    assert {s.thread for s in recorder.seen} == {"executor-dispatcher"}
    by_name = {s.name: s for s in reversed(recorder.seen)}  # first occurrence wins
    (task,) = by_name["launch"].args
    assert isinstance(task, TaskInfo) and task.task_id.value == "t1"
    (group,) = by_name["launch_group"].args
    assert isinstance(group, TaskGroupInfo) and [t.task_id.value for t in group.tasks] == ["g1", "g2"]
    kills = [s.args for s in recorder.seen if s.name == "kill"]
    assert kills[0][0] == "t1" and isinstance(kills[0][1], KillPolicy)
    assert kills[0][1].grace_period is not None and kills[0][1].grace_period.seconds == 3.0
    assert kills[1] == ("g1", None)
    assert by_name["message"].args == (b"hello \xffexecutor",)
    assert driver.stop_reason == "shut down by the agent" and not driver.failed
    assert [t.task_id.value for t in driver.unacknowledged_tasks] == ["t1", "g1", "g2"]


def test_a_slow_callback_does_not_stop_the_stream_being_read(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    release = threading.Event()
    recorder = Recorder(launch=lambda driver, task: release.wait(WAIT_S))
    server.on("SUBSCRIBE", Stream([SUBSCRIBED, launch("t1")]))
    driver = run_driver(recorder)
    recorder.wait_for("launch")
    server.push(launch("t2"))
    server.push(acknowledged("t1", base64.b64encode(uuid.uuid4().bytes).decode()))
    # The reader books t2 in (and processes the ACK) while the launch callback still blocks.
    deadline = threading.Event()
    for _ in range(200):
        if [t.task_id.value for t in driver.unacknowledged_tasks] == ["t2"]:
            break
        deadline.wait(0.05)
    assert [t.task_id.value for t in driver.unacknowledged_tasks] == ["t2"]
    assert recorder.names() == ["subscribed", "launch"]
    release.set()
    recorder.wait_for("launch", 2)
    recorder.wait_for("acknowledged")


def test_a_raising_callback_is_logged_and_the_driver_carries_on(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver], caplog: pytest.LogCaptureFixture
) -> None:
    def explode(driver: ExecutorDriver, task: TaskInfo) -> None:
        raise RuntimeError("bug in the executor")

    recorder = Recorder(launch=explode)
    server.on(
        "SUBSCRIBE", Stream([SUBSCRIBED, launch("t1"), {"type": "MESSAGE", "message": {"data": "aGk="}}])
    )
    with caplog.at_level(logging.ERROR, logger="framework.mesos.executor_driver"):
        run_driver(recorder)
        recorder.wait_for("message")
    assert any("callback raised" in r.getMessage() for r in caplog.records)


def test_stop_from_a_callback_ends_the_driver_without_more_callbacks(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    join_refused: list[bool] = []

    def stop_now(driver: ExecutorDriver, task: TaskInfo) -> None:
        try:
            driver.join()
        except RuntimeError:
            join_refused.append(True)
        driver.stop()

    recorder = Recorder(launch=stop_now)
    server.on("SUBSCRIBE", Stream([SUBSCRIBED, launch("t1"), launch("t2")]))
    driver = run_driver(recorder)
    assert driver.join(WAIT_S)
    assert recorder.names() == ["subscribed", "launch"]
    assert join_refused == [True]
    assert driver.stop_reason == "stopped by the executor"
    with pytest.raises(LocalProtocolError, match="stopped"):
        driver.send_status_update("t1", "TASK_KILLED")


def test_terminal_updates_sent_in_shutdown_reach_the_agent_before_the_driver_stops(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED, launch("t1"), {"type": "SHUTDOWN"}]))
    recorder = Recorder(shutdown=lambda driver: driver.send_status_update("t1", "TASK_KILLED"))
    driver = run_driver(recorder)
    assert driver.join(WAIT_S)
    assert recorder.names() == ["subscribed", "launch", "shutdown"]
    (update,) = server.matching("UPDATE")
    assert update.json["update"]["status"]["state"] == "TASK_KILLED"
    assert len(server.matching("SUBSCRIBE")) == 1, "no resubscription after SHUTDOWN"


def test_run_returns_once_the_agent_shuts_the_executor_down(server: ScriptedServer) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED, {"type": "SHUTDOWN"}]))
    recorder = Recorder()
    driver = ExecutorDriver(recorder, ExecutorEnvironment.from_environ(agent_environ(server)))
    runner = threading.Thread(target=driver.run)
    runner.start()
    runner.join(WAIT_S)
    assert not runner.is_alive()
    assert recorder.names() == ["subscribed", "shutdown"]


def test_a_driver_stopped_before_it_started_sends_nothing(server: ScriptedServer) -> None:
    driver = ExecutorDriver(Recorder(), ExecutorEnvironment.from_environ(agent_environ(server)))
    driver.stop()
    driver.start()
    assert driver.join(WAIT_S)
    assert server.requests == []
    assert driver.stop_reason == "stopped by the executor"


# --- MESSAGE and authentication ---------------------------------------------------------------------


def test_send_message_posts_base64_data_and_needs_a_subscription(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Respond(503, b"recovering"), Stream([SUBSCRIBED]))
    recorder = Recorder()
    driver = run_driver(recorder)
    with pytest.raises(NotSubscribed):
        driver.send_message(b"too early")
    recorder.wait_for("subscribed")
    driver.send_message(b"\x01status report")
    (request,) = server.wait_for(1, "MESSAGE", timeout=WAIT_S)
    assert request.json == {
        "type": "MESSAGE",
        "executor_id": {"value": "exec-7"},
        "framework_id": {"value": "fw-1"},
        "message": {"data": base64.b64encode(b"\x01status report").decode()},
    }


def test_a_rejected_update_raises_and_is_forgotten(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED]))
    server.on("UPDATE", Respond(400, b"Received status update for unknown task"))
    recorder = Recorder()
    driver = run_driver(recorder)
    recorder.wait_for("subscribed")
    with pytest.raises(CallRejected, match="unknown task"):
        driver.send_status_update("t9", "TASK_RUNNING")
    assert driver.unacknowledged_updates == ()


def test_the_bearer_token_is_sent_on_every_request_and_shown_nowhere(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver], caplog: pytest.LogCaptureFixture
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED, launch("t1")]), Stream([SUBSCRIBED]))
    recorder = Recorder()
    with caplog.at_level(logging.DEBUG):
        driver = run_driver(recorder)
        recorder.wait_for("launch")
        driver.send_status_update("t1", "TASK_RUNNING")
        driver.send_message(b"hi")
        server.wait_for_stream(1).cut()
        recorder.wait_for("subscribed", 2)
    requests = server.requests
    assert [r.call_type for r in requests] == ["SUBSCRIBE", "UPDATE", "MESSAGE", "SUBSCRIBE"]
    assert all(r.headers["Authorization"] == f"Bearer {TOKEN}" for r in requests)
    assert TOKEN not in repr(driver.env) and TOKEN not in repr(driver)
    assert all(TOKEN not in r.getMessage() for r in caplog.records)


def test_every_call_the_driver_sends_conforms_to_the_v1_schema(
    server: ScriptedServer, run_driver: Callable[..., ExecutorDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([SUBSCRIBED, launch("t1")]), Stream([SUBSCRIBED]))
    recorder = Recorder()
    driver = run_driver(recorder)
    recorder.wait_for("launch")
    driver.send_status_update(
        "t1", "TASK_RUNNING", message="m", reason="REASON_TASK_CHECK_STATUS_UPDATED", healthy=False,
        data=b"\xfe", labels={"a": "b"},
    )  # fmt: skip
    driver.send_message(b"payload")
    server.wait_for_stream(1).cut()
    recorder.wait_for("subscribed", 2)
    bodies = [r.json for r in server.requests]
    assert [b["type"] for b in bodies] == ["SUBSCRIBE", "UPDATE", "MESSAGE", "SUBSCRIBE"]
    assert (
        bodies[-1]["subscribe"]["unacknowledged_tasks"] and bodies[-1]["subscribe"]["unacknowledged_updates"]
    )
    for body in bodies:
        assert check(body, "executor.Call") == [], body
        assert body_errors(body, "executor.Call") == [], body


# --- the environment -------------------------------------------------------------------------------


def test_the_environment_is_read_as_the_agent_writes_it() -> None:
    env = ExecutorEnvironment.from_environ(
        {
            "MESOS_AGENT_ENDPOINT": "10.0.0.5:5051",
            "MESOS_FRAMEWORK_ID": "fw-1",
            "MESOS_EXECUTOR_ID": "exec-7",
            "MESOS_DIRECTORY": "/var/lib/mesos/slaves/x/frameworks/fw-1/executors/exec-7/runs/latest",
            "MESOS_SANDBOX": "/mnt/mesos/sandbox",
            "MESOS_CHECKPOINT": "1",
            "MESOS_RECOVERY_TIMEOUT": "15mins",
            "MESOS_SUBSCRIPTION_BACKOFF_MAX": "2secs",
            "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "1.5mins",
            "MESOS_EXECUTOR_AUTHENTICATION_TOKEN": TOKEN,
        }
    )
    assert env.executor_url == "http://10.0.0.5:5051/api/v1/executor"
    assert (env.framework_id, env.executor_id, env.sandbox) == ("fw-1", "exec-7", "/mnt/mesos/sandbox")
    assert env.checkpoint is True
    assert (env.recovery_timeout_s, env.subscription_backoff_max_s, env.shutdown_grace_period_s) == (
        900,
        2,
        90,
    )
    assert env.authentication_token == TOKEN
    assert TOKEN not in repr(env)


def test_without_checkpointing_the_recovery_variables_are_optional() -> None:
    env = ExecutorEnvironment.from_environ(
        {
            "MESOS_AGENT_ENDPOINT": "10.0.0.5:5051",
            "MESOS_FRAMEWORK_ID": "fw-1",
            "MESOS_EXECUTOR_ID": "exec-7",
            "MESOS_CHECKPOINT": "0",
            "MESOS_DIRECTORY": "/tmp/sandbox",
        }
    )
    assert env.checkpoint is False
    assert env.sandbox == "/tmp/sandbox"
    assert env.authentication_token is None
    assert env.shutdown_grace_period_s == 5.0


def test_an_ssl_agent_is_reached_over_https() -> None:
    base = {"MESOS_AGENT_ENDPOINT": "10.0.0.5:5051", "MESOS_FRAMEWORK_ID": "f", "MESOS_EXECUTOR_ID": "e"}
    env = ExecutorEnvironment.from_environ({**base, "LIBPROCESS_SSL_ENABLED": "true"})
    assert env.executor_url.startswith("https://") and env.tls_verify is False
    env = ExecutorEnvironment.from_environ(
        {
            **base,
            "LIBPROCESS_SSL_ENABLED": "1",
            "LIBPROCESS_SSL_VERIFY_CERT": "1",
            "LIBPROCESS_SSL_CA_FILE": "/ca.pem",
        }
    )
    assert env.tls_verify == "/ca.pem"


@pytest.mark.parametrize(
    ("environ", "named"),
    [
        ({}, ["MESOS_AGENT_ENDPOINT", "MESOS_FRAMEWORK_ID", "MESOS_EXECUTOR_ID"]),
        (
            {
                "MESOS_AGENT_ENDPOINT": "a:1",
                "MESOS_FRAMEWORK_ID": "f",
                "MESOS_EXECUTOR_ID": "e",
                "MESOS_CHECKPOINT": "1",
            },
            ["MESOS_RECOVERY_TIMEOUT", "MESOS_SUBSCRIPTION_BACKOFF_MAX"],
        ),
        (
            {
                "MESOS_AGENT_ENDPOINT": "http://a:1/x",
                "MESOS_FRAMEWORK_ID": "f",
                "MESOS_EXECUTOR_ID": "e",
                "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD": "5 seconds",
            },
            ["MESOS_AGENT_ENDPOINT", "MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD"],
        ),
    ],
)
def test_a_bad_environment_names_every_problem(environ: Mapping[str, str], named: list[str]) -> None:
    with pytest.raises(ExecutorEnvironmentError) as info:
        ExecutorEnvironment.from_environ(environ)
    for name in named:
        assert name in str(info.value)
    assert len(info.value.problems) == len(named)
