"""Fixtures: a fast simulated local cluster on 127.0.0.1 and schedulers that are always closed."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from framework.localcluster.cluster import LocalCluster
from framework.localcluster.config import ClusterConfig
from tests.integration.localcluster.mini_scheduler import MiniScheduler, framework_info

FAST = ClusterConfig(
    listen="127.0.0.1:0",
    containerizer="simulated",
    agent_count=2,
    heartbeat_interval_s=0.5,
    allocation_interval_s=0.05,
    update_retry_initial_s=0.2,
    update_retry_max_s=1.0,
    agent_ping_timeout_s=0.0,
    agent_reregister_timeout_s=1.0,
    simulated_start_delay_s=0.05,
    seed=7,
)


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 5.0
    while True:
        leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    assert not leftover, f"threads left running: {[t.name for t in leftover]}"


@pytest.fixture
def make_cluster(no_thread_leak: None) -> Iterator[Callable[..., LocalCluster]]:
    clusters: list[LocalCluster] = []

    def make(**changes: Any) -> LocalCluster:
        cluster = LocalCluster(dataclasses.replace(FAST, **changes)).start()
        clusters.append(cluster)
        return cluster

    yield make
    for cluster in clusters:
        cluster.stop()


@pytest.fixture
def cluster(make_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    return make_cluster()


@pytest.fixture
def make_scheduler(cluster: LocalCluster) -> Iterator[Callable[..., MiniScheduler]]:
    """``make_scheduler(**framework_info kwargs)``; pass ``url=`` for another cluster."""
    schedulers: list[MiniScheduler] = []

    def make(
        *, url: str | None = None, suppressed_roles: tuple[str, ...] = (), auto_ack: bool = False, **info: Any
    ) -> MiniScheduler:
        sched = MiniScheduler(
            url or cluster.url, framework_info(**info), suppressed_roles=suppressed_roles, auto_ack=auto_ack
        )
        schedulers.append(sched)
        return sched

    yield make
    for sched in schedulers:
        sched.close()


def wait_until(predicate: Callable[[], bool], timeout: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
