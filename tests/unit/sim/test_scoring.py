"""Scores on tiny timelines whose numbers are worked out by hand from ``autoscaling.md`` section 7.3."""

from __future__ import annotations

import pytest

from framework.sim.scoring import (
    cost_ratio,
    find_segments,
    flaps,
    instance_seconds,
    lost_percent,
    oracle_instance_seconds,
    overload_seconds,
    scale_actions,
    score,
    time_to_capacity_seconds,
)

OFFERED = [500, 1500, 2500, 900, 0]
READY = [1, 1, 2, 2, 1]
DESIRED = [1, 2, 3, 3, 1]


def test_overload_counts_seconds_with_more_offered_than_ready_capacity() -> None:
    assert overload_seconds(OFFERED, READY, 1000.0) == 2  # 1,500 > 1,000 and 2,500 > 2,000
    assert overload_seconds([1000], [1], 1000.0) == 0  # exactly at capacity is not overload


def test_lost_percent_is_the_excess_over_everything_offered() -> None:
    # (1,500 - 1,000) + (2,500 - 2,000) = 1,000 of 5,400 offered.
    assert lost_percent(OFFERED, READY, 1000.0) == pytest.approx(100 * 1000 / 5400)
    assert lost_percent([0, 0], [0, 0], 1000.0) == 0.0


def test_instance_seconds_oracle_and_cost() -> None:
    assert instance_seconds(DESIRED) == 10
    # max(1, ceil(x / 1000)): 1, 2, 3, 1, 1 (an idle second still needs one instance).
    assert oracle_instance_seconds(OFFERED, 1000.0) == 8
    assert cost_ratio(DESIRED, OFFERED, 1000.0) == 10 / 8


def test_actions_and_flaps() -> None:
    assert scale_actions(DESIRED, initial=1) == 3  # 1->2, 2->3, 3->1
    assert flaps(DESIRED, initial=1) == 1  # up, up, down
    assert scale_actions([2, 3, 2, 3, 3, 2], initial=2) == 4
    assert flaps([2, 3, 2, 3, 3, 2], initial=2) == 3
    assert flaps([5, 5, 5], initial=5) == scale_actions([5, 5, 5], initial=5) == 0
    assert flaps([4], initial=5) == 0 and scale_actions([4], initial=5) == 1


def test_time_to_capacity_needs_thirty_consecutive_seconds_inside_the_segment() -> None:
    demand = [900.0] * 60
    ready = [0, 0] + [1] * 58
    assert time_to_capacity_seconds(ready, demand, 1000.0, [(0, 60)]) == [2]
    broken = list(ready)
    broken[10] = 0  # the streak from t=2 breaks; the next one starts at t=11
    assert time_to_capacity_seconds(broken, demand, 1000.0, [(0, 60)]) == [11]
    assert time_to_capacity_seconds(broken, demand, 1000.0, [(0, 40)]) == [None]  # t=11..40 is 29 s
    # A segment shorter than 30 s must be covered to its end.
    assert time_to_capacity_seconds(ready, demand, 1000.0, [(0, 20)]) == [None]
    assert time_to_capacity_seconds(ready, demand, 1000.0, [(2, 20)]) == [0]
    assert time_to_capacity_seconds(ready, demand, 1000.0, []) == []


def test_segments_of_a_bare_trace_are_its_rises() -> None:
    demand = [400.0] * 100 + [6000.0] * 100 + [400.0] * 100 + [3000.0] * 50 + [2500.0] * 50
    assert find_segments(demand, 1000.0) == [(100, 200), (300, 400)]
    assert find_segments([800.0] * 300, 1000.0) == []
    # A rise of a single instance is not a high-demand segment.
    assert find_segments([400.0] * 100 + [1500.0] * 100, 1000.0) == []


def test_score_bundles_every_number_for_the_summary() -> None:
    scores = score(
        offered=OFFERED, ready=READY, desired=DESIRED, initial=1, capacity=1000.0, segments=[(1, 3)]
    )
    as_dict = scores.as_dict()
    assert set(as_dict) == {
        "overload_seconds",
        "lost_percent",
        "instance_seconds",
        "oracle_instance_seconds",
        "cost_ratio",
        "scale_actions",
        "flaps",
        "time_to_capacity_seconds",
        "segments",
    }
    assert (scores.overload_seconds, scores.instance_seconds, scores.oracle_instance_seconds) == (2, 10, 8)
    assert (scores.scale_actions, scores.flaps, scores.cost_ratio) == (3, 1, 1.25)
    assert scores.time_to_capacity_seconds == (None,)  # overloaded at t=1 and t=2
    # The oracle and time to capacity follow the demand when it is given (the trace's rate).
    with_demand = score(
        offered=OFFERED,
        ready=READY,
        desired=DESIRED,
        initial=1,
        capacity=1000.0,
        demand=[900.0] * 5,
        segments=[],
    )
    assert with_demand.oracle_instance_seconds == 5
