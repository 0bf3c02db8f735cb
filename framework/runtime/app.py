"""The process that runs Steward: wires config, store, master detection, transport and driver.

``run_framework`` is what ``steward run`` calls. It builds the FrameworkInfo the design rules ask for
(checkpointing, a long failover timeout, MULTI_ROLE + PARTITION_AWARE + TASK_KILLING_STATE), keeps
the framework ID in the store before anything else happens, and runs the scheduler driver until a
signal or a fatal error. All scheduler state lives on the driver's dispatcher thread; other threads
reach it with ``driver.call_soon``.

What the scheduler does with offers and updates is decided by the pure core
(``framework.core.state.SchedulerState``); ``framework.runtime.scheduler.CoreScheduler`` feeds it
the driver's callbacks and a Tick every second, and carries out the operations it answers.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

from framework.config import Config, ConfigError, load_config, read_secret
from framework.config.model import FileStoreConfig, ZooKeeperStoreConfig
from framework.core.state import CoreSettings
from framework.core.taskbuild import StewardExecutorArtifact
from framework.mesos.detector import MasterDetector, make_detector
from framework.mesos.errors import MesosError
from framework.mesos.scheduler_driver import SchedulerDriver
from framework.mesos.transport import HttpTransport
from framework.model.events import ConfigApplied
from framework.model.proto import (
    FrameworkCapability,
    FrameworkID,
    FrameworkInfo,
)
from framework.runtime.artifacts import ArtifactServer
from framework.runtime.autoscaling import AutoscaleLoop
from framework.runtime.scheduler import CoreScheduler, Ticker
from framework.store.base import Store, StoreError
from framework.store.sqlite import SQLiteStore

if TYPE_CHECKING:
    from framework.localcluster.cluster import LocalCluster

log = logging.getLogger(__name__)

CAPABILITIES = ("MULTI_ROLE", "PARTITION_AWARE", "TASK_KILLING_STATE")
"""Capabilities Steward registers with (design rule 1)."""


class StartupError(Exception):
    """Steward cannot start with this configuration; the message says what to change."""


def build_framework_info(config: Config, framework_id: str | None) -> FrameworkInfo:
    """The FrameworkInfo sent on every SUBSCRIBE (complete, since re-subscribing replaces it)."""
    fw = config.framework
    return FrameworkInfo(
        user=fw.user,
        name=fw.name,
        id=FrameworkID(value=framework_id) if framework_id else None,
        failover_timeout=fw.failover_timeout_s,
        checkpoint=True,
        roles=tuple(fw.roles),
        hostname=socket.gethostname(),
        principal=fw.principal,
        capabilities=tuple(FrameworkCapability(type=c) for c in CAPABILITIES),  # type: ignore[arg-type]
    )


def open_store(config: Config) -> Store:
    store = config.framework.store
    if not isinstance(store, FileStoreConfig):
        raise StartupError(f"framework.store.type {store.type!r} is not available yet; use type: file")
    try:
        return SQLiteStore(store.path)
    except StoreError as exc:
        raise StartupError(f"framework.store: {exc}") from exc


def make_transport(config: Config) -> HttpTransport:
    """HTTP transport with the principal's secret (read now, never logged) and TLS settings."""
    fw = config.framework
    basic_auth: tuple[str, str] | None = None
    if fw.principal is not None and fw.secret_file is not None:
        try:
            basic_auth = (fw.principal, read_secret(fw.secret_file))
        except (OSError, ValueError) as exc:
            raise StartupError(f"framework.secret_file: cannot read {fw.secret_file}: {exc}") from exc
    verify: bool | str = fw.tls.ca_bundle if fw.tls.ca_bundle is not None else fw.tls.verify
    return HttpTransport(basic_auth=basic_auth, verify=verify)


@dataclass(frozen=True, slots=True)
class ReloadResult:
    applied: bool
    errors: tuple[str, ...]
    """Why it was refused (every issue of the file), or the new file's warnings when applied."""


@dataclass
class Runtime:
    """A running Steward: the pieces ``run_framework`` starts, so tests can drive and stop them."""

    config: Config
    store: Store
    detector: MasterDetector
    transport: HttpTransport
    scheduler: CoreScheduler
    driver: SchedulerDriver
    ticker: Ticker
    autoscale: AutoscaleLoop

    embedded: LocalCluster | None = None
    """The embedded cluster started for ``master: local``; stopped (with its tasks) on close."""
    owns_store: bool = True
    """Close the store with the runtime (False for a store the caller passed in)."""
    artifacts: ArtifactServer | None = None
    """Serves the Steward executor zipapp while a service uses it."""

    def reload(self, path: str) -> ReloadResult:
        """Load ``path`` whole; apply it only if it is valid, else keep the running config.

        Settings that shape the connection itself (master, roles, principal, store, the embedded
        cluster) need a restart: a reload that changes them is refused with that reason, so what
        is running never silently differs from what the file says.
        """
        try:
            new = load_config(path)
        except ConfigError as exc:
            for issue in exc.issues:
                log.error("reload refused, the running configuration stays: %s", issue)
            return ReloadResult(applied=False, errors=tuple(str(i) for i in exc.issues))
        changed = [
            name
            for name in ("master", "roles", "principal", "secret_file", "store", "local_cluster", "user")
            if getattr(new.framework, name) != getattr(self.config.framework, name)
        ]
        if changed and not (changed == ["master"] and new.framework.master == "local"):
            errors = tuple(f"{path}: framework.{name}: changing it needs a restart" for name in changed)
            for error in errors:
                log.error("reload refused, the running configuration stays: %s", error)
            return ReloadResult(applied=False, errors=errors)
        self.config = new

        def apply() -> None:
            self.scheduler.feed(ConfigApplied(config=new))
            self.autoscale.reconfigure(new)
            log.info("configuration reloaded from %s (%d services)", path, len(new.services))

        self.driver.call_soon(apply)
        return ReloadResult(applied=True, errors=tuple(str(w) for w in new.warnings))

    def stop(self) -> None:
        self.autoscale.stop()
        self.ticker.stop()
        self.driver.stop()

    def close(self) -> None:
        self.stop()
        self.transport.close()
        self.detector.close()
        if self.owns_store:
            self.store.close()
        if self.artifacts is not None:
            self.artifacts.close()
        if self.embedded is not None:
            self.embedded.stop()


def serve_executor(config: Config) -> ArtifactServer | None:
    """Serve the Steward executor zipapp when a service runs with ``container.executor: steward``
    (building it first unless ``framework.executor.zipapp`` names one); None when none does."""
    if not any(s.container.executor == "steward" for s in config.services.values()):
        return None
    settings = config.framework.executor
    path = settings.zipapp
    try:
        if path is None:
            from executors.build import build_executor  # noqa: PLC0415 - only when needed

            out = Path(tempfile.mkdtemp(prefix="steward-executor-")) / "steward-executor.pyz"
            path = str(build_executor(out).path)
            log.info("built the Steward executor: %s", path)
        return ArtifactServer(path, settings.listen, advertise_host=settings.advertise_host)
    except Exception as exc:
        raise StartupError(f"framework.executor: cannot serve the Steward executor: {exc}") from exc


def start_embedded_cluster(config: Config) -> LocalCluster:
    """Start the single-host cluster ``master: local`` names, as ``steward local-cluster`` would."""
    from framework.localcluster.cluster import LocalCluster  # noqa: PLC0415 - only for master: local
    from framework.localcluster.config import ClusterConfig, load_cluster_config  # noqa: PLC0415

    local = config.framework.local_cluster
    if local.config is not None:
        cluster_config = dataclasses.replace(load_cluster_config(local.config), listen=local.listen)
    else:
        cluster_config = ClusterConfig(
            listen=local.listen, agent_count=local.agents, containerizer=local.containerizer
        )
    try:
        cluster = LocalCluster(cluster_config).start()
    except OSError as exc:
        raise StartupError(f"framework.local_cluster: cannot start the embedded cluster: {exc}") from exc
    log.info(
        "embedded cluster %s: master at %s, %d agent(s) with the %s containerizer",
        cluster.cluster_id,
        cluster.url,
        len(cluster.agent_ids),
        cluster_config.containerizer,
    )
    return cluster


def embedded_addresses(cluster: LocalCluster | None) -> dict[str, str]:
    """Where the embedded cluster's agents are reached: all of them are this machine, under names
    (``agent-1``...) that only the cluster knows; empty for a real cluster, whose agents' hostnames
    resolve."""
    if cluster is None:
        return {}
    return {cluster.agent_hostname(agent_id): "127.0.0.1" for agent_id in cluster.agent_ids}


def start_runtime(
    config: Config,
    master: str | None = None,
    *,
    settings: CoreSettings | None = None,
    store: Store | None = None,
) -> Runtime:
    """Build and start every piece; raises StartupError for what the operator must fix.

    ``settings`` overrides the core's policy knobs the configuration does not carry (tests use it
    to shorten the unreachable-replacement and reconciliation timers). ``store`` is an open store
    the caller owns (a leader's ZooKeeper store); by default the configured file store is opened
    and closed with the runtime."""
    master = master or config.framework.master
    embedded = start_embedded_cluster(config) if master == "local" else None
    try:
        detector = make_detector(embedded.url if embedded is not None else master)
        owns_store = store is None
        store = open_store(config) if store is None else store
        transport = make_transport(config)
    except ValueError as exc:
        if embedded is not None:
            embedded.stop()
        raise StartupError(f"framework.master: {exc}") from exc
    except BaseException:
        if embedded is not None:
            embedded.stop()
        raise
    try:
        artifacts = serve_executor(config)
    except StartupError:
        transport.close()
        detector.close()
        if owns_store:
            store.close()
        if embedded is not None:
            embedded.stop()
        raise
    if artifacts is not None:
        executor = config.framework.executor
        artifact = StewardExecutorArtifact(
            uri=artifacts.url, python=executor.python, usage_interval_s=executor.usage_interval_s
        )
        settings = dataclasses.replace(settings or CoreSettings(), steward_executor=artifact)
    framework_id = store.framework_id()
    scheduler = CoreScheduler(config, store, settings=settings, group_commit=True)
    driver = SchedulerDriver(
        scheduler,
        build_framework_info(config, framework_id),
        detector,
        transport,
        framework_id=framework_id,
        suppressed_roles=config.framework.roles,
        heartbeat_misses=config.framework.heartbeat.misses,
    )
    log.info(
        "starting framework %r (%s) against %s",
        config.framework.name,
        f"id {framework_id}" if framework_id else "first registration",
        master,
    )
    scheduler.driver = driver
    ticker = Ticker(driver, scheduler)
    try:
        autoscale = AutoscaleLoop(
            config, scheduler, driver, store, host_addresses=embedded_addresses(embedded)
        )
    except (ValueError, ImportError) as exc:
        transport.close()
        detector.close()
        if owns_store:
            store.close()
        if artifacts is not None:
            artifacts.close()
        if embedded is not None:
            embedded.stop()
        raise StartupError(f"autoscale: {exc}") from exc
    driver.start()
    ticker.start()
    autoscale.start()
    return Runtime(
        config,
        store,
        detector,
        transport,
        scheduler,
        driver,
        ticker,
        autoscale,
        embedded,
        owns_store,
        artifacts,
    )


def run_framework(
    config: Config,
    master: str | None = None,
    config_path: str | None = None,
    on_started: Callable[[str], Callable[[], None]] | None = None,
) -> int:
    """Run until SIGINT/SIGTERM or a fatal error; 0 on a clean stop, 1 on failure.

    SIGHUP reloads ``config_path`` (validated whole; an invalid file changes nothing). With a
    ZooKeeper store the process is one replica of several (``framework.runtime.ha``).
    ``on_started`` is called with the API's URL once it listens (the live view starts there); the
    function it returns is called first when Steward stops."""
    if isinstance(config.framework.store, ZooKeeperStoreConfig):
        return run_replica(config, master, on_started)
    from framework.api import ApiStartupError, start_api  # noqa: PLC0415 - the API imports the runtime

    try:
        runtime = start_runtime(config, master)
    except (StartupError, MesosError) as exc:
        log.error("%s", exc)
        return 1
    try:
        api = start_api(runtime, config_path=config_path)
    except ApiStartupError as exc:
        log.error("framework.api: %s", exc)
        runtime.close()
        return 1
    log.info("operator API and /metrics at %s", api.url)
    stop_view = on_started(api.url) if on_started is not None else None
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        what = (
            "the embedded cluster stops with Steward, and every task with it"
            if runtime.embedded is not None
            else "tasks keep running for the failover timeout"
        )
        log.info("received %s: stopping (%s)", signal.Signals(signum).name, what)
        stopping.set()
        runtime.stop()

    def on_hangup(signum: int, frame: FrameType | None) -> None:
        if config_path is None:
            log.warning("SIGHUP: no configuration file to reload")
            return
        # Loading reads and parses a file: do it off the signal handler's frame.
        threading.Thread(target=runtime.reload, args=(config_path,), name="steward-reload").start()

    try:
        with _signals({signal.SIGINT: on_signal, signal.SIGTERM: on_signal, signal.SIGHUP: on_hangup}):
            try:
                runtime.driver.join()
            finally:
                if stop_view is not None:
                    stop_view()
    except Exception:
        log.exception("the scheduler stopped on an error")
        return 1
    finally:
        api.close()
        runtime.close()
    fatal = runtime.driver.fatal_error
    if fatal is not None and not stopping.is_set():
        log.error("stopped: %s", fatal)
        return 1
    return 0


def run_replica(
    config: Config, master: str | None = None, on_started: Callable[[str], Callable[[], None]] | None = None
) -> int:
    """Run as one of several replicas until SIGINT/SIGTERM: standby until elected, then act."""
    from framework.api import ApiStartupError, start_api  # noqa: PLC0415 - the API imports the runtime
    from framework.runtime.ha import Replica  # noqa: PLC0415 - imports the runtime itself

    try:
        replica = Replica(config, master)
    except StartupError as exc:
        log.error("%s", exc)
        return 1

    try:
        api = start_api(
            lambda: replica.active,
            config,
            is_leader=lambda: replica.active is not None,
            leader_url=replica.leader,
        )
    except ApiStartupError as exc:
        log.error("framework.api: %s", exc)
        replica.stop()
        return 1
    log.info("operator API and /metrics at %s (writes go to the leader)", api.url)
    stop_view = on_started(api.url) if on_started is not None else None
    stopping = threading.Event()

    def on_signal(signum: int, frame: FrameType | None) -> None:
        log.info("received %s: leaving the election (tasks keep running)", signal.Signals(signum).name)
        stopping.set()

    try:
        with _signals({signal.SIGINT: on_signal, signal.SIGTERM: on_signal}):
            replica.start()
            log.info("replica %s: waiting for leadership", replica.identifier)
            try:
                stopping.wait()
            finally:
                if stop_view is not None:
                    stop_view()
    finally:
        api.close()
        replica.stop()
    return 0


@contextlib.contextmanager
def _signals(handlers: Mapping[signal.Signals, Callable[[int, FrameType | None], None]]) -> Iterator[None]:
    """Install ``handlers`` for the block; the previous handlers are back afterwards."""
    previous = {number: signal.signal(number, handler) for number, handler in handlers.items()}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


__all__ = [
    "ReloadResult",
    "Runtime",
    "StartupError",
    "build_framework_info",
    "run_framework",
    "start_runtime",
]
