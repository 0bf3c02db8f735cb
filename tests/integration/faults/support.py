"""What the fault tests share: a fast cluster, site files, waiting, Steward as a child process, checks.

The checks compare three views of the same tasks and say what differs:

* the **cluster** (``LocalCluster.state()``, Mesos's ``/state``): what really runs;
* the **store** (the SQLite file Steward writes ahead of every action): what Steward will remember
  after a crash;
* the **desired** instance counts of the site file.

``problems(...)`` returns every difference as a sentence, so a failing test says all that went wrong
at once instead of the first assertion.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from framework.localcluster.cluster import LocalCluster
from framework.localcluster.config import ClusterConfig
from framework.model.tasks import TaskRecord, parse_task_id
from framework.store.sqlite import SQLiteStore

T = TypeVar("T")

REPO_ROOT = Path(__file__).resolve().parents[3]
WAIT = 30.0
"""Generous limit for anything the tests wait for (they normally take well under a second)."""

FAST = ClusterConfig(
    listen="127.0.0.1:0",
    containerizer="simulated",
    agent_count=4,
    heartbeat_interval_s=1.0,
    allocation_interval_s=0.1,
    update_retry_initial_s=0.5,
    update_retry_max_s=2.0,
    agent_ping_timeout_s=0.5,
    agent_reregister_timeout_s=1.0,
    simulated_start_delay_s=0.2,
    seed=11,
)
"""Short intervals: heartbeats every second, offers every 0.1 s, updates resent after 0.5 s."""

LIVE_STATES = frozenset({"TASK_STAGING", "TASK_STARTING", "TASK_RUNNING", "TASK_KILLING", "TASK_UNREACHABLE"})


def wait_for(predicate: Callable[[], T], what: str, timeout: float = WAIT, interval: float = 0.05) -> T:
    """Poll ``predicate`` until it returns something true and return that; fail naming ``what``."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        time.sleep(interval)


# --- site files ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Service:
    """One generic service of a test site."""

    instances: int
    image: str = "example/web:1"
    command: str | None = None
    cpus: float = 0.1
    mem: str = "32MiB"
    user: str | None = None


def site_yaml(
    master: str,
    store: Path,
    services: Mapping[str, Service | int],
    *,
    name: str = "faults",
    user: str | None = None,
) -> str:
    """A site file for ``master`` with ``services`` (an int is that many instances of a default)."""
    lines = [
        "framework:",
        f"  name: {name}",
        f"  master: {master}",
        f"  store: {{type: file, path: {store}}}",
        "  offers: {refuse_seconds: 120s, revive_min_interval: 0.5s}",
        "  heartbeat: {misses: 3}",
    ]
    if user is not None:
        lines.append(f"  user: {user}")
    lines.append("services:")
    for service_name, spec in services.items():
        service = Service(spec) if isinstance(spec, int) else spec
        container = [f"image: {service.image}"]
        if service.command is not None:
            container.append(f"command: {service.command!r}")
        if service.user is not None:
            container.append(f"user: {service.user}")
        lines += [
            f"  {service_name}:",
            "    kind: generic",
            f"    container: {{{', '.join(container)}}}",
            f"    resources: {{cpus: {service.cpus}, mem: {service.mem}}}",
            f"    instances: {service.instances}",
        ]
    return "\n".join(lines) + "\n"


# --- the cluster's view -----------------------------------------------------------------------------


@dataclass(frozen=True)
class ClusterTask:
    task_id: str
    state: str
    agent_id: str


def framework_ids(cluster: LocalCluster) -> list[str]:
    state = cluster.state()
    return [f["id"] for f in state["frameworks"]] + [f["id"] for f in state["completed_frameworks"]]


def cluster_tasks(cluster: LocalCluster, framework_id: str) -> dict[str, ClusterTask]:
    """The framework's live tasks as the master reports them (including unreachable ones)."""
    found: dict[str, ClusterTask] = {}
    for framework in cluster.state()["frameworks"]:
        if framework["id"] != framework_id:
            continue
        for task in framework["tasks"] + framework["unreachable_tasks"]:
            if task["state"] in LIVE_STATES:
                found[task["id"]] = ClusterTask(task["id"], task["state"], task["slave_id"])
    return found


def ended_tasks(cluster: LocalCluster, framework_id: str) -> Counter[str]:
    """How many of the framework's tasks ended, by final state (TASK_KILLED, TASK_GONE, ...).

    A task whose terminal update is not acknowledged yet is still among ``tasks``; it counts."""
    counts: Counter[str] = Counter()
    for framework in cluster.state()["frameworks"]:
        if framework["id"] == framework_id:
            ended = [t for t in framework["tasks"] if t["state"] not in LIVE_STATES]
            counts.update(task["state"] for task in framework["completed_tasks"] + ended)
    return counts


def running_by_service(tasks: Iterable[ClusterTask]) -> Counter[str]:
    counts: Counter[str] = Counter()
    for task in tasks:
        parsed = parse_task_id(task.task_id)
        if task.state == "TASK_RUNNING" and parsed is not None:
            counts[parsed[0]] += 1
    return counts


def converged(cluster: LocalCluster, framework_id: str, desired: Mapping[str, int]) -> bool:
    """Every desired instance RUNNING in the cluster and nothing else live."""
    tasks = cluster_tasks(cluster, framework_id).values()
    return all(t.state == "TASK_RUNNING" for t in tasks) and running_by_service(tasks) == Counter(
        {name: count for name, count in desired.items() if count}
    )


def problems(
    cluster: Mapping[str, ClusterTask], store: Iterable[TaskRecord], desired: Mapping[str, int]
) -> list[str]:
    """Every way the cluster, the store and the desired counts disagree (empty: all is well).

    * lost: a service with fewer RUNNING tasks than desired;
    * duplicated: two live tasks in one service slot, or more live tasks than desired;
    * orphan: a live task in the cluster that the store does not know;
    * stale: a stored record of a task the cluster does not run, or stored as not running.
    """
    out: list[str] = []
    records = {r.task_id: r for r in store}
    slots: dict[tuple[str, int], list[str]] = {}
    live_by_service: Counter[str] = Counter()
    for task in cluster.values():
        parsed = parse_task_id(task.task_id)
        if parsed is None:
            out.append(f"orphan: {task.task_id} names no service slot")
            continue
        slots.setdefault(parsed, []).append(task.task_id)
        live_by_service[parsed[0]] += 1
        if task.task_id not in records:
            out.append(f"orphan: {task.task_id} ({task.state}) runs but the store does not know it")
        if task.state != "TASK_RUNNING":
            out.append(f"not running: {task.task_id} is {task.state}")
    for (service, slot), ids in sorted(slots.items()):
        if len(ids) > 1:
            out.append(f"duplicated: {service} slot {slot} has {len(ids)} live tasks {sorted(ids)}")
    running = running_by_service(cluster.values())
    for service, count in sorted(desired.items()):
        if running[service] < count:
            out.append(f"lost: {service} has {running[service]} running of {count} desired")
        if live_by_service[service] > count:
            out.append(f"duplicated: {service} has {live_by_service[service]} live tasks, desired {count}")
    for service in sorted(set(live_by_service) - set(desired)):
        out.append(f"orphan: {live_by_service[service]} live task(s) of unknown service {service}")
    for task_id, record in sorted(records.items()):
        found = cluster.get(task_id)
        if found is None:
            out.append(
                f"stale: the store holds {task_id} ({record.state.value}), the cluster does not run it"
            )
        elif record.state.value != found.state:
            out.append(f"stale: the store says {task_id} is {record.state.value}, the cluster {found.state}")
    return out


def stored(store_dir: Path) -> list[TaskRecord]:
    """The task records in Steward's SQLite store (read with Steward stopped, or concurrently:
    WAL readers do not block the writer)."""
    store = SQLiteStore(store_dir)
    try:
        return store.load_tasks()
    finally:
        store.close()


# --- Steward as a child process ---------------------------------------------------------------------


class StewardProcess:
    """``python -m framework.cli run --config FILE`` with its log collected line by line.

    Every log line is kept with the monotonic time it was read, so a test can wait for a line,
    anchor a random delay on it, and check the order of what Steward did (``index``).
    """

    def __init__(self, config_path: Path, log_path: Path) -> None:
        self.config_path = config_path
        self.lines: list[tuple[float, str]] = []
        self._cond = threading.Condition()
        self._log = log_path.open("a", encoding="utf-8")
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.started_at = time.monotonic()
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "framework.cli",
                "run",
                "--config",
                str(config_path),
                "--log-level",
                "info",
            ],
            cwd=REPO_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._reader = threading.Thread(target=self._read, name=f"steward-log-{self.proc.pid}", daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append((time.monotonic(), line.rstrip("\n")))
                self._cond.notify_all()
            self._log.write(line)
        with self._cond:
            self._cond.notify_all()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None

    def index(self, needle: str) -> int | None:
        """Position of the first log line containing ``needle`` (None: not logged)."""
        with self._cond:
            for n, (_, line) in enumerate(self.lines):
                if needle in line:
                    return n
        return None

    def count(self, needle: str) -> int:
        with self._cond:
            return sum(1 for _, line in self.lines if needle in line)

    def wait_line(self, needle: str, timeout: float = WAIT) -> float:
        """Wait until a line containing ``needle`` is logged; return when it was read."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for at, line in self.lines:
                    if needle in line:
                        return at
                if self.proc.poll() is not None and not self._reader.is_alive():
                    raise AssertionError(f"Steward exited ({self.proc.returncode}) before logging {needle!r}")
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"Steward did not log {needle!r} within {timeout:g} s")
                self._cond.wait(min(left, 0.2))

    def kill9(self) -> None:
        """SIGKILL: no cleanup of any kind happens in Steward."""
        if self.alive:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(WAIT)
        self._finish()

    def terminate(self) -> int:
        """SIGTERM (a clean stop: no TEARDOWN, tasks keep running); returns the exit status."""
        if self.alive:
            self.proc.send_signal(signal.SIGTERM)
        try:
            status = self.proc.wait(WAIT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            status = self.proc.wait(WAIT)
        self._finish()
        return status

    def _finish(self) -> None:
        self._reader.join(WAIT)
        if self.proc.stderr is not None:
            self.proc.stderr.close()
        self._log.close()

    def text(self) -> str:
        with self._cond:
            return "\n".join(line for _, line in self.lines)


def log_order_problems(steward: StewardProcess) -> list[str]:
    """A KILL sent before reconciliation finished (the runtime logs "killing ..." per KILL, and the
    core notes "reconciled" when every known task answered)."""
    first_kill = steward.index("killing ")
    reconciled = steward.index("kind='reconciled'")
    if first_kill is not None and (reconciled is None or first_kill < reconciled):
        return [f"Steward sent a KILL before it had reconciled: {steward.lines[first_kill][1]}"]
    return []
