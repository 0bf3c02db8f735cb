"""The end-to-end scale benchmark runs at a tiny scale (20 agents, 40 tasks), so it cannot rot.

Nothing about speed is asserted; the test checks that every figure is produced and plausible.
"""

from __future__ import annotations

import math

from tests.bench import BENCHMARKS, Options
from tests.bench.scale import bench_scale


def test_scale_benchmark_runs_small_and_reports_every_figure() -> None:
    assert BENCHMARKS["scale"].function is bench_scale
    figures = {f.label: f for f in bench_scale(Options(scale=0.004, repeat=1))}
    expected = [
        "Steward start -> all tasks RUNNING",
        "  of which start -> SUBSCRIBED",
        "OFFERS events handled",
        "plan_offers per 1,000 offers (mean)",
        "handle(OFFERS) per 1,000 offers (mean)",
        "peak memory (VmHWM), first Steward",
        "restart: SUBSCRIBED -> reconciled (core)",
        "restart: start -> reconciled",
        "peak memory (VmHWM), restarted Steward",
    ]
    for label in expected:
        assert label in figures, f"missing figure {label!r}; got {sorted(figures)}"
    assert all(math.isfinite(f.value) and f.value >= 0 for f in figures.values())
    assert figures["  offers in them"].value >= 20, "every agent was offered"
    start_to_running = figures["Steward start -> all tasks RUNNING"].value
    assert start_to_running > figures["  of which start -> SUBSCRIBED"].value
    assert 10 < figures["peak memory (VmHWM), first Steward"].value < 10_000, "MiB of a Python process"
