"""Failures on the local cluster: scheduler disconnects and failover, partitioned, returning and
removed agents, and a master failover, for partition-aware frameworks and for the others."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from framework.localcluster.cluster import LocalCluster
from tests.integration.localcluster.conftest import wait_until
from tests.integration.localcluster.mini_scheduler import MiniScheduler, framework_info, task

MakeScheduler = Callable[..., MiniScheduler]
PA = ["MULTI_ROLE", "PARTITION_AWARE", "TASK_KILLING_STATE"]
NOT_PA = ["MULTI_ROLE", "TASK_KILLING_STATE"]


def run_task(sched: MiniScheduler, task_id: str = "t", agent_index: int = 0) -> dict[str, Any]:
    """Launch one task on the ``agent_index``-th offered agent; return its RUNNING status."""
    offers = sorted(sched.offers(), key=lambda o: o["agent_id"]["value"])
    offer = offers[agent_index]
    sched.launch(offer, task(task_id, offer))
    return sched.update(task_id, "TASK_RUNNING")


# --- scheduler disconnects ---------------------------------------------------------------------


def test_tasks_survive_a_disconnect_within_the_failover_timeout(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True, failover_timeout=60)
    sched.subscribe()
    running = run_task(sched)
    fid = sched.framework_id
    sched.disconnect()
    wait_until(lambda: cluster.metrics()["master/frameworks_disconnected"] == 1.0, what="the disconnect")
    # Calls on the old stream are refused while disconnected.
    assert sched.post({"type": "REVIVE", "framework_id": {"value": fid}}).status_code == 403
    assert cluster.metrics()["master/tasks_running"] == 1.0
    first = sched.subscribe()
    assert first["type"] == "SUBSCRIBED" and first["subscribed"]["framework_id"]["value"] == fid
    mark = sched.mark()
    sched.reconcile([("t", running["agent_id"]["value"])])
    assert sched.update("t", since=mark)["state"] == "TASK_RUNNING"


def test_past_the_failover_timeout_tasks_are_killed_and_the_framework_is_removed(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True, failover_timeout=0.3)
    sched.subscribe()
    running = run_task(sched)
    agent_id = running["agent_id"]["value"]
    sched.disconnect()
    wait_until(lambda: cluster.state()["frameworks"] == [], what="the framework's removal")
    wait_until(lambda: cluster.agent_task_count(agent_id) == 0, what="the task to be killed")
    assert cluster.metrics()["master/tasks_killed"] == 1.0
    error = sched.subscribe()
    assert error == {"type": "ERROR", "error": {"message": "Framework has been removed"}}
    assert sched.ended.wait(5)


def test_zero_failover_timeout_removes_the_framework_at_once(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True)
    sched.subscribe()
    run_task(sched)
    sched.disconnect()
    wait_until(lambda: cluster.state()["frameworks"] == [], timeout=3, what="the framework's removal")


def test_a_second_subscription_fails_the_first_one_over(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    first = make_scheduler(failover_timeout=60)
    first.subscribe()
    first.offers()
    old_stream = first.stream_id
    second = MiniScheduler(cluster.url, framework_info(failover_timeout=60, framework_id=first.framework_id))
    try:
        subscribed = second.subscribe()
        assert subscribed["subscribed"]["framework_id"]["value"] == first.framework_id
        error = first.wait_for(lambda e: e["type"] == "ERROR")
        assert error["error"]["message"] == "Framework failed over"
        assert first.ended.wait(5), "the old stream must be closed after the ERROR"
        stale = second.post(
            {"type": "REVIVE", "framework_id": {"value": first.framework_id}}, stream_id=old_stream
        )
        assert stale.status_code == 400 and "didn't match the stream ID" in stale.text
        # Offers of the old subscription are gone; the new one gets fresh offers.
        assert second.offers()
    finally:
        second.close()


# --- agents ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("caps", "lost_state"), [(PA, "TASK_UNREACHABLE"), (NOT_PA, "TASK_LOST")])
def test_unreachable_agent_and_its_return(
    cluster: LocalCluster, make_scheduler: MakeScheduler, caps: list[str], lost_state: str
) -> None:
    sched = make_scheduler(auto_ack=True, capabilities=caps)
    sched.subscribe()
    running = run_task(sched)
    agent_id = running["agent_id"]["value"]
    mark = sched.mark()
    cluster.make_agent_unreachable(agent_id)
    lost = sched.update("t", lost_state, since=mark)
    assert (
        lost["reason"] == "REASON_AGENT_REMOVED" and lost["source"] == "SOURCE_MASTER" and "uuid" not in lost
    )
    if lost_state == "TASK_UNREACHABLE":
        assert lost["unreachable_time"]["nanoseconds"] > 0
    failure = sched.wait_for(lambda e: e["type"] == "FAILURE", since=mark)
    assert failure["failure"]["agent_id"]["value"] == agent_id
    assert cluster.metrics()["master/slaves_unreachable"] == 1.0
    mark = sched.mark()
    sched.reconcile([("t", agent_id)])
    assert sched.update("t", since=mark)["state"] == lost_state

    mark = sched.mark()
    cluster.reconnect_agent(agent_id)
    back = sched.update("t", "TASK_RUNNING", since=mark)
    assert back["reason"] == "REASON_AGENT_REREGISTERED"
    assert cluster.metrics()["master/tasks_running"] == 1.0
    mark = sched.mark()
    sched.kill("t")
    sched.update("t", "TASK_KILLED", since=mark)


def test_updates_from_a_partitioned_agent_arrive_after_it_returns(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(agent_ping_timeout_s=30.0)
    sched = MiniScheduler(cluster.url, framework_info(capabilities=PA), auto_ack=True)
    try:
        sched.subscribe()
        offer = sorted(sched.offers(), key=lambda o: o["agent_id"]["value"])[0]
        agent_id = offer["agent_id"]["value"]
        sched.launch(offer, task("t", offer, env={"SIMULATED_EXIT_AFTER": "0.3"}))
        sched.update("t", "TASK_RUNNING")
        mark = sched.mark()
        cluster.make_agent_unreachable(agent_id)  # not yet marked unreachable (long ping timeout)
        wait_until(lambda: cluster.metrics()["master/slaves_disconnected"] == 1.0, what="the disconnect")
        time.sleep(0.6)  # the task finishes while the agent is cut off
        assert sched.updates("t", since=mark) == []
        cluster.reconnect_agent(agent_id)
        finished = sched.update("t", "TASK_FINISHED", since=mark)
        assert "uuid" in finished
    finally:
        sched.close()


@pytest.mark.parametrize(
    ("caps", "state", "reason"),
    [
        (PA, "TASK_GONE_BY_OPERATOR", "REASON_AGENT_REMOVED_BY_OPERATOR"),
        (NOT_PA, "TASK_LOST", "REASON_AGENT_REMOVED"),
    ],
)
def test_removed_agent_is_gone_for_good(
    cluster: LocalCluster, make_scheduler: MakeScheduler, caps: list[str], state: str, reason: str
) -> None:
    sched = make_scheduler(auto_ack=True, capabilities=caps)
    sched.subscribe()
    running = run_task(sched)
    agent_id = running["agent_id"]["value"]
    mark = sched.mark()
    cluster.remove_agent(agent_id)
    gone = sched.update("t", state, since=mark)
    assert gone["reason"] == reason
    assert (
        sched.wait_for(lambda e: e["type"] == "FAILURE", since=mark)["failure"]["agent_id"]["value"]
        == agent_id
    )
    assert agent_id not in cluster.agent_ids
    assert agent_id not in {s["id"] for s in cluster.state()["slaves"]}
    mark = sched.mark()
    sched.reconcile([("t", agent_id)])
    expected = "TASK_GONE_BY_OPERATOR" if caps is PA else "TASK_LOST"
    assert sched.update("t", since=mark)["state"] == expected


def test_unreachable_agent_marked_gone_turns_its_tasks_gone(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True, capabilities=PA)
    sched.subscribe()
    running = run_task(sched)
    agent_id = running["agent_id"]["value"]
    cluster.make_agent_unreachable(agent_id)
    sched.update("t", "TASK_UNREACHABLE")
    mark = sched.mark()
    cluster.remove_agent(agent_id)
    assert sched.update("t", since=mark)["state"] == "TASK_GONE_BY_OPERATOR"


# --- master failover ---------------------------------------------------------------------------


def test_master_failover_recovers_frameworks_and_tasks_from_the_agents(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True, failover_timeout=60, capabilities=PA)
    sched.subscribe()
    running = run_task(sched, "survivor")
    agent_id = running["agent_id"]["value"]
    fid = sched.framework_id
    old_master = cluster.master_id
    new_master = cluster.restart_master()
    assert new_master != old_master
    assert sched.ended.wait(5), "a master failover ends every event stream"
    recovered = cluster.state()["frameworks"]
    assert [(f["id"], f["recovered"], f["connected"]) for f in recovered] == [(fid, True, False)]
    assert cluster.metrics()["master/tasks_running"] == 1.0

    subscribed_at = sched.mark()
    first = sched.subscribe()
    assert first["type"] == "SUBSCRIBED" and first["subscribed"]["framework_id"]["value"] == fid
    assert first["subscribed"]["master_info"]["id"] == new_master
    mark = sched.mark()
    sched.reconcile([("survivor", agent_id)])
    assert sched.update("survivor", since=mark)["state"] == "TASK_RUNNING"
    # The survivor's resources stay allocated: the offer for its agent lacks them.
    offers = sched.offers(since=subscribed_at)
    offer = next(o for o in offers if o["agent_id"]["value"] == agent_id)
    cpus = next(r for r in offer["resources"] if r["name"] == "cpus")["scalar"]["value"]
    assert cpus == pytest.approx(3.9)
    mark = sched.mark()
    sched.kill("survivor")
    sched.update("survivor", "TASK_KILLED", since=mark)

    newcomer = MiniScheduler(cluster.url, framework_info(name="new"))
    try:
        assert newcomer.subscribe()["subscribed"]["framework_id"]["value"].startswith(new_master)
    finally:
        newcomer.close()


def test_unacknowledged_updates_are_delivered_after_a_master_failover(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(failover_timeout=60)
    sched.subscribe()
    offer = sched.offers()[0]
    sched.launch(offer, task("t", offer))
    starting = sched.update("t", "TASK_STARTING")
    cluster.restart_master()
    assert sched.ended.wait(5)
    mark = sched.mark()
    sched.subscribe()
    again = sched.update("t", "TASK_STARTING", since=mark, timeout=5)
    assert again["uuid"] == starting["uuid"]
    sched.acknowledge(again)
    sched.update("t", "TASK_RUNNING", since=mark)


def test_partitioned_agent_stays_unreachable_across_a_failover_and_comes_back(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True, failover_timeout=60, capabilities=PA)
    sched.subscribe()
    running = run_task(sched)
    agent_id = running["agent_id"]["value"]
    cluster.make_agent_unreachable(agent_id)
    sched.update("t", "TASK_UNREACHABLE")
    cluster.restart_master()
    assert sched.ended.wait(5)
    sched.subscribe()
    mark = sched.mark()
    sched.reconcile([("t", agent_id)])
    assert sched.update("t", since=mark)["state"] == "TASK_UNREACHABLE"
    mark = sched.mark()
    cluster.reconnect_agent(agent_id)
    assert sched.update("t", "TASK_RUNNING", since=mark)["reason"] == "REASON_AGENT_REREGISTERED"
