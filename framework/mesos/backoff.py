"""Jittered exponential backoff for resubscription, as a pure function of the failure count.

The protocol brief (sections 4.5 and 4.6) asks clients to resubscribe "using exponential backoff with
jitter, capped at about 15 s": without jitter, every scheduler of a site hammers a master that just
came back at the same instants. The delay is "equal jitter": a random value in ``[d/2, d]`` where
``d = min(maximum, initial * 2**failures)``, so it never collapses to zero (no hot loop) and never
exceeds the cap.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

__all__ = ["Backoff", "backoff_delay"]


def backoff_delay(failures: int, *, initial: float, maximum: float, rng: random.Random) -> float:
    """The delay before the next attempt after ``failures`` consecutive failed attempts (0 allowed)."""
    if initial <= 0 or maximum <= 0:
        raise ValueError("backoff bounds must be positive")
    exponent = min(max(failures, 0), 62)  # 2**62 * initial overflows nothing and exceeds any cap
    ceiling = min(maximum, initial * (2.0**exponent))
    return ceiling / 2 + rng.uniform(0.0, ceiling / 2)


@dataclass(slots=True)
class Backoff:
    """Counts consecutive failures and hands out the matching delay; ``reset()`` after a success."""

    initial: float
    maximum: float
    rng: random.Random
    failures: int = 0

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.maximum < self.initial:
            raise ValueError("need 0 < initial <= maximum")

    def next_delay(self) -> float:
        """The delay for the current failure count, then count one more failure."""
        delay = backoff_delay(self.failures, initial=self.initial, maximum=self.maximum, rng=self.rng)
        self.failures += 1
        return delay

    def reset(self) -> None:
        self.failures = 0
