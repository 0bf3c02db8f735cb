"""Which updates the core writes to the store: only those that change what a restart would load.

A reconciliation answer confirming what Steward knows needs no write (at 10,000 tasks, one fsync per
answer made reconciling after a restart take 17 s); a record whose write failed is written with its
next update, whatever that update changes, so an acknowledgement never covers an unstored state.
"""

from __future__ import annotations

from collections.abc import Callable

import msgspec

from framework.core import lifecycle
from framework.model.events import CallFailed
from framework.model.operations import Acknowledge, PersistTasks
from framework.model.proto import TaskState
from framework.model.tasks import TaskId
from framework.testing.builders import make_offer, make_record
from tests.unit.core.conftest import BASIC, Harness, of_type

S = TaskState


def test_records_that_differ_only_in_what_a_restart_rebases_are_the_same_when_restored() -> None:
    stored = make_record("web.0.a", S.TASK_RUNNING, launched_at=5.0, running_since=6.0, last_update_at=6.0)
    answer = msgspec.structs.replace(
        stored,
        last_update_at=90.0,
        reason="REASON_RECONCILIATION",
        message="Reconciliation: Latest task state",
    )
    assert lifecycle.same_when_restored(stored, answer)
    assert lifecycle.same_when_restored(stored, msgspec.structs.replace(stored, kill_sent_at=91.0))
    assert lifecycle.same_when_restored(stored, msgspec.structs.replace(stored, running_since=50.0))
    for changed in (
        msgspec.structs.replace(stored, state=S.TASK_UNREACHABLE, unreachable_since=90.0),
        msgspec.structs.replace(stored, healthy=False, unhealthy_since=90.0),
        msgspec.structs.replace(stored, kill_requested_at=90.0, kill_reason="scale down to 1"),
        msgspec.structs.replace(stored, agent_id="agent-b"),
        msgspec.structs.replace(stored, running_since=None),
    ):
        assert not lifecycle.same_when_restored(stored, changed), changed


def running_web(make_state: Callable[..., Harness]) -> tuple[Harness, TaskId]:
    h = make_state(BASIC)
    h.subscribe()
    h.offers(make_offer(hostname="a"))
    task_id = TaskId("web.0.t2")
    assert of_type(h.update(task_id, S.TASK_RUNNING, uuid="dXVpZC0x", after=1), PersistTasks)
    return h, task_id


def test_a_reconciliation_answer_that_confirms_the_record_is_not_written(
    make_state: Callable[..., Harness],
) -> None:
    h, task_id = running_web(make_state)
    answer = h.update(task_id, S.TASK_RUNNING, reason="REASON_RECONCILIATION", after=5)
    assert of_type(answer, PersistTasks) == []
    assert h.state.tasks[task_id].last_update_at == h.now, "the core itself knows the news"
    resent = h.update(task_id, S.TASK_RUNNING, uuid="dXVpZC0x", after=1)
    assert [type(op) for op in resent] == [Acknowledge], "a resent update is already stored: ack only"
    unhealthy = h.update(task_id, S.TASK_RUNNING, healthy=False, uuid="dXVpZC0y", after=1)
    assert [type(op) for op in unhealthy] == [PersistTasks, Acknowledge]


def test_a_record_whose_write_failed_is_written_with_its_next_update(
    make_state: Callable[..., Harness],
) -> None:
    h, task_id = running_web(make_state)
    ops = h.update(task_id, S.TASK_RUNNING, healthy=True, uuid="dXVpZC0y", after=1)
    (persist,) = of_type(ops, PersistTasks)
    h.handle(CallFailed(operation=persist, error="disk full"))
    h.handle(
        CallFailed(operation=of_type(ops, Acknowledge)[0], error="skipped: an earlier store write failed")
    )
    resent = h.update(task_id, S.TASK_RUNNING, healthy=True, uuid="dXVpZC0y", after=1)
    assert [type(op) for op in resent] == [PersistTasks, Acknowledge]
    assert of_type(resent, PersistTasks)[0].records[0].healthy is True
    again = h.update(task_id, S.TASK_RUNNING, healthy=True, uuid="dXVpZC0y", after=1)
    assert [type(op) for op in again] == [Acknowledge], "written once it got through"
