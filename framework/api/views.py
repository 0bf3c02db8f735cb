"""JSON views of the runtime's state for the operator API: plain dicts built from snapshots.

Every function here reads frozen values (the core's ``StateSnapshot``, the autoscale policies'
decisions, the usage table's copy) and never the scheduler's live state, so handlers run on any
HTTP thread without a lock. Times the core keeps are monotonic seconds; views give them as an age
(``*_s`` ago) and as an RFC 3339 UTC time, never as raw monotonic numbers (meaningless outside the
process). The shapes are the schemas of ``framework.api.openapi``; change both together (the API
tests validate every response against the document).
"""

from __future__ import annotations

import datetime
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from framework.core.autoscale import Autoscaler, Decision, Sample
from framework.metrics.usage import UsageEntry
from framework.model.snapshot import ServiceSnapshot, StateSnapshot
from framework.model.tasks import TaskRecord

if TYPE_CHECKING:
    from framework.config import Config

__all__ = [
    "Clock",
    "decision_view",
    "endpoints_view",
    "sd_targets",
    "service_view",
    "task_view",
]

RECENT_DECISIONS = 5
"""Decisions shown with each service (``/v1/services/{name}/decisions`` has the whole history)."""


@dataclass(frozen=True, slots=True)
class Clock:
    """One instant on both clocks, so every age in a response is taken at the same moment."""

    monotonic: float
    wall: float

    def age(self, at: float) -> float:
        return round(max(0.0, self.monotonic - at), 3)

    def iso(self, at: float) -> str:
        """The wall-clock time of monotonic instant ``at`` (RFC 3339, UTC, milliseconds)."""
        when = self.wall - (self.monotonic - at)
        stamp = datetime.datetime.fromtimestamp(when, tz=datetime.UTC)
        return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _finite(value: float | None) -> float | None:
    return value if value is not None and math.isfinite(value) else None


def decision_view(decision: Decision, clock: Clock) -> dict[str, Any]:
    return {
        "time": clock.iso(decision.at),
        "age_s": clock.age(decision.at),
        "direction": decision.direction.value,
        "previous": decision.previous,
        "target": decision.target,
        "reason": decision.reason,
        "kind": decision.kind,
        "applied": decision.applied,
    }


def autoscale_view(autoscaler: Autoscaler, sample: Sample | None, clock: Clock) -> dict[str, Any]:
    params = autoscaler.params
    last = autoscaler.last_decision
    return {
        "mode": params.mode.value,
        "unit": params.unit,
        "min": params.min_instances,
        "max": params.max_instances,
        "target_per_instance": params.target_per_instance,
        "interval_s": params.interval_s,
        "dry_run": params.dry_run,
        "pinned": autoscaler.pinned,
        "paused": autoscaler.paused,
        "load": _finite(sample.value) if sample is not None else None,
        "load_missing_reason": sample.reason_missing if sample is not None else "no sample yet",
        "load_age_s": clock.age(sample.observed_at) if sample is not None else None,
        "target": last.target if last is not None else None,
        "last_decision": decision_view(last, clock) if last is not None else None,
    }


def policy_of(config: Config, name: str, autoscaled: bool) -> str:
    """``autoscale``, ``per_host`` or ``fixed`` (a count from the file, maybe pinned by an operator)."""
    if autoscaled:
        return "autoscale"
    service = config.services.get(name)
    return "per_host" if service is not None and service.per_host else "fixed"


def service_view(
    service: ServiceSnapshot,
    *,
    policy: str,
    autoscale: Mapping[str, Any] | None,
    decisions: Sequence[Decision],
    clock: Clock,
    recent: int = RECENT_DECISIONS,
) -> dict[str, Any]:
    backoff = None
    if service.backoff_until is not None:
        backoff = round(max(0.0, service.backoff_until - clock.monotonic), 3)
    return {
        "name": service.name,
        "kind": service.kind,
        "role": service.role,
        "policy": policy,
        "desired": service.desired,
        "desired_reason": service.desired_reason,
        "running": service.running,
        "counting": service.counting,
        "launching": service.launching,
        "staging": service.staging,
        "unhealthy": service.unhealthy,
        "killing": service.killing,
        "unreachable": service.unreachable,
        "pending": service.pending,
        "backoff_remaining_s": backoff,
        "restart_failures": service.restart_failures,
        "breaker_open": service.breaker_open,
        "restart_pending": service.restart_pending,
        "endpoints": list(service.endpoints),
        "autoscale": dict(autoscale) if autoscale is not None else None,
        "recent_decisions": [decision_view(d, clock) for d in list(decisions)[-recent:]] if recent else [],
    }


def usage_view(entry: UsageEntry | None) -> dict[str, Any] | None:
    if entry is None:
        return None
    report = entry.report
    return {
        "cpu_seconds_total": report.cpu_seconds_total,
        "memory_bytes": report.memory_bytes,
        "net_rx_bytes": report.net_rx_bytes,
        "net_tx_bytes": report.net_tx_bytes,
        "timestamp": report.timestamp,
        "container": report.container,
    }


def task_view(record: TaskRecord, clock: Clock, usage: UsageEntry | None = None) -> dict[str, Any]:
    running_for = None if record.running_since is None else clock.age(record.running_since)
    return {
        "task_id": record.task_id,
        "service": record.service,
        "slot": record.slot,
        "agent_id": record.agent_id,
        "hostname": record.hostname,
        "state": record.state.value,
        "healthy": record.healthy,
        "ports": list(record.ports),
        "age_s": clock.age(record.launched_at),
        "running_for_s": running_for,
        "kill_reason": record.kill_reason,
        "draining": record.draining,
        "adopted": record.adopted,
        "message": record.message,
        "reason": record.reason,
        "usage": usage_view(usage),
    }


def endpoints_view(snapshot: StateSnapshot, service: ServiceSnapshot) -> dict[str, Any]:
    """The published endpoints, and where each running task of the service listens."""
    tasks = [
        {"task_id": r.task_id, "hostname": r.hostname, "ports": list(r.ports), "state": r.state.value}
        for r in snapshot.tasks
        if r.service == service.name and r.hostname and r.ports
    ]
    return {"service": service.name, "endpoints": list(service.endpoints), "tasks": tasks}


def sd_targets(snapshot: StateSnapshot, kinds: Mapping[str, str]) -> list[dict[str, Any]]:
    """Prometheus ``http_sd_configs`` target groups: one per published squid endpoint.

    The target is the squid's own port, where its cache manager answers
    (``/squid-internal-mgr/...``); labels name the service, the task and the host so that
    relabelling can keep what it needs. The Steward executors expose no HTTP endpoint: their
    per-task usage is in Steward's own ``/metrics``, so they add no target here.
    """
    groups: list[dict[str, Any]] = []
    by_address: dict[tuple[str, str], TaskRecord] = {}
    for record in snapshot.tasks:
        if record.hostname and record.ports:
            by_address[(record.service, f"{record.hostname}:{record.ports[0]}")] = record
    for name in sorted(snapshot.endpoints):
        for endpoint in snapshot.endpoints[name]:
            found = by_address.get((name, endpoint))
            labels = {
                "steward_service": name,
                "steward_kind": kinds.get(name, ""),
                "steward_target": "squid_cache_manager",
                "steward_task_id": found.task_id if found is not None else "",
                "steward_host": endpoint.rsplit(":", 1)[0],
            }
            groups.append({"targets": [endpoint], "labels": labels})
    return groups


def filter_tasks(records: Iterable[TaskRecord], service: str | None, state: str | None) -> list[TaskRecord]:
    """Tasks of ``service`` (any if None) in ``state`` (a phase name, any if None)."""
    return [
        r
        for r in records
        if (service is None or r.service == service) and (state is None or r.state.value == state)
    ]
