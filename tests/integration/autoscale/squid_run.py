"""One squid autoscaling run on the embedded cluster, with real squids and real load; shared by the
end-to-end test (which asserts on it) and ``tests.bench.squid_e2e`` (which prints its figures).

What a run does:

1. ``start_runtime`` with ``master: local``: an in-process Mesos master with three agents whose
   tasks are Docker containers (host networking) on this machine, and one autoscaled squid service
   (``steward/squid:local``) whose load source is the squids' own cache managers. The agents offer
   ports from three free blocks of 1,000 picked at random below 30000 (below the kernel's ephemeral
   range, away from the other tests' 31000+, and unlikely to meet a concurrent run of these tests).
   Steward's operator API runs on 127.0.0.1 so that the client can read the published endpoints.
2. An origin (``loadgen.py origin``, its own process) on 127.0.0.1: small, never-cacheable answers,
   a share of them slow (``slow_s``), so that a draining squid has requests in flight.
3. The load (``loadgen.py load``, its own process): ``low_rate`` (below one instance's target), then
   ``high_rate`` (four times the target) for ``high_s``, then ``low_rate`` again until Steward is
   back at ``min`` with every removed squid gone; every request's outcome is recorded.
4. Meanwhile the test process samples Steward's snapshot every 0.25 s (the timeline) and records
   every KILL Steward sends (the scale-down victims, with the time of the decision).

:func:`run_squid_scenario` returns a :class:`SquidRunResult` with the raw records and the figures
(reaction time, failures, drained requests); nothing here asserts.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import docker
import docker.errors
import yaml

import framework.loadgen
from framework.api.server import ApiServer, start_api
from framework.config import load_config
from framework.localcluster.containerizers.base import LABEL_CLUSTER
from framework.runtime.app import Runtime, start_runtime
from tests.integration.images.support import wait_for

LOADGEN = Path(framework.loadgen.__file__)
PORT_RANGE_WIDTH = 1000


def port_free(port: int) -> bool:
    """Nothing listens on ``port`` (a listener on any address makes binding 127.0.0.1 fail)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def pick_agent_ports(agents: int = 3, low: int = 10_000, high: int = 30_000) -> list[tuple[int, int]]:
    """Port ranges for the embedded agents: consecutive blocks of 1,000 below the kernel's
    ephemeral ports (32768+), away from the default agents' 31000+ (other tests), at a random place
    whose first ports and whose top (where a fixed port may go) nobody listens on now. Another run
    of these tests at the same time then almost surely gets other ports: tasks claim the lowest
    ports of a range first, and a squid or collector on a taken port fails to start."""
    bases = list(range(low, high - agents * PORT_RANGE_WIDTH + 1, PORT_RANGE_WIDTH))
    random.SystemRandom().shuffle(bases)
    for base in bases:
        ranges = [
            (b, b + PORT_RANGE_WIDTH - 1)
            for b in range(base, base + agents * PORT_RANGE_WIDTH, PORT_RANGE_WIDTH)
        ]
        probes = [p for b, e in ranges for p in (*range(b, b + 30), *range(e - 10, e + 1))]
        if all(port_free(p) for p in probes):
            return ranges
    raise AssertionError(f"no free port ranges for {agents} agents in {low}-{high}")


def cluster_file(base: Path, ranges: list[tuple[int, int]]) -> Path:
    """An embedded cluster of Docker agents ``agent-1``... with these port ranges."""
    path = base / "cluster.yaml"
    agents = [{"hostname": f"agent-{n}", "ports": [f"{b}-{e}"]} for n, (b, e) in enumerate(ranges, 1)]
    path.write_text(
        yaml.safe_dump({"containerizer": "docker", "work_dir": str(base / "sandboxes"), "agents": agents})
    )
    return path


@dataclass(frozen=True)
class SquidRunParams:
    """The run's knobs; the defaults are the test's (about two minutes on a 2-core machine)."""

    target: float = 40.0
    """Requests/s one squid should carry (``target_per_instance``)."""
    capacity: float = 60.0
    """``capacity_per_instance`` (saturation is judged against it)."""
    low_rate: float = 20.0
    """Offered load before and after the step: half of one instance's target."""
    high_rate: float = 160.0
    """Offered load during the step: four times one instance's target."""
    low_s: float = 15.0
    high_s: float = 40.0
    tail_max_s: float = 150.0
    """Longest the final low phase may last while waiting for the scale-down to finish."""
    slow_fraction: float = 0.1
    slow_s: float = 8.0
    """Longer than Steward's pause between withdrawing a squid and stopping it, so that a squid
    still has requests in flight when its SIGTERM comes and must drain them."""
    min_instances: int = 1
    max_instances: int = 5
    interval_s: float = 1.0
    start_delay_s: float = 8.0
    kill_grace_s: float = 20.0
    """SIGTERM to SIGKILL; Steward gives squid this less 5 s to drain (SQUID_SHUTDOWN_LIFETIME)."""
    refresh_s: float = 1.0
    """How often the client re-reads the published endpoints."""

    @property
    def needed_at_peak(self) -> int:
        """Instances that carry the high load at target."""
        return math.ceil(self.high_rate / self.target - 1e-9)


@dataclass
class Kill:
    task_id: str
    reason: str
    decided_at: float
    """``time.time()`` when Steward decided the kill (and withdrew the endpoint)."""
    sent_at: float | None = None
    """``time.time()`` when the KILL went to the master (the SIGTERM follows at once)."""
    endpoint: str | None = None


@dataclass
class Tick:
    at: float
    desired: int
    running: int
    killing: int
    endpoints: tuple[str, ...]


@dataclass
class SquidRunResult:
    params: SquidRunParams
    requests: list[dict[str, Any]]
    phases: list[dict[str, Any]]
    client_endpoints: list[dict[str, Any]]
    """The endpoint lists the client saw, with when it saw them."""
    timeline: list[Tick]
    kills: list[Kill]
    decisions: list[str]
    terminal_states: dict[str, str]
    """Every squid task the master saw, by its final (or current) state."""
    containers_left: list[str]
    loadgen_exit: int | None
    notes: list[str] = field(default_factory=list)

    # -- the figures --

    @property
    def step_at(self) -> float:
        return next(p["t"] for p in self.phases if p["rate"] == self.params.high_rate)

    @property
    def fall_at(self) -> float | None:
        step = self.step_at
        return next((p["t"] for p in self.phases if p["t"] > step), None)

    @property
    def failures(self) -> list[dict[str, Any]]:
        return [r for r in self.requests if not r["ok"]]

    @property
    def retried(self) -> list[dict[str, Any]]:
        """Requests refused by at least one (draining) squid before another answered them."""
        return [r for r in self.requests if r["refused"]]

    @property
    def first_kill_at(self) -> float | None:
        return min((k.decided_at for k in self.kills), default=None)

    def failures_during_scale_down(self) -> list[dict[str, Any]]:
        start = self.first_kill_at
        if start is None:
            return []
        return [r for r in self.failures if r["t1"] >= start]

    def serving_at(self, count: int) -> float | None:
        """When ``count`` distinct endpoints had each answered a request sent after the step."""
        step = self.step_at
        first: dict[str, float] = {}
        for r in self.requests:
            if r["ok"] and r["t0"] >= step and r["ep"] is not None:
                first[r["ep"]] = min(r["t1"], first.get(r["ep"], math.inf))
        times = sorted(first.values())
        return times[count - 1] if len(times) >= count else None

    def reaction_s(self) -> float | None:
        """From the step to enough squids serving the high load through the published endpoints."""
        at = self.serving_at(self.params.needed_at_peak)
        return None if at is None else at - self.step_at

    def first_up_at(self) -> float | None:
        """When Steward first raised the desired count after the step (from the 0.25 s timeline)."""
        step = self.step_at
        before = [t.desired for t in self.timeline if t.at <= step]
        base = before[-1] if before else self.params.min_instances
        return next((t.at for t in self.timeline if t.at > step and t.desired > base), None)

    def peak_endpoints(self) -> int:
        return max((len(t.endpoints) for t in self.timeline), default=0)

    def drained_requests(self) -> list[dict[str, Any]]:
        """Requests a victim squid had in flight when its KILL (SIGTERM) was sent, answered in full:
        squid's drain at work."""
        found = []
        for kill in self.kills:
            if kill.sent_at is not None:
                found += [
                    r
                    for r in self.requests
                    if r["ep"] == kill.endpoint and r["ok"] and r["t0"] < kill.sent_at < r["t1"]
                ]
        return found

    def used_after_decision(self, slack_s: float) -> list[dict[str, Any]]:
        """Requests sent to a victim more than ``slack_s`` after its kill decision."""
        found = []
        for kill in self.kills:
            found += [
                r for r in self.requests if r["ep"] == kill.endpoint and r["t0"] > kill.decided_at + slack_s
            ]
        return found

    def offered_rate(self, start: float, end: float) -> float:
        n = sum(1 for r in self.requests if start <= r["t0"] < end)
        return n / (end - start) if end > start else 0.0

    def summary(self) -> str:
        """A readable account for failure messages and the benchmark."""
        lines = [f"params: {self.params}"]
        lines += [f"phase at {p['t']:.1f}: {p['rate']:g} req/s for {p['seconds']:g} s" for p in self.phases]
        lines.append(
            f"requests: {len(self.requests)}, failed: {len(self.failures)}, retried after a refusal: "
            f"{len(self.retried)}, drained in flight: {len(self.drained_requests())}"
        )
        for r in self.failures[:20]:
            lines.append(f"  FAILED {r}")
        lines.append("kills:")
        lines += [
            f"  decided {k.decided_at:.1f}, sent {k.sent_at or 0:.1f}: {k.task_id} ({k.endpoint}): {k.reason}"
            for k in self.kills
        ]
        lines.append("desired / running / killing / published, when they changed:")
        previous = None
        for t in self.timeline:
            now = (t.desired, t.running, t.killing, len(t.endpoints))
            if now != previous:
                lines.append(f"  {t.at:.1f} {now}")
                previous = now
        lines.append("decisions:")
        lines += [f"  {d}" for d in self.decisions]
        lines.append("client endpoint lists:")
        lines += [f"  {e['t']:.1f} {e['list']}" for e in self.client_endpoints]
        lines.append(
            "final states: " + ", ".join(f"{k}={v}" for k, v in sorted(self.terminal_states.items()))
        )
        lines += self.notes
        return "\n".join(lines)


class KillRecorder(logging.Handler):
    """Steward's kill decisions (its ``kill`` notes) and the KILLs it sent (``killing <task>:
    <reason>``), with the wall time each was logged."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.kills: dict[str, Kill] = {}
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        args = record.args if isinstance(record.args, tuple) else ()
        with self._guard:
            if record.msg == "%s" and len(args) == 1 and getattr(args[0], "kind", None) == "kill":
                note = args[0]
                task_id = str(note.task_id)
                self.kills.setdefault(task_id, Kill(task_id, str(note.text), record.created))
            elif record.msg == "killing %s: %s" and len(args) == 2:
                task_id = str(args[0])
                kill = self.kills.setdefault(task_id, Kill(task_id, str(args[1]), record.created))
                kill.reason = str(args[1])
                if kill.sent_at is None:
                    kill.sent_at = record.created

    def all(self) -> list[Kill]:
        with self._guard:
            return sorted(self.kills.values(), key=lambda k: k.decided_at)


def steward_config(params: SquidRunParams, base: Path) -> dict[str, Any]:
    agents = cluster_file(base, pick_agent_ports())
    return {
        "framework": {
            "name": "steward-autoscale-test",
            "master": "local",
            "local_cluster": {"listen": "127.0.0.1:0", "config": str(agents)},
            "store": {"type": "file", "path": str(base / "state")},
            "offers": {"refuse_seconds": "1s"},
        },
        "services": {
            "squid": {
                "kind": "squid",
                "container": {
                    "image": "steward/squid:local",
                    "environment": {
                        "SQUID_CACHE_MEM_MB": 16,
                        "SQUID_CACHE_DISK_MB": 0,
                        "SQUID_ALLOW_LOCAL_ORIGINS": 1,
                    },
                },
                "resources": {"cpus": 0.3, "mem": "256MiB"},
                # Up to two per host: max 5 squids on 3 agents (the kind's default is one per host).
                "constraints": [{"max_per": "hostname", "count": 2}],
                "health_check": {"type": "tcp", "interval": "1s", "grace_period": "30s"},
                "kill_grace_period": f"{params.kill_grace_s:g}s",
                "autoscale": {
                    "min": params.min_instances,
                    "max": params.max_instances,
                    "source": {"type": "squid"},
                    "target_per_instance": params.target,
                    "capacity_per_instance": params.capacity,
                    "interval": f"{params.interval_s:g}s",
                    "start_delay": f"{params.start_delay_s:g}s",
                    "up_window": "3s",
                    "up_period": "5s",
                    "forecast": "0s",
                    "down_window": "8s",
                    "down_votes": 3,
                    "down_period": "6s",
                    "down_cooldown": "10s",
                    "burst_memory": "0s",
                    "stale_after": "5s",
                },
            }
        },
    }


@contextlib.contextmanager
def _process(args: list[str], stdout: IO[Any] | int, stderr: IO[Any]) -> Iterator[subprocess.Popen[str]]:
    """A child process with a pipe to its stdin (closing it, or "stop", ends it)."""
    proc = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=stdout, stderr=stderr, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            with contextlib.suppress(OSError):
                assert proc.stdin is not None
                proc.stdin.close()
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(15)
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()


def _sample(runtime: Runtime, where: dict[str, str] | None = None) -> Tick | None:
    """Steward's view now; ``where`` collects each squid task's ``host:port``."""
    snapshot = runtime.scheduler.snapshot()
    if snapshot is None:
        return None
    if where is not None:
        for record in snapshot.tasks:
            if record.service == "squid" and record.hostname and record.ports:
                where.setdefault(record.task_id, f"{record.hostname}:{record.ports[0]}")
    numbers = snapshot.service("squid")
    return Tick(
        time.time(),
        numbers.desired,
        numbers.running,
        numbers.killing,
        tuple(snapshot.endpoints.get("squid", ())),
    )


def _master_tasks(runtime: Runtime) -> list[dict[str, Any]]:
    assert runtime.embedded is not None
    return [
        t for f in runtime.embedded.state()["frameworks"] for k in ("completed_tasks", "tasks") for t in f[k]
    ]


def _terminal_states(runtime: Runtime) -> dict[str, str]:
    return {task["id"]: task["state"] for task in _master_tasks(runtime)}


def _failure_messages(runtime: Runtime) -> list[str]:
    """Why squid tasks failed, from their last status (e.g. a port another process holds)."""
    found = []
    for task in _master_tasks(runtime):
        if task["state"] in ("TASK_FAILED", "TASK_ERROR", "TASK_LOST") and task.get("statuses"):
            found.append(f"{task['id']}: {task['state']}: {task['statuses'][-1].get('message', '')[:300]}")
    return found


def run_squid_scenario(params: SquidRunParams, base: Path, client: docker.DockerClient) -> SquidRunResult:
    """Run the scenario in ``base`` (a fresh directory); everything started is stopped on return."""
    recorder = KillRecorder()
    scheduler_log = logging.getLogger("framework.runtime.scheduler")
    previous_level = scheduler_log.level
    scheduler_log.setLevel(logging.INFO)
    scheduler_log.addHandler(recorder)
    config_path = base / "steward.yaml"
    config_path.write_text(yaml.safe_dump(steward_config(params, base)))
    config = load_config(config_path)
    notes: list[str] = []
    timeline: list[Tick] = []
    where: dict[str, str] = {}
    loadgen_out = base / "loadgen.jsonl"
    runtime = start_runtime(config)
    api: ApiServer | None = None
    cluster_id = runtime.embedded.cluster_id if runtime.embedded is not None else None
    loadgen_exit: int | None = None
    try:
        api = start_api(runtime, listen="127.0.0.1:0")
        endpoints_url = f"{api.url}/v1/services/squid/endpoints"
        wait_for(
            lambda: len((_sample(runtime) or Tick(0, 0, 0, 0, ())).endpoints) >= params.min_instances,
            120,
            f"{params.min_instances} squid(s) published",
        )
        with contextlib.ExitStack() as stack:
            origin = stack.enter_context(
                _process(
                    [sys.executable, str(LOADGEN), "origin", "--slow-seconds", str(params.slow_s)],
                    subprocess.PIPE,
                    stack.enter_context((base / "origin.stderr").open("w")),
                )
            )
            assert origin.stdout is not None
            origin_port = int(origin.stdout.readline().split()[1])
            sink = stack.enter_context(loadgen_out.open("w"))
            plan = (
                f"{params.low_rate:g}:{params.low_s:g},{params.high_rate:g}:{params.high_s:g},"
                f"{params.low_rate:g}:{params.tail_max_s:g}"
            )
            load = stack.enter_context(
                _process(
                    [
                        sys.executable,
                        str(LOADGEN),
                        "load",
                        "--endpoints-url",
                        endpoints_url,
                        "--origin",
                        f"http://127.0.0.1:{origin_port}",
                        "--plan",
                        plan,
                        "--slow-fraction",
                        str(params.slow_fraction),
                        "--refresh",
                        str(params.refresh_s),
                        "--workers",
                        "256",
                        "--max-seconds",
                        str(params.low_s + params.high_s + params.tail_max_s + 10),
                    ],
                    sink,
                    stack.enter_context((base / "loadgen.stderr").open("w")),
                )
            )
            stop_sampling = threading.Event()

            def sample_loop() -> None:
                while not stop_sampling.wait(0.25):
                    tick = _sample(runtime, where)
                    if tick is not None:
                        timeline.append(tick)

            sampler = threading.Thread(target=sample_loop, name="squid-run-sampler", daemon=True)
            sampler.start()
            try:
                started = time.monotonic()
                # The step, the scale-up, the fall, then back at min with every victim gone.
                try:
                    wait_for(
                        lambda: timeline and len(timeline[-1].endpoints) >= params.needed_at_peak,
                        params.low_s + params.high_s,
                        f"{params.needed_at_peak} squids published under the high load",
                    )
                except AssertionError as exc:
                    notes.append(str(exc))
                elapsed = time.monotonic() - started
                fall_after = max(0.0, params.low_s + params.high_s - elapsed)
                threading.Event().wait(fall_after)

                def back_at_min() -> bool:
                    tick = timeline[-1] if timeline else None
                    if tick is None or tick.desired != params.min_instances or tick.killing:
                        return False
                    if len(tick.endpoints) != params.min_instances:
                        return False
                    states = _terminal_states(runtime)
                    return all(
                        states.get(k.task_id) in ("TASK_KILLED", "TASK_FINISHED") for k in recorder.all()
                    )

                try:
                    wait_for(back_at_min, params.tail_max_s - 5, f"back at {params.min_instances} squid(s)")
                except AssertionError as exc:
                    notes.append(str(exc))
                threading.Event().wait(2.0)  # a little more load on the survivor after the last exit
            finally:
                assert load.stdin is not None
                with contextlib.suppress(OSError):
                    load.stdin.write("stop\n")
                    load.stdin.flush()
                try:
                    loadgen_exit = load.wait(60)
                except subprocess.TimeoutExpired:
                    notes.append("the load generator did not stop within 60 s")
                stop_sampling.set()
                sampler.join(5)
        for name in ("origin", "loadgen"):
            error_text = (base / f"{name}.stderr").read_text()
            if error_text.strip():
                notes.append(f"{name} stderr:\n{error_text[-3000:]}")
        events = [json.loads(line) for line in loadgen_out.read_text().splitlines() if line.strip()]
        decisions = [d.reason for d in runtime.autoscale.decisions("squid")]
        states = _terminal_states(runtime)
        notes += _failure_messages(runtime)
    finally:
        if api is not None:
            api.close()
        runtime.close()
        scheduler_log.removeHandler(recorder)
        scheduler_log.setLevel(previous_level)
    containers_left = []
    if cluster_id is not None:
        for container in client.containers.list(all=True, filters={"label": f"{LABEL_CLUSTER}={cluster_id}"}):
            containers_left.append(container.name)
            with contextlib.suppress(docker.errors.APIError):
                container.remove(force=True)
    kills = recorder.all()
    for kill in kills:
        kill.endpoint = where.get(kill.task_id)
    return SquidRunResult(
        params=params,
        requests=[e for e in events if e["ev"] == "req"],
        phases=[e for e in events if e["ev"] == "phase"],
        client_endpoints=[e for e in events if e["ev"] == "endpoints"],
        timeline=timeline,
        kills=kills,
        decisions=decisions,
        terminal_states=states,
        containers_left=containers_left,
        loadgen_exit=loadgen_exit,
        notes=notes,
    )
