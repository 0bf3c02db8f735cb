"""Fixtures for the high-availability tests: real ZooKeeper servers, kazoo clients, and checks that
nothing (threads, clients) outlives a test.

A missing Java or ZooKeeper fails these tests (``tests/integration/zookeeper.py``), never skips them.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from tests.integration.zookeeper import ZooKeeperServer, running_zookeeper

SESSION_TIMEOUT_S = 2.0
"""Short sessions keep failover tests fast; the test server allows down to 0.4 s."""
WAIT_S = 20.0
"""Generous: nothing waits this long when all is well, but a loaded CI machine may be slow."""


@pytest.fixture(scope="module")
def shared_zookeeper() -> Iterator[ZooKeeperServer]:
    """One server for a whole module whose tests never stop it (each test uses its own path)."""
    with running_zookeeper() as server:
        yield server


@pytest.fixture
def zookeeper() -> Iterator[ZooKeeperServer]:
    """A server of this test's own, which the test may stop and start again."""
    with running_zookeeper() as server:
        yield server


@pytest.fixture
def unique_path() -> str:
    return f"/steward-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 10.0
    while True:
        leftover = [t for t in threading.enumerate() if t not in before and t.is_alive()]
        if not leftover or time.monotonic() > deadline:
            break
        time.sleep(0.05)
    assert not leftover, f"threads left running: {[t.name for t in leftover]}"


@pytest.fixture
def make_client(no_thread_leak: None) -> Iterator[Callable[[ZooKeeperServer], KazooClient]]:
    """``make_client(server)``: a started kazoo client; every one is stopped and closed afterwards."""
    clients: list[KazooClient] = []

    def make(server: ZooKeeperServer) -> KazooClient:
        client = KazooClient(hosts=server.hosts, timeout=SESSION_TIMEOUT_S)
        client.start(timeout=WAIT_S)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.stop()
        client.close()
