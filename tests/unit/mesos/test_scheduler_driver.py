"""The scheduler driver against scripted masters over real HTTP: subscription, calls, failures."""

from __future__ import annotations

import base64
import random
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any, Literal

import pytest

from framework.mesos import recordio
from framework.mesos.backoff import Backoff, backoff_delay
from framework.mesos.errors import (
    AuthenticationFailed,
    CallRejected,
    MasterUnavailable,
    NotSubscribed,
    SubscriptionRejected,
)
from framework.mesos.scheduler_driver import SchedulerCallbacks, SchedulerDriver
from framework.mesos.transport import HttpTransport
from framework.model.proto import (
    AgentID,
    CommandInfo,
    DurationInfo,
    ExecutorID,
    ExecutorInfo,
    Filters,
    FrameworkCapability,
    FrameworkInfo,
    KillPolicy,
    MasterInfo,
    Offer,
    OperationID,
    OperationStatus,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
    UUIDMessage,
)
from framework.testing.scripted_server import Redirect, Respond, ScriptedServer, Stream

pytestmark = pytest.mark.usefixtures("no_thread_leak")

PATH = "/api/v1/scheduler"
BASIC = "Basic " + base64.b64encode(b"steward:s3cr3t-pw").decode()
UUID_B64 = "C09sHj0qT1ucfY6foLHC0w=="
WAIT = 5.0

FRAMEWORK = FrameworkInfo(
    user="steward",
    name="steward-test",
    roles=("web", "batch"),
    capabilities=(FrameworkCapability(type="MULTI_ROLE"), FrameworkCapability(type="PARTITION_AWARE")),
    failover_timeout=604800.0,
    checkpoint=True,
    principal="steward",
)
FRAMEWORK_JSON = {
    "user": "steward",
    "name": "steward-test",
    "roles": ["web", "batch"],
    "capabilities": [{"type": "MULTI_ROLE"}, {"type": "PARTITION_AWARE"}],
    "failover_timeout": 604800.0,
    "checkpoint": True,
    "principal": "steward",
}


# --- events -------------------------------------------------------------------------------------


def subscribed(framework_id: str = "fw-1", interval: float = 15.0) -> dict[str, Any]:
    return {
        "type": "SUBSCRIBED",
        "subscribed": {
            "framework_id": {"value": framework_id},
            "heartbeat_interval_seconds": interval,
            "master_info": {"id": "m-1", "ip": 16777343, "port": 5050, "hostname": "master1"},
        },
    }


HEARTBEAT = {"type": "HEARTBEAT"}


def offers_event(*offer_ids: str) -> dict[str, Any]:
    return {
        "type": "OFFERS",
        "offers": {
            "offers": [
                {
                    "id": {"value": oid},
                    "framework_id": {"value": "fw-1"},
                    "agent_id": {"value": "agent-1"},
                    "hostname": "agent1.example",
                    "resources": [{"name": "cpus", "type": "SCALAR", "scalar": {"value": 4}}],
                }
                for oid in offer_ids
            ]
        },
    }


def update_event(task: str, state: str = "TASK_RUNNING", uuid: str | None = UUID_B64) -> dict[str, Any]:
    status: dict[str, Any] = {
        "task_id": {"value": task},
        "state": state,
        "agent_id": {"value": "agent-1"},
        "source": "SOURCE_EXECUTOR" if uuid else "SOURCE_MASTER",
    }
    if uuid is not None:
        status["uuid"] = uuid
    return {"type": "UPDATE", "update": {"status": status}}


def error_event(message: str) -> dict[str, Any]:
    return {"type": "ERROR", "error": {"message": message}}


# --- a recording scheduler ----------------------------------------------------------------------


class Recorder(SchedulerCallbacks):
    """Records every callback with its arguments and thread; tests wait on it."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], int]] = []
        self._changed = threading.Condition()
        self.hooks: dict[str, Callable[..., None]] = {}

    def _record(self, name: str, driver: SchedulerDriver, *args: Any) -> None:
        with self._changed:
            self.calls.append((name, args, threading.get_ident()))
            self._changed.notify_all()
        hook = self.hooks.get(name)
        if hook is not None:
            hook(driver, *args)

    def names(self) -> list[str]:
        with self._changed:
            return [name for name, _, _ in self.calls]

    def args(self, name: str) -> list[tuple[Any, ...]]:
        with self._changed:
            return [args for n, args, _ in self.calls if n == name]

    def wait_for(self, name: str, count: int = 1, timeout: float = WAIT) -> list[tuple[Any, ...]]:
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                found = [args for n, args, _ in self.calls if n == name]
                if len(found) >= count:
                    return found
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"{count} x {name} not seen; calls: {[c[0] for c in self.calls]}")
                self._changed.wait(remaining)

    def subscribed(self, driver: SchedulerDriver, framework_id: str, master_info: MasterInfo | None) -> None:
        self._record("subscribed", driver, framework_id, master_info)

    def offers(self, driver: SchedulerDriver, offers: Any) -> None:
        self._record("offers", driver, offers)

    def inverse_offers(self, driver: SchedulerDriver, offers: Any) -> None:
        self._record("inverse_offers", driver, offers)

    def rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        self._record("rescinded", driver, offer_id)

    def rescinded_inverse_offer(self, driver: SchedulerDriver, offer_id: str) -> None:
        self._record("rescinded_inverse_offer", driver, offer_id)

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        self._record("status_update", driver, status)

    def operation_status_update(self, driver: SchedulerDriver, status: OperationStatus) -> None:
        self._record("operation_status_update", driver, status)

    def message(self, driver: SchedulerDriver, agent_id: str, executor_id: str, data: bytes) -> None:
        self._record("message", driver, agent_id, executor_id, data)

    def failure(
        self, driver: SchedulerDriver, agent_id: str | None, executor_id: str | None, status: int | None
    ) -> None:
        self._record("failure", driver, agent_id, executor_id, status)

    def error(self, driver: SchedulerDriver, message: str) -> None:
        self._record("error", driver, message)

    def disconnected(self, driver: SchedulerDriver, reason: str) -> None:
        self._record("disconnected", driver, reason)

    def heartbeat(self, driver: SchedulerDriver) -> None:
        self._record("heartbeat", driver)


class Masters:
    """The smallest master detector: a fixed list of base URLs (``answers`` overrides it per round)."""

    def __init__(self, *urls: str, answers: list[list[str] | Exception] | None = None) -> None:
        self.urls = list(urls)
        self.answers = list(answers or [])
        self.rounds = 0
        self.succeeded_with: list[str] = []

    def candidates(self) -> list[str]:
        self.rounds += 1
        if self.answers:
            answer = self.answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer
        return list(self.urls)

    def succeeded(self, url: str) -> None:
        self.succeeded_with.append(url)


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
def make_driver(recorder: Recorder, transport: HttpTransport) -> Iterator[Callable[..., SchedulerDriver]]:
    drivers: list[SchedulerDriver] = []

    def make(*urls: str, **options: Any) -> SchedulerDriver:
        options.setdefault("backoff_initial", 0.01)
        options.setdefault("backoff_max", 0.05)
        options.setdefault("rng", random.Random(7))
        driver = SchedulerDriver(
            options.pop("scheduler", recorder),
            options.pop("framework_info", FRAMEWORK),
            options.pop("master", None) or Masters(*urls),
            options.pop("transport", transport),
            **options,
        )
        drivers.append(driver)
        return driver

    yield make
    for driver in drivers:
        driver.stop()


def subscribe_requests(server: ScriptedServer, count: int) -> list[Any]:
    return [r.json for r in server.wait_for(count, "SUBSCRIBE")]


def started(
    make_driver: Callable[..., SchedulerDriver], server: ScriptedServer, **options: Any
) -> SchedulerDriver:
    """A driver subscribed to ``server`` (which streams SUBSCRIBED unless scripted otherwise)."""
    driver = make_driver(server.url, **options)
    driver.start()
    return driver


# --- subscription -------------------------------------------------------------------------------


def test_subscribe_sends_the_framework_and_exact_headers_and_reports_the_id(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed("fw-1")]))
    driver = started(make_driver, server, suppressed_roles=["batch"])
    ((framework_id, master_info),) = recorder.wait_for("subscribed")
    assert framework_id == "fw-1"
    assert isinstance(master_info, MasterInfo)
    assert master_info.hostname == "master1"
    (request,) = server.matching("SUBSCRIBE")
    assert request.path == PATH
    assert request.headers.get_all("Content-Type") == ["application/json"]
    assert request.headers.get_all("Accept") == ["application/json"]
    assert request.headers["Authorization"] == BASIC
    assert "Mesos-Stream-Id" not in request.headers
    # A first subscription carries no framework ID anywhere.
    assert request.json == {
        "type": "SUBSCRIBE",
        "subscribe": {"framework_info": FRAMEWORK_JSON, "suppressed_roles": ["batch"]},
    }
    assert driver.framework_id == "fw-1"
    assert driver.subscribed
    assert driver.master_url == server.endpoint(PATH)


def test_a_known_framework_id_goes_in_both_places(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed("fw-old")]))
    started(make_driver, server, framework_id="fw-old")
    recorder.wait_for("subscribed")
    (body,) = subscribe_requests(server, 1)
    assert body["framework_id"] == {"value": "fw-old"}
    assert body["subscribe"]["framework_info"]["id"] == {"value": "fw-old"}


def test_calls_carry_the_stream_id_the_framework_id_and_authorization(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed("fw-1")], stream_id="stream-abc"))
    driver = started(make_driver, server)
    recorder.wait_for("subscribed")
    assert driver.stream_id == "stream-abc"
    driver.reconcile()
    (call,) = server.matching("RECONCILE")
    assert call.headers["Mesos-Stream-Id"] == "stream-abc"
    assert call.headers["Authorization"] == BASIC
    assert call.headers.get_all("Content-Type") == ["application/json"]
    assert call.json == {"type": "RECONCILE", "framework_id": {"value": "fw-1"}, "reconcile": {}}
    assert call.client_port != server.matching("SUBSCRIBE")[0].client_port


def test_calls_before_subscribed_raise_without_any_http(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver]
) -> None:
    driver = make_driver(server.url)
    with pytest.raises(NotSubscribed):
        driver.decline(["o-1"])
    with pytest.raises(NotSubscribed):
        driver.reconcile()
    assert driver.acknowledge(TaskStatus(task_id=TaskID(value="t"), state=TaskState.TASK_RUNNING)) is False
    assert server.requests == []


def test_calls_wait_for_subscribed_not_just_for_the_stream(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver]
) -> None:
    server.on("SUBSCRIBE", Stream([]))  # 200 and a stream id, but no SUBSCRIBED yet
    driver = started(make_driver, server)
    server.wait_for_stream(1)
    with pytest.raises(NotSubscribed):
        driver.revive()
    assert server.matching("REVIVE") == []


def test_subscribe_follows_a_protocol_relative_redirect_and_calls_go_to_the_leader(
    make_server: Callable[[], ScriptedServer],
    make_driver: Callable[..., SchedulerDriver],
    recorder: Recorder,
) -> None:
    follower, leader = make_server(), make_server()
    follower.on(None, Redirect(f"//127.0.0.1:{leader.port}{PATH}"))
    leader.on("SUBSCRIBE", Stream([subscribed()]))
    masters = Masters(follower.url)
    driver = make_driver(master=masters)
    driver.start()
    recorder.wait_for("subscribed")
    assert driver.master_url == leader.endpoint(PATH)
    assert masters.succeeded_with == [leader.url]
    driver.decline(["o-1"])
    assert [r.call_type for r in follower.requests] == ["SUBSCRIBE"]
    subscribe, decline = leader.requests
    assert subscribe.headers["Authorization"] == BASIC
    assert decline.call_type == "DECLINE"
    assert decline.headers["Authorization"] == BASIC


def test_a_redirected_call_is_followed_and_later_calls_go_to_the_new_master(
    make_server: Callable[[], ScriptedServer],
    make_driver: Callable[..., SchedulerDriver],
    recorder: Recorder,
) -> None:
    first, second = make_server(), make_server()
    first.on("SUBSCRIBE", Stream([subscribed()]))
    first.on(None, Redirect(f"//127.0.0.1:{second.port}{PATH}"))
    driver = started(make_driver, first)
    recorder.wait_for("subscribed")
    driver.revive(["web"])
    (revive,) = second.matching("REVIVE")
    assert revive.headers["Authorization"] == BASIC
    assert revive.headers["Mesos-Stream-Id"] == driver.stream_id
    assert driver.master_url == second.endpoint(PATH)
    driver.suppress(["web"])
    assert first.matching("SUPPRESS") == []
    assert len(second.matching("SUPPRESS")) == 1


@pytest.mark.parametrize("status", [503, 404, 500])
def test_an_unavailable_master_is_retried_until_it_subscribes(
    status: int, server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Respond(status, b"No leader elected"), Respond(status), Stream([subscribed()]))
    masters = Masters(server.url)
    driver = make_driver(master=masters)
    driver.start()
    recorder.wait_for("subscribed")
    assert len(server.matching("SUBSCRIBE")) == 3
    assert masters.rounds == 3  # the detector is asked again on every round
    assert "disconnected" not in recorder.names()  # never connected before: nothing to report
    assert driver.fatal_error is None


def test_a_refused_candidate_is_skipped_for_the_next(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    dead = ScriptedServer()
    dead_url = dead.url
    dead.close()
    server.on("SUBSCRIBE", Stream([subscribed()]))
    driver = make_driver(dead_url, server.url)
    driver.start()
    recorder.wait_for("subscribed")
    assert driver.master_url == server.endpoint(PATH)


def test_a_detector_with_no_answer_or_an_error_is_asked_again(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed()]))
    masters = Masters(server.url, answers=[[], RuntimeError("zookeeper unreachable")])
    driver = make_driver(master=masters)
    driver.start()
    recorder.wait_for("subscribed")
    assert masters.rounds == 3
    assert len(server.matching("SUBSCRIBE")) == 1
    assert driver.status().last_error is None  # cleared by SUBSCRIBED


def test_a_stream_cut_mid_record_resubscribes_with_the_id_and_the_suppressed_roles(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed("fw-9")]))
    driver = started(make_driver, server)
    recorder.wait_for("subscribed")
    driver.suppress(["batch"])
    server.wait_for_stream(1).cut(b'60\n{"type":"OFF')
    (reason,) = recorder.wait_for("disconnected")[0]
    assert "lost" in reason
    first, second = subscribe_requests(server, 2)
    assert "framework_id" not in first
    assert second["framework_id"] == {"value": "fw-9"}
    assert second["subscribe"]["framework_info"]["id"] == {"value": "fw-9"}
    assert second["subscribe"]["suppressed_roles"] == ["batch"]
    recorder.wait_for("subscribed", 2)
    assert recorder.names() == ["subscribed", "disconnected", "subscribed"]


def test_a_clean_end_of_the_stream_resubscribes(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed()], then="close"), Stream([subscribed()]))
    started(make_driver, server)
    recorder.wait_for("subscribed", 2)
    (reason,) = recorder.args("disconnected")[0]
    assert "closed" in reason


def test_heartbeat_silence_drops_the_stream_and_resubscribes(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed(interval=0.2)]))
    started(make_driver, server, heartbeat_misses=2)
    recorder.wait_for("subscribed")
    (reason,) = recorder.wait_for("disconnected")[0]
    assert "heartbeat" in reason
    assert "0.4s" in reason
    assert server.wait_for_stream(1).wait_client_gone()  # the driver closed the silent connection
    recorder.wait_for("subscribed", 2)


def test_heartbeats_keep_a_quiet_subscription_alive(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed(interval=0.2)], heartbeat=HEARTBEAT, heartbeat_every=0.03))
    started(make_driver, server, heartbeat_misses=5)
    recorder.wait_for("heartbeat", 40)  # far longer than the 1 s watchdog, in heartbeats
    assert len(server.matching("SUBSCRIBE")) == 1
    assert "disconnected" not in recorder.names()


def test_a_framing_error_drops_the_connection_and_resubscribes(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed()]))
    started(make_driver, server)
    recorder.wait_for("subscribed")
    server.wait_for_stream(1).push_raw(b"20x\n")
    (reason,) = recorder.wait_for("disconnected")[0]
    assert "framing" in reason
    recorder.wait_for("subscribed", 2)


def test_a_malformed_json_record_is_skipped_and_the_next_event_delivered(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed()]))
    driver = started(make_driver, server)
    recorder.wait_for("subscribed")
    stream = server.wait_for_stream(1)
    stream.push_raw(recordio.encode(b'{"type": "OFFERS", "offers": {"offers": [{"id": 12}]}}'))
    stream.push_raw(recordio.encode(b"not json at all"))
    # An unknown key nested deeper than msgspec's recursion limit (RecursionError, not a DecodeError).
    stream.push_raw(recordio.encode(b'{"type":"HEARTBEAT","junk":' + b"[" * 5000 + b"]" * 5000 + b"}"))
    stream.push(offers_event("o-after"))
    (offers,) = recorder.wait_for("offers")[0]
    assert [o.id.value for o in offers] == ["o-after"]
    assert len(server.matching("SUBSCRIBE")) == 1
    assert driver.subscribed


def test_an_unknown_event_type_is_skipped(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed(), {"type": "FROM_THE_FUTURE", "x": 1}, HEARTBEAT]))
    started(make_driver, server)
    recorder.wait_for("heartbeat")
    assert recorder.names() == ["subscribed", "heartbeat"]


# --- fatal outcomes -----------------------------------------------------------------------------


def test_401_to_subscribe_is_fatal(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Respond(401, b"Unauthorized", {"WWW-Authenticate": 'Basic realm="x"'}))
    driver = started(make_driver, server)
    (message,) = recorder.wait_for("error")[0]
    assert "401" in message
    assert driver.join(WAIT)
    assert isinstance(driver.fatal_error, SubscriptionRejected)
    assert driver.fatal_error.fatal
    assert len(server.matching("SUBSCRIBE")) == 1
    assert "s3cr3t-pw" not in message


def test_400_to_subscribe_saying_removed_is_fatal(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Respond(400, b"Framework fw-1 has been removed"))
    driver = started(make_driver, server, framework_id="fw-1")
    (message,) = recorder.wait_for("error")[0]
    assert "has been removed" in message
    assert driver.join(WAIT)
    assert len(server.matching("SUBSCRIBE")) == 1


def test_error_framework_removed_is_fatal(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed(), error_event("Framework has been removed")]))
    driver = started(make_driver, server)
    assert driver.join(WAIT)
    assert recorder.names() == ["subscribed", "error"]
    assert recorder.args("error") == [("Framework has been removed",)]
    assert driver.fatal_error is not None
    assert len(server.matching("SUBSCRIBE")) == 1
    assert not driver.subscribed


def test_error_framework_failed_over_stops_without_fighting(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed(), error_event("Framework failed over")]))
    driver = started(make_driver, server)
    assert driver.join(WAIT)
    assert recorder.names() == ["subscribed", "error"]
    assert driver.fatal_error is not None
    assert "another scheduler" in str(driver.fatal_error)
    assert len(server.matching("SUBSCRIBE")) == 1


def test_another_error_reconnects(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on(
        "SUBSCRIBE",
        Stream([subscribed(), error_event("Role 'x' is not present in the master's --roles")]),
        Stream([subscribed()]),
    )
    driver = started(make_driver, server)
    recorder.wait_for("subscribed", 2)
    assert recorder.names() == ["subscribed", "error", "disconnected", "subscribed"]
    assert driver.fatal_error is None


# --- events and threads -------------------------------------------------------------------------


def test_every_event_reaches_its_callback_in_order_after_subscribed(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    events = [
        subscribed(),
        offers_event("o-1", "o-2"),
        {"type": "RESCIND", "rescind": {"offer_id": {"value": "o-1"}}},
        {
            "type": "INVERSE_OFFERS",
            "inverse_offers": {
                "inverse_offers": [
                    {
                        "id": {"value": "io-1"},
                        "framework_id": {"value": "fw-1"},
                        "agent_id": {"value": "agent-1"},
                        "unavailability": {"start": {"nanoseconds": 1}},
                    }
                ]
            },
        },
        {"type": "RESCIND_INVERSE_OFFER", "rescind_inverse_offer": {"inverse_offer_id": {"value": "io-1"}}},
        update_event("t-1"),
        {
            "type": "UPDATE_OPERATION_STATUS",
            "update_operation_status": {
                "status": {"operation_id": {"value": "op-1"}, "state": "OPERATION_FINISHED"}
            },
        },
        {
            "type": "MESSAGE",
            "message": {"agent_id": {"value": "agent-1"}, "executor_id": {"value": "ex-1"}, "data": "aGk="},
        },
        {
            "type": "FAILURE",
            "failure": {"agent_id": {"value": "agent-1"}, "executor_id": {"value": "ex-1"}, "status": 256},
        },
        {"type": "FAILURE", "failure": {"agent_id": {"value": "agent-2"}}},
        HEARTBEAT,
    ]
    server.on("SUBSCRIBE", Stream(events))
    started(make_driver, server)
    recorder.wait_for("heartbeat")
    assert recorder.names() == [
        "subscribed",
        "offers",
        "rescinded",
        "inverse_offers",
        "rescinded_inverse_offer",
        "status_update",
        "operation_status_update",
        "message",
        "failure",
        "failure",
        "heartbeat",
    ]
    (offers,) = recorder.args("offers")[0]
    assert all(isinstance(o, Offer) for o in offers)
    assert [o.id.value for o in offers] == ["o-1", "o-2"]
    assert recorder.args("rescinded") == [("o-1",)]
    assert recorder.args("inverse_offers")[0][0][0].id.value == "io-1"
    assert recorder.args("rescinded_inverse_offer") == [("io-1",)]
    (status,) = recorder.args("status_update")[0]
    assert status.state is TaskState.TASK_RUNNING
    assert status.uuid == UUID_B64
    assert recorder.args("operation_status_update")[0][0].state == "OPERATION_FINISHED"
    assert recorder.args("message") == [("agent-1", "ex-1", b"hi")]
    assert recorder.args("failure") == [("agent-1", "ex-1", 256), ("agent-2", None, None)]


def test_all_callbacks_run_on_one_dispatcher_thread(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on(
        "SUBSCRIBE",
        Stream([subscribed(), offers_event("o-1"), HEARTBEAT], then="cut"),
        Stream([subscribed()]),
    )
    started(make_driver, server)
    recorder.wait_for("subscribed", 2)
    threads = {ident for _, _, ident in recorder.calls}
    assert len(recorder.calls) == 5  # subscribed, offers, heartbeat, disconnected, subscribed
    assert len(threads) == 1
    (dispatcher,) = threads
    assert dispatcher != threading.get_ident()
    names = {t.ident: t.name for t in threading.enumerate()}
    assert names[dispatcher] == "steward-scheduler-dispatcher"


def test_run_dispatches_on_the_calling_thread(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed(), HEARTBEAT]))
    driver = make_driver(server.url)
    recorder.hooks["heartbeat"] = lambda d: d.stop()
    runner = threading.Thread(target=driver.run)
    runner.start()
    runner.join(WAIT)
    assert not runner.is_alive()
    assert {ident for _, _, ident in recorder.calls} == {runner.ident}
    assert recorder.names() == ["subscribed", "heartbeat"]


def test_a_slow_callback_does_not_stop_the_reader(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    release = threading.Event()
    in_callback = threading.Event()

    def block(driver: SchedulerDriver, offers: Any) -> None:
        in_callback.set()
        assert release.wait(WAIT)

    recorder.hooks["offers"] = block
    server.on("SUBSCRIBE", Stream([subscribed(interval=0.1), offers_event("o-1")]))
    driver = started(make_driver, server, heartbeat_misses=3)
    assert in_callback.wait(WAIT)
    stream = server.wait_for_stream(1)
    received_before = driver.status().events_received
    deadline = time.monotonic() + WAIT
    # Heartbeats keep arriving while the callback is blocked; the reader must keep reading them,
    # or its 0.3 s watchdog would cut the stream.
    while driver.status().events_received < received_before + 10 and time.monotonic() < deadline:
        stream.push(HEARTBEAT)
        time.sleep(0.02)
    status = driver.status()
    assert status.events_received >= received_before + 10
    assert status.events_dispatched == 1  # only SUBSCRIBED: the offers callback is still running
    assert status.subscribed
    release.set()
    recorder.wait_for("heartbeat", 10)
    assert len(server.matching("SUBSCRIBE")) == 1
    assert "disconnected" not in recorder.names()


def test_a_raising_callback_stops_the_driver_and_join_reraises(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    def explode(driver: SchedulerDriver, offers: Any) -> None:
        raise RuntimeError("bug in the app")

    recorder.hooks["offers"] = explode
    server.on("SUBSCRIBE", Stream([subscribed(), offers_event("o-1"), HEARTBEAT]))
    driver = started(make_driver, server)
    with pytest.raises(RuntimeError, match="bug in the app"):
        driver.join(WAIT)
    assert "heartbeat" not in recorder.names()
    assert server.wait_for_stream(1).wait_client_gone()


def test_stop_never_sends_teardown_and_teardown_does(
    make_server: Callable[[], ScriptedServer], make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    one, two = make_server(), make_server()
    for server in (one, two):
        server.on("SUBSCRIBE", Stream([subscribed("fw-1")]))
    driver = started(make_driver, one)
    recorder.wait_for("subscribed")
    driver.stop()
    assert one.wait_for_stream(1).wait_client_gone()
    assert [r.call_type for r in one.requests] == ["SUBSCRIBE"]

    other_recorder = Recorder()
    driver2 = make_driver(two.url, scheduler=other_recorder)
    driver2.start()
    other_recorder.wait_for("subscribed")
    driver2.teardown()
    (call,) = two.matching("TEARDOWN")
    assert call.json == {"type": "TEARDOWN", "framework_id": {"value": "fw-1"}}
    assert driver2.join(WAIT)


# --- calls --------------------------------------------------------------------------------------


@pytest.fixture
def live(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> SchedulerDriver:
    server.on("SUBSCRIBE", Stream([subscribed("fw-1")], stream_id="sid-1"))
    driver = started(make_driver, server)
    recorder.wait_for("subscribed")
    return driver


def last_call(server: ScriptedServer) -> Any:
    request = server.requests[-1]
    assert request.headers["Mesos-Stream-Id"] == "sid-1"
    assert request.headers["Authorization"] == BASIC
    body = request.json
    assert body.pop("framework_id") == {"value": "fw-1"}
    return body


TASK = TaskInfo(
    name="squid",
    task_id=TaskID(value="squid-1"),
    agent_id=AgentID(value="agent-1"),
    command=CommandInfo(value="sleep 1", shell=True),
)
TASK_JSON = {
    "name": "squid",
    "task_id": {"value": "squid-1"},
    "agent_id": {"value": "agent-1"},
    "command": {"shell": True, "value": "sleep 1"},
}


def test_call_bodies_as_sent(live: SchedulerDriver, server: ScriptedServer) -> None:
    driver = live
    driver.launch(["o-1"], [TASK], Filters(refuse_seconds=60))
    assert last_call(server) == {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [{"value": "o-1"}],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": [TASK_JSON]}}],
            "filters": {"refuse_seconds": 60.0},
        },
    }
    executor = ExecutorInfo(executor_id=ExecutorID(value="ex-1"), type="DEFAULT")
    driver.launch_group(["o-2"], executor, [TASK])
    assert last_call(server) == {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [{"value": "o-2"}],
            "operations": [
                {
                    "type": "LAUNCH_GROUP",
                    "launch_group": {
                        "executor": {"executor_id": {"value": "ex-1"}, "type": "DEFAULT"},
                        "task_group": {"tasks": [TASK_JSON]},
                    },
                }
            ],
        },
    }
    driver.decline(["o-3", "o-4"], Filters(refuse_seconds=3600))
    assert last_call(server) == {
        "type": "DECLINE",
        "decline": {"offer_ids": [{"value": "o-3"}, {"value": "o-4"}], "filters": {"refuse_seconds": 3600.0}},
    }
    driver.decline(["o-5"])
    assert last_call(server) == {"type": "DECLINE", "decline": {"offer_ids": [{"value": "o-5"}]}}
    driver.accept_inverse_offers(["io-1"])
    assert last_call(server) == {
        "type": "ACCEPT_INVERSE_OFFERS",
        "accept_inverse_offers": {"inverse_offer_ids": [{"value": "io-1"}]},
    }
    driver.decline_inverse_offers(["io-2"], Filters(refuse_seconds=60))
    assert last_call(server) == {
        "type": "DECLINE_INVERSE_OFFERS",
        "decline_inverse_offers": {
            "inverse_offer_ids": [{"value": "io-2"}],
            "filters": {"refuse_seconds": 60.0},
        },
    }
    driver.suppress(["web"])
    assert last_call(server) == {"type": "SUPPRESS", "suppress": {"roles": ["web"]}}
    driver.revive(["web"])
    assert last_call(server) == {"type": "REVIVE", "revive": {"roles": ["web"]}}
    driver.revive()
    assert last_call(server) == {"type": "REVIVE", "revive": {}}
    driver.kill("squid-1", "agent-1", KillPolicy(grace_period=DurationInfo.from_seconds(5)))
    assert last_call(server) == {
        "type": "KILL",
        "kill": {
            "task_id": {"value": "squid-1"},
            "agent_id": {"value": "agent-1"},
            "kill_policy": {"grace_period": {"nanoseconds": 5_000_000_000}},
        },
    }
    driver.kill("squid-2")
    assert last_call(server) == {"type": "KILL", "kill": {"task_id": {"value": "squid-2"}}}
    driver.shutdown("ex-1", "agent-1")
    assert last_call(server) == {
        "type": "SHUTDOWN",
        "shutdown": {"executor_id": {"value": "ex-1"}, "agent_id": {"value": "agent-1"}},
    }
    driver.reconcile([("squid-1", "agent-1"), ("squid-2", None)])
    assert last_call(server) == {
        "type": "RECONCILE",
        "reconcile": {
            "tasks": [
                {"task_id": {"value": "squid-1"}, "agent_id": {"value": "agent-1"}},
                {"task_id": {"value": "squid-2"}},
            ]
        },
    }
    driver.reconcile()
    assert last_call(server) == {"type": "RECONCILE", "reconcile": {}}
    driver.message("agent-1", "ex-1", b"\x00hello\xff")
    assert last_call(server) == {
        "type": "MESSAGE",
        "message": {
            "agent_id": {"value": "agent-1"},
            "executor_id": {"value": "ex-1"},
            "data": base64.b64encode(b"\x00hello\xff").decode(),
        },
    }
    operation = OperationStatus(
        state="OPERATION_FINISHED",
        operation_id=OperationID(value="reserve-17"),
        uuid=UUIDMessage(value=UUID_B64),
        agent_id=AgentID(value="agent-1"),
    )
    assert driver.acknowledge_operation_status(operation) is True
    assert last_call(server) == {
        "type": "ACKNOWLEDGE_OPERATION_STATUS",
        "acknowledge_operation_status": {
            "uuid": UUID_B64,
            "operation_id": {"value": "reserve-17"},
            "agent_id": {"value": "agent-1"},
        },
    }
    count = len(server.requests)
    assert driver.acknowledge_operation_status(OperationStatus(state="OPERATION_FINISHED")) is False
    assert len(server.requests) == count


def test_suppress_and_revive_keep_the_suppressed_set_for_resubscription(live: SchedulerDriver) -> None:
    live.suppress(["web"])
    assert live.suppressed_roles == {"web"}
    live.suppress()
    assert live.suppressed_roles == {"web", "batch"}
    live.revive(["web"])
    assert live.suppressed_roles == {"batch"}
    live.revive()
    assert live.suppressed_roles == frozenset()


def test_update_framework_is_synchronous_and_updates_what_resubscription_sends(
    live: SchedulerDriver, server: ScriptedServer, recorder: Recorder
) -> None:
    server.on("UPDATE_FRAMEWORK", Respond(200))
    new_info = FrameworkInfo(user="steward", name="steward-renamed", roles=("web",), checkpoint=True)
    live.update_framework(new_info, suppressed_roles=["web"])
    assert last_call(server) == {
        "type": "UPDATE_FRAMEWORK",
        "update_framework": {
            "framework_info": {
                "user": "steward",
                "name": "steward-renamed",
                "id": {"value": "fw-1"},
                "checkpoint": True,
                "roles": ["web"],
            },
            "suppressed_roles": ["web"],
        },
    }
    live.reconnect("test")
    second = subscribe_requests(server, 2)[1]
    assert second["subscribe"]["framework_info"]["name"] == "steward-renamed"
    assert second["subscribe"]["suppressed_roles"] == ["web"]
    assert recorder.wait_for("disconnected")[0] == ("test",)


def test_acknowledge_echoes_the_update_exactly_and_only_when_it_has_a_uuid(
    live: SchedulerDriver, server: ScriptedServer, recorder: Recorder
) -> None:
    results: list[bool] = []
    recorder.hooks["status_update"] = lambda driver, status: results.append(driver.acknowledge(status))
    stream = server.wait_for_stream(1)
    stream.push(update_event("t-1", uuid=UUID_B64))
    stream.push(update_event("t-2", state="TASK_LOST", uuid=None))
    recorder.wait_for("status_update", 2)
    assert results == [True, False]
    (ack,) = server.matching("ACKNOWLEDGE")
    assert ack.headers["Mesos-Stream-Id"] == "sid-1"
    assert ack.json == {
        "type": "ACKNOWLEDGE",
        "framework_id": {"value": "fw-1"},
        "acknowledge": {"agent_id": {"value": "agent-1"}, "task_id": {"value": "t-1"}, "uuid": UUID_B64},
    }


def test_implicit_acknowledgements_ack_after_the_callback_returns(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    acks_seen_in_callback: list[int] = []
    recorder.hooks["status_update"] = lambda driver, status: acks_seen_in_callback.append(
        len(server.matching("ACKNOWLEDGE"))
    )
    server.on(
        "SUBSCRIBE", Stream([subscribed(), update_event("t-1"), update_event("t-2", uuid=None), HEARTBEAT])
    )
    started(make_driver, server, implicit_acknowledgements=True)
    recorder.wait_for("heartbeat")
    assert acks_seen_in_callback == [0, 1]
    (ack,) = server.matching("ACKNOWLEDGE")
    assert ack.json["acknowledge"] == {
        "agent_id": {"value": "agent-1"},
        "task_id": {"value": "t-1"},
        "uuid": UUID_B64,
    }


def test_no_acknowledgement_by_default(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed(), update_event("t-1"), HEARTBEAT]))
    driver = started(make_driver, server)
    recorder.wait_for("heartbeat")
    driver.reconcile()  # a later call has certainly arrived after any ACK the driver might have sent
    assert [r.call_type for r in server.requests] == ["SUBSCRIBE", "RECONCILE"]


def test_403_to_a_call_raises_not_subscribed_and_resubscribes(
    live: SchedulerDriver, server: ScriptedServer, recorder: Recorder
) -> None:
    server.on("DECLINE", Respond(403, b"Framework is not subscribed"))
    with pytest.raises(NotSubscribed) as caught:
        live.decline(["o-1"])
    assert caught.value.status == 403
    assert "not subscribed" in caught.value.body
    (reason,) = recorder.wait_for("disconnected")[0]
    assert "403" in reason
    second = subscribe_requests(server, 2)[1]
    assert second["framework_id"] == {"value": "fw-1"}
    recorder.wait_for("subscribed", 2)


@pytest.mark.parametrize(
    ("status", "error"),
    [(400, CallRejected), (401, AuthenticationFailed), (503, MasterUnavailable), (500, MasterUnavailable)],
)
def test_call_statuses_map_onto_the_exception_tree(
    status: int,
    error: type[Exception],
    live: SchedulerDriver,
    server: ScriptedServer,
    recorder: Recorder,
) -> None:
    server.on("KILL", Respond(status, b"Missing required fields: task_id"))
    with pytest.raises(error) as caught:
        live.kill("t-1")
    if isinstance(caught.value, CallRejected):
        assert caught.value.status == status
        assert caught.value.body == "Missing required fields: task_id"
        assert caught.value.call_type == "KILL"
    assert live.subscribed  # only 403 ends the subscription
    assert len(server.matching("SUBSCRIBE")) == 1


def test_stop_from_a_callback_does_not_deadlock(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    recorder.hooks["subscribed"] = lambda driver, *_: driver.stop()
    server.on("SUBSCRIBE", Stream([subscribed(), HEARTBEAT, HEARTBEAT]))
    driver = started(make_driver, server)
    assert driver.join(WAIT)
    assert recorder.names() == ["subscribed"]


def test_a_driver_starts_only_once(live: SchedulerDriver) -> None:
    with pytest.raises(RuntimeError):
        live.start()


# --- backoff ------------------------------------------------------------------------------------


def test_backoff_delays_grow_with_jitter_up_to_the_cap_and_never_reach_zero() -> None:
    rng = random.Random(1)
    for failures in range(12):
        ceiling = min(15.0, 0.5 * 2**failures)
        delays = [backoff_delay(failures, initial=0.5, maximum=15.0, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(set(delays)) > 1  # jittered
    assert backoff_delay(10_000, initial=0.5, maximum=15.0, rng=rng) <= 15.0


def test_backoff_counts_failures_and_resets() -> None:
    backoff = Backoff(initial=1.0, maximum=8.0, rng=random.Random(3))
    ceilings = []
    for _ in range(6):
        ceilings.append(backoff.failures)
        backoff.next_delay()
    assert ceilings == [0, 1, 2, 3, 4, 5]
    backoff.reset()
    assert 0.5 <= backoff.next_delay() <= 1.0
    with pytest.raises(ValueError):
        Backoff(initial=2.0, maximum=1.0, rng=random.Random())


def test_call_soon_runs_work_on_the_dispatcher_thread_in_order_with_events(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed()]))
    driver = started(make_driver, server)
    recorder.wait_for("subscribed")
    ran: list[tuple[str, int]] = []
    done = threading.Event()
    driver.call_soon(lambda: ran.append(("first", threading.get_ident())))
    driver.call_soon(lambda: (ran.append(("second", threading.get_ident())), done.set()))
    assert done.wait(WAIT)
    dispatcher = recorder.calls[0][2]
    assert ran == [("first", dispatcher), ("second", dispatcher)]


def test_work_that_raises_in_call_soon_stops_the_driver_like_a_callback(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder
) -> None:
    server.on("SUBSCRIBE", Stream([subscribed()]))
    driver = started(make_driver, server)
    recorder.wait_for("subscribed")

    def broken() -> None:
        raise ValueError("state went wrong")

    driver.call_soon(broken)
    with pytest.raises(ValueError, match="state went wrong"):
        driver.join(WAIT)


# --- a hostile master (found by tests/integration/badinput/test_hostile_master.py) ----------------


@pytest.mark.parametrize("interval", [-15.0, -0.001, 1e20, 1e308])
def test_an_absurd_heartbeat_interval_is_not_believed_and_the_reader_survives(
    server: ScriptedServer,
    make_driver: Callable[..., SchedulerDriver],
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    interval: float,
) -> None:
    # A negative interval made the socket timeout invalid and crashed the reader thread; a huge one
    # overflowed it.
    server.on("SUBSCRIBE", Stream([subscribed(interval=interval), offers_event("o-after")]))
    driver = started(make_driver, server)
    recorder.wait_for("offers")
    assert driver.subscribed and driver.status().fatal_error is None
    assert f"heartbeat interval of {interval!r} s; using 15 s instead" in caplog.text
    assert len(server.matching("SUBSCRIBE")) == 1


@pytest.mark.parametrize("data", ["abc", "a", "\u00e9t\u00e9"])
def test_a_message_whose_data_is_not_base64_is_dropped_and_the_driver_goes_on(
    server: ScriptedServer,
    make_driver: Callable[..., SchedulerDriver],
    recorder: Recorder,
    caplog: pytest.LogCaptureFixture,
    data: str,
) -> None:
    # Decoding it on the dispatcher thread raised there, which stopped the driver like a failed callback.
    message = {
        "type": "MESSAGE",
        "message": {"agent_id": {"value": "agent-1"}, "executor_id": {"value": "e-1"}, "data": data},
    }
    server.on("SUBSCRIBE", Stream([subscribed(), message, offers_event("o-after")]))
    driver = started(make_driver, server)
    recorder.wait_for("offers")
    assert "message" not in recorder.names()
    assert "dropping a MESSAGE event whose data is not base64" in caplog.text
    assert not driver.join(0)


@pytest.mark.parametrize("how", ["close", "cut"])
def test_a_stream_ending_inside_a_record_says_so(
    server: ScriptedServer, make_driver: Callable[..., SchedulerDriver], recorder: Recorder, how: str
) -> None:
    then: Literal["close", "cut"] = "close" if how == "close" else "cut"
    cut_short = Stream([subscribed()], tail=b'60\n{"type":"OFF', then=then)
    server.on("SUBSCRIBE", cut_short, Stream([subscribed()]))
    started(make_driver, server)
    (reason,) = recorder.wait_for("disconnected")[0]
    assert reason.endswith(" in the middle of a record (15 bytes of it received and dropped)"), reason
    recorder.wait_for("subscribed", 2)
