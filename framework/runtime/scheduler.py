"""The shell around the pure core: Mesos callbacks become events, operations become calls and writes.

``CoreScheduler`` is the driver's callback object. Every method runs on the driver's dispatcher
thread, which is therefore the one thread that owns ``SchedulerState``; timers and other threads hand
it work through ``driver.call_soon`` (``Ticker`` sends a ``Tick`` every second that way).

Executing operations keeps the write-ahead rules of ``framework.model.operations``: the list is run in
order; a store write that fails comes back to the core as ``CallFailed`` and nothing after it that
acts on a record (writes, launches, kills, acknowledgements) runs, while declines, SUPPRESS/REVIVE
and reconciliation still do, and a skipped launch's offers are declined (``_execute``); a failed
master call comes back as ``CallFailed`` too, and the rest of the list still runs.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence

from framework.config import Config
from framework.core.state import CoreSettings, SchedulerState
from framework.mesos.errors import MesosError
from framework.mesos.scheduler_driver import SchedulerCallbacks, SchedulerDriver
from framework.metrics.activity import Activity
from framework.model import events
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
from framework.model.proto import (
    DurationInfo,
    Filters,
    KillPolicy,
    LaunchOperation,
    MasterInfo,
    Offer,
    TaskStatus,
)
from framework.model.proto import Operation as OfferOperation
from framework.model.snapshot import StateSnapshot
from framework.model.tasks import TaskId, TaskRecord
from framework.store.base import Store, StoreError

log = logging.getLogger(__name__)

GROUP_COMMIT_MAX = 1000
"""Acknowledgements held for one group commit at most (agents resend updates left unacknowledged
for ten seconds: a long burst is written and acknowledged in parts)."""


class CoreScheduler(SchedulerCallbacks):
    """Feeds the core and carries out what it decides. ``feed`` and the callbacks belong to the
    dispatcher thread; ``snapshot`` may be called from any thread."""

    def __init__(
        self,
        config: Config,
        store: Store,
        *,
        clock: Callable[[], float] = time.monotonic,
        state: SchedulerState | None = None,
        settings: CoreSettings | None = None,
        activity: Activity | None = None,
        group_commit: bool = False,
    ) -> None:
        """``settings`` tunes the core's policy timers (tests shorten them); ignored with ``state``.
        ``activity`` records launches, kills, failures, latencies and executor usage for metrics.
        ``group_commit`` (needs the driver's ``call_soon``) writes the records of status updates
        that arrive in a burst in one transaction, acknowledging them after it (``_group``)."""
        self._store = store
        self._clock = clock
        self.state = state or SchedulerState(
            config,
            now=clock(),
            tasks=store.load_tasks(),
            framework_id=store.framework_id(),
            settings=settings,
        )
        self.driver: SchedulerDriver | None = None
        self._snapshot: StateSnapshot | None = None
        self._core_lock = threading.RLock()
        """Held while the core handles an event and while a snapshot is taken of it."""
        self._stale = False
        self._group_commit = group_commit
        self._group_writes: dict[TaskId, TaskRecord | None] = {}
        self._group_acks: list[Acknowledge] = []
        self._group_flush_queued = False
        self.fatal_error: BaseException | None = None
        self.activity = activity or Activity()

    # --- reading the state from other threads ---------------------------------------------------

    def snapshot(self) -> StateSnapshot | None:
        """A snapshot of the core as of the latest event handled (None before the first event).

        Taken when asked for and kept until the next event, not taken after every event: its cost
        grows with the number of tasks, and at 10,000 tasks one per status update cost far more
        than the update itself. A caller on another thread waits while an event is being handled
        (and the event waits for a snapshot being taken); poll it at a human pace."""
        with self._core_lock:
            if self._stale:
                self._snapshot = self.state.snapshot()
                self._stale = False
            return self._snapshot

    # --- events in ------------------------------------------------------------------------------

    def feed(self, event: events.Event) -> None:
        """Hand ``event`` to the core and execute what it answers, feeding failures back in turn."""
        with self._core_lock:
            pending: deque[events.Event] = deque([event])
            while pending:
                current = pending.popleft()
                before = self._record_before(current)
                now = self._clock()
                ops = self.state.handle(current, now)
                self.activity.handled(current, ops, before, now)
                pending.extend(self._execute(ops))
            self._stale = True
            notes = self.state.take_notes()
        for note in notes:
            log.info("%s", note)

    def _record_before(self, event: events.Event) -> TaskRecord | None:
        """The record a status update is about, before it applies (for ``activity``)."""
        if isinstance(event, events.StatusUpdated):
            return self.state.tasks.get(TaskId(event.status.task_id.value))
        return None

    def subscribed(self, driver: SchedulerDriver, framework_id: str, master_info: MasterInfo | None) -> None:
        self.driver = driver
        where = master_info.hostname if master_info is not None else "?"
        log.info("subscribed as framework %s (master %s)", framework_id, where)
        self.feed(events.Subscribed(framework_id=framework_id))

    def offers(self, driver: SchedulerDriver, offers: Sequence[Offer]) -> None:
        self.driver = driver
        self.feed(events.OffersReceived(offers=tuple(offers)))

    def rescinded(self, driver: SchedulerDriver, offer_id: str) -> None:
        self.feed(events.OfferRescinded(offer_id=offer_id))  # type: ignore[arg-type]

    def status_update(self, driver: SchedulerDriver, status: TaskStatus) -> None:
        self.driver = driver
        self.feed(events.StatusUpdated(status=status))

    def disconnected(self, driver: SchedulerDriver, reason: str) -> None:
        log.warning("disconnected from the master: %s; re-subscribing", reason)
        self.feed(events.Disconnected(reason=reason))

    def error(self, driver: SchedulerDriver, message: str) -> None:
        log.error("the master reported an error: %s", message)
        if "has been removed" in message:
            # The ID can never be used again; a restart must register afresh.
            self._store.forget_framework_id()

    def message(self, driver: SchedulerDriver, agent_id: str, executor_id: str, data: bytes) -> None:
        """An executor's MESSAGE: its task's resource usage (``framework.model.usage``)."""
        self.activity.handle_usage(agent_id, executor_id, data)

    def tick(self) -> None:
        self.feed(events.Tick())

    # --- operations out -------------------------------------------------------------------------

    def _group(self, ops: Sequence[Operation]) -> bool:
        """Hold back ``ops`` if they only write records and acknowledge updates (a status update's
        answer); True if held. The group is written in one transaction, then acknowledged, when the
        dispatcher gets to the flush queued behind the events already waiting, when it is large,
        or before any other operation runs (which may depend on it): write-ahead holds, nothing
        is acknowledged or acted upon before its record is stored. Without it a burst of 20,000
        updates cost 20,000 fsyncs."""
        driver = self.driver
        if not self._group_commit or driver is None or not ops:
            return False
        if not all(isinstance(op, PersistTasks | ForgetTasks | Acknowledge) for op in ops):
            return False
        for op in ops:
            if isinstance(op, PersistTasks):
                self._group_writes.update((r.task_id, r) for r in op.records)
            elif isinstance(op, ForgetTasks):
                self._group_writes.update((tid, None) for tid in op.task_ids)
            elif isinstance(op, Acknowledge):
                self._group_acks.append(op)
        if not self._group_flush_queued:
            self._group_flush_queued = True
            driver.call_soon(self._flush_queued)
        return True

    def _flush_queued(self) -> None:
        self._group_flush_queued = False
        for failure in self._flush_group():
            self.feed(failure)

    def _flush_group(self) -> list[events.Event]:
        """Write the held records in one transaction, then send the held acknowledgements."""
        if not self._group_writes and not self._group_acks:
            return []
        writes, self._group_writes = self._group_writes, {}
        acks, self._group_acks = self._group_acks, []
        persist = tuple(r for r in writes.values() if r is not None)
        forget = tuple(tid for tid, r in writes.items() if r is None)
        try:
            self._store.apply(persist=persist, forget=forget)
        except StoreError as exc:
            log.error("store write failed, not acknowledging %d update(s): %s", len(acks), exc)
            failed: list[events.Event] = []
            if persist:
                failed.append(events.CallFailed(operation=PersistTasks(persist), error=str(exc)))
            if forget:
                failed.append(events.CallFailed(operation=ForgetTasks(forget), error=str(exc)))
            skipped = "skipped: an earlier store write failed"
            return failed + [events.CallFailed(operation=ack, error=skipped) for ack in acks]
        return self._execute(acks, grouping=False)

    def _execute(self, ops: Sequence[Operation], *, grouping: bool = True) -> list[events.Event]:
        """Run ``ops`` in order; return ``CallFailed`` events for what failed.

        After a failed store write nothing may act on the records it did not write: later writes,
        launches, kills and acknowledgements are skipped (and reported as failed, so the core
        abandons the launches and re-sends the kills). The rest still runs, and the offers of a
        skipped launch are declined: an offer neither accepted nor declined would stay with
        Steward, and the master would never offer those resources again."""
        if grouping and self._group(ops):
            return self._flush_group() if len(self._group_acks) >= GROUP_COMMIT_MAX else []
        failed: list[events.Event] = self._flush_group() if ops else []
        write_failed = False
        for op in ops:
            action = op
            if write_failed and isinstance(
                op, PersistTasks | ForgetTasks | PersistFrameworkId | Launch | Kill | Acknowledge
            ):
                failed.append(events.CallFailed(operation=op, error="skipped: an earlier store write failed"))
                if not isinstance(op, Launch):
                    continue
                why = "launch abandoned: a store write failed"
                action = Decline(op.offer_ids, op.refuse_seconds, tuple(why for _ in op.offer_ids))
            try:
                self._execute_one(action)
            except StoreError as exc:
                log.error("store write failed, not acting on the records of this decision: %s", exc)
                failed.append(events.CallFailed(operation=op, error=str(exc)))
                write_failed = True
            except MesosError as exc:
                log.warning("%s failed: %s", type(action).__name__, exc)
                failed.append(events.CallFailed(operation=action, error=str(exc)))
        return failed

    def _execute_one(self, op: Operation) -> None:
        driver = self.driver
        match op:
            case PersistTasks(records=records):
                self._store.apply(persist=records)
            case ForgetTasks(task_ids=task_ids):
                self._store.apply(forget=task_ids)
            case PersistFrameworkId(framework_id=framework_id):
                self._store.set_framework_id(framework_id)
            case _ if driver is None:
                raise MesosError(f"{type(op).__name__} before the driver was known")
            case Launch(offer_ids=offer_ids, task_infos=task_infos, refuse_seconds=refuse):
                launch = OfferOperation(type="LAUNCH", launch=LaunchOperation(task_infos=task_infos))
                driver.accept(offer_ids, [launch], Filters(refuse_seconds=refuse))
                for info in task_infos:
                    log.info("launching %s on %s", info.task_id.value, info.agent_id.value)
            case Decline(offer_ids=offer_ids, refuse_seconds=refuse, reasons=reasons):
                driver.decline(offer_ids, Filters(refuse_seconds=refuse))
                for offer_id, reason in zip(offer_ids, reasons, strict=False):
                    log.debug("declined %s for %ss: %s", offer_id, refuse, reason)
            case Kill(task_id=task_id, agent_id=agent_id, grace_period_s=grace, reason=reason):
                log.info("killing %s: %s", task_id, reason)
                policy = KillPolicy(grace_period=DurationInfo.from_seconds(grace))
                driver.kill(task_id, agent_id, policy)
            case Suppress(roles=roles):
                driver.suppress(roles)
            case Revive(roles=roles):
                driver.revive(roles)
            case Acknowledge(status=status):
                driver.acknowledge(status)
            case Reconcile(tasks=tasks):
                driver.reconcile(tasks)
            case _:
                raise AssertionError(f"unknown operation {op!r}")


class Ticker:
    """Sends ``scheduler.tick`` to the dispatcher thread every ``interval_s`` until stopped."""

    def __init__(self, driver: SchedulerDriver, scheduler: CoreScheduler, interval_s: float = 1.0) -> None:
        self._driver = driver
        self._scheduler = scheduler
        self._interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="steward-ticker", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self._driver.call_soon(self._scheduler.tick)

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(self._interval_s + 1)


__all__ = ["CoreScheduler", "Ticker"]
