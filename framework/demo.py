"""``steward demo`` (``make demo``): the local demo site under load, watched live, then drawn.

It runs ``steward run`` on ``examples/local-demo.yaml`` (the embedded three-agent cluster: an
HTCondor central manager, CVMFS stand-ins, autoscaled squids and startds) as a child process, shows
the live view (:mod:`framework.liveview`) and, once the site serves:

1. starts an origin server and drives a load ramp through the squids Steward publishes (up,
   plateau, down; :mod:`framework.loadgen`, its own process, new connection per request);
2. submits a burst of real HTCondor jobs as the pool's ordinary user when the ramp reaches its
   plateau, so the startds scale up on the idle jobs and back down once they ran;
3. samples Steward's API every two seconds: offered and measured squid load, the squids' desired
   and running counts, idle jobs and the startds' desired and running counts;
4. when the ramp is over, the jobs have run and both services are back at their minimum (or at
   ``--max-minutes``), or at Ctrl-C, stops Steward (which stops its cluster and every container)
   and writes ``demo.csv`` and ``demo.png`` (load, queue and instances over time) in ``--out``.

The figure is drawn from what was sampled, including after an early Ctrl-C.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import IO, Any, Final

from framework.config import Config, ConfigError, load_config
from framework.loadgen import parse_plan
from framework.operator_cli import Client, CommandError

__all__ = ["DEFAULT_RAMP", "Row", "describe_ramp", "main_demo", "plot", "ramp_at", "write_csv"]

DEFAULT_RAMP: Final = "10:60,40:30,80:30,140:150,80:30,40:30,10:180"
"""RATE:SECONDS phases of requests/s through the squids: low, up in steps, plateau, down, low."""

JOB_SECONDS: Final = 120
SAMPLE_EVERY_S: Final = 2.0


@dataclass(slots=True)
class Row:
    """One sample of the run (``None``: not known at that moment)."""

    t: float
    offered: float | None
    squid_load: float | None
    squid_desired: int | None
    squid_running: int | None
    idle_jobs: float | None
    startd_desired: int | None
    startd_running: int | None


def ramp_at(phases: Sequence[tuple[float, float]], elapsed: float) -> float | None:
    """The offered rate ``elapsed`` seconds into the ramp, None before it or after it."""
    if elapsed < 0:
        return None
    for rate, seconds in phases:
        if elapsed < seconds:
            return rate
        elapsed -= seconds
    return None


def describe_ramp(phases: Sequence[tuple[float, float]], elapsed: float) -> str | None:
    """Where the ramp is, for the live view: ``"load 140 req/s (phase 4 of 7, 35 s left)"``."""
    if elapsed < 0:
        return None
    for number, (rate, seconds) in enumerate(phases, 1):
        if elapsed < seconds:
            return f"load {rate:g} req/s (phase {number} of {len(phases)}, {seconds - elapsed:.0f} s left)"
        elapsed -= seconds
    return None


def write_csv(rows: Sequence[Row], path: Path) -> None:
    names = [f.name for f in fields(Row)]
    with path.open("w", newline="") as sink:
        writer = csv.writer(sink)
        writer.writerow(names)
        for row in rows:
            writer.writerow(["" if getattr(row, n) is None else getattr(row, n) for n in names])


def plot(
    rows: Sequence[Row], path: Path, *, squid_target: float | None, events: Sequence[tuple[float, str]]
) -> None:
    """Three panels over the run's time: squid load (offered and measured, with the capacity of the
    running squids), squid instances, and idle jobs with startd instances."""
    import matplotlib  # noqa: PLC0415 - only when drawing

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    if not rows:
        raise ValueError("nothing was sampled: no figure to draw")
    t0 = rows[0].t
    t = [r.t - t0 for r in rows]

    def series(name: str) -> list[float]:
        return [math.nan if getattr(r, name) is None else float(getattr(r, name)) for r in rows]

    figure, (load, squids, startds) = plt.subplots(3, 1, sharex=True, figsize=(11, 9))
    load.plot(t, series("offered"), label="offered (load generator)", color="tab:gray", linestyle="--")
    load.plot(t, series("squid_load"), label="measured by Steward", color="tab:blue")
    if squid_target:
        capacity = [math.nan if r.squid_running is None else r.squid_running * squid_target for r in rows]
        load.plot(
            t, capacity, label=f"running squids x target ({squid_target:g})", color="tab:green", alpha=0.6
        )
    load.set_ylabel("requests/s")
    load.set_title("Squid load")
    load.legend(loc="upper right")
    squids.step(t, series("squid_desired"), where="post", label="desired", color="tab:orange")
    squids.step(t, series("squid_running"), where="post", label="running", color="tab:green")
    squids.set_ylabel("squids")
    squids.legend(loc="upper right")
    startds.step(t, series("idle_jobs"), where="post", label="idle jobs", color="tab:red")
    startds.step(t, series("startd_desired"), where="post", label="startds desired", color="tab:orange")
    startds.step(t, series("startd_running"), where="post", label="startds running", color="tab:green")
    startds.set_ylabel("jobs / startds")
    startds.set_xlabel("seconds since the demo started")
    startds.legend(loc="upper right")
    for axis in (load, squids, startds):
        axis.grid(alpha=0.3)
        for at, _ in events:
            axis.axvline(at - t0, color="black", alpha=0.25, linewidth=1)
        axis.set_ylim(bottom=0)
    for at, label in events:
        load.annotate(label, (at - t0, 0), rotation=90, fontsize=7, va="bottom", ha="right", alpha=0.7)
    figure.suptitle("steward demo: examples/local-demo.yaml on the embedded cluster")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


# --- the run ------------------------------------------------------------------------------------


class Stopped(Exception):
    """Ctrl-C, SIGTERM, or Steward exited: end the demo now."""


@dataclass
class Demo:
    args: argparse.Namespace
    config: Config
    api: Client
    out: Path
    phases: list[tuple[float, float]]
    stop: threading.Event = field(default_factory=threading.Event)
    steward: subprocess.Popen[bytes] | None = None
    phase: str = "starting Steward"
    rows: list[Row] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    ramp_started: float | None = None
    failed_requests: int | None = None
    sent_requests: int | None = None

    def note(self, phase: str) -> None:
        self.phase = phase
        self.events.append((time.time(), phase.split(":", maxsplit=1)[0]))

    def check(self) -> None:
        if self.stop.is_set():
            raise Stopped("interrupted")
        if self.steward is not None and self.steward.poll() is not None:
            raise Stopped(
                f"Steward exited with status {self.steward.returncode}; see {self.out / 'steward.log'}"
            )

    def wait(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            self.check()
            if time.monotonic() > deadline:
                raise Stopped(f"gave up after {timeout_s:.0f} s waiting for {what}")
            self.stop.wait(2.0)

    def services(self) -> dict[str, dict[str, Any]]:
        try:
            body = self.api.request("GET", "/v1/services").body
            return {s["name"]: s for s in body["services"]}
        except (CommandError, KeyError, TypeError):
            return {}


def _api_url(config: Config) -> str:
    api = config.framework.api
    listen = api.listen if api is not None else "127.0.0.1:8080"
    host, _, port = listen.rpartition(":")
    host = "127.0.0.1" if host in ("", "0.0.0.0", "::") else host  # noqa: S104 - a client's view
    return f"http://{host}:{port}"


def _sampler(demo: Demo) -> None:
    squid, startd = demo.args.squid_service, demo.args.startd_service
    while not demo.stop.is_set():
        now = time.time()
        services = demo.services()
        s = services.get(squid, {})
        d = services.get(startd, {})
        offered = None
        if demo.ramp_started is not None:
            offered = ramp_at(demo.phases, now - demo.ramp_started)
        demo.rows.append(
            Row(
                t=now,
                offered=offered,
                squid_load=(s.get("autoscale") or {}).get("load"),
                squid_desired=s.get("desired"),
                squid_running=s.get("running"),
                idle_jobs=(d.get("autoscale") or {}).get("load"),
                startd_desired=d.get("desired"),
                startd_running=d.get("running"),
            )
        )
        demo.stop.wait(SAMPLE_EVERY_S)


def _cm_container(demo: Demo) -> Any:
    import docker  # noqa: PLC0415 - the demo's only Docker use

    from framework.localcluster.containerizers.base import LABEL_CLUSTER, LABEL_TASK  # noqa: PLC0415

    client = docker.from_env()
    prefix = demo.args.cm_service + "."
    for container in client.containers.list(filters={"label": LABEL_CLUSTER}):
        if container.labels.get(LABEL_TASK, "").startswith(prefix):
            return container
    return None


SUBMIT: Final = """\
executable = /bin/sh
arguments = "-c 'test -x /cvmfs/atlas.cern.ch/software/bin/hello && sleep {seconds}'"
transfer_executable = false
should_transfer_files = YES
when_to_transfer_output = ON_EXIT
output = burst.$(Cluster).$(Process).out
error = burst.$(Cluster).$(Process).err
log = burst.log
request_cpus = 1
request_memory = 64
queue {jobs}
"""
"""Each job checks that it sees CVMFS (through the startd's rslave bind of the CVMFS stand-in's mount)."""


def _submit_burst(demo: Demo) -> str:
    """Submit the burst as the pool's ordinary user; retried while the schedd warms up."""
    text = SUBMIT.format(jobs=demo.args.jobs, seconds=demo.args.job_seconds)
    last = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        demo.check()
        cm = _cm_container(demo)
        if cm is not None:
            script = f"cat > burst.sub <<'EOF'\n{text}EOF\ncondor_submit -terse burst.sub"
            result = cm.exec_run(["bash", "-c", script], user="submitter", workdir="/home/submitter")
            last = str(result.output.decode(errors="replace")).strip()
            if result.exit_code == 0:
                return last
        demo.stop.wait(3.0)
    raise Stopped(f"could not submit the jobs: {last or 'no central manager container'}")


def _queue_empty(demo: Demo) -> bool:
    cm = _cm_container(demo)
    if cm is None:
        return False
    result = cm.exec_run(["condor_q", "-allusers", "-af", "JobStatus"], user="submitter")
    return result.exit_code == 0 and not result.output.decode(errors="replace").split()


def _scenario(demo: Demo) -> None:
    args = demo.args
    squid, startd = args.squid_service, args.startd_service
    jobs = args.jobs > 0  # without jobs: no central manager needed, the squids alone

    def serving() -> bool:
        services = demo.services()
        s = services.get(squid, {})
        minimum = ((s.get("autoscale") or {}).get("min")) or 1
        return len(s.get("endpoints") or []) >= minimum and (
            not jobs or (services.get(args.cm_service, {}).get("running") or 0) >= 1
        )

    demo.phase = "waiting for the squids to serve" + (" and the central manager to run" if jobs else "")
    demo.wait(serving, args.start_timeout, "the squids" + (" and the central manager" if jobs else ""))
    demo.note("site up: starting the load ramp")
    with contextlib.ExitStack() as stack:
        origin = stack.enter_context(
            _process([sys.executable, "-m", "framework.loadgen", "origin"], demo.out / "origin.log")
        )
        assert origin.stdout is not None
        first = origin.stdout.readline().decode().split()
        if first[:1] != ["port"]:
            raise Stopped(f"the origin server did not start: {first}")
        events_path = demo.out / "loadgen.jsonl"
        total = sum(seconds for _, seconds in demo.phases)
        load = stack.enter_context(
            _process(
                [
                    sys.executable,
                    "-m",
                    "framework.loadgen",
                    "load",
                    "--endpoints-url",
                    f"{demo.api.base}/v1/services/{squid}/endpoints",
                    "--origin",
                    f"http://127.0.0.1:{first[1]}",
                    "--plan",
                    args.ramp,
                    "--max-seconds",
                    str(total + 60),
                    "--max-requests",
                    str(int(sum(r * s for r, s in demo.phases) * 1.2) + 1000),
                ],
                events_path,
                stdout_to_file=True,
            )
        )
        demo.ramp_started = time.time()
        plateau_at = _plateau_start(demo.phases)
        demo.phase = f"load ramp {args.ramp} (RATE:SECONDS); the jobs come at the plateau"
        demo.wait(
            lambda: time.time() - (demo.ramp_started or 0) >= plateau_at, plateau_at + 60, "the plateau"
        )
        if jobs:
            cluster = _submit_burst(demo)
            demo.note(f"submitted {args.jobs} jobs ({cluster})")
            demo.phase = f"{args.jobs} jobs of {args.job_seconds} s submitted: watch the startds follow"
        else:
            demo.phase = "plateau: watch the squids follow"
        demo.wait(lambda: load.poll() is not None, total + 120, "the end of the load ramp")
        demo.sent_requests, demo.failed_requests = _load_counts(events_path)
        demo.note("load ramp over")
    demo.phase = "ramp over: waiting for the jobs to finish and both services to shrink back"

    def settled() -> bool:
        services = demo.services()
        s, d = services.get(squid, {}), services.get(startd, {})
        squid_min = (s.get("autoscale") or {}).get("min")
        startd_min = (d.get("autoscale") or {}).get("min") or 0
        return (
            squid_min is not None
            and s.get("running") == squid_min
            and (d.get("running") or 0) <= startd_min
            and (not jobs or _queue_empty(demo))
        )

    demo.wait(settled, args.settle_timeout, "the jobs to finish and both services to return to their minimum")
    demo.note("settled")


def _plateau_start(phases: Sequence[tuple[float, float]]) -> float:
    peak = max(rate for rate, _ in phases)
    start = 0.0
    for rate, seconds in phases:
        if rate == peak:
            return start
        start += seconds
    return start


def _first_error(path: Path) -> str | None:
    """The first failed request's error in the load generator's output, cut short."""
    try:
        with path.open() as source:
            for line in source:
                if '"ok":false' in line.replace(" ", ""):
                    error = str(json.loads(line).get("err", "?"))
                    return error if len(error) <= 160 else error[:157] + "..."
    except (OSError, ValueError, AttributeError):
        pass
    return None


def _load_counts(path: Path) -> tuple[int | None, int | None]:
    try:
        with path.open() as source:
            for line in source:
                if '"done"' in line:
                    done = json.loads(line)
                    return int(done["sent"]), int(done["failed"])
    except (OSError, ValueError, KeyError):
        pass
    return None, None


@contextlib.contextmanager
def _process(
    argv: list[str], log_path: Path, *, stdout_to_file: bool = False
) -> Iterator[subprocess.Popen[bytes]]:
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE,
            stdout=log if stdout_to_file else subprocess.PIPE,
            stderr=log if not stdout_to_file else subprocess.DEVNULL,
            start_new_session=True,
        )
        try:
            yield process
        finally:
            _end(process, process.stdin)


def _end(process: subprocess.Popen[bytes], stdin: IO[bytes] | None) -> None:
    with contextlib.suppress(OSError):
        if stdin is not None:
            stdin.close()  # the load generator stops on EOF
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def main_demo(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(prog="steward demo", description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--config", default="examples/local-demo.yaml", help="the demo site (default: %(default)s)"
    )
    parser.add_argument(
        "--out", default="run/demo", help="where the log, CSV and PNG go (default: %(default)s)"
    )
    parser.add_argument(
        "--ramp", default=DEFAULT_RAMP, help="RATE:SECONDS,... through the squids (default: %(default)s)"
    )
    parser.add_argument(
        "--jobs", type=int, default=8, help="jobs in the burst; 0: squids only (default: %(default)s)"
    )
    parser.add_argument(
        "--job-seconds", type=int, default=JOB_SECONDS, help="each job's length (default: %(default)s)"
    )
    parser.add_argument("--squid-service", default="squid")
    parser.add_argument("--startd-service", default="startd")
    parser.add_argument("--cm-service", default="condor-cm")
    parser.add_argument("--start-timeout", type=float, default=600, help="seconds for the site to come up")
    parser.add_argument("--settle-timeout", type=float, default=900, help="seconds for the scale-down")
    try:
        args = parser.parse_args(list(argv))
    except SystemExit as exc:  # --help (0) or a usage error (2), already printed
        return exc.code if isinstance(exc.code, int) else 2
    try:
        config = load_config(args.config)
        phases = parse_plan(args.ramp)
        if not phases or any(rate < 0 or seconds <= 0 for rate, seconds in phases):
            raise ValueError("every phase needs a rate >= 0 and seconds > 0")
        if args.jobs < 0:
            print(f"steward demo: --jobs must be >= 0, got {args.jobs}", file=sys.stderr)
            return 2
    except ConfigError as exc:
        print("\n".join(str(issue) for issue in exc.issues), file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"steward demo: --ramp: {exc}", file=sys.stderr)
        return 2
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    api = Client(_api_url(config), None, timeout_s=5.0)
    demo = Demo(args, config, api, out, phases)
    return _run(demo)


def _run(demo: Demo) -> int:
    from framework.liveview import LiveView  # noqa: PLC0415

    def on_signal(signum: int, frame: object) -> None:
        demo.stop.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    log_path = demo.out / "steward.log"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    demo.steward = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "framework.cli",
            "run",
            "--config",
            demo.args.config,
            "--log-file",
            str(log_path),
        ],
        stdin=subprocess.DEVNULL,
        start_new_session=True,  # Ctrl-C reaches the demo, which stops Steward in order
        env=env,
    )
    demo.events.append((time.time(), "Steward started"))
    view = LiveView(
        demo.api,
        notes=lambda: [
            f"Demo: {demo.phase}" + _ramp_note(demo),
            f"Log: {log_path}   Figure at the end: {demo.out / 'demo.png'}   Ctrl-C ends the demo early.",
        ],
    ).start()
    sampler = threading.Thread(target=_sampler, args=(demo,), name="demo-sampler", daemon=True)
    sampler.start()
    outcome = "completed"
    status = 0
    try:
        _scenario(demo)
    except Stopped as exc:
        outcome = str(exc)
        status = 0 if str(exc) == "interrupted" else 1
    finally:
        demo.stop.set()
        view.stop()
        sampler.join(timeout=10)
        print(
            "\nsteward demo: stopping Steward (it stops its embedded cluster and every container)...",
            flush=True,
        )
        steward_status = _stop_steward(demo.steward)
        for s, handler in previous.items():
            signal.signal(s, handler)
    if demo.sent_requests is None and demo.ramp_started is not None:  # ended early: what was sent
        demo.sent_requests, demo.failed_requests = _load_counts(demo.out / "loadgen.jsonl")
    write_csv(demo.rows, demo.out / "demo.csv")
    figure = demo.out / "demo.png"
    drawn = True
    try:
        plot(demo.rows, figure, squid_target=_squid_target(demo), events=demo.events)
    except ValueError as exc:
        print(f"steward demo: {exc}", file=sys.stderr)
        drawn = False
    print(f"steward demo: {outcome}; Steward exited with status {steward_status}")
    if demo.sent_requests is not None:
        print(f"  requests through the squids: {demo.sent_requests:,}, failed: {demo.failed_requests}")
        if demo.failed_requests:
            print(f"  the first failure: {_first_error(demo.out / 'loadgen.jsonl')}")
    print(f"  samples: {demo.out / 'demo.csv'}   log: {log_path}")
    if drawn:
        print(f"  figure: {figure}")
    return status if steward_status == 0 else 1


def _ramp_note(demo: Demo) -> str:
    if demo.ramp_started is None:
        return ""
    where = describe_ramp(demo.phases, time.time() - demo.ramp_started)
    return f"; {where}" if where else ""


def _stop_steward(process: subprocess.Popen[bytes] | None) -> int | None:
    if process is None:
        return None
    if process.poll() is None:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=300)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


def _squid_target(demo: Demo) -> float | None:
    service = demo.config.services.get(demo.args.squid_service)
    if service is None or service.autoscale is None:
        return None
    return float(service.autoscale.target_per_instance)
