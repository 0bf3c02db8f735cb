"""A hand-built runtime for exporter tests: a fixed snapshot, a real ``Activity``, real autoscale
policies, and a parsed scrape to assert on."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

from framework.config import Config
from framework.core.autoscale import Autoscaler, PolicyParams, Sample
from framework.mesos.scheduler_driver import DriverStatus
from framework.metrics.activity import Activity
from framework.metrics.exporter import MetricsExporter
from framework.model.snapshot import ServiceSnapshot, StateSnapshot


def service_snapshot(name: str, **fields: Any) -> ServiceSnapshot:
    values: dict[str, Any] = {
        "name": name,
        "kind": "generic",
        "role": "site",
        "desired": 0,
        "desired_reason": "instances: 0",
        "counting": 0,
        "launching": 0,
        "staging": 0,
        "running": 0,
        "unhealthy": 0,
        "killing": 0,
        "unreachable": 0,
        "pending": 0,
        "backoff_until": None,
        "restart_failures": 0,
        "breaker_open": False,
        "endpoints": (),
    }
    values.update(fields)
    return ServiceSnapshot(**values)


def state_snapshot(**fields: Any) -> StateSnapshot:
    values: dict[str, Any] = {
        "taken_at": 100.0,
        "framework_id": "fw-1",
        "connected": True,
        "reconciled": True,
        "services": (),
        "tasks": (),
        "endpoints": {},
        "suppressed_roles": frozenset(),
        "decline_reasons": {},
        "counters": {},
        "notes": (),
    }
    values.update(fields)
    return StateSnapshot(**values)


def driver_status(**fields: Any) -> DriverStatus:
    values: dict[str, Any] = {
        "subscribed": True,
        "framework_id": "fw-1",
        "master_url": "http://127.0.0.1:5050",
        "stream_id": "s-1",
        "seconds_since_last_byte": 1.5,
        "subscriptions": 1,
        "events_received": 10,
        "events_dispatched": 10,
        "last_error": None,
        "fatal_error": None,
    }
    values.update(fields)
    return DriverStatus(**values)


@dataclass
class FakeScheduler:
    state: StateSnapshot | None
    activity: Activity = field(default_factory=Activity)

    def snapshot(self) -> StateSnapshot | None:
        return self.state


@dataclass
class FakeDriver:
    current: DriverStatus = field(default_factory=driver_status)

    def status(self) -> DriverStatus:
        return self.current


@dataclass
class FakeAutoscale:
    """The read side of ``AutoscaleLoop`` over real policies."""

    policies: dict[str, Autoscaler] = field(default_factory=dict)
    samples: dict[str, Sample] = field(default_factory=dict)
    counts: dict[str, dict[str, int]] = field(default_factory=dict)

    @property
    def services(self) -> tuple[str, ...]:
        return tuple(self.policies)

    def autoscaler(self, name: str) -> Autoscaler:
        return self.policies[name]

    def last_sample(self, name: str) -> Sample | None:
        self.policies[name]
        return self.samples.get(name)

    def decision_counts(self, name: str) -> dict[str, int]:
        return dict(self.counts.get(name, {}))

    def add(self, name: str, params: PolicyParams | None = None) -> Autoscaler:
        self.policies[name] = Autoscaler(params or PolicyParams())
        return self.policies[name]


@dataclass
class FakeFramework:
    roles: tuple[str, ...] = ("site",)


@dataclass
class FakeConfig:
    framework: FakeFramework = field(default_factory=FakeFramework)


@dataclass
class FakeRuntime:
    scheduler: FakeScheduler
    driver: FakeDriver = field(default_factory=FakeDriver)
    autoscale: FakeAutoscale = field(default_factory=FakeAutoscale)
    config: Config | FakeConfig = field(default_factory=FakeConfig)


Samples = dict[str, list[tuple[dict[str, str], float]]]
"""Parsed scrape: sample name -> [(labels, value)]."""


def scrape(runtime: Any, *, clock: Callable[[], float] = lambda: 110.0, leader: bool = True) -> Samples:
    exporter = MetricsExporter(runtime, is_leader=lambda: leader, clock=clock, process_metrics=False)
    body, content_type = exporter.render("")
    assert content_type.startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(body.decode()):
        for sample in family.samples:
            found.setdefault(sample.name, []).append((dict(sample.labels), sample.value))
    return found


def value(found: Samples, name: str, **labels: str) -> float:
    """The one sample of ``name`` whose labels include ``labels``."""
    matches = [v for sample_labels, v in found.get(name, []) if _includes(sample_labels, labels)]
    assert len(matches) == 1, f"{name} {labels}: {found.get(name)}"
    return matches[0]


def _includes(have: Mapping[str, str], want: Mapping[str, str]) -> bool:
    return all(have.get(k) == v for k, v in want.items())
