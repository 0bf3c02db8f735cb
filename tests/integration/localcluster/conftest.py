"""Fixtures: a fast simulated local cluster on 127.0.0.1 and schedulers that are always closed."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from framework.localcluster.cluster import LocalCluster
from framework.localcluster.config import ClusterConfig
from tests.integration.cluster_fixtures import cluster_maker, one_cluster, thread_leak_check
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


no_thread_leak = pytest.fixture(name="no_thread_leak")(thread_leak_check(grace_s=5.0))
make_cluster = pytest.fixture(name="make_cluster")(cluster_maker(FAST))
cluster = pytest.fixture(name="cluster")(one_cluster)


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
