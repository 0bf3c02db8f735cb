"""Run Steward's policy (and, on request, the baselines) over one offered-load series and score them.

Shared by ``steward simulate`` and the autoscaling benchmark so both measure the same way.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from framework.core.autoscale import PolicyParams
from framework.sim.baselines import make_baselines
from framework.sim.model import (
    Controller,
    SimSettings,
    StewardController,
    Timeline,
    initial_instances_for,
    simulate,
)
from framework.sim.scoring import Scores, score

__all__ = ["Run", "run_policies"]


@dataclass(frozen=True, slots=True)
class Run:
    """One controller's timeline over the series and its scores."""

    name: str
    timeline: Timeline
    scores: Scores


def run_policies(
    offered: Sequence[int],
    params: PolicyParams,
    settings: SimSettings,
    *,
    demand: Sequence[float] | None = None,
    segments: Sequence[tuple[int, int]] | None = None,
    baselines: bool = False,
    initial: int | None = None,
) -> list[Run]:
    """Steward first, then HPA, KPA and marathon-lb-autoscale if ``baselines``.

    All start from the same ``initial`` ready instances (default: the first minute's load at the
    policy's target) with the same target and bounds. ``demand`` (the trace's rate) is what the
    oracle and time-to-capacity are measured against; ``segments`` default to those found in it.
    """
    start = initial
    if start is None:
        start = initial_instances_for(offered, settings, params.target_per_instance)
    controllers: list[Controller] = [StewardController(params, initial=start, observe=settings.observe)]
    if baselines:
        controllers.extend(
            make_baselines(
                target=params.target_per_instance,
                min_instances=settings.min_instances,
                max_instances=settings.max_instances,
                initial=start,
            )
        )
    runs = []
    for controller in controllers:
        timeline = simulate(controller, offered, settings, initial=start)
        scores = score(
            offered=timeline.offered,
            ready=timeline.ready,
            desired=timeline.desired,
            initial=start,
            capacity=settings.capacity,
            demand=demand,
            segments=segments,
        )
        runs.append(Run(controller.name, timeline, scores))
    return runs
