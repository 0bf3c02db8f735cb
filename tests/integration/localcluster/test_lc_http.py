"""The scheduler endpoint's HTTP answers, in the order and with the bodies of ``Master::Http::scheduler``,
the standby redirect, and every emitted event checked against the v1 proto schema."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
import requests

from framework.localcluster.cluster import LocalCluster
from tests.integration.localcluster.conftest import wait_until
from tests.integration.localcluster.mini_scheduler import MiniScheduler, framework_info, task

MakeScheduler = Callable[..., MiniScheduler]


@pytest.fixture
def subscribed(cluster: LocalCluster, make_scheduler: MakeScheduler) -> MiniScheduler:
    sched = make_scheduler(failover_timeout=60)
    sched.subscribe()
    return sched


def call_doc(sched: MiniScheduler, kind: str, body: Any = None) -> dict[str, Any]:
    doc: dict[str, Any] = {"type": kind, "framework_id": {"value": sched.framework_id}}
    if body is not None:
        doc[kind.lower()] = body
    return doc


def test_only_post_is_allowed(subscribed: MiniScheduler) -> None:
    response = subscribed.post(method="GET")
    assert response.status_code == 405 and response.headers["Allow"] == "POST"


def test_content_type_must_be_exactly_json(subscribed: MiniScheduler) -> None:
    doc = json.dumps(call_doc(subscribed, "REVIVE"))
    charset = subscribed.post(data=doc, headers={"Content-Type": "application/json; charset=utf-8"})
    assert charset.status_code == 415
    protobuf = subscribed.post(data=doc, headers={"Content-Type": "application/x-protobuf"})
    assert protobuf.status_code == 415
    missing = requests.post(subscribed.url, data=doc.encode(), timeout=5)
    assert missing.status_code in (400, 415)  # requests adds no Content-Type to bytes bodies
    if missing.status_code == 400:
        assert missing.text == "Expecting 'Content-Type' to be present"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        ("{not json", "Failed to parse body into JSON"),
        ('{"type": "TEARDOWN_ALL"}', "Failed to convert JSON into Call protobuf"),
        ('{"type": 3}', "Failed to convert JSON into Call protobuf"),
        ('{"framework_id": {"value": "x"}}', "Failed to convert JSON into Call protobuf"),
        ('{"type": "REVIVE"}', "Failed to validate scheduler::Call: Expecting 'framework_id' to be present"),
    ],
)
def test_malformed_calls_are_400_with_the_reason(subscribed: MiniScheduler, data: str, expected: str) -> None:
    response = subscribed.post(data=data)
    assert response.status_code == 400 and expected in response.text


@pytest.mark.parametrize(
    "kind", ["ACCEPT", "DECLINE", "KILL", "SHUTDOWN", "ACKNOWLEDGE", "RECONCILE", "MESSAGE"]
)
def test_a_missing_body_is_400(subscribed: MiniScheduler, kind: str) -> None:
    response = subscribed.post(call_doc(subscribed, kind))
    assert response.status_code == 400
    assert response.text == f"Failed to validate scheduler::Call: Expecting '{kind.lower()}' to be present"


def test_revive_suppress_and_teardown_may_omit_the_body(subscribed: MiniScheduler) -> None:
    assert subscribed.post(call_doc(subscribed, "SUPPRESS")).status_code == 202
    assert subscribed.post(call_doc(subscribed, "REVIVE")).status_code == 202


def test_acknowledge_needs_a_16_byte_uuid(subscribed: MiniScheduler, cluster: LocalCluster) -> None:
    body = {"agent_id": {"value": cluster.agent_ids[0]}, "task_id": {"value": "t"}, "uuid": "aGVsbG8="}
    response = subscribed.post(call_doc(subscribed, "ACKNOWLEDGE", body))
    assert response.status_code == 400 and response.text.endswith("Not a valid UUID")
    urlsafe = dict(body, uuid="-_-_-_-_-_-_-_-_-_-_-w==")
    assert subscribed.post(call_doc(subscribed, "ACKNOWLEDGE", urlsafe)).status_code == 400


def test_stream_id_is_required_and_must_be_current(subscribed: MiniScheduler) -> None:
    doc = call_doc(subscribed, "REVIVE")
    missing = subscribed.post(doc, stream_id=None)
    assert missing.status_code == 400
    assert missing.text == "All non-subscribe calls should include the 'Mesos-Stream-Id' header"
    stale = subscribed.post(doc, stream_id="00000000-0000-0000-0000-000000000000")
    assert stale.status_code == 400 and "didn't match the stream ID" in stale.text


def test_unknown_framework_is_400_and_a_disconnected_one_403(subscribed: MiniScheduler) -> None:
    unknown = subscribed.post({"type": "REVIVE", "framework_id": {"value": "nobody"}})
    assert unknown.status_code == 400 and unknown.text == "Framework cannot be found"
    subscribed.disconnect()
    wait_until(lambda: subscribed.post(call_doc(subscribed, "REVIVE")).status_code == 403, what="403")
    response = subscribed.post(call_doc(subscribed, "REVIVE"))
    assert response.text == "Framework is not subscribed"


def test_unknown_call_type_is_501(subscribed: MiniScheduler) -> None:
    assert subscribed.post(call_doc(subscribed, "UNKNOWN")).status_code == 501


def test_subscribe_rules(cluster: LocalCluster, subscribed: MiniScheduler) -> None:
    url = subscribed.url
    base = {"type": "SUBSCRIBE", "subscribe": {"framework_info": framework_info()}}
    headers = {"Content-Type": "application/json"}
    with_stream = requests.post(url, json=base, headers=dict(headers, **{"Mesos-Stream-Id": "x"}), timeout=5)
    assert with_stream.status_code == 400
    assert with_stream.text == "Subscribe calls should not include the 'Mesos-Stream-Id' header"
    html = requests.post(url, json=base, headers=dict(headers, Accept="text/html"), timeout=5)
    assert html.status_code == 406
    one_place = dict(base, framework_id={"value": subscribed.framework_id})
    mismatch = requests.post(url, json=one_place, headers=headers, timeout=5)
    assert mismatch.status_code == 400
    assert mismatch.text.endswith("'framework_id' differs from 'subscribe.framework_info.id'")
    no_user = {"type": "SUBSCRIBE", "subscribe": {"framework_info": {"name": "x"}}}
    assert requests.post(url, json=no_user, headers=headers, timeout=5).status_code == 400


@pytest.mark.parametrize(
    ("info", "message"),
    [
        ({**framework_info(capabilities=[]), "roles": ["a"]}, "'FrameworkInfo.roles' must not be set"),
        (framework_info(role="a"), "'FrameworkInfo.role' must not be set when the framework is MULTI_ROLE"),
        (framework_info(roles=["a", "a"]), "'FrameworkInfo.roles' contains duplicate items"),
        (framework_info(roles=["../x"]), "'FrameworkInfo.roles' contains invalid role"),
    ],
)
def test_invalid_framework_info_is_refused_with_an_error_event(
    cluster: LocalCluster, info: dict[str, Any], message: str
) -> None:
    sched = MiniScheduler(cluster.url, info)
    try:
        first = sched.subscribe()
        assert first["type"] == "ERROR" and message in first["error"]["message"]
        assert sched.ended.wait(5)
        assert cluster.state()["frameworks"] == []
    finally:
        sched.close()


def test_suppressed_roles_must_be_subscribed_roles(cluster: LocalCluster) -> None:
    sched = MiniScheduler(cluster.url, framework_info(roles=["a"]), suppressed_roles=["b"])
    try:
        first = sched.subscribe()
        assert (
            first["type"] == "ERROR" and "are not contained in the set of roles" in first["error"]["message"]
        )
    finally:
        sched.close()


def test_standby_answers_307_with_a_protocol_relative_location(
    make_cluster: Callable[..., LocalCluster],
) -> None:
    leader = make_cluster(agent_count=1)
    standby = make_cluster(agent_count=1, leader_url=leader.url)
    for method in ("POST", "GET"):
        response = requests.request(
            method,
            standby.url + "/api/v1/scheduler",
            json={"type": "SUBSCRIBE"},
            allow_redirects=False,
            timeout=5,
        )
        assert response.status_code == 307
        assert response.headers["Location"] == f"//127.0.0.1:{leader.port}/api/v1/scheduler"
    assert standby.metrics()["master/elected"] == 0.0
    redirect = requests.get(standby.url + "/master/redirect", allow_redirects=False, timeout=5)
    assert redirect.headers["Location"] == f"//127.0.0.1:{leader.port}"
    standby.redirect_to(None)
    sched = MiniScheduler(standby.url)
    try:
        assert sched.subscribe()["type"] == "SUBSCRIBED"
    finally:
        sched.close()


def test_every_event_conforms_to_the_v1_schema(cluster: LocalCluster, make_scheduler: MakeScheduler) -> None:
    """All event kinds a scenario produces, checked field by field against the .proto-derived table."""
    from tests.unit.mesos.test_schema_conformance import body_errors, check

    sched = make_scheduler(
        capabilities=["MULTI_ROLE", "PARTITION_AWARE", "TASK_KILLING_STATE"], roles=["web"], auto_ack=True
    )
    sched.subscribe()
    offers = sorted(sched.offers(), key=lambda o: o["agent_id"]["value"])
    sched.launch(offers[0], task("t", offers[0], health_check={"type": "TCP", "tcp": {"port": 80}}))
    sched.wait_for(lambda e: e["type"] == "UPDATE" and e["update"]["status"].get("healthy") is True)
    sched.reconcile([("t", None), ("ghost", offers[0]["agent_id"]["value"])])
    sched.update("ghost")
    sched.kill("t")
    sched.update("t", "TASK_KILLED")
    sched.decline([offers[1]["id"]["value"]], refuse_seconds=0.01)
    cluster.make_agent_unreachable(offers[1]["agent_id"]["value"])
    sched.wait_for(lambda e: e["type"] == "FAILURE")
    kinds = {e["type"] for e in sched.events}
    assert {"SUBSCRIBED", "HEARTBEAT", "OFFERS", "UPDATE", "FAILURE"} <= kinds
    problems = [
        p for e in sched.events for p in body_errors(e, "scheduler.Event") + check(e, "scheduler.Event")
    ]
    assert problems == []


def test_a_client_that_resets_its_connection_is_no_traceback(
    cluster: LocalCluster, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    """A scheduler killed with SIGKILL resets its keep-alive connections; socketserver would print a
    traceback on stderr for each."""
    import socket
    import struct

    caplog.set_level("DEBUG", logger="framework.localcluster.http")
    with socket.create_connection((cluster.host, cluster.port), timeout=5) as sock:
        sock.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        # The handler now waits for the next request line on this connection: reset it (RST).
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    wait_until(lambda: "went away" in caplog.text, what="the reset to be handled")
    assert "Traceback" not in capfd.readouterr().err
