"""Leader election among Steward replicas on ZooKeeper: exactly one acts, the others wait.

Every replica joins by creating an ephemeral sequential znode ``<path>/<nonce>__member__<seq>``
holding its identifier (what ``current_leader()`` returns: the API address operators and standbys
redirect to). The member with the lowest sequence number leads: ZooKeeper hands out sequence
numbers in increasing order and never again, so once a member is the lowest it stays the lowest
for as long as its znode exists, and its znode exists exactly as long as its session (or until it
leaves). Written by hand rather than with kazoo's ``Election``/``Lock`` recipes because Steward
needs what those hide: the znode and its version as a fencing token for the store, an immediate
"stop acting" on a suspended connection, and the leader's identifier for redirects.

Terms and fencing. Winning is a write: the winner sets its own znode's data, which bumps its data
version, and the ``LeaderToken`` it is handed names that znode and that version. The ZooKeeper store
checks both in the same transaction as every write (``framework.store.zookeeper``), so a write made
with the token of a past term fails: after the znode was deleted (session expired or closed: another
replica may lead now), and after this replica was elected again (a straggling thread from the
previous term cannot write into the new one). A token is also revoked locally the moment the
connection is suspended, before anything else happens, so the store refuses even writes that
ZooKeeper would still accept.

Connection trouble (kazoo's states):

* SUSPENDED (the connection dropped; the session may survive): the token is revoked and
  ``on_lost`` is called at once. Waiting for the session to expire would let this replica act
  while another may already be taking over; a short network blip costs a resubscription instead.
* CONNECTED again on the same session: the znode is still there and keeps its place, so if it is
  still the lowest this replica is elected again (a new term, a new token, ``on_elected`` again).
* LOST (the session expired): the znode is gone; on reconnection the replica joins again, at the
  end of the line.
* The znode deleted by someone else (an operator): ``on_lost``, then join again.

Threads. kazoo delivers state changes on its connection thread and watches on its event thread,
neither of which may block; they only update the decision core (``ElectionCore``, pure and unit
tested) under a lock, revoke a token, and queue work. One worker thread does the ZooKeeper requests
(join, list, claim, leave), one callback thread calls ``on_elected``/``on_lost``, one at a time, in
order, each ``on_lost`` matching the ``on_elected`` before it (an election revoked before its
``on_elected`` was delivered is skipped with its ``on_lost``). Callbacks should return quickly: an
``on_lost`` waits for a still-running ``on_elected``; the token is revoked meanwhile all the same.

How the runtime uses it: ``on_elected(token)`` -> ``store.set_fence(token)``, reload the store
(``load_tasks``, ``framework_id``, ``overrides``), build a fresh ``SchedulerState``, start the
driver (which subscribes and reconciles before acting). ``on_lost(reason)`` -> stop the driver at
once and drop the state; the next ``on_elected`` starts over from the store.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal

from kazoo.client import KazooClient, KazooState
from kazoo.exceptions import (
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NoNodeError,
    OperationTimeoutError,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

__all__ = [
    "MEMBER_MARK",
    "ElectionCore",
    "LeaderElection",
    "LeaderToken",
    "Member",
    "election_path",
    "parse_members",
]

log = logging.getLogger(__name__)

MEMBER_MARK: Final = "__member__"
"""Between a member's nonce and its sequence number (ZooKeeper appends ten digits)."""

_CONNECTION_TROUBLE: Final = (
    ConnectionLoss,
    ConnectionClosedError,
    SessionExpiredError,
    OperationTimeoutError,
    KazooTimeoutError,
)
_RETRY_DELAYS_S: Final = (0.2, 0.5, 1.0, 2.0, 5.0)


def election_path(store_path: str) -> str:
    """Where the replicas sharing the ZooKeeper store at ``store_path`` hold their election: next
    to the state it guards, so one ``path`` setting configures both."""
    return f"{store_path.rstrip('/')}/leader"


# --- values ---------------------------------------------------------------------------------------


class LeaderToken:
    """One term of leadership: the winner's election znode and its data version for this term.

    ``valid`` turns False for good when the election revokes the token (connection suspended or
    lost, znode deleted, election stopped). Satisfies ``framework.store.zookeeper.Fence``.
    """

    __slots__ = ("_elected_at", "_identifier", "_revoked", "_version", "_znode")

    def __init__(self, znode: str, version: int, identifier: str, elected_at: float) -> None:
        self._znode = znode
        self._version = version
        self._identifier = identifier
        self._elected_at = elected_at
        self._revoked = threading.Event()

    @property
    def znode(self) -> str:
        return self._znode

    @property
    def version(self) -> int:
        return self._version

    @property
    def identifier(self) -> str:
        return self._identifier

    @property
    def elected_at(self) -> float:
        """When the term began, by the election's clock."""
        return self._elected_at

    @property
    def valid(self) -> bool:
        return not self._revoked.is_set()

    def revoke(self) -> None:
        self._revoked.set()

    def __repr__(self) -> str:
        state = "valid" if self.valid else "revoked"
        return f"LeaderToken({self._znode!r}, version={self._version}, {state})"


@dataclass(frozen=True, slots=True, order=True)
class Member:
    """A candidate's znode: ``name`` under the election path, ``sequence`` its rank."""

    sequence: int
    name: str

    @property
    def nonce(self) -> str:
        return self.name.rpartition(MEMBER_MARK)[0]


def parse_members(children: Iterable[str]) -> list[Member]:
    """The election's members by rank (lowest sequence first); other children are ignored."""
    members = []
    for name in children:
        _nonce, mark, digits = name.rpartition(MEMBER_MARK)
        if mark and digits.isdigit():
            members.append(Member(int(digits), name))
    members.sort()
    return members


# --- the decision core ----------------------------------------------------------------------------

Phase = Literal["idle", "joining", "candidate", "claiming", "leader", "stopped"]
ConnectionChange = Literal["connected", "suspended", "lost"]


@dataclass(frozen=True, slots=True)
class Join:
    """Find this replica's znode (a create whose answer was lost may have made one) or create it."""

    generation: int


@dataclass(frozen=True, slots=True)
class Refresh:
    """List the members (and watch them), read the leader's identifier, report to ``members``."""

    generation: int


@dataclass(frozen=True, slots=True)
class Claim:
    """Set this replica's znode's data, starting a term; report the new version to ``claimed``."""

    generation: int
    node: str


@dataclass(frozen=True, slots=True)
class Leave:
    """Delete this replica's znode(s): the next member need not wait for the session to end."""

    node: str | None


@dataclass(frozen=True, slots=True)
class Elected:
    token: LeaderToken


@dataclass(frozen=True, slots=True)
class Lost:
    token: LeaderToken
    reason: str


Action = Join | Refresh | Claim | Leave | Elected | Lost


class ElectionCore:
    """What to do next, from what kazoo and ZooKeeper said; no I/O, no threads, no clock.

    Every request is stamped with the connection ``generation`` it was made in; an answer from an
    older generation (the connection changed meanwhile) is ignored, since the next connection
    event starts the round again. Not thread-safe: the shell calls it under its lock.
    """

    def __init__(self, path: str, identifier: str) -> None:
        self.path = path
        self.identifier = identifier
        self.phase: Phase = "idle"
        self.connected = False
        self.generation = 0
        self.node: str | None = None
        """This replica's member znode name (without the path) while it has one."""
        self.token: LeaderToken | None = None
        """The current term's token while this replica leads."""
        self.leader: str | None = None
        """The leading member's identifier, as last read (None: unknown or no member)."""

    def start(self, connected: bool) -> list[Action]:
        if self.phase != "idle":
            return []
        self.phase = "joining"
        self.connected = False
        return self.connection("connected") if connected else []

    def connection(self, change: ConnectionChange) -> list[Action]:
        if self.phase in ("idle", "stopped"):
            self.connected = change == "connected"
            return []
        self.generation += 1
        if change == "connected":
            self.connected = True
            if self.node is None:
                self.phase = "joining"
                return [Join(self.generation)]
            self.phase = "candidate"
            return [Refresh(self.generation)]
        self.connected = False
        self.leader = None
        if change == "lost":
            actions = self._step_down("the ZooKeeper session was lost")
            self.node = None  # ephemeral: it went with the session
        else:
            actions = self._step_down("the ZooKeeper connection was suspended")
        self.phase = "joining" if self.node is None else "candidate"
        return actions

    def joined(self, generation: int, node: str) -> list[Action]:
        if generation != self.generation or self.phase != "joining":
            return []
        self.node = node
        self.phase = "candidate"
        return [Refresh(generation)]

    def watch_fired(self) -> list[Action]:
        if self.connected and self.phase in ("candidate", "claiming", "leader"):
            return [Refresh(self.generation)]
        return []

    def members(self, generation: int, children: Sequence[str], leader: str | None) -> list[Action]:
        """The election's children as just listed, and the lowest member's identifier."""
        if generation != self.generation or self.phase not in ("candidate", "claiming", "leader"):
            return []
        ranked = parse_members(children)
        self.leader = leader if ranked else None
        if self.node not in {m.name for m in ranked}:
            return self._rejoin("this replica's election znode was deleted")
        if ranked[0].name == self.node:
            if self.phase == "candidate":
                self.phase = "claiming"
                return [Claim(generation, self.node)]
            return []
        # Someone ranks first. Never the case for a member once first, unless a znode was made by
        # hand with a lower number; then that one leads as far as every replica can tell.
        actions = self._step_down(f"another member ranks first ({ranked[0].name})")
        self.phase = "candidate"
        return actions

    def claimed(self, generation: int, node: str, version: int, now: float) -> list[Action]:
        if generation != self.generation or self.phase != "claiming" or node != self.node:
            return []
        self.phase = "leader"
        self.token = LeaderToken(f"{self.path}/{node}", version, self.identifier, now)
        self.leader = self.identifier
        return [Elected(self.token)]

    def node_gone(self, generation: int) -> list[Action]:
        """A request on this replica's znode found it missing."""
        if generation != self.generation or self.phase not in ("candidate", "claiming", "leader"):
            return []
        return self._rejoin("this replica's election znode was deleted")

    def is_current(self, action: Join | Refresh | Claim) -> bool:
        """Whether a failed request is still worth retrying (no connection change since)."""
        return self.connected and action.generation == self.generation and self.phase != "stopped"

    def stop(self) -> list[Action]:
        if self.phase == "stopped":
            return []
        actions = self._step_down("the election was stopped")
        node, self.node = self.node, None
        self.phase = "stopped"
        self.leader = None
        return [*actions, Leave(node)]

    def _rejoin(self, reason: str) -> list[Action]:
        actions = self._step_down(reason)
        self.node = None
        self.phase = "joining"
        return [*actions, Join(self.generation)]

    def _step_down(self, reason: str) -> list[Action]:
        token, self.token = self.token, None
        return [] if token is None else [Lost(token, reason)]


# --- the shell ------------------------------------------------------------------------------------


class LeaderElection:
    """One replica's place in the election under ``path``; see the module docstring.

    ``client_or_servers``: a kazoo client (the caller starts and stops it; sharing the store's
    client is natural) or ``host:port`` servers (a list or a comma-separated string), for which the
    election runs its own client with ``session_timeout_s``. ``clock`` stamps ``elected_at``.
    """

    def __init__(
        self,
        client_or_servers: KazooClient | str | Sequence[str],
        path: str,
        identifier: str,
        *,
        on_elected: Callable[[LeaderToken], None],
        on_lost: Callable[[str], None],
        session_timeout_s: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not path.startswith("/") or path.endswith("/"):
            raise ValueError(f"election path must be an absolute znode path, got {path!r}")
        self._path = path
        self._identifier = identifier
        self._on_elected = on_elected
        self._on_lost = on_lost
        self._clock = clock
        self._op_timeout = session_timeout_s
        self._nonce = uuid.uuid4().hex
        self._core = ElectionCore(path, identifier)
        self._lock = threading.Lock()
        self._work: queue.Queue[Join | Refresh | Claim | Leave | None] = queue.Queue()
        self._callbacks: queue.Queue[Elected | Lost | None] = queue.Queue()
        self._started = False
        self._stopped = False
        self._client: Any
        if isinstance(client_or_servers, str | Sequence):
            servers = client_or_servers if isinstance(client_or_servers, str) else ",".join(client_or_servers)
            self._client = KazooClient(
                hosts=servers,
                timeout=session_timeout_s,
                connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=2.0),
            )
            self._owns_client = True
        else:
            self._client = client_or_servers
            self._owns_client = False
        self._worker = threading.Thread(target=self._work_loop, name="steward-election", daemon=True)
        self._notifier = threading.Thread(target=self._notify_loop, name="steward-election-cb", daemon=True)

    def __repr__(self) -> str:
        return f"LeaderElection({self._path!r}, {self._identifier!r})"

    # --- public API -------------------------------------------------------------------------------

    def start(self) -> None:
        """Join the election in the background; returns at once."""
        with self._lock:
            if self._started:
                raise RuntimeError("the election was already started")
            self._started = True
        self._worker.start()
        self._notifier.start()
        self._client.add_listener(self._on_state)
        if self._owns_client:
            with self._lock:
                self._dispatch(self._core.start(connected=False))
            self._client.start_async()
        else:
            with self._lock:
                self._dispatch(self._core.start(connected=bool(self._client.connected)))

    def stop(self, timeout_s: float = 10.0) -> None:
        """Leave the election: revoke the token (``on_lost`` if leading), delete this replica's
        znode so that the next one takes over at once, stop the threads (and the own client).
        When it returns no callback is running or will run (unless called from one)."""
        with self._lock:
            if self._stopped:
                return
            self._stopped = True
            actions = self._core.stop()
            self._dispatch(actions)
        self._client.remove_listener(self._on_state)
        if self._started:
            self._work.put(None)
            self._worker.join(timeout_s)
            self._callbacks.put(None)
            if threading.current_thread() is not self._notifier:
                self._notifier.join(timeout_s)
        if self._owns_client:
            try:
                self._client.stop()
            finally:
                self._client.close()

    def current_leader(self) -> str | None:
        """The leading replica's identifier; None when unknown (no connection, nobody yet)."""
        with self._lock:
            return self._core.leader if self._core.connected else None

    def is_leader(self) -> bool:
        with self._lock:
            token = self._core.token
        return token is not None and token.valid

    def token(self) -> LeaderToken | None:
        """The current term's token while this replica leads."""
        with self._lock:
            return self._core.token

    @property
    def client(self) -> Any:
        """The kazoo client in use (e.g. to share with the store)."""
        return self._client

    # --- kazoo's threads: never block -------------------------------------------------------------

    def _on_state(self, state: str) -> None:
        change: ConnectionChange
        if state == KazooState.CONNECTED:
            change = "connected"
        elif state == KazooState.SUSPENDED:
            change = "suspended"
        else:
            change = "lost"
        log.info("election %s: ZooKeeper connection %s", self._path, state)
        with self._lock:
            self._dispatch(self._core.connection(change))

    def _on_watch(self, _event: Any) -> None:
        with self._lock:
            self._dispatch(self._core.watch_fired())

    def _dispatch(self, actions: Iterable[Action]) -> None:
        """Carry out the core's actions; called with the lock held, so nothing here may block."""
        for action in actions:
            if isinstance(action, Lost):
                action.token.revoke()  # first of all: the store refuses writes from now on
                log.warning("election %s: no longer the leader: %s", self._path, action.reason)
                self._callbacks.put(action)
            elif isinstance(action, Elected):
                log.info("election %s: %s is the leader (%r)", self._path, self._identifier, action.token)
                self._callbacks.put(action)
            else:
                self._work.put(action)

    # --- the callback thread ----------------------------------------------------------------------

    def _notify_loop(self) -> None:
        delivered: LeaderToken | None = None
        while (item := self._callbacks.get()) is not None:
            try:
                if isinstance(item, Elected):
                    if item.token.valid:
                        delivered = item.token
                        self._on_elected(item.token)
                elif item.token is delivered:
                    delivered = None
                    self._on_lost(item.reason)
            except Exception:
                log.exception("election %s: a leadership callback failed", self._path)

    # --- the worker thread: the ZooKeeper requests ------------------------------------------------

    def _work_loop(self) -> None:
        retries: list[tuple[float, Join | Refresh | Claim]] = []
        attempts: dict[Join | Refresh | Claim, int] = {}
        while True:
            timeout = None
            if retries:
                timeout = max(0.0, min(due for due, _ in retries) - time.monotonic())
            try:
                item = self._work.get(timeout=timeout)
            except queue.Empty:
                now = time.monotonic()
                due = [action for when, action in retries if when <= now]
                retries = [(when, action) for when, action in retries if when > now]
                for action in due:
                    self._work.put(action)
                continue
            if item is None:
                return
            if isinstance(item, Leave):
                self._leave()
                continue
            try:
                self._perform(item)
                attempts.pop(item, None)
            except (*_CONNECTION_TROUBLE, KazooException) as exc:
                with self._lock:
                    current = self._core.is_current(item)
                if not current:
                    continue  # the next connection event starts the round again
                count = attempts.get(item, 0)
                attempts[item] = count + 1
                delay = _RETRY_DELAYS_S[min(count, len(_RETRY_DELAYS_S) - 1)]
                name = type(item).__name__
                log.warning("election %s: %s failed (%r); retrying in %.1f s", self._path, name, exc, delay)
                retries.append((time.monotonic() + delay, item))

    def _call(self, async_result: Any) -> Any:
        return async_result.get(timeout=self._op_timeout)

    def _perform(self, action: Join | Refresh | Claim) -> None:
        if isinstance(action, Join):
            node = self._join()
            with self._lock:
                self._dispatch(self._core.joined(action.generation, node))
        elif isinstance(action, Refresh):
            children, leader = self._read_members()
            with self._lock:
                self._dispatch(self._core.members(action.generation, children, leader))
        else:
            try:
                stat = self._call(self._client.set_async(f"{self._path}/{action.node}", self._data()))
            except NoNodeError:
                with self._lock:
                    self._dispatch(self._core.node_gone(action.generation))
                return
            now = self._clock()
            with self._lock:
                self._dispatch(self._core.claimed(action.generation, action.node, stat.version, now))

    def _data(self) -> bytes:
        return self._identifier.encode()

    def _own_members(self) -> list[Member]:
        try:
            children = self._call(self._client.get_children_async(self._path))
        except NoNodeError:
            return []
        return [m for m in parse_members(children) if m.nonce == self._nonce]

    def _join(self) -> str:
        """This replica's znode: one left from a create whose answer was lost, or a new one."""
        mine = self._own_members()
        if mine:
            for extra in mine[1:]:
                self._delete(extra.name)
            return mine[0].name
        self._call(self._client.ensure_path_async(self._path))
        created: str = self._call(
            self._client.create_async(
                f"{self._path}/{self._nonce}{MEMBER_MARK}", self._data(), ephemeral=True, sequence=True
            )
        )
        return created.rsplit("/", 1)[1]

    def _read_members(self) -> tuple[list[str], str | None]:
        """The children (watched) and the lowest member's identifier."""
        for _ in range(10):
            try:
                children: list[str] = self._call(
                    self._client.get_children_async(self._path, watch=self._on_watch)
                )
            except NoNodeError:
                return [], None
            ranked = parse_members(children)
            if not ranked:
                return children, None
            try:
                data, _stat = self._call(self._client.get_async(f"{self._path}/{ranked[0].name}"))
            except NoNodeError:
                continue  # the leader just left: list again
            return children, bytes(data or b"").decode(errors="replace")
        raise OperationTimeoutError("the election's members kept changing while being read")

    def _delete(self, name: str) -> None:
        with contextlib.suppress(NoNodeError):
            self._call(self._client.delete_async(f"{self._path}/{name}"))

    def _leave(self) -> None:
        if not self._client.connected:
            return  # the session's end removes the znode; nothing to do without a connection
        try:
            for member in self._own_members():
                self._delete(member.name)
        except (*_CONNECTION_TROUBLE, KazooException) as exc:
            log.warning("election %s: could not delete this replica's znode: %r", self._path, exc)
