"""The autoscaling benchmark runs on one seed and its target checks read the right numbers."""

from __future__ import annotations

import math

import pytest

from tests.bench import BENCHMARKS, Options
from tests.bench.autoscale import POLICIES, Aggregate, check_targets, evaluate


def test_the_benchmark_is_registered_and_prints_the_table_and_targets(
    capsys: pytest.CaptureFixture[str],
) -> None:
    figures = BENCHMARKS["autoscale"].function(Options(scale=0.1, repeat=1))
    out = capsys.readouterr().out
    assert "observe  trace     policy" in out
    for policy in POLICIES:
        assert policy in out
    assert out.count("[met]") + out.count("[MISSED]") == 15
    assert figures[0].label == "targets met" and figures[0].unit == "of 15"
    assert 0 <= figures[0].value <= 15


def test_targets_are_judged_from_the_aggregates() -> None:
    results = evaluate([0])
    assert len(results) == 2 * 6 * 4
    targets = {t.name: t for t in check_targets(results)}
    step = results[("offered", "step", "steward")]
    assert targets["step: capacity within 60 s"].met == (step.ttac_worst <= 60)
    # Flip one aggregate and the verdict follows it.
    results[("offered", "step", "steward")] = Aggregate(
        overload_seconds=step.overload_seconds,
        lost_percent=step.lost_percent,
        instance_seconds=step.instance_seconds,
        cost_ratio=9.0,
        scale_actions=step.scale_actions,
        flaps=step.flaps,
        flaps_max=7,
        hours=step.hours,
        ttac_worst=math.inf,
    )
    flipped = {t.name: t for t in check_targets(results)}
    assert not flipped["step: capacity within 60 s"].met
    assert flipped["step: capacity within 60 s"].detail == "worst never"
    assert not flipped["step: at most 1 flap"].met
    assert not flipped["step: cost at most 1.45"].met
