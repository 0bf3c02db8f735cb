"""The highly available store: Steward's state in ZooKeeper, every write fenced by leadership.

Several Steward replicas share one ZooKeeper ensemble; only the elected leader acts and writes
(``framework.runtime.leader``). The state lives under one znode, ``path`` (``/steward`` by default):

``<path>/schema``
    The layout version (``1``) as text. A store written by a newer Steward is refused, as the
    SQLite store does.
``<path>/framework_id``
    The framework ID as UTF-8; empty until the first registration and after it is forgotten.
``<path>/overrides``
    The operator overrides as one JSON object; empty means none.
``<path>/leader``
    Not the store's: the replicas' election (``framework.runtime.leader.election_path``), whose
    members' znodes are the fences of the writes below.
``<path>/tasks/<name>``
    One znode per task record, holding the record as JSON (``record_to_builtins``, the same text
    the SQLite store keeps). ``<name>`` is the task ID made safe for ZooKeeper (:func:`task_znode_name`):
    Mesos forbids ``/``, ``\\``, control characters and the IDs ``.`` and ``..`` in task IDs, but
    ZooKeeper also forbids C1 controls, surrogates, the private-use area and U+FFF0-U+FFFF in path
    names, and ``.``/``..`` as whole names. So every character outside ``A-Z a-z 0-9 . _ - ~`` is
    percent-encoded (UTF-8 bytes, as in URLs), and a name that would be ``.`` or ``..`` is fully
    encoded. Steward's own IDs (``squid.1.ab12``) contain only safe characters and stay readable in
    ``zkCli``; the record itself still carries the exact ID.

Atomic batches. ``apply`` turns a batch into one ZooKeeper ``multi`` transaction: a ``create`` for
a task whose znode does not exist yet, a ``setData`` for one that does, a ``delete`` for a forgotten
task whose znode exists. ZooKeeper has no "create or replace" inside a transaction, so the store
must know which znodes exist: it lists them in ``load_tasks`` and keeps that list current with its
own writes; for a task it has not seen it asks ``exists`` (pipelined, one round trip for a whole
batch). If the list was wrong (someone else created or deleted a znode), the transaction fails as a
whole on that op, and the store asks ``exists`` for every znode of the batch and tries once more.

Size. ZooKeeper refuses a request larger than ``jute.maxbuffer`` (1 MiB by default), which bounds a
transaction, not just one znode. A batch larger than ``max_transaction_bytes`` (512 KiB by default,
headroom for the framing) is split into several transactions, committed in order, each atomic and
each fenced; the batch as a whole is then NOT atomic: a crash or a lost leadership between two of
them leaves a prefix of the batch stored. That is the same outcome as the runtime's batch having
been cut short by a crash just after the write, which the runtime already survives: records
persisted before a launch that was never sent are answered by reconciliation, updates whose ACK was
never sent are re-sent by Mesos. Batches that large (over 700 task records at once) only come from
a reconciliation at site scale. A single record larger than the limit is refused with a StoreError.

Fencing. A replica that has lost its leadership (a long GC pause, a partition, a suspended
connection) must not write over what the new leader writes. Every write transaction therefore
starts with ``check(fence.znode, fence.version)`` on the leader's own election znode, at the data
version its election set (the *term*): if that znode is gone (the session expired or was closed, so
another replica may lead) or has been re-claimed at a newer version, ZooKeeper rejects the whole
transaction and the write raises :class:`NotLeaderError`. Because the check and the writes are one
transaction, no write of a deposed leader can land after its election znode was deleted, which is
exactly when the next leader may start. In addition a fence whose ``valid`` is False (the election
revoked it when the connection was suspended) is refused locally before anything is sent.

``require_fence`` (the default) makes every write fail until the runtime has passed the token of
an election this replica won (``set_fence``); ``require_fence=False`` is for single-replica use and
tests. Creating the layout when a store is first opened is not fenced: it only creates empty znodes
that do not exist yet, which any replica may do.

Errors. Every failure raises ``StoreError`` naming the znode; a lost or suspended connection is a
``StoreError`` too, and the runtime treats any failed write as the end of acting (it stops the
driver and waits to be elected again). As with any remote store, a write whose answer was lost with
the connection may still have been applied (or, if it was still queued in the client, be applied
when the same session reconnects); it is never applied after this replica's election znode is gone.

Reads. ZooKeeper serves reads from whichever server the client is connected to, which may lag the
leader of the ensemble; every read here starts with ``sync`` so that a replica that has just been
elected sees everything its predecessor wrote.

Credentials: the store never logs server strings with secrets (it gets plain ``host:port`` lists);
a deployment that needs digest auth and ACLs passes its own configured ``KazooClient`` as
``client``.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final, Literal, Protocol
from urllib.parse import quote, unquote

from kazoo.client import KazooClient
from kazoo.exceptions import (
    BadVersionError,
    ConnectionClosedError,
    ConnectionLoss,
    KazooException,
    NodeExistsError,
    NoNodeError,
    OperationTimeoutError,
    RolledBackError,
    RuntimeInconsistency,
    SessionExpiredError,
)
from kazoo.handlers.threading import KazooTimeoutError
from kazoo.retry import KazooRetry

from framework.model.tasks import TaskId, TaskRecord, record_from_builtins, record_to_builtins
from framework.store.base import StoreError

__all__ = [
    "DEFAULT_MAX_TRANSACTION_BYTES",
    "SCHEMA_VERSION",
    "Fence",
    "NotLeaderError",
    "ZooKeeperStore",
    "task_id_from_znode_name",
    "task_znode_name",
]

log = logging.getLogger(__name__)

SCHEMA_VERSION: Final = 1
DEFAULT_MAX_TRANSACTION_BYTES: Final = 512 * 1024
"""Half of ZooKeeper's default ``jute.maxbuffer`` (1 MiB - 1): the request framing, ACLs and a
server configured a little lower than the default all fit in the other half."""

_OP_OVERHEAD_BYTES: Final = 64
"""Per-op framing in a multi request (op header, lengths, version, flags, one open ACL)."""

_CONNECTION_TROUBLE: Final = (
    ConnectionLoss,
    ConnectionClosedError,
    SessionExpiredError,
    OperationTimeoutError,
    KazooTimeoutError,
)
_IGNORED_RESULTS: Final = (RolledBackError, RuntimeInconsistency)
"""What ZooKeeper answers for the ops of a failed multi that did not themselves fail."""


class NotLeaderError(StoreError):
    """The write was refused because this replica is not (or no longer) the leader; nothing of it
    was applied. The runtime must stop acting."""


class Fence(Protocol):
    """What the store needs of a leadership token (``framework.runtime.leader.LeaderToken``)."""

    @property
    def znode(self) -> str:
        """Full path of the leader's election znode (ephemeral: it goes with the session)."""
        ...

    @property
    def version(self) -> int:
        """Data version of that znode for this term of leadership."""
        ...

    @property
    def valid(self) -> bool:
        """False once the election revoked the token (connection suspended, session lost, stopped)."""
        ...


_SAFE_CHARACTERS: Final = "._-~"  # with ASCII letters and digits, which quote() never encodes


def task_znode_name(task_id: str) -> str:
    """The znode name of a task: the ID with every character outside ``A-Za-z0-9._-~``
    percent-encoded, and ``.``/``..`` (which ZooKeeper refuses as names) fully encoded."""
    if task_id in (".", ".."):
        return "%2E" * len(task_id)
    return quote(task_id, safe=_SAFE_CHARACTERS)


def task_id_from_znode_name(name: str) -> TaskId:
    """Inverse of :func:`task_znode_name`."""
    return TaskId(unquote(name, errors="strict"))


@dataclass(frozen=True, slots=True)
class _Op:
    """One write of a transaction, kept as data so that it can be sized, split and retried."""

    kind: Literal["create", "set", "delete"]
    path: str
    data: bytes = b""

    @property
    def size(self) -> int:
        return len(self.path.encode()) + len(self.data) + _OP_OVERHEAD_BYTES

    def add_to(self, transaction: Any) -> None:
        if self.kind == "create":
            transaction.create(self.path, self.data)
        elif self.kind == "set":
            transaction.set_data(self.path, self.data)
        else:
            transaction.delete(self.path)


class _ExistenceMismatch(Exception):
    """A create met an existing znode or a set/delete a missing one: the store's list was stale."""


def _encode_record(record: TaskRecord) -> bytes:
    return json.dumps(record_to_builtins(record), sort_keys=True, separators=(",", ":")).encode()


class ZooKeeperStore:
    """``Store`` under znode ``path`` on the ZooKeeper ensemble ``servers`` (``host:port`` each).

    Thread-safe: writes are serialised by a lock (the existence list must match the transaction),
    reads may run concurrently. With ``client`` the caller's (started) kazoo client is used and
    left running on ``close``; otherwise the store starts its own with ``session_timeout_s`` and
    closes it. ``operation_timeout_s`` (default: the session timeout) bounds every request.
    """

    def __init__(
        self,
        servers: Sequence[str],
        path: str,
        *,
        client: KazooClient | None = None,
        session_timeout_s: float = 10.0,
        require_fence: bool = True,
        operation_timeout_s: float | None = None,
        max_transaction_bytes: int = DEFAULT_MAX_TRANSACTION_BYTES,
    ) -> None:
        parts = path.split("/")
        if not path.startswith("/") or path == "/" or any(p in ("", ".", "..") for p in parts[1:]):
            raise StoreError(f"{path!r}: not an absolute znode path such as '/steward'")
        self._servers = ",".join(servers)
        self._path = path
        self._tasks_path = f"{path}/tasks"
        self._schema_path = f"{path}/schema"
        self._framework_id_path = f"{path}/framework_id"
        self._overrides_path = f"{path}/overrides"
        self._timeout = operation_timeout_s if operation_timeout_s is not None else session_timeout_s
        self._max_transaction_bytes = max_transaction_bytes
        self._require_fence = require_fence
        self._fence: Fence | None = None
        self._write_lock = threading.Lock()
        self._present: set[str] = set()  # task znode names known to exist
        self._present_is_complete = False  # True after a full listing: absence is known too
        self._closed = False
        self._owns_client = client is None
        if client is None:
            client = KazooClient(
                hosts=self._servers,
                timeout=session_timeout_s,
                connection_retry=KazooRetry(max_tries=-1, delay=0.1, backoff=2, max_delay=2.0),
            )
            try:
                client.start(timeout=max(session_timeout_s, 1.0))
            except (KazooTimeoutError, KazooException) as exc:
                self._stop_client(client)
                raise StoreError(f"{path}: cannot connect to ZooKeeper at {self._servers}: {exc!r}") from exc
        self._client: Any = client
        try:
            self._create_layout()
        except StoreError:
            self.close()
            raise

    def __repr__(self) -> str:
        return f"ZooKeeperStore(servers={self._servers!r}, path={self._path!r})"

    @property
    def path(self) -> str:
        return self._path

    # --- fencing ----------------------------------------------------------------------------------

    def set_fence(self, fence: Fence) -> None:
        """Fence every later write with ``fence`` (the token of the election this replica just won).

        A fence is only ever replaced by the next one, never removed: after the election revoked
        it, writes keep failing until the replica has been elected again.
        """
        with self._write_lock:
            self._fence = fence
            # A new term: what this replica remembers of the znodes may predate another leader's
            # writes. load_tasks() (which the runtime calls right after) lists them again.
            self._present.clear()
            self._present_is_complete = False

    def _fence_check(self) -> Fence | None:
        fence = self._fence
        if fence is None:
            if self._require_fence:
                raise NotLeaderError(f"{self._path}: not the leader (no election won yet); nothing written")
            return None
        if not fence.valid:
            raise NotLeaderError(
                f"{fence.znode}: leadership revoked (ZooKeeper connection suspended or lost, or the "
                "election stopped); nothing written"
            )
        return fence

    # --- plumbing ---------------------------------------------------------------------------------

    def _connected(self, znode: str, what: str) -> None:
        """Fail at once without a connection: kazoo would queue the request until it reconnects (or
        the timeout passes), and a write queued that way could land long after it was given up."""
        if not self._client.connected:
            raise StoreError(f"{znode}: cannot {what}: not connected to ZooKeeper")

    def _wait(self, async_result: Any, znode: str, what: str) -> Any:
        """The result of one request, with every failure turned into a StoreError naming ``znode``."""
        try:
            return async_result.get(timeout=self._timeout)
        except _CONNECTION_TROUBLE as exc:
            raise StoreError(
                f"{znode}: cannot {what}: no ZooKeeper connection ({type(exc).__name__})"
            ) from exc
        except KazooException as exc:
            raise StoreError(f"{znode}: cannot {what}: {type(exc).__name__} {exc}".rstrip()) from exc

    def _sync(self) -> None:
        """Make this server catch up with the ensemble's leader before a read (see module doc)."""
        self._connected(self._path, "read")
        self._wait(self._client.sync_async(self._path), self._path, "sync with the ensemble")

    def _get(self, znode: str, what: str) -> bytes | None:
        try:
            data, _stat = self._wait(self._client.get_async(znode), znode, what)
        except StoreError as exc:
            if isinstance(exc.__cause__, NoNodeError):
                return None
            raise
        return bytes(data or b"")

    def _create_layout(self) -> None:
        try:
            self._client.ensure_path(self._tasks_path)
        except _CONNECTION_TROUBLE as exc:
            raise StoreError(f"{self._tasks_path}: cannot create: no ZooKeeper connection") from exc
        except KazooException as exc:
            raise StoreError(f"{self._tasks_path}: cannot create: {type(exc).__name__} {exc}") from exc
        initial = {
            self._schema_path: str(SCHEMA_VERSION).encode(),
            self._framework_id_path: b"",
            self._overrides_path: b"",
        }
        for znode, data in initial.items():
            try:
                self._wait(self._client.create_async(znode, data), znode, "create")
            except StoreError as exc:
                if not isinstance(exc.__cause__, NodeExistsError):
                    raise
        text = (self._get(self._schema_path, "read the schema version") or b"").decode(errors="replace")
        try:
            version = int(text)
        except ValueError:
            raise StoreError(f"{self._schema_path}: not a schema version: {text[:40]!r}") from None
        if version > SCHEMA_VERSION:
            raise StoreError(
                f"{self._schema_path}: written by a newer Steward (schema {version}, this one knows "
                f"{SCHEMA_VERSION}); upgrade Steward instead of downgrading"
            )

    def _commit(self, ops: Sequence[_Op], fence: Fence | None, what: str) -> None:
        """Commit ``ops`` (plus the fence check, first) as one transaction."""
        self._connected(ops[0].path, f"write {what}")
        transaction = self._client.transaction()
        if fence is not None:
            transaction.check(fence.znode, fence.version)
        for op in ops:
            op.add_to(transaction)
        results = self._wait(transaction.commit_async(), ops[0].path, f"write {what}")
        offset = 0 if fence is None else 1
        for index, result in enumerate(results):
            if not isinstance(result, Exception) or isinstance(result, _IGNORED_RESULTS):
                continue
            if index < offset and fence is not None:
                if isinstance(result, NoNodeError):
                    why = "is gone"
                elif isinstance(result, BadVersionError):
                    why = "was claimed again (a newer term)"
                else:
                    why = f"cannot be checked ({type(result).__name__})"
                raise NotLeaderError(
                    f"{fence.znode}: not the leader any more (the election znode {why}); nothing of "
                    f"{what} was written"
                )
            op = ops[index - offset]
            if (op.kind == "create" and isinstance(result, NodeExistsError)) or (
                op.kind != "create" and isinstance(result, NoNodeError)
            ):
                raise _ExistenceMismatch(op.path)
            raise StoreError(
                f"{op.path}: cannot write {what} ({op.kind} failed: {type(result).__name__}); "
                "nothing of the transaction was written"
            )

    # --- the framework ID -------------------------------------------------------------------------

    def framework_id(self) -> str | None:
        self._sync()
        data = self._get(self._framework_id_path, "read the framework ID")
        if not data:
            return None
        try:
            return data.decode()
        except UnicodeDecodeError:
            raise StoreError(f"{self._framework_id_path}: the framework ID is not UTF-8") from None

    def set_framework_id(self, framework_id: str) -> None:
        if self.framework_id() != framework_id:
            self._write_meta(self._framework_id_path, framework_id.encode(), "the framework ID")

    def forget_framework_id(self) -> None:
        self._write_meta(self._framework_id_path, b"", "the framework ID")

    def _write_meta(self, znode: str, data: bytes, what: str) -> None:
        with self._write_lock:
            self._commit([_Op("set", znode, data)], self._fence_check(), what)

    # --- task records -----------------------------------------------------------------------------

    def load_tasks(self) -> list[TaskRecord]:
        """Every record, oldest write first (by the znode's last-modified zxid, then task ID; the
        order is informative only: nothing may depend on it). Lists the znodes afresh."""
        self._sync()
        names: list[str] = self._wait(
            self._client.get_children_async(self._tasks_path), self._tasks_path, "list the task records"
        )
        pending = [(name, self._client.get_async(f"{self._tasks_path}/{name}")) for name in names]
        found: list[tuple[int, str, TaskRecord]] = []
        present: set[str] = set()
        for name, result in pending:
            znode = f"{self._tasks_path}/{name}"
            try:
                data, stat = self._wait(result, znode, "read a task record")
            except StoreError as exc:
                if isinstance(exc.__cause__, NoNodeError):
                    continue  # deleted between listing and reading
                raise
            present.add(name)
            try:
                record = record_from_builtins(json.loads(data))
            except (ValueError, TypeError, KeyError) as exc:
                log.error("%s: skipping unreadable record of task %s: %s", znode, unquote(name), exc)
                continue
            found.append((stat.mzxid, record.task_id, record))
        with self._write_lock:
            self._present = present
            self._present_is_complete = True
        found.sort(key=lambda item: (item[0], item[1]))
        return [record for _, _, record in found]

    def apply(self, persist: Iterable[TaskRecord] = (), forget: Iterable[TaskId] = ()) -> None:
        records: dict[str, bytes] = {}
        for record in persist:
            name = task_znode_name(record.task_id)
            records.pop(name, None)  # the last one of a task wins, in its position
            records[name] = _encode_record(record)
        gone = dict.fromkeys(task_znode_name(task_id) for task_id in forget)
        if not records and not gone:
            return
        what = f"{len(records)} task record(s)" + (f" and {len(gone)} deletion(s)" if gone else "")
        with self._write_lock:
            fence = self._fence_check()
            self._connected(self._tasks_path, f"write {what}")
            for attempt in range(2):
                present = self._which_exist([*records, *gone], ask_all=attempt > 0)
                # Persisting then forgetting a task in one batch leaves it absent, as in SQLite.
                ops = [
                    _Op("set" if name in present else "create", f"{self._tasks_path}/{name}", data)
                    for name, data in records.items()
                    if name not in gone
                ]
                ops += [_Op("delete", f"{self._tasks_path}/{name}") for name in gone if name in present]
                try:
                    for chunk in self._chunks(ops, fence):
                        self._commit(chunk, fence, what)
                        self._remember(chunk)
                    return
                except _ExistenceMismatch as mismatch:
                    log.warning("%s: the store's list of task znodes was stale; checking again", mismatch)
                    self._present_is_complete = False
            raise StoreError(f"{self._tasks_path}: cannot write {what}: task znodes keep changing under us")

    def _which_exist(self, names: list[str], *, ask_all: bool) -> set[str]:
        """The subset of ``names`` whose znodes exist: from the list where it is known, else asked."""
        if not ask_all and self._present_is_complete:
            return {name for name in names if name in self._present}
        known = set() if ask_all else {name for name in names if name in self._present}
        asks = [
            (name, self._client.exists_async(f"{self._tasks_path}/{name}"))
            for name in dict.fromkeys(names)
            if name not in known
        ]
        for name, result in asks:
            stat = self._wait(result, f"{self._tasks_path}/{name}", "check whether a task record exists")
            if stat is not None:
                known.add(name)
                self._present.add(name)
            else:
                self._present.discard(name)
        return known

    def _remember(self, ops: Iterable[_Op]) -> None:
        for op in ops:
            name = op.path.rsplit("/", 1)[1]
            if op.kind == "delete":
                self._present.discard(name)
            else:
                self._present.add(name)

    def _chunks(self, ops: list[_Op], fence: Fence | None) -> list[list[_Op]]:
        """``ops`` in transactions of at most ``max_transaction_bytes`` each (see module doc); no
        transaction at all when there is nothing to write."""
        limit = self._max_transaction_bytes
        if fence is not None:
            limit -= len(fence.znode.encode()) + _OP_OVERHEAD_BYTES  # the check op in every one
        if not ops:
            return []
        chunks: list[list[_Op]] = [[]]
        size = 0
        for op in ops:
            if op.size > limit:
                raise StoreError(
                    f"{op.path}: the record is {len(op.data)} bytes, more than one ZooKeeper "
                    f"transaction may carry ({limit}); nothing of the batch was written"
                )
            if size + op.size > limit and chunks[-1]:
                chunks.append([])
                size = 0
            chunks[-1].append(op)
            size += op.size
        if len(chunks) > 1:
            log.info(
                "%s: writing %d ops in %d transactions (over %d bytes); the batch is not atomic as a whole",
                self._tasks_path,
                len(ops),
                len(chunks),
                self._max_transaction_bytes,
            )
        return chunks

    # --- overrides --------------------------------------------------------------------------------

    def overrides(self) -> dict[str, Any]:
        self._sync()
        data = self._get(self._overrides_path, "read the overrides")
        if not data:
            return {}
        try:
            value = json.loads(data)
        except ValueError:
            log.error("%s: stored overrides are unreadable; ignoring them", self._overrides_path)
            return {}
        return value if isinstance(value, dict) else {}

    def set_overrides(self, overrides: Mapping[str, Any]) -> None:
        text = json.dumps(dict(overrides), sort_keys=True)
        self._write_meta(self._overrides_path, text.encode(), "the overrides")

    # --- closing ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the store's own client (a caller's client is left running). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_client:
            self._stop_client(self._client)

    @staticmethod
    def _stop_client(client: Any) -> None:
        try:
            client.stop()
        finally:
            client.close()
