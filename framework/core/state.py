"""``SchedulerState``: Steward's whole scheduling mind, driven by events and answering with operations.

::

    ops = state.handle(event, now)      # the only way in; returns operations to execute in order
    state.snapshot() -> StateSnapshot   # for metrics and the API
    state.check_invariants()            # raises InvariantViolation (tests call it after each step)

Nothing else mutates it, it does no I/O and reads no clock: the runtime passes ``now`` (monotonic
seconds), executes the operations in list order (see ``framework.model.operations`` for the
write-ahead rules) and feeds failures back as ``CallFailed``.

What each event does:

* ``Subscribed``: persist the framework ID, forget nothing but start **reconciliation**: an
  explicit RECONCILE of every live task, repeated with truncated exponential backoff on ``Tick``
  until each has had an update since it started, then one implicit RECONCILE. Until then (and while
  disconnected) Steward **kills nothing and scales nothing down**; launches are allowed (they are
  counted idempotently, so they cannot duplicate what reconciliation will reveal). Steward never
  holds offers, so a new subscription has none to drop.
* ``OffersReceived``: plan (``framework.core.placement``), record each launch as LAUNCHING, and
  answer every offer at once: ``PersistTasks`` of the new records, one ``Launch`` per used offer,
  ``Decline`` for the rest with the configured ``refuse_seconds`` (a short filter when the reason is
  transient: backoff or a dependency that is about to be met).
* ``StatusUpdated``: apply it (``framework.core.lifecycle``), persist or forget the record, then
  ``Acknowledge`` (only updates with a uuid, only after the write). Updates of tasks Steward does not
  know are adopted when their ID names a configured service (a surplus is then killed), otherwise
  killed. Cheap reactions happen at once (a pending kill re-sent, a duplicate in a slot, the startds
  of a host whose CVMFS ended); the rest waits for the next ``Tick``.
* ``Tick`` (the runtime sends one about every second): timers: reconciliation retries, periodic
  implicit reconciliation, explicit reconciliation of launches stuck without news, replacement of
  tasks unreachable for too long, KILL retries, health kills, restart-backoff reset, scale-down,
  forgetting hosts that stopped offering, SUPPRESS/REVIVE.
* ``ConfigApplied`` / ``TargetChanged`` / ``BackoffResetRequested``: recompute desired state and
  converge at once.
* ``RestartRequested``: a rolling restart. The service's live tasks at that moment are replaced one
  at a time: one is killed when none of the service's tasks is being killed or starting, none is
  pending and (with a health check) every counting one is healthy; the freed slot relaunches as
  usual. It needs kills allowed, so it pauses while disconnected or reconciling. The tasks to
  replace are marked in their records (``restart_requested``), so a restarted Steward goes on.
* ``CallFailed``: a failed ACCEPT abandons its LAUNCHING tasks (no backoff: not their fault), a
  failed KILL is re-sent, a failed RECONCILE retried, a failed SUPPRESS/REVIVE forgotten/retried.

SUPPRESS per role when that role has nothing to launch; REVIVE when its demand rises, or when demand
has waited ``revive_after_no_offers_s`` without an offer, never more often than
``offers.revive_min_interval_s``.

Kill decisions share one token bucket (``kill_rate_per_minute``); a decision refused by it is taken
again on a later Tick. A startd kill is a drain (``draining``, the service's kill grace period).
"""

from __future__ import annotations

import math
import secrets
from collections import Counter, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TypeVar

import msgspec

from framework.config.model import Config, ServiceConfig, ServiceKind
from framework.core import lifecycle
from framework.core.constraints import HostInfo, host_from_offer
from framework.core.convergence import (
    VictimChooser,
    choose_victims,
    count_service,
    group_by_slot,
    health_kill_due,
    published_endpoints,
    slot_survivor,
    unhealthy_for_s,
)
from framework.core.desired import DesiredState, Target, compute_desired
from framework.core.lifecycle import RestartBackoff, UpdateKind
from framework.core.placement import OfferPlan, PlannedLaunch, plan_offers
from framework.core.ratelimit import TokenBucket
from framework.core.taskbuild import (
    ServiceTemplate,
    StewardExecutorArtifact,
    TaskSpec,
    build_task_info,
    service_fingerprint,
    service_template,
    unsupported_reason,
)
from framework.model import resources
from framework.model.events import (
    BackoffResetRequested,
    CallFailed,
    ConfigApplied,
    Disconnected,
    Event,
    OfferRescinded,
    OffersReceived,
    RestartRequested,
    StatusUpdated,
    Subscribed,
    TargetChanged,
    Tick,
)
from framework.model.operations import (
    Acknowledge,
    Decline,
    ForgetTasks,
    Kill,
    Launch,
    Operation,
    PersistFrameworkId,
    PersistTasks,
    Reconcile,
    Revive,
    Suppress,
)
from framework.model.proto import Offer, Resource, TaskState, TaskStatus
from framework.model.snapshot import Note, ServiceSnapshot, StateSnapshot
from framework.model.tasks import (
    AgentId,
    LocalState,
    OfferId,
    TaskId,
    TaskRecord,
    counts_toward_desired,
    ends_task,
    make_task_id,
    parse_task_id,
)

__all__ = ["CoreSettings", "InvariantViolation", "SchedulerState"]


class InvariantViolation(AssertionError):
    """The core's state broke one of its own rules (a bug); the message says which and where."""


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreSettings:
    """Policy knobs of the core that the configuration does not (yet) carry, with their defaults."""

    unreachable_replace_after_s: float = 300.0
    """How long a TASK_UNREACHABLE task keeps its slot before a replacement is launched."""
    kill_rate_per_minute: float = 10.0
    """Global kill decisions per minute (token bucket refill)."""
    kill_burst: float = 10.0
    """Kill decisions allowed at once (token bucket size)."""
    kill_retry_after_s: float = 30.0
    """A KILL is re-sent when no terminal update came this long after its grace period."""
    breaker_max_unhealthy_fraction: float = 0.5
    """Health kills stop for a service when more than this share of its running tasks is unhealthy..."""
    breaker_min_unhealthy: int = 2
    """... and at least this many are (a single unhealthy task is still replaced)."""
    backoff_reset_after_s: float = 60.0
    """A service's restart backoff is forgotten once one of its tasks ran healthy this long."""
    reconcile_initial_s: float = 1.0
    """First wait before repeating an unanswered explicit reconciliation (doubles each time)."""
    reconcile_max_s: float = 60.0
    """Longest wait between explicit reconciliation rounds."""
    reconcile_interval_s: float = 600.0
    """Period of implicit reconciliation once reconciled."""
    stuck_launch_after_s: float = 180.0
    """A task launching/staging/starting without any update this long is reconciled explicitly."""
    revive_after_no_offers_s: float = 30.0
    """REVIVE again when a role's demand has seen no offer (and no REVIVE) this long."""
    transient_refuse_s: float = 5.0
    """Decline filter for offers a service could use soon (backoff, dependency about to be met)."""
    default_kill_grace_s: float = 30.0
    """Kill grace for tasks of services that are not configured."""
    unpublish_before_kill_s: float = 5.0
    """A squid that was serving (published) when Steward decided to kill it leaves the published
    endpoints at once but gets its KILL (SIGTERM: it closes its port and drains) only this much
    later. Clients that re-read the endpoints stop sending to it first; without the pause, a
    request sent in the instant squid closes its port was lost after it had been sent."""
    host_forget_after_s: float = 900.0
    """A host not offered for this long is forgotten (an agent that went away must not keep a
    per-host service's demand, and its REVIVEs, alive forever). Hosts running an instance of a
    per-host service keep it regardless."""
    notes_kept: int = 200
    """How many recent notes the snapshot carries."""
    steward_executor: StewardExecutorArtifact | None = None
    """Where the Steward executor zipapp is served; ``executor: steward`` services wait without it."""


@dataclass(slots=True)
class _Reconciliation:
    started_at: float
    pending: dict[TaskId, AgentId | None]
    delay_s: float
    next_at: float


@dataclass(slots=True)
class _Outbox:
    """Operations collected during one ``handle``, emitted in write-ahead order."""

    framework_id: str | None = None
    writes: dict[TaskId, TaskRecord | None] = field(default_factory=dict)
    launches: list[Launch] = field(default_factory=list)
    kills: list[Kill] = field(default_factory=list)
    declines: list[Decline] = field(default_factory=list)
    flow: list[Suppress | Revive] = field(default_factory=list)
    reconciles: list[Reconcile] = field(default_factory=list)
    acks: list[Acknowledge] = field(default_factory=list)

    def drain(self) -> list[Operation]:
        ops: list[Operation] = []
        if self.framework_id is not None:
            ops.append(PersistFrameworkId(self.framework_id))
        persist = tuple(r for r in self.writes.values() if r is not None)
        forget = tuple(tid for tid, r in self.writes.items() if r is None)
        if persist:
            ops.append(PersistTasks(persist))
        if forget:
            ops.append(ForgetTasks(forget))
        ops.extend(self.launches)
        ops.extend(self.kills)
        ops.extend(self.declines)
        ops.extend(self.flow)
        ops.extend(self.reconciles)
        ops.extend(self.acks)
        return ops


def _random_suffix() -> str:
    return secrets.token_hex(4)


_K = TypeVar("_K")


def _discard(index: dict[_K, dict[TaskId, None]], key: _K, task_id: TaskId) -> None:
    members = index.get(key)
    if members is not None:
        members.pop(task_id, None)
        if not members:
            del index[key]


class SchedulerState:
    """See the module docstring. Not thread-safe: one owner (the runtime's event loop)."""

    def __init__(
        self,
        config: Config,
        *,
        now: float,
        framework_roles: Sequence[str] | None = None,
        tasks: Iterable[TaskRecord] = (),
        framework_id: str | None = None,
        settings: CoreSettings | None = None,
        choose_victims: VictimChooser = choose_victims,
        new_suffix: Callable[[], str] = _random_suffix,
    ) -> None:
        """``tasks`` are records loaded from the store (their times are re-based on ``now``);
        ``new_suffix`` makes the unique part of new task IDs (tests pass a deterministic one)."""
        self._settings = settings or CoreSettings()
        self._choose_victims = choose_victims
        self._new_suffix = new_suffix
        self._roles: tuple[str, ...] = tuple(framework_roles or config.framework.roles)
        self._now = now
        self._config = config
        self._fingerprints = {name: service_fingerprint(s) for name, s in config.services.items()}
        self._tasks: dict[TaskId, TaskRecord] = {}
        # Indexes are insertion-ordered (dicts used as sets) so that operations come out in a
        # deterministic order, whatever the hash seed.
        self._by_service: dict[str, dict[TaskId, None]] = {}
        self._by_slot: dict[tuple[str, int], dict[TaskId, None]] = {}
        self._by_host: dict[str, dict[TaskId, None]] = {}
        self._hosts: dict[str, HostInfo] = {}
        self._agent_hosts: dict[AgentId, str] = {}
        self._host_seen_at: dict[str, float] = {}
        self._targets: dict[str, Target] = {}
        self._backoff: dict[str, RestartBackoff] = {}
        self._breaker: dict[str, bool] = {}
        # Per service: the tasks its load source last said have work (startds running a job).
        self._busy: dict[str, frozenset[str]] = {}
        self._kill_bucket = TokenBucket(
            capacity=self._settings.kill_burst, refill_per_s=self._settings.kill_rate_per_minute / 60.0
        )
        self._kill_backlog = False
        self._framework_id = framework_id
        self._connected = False
        self._reconciled = False
        self._reconciliation: _Reconciliation | None = None
        self._subscribed_at: float | None = None
        self._reconciliation_s: float | None = None
        self._restarts: dict[str, dict[TaskId, None]] = {}
        self._last_implicit_at: float | None = None
        self._stuck_asked_at: dict[TaskId, float] = {}
        self._suppressed: set[str] = set()
        self._revive_wanted: set[str] = set()
        self._last_revive_at: float | None = None
        self._last_offer_at: dict[str, float] = {}
        self._last_pending: dict[str, int] = {}
        self._desired_cache: DesiredState | None = None
        self._counting: Counter[str] = Counter()
        self._counting_hosts: dict[str, Counter[str]] = {}
        self._templates: dict[str, ServiceTemplate] = {}
        self._converged = False
        self._counters: Counter[str] = Counter()
        self._notes: deque[Note] = deque(maxlen=self._settings.notes_kept)
        self._fresh_notes: list[Note] = []
        self._last_declines: Counter[str] = Counter()
        self._declines_total: Counter[str] = Counter()
        self._launch_checks: list[tuple[Offer, tuple[tuple[Resource, ...], ...]]] = []
        self._violations: list[str] = []
        self._unsaved: set[TaskId] = set()
        """Tasks whose latest record failed to reach the store: the next ``_put`` writes them."""
        self._out = _Outbox()
        for record in tasks:
            self._index(lifecycle.restored(record, now))
        # A rolling restart a previous Steward had not finished goes on, in slot order.
        pending = sorted(
            (r for r in self._tasks.values() if r.restart_requested and counts_toward_desired(r)),
            key=lambda r: (r.service, r.slot, r.task_id),
        )
        for record in pending:
            self._restarts.setdefault(record.service, {})[record.task_id] = None

    # --- the one way in -------------------------------------------------------------------------

    def handle(self, event: Event, now: float) -> list[Operation]:
        """Apply ``event`` at ``now`` and return the operations to execute, in order."""
        self._now = now
        self._out = _Outbox()
        self._converged = False
        match event:
            case Subscribed():
                self._on_subscribed(event, now)
            case Disconnected():
                self._on_disconnected(event, now)
            case OffersReceived():
                self._on_offers(event.offers, now)
            case OfferRescinded():
                self._counters["offers_rescinded"] += 1
            case StatusUpdated():
                self._on_status(event.status, now)
            case Tick():
                self._on_tick(now)
            case ConfigApplied():
                self._on_config(event, now)
            case TargetChanged():
                self._on_target(event, now)
            case BackoffResetRequested():
                self._on_backoff_reset(event, now)
            case RestartRequested():
                self._on_restart(event, now)
            case CallFailed():
                self._on_call_failed(event, now)
            case _:
                raise TypeError(f"not a scheduler event: {event!r}")
        return self._out.drain()

    # --- read-only views ------------------------------------------------------------------------

    @property
    def config(self) -> Config:
        return self._config

    @property
    def reconciled(self) -> bool:
        return self._reconciled

    @property
    def tasks(self) -> Mapping[TaskId, TaskRecord]:
        """Live task records by ID (read-only view)."""
        return self._tasks

    def desired(self) -> DesiredState:
        """The current desired state (cached until something it depends on changes)."""
        if self._desired_cache is None:
            startd_hosts: set[str] = set()
            running_on: dict[str, set[str]] = {}
            for name, service in self._config.services.items():
                hosts = {h for h in self._counting_hosts.get(name, ()) if h}
                if service.kind is ServiceKind.STARTD:
                    startd_hosts |= hosts
                elif service.per_host:
                    running_on[name] = hosts
            self._desired_cache = compute_desired(
                self._config, self._targets, self._hosts, startd_hosts, running_on
            )
        return self._desired_cache

    def endpoints(self) -> dict[str, tuple[str, ...]]:
        """Published endpoints by service (serving squids, ``host:port``)."""
        squids = [n for n, s in self._config.services.items() if s.kind is ServiceKind.SQUID]
        return published_endpoints(self._config, (r for n in squids for r in self._records_of(n)))

    def take_notes(self) -> list[Note]:
        """Notes made since the last call (for the runtime to log); they also stay in snapshots."""
        notes, self._fresh_notes = self._fresh_notes, []
        return notes

    def snapshot(self) -> StateSnapshot:
        """A frozen picture of everything above (see ``framework.model.snapshot``)."""
        desired = self.desired()
        endpoints = self.endpoints()
        services = []
        for name, service in self._config.services.items():
            counts = count_service(self._records_of(name))
            wanted = desired.services[name]
            backoff = self._backoff.get(name, RestartBackoff())
            services.append(
                ServiceSnapshot(
                    name=name,
                    kind=service.kind.value,
                    role=service.role,
                    desired=wanted.count,
                    desired_reason=wanted.reason,
                    counting=counts.counting,
                    launching=counts.launching,
                    staging=counts.staging,
                    running=counts.running,
                    unhealthy=counts.unhealthy,
                    killing=counts.killing,
                    unreachable=counts.unreachable,
                    pending=self._pending(name, desired),
                    backoff_until=backoff.until if backoff.active(self._now) else None,
                    restart_failures=backoff.failures,
                    breaker_open=self._breaker.get(name, False),
                    endpoints=endpoints.get(name, ()),
                    restart_pending=len(self._restarts.get(name, ())),
                )
            )
        return StateSnapshot(
            taken_at=self._now,
            framework_id=self._framework_id,
            connected=self._connected,
            reconciled=self._reconciled,
            services=tuple(services),
            tasks=tuple(sorted(self._tasks.values(), key=lambda r: r.task_id)),
            endpoints=endpoints,
            suppressed_roles=frozenset(self._suppressed),
            decline_reasons=dict(self._last_declines),
            counters=dict(self._counters),
            notes=tuple(self._notes),
            declines_by_reason=dict(self._declines_total),
            reconciliation_s=self._reconciliation_s,
        )

    # --- bookkeeping ----------------------------------------------------------------------------

    def _note(self, kind: str, text: str, task_id: TaskId | None = None) -> None:
        note = Note(self._now, kind, text, task_id)
        self._notes.append(note)
        self._fresh_notes.append(note)
        self._counters[f"note_{kind}"] += 1

    def _records_of(self, service: str) -> Iterator[TaskRecord]:
        tasks = self._tasks
        return (tasks[tid] for tid in self._by_service.get(service, ()))

    def _index(self, record: TaskRecord) -> None:
        """Insert or replace ``record`` in the task table and its indexes (no store write)."""
        old = self._tasks.get(record.task_id)
        if old is not None and (old.service, old.slot, old.hostname) != (
            record.service,
            record.slot,
            record.hostname,
        ):
            self._unindex(old)
            old = None
        self._tasks[record.task_id] = record
        if old is None:
            tid = record.task_id
            self._by_service.setdefault(record.service, {})[tid] = None
            self._by_slot.setdefault((record.service, record.slot), {})[tid] = None
            self._by_host.setdefault(record.hostname, {})[tid] = None
        was = old is not None and counts_toward_desired(old)
        now_counts = counts_toward_desired(record)
        if was != now_counts:
            self._count(record, +1 if now_counts else -1)

    def _unindex(self, record: TaskRecord) -> None:
        """Drop the task from the table and indexes (as the table knew it, whatever ``record`` says)."""
        tid = record.task_id
        known = self._tasks.pop(tid, None)
        if known is None:
            return
        _discard(self._by_service, known.service, tid)
        _discard(self._by_slot, (known.service, known.slot), tid)
        _discard(self._by_host, known.hostname, tid)
        if counts_toward_desired(known):
            self._count(known, -1)

    def _count(self, record: TaskRecord, delta: int) -> None:
        """Keep the per-service counting totals (and where they run) in step with the table."""
        self._counting[record.service] += delta
        hosts = self._counting_hosts.setdefault(record.service, Counter())
        hosts[record.hostname] += delta
        if hosts[record.hostname] <= 0:
            del hosts[record.hostname]
            if self._shapes_desired(record):
                self._desired_cache = None
        elif delta > 0 and hosts[record.hostname] == 1 and self._shapes_desired(record):
            self._desired_cache = None

    def _shapes_desired(self, record: TaskRecord) -> bool:
        """Whether ``record`` can change desired state (startds and per-host services depend on
        where tasks run)."""
        service = self._service(record.service)
        return service is not None and (service.per_host or service.kind is ServiceKind.STARTD)

    def _put(self, record: TaskRecord) -> None:
        """Change a record and write it to the store (before the operations that depend on it),
        unless the store already holds it as far as a restart is concerned
        (``lifecycle.same_when_restored``: a reconciliation answer confirming what is known)."""
        old = self._tasks.get(record.task_id)
        self._index(record)
        tid = record.task_id
        if (
            old is None
            or tid in self._out.writes
            or tid in self._unsaved
            or not lifecycle.same_when_restored(old, record)
        ):
            self._out.writes[tid] = record
            self._unsaved.discard(tid)

    def _forget(self, record: TaskRecord) -> None:
        self._unindex(record)
        self._unsaved.discard(record.task_id)
        self._stuck_asked_at.pop(record.task_id, None)
        self._out.writes[record.task_id] = None

    def _service(self, name: str) -> ServiceConfig | None:
        return self._config.services.get(name)

    def _kills_allowed(self) -> bool:
        return self._connected and self._reconciled

    # --- subscription and reconciliation --------------------------------------------------------

    def _on_subscribed(self, event: Subscribed, now: float) -> None:
        if self._framework_id != event.framework_id and self._framework_id is not None:
            self._note(
                "framework_id_changed", f"master assigned {event.framework_id}, was {self._framework_id}"
            )
        self._framework_id = event.framework_id
        self._out.framework_id = event.framework_id
        self._connected = True
        self._reconciled = False
        self._subscribed_at = now
        self._suppressed.clear()  # the driver re-subscribes with its own suppressed set: start clean
        self._last_pending.clear()
        self._revive_wanted.clear()
        live = {tid: r.agent_id for tid, r in self._tasks.items()}
        self._counters["subscriptions"] += 1
        if live:
            self._reconciliation = _Reconciliation(
                started_at=now,
                pending=live,
                delay_s=self._settings.reconcile_initial_s,
                next_at=now + self._settings.reconcile_initial_s,
            )
            self._out.reconciles.append(Reconcile(tuple(live.items()), implicit=False))
            self._note("reconciling", f"explicit reconciliation of {len(live)} task(s)")
        else:
            self._finish_reconciliation(now)
        self._converge_all(now)

    def _finish_reconciliation(self, now: float) -> None:
        self._reconciliation = None
        self._reconciled = True
        self._last_implicit_at = now
        if self._subscribed_at is not None:
            self._reconciliation_s = now - self._subscribed_at
        self._out.reconciles.append(Reconcile((), implicit=True))
        self._note("reconciled", "every known task answered; implicit reconciliation sent")

    def _on_disconnected(self, event: Disconnected, now: float) -> None:
        self._connected = False
        self._reconciled = False
        self._reconciliation = None
        self._note("disconnected", f"disconnected: {event.reason}; kills held until reconciled again")

    def _reconcile_timers(self, now: float) -> None:
        progress = self._reconciliation
        if progress is not None and self._connected and now >= progress.next_at:
            for tid in [t for t in progress.pending if t not in self._tasks]:
                del progress.pending[tid]
            if not progress.pending:
                self._finish_reconciliation(now)
            else:
                self._out.reconciles.append(Reconcile(tuple(progress.pending.items()), implicit=False))
                progress.delay_s = min(progress.delay_s * 2, self._settings.reconcile_max_s)
                progress.next_at = now + progress.delay_s
                self._counters["reconcile_retries"] += 1
        if not (self._connected and self._reconciled):
            return
        last = self._last_implicit_at
        if last is None or now - last >= self._settings.reconcile_interval_s:
            self._last_implicit_at = now
            self._out.reconciles.append(Reconcile((), implicit=True))
        stuck_after = self._settings.stuck_launch_after_s
        stuck: list[tuple[TaskId, AgentId | None]] = []
        for record in self._tasks.values():
            if record.state not in (LocalState.LAUNCHING, TaskState.TASK_STAGING, TaskState.TASK_STARTING):
                continue
            heard = record.last_update_at if record.last_update_at is not None else record.launched_at
            asked = self._stuck_asked_at.get(record.task_id, -math.inf)
            if now - heard >= stuck_after and now - asked >= stuck_after:
                self._stuck_asked_at[record.task_id] = now
                stuck.append((record.task_id, record.agent_id))
        if stuck:
            self._out.reconciles.append(Reconcile(tuple(stuck), implicit=False))
            self._note(
                "stuck_launch", f"{len(stuck)} task(s) without news for {stuck_after:g} s: reconciling"
            )

    # --- offers ---------------------------------------------------------------------------------

    def _learn_host(self, offer: Offer, now: float) -> None:
        info = host_from_offer(offer)
        if self._hosts.get(info.hostname) != info:
            self._hosts[info.hostname] = info
            self._desired_cache = None
        self._host_seen_at[info.hostname] = now
        if self._agent_hosts.get(info.agent_id) != info.hostname:
            self._agent_hosts[info.agent_id] = info.hostname
            for tid in list(self._by_host.get("", ())):
                record = self._tasks[tid]
                if record.agent_id == info.agent_id:  # adopted before its agent was offered
                    self._put(msgspec.structs.replace(record, hostname=info.hostname))

    def _forget_stale_hosts(self, now: float) -> None:
        limit = self._settings.host_forget_after_s
        stale = [h for h, seen in self._host_seen_at.items() if now - seen >= limit]
        for hostname in stale:
            del self._host_seen_at[hostname]
            self._hosts.pop(hostname, None)
        if stale:
            gone = set(stale)
            for agent_id in [a for a, h in self._agent_hosts.items() if h in gone]:
                del self._agent_hosts[agent_id]
            self._desired_cache = None
            self._note("hosts_forgotten", f"{len(stale)} host(s) not offered for {limit:g} s forgotten")

    def _blocked(self) -> dict[str, str]:
        blocked = {}
        for name, service in self._config.services.items():
            reason = unsupported_reason(service, self._settings.steward_executor)
            if reason is not None:
                blocked[name] = reason
        return blocked

    def _on_offers(self, offers: Sequence[Offer], now: float) -> None:
        self._counters["offers_received"] += len(offers)
        default_role = self._roles[0] if len(self._roles) == 1 else None
        for offer in offers:
            self._learn_host(offer, now)
            role = offer.role or default_role
            if role is not None:
                self._last_offer_at[role] = now
        self._converge_tasks(now)
        desired = self.desired()
        endpoints = self.endpoints()
        squid_endpoints = tuple(e for name in sorted(endpoints) for e in endpoints[name])
        backoff_until = {
            n: b.until for n, b in self._backoff.items() if b.until is not None and b.active(now)
        }
        plan = plan_offers(
            offers,
            desired,
            self._tasks.values(),
            now,
            config=self._config,
            hosts=self._hosts,
            backoff_until=backoff_until,
            squid_endpoints=squid_endpoints,
            blocked=self._blocked(),
            default_role=default_role,
        )
        self._apply_plan(offers, plan, squid_endpoints, now)
        self._update_offer_flow(now)

    def _new_task_id(self, service: str, slot: int) -> TaskId:
        while True:
            task_id = make_task_id(service, slot, self._new_suffix())
            if task_id not in self._tasks:
                return task_id

    def _apply_plan(
        self, offers: Sequence[Offer], plan: OfferPlan, squid_endpoints: tuple[str, ...], now: float
    ) -> None:
        settings = self._settings
        long_refuse = self._config.framework.offers.refuse_seconds
        short_refuse = min(long_refuse, settings.transient_refuse_s)
        by_offer: dict[OfferId, list[PlannedLaunch]] = {}
        for launch in plan.launches:
            by_offer.setdefault(launch.offer_id, []).append(launch)
        offers_by_id = {OfferId(o.id.value): o for o in offers}
        self._launch_checks = []
        for offer_id, launches in by_offer.items():
            infos = []
            for launch in launches:
                service = self._config.services[launch.service]
                task_id = self._new_task_id(launch.service, launch.slot)
                fingerprint = self._fingerprints[launch.service]
                record = TaskRecord(
                    task_id=task_id,
                    service=launch.service,
                    slot=launch.slot,
                    agent_id=launch.agent_id,
                    hostname=launch.hostname,
                    state=LocalState.LAUNCHING,
                    launched_at=now,
                    ports=launch.ports,
                    cpus=service.resources.cpus,  # placement claims exactly the request
                    mem_mib=service.resources.mem_mib,
                    config_fingerprint=fingerprint,
                    depends_on=launch.depends_on,
                )
                self._put(record)
                template = self._templates.get(launch.service)
                if template is None:
                    template = self._templates[launch.service] = service_template(
                        service, self._settings.steward_executor
                    )
                infos.append(
                    build_task_info(
                        TaskSpec(
                            task_id=task_id,
                            service=service,
                            slot=launch.slot,
                            agent_id=launch.agent_id,
                            hostname=launch.hostname,
                            resources=launch.resources,
                            ports=launch.ports,
                            config_fingerprint=fingerprint,
                            framework_id=self._framework_id,
                            squid_endpoints=squid_endpoints if service.kind is ServiceKind.CVMFS else (),
                        ),
                        template,
                    )
                )
            first = launches[0]
            self._out.launches.append(
                Launch(
                    offer_ids=(offer_id,),
                    agent_id=first.agent_id,
                    role=first.role,
                    task_infos=tuple(infos),
                    refuse_seconds=short_refuse if offer_id in plan.transient else long_refuse,
                )
            )
            self._launch_checks.append((offers_by_id[offer_id], tuple(lau.resources for lau in launches)))
            self._counters["offers_used"] += 1
            self._counters["launches"] += len(launches)
        self._last_declines = Counter(plan.decline_categories)
        self._declines_total.update(plan.decline_categories)
        groups: dict[float, list[tuple[OfferId, str]]] = {}
        for offer_id, reason in plan.declines:
            refuse = short_refuse if offer_id in plan.transient else long_refuse
            groups.setdefault(refuse, []).append((offer_id, reason))
        for refuse, declined in sorted(groups.items()):
            self._out.declines.append(
                Decline(
                    offer_ids=tuple(o for o, _ in declined),
                    refuse_seconds=refuse,
                    reasons=tuple(r for _, r in declined),
                )
            )
        self._counters["offers_declined"] += len(plan.declines)
        desired = self.desired()
        for name in {launch.service for launch in plan.launches}:
            wanted = desired.services[name]
            counting = self._counting[name]
            if counting > wanted.count:
                self._violations.append(
                    f"service {name}: {counting} counting tasks after launching, desired {wanted.count}"
                )

    # --- status updates -------------------------------------------------------------------------

    def _on_status(self, status: TaskStatus, now: float) -> None:
        task_id = TaskId(status.task_id.value)
        self._counters[f"update_{status.state.value}"] += 1
        progress = self._reconciliation
        if progress is not None:
            progress.pending.pop(task_id, None)
        record = self._tasks.get(task_id)
        if record is None:
            self._on_unknown_task(task_id, status, now)
        else:
            applied = lifecycle.apply_status(record, status, now)
            if applied.kind is not UpdateKind.EXPECTED:
                self._counters[f"update_{applied.kind.value}"] += 1
                if applied.note is not None and applied.kind is not UpdateKind.DUPLICATE:
                    self._note(f"{applied.kind.value}_update", applied.note, task_id)
            updated = applied.record
            if ends_task(updated.state):
                self._task_ended(record, updated, status, now)
            else:
                self._put(updated)
                if counts_toward_desired(updated):
                    self._resolve_slot(updated.service, updated.slot, now)
                if updated.kill_requested_at is not None:
                    self._send_kill(updated, now)
        if status.uuid is not None and status.agent_id is not None:
            self._out.acks.append(Acknowledge(status))
        if progress is not None and not progress.pending and self._connected:
            self._finish_reconciliation(now)

    def _on_unknown_task(self, task_id: TaskId, status: TaskStatus, now: float) -> None:
        if ends_task(status.state):
            self._counters["update_unknown_task_ended"] += 1
            return
        parsed = parse_task_id(task_id)
        service_name, slot = parsed if parsed is not None else ("", -1)
        service = self._service(service_name)
        agent_id = AgentId(status.agent_id.value) if status.agent_id is not None else None
        hostname = self._agent_hosts.get(agent_id, "") if agent_id is not None else ""
        base = TaskRecord(
            task_id=task_id,
            service=service_name,
            slot=slot if service is not None else -1,
            agent_id=agent_id,
            hostname=hostname,
            state=LocalState.LAUNCHING,
            launched_at=now,
            adopted=True,
            cpus=service.resources.cpus if service is not None else 0.0,
            mem_mib=service.resources.mem_mib if service is not None else 0.0,
        )
        record = lifecycle.apply_status(base, status, now).record
        self._put(record)
        if service is None:
            self._note(
                "unknown_task", f"task {task_id} names no configured service: it will be killed", task_id
            )
            if self._kills_allowed():
                self._request_kill(record, "unknown task: no configured service", now)
            return
        self._note("adopted", f"adopted {task_id} ({status.state.value}) reported by the master", task_id)
        self._counters["adopted"] += 1
        if counts_toward_desired(record):
            self._resolve_slot(service_name, record.slot, now)

    def _task_ended(self, before: TaskRecord, after: TaskRecord, status: TaskStatus, now: float) -> None:
        service = self._service(before.service)
        state = after.state
        assert isinstance(state, TaskState)
        if service is not None and lifecycle.grows_backoff(before, state, status.reason, service.kind):
            backoff = lifecycle.next_backoff(
                self._backoff.get(service.name, RestartBackoff()), service.restart_backoff, now
            )
            self._backoff[service.name] = backoff
            assert backoff.until is not None
            self._note(
                "restart_backoff",
                f"{before.task_id} ended {state.value} ({status.reason or 'no reason'}): "
                f"{service.name} waits {backoff.until - now:.1f} s before the next launch "
                f"(failure {backoff.failures})",
                before.task_id,
            )
        self._counters[f"ended_{state.value}"] += 1
        self._forget(after)
        if service is not None and service.kind is ServiceKind.CVMFS and before.hostname:
            self._drain_dependents(before, now)

    def _drain_dependents(self, cvmfs: TaskRecord, now: float) -> None:
        """The CVMFS task on a host ended: drain and replace the startds that relied on it."""
        if not self._kills_allowed():
            return
        for tid in list(self._by_host.get(cvmfs.hostname, ())):
            record = self._tasks[tid]
            if record.depends_on == cvmfs.task_id and record.kill_requested_at is None:
                self._request_kill(record, f"cvmfs restarted on host {cvmfs.hostname}", now, draining=True)

    def _resolve_slot(self, service: str, slot: int, now: float) -> None:
        """Kill all but one counting task of a slot (see ``convergence.slot_survivor``)."""
        if slot < 0 or not self._kills_allowed():
            return
        members = [self._tasks[t] for t in self._by_slot.get((service, slot), ())]
        counting = [r for r in members if counts_toward_desired(r)]
        if len(counting) < 2:
            return
        keep = slot_survivor(counting)
        for record in counting:
            if record is not keep:
                self._request_kill(record, f"duplicate in slot {slot} (keeping {keep.task_id})", now)

    # --- kills ----------------------------------------------------------------------------------

    def _grace_s(self, record: TaskRecord) -> float:
        service = self._service(record.service)
        return service.kill_grace_period_s if service is not None else self._settings.default_kill_grace_s

    def _request_kill(self, record: TaskRecord, reason: str, now: float, *, draining: bool = False) -> bool:
        """Decide to kill ``record`` if the kill-rate limit allows; the KILL goes out when it can."""
        if not self._kill_bucket.try_take(now):
            self._kill_backlog = True
            self._counters["kill_rate_limited"] += 1
            return False
        service = self._service(record.service)
        drain = draining or (service is not None and service.kind is ServiceKind.STARTD)
        updated = msgspec.structs.replace(record, kill_requested_at=now, kill_reason=reason, draining=drain)
        self._put(updated)
        self._counters["kills_requested"] += 1
        self._note("kill", f"killing {record.task_id}: {reason}", record.task_id)
        self._send_kill(updated, now)
        return True

    def _send_kill(self, record: TaskRecord, now: float) -> None:
        """Send (or re-send, after grace + retry time) the KILL of a task Steward decided to kill."""
        if not self._kills_allowed() or record.state is TaskState.TASK_UNREACHABLE:
            return
        if record.kill_sent_at is None and self._unpublishing(record, now):
            return  # sent by a later Tick, once clients have had time to see it gone
        grace = self._grace_s(record)
        if (
            record.kill_sent_at is not None
            and now - record.kill_sent_at < grace + self._settings.kill_retry_after_s
        ):
            return
        if record.kill_sent_at is not None:
            self._counters["kill_retries"] += 1
        self._out.kills.append(
            Kill(record.task_id, record.agent_id, grace, record.kill_reason or "requested")
        )
        self._put(msgspec.structs.replace(record, kill_sent_at=now))
        self._counters["kills_sent"] += 1

    def _unpublishing(self, record: TaskRecord, now: float) -> bool:
        """A squid published until its kill decision, within ``unpublish_before_kill_s`` of it."""
        delay = self._settings.unpublish_before_kill_s
        service = self._service(record.service)
        if delay <= 0 or record.kill_requested_at is None or service is None:
            return False
        if service.kind is not ServiceKind.SQUID or record.state is not TaskState.TASK_RUNNING:
            return False
        checked = service.health_check is not None
        was_published = record.healthy is True if checked else record.healthy is not False
        return was_published and now - record.kill_requested_at < delay

    # --- convergence ----------------------------------------------------------------------------

    def _on_tick(self, now: float) -> None:
        self._reconcile_timers(now)
        self._forget_stale_hosts(now)
        self._converge_all(now)

    def _converge_all(self, now: float) -> None:
        self._converge_tasks(now)
        self._update_offer_flow(now)

    def _converge_tasks(self, now: float) -> None:
        """Run every per-service rule over every service (and tasks of removed services)."""
        self._kill_backlog = False
        names = list(self._config.services) + [n for n in self._by_service if n not in self._config.services]
        for name in names:
            self._converge_service(name, now)
        self._converged = True

    def _converge_service(self, name: str, now: float) -> None:
        service = self._service(name)
        settings = self._settings
        records = list(self._records_of(name))
        if service is None:
            if self._kills_allowed():
                for record in records:
                    if record.kill_requested_at is None:
                        self._request_kill(record, f"service {name!r} is no longer configured", now)
            self._send_pending_kills(name, now)
            return
        # Unreachable for too long: free the slot for a replacement.
        for record in records:
            since = record.unreachable_since
            if (
                record.state is TaskState.TASK_UNREACHABLE
                and record.replaced_at is None
                and since is not None
                and now - since >= settings.unreachable_replace_after_s
            ):
                self._put(msgspec.structs.replace(record, replaced_at=now))
                self._note(
                    "replacing_unreachable",
                    f"{record.task_id} unreachable for {now - since:.0f} s: launching a replacement "
                    f"in slot {record.slot}",
                    record.task_id,
                )
        records = list(self._records_of(name))
        self._maybe_reset_backoff(service, records, now)
        counts = count_service(records)
        was_open = self._breaker.get(name, False)
        is_open = service.health_check is not None and lifecycle.breaker_open(
            counts.running,
            counts.unhealthy,
            max_unhealthy_fraction=settings.breaker_max_unhealthy_fraction,
            min_unhealthy=settings.breaker_min_unhealthy,
        )
        if is_open != was_open:
            self._breaker[name] = is_open
            self._note(
                "breaker_open" if is_open else "breaker_closed",
                f"{name}: {counts.unhealthy} of {counts.running} running tasks unhealthy; health kills "
                + ("stopped" if is_open else "resumed"),
            )
        if self._kills_allowed():
            self._decide_kills(service, now)
        self._send_pending_kills(name, now)

    def _maybe_reset_backoff(self, service: ServiceConfig, records: Sequence[TaskRecord], now: float) -> None:
        """Forget the backoff once a task launched after the latest failure ran healthy long enough
        (older tasks that kept running prove nothing about the crashing ones)."""
        backoff = self._backoff.get(service.name)
        if backoff is None:
            return
        failed_at = backoff.last_failure_at if backoff.last_failure_at is not None else -math.inf
        for record in records:
            healthy = record.healthy is True or (service.health_check is None and record.healthy is None)
            since = record.running_since
            if (
                record.state is TaskState.TASK_RUNNING
                and counts_toward_desired(record)
                and healthy
                and since is not None
                and now - since >= self._settings.backoff_reset_after_s
                and record.launched_at >= failed_at
            ):
                del self._backoff[service.name]
                self._note(
                    "backoff_reset", f"{service.name}: {record.task_id} ran healthy; backoff forgotten"
                )
                return

    def _decide_kills(self, service: ServiceConfig, now: float) -> None:
        name = service.name
        # A startd whose CVMFS task is gone: drain and replace.
        if service.kind is ServiceKind.STARTD:
            for record in list(self._records_of(name)):
                dep = record.depends_on
                if dep is None or not counts_toward_desired(record):
                    continue
                cvmfs = self._tasks.get(dep)
                if cvmfs is None or not counts_toward_desired(cvmfs):
                    where = record.hostname or "its host"
                    self._request_kill(record, f"cvmfs restarted on host {where}", now, draining=True)
        # Duplicates in a slot.
        for slot, members in group_by_slot(self._records_of(name)).items():
            if len(members) > 1:
                self._resolve_slot(name, slot, now)
        # Surplus.
        wanted = self.desired().services[name]
        counting = [r for r in self._records_of(name) if counts_toward_desired(r)]
        if wanted.per_host:
            hosts = wanted.hosts or frozenset()
            by_host: dict[str, list[TaskRecord]] = {}
            for record in counting:
                by_host.setdefault(record.hostname, []).append(record)
            for host, members in by_host.items():
                if not host:
                    continue  # adopted on an agent not offered yet: nothing to judge by
                if host not in hosts:
                    for record in members:
                        self._request_kill(record, f"host {host} no longer needs {name}", now)
                elif len(members) > 1:
                    keep = slot_survivor(members)
                    for record in members:
                        if record is not keep:
                            self._request_kill(record, f"second {name} on host {host}", now)
        elif len(counting) > wanted.count and not wanted.hold_surplus:
            busy = self._busy.get(name, frozenset())
            for record in self._choose_victims(counting, len(counting) - wanted.count, busy):
                if record.kill_requested_at is None and counts_toward_desired(self._tasks[record.task_id]):
                    self._request_kill(self._tasks[record.task_id], f"scale down to {wanted.count}", now)
        # Health.
        check = service.health_check
        if check is not None and not self._breaker.get(name, False):
            for record in list(self._records_of(name)):
                if health_kill_due(record, service, now):
                    assert record.unhealthy_since is not None
                    self._request_kill(
                        record,
                        f"unhealthy for {now - record.unhealthy_since:.0f} s "
                        f"(limit {unhealthy_for_s(check):g} s)",
                        now,
                    )
        self._advance_restart(service, now)

    def _advance_restart(self, service: ServiceConfig, now: float) -> None:
        """Kill the next task of a rolling restart once the service is settled (module docstring)."""
        name = service.name
        left = self._restarts.get(name)
        if left is None:
            return
        for tid in [t for t in left if t not in self._tasks or not counts_toward_desired(self._tasks[t])]:
            del left[tid]  # ended, being killed or given up on: nothing left to restart there
        starting = (LocalState.LAUNCHING, TaskState.TASK_STAGING, TaskState.TASK_STARTING)
        checked = service.health_check is not None
        for record in self._records_of(name):
            if record.kill_requested_at is not None or record.state is TaskState.TASK_KILLING:
                return
            if counts_toward_desired(record) and (
                record.state in starting or (checked and record.healthy is not True)
            ):
                return
        if self._pending(name, self.desired()) > 0:
            return
        if not left:
            del self._restarts[name]
            self._note("restart_done", f"{name}: rolling restart finished")
            return
        victim = self._tasks[next(iter(left))]
        if self._request_kill(victim, f"rolling restart ({len(left)} task(s) left)", now):
            del left[victim.task_id]

    def _send_pending_kills(self, name: str, now: float) -> None:
        if not self._kills_allowed():
            return
        for record in list(self._records_of(name)):
            if record.kill_requested_at is not None:
                self._send_kill(record, now)

    # --- offer flow (SUPPRESS / REVIVE) ---------------------------------------------------------

    def _pending(self, name: str, desired: DesiredState) -> int:
        wanted = desired.services.get(name)
        if wanted is None:
            return 0
        if wanted.per_host:
            hosts: Mapping[str, int] = self._counting_hosts.get(name, {})
            return sum(1 for h in wanted.hosts or () if h not in hosts)
        return max(0, wanted.count - self._counting[name])

    def _update_offer_flow(self, now: float) -> None:
        if not self._connected:
            return
        desired = self.desired()
        blocked = self._blocked()
        demand: Counter[str] = Counter()
        for name, service in self._config.services.items():
            if name not in blocked:
                demand[service.role] += self._pending(name, desired)
        to_suppress: list[str] = []
        stale_after = self._settings.revive_after_no_offers_s
        for role in self._roles:
            pending = demand.get(role, 0)
            previous = self._last_pending.get(role, 0)
            self._last_pending[role] = pending
            if pending > 0:
                if role in self._suppressed or pending > previous:
                    self._revive_wanted.add(role)
                seen = max(self._last_offer_at.get(role, -math.inf), self._last_revive_at or -math.inf)
                if now - seen >= stale_after:
                    self._revive_wanted.add(role)
            else:
                self._revive_wanted.discard(role)
                if role not in self._suppressed:
                    to_suppress.append(role)
        interval = self._config.framework.offers.revive_min_interval_s
        if self._revive_wanted and (self._last_revive_at is None or now - self._last_revive_at >= interval):
            roles = tuple(sorted(self._revive_wanted))
            self._out.flow.append(Revive(roles))
            self._suppressed.difference_update(roles)
            self._revive_wanted.clear()
            self._last_revive_at = now
            self._counters["revives"] += 1
        if to_suppress:
            self._out.flow.append(Suppress(tuple(to_suppress)))
            self._suppressed.update(to_suppress)
            self._counters["suppresses"] += 1

    # --- configuration, targets, operator -------------------------------------------------------

    def _on_config(self, event: ConfigApplied, now: float) -> None:
        config = event.config
        if not isinstance(config, Config):
            raise TypeError(f"ConfigApplied needs a framework.config.Config, got {type(config).__name__}")
        fingerprints = {name: service_fingerprint(s) for name, s in config.services.items()}
        for name, fingerprint in fingerprints.items():
            if self._fingerprints.get(name) != fingerprint and name in self._backoff:
                del self._backoff[name]
        for name in list(self._targets):
            service = config.services.get(name)
            if service is None or service.per_host:
                del self._targets[name]
        for name in list(self._backoff):
            if name not in config.services:
                del self._backoff[name]
        for name in [n for n in self._restarts if n not in config.services]:
            del self._restarts[name]
        self._config = config
        self._fingerprints = fingerprints
        self._templates.clear()
        self._desired_cache = None
        self._note("config_applied", f"configuration with {len(config.services)} service(s) applied")
        self._converge_all(now)

    def _on_target(self, event: TargetChanged, now: float) -> None:
        service = self._service(event.service)
        if service is None or service.per_host:
            why = "is not configured" if service is None else "is per-host"
            self._note("target_ignored", f"target for {event.service} ignored: the service {why}")
            return
        if event.busy is not None:
            self._busy[event.service] = event.busy
        if event.instances is None:
            self._targets.pop(event.service, None)
        else:
            self._targets[event.service] = Target(event.instances, event.reason)
        self._desired_cache = None
        self._converge_all(now)

    def _on_restart(self, event: RestartRequested, now: float) -> None:
        name = event.service
        if self._service(name) is None:
            self._note("restart_ignored", f"restart of {name} ignored: the service is not configured")
            return
        live = {r.task_id: None for r in self._records_of(name) if counts_toward_desired(r)}
        if live:
            self._restarts[name] = live
            for tid in live:
                record = self._tasks[tid]
                if not record.restart_requested:
                    self._put(msgspec.structs.replace(record, restart_requested=True))
            self._note("restart", f"{name}: rolling restart of {len(live)} task(s) requested")
        self._converge_all(now)

    def _on_backoff_reset(self, event: BackoffResetRequested, now: float) -> None:
        if self._backoff.pop(event.service, None) is not None:
            self._note("backoff_reset", f"{event.service}: restart backoff reset by an operator")
        self._update_offer_flow(now)

    def _on_call_failed(self, event: CallFailed, now: float) -> None:
        operation = event.operation
        kind = type(operation).__name__
        self._counters[f"call_failed_{kind}"] += 1
        self._note("call_failed", f"{kind} failed: {event.error}")
        match operation:
            case Launch() | PersistTasks():
                if isinstance(operation, Launch):
                    ids = operation.task_ids
                else:
                    ids = tuple(r.task_id for r in operation.records)
                for task_id in ids:
                    record = self._tasks.get(task_id)
                    if record is not None and record.state is LocalState.LAUNCHING:
                        dropped = lifecycle.apply_local(
                            record, TaskState.TASK_DROPPED, now, f"launch abandoned: {kind} failed"
                        )
                        self._forget(dropped)
                        self._counters["launches_abandoned"] += 1
                    elif record is not None and isinstance(operation, PersistTasks):
                        self._unsaved.add(task_id)  # written with its next change, whatever it is
            case Kill():
                record = self._tasks.get(operation.task_id)
                if record is not None and record.kill_requested_at is not None:
                    self._index(msgspec.structs.replace(record, kill_sent_at=None))
            case Reconcile():
                progress = self._reconciliation
                if not operation.implicit and progress is not None:
                    progress.next_at = now
                elif operation.implicit:
                    self._last_implicit_at = None
            case Revive():
                self._suppressed.update(operation.roles)
                self._revive_wanted.update(operation.roles)
            case Suppress():
                self._suppressed.difference_update(operation.roles)
            case _:
                pass

    # --- invariants -----------------------------------------------------------------------------

    def check_invariants(self) -> None:
        """Raise :class:`InvariantViolation` if the state breaks a rule the core promises to keep.

        Always: indexes match the task table; no record is in an ended state; IDs name their
        service and slot; every launch of the latest offer batch fits its offer and no port was
        claimed twice; no launch took a service above its desired count. After a full convergence
        with kills allowed and no kill held back by the rate limit: at most one counting task per
        slot, and no more counting tasks than desired.
        """
        problems = list(self._violations)
        problems.extend(self._index_problems())
        for record in self._tasks.values():
            if ends_task(record.state):
                problems.append(f"{record.task_id}: ended state {record.state} still tracked")
            if record.state not in lifecycle.ALL_PHASES:
                problems.append(f"{record.task_id}: invalid state {record.state!r}")
            parsed = parse_task_id(record.task_id)
            if record.slot >= 0 and parsed != (record.service, record.slot):
                problems.append(f"{record.task_id}: id does not name {record.service} slot {record.slot}")
        problems.extend(self._launch_problems())
        if not self._suppressed <= set(self._roles):
            problems.append(f"suppressed roles {sorted(self._suppressed)} not all framework roles")
        if self._converged and self._kills_allowed() and not self._kill_backlog:
            desired = self.desired()
            for name in self._config.services:
                wanted = desired.services[name]
                counting = [r for r in self._records_of(name) if counts_toward_desired(r)]
                for slot, members in group_by_slot(counting).items():
                    if len(members) > 1:
                        problems.append(f"{name} slot {slot}: {len(members)} counting tasks")
                if not wanted.per_host and not wanted.hold_surplus and len(counting) > wanted.count:
                    problems.append(f"{name}: {len(counting)} counting tasks, desired {wanted.count}")
                if wanted.per_host:
                    hosts = [r.hostname for r in counting if r.hostname]  # "": agent not offered yet
                    if len(hosts) != len(set(hosts)) or not set(hosts) <= (wanted.hosts or frozenset()):
                        problems.append(f"{name}: per-host tasks on {sorted(hosts)}")
        if problems:
            raise InvariantViolation("; ".join(problems))

    def _index_problems(self) -> Iterator[str]:
        expected_service: dict[str, set[TaskId]] = {}
        expected_slot: dict[tuple[str, int], set[TaskId]] = {}
        expected_host: dict[str, set[TaskId]] = {}
        for tid, record in self._tasks.items():
            if tid != record.task_id:
                yield f"task table key {tid} holds {record.task_id}"
            expected_service.setdefault(record.service, set()).add(tid)
            expected_slot.setdefault((record.service, record.slot), set()).add(tid)
            expected_host.setdefault(record.hostname, set()).add(tid)
        counting: Counter[str] = Counter()
        counting_hosts: dict[str, Counter[str]] = {}
        for record in self._tasks.values():
            if counts_toward_desired(record):
                counting[record.service] += 1
                counting_hosts.setdefault(record.service, Counter())[record.hostname] += 1
        if +counting != +self._counting:
            yield f"counting totals {dict(+self._counting)} differ from the table's {dict(counting)}"
        if {k: +v for k, v in counting_hosts.items() if +v} != {
            k: +v for k, v in self._counting_hosts.items() if +v
        }:
            yield "counting hosts out of step with the task table"
        for name, expected, actual in (
            ("service", expected_service, self._by_service),
            ("slot", expected_slot, self._by_slot),
            ("host", expected_host, self._by_host),
        ):
            if expected != {key: set(members) for key, members in actual.items()}:
                yield f"{name} index out of step with the task table"

    def _launch_problems(self) -> Iterator[str]:
        for offer, claims in self._launch_checks:
            every = [r for claim in claims for r in claim]
            if not resources.fits(offer.resources, every):
                yield f"launches on offer {offer.id.value} exceed what it offered"
            claimed_ports = [
                port
                for claim in claims
                for begin, end in resources.port_ranges(claim)
                for port in range(begin, end + 1)
            ]
            if len(claimed_ports) != len(set(claimed_ports)):
                yield f"a port of offer {offer.id.value} was claimed twice"
