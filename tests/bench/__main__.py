"""``python -m tests.bench [--quick] [--repeat N] [name...]``: print the machine, then each benchmark."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from tests.bench import BENCHMARKS, Options
from tests.bench.machine import describe_machine


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.bench", description=__doc__)
    parser.add_argument("names", nargs="*", help=f"benchmarks to run (default: all of {sorted(BENCHMARKS)})")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--repeat", type=int, default=5, help="best of this many runs (default 5)")
    parser.add_argument("--scale", type=float, default=1.0, help="input size factor (default 1.0)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the input, best of 2")
    args = parser.parse_args(argv)

    if args.list:
        for bench in BENCHMARKS.values():
            print(f"{bench.name:<20} {bench.description}")
        return 0
    unknown = [name for name in args.names if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {sorted(BENCHMARKS)}")
    options = Options(scale=0.1, repeat=2) if args.quick else Options(scale=args.scale, repeat=args.repeat)

    for label, value in describe_machine():
        print(f"{label + ':':<10} {value}")
    for name in args.names or list(BENCHMARKS):
        bench = BENCHMARKS[name]
        print(f"\n{bench.name}: {bench.description} (scale {options.scale:g}, best of {options.repeat})")
        for figure in bench.function(options):
            print(figure.render())
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
