"""The load-watching loop: measure each autoscaled service, decide its size, tell the core.

Per autoscaled service one poller thread samples its load source every ``interval_s`` (sources do
network I/O, so they stay off the dispatcher thread); the sample is handed to the dispatcher with
``driver.call_soon``, where the policy (``framework.core.autoscale.Autoscaler``, pure) decides from
it and the service's current counts, and a changed target enters the core as ``TargetChanged``.
Decisions keep their human reason in each autoscaler's bounded history.

Operator overrides (pin a count, pause autoscaling) and the last applied target are stored, so a
restarted Steward resumes at the size it had instead of falling back to ``min`` (which would be a
scale-down on missing data).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from framework.config import Config
from framework.config.model import AutoscaleSourceConfig
from framework.core.autoscale import Autoscaler, Counts, Decision, Sample
from framework.core.autoscale_config import policy_params
from framework.model.events import TargetChanged
from framework.runtime.scheduler import CoreScheduler
from framework.store.base import Store, StoreError

log = logging.getLogger(__name__)


class LoadSource(Protocol):
    name: str

    def sample(self, now: float) -> Sample: ...

    def close(self) -> None: ...


SourceFactory = Callable[..., LoadSource]
"""``(source_config, *, service, endpoints, clock) -> LoadSource`` (``framework.sources.make_source``)."""


class CallSoon(Protocol):
    def call_soon(self, fn: Callable[[], object]) -> None: ...


def default_source_factory(config: AutoscaleSourceConfig, **kwargs: Any) -> LoadSource:
    # Imported on first use: the sources pull in HTTP clients and optional HTCondor bindings.
    from framework.sources import make_source  # type: ignore[import-not-found,unused-ignore]  # noqa: PLC0415

    source: LoadSource = make_source(config, **kwargs)
    return source


@dataclass
class _Service:
    name: str
    autoscaler: Autoscaler
    source: LoadSource
    source_config: AutoscaleSourceConfig
    interval_s: float
    stop: threading.Event
    thread: threading.Thread | None = None
    last_sample: Sample | None = None
    """The latest measurement the policy decided from (for metrics and the API)."""
    directions: Counter[str] = field(default_factory=Counter)
    """Decisions taken since start, by direction (``up``/``down``/``hold``)."""


class AutoscaleLoop:
    """Pollers feeding the policies; every decision and override runs on the dispatcher thread."""

    def __init__(
        self,
        config: Config,
        scheduler: CoreScheduler,
        dispatcher: CallSoon,
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
        source_factory: SourceFactory = default_source_factory,
        host_addresses: Mapping[str, str] | None = None,
    ) -> None:
        """``host_addresses`` maps an agent hostname to the address a source reaches it at: the
        embedded cluster's agents are this machine under made-up names (``agent-1``) that no
        resolver knows, so their squids' cache managers are read at 127.0.0.1."""
        self._scheduler = scheduler
        self._config = config
        self._host_addresses = dict(host_addresses or {})
        self._dispatcher = dispatcher
        self._store = store
        self._clock = clock
        self._source_factory = source_factory
        self._started = False
        self._lock = threading.Lock()  # guards the services and autoscalers read by other threads
        self._services: dict[str, _Service] = {}
        for name, service in config.services.items():
            params = policy_params(service)
            if params is not None and service.autoscale is not None:
                self._services[name] = self._make(name, service.autoscale.source, Autoscaler(params))

    def _make(self, name: str, source_config: AutoscaleSourceConfig, autoscaler: Autoscaler) -> _Service:
        source = self._source_factory(
            source_config, service=name, endpoints=self._endpoints_of(name), clock=self._clock
        )
        interval = autoscaler.params.interval_s
        return _Service(name, autoscaler, source, source_config, interval, threading.Event())

    # --- life cycle -------------------------------------------------------------------------------

    def start(self) -> None:
        """Replay stored targets and overrides, then start polling."""
        self._started = True
        self._dispatcher.call_soon(self._restore)
        with self._lock:
            services = list(self._services.values())
        for service in services:
            self._start_poller(service)

    def _start_poller(self, service: _Service) -> None:
        service.thread = threading.Thread(
            target=self._poll, args=(service,), name=f"steward-autoscale-{service.name}", daemon=True
        )
        service.thread.start()

    @staticmethod
    def _stop_poller(service: _Service) -> None:
        service.stop.set()
        if service.thread is not None and service.thread is not threading.current_thread():
            service.thread.join(service.interval_s + 5)
        service.source.close()

    def stop(self) -> None:
        with self._lock:
            services = list(self._services.values())
        for service in services:
            self._stop_poller(service)

    @property
    def services(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(self._services)

    def reconfigure(self, config: Config) -> None:
        """Apply a reloaded configuration (dispatcher thread): new policies take effect at once and
        keep each service's history, pin and pause; services that stopped or started autoscaling,
        or changed their load source, get their poller stopped or (re)started."""
        self._config = config
        wanted = {}
        for name, service_config in config.services.items():
            params = policy_params(service_config)
            if params is not None and service_config.autoscale is not None:
                wanted[name] = (params, service_config.autoscale.source)
        with self._lock:
            current = dict(self._services)
        for name, old_service in current.items():
            if name not in wanted or wanted[name][1] != old_service.source_config:
                why = "no longer autoscaled" if name not in wanted else "its load source changed"
                log.info("autoscale %s: %s", name, why)
                with self._lock:
                    del self._services[name]
                self._stop_poller(old_service)
        for name, (params, source_config) in wanted.items():
            with self._lock:
                existing = self._services.get(name)
            if existing is not None:
                with self._lock:
                    existing.autoscaler.replace_params(params)
                    existing.interval_s = params.interval_s
                continue
            old = current.get(name)
            autoscaler = old.autoscaler if old is not None else Autoscaler(params)
            autoscaler.replace_params(params)
            fresh = self._make(name, source_config, autoscaler)
            with self._lock:
                self._services[name] = fresh
            if self._started:
                self._start_poller(fresh)

    # --- pollers (their own threads) --------------------------------------------------------------

    def _endpoints_of(self, name: str) -> Callable[[], Sequence[str]]:
        def endpoints() -> Sequence[str]:
            snapshot = self._scheduler.snapshot()
            published = () if snapshot is None else snapshot.endpoints.get(name, ())
            if not self._host_addresses:
                return published
            return tuple(self._reachable(endpoint) for endpoint in published)

        return endpoints

    def _reachable(self, endpoint: str) -> str:
        host, sep, port = endpoint.rpartition(":")
        address = self._host_addresses.get(host)
        return f"{address}{sep}{port}" if sep and address is not None else endpoint

    def _poll(self, service: _Service) -> None:
        while not service.stop.wait(service.interval_s):
            try:
                sample = service.source.sample(self._clock())
            except Exception as exc:  # a source must not raise; if one does, it is missing data
                log.exception("load source %s raised", service.source.name)
                sample = Sample.missing(f"source raised {type(exc).__name__}: {exc}", self._clock())
            self._dispatcher.call_soon(functools.partial(self._decide, service, sample))

    # --- the dispatcher thread --------------------------------------------------------------------

    def _decide(self, service: _Service, sample: Sample) -> Decision | None:
        snapshot = self._scheduler.snapshot()
        if snapshot is None:
            return None
        try:
            numbers = snapshot.service(service.name)
        except KeyError:  # removed by a reload; its poller stops with this loop
            return None
        counts = Counts(
            desired=numbers.desired,
            launching=numbers.launching + numbers.staging,
            ready=numbers.running,
        )
        with self._lock:
            decision = service.autoscaler.decide(sample, counts, self._clock())
            service.last_sample = sample
            service.directions[decision.direction.value] += 1
        if decision.changed:
            dry = "" if decision.applied else " (dry run)"
            log.info("autoscale %s: %s%s", service.name, decision.reason, dry)
        if decision.applied and decision.target != numbers.desired:
            self._scheduler.feed(
                TargetChanged(
                    service=service.name,
                    instances=decision.target,
                    reason=decision.reason,
                    busy=sample.busy,
                )
            )
            self._save(service.name, target=decision.target)
        return decision

    def _restore(self) -> None:
        stored = self._store.overrides()
        self._restore_fixed_pins(stored)
        with self._lock:
            services = dict(self._services)
        for name, service in services.items():
            entry = stored.get(name)
            if not isinstance(entry, dict):
                continue
            with self._lock:
                if isinstance(entry.get("pinned"), int):
                    service.autoscaler.pin(entry["pinned"])
                if entry.get("paused") is True:
                    service.autoscaler.pause()
            target = entry.get("pinned", entry.get("target"))
            if isinstance(target, int):
                log.info("autoscale %s: resuming at %d instance(s) from the store", name, target)
                self._scheduler.feed(
                    TargetChanged(service=name, instances=target, reason=f"restored {target} from the store")
                )

    def _restore_fixed_pins(self, stored: Mapping[str, Any]) -> None:
        """An operator's count for a fixed-count service outlives a restart or a failover too."""
        for name, service_config in self._config.services.items():
            entry = stored.get(name)
            if name in self._services or service_config.per_host or not isinstance(entry, dict):
                continue
            pinned = entry.get("pinned")
            if isinstance(pinned, int) and not isinstance(pinned, bool):
                log.info("%s: operator pin at %d instance(s) restored from the store", name, pinned)
                reason = f"pinned at {pinned} by an operator (restored from the store)"
                self._scheduler.feed(TargetChanged(service=name, instances=pinned, reason=reason))

    def _save(self, name: str, **changes: object) -> None:
        overrides = self._store.overrides()
        entry = dict(overrides.get(name) or {})
        for key, value in changes.items():
            if value is None:
                entry.pop(key, None)
            else:
                entry[key] = value
        overrides[name] = entry
        try:
            self._store.set_overrides(overrides)
        except StoreError as exc:
            log.error("autoscale %s: could not store %s: %s", name, changes, exc)

    # --- operator actions (any thread; applied on the dispatcher) ---------------------------------

    def pin(self, name: str, instances: int | None) -> None:
        """Pin ``name`` at ``instances`` (None clears the pin and hands it back to the policy)."""
        service = self._services[name]

        def apply() -> None:
            with self._lock:
                if instances is None:
                    service.autoscaler.unpin()
                else:
                    service.autoscaler.pin(instances)
            self._save(name, pinned=instances)
            if instances is not None:
                reason = f"pinned at {instances} by an operator"
                self._scheduler.feed(TargetChanged(service=name, instances=instances, reason=reason))

        self._dispatcher.call_soon(apply)

    def pin_fixed(self, name: str, instances: int | None) -> None:
        """Pin a fixed-count service at ``instances`` (None: back to the file's count); stored, so
        the pin survives a restart or a failover until an operator clears it."""

        def apply() -> None:
            self._save(name, pinned=instances)
            reason = f"pinned at {instances} by an operator" if instances is not None else "pin cleared"
            self._scheduler.feed(TargetChanged(service=name, instances=instances, reason=reason))

        self._dispatcher.call_soon(apply)

    def pause(self, name: str, paused: bool = True) -> None:
        service = self._services[name]

        def apply() -> None:
            with self._lock:
                if paused:
                    service.autoscaler.pause()
                else:
                    service.autoscaler.resume()
            self._save(name, paused=True if paused else None)

        self._dispatcher.call_soon(apply)

    def decisions(self, name: str) -> list[Decision]:
        """The service's recent decisions, oldest first (a copy, safe from any thread)."""
        with self._lock:
            return list(self._services[name].autoscaler.history)

    def last_sample(self, name: str) -> Sample | None:
        """The latest load measurement of ``name`` (None before the first)."""
        with self._lock:
            return self._services[name].last_sample

    def decision_counts(self, name: str) -> dict[str, int]:
        """How many decisions went each way since start (``up``/``down``/``hold``)."""
        with self._lock:
            return dict(self._services[name].directions)

    def autoscaler(self, name: str) -> Autoscaler:
        """The service's policy object (read its ``pinned``/``paused``/``params`` only)."""
        with self._lock:
            return self._services[name].autoscaler
