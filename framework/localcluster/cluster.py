"""``LocalCluster``: one process that is a Mesos master plus N agents, speaking the v1 scheduler API.

This is the runtime around the pure pieces: it owns one thread (the *loop*) on which the
``Master`` state machine and every ``Agent`` live, an inbox through which everything else reaches
that thread (HTTP handler threads, containerizer threads, the public methods below), a timer heap
for the agents' update retries, and the HTTP server. The loop takes an input, lets the master or an
agent decide, and carries out the resulting effects: events are framed as RecordIO and queued on
the subscriber's stream (never blocking), agent commands are method calls on the agent, and
messages from agents to the master go through a local queue that the loop drains after each input,
so nothing recurses and a partitioned agent's messages can simply be dropped.

Fault injection for tests (all synchronous: the change has been applied when they return)::

    cluster.make_agent_unreachable(agent_id)   # partition; unreachable after agent_ping_timeout
    cluster.reconnect_agent(agent_id)          # heal; tasks come back with REASON_AGENT_REREGISTERED
    cluster.remove_agent(agent_id)             # gone for good (MARK_AGENT_GONE); tasks killed
    cluster.restart_master()                   # failover: new master id, streams closed, state
                                               # recovered from the agents' re-registration
    cluster.redirect_to("http://host:port")    # become a standby that answers 307 (None: lead again)
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import logging
import queue
import shutil
import signal
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlsplit

from framework.config.addresses import parse_host_port
from framework.config.errors import ConfigError
from framework.localcluster.agent import Agent, AgentContext
from framework.localcluster.config import AgentSpec, ClusterConfig, load_cluster_config
from framework.localcluster.containerizers.base import Containerizer
from framework.localcluster.containerizers.simulated import SimulatedContainerizer, SimulatedRuntime
from framework.localcluster.http import ClusterHttpServer, EventStream
from framework.localcluster.master import (
    AcknowledgeUpdate,
    AgentRegistered,
    CloseStream,
    Effect,
    KillTask,
    LaunchTasks,
    Master,
    MasterConfig,
    Reply,
    SendEvent,
    SendFrameworkMessage,
    ShutdownAgent,
    ShutdownExecutor,
    ShutdownFramework,
)
from framework.localcluster.state import render_metrics, render_state
from framework.mesos import recordio, wire
from framework.mesos.wire import SchedulerCall
from framework.model.proto import Attribute, TaskState, TaskStatus, Text

__all__ = ["LocalCluster", "main_local_cluster"]

log = logging.getLogger(__name__)

T = TypeVar("T")
_ToMaster = Callable[[Master, float], list[Effect]]
"""A message from an agent, applied to whichever master is current when it is delivered."""
_CALL_TIMEOUT_S = 30.0


class _Future:
    __slots__ = ("_done", "_error", "_value")

    def __init__(self) -> None:
        self._done = threading.Event()
        self._value: Any = None
        self._error: BaseException | None = None

    def set(self, value: Any) -> None:
        self._value = value
        self._done.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._done.set()

    def wait(self, timeout: float) -> Any:
        if not self._done.wait(timeout):
            raise TimeoutError("the local cluster's loop did not answer in time")
        if self._error is not None:
            raise self._error
        return self._value


class _Link:
    """An agent's messages to the master, queued for the loop (dropped while partitioned)."""

    def __init__(self, cluster: LocalCluster, agent_id: str) -> None:
        self._cluster = cluster
        self._agent_id = agent_id

    def status_update(self, agent_id: str, framework_id: str, status: TaskStatus, latest: TaskState) -> None:
        def deliver(master: Master, now: float) -> list[Effect]:
            return master.status_update(agent_id, framework_id, status, latest, now)

        self._cluster._to_master_send(agent_id, "status update", deliver)

    def executor_exited(self, agent_id: str, framework_id: str, executor_id: str, status: int) -> None:
        def deliver(master: Master, now: float) -> list[Effect]:
            return master.executor_exited(agent_id, framework_id, executor_id, status, now)

        self._cluster._to_master_send(agent_id, "executor exit", deliver)

    def executor_message(self, agent_id: str, framework_id: str, executor_id: str, data: str) -> None:
        def deliver(master: Master, now: float) -> list[Effect]:
            return master.executor_message(agent_id, framework_id, executor_id, data, now)

        self._cluster._to_master_send(agent_id, "executor message", deliver)


class LocalCluster:
    """A Mesos-compatible master and agents in this process (see the module docstring).

    ``LocalCluster(ClusterConfig(listen="127.0.0.1:0", containerizer="simulated"))`` then ``start()``
    (or use it as a context manager); ``url`` is the master's base URL. ``stop()`` kills every task,
    closes every stream and removes the temporary work directory.
    """

    def __init__(
        self,
        config: ClusterConfig | None = None,
        *,
        containerizer_factory: Callable[[AgentSpec, str], Containerizer] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config or ClusterConfig()
        problems = self.config.problems()
        if problems:
            raise ValueError("; ".join(problems))
        self._containerizer_factory = containerizer_factory
        self._clock = clock
        self._wall_offset = time.time() - clock()
        self._inbox: queue.SimpleQueue[Callable[[], None] | None] = queue.SimpleQueue()
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._to_master: deque[tuple[str, str, _ToMaster]] = deque()
        self._partitioned: set[str] = set()
        self._agents: dict[str, Agent] = {}
        self._agent_order: list[str] = []
        self._retired: list[threading.Thread] = []
        self._loop_thread: threading.Thread | None = None
        self._http: ClusterHttpServer | None = None
        self._master: Master | None = None
        self._sim_runtime: SimulatedRuntime | None = None
        self._work_dir: Path | None = None
        self._own_work_dir = False
        self._redirect: str | None = None
        self._stopping = False
        self._started = False
        self.cluster_id = ""
        self.host = ""
        self.port = 0
        self.stream_queue_limit = self.config.stream_queue_limit

    # === lifecycle ==============================================================================

    @property
    def url(self) -> str:
        """``http://host:port`` of the master."""
        return f"http://{self.host}:{self.port}"

    @property
    def work_dir(self) -> Path:
        assert self._work_dir is not None
        return self._work_dir

    def start(self) -> LocalCluster:
        if self._started:
            return self
        config = self.config
        host, port = parse_host_port(config.listen, allow_port_zero=True)
        if config.leader_url is not None:
            self.redirect_to(config.leader_url)
        self._http = ClusterHttpServer((host, port), self)
        self.host, self.port = host, self._http.port
        self.cluster_id = config.cluster_id or f"localcluster-{self.port}"
        if config.work_dir is None:
            self._work_dir = Path(tempfile.mkdtemp(prefix="steward-localcluster-"))
            self._own_work_dir = True
        else:
            self._work_dir = Path(config.work_dir)
            self._work_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._master = self._new_master(registry=None)
            self._create_agents()
            self._loop_thread = threading.Thread(target=self._loop, name="localcluster-loop", daemon=True)
            self._loop_thread.start()
            self._call(self._register_all_agents)
            self._http.start()
        except BaseException:
            self.stop()
            raise
        self._started = True
        log.info(
            "local cluster %s: master %s at %s with %d %s agents",
            self.cluster_id,
            self._master.id,
            self.url,
            len(self._agents),
            config.containerizer,
        )
        return self

    def stop(self) -> None:
        """Kill every task, close every connection, join every thread, remove the temp work dir."""
        if self._stopping:
            return
        self._stopping = True
        if self._http is not None:
            self._http.stop()
        if self._loop_thread is not None:
            runners: list[Containerizer] = []
            try:
                runners = self._call(self._stop_agents)
            except (TimeoutError, RuntimeError):
                log.exception("could not stop the agents cleanly")
            self._inbox.put(None)
            self._loop_thread.join(timeout=30)
            self._loop_thread = None
        else:
            runners = [r for agent in self._agents.values() for r in agent.stop()]
        # Containerizers shut down in parallel: each may wait for its tasks' grace periods.
        threads = [threading.Thread(target=_shutdown_quietly, args=(r,), name="shutdown") for r in runners]
        for thread in threads:
            thread.start()
        for thread in threads + self._retired:
            thread.join(timeout=60)
        if self._sim_runtime is not None:
            self._sim_runtime.close()
        if self._own_work_dir and self._work_dir is not None:
            shutil.rmtree(self._work_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def run_until_interrupted(self) -> None:
        """Serve until SIGINT or SIGTERM (call from the main thread), then stop."""
        done = threading.Event()

        def on_signal(signum: int, frame: object) -> None:
            done.set()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            while not done.wait(0.5):
                pass
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stop()

    # === public queries =========================================================================

    @property
    def master_id(self) -> str:
        return self._call(lambda: self._require_master().id)

    @property
    def agent_ids(self) -> list[str]:
        """Agent ids in creation order (removed agents are not listed)."""
        return [aid for aid in self._agent_order if aid in self._agents and not self._agents[aid].stopped]

    def agent_hostname(self, agent_id: str) -> str:
        return self._agents[agent_id].hostname

    def state(self) -> dict[str, Any]:
        """The ``/state`` document (Mesos's legacy JSON model)."""
        return self.read_state()

    def metrics(self) -> dict[str, float]:
        return self.read_metrics()

    def agent_task_count(self, agent_id: str) -> int:
        """Tasks the agent still tracks (including terminal ones whose update is unacknowledged)."""
        return self._call(self._agents[agent_id].task_count)

    # === fault injection ========================================================================

    def make_agent_unreachable(self, agent_id: str) -> None:
        """Partition the agent: its messages are lost; unreachable after ``agent_ping_timeout_s``."""

        def job() -> None:
            self._require_agent(agent_id)
            self._partitioned.add(agent_id)
            self._apply(self._require_master().agent_disconnected(agent_id, self._clock()))

        self._call(job)

    def reconnect_agent(self, agent_id: str) -> None:
        """Heal the partition: the agent re-registers with its tasks and resends pending updates."""

        def job() -> None:
            agent = self._require_agent(agent_id)
            self._partitioned.discard(agent_id)
            self._reregister(agent)

        self._call(job)

    def remove_agent(self, agent_id: str) -> None:
        """Declare the agent gone for good: its tasks are killed and reported gone/lost."""
        self._call(lambda: self._apply(self._require_master().mark_agent_gone(agent_id, self._clock())))

    def restart_master(self) -> str:
        """Fail the master over: every stream closes, a new master (new id) recovers from the agents.

        Frameworks must re-subscribe with their ids; their tasks are known again from the agents.
        Returns the new master id.
        """

        def job() -> str:
            old = self._require_master()
            assert self._http is not None
            self._http.close_all_streams()
            self._to_master.clear()
            self._master = self._new_master(registry=old.registry())
            for aid in self._agent_order:
                agent = self._agents.get(aid)
                if agent is not None and not agent.stopped and aid not in self._partitioned:
                    self._reregister(agent)
            log.info("master failed over: %s -> %s", old.id, self._master.id)
            return self._master.id

        return self._call(job)

    def redirect_to(self, leader_url: str | None) -> None:
        """Act as a standby: answer every scheduler call with 307 to ``leader_url`` (None: lead)."""
        if leader_url is None:
            self._redirect = None
            return
        parts = urlsplit(leader_url if "//" in leader_url else "//" + leader_url)
        if not parts.hostname or parts.port is None:
            raise ValueError(f"expected http://host:port, got {leader_url!r}")
        self._redirect = f"//{parts.hostname}:{parts.port}"

    # === HttpBackend ============================================================================

    def redirect_location(self) -> str | None:
        return self._redirect

    def subscribe(self, stream: EventStream, call: SchedulerCall) -> None:
        self._post(lambda: self._apply(self._require_master().subscribe(stream.id, call, self._clock())))

    def call(self, call: SchedulerCall, stream_id: str | None) -> Reply:
        def job() -> Reply:
            reply, effects = self._require_master().handle_call(call, stream_id, self._clock())
            self._apply(effects)
            return reply

        return self._call(job)

    def stream_ended(self, stream_id: str) -> None:
        if not self._stopping:
            self._post(lambda: self._apply(self._require_master().stream_closed(stream_id, self._clock())))

    def read_state(self) -> dict[str, Any]:
        def job() -> dict[str, Any]:
            info = {
                "cluster_id": self.cluster_id,
                "containerizer": self.config.containerizer,
                "partitioned_agents": sorted(self._partitioned),
            }
            return render_state(self._require_master(), self._clock(), cluster=info)

        return self._call(job)

    def read_metrics(self) -> dict[str, float]:
        def job() -> dict[str, float]:
            metrics = render_metrics(self._require_master(), self._clock())
            if self._redirect is not None:
                metrics["master/elected"] = 0.0
            return metrics

        return self._call(job)

    # === Timers (for agents) ====================================================================

    def now(self) -> float:
        return self._clock()

    def call_at(self, when: float, fn: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (when, next(self._timer_seq), fn))

    # === the loop ===============================================================================

    def _post(self, job: Callable[[], None]) -> None:
        self._inbox.put(job)

    def _call(self, fn: Callable[[], T], timeout: float = _CALL_TIMEOUT_S) -> T:
        """Run ``fn`` on the loop thread and return its result (directly when already on it)."""
        if threading.current_thread() is self._loop_thread:
            return fn()
        if self._loop_thread is None or not self._loop_thread.is_alive():
            raise RuntimeError("the local cluster is not running")
        future = _Future()

        def job() -> None:
            try:
                future.set(fn())
            except BaseException as exc:  # handed to the caller's thread
                future.fail(exc)

        self._inbox.put(job)
        result: T = future.wait(timeout)
        return result

    def _loop(self) -> None:
        inbox = self._inbox
        while True:
            master = self._master
            now = self._clock()
            deadline = master.next_deadline() if master is not None else now + 1.0
            if self._timers:
                deadline = min(deadline, self._timers[0][0])
            timeout = min(max(deadline - now, 0.0), 0.5)
            try:
                job = inbox.get(timeout=timeout) if timeout > 0 else inbox.get_nowait()
            except queue.Empty:
                job = None
            else:
                if job is None:
                    return
                self._run(job)
                for _ in range(10_000):
                    try:
                        job = inbox.get_nowait()
                    except queue.Empty:
                        break
                    if job is None:
                        return
                    self._run(job)
            now = self._clock()
            while self._timers and self._timers[0][0] <= now:
                _, _, fn = heapq.heappop(self._timers)
                self._run(fn)
            master = self._master
            if master is not None and master.next_deadline() <= now:
                try:
                    self._apply(master.tick(now))
                except Exception:
                    log.exception("master tick failed")
            self._drain_to_master()

    def _run(self, job: Callable[[], None]) -> None:
        try:
            job()
        except Exception:
            log.exception("local cluster job failed")
        self._drain_to_master()

    def _to_master_send(self, agent_id: str, kind: str, deliver: _ToMaster) -> None:
        if agent_id not in self._partitioned:
            self._to_master.append((agent_id, kind, deliver))

    def _drain_to_master(self) -> None:
        while self._to_master:
            agent_id, kind, deliver = self._to_master.popleft()
            if agent_id in self._partitioned:
                continue
            try:
                self._apply(deliver(self._require_master(), self._clock()))
            except Exception:
                log.exception("master failed on %s from agent %s", kind, agent_id)

    def _apply(self, effects: list[Effect]) -> None:
        for effect in effects:
            if isinstance(effect, SendEvent):
                stream = self._http.stream(effect.stream_id) if self._http is not None else None
                if stream is not None:
                    stream.send(recordio.encode(wire.encode(effect.event)))
                continue
            if isinstance(effect, CloseStream):
                stream = self._http.stream(effect.stream_id) if self._http is not None else None
                if stream is not None:
                    stream.close()
                continue
            if isinstance(effect, ShutdownAgent):
                self._retire_agent(effect.agent_id)
                continue
            agent = self._agents.get(effect.agent_id)
            if agent is None or agent.stopped or effect.agent_id in self._partitioned:
                continue
            if isinstance(effect, LaunchTasks):
                agent.launch(effect.framework_info, effect.tasks, effect.group_executor)
            elif isinstance(effect, KillTask):
                agent.kill(effect.framework_id, effect.task_id, effect.grace_period_s)
            elif isinstance(effect, AcknowledgeUpdate):
                agent.acknowledge(effect.framework_id, effect.task_id, effect.uuid)
            elif isinstance(effect, ShutdownExecutor):
                agent.shutdown_executor(effect.framework_id, effect.executor_id)
            elif isinstance(effect, ShutdownFramework):
                agent.shutdown_framework(effect.framework_id)
            elif isinstance(effect, SendFrameworkMessage):
                agent.framework_message(effect.framework_id, effect.executor_id, effect.data)
            elif isinstance(effect, AgentRegistered):
                agent.on_registered()

    # === agents =================================================================================

    def _new_master(self, registry: Any) -> Master:
        c = self.config
        master_config = MasterConfig(
            heartbeat_interval_s=float(c.heartbeat_interval_s),
            allocation_interval_s=float(c.allocation_interval_s),
            offer_timeout_s=c.offer_timeout_s,
            agent_ping_timeout_s=c.agent_ping_timeout_s,
            agent_reregister_timeout_s=c.agent_reregister_timeout_s,
            hostname=self.host,
            ip=self.host if _is_ipv4(self.host) else "127.0.0.1",
            port=self.port,
        )
        return Master(
            master_config,
            master_id=str(uuid.uuid4()),
            now=self._clock(),
            wall_offset=self._wall_offset,
            registry=registry,
            seed=c.seed,
        )

    def _create_agents(self) -> None:
        config = self.config
        if config.containerizer == "simulated" and self._containerizer_factory is None:
            self._sim_runtime = SimulatedRuntime()
        for n, spec in enumerate(config.agent_specs(), start=1):
            agent_id = f"{self.cluster_id}-S{n}"
            containerizer = self._make_containerizer(spec, agent_id)
            try:
                removed = containerizer.cleanup_orphans()
                if removed:
                    log.warning("agent %s: removed %d leftovers of an earlier run", agent_id, removed)
            except Exception:
                log.exception("agent %s: cleaning up orphans failed", agent_id)
            attributes = tuple(Attribute(name=k, type="TEXT", text=Text(value=v)) for k, v in spec.attributes)
            agent = Agent(
                agent_id=agent_id,
                cluster_id=self.cluster_id,
                hostname=spec.hostname,
                resources=spec.resources,
                attributes=attributes,
                work_dir=self.work_dir,
                containerizer=containerizer,
                link=_Link(self, agent_id),
                timers=self,
                post=self._post,
                executor_host_factory=self._make_executor_host,
                retry_initial_s=config.update_retry_initial_s,
                retry_max_s=config.update_retry_max_s,
                port=self.port,
                index=n,
            )
            self._agents[agent_id] = agent
            self._agent_order.append(agent_id)

    def _make_containerizer(self, spec: AgentSpec, agent_id: str) -> Containerizer:
        if self._containerizer_factory is not None:
            return self._containerizer_factory(spec, agent_id)
        config = self.config
        if config.containerizer == "simulated":
            return SimulatedContainerizer(
                self.cluster_id,
                runtime=self._sim_runtime,
                start_delay_s=config.simulated_start_delay_s,
                kill_delay_s=config.simulated_kill_delay_s,
            )
        if config.containerizer == "process":
            from framework.localcluster.containerizers.process import ProcessContainerizer  # noqa: PLC0415

            return ProcessContainerizer(self.cluster_id, work_dir=self.work_dir)
        # Imported here so a simulated or process cluster works without the Docker SDK.
        from framework.localcluster.containerizers.docker import DockerContainerizer  # noqa: PLC0415

        return DockerContainerizer(
            self.cluster_id, docker_host=config.docker_host, pull_images=config.pull_images
        )

    def _make_executor_host(self, context: AgentContext) -> Containerizer:
        from framework.localcluster.executors import ExecutorHost  # noqa: PLC0415 - only when needed

        host = ExecutorHost(self.cluster_id, work_dir=self.work_dir)
        host.on_message = lambda fid, eid, _aid, data: context.executor_message(fid, eid, data)
        host.on_executor_exit = lambda fid, eid, _aid, status: context.executor_exited(fid, eid, status)
        return host

    def _register_all_agents(self) -> None:
        master = self._require_master()
        for aid in self._agent_order:
            self._apply(master.register_agent(self._agents[aid].record, self._clock()))

    def _reregister(self, agent: Agent) -> None:
        master = self._require_master()
        self._apply(
            master.reregister_agent(
                agent.record, agent.reported_tasks(), agent.framework_infos(), self._clock()
            )
        )

    def _retire_agent(self, agent_id: str) -> None:
        agent = self._agents.get(agent_id)
        if agent is None or agent.stopped:
            return
        log.info("agent %s is gone: shutting down its containerizers", agent_id)
        runners = agent.stop()
        for runner in runners:
            thread = threading.Thread(target=_shutdown_quietly, args=(runner,), name=f"retire-{agent_id}")
            thread.start()
            self._retired.append(thread)

    def _stop_agents(self) -> list[Containerizer]:
        runners: list[Containerizer] = []
        for agent in self._agents.values():
            if not agent.stopped:
                runners.extend(agent.stop())
        return runners

    def _require_master(self) -> Master:
        if self._master is None:
            raise RuntimeError("the local cluster has no master")
        return self._master

    def _require_agent(self, agent_id: str) -> Agent:
        agent = self._agents.get(agent_id)
        if agent is None or agent.stopped:
            raise KeyError(f"no such agent: {agent_id}")
        return agent


def _shutdown_quietly(runner: Containerizer) -> None:
    try:
        runner.shutdown()
    except Exception:
        log.exception("containerizer %s failed to shut down", getattr(runner, "name", "?"))


def _is_ipv4(host: str) -> bool:
    parts = host.split(".")
    return len(parts) == 4 and all(p.isdigit() and int(p) < 256 for p in parts)


# === command line ===============================================================================


def config_from_args(args: Any) -> ClusterConfig:
    """Build the configuration from ``steward local-cluster`` arguments.

    Reads ``config`` (a YAML file, optional), then applies the flags that are set (not None):
    ``listen``, ``agents`` (a count; not together with an ``agents`` list in the file) and
    ``containerizer``.
    """
    path = getattr(args, "config", None)
    config = load_cluster_config(path) if path else ClusterConfig()
    changes: dict[str, Any] = {}
    listen = getattr(args, "listen", None)
    if listen:
        changes["listen"] = listen
    count = getattr(args, "agents", None)
    if count is not None:
        if config.agents:
            raise ValueError("--agents cannot be combined with a config file that lists agents")
        if count < 1:
            raise ValueError("--agents must be at least 1")
        changes["agent_count"] = int(count)
    kind = getattr(args, "containerizer", None)
    if kind:
        if kind not in ("docker", "process", "simulated"):
            raise ValueError(f"unknown containerizer {kind!r}; use docker, process or simulated")
        changes["containerizer"] = kind
    return dataclasses.replace(config, **changes)


def main_local_cluster(args: Any) -> int:
    """``steward local-cluster``: run a master and agents until SIGINT/SIGTERM; returns an exit code."""
    try:
        config = config_from_args(args)
        cluster = LocalCluster(config).start()
    except ConfigError as exc:
        print(exc)
        return 2
    except (ValueError, OSError) as exc:
        print(f"local-cluster: {exc}")
        return 2
    print(f"local cluster {cluster.cluster_id}: master at {cluster.url}", flush=True)
    for aid in cluster.agent_ids:
        print(f"  agent {aid} ({cluster.agent_hostname(aid)}, {config.containerizer})", flush=True)
    cluster.run_until_interrupted()
    return 0
