"""``CoreScheduler(group_commit=True)``: a burst of status updates is written in one transaction and
acknowledged after it; anything else first writes what is held, so write-ahead still holds."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from framework.config import parse_config
from framework.model import events
from framework.model.proto import TaskState
from framework.model.tasks import TaskId, TaskRecord
from framework.runtime.scheduler import CoreScheduler
from framework.testing.builders import make_offer, make_status
from tests.unit.runtime.test_scheduler_store_failure import MemoryStore

SITE = """
framework: {roles: ["*"]}
services:
  web:
    kind: generic
    container: {image: example/web:1}
    resources: {cpus: 1, mem: 128MiB}
    instances: 3
"""


class Journal(MemoryStore):
    """Records every transaction in the shared ``log``."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        super().__init__()
        self.log = log

    def apply(self, persist: Iterable[TaskRecord] = (), forget: Iterable[TaskId] = ()) -> None:
        persist, forget = tuple(persist), tuple(forget)
        super().apply(persist, forget)  # raises while failing
        self.log.append(("write", sorted(r.task_id for r in persist) + sorted(forget)))


class QueueDriver:
    """A dispatcher queue run by hand; every driver call is logged."""

    def __init__(self, log: list[tuple[str, Any]]) -> None:
        self.log = log
        self.queued: list[Callable[[], object]] = []

    def call_soon(self, fn: Callable[[], object]) -> None:
        self.queued.append(fn)

    def run_queued(self) -> None:
        queued, self.queued = self.queued, []
        for fn in queued:
            fn()

    def acknowledge(self, status: Any) -> bool:
        self.log.append(("ack", status.task_id.value))
        return True

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *args, **kwargs: self.log.append((name, args))


def launched() -> tuple[CoreScheduler, Journal, QueueDriver, list[tuple[str, Any]], list[TaskId]]:
    log: list[tuple[str, Any]] = []
    store = Journal(log)
    scheduler = CoreScheduler(parse_config(SITE, "site.yaml"), store, clock=lambda: 100.0, group_commit=True)
    driver = QueueDriver(log)
    scheduler.driver = driver  # type: ignore[assignment]
    scheduler.feed(events.Subscribed(framework_id="fw-1"))
    scheduler.feed(events.OffersReceived(offers=(make_offer(hostname="wn-1", offer_id="o-1"),)))
    tasks = sorted(scheduler.state.tasks)
    assert len(tasks) == 3
    log.clear()
    return scheduler, store, driver, log, tasks


def update(task_id: str, n: int) -> events.StatusUpdated:
    return events.StatusUpdated(status=make_status(task_id, TaskState.TASK_RUNNING, uuid=f"dXVpZC0{n}"))


def test_a_burst_of_updates_is_one_write_then_the_acknowledgements() -> None:
    scheduler, _store, driver, log, tasks = launched()
    for n, task_id in enumerate(tasks):
        scheduler.feed(update(task_id, n))
    assert log == [], "held until the dispatcher reaches the flush"
    driver.run_queued()
    assert log == [("write", tasks)] + [("ack", t) for t in tasks]


def test_any_other_operation_first_writes_and_acknowledges_what_is_held() -> None:
    scheduler, _store, driver, log, tasks = launched()
    scheduler.feed(update(tasks[0], 0))
    scheduler.feed(events.TargetChanged("web", 4, "test"))
    scheduler.feed(events.OffersReceived(offers=(make_offer(hostname="wn-2", offer_id="o-2"),)))
    assert log[:2] == [("write", [tasks[0]]), ("ack", tasks[0])]
    assert [kind for kind, _ in log[2:]] == ["write", "accept"], "then the launch, written ahead"
    driver.run_queued()  # nothing left to flush
    assert [kind for kind, _ in log].count("write") == 2


def test_a_failed_group_write_acknowledges_nothing_and_the_resent_update_is_written() -> None:
    scheduler, store, driver, log, tasks = launched()
    store.failing = True
    scheduler.feed(update(tasks[0], 0))
    driver.run_queued()
    assert log == []
    store.failing = False
    scheduler.feed(update(tasks[0], 0))  # the agent resends it
    driver.run_queued()
    assert log == [("write", [tasks[0]]), ("ack", tasks[0])]
    assert store.records[tasks[0]].state is TaskState.TASK_RUNNING
