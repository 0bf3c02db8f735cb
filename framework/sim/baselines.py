"""The three autoscalers operators already know, re-implemented from their published algorithms.

Written from the descriptions in ``shared/reference/autoscaling.md`` (sections 1-3), with each
one's default settings and its native measurement pipeline, so that each shows its known
weakness in the simulator. All use the same per-instance target as Steward (700 req/s in the
benchmark), so they differ only in dynamics.

* :class:`HpaController` -- Kubernetes HPA, autoscaling/v2 default behaviour, on an External
  AverageValue metric (what a KEDA Prometheus trigger produces): a Prometheus
  ``rate(requests[1m])`` over 15-s scrapes, a 15-s sync, ``ceil(total / target)`` outside the
  10 % tolerance, a 300-s scale-down stabilisation window (the highest recommendation wins),
  scale-up limited to max(+4 pods, +100 %) per 15 s.
* :class:`KpaController` -- Knative's KPA in RPS mode: 1-s buckets, 60-s stable and 6-s panic
  window averages, a 2-s tick, panic when ``ceil(panic / target) / ready >= 2`` (then only
  ratchet up until a stable window passes without panic), scale-down at most halving per tick.
* :class:`MarathonLbController` -- mesosphere/marathon-lb-autoscale: every 60 s it samples the
  last second's rate, averages the last 10 samples, does nothing for the first 10 loops, scales
  to ``ceil(avg / target)`` only when the per-instance rate is 50 % off target or the count 3
  off, for 3 intervals in a row, and then not again for (5 + 10) x 60 s.
"""

from __future__ import annotations

import math
from collections import deque

from framework.core.autoscale import Counts

__all__ = ["BASELINES", "HpaController", "KpaController", "MarathonLbController", "make_baselines"]


def _clamp(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


class HpaController:
    """Kubernetes HPA (autoscaling/v2 defaults) on a Prometheus request-rate metric."""

    name = "hpa"

    def __init__(
        self,
        *,
        target: float,
        min_instances: int,
        max_instances: int,
        sync_period_s: int = 15,
        sync_offset_s: int = 7,
        scrape_interval_s: int = 15,
        rate_window_s: int = 60,
        tolerance: float = 0.1,
        downscale_window_s: int = 300,
        up_pods: int = 4,
        up_percent: float = 100.0,
        up_period_s: int = 15,
        down_percent: float = 100.0,
        down_period_s: int = 15,
    ) -> None:
        self.target = target
        self.min_instances = min_instances
        self.max_instances = max_instances
        self.sync_period_s = sync_period_s
        self.sync_offset_s = sync_offset_s
        self.scrape_interval_s = scrape_interval_s
        self.rate_window_s = rate_window_s
        self.tolerance = tolerance
        self.downscale_window_s = downscale_window_s
        self.up_pods = up_pods
        self.up_percent = up_percent
        self.up_period_s = up_period_s
        self.down_percent = down_percent
        self.down_period_s = down_period_s
        self._counter = 0.0
        self._scrapes: deque[tuple[int, float]] = deque()
        self._recommendations: deque[tuple[int, int]] = deque()
        self._events: deque[tuple[int, int]] = deque()

    def metric(self, now: int) -> float | None:
        """``rate(counter[window])``: increase between the first and last scrape in the window."""
        inside = [(t, c) for t, c in self._scrapes if t > now - self.rate_window_s]
        if len(inside) < 2:
            return None
        (t0, c0), (t1, c1) = inside[0], inside[-1]
        return (c1 - c0) / (t1 - t0)

    def step(self, t: int, observed: float, counts: Counts) -> int | None:
        self._counter += observed
        if t % self.scrape_interval_s == self.scrape_interval_s - 1:
            self._scrapes.append((t, self._counter))
            while self._scrapes and self._scrapes[0][0] <= t - self.rate_window_s:
                self._scrapes.popleft()
        if t % self.sync_period_s != self.sync_offset_s:
            return None
        value = self.metric(t)
        current = counts.desired
        if value is None or current == 0:
            return None
        ratio = value / (self.target * current)
        if abs(1 - ratio) <= self.tolerance:
            recommendation = current
        else:
            recommendation = math.ceil(value / self.target - 1e-9)
        # Stabilisation: scale-up window 0 (the new recommendation), scale-down window 300 s (max).
        while self._recommendations and self._recommendations[0][0] <= t - self.downscale_window_s:
            self._recommendations.popleft()
        up_rec = recommendation
        down_rec = max([recommendation, *(r for _, r in self._recommendations)])
        self._recommendations.append((t, recommendation))
        desired = _clamp(current, up_rec, down_rec)
        # Rate limits with HPA's period-start accounting.
        period = max(self.up_period_s, self.down_period_s)
        while self._events and self._events[0][0] <= t - period:
            self._events.popleft()
        if desired > current:
            added = sum(d for at, d in self._events if at > t - self.up_period_s and d > 0)
            removed = -sum(d for at, d in self._events if at > t - self.up_period_s and d < 0)
            start = current - added + removed
            limit = max(start + self.up_pods, math.ceil(start * (1 + self.up_percent / 100)))
            desired = min(desired, limit)
        elif desired < current:
            added = sum(d for at, d in self._events if at > t - self.down_period_s and d > 0)
            removed = -sum(d for at, d in self._events if at > t - self.down_period_s and d < 0)
            start = current + removed - added
            limit = math.floor(start * (1 - self.down_percent / 100))
            desired = max(desired, limit)
        desired = _clamp(desired, self.min_instances, self.max_instances)
        if desired == current:
            return None
        self._events.append((t, desired - current))
        return desired


class KpaController:
    """Knative's KPA in RPS mode, default settings."""

    name = "kpa"

    def __init__(
        self,
        *,
        target: float,
        min_instances: int,
        max_instances: int,
        initial: int,
        stable_window_s: int = 60,
        panic_window_s: int = 6,
        tick_s: int = 2,
        panic_threshold: float = 2.0,
        max_scale_up_rate: float = 1000.0,
        max_scale_down_rate: float = 2.0,
    ) -> None:
        self.target = target
        self.min_instances = min_instances
        self.max_instances = max_instances
        self.stable_window_s = stable_window_s
        self.panic_window_s = panic_window_s
        self.tick_s = tick_s
        self.panic_threshold = panic_threshold
        self.max_scale_up_rate = max_scale_up_rate
        self.max_scale_down_rate = max_scale_down_rate
        self._prefix = [0.0]
        # Knative starts a revision with more than one pod in panic mode, so that missing history
        # does not scale it down.
        self.panic_since: int | None = 0 if initial > 1 else None
        self.max_panic_pods = initial if initial > 1 else 0

    def _average(self, t: int, window: int) -> float:
        lo = max(0, t + 1 - window)
        return (self._prefix[t + 1] - self._prefix[lo]) / (t + 1 - lo)

    def step(self, t: int, observed: float, counts: Counts) -> int | None:
        self._prefix.append(self._prefix[-1] + observed)
        if t % self.tick_s != self.tick_s - 1:
            return None
        stable = self._average(t, self.stable_window_s)
        panic = self._average(t, self.panic_window_s)
        ready = max(1.0, float(counts.ready))
        max_up = math.ceil(self.max_scale_up_rate * ready)
        max_down = math.floor(ready / self.max_scale_down_rate)
        dspc = math.ceil(stable / self.target - 1e-9)
        dppc = math.ceil(panic / self.target - 1e-9)
        desired_stable = min(max(dspc, max_down), max_up)
        desired_panic = min(max(dppc, max_down), max_up)
        over = dppc / ready >= self.panic_threshold
        if over:
            # Start panicking, or extend the panic while over the threshold.
            self.panic_since = t
        elif self.panic_since is not None and t > self.panic_since + self.stable_window_s:
            self.panic_since = None
            self.max_panic_pods = 0
        desired = desired_stable
        if self.panic_since is not None:
            desired = max(desired, desired_panic)
            self.max_panic_pods = max(self.max_panic_pods, desired)
            desired = self.max_panic_pods
        desired = _clamp(desired, self.min_instances, self.max_instances)
        return desired if desired != counts.desired else None


class MarathonLbController:
    """mesosphere/marathon-lb-autoscale with its default flags (target set to the common target)."""

    name = "marathon-lb-autoscale"

    def __init__(
        self,
        *,
        target: float,
        min_instances: int,
        max_instances: int,
        interval_s: int = 60,
        samples: int = 10,
        cooldown: int = 5,
        threshold_percent: float = 0.5,
        threshold_instances: int = 3,
        intervals_past_threshold: int = 3,
    ) -> None:
        self.target = target
        self.min_instances = min_instances
        self.max_instances = max_instances
        self.interval_s = interval_s
        self.samples = samples
        self.cooldown = cooldown
        self.threshold_percent = threshold_percent
        self.threshold_instances = threshold_instances
        self.intervals_past_threshold = intervals_past_threshold
        self.rates: deque[float] = deque(maxlen=samples)
        self.total_samples = 0
        self.past_threshold = 0
        self.last_scaled = -math.inf

    def step(self, t: int, observed: float, counts: Counts) -> int | None:
        if t % self.interval_s != self.interval_s - 1:
            return None
        # HAProxy's FRONTEND rate: sessions in the last elapsed second (qcur is empty there).
        self.rates.append(observed)
        rate_avg = sum(self.rates) / len(self.rates)
        current = counts.desired
        target = _clamp(math.ceil(rate_avg / self.target - 1e-9), self.min_instances, self.max_instances)
        result = None
        if self.total_samples >= self.samples:
            result = self._scaling(t, rate_avg, current, target)
        self.total_samples += 1
        return result

    def _scaling(self, now: int, rate_avg: float, current: int, target: int) -> int | None:
        if target == current:
            self.past_threshold = 0
            return None
        per_instance = rate_avg / current if current else math.inf
        off_by = abs(per_instance - self.target) / self.target
        if off_by < self.threshold_percent and abs(target - current) < self.threshold_instances:
            self.past_threshold = 0
            return None
        self.past_threshold += 1  # not reset after a scale, as in the original
        if self.past_threshold < self.intervals_past_threshold:
            return None
        if self.last_scaled + self.cooldown * self.interval_s + self.interval_s * self.samples >= now:
            return None
        self.last_scaled = now
        return target


BASELINES = ("hpa", "kpa", "marathon-lb-autoscale")


def make_baselines(
    *, target: float, min_instances: int, max_instances: int, initial: int
) -> list[HpaController | KpaController | MarathonLbController]:
    """Fresh controllers for one run, all with the same target and bounds."""
    low, high = min_instances, max_instances
    return [
        HpaController(target=target, min_instances=low, max_instances=high),
        KpaController(target=target, min_instances=low, max_instances=high, initial=initial),
        MarathonLbController(target=target, min_instances=low, max_instances=high),
    ]
