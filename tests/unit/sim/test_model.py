"""The 1-second simulation model: readiness after the start delay, youngest-first removal, what a
policy observes, and Steward's policy fed exactly as the runtime feeds it."""

from __future__ import annotations

import dataclasses

import pytest

from framework.core.autoscale import Counts, PolicyParams
from framework.sim.model import SimSettings, StewardController, initial_instances_for, simulate
from framework.sim.runner import run_policies


class Scripted:
    """A controller that sets given counts at given seconds and records what it saw."""

    name = "scripted"

    def __init__(self, plan: dict[int, int]) -> None:
        self.plan = plan
        self.seen: list[tuple[int, float, Counts]] = []

    def step(self, t: int, observed: float, counts: Counts) -> int | None:
        self.seen.append((t, observed, counts))
        return self.plan.get(t)


def test_launched_instances_are_ready_after_the_start_delay_and_cost_from_launch() -> None:
    controller = Scripted({2: 3})
    timeline = simulate(controller, [100] * 10, SimSettings(start_delay_s=4), initial=1)
    assert timeline.desired == [1, 1, 3, 3, 3, 3, 3, 3, 3, 3]
    assert timeline.ready == [1, 1, 1, 1, 1, 1, 3, 3, 3, 3]  # launched at t=2, ready at t=6
    t, _, counts = controller.seen[4]
    assert (t, counts) == (4, Counts(desired=3, launching=2, ready=1))


def test_scale_down_removes_instances_not_ready_yet_first() -> None:
    controller = Scripted({0: 3, 2: 5, 4: 3, 8: 1})
    timeline = simulate(controller, [0] * 10, SimSettings(start_delay_s=5), initial=1)
    # t=0: +2 (ready at 5); t=2: +2 (ready at 7); t=4: -2 takes the two launched at t=2, so
    # three are ready from t=5 (not five from t=7). ``ready`` is counted as the second starts,
    # before that second's decision, so the removal at t=8 shows from t=9.
    assert timeline.ready == [1, 1, 1, 1, 1, 3, 3, 3, 3, 1]
    assert timeline.desired == [3, 3, 5, 5, 3, 3, 3, 3, 1, 1]


def test_served_observation_saturates_at_ready_capacity() -> None:
    offered = [500, 2500, 2500]
    served = simulate(Scripted({}), offered, SimSettings(observe="served"), initial=2)
    assert served.observed == [500.0, 2000.0, 2000.0]
    assert simulate(Scripted({}), offered, SimSettings(), initial=2).observed == [500.0, 2500.0, 2500.0]


def test_settings_are_checked() -> None:
    with pytest.raises(ValueError, match="capacity"):
        SimSettings(capacity=0)
    with pytest.raises(ValueError, match="observe"):
        SimSettings(observe="guessed")  # type: ignore[arg-type]


def test_initial_instances_follow_the_first_minute_at_target() -> None:
    settings = SimSettings(min_instances=2, max_instances=5)
    assert initial_instances_for([100] * 60, settings, 700.0) == 2
    assert initial_instances_for([2000] * 60, settings, 700.0) == 3
    assert initial_instances_for([90_000] * 60, settings, 700.0) == 5


def test_steward_sees_one_sample_per_interval_the_mean_of_its_seconds() -> None:
    params = dataclasses.replace(PolicyParams(), interval_s=5.0)
    controller = StewardController(params, initial=1)
    offered = [100, 200, 300, 400, 500] * 4 + [9000] * 10
    timeline = simulate(controller, offered, SimSettings(), initial=1)
    decisions = timeline.decisions
    assert decisions, "the step to 9,000 must scale up"
    first = decisions[0]
    # Samples at t=4, 9, 14, ...: each the mean of its 5 seconds. The first holding 9,000 is at
    # t=24; the 6-s window then also holds t=19's, the mean of 100..500 = 300.
    assert first.at == 24
    assert first.reason == "up 1->7: 4,650 req/s over 6 s > 0.7 x 1,000 x 1"
    # Between samples nothing changes: every change lands at the end of an interval.
    changes = [t for t in range(1, len(timeline)) if timeline.desired[t] != timeline.desired[t - 1]]
    assert all((t + 1) % 5 == 0 for t in changes)


def test_steward_reports_its_instances_only_for_served_counters() -> None:
    params = dataclasses.replace(PolicyParams(), interval_s=2.0)
    served = StewardController(params, initial=2, observe="served")
    simulate(served, [2000] * 4, SimSettings(observe="served"), initial=2)
    # Two squids each at their capacity of 1,000: saturated, a step up (not a sizing to 3).
    assert served.decisions[0].kind == "saturation"
    offered = StewardController(params, initial=2, observe="offered")
    simulate(offered, [2000] * 4, SimSettings(), initial=2)
    assert offered.decisions[0].kind == "load" and offered.decisions[0].target == 3


def test_run_policies_runs_steward_then_the_baselines_from_the_same_start() -> None:
    offered = [400] * 300 + [6000] * 300
    runs = run_policies(offered, PolicyParams(), SimSettings(), baselines=True)
    assert [r.name for r in runs] == ["steward", "hpa", "kpa", "marathon-lb-autoscale"]
    assert {r.timeline.initial for r in runs} == {1}
    assert all(len(r.timeline) == 600 for r in runs)
    steward = runs[0].scores
    assert steward.segments == ((300, 600),)
    ttac = steward.time_to_capacity_seconds[0]
    assert ttac is not None and ttac <= 45 + 15
    assert runs[3].scores.time_to_capacity_seconds == (None,)  # marathon-lb-autoscale: 10 loops first
