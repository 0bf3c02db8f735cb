"""What only the ZooKeeper store has: its znode layout, fencing by leadership, transaction size
limits, a stale list of task znodes, and a connection that can go away."""

from __future__ import annotations

import json
import logging
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st
from kazoo.client import KazooClient

from framework.model.tasks import TaskId, record_to_builtins
from framework.runtime.leader import LeaderElection, LeaderToken, election_path
from framework.store.base import StoreError
from framework.store.zookeeper import (
    NotLeaderError,
    ZooKeeperStore,
    task_id_from_znode_name,
    task_znode_name,
)
from tests.integration.ha.conftest import SESSION_TIMEOUT_S, WAIT_S
from tests.integration.ha.test_store_contract import by_id, record
from tests.integration.zookeeper import ZooKeeperServer

pytestmark = pytest.mark.zookeeper


# --- znode names (no server needed) -----------------------------------------------------------------


def test_stewards_own_task_ids_are_their_own_znode_names() -> None:
    assert task_znode_name("squid.1.ab-12_x") == "squid.1.ab-12_x"


@pytest.mark.parametrize(
    ("task_id", "name"),
    [
        (".", "%2E"),
        ("..", "%2E%2E"),
        ("...", "..."),  # a legal znode name
        ("50%", "50%25"),
        ("a b", "a%20b"),
        ("é", "%C3%A9"),
        ("\x85", "%C2%85"),  # a C1 control: forbidden in znode names, allowed by Mesos
        ("\ue000", "%EE%80%80"),  # private use: forbidden in znode names
    ],
)
def test_names_zookeeper_would_refuse_are_percent_encoded(task_id: str, name: str) -> None:
    assert task_znode_name(task_id) == name
    assert task_id_from_znode_name(name) == task_id


@given(st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="/"), min_size=1))
def test_every_task_id_maps_to_a_safe_name_and_back(task_id: str) -> None:
    name = task_znode_name(task_id)
    assert task_id_from_znode_name(name) == task_id
    assert name not in (".", "..")
    assert all(c.isascii() and (c.isalnum() or c in "._-~%") for c in name), name


# --- the layout ------------------------------------------------------------------------------------


@pytest.fixture
def admin(
    shared_zookeeper: ZooKeeperServer, make_client: Callable[[ZooKeeperServer], KazooClient]
) -> KazooClient:
    return make_client(shared_zookeeper)


@pytest.fixture
def open_store(
    shared_zookeeper: ZooKeeperServer, unique_path: str, no_thread_leak: None
) -> Iterator[Callable[..., ZooKeeperStore]]:
    opened: list[ZooKeeperStore] = []

    def make(**kwargs: object) -> ZooKeeperStore:
        kwargs.setdefault("session_timeout_s", SESSION_TIMEOUT_S)
        store = ZooKeeperStore([shared_zookeeper.hosts], unique_path, **kwargs)  # type: ignore[arg-type]
        opened.append(store)
        return store

    yield make
    for store in opened:
        store.close()


def test_the_layout_is_plain_znodes_an_operator_can_read(
    open_store: Callable[..., ZooKeeperStore],
    admin: KazooClient,
    unique_path: str,
    shared_zookeeper: ZooKeeperServer,
) -> None:
    store = open_store(require_fence=False)
    assert admin.get(f"{unique_path}/schema")[0] == b"1"
    assert admin.get(f"{unique_path}/framework_id")[0] == b""
    assert admin.get(f"{unique_path}/overrides")[0] == b""
    squid = record("squid.0.a")
    store.apply(persist=[squid])
    store.set_framework_id("fw-1")
    store.set_overrides({"squid": {"pinned": 3}})
    assert admin.get_children(f"{unique_path}/tasks") == ["squid.0.a"]
    assert json.loads(admin.get(f"{unique_path}/tasks/squid.0.a")[0]) == record_to_builtins(squid)
    assert admin.get(f"{unique_path}/framework_id")[0] == b"fw-1"
    assert json.loads(admin.get(f"{unique_path}/overrides")[0]) == {"squid": {"pinned": 3}}
    assert repr(store) == f"ZooKeeperStore(servers={shared_zookeeper.hosts!r}, path={unique_path!r})"


def test_records_come_back_oldest_write_first(open_store: Callable[..., ZooKeeperStore]) -> None:
    store = open_store(require_fence=False)
    store.apply(persist=[record("b.0.x")])
    store.apply(persist=[record("a.0.x")])
    store.apply(persist=[record("b.0.x", hostname="moved")])
    assert [r.task_id for r in open_store(require_fence=False).load_tasks()] == ["a.0.x", "b.0.x"]


def test_a_path_that_is_not_absolute_is_refused(shared_zookeeper: ZooKeeperServer) -> None:
    for path in ("steward", "/", "/steward/", "/a/../b"):
        with pytest.raises(StoreError, match="not an absolute znode path"):
            ZooKeeperStore([shared_zookeeper.hosts], path)


def test_servers_that_do_not_answer_are_a_store_error_naming_them(no_thread_leak: None) -> None:
    with socket.socket() as sock:  # a port nobody listens on (bound, never listening)
        sock.bind(("127.0.0.1", 0))
        hosts = f"127.0.0.1:{sock.getsockname()[1]}"
    with pytest.raises(StoreError, match=f"cannot connect to ZooKeeper at {hosts}"):
        ZooKeeperStore([hosts], "/steward", session_timeout_s=1.0)


# --- fencing ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Unaware:
    """A token held by a replica that has not noticed anything (a process paused for a long GC, or
    a partition): still valid as far as it knows, so only ZooKeeper's check can stop its writes."""

    znode: str
    version: int
    valid: bool = True


class Replica:
    """A replica in one process: its own session, an election, and a fenced store sharing both."""

    def __init__(self, server: ZooKeeperServer, path: str, name: str) -> None:
        self.client = KazooClient(hosts=server.hosts, timeout=SESSION_TIMEOUT_S)
        self.client.start(timeout=WAIT_S)
        self.elected = threading.Event()
        self.lost = threading.Event()
        self.tokens: list[LeaderToken] = []
        self.store = ZooKeeperStore([server.hosts], path, client=self.client)
        self.election = LeaderElection(
            self.client,
            election_path(path),
            name,
            on_elected=self._on_elected,
            on_lost=lambda _r: self.lost.set(),
        )
        self.election.start()

    def _on_elected(self, token: LeaderToken) -> None:
        self.tokens.append(token)
        self.store.set_fence(token)
        self.elected.set()

    def close(self) -> None:
        self.election.stop()
        self.store.close()
        self.client.stop()
        self.client.close()


@pytest.fixture
def replicas(
    shared_zookeeper: ZooKeeperServer, unique_path: str, no_thread_leak: None
) -> Iterator[Callable[[str], Replica]]:
    made: list[Replica] = []

    def make(name: str) -> Replica:
        replica = Replica(shared_zookeeper, unique_path, name)
        made.append(replica)
        return replica

    yield make
    for replica in made:
        replica.close()


def test_only_the_leader_can_write_and_a_deposed_one_never_again(
    replicas: Callable[[str], Replica], open_store: Callable[..., ZooKeeperStore]
) -> None:
    first = replicas("replica-a")
    assert first.elected.wait(WAIT_S)
    second = replicas("replica-b")
    first.store.apply(persist=[record("squid.0.a")])
    first.store.set_framework_id("fw-1")

    # A standby has won nothing: it can read, but every write is refused without reaching ZooKeeper.
    assert [r.task_id for r in second.store.load_tasks()] == ["squid.0.a"]
    for write in (
        lambda: second.store.apply(persist=[record("squid.1.b")]),
        lambda: second.store.set_framework_id("fw-2"),
        lambda: second.store.set_overrides({"x": 1}),
        second.store.forget_framework_id,
    ):
        with pytest.raises(NotLeaderError, match="no election won yet"):
            write()

    # The leader's session ends (a crash): the standby takes over.
    old = first.tokens[-1]
    unaware = Unaware(old.znode, old.version)
    first.client.stop()
    assert first.lost.wait(WAIT_S)
    assert second.elected.wait(WAIT_S)

    # The deposed replica's own store refuses locally (its token was revoked) ...
    assert not old.valid
    with pytest.raises(NotLeaderError, match="revoked"):
        first.store.apply(persist=[record("squid.9.late")])
    # ... and a replica that noticed nothing is stopped by ZooKeeper itself: its znode is gone.
    stale = open_store()
    stale.set_fence(unaware)
    with pytest.raises(NotLeaderError, match="is gone"):
        stale.apply(persist=[record("squid.9.late")], forget=[TaskId("squid.0.a")])
    with pytest.raises(NotLeaderError):
        stale.set_framework_id("fw-stale")

    second.store.apply(persist=[record("squid.1.b")])
    reader = open_store(require_fence=False)
    assert set(by_id(reader.load_tasks())) == {"squid.0.a", "squid.1.b"}
    assert reader.framework_id() == "fw-1"


def test_a_token_of_an_earlier_term_fails_once_the_znode_was_claimed_again(
    replicas: Callable[[str], Replica], open_store: Callable[..., ZooKeeperStore], admin: KazooClient
) -> None:
    leader = replicas("replica-a")
    assert leader.elected.wait(WAIT_S)
    token = leader.tokens[-1]
    store = open_store()
    store.set_fence(Unaware(token.znode, token.version))
    store.apply(persist=[record("squid.0.a")])
    admin.set(token.znode, b"replica-a")  # what a new claim does: the data version moves on
    with pytest.raises(NotLeaderError, match="claimed again"):
        store.apply(persist=[record("squid.1.b")])
    assert [r.task_id for r in store.load_tasks()] == ["squid.0.a"]


# --- size limits -----------------------------------------------------------------------------------


def bulky(count: int, size: int = 700) -> list:
    return [record(f"startd.{i}.bulk", message="x" * size) for i in range(count)]


def test_a_batch_over_zookeepers_request_limit_is_split_and_all_of_it_lands(
    open_store: Callable[..., ZooKeeperStore], caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(require_fence=False)
    records = bulky(2000)  # about 1.7 MB of JSON: more than jute.maxbuffer (1 MiB) in one request
    with caplog.at_level(logging.INFO, logger="framework.store.zookeeper"):
        store.apply(persist=records)
    split = re.search(r"in (\d+) transactions", caplog.text)
    assert split is not None and int(split[1]) > 2, caplog.text
    assert by_id(open_store(require_fence=False).load_tasks()) == by_id(records)
    store.apply(forget=[r.task_id for r in records])
    assert open_store(require_fence=False).load_tasks() == []


def test_the_limit_is_real_one_transaction_of_that_size_is_refused(
    open_store: Callable[..., ZooKeeperStore],
) -> None:
    store = open_store(require_fence=False, max_transaction_bytes=8 * 1024 * 1024)
    with pytest.raises(StoreError):
        store.apply(persist=bulky(2000))
    assert open_store(require_fence=False).load_tasks() == []


def test_a_single_record_too_large_for_a_transaction_is_refused_by_name(
    open_store: Callable[..., ZooKeeperStore],
) -> None:
    store = open_store(require_fence=False, max_transaction_bytes=4096)
    with pytest.raises(StoreError, match=r"tasks/startd\.1\.big: the record is \d+ bytes"):
        store.apply(persist=[record("startd.0.small"), record("startd.1.big", message="x" * 5000)])
    assert store.load_tasks() == []


# --- a stale list of znodes ------------------------------------------------------------------------


def test_znodes_changed_behind_the_stores_back_are_found_and_the_batch_still_lands(
    open_store: Callable[..., ZooKeeperStore],
    admin: KazooClient,
    unique_path: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = open_store(require_fence=False)
    store.apply(persist=[record("squid.0.a"), record("squid.1.b")])
    assert len(store.load_tasks()) == 2  # the store now believes it knows every znode
    admin.delete(f"{unique_path}/tasks/squid.0.a")
    admin.create(f"{unique_path}/tasks/squid.2.c", b"{}")
    with caplog.at_level(logging.WARNING, logger="framework.store.zookeeper"):
        store.apply(
            persist=[record("squid.0.a", hostname="h2"), record("squid.2.c")], forget=[TaskId("squid.1.b")]
        )
    assert "stale" in caplog.text
    assert by_id(open_store(require_fence=False).load_tasks()) == by_id(
        [record("squid.0.a", hostname="h2"), record("squid.2.c")]
    )


# --- the connection --------------------------------------------------------------------------------


def test_without_a_connection_reads_and_writes_are_store_errors_until_it_returns(
    zookeeper: ZooKeeperServer, unique_path: str, no_thread_leak: None
) -> None:
    store = ZooKeeperStore(
        [zookeeper.hosts], unique_path, session_timeout_s=SESSION_TIMEOUT_S, require_fence=False
    )
    try:
        store.apply(persist=[record("squid.0.a")])
        zookeeper.stop()
        with pytest.raises(StoreError, match="ZooKeeper"):
            store.apply(persist=[record("squid.1.b")])
        with pytest.raises(StoreError, match="ZooKeeper"):
            store.load_tasks()
        zookeeper.start()
        reloaded = _eventually(store.load_tasks)
        assert [r.task_id for r in reloaded] == ["squid.0.a"]
        store.apply(persist=[record("squid.1.b")])
        assert len(store.load_tasks()) == 2
    finally:
        store.close()


def _eventually(read: Callable[[], list]) -> list:
    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            return read()
        except StoreError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
