"""Scores of a run, exactly as ``autoscaling.md`` section 7.3 defines them.

With ``offered(t)`` the requests offered in second t, ``ready(t)`` the ready instances, ``mu``
the capacity per instance, ``lambda(t)`` the demand (the trace's rate; the offered counts when
only those are known) and ``desired(t)`` the instances existing in second t (ready or starting):

* ``overload_seconds``: seconds with ``offered(t) > ready(t) x mu``;
* ``lost_percent``: ``100 x sum(max(0, offered - ready x mu)) / sum(offered)``;
* ``instance_seconds``: ``sum(desired)`` (starting instances cost too);
* ``oracle_instance_seconds``: ``sum(max(1, ceil(lambda / mu)))``;
* ``cost_ratio``: instance-seconds over the oracle's;
* ``scale_actions``: how many times the desired count changed;
* ``flaps``: direction changes in the sequence of scale actions;
* ``time_to_capacity_seconds``: per high-demand segment ``[s, e)``, the first ``t_a >= s`` from
  which ``ready x mu >= lambda`` holds for 30 consecutive seconds inside the segment (the whole
  segment if it is shorter), minus ``s``; None ("never") if that does not happen before ``e``.

Segments come from the trace when it knows them; :func:`find_segments` finds them in a bare
``t,requests`` file.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = [
    "ADEQUATE_RUN_S",
    "Scores",
    "cost_ratio",
    "find_segments",
    "flaps",
    "instance_seconds",
    "lost_percent",
    "oracle_instance_seconds",
    "overload_seconds",
    "scale_actions",
    "score",
    "time_to_capacity_seconds",
]

ADEQUATE_RUN_S = 30
"""Capacity is adequate once it has covered the demand this many consecutive seconds."""


def overload_seconds(offered: Sequence[float], ready: Sequence[int], capacity: float) -> int:
    return sum(1 for o, r in zip(offered, ready, strict=True) if o > r * capacity)


def lost_percent(offered: Sequence[float], ready: Sequence[int], capacity: float) -> float:
    total = sum(offered)
    if total <= 0:
        return 0.0
    lost = sum(max(0.0, o - r * capacity) for o, r in zip(offered, ready, strict=True))
    return 100.0 * lost / total


def instance_seconds(desired: Sequence[int]) -> int:
    return sum(desired)


def oracle_instance_seconds(demand: Sequence[float], capacity: float) -> int:
    return sum(max(1, math.ceil(d / capacity - 1e-9)) for d in demand)


def cost_ratio(desired: Sequence[int], demand: Sequence[float], capacity: float) -> float:
    return instance_seconds(desired) / oracle_instance_seconds(demand, capacity)


def _actions(desired: Sequence[int], initial: int) -> list[int]:
    """The signed size of each change of the desired count, in order."""
    moves = []
    previous = initial
    for count in desired:
        if count != previous:
            moves.append(count - previous)
            previous = count
    return moves


def scale_actions(desired: Sequence[int], initial: int) -> int:
    return len(_actions(desired, initial))


def flaps(desired: Sequence[int], initial: int) -> int:
    moves = _actions(desired, initial)
    return sum(1 for a, b in itertools.pairwise(moves) if (a > 0) != (b > 0))


def time_to_capacity_seconds(
    ready: Sequence[int],
    demand: Sequence[float],
    capacity: float,
    segments: Sequence[tuple[int, int]],
    run_s: int = ADEQUATE_RUN_S,
) -> list[int | None]:
    results: list[int | None] = []
    for start, segment_end in segments:
        end = min(segment_end, len(demand))
        required = min(run_s, end - start)
        found: int | None = None
        streak_start: int | None = None
        for t in range(start, end):
            if ready[t] * capacity >= demand[t]:
                if streak_start is None:
                    streak_start = t
                if t - streak_start + 1 >= required:
                    found = streak_start - start
                    break
            else:
                streak_start = None
        results.append(found)
    return results


def find_segments(
    demand: Sequence[float], capacity: float, *, window_s: int = 10, lookback_s: int = 60, rise: int = 2
) -> list[tuple[int, int]]:
    """High-demand segments of a bare trace: rises of ``rise`` oracle instances within a minute.

    ``need(t) = max(1, ceil(mean(demand over the last window_s) / capacity))``. A segment starts
    where ``need`` first exceeds its minimum over the previous ``lookback_s`` by ``rise`` or more
    (back-dated to the first of the contiguous seconds whose demand is above that minimum's
    capacity, at most ``window_s`` back) and ends where ``need`` is back at that minimum (likewise
    back-dated to where the demand itself fell back), or at the end of the trace. Segments do not
    overlap.
    """
    n = len(demand)
    if n == 0:
        return []
    prefix = [0.0]
    for d in demand:
        prefix.append(prefix[-1] + d)
    need = []
    for t in range(n):
        lo = max(0, t - window_s + 1)
        mean = (prefix[t + 1] - prefix[lo]) / (t + 1 - lo)
        need.append(max(1, math.ceil(mean / capacity - 1e-9)))
    segments: list[tuple[int, int]] = []
    t = 1
    while t < n:
        lo = max(0, t - lookback_s)
        base = min(need[lo:t])
        if need[t] - base >= rise:
            # The mean lags the demand: back-date the start over the contiguous seconds above the
            # base level, at most one window back.
            start = t
            while start > max(lo, t - window_s) and demand[start - 1] > base * capacity:
                start -= 1
            end = t + 1
            while end < n and need[end] > base:
                end += 1
            resume = end + 1
            # Same lag at the end: stop where the demand itself fell back to the base level.
            while end - 1 > start and end - 1 > t and demand[end - 1] <= base * capacity:
                end -= 1
            segments.append((start, end))
            t = resume
        else:
            t += 1
    return segments


@dataclass(frozen=True, slots=True)
class Scores:
    """Every score of one run (``summary.json``'s keys, plus the segments TTAC was measured on)."""

    overload_seconds: int
    lost_percent: float
    instance_seconds: int
    oracle_instance_seconds: int
    cost_ratio: float
    scale_actions: int
    flaps: int
    time_to_capacity_seconds: tuple[int | None, ...]
    segments: tuple[tuple[int, int], ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "overload_seconds": self.overload_seconds,
            "lost_percent": round(self.lost_percent, 4),
            "instance_seconds": self.instance_seconds,
            "oracle_instance_seconds": self.oracle_instance_seconds,
            "cost_ratio": round(self.cost_ratio, 4),
            "scale_actions": self.scale_actions,
            "flaps": self.flaps,
            "time_to_capacity_seconds": list(self.time_to_capacity_seconds),
            "segments": [list(s) for s in self.segments],
        }


def score(
    *,
    offered: Sequence[float],
    ready: Sequence[int],
    desired: Sequence[int],
    initial: int,
    capacity: float,
    demand: Sequence[float] | None = None,
    segments: Sequence[tuple[int, int]] | None = None,
) -> Scores:
    """All scores of one run; ``demand`` defaults to ``offered``, ``segments`` to :func:`find_segments`."""
    lam = offered if demand is None else demand
    segs = find_segments(lam, capacity) if segments is None else list(segments)
    oracle = oracle_instance_seconds(lam, capacity)
    used = instance_seconds(desired)
    return Scores(
        overload_seconds=overload_seconds(offered, ready, capacity),
        lost_percent=lost_percent(offered, ready, capacity),
        instance_seconds=used,
        oracle_instance_seconds=oracle,
        cost_ratio=used / oracle,
        scale_actions=scale_actions(desired, initial),
        flaps=flaps(desired, initial),
        time_to_capacity_seconds=tuple(time_to_capacity_seconds(ready, lam, capacity, segs)),
        segments=tuple((int(s), int(e)) for s, e in segs),
    )
