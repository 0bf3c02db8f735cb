"""The master state machine without HTTP or threads: inputs with an explicit ``now``, effects out."""

from __future__ import annotations

import base64
import socket
import threading
from typing import Any

import msgspec
import pytest

from framework.localcluster.http import EventStream
from framework.localcluster.master import (
    AcknowledgeUpdate,
    AgentRecord,
    CloseStream,
    Effect,
    KillTask,
    LaunchTasks,
    Master,
    MasterConfig,
    ReportedTask,
    SendEvent,
    ShutdownFramework,
    validate_call,
)
from framework.localcluster.resources import Resources
from framework.mesos.wire import (
    Accept,
    Acknowledge,
    Kill,
    Reconcile,
    ReconcileTask,
    SchedulerCall,
    SchedulerEvent,
    SchedulerMessage,
    Subscribe,
    UpdateFramework,
)
from framework.model.proto import (
    AgentID,
    CommandInfo,
    ExecutorID,
    ExecutorInfo,
    Filters,
    FrameworkCapability,
    FrameworkID,
    FrameworkInfo,
    LaunchOperation,
    OfferID,
    Operation,
    Resource,
    Scalar,
    TaskID,
    TaskInfo,
    TaskState,
    TaskStatus,
)

UUID_A = "C09sHj0qT1ucfY6foLHC0w=="


def info(*caps: str, failover: float | None = None, fid: str | None = None) -> FrameworkInfo:
    return FrameworkInfo(
        user="u",
        name="n",
        roles=("*",),
        capabilities=tuple(FrameworkCapability(type=c) for c in ("MULTI_ROLE", *caps)),  # type: ignore[arg-type]
        failover_timeout=failover,
        id=FrameworkID(fid) if fid else None,
    )


def subscribe_call(framework: FrameworkInfo) -> SchedulerCall:
    return SchedulerCall(
        type="SUBSCRIBE", framework_id=framework.id, subscribe=Subscribe(framework_info=framework)
    )


def events(effects: list[Effect], stream: str | None = None) -> list[SchedulerEvent]:
    return [e.event for e in effects if isinstance(e, SendEvent) and stream in (None, e.stream_id)]


def of_type(effects: list[Effect], kind: str) -> list[SchedulerEvent]:
    return [e for e in events(effects) if e.type == kind]


class Harness:
    """One master with agents S1..Sn registered at t=0 and a helper per call."""

    def __init__(self, agents: int = 1, **config: Any) -> None:
        self.now = 0.0
        self.master = Master(MasterConfig(**config), master_id="M", now=0.0, seed=1)
        for n in range(1, agents + 1):
            record = AgentRecord(
                f"S{n}", f"agent-{n}", Resources.of(cpus=4, mem=4096, ports=[(31000, 31999)])
            )
            self.master.register_agent(record, 0.0)

    def subscribe(self, framework: FrameworkInfo, stream: str = "s1") -> str:
        out = self.master.subscribe(stream, subscribe_call(framework), self.now)
        (subscribed,) = of_type(out, "SUBSCRIBED")
        assert subscribed.subscribed is not None
        return subscribed.subscribed.framework_id.value

    def call(self, fid: str, stream: str = "s1", **body: Any) -> tuple[int, list[Effect]]:
        kind = next(iter(body)).upper()
        call = SchedulerCall(type=kind, framework_id=FrameworkID(fid), **body)  # type: ignore[arg-type]
        assert validate_call(call) is None
        reply, effects = self.master.handle_call(call, stream, self.now)
        return reply.status, effects

    def tick(self, now: float) -> list[Effect]:
        self.now = now
        return self.master.tick(now)

    def offers(self, now: float | None = None) -> list[Any]:
        out = self.tick(self.now if now is None else now)
        return [o for e in of_type(out, "OFFERS") for o in (e.offers.offers if e.offers else ())]


def task_info(tid: str, agent: str = "S1", cpus: float = 1.0) -> TaskInfo:
    return TaskInfo(
        name=tid,
        task_id=TaskID(tid),
        agent_id=AgentID(agent),
        resources=(Resource(name="cpus", type="SCALAR", scalar=Scalar(value=cpus)),),
        command=CommandInfo(value="true"),
    )


def launch(h: Harness, fid: str, offer: Any, *tasks: TaskInfo, refuse: float | None = None) -> list[Effect]:
    accept = Accept(
        offer_ids=(offer.id,),
        operations=(Operation(type="LAUNCH", launch=LaunchOperation(task_infos=tasks)),),
        filters=Filters(refuse_seconds=refuse) if refuse is not None else None,
    )
    status, effects = h.call(fid, accept=accept)
    assert status == 202
    return effects


def agent_status(tid: str, state: TaskState, uuid: str = UUID_A) -> TaskStatus:
    return TaskStatus(
        task_id=TaskID(tid), state=state, source="SOURCE_EXECUTOR", agent_id=AgentID("S1"), uuid=uuid
    )


# --- stateless validation --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (SchedulerCall(type="REVIVE"), "Expecting 'framework_id' to be present"),
        (SchedulerCall(type="ACCEPT", framework_id=FrameworkID("f")), "Expecting 'accept' to be present"),
        (SchedulerCall(type="SUBSCRIBE"), "Expecting 'subscribe' to be present"),
        (
            SchedulerCall(
                type="SUBSCRIBE", framework_id=FrameworkID("f"), subscribe=Subscribe(framework_info=info())
            ),
            "'framework_id' differs from 'subscribe.framework_info.id'",
        ),
        (
            SchedulerCall(
                type="ACKNOWLEDGE",
                framework_id=FrameworkID("f"),
                acknowledge=Acknowledge(agent_id=AgentID("a"), task_id=TaskID("t"), uuid="aGVsbG8="),
            ),
            "Not a valid UUID",
        ),
        (
            SchedulerCall(
                type="UPDATE_FRAMEWORK",
                framework_id=FrameworkID("f"),
                update_framework=UpdateFramework(framework_info=info(fid="g")),
            ),
            "'framework_id' differs from 'update_framework.framework_info.id'",
        ),
    ],
)
def test_stateless_call_validation(call: SchedulerCall, error: str) -> None:
    assert validate_call(call) == error


@pytest.mark.parametrize(
    ("uuid_text", "valid"),
    [
        (UUID_A, True),
        (UUID_A.rstrip("="), True),  # padding is optional
        (" " + UUID_A, True),  # whitespace is ignored
        ("gKVpwESNT4m_ehj-buITXQ==", False),  # URL-safe alphabet (gKVpwESNT4m/ehj+buITXQ== is fine)
        ("aGVsbG8=", False),  # 5 bytes
        (base64.b64encode(b"\0" * 16).decode(), False),  # 16 bytes but no UUID version
    ],
)
def test_acknowledge_uuid_must_be_16_bytes_of_standard_base64(uuid_text: str, valid: bool) -> None:
    call = SchedulerCall(
        type="ACKNOWLEDGE",
        framework_id=FrameworkID("f"),
        acknowledge=Acknowledge(agent_id=AgentID("a"), task_id=TaskID("t"), uuid=uuid_text),
    )
    assert (validate_call(call) is None) is valid


def test_message_data_must_be_standard_base64() -> None:
    def message(data: str) -> SchedulerCall:
        body = SchedulerMessage(agent_id=AgentID("a"), executor_id=ExecutorID("e"), data=data)
        return SchedulerCall(type="MESSAGE", framework_id=FrameworkID("f"), message=body)

    assert validate_call(message("aGk=")) is None
    assert validate_call(message("a-b_")) == "Failed to decode base64 in 'message.data'"


def test_revive_suppress_teardown_need_no_body() -> None:
    for kind in ("REVIVE", "SUPPRESS", "TEARDOWN"):
        assert validate_call(SchedulerCall(type=kind, framework_id=FrameworkID("f"))) is None  # type: ignore[arg-type]


# --- subscription, heartbeats, failover ----------------------------------------------------------


def test_subscription_heartbeats_on_schedule() -> None:
    h = Harness(heartbeat_interval_s=15.0)
    out = h.master.subscribe("s1", subscribe_call(info()), 0.0)
    assert [e.type for e in events(out)] == ["SUBSCRIBED", "HEARTBEAT"]
    assert of_type(h.tick(14.9), "HEARTBEAT") == []
    assert len(of_type(h.tick(15.0), "HEARTBEAT")) == 1
    assert h.master.next_deadline() <= 30.0


def test_framework_ids_count_up_from_the_master_id() -> None:
    h = Harness()
    assert h.subscribe(info(), "s1") == "M-0000"
    assert h.subscribe(info(), "s2") == "M-0001"


def test_failover_timeout_is_measured_from_the_disconnect() -> None:
    h = Harness()
    fid = h.subscribe(info(failover=10.0))
    offer = h.offers()[0]
    launch(h, fid, offer, task_info("t"))
    h.now = 5.0
    assert h.master.stream_closed("s1", 5.0) == []
    assert h.tick(14.9) == [] or fid in h.master.frameworks
    assert fid in h.master.frameworks
    out = h.tick(15.0)
    assert fid not in h.master.frameworks and fid in h.master.completed_frameworks
    assert ShutdownFramework("S1", fid) in out
    again = h.master.subscribe("s2", subscribe_call(info(fid=fid)), 16.0)
    assert [e.type for e in events(again)] == ["ERROR"] and CloseStream("s2") in again


def test_resubscribing_fails_the_old_stream_over_and_drops_offers_silently() -> None:
    h = Harness()
    fid = h.subscribe(info(failover=60))
    assert h.offers()
    out = h.master.subscribe("s2", subscribe_call(info(fid=fid, failover=60)), 1.0)
    old = events(out, "s1")
    assert [e.type for e in old] == ["ERROR"] and old[0].error is not None
    assert old[0].error.message == "Framework failed over"
    assert CloseStream("s1") in out
    assert of_type(out, "RESCIND") == []
    assert h.master.offers == {}
    # The old stream's closure arrives later and must not disconnect the new subscription.
    assert h.master.stream_closed("s1", 1.1) == []
    assert h.master.frameworks[fid].stream_id == "s2"


def test_removed_role_update_rescinds_its_offers() -> None:
    h = Harness()
    base = FrameworkInfo(
        user="u", name="n", roles=("a", "b"), capabilities=(FrameworkCapability(type="MULTI_ROLE"),)
    )
    fid = h.subscribe(base)
    offers = h.offers()
    update = UpdateFramework(framework_info=msgspec.structs.replace(base, id=FrameworkID(fid), roles=("c",)))
    reply, effects = h.master.handle_call(
        SchedulerCall(type="UPDATE_FRAMEWORK", framework_id=FrameworkID(fid), update_framework=update),
        "s1",
        1.0,
    )
    assert reply.status == 200
    assert {e.rescind.offer_id.value for e in of_type(effects, "RESCIND") if e.rescind} == {
        o.id.value for o in offers
    }


# --- offers ----------------------------------------------------------------------------------------


def test_unused_resources_of_an_accept_are_filtered_for_the_accepts_refuse_seconds() -> None:
    h = Harness()
    fid = h.subscribe(info())
    offer = h.offers()[0]
    launch(h, fid, offer, task_info("t"), refuse=30)
    assert h.offers(10.0) == []
    assert h.offers(29.9) == []
    (again,) = h.offers(31.0)  # the first allocation round after the filter expired
    assert Resources.parse(again.resources).scalar("cpus") == 3.0


def test_offer_timeout_rescinds_exactly_on_time() -> None:
    h = Harness(offer_timeout_s=2.0)
    fid = h.subscribe(info())
    offer = h.offers()[0]
    assert of_type(h.tick(1.9), "RESCIND") == []
    assert h.master.next_deadline() == pytest.approx(2.0)
    rescinds = of_type(h.tick(2.0), "RESCIND")
    assert [r.rescind.offer_id.value for r in rescinds if r.rescind] == [offer.id.value]
    assert fid in h.master.frameworks


def test_accept_of_an_unknown_offer_id_loses_every_task_without_a_uuid() -> None:
    h = Harness()
    fid = h.subscribe(info())
    h.offers()
    accept = Accept(
        offer_ids=(OfferID("nope"),),
        operations=(
            Operation(type="LAUNCH", launch=LaunchOperation(task_infos=(task_info("a"), task_info("b")))),
        ),
    )
    _, effects = h.call(fid, accept=accept)
    updates = [e.update.status for e in of_type(effects, "UPDATE") if e.update]
    assert [(u.task_id.value, u.state, u.uuid) for u in updates] == [
        ("a", TaskState.TASK_LOST, None),
        ("b", TaskState.TASK_LOST, None),
    ]
    assert not any(isinstance(e, LaunchTasks) for e in effects)


# --- status updates ------------------------------------------------------------------------------


def test_updates_are_forwarded_resources_freed_at_the_latest_state_and_the_task_forgotten_on_ack() -> None:
    h = Harness()
    fid = h.subscribe(info())
    offer = h.offers()[0]
    effects = launch(h, fid, offer, task_info("t", cpus=4))
    assert [type(e) for e in effects] == [LaunchTasks]
    out = h.master.status_update(
        "S1", fid, agent_status("t", TaskState.TASK_RUNNING), TaskState.TASK_FINISHED, 1.0
    )
    (forwarded,) = of_type(out, "UPDATE")
    assert forwarded.update is not None and forwarded.update.status.state == TaskState.TASK_RUNNING
    # The agent already knows the task finished: its resources are free before the scheduler acks.
    assert Resources.parse(h.offers(1.5)[0].resources).scalar("cpus") == 4.0
    terminal = agent_status("t", TaskState.TASK_FINISHED, uuid="gKVpwESNT4m/ehj+buITXQ==")
    h.master.status_update("S1", fid, terminal, TaskState.TASK_FINISHED, 2.0)
    assert "t" in h.master.frameworks[fid].tasks
    _, effects = h.call(
        fid, acknowledge=Acknowledge(agent_id=AgentID("S1"), task_id=TaskID("t"), uuid=terminal.uuid or "")
    )
    assert effects == [AcknowledgeUpdate("S1", fid, "t", terminal.uuid or "")]
    assert "t" not in h.master.frameworks[fid].tasks
    assert [t.info.task_id.value for t in h.master.frameworks[fid].completed_tasks] == ["t"]


def test_kill_waits_for_a_disconnected_agent_and_is_resent_when_it_returns() -> None:
    h = Harness(agent_ping_timeout_s=60.0)
    fid = h.subscribe(info())
    offer = h.offers()[0]
    launch(h, fid, offer, task_info("t"))
    h.master.agent_disconnected("S1", 1.0)
    status, effects = h.call(fid, kill=Kill(task_id=TaskID("t")))
    assert status == 202 and effects == []
    record = h.master.agents["S1"].record
    reported = ReportedTask(fid, task_info("t"), TaskState.TASK_RUNNING)
    out = h.master.reregister_agent(record, [reported], [info(fid=fid)], 2.0)
    assert KillTask("S1", fid, "t", 3.0) in out


def test_agent_not_back_after_a_failover_becomes_unreachable_and_tasks_are_unknown_until_then() -> None:
    h = Harness(agents=2, agent_reregister_timeout_s=10.0)
    fid = h.subscribe(info("PARTITION_AWARE"))
    registry = h.master.registry()
    master = Master(
        MasterConfig(agent_reregister_timeout_s=10.0), master_id="M2", now=100.0, registry=registry
    )
    master.reregister_agent(h.master.agents["S1"].record, [], [], 100.0)
    out = master.subscribe("s9", subscribe_call(info("PARTITION_AWARE", fid=fid)), 100.0)
    assert of_type(out, "SUBSCRIBED")
    call = SchedulerCall(
        type="RECONCILE",
        framework_id=FrameworkID(fid),
        reconcile=Reconcile(tasks=(ReconcileTask(task_id=TaskID("x"), agent_id=AgentID("S2")),)),
    )
    reply, effects = master.handle_call(call, "s9", 101.0)
    assert reply.status == 202 and effects == []  # S2 is still recovering: no answer at all
    out = master.tick(110.0)
    assert [
        e.failure.agent_id.value for e in of_type(out, "FAILURE") if e.failure and e.failure.agent_id
    ] == ["S2"]
    reply, effects = master.handle_call(call, "s9", 111.0)
    (answer,) = of_type(effects, "UPDATE")
    assert answer.update is not None and answer.update.status.state == TaskState.TASK_UNREACHABLE


def test_executor_exit_is_a_failure_event_only_for_known_executors() -> None:
    h = Harness()
    fid = h.subscribe(info())
    offer = h.offers()[0]
    custom = msgspec.structs.replace(
        task_info("t"),
        command=None,
        executor=ExecutorInfo(executor_id=ExecutorID("e1"), command=CommandInfo(value="./exec")),
    )
    effects = launch(h, fid, offer, custom)
    assert any(isinstance(e, LaunchTasks) for e in effects)
    assert h.master.executor_exited("S1", fid, "nope", 0, 1.0) == []
    (failure,) = of_type(h.master.executor_exited("S1", fid, "e1", 256, 1.0), "FAILURE")
    assert failure.failure is not None and failure.failure.executor_id == ExecutorID("e1")
    assert failure.failure.status == 256


# --- EventStream -----------------------------------------------------------------------------------


def test_event_stream_writes_chunks_and_ends_with_the_last_chunk() -> None:
    left, right = socket.socketpair()
    try:
        stream = EventStream("s", limit=10)
        stream.send(b"5\nhello")
        stream.send(b"3\nabc")
        stream.close()
        stream.pump(left, left.sendall)
        left.shutdown(socket.SHUT_WR)
        data = b""
        while chunk := right.recv(4096):
            data += chunk
        assert data == b"c\r\n5\nhello3\nabc\r\n0\r\n\r\n"  # one chunk of 12 bytes, then the end
    finally:
        left.close()
        right.close()


def test_a_subscriber_that_falls_behind_is_dropped_without_blocking_the_sender() -> None:
    left, right = socket.socketpair()
    left.setblocking(True)
    try:
        stream = EventStream("s", limit=5)
        writer = threading.Thread(target=stream.pump, args=(left, left.sendall))
        writer.start()
        record = b"x" * 65536
        for _ in range(1000):  # nobody reads ``right``: the socket buffer fills, the queue grows
            stream.send(record)
        writer.join(timeout=10)
        assert not writer.is_alive(), "the writer must give up once the subscriber is dropped"
        stream.send(b"ignored")  # sending to a dropped stream is harmless
    finally:
        left.close()
        right.close()
