"""The placement benchmark runs on a tiny cluster and measures what it says (no timing asserted)."""

from __future__ import annotations

import math

from tests.bench.core import STARTDS, core_placement, make_cluster
from tests.bench.registry import BENCHMARKS, Options


def test_the_benchmark_reports_both_scenarios_with_finite_figures() -> None:
    figures = {f.label: f for f in core_placement(Options(scale=0.02, repeat=1))}
    assert figures["agents"].value == 100 and figures["offers per batch"].value == 20
    for scenario in ("steady", "scale-up"):
        assert math.isfinite(figures[f"{scenario}: plan_offers per 1,000 offers"].value)
        assert figures[f"{scenario}: handle(OFFERS) per 1,000 offers"].value > 0
    assert (
        figures["scale-up: tasks launched by the batch"].value
        > figures["steady: tasks launched by the batch"].value
    )
    assert BENCHMARKS["core_placement"].function is core_placement


def test_the_generated_cluster_wants_more_than_it_runs() -> None:
    cluster = make_cluster(0.02, demand=0.3)
    running = sum(1 for t in cluster.tasks if t.service in STARTDS)
    wanted = sum(s.instances for n, s in cluster.config.services.items() if n in STARTDS)  # type: ignore[misc]
    assert wanted > running > 0
    assert len({o.hostname for o in cluster.offers}) == len(cluster.offers)
