"""``steward run`` against a scripted master over real HTTP: registration, persistence, offers, ACKs."""

from __future__ import annotations

import base64
import dataclasses
import threading
import time
import uuid
from pathlib import Path

import pytest
import requests

from framework.cli import main
from framework.config import parse_config
from framework.runtime.app import Runtime, StartupError, start_runtime
from framework.store.sqlite import SQLiteStore
from framework.testing.scripted_server import Respond, ScriptedServer, Stream

WAIT = 10.0


def site(tmp_path: Path, master: str, extra: str = "") -> str:
    return f"""
framework:
  name: test-site
  roles: [site]
  master: {master}
  store: {{type: file, path: {tmp_path / "state"}}}
  offers: {{refuse_seconds: 300s}}
  api: {{listen: 127.0.0.1:0}}
{extra}
services:
  web:
    kind: generic
    container: {{image: example/web:1}}
    resources: {{cpus: 1, mem: 128MiB}}
"""


def subscribed(framework_id: str = "fw-7") -> dict[str, object]:
    return {
        "type": "SUBSCRIBED",
        "subscribed": {"framework_id": {"value": framework_id}, "heartbeat_interval_seconds": 15.0},
    }


def offer(offer_id: str) -> dict[str, object]:
    return {
        "id": {"value": offer_id},
        "framework_id": {"value": "fw-7"},
        "agent_id": {"value": "agent-1"},
        "hostname": "agent-1",
        "resources": [
            {
                "name": "cpus",
                "type": "SCALAR",
                "scalar": {"value": 4},
                "role": "*",
                "allocation_info": {"role": "site"},
            },
            {
                "name": "mem",
                "type": "SCALAR",
                "scalar": {"value": 4096},
                "role": "*",
                "allocation_info": {"role": "site"},
            },
            {
                "name": "ports",
                "type": "RANGES",
                "ranges": {"range": [{"begin": 31000, "end": 31099}]},
                "role": "*",
                "allocation_info": {"role": "site"},
            },
        ],
        "allocation_info": {"role": "site"},
    }


@pytest.fixture
def server():
    with ScriptedServer() as srv:
        yield srv


@pytest.fixture
def started(tmp_path: Path, server: ScriptedServer):
    runtimes: list[Runtime] = []

    def start(extra: str = "") -> Runtime:
        config = parse_config(site(tmp_path, server.url, extra), "site.yaml")
        runtime = start_runtime(config)
        runtimes.append(runtime)
        return runtime

    yield start
    for runtime in runtimes:
        runtime.close()


def test_first_registration_persists_the_id_revives_for_demand_and_reconciles(server, started, tmp_path):
    server.on("SUBSCRIBE", Stream([subscribed()]))
    runtime = started()
    body = server.wait_for(1, "SUBSCRIBE", timeout=WAIT)[0].json
    info = body["subscribe"]["framework_info"]
    assert info["checkpoint"] is True
    assert info["failover_timeout"] == 7 * 86400
    assert info["roles"] == ["site"]
    assert {c["type"] for c in info["capabilities"]} == {
        "MULTI_ROLE",
        "PARTITION_AWARE",
        "TASK_KILLING_STATE",
    }
    assert "id" not in info and "framework_id" not in body
    assert body["subscribe"]["suppressed_roles"] == ["site"]
    # The web service wants an instance: offers are asked for again.
    revive = server.wait_for(1, "REVIVE", timeout=WAIT)[0].json
    assert revive["revive"] == {"roles": ["site"]}
    server.wait_for(1, "RECONCILE", timeout=WAIT)
    assert runtime.store.framework_id() == "fw-7"
    assert SQLiteStore(tmp_path / "state").framework_id() == "fw-7"


def test_a_restart_subscribes_with_the_stored_id_in_both_places(server, started, tmp_path):
    server.on("SUBSCRIBE", Stream([subscribed()]))
    first = started()
    server.wait_for(1, "RECONCILE", timeout=WAIT)
    first.close()
    started()
    body = server.wait_for(2, "SUBSCRIBE", timeout=WAIT)[1].json
    assert body["framework_id"] == {"value": "fw-7"}
    assert body["subscribe"]["framework_info"]["id"] == {"value": "fw-7"}


def test_an_offer_that_fits_launches_the_service_and_the_rest_are_declined(server, started):
    server.on(
        "SUBSCRIBE",
        Stream([subscribed(), {"type": "OFFERS", "offers": {"offers": [offer("o-1"), offer("o-2")]}}]),
    )
    runtime = started()
    accept = server.wait_for(1, "ACCEPT", timeout=WAIT)[0].json["accept"]
    assert accept["offer_ids"] == [{"value": "o-1"}]
    (task,) = accept["operations"][0]["launch"]["task_infos"]
    assert task["task_id"]["value"].startswith("web.0.")
    assert task["container"]["docker"]["image"] == "example/web:1"
    assert task["agent_id"] == {"value": "agent-1"}
    # The record was written before the ACCEPT went out.
    assert [r.task_id for r in runtime.store.load_tasks()] == [task["task_id"]["value"]]
    decline = server.wait_for(1, "DECLINE", timeout=WAIT)[0].json
    assert decline["decline"] == {"offer_ids": [{"value": "o-2"}], "filters": {"refuse_seconds": 300.0}}
    assert decline["framework_id"] == {"value": "fw-7"}


def test_updates_with_a_uuid_are_acknowledged_and_master_updates_are_not(server, started):
    uid = base64.b64encode(uuid.uuid4().bytes).decode()

    def update(task: str, with_uuid: bool) -> dict[str, object]:
        status: dict[str, object] = {
            "task_id": {"value": task},
            "state": "TASK_RUNNING",
            "agent_id": {"value": "agent-1"},
        }
        if with_uuid:
            status["uuid"] = uid
        return {"type": "UPDATE", "update": {"status": status}}

    server.on("SUBSCRIBE", Stream([subscribed(), update("from-master", False), update("from-agent", True)]))
    started()
    ack = server.wait_for(1, "ACKNOWLEDGE", timeout=WAIT)[0].json
    assert ack["acknowledge"] == {
        "agent_id": {"value": "agent-1"},
        "task_id": {"value": "from-agent"},
        "uuid": uid,
    }
    assert len(server.matching("ACKNOWLEDGE")) == 1


def test_removal_by_the_master_forgets_the_id(server, started):
    server.on(
        "SUBSCRIBE",
        Stream([subscribed(), {"type": "ERROR", "error": {"message": "Framework has been removed"}}]),
    )
    runtime = started()
    assert runtime.driver.join(WAIT)
    assert runtime.store.framework_id() is None


def test_the_principal_secret_is_sent_but_never_logged(server, started, tmp_path, caplog):
    secret = tmp_path / "secret"
    secret.write_text("s3cr3t-value\n")
    secret.chmod(0o600)
    server.on("SUBSCRIBE", Stream([subscribed()]))
    with caplog.at_level("DEBUG"):
        started(f"  principal: steward\n  secret_file: {secret}")
        request = server.wait_for(1, "RECONCILE", timeout=WAIT)[0]
    expected = "Basic " + base64.b64encode(b"steward:s3cr3t-value").decode()
    assert request.headers["Authorization"] == expected
    assert "s3cr3t-value" not in caplog.text


def test_master_local_runs_against_an_embedded_cluster_and_stops_it(tmp_path):
    extra = "  local_cluster: {agents: 2, containerizer: simulated, listen: 127.0.0.1:0}"
    config = parse_config(site(tmp_path, "local", extra), "site.yaml")
    runtime = start_runtime(config)
    try:
        assert runtime.embedded is not None
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline and runtime.store.framework_id() is None:
            time.sleep(0.05)
        framework_id = runtime.store.framework_id()
        assert framework_id is not None
        state = runtime.embedded.state()
        (framework,) = [f for f in state["frameworks"] if f["id"] == framework_id]
        assert framework["name"] == "test-site"
        assert len(state["slaves"]) == 2
    finally:
        runtime.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(runtime.embedded.url + "/health", timeout=2)


def test_a_bad_master_is_a_startup_error_naming_the_setting(tmp_path):
    config = parse_config(site(tmp_path, "http://127.0.0.1:1"), "site.yaml")
    bad = dataclasses.replace(config, framework=dataclasses.replace(config.framework, master="ftp://x"))
    with pytest.raises(StartupError, match=r"framework\.master"):
        start_runtime(bad)


def test_steward_run_reloads_on_sighup_and_stops_cleanly_on_sigterm(server, tmp_path, caplog):
    server.on("SUBSCRIBE", Stream([subscribed()]))
    server.on("TEARDOWN", Respond(500))
    config_file = tmp_path / "site.yaml"
    config_file.write_text(site(tmp_path, server.url))
    result: list[int] = []
    # Signals reach the main thread only: run the command there and deliver them from a helper.
    import os
    import signal

    def stop_when_registered() -> None:
        server.wait_for(1, "RECONCILE", timeout=WAIT)
        config_file.write_text(site(tmp_path, server.url).replace("cpus: 1", "cpus: lots"))
        os.kill(os.getpid(), signal.SIGHUP)
        deadline = time.monotonic() + WAIT
        while "reload refused" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)

    killer = threading.Thread(target=stop_when_registered)
    killer.start()
    result.append(main(["run", "--config", str(config_file)]))
    killer.join()
    assert result == [0]
    assert not server.matching("TEARDOWN")
    assert "services.web.resources.cpus" in caplog.text


def test_a_reload_applies_a_valid_file_and_keeps_the_running_config_on_a_bad_one(server, started, tmp_path):
    server.on("SUBSCRIBE", Stream([subscribed()]))
    runtime = started()
    server.wait_for(1, "RECONCILE", timeout=WAIT)
    path = tmp_path / "site.yaml"

    # A valid change: the web service wants two instances now.
    path.write_text(site(tmp_path, server.url).replace("    resources:", "    instances: 2\n    resources:"))
    result = runtime.reload(str(path))
    assert result.applied, result.errors
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        snapshot = runtime.scheduler.snapshot()
        if snapshot is not None and snapshot.service("web").desired == 2:
            break
        time.sleep(0.05)
    assert runtime.scheduler.snapshot().service("web").desired == 2

    # A broken file changes nothing and says why, with its line.
    path.write_text(site(tmp_path, server.url).replace("cpus: 1", "cpus: lots"))
    result = runtime.reload(str(path))
    assert not result.applied
    assert any("services.web.resources.cpus" in e and "site.yaml:" in e for e in result.errors)
    assert runtime.config.services["web"].instances == 2

    # Changing what the connection is made of needs a restart.
    path.write_text(site(tmp_path, server.url).replace("roles: [site]", "roles: [other]"))
    result = runtime.reload(str(path))
    assert not result.applied
    assert result.errors == (f"{path}: framework.roles: changing it needs a restart",)


def test_a_steward_executor_service_gets_the_zipapp_served_and_named_in_its_task(server, tmp_path):
    zipapp = tmp_path / "steward-executor.pyz"
    zipapp.write_bytes(b"PK\x05\x06" + b"\0" * 18)  # stands in for the built zipapp: only served here
    text = site(tmp_path, server.url, f"  executor: {{zipapp: {zipapp}, listen: 127.0.0.1:0}}").replace(
        "container: {image: example/web:1}", "container: {image: example/web:1, executor: steward}"
    )
    server.on(
        "SUBSCRIBE",
        Stream([subscribed(), {"type": "OFFERS", "offers": {"offers": [offer("o-1")]}}]),
    )
    runtime = start_runtime(parse_config(text, "site.yaml"))
    try:
        assert runtime.artifacts is not None
        accept = server.wait_for(1, "ACCEPT", timeout=WAIT)[0].json["accept"]
        (task,) = accept["operations"][0]["launch"]["task_infos"]
        assert "container" not in task and "command" not in task
        (uri,) = task["executor"]["command"]["uris"]
        assert uri["value"] == runtime.artifacts.url
        assert requests.get(uri["value"], timeout=5).content == zipapp.read_bytes()
    finally:
        runtime.close()
    with pytest.raises(requests.ConnectionError):
        requests.get(runtime.artifacts.url, timeout=2)
