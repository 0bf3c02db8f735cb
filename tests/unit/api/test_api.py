"""Every endpoint of the operator API over real HTTP, in front of a hand-driven core; every
response is checked against the OpenAPI document too."""

from __future__ import annotations

import concurrent.futures
import json
import logging
import os
import re

import pytest
import requests
import schemathesis

from framework.api.openapi import openapi_document
from framework.api.server import ApiStartupError, BearerToken
from framework.model.usage import UsageReport, encode_usage
from tests.unit.api.harness import TOKEN, Site

SCHEMA = schemathesis.openapi.from_dict(openapi_document())


def checked(response: requests.Response, path: str, method: str = "GET") -> requests.Response:
    """``response``, after validating it against the document's operation for ``path``."""
    SCHEMA[path][method].validate_response(response)
    assert response.headers["Content-Type"].startswith("application/json")
    return response


def test_the_schema_check_itself_catches_a_wrong_shape(site: Site) -> None:
    tasks = site.get("/v1/tasks")
    assert SCHEMA["/v1/tasks"]["GET"].is_valid_response(tasks)
    assert not SCHEMA["/v1/services"]["GET"].is_valid_response(tasks)


# --- health ---------------------------------------------------------------------------------------


def test_healthz_answers_at_once_and_readyz_waits_for_subscription_and_reconciliation(bare: Site) -> None:
    assert checked(bare.get("/healthz"), "/healthz").json() == {"status": "ok"}
    not_ready = checked(bare.get("/readyz"), "/readyz")
    assert not_ready.status_code == 503
    assert not_ready.json()["reasons"] == ["not subscribed to a Mesos master", "tasks not reconciled yet"]
    bare.subscribe()
    ready = checked(bare.get("/readyz"), "/readyz")
    assert ready.status_code == 200 and ready.json()["ready"] is True


def test_reads_before_the_first_event_say_there_is_no_state_yet(bare: Site) -> None:
    response = checked(bare.get("/v1/services"), "/v1/services")
    assert response.status_code == 503 and "no scheduler state yet" in response.json()["error"]


# --- reads ----------------------------------------------------------------------------------------


def test_services_list_counts_policy_and_recent_decisions_with_reasons(site: Site) -> None:
    services = {s["name"]: s for s in checked(site.get("/v1/services"), "/v1/services").json()["services"]}
    assert list(services) == ["squid", "web", "cvmfs"]
    squid, web, cvmfs = services["squid"], services["web"], services["cvmfs"]
    assert (web["policy"], web["desired"], web["running"], web["desired_reason"]) == (
        "fixed",
        2,
        2,
        "instances: 2",
    )
    assert (cvmfs["policy"], cvmfs["desired"]) == ("per_host", 2)
    assert squid["policy"] == "autoscale" and squid["desired"] == 3 and squid["running"] == 1
    assert squid["autoscale"]["load"] == 250.0 and squid["autoscale"]["target"] == 3
    assert squid["autoscale"]["min"] == 1 and squid["autoscale"]["max"] == 5
    (decision,) = squid["recent_decisions"]
    assert decision["direction"] == "up" and decision["reason"].startswith("up 1->3: 250 req/s")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", decision["time"])
    assert squid["endpoints"] == ["a:31000"]


def test_one_service_and_an_unknown_one(site: Site) -> None:
    web = checked(site.get("/v1/services/web"), "/v1/services/{name}")
    assert web.status_code == 200 and web.json()["name"] == "web"
    missing = checked(site.get("/v1/services/nope"), "/v1/services/{name}")
    assert missing.status_code == 404 and missing.json() == {"error": "no service named 'nope'"}
    assert site.get("/v1/nothing").status_code == 404
    assert site.get("/v1/services/web/nothing").status_code == 404


def test_decisions_of_a_service_with_a_limit(site: Site) -> None:
    site.decide("squid", 260.0)
    site.decide("squid", 30.0)
    path = "/v1/services/{name}/decisions"
    every = checked(site.get("/v1/services/squid/decisions"), path).json()
    assert every["service"] == "squid" and len(every["decisions"]) >= 2
    last = checked(site.get("/v1/services/squid/decisions?limit=1"), path).json()["decisions"]
    assert last == [every["decisions"][-1]] or last[0]["reason"] == every["decisions"][-1]["reason"]
    assert checked(site.get("/v1/services/web/decisions"), path).json()["decisions"] == []
    for bad in ("0", "-1", "x", "1.5"):
        response = checked(site.get(f"/v1/services/squid/decisions?limit={bad}"), path)
        assert response.status_code == 400, bad
    assert checked(site.get("/v1/services/nope/decisions"), path).status_code == 404


def test_endpoints_of_a_squid_service_and_where_tasks_listen(site: Site) -> None:
    body = checked(site.get("/v1/services/squid/endpoints"), "/v1/services/{name}/endpoints").json()
    assert body["endpoints"] == ["a:31000"]
    assert [(t["hostname"], t["ports"]) for t in body["tasks"]] == [("a", [31000])]
    web = checked(site.get("/v1/services/web/endpoints"), "/v1/services/{name}/endpoints").json()
    assert web["endpoints"] == [] and web["tasks"] == []  # web claims no ports


def test_tasks_filtered_by_service_and_state_with_their_usage(site: Site) -> None:
    everything = checked(site.get("/v1/tasks"), "/v1/tasks").json()["tasks"]
    assert len(everything) == 5
    web = checked(site.get("/v1/tasks?service=web"), "/v1/tasks").json()["tasks"]
    assert {t["service"] for t in web} == {"web"} and len(web) == 2
    task_id = web[0]["task_id"]
    report = UsageReport(
        task_id=task_id,
        container="c1",
        timestamp=5.0,
        cpu_seconds_total=1.5,
        memory_bytes=1024.0,
        net_rx_bytes=10.0,
        net_tx_bytes=20.0,
    )
    site.driver.run(lambda: site.scheduler.message(site.driver, "agent-a", "e1", encode_usage(report)))  # type: ignore[arg-type]
    running = checked(site.get("/v1/tasks?service=web&state=RUNNING"), "/v1/tasks").json()["tasks"]
    usage = {t["task_id"]: t["usage"] for t in running}
    assert usage[task_id] == {
        "cpu_seconds_total": 1.5,
        "memory_bytes": 1024.0,
        "net_rx_bytes": 10.0,
        "net_tx_bytes": 20.0,
        "timestamp": 5.0,
        "container": "c1",
    }
    assert checked(site.get("/v1/tasks?state=TASK_KILLING"), "/v1/tasks").json()["tasks"] == []
    bad = checked(site.get("/v1/tasks?state=SLEEPING"), "/v1/tasks")
    assert bad.status_code == 400 and "unknown state 'SLEEPING'" in bad.json()["error"]
    assert checked(site.get("/v1/tasks?service=nope"), "/v1/tasks").status_code == 404


def test_service_discovery_lists_each_squid_cache_manager_in_http_sd_format(site: Site) -> None:
    groups = checked(site.get("/v1/sd"), "/v1/sd").json()
    (group,) = groups
    assert group["targets"] == ["a:31000"]
    labels = group["labels"]
    assert labels["steward_service"] == "squid" and labels["steward_target"] == "squid_cache_manager"
    assert labels["steward_task_id"].startswith("squid.0.") and labels["steward_host"] == "a"


def test_metrics_are_served_in_the_prometheus_text_format(site: Site) -> None:
    response = site.get("/metrics")
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    assert 'steward_service_desired_instances{service="squid"} 3.0' in response.text
    openmetrics = site.get("/metrics", headers={"Accept": "application/openmetrics-text"})
    assert openmetrics.text.rstrip().endswith("# EOF")


def test_the_openapi_document_names_every_route_the_server_answers(site: Site) -> None:
    document = site.get("/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    assert set(document["paths"]) == {
        "/v1/services",
        "/v1/services/{name}",
        "/v1/services/{name}/decisions",
        "/v1/services/{name}/endpoints",
        "/v1/tasks",
        "/v1/sd",
        "/v1/services/{name}/scale",
        "/v1/services/{name}/pause",
        "/v1/services/{name}/resume",
        "/v1/services/{name}/restart",
        "/v1/reload",
        "/healthz",
        "/readyz",
        "/metrics",
        "/v1/openapi.json",
    }
    for path, operations in document["paths"].items():
        concrete = path.replace("{name}", "web")
        for method in operations:
            if method == "get":
                assert site.get(concrete).status_code != 404 or "{name}" in path, path
            else:
                assert site.post(concrete, {}, token=None).status_code == 401, path


# --- writes ---------------------------------------------------------------------------------------


def desired(site: Site, name: str) -> int:
    snapshot = site.scheduler.snapshot()
    assert snapshot is not None
    return snapshot.service(name).desired


def test_scale_without_or_with_a_wrong_token_is_401_and_changes_nothing(site: Site) -> None:
    overrides = site.runtime.store.overrides()
    for token in (None, "wrong", TOKEN + "x", TOKEN[:-1], ""):
        response = checked(
            site.post("/v1/services/web/scale", {"instances": 5}, token=token),
            "/v1/services/{name}/scale",
            "POST",
        )
        assert response.status_code == 401, token
        assert response.headers["WWW-Authenticate"] == 'Bearer realm="steward"'
    basic = site.session.post(
        site.url + "/v1/services/squid/scale", json={"instances": 4}, auth=("steward", TOKEN), timeout=10
    )
    assert basic.status_code == 401
    assert desired(site, "web") == 2 and desired(site, "squid") == 3
    assert site.runtime.autoscale.autoscaler("squid").pinned is None
    assert site.runtime.store.overrides() == overrides


def test_scale_pins_a_fixed_service_and_null_clears_the_pin(site: Site) -> None:
    path = "/v1/services/{name}/scale"
    up = checked(site.post("/v1/services/web/scale", {"instances": 4}), path, "POST")
    assert up.status_code == 200 and up.json()["service"]["desired"] == 4
    assert "pinned at 4 by an operator" in up.json()["service"]["desired_reason"]
    assert desired(site, "web") == 4
    assert site.runtime.store.overrides()["web"] == {"pinned": 4}, "a failover keeps the pin"
    cleared = checked(site.post("/v1/services/web/scale", {"instances": None}), path, "POST")
    assert cleared.json()["service"]["desired"] == 2 and desired(site, "web") == 2
    assert "pinned" not in site.runtime.store.overrides()["web"]


def test_scale_pins_an_autoscaled_service_in_its_policy_and_the_store(site: Site) -> None:
    response = checked(
        site.post("/v1/services/squid/scale", {"instances": 2}), "/v1/services/{name}/scale", "POST"
    )
    assert response.json()["service"]["autoscale"]["pinned"] == 2 and desired(site, "squid") == 2
    assert site.runtime.autoscale.autoscaler("squid").pinned == 2
    assert site.runtime.store.overrides()["squid"]["pinned"] == 2
    site.post("/v1/services/squid/scale", {"instances": None})
    assert site.runtime.autoscale.autoscaler("squid").pinned is None
    assert "pinned" not in site.runtime.store.overrides()["squid"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": -1}, "between 0 and 10000"),
        ({"instances": 10001}, "between 0 and 10000"),
        ({"instances": True}, "integer or null"),
        ({"instances": "3"}, "integer or null"),
        ({"instances": 1.5}, "integer or null"),
        ({"instances": 1e300}, "between 0 and 10000"),
        ({}, "is required"),
        ({"instances": 1, "force": True}, "unexpected field(s): force"),
        ([3], "JSON object"),
        (None, "JSON object"),
    ],
)
def test_scale_refuses_wrong_bodies_with_400(site: Site, body: object, message: str) -> None:
    data = json.dumps(body).encode() if body is not None else None
    response = site.post("/v1/services/web/scale", data=data) if data else site.post("/v1/services/web/scale")
    checked(response, "/v1/services/{name}/scale", "POST")
    assert response.status_code == 400 and message in response.json()["error"], response.json()
    assert desired(site, "web") == 2


def test_bad_json_is_400_with_a_clear_message(site: Site) -> None:
    for data in (b"{", b"not json", b"\xff\xfe", b'{"instances": 1,}'):
        response = checked(
            site.post("/v1/services/web/scale", data=data), "/v1/services/{name}/scale", "POST"
        )
        assert response.status_code == 400 and "not valid JSON" in response.json()["error"], data
    pause = site.post("/v1/services/squid/pause", data=b"[")
    assert pause.status_code == 400
    assert not site.runtime.autoscale.autoscaler("squid").paused


def test_unknown_services_are_404_and_per_host_services_cannot_be_pinned(site: Site) -> None:
    for action in ("scale", "pause", "resume", "restart"):
        response = checked(
            site.post(f"/v1/services/nope/{action}", {"instances": 1} if action == "scale" else None),
            f"/v1/services/{{name}}/{action}",
            "POST",
        )
        assert response.status_code == 404, action
    per_host = checked(
        site.post("/v1/services/cvmfs/scale", {"instances": 1}), "/v1/services/{name}/scale", "POST"
    )
    assert per_host.status_code == 409 and "one task per host" in per_host.json()["error"]


def test_pause_and_resume_an_autoscaled_service_and_409_for_others(site: Site) -> None:
    paused = checked(site.post("/v1/services/squid/pause"), "/v1/services/{name}/pause", "POST")
    assert paused.status_code == 200 and paused.json()["service"]["autoscale"]["paused"] is True
    assert site.runtime.store.overrides()["squid"]["paused"] is True
    site.decide("squid", 1000.0)
    assert desired(site, "squid") == 3  # paused: the policy holds
    resumed = checked(site.post("/v1/services/squid/resume", {}), "/v1/services/{name}/resume", "POST")
    assert resumed.json()["service"]["autoscale"]["paused"] is False
    other = checked(site.post("/v1/services/web/pause"), "/v1/services/{name}/pause", "POST")
    assert other.status_code == 409 and "not autoscaled" in other.json()["error"]
    extra = site.post("/v1/services/squid/pause", {"really": True})
    assert extra.status_code == 400


def test_restart_replaces_the_tasks_one_at_a_time(site: Site) -> None:
    before = {t["task_id"] for t in site.get("/v1/tasks?service=web").json()["tasks"]}
    response = checked(site.post("/v1/services/web/restart"), "/v1/services/{name}/restart", "POST")
    assert response.status_code == 200 and response.json()["service"]["restart_pending"] == 1
    kills = [args for name, args in site.driver.calls if name == "kill"]
    assert len(kills) == 1 and kills[0][0] in before


def test_reload_applies_a_valid_file_and_refuses_an_invalid_one(site: Site) -> None:
    site.write_config(web_instances=3)
    applied = checked(site.post("/v1/reload"), "/v1/reload", "POST")
    assert applied.status_code == 200 and applied.json()["applied"] is True
    assert desired(site, "web") == 3
    site.write_config(web_instances="many")
    refused = checked(site.post("/v1/reload"), "/v1/reload", "POST")
    assert refused.status_code == 422 and refused.json()["applied"] is False
    assert any("instances" in e for e in refused.json()["errors"])
    assert desired(site, "web") == 3
    no_file = site.serve(config_path=None)
    assert site.post("/v1/reload", server=no_file).status_code == 409


def test_concurrent_writes_are_applied_one_at_a_time_and_none_is_lost(site: Site) -> None:
    fed: list[object] = []
    feed = site.scheduler.feed

    def recording(event: object) -> None:
        fed.append(event)
        feed(event)  # type: ignore[arg-type]

    site.scheduler.feed = recording  # type: ignore[method-assign]
    requests_ = [("/v1/services/web/scale", {"instances": n % 5}) for n in range(12)]
    requests_ += [("/v1/services/squid/scale", {"instances": n % 4 + 1}) for n in range(12)]
    requests_ += [("/v1/services/squid/pause", None), ("/v1/services/squid/resume", None)] * 4

    def send(item: tuple[str, object]) -> int:
        with requests.Session() as session:
            response = session.post(site.url + item[0], json=item[1], headers=site.headers(), timeout=60)
            return response.status_code

    with concurrent.futures.ThreadPoolExecutor(max_workers=16) as pool:
        statuses = list(pool.map(send, requests_))
    assert statuses == [200] * len(requests_), statuses
    web_targets = [e.instances for e in fed if getattr(e, "service", None) == "web"]  # type: ignore[attr-defined]
    assert len(web_targets) == 12
    assert desired(site, "web") == web_targets[-1] or (web_targets[-1] is None and desired(site, "web") == 2)
    squid = site.runtime.autoscale.autoscaler("squid")
    assert site.runtime.store.overrides()["squid"]["pinned"] == squid.pinned == desired(site, "squid")


# --- tokens, read protection, standbys ------------------------------------------------------------


def test_the_token_never_appears_in_responses_or_logs(site: Site, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.DEBUG):
        responses = [
            site.post("/v1/services/web/scale", {"instances": 3}),
            site.post("/v1/services/web/scale", {"instances": 3}, token="wrong"),
            site.post("/v1/services/web/scale", data=TOKEN.encode()),
            site.post(f"/v1/services/{TOKEN}/pause"),
            site.get(f"/v1/services/{TOKEN}"),
            site.get("/v1/services", token=TOKEN),
            site.get("/v1/openapi.json"),
            site.get("/metrics"),
        ]
    for response in responses:
        text = response.text + json.dumps(dict(response.headers))
        path_echo = TOKEN in response.request.url  # a token put in the path is the client's doing
        assert path_echo or TOKEN not in text, response.request.url
    assert TOKEN not in caplog.text.replace(f"/v1/services/{TOKEN}", "")
    assert TOKEN not in repr(site.server.token) and TOKEN not in repr(site.server)


def test_reads_can_require_the_token_but_health_and_the_document_never_do(site: Site) -> None:
    strict = site.serve(read_token_required=True)
    for path in ("/v1/services", "/v1/tasks", "/v1/sd", "/v1/services/web", "/metrics"):
        assert site.get(path, server=strict).status_code == 401, path
        assert site.get(path, server=strict, token="nope").status_code == 401, path
        assert site.get(path, server=strict, token=TOKEN).status_code == 200, path
    for path in ("/healthz", "/readyz", "/v1/openapi.json"):
        assert site.get(path, server=strict).status_code == 200, path
    with pytest.raises(ApiStartupError, match="needs a token_file"):
        site.serve(read_token_required=True, token_file=None)


def test_without_a_token_file_the_api_is_read_only(site: Site) -> None:
    read_only = site.serve(token_file=None)
    response = checked(
        site.post("/v1/services/web/scale", {"instances": 3}, server=read_only),
        "/v1/services/{name}/scale",
        "POST",
    )
    assert response.status_code == 403 and "token_file" in response.json()["error"]
    assert site.get("/v1/services", server=read_only).status_code == 200


def test_a_changed_token_file_is_read_again_and_a_missing_one_denies_all(site: Site) -> None:
    new = "rotated-token-0987654321"
    site.token_path.write_text(new + "\n")
    stat = site.token_path.stat()
    os.utime(site.token_path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert site.post("/v1/services/web/scale", {"instances": 3}).status_code == 401
    assert site.post("/v1/services/web/scale", {"instances": 3}, token=new).status_code == 200
    site.token_path.unlink()
    assert site.post("/v1/services/web/scale", {"instances": 2}, token=new).status_code == 401
    assert desired(site, "web") == 3


def test_an_unreadable_or_empty_token_file_stops_the_api_from_starting(tmp_path) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ApiStartupError, match="cannot read"):
        BearerToken(str(tmp_path / "missing"))
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ApiStartupError, match="empty") as info:
        BearerToken(str(empty))
    secret = tmp_path / "big"
    secret.write_text("x" * 70_000)
    with pytest.raises(ApiStartupError) as info:
        BearerToken(str(secret))
    assert "xxxx" not in str(info.value)


def test_a_standby_answers_reads_and_points_writes_at_the_leader(site: Site) -> None:
    standby = site.serve(is_leader=lambda: False, leader_url=lambda: "http://leader.example:8080")
    assert site.get("/v1/services", server=standby).status_code == 200
    moved = checked(
        site.post("/v1/services/web/scale", {"instances": 4}, server=standby),
        "/v1/services/{name}/scale",
        "POST",
    )
    assert moved.status_code == 307
    assert moved.headers["Location"] == "http://leader.example:8080/v1/services/web/scale"
    assert desired(site, "web") == 2
    assert (
        site.post("/v1/services/web/scale", {"instances": 4}, server=standby, token=None).status_code == 401
    )
    unknown = site.serve(is_leader=lambda: False)
    lost = checked(site.post("/v1/reload", server=unknown), "/v1/reload", "POST")
    assert lost.status_code == 409 and "not the leader" in lost.json()["error"]
    assert site.get("/readyz", server=unknown).json()["reasons"] == ["standby: another replica leads"]


# --- HTTP hygiene ---------------------------------------------------------------------------------


def test_wrong_methods_large_bodies_and_chunked_bodies_are_refused(site: Site) -> None:
    assert site.session.delete(site.url + "/v1/services/web", timeout=10).status_code == 405
    assert site.session.put(site.url + "/v1/reload", data=b"{}", timeout=10).status_code == 405
    assert site.get("/v1/services/web/scale").status_code == 405
    assert site.post("/v1/services", {}).status_code == 405
    assert site.post("/v1/elsewhere", {}).status_code == 404
    big = site.post("/v1/services/web/scale", data=b"{" + b" " * 70_000 + b"}")
    assert big.status_code == 413
    chunked = site.session.post(
        site.url + "/v1/services/web/scale",
        data=iter([b'{"instances":', b" 3}"]),
        headers=site.headers(),
        timeout=10,
    )
    assert chunked.status_code == 200 and chunked.json()["service"]["desired"] == 3
    too_big = site.session.post(
        site.url + "/v1/services/web/scale",
        data=iter([b"{", b" " * 40_000, b" " * 40_000, b"}"]),
        headers=site.headers(),
        timeout=10,
    )
    assert too_big.status_code == 413
    site.post("/v1/services/web/scale", {"instances": None})
    assert desired(site, "web") == 2
    assert site.get("/healthz").status_code == 200  # still serving


def test_closing_the_server_ends_idle_keep_alive_connections(site: Site) -> None:
    extra = site.serve()
    with requests.Session() as session:
        assert session.get(extra.url + "/healthz", timeout=10).status_code == 200
        extra.close()
        site.servers.remove(extra)
        with pytest.raises(requests.ConnectionError):
            session.get(extra.url + "/healthz", timeout=10)
    assert site.get("/healthz").status_code == 200


def test_a_replica_that_stands_by_without_state_sends_everything_to_the_leader(site: Site) -> None:
    active: list[object] = [None]
    standby = site.serve(
        runtime=lambda: active[0],
        is_leader=lambda: active[0] is not None,
        leader_url=lambda: "http://leader.example:8080",
    )
    moved = checked(site.get("/v1/tasks?service=web", server=standby, allow_redirects=False), "/v1/tasks")
    assert moved.status_code == 307
    assert moved.headers["Location"] == "http://leader.example:8080/v1/tasks?service=web"
    write = site.post("/v1/services/web/pause", server=standby)
    assert write.status_code == 307 and write.headers["Location"].endswith("/v1/services/web/pause")
    ready = checked(site.get("/readyz", server=standby), "/readyz")
    assert ready.status_code == 503 and ready.json()["leader"] is False
    metrics = site.get("/metrics", server=standby).text
    assert "steward_leader 0.0" in metrics and "steward_connected 0.0" in metrics
    assert "steward_service_desired_instances" not in metrics
    # Elected: the same server now answers from the runtime it is handed.
    active[0] = site.runtime
    assert site.get("/v1/tasks?service=web", server=standby).status_code == 200
    assert site.post("/v1/services/web/scale", {"instances": 3}, server=standby).status_code == 200
    assert "steward_leader 1.0" in site.get("/metrics", server=standby).text
