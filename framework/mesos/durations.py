"""Parse Mesos (stout) duration strings such as ``5secs`` or ``1.5mins`` into seconds.

The agent hands an executor its timeouts as stout ``Duration`` strings
(``MESOS_RECOVERY_TIMEOUT=15mins``, ``MESOS_SUBSCRIPTION_BACKOFF_MAX=2secs``,
``MESOS_EXECUTOR_SHUTDOWN_GRACE_PERIOD=5secs``). The grammar is stout's ``Duration::parse``
(``3rdparty/stout/include/stout/duration.hpp``): a non-negative decimal number immediately followed by
one of eight plural unit words. Anything else is refused rather than guessed at, because a
misread timeout (``5s`` taken as five minutes, say) fails silently much later.
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = ["UNIT_SECONDS", "parse_duration"]

UNIT_SECONDS: Final[dict[str, float]] = {
    "ns": 1e-9,
    "us": 1e-6,
    "ms": 1e-3,
    "secs": 1.0,
    "mins": 60.0,
    "hrs": 3600.0,
    "days": 86400.0,
    "weeks": 604800.0,
}
"""Seconds per stout duration unit; the keys are the only unit spellings stout accepts."""

# stout accepts digits and dots before the unit; a lone "." or several dots fail its numify.
_DURATION = re.compile(r"(?P<number>\d+(?:\.\d*)?|\.\d+)(?P<unit>[a-z]+)")

# stout keeps nanoseconds in an int64; a larger value is an error there, so it is one here too.
_MAX_SECONDS: Final = (2**63 - 1) / 1e9


def parse_duration(text: str) -> float:
    """Return the duration ``text`` (e.g. ``"1.5mins"``) in seconds.

    Surrounding whitespace is tolerated (environment files often carry a trailing newline);
    a negative number, a missing or unknown unit, or a value beyond stout's int64 nanosecond
    range raises ``ValueError`` naming the accepted units.
    """
    stripped = text.strip()
    match = _DURATION.fullmatch(stripped)
    if match is None:
        raise ValueError(
            f"not a Mesos duration: {text!r}; expected a non-negative number followed by one of "
            f"{', '.join(UNIT_SECONDS)} (for example '5secs' or '1.5mins')"
        )
    unit = match["unit"]
    if unit not in UNIT_SECONDS:
        raise ValueError(
            f"unknown duration unit {unit!r} in {text!r}; supported units are {', '.join(UNIT_SECONDS)}"
        )
    seconds = float(match["number"]) * UNIT_SECONDS[unit]
    if not math.isfinite(seconds) or seconds > _MAX_SECONDS:
        raise ValueError(f"duration {text!r} is out of the range Mesos can represent")
    return seconds
