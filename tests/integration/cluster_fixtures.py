"""Fixture bodies for tests that run a ``LocalCluster`` in the test process.

Each test directory picks its own cluster defaults and thread grace period, and turns these bodies
into its fixtures in its ``conftest.py``::

    no_thread_leak = pytest.fixture(name="no_thread_leak")(thread_leak_check(grace_s=5.0))
    make_cluster = pytest.fixture(name="make_cluster")(cluster_maker(FAST))
    cluster = pytest.fixture(name="cluster")(one_cluster)

``make_cluster`` depends on ``no_thread_leak``, so the thread check runs after every cluster made
for the test is stopped.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from framework.localcluster.cluster import LocalCluster
from framework.localcluster.config import ClusterConfig


def thread_leak_check(grace_s: float, interval_s: float = 0.02) -> Callable[[], Iterator[None]]:
    """A fixture body failing the test when threads it started are still alive ``grace_s`` after it."""

    def no_thread_leak() -> Iterator[None]:
        before = set(threading.enumerate())
        yield
        deadline = time.monotonic() + grace_s
        while True:
            leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
            if not leftover or time.monotonic() > deadline:
                break
            time.sleep(interval_s)
        assert not leftover, f"threads left running: {[t.name for t in leftover]}"

    return no_thread_leak


def cluster_maker(base: ClusterConfig) -> Callable[[None], Iterator[Callable[..., LocalCluster]]]:
    """A fixture body answering ``make_cluster(**ClusterConfig changes)``: a started cluster made of
    ``base`` with the changes, stopped after the test (in the order they were made)."""

    def make_cluster(no_thread_leak: None) -> Iterator[Callable[..., LocalCluster]]:
        clusters: list[LocalCluster] = []

        def make(**changes: Any) -> LocalCluster:
            cluster = LocalCluster(dataclasses.replace(base, **changes)).start()
            clusters.append(cluster)
            return cluster

        yield make
        for cluster in clusters:
            cluster.stop()

    return make_cluster


def one_cluster(make_cluster: Callable[..., LocalCluster]) -> LocalCluster:
    """A fixture body: one cluster with the directory's defaults."""
    return make_cluster()
