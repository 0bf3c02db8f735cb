"""A token bucket over an injected clock: the global kill-rate limit.

Kills are the one decision that can destroy a site's work in seconds (a health-check storm, a bad
config push, a partition that heals with every task "unknown"). Marathon and Singularity learned to
bound them (prior-art complaint 10); Steward takes one token per kill decision and holds the rest
back until tokens refill. Pure: ``now`` is passed in, nothing sleeps.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["TokenBucket"]


@dataclass(slots=True)
class TokenBucket:
    """``capacity`` tokens at most, refilled continuously at ``refill_per_s``; starts full."""

    capacity: float
    refill_per_s: float
    tokens: float = -1.0
    updated_at: float | None = None

    def __post_init__(self) -> None:
        if self.capacity < 1 or self.refill_per_s <= 0:
            raise ValueError("a token bucket needs capacity >= 1 and a positive refill rate")
        if self.tokens < 0:
            self.tokens = self.capacity

    @classmethod
    def per_minute(cls, per_minute: float, burst: float | None = None) -> TokenBucket:
        """``per_minute`` tokens a minute, at most ``burst`` (default: ``per_minute``) at once."""
        return cls(capacity=per_minute if burst is None else burst, refill_per_s=per_minute / 60.0)

    def _refill(self, now: float) -> None:
        if self.updated_at is not None and now > self.updated_at:
            self.tokens = min(self.capacity, self.tokens + (now - self.updated_at) * self.refill_per_s)
        if self.updated_at is None or now > self.updated_at:
            self.updated_at = now

    def available(self, now: float) -> int:
        """Whole tokens available at ``now``."""
        self._refill(now)
        return int(self.tokens + 1e-9)

    def try_take(self, now: float) -> bool:
        """Take one token if there is one; False (and nothing taken) otherwise."""
        self._refill(now)
        if self.tokens + 1e-9 >= 1.0:
            self.tokens -= 1.0
            return True
        return False
