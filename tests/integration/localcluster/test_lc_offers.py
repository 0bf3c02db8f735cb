"""Offers on the local cluster: refusal filters, SUPPRESS/REVIVE per role, offer timeouts, and every
kind of invalid launch answered the way the Mesos master answers it."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest

from framework.localcluster.cluster import LocalCluster
from tests.integration.localcluster.mini_scheduler import MiniScheduler, task

MakeScheduler = Callable[..., MiniScheduler]


def offers_for(sched: MiniScheduler, agent_id: str, since: int) -> list[dict[str, Any]]:
    return [
        o
        for e in sched.of_type("OFFERS", since)
        for o in e["offers"]["offers"]
        if o["agent_id"]["value"] == agent_id
    ]


# --- filters, suppress, revive -------------------------------------------------------------------


def test_declined_agent_stays_away_until_the_filter_expires(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(agent_count=1)
    sched = MiniScheduler(cluster.url)
    try:
        sched.subscribe()
        (offer,) = sched.offers()
        agent_id = offer["agent_id"]["value"]
        mark = sched.mark()
        sched.decline([offer["id"]["value"]], refuse_seconds=0.6)
        declined_at = time.monotonic()
        again = sched.offers(timeout=5, since=mark)
        waited = time.monotonic() - declined_at
        assert again[0]["agent_id"]["value"] == agent_id
        assert waited >= 0.55, f"re-offered after {waited:.2f}s despite a 0.6 s filter"
    finally:
        sched.close()


def test_revive_clears_filters(cluster: LocalCluster, make_scheduler: MakeScheduler) -> None:
    sched = make_scheduler()
    sched.subscribe()
    offers = sched.offers()
    mark = sched.mark()
    sched.decline([o["id"]["value"] for o in offers], refuse_seconds=3600)
    time.sleep(0.3)  # several allocation intervals
    assert sched.of_type("OFFERS", mark) == []
    sched.revive()
    revived = sched.offers(timeout=3, since=mark)
    assert {o["agent_id"]["value"] for o in revived} <= set(cluster.agent_ids)


def test_negative_refuse_seconds_means_the_default_five_seconds(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler()
    sched.subscribe()
    offers = sched.offers()
    mark = sched.mark()
    sched.decline([o["id"]["value"] for o in offers], refuse_seconds=-1)
    time.sleep(0.5)
    assert sched.of_type("OFFERS", mark) == [], "a negative filter must not mean 'no filter'"


def test_suppress_and_revive_act_per_role(cluster: LocalCluster, make_scheduler: MakeScheduler) -> None:
    sched = make_scheduler(roles=["a", "b"], suppressed_roles=("a",))
    sched.subscribe()
    first = sched.offers()
    assert {o["allocation_info"]["role"] for o in first} == {"b"}
    mark = sched.mark()
    sched.decline([o["id"]["value"] for o in first], refuse_seconds=3600)
    sched.suppress(["b"])
    sched.revive(["a"])
    revived = sched.offers(timeout=3, since=mark)
    assert {o["allocation_info"]["role"] for o in revived} == {"a"}
    # Unknown roles make the master drop the whole call (202, a log line, no effect).
    mark = sched.mark()
    sched.decline([o["id"]["value"] for o in revived], refuse_seconds=3600)
    sched.revive(["b", "no-such-role"])
    time.sleep(0.3)
    assert sched.of_type("OFFERS", mark) == []
    (fw,) = cluster.state()["frameworks"]
    assert fw["suppressed_roles"] == ["b"]


def test_suppress_with_no_roles_suppresses_every_role(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler(roles=["a", "b"])
    sched.subscribe()
    offers = sched.offers()
    sched.suppress()
    mark = sched.mark()
    sched.decline([o["id"]["value"] for o in offers], refuse_seconds=0.01)
    time.sleep(0.3)
    assert sched.of_type("OFFERS", mark) == []
    sched.revive()
    sched.offers(timeout=3, since=mark)


def test_offer_timeout_rescinds_and_an_accept_of_a_rescinded_offer_loses_the_tasks(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    cluster = make_cluster(agent_count=1, offer_timeout_s=0.2)
    plain = MiniScheduler(cluster.url)
    try:
        plain.subscribe()
        (offer,) = plain.offers()
        oid = offer["id"]["value"]
        rescind = plain.wait_for(lambda e: e["type"] == "RESCIND", timeout=3)
        assert rescind["rescind"]["offer_id"]["value"] == oid
        mark = plain.mark()
        plain.launch(offer, task("late", offer))
        lost = plain.update("late", since=mark)
        assert lost["state"] == "TASK_LOST" and lost["reason"] == "REASON_INVALID_OFFERS"
        assert lost["message"] == f"Task launched with invalid offers: Offer {oid} is no longer valid"
        assert "uuid" not in lost
    finally:
        plain.close()


# --- invalid launches ------------------------------------------------------------------------------


@pytest.fixture
def launcher(cluster: LocalCluster, make_scheduler: MakeScheduler) -> MiniScheduler:
    sched = make_scheduler(capabilities=["MULTI_ROLE", "PARTITION_AWARE"])
    sched.subscribe()
    sched.offers()
    return sched


def first_offers(sched: MiniScheduler) -> list[dict[str, Any]]:
    return sched.of_type("OFFERS")[0]["offers"]["offers"]


def launch_and_get(sched: MiniScheduler, offer: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    mark = sched.mark()
    sched.launch(offer, doc)
    return sched.update(doc["task_id"]["value"], since=mark)


def test_more_resources_than_offered_is_task_error(launcher: MiniScheduler) -> None:
    offer = first_offers(launcher)[0]
    status = launch_and_get(launcher, offer, task("big", offer, cpus=100))
    assert status["state"] == "TASK_ERROR" and status["reason"] == "REASON_TASK_INVALID"
    assert "more than available" in status["message"]
    assert status["source"] == "SOURCE_MASTER" and "uuid" not in status


def test_resources_never_offered_are_task_error(launcher: MiniScheduler) -> None:
    offer = first_offers(launcher)[0]
    doc = task("reserved", offer)
    doc["resources"][0] = dict(doc["resources"][0], role="web")
    status = launch_and_get(launcher, offer, doc)
    assert status["state"] == "TASK_ERROR" and "more than available" in status["message"]


def test_two_tasks_in_one_accept_cannot_share_the_last_resources(launcher: MiniScheduler) -> None:
    offer = first_offers(launcher)[0]
    mark = launcher.mark()
    launcher.launch(offer, task("first", offer, cpus=3), task("second", offer, cpus=3))
    assert launcher.update("first", since=mark)["state"] == "TASK_STARTING"
    assert launcher.update("second", since=mark)["state"] == "TASK_ERROR"


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ({"task_id": {"value": "a/b"}}, "'a/b' contains invalid characters"),
        ({"task_id": {"value": ".."}}, "'..' is disallowed"),
        ({"agent_id": {"value": "somewhere-else"}}, "Task uses invalid agent somewhere-else"),
        ({"resources": []}, "Task uses no resources"),
        ({"command": None}, "Task should have at least one (but not both) of CommandInfo or ExecutorInfo"),
        (
            {"executor": {"executor_id": {"value": "e"}, "command": {"value": "x"}}},
            "Task should have at least one (but not both) of CommandInfo or ExecutorInfo",
        ),
        (
            {"kill_policy": {"grace_period": {"nanoseconds": -1}}},
            "'kill_policy.grace_period' must be non-negative",
        ),
    ],
)
def test_malformed_tasks_are_task_error(
    launcher: MiniScheduler, change: dict[str, Any], expected: str
) -> None:
    offer = first_offers(launcher)[0]
    doc = task("t", offer)
    doc.update(change)
    doc = {k: v for k, v in doc.items() if v is not None}
    mark = launcher.mark()
    launcher.launch(offer, doc)
    status = launcher.update(doc["task_id"]["value"], since=mark)
    assert status["state"] == "TASK_ERROR" and status["reason"] == "REASON_TASK_INVALID"
    assert expected in status["message"]


def test_duplicate_live_task_id_is_task_error(launcher: MiniScheduler) -> None:
    offers = first_offers(launcher)
    launcher.launch(offers[0], task("dup", offers[0]))
    launcher.update("dup", "TASK_STARTING")
    status = launch_and_get(launcher, offers[1], task("dup", offers[1]))
    assert status["state"] == "TASK_ERROR" and status["message"] == "Task has duplicate ID: dup"


def test_unknown_used_and_mixed_offers_drop_the_tasks(launcher: MiniScheduler) -> None:
    offers = first_offers(launcher)
    a, b = offers[0], offers[1]
    mark = launcher.mark()
    launcher.accept(
        [a["id"]["value"], b["id"]["value"]],
        [{"type": "LAUNCH", "launch": {"task_infos": [task("mixed", a)]}}],
    )
    mixed = launcher.update("mixed", since=mark)
    assert mixed["state"] == "TASK_DROPPED" and mixed["reason"] == "REASON_INVALID_OFFERS"
    assert "Aggregated offers must belong to one single agent" in mixed["message"]
    # Both offers were consumed by that ACCEPT: using one again is an invalid offer.
    status = launch_and_get(launcher, a, task("reused", a))
    assert status["state"] == "TASK_DROPPED" and "is no longer valid" in status["message"]
    fake = dict(a, id={"value": "no-such-offer"})
    status = launch_and_get(launcher, fake, task("unknown", a))
    assert status["state"] == "TASK_DROPPED" and "Offer no-such-offer is no longer valid" in status["message"]
    mark = launcher.mark()
    launcher.accept([], [{"type": "LAUNCH", "launch": {"task_infos": [task("none", a)]}}])
    assert launcher.update("none", since=mark)["message"].endswith("No offers specified")


def test_docker_host_port_outside_the_claimed_ports_fails_the_launch(launcher: MiniScheduler) -> None:
    offer = first_offers(launcher)[0]
    doc = task("web", offer)
    ports = next(r for r in offer["resources"] if r["name"] == "ports")
    first_port = ports["ranges"]["range"][0]["begin"]
    doc["resources"].append(dict(ports, ranges={"range": [{"begin": first_port, "end": first_port}]}))
    doc["container"] = {
        "type": "DOCKER",
        "docker": {
            "image": "nginx:1.27",
            "network": "BRIDGE",
            "port_mappings": [{"host_port": first_port + 1, "container_port": 80}],
        },
    }
    mark = launcher.mark()
    launcher.launch(offer, doc)
    failed = launcher.update("web", "TASK_FAILED", since=mark)
    assert failed["reason"] == "REASON_CONTAINER_LAUNCH_FAILED"
    assert failed["message"] == f"Port [{first_port + 1}] not included in resources"


def test_non_partition_aware_frameworks_get_task_lost_for_invalid_offers(
    cluster: LocalCluster, make_scheduler: MakeScheduler
) -> None:
    sched = make_scheduler()
    sched.subscribe()
    offer = sched.offers()[0]
    fake = dict(offer, id={"value": "gone"})
    mark = sched.mark()
    sched.launch(fake, task("t", offer))
    assert sched.update("t", since=mark)["state"] == "TASK_LOST"
