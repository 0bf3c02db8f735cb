"""Fixtures: a fast simulated cluster in this process, and Steward runtimes that are always closed."""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from framework.config import parse_config
from framework.core.state import CoreSettings
from framework.localcluster.cluster import LocalCluster
from framework.runtime.app import Runtime, start_runtime
from tests.integration.faults.support import FAST, Service, site_yaml


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10.0
    while True:
        leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leftover, f"threads left running: {[t.name for t in leftover]}"


@pytest.fixture
def make_cluster(no_thread_leak: None) -> Iterator[Callable[..., LocalCluster]]:
    """``make_cluster(**ClusterConfig changes)``: a started cluster, stopped after the test."""
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
def start_steward(tmp_path: Path, no_thread_leak: None) -> Iterator[Callable[..., Runtime]]:
    """``start_steward(cluster, {"web": 6}, settings=...)``: Steward in this process on one store.

    Every runtime started is closed at the end (before the cluster: this fixture is set up later).
    """
    runtimes: list[Runtime] = []

    def start(
        cluster: LocalCluster,
        services: dict[str, Service | int],
        *,
        settings: CoreSettings | None = None,
    ) -> Runtime:
        text = site_yaml(cluster.url, tmp_path / "state", services)
        runtime = start_runtime(parse_config(text, "site.yaml"), settings=settings)
        runtimes.append(runtime)
        return runtime

    yield start
    for runtime in runtimes:
        runtime.close()
