"""Fixtures: a fast simulated cluster in this process, and Steward runtimes that are always closed.

The cluster fixtures are the shared ones of ``tests/integration/cluster_fixtures.py`` with this
directory's defaults (``support.FAST``: four agents, short retry intervals)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from framework.config import parse_config
from framework.core.state import CoreSettings
from framework.localcluster.cluster import LocalCluster
from framework.runtime.app import Runtime, start_runtime
from tests.integration.cluster_fixtures import cluster_maker, one_cluster, thread_leak_check
from tests.integration.faults.support import FAST, Service, site_yaml

no_thread_leak = pytest.fixture(name="no_thread_leak")(thread_leak_check(grace_s=10.0, interval_s=0.05))
make_cluster = pytest.fixture(name="make_cluster")(cluster_maker(FAST))
cluster = pytest.fixture(name="cluster")(one_cluster)


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
