"""Fixtures for the scheduler-core tests: a harness that drives ``SchedulerState`` with a fake clock
and checks the core's invariants after every step and at teardown."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

import pytest

from framework.config import Config
from framework.core.state import CoreSettings, SchedulerState
from framework.model.events import (
    Event,
    OffersReceived,
    StatusUpdated,
    Subscribed,
    Tick,
)
from framework.model.operations import Launch, Operation
from framework.model.proto import Offer, TaskState
from framework.model.tasks import TaskId
from framework.model.tasks import counts_toward_desired as counts
from framework.testing.builders import make_config, make_status

_T = TypeVar("_T")

BASIC = """
services:
  squid:
    kind: squid
    container: {image: squid:6}
    resources: {cpus: 1, mem: 1GiB}
  web:
    kind: generic
    container: {image: nginx}
    resources: {cpus: 1, mem: 512MiB}
    instances: 2
    constraints: []
"""
"""Two count-based services with no dependencies: squid (unique hostname, 2) and web (2)."""

SITE = """
framework:
  offers: {refuse_seconds: 600s, revive_min_interval: 5s}
services:
  cvmfs:
    kind: cvmfs
    container: {image: cvmfs}
    resources: {cpus: 0.5, mem: 256MiB}
    health_check: {type: command, command: "ls /cvmfs/x", interval: 10s}
  squid:
    kind: squid
    container: {image: squid}
    resources: {cpus: 1, mem: 1GiB}
    health_check: {type: tcp, interval: 10s, consecutive_failures: 3}
  startd:
    kind: startd
    container: {image: htcondor}
    resources: {cpus: 2, mem: 2GiB}
    instances: 4
    startd: {condor_host: "cm.example:9618", pool_token_file: /etc/steward/pool.token}
    kill_grace_period: 10m
"""
"""A small site: per-host CVMFS (health-checked), two squids, four startds."""


class Harness:
    """Drives one ``SchedulerState`` with a fake monotonic clock; checks invariants after each step."""

    def __init__(self, state: SchedulerState, now: float) -> None:
        self.state = state
        self.now = now
        self.history: list[tuple[Event, list[Operation]]] = []

    def handle(self, event: Event, *, after: float = 0.0) -> list[Operation]:
        self.now += after
        ops = self.state.handle(event, self.now)
        self.history.append((event, ops))
        self.state.check_invariants()
        return ops

    def subscribe(self, framework_id: str = "fw-1") -> list[Operation]:
        return self.handle(Subscribed(framework_id))

    def offers(self, *offers: Offer, after: float = 0.0) -> list[Operation]:
        return self.handle(OffersReceived(tuple(offers)), after=after)

    def update(self, task_id: str, state: TaskState, *, after: float = 0.0, **fields: Any) -> list[Operation]:
        record = self.state.tasks.get(TaskId(task_id))
        fields.setdefault("agent_id", record.agent_id if record is not None else "agent-wn-1")
        return self.handle(StatusUpdated(make_status(task_id, state, **fields)), after=after)

    def tick(self, after: float = 1.0) -> list[Operation]:
        return self.handle(Tick(), after=after)

    def run_for(self, seconds: float, step: float = 1.0) -> list[Operation]:
        """Tick every ``step`` for ``seconds``; all operations emitted, in order."""
        ops: list[Operation] = []
        for _ in range(int(seconds / step)):
            ops.extend(self.tick(step))
        return ops

    def launched(self, ops: Sequence[Operation]) -> list[TaskId]:
        return [tid for op in ops if isinstance(op, Launch) for tid in op.task_ids]

    def task_ids(self, service: str) -> list[TaskId]:
        return sorted(t for t, r in self.state.tasks.items() if r.service == service)

    def slot(self, service: str, slot: int) -> TaskId:
        """The ID of the task holding ``slot`` of ``service`` (exactly one must)."""
        (task_id,) = [
            t for t, r in self.state.tasks.items() if (r.service, r.slot) == (service, slot) and counts(r)
        ]
        return task_id

    def run_all(self, service: str, **fields: Any) -> None:
        """Report every task of ``service`` that has not started yet as RUNNING."""
        for tid in self.task_ids(service):
            if self.state.tasks[tid].state is not TaskState.TASK_RUNNING:
                self.update(tid, TaskState.TASK_RUNNING, **fields)


def of_type(ops: Sequence[Operation], kind: type[_T]) -> list[_T]:
    """The operations of one type, in order."""
    return [op for op in ops if isinstance(op, kind)]


def counter_suffixes() -> Callable[[], str]:
    """Deterministic task-ID suffixes: ``t1``, ``t2``..."""
    counter = itertools.count(1)
    return lambda: f"t{next(counter)}"


@pytest.fixture
def make_state() -> Iterator[Callable[..., Harness]]:
    """Factory ``make_state(config_or_yaml, now=..., settings=..., **kwargs) -> Harness``; every state
    it made has its invariants checked again at teardown."""
    made: list[Harness] = []

    def factory(
        config: Config | str = BASIC,
        *,
        now: float = 1000.0,
        settings: CoreSettings | None = None,
        **kwargs: Any,
    ) -> Harness:
        if isinstance(config, str):
            config = make_config(config)
        kwargs.setdefault("new_suffix", counter_suffixes())
        state = SchedulerState(config, now=now, settings=settings, **kwargs)
        harness = Harness(state, now)
        made.append(harness)
        return harness

    yield factory
    for harness in made:
        harness.state.check_invariants()


@pytest.fixture
def state(make_state: Callable[..., Harness]) -> Harness:
    """A subscribed state over :data:`BASIC`, invariants checked after every step and at teardown."""
    harness = make_state(BASIC)
    harness.subscribe()
    return harness


__all__ = ["BASIC", "SITE", "Harness", "counter_suffixes", "of_type"]
