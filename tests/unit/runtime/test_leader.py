"""The election's decision core, its token, and its threaded shell driven by a scripted fake client.

The fake client answers requests at once from an in-memory tree and lets the test fire connection
states and watches, so the shell's ordering rules (callbacks paired and in order, tokens revoked
before anything else, nothing left running after ``stop``) are checked without ZooKeeper; the real
thing is exercised in tests/integration/ha.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kazoo.client import KazooState
from kazoo.exceptions import NodeExistsError, NoNodeError
from kazoo.protocol.states import ZnodeStat

from framework.runtime.leader import (
    MEMBER_MARK,
    Claim,
    Elected,
    ElectionCore,
    Join,
    LeaderElection,
    LeaderToken,
    Leave,
    Lost,
    Member,
    Refresh,
    election_path,
    parse_members,
)

WAIT_S = 10.0
PATH = "/steward/leader"


def member(nonce: str, sequence: int) -> str:
    return f"{nonce}{MEMBER_MARK}{sequence:010d}"


# --- parse_members ---------------------------------------------------------------------------------


def test_members_rank_by_sequence_number_not_by_name_or_listing_order() -> None:
    children = [member("zz", 7), member("aa", 12), member("mm", 3)]
    assert parse_members(children) == [
        Member(3, member("mm", 3)),
        Member(7, member("zz", 7)),
        Member(12, member("aa", 12)),
    ]
    assert parse_members(children)[0].nonce == "mm"


def test_children_that_are_not_members_are_ignored() -> None:
    children = ["lock", f"x{MEMBER_MARK}", f"x{MEMBER_MARK}12a", "json.info_0000000001", member("n", 5)]
    assert [m.sequence for m in parse_members(children)] == [5]


def test_the_election_lives_next_to_the_store_it_guards() -> None:
    assert election_path("/steward") == "/steward/leader"
    assert election_path("/site/steward/") == "/site/steward/leader"


# --- the token -------------------------------------------------------------------------------------


def test_a_token_is_valid_until_revoked_and_its_repr_says_which() -> None:
    token = LeaderToken(f"{PATH}/{member('n', 1)}", 3, "replica-a", 12.0)
    assert token.valid
    assert "valid" in repr(token)
    assert (token.znode, token.version, token.identifier, token.elected_at) == (
        f"{PATH}/{member('n', 1)}",
        3,
        "replica-a",
        12.0,
    )
    token.revoke()
    assert not token.valid
    assert "revoked" in repr(token)


# --- the core --------------------------------------------------------------------------------------


@pytest.fixture
def core() -> ElectionCore:
    return ElectionCore(PATH, "replica-a")


def elect(core: ElectionCore, *, others_before: int = 0) -> LeaderToken:
    """Drive ``core`` from idle to leader (this replica holds sequence 5)."""
    [join] = core.start(connected=True)
    assert isinstance(join, Join)
    [refresh] = core.joined(join.generation, member("me", 5))
    assert isinstance(refresh, Refresh)
    [claim] = core.members(refresh.generation, [member("me", 5)], "replica-a")
    assert isinstance(claim, Claim)
    [elected] = core.claimed(claim.generation, claim.node, 1, now=100.0)
    assert isinstance(elected, Elected)
    return elected.token


def test_the_lowest_member_claims_and_is_elected_with_the_claimed_version(core: ElectionCore) -> None:
    token = elect(core)
    assert core.phase == "leader"
    assert token.znode == f"{PATH}/{member('me', 5)}"
    assert token.version == 1
    assert token.elected_at == 100.0
    assert core.leader == "replica-a"


def test_a_member_behind_another_waits_and_learns_the_leader(core: ElectionCore) -> None:
    [join] = core.start(connected=True)
    [refresh] = core.joined(join.generation, member("me", 5))
    assert core.members(refresh.generation, [member("me", 5), member("other", 2)], "replica-b") == []
    assert core.phase == "candidate"
    assert core.leader == "replica-b"
    # The leader goes: the watch fires, the next listing makes this replica first.
    [again] = core.watch_fired()
    actions = core.members(again.generation, [member("me", 5)], "replica-a")
    assert actions == [Claim(again.generation, member("me", 5))]


def test_a_start_without_a_connection_waits_for_one(core: ElectionCore) -> None:
    assert core.start(connected=False) == []
    assert core.connection("connected") == [Join(core.generation)]


def test_suspension_revokes_leadership_at_once_and_keeps_the_znode(core: ElectionCore) -> None:
    token = elect(core)
    [lost] = core.connection("suspended")
    assert lost == Lost(token, "the ZooKeeper connection was suspended")
    assert core.token is None
    assert core.node == member("me", 5)  # the session may survive: keep the place in line
    assert core.leader is None
    # Back on the same session: list again; still first, so a new term is claimed.
    [refresh] = core.connection("connected")
    assert refresh == Refresh(core.generation)
    [claim] = core.members(refresh.generation, [member("me", 5)], "replica-a")
    [elected] = core.claimed(claim.generation, claim.node, 2, now=200.0)
    assert isinstance(elected, Elected)
    assert elected.token is not token
    assert elected.token.version == 2


def test_a_lost_session_drops_the_znode_and_rejoins_on_reconnection(core: ElectionCore) -> None:
    token = elect(core)
    core.connection("suspended")
    assert core.connection("lost") == []  # already reported when suspended
    assert core.node is None
    assert core.connection("connected") == [Join(core.generation)]
    assert core.token is None
    assert token.valid  # the core only decides; revoking is the shell's job (see the shell tests)


def test_a_lost_session_without_a_suspension_first_still_reports_the_loss(core: ElectionCore) -> None:
    token = elect(core)
    assert core.connection("lost") == [Lost(token, "the ZooKeeper session was lost")]


def test_answers_from_an_older_connection_are_ignored(core: ElectionCore) -> None:
    [join] = core.start(connected=True)
    [refresh] = core.joined(join.generation, member("me", 5))
    [claim] = core.members(refresh.generation, [member("me", 5)], "replica-a")
    core.connection("suspended")
    core.connection("connected")
    assert core.claimed(claim.generation, claim.node, 1, now=1.0) == []
    assert core.phase == "candidate"
    assert core.token is None
    assert core.members(refresh.generation, [member("me", 5)], "replica-a") == []
    assert core.joined(join.generation, member("me", 9)) == []
    assert core.node == member("me", 5)


def test_a_deleted_znode_means_lost_then_join_again(core: ElectionCore) -> None:
    token = elect(core)
    [refresh] = core.watch_fired()
    actions = core.members(refresh.generation, [member("other", 6)], "replica-b")
    assert actions == [Lost(token, "this replica's election znode was deleted"), Join(core.generation)]
    assert core.node is None
    assert core.phase == "joining"


def test_a_claim_that_finds_the_znode_gone_joins_again(core: ElectionCore) -> None:
    [join] = core.start(connected=True)
    [refresh] = core.joined(join.generation, member("me", 5))
    [claim] = core.members(refresh.generation, [member("me", 5)], "replica-a")
    assert core.node_gone(claim.generation) == [Join(core.generation)]


def test_a_lower_member_appearing_deposes_the_leader(core: ElectionCore) -> None:
    token = elect(core)
    [refresh] = core.watch_fired()
    [lost] = core.members(refresh.generation, [member("me", 5), member("forged", 1)], "someone")
    assert isinstance(lost, Lost)
    assert lost.token is token
    assert core.phase == "candidate"
    assert core.leader == "someone"


def test_repeated_listings_while_claiming_or_leading_change_nothing(core: ElectionCore) -> None:
    [join] = core.start(connected=True)
    [refresh] = core.joined(join.generation, member("me", 5))
    [claim] = core.members(refresh.generation, [member("me", 5)], "replica-a")
    assert core.members(refresh.generation, [member("me", 5), member("b", 8)], "replica-a") == []
    [elected] = core.claimed(claim.generation, claim.node, 1, now=1.0)
    assert core.members(refresh.generation, [member("me", 5), member("b", 8)], "replica-a") == []
    assert core.token is elected.token  # type: ignore[union-attr]


def test_stop_reports_the_loss_and_leaves(core: ElectionCore) -> None:
    token = elect(core)
    assert core.stop() == [Lost(token, "the election was stopped"), Leave(member("me", 5))]
    assert core.stop() == []
    assert core.connection("connected") == []
    assert core.watch_fired() == []


def test_watches_while_disconnected_do_nothing(core: ElectionCore) -> None:
    elect(core)
    core.connection("suspended")
    assert core.watch_fired() == []


def test_failed_requests_are_retried_only_within_their_connection(core: ElectionCore) -> None:
    [join] = core.start(connected=True)
    assert core.is_current(join)
    core.connection("suspended")
    assert not core.is_current(join)
    [join2] = core.connection("connected")
    assert core.is_current(join2)  # type: ignore[arg-type]
    core.stop()
    assert not core.is_current(join2)  # type: ignore[arg-type]


# --- the shell, on a fake client -------------------------------------------------------------------


class _Done:
    """An answered kazoo async result."""

    def __init__(self, value: Any = None, error: BaseException | None = None) -> None:
        self._value = value
        self._error = error

    def get(self, timeout: float | None = None) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


class FakeClient:
    """Just enough of KazooClient for the election: a flat tree of ephemeral sequential nodes."""

    def __init__(self) -> None:
        self.connected = False
        self.listeners: list[Callable[[str], Any]] = []
        self.nodes: dict[str, tuple[bytes, int]] = {}
        self.watches: list[Callable[[Any], Any]] = []
        self._sequence = itertools.count()
        self.lock = threading.Lock()
        self.block_claims = threading.Event()
        self.block_claims.set()

    def add_listener(self, listener: Callable[[str], Any]) -> None:
        self.listeners.append(listener)

    def remove_listener(self, listener: Callable[[str], Any]) -> None:
        self.listeners.remove(listener)

    def change(self, state: str) -> None:
        self.connected = state == KazooState.CONNECTED
        for listener in list(self.listeners):
            listener(state)

    def fire_watches(self) -> None:
        with self.lock:
            watches, self.watches = self.watches, []
        for watch in watches:
            watch(object())

    def ensure_path_async(self, path: str) -> _Done:
        return _Done(True)

    def get_children_async(self, path: str, watch: Callable[[Any], Any] | None = None) -> _Done:
        with self.lock:
            if watch is not None:
                self.watches.append(watch)
            return _Done([name.rsplit("/", 1)[1] for name in self.nodes])

    def create_async(self, path: str, data: bytes, *, ephemeral: bool, sequence: bool) -> _Done:
        with self.lock:
            name = f"{path}{next(self._sequence):010d}"
            if name in self.nodes:
                return _Done(error=NodeExistsError())
            self.nodes[name] = (data, 0)
            return _Done(name)

    def get_async(self, path: str) -> _Done:
        with self.lock:
            if path not in self.nodes:
                return _Done(error=NoNodeError())
            return _Done((self.nodes[path][0], None))

    def set_async(self, path: str, data: bytes) -> _Done:
        self.block_claims.wait(WAIT_S)
        with self.lock:
            if path not in self.nodes:
                return _Done(error=NoNodeError())
            version = self.nodes[path][1] + 1
            self.nodes[path] = (data, version)
            return _Done(ZnodeStat(0, 0, 0, 0, version, 0, 0, 0, len(data), 0, 0))

    def delete_async(self, path: str) -> _Done:
        with self.lock:
            if self.nodes.pop(path, None) is None:
                return _Done(error=NoNodeError())
            return _Done(True)


class Recorder:
    """Collects the callbacks in order; ``wait_for(n)`` waits until n have arrived."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self._changed = threading.Condition()
        self.hold_elected = threading.Event()
        self.hold_elected.set()
        self.entered_elected = threading.Event()
        self.threads: set[str] = set()

    def elected(self, token: LeaderToken) -> None:
        self.entered_elected.set()
        self.hold_elected.wait(WAIT_S)
        self._record("elected", token)

    def lost(self, reason: str) -> None:
        self._record("lost", reason)

    def _record(self, kind: str, value: Any) -> None:
        self.threads.add(threading.current_thread().name)
        with self._changed:
            self.calls.append((kind, value))
            self._changed.notify_all()

    def wait_for(self, count: int) -> list[tuple[str, Any]]:
        with self._changed:
            self._changed.wait_for(lambda: len(self.calls) >= count, WAIT_S)
            return list(self.calls)


@pytest.fixture
def no_thread_leak() -> Iterator[None]:
    before = set(threading.enumerate())
    yield
    for thread in set(threading.enumerate()) - before:
        thread.join(WAIT_S)
        assert not thread.is_alive(), f"thread left running: {thread.name}"


Shell = tuple[FakeClient, Recorder, LeaderElection]


@pytest.fixture
def shell(no_thread_leak: None) -> Iterator[Shell]:
    client = FakeClient()
    recorder = Recorder()
    election = LeaderElection(
        client, PATH, "replica-a", on_elected=recorder.elected, on_lost=recorder.lost, clock=lambda: 42.0
    )
    yield client, recorder, election
    recorder.hold_elected.set()
    client.block_claims.set()
    election.stop()


def test_the_shell_elects_a_lone_replica_once_connected(shell: Shell) -> None:
    client, recorder, election = shell
    election.start()
    assert election.current_leader() is None
    client.change(KazooState.CONNECTED)
    [(kind, token)] = recorder.wait_for(1)
    assert kind == "elected"
    assert token.elected_at == 42.0
    assert client.nodes[token.znode] == (b"replica-a", token.version)
    assert election.is_leader()
    assert election.token() is token
    assert election.current_leader() == "replica-a"
    assert recorder.threads == {"steward-election-cb"}


def test_the_shell_revokes_the_token_before_the_listener_returns(
    shell: Shell,
) -> None:
    client, recorder, election = shell
    client.connected = True
    election.start()
    [(_, token)] = recorder.wait_for(1)
    client.change(KazooState.SUSPENDED)
    assert not token.valid  # revoked on kazoo's thread, before any callback ran
    assert not election.is_leader()
    assert election.current_leader() is None
    assert recorder.wait_for(2)[1] == ("lost", "the ZooKeeper connection was suspended")


def test_an_election_revoked_before_its_callback_ran_is_never_announced(
    shell: Shell,
) -> None:
    client, recorder, election = shell
    recorder.hold_elected.clear()  # the runtime is still busy with a first election
    client.connected = True
    election.start()
    assert recorder.entered_elected.wait(WAIT_S)  # the first on_elected is blocked in the callback
    for _ in range(2):  # two more terms, each lost before it could be announced
        client.change(KazooState.SUSPENDED)
        client.change(KazooState.CONNECTED)
    client.change(KazooState.SUSPENDED)
    recorder.hold_elected.set()
    client.change(KazooState.CONNECTED)
    calls = recorder.wait_for(3)
    # The first term was announced then lost; the revoked ones in between were skipped as pairs;
    # the last (still valid) term is announced.
    kinds = [kind for kind, _ in calls]
    assert kinds == ["elected", "lost", "elected"], calls
    assert calls[2][1].valid
    assert not calls[0][1].valid


def test_the_shell_rejoins_when_its_znode_is_deleted(shell: Shell) -> None:
    client, recorder, election = shell
    client.connected = True
    election.start()
    [(_, token)] = recorder.wait_for(1)
    with client.lock:
        del client.nodes[token.znode]
    client.fire_watches()
    calls = recorder.wait_for(3)
    assert calls[1] == ("lost", "this replica's election znode was deleted")
    assert calls[2][0] == "elected"
    assert calls[2][1].znode != token.znode


def test_stop_announces_the_loss_deletes_the_znode_and_ends_the_threads(
    shell: Shell,
) -> None:
    client, recorder, election = shell
    client.connected = True
    election.start()
    [(_, token)] = recorder.wait_for(1)
    election.stop()
    assert recorder.calls[-1] == ("lost", "the election was stopped")  # delivered before stop returned
    assert not token.valid
    assert client.nodes == {}
    assert client.listeners == []
    election.stop()  # idempotent


def test_a_second_start_is_refused(shell: Shell) -> None:
    _client, _recorder, election = shell
    election.start()
    with pytest.raises(RuntimeError, match="already started"):
        election.start()


def test_a_relative_path_is_refused() -> None:
    with pytest.raises(ValueError, match="absolute"):
        LeaderElection(FakeClient(), "steward", "a", on_elected=lambda _t: None, on_lost=lambda _r: None)
