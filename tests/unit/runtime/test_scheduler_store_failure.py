"""``CoreScheduler`` when a store write fails: nothing acts on the unwritten records, and no offer is
kept (an offer neither accepted nor declined stays with Steward and is never offered again)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from framework.config import parse_config
from framework.model import events
from framework.model.proto import TaskState
from framework.model.tasks import TaskId, TaskRecord
from framework.runtime.scheduler import CoreScheduler
from framework.store.base import StoreError
from framework.testing.builders import make_offer, make_status

SITE = """
framework: {roles: ["*"]}
services:
  web:
    kind: generic
    container: {image: example/web:1}
    resources: {cpus: 1, mem: 128MiB}
    instances: 1
"""


class MemoryStore:
    """Task records in a dict; ``apply`` raises while ``failing``."""

    def __init__(self) -> None:
        self.records: dict[str, TaskRecord] = {}
        self.fid: str | None = None
        self.failing = False

    def framework_id(self) -> str | None:
        return self.fid

    def set_framework_id(self, framework_id: str) -> None:
        self.fid = framework_id

    def forget_framework_id(self) -> None:
        self.fid = None

    def load_tasks(self) -> list[TaskRecord]:
        return list(self.records.values())

    def apply(self, persist: Iterable[TaskRecord] = (), forget: Iterable[TaskId] = ()) -> None:
        if self.failing:
            raise StoreError("steward.sqlite: cannot write task records: disk full")
        for record in persist:
            self.records[record.task_id] = record
        for task_id in forget:
            self.records.pop(task_id, None)

    def overrides(self) -> dict[str, Any]:
        return {}

    def set_overrides(self, overrides: Any) -> None:
        pass

    def close(self) -> None:
        pass


class RecordingDriver:
    """Records every call as ``(name, args)``."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...]]] = []

    def __getattr__(self, name: str) -> Callable[..., None]:
        def record(*args: Any, **kwargs: Any) -> None:
            self.calls.append((name, args))

        return record

    def named(self, name: str) -> list[tuple[Any, ...]]:
        return [args for called, args in self.calls if called == name]


def started() -> tuple[CoreScheduler, MemoryStore, RecordingDriver]:
    store = MemoryStore()
    scheduler = CoreScheduler(parse_config(SITE, "site.yaml"), store, clock=lambda: 100.0)
    driver = RecordingDriver()
    scheduler.driver = driver  # type: ignore[assignment]
    scheduler.feed(events.Subscribed(framework_id="fw-1"))
    return scheduler, store, driver


def test_a_failed_launch_write_declines_every_offer_and_launches_nothing() -> None:
    scheduler, store, driver = started()
    store.failing = True
    offers = (make_offer(hostname="wn-1", offer_id="o-1"), make_offer(hostname="wn-2", offer_id="o-2"))
    scheduler.feed(events.OffersReceived(offers=offers))
    assert driver.named("accept") == []
    declined = [offer_id for args in driver.named("decline") for offer_id in args[0]]
    assert sorted(declined) == ["o-1", "o-2"], "the offer the launch would have used is declined too"
    assert scheduler.state.tasks == {}, "the unwritten launch is abandoned"
    assert store.records == {}

    store.failing = False
    scheduler.feed(events.OffersReceived(offers=(make_offer(hostname="wn-1", offer_id="o-3"),)))
    (accepted,) = driver.named("accept")
    assert accepted[0] == ("o-3",)
    assert list(store.records) == list(scheduler.state.tasks)


def test_an_update_that_cannot_be_stored_is_not_acknowledged() -> None:
    scheduler, store, driver = started()
    scheduler.feed(events.OffersReceived(offers=(make_offer(hostname="wn-1", offer_id="o-1"),)))
    (task_id,) = list(scheduler.state.tasks)
    store.failing = True
    running = make_status(task_id, TaskState.TASK_RUNNING, uuid="dS0x")
    scheduler.feed(events.StatusUpdated(status=running))
    assert driver.named("acknowledge") == []
    store.failing = False
    scheduler.feed(events.StatusUpdated(status=running))  # the agent resends it
    assert len(driver.named("acknowledge")) == 1
    assert store.records[task_id].state is TaskState.TASK_RUNNING
