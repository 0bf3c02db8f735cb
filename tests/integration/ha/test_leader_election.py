"""LeaderElection against a real ZooKeeper: one leader among replicas, takeover when the leader's
session ends, an immediate stop on a suspended connection, and a new election when ZooKeeper is back.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import pytest
from kazoo.client import KazooClient

from framework.runtime.leader import LeaderElection, LeaderToken
from tests.integration.ha.conftest import SESSION_TIMEOUT_S, WAIT_S
from tests.integration.zookeeper import ZooKeeperServer

pytestmark = pytest.mark.zookeeper


class Candidate:
    """One replica's election and what its callbacks said, in order."""

    def __init__(self, name: str, client_or_servers: KazooClient | list[str], path: str) -> None:
        self.name = name
        self.events: list[tuple[str, object]] = []
        self._changed = threading.Condition()
        self.election = LeaderElection(
            client_or_servers,
            path,
            name,
            on_elected=lambda token: self._record("elected", token),
            on_lost=lambda reason: self._record("lost", reason),
            session_timeout_s=SESSION_TIMEOUT_S,
        )

    def _record(self, kind: str, value: object) -> None:
        with self._changed:
            self.events.append((kind, value))
            self._changed.notify_all()

    def wait_events(self, count: int, timeout: float = WAIT_S) -> list[tuple[str, object]]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.events) >= count, timeout)
            return list(self.events)

    @property
    def leading(self) -> bool:
        with self._changed:
            return bool(self.events) and self.events[-1][0] == "elected"

    def last_token(self) -> LeaderToken:
        tokens = [value for kind, value in self.events if kind == "elected"]
        assert tokens, f"{self.name} was never elected"
        token = tokens[-1]
        assert isinstance(token, LeaderToken)
        return token


def eventually(check: Callable[[], bool], timeout: float = WAIT_S) -> bool:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def candidates(no_thread_leak: None) -> Iterator[Callable[..., Candidate]]:
    made: list[Candidate] = []

    def make(
        name: str, client_or_servers: KazooClient | list[str], path: str = "/steward/leader"
    ) -> Candidate:
        candidate = Candidate(name, client_or_servers, path)
        made.append(candidate)
        return candidate

    yield make
    for candidate in made:
        candidate.election.stop()


def expire_session(server: ZooKeeperServer, client: KazooClient) -> None:
    """End ``client``'s session from the outside, as the server does when a client falls silent:
    attach a second client to the same session and close it."""
    session_id, password = client.client_id
    other = KazooClient(hosts=server.hosts, client_id=(session_id, password), timeout=SESSION_TIMEOUT_S)
    other.start(timeout=WAIT_S)
    other.stop()
    other.close()


def test_two_replicas_elect_exactly_one_and_both_name_it(
    shared_zookeeper: ZooKeeperServer, candidates: Callable[..., Candidate], unique_path: str
) -> None:
    a = candidates("replica-a", [shared_zookeeper.hosts], unique_path)
    b = candidates("replica-b", [shared_zookeeper.hosts], unique_path)
    a.election.start()
    b.election.start()
    assert eventually(lambda: a.leading or b.leading)
    leader, standby = (a, b) if a.leading else (b, a)
    assert eventually(lambda: standby.election.current_leader() == leader.name)
    assert leader.election.current_leader() == leader.name
    assert leader.election.is_leader()
    assert not standby.election.is_leader()
    assert standby.events == []
    assert leader.last_token().valid


def test_stopping_the_leader_elects_the_other(
    shared_zookeeper: ZooKeeperServer, candidates: Callable[..., Candidate], unique_path: str
) -> None:
    a = candidates("replica-a", [shared_zookeeper.hosts], unique_path)
    a.election.start()
    assert a.wait_events(1)[0][0] == "elected"
    b = candidates("replica-b", [shared_zookeeper.hosts], unique_path)
    b.election.start()
    assert eventually(lambda: b.election.current_leader() == "replica-a")

    a.election.stop()
    assert a.events[-1] == ("lost", "the election was stopped")
    assert not a.last_token().valid
    assert b.wait_events(1)[0][0] == "elected"
    assert b.election.current_leader() == "replica-b"
    assert a.election.current_leader() is None


def test_closing_the_leaders_client_ends_its_leadership_and_elects_the_other(
    shared_zookeeper: ZooKeeperServer,
    candidates: Callable[..., Candidate],
    make_client: Callable[[ZooKeeperServer], KazooClient],
    unique_path: str,
) -> None:
    client = make_client(shared_zookeeper)
    a = candidates("replica-a", client, unique_path)
    a.election.start()
    assert a.wait_events(1)[0][0] == "elected"
    b = candidates("replica-b", [shared_zookeeper.hosts], unique_path)
    b.election.start()

    client.stop()  # the leader's session closes: its znode is deleted at once
    kinds = [kind for kind, _ in a.wait_events(2)]
    assert kinds == ["elected", "lost"]
    assert b.wait_events(1)[0][0] == "elected"


def test_an_expired_session_hands_over_and_the_old_leader_rejoins_behind(
    shared_zookeeper: ZooKeeperServer, candidates: Callable[..., Candidate], unique_path: str
) -> None:
    a = candidates("replica-a", [shared_zookeeper.hosts], unique_path)
    a.election.start()
    assert a.wait_events(1)[0][0] == "elected"
    first_token = a.last_token()
    b = candidates("replica-b", [shared_zookeeper.hosts], unique_path)
    b.election.start()
    assert eventually(lambda: b.election.current_leader() == "replica-a")

    expire_session(shared_zookeeper, a.election.client)
    events = a.wait_events(2)
    assert events[1][0] == "lost"
    assert not first_token.valid
    assert b.wait_events(1)[0][0] == "elected"
    # kazoo opens a new session on its own; the replica joins again, behind the new leader.
    assert eventually(lambda: a.election.current_leader() == "replica-b")
    assert not a.election.is_leader()

    b.election.stop()
    events = a.wait_events(3)
    assert events[2][0] == "elected"
    second_token = a.last_token()
    assert second_token.znode != first_token.znode  # a new znode, since the old one went with its session
    assert second_token.valid


def test_a_suspended_connection_stops_the_leader_at_once_and_zookeeper_back_means_a_new_election(
    zookeeper: ZooKeeperServer, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("replica-a", [zookeeper.hosts])
    b = candidates("replica-b", [zookeeper.hosts])
    a.election.start()
    assert a.wait_events(1)[0][0] == "elected"
    b.election.start()
    assert eventually(lambda: b.election.current_leader() == "replica-a")
    token = a.last_token()

    zookeeper.stop()
    # The reason proves it did not wait for the session to expire: the connection was only suspended.
    assert a.wait_events(2)[1] == ("lost", "the ZooKeeper connection was suspended")
    assert not token.valid
    assert a.election.current_leader() is None
    assert eventually(lambda: b.election.current_leader() is None)

    zookeeper.start()
    assert eventually(lambda: a.leading or b.leading)
    leader = a if a.leading else b
    assert leader.last_token().valid
    assert leader.last_token() is not token
    # Exactly one leads, and both agree on which.
    assert not (a.leading and b.leading)
    assert eventually(
        lambda: a.election.current_leader() == leader.name and b.election.current_leader() == leader.name
    )
