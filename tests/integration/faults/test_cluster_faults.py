"""Steward (in this process) while the cluster fails under it: master failover, partitions, agent loss.

Each test starts Steward on a fast simulated cluster with a generic service spread over four
agents, waits until every instance runs, breaks something with the cluster's fault injection, and
checks the outcome on both sides: the cluster's ``/state`` and Steward's own snapshot and store.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from framework.core.state import CoreSettings
from framework.localcluster.cluster import LocalCluster
from framework.model.proto import TaskState
from framework.model.snapshot import StateSnapshot
from framework.runtime.app import Runtime
from tests.integration.faults.support import (
    cluster_tasks,
    converged,
    ended_tasks,
    framework_ids,
    problems,
    wait_for,
)

StartSteward = Callable[..., Runtime]
WEB = 8


def snapshot(runtime: Runtime) -> StateSnapshot:
    snap = runtime.scheduler.snapshot()
    assert snap is not None
    return snap


def running(cluster: LocalCluster, runtime: Runtime, desired: int = WEB) -> str:
    """Wait until ``desired`` web tasks run and Steward agrees (reconciled, store in step)."""

    def settled() -> bool:
        snap = runtime.scheduler.snapshot()
        if snap is None or not snap.reconciled or snap.framework_id is None:
            return False
        web = snap.service("web")
        return (
            converged(cluster, snap.framework_id, {"web": desired})
            and web.running == desired
            and web.counting == desired
            and not problems(
                cluster_tasks(cluster, snap.framework_id), runtime.store.load_tasks(), {"web": desired}
            )
        )

    wait_for(settled, f"{desired} web tasks running, with Steward reconciled and its store in step")
    framework_id = snapshot(runtime).framework_id
    assert framework_id is not None
    return framework_id


def busiest_agent(cluster: LocalCluster, framework_id: str) -> tuple[str, set[str]]:
    """The agent running the most of the framework's tasks, and those tasks."""
    by_agent: dict[str, set[str]] = {}
    for task in cluster_tasks(cluster, framework_id).values():
        by_agent.setdefault(task.agent_id, set()).add(task.task_id)
    agent = max(sorted(by_agent), key=lambda a: len(by_agent[a]))
    return agent, by_agent[agent]


def states(runtime: Runtime, task_ids: set[str]) -> set[Any]:
    return {r.state for r in snapshot(runtime).tasks if r.task_id in task_ids}


def counter(runtime: Runtime, name: str) -> int:
    return snapshot(runtime).counters.get(name, 0)


def ticks_later(runtime: Runtime, seconds: float) -> Callable[[], bool]:
    """True once Steward has handled an event (its ticks come every second) ``seconds`` after now."""
    start = snapshot(runtime).taken_at
    return lambda: snapshot(runtime).taken_at >= start + seconds


# --- master failover --------------------------------------------------------------------------------


def test_master_failover_resubscribes_with_the_same_id_reconciles_and_touches_nothing(
    cluster: LocalCluster, start_steward: StartSteward
) -> None:
    runtime = start_steward(cluster, {"web": WEB})
    framework_id = running(cluster, runtime)
    before = set(cluster_tasks(cluster, framework_id))
    subscriptions = counter(runtime, "subscriptions")
    launches = counter(runtime, "launches")
    old_master = cluster.master_id

    assert cluster.restart_master() != old_master

    wait_for(lambda: counter(runtime, "subscriptions") > subscriptions, "Steward to subscribe again")
    framework_id_after = running(cluster, runtime)
    assert framework_id_after == framework_id
    assert framework_ids(cluster) == [framework_id]
    assert set(cluster_tasks(cluster, framework_id)) == before, "the same tasks run, none replaced"
    snap = snapshot(runtime)
    assert snap.counters.get("launches", 0) == launches
    assert snap.counters.get("kills_requested", 0) == 0
    assert any(n.kind == "reconciling" and f"of {WEB} task(s)" in n.text for n in snap.notes), (
        "the new subscription reconciled every known task explicitly"
    )
    assert ended_tasks(cluster, framework_id) == {}


# --- partitions ---------------------------------------------------------------------------------------


def test_a_partitioned_agent_that_returns_in_time_keeps_its_tasks(
    cluster: LocalCluster, start_steward: StartSteward
) -> None:
    runtime = start_steward(cluster, {"web": WEB}, settings=CoreSettings(unreachable_replace_after_s=60.0))
    framework_id = running(cluster, runtime)
    before = set(cluster_tasks(cluster, framework_id))
    agent, on_agent = busiest_agent(cluster, framework_id)
    launches = counter(runtime, "launches")

    cluster.make_agent_unreachable(agent)
    wait_for(lambda: states(runtime, on_agent) == {TaskState.TASK_UNREACHABLE}, "the tasks to be unreachable")
    # Give Steward several ticks in which it could replace them (offers of the other agents come).
    wait_for(ticks_later(runtime, 3.0), "three more seconds of Steward's time")
    snap = snapshot(runtime)
    assert snap.service("web").unreachable == len(on_agent)
    assert snap.service("web").counting == WEB, "unreachable tasks keep their slots until the timeout"
    assert snap.service("web").pending == 0
    assert snap.counters.get("launches", 0) == launches, "nothing replaced before the timeout"
    assert snap.suppressed_roles == {"*"}, "with nothing pending Steward does not even ask for offers"

    cluster.reconnect_agent(agent)
    running(cluster, runtime)
    assert set(cluster_tasks(cluster, framework_id)) == before, "the same tasks run again"
    assert counter(runtime, "launches") == launches
    assert counter(runtime, "kills_requested") == 0
    assert ended_tasks(cluster, framework_id) == {}


def test_a_partition_longer_than_the_timeout_is_replaced_and_the_surplus_killed_on_return(
    cluster: LocalCluster, start_steward: StartSteward
) -> None:
    settings = CoreSettings(unreachable_replace_after_s=1.0)
    runtime = start_steward(cluster, {"web": WEB}, settings=settings)
    framework_id = running(cluster, runtime)
    agent, on_agent = busiest_agent(cluster, framework_id)
    launches = counter(runtime, "launches")

    cluster.make_agent_unreachable(agent)

    def replaced() -> bool:
        live = cluster_tasks(cluster, framework_id).values()
        elsewhere = [t for t in live if t.agent_id != agent and t.state == "TASK_RUNNING"]
        return len(elsewhere) == WEB and snapshot(runtime).service("web").running == WEB

    wait_for(replaced, "replacements running on the other agents")
    assert counter(runtime, "launches") == launches + len(on_agent)
    assert states(runtime, on_agent) == {TaskState.TASK_UNREACHABLE}

    cluster.reconnect_agent(agent)
    running(cluster, runtime)
    live = cluster_tasks(cluster, framework_id)
    assert len(live) == WEB
    assert ended_tasks(cluster, framework_id)["TASK_KILLED"] == len(on_agent), "the surplus was killed"
    assert counter(runtime, "launches") == launches + len(on_agent), "and nothing else launched"


# --- agent loss ---------------------------------------------------------------------------------------


def test_a_removed_agent_has_its_tasks_replaced_on_the_others(
    cluster: LocalCluster, start_steward: StartSteward
) -> None:
    runtime = start_steward(cluster, {"web": WEB})
    framework_id = running(cluster, runtime)
    agent, on_agent = busiest_agent(cluster, framework_id)
    slots = {r.slot for r in snapshot(runtime).tasks}

    cluster.remove_agent(agent)

    running(cluster, runtime)
    live = cluster_tasks(cluster, framework_id)
    assert not any(t.agent_id == agent for t in live.values())
    assert not set(live) & on_agent
    assert {r.slot for r in snapshot(runtime).tasks} == slots, "replacements took the lost tasks' slots"
    assert ended_tasks(cluster, framework_id)["TASK_GONE_BY_OPERATOR"] == len(on_agent)
    assert all(s.restart_failures == 0 for s in snapshot(runtime).services), "agent loss is no failure"
