"""The Prometheus source (and HTCondor via Prometheus) against a real Prometheus (Debian's
``prometheus`` package, started by the test on 127.0.0.1) scraping a tiny exporter served by the
test with prometheus_client: sums, label selection, freshness, the instances query, an empty result,
bad PromQL, NaN, and a Prometheus that is gone."""

from __future__ import annotations

import http.server
import math
import shutil
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Gauge, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from framework.config.model import AutoscaleSourceConfig
from framework.sources import LoadSource, make_source
from tests.integration.images.support import free_ports, wait_for


@dataclass
class Exporter:
    registry: CollectorRegistry
    load: Gauge
    idle: Gauge
    running: Gauge
    up: Gauge
    odd: Gauge
    port: int


@dataclass
class Prometheus:
    url: str
    exporter: Exporter


def serve_exporter(port: int) -> tuple[Exporter, http.server.ThreadingHTTPServer, threading.Thread]:
    registry = CollectorRegistry()
    exporter = Exporter(
        registry=registry,
        load=Gauge("steward_test_load", "requests per second", ["group"], registry=registry),
        idle=Gauge("steward_test_idle_jobs", "idle jobs", registry=registry),
        running=Gauge("steward_test_running_jobs", "running jobs", registry=registry),
        up=Gauge("steward_test_squids_up", "instances up", registry=registry),
        odd=Gauge("steward_test_odd", "a NaN", registry=registry),
        port=port,
    )
    exporter.load.labels(group="a").set(300)
    exporter.load.labels(group="b").set(150)
    exporter.idle.set(12)
    exporter.running.set(30)
    exporter.up.set(3)
    exporter.odd.set(math.nan)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = generate_latest(registry)
            self.send_response(200)
            self.send_header("Content-Type", CONTENT_TYPE_LATEST)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    return exporter, server, thread


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Prometheus]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail(
            "Debian's prometheus package is needed (make test installs it; or: apt-get install prometheus)",
            pytrace=False,
        )
    exporter_port, prometheus_port = free_ports(2)
    exporter, server, thread = serve_exporter(exporter_port)
    config = tmp_path / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n"
        "  - job_name: steward-test\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n"
    )
    log = (tmp_path / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={tmp_path / 'data'}",
            f"--web.listen-address=127.0.0.1:{prometheus_port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
    )
    try:
        yield Prometheus(f"http://127.0.0.1:{prometheus_port}", exporter)
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()
        server.shutdown()
        server.server_close()
        thread.join(10)


def source(prom: Prometheus, query: str, **params: str | float) -> LoadSource:
    return make_source(
        AutoscaleSourceConfig(
            type="prometheus", params={"url": prom.url, "query": query, "timeout_s": 3, **params}
        ),
        service="front",
        endpoints=lambda: [],
    )


def first_value(src: LoadSource, what: str) -> float:
    """The first value once Prometheus is up and has scraped the exporter."""
    value: float = wait_for(lambda: src.sample(time.monotonic()).value, 60, what)
    return value


def test_queries_against_a_real_prometheus(prometheus: Prometheus) -> None:
    total = source(prometheus, "sum(steward_test_load)", instances_query="steward_test_squids_up")
    series = source(prometheus, "steward_test_load")
    one = source(prometheus, 'steward_test_load{group="a"}')
    absent = source(prometheus, "steward_test_no_such_metric")
    broken = source(prometheus, "sum(steward_test_load")
    nan = source(prometheus, "steward_test_odd")
    try:
        assert first_value(total, "Prometheus to serve the exporter's figures") == 450.0
        now = time.monotonic()
        result = total.sample(now)
        assert (result.value, result.instances_reporting, result.observed_at) == (450.0, 3, now)
        assert series.sample(now).value == 450.0  # several series: their sum
        assert one.sample(now).value == 300.0

        missing = absent.sample(now)
        assert (missing.value, missing.reason_missing) == (None, "empty result: no series matched the query")
        bad = broken.sample(now)
        assert bad.value is None
        assert (bad.reason_missing or "").startswith("Prometheus error (bad_data, HTTP 400)")
        odd = nan.sample(now)
        assert odd.value is None and "is NaN" in (odd.reason_missing or "")

        # A new figure shows up after the next scrape.
        prometheus.exporter.load.labels(group="a").set(500)
        wait_for(lambda: total.sample(time.monotonic()).value == 650.0, 30, "the new figure to be scraped")
    finally:
        for src in (total, series, one, absent, broken, nan):
            src.close()

    # Prometheus gone: missing with the reason, not an exception.
    gone = make_source(
        AutoscaleSourceConfig(
            type="prometheus", params={"url": f"http://127.0.0.1:{free_ports(1)[0]}", "query": "up"}
        ),
        service="front",
        endpoints=lambda: [],
    )
    try:
        result = gone.sample(1.0)
        assert result.value is None
        assert result.reason_missing == "query failed: connection failed: Connection refused"
    finally:
        gone.close()


def test_htcondor_figures_via_prometheus(prometheus: Prometheus) -> None:
    src = make_source(
        AutoscaleSourceConfig(
            type="htcondor",
            params={
                "via": "prometheus",
                "prometheus_url": prometheus.url,
                "idle_query": "sum(steward_test_idle_jobs)",
                "running_query": "sum(steward_test_running_jobs)",
                "timeout_s": 3,
            },
        ),
        service="startd",
        endpoints=lambda: [],
    )
    try:
        assert first_value(src, "Prometheus to serve the queue figures") == 12.0
        result = src.sample(time.monotonic())
        assert (result.value, result.running) == (12.0, 30.0)
        prometheus.exporter.idle.set(0)
        wait_for(lambda: src.sample(time.monotonic()).value == 0.0, 30, "the emptied queue to be scraped")
    finally:
        src.close()
