"""The embedded local cluster at scale: 5,000 simulated agents, 10,000 tasks.

Two views of the same work, so a slow figure can be placed:

* **HTTP path** (``localcluster``): the cluster runs in a child process (its own interpreter and GIL,
  as ``steward local-cluster`` does); this process is a plain ``requests`` scheduler with its own
  RecordIO reader and ``json.loads``. Measured: starting the cluster, the first round of offers
  (every agent offered once), the offer rate in steady state (decline everything with a tiny filter,
  count what comes back), and the time to take 10,000 launches to TASK_RUNNING, acknowledging every
  STARTING and RUNNING update (30,000 HTTP calls with the ACCEPTs). The cluster's own CPU time for
  the launch phase is printed next to the wall time: when it is well below the wall time, the
  cluster was not the bottleneck (the Python HTTP client is).
* **State machine** (``localcluster_core``): the same launches driven straight into ``Master``
  (no HTTP, no threads, events still encoded as the runtime would), to show the master's own cost.

Figures only; nothing is asserted about speed.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import queue
import threading
import time
from collections.abc import Iterator
from multiprocessing.connection import Connection
from typing import Any

import requests

from tests.bench.registry import Figure, Options, register

__all__ = ["bench_local_cluster", "bench_local_cluster_core"]

AGENTS = 5_000
TASKS = 10_000
WORKERS = 8
SCHEDULER = "/api/v1/scheduler"


# --- the cluster process ---------------------------------------------------------------------------


def _cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def _serve(conn: Connection, agents: int) -> None:
    """Child process: run a simulated cluster until told to stop; report its CPU use on request."""
    from framework.localcluster.cluster import LocalCluster
    from framework.localcluster.config import AgentSpec, ClusterConfig

    specs = tuple(AgentSpec(hostname=f"agent-{n}", ports=((31000, 31999),)) for n in range(1, agents + 1))
    started = time.perf_counter()
    cluster = LocalCluster(
        ClusterConfig(
            listen="127.0.0.1:0",
            containerizer="simulated",
            agents=specs,
            allocation_interval_s=0.1,
            heartbeat_interval_s=15.0,
            simulated_start_delay_s=0.0,
            update_retry_initial_s=60.0,
            seed=1,
        )
    ).start()
    conn.send((cluster.url, time.perf_counter() - started))
    try:
        while True:
            message = conn.recv()
            if message == "cpu":
                conn.send(_cpu_seconds())
            elif message == "stop":
                break
    finally:
        cluster.stop()
        conn.send("stopped")


# --- a minimal scheduler -----------------------------------------------------------------------------


class _Driver:
    """Subscribes, collects offers, launches, acknowledges: requests + json, as any framework might."""

    def __init__(self, url: str, expected_tasks: int) -> None:
        self.url = url + SCHEDULER
        self.offers: queue.Queue[list[dict[str, Any]]] = queue.Queue()
        self.running = 0
        self.expected = expected_tasks
        self.all_running = threading.Event()
        self.framework_id = ""
        self.stream_id = ""
        self.subscribed = threading.Event()
        self._acks: queue.Queue[str | None] = queue.Queue()
        self._calls: queue.Queue[str | None] = queue.Queue()
        self._stream_session = requests.Session()
        self._threads: list[threading.Thread] = []
        self._response: requests.Response | None = None

    def start(self) -> None:
        body = {
            "type": "SUBSCRIBE",
            "subscribe": {
                "framework_info": {
                    "user": "bench",
                    "name": "bench",
                    "roles": ["*"],
                    "capabilities": [{"type": "MULTI_ROLE"}],
                }
            },
        }
        self._response = self._stream_session.post(
            self.url, json=body, headers={"Accept": "application/json"}, stream=True, timeout=(10, 600)
        )
        self.stream_id = self._response.headers["Mesos-Stream-Id"]
        reader = threading.Thread(target=self._read, name="bench-reader", daemon=True)
        reader.start()
        self._threads.append(reader)
        for n in range(WORKERS):
            for q, name in ((self._acks, "ack"), (self._calls, "call")):
                worker = threading.Thread(
                    target=self._post_from, args=(q,), name=f"bench-{name}-{n}", daemon=True
                )
                worker.start()
                self._threads.append(worker)
        if not self.subscribed.wait(30):
            raise RuntimeError("no SUBSCRIBED from the cluster")

    def _read(self) -> None:
        assert self._response is not None
        buf = b""
        try:
            for chunk in self._response.iter_content(chunk_size=None):
                buf += chunk
                while True:
                    newline = buf.find(b"\n")
                    if newline < 0:
                        break
                    size = int(buf[:newline])
                    if len(buf) < newline + 1 + size:
                        break
                    self._on_event(json.loads(buf[newline + 1 : newline + 1 + size]))
                    buf = buf[newline + 1 + size :]
        except Exception:  # the stream is closed at the end of the run
            pass

    def _on_event(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "SUBSCRIBED":
            self.framework_id = event["subscribed"]["framework_id"]["value"]
            self.subscribed.set()
        elif kind == "OFFERS":
            self.offers.put(event["offers"]["offers"])
        elif kind == "UPDATE":
            status = event["update"]["status"]
            if "uuid" in status:
                ack = {
                    "type": "ACKNOWLEDGE",
                    "framework_id": {"value": self.framework_id},
                    "acknowledge": {
                        "agent_id": status["agent_id"],
                        "task_id": status["task_id"],
                        "uuid": status["uuid"],
                    },
                }
                self._acks.put(json.dumps(ack))
            if status["state"] == "TASK_RUNNING" and "uuid" in status:
                self.running += 1
                if self.running >= self.expected:
                    self.all_running.set()

    def _post_from(self, jobs: queue.Queue[str | None]) -> None:
        session = requests.Session()
        headers = {"Content-Type": "application/json", "Mesos-Stream-Id": self.stream_id}
        while (body := jobs.get()) is not None:
            response = session.post(self.url, data=body, headers=headers, timeout=60)
            if response.status_code not in (200, 202):
                print(f"  call answered {response.status_code}: {response.text[:200]}")
        session.close()

    def call(self, body: dict[str, Any]) -> None:
        body["framework_id"] = {"value": self.framework_id}
        self._calls.put(json.dumps(body))

    def offers_within(self, count: int, timeout: float) -> list[dict[str, Any]]:
        got: list[dict[str, Any]] = []
        deadline = time.monotonic() + timeout
        while len(got) < count:
            got.extend(self.offers.get(timeout=max(0.0, deadline - time.monotonic())))
        return got

    def finish_calls(self) -> None:
        """Let the workers send the calls still queued (acknowledgements of the last updates)."""
        for _ in range(WORKERS):
            self._acks.put(None)
            self._calls.put(None)
        for thread in self._threads[1:]:
            thread.join(timeout=60)

    def close(self) -> None:
        """After the cluster stopped (which ends the stream): release the stream reader."""
        if self._response is not None:
            self._response.close()
        self._stream_session.close()
        self._threads[0].join(timeout=10)


def _launch(offer: dict[str, Any], per_offer: int, start: int) -> dict[str, Any]:
    tasks = []
    for i in range(per_offer):
        resources = [
            {
                "name": "cpus",
                "type": "SCALAR",
                "scalar": {"value": 1.0},
                "role": "*",
                "allocation_info": {"role": "*"},
            },
            {
                "name": "mem",
                "type": "SCALAR",
                "scalar": {"value": 128.0},
                "role": "*",
                "allocation_info": {"role": "*"},
            },
        ]
        tasks.append(
            {
                "name": "bench",
                "task_id": {"value": f"bench-{start + i}"},
                "agent_id": offer["agent_id"],
                "resources": resources,
                "command": {"value": "sleep 1000"},
            }
        )
    return {
        "type": "ACCEPT",
        "accept": {
            "offer_ids": [offer["id"]],
            "operations": [{"type": "LAUNCH", "launch": {"task_infos": tasks}}],
            "filters": {"refuse_seconds": 3600},
        },
    }


@register("localcluster", "local cluster over HTTP: 5,000 simulated agents, 10,000 launches to RUNNING")
def bench_local_cluster(options: Options) -> list[Figure]:
    agents = max(10, round(AGENTS * options.scale))
    tasks = 2 * agents
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(target=_serve, args=(child, agents), name="bench-localcluster")
    process.start()
    figures: list[Figure] = []
    driver: _Driver | None = None
    try:
        url, start_s = parent.recv()
        figures.append(Figure(f"start a cluster of {agents} agents", start_s * 1000, "ms"))
        driver = _Driver(url, tasks)
        t0 = time.perf_counter()
        driver.start()
        first = driver.offers_within(agents, timeout=120)
        first_s = time.perf_counter() - t0
        figures.append(Figure("first offers: all agents offered", agents / first_s, "offers/s"))

        # Steady state: decline everything with a tiny filter, count what the master sends again.
        rounds = max(2, options.repeat)
        pending = first
        t0 = time.perf_counter()
        offered = 0
        for _ in range(rounds):
            driver.call(
                {
                    "type": "DECLINE",
                    "decline": {
                        "offer_ids": [o["id"] for o in pending],
                        "filters": {"refuse_seconds": 0.001},
                    },
                }
            )
            pending = driver.offers_within(agents, timeout=120)
            offered += len(pending)
        figures.append(
            Figure(
                "offers re-sent after DECLINE (steady state)",
                offered / (time.perf_counter() - t0),
                "offers/s",
            )
        )

        cpu_before = _ask(parent, "cpu")
        t0 = time.perf_counter()
        for n, offer in enumerate(pending):
            driver.call(_launch(offer, 2, 2 * n))
        if not driver.all_running.wait(600):
            raise RuntimeError(f"only {driver.running} of {tasks} tasks reached TASK_RUNNING")
        launch_s = time.perf_counter() - t0
        cluster_cpu = _ask(parent, "cpu") - cpu_before
        figures.append(Figure(f"{tasks} launches to TASK_RUNNING (acks included)", launch_s * 1000, "ms"))
        figures.append(Figure("  launch rate", tasks / launch_s, "tasks/s"))
        figures.append(Figure("  cluster CPU during the launches", cluster_cpu * 1000, "ms"))
        figures.append(Figure("  cluster CPU / wall time", cluster_cpu / launch_s, "x"))
    finally:
        if driver is not None:
            driver.finish_calls()
        parent.send("stop")
        _drain(parent)
        if driver is not None:
            driver.close()
        process.join(timeout=120)
        if process.is_alive():
            process.kill()
    return figures


def _ask(conn: Connection, message: str) -> float:
    conn.send(message)
    value: float = conn.recv()
    return value


def _drain(conn: Connection) -> None:
    while conn.poll(60):
        if conn.recv() == "stopped":
            return


# --- the state machine alone -------------------------------------------------------------------------


def _timed() -> Iterator[float]:
    start = time.perf_counter()
    while True:
        yield time.perf_counter() - start


@register("localcluster_core", "local master state machine: allocate and launch 10,000 tasks, no HTTP")
def bench_local_cluster_core(options: Options) -> list[Figure]:
    import base64
    import uuid

    from framework.localcluster.master import AgentRecord, Master, MasterConfig, SendEvent
    from framework.localcluster.resources import Resources
    from framework.mesos import recordio, wire
    from framework.mesos.wire import Accept, Acknowledge, SchedulerCall, Subscribe
    from framework.model.proto import (
        AgentID,
        CommandInfo,
        FrameworkCapability,
        FrameworkID,
        FrameworkInfo,
        LaunchOperation,
        Operation,
        Resource,
        Scalar,
        TaskID,
        TaskInfo,
        TaskState,
        TaskStatus,
    )

    agents = max(10, round(AGENTS * options.scale))
    best: dict[str, float] = {}
    for _ in range(max(1, options.repeat)):
        master = Master(MasterConfig(), master_id="bench", now=0.0, seed=1)
        clock = _timed()
        next(clock)
        for n in range(agents):
            master.register_agent(
                AgentRecord(f"S{n}", f"agent-{n}", Resources.of(cpus=4, mem=8192, ports=[(31000, 31999)])),
                0.0,
            )
        t_register = next(clock)
        info = FrameworkInfo(
            user="b", name="b", roles=("*",), capabilities=(FrameworkCapability(type="MULTI_ROLE"),)
        )
        master.subscribe("s", SchedulerCall(type="SUBSCRIBE", subscribe=Subscribe(framework_info=info)), 0.0)
        fid = next(iter(master.frameworks))
        t0 = next(clock)
        effects = master.tick(1.0)
        encoded = [recordio.encode(wire.encode(e.event)) for e in effects if isinstance(e, SendEvent)]
        t_offers = next(clock) - t0
        offers = [
            o for e in effects if isinstance(e, SendEvent) and e.event.offers for o in e.event.offers.offers
        ]
        del encoded
        t0 = next(clock)
        count = 0
        for offer in offers:
            tasks = tuple(
                TaskInfo(
                    name="b",
                    task_id=TaskID(f"t{count + i}"),
                    agent_id=offer.agent_id,
                    resources=(Resource(name="cpus", type="SCALAR", scalar=Scalar(value=1.0)),),
                    command=CommandInfo(value="x"),
                )
                for i in range(2)
            )
            count += 2
            call = SchedulerCall(
                type="ACCEPT",
                framework_id=FrameworkID(fid),
                accept=Accept(
                    offer_ids=(offer.id,),
                    operations=(Operation(type="LAUNCH", launch=LaunchOperation(task_infos=tasks)),),
                ),
            )
            master.handle_call(call, "s", 2.0)
            for task in tasks:
                for state in (TaskState.TASK_STARTING, TaskState.TASK_RUNNING):
                    uid = base64.b64encode(uuid.uuid4().bytes).decode()
                    status = TaskStatus(
                        task_id=task.task_id,
                        state=state,
                        source="SOURCE_EXECUTOR",
                        agent_id=offer.agent_id,
                        uuid=uid,
                    )
                    for effect in master.status_update(offer.agent_id.value, fid, status, state, 2.0):
                        if isinstance(effect, SendEvent):
                            recordio.encode(wire.encode(effect.event))
                    ack = SchedulerCall(
                        type="ACKNOWLEDGE",
                        framework_id=FrameworkID(fid),
                        acknowledge=Acknowledge(
                            agent_id=AgentID(offer.agent_id.value), task_id=task.task_id, uuid=uid
                        ),
                    )
                    master.handle_call(ack, "s", 2.0)
        t_launch = next(clock) - t0
        for key, value in (("register", t_register), ("offers", t_offers), ("launch", t_launch)):
            best[key] = min(best.get(key, value), value)
        best["tasks"] = count
    return [
        Figure(f"register {agents} agents", best["register"] * 1000, "ms"),
        Figure(f"allocate + encode {agents} offers", agents / best["offers"], "offers/s"),
        Figure(
            f"{int(best['tasks'])} launches, 2 updates + 2 acks each",
            best["tasks"] / best["launch"],
            "tasks/s",
        ),
    ]
