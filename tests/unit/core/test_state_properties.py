"""Random sequences of offers, updates, targets, failures and time keep the core's promises.

After every step: ``check_invariants`` (indexes, slots, counts, launches inside their offers), and
per operation list: every offer answered exactly once, every launched task written before its
launch, every acknowledged update written before its acknowledgement, no kill while unreconciled.
"""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from framework.core.state import CoreSettings, SchedulerState
from framework.model.events import (
    CallFailed,
    Disconnected,
    Event,
    OffersReceived,
    StatusUpdated,
    Subscribed,
    TargetChanged,
    Tick,
)
from framework.model.operations import (
    Acknowledge,
    Decline,
    ForgetTasks,
    Kill,
    Launch,
    Operation,
    PersistTasks,
)
from framework.model.proto import TaskState
from framework.testing.builders import make_config, make_offer, make_status
from tests.unit.core.conftest import counter_suffixes

CONFIG = make_config(
    """
    services:
      cvmfs:
        kind: cvmfs
        container: {image: cvmfs}
        resources: {cpus: 0.5, mem: 256MiB}
        health_check: {type: command, command: "true", interval: 5s, consecutive_failures: 2}
      squid:
        kind: squid
        container: {image: squid}
        resources: {cpus: 1, mem: 1GiB}
        autoscale: {min: 1, max: 3, source: {type: squid}, target_per_instance: 10}
        health_check: {type: tcp, interval: 5s, consecutive_failures: 2}
      startd:
        kind: startd
        container: {image: htcondor}
        resources: {cpus: 1, mem: 1GiB}
        instances: 3
        startd: {condor_host: cm, pool_token_file: /t}
      web:
        kind: generic
        container: {image: nginx}
        resources: {cpus: 0.5, mem: 128MiB, fixed_ports: [8080]}
        instances: 2
        constraints: [{max_per: hostname, count: 1}]
    """
)
HOSTS = ("h1", "h2", "h3", "h4")
STATES = list(TaskState)


@dataclass(frozen=True)
class OfferStep:
    hosts: tuple[str, ...]
    cpus: float


@dataclass(frozen=True)
class UpdateStep:
    pick: int
    state: TaskState
    healthy: bool | None
    uuid: bool


@dataclass(frozen=True)
class UnknownStep:
    service: str
    slot: int
    state: TaskState
    agent: str


@dataclass(frozen=True)
class TargetStep:
    service: str
    instances: int | None


@dataclass(frozen=True)
class TickStep:
    seconds: float


@dataclass(frozen=True)
class ConnectionStep:
    up: bool


@dataclass(frozen=True)
class FailStep:
    pick: int


Step = OfferStep | UpdateStep | UnknownStep | TargetStep | TickStep | ConnectionStep | FailStep

steps = st.one_of(
    st.builds(
        OfferStep,
        st.lists(st.sampled_from(HOSTS), min_size=1, max_size=4).map(tuple),
        st.sampled_from([0.4, 1.0, 2.5, 8.0]),
    ),
    st.builds(
        UpdateStep,
        st.integers(0, 20),
        st.sampled_from(STATES),
        st.sampled_from([None, True, False]),
        st.booleans(),
    ),
    st.builds(
        UnknownStep,
        st.sampled_from(["web", "squid", "cvmfs", "gone"]),
        st.integers(0, 4),
        st.sampled_from(STATES),
        st.sampled_from(["agent-h1", "agent-h9"]),  # h9 is never offered: its host stays unknown
    ),
    st.builds(
        TargetStep, st.sampled_from(["squid", "web", "cvmfs"]), st.one_of(st.none(), st.integers(0, 5))
    ),
    st.builds(TickStep, st.sampled_from([0.5, 1.0, 5.0, 30.0, 120.0, 400.0])),
    st.builds(ConnectionStep, st.booleans()),
    st.builds(FailStep, st.integers(0, 20)),
)


def check_operations(event: Event, ops: list[Operation], state: SchedulerState) -> None:
    written: set[str] = set()
    for op in ops:
        if isinstance(op, PersistTasks):
            written.update(r.task_id for r in op.records)
        elif isinstance(op, ForgetTasks):
            written.update(op.task_ids)
        elif isinstance(op, Launch):
            assert set(op.task_ids) <= written, "a launch must be stored before it is sent"
        elif isinstance(op, Acknowledge):
            assert op.status.uuid is not None
            task_id = op.status.task_id.value
            assert task_id in written or (task_id not in state.tasks and op.status.state.is_terminal), (
                "acknowledge only what is stored"
            )
        elif isinstance(op, Kill):
            assert state.reconciled, "no kill before reconciliation has finished"
    if isinstance(event, OffersReceived):
        answered = [o for op in ops if isinstance(op, Launch) for o in op.offer_ids]
        answered += [o for op in ops if isinstance(op, Decline) for o in op.offer_ids]
        assert sorted(answered) == sorted(o.id.value for o in event.offers), "each offer answered once"


@settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(st.lists(steps, min_size=1, max_size=40))
def test_random_histories_keep_the_invariants(history: list[Step]) -> None:
    now = 100.0
    state = SchedulerState(
        CONFIG,
        now=now,
        new_suffix=counter_suffixes(),
        settings=CoreSettings(kill_rate_per_minute=6, kill_burst=3, unreachable_replace_after_s=60),
    )
    connected = False
    previous_ops: list[Operation] = []
    for step in history:
        event: Event
        match step:
            case OfferStep(hosts, cpus):
                event = OffersReceived(
                    tuple(make_offer(hostname=h, cpus=cpus, ports=[(8000, 8100)]) for h in hosts)
                )
            case UpdateStep(pick, task_state, healthy, uuid):
                ids = sorted(state.tasks)
                if not ids:
                    continue
                record = state.tasks[ids[pick % len(ids)]]
                event = StatusUpdated(
                    make_status(
                        record.task_id,
                        task_state,
                        healthy=healthy,
                        uuid="dQ==" if uuid else None,
                        agent_id=record.agent_id,
                    )
                )
            case UnknownStep(service, slot, task_state, agent):
                event = StatusUpdated(make_status(f"{service}.{slot}.x{now:.0f}", task_state, agent_id=agent))
            case TargetStep(service, instances):
                event = TargetChanged(service, instances, "test")
            case TickStep(seconds):
                now += seconds
                event = Tick()
            case ConnectionStep(up):
                if up == connected:
                    continue
                connected = up
                event = Subscribed("fw-1") if up else Disconnected("test")
            case FailStep(pick):
                if not previous_ops:
                    continue
                event = CallFailed(previous_ops[pick % len(previous_ops)], "test failure")
        ops = state.handle(event, now)
        check_operations(event, ops, state)
        state.check_invariants()
        previous_ops = ops or previous_ops
    state.handle(Tick(), now + 1)
    state.check_invariants()
    snapshot = state.snapshot()
    assert {s.name for s in snapshot.services} == set(CONFIG.services)
    assert all(s.counting >= 0 and s.pending >= 0 for s in snapshot.services)
