"""Rolling restart (``RestartRequested``), and the snapshot's reconciliation time and running decline
totals that the metrics read. Invariants are checked after every step by the harness."""

from __future__ import annotations

from collections.abc import Callable

from framework.model.events import ConfigApplied, Disconnected, RestartRequested, Subscribed
from framework.model.operations import Kill, Launch
from framework.model.proto import TaskState
from framework.model.tasks import TaskId
from framework.testing.builders import make_config, make_offer, make_record
from tests.unit.core.conftest import BASIC, Harness, of_type

S = TaskState
MakeState = Callable[..., Harness]

CHECKED = BASIC.replace("constraints: []", "constraints: []\n    health_check: {type: tcp, port: 80}")


def web_running(h: Harness, *, healthy: bool | None = None) -> list[TaskId]:
    h.offers(make_offer(hostname="a", cpus=8), make_offer(hostname="b", cpus=8))
    fields = {} if healthy is None else {"healthy": healthy}
    h.run_all("web", **fields)
    h.run_all("squid")
    return h.task_ids("web")


def test_a_rolling_restart_replaces_every_task_one_at_a_time(state: Harness) -> None:
    old = web_running(state)
    assert len(old) == 2
    ops = state.handle(RestartRequested("web"))
    (first,) = of_type(ops, Kill)
    assert first.task_id == old[0] and first.reason == "rolling restart (2 task(s) left)"
    assert state.state.snapshot().service("web").restart_pending == 1
    # Nothing more while the first is being killed, nor while its replacement starts.
    assert of_type(state.tick(), Kill) == []
    state.update(old[0], S.TASK_KILLED, after=1)
    (replacement,) = state.launched(state.offers(make_offer(hostname="c", cpus=8), after=1))
    assert replacement.startswith("web.0.")
    assert of_type(state.tick(), Kill) == []
    state.update(replacement, S.TASK_STARTING, after=1)
    assert of_type(state.tick(), Kill) == []
    state.update(replacement, S.TASK_RUNNING, after=1)
    (second,) = of_type(state.tick(), Kill)
    assert second.task_id == old[1]
    state.update(old[1], S.TASK_KILLED, after=1)
    (last,) = state.launched(state.offers(make_offer(hostname="c", cpus=8), after=1))
    state.update(last, S.TASK_RUNNING, after=1)
    state.tick()
    snapshot = state.state.snapshot()
    assert snapshot.service("web").restart_pending == 0 and snapshot.service("web").running == 2
    assert not set(old) & set(state.task_ids("web"))
    assert [n.kind for n in snapshot.notes].count("restart_done") == 1
    # Only the restart's two kills, and nothing else of the service was touched.
    kills = [op for _, ops in state.history for op in of_type(ops, Kill)]
    assert [k.task_id for k in kills] == old


def test_a_restart_waits_for_the_replacement_to_be_healthy(make_state: MakeState) -> None:
    h = make_state(CHECKED)
    h.subscribe()
    old = web_running(h, healthy=True)
    (first,) = of_type(h.handle(RestartRequested("web")), Kill)
    h.update(first.task_id, S.TASK_KILLED, after=1)
    (replacement,) = h.launched(h.offers(make_offer(hostname="c", cpus=8), after=1))
    h.update(replacement, S.TASK_RUNNING, after=1)  # no health verdict yet
    assert of_type(h.tick(), Kill) == []
    h.update(replacement, S.TASK_RUNNING, healthy=True, after=1)
    (second,) = of_type(h.tick(), Kill)
    assert second.task_id == old[1]


def test_a_restart_pauses_while_disconnected_and_resumes_after_reconciliation(state: Harness) -> None:
    old = web_running(state)
    state.handle(Disconnected("stream ended"))
    assert of_type(state.handle(RestartRequested("web")), Kill) == []
    assert of_type(state.tick(), Kill) == []
    ops = state.handle(Subscribed("fw-1"), after=1)
    for tid in state.task_ids("web") + state.task_ids("squid"):
        state.update(tid, S.TASK_RUNNING, reason="REASON_RECONCILIATION")
    (kill,) = of_type(state.tick(), Kill)
    assert kill.task_id == old[0]
    assert of_type(ops, Launch) == []


def test_restarting_an_unknown_or_empty_service_changes_nothing(state: Harness) -> None:
    assert state.handle(RestartRequested("nope")) == []
    assert state.state.snapshot().notes[-1].kind == "restart_ignored"
    state.handle(RestartRequested("web"))  # nothing runs yet: nothing to restart
    assert state.state.snapshot().service("web").restart_pending == 0
    web_running(state)
    assert of_type(state.tick(), Kill) == []


def test_a_restart_of_a_service_removed_by_a_reload_is_dropped(state: Harness) -> None:
    web_running(state)
    state.handle(RestartRequested("web"))
    state.handle(ConfigApplied(make_config(BASIC.split("  web:")[0])), after=1)
    assert [s.name for s in state.state.snapshot().services] == ["squid"]
    state.tick()  # the removed service's tasks are killed as such, not as a restart
    reasons = {op.reason for _, ops in state.history[-2:] for op in of_type(ops, Kill)}
    assert reasons == {"service 'web' is no longer configured"}


def test_the_snapshot_tells_how_long_reconciliation_took(make_state: MakeState) -> None:
    stored = [make_record("web.0.a", S.TASK_RUNNING, hostname="a")]
    h = make_state(BASIC, tasks=stored)
    assert h.state.snapshot().reconciliation_s is None
    h.subscribe()
    assert h.state.snapshot().reconciliation_s is None
    h.update("web.0.a", S.TASK_RUNNING, reason="REASON_RECONCILIATION", after=2.5)
    assert h.state.snapshot().reconciliation_s == 2.5


def test_declines_are_totalled_by_reason_across_offer_batches(state: Harness) -> None:
    web_running(state)
    state.offers(make_offer(hostname="a"), make_offer(hostname="b"), after=1)
    state.offers(make_offer(hostname="c"), after=1)
    snapshot = state.state.snapshot()
    assert snapshot.decline_reasons == {"no demand": 1}
    assert snapshot.declines_by_reason == {"no demand": 3}


def test_a_rolling_restart_goes_on_after_steward_restarts(make_state: MakeState) -> None:
    h = make_state(BASIC.replace("instances: 2", "instances: 3"))
    h.subscribe()
    h.offers(make_offer(hostname="a", cpus=8), make_offer(hostname="b", cpus=8))
    h.run_all("web")
    h.run_all("squid")
    old = sorted(h.task_ids("web"), key=lambda t: h.state.tasks[t].slot)
    ops = h.handle(RestartRequested("web"))
    (persist,) = [op for op in ops if type(op).__name__ == "PersistTasks"]
    assert {r.task_id for r in persist.records if r.restart_requested} == set(old)
    (first,) = of_type(ops, Kill)
    h.update(first.task_id, S.TASK_KILLED, after=1)
    (replacement,) = h.launched(h.offers(make_offer(hostname="c", cpus=8), after=1))
    assert not h.state.tasks[replacement].restart_requested
    # Steward stops here; a new one starts on what the store holds.
    stored = list(h.state.tasks.values())
    again = make_state(BASIC.replace("instances: 2", "instances: 3"), tasks=stored)
    assert again.state.snapshot().service("web").restart_pending == 2
    again.subscribe()
    for record in stored:
        agent = record.agent_id or "agent-x"
        again.update(record.task_id, S.TASK_RUNNING, agent_id=agent, reason="REASON_RECONCILIATION")
    killed = []
    for _ in range(2):
        (kill,) = of_type(again.tick(), Kill)
        assert kill.reason.startswith("rolling restart")
        killed.append(kill.task_id)
        again.update(kill.task_id, S.TASK_KILLED, after=1)
        (new,) = again.launched(again.offers(make_offer(hostname="d", cpus=8), after=1))
        again.update(new, S.TASK_RUNNING, agent_id="agent-d", after=1)
    assert sorted(killed) == sorted(t for t in old if t != first.task_id)
    assert of_type(again.tick(), Kill) == []
    assert again.state.snapshot().service("web").restart_pending == 0
    assert replacement in again.state.tasks, "the replacement made before the restart was left alone"
