"""The task lifecycle: every (state, update) pair, how updates change records, local transitions,
restart backoff and the circuit breaker.

The matrix below is written out by hand from the Mesos state semantics (protocol brief 4.10-4.12),
independently of ``lifecycle.TRANSITIONS``: a change to either must be a deliberate change to both.
"""

from __future__ import annotations

import itertools

import msgspec
import pytest

from framework.config.model import RestartBackoffConfig, ServiceKind
from framework.core import lifecycle
from framework.core.lifecycle import (
    ALL_PHASES,
    InvalidTransition,
    RestartBackoff,
    UpdateKind,
    apply_local,
    apply_status,
    breaker_open,
    classify,
    grows_backoff,
    next_backoff,
    restored,
)
from framework.model.proto import TaskState
from framework.model.tasks import LocalState, Phase
from framework.testing.builders import make_record, make_status

S = TaskState
COLUMNS = (
    S.TASK_STAGING,
    S.TASK_STARTING,
    S.TASK_RUNNING,
    S.TASK_KILLING,
    S.TASK_FINISHED,
    S.TASK_FAILED,
    S.TASK_KILLED,
    S.TASK_ERROR,
    S.TASK_LOST,
    S.TASK_DROPPED,
    S.TASK_UNREACHABLE,
    S.TASK_GONE,
    S.TASK_GONE_BY_OPERATOR,
    S.TASK_UNKNOWN,
)
# E expected, D duplicate, O odd (applied, reported), S stale (ignored). Columns as COLUMNS:
#              STG STA RUN KIL FIN FAI KLD ERR LST DRP UNR GON GBO UNK
MATRIX = {
    LocalState.LAUNCHING: "E E E E E E E E O E E E E E",
    S.TASK_STAGING: "D E E E E E E E O E E E E O",
    S.TASK_STARTING: "S D E E E E E O O O E E E O",
    S.TASK_RUNNING: "S S E E E E E O O O E E E O",
    S.TASK_KILLING: "S S S D E E E O O O E E E O",
    S.TASK_FINISHED: "O O O O D O O O O O O O O O",
    S.TASK_FAILED: "O O O O O D O O O O O O O O",
    S.TASK_KILLED: "O O O O O O D O O O O O O O",
    S.TASK_ERROR: "O O O O O O O D O O O O O O",
    S.TASK_LOST: "O E E E E E E O D O E E E O",
    S.TASK_DROPPED: "O O O O O O O O O D O O O O",
    S.TASK_UNREACHABLE: "E E E E E E E O O O E E E E",
    S.TASK_GONE: "O O O O O O O O O O O D O O",
    S.TASK_GONE_BY_OPERATOR: "O E E E E E E O O O O E D O",
    S.TASK_UNKNOWN: "E E E E E E E O O O E E E D",
}
KINDS = {"E": UpdateKind.EXPECTED, "D": UpdateKind.DUPLICATE, "O": UpdateKind.ODD, "S": UpdateKind.STALE}
PAIRS = [
    (start, finish, KINDS[code])
    for start, row in MATRIX.items()
    for finish, code in zip(COLUMNS, row.split(), strict=True)
]


def test_the_matrix_covers_every_state_and_every_update() -> None:
    assert set(MATRIX) == set(ALL_PHASES) == set(lifecycle.TRANSITIONS)
    assert set(COLUMNS) == set(TaskState)
    assert len(PAIRS) == len(ALL_PHASES) * len(TaskState)


@pytest.mark.parametrize(("start", "finish", "kind"), PAIRS, ids=lambda v: getattr(v, "value", v))
def test_every_update_in_every_state_is_classified_and_applied(
    start: Phase, finish: TaskState, kind: UpdateKind
) -> None:
    record = make_record("web.0.a", start, launched_at=5.0)
    applied = apply_status(record, make_status("web.0.a", finish, agent_id="agent-2"), now=10.0)
    assert classify(start, finish) is kind
    assert applied.kind is kind
    assert applied.record.last_update_at == 10.0
    if kind is UpdateKind.STALE:
        assert applied.record.state is start  # ignored: the newer state stands
        assert applied.note is not None and "stale" in applied.note
    else:
        assert applied.record.state is finish  # the master is the truth, even when odd
        assert applied.record.agent_id == "agent-2"
    if kind is UpdateKind.ODD:
        assert applied.note is not None and start.value in applied.note and finish.value in applied.note
    if kind is UpdateKind.EXPECTED:
        assert applied.note is None


def test_running_updates_keep_health_verdicts_until_the_state_changes() -> None:
    record = make_record("web.0.a", S.TASK_STARTING)
    running = apply_status(record, make_status("web.0.a", S.TASK_RUNNING), now=1.0).record
    assert running.running_since == 1.0 and running.healthy is None
    sick = apply_status(running, make_status("web.0.a", S.TASK_RUNNING, healthy=False), now=2.0).record
    assert sick.healthy is False and sick.unhealthy_since == 2.0
    still_sick = apply_status(sick, make_status("web.0.a", S.TASK_RUNNING), now=3.0).record
    assert still_sick.healthy is False and still_sick.unhealthy_since == 2.0  # a verdict-less answer
    again = apply_status(still_sick, make_status("web.0.a", S.TASK_RUNNING, healthy=False), now=4.0).record
    assert again.unhealthy_since == 2.0  # the stretch started at the first failure
    well = apply_status(again, make_status("web.0.a", S.TASK_RUNNING, healthy=True), now=5.0).record
    assert well.healthy is True and well.unhealthy_since is None and well.running_since == 1.0
    killing = apply_status(well, make_status("web.0.a", S.TASK_KILLING), now=6.0).record
    assert killing.healthy is None


def test_a_partition_keeps_the_running_time_and_a_returning_task_holds_its_slot_again() -> None:
    record = make_record("web.0.a", S.TASK_RUNNING, running_since=1.0)
    gone = apply_status(record, make_status("web.0.a", S.TASK_UNREACHABLE), now=5.0).record
    assert gone.unreachable_since == 5.0
    repeated = apply_status(gone, make_status("web.0.a", S.TASK_UNREACHABLE), now=9.0).record
    assert repeated.unreachable_since == 5.0
    replaced = msgspec.structs.replace(repeated, replaced_at=300.0)
    still = apply_status(replaced, make_status("web.0.a", S.TASK_UNREACHABLE), now=301.0).record
    assert still.replaced_at == 300.0
    back = apply_status(replaced, make_status("web.0.a", S.TASK_RUNNING), now=400.0).record
    assert back.unreachable_since is None and back.replaced_at is None and back.running_since == 1.0


def test_only_abandoning_a_launch_is_a_legal_local_transition() -> None:
    launching = make_record("web.0.a", LocalState.LAUNCHING)
    dropped = apply_local(launching, S.TASK_DROPPED, now=2.0, why="ACCEPT failed")
    assert dropped.state is S.TASK_DROPPED and dropped.message == "ACCEPT failed"
    illegal = [
        (start, finish)
        for start in ALL_PHASES
        for finish in ALL_PHASES
        if not (start is LocalState.LAUNCHING and finish is S.TASK_DROPPED)
    ]
    for start, finish in illegal:
        with pytest.raises(InvalidTransition) as info:
            apply_local(make_record("web.0.a", start), finish, now=2.0, why="test")
        assert info.value.start is start and info.value.finish is finish
        assert "web.0.a" in str(info.value)


BACKOFF_CASES = [
    # finish, reason, kind, killed by Steward -> grows
    (S.TASK_FAILED, None, ServiceKind.SQUID, False, True),
    (S.TASK_FAILED, "REASON_CONTAINER_LIMITATION_MEMORY", ServiceKind.STARTD, False, True),
    (S.TASK_ERROR, "REASON_TASK_INVALID", ServiceKind.GENERIC, False, True),
    (S.TASK_KILLED, None, ServiceKind.SQUID, False, True),  # someone else killed it
    (S.TASK_KILLED, None, ServiceKind.SQUID, True, False),  # Steward's own kill
    (S.TASK_FAILED, None, ServiceKind.SQUID, True, False),  # died while Steward killed it
    (S.TASK_FINISHED, None, ServiceKind.STARTD, False, False),  # an idle startd leaves by itself
    (S.TASK_FINISHED, None, ServiceKind.SQUID, False, True),  # a squid is not supposed to exit
    (S.TASK_FAILED, "REASON_AGENT_RESTARTED", ServiceKind.SQUID, False, False),
    (S.TASK_FAILED, "REASON_AGENT_REMOVED", ServiceKind.CVMFS, False, False),
    (S.TASK_LOST, None, ServiceKind.SQUID, False, False),
    (S.TASK_DROPPED, "REASON_INVALID_OFFERS", ServiceKind.SQUID, False, False),
    (S.TASK_GONE, None, ServiceKind.SQUID, False, False),
    (S.TASK_GONE_BY_OPERATOR, None, ServiceKind.SQUID, False, False),
    (S.TASK_UNREACHABLE, None, ServiceKind.SQUID, False, False),
    (S.TASK_UNKNOWN, None, ServiceKind.SQUID, False, False),
]


@pytest.mark.parametrize(("finish", "reason", "kind", "killed", "grows"), BACKOFF_CASES)
def test_backoff_grows_only_for_failures_of_the_service_itself(
    finish: TaskState, reason: str | None, kind: ServiceKind, killed: bool, grows: bool
) -> None:
    record = make_record("web.0.a", S.TASK_RUNNING, kill_requested_at=1.0 if killed else None)
    assert grows_backoff(record, finish, reason, kind) is grows


def test_backoff_follows_marathon_and_stops_at_its_cap() -> None:
    config = RestartBackoffConfig()  # 1 s x 1.15, cap 300 s
    backoff = RestartBackoff()
    delays = []
    for _ in range(60):
        backoff = next_backoff(backoff, config, now=100.0)
        assert backoff.until is not None and backoff.last_failure_at == 100.0
        delays.append(backoff.until - 100.0)
    assert delays[:3] == pytest.approx([1.0, 1.15, 1.3225])
    assert all(b >= a for a, b in itertools.pairwise(delays))
    assert max(delays) == 300.0 and delays[-1] == 300.0
    assert backoff.failures == 60
    assert backoff.active(399.0) and not backoff.active(400.0)
    huge = next_backoff(RestartBackoff(failures=10**6), RestartBackoffConfig(factor=100.0), now=0.0)
    assert huge.until == 300.0


@pytest.mark.parametrize(
    ("running", "unhealthy", "is_open"),
    [(10, 0, False), (1, 1, False), (10, 5, False), (10, 6, True), (2, 2, True), (3, 2, True), (4, 2, False)],
)
def test_the_breaker_opens_when_many_of_a_service_turn_unhealthy_together(
    running: int, unhealthy: int, is_open: bool
) -> None:
    assert breaker_open(running, unhealthy, max_unhealthy_fraction=0.5, min_unhealthy=2) is is_open


def test_records_loaded_from_the_store_start_their_clocks_again() -> None:
    old = make_record(
        "web.0.a",
        S.TASK_UNREACHABLE,
        launched_at=5e6,
        running_since=5e6,
        unreachable_since=5e6 + 10,
        kill_requested_at=5e6 + 20,
        kill_sent_at=5e6 + 21,
        last_update_at=5e6 + 22,
    )
    loaded = restored(old, now=7.0)
    assert loaded.launched_at == 7.0 and loaded.running_since == 7.0 and loaded.unreachable_since == 7.0
    assert loaded.kill_requested_at == 7.0 and loaded.kill_sent_at is None and loaded.last_update_at is None
    assert loaded.unhealthy_since is None and loaded.replaced_at is None
    assert (loaded.task_id, loaded.state) == (old.task_id, old.state)
