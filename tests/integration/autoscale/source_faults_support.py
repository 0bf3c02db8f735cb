"""Support for ``test_source_faults.py``: a load endpoint whose answer, death and hang the test
controls, a Steward on the embedded simulated cluster reading it, and reads of Steward's operator
API and ``/metrics``.

:class:`LoadEndpoint` serves on 127.0.0.1 at one port for its whole life, so the URL in Steward's
configuration stays right while the endpoint is stopped (nothing listens: connection refused) and
started again. The port is picked below the kernel's ephemeral range (32768+): a client connecting
to a dead port inside that range can, rarely, be given that very port as its own source port and
connect to itself, and the port would then be taken when the endpoint comes back.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests
from prometheus_client.parser import text_string_to_metric_families

from framework.api.server import ApiServer, start_api
from framework.config import load_config
from framework.runtime.app import Runtime, start_runtime

SERVICE = "web"
TARGET = 700
"""Load one instance carries: 2,800 asks for four instances, 300 fits one."""
SOURCE_TIMEOUT_S = 0.5
"""The source's own timeout; a hung endpoint holds each request much longer than this."""
PROMQL = "sum(rate(requests_total[1m]))"
"""The Prometheus source's query."""
WAIT_S = 30.0
"""Generous deadline for any one condition (each is met within a few seconds)."""


def free_low_port(low: int = 20_000, high: int = 30_000) -> int:
    """A free port on 127.0.0.1 below the ephemeral range (see the module docstring)."""
    rng = random.Random()
    for _ in range(200):
        port = rng.randrange(low, high)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return port
    raise AssertionError(f"no free port in {low}-{high}")


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"


@dataclass
class Seen:
    """What the endpoint saw: every request's path and query, and how many it left unanswered."""

    requests: list[tuple[str, dict[str, list[str]]]] = field(default_factory=list)
    answered: int = 0
    hung: int = 0


class LoadEndpoint:
    """An HTTP endpoint on 127.0.0.1 (fixed port) whose answer the test sets.

    ``answer(...)`` sets what every GET gets; ``stop()`` closes the listener (connection refused);
    ``start()`` listens again on the same port; ``hang()`` makes it accept requests and never
    answer them (until ``answer`` or ``stop`` releases them, closing their connections unanswered).
    """

    def __init__(self) -> None:
        self.port = free_low_port()
        self.seen = Seen()
        self._lock = threading.Lock()
        self._answer = Answer(503, b"no answer set")
        self._hanging = False
        self._release = threading.Event()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- what it answers ----------------------------------------------------------------------

    def answer(self, status: int, body: bytes | str, content_type: str = "application/json") -> None:
        raw = body.encode() if isinstance(body, str) else body
        with self._lock:
            self._answer = Answer(status, raw, content_type)
            self._hanging = False
            release, self._release = self._release, threading.Event()
        release.set()

    def hang(self) -> None:
        with self._lock:
            self._hanging = True

    def requests_seen(self) -> int:
        with self._lock:
            return len(self.seen.requests)

    def hung_requests(self) -> int:
        with self._lock:
            return self.seen.hung

    # --- life cycle ---------------------------------------------------------------------------

    def start(self) -> LoadEndpoint:
        assert self._server is None, "already listening"
        endpoint = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                with endpoint._lock:
                    endpoint.seen.requests.append((parts.path, parse_qs(parts.query)))
                    hanging = endpoint._hanging
                    answer = endpoint._answer
                    release = endpoint._release
                    if hanging:
                        endpoint.seen.hung += 1
                    else:
                        endpoint.seen.answered += 1
                if hanging:
                    # Accepted and read, never answered: the connection is closed without a byte
                    # when the test moves on (or after a minute, far beyond any source timeout).
                    release.wait(60)
                    self.close_connection = True
                    return
                self.send_response(answer.status)
                self.send_header("Content-Type", answer.content_type)
                self.send_header("Content-Length", str(len(answer.body)))
                self.end_headers()
                self.wfile.write(answer.body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)  # SO_REUSEADDR: rebinds at once
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="load-endpoint")
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening: new connections are refused; hung requests are released unanswered."""
        server, self._server = self._server, None
        with self._lock:
            release, self._release = self._release, threading.Event()
        release.set()
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def __enter__(self) -> LoadEndpoint:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def json_load(value: str) -> str:
    """An HTTP JSON document with ``value`` (raw JSON text) at the source's field ``load``."""
    return '{"service": "web", "load": ' + value + ', "note": "front door total"}'


def prometheus_vector(value: str) -> str:
    """A Prometheus ``/api/v1/query`` answer: an instant vector of one series with ``value``."""
    series = {"metric": {"job": "frontdoor"}, "value": [time.time(), value]}
    return json.dumps({"status": "success", "data": {"resultType": "vector", "result": [series]}})


# --- Steward --------------------------------------------------------------------------------------


def source_yaml(kind: str, endpoint: LoadEndpoint) -> str:
    if kind == "http_json":
        params = f'url: "{endpoint.base_url}/load", field: load, timeout_s: {SOURCE_TIMEOUT_S}'
    elif kind == "prometheus":
        params = f'url: "{endpoint.base_url}", query: "{PROMQL}", timeout_s: {SOURCE_TIMEOUT_S}'
    else:
        raise ValueError(kind)
    return f"{{type: {kind}, params: {{{params}}}}}"


SITE = """
framework:
  name: source-faults
  roles: [site]
  master: local
  local_cluster: {{containerizer: simulated, listen: "127.0.0.1:0", agents: 2}}
  store: {{type: file, path: {state}}}
  api: {{listen: "127.0.0.1:0"}}
  offers: {{revive_min_interval: 0.5s}}
services:
  web:
    kind: generic
    container: {{image: nginx}}
    resources: {{cpus: 0.1, mem: 32MiB}}
    constraints: []
    autoscale:
      min: 1
      max: 6
      target_per_instance: {target}
      source: {source}
      interval: 0.2s
      start_delay: 1s
      up_window: 1s
      up_period: 1s
      forecast: 0s
      down_window: 2s
      down_votes: 3
      down_period: 1s
      down_cooldown: 1s
      burst_memory: 0s
"""
"""Seconds, not minutes: decisions every 0.2 s; a scale-down needs 2 s of fresh data, then three
agreeing votes (a fabricated zero would take the service down within about a second)."""


@contextmanager
def steward(tmp_path: Path, kind: str, endpoint: LoadEndpoint) -> Iterator[tuple[Runtime, ApiServer]]:
    config_file = tmp_path / "site.yaml"
    config_file.write_text(
        SITE.format(state=tmp_path / "state", target=TARGET, source=source_yaml(kind, endpoint))
    )
    config = load_config(config_file)
    runtime = start_runtime(config)
    try:
        api = start_api(runtime, config, config_path=str(config_file))
    except BaseException:
        runtime.close()
        raise
    try:
        wait_until(lambda: _ready(api.url), "Steward subscribed and reconciled")
        yield runtime, api
    finally:
        api.close()
        runtime.close()


def _ready(url: str) -> bool:
    with requests.Session() as session:
        session.trust_env = False
        return session.get(url + "/readyz", timeout=10).status_code == 200


# --- reading Steward ------------------------------------------------------------------------------


class Operator:
    """GETs on Steward's operator API and ``/metrics``."""

    def __init__(self, api: ApiServer) -> None:
        self.url = api.url
        self._session = requests.Session()
        self._session.trust_env = False

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Operator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def get(self, path: str) -> Any:
        response = self._session.get(self.url + path, timeout=10)
        assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text[:300]}"
        return response.json()

    def service(self) -> dict[str, Any]:
        """The service as ``GET /v1/services`` lists it."""
        listed = {s["name"]: s for s in self.get("/v1/services")["services"]}
        service: dict[str, Any] = listed[SERVICE]
        return service

    def decisions(self) -> list[dict[str, Any]]:
        decisions: list[dict[str, Any]] = self.get(f"/v1/services/{SERVICE}/decisions")["decisions"]
        return decisions

    def running_tasks(self) -> set[str]:
        tasks = self.get(f"/v1/tasks?service={SERVICE}&state=TASK_RUNNING")["tasks"]
        return {t["task_id"] for t in tasks}

    def metrics(self) -> dict[str, list[tuple[dict[str, str], float]]]:
        response = self._session.get(self.url + "/metrics", timeout=10)
        assert response.status_code == 200
        found: dict[str, list[tuple[dict[str, str], float]]] = {}
        for family in text_string_to_metric_families(response.text):
            for sample in family.samples:
                found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
        return found

    def decision_count(self, direction: str) -> float:
        found = self.metrics()
        values = [
            v
            for labels, v in found.get("steward_autoscale_decisions_total", [])
            if labels.get("service") == SERVICE and labels.get("direction") == direction
        ]
        assert len(values) == 1, found.get("steward_autoscale_decisions_total")
        return values[0]


def cluster_running_tasks(runtime: Runtime) -> set[str]:
    """The TASK_RUNNING tasks as the embedded master sees them (the site has one service)."""
    assert runtime.embedded is not None
    state = runtime.embedded.state()
    return {
        task["id"]
        for framework in state["frameworks"]
        for task in framework["tasks"]
        if task["state"] == "TASK_RUNNING"
    }


def wait_until(check: Callable[[], Any], what: str, timeout: float = WAIT_S, every: float = 0.1) -> Any:
    """Poll ``check`` until it returns something truthy (returned); fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    pause = threading.Event()
    last: Any = None
    while True:
        last = check()
        if last:
            return last
        assert time.monotonic() < deadline, f"timed out after {timeout:g} s waiting for {what}"
        pause.wait(every)


class ThreadErrors:
    """Every exception that ends a thread (``threading.excepthook``) while installed."""

    def __init__(self) -> None:
        self.errors: list[str] = []
        self._previous: Callable[[threading.ExceptHookArgs], Any] | None = None

    def __enter__(self) -> ThreadErrors:
        self._previous = threading.excepthook

        def hook(args: threading.ExceptHookArgs) -> None:
            name = args.thread.name if args.thread is not None else "?"
            self.errors.append(f"{name}: {args.exc_type.__name__}: {args.exc_value}")
            if self._previous is not None:
                self._previous(args)

        threading.excepthook = hook
        return self

    def __exit__(self, *exc: object) -> None:
        assert self._previous is not None
        threading.excepthook = self._previous
