"""``SchedulerState`` driven by scripted events and a fake clock; invariants are checked after every
step by the harness (``conftest.Harness``) and again at teardown."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import msgspec
import pytest

from framework.config import load_config
from framework.core.state import CoreSettings
from framework.model.events import (
    BackoffResetRequested,
    CallFailed,
    ConfigApplied,
    Disconnected,
    OfferRescinded,
    TargetChanged,
)
from framework.model.operations import (
    Acknowledge,
    Decline,
    ForgetTasks,
    Kill,
    Launch,
    PersistFrameworkId,
    PersistTasks,
    Reconcile,
    Revive,
    Suppress,
)
from framework.model.proto import TaskState
from framework.model.tasks import LocalState, OfferId, TaskId
from framework.testing.builders import make_config, make_offer, make_record
from tests.unit.core.conftest import BASIC, SITE, Harness, of_type
from tests.unit.mesos.test_schema_conformance import check

S = TaskState
MakeState = Callable[..., Harness]


def steady(h: Harness, *hosts: str) -> None:
    """Offer ``hosts`` and report every launched task RUNNING."""
    h.offers(*(make_offer(hostname=host, cpus=8) for host in hosts))
    for service in ("web", "squid"):
        h.run_all(service, after=1)  # one second apart: the later ones are the younger


# --- launches are idempotent and written ahead ----------------------------------------------------


def test_offers_arriving_twice_never_launch_a_task_twice(state: Harness) -> None:
    first = state.offers(make_offer(hostname="a"), make_offer(hostname="b"))
    launched = state.launched(first)
    assert sorted(launched) == ["squid.0.t1", "squid.1.t3", "web.0.t2", "web.1.t4"]
    again = state.offers(make_offer(hostname="a"), make_offer(hostname="b"), after=0.5)
    assert state.launched(again) == []
    (decline,) = of_type(again, Decline)
    assert decline.reasons == ("no demand", "no demand") and decline.refuse_seconds == 120.0
    state.update("web.0.t2", S.TASK_STARTING, after=1)
    state.update("web.0.t2", S.TASK_STAGING)  # late and stale: ignored
    assert state.state.tasks[TaskId("web.0.t2")].state is S.TASK_STARTING
    assert state.launched(state.offers(make_offer(hostname="c"), after=1)) == []
    assert state.state.snapshot().counters["update_stale"] == 1


def test_every_launch_is_stored_before_it_is_sent(state: Harness) -> None:
    ops = state.offers(make_offer(hostname="a", cpus=2.5))
    assert [type(op) for op in ops][:2] == [PersistTasks, Launch]
    (persist,) = of_type(ops, PersistTasks)
    (launch,) = of_type(ops, Launch)
    assert {r.task_id for r in persist.records} == set(launch.task_ids)
    assert all(r.state is LocalState.LAUNCHING for r in persist.records)
    assert launch.agent_id == "agent-a" and launch.role == "*"
    assert launch.refuse_seconds == 120.0


def test_updates_are_acknowledged_after_they_are_stored_and_only_with_a_uuid(state: Harness) -> None:
    state.offers(make_offer(hostname="a"))
    ops = state.update("web.0.t2", S.TASK_RUNNING, uuid="dXVpZC0x", after=1)
    assert [type(op) for op in ops] == [PersistTasks, Acknowledge]
    (ack,) = of_type(ops, Acknowledge)
    assert ack.status.uuid == "dXVpZC0x" and ack.status.task_id.value == "web.0.t2"
    assert of_type(ops, PersistTasks)[0].records[0].state is S.TASK_RUNNING
    master = state.update("web.0.t2", S.TASK_RUNNING, reason="REASON_RECONCILIATION")
    assert of_type(master, Acknowledge) == []
    ended = state.update("web.0.t2", S.TASK_FINISHED, uuid="dXVpZC0y", after=1)
    assert [type(op) for op in ended] == [ForgetTasks, Acknowledge]
    assert ended[0].match(task_ids=("web.0.t2",))
    assert "web.0.t2" not in state.state.tasks
    unknown_end = state.update("web.9.zz", S.TASK_KILLED, uuid="dXVpZC0z")
    assert [type(op) for op in unknown_end] == [Acknowledge]


# --- reconciliation -------------------------------------------------------------------------------


def test_reconciliation_retries_with_backoff_and_holds_kills_until_every_task_answered(
    make_state: MakeState,
) -> None:
    stored = [
        make_record("web.0.a", S.TASK_RUNNING, hostname="a"),
        make_record("web.1.b", S.TASK_RUNNING, hostname="b"),
        make_record("web.2.c", S.TASK_STAGING, hostname="c"),
    ]
    h = make_state(BASIC.replace("instances: 2", "instances: 3"), tasks=stored)
    ops = h.subscribe()
    assert isinstance(ops[0], PersistFrameworkId) and ops[0].framework_id == "fw-1"
    (explicit,) = of_type(ops, Reconcile)
    assert not explicit.implicit
    assert sorted(explicit.tasks) == [("web.0.a", "agent-a"), ("web.1.b", "agent-b"), ("web.2.c", "agent-c")]
    assert not h.state.reconciled
    h.handle(TargetChanged("web", 1, "operator"))  # scale down 3 -> 1 ... but not yet
    retries: list[tuple[float, Reconcile]] = []
    for _ in range(8):
        ops = h.tick(1.0)
        assert of_type(ops, Kill) == []
        retries.extend((h.now, op) for op in of_type(ops, Reconcile))
    assert [round(at - 1000.0) for at, _ in retries] == [1, 3, 7]  # 1 s, then 2 s, then 4 s
    h.update("web.0.a", S.TASK_RUNNING, reason="REASON_RECONCILIATION")
    ops = h.update("web.1.b", S.TASK_RUNNING, reason="REASON_RECONCILIATION", after=1)
    assert of_type(ops, Reconcile) == [] and not h.state.reconciled
    ops = h.update("web.2.c", S.TASK_STARTING, reason="REASON_RECONCILIATION", after=1)
    assert [op.implicit for op in of_type(ops, Reconcile)] == [True]
    assert h.state.reconciled
    kills = of_type(h.tick(), Kill)
    assert [k.task_id for k in kills] == ["web.2.c", "web.1.b"]  # not yet running first, then the youngest
    assert all(k.reason == "scale down to 1" for k in kills)


def test_a_task_the_master_does_not_know_is_dropped_from_reconciliation(make_state: MakeState) -> None:
    h = make_state(tasks=[make_record("web.0.a", LocalState.LAUNCHING, hostname="a")])
    h.subscribe()
    ops = h.update("web.0.a", S.TASK_UNKNOWN, reason="REASON_RECONCILIATION")
    assert of_type(ops, ForgetTasks) and "web.0.a" not in h.state.tasks
    assert [op.implicit for op in of_type(ops, Reconcile)] == [True]
    assert len(h.launched(h.offers(make_offer(hostname="a")))) >= 1


def test_unknown_tasks_are_adopted_into_their_slot_or_killed(state: Harness) -> None:
    steady(state, "a", "b")
    adopted = state.update(
        "web.7.old", S.TASK_RUNNING, agent_id="agent-c", reason="REASON_RECONCILIATION", after=1
    )
    (persist,) = of_type(adopted, PersistTasks)
    assert persist.records[0].adopted and persist.records[0].slot == 7
    surplus = of_type(state.tick(), Kill)
    assert [(k.task_id, k.reason) for k in surplus] == [("web.7.old", "scale down to 2")]  # the youngest
    foreign = state.update("db.0.x", S.TASK_RUNNING, agent_id="agent-c")
    assert [(k.task_id, k.reason) for k in of_type(foreign, Kill)] == [
        ("db.0.x", "unknown task: no configured service")
    ]
    odd = state.update("not-ours", S.TASK_STAGING, agent_id="agent-c")
    assert [k.task_id for k in of_type(odd, Kill)] == ["not-ours"]
    twin = state.update("web.0.twin", S.TASK_STARTING, agent_id="agent-c")
    assert [(k.task_id, k.reason) for k in of_type(twin, Kill)] == [
        ("web.0.twin", "duplicate in slot 0 (keeping web.0.t2)")
    ]


def test_disconnection_holds_kills_until_the_next_reconciliation(state: Harness) -> None:
    steady(state, "a", "b")
    state.handle(Disconnected("stream closed"))
    state.handle(TargetChanged("web", 0, "operator"), after=1)
    assert of_type(state.tick(), Kill) == []
    ops = state.subscribe()
    assert of_type(ops, Kill) == [] and not state.state.reconciled
    for tid in state.task_ids("web") + state.task_ids("squid"):
        state.update(tid, S.TASK_RUNNING, reason="REASON_RECONCILIATION")
    assert state.state.reconciled
    assert sorted(k.task_id for k in of_type(state.tick(), Kill)) == ["web.0.t2", "web.1.t4"]


def test_launches_without_news_are_reconciled_and_implicit_reconciliation_repeats(state: Harness) -> None:
    state.offers(make_offer(hostname="a", cpus=1.5))
    ops = state.run_for(180)
    explicit = [op for op in of_type(ops, Reconcile) if not op.implicit]
    assert [t for op in explicit for t, _ in op.tasks] == ["squid.0.t1"]
    ops = state.run_for(600)
    assert any(op.implicit for op in of_type(ops, Reconcile))


# --- offers: declines, suppress, revive -----------------------------------------------------------


def test_suppress_when_idle_and_revive_when_demand_rises_at_most_every_few_seconds(state: Harness) -> None:
    subscribed = state.history[0][1]
    assert of_type(subscribed, Revive) == [Revive(("*",))]
    ops = state.offers(make_offer(hostname="a"), make_offer(hostname="b"), after=1)
    assert of_type(ops, Suppress) == [Suppress(("*",))]
    assert state.state.snapshot().suppressed_roles == {"*"}
    state.run_all("web")
    state.update(state.slot("web", 0), S.TASK_FAILED, after=1)  # the first revive was 2 s ago
    assert of_type(state.tick(1), Revive) == []  # 3 s after the last revive
    assert of_type(state.tick(1), Revive) == []
    assert of_type(state.tick(1), Revive) == [Revive(("*",))]  # 5 s: revive_min_interval
    assert state.state.snapshot().suppressed_roles == frozenset()
    ops = state.offers(make_offer(hostname="c"), after=2)
    assert state.launched(ops) == ["web.0.t5"] and of_type(ops, Suppress) == [Suppress(("*",))]


def test_demand_left_waiting_without_offers_revives_again(state: Harness) -> None:
    ops = state.run_for(60)
    revives = [op for op in ops if isinstance(op, Revive)]
    assert len(revives) == 2  # 30 s without an offer, twice
    assert of_type(state.offers(make_offer(hostname="a"), after=1), Revive) == []


def test_transient_declines_get_a_short_filter(make_state: MakeState) -> None:
    h = make_state(SITE.replace("services:", "  roles: [site, other]\nservices:"))
    h.subscribe()
    idle = make_offer(hostname="a", role="other")
    waiting = make_offer(hostname="b", cpus=0.6, mem=300, role="site")  # room for a CVMFS only
    ops = h.offers(idle, waiting)
    declines = {d.refuse_seconds: d for d in of_type(ops, Decline)}
    assert set(declines) == {5.0, 600.0}
    assert declines[600.0].offer_ids == (idle.id.value,)
    assert declines[600.0].reasons == ("no demand: no service runs in role 'other'",)
    assert declines[5.0].offer_ids == (waiting.id.value,)
    assert declines[5.0].reasons[0].startswith("cvmfs: dependency: no squid endpoint published yet")
    assert h.state.snapshot().decline_reasons == {"no demand": 1, "dependency": 1}


def test_a_rescinded_offer_is_only_counted(state: Harness) -> None:
    assert state.handle(OfferRescinded(OfferId("offer-x"))) == []
    assert state.state.snapshot().counters["offers_rescinded"] == 1


# --- partitions -----------------------------------------------------------------------------------


@pytest.mark.parametrize("replacement_runs", [True, False])
def test_an_unreachable_task_is_replaced_after_the_wait_and_the_surplus_killed_when_it_returns(
    state: Harness, replacement_runs: bool
) -> None:
    steady(state, "a", "b")
    state.update("web.0.t2", S.TASK_UNREACHABLE, reason="REASON_AGENT_REMOVED", after=10)
    assert state.launched(state.offers(make_offer(hostname="c"), after=200)) == []
    state.run_for(100)
    ops = state.offers(make_offer(hostname="c"), after=1)
    assert state.launched(ops) == ["web.0.t5"]  # same slot, new id
    assert state.state.snapshot().service("web").unreachable == 1
    if replacement_runs:
        state.update("web.0.t5", S.TASK_RUNNING, after=5)
    back = state.update("web.0.t2", S.TASK_RUNNING, reason="REASON_AGENT_REREGISTERED", after=5)
    (kill,) = of_type(back, Kill)
    assert kill.task_id == "web.0.t5"  # the younger one, or the one not yet running
    assert kill.reason == "duplicate in slot 0 (keeping web.0.t2)"


def test_unreachable_tasks_are_never_killed_for_their_health(make_state: MakeState) -> None:
    h = make_state(
        BASIC.replace("constraints: []", "constraints: []\n    health_check: {type: tcp, port: 80}")
    )
    h.subscribe()
    h.offers(make_offer(hostname="a"), make_offer(hostname="b"))
    h.run_all("web", healthy=True)
    h.update("web.0.t2", S.TASK_RUNNING, healthy=False, after=1)
    h.update("web.0.t2", S.TASK_UNREACHABLE, after=1)
    assert of_type(h.run_for(60), Kill) == []


# --- kills ----------------------------------------------------------------------------------------


def test_kills_are_retried_until_a_terminal_update(state: Harness) -> None:
    steady(state, "a", "b")
    (kill,) = of_type(state.handle(TargetChanged("web", 1, "less load")), Kill)
    assert kill.grace_period_s == 30.0 and kill.task_id == "web.1.t4"  # the youngest
    ops = state.run_for(59)
    assert of_type(ops, Kill) == []
    assert of_type(state.tick(), Kill) == [kill]  # grace 30 s + retry 30 s
    state.update("web.1.t4", S.TASK_KILLED, after=1)
    assert of_type(state.run_for(120), Kill) == []


def test_a_failed_kill_call_is_sent_again(state: Harness) -> None:
    steady(state, "a", "b")
    (kill,) = of_type(state.handle(TargetChanged("web", 1, "less load")), Kill)
    state.handle(CallFailed(kill, "503 Service Unavailable"), after=1)
    assert of_type(state.tick(), Kill) == [kill]


def test_the_kill_rate_limit_holds_kills_back(make_state: MakeState) -> None:
    h = make_state(
        BASIC.replace("instances: 2", "instances: 6"),
        settings=CoreSettings(kill_rate_per_minute=2, kill_burst=2),
    )
    h.subscribe()
    h.offers(*(make_offer(hostname=n, cpus=8) for n in "abc"))
    h.run_all("web")
    first = of_type(h.handle(TargetChanged("web", 1, "quiet"), after=1), Kill)
    assert len(first) == 2
    assert h.state.snapshot().counters["kill_rate_limited"] >= 1
    later = of_type(h.run_for(29), Kill)
    assert later == []
    assert len(of_type(h.tick(), Kill)) == 1  # one token per 30 s
    sent = {k.task_id for k in first}
    fresh = [k for k in of_type(h.run_for(60), Kill) if k.task_id not in sent]
    assert len({k.task_id for k in fresh}) == 3  # at 60 s (and retries of the first two)
    assert h.state.snapshot().service("web").counting == 1


def test_health_kills_stop_when_the_breaker_opens(make_state: MakeState) -> None:
    config = BASIC.replace("instances: 2", "instances: 4").replace(
        "constraints: []",
        "constraints: []\n    health_check: {type: tcp, port: 80, interval: 10s, consecutive_failures: 3}",
    )
    h = make_state(config)
    h.subscribe()
    h.offers(*(make_offer(hostname=n, cpus=8) for n in "ab"))
    h.run_all("web", healthy=True)
    web = h.task_ids("web")
    h.update(web[0], S.TASK_RUNNING, healthy=False, after=1)
    assert of_type(h.run_for(29), Kill) == []
    (kill,) = of_type(h.tick(), Kill)
    assert kill.task_id == web[0] and kill.reason == "unhealthy for 30 s (limit 30 s)"
    for tid in web[1:4]:
        h.update(tid, S.TASK_RUNNING, healthy=False)
    assert {k.task_id for k in of_type(h.run_for(120), Kill)} == {web[0]}  # only retries of the first
    snapshot = h.state.snapshot()
    assert snapshot.service("web").breaker_open and snapshot.service("web").unhealthy == 3
    assert any(n.kind == "breaker_open" for n in snapshot.notes)
    h.update(web[1], S.TASK_RUNNING, healthy=True)
    h.update(web[2], S.TASK_RUNNING, healthy=True)
    kills = of_type(h.tick(), Kill)
    assert [k.task_id for k in kills] == [web[3]]
    assert not h.state.snapshot().service("web").breaker_open


# --- restart backoff ------------------------------------------------------------------------------


def test_failures_back_off_launches_and_a_healthy_run_resets_the_backoff(state: Harness) -> None:
    steady(state, "a", "b")
    state.update("web.0.t2", S.TASK_FAILED, after=1)
    ops = state.offers(make_offer(hostname="c"))
    assert state.launched(ops) == []
    (decline,) = of_type(ops, Decline)
    assert decline.reasons[0].startswith("web: backoff: until") and decline.refuse_seconds == 5.0
    assert state.launched(state.offers(make_offer(hostname="c"), after=1)) == ["web.0.t5"]
    state.update("web.0.t5", S.TASK_FAILED, after=1)
    assert state.state.snapshot().service("web").restart_failures == 2
    assert state.launched(state.offers(make_offer(hostname="c"), after=1.1)) == []
    assert state.launched(state.offers(make_offer(hostname="c"), after=0.1)) == ["web.0.t6"]
    state.update("web.0.t6", S.TASK_RUNNING, after=1)
    state.run_for(59)
    assert state.state.snapshot().service("web").restart_failures == 2  # old tasks prove nothing
    state.tick()
    assert state.state.snapshot().service("web").restart_failures == 0


def test_agent_loss_and_steward_kills_do_not_back_off(state: Harness) -> None:
    steady(state, "a", "b")
    state.update("web.0.t2", S.TASK_GONE, reason="REASON_AGENT_RESTARTED", after=1)
    state.update("squid.0.t1", S.TASK_DROPPED)
    assert state.state.snapshot().service("web").restart_failures == 0
    assert sorted(state.launched(state.offers(make_offer(hostname="c")))) == ["squid.0.t5", "web.0.t6"]


def test_an_operator_can_reset_a_backoff(make_state: MakeState) -> None:
    h = make_state(
        BASIC.replace("constraints: []", "constraints: []\n    restart_backoff: {initial: 10s, factor: 2}")
    )
    h.subscribe()
    steady(h, "a", "b")
    delays = []
    for _ in range(6):
        h.update(h.slot("web", 0), S.TASK_FAILED, after=1)
        delays.append(h.state.snapshot().service("web").backoff_until - h.now)  # type: ignore[operator]
        assert h.launched(h.offers(make_offer(hostname="c"), after=301)) != []
    assert delays == [10, 20, 40, 80, 160, 300]
    h.update(h.slot("web", 0), S.TASK_FAILED, after=1)
    assert h.launched(h.offers(make_offer(hostname="c"), after=100)) == []
    h.handle(BackoffResetRequested("web"))
    assert h.state.snapshot().service("web").backoff_until is None
    assert len(h.launched(h.offers(make_offer(hostname="c")))) == 1


# --- CVMFS, startds, squid ------------------------------------------------------------------------


def site_running(h: Harness) -> None:
    """Bring SITE up on hosts a and b: squids, then CVMFS, then startds, all running and healthy."""
    h.subscribe()
    h.offers(make_offer(hostname="a", cpus=8, mem=16384), make_offer(hostname="b", cpus=8, mem=16384))
    h.run_all("squid", healthy=True)
    assert h.state.endpoints() == {"squid": ("a:31000", "b:31000")}
    h.offers(
        make_offer(hostname="a", cpus=8, mem=16384), make_offer(hostname="b", cpus=8, mem=16384), after=6
    )
    h.run_all("cvmfs", healthy=True)
    h.offers(
        make_offer(hostname="a", cpus=8, mem=16384), make_offer(hostname="b", cpus=8, mem=16384), after=6
    )
    h.run_all("startd")


def test_a_site_comes_up_in_dependency_order(make_state: MakeState) -> None:
    h = make_state(SITE)
    site_running(h)
    services = [
        h.state.tasks[t].service for t in sorted(h.state.tasks, key=lambda t: h.state.tasks[t].launched_at)
    ]
    assert services == ["squid"] * 2 + ["cvmfs"] * 2 + ["startd"] * 4
    startds = [h.state.tasks[t] for t in h.task_ids("startd")]
    cvmfs = {h.state.tasks[t].hostname: t for t in h.task_ids("cvmfs")}
    assert all(s.depends_on == cvmfs[s.hostname] for s in startds)
    assert {s.hostname for s in startds} == {"a"}  # packed: the first host takes all four
    snapshot = h.state.snapshot()
    assert [s.pending for s in snapshot.services] == [0, 0, 0]
    assert snapshot.suppressed_roles == {"*"}


def test_a_cvmfs_restart_drains_that_hosts_startds_and_blocks_new_ones(make_state: MakeState) -> None:
    h = make_state(SITE)
    site_running(h)
    cvmfs_a = next(t for t in h.task_ids("cvmfs") if h.state.tasks[t].hostname == "a")
    on_a = sorted(t for t in h.task_ids("startd") if h.state.tasks[t].hostname == "a")
    ops = h.update(cvmfs_a, S.TASK_FAILED, uuid="dQ==", after=10)
    kills = of_type(ops, Kill)
    assert sorted(k.task_id for k in kills) == on_a
    assert {(k.reason, k.grace_period_s) for k in kills} == {("cvmfs restarted on host a", 600.0)}
    assert all(h.state.tasks[t].draining for t in on_a)
    kinds = [type(op) for op in ops]
    assert set(kinds[:2]) == {ForgetTasks, PersistTasks} and kinds[-1] is Acknowledge
    for tid in on_a:
        h.update(tid, S.TASK_KILLED, after=1)
    ops = h.offers(make_offer(hostname="a", cpus=8, mem=16384), after=10)
    assert [h.state.tasks[t].service for t in h.launched(ops)] == ["cvmfs"]
    new_cvmfs = h.launched(ops)[0]
    h.update(new_cvmfs, S.TASK_RUNNING, healthy=False)
    ops = h.offers(make_offer(hostname="a", cpus=8, mem=16384), after=1)
    assert (
        h.launched(ops) == []
        and "startd: dependency: cvmfs not healthy on a" in of_type(ops, Decline)[0].reasons[0]
    )
    h.update(new_cvmfs, S.TASK_RUNNING, healthy=True)
    ops = h.offers(make_offer(hostname="a", cpus=8, mem=16384), after=1)
    assert len(h.launched(ops)) == len(on_a)


def test_a_startd_that_exits_by_itself_is_replaced_without_backoff(make_state: MakeState) -> None:
    h = make_state(SITE)
    site_running(h)
    startd = h.task_ids("startd")[0]
    h.update(startd, S.TASK_FINISHED, after=1)
    assert h.state.snapshot().service("startd").restart_failures == 0
    ops = h.offers(make_offer(hostname="a", cpus=8, mem=16384), make_offer(hostname="b", cpus=8, mem=16384))
    assert [h.state.tasks[t].service for t in h.launched(ops)] == ["startd"]


def test_a_scale_down_removes_idle_startds_and_keeps_the_ones_running_jobs(make_state: MakeState) -> None:
    h = make_state(SITE)
    site_running(h)
    by_age = sorted(h.task_ids("startd"), key=lambda t: h.state.tasks[t].launched_at)
    busy = frozenset({by_age[-1], by_age[-2]})  # the two youngest run jobs: by age they would go first
    ops = h.handle(TargetChanged("startd", 2, "no idle jobs", busy=busy | {"not-ours@other"}), after=1)
    kills = of_type(ops, Kill)
    assert sorted(k.task_id for k in kills) == sorted(by_age[:2])
    assert {(k.reason, k.grace_period_s) for k in kills} == {("scale down to 2", 600.0)}
    for kill in kills:
        h.update(kill.task_id, S.TASK_KILLED, after=1)
    # An operator pin carries no busy set: what the source last said still counts.
    ops = h.handle(TargetChanged("startd", 1, "operator pin"), after=1)
    (kill,) = of_type(ops, Kill)
    assert kill.task_id in busy, "with only busy ones left, one of them goes (its kill is a drain)"


def test_squid_endpoints_follow_health_and_are_withdrawn_before_a_kill(make_state: MakeState) -> None:
    h = make_state(
        SITE.replace(
            "kind: squid",
            "kind: squid\n    autoscale: {min: 2, max: 4, source: {type: squid}, target_per_instance: 100}",
        )
    )
    h.subscribe()
    h.handle(TargetChanged("squid", 3, "load"))
    h.offers(*(make_offer(hostname=n, cpus=2, mem=4096) for n in "abc"))
    squids = h.task_ids("squid")
    h.update(squids[0], S.TASK_RUNNING, healthy=True)
    h.update(squids[1], S.TASK_RUNNING, after=1)  # no verdict yet: not published
    h.update(squids[2], S.TASK_RUNNING, healthy=True, after=1)
    assert h.state.endpoints() == {"squid": ("a:31000", "c:31000")}
    ops = h.handle(TargetChanged("squid", 2, "quiet"), after=1)
    # Withdrawn at once; the KILL (squid's drain) waits for clients to see it gone.
    assert h.state.endpoints() == {"squid": ("a:31000",)}
    assert h.state.snapshot().service("squid").endpoints == ("a:31000",)
    assert not of_type(ops, Kill)
    delay = CoreSettings().unpublish_before_kill_s
    assert not of_type(h.run_for(delay - 1), Kill)
    (kill,) = of_type(h.run_for(1), Kill)
    assert kill.task_id == squids[2]  # unverdicted squids[1] is older; the youngest running one goes


def test_a_squid_that_was_not_published_is_killed_at_once(make_state: MakeState) -> None:
    h = make_state(SITE)
    h.subscribe()
    h.offers(*(make_offer(hostname=n, cpus=2, mem=4096) for n in "ab"))
    squids = h.task_ids("squid")
    h.update(squids[0], S.TASK_RUNNING, healthy=True)
    h.update(squids[1], S.TASK_RUNNING, healthy=False, after=1)  # failing its check: not published
    assert h.state.endpoints() == {"squid": ("a:31000",)}
    kills = [k for k in of_type(h.run_for(31), Kill) if k.task_id == squids[1]]  # 3 checks at 10 s
    assert len(kills) == 1 and kills[0].reason.startswith("unhealthy")
    record = h.state.tasks[squids[1]]
    assert record.kill_requested_at is not None and record.kill_sent_at == record.kill_requested_at


# --- configuration, calls ---------------------------------------------------------------------------


def test_services_removed_from_the_configuration_are_killed(state: Harness) -> None:
    steady(state, "a", "b")
    config = make_config(BASIC.split("  web:")[0])
    kills = of_type(state.handle(ConfigApplied(config), after=1), Kill)
    assert sorted(k.task_id for k in kills) == ["web.0.t2", "web.1.t4"]
    assert {k.reason for k in kills} == {"service 'web' is no longer configured"}
    with pytest.raises(TypeError):
        state.state.handle(ConfigApplied({"services": {}}), state.now)


def test_a_failed_launch_abandons_its_tasks_without_backoff(state: Harness) -> None:
    ops = state.offers(make_offer(hostname="a"), make_offer(hostname="b"))
    (launch, _) = of_type(ops, Launch)
    ops = state.handle(CallFailed(launch, "connection reset"), after=1)
    assert of_type(ops, ForgetTasks) == [ForgetTasks(launch.task_ids)]
    assert not set(launch.task_ids) & set(state.state.tasks)
    again = state.offers(make_offer(hostname="c"))
    assert len(state.launched(again)) == len(launch.task_ids)
    assert state.state.snapshot().service("web").restart_failures == 0


def test_targets_for_unknown_or_per_host_services_are_ignored(make_state: MakeState) -> None:
    h = make_state(SITE)
    h.subscribe()
    assert h.handle(TargetChanged("nope", 3, "x")) == []
    assert h.handle(TargetChanged("cvmfs", 3, "x")) == []
    assert [n.kind for n in h.state.take_notes()].count("target_ignored") == 2
    assert h.state.take_notes() == []


def test_records_from_the_store_are_reconciled_then_kept(make_state: MakeState) -> None:
    stored = [make_record("squid.0.a", S.TASK_RUNNING, hostname="a", launched_at=9e9, running_since=9e9)]
    h = make_state(BASIC, tasks=stored)
    assert h.state.tasks[TaskId("squid.0.a")].launched_at == h.now
    ops = h.subscribe()
    assert of_type(ops, Reconcile)[0].tasks == (("squid.0.a", "agent-a"),)
    assert h.launched(h.offers(make_offer(hostname="a"), make_offer(hostname="b"))) == [
        "web.0.t1",  # squid is unique per host: squid.0.a holds host a
        "squid.1.t2",
        "web.1.t3",
    ]


def test_a_host_that_stops_offering_is_forgotten_with_its_per_host_demand(make_state: MakeState) -> None:
    h = make_state(
        """
        services:
          cvmfs: {kind: cvmfs, container: {image: cvmfs}, resources: {cpus: 1, mem: 256MiB}}
        """
    )
    h.subscribe()
    ops = h.offers(make_offer(hostname="a"), make_offer(hostname="gone", cpus=0.5), after=1)
    assert [h.state.tasks[t].hostname for t in h.launched(ops)] == ["a"]
    assert h.state.snapshot().service("cvmfs").pending == 1
    revives = of_type(h.run_for(600, step=10), Revive)
    assert len(revives) >= 10  # demand left waiting: revive every 30 s
    ops = h.run_for(300, step=10)
    assert h.state.snapshot().service("cvmfs").desired == 1
    assert of_type(ops, Suppress) == [Suppress(("*",))]
    assert any(n.kind == "hosts_forgotten" for n in h.state.snapshot().notes)
    assert h.state.snapshot().service("cvmfs").counting == 1  # a, silent as well, keeps its instance


def test_a_task_adopted_before_its_agent_was_offered_learns_its_host_later(make_state: MakeState) -> None:
    h = make_state(
        """
        services:
          cvmfs: {kind: cvmfs, container: {image: cvmfs}, resources: {cpus: 1, mem: 256MiB}}
        """
    )
    h.subscribe()
    h.update("cvmfs.0.old", S.TASK_RUNNING, agent_id="agent-a", reason="REASON_RECONCILIATION")
    assert h.state.tasks[TaskId("cvmfs.0.old")].hostname == ""
    assert of_type(h.run_for(5), Kill) == []  # its host is unknown: nothing to judge by
    ops = h.offers(make_offer(hostname="a"), make_offer(hostname="b"), after=1)
    assert h.state.tasks[TaskId("cvmfs.0.old")].hostname == "a"
    assert [h.state.tasks[t].hostname for t in h.launched(ops)] == ["b"]
    assert any(isinstance(op, PersistTasks) and op.records[0].hostname == "a" for op in ops)


def test_a_failed_store_write_abandons_the_launches_it_held(state: Harness) -> None:
    ops = state.offers(make_offer(hostname="a"))
    (persist,) = of_type(ops, PersistTasks)
    ops = state.handle(CallFailed(persist, "disk full"), after=1)
    assert of_type(ops, ForgetTasks) == [ForgetTasks(tuple(r.task_id for r in persist.records))]
    assert state.state.tasks == {}
    assert state.state.snapshot().counters["launches_abandoned"] == len(persist.records)


def test_failed_suppress_and_revive_calls_are_taken_again(state: Harness) -> None:
    (revive,) = of_type(state.history[0][1], Revive)
    state.handle(CallFailed(revive, "503"), after=1)
    assert state.state.snapshot().suppressed_roles == {"*"}
    assert of_type(state.run_for(3), Revive) == []  # not before revive_min_interval
    assert of_type(state.tick(), Revive) == [revive]
    ops = state.offers(make_offer(hostname="a"), make_offer(hostname="b"))
    (suppress,) = of_type(ops, Suppress)
    state.handle(CallFailed(suppress, "503"), after=1)
    assert state.state.snapshot().suppressed_roles == frozenset()
    assert of_type(state.tick(), Suppress) == [suppress]


def test_the_local_demo_comes_up_in_dependency_order_with_valid_task_infos(make_state: MakeState) -> None:
    config = load_config(Path(__file__).resolve().parents[3] / "examples" / "local-demo.yaml")
    h = make_state(config)
    h.subscribe()
    h.handle(TargetChanged("startd", 2, "two idle jobs"))
    agents = [f"agent-{i}" for i in (1, 2, 3)]
    infos = []
    for round_ in range(4):
        ops = h.offers(
            *(
                make_offer(hostname=a, cpus=4, mem=8192, disk=20000, ports=[(31000, 31999), (9618, 9618)])
                for a in agents
            ),
            after=6,
        )
        infos += [info for op in of_type(ops, Launch) for info in op.task_infos]
        for service in ("squid", "condor-cm", "cvmfs", "startd"):
            h.run_all(service, healthy=True)
        if round_ == 0:
            assert {h.state.tasks[t].service for t in h.state.tasks} == {"squid", "condor-cm"}
    assert sorted(h.state.tasks[t].service for t in h.state.tasks) == sorted(
        ["condor-cm", "squid", "squid", "cvmfs", "cvmfs", "cvmfs", "startd", "startd"]
    )
    for info in infos:
        assert check(json.loads(msgspec.json.encode(info)), "TaskInfo") == [], info.name
    cvmfs = next(i for i in infos if i.name.startswith("cvmfs."))
    assert cvmfs.command is not None and cvmfs.command.environment is not None
    proxy = cvmfs.command.environment.as_dict()["CVMFS_HTTP_PROXY"]
    assert proxy.count("http://agent-") == 2  # both squids, load-balanced
    assert h.state.snapshot().suppressed_roles == {"*"}
