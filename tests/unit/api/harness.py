"""A real core, store and autoscale loop behind the API, driven by hand: no master, no cluster.

``Site`` wires a ``Runtime`` whose driver is a :class:`FakeDriver`: a real dispatcher thread (so
``call_soon`` keeps its one-thread guarantee) that records the calls the core's operations make.
Tests feed the core events (subscription, offers, updates) on that thread and talk to the API over
real HTTP on 127.0.0.1.
"""

from __future__ import annotations

import queue
import textwrap
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import requests

from framework.api.server import ApiServer
from framework.config import load_config
from framework.core.autoscale import Sample
from framework.mesos.scheduler_driver import DriverStatus
from framework.model.events import Event, OffersReceived, StatusUpdated, Subscribed
from framework.model.proto import TaskState
from framework.runtime.app import Runtime
from framework.runtime.autoscaling import AutoscaleLoop
from framework.runtime.scheduler import CoreScheduler
from framework.store.sqlite import SQLiteStore
from framework.testing.builders import make_offer, make_status

WAIT = 10.0
TOKEN = "s3cret-T0ken-value-1234567890"

SITE_YAML = """
framework:
  name: api-test
  roles: [site]
  master: http://127.0.0.1:9
  store: {{type: file, path: {state}}}
  api: {{listen: "127.0.0.1:0", token_file: {token}}}
services:
  squid:
    kind: squid
    container: {{image: squid:6}}
    resources: {{cpus: 1, mem: 1GiB}}
    autoscale:
      min: 1
      max: 5
      source: {{type: http_json, params: {{url: "http://127.0.0.1:9/load"}}}}
      target_per_instance: 100
      interval: 1h
  web:
    kind: generic
    container: {{image: nginx}}
    resources: {{cpus: 1, mem: 512MiB}}
    instances: {web_instances}
    constraints: []
  cvmfs:
    kind: cvmfs
    container: {{image: cvmfs}}
    resources: {{cpus: 0.5, mem: 256MiB}}
"""


class FakeDriver:
    """A dispatcher thread plus recorded master calls; ``status()`` as the real driver's."""

    def __init__(self) -> None:
        self._queue: queue.Queue[Callable[[], object] | None] = queue.Queue()
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.errors: list[BaseException] = []
        self.subscribed = False
        self._thread = threading.Thread(target=self._run, name="fake-dispatcher", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (fn := self._queue.get()) is not None:
            try:
                fn()
            except BaseException as exc:  # the real driver would stop: make the test fail instead
                self.errors.append(exc)

    def call_soon(self, fn: Callable[[], object]) -> None:
        self._queue.put(fn)

    def run(self, fn: Callable[[], object]) -> None:
        """Run ``fn`` on the dispatcher thread and wait for it."""
        done = threading.Event()

        def step() -> None:
            try:
                fn()
            finally:
                done.set()

        self.call_soon(step)
        assert done.wait(WAIT), "the dispatcher did not run the step in time"

    def stop(self) -> None:
        self._queue.put(None)
        self._thread.join(WAIT)

    def status(self) -> DriverStatus:
        return DriverStatus(
            subscribed=self.subscribed,
            framework_id="fw-1" if self.subscribed else None,
            master_url="http://127.0.0.1:9",
            stream_id="s" if self.subscribed else None,
            seconds_since_last_byte=0.5 if self.subscribed else None,
            subscriptions=1 if self.subscribed else 0,
            events_received=3,
            events_dispatched=3,
            last_error=None,
            fatal_error=None,
        )

    def __getattr__(self, name: str) -> Callable[..., None]:
        # accept, decline, kill, suppress, revive, acknowledge, reconcile: recorded, never failing.
        if name.startswith("_"):
            raise AttributeError(name)

        def record(*args: Any) -> None:
            self.calls.append((name, args))

        return record


class ConstantSource:
    name = "constant"

    def __init__(self, value: float = 250.0) -> None:
        self.value = value

    def sample(self, now: float) -> Sample:
        return Sample(self.value, now, instances_reporting=1)

    def close(self) -> None:
        pass


@dataclass
class Site:
    """A running API over a hand-driven runtime (see the module docstring)."""

    tmp_path: Path
    runtime: Runtime
    driver: FakeDriver
    config_path: Path
    token_path: Path
    servers: list[ApiServer] = field(default_factory=list)
    session: requests.Session = field(default_factory=requests.Session)

    @property
    def scheduler(self) -> CoreScheduler:
        return self.runtime.scheduler

    @property
    def server(self) -> ApiServer:
        return self.servers[0]

    @property
    def url(self) -> str:
        return self.server.url

    def serve(self, **kwargs: Any) -> ApiServer:
        """Start another API over the same runtime (``ApiServer`` keyword arguments)."""
        kwargs.setdefault("listen", "127.0.0.1:0")
        kwargs.setdefault("token_file", str(self.token_path))
        kwargs.setdefault("config_path", str(self.config_path))
        kwargs.setdefault("timeout_s", 30.0)  # store writes fsync: be generous on a busy machine
        runtime = kwargs.pop("runtime", self.runtime)
        server = ApiServer(runtime, **kwargs).start()
        self.servers.append(server)
        return server

    def feed(self, *events: Event) -> None:
        for event in events:
            self.driver.run(lambda e=event: self.scheduler.feed(e))  # type: ignore[misc]

    def subscribe(self) -> None:
        self.driver.subscribed = True
        self.feed(Subscribed("fw-1"))

    def offers(self, *hosts: str) -> None:
        self.feed(
            OffersReceived(tuple(make_offer(hostname=h, cpus=8, mem=16384, role="site") for h in hosts))
        )

    def run_all(self, **fields: Any) -> None:
        """Report every task that is not running yet as TASK_RUNNING."""
        snapshot = self.scheduler.snapshot()
        assert snapshot is not None
        for record in snapshot.tasks:
            if record.state is not TaskState.TASK_RUNNING:
                agent = record.agent_id or "agent-x"
                self.feed(
                    StatusUpdated(
                        make_status(record.task_id, TaskState.TASK_RUNNING, agent_id=agent, **fields)
                    )
                )

    def decide(self, name: str, value: float) -> None:
        """One autoscale decision of ``name`` from a sample of ``value``."""
        loop = self.runtime.autoscale
        service = loop._services[name]
        self.driver.run(lambda: loop._decide(service, Sample(value, time.monotonic(), instances_reporting=1)))

    def headers(self, token: str | None = TOKEN) -> dict[str, str]:
        return {} if token is None else {"Authorization": f"Bearer {token}"}

    def get(
        self, path: str, *, token: str | None = None, server: ApiServer | None = None, **kwargs: Any
    ) -> requests.Response:
        base = (server or self.server).url
        headers = {**self.headers(token), **kwargs.pop("headers", {})}
        return self.session.get(base + path, headers=headers, timeout=WAIT, **kwargs)

    def post(
        self,
        path: str,
        body: Any = None,
        *,
        token: str | None = TOKEN,
        data: bytes | None = None,
        server: ApiServer | None = None,
    ) -> requests.Response:
        base = (server or self.server).url
        headers = self.headers(token)
        if data is not None:
            headers["Content-Type"] = "application/json"
            return self.session.post(
                base + path, data=data, headers=headers, timeout=WAIT, allow_redirects=False
            )
        return self.session.post(base + path, json=body, headers=headers, timeout=WAIT, allow_redirects=False)

    def write_config(self, web_instances: int | str = 2, extra: str = "") -> None:
        text = SITE_YAML.format(
            state=self.tmp_path / "state", token=self.token_path, web_instances=web_instances
        )
        self.config_path.write_text(textwrap.dedent(text) + extra)

    def close(self) -> None:
        self.session.close()
        for server in self.servers:
            server.close()
        self.runtime.autoscale.stop()
        self.driver.stop()
        self.runtime.store.close()
        assert not self.driver.errors, self.driver.errors


def make_site(tmp_path: Path, *, sources: Sequence[str] = ()) -> Site:
    token_path = tmp_path / "token"
    token_path.write_text(TOKEN + "\n")
    token_path.chmod(0o600)
    config_path = tmp_path / "site.yaml"
    placeholder = Site(tmp_path, None, None, config_path, token_path)  # type: ignore[arg-type]
    placeholder.write_config()
    config = load_config(config_path)
    store = SQLiteStore(tmp_path / "state")
    scheduler = CoreScheduler(config, store)
    driver = FakeDriver()
    scheduler.driver = driver  # type: ignore[assignment]
    loop = AutoscaleLoop(config, scheduler, driver, store, source_factory=lambda *a, **k: ConstantSource())
    stub = SimpleNamespace(close=lambda: None, stop=lambda: None)
    runtime = Runtime(config, store, stub, stub, scheduler, driver, stub, loop)  # type: ignore[arg-type]
    return Site(tmp_path, runtime, driver, config_path, token_path)
