"""The 1-second simulation model of ``autoscaling.md`` section 7.1, and Steward's policy in it.

A run steps through a load trace one second at a time:

1. the second's offered requests arrive; ``ready`` instances (those whose ``ready_at`` has come)
   serve up to ``capacity`` each, so ``served = min(offered, ready x capacity)``;
2. the controller sees ``offered`` (the front door's view) or ``served`` (a squid's own
   counter, which saturates at capacity) and may return a new desired count;
3. a scale-up creates instances ready ``start_delay_s`` later; a scale-down removes the youngest
   not-yet-ready instances first, then ready ones, at once (squid mode);
4. the row ``t, offered, observed, desired, ready`` is recorded (``desired`` after the decision,
   so starting instances are paid for from the second they are launched).

Controllers are called every second and keep their own schedule (Steward every ``interval_s``,
HPA every 15 s, ...), so each one sees the data at its own native lag. :class:`StewardController`
feeds the production :class:`~framework.core.autoscale.Autoscaler` unchanged: the simulator runs
the same code as the runtime, on a simulated clock.
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol

from framework.core.autoscale import Autoscaler, Counts, Decision, PolicyParams, Sample

__all__ = [
    "Controller",
    "Observe",
    "SimSettings",
    "StewardController",
    "Timeline",
    "initial_instances_for",
    "simulate",
]

Observe = Literal["offered", "served"]


@dataclass(frozen=True, slots=True)
class SimSettings:
    """The simulated world: per-instance capacity, start delay, what the policy sees, bounds."""

    capacity: float = 1000.0
    start_delay_s: int = 45
    observe: Observe = "offered"
    min_instances: int = 1
    max_instances: int = 20

    def __post_init__(self) -> None:
        if not self.capacity > 0:
            raise ValueError(f"capacity must be > 0, got {self.capacity!r}")
        if self.start_delay_s < 0:
            raise ValueError(f"start delay must be >= 0, got {self.start_delay_s!r}")
        if self.observe not in ("offered", "served"):
            raise ValueError(f"observe must be 'offered' or 'served', got {self.observe!r}")


class Controller(Protocol):
    """An autoscaler under test: called once per simulated second, in order."""

    name: str

    def step(self, t: int, observed: float, counts: Counts) -> int | None:
        """See second ``t``'s observed load; return a new desired count, or None for no change."""


@dataclass(slots=True)
class Timeline:
    """One run, one row per second, plus the controller's decisions (Steward only)."""

    name: str
    offered: list[int]
    observed: list[float]
    desired: list[int]
    ready: list[int]
    initial: int
    capacity: float
    decisions: list[Decision] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.offered)


def initial_instances_for(offered: Sequence[float], settings: SimSettings, target: float) -> int:
    """The count a service would sensibly start with: the first minute's mean load at target."""
    head = offered[:60]
    mean = sum(head) / len(head) if head else 0.0
    return max(settings.min_instances, min(settings.max_instances, math.ceil(mean / target - 1e-9)))


def simulate(
    controller: Controller, offered: Sequence[int], settings: SimSettings, *, initial: int
) -> Timeline:
    """Run ``controller`` over ``offered`` (requests per second) from ``initial`` ready instances."""
    capacity = settings.capacity
    ready_at: list[int] = [0] * initial  # sorted; index order = age (youngest last)
    offered_out: list[int] = []
    observed_out: list[float] = []
    desired_out: list[int] = []
    ready_out: list[int] = []
    for t, requests in enumerate(offered):
        ready = bisect.bisect_right(ready_at, t)
        served = min(float(requests), ready * capacity)
        observed = float(requests) if settings.observe == "offered" else served
        counts = Counts(desired=len(ready_at), launching=len(ready_at) - ready, ready=ready)
        wanted = controller.step(t, observed, counts)
        if wanted is not None:
            wanted = max(0, wanted)
            if wanted > len(ready_at):
                ready_at.extend([t + settings.start_delay_s] * (wanted - len(ready_at)))
            elif wanted < len(ready_at):
                # Youngest first: not-yet-ready instances have the latest ready_at, at the end.
                del ready_at[wanted:]
        offered_out.append(int(requests))
        observed_out.append(observed)
        desired_out.append(len(ready_at))
        ready_out.append(ready)
    decisions = list(getattr(controller, "decisions", []))
    return Timeline(
        controller.name, offered_out, observed_out, desired_out, ready_out, initial, capacity, decisions
    )


class StewardController:
    """Steward's production policy on the simulated clock.

    Every ``interval_s`` seconds it hands the policy one :class:`Sample`: the mean observed rate
    over the interval (what a counter-delta source reports), measured at the end of the interval.
    With ``observe = served`` the sum comes from the ready instances' own counters, so
    ``instances_reporting`` is the ready count; with ``offered`` it is a front-door total.
    """

    name = "steward"

    def __init__(self, params: PolicyParams, *, initial: int, observe: Observe = "offered") -> None:
        self.autoscaler = Autoscaler(params, initial_instances=initial)
        self.interval = max(1, round(params.interval_s))
        self.observe = observe
        self.decisions: list[Decision] = []
        self._total = 0.0
        self._seconds = 0

    def step(self, t: int, observed: float, counts: Counts) -> int | None:
        self._total += observed
        self._seconds += 1
        if (t + 1) % self.interval:
            return None
        value = self._total / self._seconds
        self._total, self._seconds = 0.0, 0
        reporting = counts.ready if self.observe == "served" else None
        sample = Sample(value, float(t), instances_reporting=reporting)
        decision = self.autoscaler.decide(sample, counts, float(t))
        if decision.changed:
            self.decisions.append(decision)
        if not decision.applied or not decision.changed:
            return None
        return decision.target
