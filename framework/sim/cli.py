"""``steward simulate``: run a service's autoscale policy against a load trace and score it.

    steward simulate --config FILE --service NAME --trace TRACE.csv [--observe offered|served]
                     [--capacity REQ_PER_S] [--start-delay S] [--baselines] --out DIR

The policy is the service's own, read from the configuration and run by the same code as in
production on a simulated clock (:mod:`framework.sim.model`). TRACE.csv has the header
``t,requests`` and one row per second. Writes into DIR:

* ``timeline.csv``: ``t,offered,observed,desired,ready``, one row per second;
* ``summary.json``: the scores of ``framework.sim.scoring`` (and each baseline's, with
  ``--baselines``), the settings and the policy;
* ``timeline.png``: load, capacity and instances over time;
* ``decisions.txt``: every change Steward's policy made, with its reason;
* with ``--baselines``: ``timeline-<baseline>.csv`` for HPA, KPA and marathon-lb-autoscale.

Prints a table of the scores. Exit status 0, or 2 for bad usage, an invalid configuration or an
unreadable trace (the ``steward`` command's convention).
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import sys
from collections.abc import Sequence
from pathlib import Path

from framework.config import ConfigError, load_config
from framework.core.autoscale import Mode, PolicyParams
from framework.core.autoscale_config import policy_params
from framework.sim.model import SimSettings, Timeline
from framework.sim.plot import plot_timelines
from framework.sim.runner import Run, run_policies
from framework.sim.scoring import Scores
from framework.sim.traces import read_trace_csv

__all__ = ["EXIT_INVALID", "build_parser", "format_table", "main_simulate", "write_timeline"]

EXIT_INVALID = 2


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="steward simulate",
        description="Run a service's autoscale policy against a load trace and score it.",
    )
    parser.add_argument("--config", required=True, metavar="FILE", help="the Steward configuration")
    parser.add_argument("--service", required=True, metavar="NAME", help="the autoscaled service to simulate")
    parser.add_argument("--trace", required=True, metavar="TRACE.csv", help="t,requests: one row per second")
    parser.add_argument(
        "--observe",
        choices=("offered", "served"),
        default="offered",
        help="what the policy sees: the offered load (default) or what ready instances served",
    )
    parser.add_argument(
        "--capacity",
        type=_positive_float,
        metavar="REQ_PER_S",
        help="requests/s one ready instance serves (default: the policy's capacity per instance)",
    )
    parser.add_argument(
        "--start-delay",
        type=_non_negative_int,
        default=45,
        metavar="S",
        help="seconds from launch to ready (default 45)",
    )
    parser.add_argument(
        "--baselines", action="store_true", help="also run HPA, KPA and marathon-lb-autoscale on the trace"
    )
    parser.add_argument("--out", required=True, metavar="DIR", help="directory for the results (created)")
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
    return value


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return value


def _fail(message: str) -> int:
    print(f"steward simulate: {message}", file=sys.stderr)
    return EXIT_INVALID


def _policy(config_path: str, service: str) -> PolicyParams | str:
    """The service's policy, or an error message."""
    try:
        config = load_config(config_path)
    except ConfigError as exc:
        return "\n".join(str(issue) for issue in exc.issues)
    if service not in config.services:
        known = ", ".join(sorted(config.services)) or "none"
        return f"no service {service!r} in {config_path} (services: {known})"
    try:
        params = policy_params(config.services[service])
    except ValueError as exc:
        return f"service {service!r}: {exc}"
    if params is None:
        return f"service {service!r} is not autoscaled (it has no 'autoscale' section)"
    if params.mode is Mode.STARTD:
        return f"service {service!r} scales from idle jobs; the simulator models request rates only"
    return params


def main_simulate(argv: Sequence[str]) -> int:
    """``steward simulate``'s entry point; returns the exit status."""
    args = build_parser().parse_args(list(argv))
    params = _policy(args.config, args.service)
    if isinstance(params, str):
        return _fail(params)
    try:
        offered = read_trace_csv(args.trace)
    except (OSError, ValueError) as exc:
        return _fail(f"cannot read the trace: {exc}")
    settings = SimSettings(
        capacity=args.capacity if args.capacity is not None else params.capacity,
        start_delay_s=args.start_delay,
        observe=args.observe,
        min_instances=params.min_instances,
        max_instances=params.max_instances,
    )
    out = Path(args.out)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        return _fail(f"cannot create {out}: {exc}")

    runs = run_policies(offered, params, settings, baselines=args.baselines)
    steward = runs[0]
    write_timeline(out / "timeline.csv", steward.timeline)
    for run in runs[1:]:
        write_timeline(out / f"timeline-{run.name}.csv", run.timeline)
    _write_decisions(out / "decisions.txt", steward.timeline)
    summary = _summary(args, params, settings, runs)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    title = (
        f"{args.service}: {Path(args.trace).name}, observe {args.observe}, start delay {args.start_delay} s"
    )
    plot_timelines(out / "timeline.png", [run.timeline for run in runs], title=title)
    print(format_table(runs))
    print(f"wrote {out}/timeline.csv, summary.json, timeline.png, decisions.txt")
    return 0


def _number(value: float) -> int | float:
    return int(value) if float(value).is_integer() else round(value, 3)


def write_timeline(path: Path, timeline: Timeline) -> None:
    """``t,offered,observed,desired,ready``, one row per second."""
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["t", "offered", "observed", "desired", "ready"])
        rows = zip(timeline.offered, timeline.observed, timeline.desired, timeline.ready, strict=True)
        for t, (offered, observed, desired, ready) in enumerate(rows):
            writer.writerow([t, offered, _number(observed), desired, ready])


def _write_decisions(path: Path, timeline: Timeline) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        for decision in timeline.decisions:
            handle.write(f"{decision.at:>8.0f} s  {decision.reason}\n")


def _summary(
    args: argparse.Namespace, params: PolicyParams, settings: SimSettings, runs: Sequence[Run]
) -> dict[str, object]:
    summary: dict[str, object] = {
        "service": args.service,
        "trace": str(args.trace),
        "observe": settings.observe,
        "capacity": settings.capacity,
        "start_delay_s": settings.start_delay_s,
        "seconds": len(runs[0].timeline),
        "initial_instances": runs[0].timeline.initial,
    }
    summary.update(runs[0].scores.as_dict())
    summary["policy"] = {
        k: (str(v) if isinstance(v, Mode) else v) for k, v in dataclasses.asdict(params).items()
    }
    if len(runs) > 1:
        summary["baselines"] = {run.name: run.scores.as_dict() for run in runs[1:]}
    return summary


def _ttac(scores: Scores) -> str:
    if not scores.time_to_capacity_seconds:
        return "-"
    values = ["never" if v is None else str(v) for v in scores.time_to_capacity_seconds]
    return ",".join(values) if len(values) <= 3 else ",".join(values[:3]) + f",... ({len(values)})"


def format_table(runs: Sequence[Run]) -> str:
    """One line per controller: the scores side by side."""
    header = (
        f"{'policy':<22} {'overload s':>10} {'lost %':>7} {'inst-s':>8} {'oracle':>8} "
        f"{'cost':>5} {'actions':>7} {'flaps':>5}  time to capacity (s)"
    )
    lines = [header, "-" * len(header)]
    for run in runs:
        s = run.scores
        lines.append(
            f"{run.name:<22} {s.overload_seconds:>10,} {s.lost_percent:>7.2f} {s.instance_seconds:>8,} "
            f"{s.oracle_instance_seconds:>8,} {s.cost_ratio:>5.2f} {s.scale_actions:>7} {s.flaps:>5}"
            f"  {_ttac(s)}"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    return main_simulate(sys.argv[1:] if argv is None else argv)


if __name__ == "__main__":
    sys.exit(main())
