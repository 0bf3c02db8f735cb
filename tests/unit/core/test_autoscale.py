"""The autoscale policy on scripted (time, load) sequences with a fake clock.

Each test drives one :class:`Autoscaler` through a :class:`Service` stand-in that applies the
decisions to its instance counts like the runtime would (new instances launch, and become ready
when the test says so), and feeds samples at explicit times. Numbers are chosen so the expected
targets can be worked out by hand from the documented rules.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from framework.config import parse_config
from framework.core.autoscale import (
    Autoscaler,
    Counts,
    Decision,
    Direction,
    Mode,
    PolicyParams,
    Sample,
    format_number,
)
from framework.core.autoscale_config import STARTD_DEFAULTS, policy_params

# The recommended squid policy without its extras, so each test switches on what it checks.
PLAIN = PolicyParams(forecast_s=0.0, burst_memory_s=0.0)


class Service:
    """A service as the policy sees it: ``desired``, of which ``launching`` are not ready yet."""

    def __init__(self, params: PolicyParams, desired: int, *, ready: int | None = None) -> None:
        self.policy = Autoscaler(params, initial_instances=desired)
        self.desired = desired
        self.ready = desired if ready is None else ready
        self.decisions: list[Decision] = []

    @property
    def launching(self) -> int:
        return self.desired - self.ready

    def counts(self) -> Counts:
        return Counts(desired=self.desired, launching=self.launching, ready=self.ready)

    def feed(
        self,
        now: float,
        value: float | None,
        *,
        observed_at: float | None = None,
        reporting: int | None = None,
        saturated: bool | None = None,
        running: float | None = None,
        reason: str | None = None,
    ) -> Decision:
        if value is None:
            sample = Sample.missing(reason or "timeout", now)
        else:
            at = now if observed_at is None else observed_at
            sample = Sample(value, at, instances_reporting=reporting, saturated=saturated, running=running)
        decision = self.policy.decide(sample, self.counts(), now)
        self.decisions.append(decision)
        if decision.applied:
            self.desired = decision.target
            self.ready = min(self.ready, self.desired)
        return decision

    def run(
        self, start: float, end: float, value: float, step: float = 2.0, **kwargs: object
    ) -> list[Decision]:
        """Feed ``value`` every ``step`` seconds over ``[start, end)``; return the changes."""
        changes = []
        t = start
        while t < end:
            decision = self.feed(t, value, **kwargs)  # type: ignore[arg-type]
            if decision.changed:
                changes.append(decision)
            t += step
        return changes

    def make_ready(self) -> None:
        self.ready = self.desired


def changes(decisions: list[Decision]) -> list[tuple[float, int, int]]:
    return [(d.at, d.previous, d.target) for d in decisions if d.changed]


# -- up path ---------------------------------------------------------------------------------------


def test_a_step_is_answered_within_the_short_window_with_the_full_count() -> None:
    svc = Service(PLAIN, 2)
    assert svc.run(0, 120, 1000.0) == []  # 1,000 req/s on 2 instances: 500 each, in the band
    # The 6-s window fills with the new level in three 2-s samples: 2,707, then 4,413, then 6,120.
    ups = svc.run(120, 120 + PLAIN.up_window_s, 6120.0)
    assert [(d.at, d.previous, d.target) for d in ups] == [(120, 2, 4), (122, 4, 7), (124, 7, 9)]
    assert svc.desired == math.ceil(6120 / 700)


def test_the_up_tolerance_is_a_no_op_band() -> None:
    svc = Service(PLAIN, 4)
    # 3,080 req/s is exactly 4 x 700 x 1.1: inside the band, no change; just above it, up.
    assert svc.run(0, 100, 3080.0) == []
    assert svc.desired == 4
    up = svc.run(100, 108, 3081.0)
    assert [(d.previous, d.target) for d in up] == [(4, 5)]


def test_the_up_step_limit_is_max_of_instances_and_percent_per_period() -> None:
    params = dataclasses.replace(PLAIN, max_instances=100)
    svc = Service(params, 1)
    svc.feed(0, 100_000.0)
    assert svc.desired == 1 + 8  # max(+8, +200 % of 1 = +2)
    assert svc.decisions[-1].reason.endswith("; step limit +8 or +200 % per 15 s (wanted 143)")
    svc.run(2, 16, 100_000.0)
    assert svc.desired == 9  # the period that started at t=0 is used up until t=15
    svc.feed(16, 100_000.0)
    assert svc.desired == 27  # period start 9: max(9 + 8, 9 x 3)


def test_up_is_capped_at_max_and_says_so() -> None:
    svc = Service(dataclasses.replace(PLAIN, max_instances=6), 2)
    decision = svc.feed(0, 7000.0)
    assert decision.target == 6
    assert decision.reason.endswith("; capped at max 6 (wanted 10)")


def test_up_cooldown_spaces_scale_ups() -> None:
    svc = Service(dataclasses.replace(PLAIN, up_cooldown_s=10.0, max_instances=50), 1)
    svc.feed(0, 1000.0)
    assert svc.desired == 2
    held = svc.feed(4, 5000.0)
    assert held.kind == "cooldown" and svc.desired == 2
    svc.feed(10, 5000.0)
    assert svc.desired == 8


# -- down path -------------------------------------------------------------------------------------


def test_down_needs_a_full_window_and_consecutive_votes() -> None:
    svc = Service(PLAIN, 9)
    # Warm-up: no scale-down before a whole down window of data, even on a low load.
    warm = svc.run(0, 60, 400.0)
    assert warm == []
    assert {d.kind for d in svc.decisions} == {"warmup"}
    votes = [svc.feed(60 + 2 * i, 400.0) for i in range(PLAIN.down_votes)]
    assert [d.kind for d in votes[:-1]] == ["vote"] * (PLAIN.down_votes - 1)
    assert votes[-2].reason == f"hold 9: down vote {PLAIN.down_votes - 1} of {PLAIN.down_votes}"
    assert votes[-1].direction is Direction.DOWN
    # 400 req/s needs 1, but one step may at most halve: floor(9 x 0.5) = 4.
    assert votes[-1].target == 4


def test_a_high_sample_resets_the_down_votes() -> None:
    svc = Service(PLAIN, 4)
    svc.run(0, 66, 2000.0)  # 2,000 fits 3 at 700 x 0.97: three votes once warm (t=60, 62, 64)
    assert [d.kind for d in svc.decisions[-3:]] == ["vote"] * 3
    svc.feed(66, 2800.0)  # one sample back at 4 x 700 lifts the short window: votes reset
    assert svc.decisions[-1].kind == "steady"
    svc.run(68, 72, 2000.0)  # the 2,800 is still in the 6-s window at t=68 and 70
    assert [d.kind for d in svc.decisions[-2:]] == ["steady", "steady"]
    again = [svc.feed(72 + 2 * i, 2000.0) for i in range(PLAIN.down_votes)]
    assert [d.kind for d in again[:-1]] == ["vote"] * (PLAIN.down_votes - 1)
    assert (again[-1].at, again[-1].target) == (80, 3)


def test_the_down_step_limit_halves_at_most_per_period() -> None:
    svc = Service(PLAIN, 20)
    svc.run(0, 200, 100.0)
    downs = [(d.at, d.previous, d.target) for d in svc.decisions if d.changed]
    # 20 -> 10 -> 5 -> 2 -> 1: floor(start x 0.5) per 30 s (and at least -1).
    assert downs == [(68, 20, 10), (98, 10, 5), (128, 5, 2), (158, 2, 1)]


def test_no_scale_down_within_the_cooldown_after_a_scale_up() -> None:
    svc = Service(PLAIN, 2)
    svc.run(0, 70, 1000.0)
    ups = svc.run(70, 76, 5000.0)
    assert [(d.at, d.target) for d in ups] == [(70, 4), (72, 6), (74, 8)]
    assert svc.run(76, 74 + PLAIN.down_cooldown_s, 100.0) == []
    assert svc.decisions[-1].reason == "hold 8: down cooldown (60 s after a scale-up)"
    downs = svc.run(74 + PLAIN.down_cooldown_s, 74 + PLAIN.down_cooldown_s + 20, 100.0)
    assert [(d.at, d.target) for d in downs] == [(142, 4)]  # five votes from t=134


def test_count_hysteresis_holds_a_plateau_at_an_instance_boundary() -> None:
    svc = Service(PLAIN, 4)
    # Alternating just above and just below 4 x 700: the fast path never fires (tolerance), and
    # going back down after an up would need the load to fit 4 at 700 x 0.9.
    loads = [2900.0, 2700.0] * 300
    for i, load in enumerate(loads):
        svc.feed(2 * i, load)
    assert svc.desired == 4
    assert changes(svc.decisions) == []
    svc.run(1200, 1206, 3300.0)  # a real rise past 4 x 700 x 1.1
    assert svc.desired == 5
    for i, load in enumerate(loads):
        svc.feed(1206 + 2 * i, load - 150)  # mean 2,650: fits 4 at 700, not at 700 x 0.9 (2,520)
    assert svc.desired == 5
    steady = svc.decisions[-1]
    assert steady.kind == "steady"


def test_a_continuing_decline_uses_the_smaller_tolerance() -> None:
    svc = Service(PLAIN, 6)
    assert svc.run(0, 100, 3400.0) == []  # 5 at 700 x 0.97 carry 3,395: not quite
    downs = svc.run(100, 200, 3300.0)  # no scale-up before: a decline, the 3 % tolerance applies
    assert [(d.previous, d.target) for d in downs] == [(6, 5)]
    assert " <= 0.679 x 1,000 x 5 for 5 checks" in downs[0].reason
    # The same load right after a scale-up to 6 would reverse it: the 10 % tolerance applies.
    after_up = Service(PLAIN, 5)
    after_up.run(0, 100, 3500.0)
    after_up.run(100, 106, 3900.0)
    assert after_up.desired == 6
    assert after_up.run(106, 400, 3300.0) == []  # 3,300 > 0.63 x 1,000 x 5


# -- start delay, saturation -----------------------------------------------------------------------


def test_instances_still_starting_are_capacity_to_come_not_a_reason_to_scale_again() -> None:
    svc = Service(PLAIN, 1)
    svc.run(0, 100, 500.0)
    svc.run(100, 106, 6000.0)
    assert svc.desired == 9 and svc.launching == 8
    # The same load for the whole start delay: nothing more is launched (no runaway) ...
    assert svc.run(106, 145, 6000.0) == []
    svc.make_ready()
    # ... and nothing more once they are ready either: 6,000 on 9 is at target.
    assert svc.run(145, 200, 6000.0) == []


def test_a_saturated_counter_steps_up_and_never_stalls() -> None:
    svc = Service(PLAIN, 2)
    svc.run(0, 100, 1000.0, reporting=2)
    # Each ready squid serves its capacity (1,000) and no more: the sum says 2,000, the demand is
    # unknown. marathon-lb-autoscale's dead zone; Steward steps up by the up step.
    step = svc.feed(100, 2000.0, reporting=2)
    assert step.kind == "saturation" and step.target == 10
    assert step.reason == (
        "up 2->10: saturated at 1,000 req/s per instance >= 0.95 x 1,000; demand unknown, stepping up"
    )
    held = svc.run(102, 145, 2000.0, reporting=2)
    assert held == []
    assert svc.decisions[-1].kind == "staging"
    assert svc.decisions[-1].reason == "hold 10: saturated, 8 launching (capacity to come: 10,000 req/s)"
    svc.make_ready()
    svc.feed(146, 10_000.0, reporting=10)  # still flat at capacity: step again
    assert svc.desired == 20


def test_a_sources_saturation_verdict_counts_even_below_capacity() -> None:
    svc = Service(PLAIN, 3)
    svc.run(0, 60, 1800.0, reporting=3)
    decision = svc.feed(60, 1800.0, reporting=3, saturated=True)
    assert decision.kind == "saturation" and decision.target == 11


def test_a_front_door_total_above_capacity_is_sized_not_stepped() -> None:
    svc = Service(PLAIN, 2)
    decision = svc.feed(0, 3000.0)  # no instances_reporting: a total of the demand
    assert decision.kind == "load" and decision.target == 5


def test_saturation_waits_for_a_doubling_in_flight_but_not_for_a_trickle() -> None:
    svc = Service(PLAIN, 4, ready=4)
    svc.run(0, 60, 2000.0, reporting=4)
    svc.desired = 5  # one launch in flight (e.g. a small load-based step)
    decision = svc.feed(60, 4000.0, reporting=4)
    assert decision.kind == "saturation"  # 1 launching < 4 ready: not enough to wait for
    svc2 = Service(PLAIN, 8, ready=4)  # 4 launching >= 4 ready
    svc2.run(0, 60, 2000.0, reporting=4)
    assert svc2.feed(60, 4000.0, reporting=4).kind == "staging"


# -- missing data ----------------------------------------------------------------------------------


def test_missing_data_holds_and_never_scales_down() -> None:
    svc = Service(PLAIN, 6)
    for i in range(200):  # a sample missing every 20 s, the last at t=380
        t = 2 * i
        if i % 10 == 0:
            svc.feed(t, None, reason="timeout")
        else:
            svc.feed(t, 100.0)
    assert svc.desired == 6  # a full window of fresh data never builds up
    missing = [d for d in svc.decisions if d.kind == "missing"]
    assert len(missing) == 20 and missing[0].reason == "hold 6: no sample (timeout)"
    assert svc.run(400, 440, 100.0) == []
    assert svc.decisions[-1].reason == "hold 6: down needs 60 s of fresh data"
    downs = svc.run(440, 460, 100.0)  # fresh since t=380: votes from t=440
    assert [(d.at, d.previous, d.target) for d in downs] == [(448, 6, 3)]


def test_a_stale_sample_counts_as_missing() -> None:
    svc = Service(PLAIN, 3)
    decision = svc.feed(100, 50_000.0, observed_at=100 - PLAIN.stale_after_s - 5)
    assert decision.kind == "stale" and svc.desired == 3
    assert decision.reason == "hold 3: stale sample (35 s old > 30 s)"


def test_garbage_values_count_as_missing() -> None:
    svc = Service(PLAIN, 3)
    for bad in (math.nan, math.inf, -5.0):
        assert svc.feed(0, bad).kind == "missing"
    assert svc.desired == 3


def test_instances_that_did_not_report_are_assumed_at_target_for_down() -> None:
    svc = Service(PLAIN, 4)
    # Only 1 of 4 squids answered, with 300 req/s: down is sized from 300 + 3 x 700 = 2,400.
    assert svc.run(0, 200, 300.0, reporting=1) == []
    # With all four answering the same total, it would shrink.
    assert svc.run(200, 400, 300.0, reporting=4) != []


def test_the_bounds_apply_even_without_data() -> None:
    svc = Service(dataclasses.replace(PLAIN, min_instances=2, max_instances=5), 0)
    decision = svc.feed(0, None)
    assert (decision.target, decision.kind, decision.reason) == (2, "bounds", "up 0->2: below min")
    svc.desired = 8
    decision = svc.feed(2, None)
    assert (decision.target, decision.reason) == (5, "down 8->5: above max")


def test_down_never_goes_below_min() -> None:
    svc = Service(dataclasses.replace(PLAIN, min_instances=3), 6)
    svc.run(0, 400, 0.0)
    assert svc.desired == 3


# -- operator controls -----------------------------------------------------------------------------


def test_pin_overrides_the_load_and_the_bounds_until_unpinned() -> None:
    svc = Service(PLAIN, 3)
    svc.policy.pin(25)
    decision = svc.feed(0, 100.0)
    assert (decision.target, decision.kind) == (25, "pin")
    assert decision.reason == "up 3->25: pinned by the operator"
    assert svc.feed(2, None).reason == "hold 25: pinned by the operator"
    svc.policy.unpin()
    assert svc.feed(4, 100.0).reason == "down 25->20: above max"


def test_pause_holds_whatever_the_load() -> None:
    svc = Service(PLAIN, 2)
    svc.policy.pause()
    assert svc.policy.paused
    assert svc.run(0, 30, 9000.0) == []
    assert svc.decisions[-1].reason == "hold 2: paused by the operator"
    svc.policy.resume()
    svc.feed(30, 9000.0)
    assert svc.desired == 10


def test_pin_refuses_a_negative_count() -> None:
    with pytest.raises(ValueError, match="negative"):
        Autoscaler(PLAIN).pin(-1)


def test_dry_run_decides_and_records_but_does_not_apply() -> None:
    svc = Service(dataclasses.replace(PLAIN, dry_run=True), 2)
    decision = svc.feed(0, 6000.0)
    assert not decision.applied
    assert decision.reason == "up 2->9: 6,000 req/s over 6 s > 0.7 x 1,000 x 2 (dry run, not applied)"
    assert svc.desired == 2
    # The policy carries its own proposal forward: 6,000 on the 9 it would have is in the band.
    assert not svc.feed(2, 6000.0).changed
    assert svc.policy.history[0] == decision


# -- reasons and history ---------------------------------------------------------------------------


def test_reason_formats_are_exact() -> None:
    up = Service(PLAIN, 3).feed(0, 6120.0)
    assert up.reason == "up 3->9: 6,120 req/s over 6 s > 0.7 x 1,000 x 3"
    svc = Service(PLAIN, 9)
    (down,) = svc.run(0, 70, 1500.0)
    assert down.reason == (
        "down 9->4: 1,500 req/s over 60 s <= 0.679 x 1,000 x 8 for 5 checks; step limit (wanted 3)"
    )
    steady = Service(PLAIN, 3).feed(0, 2000.0)
    assert steady.reason == "hold 3: 2,000 req/s within the band"


def test_numbers_in_reasons() -> None:
    assert [format_number(v) for v in (6120.4, 1000, 0.7, 2.5, 0.63, 12_345_678.9, 35.0)] == [
        "6,120",
        "1,000",
        "0.7",
        "2.5",
        "0.63",
        "12,345,679",
        "35",
    ]


def test_history_is_bounded_and_does_not_fill_with_repeated_holds() -> None:
    svc = Service(dataclasses.replace(PLAIN, history_size=5, max_instances=100), 1)
    for _ in range(50):
        svc.feed(0, 100.0)
    assert len(svc.policy.history) == 1  # the first "steady" hold only
    t = 0.0
    for load in (1000.0, 10_000.0, 30_000.0, 60_000.0, 65_000.0, 69_000.0):
        t += 20
        svc.feed(t, load)
    history = svc.policy.history
    assert len(history) == 5
    assert history[-1] is svc.policy.last_decision
    assert history[-1].target == svc.desired == math.ceil(69_000 / 700)


def test_replacing_params_keeps_the_history_and_the_samples() -> None:
    svc = Service(PLAIN, 2)
    svc.run(0, 80, 1000.0)
    svc.policy.replace_params(
        dataclasses.replace(PLAIN, target_per_instance=250.0, capacity_per_instance=400.0)
    )
    decision = svc.feed(80, 1000.0)
    assert decision.target == 4 and decision.reason == "up 2->4: 1,000 req/s over 6 s > 0.625 x 400 x 2"
    assert len(svc.policy.history) >= 2


# -- extras: forecast and burst memory -------------------------------------------------------------


def test_a_steady_ramp_is_sized_a_start_delay_ahead_but_a_step_is_not() -> None:
    def first_up(forecast_s: float) -> Decision:
        ramp = Service(dataclasses.replace(PLAIN, forecast_s=forecast_s), 2)
        for i in range(200):
            decision = ramp.feed(2 * i, 600.0 + 20.0 * i)  # rising 10 req/s every second
            if decision.changed:
                return decision
        raise AssertionError("no scale-up on the ramp")

    ahead, plain = first_up(45.0), first_up(0.0)
    # With the forecast: 1,100 req/s now (the 6-s mean) + 10 x 45 = 1,550 > 2 x 770, at t=52;
    # without it the same count is only asked for at 1,560 req/s, 46 s later.
    assert (ahead.at, ahead.target) == (52, 3)
    assert ahead.reason == "up 2->3: 1,100 req/s over 6 s, rising to 1,550 in 45 s > 0.7 x 1,000 x 2"
    assert (plain.at, plain.target) == (98, 3)
    step = Service(dataclasses.replace(PLAIN, forecast_s=45.0), 1)
    step.run(0, 60, 500.0)
    first = step.feed(60, 6000.0)
    assert "rising" not in first.reason
    step.run(62, 100, 6000.0)
    assert step.desired == 9


def test_a_burst_that_recurs_soon_after_a_scale_down_keeps_its_capacity() -> None:
    params = dataclasses.replace(PLAIN, burst_memory_s=600.0)
    svc = Service(params, 2)
    svc.run(0, 100, 800.0)
    svc.run(100, 160, 4800.0)  # burst 1
    assert svc.desired == 7
    svc.run(160, 300, 800.0)
    assert svc.desired == 2  # shed after the first burst
    svc.run(300, 360, 4800.0)  # burst 2, soon after the scale-down: a recurring burst
    assert svc.run(360, 800, 800.0) == []
    assert svc.desired == 7
    assert svc.decisions[-1].kind == "burst"
    assert svc.decisions[-1].reason.startswith("hold 7: burst memory holds 7 for 4,800 req/s until")
    svc.run(800, 1200, 800.0)  # no burst for longer than the memory: shed
    assert svc.desired == 2
    without = Service(PLAIN, 2)  # the same bursts without burst memory: shed after each
    without.run(0, 100, 800.0)
    without.run(100, 160, 4800.0)
    without.run(160, 300, 800.0)
    without.run(300, 360, 4800.0)
    without.run(360, 800, 800.0)
    assert without.desired == 2


# -- startd mode -----------------------------------------------------------------------------------

STARTD = PolicyParams(
    mode=Mode.STARTD, unit="idle jobs", target_per_instance=1.0, min_instances=0, max_instances=100
)


def test_startds_launch_an_attenuated_share_of_the_idle_jobs() -> None:
    svc = Service(STARTD, 0)
    decision = svc.feed(0, 30.0, running=0.0)
    assert decision.target == 10  # 30 missing / 3
    assert decision.reason == (
        "up 0->10: 30 idle jobs, 0 running need 30 at 1 per instance; launch 30 / 3 this cycle (cap 20)"
    )


def test_startd_launches_are_capped_per_cycle_and_at_least_one() -> None:
    svc = Service(STARTD, 0)
    assert svc.feed(0, 300.0, running=0.0).target == 20
    one = Service(STARTD, 5)
    assert one.feed(0, 1.0, running=5.0).target == 6  # int(1 / 3) = 0, but never less than 1


def test_no_new_startds_while_earlier_ones_are_staging_or_within_the_cycle() -> None:
    svc = Service(STARTD, 0)
    svc.feed(0, 30.0, running=0.0)
    staging = svc.feed(30, 30.0, running=0.0)
    assert staging.kind == "staging" and staging.reason == "hold 10: 10 still staging, no new launches"
    svc.make_ready()
    cycle = svc.feed(40, 20.0, running=10.0)
    assert cycle.kind == "cooldown" and cycle.reason == "hold 10: next launch cycle in 20 s"
    assert svc.feed(60, 20.0, running=10.0).target == 16  # 30 needed - 10 = 20 missing / 3 = 6


def test_startds_shrink_only_with_no_idle_jobs_to_what_running_jobs_need() -> None:
    svc = Service(STARTD, 10)
    assert svc.feed(0, 0.0, running=None).reason == "hold 10: running jobs unknown, not scaling down"
    held = [svc.feed(2 + 2 * i, 0.0, running=4.0) for i in range(STARTD.down_votes)]
    assert [d.kind for d in held[:-1]] == ["vote"] * (STARTD.down_votes - 1)
    assert held[-1].target == 5  # halving at most: 10 -> 5
    assert svc.feed(100, 2.0, running=4.0).target == 6  # idle jobs again: int(1 / 3) -> at least 1


# -- parameters and configuration ------------------------------------------------------------------


def test_invalid_params_are_refused_with_every_problem() -> None:
    with pytest.raises(ValueError) as info:
        PolicyParams(target_per_instance=0, min_instances=5, max_instances=2, down_votes=0, up_tolerance=1.5)
    message = str(info.value)
    for fragment in ("target_per_instance", "max_instances", "down_votes", "up_tolerance"):
        assert fragment in message


def test_capacity_defaults_to_target_over_the_default_utilisation() -> None:
    assert PolicyParams().capacity == pytest.approx(1000.0)
    assert PolicyParams(capacity_per_instance=1200.0).utilisation == pytest.approx(700 / 1200)


CONFIG = """
services:
  proxy:
    kind: squid
    container: {image: squid:6}
    resources: {cpus: 1, mem: 1GiB}
    autoscale:
      min: 3
      max: 12
      source: {type: squid}
      target_per_instance: 650
  workers:
    kind: startd
    container: {image: htcondor}
    resources: {cpus: 1, mem: 1GiB}
    autoscale:
      max: 40
      source: {type: htcondor}
      target_per_instance: 1
    startd: {condor_host: cm.example.org, pool_token_file: /etc/token}
  web:
    kind: generic
    container: {image: nginx}
    resources: {cpus: 1, mem: 1GiB}
"""


def test_the_configuration_maps_onto_the_policy() -> None:
    config = parse_config(CONFIG)
    proxy = policy_params(config.services["proxy"])
    assert proxy is not None
    assert (proxy.mode, proxy.unit, proxy.min_instances, proxy.max_instances) == (Mode.RATE, "req/s", 3, 12)
    assert proxy.target_per_instance == 650.0
    assert proxy.up_window_s == PolicyParams().up_window_s
    workers = policy_params(config.services["workers"])
    assert workers is not None
    assert (workers.mode, workers.unit, workers.min_instances) == (Mode.STARTD, "idle jobs", 0)
    assert workers.interval_s == STARTD_DEFAULTS["interval_s"]
    assert policy_params(config.services["web"]) is None
