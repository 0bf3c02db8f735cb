"""Load traces for the policy simulator: six shapes, seeded, one value per second.

A :class:`Trace` is a demand curve ``rate`` (lambda(t), requests/s) and the high-demand segments
time-to-capacity is measured on. :meth:`Trace.offered` draws the per-second offered counts as
Poisson(lambda(t)) with ``numpy.random.default_rng(seed)`` (``autoscaling.md`` section 7.1: seeds
0-4, scores averaged). Shapes with randomness of their own (the plateau's noise, the burst times)
draw it from ``shape_seed``, so every Poisson seed sees the same shape.

The six shapes, each built to hit one known weakness (T1-T6 in ``autoscaling.md``):

* ``step``: 400 req/s, then 6,000 for 20 minutes from t=600 (segment [600, 1800)): reaction time.
* ``diurnal``: a day squeezed into two hours, 400 to 4,000 and back: tracking without churn.
* ``sawtooth``: 10-minute ramps from 500 to 5,000, then a drop: repeated rises and falls.
* ``plateau``: 2,800 req/s (exactly 4 x 700, an instance boundary at the common target) with
  slow (AR(1), 60 s, 4 %) and fast (3 %) noise: flapping.
* ``flash``: 500 req/s, a rise to 9,000 in 10 s at t=600, then an exponential decay (tau 600 s)
  (segment [600, 3600)): reaction, then shedding capacity as it decays.
* ``bursts``: 800 req/s with 60-second bursts of +4,000 every 2.5-6 minutes (each burst a
  segment): recurring bursts shorter than a start delay plus a reaction.

``python -m framework.sim.traces --out DIR`` writes each trace's seed-0 offered counts as
``DIR/<name>.csv`` (``t,requests``), the files ``steward simulate --trace`` reads.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = [
    "TRACES",
    "Trace",
    "make_trace",
    "read_trace_csv",
    "trace_names",
    "write_trace_csv",
]


@dataclass(frozen=True, slots=True)
class Trace:
    """A demand curve (requests/s per second) and its high-demand segments ``[start, end)``."""

    name: str
    rate: tuple[float, ...]
    segments: tuple[tuple[int, int], ...]
    description: str

    def __len__(self) -> int:
        return len(self.rate)

    def offered(self, seed: int) -> list[int]:
        """Per-second offered requests: Poisson(rate) drawn with ``default_rng(seed)``."""
        rng = np.random.default_rng(seed)
        counts = rng.poisson(np.asarray(self.rate, dtype=float))
        return [int(c) for c in counts]


def _step(shape_seed: int) -> Trace:
    rate = [6000.0 if 600 <= t < 1800 else 400.0 for t in range(3600)]
    return Trace("step", tuple(rate), ((600, 1800),), "400 req/s, 6,000 for t in [600, 1800)")


def _diurnal(shape_seed: int) -> Trace:
    period = 7200
    rate = [400.0 + 3600.0 * (1 - math.cos(2 * math.pi * t / period)) / 2 for t in range(period)]
    return Trace("diurnal", tuple(rate), (), "400 to 4,000 req/s and back over two hours")


def _sawtooth(shape_seed: int) -> Trace:
    period, ramp = 600, 540
    rate = []
    for t in range(3600):
        phase = t % period
        rate.append(500.0 + 4500.0 * min(phase, ramp) / ramp if phase < ramp else 500.0)
    return Trace("sawtooth", tuple(rate), (), "ramps from 500 to 5,000 req/s over 9 min, every 10 min")


def _plateau(shape_seed: int) -> Trace:
    rng = np.random.default_rng(1000 + shape_seed)
    level, slow_sigma, fast_sigma, tau = 2800.0, 0.04, 0.03, 60.0
    phi = math.exp(-1.0 / tau)
    innovations = rng.normal(0.0, slow_sigma * math.sqrt(1 - phi * phi), 3600)
    fast = rng.normal(0.0, fast_sigma, 3600)
    slow = 0.0
    rate = []
    for t in range(3600):
        slow = phi * slow + float(innovations[t])
        rate.append(max(0.0, level * (1.0 + slow + float(fast[t]))))
    return Trace("plateau", tuple(rate), (), "2,800 req/s (4 x 700) with 4 % slow and 3 % fast noise")


def _flash(shape_seed: int) -> Trace:
    rate = []
    for t in range(3600):
        if t < 600:
            rate.append(500.0)
        elif t < 610:
            rate.append(500.0 + 8500.0 * (t - 600 + 1) / 10)
        else:
            rate.append(500.0 + 8500.0 * math.exp(-(t - 609) / 600.0))
    return Trace("flash", tuple(rate), ((600, 3600),), "500 req/s, 9,000 at t=610 decaying with tau 600 s")


def _bursts(shape_seed: int) -> Trace:
    rng = np.random.default_rng(2000 + shape_seed)
    base, extra, length = 800.0, 4000.0, 60
    rate = [base] * 3600
    segments = []
    start = 300
    while start + length <= 3600 - 120:
        for t in range(start, start + length):
            rate[t] = base + extra
        segments.append((start, start + length))
        start += length + int(rng.integers(90, 301))
    return Trace("bursts", tuple(rate), tuple(segments), "800 req/s, 60 s bursts of +4,000 every 2.5-6 min")


TRACES: dict[str, Callable[[int], Trace]] = {
    "step": _step,
    "diurnal": _diurnal,
    "sawtooth": _sawtooth,
    "plateau": _plateau,
    "flash": _flash,
    "bursts": _bursts,
}


def trace_names() -> list[str]:
    return list(TRACES)


def make_trace(name: str, shape_seed: int = 0) -> Trace:
    """The named trace; ``shape_seed`` only changes the shapes that have noise of their own."""
    try:
        return TRACES[name](shape_seed)
    except KeyError:
        raise ValueError(f"unknown trace {name!r}; known: {', '.join(TRACES)}") from None


def write_trace_csv(path: str | Path, offered: Sequence[int]) -> None:
    """Write ``t,requests``, one row per second."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["t", "requests"])
        for t, requests in enumerate(offered):
            writer.writerow([t, requests])


def read_trace_csv(path: str | Path) -> list[int]:
    """Read a ``t,requests`` file: one row per second from t=0, requests >= 0; ValueError otherwise."""
    offered: list[int] = []
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = next(reader, None)
        if header is None or [h.strip() for h in header] != ["t", "requests"]:
            raise ValueError(f"{path}: the header must be 't,requests', got {header!r}")
        for line, row in enumerate(reader, start=2):
            if not row or all(not cell.strip() for cell in row):
                continue
            if len(row) != 2:
                raise ValueError(f"{path}:{line}: expected 2 columns, got {len(row)}")
            try:
                t = int(row[0])
                requests = float(row[1])
            except ValueError:
                raise ValueError(f"{path}:{line}: not numbers: {row!r}") from None
            if t != len(offered):
                raise ValueError(f"{path}:{line}: expected t={len(offered)} (one row per second), got {t}")
            if not math.isfinite(requests) or requests < 0:
                raise ValueError(f"{path}:{line}: requests must be a number >= 0, got {row[1]!r}")
            offered.append(round(requests))
    if not offered:
        raise ValueError(f"{path}: no rows")
    return offered


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m framework.sim.traces", description="Write the example load traces as CSV."
    )
    parser.add_argument("--out", required=True, help="directory to write <name>.csv into")
    parser.add_argument("--seed", type=int, default=0, help="Poisson seed of the offered counts (default 0)")
    parser.add_argument("names", nargs="*", help=f"traces to write (default: all of {', '.join(TRACES)})")
    args = parser.parse_args(argv)
    names = args.names or trace_names()
    unknown = [n for n in names if n not in TRACES]
    if unknown:
        parser.error(f"unknown trace(s) {unknown}; known: {', '.join(TRACES)}")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    for name in names:
        trace = make_trace(name)
        write_trace_csv(out / f"{name}.csv", trace.offered(args.seed))
        print(f"{out / (name + '.csv')}: {len(trace)} s, {trace.description}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
