"""The autoscale policy: load samples and instance counts in, a target count with a reason out.

Pure and clock-injected: every call takes ``now`` (monotonic seconds), nothing here reads a clock,
touches the network or logs. The runtime loop and ``steward simulate`` call the very same
:meth:`Autoscaler.decide`, so what an operator tunes on a trace is what runs in production.

Why it looks the way it does (the evidence is in ``shared/reference/autoscaling.md``):

* **Two time-scales** (Knative's lesson). The *up path* sizes from a short window
  (``up_window_s``, seconds) so a step is answered within a start delay plus a few seconds; the
  *down path* sizes from a longer window (``down_window_s``) and only acts after ``down_votes``
  consecutive votes, outside a cooldown after any scale-up.
* **Hysteresis in instance counts, not only in ratios** (what KPA lacks, and why it flaps ~40
  times an hour on a plateau at an instance boundary). Up needs the short-window load above
  ``current x target x (1 + up_tolerance)``; down needs the load to fit ``current - 1`` instances
  at ``target x (1 - down_tolerance)``. A plateau at the boundary settles on one side and stays.
  The full ``down_tolerance`` applies to a scale-down that would reverse a scale-up (a flap); a
  decline that continues uses the smaller ``down_tolerance_continuing``, so a decaying load is
  followed closely (cost) without adding direction changes.
* **Step limits per period** in both directions (HPA's ``periodStart`` accounting), generous
  upwards (HPA's +100 %/+4 per 15 s is the usual complaint: kubernetes#76880), halving at most
  downwards (KPA's max-scale-down-rate 2).
* **Start-delay compensation.** The target is sized from the measured *load*, not from a
  utilisation ratio over ready instances, so instances still starting are already counted as
  capacity-to-come and the policy does not run away while they start (and does not wait for them
  either). While the load rises steadily (both halves of ``forecast_window_s`` rising alike, so
  not a step) it is sized ``forecast_s`` ahead, the time a new instance takes to be ready.
* **Saturation awareness.** A squid's own counter saturates at its capacity: the served rate is
  then a floor of the demand, not the demand. When the per-instance load of the instances'
  counters sits at capacity (within ``saturation_fraction``), or the source says so, the policy
  steps up by the up step limit instead of sizing from a number it knows is too low, and never
  stalls there (marathon-lb-autoscale's dead zone). It waits for the instances of an earlier
  saturation step, or for launches that would at least double the ready count, before stepping
  again. A front-door total is the demand itself and is sized, not stepped.
* **Missing data holds** (HPA's rule after kubernetes#65665): no sample, or one older than
  ``stale_after_s``, never scales down; the down path needs a full long window of fresh data.
* **Burst memory** (the lever for recurring bursts): when a burst comes back within
  ``burst_memory_s`` of a scale-down, the capacity of the burst is held for ``burst_memory_s``
  after the last burst, instead of being shed and re-bought a start delay too late every time.
* **Startds** size from idle jobs the GlideinWMS way: launch ``missing / startd_attenuation``
  per cycle (at least one, at most ``startd_launch_cap``), nothing new while earlier launches are
  still staging; down only when no job is idle, to the startds the running jobs need.

Operators can pin a count, pause the policy, or run it dry (decide and record, do not apply).
Every decision carries a human reason ("up 3->9: 6,120 req/s over 6 s > 0.7 x 1,000 x 3") and
the interesting ones are kept in a bounded history for the API and the logs.

The defaults were tuned with ``python -m tests.bench autoscale`` (six traces, offered and served
observation, against HPA, KPA and marathon-lb-autoscale); that benchmark prints the issue's
targets and whether each is met.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from dataclasses import dataclass, fields
from typing import Final

__all__ = [
    "Autoscaler",
    "Counts",
    "Decision",
    "Direction",
    "Mode",
    "PolicyParams",
    "Sample",
    "format_number",
]

DEFAULT_UTILISATION: Final = 0.7
"""Target over capacity when the capacity is not given: Knative's default target utilisation."""

_EPSILON: Final = 1e-9


class Direction(enum.StrEnum):
    """Which way a decision moves the target."""

    UP = "up"
    DOWN = "down"
    HOLD = "hold"


class Mode(enum.StrEnum):
    """What the load means: a rate per instance (squid, HTTP), or HTCondor idle-job pressure."""

    RATE = "rate"
    STARTD = "startd"


@dataclass(frozen=True, slots=True, kw_only=True)
class PolicyParams:
    """One service's autoscale policy; the defaults are the recommended policy for squids.

    Units are in the names (``_s`` seconds, ``_percent`` percent of the current count). Invalid
    combinations raise :class:`ValueError` listing every problem.
    """

    mode: Mode = Mode.RATE
    """``rate``: the load is a rate sized by ``target_per_instance``; ``startd``: idle jobs."""
    unit: str = "req/s"
    """The load's unit, only used in reasons."""
    target_per_instance: float = 700.0
    """Load one instance should carry (for squids good for ~1,000 req/s: 700, i.e. 0.7 x 1,000)."""
    capacity_per_instance: float | None = None
    """Load at which one instance saturates (the latency knee); None: target / 0.7."""
    min_instances: int = 1
    """Floor, also applied when data is missing."""
    max_instances: int = 20
    """Ceiling."""
    interval_s: float = 2.0
    """How often the runtime (and the simulator) evaluates the policy."""
    start_delay_s: float = 45.0
    """Expected time from launch to ready; the saturation step waits up to twice this for them."""

    up_window_s: float = 6.0
    """The up path sizes from the mean load over this short window."""
    up_tolerance: float = 0.1
    """Up only when the short-window load exceeds current x target by more than this fraction."""
    up_step_instances: int = 8
    """Up step limit: at most this many instances more per ``up_period_s`` ..."""
    up_step_percent: float = 200.0
    """... or this percentage more, whichever allows more."""
    up_period_s: float = 15.0
    """The period of the up step limit."""
    forecast_s: float = 45.0
    """Start-delay compensation: while the load rises, size for it this far ahead (0: off)."""
    forecast_window_s: float = 30.0
    """The rise is measured over this window, as the smaller slope of its two halves."""
    up_cooldown_s: float = 0.0
    """No scale-up sooner than this after any scale action (0: the step limit is enough)."""

    down_window_s: float = 60.0
    """The down path sizes from the mean load over this long window (and never below the short one)."""
    down_tolerance: float = 0.1
    """Count hysteresis for a scale-down that reverses a scale-up (a flap): down only to a count
    that carries the load at target x (1 - this)."""
    down_tolerance_continuing: float = 0.03
    """The same for a scale-down that continues a decline (cheaper to get wrong, and no flap)."""
    down_votes: int = 5
    """Consecutive evaluations that must agree before a scale-down."""
    down_step_instances: int = 1
    """Down step limit: at most this many instances fewer per ``down_period_s`` ..."""
    down_step_percent: float = 50.0
    """... or this percentage fewer, whichever allows more."""
    down_period_s: float = 30.0
    """The period of the down step limit."""
    down_cooldown_s: float = 60.0
    """No scale-down sooner than this after a scale-up."""

    burst_ratio: float = 1.5
    """A burst: the short-window load at least this many times the long-window load ..."""
    burst_memory_s: float = 600.0
    """... that recurs within this long after a scale-down holds its capacity this long (0: off)."""

    saturation_fraction: float = 0.95
    """Per-instance load at or above this fraction of capacity means saturated (demand unknown)."""
    stale_after_s: float = 30.0
    """A sample older than this counts as missing."""

    startd_attenuation: float = 3.0
    """Startd mode: launch missing / this per cycle (GlideinWMS ramp_up_attenuation)."""
    startd_launch_cap: int = 20
    """Startd mode: at most this many launches per cycle."""
    startd_cycle_s: float = 60.0
    """Startd mode: at most one launch batch per this period (GlideinWMS loop_delay)."""

    dry_run: bool = False
    """Decide and record, but mark decisions as not applied."""
    history_size: int = 200
    """How many recorded decisions are kept."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        positive = (
            "target_per_instance",
            "interval_s",
            "up_window_s",
            "up_period_s",
            "down_window_s",
            "forecast_window_s",
            "down_period_s",
            "stale_after_s",
            "startd_attenuation",
            "startd_cycle_s",
        )
        for name in positive:
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be > 0, got {getattr(self, name)!r}")
        non_negative = ("start_delay_s", "forecast_s", "up_cooldown_s", "down_cooldown_s", "burst_memory_s")
        for name in non_negative:
            if not getattr(self, name) >= 0:
                problems.append(f"{name} must be >= 0, got {getattr(self, name)!r}")
        capacity = self.capacity_per_instance
        if capacity is not None and not capacity >= self.target_per_instance:
            problems.append(
                f"capacity_per_instance ({self.capacity_per_instance!r}) must be >= target_per_instance "
                f"({self.target_per_instance!r})"
            )
        if self.min_instances < 0:
            problems.append(f"min_instances must be >= 0, got {self.min_instances}")
        if self.max_instances < max(1, self.min_instances):
            problems.append(f"max_instances must be >= max(1, min_instances), got {self.max_instances}")
        for name in ("up_tolerance", "down_tolerance", "down_tolerance_continuing"):
            if not 0 <= getattr(self, name) < 1:
                problems.append(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if self.up_step_instances < 1 or self.down_step_instances < 1:
            problems.append("up_step_instances and down_step_instances must be >= 1")
        if self.up_step_percent < 0 or not 0 <= self.down_step_percent <= 100:
            problems.append("up_step_percent must be >= 0 and down_step_percent in [0, 100]")
        if self.down_votes < 1:
            problems.append(f"down_votes must be >= 1, got {self.down_votes}")
        if not self.burst_ratio > 1:
            problems.append(f"burst_ratio must be > 1, got {self.burst_ratio!r}")
        if not 0 < self.saturation_fraction <= 1:
            problems.append(f"saturation_fraction must be in (0, 1], got {self.saturation_fraction!r}")
        if self.startd_launch_cap < 1:
            problems.append(f"startd_launch_cap must be >= 1, got {self.startd_launch_cap}")
        if self.history_size < 1:
            problems.append(f"history_size must be >= 1, got {self.history_size}")
        if problems:
            raise ValueError("invalid autoscale policy: " + "; ".join(problems))

    @property
    def capacity(self) -> float:
        """The saturation point per instance: ``capacity_per_instance`` or target / 0.7."""
        if self.capacity_per_instance is not None:
            return self.capacity_per_instance
        return self.target_per_instance / DEFAULT_UTILISATION

    @property
    def utilisation(self) -> float:
        """Target over capacity (0.7 by default)."""
        return self.target_per_instance / self.capacity

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        """Every parameter's name, for mapping configuration onto the policy."""
        return tuple(f.name for f in fields(cls))


@dataclass(frozen=True, slots=True)
class Sample:
    """One measurement of a service's load, or the reason there is none.

    ``value`` is the total load (a rate summed over the instances that reported, or a front-door
    total); None with ``reason_missing`` when the source failed. ``observed_at`` is when it was
    measured, on the same clock as ``now``. ``instances_reporting`` is how many instances the sum
    covers (None: a service-wide total). ``saturated`` is the source's own verdict (latency,
    file descriptors...); None lets the policy infer it from the per-instance load. ``running`` is
    the busy load in startd mode (running jobs), ``value`` being the idle jobs. ``busy`` names the
    instances (task IDs) that have work, e.g. startds running a job (None: not known); a scale-down
    removes the others first.
    """

    value: float | None
    observed_at: float
    instances_reporting: int | None = None
    saturated: bool | None = None
    reason_missing: str | None = None
    running: float | None = None
    busy: frozenset[str] | None = None

    @classmethod
    def missing(cls, reason: str, observed_at: float) -> Sample:
        """No measurement: the source failed, timed out or returned garbage."""
        return cls(None, observed_at, reason_missing=reason)


@dataclass(frozen=True, slots=True)
class Counts:
    """The service's instances: ``desired`` (the current target), of which ``launching`` are
    launched but not yet ready (staging, starting) and ``ready`` are serving."""

    desired: int
    launching: int = 0
    ready: int = 0


@dataclass(frozen=True, slots=True)
class Decision:
    """What the policy decided at ``at``: move from ``previous`` to ``target`` (or hold), and why.

    ``kind`` is a machine-readable tag of the rule that decided (``load``, ``saturation``,
    ``bounds``, ``pin``, ``paused``, ``missing``, ``stale``, ``vote``, ``cooldown``, ``limit``,
    ``staging``, ``steady``, ``warmup``, ``idle_jobs``); ``applied`` is False in dry-run mode.
    """

    target: int
    previous: int
    direction: Direction
    reason: str
    at: float
    kind: str
    applied: bool = True

    @property
    def changed(self) -> bool:
        """Whether the target differs from the previous count."""
        return self.target != self.previous


def format_number(value: float) -> str:
    """Format for reasons: thousands separators, no spurious decimals ("6,120", "0.7", "2.5")."""
    if abs(value) >= 100 or float(value).is_integer():
        return f"{round(value):,}"
    return f"{value:.3g}"


def _slope(points: list[tuple[float, float]]) -> float:
    """Least-squares slope of (time, value) points; 0 with fewer than three."""
    if len(points) < 3:
        return 0.0
    mean_t = sum(t for t, _ in points) / len(points)
    mean_v = sum(v for _, v in points) / len(points)
    var = sum((t - mean_t) ** 2 for t, _ in points)
    if var <= 0:
        return 0.0
    return sum((t - mean_t) * (v - mean_v) for t, v in points) / var


def _seconds(value: float) -> str:
    return f"{value:g} s"


@dataclass(slots=True)
class _Point:
    """One accepted sample: its time, the load for the up path and the load for the down path."""

    at: float
    up_load: float
    down_load: float


class Autoscaler:
    """One service's policy with its bounded memory; call :meth:`decide` every ``interval_s``.

    State: recent samples (enough for the longest window), recent scale actions (for the step
    limits), the down-vote count, the burst hold, the operator's pin/pause and the history of
    decisions. ``initial_instances`` is the count the service starts with; in dry-run mode the
    policy carries its own proposed target forward from it instead of the applied count.
    """

    def __init__(self, params: PolicyParams, *, initial_instances: int | None = None) -> None:
        self._params = params
        self._points: deque[_Point] = deque()
        self._first_sample_at: float | None = None
        self._last_missing_at: float | None = None
        self._actions: deque[tuple[float, int]] = deque()
        self._last_up_at = -math.inf
        self._last_down_at = -math.inf
        self._last_action_at = -math.inf
        self._last_direction: Direction | None = None
        self._last_saturation_step_at = -math.inf
        self._votes = 0
        self._hold_until = -math.inf
        self._hold_peak = 0.0
        self._pinned: int | None = None
        self._paused = False
        self._shadow: int | None = initial_instances
        self._history: deque[Decision] = deque(maxlen=params.history_size)
        self._last: Decision | None = None

    # -- operator controls -------------------------------------------------------------------

    @property
    def params(self) -> PolicyParams:
        return self._params

    def replace_params(self, params: PolicyParams) -> None:
        """Apply a reloaded policy; the measured history and the operator's controls are kept."""
        self._params = params
        self._history = deque(self._history, maxlen=params.history_size)

    def pin(self, count: int) -> None:
        """Hold the service at exactly ``count`` (the operator's override, even outside min/max)."""
        if count < 0:
            raise ValueError(f"cannot pin to a negative count ({count})")
        self._pinned = count

    def unpin(self) -> None:
        self._pinned = None

    @property
    def pinned(self) -> int | None:
        return self._pinned

    def pause(self) -> None:
        """Stop changing the count (samples are still taken in, so resuming starts warm)."""
        self._paused = True

    def resume(self) -> None:
        self._paused = False

    @property
    def paused(self) -> bool:
        return self._paused

    @property
    def history(self) -> tuple[Decision, ...]:
        """Recorded decisions, oldest first: every change, and the first of each run of holds."""
        return tuple(self._history)

    @property
    def last_decision(self) -> Decision | None:
        return self._last

    # -- the decision ------------------------------------------------------------------------

    def decide(self, sample: Sample, counts: Counts, now: float) -> Decision:
        """Take ``sample`` in and decide the target count for ``now``."""
        p = self._params
        current = counts.desired
        if p.dry_run and self._shadow is not None:
            current = self._shadow
        fresh = self._ingest(sample, counts, now)
        decision = self._decide(sample, fresh, counts, current, now)
        if decision.direction is Direction.UP:
            self._last_up_at = now
        elif decision.direction is Direction.DOWN:
            self._last_down_at = now
        if decision.changed:
            self._last_action_at = now
            self._last_direction = decision.direction
            self._actions.append((now, decision.target - decision.previous))
            if decision.direction is Direction.UP:
                self._votes = 0
        if p.dry_run:
            decision = Decision(
                decision.target,
                decision.previous,
                decision.direction,
                decision.reason + " (dry run, not applied)",
                decision.at,
                decision.kind,
                applied=False,
            )
            self._shadow = decision.target
        self._record(decision)
        return decision

    def _record(self, decision: Decision) -> None:
        previous = self._history[-1] if self._history else None
        if decision.changed or previous is None or previous.kind != decision.kind or previous.changed:
            self._history.append(decision)
        self._last = decision

    def _ingest(self, sample: Sample, counts: Counts, now: float) -> bool:
        """Keep a fresh sample; return whether this evaluation has fresh data."""
        p = self._params
        horizon = max(p.up_window_s, p.down_window_s, p.forecast_window_s) + p.interval_s
        while self._points and self._points[0].at <= now - horizon:
            self._points.popleft()
        while self._actions and self._actions[0][0] <= now - max(p.up_period_s, p.down_period_s):
            self._actions.popleft()
        value = sample.value
        stale = now - sample.observed_at > p.stale_after_s
        if value is None or not math.isfinite(value) or value < 0 or stale:
            self._last_missing_at = now
            self._votes = 0
            return False
        if not self._points or sample.observed_at > self._points[-1].at:
            down_load = value
            reporting = sample.instances_reporting
            if reporting is not None and reporting < counts.ready:
                # HPA's rule for pods without metrics: assume them at target when scaling down.
                down_load += (counts.ready - reporting) * p.target_per_instance
            self._points.append(_Point(sample.observed_at, value, down_load))
            if self._first_sample_at is None:
                self._first_sample_at = sample.observed_at
        return True

    def _decision(self, previous: int, target: int, kind: str, reason: str, now: float) -> Decision:
        if target > previous:
            direction = Direction.UP
        elif target < previous:
            direction = Direction.DOWN
        else:
            direction = Direction.HOLD
        return Decision(target, previous, direction, reason, now, kind)

    def _hold(self, current: int, kind: str, why: str, now: float) -> Decision:
        return Decision(current, current, Direction.HOLD, f"hold {current}: {why}", now, kind)

    def _decide(self, sample: Sample, fresh: bool, counts: Counts, current: int, now: float) -> Decision:
        p = self._params
        if self._pinned is not None:
            pin = self._pinned
            if pin == current:
                return self._hold(current, "pin", "pinned by the operator", now)
            verb = "up" if pin > current else "down"
            reason = f"{verb} {current}->{pin}: pinned by the operator"
            return self._decision(current, pin, "pin", reason, now)
        if self._paused:
            return self._hold(current, "paused", "paused by the operator", now)
        if current < p.min_instances:
            return self._decision(
                current, p.min_instances, "bounds", f"up {current}->{p.min_instances}: below min", now
            )
        if current > p.max_instances:
            return self._decision(
                current, p.max_instances, "bounds", f"down {current}->{p.max_instances}: above max", now
            )
        if not fresh:
            if sample.value is not None and math.isfinite(sample.value) and sample.value >= 0:
                age = now - sample.observed_at
                why = f"stale sample ({format_number(age)} s old > {format_number(p.stale_after_s)} s)"
                return self._hold(current, "stale", why, now)
            reason = sample.reason_missing or "no usable value"
            return self._hold(current, "missing", f"no sample ({reason})", now)
        if p.mode is Mode.STARTD:
            return self._decide_startd(sample, counts, current, now)
        return self._decide_rate(sample, counts, current, now)

    # -- rate mode ---------------------------------------------------------------------------

    def _mean(self, window_s: float, now: float, *, down: bool) -> float:
        values = [pt.down_load if down else pt.up_load for pt in self._points if pt.at > now - window_s]
        if not values:
            last = self._points[-1]
            return last.down_load if down else last.up_load
        return sum(values) / len(values)

    def _trend(self, now: float) -> float:
        """How fast the load has been rising steadily: the smaller of the least-squares slopes of
        the two halves of the forecast window, 0 unless both rise alike. A step inside the window
        leaves one half flat, so only a sustained ramp is extrapolated."""
        p = self._params
        half = p.forecast_window_s / 2
        older = [(pt.at, pt.up_load) for pt in self._points if now - 2 * half < pt.at <= now - half]
        newer = [(pt.at, pt.up_load) for pt in self._points if pt.at > now - half]
        low, high = sorted((_slope(older), _slope(newer)))
        # Steady: both halves rise, at rates within a factor of two (a step or the top of a fast
        # rise shows one steep half and one flat one; noise seldom rises twice alike).
        if low <= 0 or low < high / 2:
            return 0.0
        return low

    def _up_limit(self, current: int, now: float) -> int:
        """HPA's accounting: the count at the start of the period plus what a step may add."""
        p = self._params
        added = sum(delta for at, delta in self._actions if at > now - p.up_period_s and delta > 0)
        start = current - added
        return max(start + p.up_step_instances, math.ceil(start * (1 + p.up_step_percent / 100) - _EPSILON))

    def _down_limit(self, current: int, now: float) -> int:
        p = self._params
        removed = -sum(delta for at, delta in self._actions if at > now - p.down_period_s and delta < 0)
        start = current + removed
        return max(0, min(start - p.down_step_instances, math.floor(start * (1 - p.down_step_percent / 100))))

    def _limit_up(self, current: int, wanted: int, now: float) -> tuple[int, str]:
        """Clamp a scale-up to the step limit and max; say so when it was clamped."""
        p = self._params
        limit = self._up_limit(current, now)
        target = min(wanted, limit, p.max_instances)
        note = ""
        if target < wanted:
            if target == p.max_instances and p.max_instances <= limit:
                note = f"; capped at max {p.max_instances} (wanted {wanted})"
            else:
                step = f"+{p.up_step_instances} or +{format_number(p.up_step_percent)} %"
                note = f"; step limit {step} per {_seconds(p.up_period_s)} (wanted {wanted})"
        return target, note

    def _saturated(self, sample: Sample) -> tuple[bool, float]:
        """Whether the instances are at capacity, and the per-instance load seen."""
        p = self._params
        reporting = sample.instances_reporting
        if reporting is None or reporting <= 0:
            # A service-wide total (a front door) measures the demand itself: nothing to infer.
            return bool(sample.saturated), 0.0
        # The latest sample, not a window mean: right after a change of the ready count a mean
        # mixes the old total with the new divisor.
        per_instance = self._points[-1].up_load / reporting
        if sample.saturated is not None:
            return sample.saturated, per_instance
        # A saturated counter sits at capacity; a load well above it is a front-door measurement
        # of a known demand, which the load path sizes exactly.
        low, high = p.saturation_fraction * p.capacity, (2 - p.saturation_fraction) * p.capacity
        return low <= per_instance <= high, per_instance

    def _decide_rate(self, sample: Sample, counts: Counts, current: int, now: float) -> Decision:
        p = self._params
        target = p.target_per_instance
        short = self._mean(p.up_window_s, now, down=False)
        long = self._mean(p.down_window_s, now, down=False)
        unit = p.unit
        util = format_number(p.utilisation)
        cap = format_number(p.capacity)
        is_burst = short >= p.burst_ratio * long and short - long >= target
        if now < self._hold_until:
            # Remember the peak of held bursts as load (sized at target below), not as a count:
            # a saturation step's count is a guess, the load seen once capacity is there is not.
            self._hold_peak = max(self._hold_peak, short)
            if is_burst:
                self._hold_until = now + p.burst_memory_s

        # Up: the short window, with the up tolerance as the band; when saturated, the measured
        # load is only a floor of the demand, so step up (never stall), unless the instances
        # launched by the previous step are still starting (they are the capacity to come).
        slope = self._trend(now) if p.forecast_s > 0 else 0.0
        rising = slope > 0 and short > long
        expected = short + slope * p.forecast_s if rising else short
        wanted = math.ceil(expected / target - _EPSILON)
        load_up = expected > current * target * (1 + p.up_tolerance) + _EPSILON and wanted > current
        saturated, per_instance = self._saturated(sample)
        # Capacity to come: instances launched by an earlier saturation step, or enough launched
        # instances to double the ready capacity, are waited for before stepping again.
        waiting = counts.launching > 0 and (
            now - self._last_saturation_step_at < 2 * p.start_delay_s or counts.launching >= counts.ready
        )
        step_wanted = 0
        if saturated and not waiting:
            step_wanted = current + max(p.up_step_instances, math.ceil(current * p.up_step_percent / 100))
        if (load_up or step_wanted > current) and current < p.max_instances:
            if now - self._last_action_at < p.up_cooldown_s:
                why = f"up cooldown ({format_number(p.up_cooldown_s)} s after the last change)"
                return self._hold(current, "cooldown", why, now)
            by_saturation = step_wanted > (wanted if load_up else current)
            new, note = self._limit_up(current, step_wanted if by_saturation else wanted, now)
            if new <= current:
                return self._hold(current, "limit", f"up limited{note}", now)
            # Saturation is a burst of unknown size: the demand jumped past what is there.
            self._note_burst(is_burst or by_saturation, short, now)
            if by_saturation:
                self._last_saturation_step_at = now
                reason = (
                    f"up {current}->{new}: saturated at {format_number(per_instance)} {unit} per instance"
                    f" >= {format_number(p.saturation_fraction)} x {cap}; demand unknown, stepping up{note}"
                )
                return self._decision(current, new, "saturation", reason, now)
            trend = ""
            if expected > short:
                trend = f", rising to {format_number(expected)} in {_seconds(p.forecast_s)}"
            reason = (
                f"up {current}->{new}: {format_number(short)} {unit} over {_seconds(p.up_window_s)}{trend}"
                f" > {util} x {cap} x {current}{note}"
            )
            return self._decision(current, new, "load", reason, now)
        if saturated and waiting and current < p.max_instances:
            why = (
                f"saturated, {counts.launching} launching (capacity to come: "
                f"{format_number((counts.ready + counts.launching) * p.capacity)} {unit})"
            )
            return self._hold(current, "staging", why, now)

        # Down: the long window (never below the short one), count hysteresis, consecutive votes.
        down_load = max(
            self._mean(p.down_window_s, now, down=True), self._mean(p.up_window_s, now, down=True)
        )
        reversal = self._last_direction is Direction.UP
        tolerance = p.down_tolerance if reversal else p.down_tolerance_continuing
        slack_target = target * (1 - tolerance)
        floor = p.min_instances
        hold_count = min(p.max_instances, math.ceil(self._hold_peak / target - _EPSILON))
        held = now < self._hold_until and hold_count > floor
        if held:
            floor = hold_count
        down_wanted = max(floor, math.ceil(down_load / slack_target - _EPSILON))
        if down_wanted >= current:
            self._votes = 0
            if held and math.ceil(down_load / slack_target - _EPSILON) < current:
                why = (
                    f"burst memory holds {hold_count} for {format_number(self._hold_peak)} {unit}"
                    f" until {format_number(self._hold_until)} s"
                )
                return self._hold(current, "burst", why, now)
            return self._hold(current, "steady", f"{format_number(short)} {unit} within the band", now)
        if now - self._last_up_at < p.down_cooldown_s:
            self._votes = 0
            why = f"down cooldown ({format_number(p.down_cooldown_s)} s after a scale-up)"
            return self._hold(current, "cooldown", why, now)
        covered_from = now if self._first_sample_at is None else self._first_sample_at
        if self._last_missing_at is not None:
            covered_from = max(covered_from, self._last_missing_at)
        if now - covered_from < p.down_window_s:
            why = f"down needs {_seconds(p.down_window_s)} of fresh data"
            return self._hold(current, "warmup", why, now)
        self._votes += 1
        if self._votes < p.down_votes:
            return self._hold(current, "vote", f"down vote {self._votes} of {p.down_votes}", now)
        lowest = self._down_limit(current, now)
        new = max(down_wanted, lowest)
        note = f"; step limit (wanted {down_wanted})" if new > down_wanted else ""
        if new >= current:
            return self._hold(current, "limit", f"down limited to -{current - lowest} per period", now)
        util_down = format_number(p.utilisation * (1 - tolerance))
        reason = (
            f"down {current}->{new}: {format_number(down_load)} {unit} over {_seconds(p.down_window_s)}"
            f" <= {util_down} x {cap} x {current - 1} for {self._votes} checks{note}"
        )
        return self._decision(current, new, "load", reason, now)

    def _note_burst(self, is_burst: bool, short: float, now: float) -> None:
        """A burst that follows a scale-down soon is a recurring burst: hold its capacity."""
        p = self._params
        if p.burst_memory_s <= 0 or not is_burst:
            return
        if now < self._hold_until or now - self._last_down_at <= p.burst_memory_s:
            if now >= self._hold_until:
                self._hold_peak = 0.0
            self._hold_until = now + p.burst_memory_s
            self._hold_peak = max(self._hold_peak, short)

    # -- startd mode -------------------------------------------------------------------------

    def _decide_startd(self, sample: Sample, counts: Counts, current: int, now: float) -> Decision:
        p = self._params
        idle = sample.value or 0.0
        running = sample.running
        per = p.target_per_instance
        busy = running if running is not None else 0.0
        needed = math.ceil((busy + idle) / per - _EPSILON)
        if idle > 0 and needed > current and current < p.max_instances:
            self._votes = 0
            if counts.launching > 0:
                why = f"{counts.launching} still staging, no new launches"
                return self._hold(current, "staging", why, now)
            if now - self._last_up_at < p.startd_cycle_s:
                why = f"next launch cycle in {format_number(self._last_up_at + p.startd_cycle_s - now)} s"
                return self._hold(current, "cooldown", why, now)
            missing = needed - current
            launch = min(max(1, int(missing / p.startd_attenuation + _EPSILON)), p.startd_launch_cap)
            new = min(current + launch, p.max_instances)
            reason = (
                f"up {current}->{new}: {format_number(idle)} idle jobs, {format_number(busy)} running need"
                f" {needed} at {format_number(per)} per instance; launch {missing} / "
                f"{format_number(p.startd_attenuation)} this cycle (cap {p.startd_launch_cap})"
            )
            return self._decision(current, new, "idle_jobs", reason, now)
        if idle > 0 or running is None:
            self._votes = 0
            why = "jobs are idle" if idle > 0 else "running jobs unknown, not scaling down"
            return self._hold(current, "steady", why, now)
        down_wanted = max(p.min_instances, needed)
        if down_wanted >= current:
            self._votes = 0
            return self._hold(current, "steady", f"{format_number(busy)} running jobs fit {current}", now)
        self._votes += 1
        if self._votes < p.down_votes:
            return self._hold(current, "vote", f"down vote {self._votes} of {p.down_votes}", now)
        new = max(down_wanted, self._down_limit(current, now))
        if new >= current:
            return self._hold(current, "limit", "down limited per period", now)
        reason = (
            f"down {current}->{new}: no idle jobs, {format_number(busy)} running need {needed}"
            f" for {self._votes} checks"
        )
        return self._decision(current, new, "idle_jobs", reason, now)
