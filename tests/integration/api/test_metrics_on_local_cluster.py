"""A whole Steward on the embedded cluster (simulated tasks): scrape ``/metrics`` through the API
and find every metric the issue asks for, with values that match what the cluster did.

The site: an autoscaled squid fleet whose load source is a stand-in at a steady 1,500 req/s
(target 700 per squid: the policy asks for 3, two agents hold 2), two ``web`` instances that an
operator scales down to one through the API (a kill by scale-down), and a ``crashy`` service whose
task fails half a second after it runs (failures with a reason, restart backoff). Executor usage
reports enter as MESSAGE callbacks on the dispatcher, as the driver delivers them (the real
executor's end of this is tested with the executor).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

import framework.sources
from framework.api.server import ApiServer, start_api
from framework.config import load_config
from framework.core.autoscale import Sample
from framework.model.usage import UsageReport, encode_usage
from framework.runtime.app import Runtime, start_runtime

WAIT = 30.0
TOKEN = "integration-token-5f2c9a"

SITE = """
framework:
  name: metrics-it
  roles: [site]
  master: local
  local_cluster: {{containerizer: simulated, listen: "127.0.0.1:0", agents: 2}}
  store: {{type: file, path: {state}}}
  api: {{listen: "127.0.0.1:0", token_file: {token}}}
services:
  squid:
    kind: squid
    container: {{image: squid:6}}
    resources: {{cpus: 0.1, mem: 64MiB}}
    autoscale:
      min: 1
      max: 4
      source: {{type: http_json, params: {{url: "http://127.0.0.1:9/unused"}}}}
      target_per_instance: 700
      interval: 0.2s
  web:
    kind: generic
    container: {{image: nginx}}
    resources: {{cpus: 0.1, mem: 32MiB}}
    instances: 2
    constraints: []
  crashy:
    kind: generic
    container:
      image: busybox
      environment: {{SIMULATED_EXIT_AFTER: "0.5", SIMULATED_EXIT_CODE: "3"}}
    resources: {{cpus: 0.1, mem: 32MiB}}
    instances: 1
    constraints: []
    restart_backoff: {{initial: 0.5s, max: 2s}}
"""


class SteadyLoad:
    """The squid fleet's load source: 1,500 req/s, always."""

    name = "steady"

    def __init__(self, *args: Any, clock: Callable[[], float] = time.monotonic, **kwargs: Any) -> None:
        self._clock = clock

    def sample(self, now: float) -> Sample:
        return Sample(1500.0, now)

    def close(self) -> None:
        pass


@pytest.fixture
def steward(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Runtime, ApiServer]]:
    monkeypatch.setattr(framework.sources, "make_source", SteadyLoad)
    token = tmp_path / "token"
    token.write_text(TOKEN + "\n")
    token.chmod(0o600)
    config_file = tmp_path / "site.yaml"
    config_file.write_text(SITE.format(state=tmp_path / "state", token=token))
    config = load_config(config_file)
    runtime = start_runtime(config)
    try:
        api = start_api(runtime, config, config_path=str(config_file))
    except BaseException:
        runtime.close()
        raise
    yield runtime, api
    api.close()
    runtime.close()


Samples = dict[str, list[tuple[dict[str, str], float]]]


def scrape(api: ApiServer) -> Samples:
    response = requests.get(api.url + "/metrics", timeout=10)
    assert response.status_code == 200
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    matches = [v for have, v in found.get(name, []) if all(have.get(k) == w for k, w in labels.items())]
    assert len(matches) == 1, f"{name} {labels}: {found.get(name)}"
    return matches[0]


def total(found: Samples, name: str, **labels: str) -> float:
    return sum(v for have, v in found.get(name, []) if all(have.get(k) == w for k, w in labels.items()))


def wait_for(api: ApiServer, check: Callable[[Samples], bool], what: str) -> Samples:
    deadline = time.monotonic() + WAIT
    pause = threading.Event()
    while True:
        found = scrape(api)
        if check(found):
            return found
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        pause.wait(0.2)


def test_every_metric_is_scraped_with_values_that_match_the_cluster(
    steward: tuple[Runtime, ApiServer],
) -> None:
    runtime, api = steward
    # Two squids run (one per agent), both webs, and the crashy service has failed at least twice.
    found = wait_for(
        api,
        lambda f: (
            total(f, "steward_service_running_instances", service="squid") == 2
            and total(f, "steward_service_running_instances", service="web") == 2
            and total(f, "steward_task_failures_total", service="crashy") >= 2
            and total(f, "steward_autoscale_decisions_total", service="squid", direction="up") >= 1
        ),
        "squids, webs and crashy failures",
    )
    # An operator scales web down through the API; usage reports arrive from an "executor".
    response = requests.post(
        api.url + "/v1/services/web/scale",
        json={"instances": 1},
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    web_task = next(
        t["task_id"] for t in requests.get(api.url + "/v1/tasks?service=web", timeout=10).json()["tasks"]
    )
    report = UsageReport(
        task_id=web_task,
        container="c-web",
        timestamp=time.time(),
        cpu_seconds_total=3.25,
        memory_bytes=50_000_000.0,
        net_rx_bytes=1234.0,
        net_tx_bytes=5678.0,
    )
    runtime.driver.call_soon(
        lambda: runtime.scheduler.message(runtime.driver, "agent-1", "exec-web", encode_usage(report))
    )
    found = wait_for(
        api,
        lambda f: (
            total(f, "steward_kills_total", service="web", reason="scale_down") >= 1
            and total(f, "steward_service_running_instances", service="web") == 1
            and total(f, "steward_task_cpu_seconds_total", service="web") > 0
        ),
        "web scaled down and usage exported",
    )

    # Leader and connection state, age of the last event from the master.
    assert value(found, "steward_leader") == 1
    assert value(found, "steward_connected") == 1
    assert value(found, "steward_reconciled") == 1
    assert 0 <= value(found, "steward_master_last_event_age_seconds") < 20
    assert value(found, "steward_subscriptions_total") == 1
    assert value(found, "steward_master_events_total") > 0
    assert 0 <= value(found, "steward_state_snapshot_age_seconds") < 10
    # Offers: every one received was accepted or declined in its handling (none outstanding).
    received = value(found, "steward_offers_received_total")
    accepted = value(found, "steward_offers_accepted_total")
    declined = total(found, "steward_offers_declined_total")
    assert accepted > 0 and declined > 0
    assert received == accepted + declined
    assert value(found, "steward_offers_outstanding") == 0
    assert all(labels["reason"] for labels, _ in found["steward_offers_declined_total"])
    assert value(found, "steward_revive_calls_total") >= 1
    assert value(found, "steward_suppress_calls_total") >= 0
    assert value(found, "steward_role_suppressed", role="site") in (0, 1)
    # Tasks by service and state; desired and running per service.
    assert value(found, "steward_tasks", service="squid", state="TASK_RUNNING") == 2
    assert value(found, "steward_service_desired_instances", service="squid") == 3
    assert value(found, "steward_service_pending_instances", service="squid") == 1
    assert value(found, "steward_service_desired_instances", service="web") == 1
    assert value(found, "steward_service_desired_instances", service="crashy") == 1
    assert value(found, "steward_service_endpoints", service="squid") == 2
    # Launches and failures with their reason; launch-to-RUNNING latency.
    assert value(found, "steward_launches_total", service="web") == 2
    assert value(found, "steward_launches_total", service="squid") >= 2
    assert value(found, "steward_launches_total", service="crashy") >= 2
    failures = [
        (labels, v) for labels, v in found["steward_task_failures_total"] if labels["service"] == "crashy"
    ]
    assert sum(v for _, v in failures) >= 2
    for labels, _ in failures:  # exit code 3: TASK_FAILED (the simulated agent may give no reason)
        assert labels["state"] == "TASK_FAILED", labels
        assert labels["reason"] == "none" or labels["reason"].startswith("REASON_"), labels
    assert total(found, "steward_task_failures_total", service="web") == 0  # killed by Steward: no failure
    assert value(found, "steward_launch_to_running_seconds_count", service="web") == 2
    assert 0 <= value(found, "steward_launch_to_running_seconds_sum", service="web") < 20
    assert value(found, "steward_launch_to_running_seconds_bucket", service="web", le="+Inf") == 2
    # Restart backoff of the crashing service.
    assert value(found, "steward_service_restart_failures", service="crashy") >= 1
    assert 0 <= value(found, "steward_service_restart_backoff_seconds", service="crashy") <= 2
    assert value(found, "steward_service_restart_failures", service="web") == 0
    # Reconciliation duration (first subscription: nothing to reconcile, so immediate).
    assert 0 <= value(found, "steward_reconciliation_duration_seconds") < 5
    # Autoscaler: observed load, target, decisions by direction; not pinned or paused.
    assert value(found, "steward_autoscale_load", service="squid") == 1500.0
    assert value(found, "steward_autoscale_load_missing", service="squid") == 0
    assert value(found, "steward_autoscale_target_instances", service="squid") == 3
    assert value(found, "steward_autoscale_target_per_instance", service="squid") == 700.0
    assert value(found, "steward_autoscale_decisions_total", service="squid", direction="up") >= 1
    assert value(found, "steward_autoscale_decisions_total", service="squid", direction="hold") >= 1
    assert value(found, "steward_autoscale_pinned", service="squid") == 0
    assert value(found, "steward_autoscale_paused", service="squid") == 0
    # Kills by reason; circuit breaker state.
    assert value(found, "steward_kills_total", service="web", reason="scale_down") == 1
    assert value(found, "steward_service_circuit_breaker_open", service="web") == 0
    # Per-task usage, labelled by service and task.
    assert value(found, "steward_task_cpu_seconds_total", service="web", task_id=web_task) == 3.25
    assert value(found, "steward_task_memory_bytes", service="web", task_id=web_task) == 50_000_000
    assert value(found, "steward_task_network_receive_bytes_total", task_id=web_task) == 1234
    assert value(found, "steward_task_network_transmit_bytes_total", task_id=web_task) == 5678
    # The process's own figures are there too.
    assert value(found, "steward_process_resident_memory_bytes") > 0
    # And the HTTP service discovery lists both squids' cache managers.
    groups = requests.get(api.url + "/v1/sd", timeout=10).json()
    assert len(groups) == 2
    assert all(g["labels"]["steward_service"] == "squid" for g in groups)


def test_a_rolling_restart_through_the_api_replaces_every_task_on_the_cluster(
    steward: tuple[Runtime, ApiServer],
) -> None:
    _, api = steward
    auth = {"Authorization": f"Bearer {TOKEN}"}

    def web_tasks() -> dict[str, str]:
        tasks = requests.get(api.url + "/v1/tasks?service=web", timeout=10).json()["tasks"]
        return {t["task_id"]: t["state"] for t in tasks}

    wait_for(api, lambda f: total(f, "steward_service_running_instances", service="web") == 2, "webs running")
    before = set(web_tasks())
    response = requests.post(api.url + "/v1/services/web/restart", headers=auth, timeout=10)
    assert response.status_code == 200 and response.json()["service"]["restart_pending"] == 1
    found = wait_for(
        api,
        lambda f: (
            total(f, "steward_kills_total", service="web", reason="restart") == 2
            and total(f, "steward_service_restart_pending", service="web") == 0
            and total(f, "steward_tasks", service="web", state="TASK_RUNNING") == 2
            and total(f, "steward_tasks", service="web") == 2
        ),
        "both webs replaced",
    )
    after = web_tasks()
    assert set(after).isdisjoint(before) and set(after.values()) == {"TASK_RUNNING"}
    assert value(found, "steward_launches_total", service="web") == 4
    assert total(found, "steward_task_failures_total", service="web") == 0
