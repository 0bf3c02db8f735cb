"""``CoreScheduler.snapshot``: current as of the latest event, but taken only when someone asks.

Taking one after every event made a scale-up of 10,000 tasks quadratic (each of the 20,000 status
updates paid for a snapshot of every task)."""

from __future__ import annotations

import threading

from framework.config import parse_config
from framework.model import events
from framework.model.snapshot import StateSnapshot
from framework.runtime.scheduler import CoreScheduler
from framework.testing.builders import make_offer
from tests.unit.runtime.test_scheduler_store_failure import SITE, MemoryStore, RecordingDriver


def counting_scheduler() -> tuple[CoreScheduler, list[int]]:
    scheduler = CoreScheduler(parse_config(SITE, "site.yaml"), MemoryStore(), clock=lambda: 100.0)
    scheduler.driver = RecordingDriver()  # type: ignore[assignment]
    taken = [0]
    original = scheduler.state.snapshot

    def snapshot() -> StateSnapshot:
        taken[0] += 1
        return original()

    scheduler.state.snapshot = snapshot  # type: ignore[method-assign]
    return scheduler, taken


def test_no_snapshot_is_taken_per_event_and_the_one_asked_for_is_current() -> None:
    scheduler, taken = counting_scheduler()
    assert scheduler.snapshot() is None
    scheduler.feed(events.Subscribed(framework_id="fw-1"))
    for _ in range(50):
        scheduler.feed(events.Tick())
    assert taken == [0]
    first = scheduler.snapshot()
    assert first is not None and first.framework_id == "fw-1" and first.service("web").launching == 0
    assert scheduler.snapshot() is first and taken == [1], "kept until the next event"

    scheduler.feed(events.OffersReceived(offers=(make_offer(hostname="wn-1", offer_id="o-1"),)))
    current = scheduler.snapshot()
    assert current is not None and current.service("web").launching == 1
    assert taken == [2]


def test_another_thread_sees_the_latest_event() -> None:
    scheduler, _ = counting_scheduler()
    scheduler.feed(events.Subscribed(framework_id="fw-1"))
    scheduler.feed(events.OffersReceived(offers=(make_offer(hostname="wn-1", offer_id="o-1"),)))
    seen: list[StateSnapshot | None] = []
    reader = threading.Thread(target=lambda: seen.append(scheduler.snapshot()))
    reader.start()
    reader.join(10)
    (snapshot,) = seen
    assert snapshot is not None and snapshot.service("web").launching == 1
