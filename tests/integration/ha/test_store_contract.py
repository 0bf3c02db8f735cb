"""One behavioural suite for every Store: the SQLite file and ZooKeeper must be interchangeable.

Each test runs against both stores through a small backend adapter that knows how to reopen a
store on the same location and how to damage it the way that store can be damaged (a record that
no longer parses, a task whose writes are refused, a layout from a newer Steward).
"""

from __future__ import annotations

import json
import logging
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, Protocol

import msgspec
import pytest
from kazoo.client import KazooClient
from kazoo.security import make_acl

from framework.model.proto import TaskState
from framework.model.tasks import AgentId, LocalState, TaskId, TaskRecord
from framework.store.base import Store, StoreError
from framework.store.sqlite import SQLiteStore
from framework.store.zookeeper import ZooKeeperStore, task_znode_name
from tests.integration.ha.conftest import SESSION_TIMEOUT_S
from tests.integration.zookeeper import ZooKeeperServer

pytestmark = pytest.mark.zookeeper


def record(task_id: str, state: Any = LocalState.LAUNCHING, **fields: Any) -> TaskRecord:
    """A task record with plausible values (the same builder as tests/unit/store)."""
    parts = task_id.split(".")
    values: dict[str, Any] = {
        "task_id": TaskId(task_id),
        "service": parts[0],
        "slot": int(parts[1]) if len(parts) > 1 and parts[1].isdigit() else -1,
        "agent_id": AgentId("agent-1"),
        "hostname": "agent-1",
        "state": state,
        "launched_at": 12.5,
        "ports": (31000, 31001),
    }
    values.update(fields)
    return TaskRecord(**values)


def by_id(records: list[TaskRecord]) -> dict[str, TaskRecord]:
    """Records keyed by task ID (the Store protocol promises no order), checking none is doubled."""
    keyed = {r.task_id: r for r in records}
    assert len(keyed) == len(records), f"a task came back twice: {[r.task_id for r in records]}"
    return keyed


class Backend(Protocol):
    name: str

    def open(self) -> Store:
        """A new store on the same location (a restart, or another replica)."""
        ...

    def refuse_writes_to(self, task_id: str) -> None:
        """Make every later write of ``task_id``'s record fail (the task must already be stored)."""
        ...

    def corrupt(self, task_id: str, text: str) -> None:
        """Store ``text`` as the record of ``task_id``, bypassing the store."""
        ...

    def set_schema(self, version: int) -> None: ...


class SQLiteBackend:
    name = "sqlite"

    def __init__(self, directory: Path, opened: list[Store]) -> None:
        self._directory = directory
        self._opened = opened

    def open(self) -> Store:
        store = SQLiteStore(self._directory)
        self._opened.append(store)
        return store

    def _db(self) -> sqlite3.Connection:
        return sqlite3.connect(self._directory / SQLiteStore.FILENAME)

    def refuse_writes_to(self, task_id: str) -> None:
        db = self._db()
        quoted = task_id.replace("'", "''")  # a trigger takes no parameters
        db.execute(
            f"CREATE TRIGGER refuse BEFORE INSERT ON tasks WHEN NEW.task_id = '{quoted}' "
            "BEGIN SELECT RAISE(ABORT, 'writes to this task are refused'); END"
        )
        db.commit()
        db.close()

    def corrupt(self, task_id: str, text: str) -> None:
        db = self._db()
        db.execute("INSERT OR REPLACE INTO tasks (task_id, record) VALUES (?, ?)", (task_id, text))
        db.commit()
        db.close()

    def set_schema(self, version: int) -> None:
        db = self._db()
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(version),))
        db.commit()
        db.close()


class ZooKeeperBackend:
    name = "zookeeper"

    def __init__(self, server: ZooKeeperServer, path: str, admin: KazooClient, opened: list[Store]) -> None:
        self._server = server
        self._path = path
        self._admin = admin
        self._opened = opened

    def open(self) -> Store:
        store = ZooKeeperStore(
            [self._server.hosts], self._path, session_timeout_s=SESSION_TIMEOUT_S, require_fence=False
        )
        self._opened.append(store)
        return store

    def refuse_writes_to(self, task_id: str) -> None:
        # Read-only for everyone: ZooKeeper answers NoAuth to a setData on it.
        read_only = [make_acl("world", "anyone", read=True)]
        self._admin.set_acls(f"{self._path}/tasks/{task_znode_name(task_id)}", read_only)

    def corrupt(self, task_id: str, text: str) -> None:
        znode = f"{self._path}/tasks/{task_znode_name(task_id)}"
        if self._admin.exists(znode):
            self._admin.set(znode, text.encode())
        else:
            self._admin.create(znode, text.encode())

    def set_schema(self, version: int) -> None:
        self._admin.set(f"{self._path}/schema", str(version).encode())


@pytest.fixture(params=["sqlite", "zookeeper"])
def backend(
    request: pytest.FixtureRequest,
    tmp_path: Path,
    unique_path: str,
    make_client: Callable[[ZooKeeperServer], KazooClient],
) -> Iterator[Backend]:
    opened: list[Store] = []
    chosen: Backend
    if request.param == "sqlite":
        chosen = SQLiteBackend(tmp_path / "state", opened)
    else:
        server: ZooKeeperServer = request.getfixturevalue("shared_zookeeper")
        chosen = ZooKeeperBackend(server, unique_path, make_client(server), opened)
    yield chosen
    for store in opened:
        store.close()


@pytest.fixture
def store(backend: Backend) -> Store:
    return backend.open()


# --- the framework ID -------------------------------------------------------------------------------


def test_the_framework_id_is_none_until_set_and_survives_reopening(backend: Backend, store: Store) -> None:
    assert store.framework_id() is None
    store.set_framework_id("fw-1")
    store.set_framework_id("fw-1")  # the same again is harmless
    assert backend.open().framework_id() == "fw-1"
    store.set_framework_id("fw-2")
    assert backend.open().framework_id() == "fw-2"


def test_a_forgotten_framework_id_is_gone_for_every_reader(backend: Backend, store: Store) -> None:
    store.set_framework_id("fw-1")
    other = backend.open()
    store.forget_framework_id()
    assert other.framework_id() is None
    assert backend.open().framework_id() is None


# --- task records -----------------------------------------------------------------------------------


def test_task_records_round_trip_with_every_field(backend: Backend, store: Store) -> None:
    first = record(
        "squid.0.abc",
        healthy=True,
        running_since=14.0,
        last_update_at=15.5,
        unhealthy_since=16.0,
        unreachable_since=17.0,
        replaced_at=18.0,
        cpus=1.5,
        mem_mib=2048.0,
        config_fingerprint="f00d",
        kill_requested_at=19.0,
        kill_reason="scale down to 1",
        kill_sent_at=19.5,
        draining=True,
        message="Container exited",
        reason="REASON_COMMAND_EXECUTOR_FAILED",
    )
    second = record(
        "startd.3.xyz",
        state=TaskState.TASK_RUNNING,
        depends_on=TaskId("cvmfs.0.q"),
        adopted=True,
        restart_requested=True,
    )
    third = record("cvmfs.0.q", state=TaskState.TASK_UNREACHABLE, agent_id=None, hostname="", ports=())
    store.apply(persist=[first, second, third])
    assert by_id(backend.open().load_tasks()) == by_id([first, second, third])


def test_apply_replaces_by_task_id_and_forgets(backend: Backend, store: Store) -> None:
    store.apply(persist=[record("squid.0.a"), record("squid.1.b"), record("squid.2.c")])
    running = msgspec.structs.replace(record("squid.0.a"), state=TaskState.TASK_RUNNING, healthy=True)
    store.apply(persist=[running], forget=[TaskId("squid.1.b")])
    assert by_id(backend.open().load_tasks()) == by_id([running, record("squid.2.c")])


def test_the_last_record_of_a_task_in_a_batch_wins(backend: Backend, store: Store) -> None:
    staging = record("squid.0.a", state=TaskState.TASK_STAGING)
    running = record("squid.0.a", state=TaskState.TASK_RUNNING)
    store.apply(persist=[staging, running])
    assert backend.open().load_tasks() == [running]


def test_persisting_and_forgetting_a_task_in_one_batch_leaves_it_absent(
    backend: Backend, store: Store
) -> None:
    store.apply(persist=[record("squid.0.a")])
    store.apply(
        persist=[record("squid.0.a", state=TaskState.TASK_FINISHED), record("squid.1.new")],
        forget=[TaskId("squid.0.a"), TaskId("squid.1.new")],
    )
    assert backend.open().load_tasks() == []


def test_forgetting_an_unknown_task_or_an_empty_batch_changes_nothing(backend: Backend, store: Store) -> None:
    store.apply(persist=[record("squid.0.a")])
    store.apply(forget=[TaskId("never.0.seen")])
    store.apply()
    store.apply(persist=[], forget=[])
    assert backend.open().load_tasks() == [record("squid.0.a")]


def test_any_task_id_mesos_accepts_round_trips(backend: Backend, store: Store) -> None:
    # Mesos forbids only '/', '\\', control characters, '.' and '..' (validateID); adopted tasks
    # may carry any other ID, including ones ZooKeeper would refuse as znode names.
    odd = [
        "web server #1",
        "ünïcødé.0.x",
        "50%.0.p",
        "%2E",
        "...",
        "a:b@c",
        "\u0085\ue000\ufff5",
        "zookeeper",
    ]
    records = [record(task_id) for task_id in odd]
    store.apply(persist=records)
    assert by_id(backend.open().load_tasks()) == by_id(records)
    store.apply(forget=[TaskId(task_id) for task_id in odd])
    assert backend.open().load_tasks() == []


def test_a_batch_with_a_refused_write_is_rolled_back_whole(backend: Backend, store: Store) -> None:
    original = record("squid.0.a")
    store.apply(persist=[original, record("squid.1.b")])
    backend.refuse_writes_to("squid.0.a")
    with pytest.raises(StoreError):
        store.apply(
            persist=[record("squid.2.new"), record("squid.0.a", state=TaskState.TASK_RUNNING)],
            forget=[TaskId("squid.1.b")],
        )
    assert by_id(backend.open().load_tasks()) == by_id([original, record("squid.1.b")])
    # The store is still usable for everything else.
    store.apply(persist=[record("squid.2.new")])
    assert set(by_id(backend.open().load_tasks())) == {"squid.0.a", "squid.1.b", "squid.2.new"}


def test_an_unreadable_record_is_skipped_with_a_log_line(
    backend: Backend, store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    store.apply(persist=[record("squid.0.a")])
    backend.corrupt("junk.0.x", json.dumps({"state": "NOPE"}))
    backend.corrupt("junk.1.y", "{not json")
    with caplog.at_level(logging.ERROR):
        assert backend.open().load_tasks() == [record("squid.0.a")]
    assert "junk.0.x" in caplog.text
    assert "junk.1.y" in caplog.text
    # An unreadable record can still be replaced or forgotten.
    store.apply(persist=[record("junk.0.x")], forget=[TaskId("junk.1.y")])
    assert by_id(backend.open().load_tasks()) == by_id([record("squid.0.a"), record("junk.0.x")])


# --- overrides ---------------------------------------------------------------------------------------


def test_overrides_are_empty_until_set_and_are_replaced_whole(backend: Backend, store: Store) -> None:
    assert store.overrides() == {}
    store.set_overrides({"squid": {"pinned": 4}, "startd": {"paused": True}})
    assert backend.open().overrides() == {"squid": {"pinned": 4}, "startd": {"paused": True}}
    store.set_overrides({"squid": {"pinned": 2}})
    assert backend.open().overrides() == {"squid": {"pinned": 2}}
    store.set_overrides({})
    assert backend.open().overrides() == {}


# --- layout versions --------------------------------------------------------------------------------


def test_a_store_from_a_newer_steward_is_refused(backend: Backend, store: Store) -> None:
    store.set_framework_id("fw-1")
    backend.set_schema(99)
    with pytest.raises(StoreError, match="newer Steward"):
        backend.open()
