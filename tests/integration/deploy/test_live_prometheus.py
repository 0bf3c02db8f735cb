"""A real Prometheus, configured from deploy/prometheus/steward-scrape.yml, scrapes a real Steward and
finds its squids through Steward's HTTP service discovery; every query of the Grafana dashboard and
every alert rule runs against what it scraped.

The set-up, all on 127.0.0.1:

* Steward (``start_runtime``) on its embedded cluster with the simulated containerizer: two agents
  named ``localhost`` and ``127.0.0.1`` (names that resolve here), each offering one port; its
  operator API (``start_api``) serves ``/metrics`` and ``/v1/sd``. The squid service is autoscaled from
  an HTTP JSON figure the test serves (2100 req/s at 700 per squid: three wanted, two hosts, so one
  instance stays pending); a CVMFS client runs on every host.
* Simulated tasks listen nowhere, so the test listens on the two squid ports itself: the blackbox
  exporter's TCP probes then reach "the squids" at the addresses the service discovery gave.
* The blackbox exporter with deploy/prometheus/blackbox-steward.yml.
* Prometheus with the shipped scrape config, changed only where a test must: the targets (Steward's
  API, the exporter's port), 1-second intervals, no Alertmanager, the rules file by absolute path.
"""

from __future__ import annotations

import contextlib
import http.server
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import requests
import yaml

from framework.api import ApiServer, start_api
from framework.config import parse_config
from framework.runtime.app import Runtime, start_runtime
from tests.integration.deploy.support import (
    ALERTS,
    BLACKBOX,
    SCRAPE,
    Query,
    binary,
    concrete,
    dashboard_panels,
    dashboard_queries,
    load_dashboard,
    metric_names,
    rule_queries,
)

T = TypeVar("T")
WAIT_S = 45.0
SQUID_LOAD = 2100.0


def wait_for(predicate: Callable[[], T | None], what: str, timeout_s: float = WAIT_S) -> T:
    pause = threading.Event()
    deadline = time.monotonic() + timeout_s
    last: Exception | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (requests.RequestException, KeyError, ValueError) as exc:
            last = exc
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {timeout_s:g}s waiting for {what} (last error: {last!r})")
        pause.wait(0.25)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def listener() -> socket.socket:
    """A listening socket on a free port: the kernel completes probes' connections from its backlog."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.bind(("127.0.0.1", 0))
    s.listen(64)
    return s


class LoadFigure:
    """``{"rate": N}`` over HTTP, the squid autoscaler's source (``http_json``)."""

    def __init__(self, rate: float) -> None:
        body = json.dumps({"rate": rate}).encode()

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/load"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(10)


def site_yaml(state: Path, cluster_file: Path, load_url: str) -> str:
    return f"""
framework:
  name: steward-deploy-test
  master: local
  local_cluster: {{containerizer: simulated, listen: "127.0.0.1:0", config: {cluster_file}}}
  store: {{type: file, path: {state}}}
  api: {{listen: "127.0.0.1:0"}}
services:
  squid:
    kind: squid
    container: {{image: steward/squid:local}}
    resources: {{cpus: 0.5, mem: 256MiB}}
    autoscale:
      min: 2
      max: 6
      source: {{type: http_json, params: {{url: "{load_url}", field: rate}}}}
      target_per_instance: 700
      interval: 1s
  cvmfs:
    kind: cvmfs
    container: {{image: cvmfs/service:latest}}
    resources: {{cpus: 0.2, mem: 128MiB}}
"""


def cluster_yaml(ports: list[int]) -> str:
    # Hostnames that resolve on this machine: the service discovery hands out hostname:port.
    agents = "".join(
        f"  - hostname: {name}\n    cpus: 4\n    mem: 8GiB\n    ports: ['{port}-{port}']\n"
        f"    attributes: {{rack: r{index + 1}}}\n"
        for index, (name, port) in enumerate(zip(("localhost", "127.0.0.1"), ports, strict=True))
    )
    return f"containerizer: simulated\nsimulated: {{start_delay: 0.2s}}\nagents:\n{agents}"


def render_scrape_config(steward: str, blackbox: str, sd_url: str) -> dict[str, Any]:
    """deploy/prometheus/steward-scrape.yml with test addresses and 1-second intervals."""
    config: dict[str, Any] = yaml.safe_load(SCRAPE.read_text())
    config["global"].update(scrape_interval="1s", scrape_timeout="1s", evaluation_interval="1s")
    config["rule_files"] = [str(ALERTS)]
    config.pop("alerting")
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    (static,) = jobs["steward"]["static_configs"]
    static["targets"] = [steward]
    (sd,) = jobs["steward-squids"]["http_sd_configs"]
    sd.update(url=sd_url, refresh_interval="1s")
    relabel = jobs["steward-squids"]["relabel_configs"]
    (exporter,) = [rule for rule in relabel if rule.get("target_label") == "__address__"]
    exporter["replacement"] = blackbox
    return config


@dataclass
class Stack:
    prometheus: str
    api: ApiServer
    runtime: Runtime
    squid_addresses: set[str]
    exposition: str

    def query(self, expr: str) -> list[dict[str, Any]]:
        response = requests.get(f"{self.prometheus}/api/v1/query", params={"query": expr}, timeout=10)
        body = response.json()
        assert response.status_code == 200 and body["status"] == "success", f"{expr}: {body}"
        result: list[dict[str, Any]] = body["data"]["result"]
        return result

    def get(self, path: str) -> Any:
        response = requests.get(f"{self.prometheus}{path}", timeout=10)
        response.raise_for_status()
        return response.json()["data"]


@contextlib.contextmanager
def process(argv: list[str], log: Path) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        child = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        try:
            yield child
        finally:
            child.terminate()
            try:
                child.wait(20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    prometheus_bin = binary("prometheus")
    blackbox_bin = binary("prometheus-blackbox-exporter")
    work = tmp_path_factory.mktemp("deploy-live")
    with contextlib.ExitStack() as stack:
        squids = [listener() for _ in range(2)]
        for s in squids:
            stack.callback(s.close)
        ports = [s.getsockname()[1] for s in squids]
        load = LoadFigure(SQUID_LOAD)
        stack.callback(load.close)
        cluster_file = work / "cluster.yaml"
        cluster_file.write_text(cluster_yaml(ports))
        config = parse_config(site_yaml(work / "state", cluster_file, load.url), str(work / "site.yaml"))
        runtime = start_runtime(config)
        stack.callback(runtime.close)
        api = start_api(runtime)
        stack.callback(api.close)

        blackbox_port = free_port()
        stack.enter_context(
            process(
                [
                    blackbox_bin,
                    f"--config.file={BLACKBOX}",
                    f"--web.listen-address=127.0.0.1:{blackbox_port}",
                ],
                work / "blackbox.log",
            )
        )
        steward = api.url.removeprefix("http://")
        rendered = work / "prometheus.yml"
        rendered.write_text(
            yaml.safe_dump(render_scrape_config(steward, f"127.0.0.1:{blackbox_port}", f"{api.url}/v1/sd"))
        )
        check = subprocess.run(
            [binary("promtool"), "check", "config", str(rendered)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert check.returncode == 0, check.stdout + check.stderr
        prometheus_port = free_port()
        stack.enter_context(
            process(
                [
                    prometheus_bin,
                    f"--config.file={rendered}",
                    f"--storage.tsdb.path={work / 'data'}",
                    f"--web.listen-address=127.0.0.1:{prometheus_port}",
                ],
                work / "prometheus.log",
            )
        )
        url = f"http://127.0.0.1:{prometheus_port}"
        wait_for(lambda: requests.get(f"{url}/-/ready", timeout=2).ok, "Prometheus to be ready")
        # Steward's exposition as served (families without samples in this scenario included).
        exposition = requests.get(f"{api.url}/metrics", timeout=10).text
        yield Stack(url, api, runtime, {f"localhost:{ports[0]}", f"127.0.0.1:{ports[1]}"}, exposition)


def exported_names(exposition: str) -> set[str]:
    """Sample names each ``# TYPE`` family of the exposition has (histograms: _bucket, _sum, _count)."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            names.add(name)
            if kind == "histogram":
                names.update({f"{name}_bucket", f"{name}_sum", f"{name}_count"})
    return names


def active_targets(stack: Stack) -> dict[str, list[dict[str, Any]]]:
    targets = stack.get("/api/v1/targets?state=active")["activeTargets"]
    by_job: dict[str, list[dict[str, Any]]] = {}
    for target in targets:
        by_job.setdefault(target["labels"]["job"], []).append(target)
    return by_job


@pytest.fixture(scope="module")
def scraped(stack: Stack) -> Stack:
    """The stack once Prometheus scraped Steward and probed both squids it discovered, and has a few
    samples of each (so that rate() has two points)."""

    def all_up() -> bool:
        jobs = active_targets(stack)
        steward = jobs.get("steward", [])
        squids = jobs.get("steward-squids", [])
        return (
            len(steward) == 1
            and steward[0]["health"] == "up"
            and {t["labels"]["instance"] for t in squids} == stack.squid_addresses
            and all(t["health"] == "up" for t in squids)
        )

    wait_for(all_up, "Prometheus to scrape Steward and both discovered squid probes")

    def enough_samples() -> bool:
        counts = stack.query('count_over_time(probe_success{job="steward-squids"}[1m])')
        steward = stack.query('count_over_time(steward_autoscale_load{job="steward"}[1m])')
        return len(counts) == 2 and all(float(s["value"][1]) >= 3 for s in counts + steward) and bool(steward)

    wait_for(enough_samples, "three samples of Steward's load and of both probes")
    return stack


def test_prometheus_finds_the_squids_through_stewards_service_discovery(scraped: Stack) -> None:
    squids = active_targets(scraped)["steward-squids"]
    snapshot = scraped.runtime.scheduler.snapshot()
    assert snapshot is not None
    tasks = {r.task_id for r in snapshot.tasks if r.service == "squid"}
    for target in squids:
        labels = target["labels"]
        # Steward's SD labels, renamed; the steward_* originals dropped.
        assert labels["service"] == "squid" and labels["kind"] == "squid"
        assert labels["task_id"] in tasks
        assert labels["host"] == labels["instance"].rsplit(":", 1)[0]
        assert not [name for name in labels if name.startswith("steward_")], labels
        quoted = labels["instance"].replace(":", "%3A")
        assert target["scrapeUrl"].endswith(f"/probe?module=steward_squid_tcp&target={quoted}")
    probes = scraped.query('probe_success{job="steward-squids"}')
    assert {p["metric"]["instance"] for p in probes} == scraped.squid_addresses
    assert all(p["value"][1] == "1" for p in probes), probes


def test_steward_is_scraped_with_the_figures_of_this_site(scraped: Stack) -> None:
    leader = scraped.query('steward_leader{job="steward"}')
    assert [s["value"][1] for s in leader] == ["1"]
    load = scraped.query('steward_autoscale_load{job="steward",service="squid"}')
    assert [float(s["value"][1]) for s in load] == [SQUID_LOAD]
    running = scraped.query('steward_service_running_instances{job="steward",service="squid"}')
    assert [s["value"][1] for s in running] == ["2"]


@pytest.mark.parametrize("service", ["squid", "cvmfs"])
def test_every_dashboard_query_runs(scraped: Stack, service: str) -> None:
    failures = []
    for query in dashboard_queries(load_dashboard()):
        try:
            scraped.query(concrete(query.expr, service=service))
        except AssertionError as exc:
            failures.append(f"{query.origin}: {exc}")
    assert not failures, "\n".join(failures)


# Panels whose every query must return data in this scenario (a leader, subscribed, squids running
# and autoscaled, CVMFS on each host, offers flowing). The others show what has not happened here:
# kills, failures, executor usage (simulated tasks have no Steward executor), rate-limited kills.
PANELS_WITH_DATA = {
    "Leaders",
    "Master connection",
    "Reconciled",
    "Last event from the master",
    "Dispatcher lag",
    "Last reconciliation",
    "Tasks by state",
    "Squid probes",
    "Steward process",
    "Load and capacity at target",
    "Target and instances",
    "Restart backoff and circuit breaker",
}


def test_the_main_dashboard_panels_return_data(scraped: Stack) -> None:
    panels = {p["title"]: p for p in dashboard_panels(load_dashboard()) if p["type"] != "row"}
    assert set(panels) >= PANELS_WITH_DATA
    empty = []
    for title in sorted(PANELS_WITH_DATA):
        for target in panels[title]["targets"]:
            if not scraped.query(concrete(target["expr"], service="squid")):
                empty.append(f"{title} / {target['legendFormat']}: {target['expr']}")
    assert not empty, "queries without data:\n" + "\n".join(empty)
    # Offers and decisions are counters: their rates exist once two samples are in the window.
    offers = scraped.query('sum(rate(steward_offers_received_total{job="steward"}[1m]))')
    assert offers
    ups = scraped.query('steward_autoscale_decisions_total{job="steward",service="squid",direction="up"}')
    assert ups and float(ups[0]["value"][1]) >= 1


def test_the_service_variable_lists_the_configured_services(scraped: Stack) -> None:
    selector = 'steward_service_desired_instances{job=~"steward"}'
    values = scraped.get(f"/api/v1/label/service/values?match[]={selector}")
    assert sorted(values) == ["cvmfs", "squid"]


def test_every_alert_expression_runs(scraped: Stack) -> None:
    failures = []
    for query in rule_queries():
        try:
            scraped.query(query.expr)
        except AssertionError as exc:
            failures.append(f"{query.origin}: {exc}")
    assert not failures, "\n".join(failures)


def test_prometheus_evaluates_the_rules_without_error(scraped: Stack) -> None:
    def evaluated() -> list[dict[str, Any]] | None:
        groups = scraped.get("/api/v1/rules")["groups"]
        rules = [rule for group in groups for rule in group["rules"]]
        done = all(not rule["lastEvaluation"].startswith("0001-") for rule in rules)
        return rules if rules and done else None

    rules = wait_for(evaluated, "every rule group to be evaluated once")
    broken = [f"{r['name']}: {r.get('lastError')}" for r in rules if r["health"] != "ok"]
    assert not broken, broken
    assert {r["name"] for r in rules} == {q.origin.removeprefix("alert ") for q in rule_queries()}


def test_a_pending_alert_reflects_the_scenario(scraped: Stack) -> None:
    """Three squids wanted on two hosts: the below-desired alert is pending for squid (its `for:`
    is 15 minutes), while nothing says a squid is unreachable or that nobody leads."""

    def pending() -> list[dict[str, Any]] | None:
        alerts = scraped.get("/api/v1/alerts")["alerts"]
        found = [a for a in alerts if a["labels"]["alertname"] == "StewardServiceBelowDesired"]
        return found or None

    (alert,) = wait_for(pending, "StewardServiceBelowDesired to be pending")
    assert alert["state"] == "pending"
    assert alert["labels"]["service"] == "squid"
    assert alert["annotations"]["summary"] == "Service squid runs 1 instance(s) fewer than desired"
    names = {a["labels"]["alertname"] for a in scraped.get("/api/v1/alerts")["alerts"]}
    assert not names & {"StewardNoLeader", "StewardSquidUnreachable", "StewardDisconnectedFromMaster"}


def test_every_metric_the_queries_read_exists(scraped: Stack) -> None:
    """Dashboard and rules name only metrics that Steward exports (with or without samples here),
    Prometheus's own ``up``, or the blackbox exporter's probe metrics that Prometheus holds."""
    ingested = set(scraped.get("/api/v1/label/__name__/values"))
    known = exported_names(scraped.exposition) | {"up"} | {n for n in ingested if n.startswith("probe_")}
    queries: list[Query] = dashboard_queries(load_dashboard()) + rule_queries()
    unknown = {f"{name} ({query.origin})" for query in queries for name in metric_names(query.expr) - known}
    assert not unknown, sorted(unknown)
    # The check has teeth: the families it compares against include Steward's per-task usage.
    assert {"steward_task_cpu_seconds_total", "steward_task_usage_timestamp_seconds"} <= known
