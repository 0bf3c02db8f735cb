"""Durations and sizes, parsed once at the edge into plain floats with the unit in the name.

Configuration files say ``timeout: 30s`` and ``mem: 2GiB``; the rest of Steward only ever sees
``timeout_s: float`` (seconds) and ``mem_mib: float`` (mebibytes, the unit Mesos uses for ``mem``
and ``disk`` scalars). Both parsers raise :class:`UnitError`, whose message is written to be shown
to the operator as is.

Durations
    a number (int or float) is seconds; a string is a non-negative decimal number followed by
    one unit: ``ms``, ``s``, ``m``, ``h``, ``d``, ``w`` (``"250ms"``, ``"30s"``, ``"1.5h"``, ``"2d"``).
    Whitespace between number and unit is allowed; compound forms (``"1h30m"``) are not.

Sizes
    a number (int or float) is MiB, because that is what Mesos means by ``mem: 512``. A string is a
    number followed by a unit:

    * binary (powers of 1024): ``KiB MiB GiB TiB``, their short forms ``Ki Mi Gi Ti``, and the
      single letters ``K M G T`` (case-insensitive, as Docker's ``--memory 100m`` means MiB);
    * decimal (powers of 1000): ``kB MB GB TB`` (``KB`` accepted for ``kB``);
    * ``B`` for bytes.

    So ``"100M"`` is 100 MiB but ``"100MB"`` is 95.37 MiB. Other spellings (``"mb"``, ``"gb"``)
    are errors rather than guesses.
"""

from __future__ import annotations

import math
import re
from typing import Final

__all__ = [
    "DURATION_UNITS_S",
    "MAX_DURATION_S",
    "MAX_SIZE_MIB",
    "SIZE_UNITS_BYTES",
    "UnitError",
    "parse_duration",
    "parse_size_mib",
]


class UnitError(ValueError):
    """A duration or size could not be parsed; the message is meant for the operator."""


DURATION_UNITS_S: Final[dict[str, float]] = {
    "ms": 0.001,
    "s": 1.0,
    "m": 60.0,
    "h": 3600.0,
    "d": 86400.0,
    "w": 604800.0,
}
"""Seconds per duration unit."""

MAX_DURATION_S: Final = 100 * 365 * 86400.0
"""A century: anything longer is a typo, and keeping values finite keeps arithmetic honest."""

_KIB = 1024
_MIB = 1024**2
SIZE_UNITS_BYTES: Final[dict[str, int]] = {
    "B": 1,
    "KiB": _KIB,
    "MiB": _MIB,
    "GiB": 1024**3,
    "TiB": 1024**4,
    "Ki": _KIB,
    "Mi": _MIB,
    "Gi": 1024**3,
    "Ti": 1024**4,
    "K": _KIB,
    "k": _KIB,
    "M": _MIB,
    "m": _MIB,
    "G": 1024**3,
    "g": 1024**3,
    "T": 1024**4,
    "t": 1024**4,
    "kB": 1000,
    "KB": 1000,
    "MB": 1000**2,
    "GB": 1000**3,
    "TB": 1000**4,
}
"""Bytes per size unit (see the module docstring for the binary/decimal rule)."""

MAX_SIZE_MIB: Final = float(1024**3)
"""One exbibyte in MiB: no agent has more; larger values are typos or overflow attempts."""

_NUMBER = r"(?P<number>[0-9]+(?:\.[0-9]*)?|\.[0-9]+)"
_DURATION_RE: Final = re.compile(rf"{_NUMBER}\s*(?P<unit>[a-zA-Z]*)")
_SIZE_RE: Final = re.compile(rf"{_NUMBER}\s*(?P<unit>[a-zA-Z]*)")

_DURATION_HINT: Final = "a duration such as '30s', '5m', '1.5h', '250ms', '2d' or a number of seconds"
_SIZE_HINT: Final = "a size such as '512MiB', '2GiB', '1.5GB', '100M' or a number of MiB"


def _quote(text: str) -> str:
    shown = text if len(text) <= 40 else text[:37] + "..."
    return "'" + shown.replace("'", "\\'") + "'"


def parse_duration(value: str | int | float) -> float:
    """Return ``value`` in seconds; raise :class:`UnitError` for malformed, negative or absurd input."""
    if isinstance(value, bool):
        raise UnitError(f"expected {_DURATION_HINT}, got {str(value).lower()}")
    if isinstance(value, int | float):
        seconds = float(value) if not isinstance(value, int) or abs(value) < 10**20 else math.inf
    else:
        text = value.strip()
        match = _DURATION_RE.fullmatch(text)
        negative = text.startswith("-") and _DURATION_RE.fullmatch(text[1:].lstrip()) is not None
        if negative:
            raise UnitError(f"must not be negative, got {_quote(value)}")
        if match is None:
            raise UnitError(f"expected {_DURATION_HINT}, got {_quote(value)}")
        unit = match["unit"] or "s"
        if unit not in DURATION_UNITS_S:
            known = ", ".join(DURATION_UNITS_S)
            raise UnitError(f"unknown duration unit {_quote(unit)} in {_quote(value)}; use one of {known}")
        seconds = float(match["number"]) * DURATION_UNITS_S[unit]
    if math.isnan(seconds):
        raise UnitError(f"expected {_DURATION_HINT}, got {value!r}")
    if seconds < 0:
        raise UnitError(f"must not be negative, got {value}")
    if seconds > MAX_DURATION_S:
        raise UnitError(f"too large: {_show(value)} is more than 100 years")
    return seconds


def parse_size_mib(value: str | int | float) -> float:
    """Return ``value`` in MiB; raise :class:`UnitError` for malformed, negative or absurd input."""
    if isinstance(value, bool):
        raise UnitError(f"expected {_SIZE_HINT}, got {str(value).lower()}")
    if isinstance(value, int | float):
        mib = float(value) if not isinstance(value, int) or abs(value) < 10**20 else math.inf
    else:
        text = value.strip()
        if text.startswith("-") and _SIZE_RE.fullmatch(text[1:].lstrip()) is not None:
            raise UnitError(f"must not be negative, got {_quote(value)}")
        match = _SIZE_RE.fullmatch(text)
        if match is None:
            raise UnitError(f"expected {_SIZE_HINT}, got {_quote(value)}")
        unit = match["unit"]
        if not unit:
            mib = float(match["number"])
        elif unit in SIZE_UNITS_BYTES:
            mib = float(match["number"]) * SIZE_UNITS_BYTES[unit] / _MIB
        else:
            raise UnitError(
                f"unknown size unit {_quote(unit)} in {_quote(value)}; use KiB, MiB, GiB, TiB (binary), "
                "kB, MB, GB, TB (decimal), B, or K, M, G, T (binary)"
            )
    if math.isnan(mib):
        raise UnitError(f"expected {_SIZE_HINT}, got {value!r}")
    if mib < 0:
        raise UnitError(f"must not be negative, got {value}")
    if mib > MAX_SIZE_MIB:
        raise UnitError(f"too large: {_show(value)} is more than 1 EiB")
    return mib


def _show(value: str | int | float) -> str:
    if isinstance(value, str):
        return _quote(value)
    if isinstance(value, int) and abs(value) >= 10**20:
        return "the number"
    return str(value)
