"""Prometheus exposition of a running Steward: the one module that imports ``prometheus_client``.

Nothing here is updated as things happen. :class:`StewardCollector` builds every metric family at
scrape time from what the runtime already keeps: the core's latest :class:`StateSnapshot` (taken
on the dispatcher thread after each event), the driver's status, the autoscale loop's policies, and
the runtime's :class:`~framework.metrics.activity.Activity` (running totals of launches, kills,
failures, launch latency and the executors' usage reports). Counts use the same predicates as the
core (they come from its snapshot), so a dashboard and the scheduler never disagree.

Every name starts with ``steward_``; counters end in ``_total``. Per-task usage series are labelled
by ``service`` and ``task_id`` and exist only while the snapshot still tracks the task: the series
of a task that ended disappear with it.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Final

from prometheus_client import CollectorRegistry, ProcessCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import choose_encoder
from prometheus_client.registry import Collector

from framework.metrics.activity import Activity, ActivitySnapshot
from framework.model.snapshot import StateSnapshot
from framework.model.tasks import LocalState

if TYPE_CHECKING:
    from framework.runtime.app import Runtime

__all__ = ["LIVE_STATES", "MetricsExporter", "StewardCollector"]

LIVE_STATES: Final = (
    LocalState.LAUNCHING.value,
    "TASK_STAGING",
    "TASK_STARTING",
    "TASK_RUNNING",
    "TASK_KILLING",
    "TASK_UNREACHABLE",
)
"""States ``steward_tasks`` always has a series for (0 when empty), per service."""


_LEADER_HELP: Final = "1 if this replica is the leader (it acts), 0 on a standby."
_CONNECTED_HELP: Final = "1 while subscribed to the Mesos master (SUBSCRIBED received, stream open)."


def _counter(name: str, doc: str, labels: Iterable[str] = ()) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=list(labels))


def _gauge(name: str, doc: str, labels: Iterable[str] = ()) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=list(labels))


class StewardCollector(Collector):
    """Builds the ``steward_*`` families from ``runtime`` on each scrape (any thread).

    ``runtime`` is a :class:`framework.runtime.app.Runtime` (or anything with the same
    ``scheduler``, ``driver``, ``autoscale`` and ``config``), or a function returning the current
    one (a replica's: None while it stands by, when only ``steward_leader`` and
    ``steward_connected`` are exported); ``is_leader`` says whether this replica leads (a single
    Steward always does); ``clock`` is the monotonic clock the core's times are on.
    """

    def __init__(
        self,
        runtime: Runtime | Callable[[], Runtime | None],
        *,
        is_leader: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._source = runtime
        self._is_leader = is_leader
        self._clock = clock

    def describe(self) -> list[Metric]:
        # Registering must not run a scrape (the runtime may not be subscribed yet).
        return []

    def collect(self) -> Iterator[Metric]:
        runtime = self._source() if callable(self._source) else self._source
        if runtime is None:
            yield self._single("steward_leader", _LEADER_HELP, self._is_leader())
            yield self._single("steward_connected", _CONNECTED_HELP, False)
            return
        snapshot = runtime.scheduler.snapshot()
        activity: Activity = runtime.scheduler.activity
        yield from self._framework(runtime, snapshot)
        if snapshot is not None:
            yield from self._offers(snapshot)
            yield from self._services(snapshot)
            yield from self._tasks(snapshot)
            yield from self._usage(snapshot, activity)
        yield from self._activity(activity.snapshot(), activity)
        yield from self._autoscale(runtime)

    # --- the framework --------------------------------------------------------------------------

    def _framework(self, runtime: Runtime, snapshot: StateSnapshot | None) -> Iterator[Metric]:
        status = runtime.driver.status()
        yield self._single("steward_leader", _LEADER_HELP, self._is_leader())
        yield self._single("steward_connected", _CONNECTED_HELP, status.subscribed)
        yield self._single(
            "steward_reconciled",
            "1 once the tasks were reconciled after the latest subscription (kills allowed).",
            snapshot is not None and snapshot.connected and snapshot.reconciled,
        )
        age = _gauge(
            "steward_master_last_event_age_seconds",
            "Seconds since the last byte from the master's event stream (heartbeats included); "
            "absent before the first.",
        )
        if status.seconds_since_last_byte is not None:
            age.add_metric([], status.seconds_since_last_byte)
        yield age
        subs = _counter("steward_subscriptions", "SUBSCRIBED events received since start.")
        subs.add_metric([], status.subscriptions)
        yield subs
        events = _counter("steward_master_events", "Events decoded from the master's stream since start.")
        events.add_metric([], status.events_received)
        yield events
        if snapshot is None:
            return
        snap_age = _gauge(
            "steward_state_snapshot_age_seconds",
            "Seconds since the core last handled an event (a Tick comes every second: a large value "
            "means the dispatcher thread is stuck).",
        )
        snap_age.add_metric([], max(0.0, self._clock() - snapshot.taken_at))
        yield snap_age
        duration = _gauge(
            "steward_reconciliation_duration_seconds",
            "How long the latest finished reconciliation took, from SUBSCRIBED until every known "
            "task had answered; absent before the first.",
        )
        if snapshot.reconciliation_s is not None:
            duration.add_metric([], snapshot.reconciliation_s)
        yield duration
        counters = snapshot.counters
        for name, key, doc in (
            ("steward_reconcile_retries", "reconcile_retries", "Explicit reconciliations repeated."),
            ("steward_suppress_calls", "suppresses", "SUPPRESS calls made (a role had nothing to launch)."),
            ("steward_revive_calls", "revives", "REVIVE calls made (demand rose or waited without offers)."),
            (
                "steward_launches_abandoned",
                "launches_abandoned",
                "Launches given up before Mesos heard of them (the ACCEPT or its store write failed).",
            ),
            ("steward_kill_retries", "kill_retries", "KILL calls re-sent after no terminal update came."),
            (
                "steward_kills_rate_limited",
                "kill_rate_limited",
                "Kill decisions postponed by the global kill-rate limit.",
            ),
            ("steward_tasks_adopted", "adopted", "Unknown tasks of configured services adopted."),
        ):
            family = _counter(name, doc)
            family.add_metric([], counters.get(key, 0))
            yield family
        notes = _counter("steward_notes", "Notable events by kind (see the log for each one).", ["kind"])
        for key, value in sorted(counters.items()):
            if key.startswith("note_"):
                notes.add_metric([key[5:]], value)
        yield notes
        suppressed = _gauge(
            "steward_role_suppressed",
            "1 while offers for the role are suppressed (nothing to launch).",
            ["role"],
        )
        for role in runtime.config.framework.roles:
            suppressed.add_metric([role], 1 if role in snapshot.suppressed_roles else 0)
        yield suppressed

    @staticmethod
    def _single(name: str, doc: str, value: bool | float) -> GaugeMetricFamily:
        family = _gauge(name, doc)
        family.add_metric([], float(value))
        return family

    # --- offers ---------------------------------------------------------------------------------

    def _offers(self, snapshot: StateSnapshot) -> Iterator[Metric]:
        counters = snapshot.counters
        received = _counter("steward_offers_received", "Offers received from the master.")
        received.add_metric([], counters.get("offers_received", 0))
        yield received
        accepted = _counter("steward_offers_accepted", "Offers accepted to launch tasks.")
        accepted.add_metric([], counters.get("offers_used", 0))
        yield accepted
        declined = _counter(
            "steward_offers_declined",
            "Offers declined, by the reason category of the first service that looked at each "
            "('no demand' when none needed anything).",
            ["reason"],
        )
        for reason, count in sorted(snapshot.declines_by_reason.items()):
            declined.add_metric([reason], count)
        yield declined
        rescinded = _counter("steward_offers_rescinded", "Offers rescinded by the master.")
        rescinded.add_metric([], counters.get("offers_rescinded", 0))
        yield rescinded
        yield self._single(
            "steward_offers_outstanding",
            "Offers held without an answer: always 0, Steward never holds offers (each batch is "
            "accepted or declined while it is handled).",
            0,
        )

    # --- services -------------------------------------------------------------------------------

    def _services(self, snapshot: StateSnapshot) -> Iterator[Metric]:
        now = self._clock()
        families = {
            "desired": _gauge(
                "steward_service_desired_instances", "Instances the service should have now.", ["service"]
            ),
            "running": _gauge(
                "steward_service_running_instances",
                "Instances TASK_RUNNING and holding a slot (healthy or not).",
                ["service"],
            ),
            "counting": _gauge(
                "steward_service_counting_instances",
                "Instances holding a slot (launching, starting, running, unreachable not yet replaced).",
                ["service"],
            ),
            "pending": _gauge(
                "steward_service_pending_instances",
                "Instances still to launch (desired minus counting, at least 0).",
                ["service"],
            ),
            "unhealthy": _gauge(
                "steward_service_unhealthy_instances", "Running instances reported unhealthy.", ["service"]
            ),
            "backoff": _gauge(
                "steward_service_restart_backoff_seconds",
                "Seconds until the service may launch again after failures (0: no backoff).",
                ["service"],
            ),
            "failures": _gauge(
                "steward_service_restart_failures",
                "Consecutive failures feeding the service's restart backoff.",
                ["service"],
            ),
            "breaker": _gauge(
                "steward_service_circuit_breaker_open",
                "1 while health kills are stopped because too large a share of the service is "
                "unhealthy at once.",
                ["service"],
            ),
            "restart": _gauge(
                "steward_service_restart_pending",
                "Tasks a rolling restart still has to replace (0: none in progress).",
                ["service"],
            ),
            "endpoints": _gauge(
                "steward_service_endpoints", "Published host:port endpoints (squid services).", ["service"]
            ),
        }
        for service in snapshot.services:
            labels = [service.name]
            backoff = 0.0 if service.backoff_until is None else max(0.0, service.backoff_until - now)
            values = {
                "desired": service.desired,
                "running": service.running,
                "counting": service.counting,
                "pending": service.pending,
                "unhealthy": service.unhealthy,
                "backoff": backoff,
                "failures": service.restart_failures,
                "breaker": 1 if service.breaker_open else 0,
                "restart": service.restart_pending,
                "endpoints": len(service.endpoints),
            }
            for key, family in families.items():
                family.add_metric(labels, values[key])
        yield from families.values()

    def _tasks(self, snapshot: StateSnapshot) -> Iterator[Metric]:
        counts: Counter[tuple[str, str]] = Counter()
        for numbers in snapshot.services:
            for state in LIVE_STATES:
                counts[(numbers.name, state)] += 0
        for record in snapshot.tasks:
            counts[(record.service, record.state.value)] += 1
        family = _gauge(
            "steward_tasks",
            "Tasks Steward tracks, by service and state (LAUNCHING: decided, no update from Mesos yet).",
            ["service", "state"],
        )
        for (name, state), count in sorted(counts.items()):
            family.add_metric([name, state], count)
        yield family

    # --- what happened (activity) ---------------------------------------------------------------

    def _activity(self, done: ActivitySnapshot, activity: Activity) -> Iterator[Metric]:
        launches = _counter(
            "steward_launches", "Tasks launched (sent in an ACCEPT), by service.", ["service"]
        )
        for service, count in sorted(done.launches.items()):
            launches.add_metric([service], count)
        yield launches
        failures = _counter(
            "steward_task_failures",
            "Tasks that ended other than finished or killed by Steward, by service, terminal state "
            "and Mesos reason.",
            ["service", "state", "reason"],
        )
        for (service, state, reason), count in sorted(done.failures.items()):
            failures.add_metric([service, state, reason], count)
        yield failures
        kills = _counter(
            "steward_kills",
            "KILL calls sent, by service and reason (scale_down, unhealthy, duplicate, dependency, "
            "host_not_needed, restart, unknown_task, unconfigured, other); re-sends included.",
            ["service", "reason"],
        )
        for (service, reason), count in sorted(done.kills.items()):
            kills.add_metric([service, reason], count)
        yield kills
        latency = HistogramMetricFamily(
            "steward_launch_to_running_seconds",
            "Seconds from the launch decision to the task's first TASK_RUNNING, by service.",
            labels=["service"],
        )
        for service, histogram in sorted(done.launch_latency.items()):
            latency.add_metric([service], histogram.cumulative(), histogram.total)
        yield latency
        rejected = _counter(
            "steward_executor_messages_rejected",
            "Executor messages that were not usage reports, or did not fit in the usage table.",
        )
        rejected.add_metric([], activity.usage.rejected)
        yield rejected

    def _usage(self, snapshot: StateSnapshot, activity: Activity) -> Iterator[Metric]:
        labels = ["service", "task_id"]
        cpu = _counter("steward_task_cpu_seconds", "CPU seconds the task's container used.", labels)
        memory = _gauge("steward_task_memory_bytes", "Memory the task's container uses now.", labels)
        rx = _counter("steward_task_network_receive_bytes", "Bytes the task's container received.", labels)
        tx = _counter("steward_task_network_transmit_bytes", "Bytes the task's container sent.", labels)
        stamp = _gauge(
            "steward_task_usage_timestamp_seconds",
            "When the executor read the task's latest usage (its wall clock, Unix seconds).",
            labels,
        )
        services: dict[str, str] = {record.task_id: record.service for record in snapshot.tasks}
        for task_id, entry in sorted(activity.usage.entries().items()):
            service = services.get(task_id)
            if service is None:
                continue  # ended (or never ours): its series go away with it
            report = entry.report
            pair = [service, task_id]
            cpu.add_metric(pair, report.cpu_seconds_total)
            memory.add_metric(pair, report.memory_bytes)
            rx.add_metric(pair, report.net_rx_bytes)
            tx.add_metric(pair, report.net_tx_bytes)
            stamp.add_metric(pair, report.timestamp)
        yield from (cpu, memory, rx, tx, stamp)

    # --- autoscaling ----------------------------------------------------------------------------

    def _autoscale(self, runtime: Runtime) -> Iterator[Metric]:
        loop = runtime.autoscale
        labels = ["service"]
        load = _gauge(
            "steward_autoscale_load",
            "The latest load the policy measured (its unit: req/s for squids, idle jobs for startds); "
            "absent while the source gives no value.",
            labels,
        )
        missing = _gauge("steward_autoscale_load_missing", "1 when the latest sample had no value.", labels)
        target = _gauge("steward_autoscale_target_instances", "The policy's latest target.", labels)
        per_instance = _gauge(
            "steward_autoscale_target_per_instance",
            "Load one instance should carry (the policy's aim).",
            labels,
        )
        pinned = _gauge("steward_autoscale_pinned", "1 while an operator pins the instance count.", labels)
        paused = _gauge("steward_autoscale_paused", "1 while an operator paused the policy.", labels)
        decisions = _counter(
            "steward_autoscale_decisions",
            "Policy decisions, by direction (up, down, hold).",
            ["service", "direction"],
        )
        for name in loop.services:
            try:
                autoscaler = loop.autoscaler(name)
                sample = loop.last_sample(name)
                directions: Mapping[str, int] = loop.decision_counts(name)
            except KeyError:
                continue  # removed by a reload during this scrape
            if sample is not None and sample.value is not None and math.isfinite(sample.value):
                load.add_metric([name], sample.value)
            missing.add_metric([name], 1 if sample is None or sample.value is None else 0)
            last = autoscaler.last_decision
            if last is not None:
                target.add_metric([name], last.target)
            per_instance.add_metric([name], autoscaler.params.target_per_instance)
            pinned.add_metric([name], 0 if autoscaler.pinned is None else 1)
            paused.add_metric([name], 1 if autoscaler.paused else 0)
            for direction in ("up", "down", "hold"):
                decisions.add_metric([name, direction], directions.get(direction, 0))
        yield from (load, missing, target, per_instance, pinned, paused, decisions)


class MetricsExporter:
    """A registry holding :class:`StewardCollector` (and the process's own CPU/memory/fds), and
    the exposition of it for ``/metrics``."""

    def __init__(
        self,
        runtime: Runtime | Callable[[], Runtime | None],
        *,
        is_leader: Callable[[], bool] = lambda: True,
        clock: Callable[[], float] = time.monotonic,
        process_metrics: bool = True,
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=False)
        self.collector = StewardCollector(runtime, is_leader=is_leader, clock=clock)
        self.registry.register(self.collector)
        if process_metrics:
            ProcessCollector(namespace="steward", registry=self.registry)

    def render(self, accept: str = "") -> tuple[bytes, str]:
        """``(body, content type)`` for a scrape with this ``Accept`` header (text or OpenMetrics)."""
        encoder, content_type = choose_encoder(accept)
        return encoder(self.registry), content_type

    def families(self) -> dict[str, Any]:
        """Metric families by name (for tests and the CLI): ``name -> prometheus Metric``."""
        return {family.name: family for family in self.registry.collect()}
