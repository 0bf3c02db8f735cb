"""A framework's life on the local cluster over real HTTP: subscribe, offers, launch, updates, kill.

Driven by ``mini_scheduler`` (plain ``requests``, its own RecordIO parser), never by Steward's client.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from framework.localcluster.cluster import LocalCluster
from tests.integration.localcluster.conftest import wait_until
from tests.integration.localcluster.mini_scheduler import MiniScheduler, task

MakeScheduler = Callable[..., MiniScheduler]


def test_subscribed_carries_an_id_derived_from_the_master_id_and_heartbeats_follow(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler()
    first = sched.subscribe()
    assert first["type"] == "SUBSCRIBED"
    subscribed = first["subscribed"]
    master_id = cluster.master_id
    assert subscribed["framework_id"]["value"] == f"{master_id}-0000"
    assert subscribed["heartbeat_interval_seconds"] == 0.5
    assert subscribed["master_info"]["id"] == master_id
    assert subscribed["master_info"]["port"] == cluster.port
    mark = sched.mark()
    sched.wait_for(lambda e: e["type"] == "HEARTBEAT", timeout=2, since=mark)
    second = make_scheduler(name="other")
    assert second.subscribe()["subscribed"]["framework_id"]["value"] == f"{master_id}-0001"


def test_offers_describe_each_agent_as_mesos_does(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(roles=["web"])
    sched.subscribe()
    offers = sched.offers()
    assert {o["agent_id"]["value"] for o in offers} == set(cluster.agent_ids)
    offer = next(o for o in offers if o["agent_id"]["value"] == cluster.agent_ids[0])
    assert offer["hostname"] == "agent-1"
    assert offer["framework_id"]["value"] == sched.framework_id
    assert offer["allocation_info"] == {"role": "web"}
    by_name = {r["name"]: r for r in offer["resources"]}
    assert by_name["cpus"]["scalar"]["value"] == 4.0
    assert by_name["mem"]["scalar"]["value"] == 8192.0
    assert by_name["ports"]["ranges"]["range"] == [{"begin": 31000, "end": 31999}]
    assert all(r["role"] == "*" and r["allocation_info"] == {"role": "web"} for r in offer["resources"])
    assert {"name": "rack", "type": "TEXT", "text": {"value": "rack-1"}} in offer["attributes"]
    assert offer["url"]["address"]["ip"] == "127.0.0.1"
    assert offer["url"]["address"]["hostname"] == "agent-1"


def test_offers_to_a_single_role_framework_carry_no_allocation_info(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(capabilities=["TASK_KILLING_STATE"])
    sched.subscribe()
    offer = sched.offers()[0]
    assert "allocation_info" not in offer
    assert all("allocation_info" not in r for r in offer["resources"])


def test_launch_run_kill_and_forget(cluster: LocalCluster, make_scheduler: MakeScheduler) -> None:
    sched = make_scheduler()
    sched.subscribe()
    offer = sched.offers()[0]
    agent_id = offer["agent_id"]["value"]
    sched.launch(offer, task("web-1", offer, cpus=0.5, mem=64))

    starting = sched.update("web-1", "TASK_STARTING")
    assert starting["source"] == "SOURCE_EXECUTOR" and starting["agent_id"]["value"] == agent_id
    assert len(__import__("base64").b64decode(starting["uuid"])) == 16
    sched.acknowledge(starting)
    running = sched.update("web-1", "TASK_RUNNING")
    sched.acknowledge(running)
    wait_until(lambda: cluster.metrics()["master/tasks_running"] == 1.0, what="tasks_running gauge")
    state = cluster.state()
    (fw,) = state["frameworks"]
    assert [t["id"] for t in fw["tasks"]] == ["web-1"]
    assert fw["tasks"][0]["state"] == "TASK_RUNNING"
    assert fw["tasks"][0]["resources"]["cpus"] == 0.5

    mark = sched.mark()
    sched.kill("web-1")
    killing = sched.update("web-1", "TASK_KILLING", since=mark)
    sched.acknowledge(killing)
    killed = sched.update("web-1", "TASK_KILLED", since=mark)
    sched.acknowledge(killed)
    wait_until(lambda: not cluster.state()["frameworks"][0]["tasks"], what="the master to forget the task")
    fw = cluster.state()["frameworks"][0]
    assert [t["id"] for t in fw["completed_tasks"]] == ["web-1"]
    wait_until(lambda: cluster.agent_task_count(agent_id) == 0, what="the agent to forget the task")
    assert cluster.metrics()["master/tasks_killed"] == 1.0


def test_freed_resources_are_offered_again(cluster: LocalCluster, make_scheduler: MakeScheduler) -> None:
    sched = make_scheduler(auto_ack=True)
    sched.subscribe()
    offer = sched.offers()[0]
    agent_id = offer["agent_id"]["value"]
    sched.launch(
        offer, task("t", offer, cpus=1, mem=100, env={"SIMULATED_EXIT_AFTER": "0.1"}), refuse_seconds=60
    )
    sched.update("t", "TASK_FINISHED", timeout=5)
    # The unused part was declined for 60 s, but more is free now: the agent comes back at once.
    again = sched.wait_for(
        lambda e: (
            e["type"] == "OFFERS" and any(o["agent_id"]["value"] == agent_id for o in e["offers"]["offers"])
        ),
        timeout=3,
        since=1,
    )
    offer2 = next(o for o in again["offers"]["offers"] if o["agent_id"]["value"] == agent_id)
    assert {r["name"]: r.get("scalar", {}).get("value") for r in offer2["resources"]}["cpus"] == 4.0


def test_updates_are_resent_until_acknowledged_and_queued_behind_the_head(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler()
    sched.subscribe()
    offer = sched.offers()[0]
    sched.launch(offer, task("t1", offer))
    first = sched.update("t1", "TASK_STARTING")
    # Not acknowledged: the same update (same uuid) comes again, and RUNNING waits behind it.
    again = sched.wait_for(
        lambda e: e["type"] == "UPDATE" and e["update"]["status"].get("uuid") == first["uuid"],
        timeout=2,
        since=sched.events.index(next(e for e in sched.events if e.get("update", {}).get("status") == first))
        + 1,
    )
    assert again["update"]["status"]["state"] == "TASK_STARTING"
    time.sleep(0.3)
    assert [u["state"] for u in sched.updates("t1")] == ["TASK_STARTING"] * len(sched.updates("t1"))
    sched.acknowledge(first)
    running = sched.update("t1", "TASK_RUNNING")
    sched.acknowledge(running)
    mark = sched.mark()
    time.sleep(0.8)  # several retry intervals (0.2 s, doubling)
    assert sched.updates("t1", since=mark) == []


def test_reconcile_answers_have_no_uuid_and_the_reconciliation_reason(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True, capabilities=["MULTI_ROLE", "PARTITION_AWARE"])
    sched.subscribe()
    offer = sched.offers()[0]
    agent_id = offer["agent_id"]["value"]
    sched.launch(offer, task("known", offer))
    sched.update("known", "TASK_RUNNING")

    mark = sched.mark()
    sched.reconcile([("known", agent_id), ("ghost", agent_id), ("nowhere", "no-such-agent"), ("bare", None)])
    known = sched.update("known", since=mark)
    assert known["state"] == "TASK_RUNNING" and known["reason"] == "REASON_RECONCILIATION"
    assert "uuid" not in known and known["source"] == "SOURCE_MASTER"
    assert sched.update("ghost", since=mark)["state"] == "TASK_GONE"
    assert sched.update("nowhere", since=mark)["state"] == "TASK_UNKNOWN"
    assert sched.update("bare", since=mark)["state"] == "TASK_UNKNOWN"

    mark = sched.mark()
    sched.reconcile()
    implicit = sched.update("known", since=mark)
    assert implicit["state"] == "TASK_RUNNING" and implicit["reason"] == "REASON_RECONCILIATION"


def test_reconcile_of_unknown_tasks_is_task_lost_without_partition_awareness(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler()
    sched.subscribe()
    mark = sched.mark()
    sched.reconcile([("ghost", cluster.agent_ids[0]), ("nowhere", "no-such-agent")])
    assert sched.update("ghost", since=mark)["state"] == "TASK_LOST"
    assert sched.update("nowhere", since=mark)["state"] == "TASK_LOST"


def test_kill_of_an_unknown_task_is_answered_as_a_reconciliation(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler()
    sched.subscribe()
    mark = sched.mark()
    sched.kill("never-launched", cluster.agent_ids[0])
    status = sched.update("never-launched", since=mark)
    assert status["state"] == "TASK_LOST" and status["reason"] == "REASON_RECONCILIATION"


def test_tasks_end_by_themselves_when_asked_and_report_health(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True)
    sched.subscribe()
    offer = sched.offers()[0]
    health = {"type": "TCP", "tcp": {"port": 80}}
    sched.launch(
        offer,
        task("ok", offer, env={"SIMULATED_EXIT_AFTER": "0.1"}),
        task("bad", offer, env={"SIMULATED_EXIT_AFTER": "0.1", "SIMULATED_EXIT_CODE": "3"}),
        task("healthy", offer, health_check=health),
    )
    assert sched.update("ok", "TASK_FINISHED")["message"] == "Command exited with status 0"
    assert sched.update("bad", "TASK_FAILED")["message"] == "Command exited with status 3"
    healthy = sched.wait_for(
        lambda e: (
            e["type"] == "UPDATE"
            and e["update"]["status"]["task_id"]["value"] == "healthy"
            and e["update"]["status"].get("healthy") is True
        )
    )["update"]["status"]
    assert healthy["reason"] == "REASON_TASK_HEALTH_CHECK_STATUS_UPDATED"


def test_launch_group_runs_every_task_and_a_kill_takes_the_group(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True)
    sched.subscribe()
    offer = sched.offers()[0]
    executor = {
        "executor_id": {"value": "group-exec"},
        "type": "DEFAULT",
        "resources": task("x", offer, cpus=0.1, mem=32)["resources"],
    }
    tasks = [task(f"g{i}", offer) for i in range(2)]
    sched.accept(
        [offer["id"]["value"]],
        [{"type": "LAUNCH_GROUP", "launch_group": {"executor": executor, "task_group": {"tasks": tasks}}}],
    )
    sched.update("g0", "TASK_RUNNING")
    sched.update("g1", "TASK_RUNNING")
    mark = sched.mark()
    sched.kill("g0")
    sched.update("g0", "TASK_KILLED", since=mark)
    sched.update("g1", "TASK_KILLED", since=mark)


def test_teardown_kills_everything_and_the_id_is_dead(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(auto_ack=True)
    sched.subscribe()
    offer = sched.offers()[0]
    agent_id = offer["agent_id"]["value"]
    sched.launch(offer, task("t", offer))
    sched.update("t", "TASK_RUNNING")
    sched.teardown()
    assert sched.ended.wait(5), "TEARDOWN must close the event stream"
    wait_until(lambda: cluster.agent_task_count(agent_id) == 0, what="the task to be killed")
    state = cluster.state()
    assert state["frameworks"] == []
    assert [f["id"] for f in state["completed_frameworks"]] == [sched.framework_id]
    again = MiniScheduler(cluster.url, dict(sched.info))
    try:
        error = again.subscribe()
        assert error == {"type": "ERROR", "error": {"message": "Framework has been removed"}}
        assert again.ended.wait(5)
    finally:
        again.close()


def test_update_framework_replaces_info_and_refuses_immutable_changes(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(roles=["a"])
    sched.subscribe()
    info = dict(sched.info, name="renamed", roles=["a", "b"])
    response = sched.call("UPDATE_FRAMEWORK", {"framework_info": info, "suppressed_roles": ["b"]}, expect=200)
    assert response.text == ""
    (fw,) = cluster.state()["frameworks"]
    assert fw["name"] == "renamed" and fw["roles"] == ["a", "b"] and fw["suppressed_roles"] == ["b"]
    bad = sched.call("UPDATE_FRAMEWORK", {"framework_info": dict(info, user="root")}, expect=400)
    assert "Updating 'FrameworkInfo.user' is unsupported" in bad.text
    bad = sched.call("UPDATE_FRAMEWORK", {"framework_info": info, "suppressed_roles": ["c"]}, expect=400)
    assert "are not contained in the set of roles" in bad.text


def test_message_and_shutdown_for_unknown_executors_are_accepted_and_dropped(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler()
    sched.subscribe()
    agent = {"value": cluster.agent_ids[0]}
    sched.call("MESSAGE", {"agent_id": agent, "executor_id": {"value": "e"}, "data": "aGk="})
    sched.call("SHUTDOWN", {"agent_id": agent, "executor_id": {"value": "e"}})
    assert cluster.metrics()["master/messages_framework_to_executor"] == 1.0


def test_read_endpoints(cluster: LocalCluster) -> None:
    health = requests.get(cluster.url + "/health", timeout=5)
    assert health.status_code == 200
    state = requests.get(cluster.url + "/master/state", timeout=5).json()
    assert state["id"] == cluster.master_id
    assert [s["hostname"] for s in state["slaves"]] == ["agent-1", "agent-2"]
    slave = state["slaves"][0]
    assert slave["resources"]["ports"] == "[31000-31999]"
    assert slave["attributes"] == {"rack": "rack-1", "zone": "local"}
    metrics = requests.get(cluster.url + "/metrics/snapshot", timeout=5).json()
    assert metrics["master/slaves_active"] == 2.0 and metrics["master/elected"] == 1.0
    assert requests.get(cluster.url + "/nope", timeout=5).status_code == 404
