from __future__ import annotations

import sqlite3

import msgspec
import pytest

from framework.model.proto import TaskState
from framework.model.tasks import AgentId, LocalState, TaskId, TaskRecord
from framework.store.base import StoreError
from framework.store.sqlite import SQLiteStore


def record(task_id: str, state=LocalState.LAUNCHING, **fields) -> TaskRecord:
    values = {
        "task_id": TaskId(task_id),
        "service": task_id.split(".", maxsplit=1)[0],
        "slot": int(task_id.split(".")[1]),
        "agent_id": AgentId("agent-1"),
        "hostname": "agent-1",
        "state": state,
        "launched_at": 12.5,
        "ports": (31000, 31001),
    }
    values.update(fields)
    return TaskRecord(**values)


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "state")
    yield s
    s.close()


def test_the_framework_id_survives_reopening(tmp_path, store):
    assert store.framework_id() is None
    store.set_framework_id("fw-1")
    reopened = SQLiteStore(tmp_path / "state")
    assert reopened.framework_id() == "fw-1"
    reopened.forget_framework_id()
    assert SQLiteStore(tmp_path / "state").framework_id() is None


def test_task_records_round_trip_with_every_field(tmp_path, store):
    first = record("squid.0.abc", healthy=True, running_since=14.0, kill_reason="scale down", draining=True)
    second = record("startd.3.xyz", state=TaskState.TASK_RUNNING, depends_on=TaskId("cvmfs.0.q"))
    store.apply(persist=[first, second])
    assert SQLiteStore(tmp_path / "state").load_tasks() == [first, second]


def test_apply_replaces_by_task_id_and_forgets(store):
    store.apply(persist=[record("squid.0.a"), record("squid.1.b")])
    running = msgspec.structs.replace(record("squid.0.a"), state=TaskState.TASK_RUNNING)
    store.apply(persist=[running], forget=[TaskId("squid.1.b")])
    assert store.load_tasks() == [running]


def test_a_batch_that_fails_half_way_is_rolled_back_whole(store):
    store.apply(persist=[record("squid.0.a")])

    class FailingDeletes:
        """The real connection, except that deleting rows fails (as a full disk would)."""

        def __init__(self, db):
            self._db = db

        def execute(self, *args):
            return self._db.execute(*args)

        def executemany(self, sql, rows):
            if sql.startswith("DELETE"):
                raise sqlite3.OperationalError("database or disk is full")
            return self._db.executemany(sql, rows)

    real = store._db
    store._db = FailingDeletes(real)
    with pytest.raises(StoreError, match="disk is full"):
        store.apply(persist=[record("squid.1.b")], forget=[TaskId("squid.0.a")])
    store._db = real
    assert [r.task_id for r in store.load_tasks()] == ["squid.0.a"]


def test_an_unreadable_record_is_skipped_with_a_log_line(tmp_path, store, caplog):
    store.apply(persist=[record("squid.0.a")])
    db = sqlite3.connect(store.path)
    db.execute("INSERT INTO tasks (task_id, record) VALUES ('junk.0.x', '{\"state\": \"NOPE\"}')")
    db.commit()
    db.close()
    assert [r.task_id for r in store.load_tasks()] == ["squid.0.a"]
    assert "junk.0.x" in caplog.text


def test_overrides_round_trip(tmp_path, store):
    store.set_overrides({"squid": {"pinned": 4}, "startd": {"paused": True}})
    assert SQLiteStore(tmp_path / "state").overrides() == {"squid": {"pinned": 4}, "startd": {"paused": True}}


def test_a_database_from_a_newer_steward_is_refused(tmp_path, store):
    db = sqlite3.connect(store.path)
    db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    with pytest.raises(StoreError, match="newer Steward"):
        SQLiteStore(tmp_path / "state")


def test_a_location_that_cannot_hold_a_database_is_an_error_naming_it(tmp_path):
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the state directory should be")
    with pytest.raises(StoreError, match=r"not-a-directory/steward\.sqlite"):
        SQLiteStore(blocker)
