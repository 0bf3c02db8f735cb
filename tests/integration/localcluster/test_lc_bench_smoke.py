"""The local cluster benchmarks run end to end on a tiny input (figures only; no speed asserted)."""

from __future__ import annotations

import math

from tests.bench.localcluster import bench_local_cluster, bench_local_cluster_core
from tests.bench.registry import Options


def test_http_benchmark_launches_every_task_and_reports_its_figures() -> None:
    figures = bench_local_cluster(Options(scale=0.002, repeat=1))
    labels = [f.label for f in figures]
    assert labels[0] == "start a cluster of 10 agents"
    assert "20 launches to TASK_RUNNING (acks included)" in labels
    assert all(math.isfinite(f.value) and f.value > 0 for f in figures)


def test_state_machine_benchmark_reports_its_figures() -> None:
    figures = bench_local_cluster_core(Options(scale=0.002, repeat=1))
    assert [f.label for f in figures] == [
        "register 10 agents",
        "allocate + encode 10 offers",
        "20 launches, 2 updates + 2 acks each",
    ]
    assert all(math.isfinite(f.value) and f.value > 0 for f in figures)
