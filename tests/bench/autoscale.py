"""Autoscaling: Steward's default policy against HPA, KPA and marathon-lb-autoscale on six traces.

Every trace of :mod:`framework.sim.traces` (step, diurnal, sawtooth, noisy plateau, flash crowd,
short bursts) is run for Steward's recommended policy and the three baselines, with the policy
seeing the ``offered`` load and, again, only what ready instances ``served`` (a squid's own
counter). Capacity 1,000 req/s per instance, start delay 45 s, every policy at 700 req/s per
instance, bounds 1..20, Poisson seeds 0-4 (fewer with ``--scale`` below 1), scores averaged
(``autoscaling.md`` section 7). It prints the scores side by side and whether each of the issue's
targets is met:

* step and flash crowd: adequate capacity within start delay + 15 s, at most 1 flap, cost at most
  1.45 times the oracle's instance-seconds;
* noisy plateau: at most 2 flaps per hour, overload no worse than HPA's;
* ``served``: no stall (capacity reached on step and flash crowd) and overload at most twice the
  ``offered`` run's;
* overall (``offered``, summed over the traces): fewer overload-seconds than HPA, fewer flaps than
  KPA, instance-seconds no higher than HPA's.

Nothing here asserts: a target missed is printed as such, with its numbers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from framework.core.autoscale import PolicyParams
from framework.sim.model import Observe, SimSettings
from framework.sim.runner import run_policies
from framework.sim.scoring import Scores
from framework.sim.traces import make_trace, trace_names
from tests.bench.registry import Figure, Options, register

__all__ = ["Aggregate", "Target", "autoscale", "check_targets", "evaluate", "format_results"]

POLICIES = ("steward", "hpa", "kpa", "marathon-lb-autoscale")
START_DELAY_S = 45
TTAC_LIMIT_S = START_DELAY_S + 15
NEVER = math.inf


@dataclass(frozen=True)
class Aggregate:
    """One policy on one trace and observation, over the seeds."""

    overload_seconds: float
    lost_percent: float
    instance_seconds: float
    cost_ratio: float
    scale_actions: float
    flaps: float
    flaps_max: int
    hours: float
    ttac_worst: float  # over seeds and segments; inf = never; nan = no segments

    @property
    def flaps_per_hour(self) -> float:
        return self.flaps / self.hours


def _aggregate(runs: Sequence[Scores], seconds: int) -> Aggregate:
    n = len(runs)
    ttacs = [NEVER if v is None else float(v) for s in runs for v in s.time_to_capacity_seconds]
    return Aggregate(
        overload_seconds=sum(s.overload_seconds for s in runs) / n,
        lost_percent=sum(s.lost_percent for s in runs) / n,
        instance_seconds=sum(s.instance_seconds for s in runs) / n,
        cost_ratio=sum(s.cost_ratio for s in runs) / n,
        scale_actions=sum(s.scale_actions for s in runs) / n,
        flaps=sum(s.flaps for s in runs) / n,
        flaps_max=max(s.flaps for s in runs),
        hours=seconds / 3600,
        ttac_worst=max(ttacs) if ttacs else math.nan,
    )


Results = dict[tuple[Observe, str, str], Aggregate]


def evaluate(seeds: Sequence[int], params: PolicyParams | None = None) -> Results:
    """Every (observe, trace, policy) aggregated over ``seeds``."""
    policy = params or PolicyParams()
    results: Results = {}
    for observe in ("offered", "served"):
        settings = SimSettings(capacity=1000.0, start_delay_s=START_DELAY_S, observe=observe)
        for name in trace_names():
            trace = make_trace(name)
            per_policy: dict[str, list[Scores]] = {p: [] for p in POLICIES}
            for seed in seeds:
                runs = run_policies(
                    trace.offered(seed),
                    policy,
                    settings,
                    demand=trace.rate,
                    segments=trace.segments,
                    baselines=True,
                )
                for run in runs:
                    per_policy[run.name].append(run.scores)
            for policy_name, scores in per_policy.items():
                results[(observe, name, policy_name)] = _aggregate(scores, len(trace))
    return results


@dataclass(frozen=True)
class Target:
    """One of the issue's targets: what, the numbers that decide it, and whether it is met."""

    name: str
    detail: str
    met: bool


def _ttac(value: float) -> str:
    if math.isnan(value):
        return "-"
    return "never" if math.isinf(value) else f"{value:.0f}"


def _worst(value: float) -> str:
    return f"worst {_ttac(value)}" + ("" if math.isinf(value) else " s")


def check_targets(results: Results) -> list[Target]:
    r = results
    targets = []
    for name in ("step", "flash"):
        s = r[("offered", name, "steward")]
        targets.append(
            Target(
                f"{name}: capacity within {TTAC_LIMIT_S} s",
                _worst(s.ttac_worst),
                s.ttac_worst <= TTAC_LIMIT_S,
            )
        )
        targets.append(
            Target(f"{name}: at most 1 flap", f"max {s.flaps_max} over the seeds", s.flaps_max <= 1)
        )
        targets.append(Target(f"{name}: cost at most 1.45", f"{s.cost_ratio:.3f}", s.cost_ratio <= 1.45))
    plateau, plateau_hpa = r[("offered", "plateau", "steward")], r[("offered", "plateau", "hpa")]
    targets.append(
        Target("plateau: at most 2 flaps/hour", f"{plateau.flaps_per_hour:.2f}", plateau.flaps_per_hour <= 2)
    )
    targets.append(
        Target(
            "plateau: overload no worse than HPA's",
            f"{plateau.overload_seconds:.1f} s vs {plateau_hpa.overload_seconds:.1f} s",
            plateau.overload_seconds <= plateau_hpa.overload_seconds,
        )
    )
    for name in ("step", "flash"):
        served, offered = r[("served", name, "steward")], r[("offered", name, "steward")]
        targets.append(
            Target(
                f"served {name}: no stall",
                _worst(served.ttac_worst),
                math.isfinite(served.ttac_worst),
            )
        )
        targets.append(
            Target(
                f"served {name}: overload at most 2x offered",
                f"{served.overload_seconds:.1f} s vs 2 x {offered.overload_seconds:.1f} s",
                served.overload_seconds <= 2 * offered.overload_seconds,
            )
        )

    def total(policy: str, field: str) -> float:
        return sum(getattr(a, field) for (o, _, p), a in r.items() if o == "offered" and p == policy)

    ov, ov_hpa = total("steward", "overload_seconds"), total("hpa", "overload_seconds")
    fl, fl_kpa = total("steward", "flaps"), total("kpa", "flaps")
    cost, cost_hpa = total("steward", "instance_seconds"), total("hpa", "instance_seconds")
    targets.append(Target("overall: overload below HPA's", f"{ov:,.1f} s vs {ov_hpa:,.1f} s", ov < ov_hpa))
    targets.append(Target("overall: flaps below KPA's", f"{fl:.1f} vs {fl_kpa:.1f}", fl < fl_kpa))
    targets.append(
        Target(
            "overall: cost no higher than HPA's",
            f"{cost:,.0f} vs {cost_hpa:,.0f} instance-s",
            cost <= cost_hpa,
        )
    )
    return targets


def format_results(results: Results) -> str:
    header = (
        f"  {'observe':<8} {'trace':<9} {'policy':<22} {'overload s':>10} {'lost %':>7} {'cost':>6}"
        f" {'actions':>8} {'flaps':>6} {'flaps/h':>8} {'TTAC worst':>10}"
    )
    lines = [header, "  " + "-" * (len(header) - 2)]
    for (observe, name, policy), a in results.items():
        lines.append(
            f"  {observe:<8} {name:<9} {policy:<22} {a.overload_seconds:>10.1f} {a.lost_percent:>7.2f}"
            f" {a.cost_ratio:>6.2f} {a.scale_actions:>8.1f} {a.flaps:>6.1f} {a.flaps_per_hour:>8.2f}"
            f" {_ttac(a.ttac_worst):>10}"
        )
    return "\n".join(lines)


@register("autoscale", "Steward's policy vs HPA, KPA, marathon-lb-autoscale on six load traces")
def autoscale(options: Options) -> list[Figure]:
    seeds = range(max(1, min(5, round(5 * options.scale))))
    results = evaluate(seeds)
    print(f"  seeds {list(seeds)}, capacity 1,000 req/s, start delay {START_DELAY_S} s, target 700 req/s")
    print(format_results(results))
    targets = check_targets(results)
    print()
    for target in targets:
        print(f"  [{'met' if target.met else 'MISSED'}] {target.name}: {target.detail}")
    figures = [Figure("targets met", sum(t.met for t in targets), f"of {len(targets)}")]
    for policy in POLICIES:
        overload = sum(
            a.overload_seconds for (o, _, p), a in results.items() if o == "offered" and p == policy
        )
        figures.append(Figure(f"overload (offered), {policy}", overload, "s"))
    for policy in POLICIES:
        flaps = sum(a.flaps for (o, _, p), a in results.items() if o == "offered" and p == policy)
        figures.append(Figure(f"flaps (offered), {policy}", flaps, "flaps"))
    return figures
