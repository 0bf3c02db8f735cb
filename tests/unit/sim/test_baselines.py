"""The baselines follow their published rules (``autoscaling.md`` sections 1-3) on tiny cases.

Each controller is driven second by second with a load and its own decisions applied at once
(instances are ready immediately unless a test says otherwise), as the simulator does.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence

from framework.core.autoscale import Counts
from framework.sim.baselines import HpaController, KpaController, MarathonLbController, make_baselines
from framework.sim.model import Controller

TARGET = 700.0


def drive(
    controller: Controller, loads: Sequence[float], desired: int, *, ready: int | None = None
) -> list[int]:
    """Run ``loads`` (one per second); return the desired count after each second."""
    out = []
    for t, load in enumerate(loads):
        counts = Counts(desired=desired, launching=0, ready=desired if ready is None else ready)
        wanted = controller.step(t, load, counts)
        if wanted is not None:
            desired = wanted
        out.append(desired)
    return out


def changes(counts: Sequence[int], initial: int) -> list[tuple[int, int]]:
    result, previous = [], initial
    for t, count in enumerate(counts):
        if count != previous:
            result.append((t, count))
            previous = count
    return result


def hpa(**kwargs: float) -> HpaController:
    return HpaController(target=TARGET, min_instances=1, max_instances=100, **kwargs)  # type: ignore[arg-type]


# -- HPA -------------------------------------------------------------------------------------------


def test_hpa_metric_is_a_rate_over_the_scrapes_in_its_window() -> None:
    controller = hpa()
    drive(controller, [1000.0] * 60 + [4000.0] * 30, 2)
    # Scrapes at t=14, 29, ..., 89: the window (29, 89] holds 44..89, 45 s of which 30 at 4,000.
    assert controller.metric(89) == (15 * 1000 + 30 * 4000) / 45


def test_hpa_does_nothing_within_the_ten_percent_tolerance() -> None:
    # 4 pods x 700 = 2,800; 3,000 is a ratio of 1.07: no-op. 3,100 (1.107) scales to ceil(3100/700).
    assert changes(drive(hpa(), [3000.0] * 300, 4), 4) == []
    assert changes(drive(hpa(), [3100.0] * 300, 4), 4) == [(37, 5)]


def test_hpa_scale_up_is_limited_to_four_pods_or_double_per_period() -> None:
    counts = drive(hpa(), [50_000.0] * 120, 1)
    steps = changes(counts, 1)
    assert [c for _, c in steps][:4] == [5, 10, 20, 40]  # max(+4, x2) per 15 s
    assert all(b - a == 15 for (a, _), (b, _) in itertools.pairwise(steps))


def test_hpa_holds_the_highest_recommendation_of_the_last_five_minutes() -> None:
    loads = [5000.0] * 120 + [500.0] * 600
    counts = drive(hpa(), loads, 8)
    steps = changes(counts, 8)
    # Syncs at 7 + 15k. While the rate window drains, the recommendations are 8 (t=127: scrapes
    # 74..119, all 5,000), 5 (t=142: 3,500), 3 (t=157: 2,000), then 1. Each is the window's maximum
    # for 300 s, so the count follows them down 300 s late, one sync apart.
    assert steps == [(427, 5), (442, 3), (457, 1)]


def test_hpa_does_nothing_without_two_scrapes() -> None:
    controller = hpa()
    assert drive(controller, [9000.0] * 14, 1) == [1] * 14
    assert controller.metric(13) is None


# -- KPA -------------------------------------------------------------------------------------------


def kpa(initial: int) -> KpaController:
    return KpaController(target=TARGET, min_instances=1, max_instances=100, initial=initial)


def test_kpa_panics_at_twice_the_ready_pods_in_the_six_second_window() -> None:
    controller = kpa(1)
    loads = [500.0] * 100 + [3000.0] * 20
    counts = drive(controller, loads, 1)
    # Ticks at odd seconds. t=101: the 6-s average is (4 x 500 + 2 x 3,000) / 6 = 1,333 and
    # ceil(1,333 / 700) = 2 = 2 x 1 ready: panic, 2 pods. t=103: 2,167 -> 4 = 2 x 2 ready: still
    # over, 4 pods. t=105: 3,000 -> 5 < 2 x 4: no longer over, 5 pods (the panic lasts).
    assert changes(counts, 1) == [(101, 2), (103, 4), (105, 5)]
    assert controller.panic_since == 103


def test_kpa_in_panic_never_scales_down_until_a_stable_window_without_panic() -> None:
    controller = kpa(1)
    loads = [500.0] * 100 + [3000.0] * 20 + [500.0] * 100
    counts = drive(controller, loads, 1, ready=1)
    # Ready stays 1, so every tick whose 6-s average needs 2 pods extends the panic; the last is
    # t=123 (118 and 119 were still at 3,000). Only the first tick after 123 + 60 may scale down.
    assert controller.panic_since is None
    assert counts[183] == 5
    assert changes(counts, 1)[-1] == (185, 1)


def test_kpa_scales_down_at_most_by_half_per_tick() -> None:
    controller = kpa(8)  # more than one pod: starts in panic, as Knative does
    counts = drive(controller, [0.0] * 200, 8)
    steps = changes(counts, 8)
    assert [c for _, c in steps] == [4, 2, 1]
    assert steps[0][0] == 61  # once the initial panic has run a stable window


# -- marathon-lb-autoscale -------------------------------------------------------------------------


def mlb() -> MarathonLbController:
    return MarathonLbController(target=TARGET, min_instances=1, max_instances=100)


def test_mlb_never_scales_in_its_first_ten_loops() -> None:
    counts = drive(mlb(), [20_000.0] * 600, 1)
    assert counts == [1] * 600


def test_mlb_averages_one_second_per_loop_over_ten_loops_and_needs_three_in_a_row() -> None:
    controller = mlb()
    loads = [700.0] * 3600
    for t in range(659, 3600, 60):
        loads[t] = 7000.0  # only the sampled second of each loop is high
    counts = drive(controller, loads, 1)
    # Loops at t=59+60k. From the 11th loop (t=659) each adds a 7,000 sample to the 10-sample mean:
    # 1,330 (ceil 2, 90 % off, past threshold: 1st), 1,960 (2nd), 2,590 (3rd) -> scale to 4 at t=779.
    assert changes(counts, 1)[0] == (779, 4)
    assert list(controller.rates)[-1] == 7000.0 and len(controller.rates) == 10


def test_mlb_is_locked_out_for_fifteen_minutes_after_a_scale() -> None:
    loads = [700.0] * 600 + [6000.0] * 3000
    counts = drive(mlb(), loads, 1)
    steps = changes(counts, 1)
    # Loops at 59 + 60k; t=659, 719, 779 are three loops in a row past the threshold (means 1,230,
    # 1,760, 2,290) -> 4 at t=779. Then locked while now <= 779 + (5 + 10) x 60 = 1,679.
    assert steps[0] == (779, 4)
    assert steps[1] == (1739, 9)


def test_mlb_dead_zone_with_a_saturated_counter() -> None:
    # 1,000 per instance against 700: 43 % off (< 50 %) and one instance off (< 3): never scales.
    counts = drive(mlb(), [2000.0] * 3600, 2)
    assert changes(counts, 2) == []


def test_the_baseline_set() -> None:
    names = [c.name for c in make_baselines(target=TARGET, min_instances=1, max_instances=20, initial=3)]
    assert names == ["hpa", "kpa", "marathon-lb-autoscale"]
