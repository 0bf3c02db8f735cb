"""The load-watching loop's dispatcher-side logic, driven synchronously with a scripted source."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from framework.config import parse_config
from framework.core.autoscale import Sample
from framework.runtime.autoscaling import AutoscaleLoop
from framework.runtime.scheduler import CoreScheduler
from framework.store.sqlite import SQLiteStore

SITE = """
framework: {roles: [site]}
services:
  squid:
    kind: squid
    container: {image: steward/squid:local}
    resources: {cpus: 1, mem: 1GiB}
    constraints: []
    autoscale: {min: 2, max: 10, source: {type: squid}, target_per_instance: 700}
"""


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Inline:
    """A dispatcher that runs work at once (the tests play the dispatcher thread)."""

    def call_soon(self, fn: Callable[[], object]) -> None:
        fn()


class ScriptedSource:
    name = "scripted"

    def __init__(self) -> None:
        self.samples: list[Sample] = []
        self.closed = False

    def sample(self, now: float) -> Sample:
        return self.samples.pop(0)

    def close(self) -> None:
        self.closed = True


class RecordingDriver:
    """Accepts every call the core makes; the loop's tests look at the core, not the wire."""

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: None


@pytest.fixture
def loop(tmp_path):
    clock = Clock()
    config = parse_config(SITE, "site.yaml")
    store = SQLiteStore(tmp_path)
    scheduler = CoreScheduler(config, store, clock=clock)
    scheduler.driver = RecordingDriver()  # type: ignore[assignment]
    source = ScriptedSource()
    seen_endpoints: list[Callable[[], object]] = []

    def factory(source_config, *, service, endpoints, clock):
        assert (service, source_config.type) == ("squid", "squid")
        seen_endpoints.append(endpoints)
        return source

    autoscale = AutoscaleLoop(config, scheduler, Inline(), store, clock=clock, source_factory=factory)
    scheduler.tick()  # a first snapshot
    yield autoscale, scheduler, source, clock, store, seen_endpoints
    autoscale.stop()
    store.close()


def desired(scheduler: CoreScheduler) -> int:
    snapshot = scheduler.snapshot()
    assert snapshot is not None
    return snapshot.service("squid").desired


def test_a_load_above_target_raises_the_core_target_with_the_policy_reason(loop):
    autoscale, scheduler, _source, clock, store, _ = loop
    assert desired(scheduler) == 2
    for _ in range(5):
        clock.now += 2
        decision = autoscale._decide(
            autoscale._services["squid"], Sample(6000.0, clock.now, instances_reporting=2)
        )
    assert decision is not None
    changes = [d for d in autoscale.decisions("squid") if d.changed]
    assert changes, "the policy never moved"
    assert desired(scheduler) == changes[-1].target > 2
    assert changes[0].reason.startswith("up 2->")
    assert store.overrides()["squid"]["target"] == desired(scheduler)


def test_missing_data_never_scales_down(loop):
    autoscale, scheduler, _source, clock, *_ = loop
    for _ in range(60):
        clock.now += 2
        autoscale._decide(autoscale._services["squid"], Sample.missing("timeout", clock.now))
    assert desired(scheduler) == 2
    assert autoscale.decisions("squid")[-1].direction.value == "hold"


def test_a_pin_holds_the_count_and_survives_a_restart(loop, tmp_path):
    autoscale, scheduler, source, clock, store, _ = loop
    autoscale.pin("squid", 7)
    assert desired(scheduler) == 7
    clock.now += 2
    autoscale._decide(autoscale._services["squid"], Sample(100.0, clock.now, instances_reporting=7))
    assert desired(scheduler) == 7
    # A new Steward on the same store resumes at the pinned count, not at min.
    config = parse_config(SITE, "site.yaml")
    again = CoreScheduler(config, store, clock=clock)
    again.driver = RecordingDriver()  # type: ignore[assignment]
    restarted = AutoscaleLoop(
        config, again, Inline(), store, clock=clock, source_factory=lambda *a, **k: source
    )
    restarted._restore()
    assert desired(again) == 7
    assert restarted._services["squid"].autoscaler.pinned == 7


def test_an_operator_pin_of_a_fixed_service_is_stored_and_restored(tmp_path):
    site = (
        SITE
        + """  web:
    kind: generic
    container: {image: web}
    resources: {cpus: 1, mem: 1GiB}
    instances: 2
"""
    )
    clock = Clock()
    config = parse_config(site, "site.yaml")
    store = SQLiteStore(tmp_path)
    try:
        scheduler = CoreScheduler(config, store, clock=clock)
        scheduler.driver = RecordingDriver()  # type: ignore[assignment]
        loop = AutoscaleLoop(
            config, scheduler, Inline(), store, clock=clock, source_factory=lambda *a, **k: None
        )
        loop.pin_fixed("web", 5)
        assert store.overrides()["web"] == {"pinned": 5}
        again = CoreScheduler(config, store, clock=clock)
        again.driver = RecordingDriver()  # type: ignore[assignment]
        restarted = AutoscaleLoop(
            config, again, Inline(), store, clock=clock, source_factory=lambda *a, **k: None
        )
        again.tick()
        snapshot = again.snapshot()
        assert snapshot is not None and snapshot.service("web").desired == 2, (
            "the file's count until restored"
        )
        restarted._restore()
        snapshot = again.snapshot()
        assert snapshot is not None and snapshot.service("web").desired == 5
        assert "restored from the store" in snapshot.service("web").desired_reason
        restarted.pin_fixed("web", None)
        assert "pinned" not in store.overrides()["web"]
        snapshot = again.snapshot()
        assert snapshot is not None and snapshot.service("web").desired == 2
    finally:
        store.close()


def test_pause_keeps_the_size_whatever_the_load(loop):
    autoscale, scheduler, _source, clock, store, _ = loop
    autoscale.pause("squid")
    for _ in range(10):
        clock.now += 2
        autoscale._decide(autoscale._services["squid"], Sample(9000.0, clock.now, instances_reporting=2))
    assert desired(scheduler) == 2
    assert store.overrides()["squid"]["paused"] is True


def test_the_source_sees_the_published_endpoints_of_its_service(loop):
    *_, seen_endpoints = loop
    (endpoints,) = seen_endpoints
    assert tuple(endpoints()) == ()  # no squid runs yet


def test_embedded_agents_are_read_at_the_loopback(tmp_path):
    """The embedded cluster's agent hostnames (``agent-1``) resolve nowhere: a squid source handed
    them read no counters at all, so the service never scaled. They are mapped to 127.0.0.1; a
    hostname the map does not know is passed through unchanged."""
    config = parse_config(SITE, "site.yaml")
    store = SQLiteStore(tmp_path)
    published = {"squid": ("agent-1:31000", "agent-2:32007", "squid-9.example.org:3128")}

    class Snapshots:
        def snapshot(self) -> object:
            return type("Snapshot", (), {"endpoints": published})()

    seen: list[Callable[[], object]] = []

    def factory(source_config, *, service, endpoints, clock):
        seen.append(endpoints)
        return ScriptedSource()

    autoscale = AutoscaleLoop(
        config,
        Snapshots(),  # type: ignore[arg-type]
        Inline(),
        store,
        source_factory=factory,
        host_addresses={"agent-1": "127.0.0.1", "agent-2": "127.0.0.1"},
    )
    try:
        (endpoints,) = seen
        assert tuple(endpoints()) == ("127.0.0.1:31000", "127.0.0.1:32007", "squid-9.example.org:3128")
    finally:
        autoscale.stop()
        store.close()
