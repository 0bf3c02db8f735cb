"""The ``steward`` command: the only place that reads argv and sets up logging.

Sub-commands are small functions in :data:`COMMANDS`, each taking the parsed arguments and
returning an exit status; adding one (``local-cluster``, ``simulate``, ``status``...) means
adding a parser in :func:`build_parser` and an entry in the table. Exit statuses: 0 success,
2 invalid usage or configuration (argparse's convention), anything else is the command's own.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING, Final

from framework.config import Config, ConfigError, load_config, parse_master
from framework.operator_cli import add_api_options, add_operator_commands

if TYPE_CHECKING:
    from framework.liveview import RecentWarnings

__all__ = ["COMMANDS", "EXIT_INVALID", "build_parser", "main"]

EXIT_INVALID: Final = 2
"""Bad usage or an invalid configuration file."""

LOG_LEVELS: Final = ("debug", "info", "warning", "error")


def _cmd_validate(args: argparse.Namespace) -> int:
    """Check each file; report every issue of every file, then fail if any file was invalid."""
    failed = False
    for name in args.files:
        try:
            config = load_config(name)
        except ConfigError as exc:
            failed = True
            for issue in exc.issues:
                print(issue, file=sys.stderr)
            continue
        for warning in config.warnings:
            print(f"{warning} (warning)", file=sys.stderr)
        count = len(config.services)
        print(f"{name}: ok ({count} service{'' if count == 1 else 's'})")
    return EXIT_INVALID if failed else 0


def _cmd_run(args: argparse.Namespace) -> int:
    """Load the configuration, apply ``--master``, and hand over to the runtime."""
    log_file = args.log_file or ("steward.log" if args.live else None)
    warnings = _setup_logging(args.log_level, log_file, keep_warnings=args.live)
    try:
        config = load_config(args.config)
    except ConfigError as exc:
        for issue in exc.issues:
            print(issue, file=sys.stderr)
        return EXIT_INVALID
    master = config.framework.master
    if args.master is not None:
        try:
            master = str(parse_master(args.master))
        except ValueError as exc:
            print(f"steward run: --master: {exc}", file=sys.stderr)
            return EXIT_INVALID
        config = replace(config, framework=replace(config.framework, master=master))
    # Imported here so that `steward validate` works without the runtime's dependencies.
    # (The ignore covers the time before framework/runtime/app.py exists; it is unused after.)
    from framework.runtime.app import (  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415
        run_framework,
    )

    on_started = None
    if args.live:
        on_started = _live_view_starter(config, log_file, warnings)
    status: int = run_framework(config, master=master, config_path=args.config, on_started=on_started)
    if args.live:
        print(f"steward run: stopped (exit status {status}); the log is in {log_file}", flush=True)
    return status


def _live_view_starter(
    config: Config, log_file: str | None, warnings: RecentWarnings | None
) -> Callable[[str], Callable[[], None]]:
    """What ``run --live`` does once the API listens: draw the live view until Steward stops."""

    def start(api_url: str) -> Callable[[], None]:
        from framework.liveview import LiveView  # noqa: PLC0415
        from framework.operator_cli import Client  # noqa: PLC0415

        api = config.framework.api
        token_file = api.token_file if api is not None and api.read_token_required else None
        notes = [f"Log: {log_file}    Ctrl-C stops Steward, its embedded cluster and every task it started."]
        view = LiveView(
            Client(api_url, token_file, timeout_s=5.0),
            notes=lambda: notes,
            warnings=warnings.lines if warnings is not None else tuple,
        ).start()

        def stop() -> None:
            view.stop()
            print("\nsteward run: stopping (the embedded cluster removes its containers)...", flush=True)

        return stop

    return start


def _cmd_local_cluster(args: argparse.Namespace) -> int:
    """Run the embedded single-host Mesos-compatible cluster until interrupted."""
    _setup_logging(args.log_level)
    from framework.localcluster.cluster import main_local_cluster  # noqa: PLC0415 - heavy, optional

    return main_local_cluster(args)


def _cmd_simulate(args: argparse.Namespace) -> int:
    """Run a service's autoscale policy (the production code) on a load trace, with baselines."""
    from framework.sim.cli import main_simulate  # noqa: PLC0415 - numpy/matplotlib only here

    return main_simulate(list(args.simulate_args))


def _cmd_demo(args: argparse.Namespace) -> int:
    """The local demo site under a load ramp and a burst of jobs, watched live, then drawn."""
    from framework.demo import main_demo  # noqa: PLC0415 - docker/matplotlib only here

    return main_demo(list(args.demo_args))


def _cmd_build_executor(args: argparse.Namespace) -> int:
    """Build the self-contained Steward executor zipapp agents fetch (they need only Python 3 and Docker)."""
    from executors.build import main_build_executor  # noqa: PLC0415

    return main_build_executor(list(args.build_executor_args))


def _cmd_watch(args: argparse.Namespace) -> int:
    """The live status view of a running Steward, through its API, until Ctrl-C."""
    from framework.liveview import cmd_watch  # noqa: PLC0415

    return cmd_watch(args.api, args.token_file, args.timeout, args.interval)


def _setup_logging(
    level: str, log_file: str | None = None, *, keep_warnings: bool = False
) -> RecentWarnings | None:
    """Log to stderr, or to ``log_file`` (appended); with ``keep_warnings`` also keep the last
    warnings in memory for the live view, which is returned."""
    handlers: list[logging.Handler] = []
    if log_file is not None:
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    else:
        handlers.append(logging.StreamHandler())
    recent = None
    if keep_warnings:
        from framework.liveview import RecentWarnings  # noqa: PLC0415

        recent = RecentWarnings()
        handlers.append(recent)
    logging.basicConfig(
        level=getattr(logging, level.upper()),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        handlers=handlers,
        # A log file replaces whatever logged before (the command owns the process's logging).
        force=log_file is not None,
    )
    return recent


COMMANDS: Final[dict[str, Callable[[argparse.Namespace], int]]] = {
    "validate": _cmd_validate,
    "run": _cmd_run,
    "local-cluster": _cmd_local_cluster,
    "simulate": _cmd_simulate,
    "build-executor": _cmd_build_executor,
    "watch": _cmd_watch,
    "demo": _cmd_demo,
}
"""Sub-command name -> implementation."""


def build_parser() -> argparse.ArgumentParser:
    """The argument parser with one sub-parser per entry of :data:`COMMANDS`."""
    parser = argparse.ArgumentParser(
        prog="steward",
        description="Run a computing site's services (HTCondor startds, CVMFS, squid) on Apache Mesos.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    validate = sub.add_parser("validate", help="check configuration files and report every problem")
    validate.add_argument("files", nargs="+", metavar="FILE", help="configuration file(s) to check")

    run = sub.add_parser("run", help="run the framework")
    run.add_argument("--config", required=True, metavar="FILE", help="the site configuration file")
    run.add_argument(
        "--master",
        metavar="URL",
        help="override framework.master: local, http(s)://host:port[,host:port...] or zk://host:port[,...]/path",
    )
    run.add_argument(
        "--log-level",
        default="info",
        type=str.lower,
        choices=LOG_LEVELS,
        help="logging threshold (default: info)",
    )
    run.add_argument("--log-file", metavar="FILE", help="append the log to FILE instead of stderr")
    run.add_argument(
        "--live",
        action="store_true",
        help="show a live status view on stdout (services, instances, load, last decisions); "
        "the log goes to --log-file (default ./steward.log)",
    )
    local = sub.add_parser(
        "local-cluster",
        help="run the embedded single-host Mesos-compatible cluster (a master and N agents)",
        description="A master plus N agents in one process, speaking the Mesos v1 HTTP APIs and "
        "running tasks as Docker containers, local processes, or nothing at all (simulated).",
    )
    # None means "not given", so a flag can be told apart from the cluster file's value.
    local.add_argument(
        "--listen", default=None, metavar="HOST:PORT", help="master address (default 127.0.0.1:5050)"
    )
    local.add_argument("--agents", type=int, default=None, metavar="N", help="number of agents (default 3)")
    local.add_argument(
        "--containerizer",
        default=None,
        choices=("docker", "process", "simulated"),
        help="what runs tasks (default docker)",
    )
    local.add_argument(
        "--config", default=None, metavar="FILE", help="a cluster file: agents, resources, timings"
    )
    local.add_argument("--log-level", default="info", type=str.lower, choices=LOG_LEVELS)
    # The simulator parses its own options (`steward simulate --help` shows them); main() hands it
    # everything after the word, so its flags never collide with these parsers.
    simulate = sub.add_parser(
        "simulate",
        add_help=False,
        help="run a service's autoscale policy on a load trace (see: steward simulate --help)",
    )
    simulate.add_argument("simulate_args", nargs=argparse.REMAINDER)
    build = sub.add_parser(
        "build-executor",
        add_help=False,
        help="build the Steward executor zipapp (see: steward build-executor --help)",
    )
    build.add_argument("build_executor_args", nargs=argparse.REMAINDER)
    demo = sub.add_parser(
        "demo",
        add_help=False,
        help="the local demo under a squid load ramp and a burst of jobs, then a PNG "
        "(see: steward demo --help)",
    )
    demo.add_argument("demo_args", nargs=argparse.REMAINDER)
    watch = sub.add_parser(
        "watch",
        help="a live status view of a running Steward: services, instances, load, last decisions",
    )
    add_api_options(watch, json_output=False)
    watch.add_argument(
        "--interval", type=float, default=2.0, metavar="SECONDS", help="redraw period (default 2)"
    )
    # status, services, tasks, decisions, scale, pause, resume, restart, reload: clients of the API.
    add_operator_commands(sub, COMMANDS)
    missing = set(sub.choices) ^ set(COMMANDS)
    assert not missing, f"sub-commands without a parser or an implementation: {missing}"
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``steward`` console script; returns the exit status."""
    parser = build_parser()
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["simulate"]:
        return _cmd_simulate(argparse.Namespace(simulate_args=argv[1:]))
    if argv[:1] == ["demo"]:
        return _cmd_demo(argparse.Namespace(demo_args=argv[1:]))
    if argv[:1] == ["build-executor"]:
        return _cmd_build_executor(argparse.Namespace(build_executor_args=argv[1:]))
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse exits on --help (0) and on usage errors (2)
        return exc.code if isinstance(exc.code, int) else EXIT_INVALID
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_INVALID
    return COMMANDS[args.command](args)


if __name__ == "__main__":
    sys.exit(main())
